"""Train / val / test split of a dataset by a stable hash of each face's identity (90 / 5 / 5)."""

from __future__ import annotations

import hashlib

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
