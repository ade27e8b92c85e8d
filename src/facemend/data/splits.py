"""Train / val / test split of a dataset by a stable hash of each face's identity (90 / 5 / 5), and the fixed
order in which subsets of a split are taken."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

SPLITS = ("train", "val", "test")
SHARES = (0.90, 0.05, 0.05)


def split_of(identity: str) -> str:
    """The split of every face of `identity`; the same on every machine and in every process."""
    digest = hashlib.sha256(identity.encode("utf-8")).digest()
    position = int.from_bytes(digest[:8], "big") / 2.0**64
    bound = 0.0
    for split, share in zip(SPLITS, SHARES, strict=True):
        bound += share
        if position < bound:
            return split
    return SPLITS[-1]


def hash_order(names: Iterable[str]) -> list[str]:
    """`names` sorted by the sha256 of each: a fixed order, the same on every machine, that mixes sources and
    identities, so that its first N are a fair subset (`facemend testset`, `clean --limit`, `data.train_faces`)."""
    return sorted(names, key=lambda name: hashlib.sha256(name.encode()).hexdigest())
