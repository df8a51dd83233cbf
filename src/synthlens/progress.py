"""Progress bars: the one place synthlens makes them (tqdm, on stderr).

Units that run side by side in local worker processes (``--jobs N``, ``docs/scaling.md``)
each draw on a line of their own: the local executor numbers its workers 1, 2, ... as they
start and gives them one shared write lock (:func:`enter_worker`), so two units' bars never
overwrite each other, and a worker's bars are cleared when they end (the driver's own bars,
on line 0, behave as before). Every bar is made by :func:`progress_bar`.
"""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm

_slot = 0  # 0 in the driver; a local worker's number otherwise


def progress_bar(iterable: Any = None, **options: Any) -> tqdm:
    """``tqdm(iterable, **options)``, on this process's line when it is a local worker."""
    if _slot:
        options["position"] = _slot
        options["leave"] = False
    return tqdm(iterable, **options)


def slot() -> int:
    """This process's line: 0 in the driver, 1, 2, ... in local worker processes."""
    return _slot


def enter_worker(counter: Any, lock: Any) -> None:
    """Take the next line (``counter``: a shared ``multiprocessing.Value``) and the shared
    write lock; called once when a local worker process starts."""
    global _slot
    with counter.get_lock():
        counter.value += 1
        _slot = int(counter.value)
    tqdm.set_lock(lock)
