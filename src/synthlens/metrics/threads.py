"""Row ranges of numpy work split over threads (numpy releases the GIL in its loops).

One pool per process and size (a pool inherited through ``fork`` has no threads); the
number of threads is torch's intra-op count, so the executor's thread policy (one thread
per unit when units run side by side, ``docs/scaling.md``) applies here too. Each range is
computed by the same code whichever thread takes it, so results do not depend on the count.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}


def thread_count() -> int:
    import torch  # lazily: the metric catalogue imports without torch

    return max(1, torch.get_num_threads())


def over_rows(work: Callable[[int, int], object], n: int, min_rows: int) -> list[object]:
    """``work(lo, hi)`` over consecutive ranges covering ``0..n``: one range per thread,
    each at least ``min_rows`` rows (one range, in this thread, when that leaves one)."""
    threads = max(1, min(thread_count(), n // max(min_rows, 1)))
    if threads == 1:
        return [work(0, n)]
    key = (os.getpid(), threads)
    if key not in _POOLS:
        _POOLS[key] = ThreadPoolExecutor(threads, thread_name_prefix="synthlens")
    bounds = [n * i // threads for i in range(threads + 1)]
    futures = [_POOLS[key].submit(work, bounds[i], bounds[i + 1]) for i in range(threads)]
    return [f.result() for f in futures]
