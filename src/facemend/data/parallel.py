"""Map a function over many files on all cores, in order, with one progress bar."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from tqdm import tqdm

from facemend.errors import FacemendError

Item = TypeVar("Item")
Result = TypeVar("Result")


def check_workers(workers: int | None) -> int:
    """`workers` validated, `None` meaning every core."""
    if workers is None:
        return os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise FacemendError(f"workers must be an integer >= 1, got {workers!r}")
    return workers


def parallel_map(
    function: Callable[[Item], Result],
    items: Sequence[Item],
    workers: int | None = None,
    desc: str | None = None,
    chunksize: int = 1,
    initializer: Callable[[], None] | None = None,
) -> Iterator[Result]:
    """`function(item)` for every item, yielded in order; a progress bar titled `desc` unless it is None.

    Worker processes come from a fork server: forking a process that already runs torch's or OpenMP's thread
    pools can deadlock the child. `function` and `initializer` must be importable module-level callables.
    """
    count = min(check_workers(workers), max(1, len(items)))
    return _run(function, items, count, desc, chunksize, initializer)


def _run(
    function: Callable[[Item], Result],
    items: Sequence[Item],
    workers: int,
    desc: str | None,
    chunksize: int,
    initializer: Callable[[], None] | None,
) -> Iterator[Result]:
    with tqdm(total=len(items), desc=desc, disable=desc is None, dynamic_ncols=True) as bar:
        if workers == 1:
            if initializer is not None:
                initializer()
            for item in items:
                yield function(item)
                bar.update()
            return
        context = multiprocessing.get_context("forkserver")
        with context.Pool(workers, initializer=initializer) as pool:
            for result in pool.imap(function, items, chunksize=chunksize):
                yield result
                bar.update()
