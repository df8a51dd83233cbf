"""Where a run's units compute: in this process, side by side in local processes, or as
tasks on a Ray cluster, each with a fixed number of threads.

A *unit* is one generator to train, one feature extractor to fit, one (feature space, set)
to score, one set's utility arms to train. It is a picklable call of a module-level
function that reads what it is given, writes its outputs atomically into its stage folder
of the run folder and returns a small dict of facts (``resumed_from``, ``extractions``).
The driver (the process that runs :func:`synthlens.pipeline.run`) alone writes
``manifest.json``: it marks a stage running when it hands the unit to an executor and done
(with the facts) when the unit returns, so the run folder stays the only state and
``--resume`` works whichever executor wrote a stage.

Every unit runs with ``threads`` torch intra-op threads and BLAS/OpenMP threads
(:func:`unit_threads`), whatever the machine's core count or the executor: a number that
depends on how a computation is split between threads (a sum's order, a GEMM's blocking)
is then the same on a laptop, a 64-core node or a Ray worker. See ``docs/scaling.md``.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from synthlens.errors import InputError

EXECUTORS = ("local", "ray")

#: Environment variables that size the thread pools of OpenMP, MKL and OpenBLAS in a
#: process started for units (read when those libraries load).
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

RAY_MISSING = "Ray is not installed; install it with: pip install 'synthlens[ray]'"


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. under ``taskset`` or a
    Slurm allocation), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def resolve_jobs(jobs: int | str, threads: int, device: str = "cpu") -> int:
    """``auto``: as many units side by side as the available cores hold at ``threads``
    each (at least 1); 1 on a GPU (units side by side would share its memory)."""
    if jobs == "auto":
        return 1 if device.startswith("cuda") else max(1, available_cores() // threads)
    return int(jobs)


@contextlib.contextmanager
def unit_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads and as many BLAS/OpenMP
    threads (threadpoolctl, when installed); restore the caller's settings afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with contextlib.ExitStack() as stack:
            try:
                from threadpoolctl import threadpool_limits
            except ImportError:  # pragma: no cover - scikit-learn installs it
                pass
            else:
                stack.enter_context(threadpool_limits(limits=threads))
            yield
    finally:
        torch.set_num_threads(before)


def call_unit(fn: Callable[..., dict[str, Any] | None], threads: int, *args: Any,
              **kwargs: Any) -> dict[str, Any]:
    """What every executor runs: ``fn(*args, **kwargs)`` with ``threads`` threads."""
    with unit_threads(threads):
        return dict(fn(*args, **kwargs) or {})


def call_ray_unit(fn: Callable[..., dict[str, Any] | None], threads: int, *args: Any,
                  **kwargs: Any) -> dict[str, Any]:
    """:func:`call_unit` in a Ray task, whose array arguments are read-only views of the
    object store (torch warns about every such array it wraps; nothing writes to them)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return call_unit(fn, threads, *args, **kwargs)


def _worker_init(threads: int, counter: Any = None, lock: Any = None) -> None:
    """A local worker process: size the thread pools of what it starts, take its own line
    for progress bars (``counter``, ``lock``: see :func:`synthlens.progress.enter_worker`),
    and (Linux) end with the driver, so that a killed run leaves no worker writing into its
    folder."""
    for name in THREAD_ENV:
        os.environ[name] = str(threads)
    if counter is not None:
        from synthlens.progress import enter_worker

        enter_worker(counter, lock)
    with contextlib.suppress(Exception):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Unit:
    """One unit of work for an executor (see the module docstring).

    ``stage`` and ``key`` are its manifest entry and fingerprint; ``fn(*args, **kwargs)``
    the work, run with ``threads`` threads; ``gpu`` asks a Ray cluster for a GPU;
    ``message`` is printed when it starts; ``done`` (driver side) receives its facts.
    """

    stage: str
    key: str
    fn: Callable[..., dict[str, Any] | None]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    threads: int = 1
    gpu: bool = False
    message: str | None = None
    done: Callable[[dict[str, Any]], None] | None = None


class Executor:
    """Runs units; :meth:`submit` returns a :class:`concurrent.futures.Future` of the
    unit's facts. ``capacity``: units the driver keeps in flight at once."""

    name = "local"
    capacity = 1

    def submit(self, unit: Unit) -> cf.Future[dict[str, Any]]:
        future: cf.Future[dict[str, Any]] = cf.Future()
        try:
            future.set_result(call_unit(unit.fn, unit.threads, *unit.args, **unit.kwargs))
        except Exception as error:
            future.set_exception(error)
        return future

    def prepare(self, n_units: int) -> None:
        """``n_units`` are about to be run (a local pool is not started for one)."""

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "jobs": self.capacity}

    def close(self) -> None:
        """Release workers (called once the run ends, also on a failure)."""


class LocalExecutor(Executor):
    """This machine. ``jobs=1``: every unit in this process, one after another (in the
    order the stages list them). ``jobs>1``: that many worker processes side by side
    (started when two units are first ready at once, ``spawn``ed so that no thread pool
    is inherited), each drawing its progress bars on a line of its own."""

    def __init__(self, jobs: int = 1, threads: int = 1) -> None:
        self.capacity = max(1, int(jobs))
        self.threads = threads
        self._pool: cf.ProcessPoolExecutor | None = None
        self._inline = True

    def prepare(self, n_units: int) -> None:
        self._inline = self._pool is None and n_units < 2

    def submit(self, unit: Unit) -> cf.Future[dict[str, Any]]:
        if self.capacity == 1 or self._inline:
            return super().submit(unit)
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            # Worker k draws its progress bars on line k, under one shared write lock.
            self._pool = cf.ProcessPoolExecutor(
                self.capacity, mp_context=context, initializer=_worker_init,
                initargs=(self.threads, context.Value("i", 0), context.RLock()))
        return self._pool.submit(call_unit, unit.fn, unit.threads, *unit.args, **unit.kwargs)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class RayExecutor(Executor):
    """A Ray cluster: every unit a task declaring ``num_cpus`` = its threads and, for a
    generator or extractor unit of a CUDA run, ``num_gpus=1``. ``address``: an existing
    cluster (``ray.init(address=...)``; ``auto`` finds the one started on this node with
    ``ray start``); without it a Ray session already initialised in this process is used,
    else a local cluster on this machine's cores is started (and stopped at the end).
    Large arguments (image sets) are put in the object store once and shared."""

    name = "ray"

    def __init__(self, address: str | None = None, threads: int = 1) -> None:
        ray = import_ray()
        self._ray = ray
        self._owned = False
        if not ray.is_initialized():
            try:
                if address:
                    ray.init(address=address)
                else:
                    ray.init(include_dashboard=False)
            except (ConnectionError, ValueError, RuntimeError) as error:
                where = address or "a local cluster"
                raise InputError("--ray-address", f"cannot start or join Ray at {where}: "
                                                  f"{error}") from None
            self._owned = True
        self._task = ray.remote(call_ray_unit)
        self._refs: dict[int, tuple[Any, Any]] = {}
        self.address = address
        self.capacity = max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)

    def _ref(self, value: Any) -> Any:
        if isinstance(value, str | int | float | bool | type(None)):
            return value
        if id(value) not in self._refs:  # the value is kept, so its id is not reused
            self._refs[id(value)] = (value, self._ray.put(value))
        return self._refs[id(value)][1]

    def submit(self, unit: Unit) -> cf.Future[dict[str, Any]]:
        task = self._task.options(num_cpus=unit.threads, num_gpus=1 if unit.gpu else 0)
        ref = task.remote(unit.fn, unit.threads, *(self._ref(a) for a in unit.args),
                          **{k: self._ref(v) for k, v in unit.kwargs.items()})
        return ref.future()

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "ray_address": self.address,
                "cluster_cpus": self.capacity}

    def close(self) -> None:
        self._refs.clear()
        if self._owned:
            self._ray.shutdown()


def import_ray() -> Any:
    """The ``ray`` module, or :class:`InputError` (exit 2) saying how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError("--executor ray", RAY_MISSING) from None
    return ray


def make_executor(name: str, *, jobs: int | str = "auto", threads: int = 1,
                  ray_address: str | None = None, device: str = "cpu") -> Executor:
    """The executor a run's ``executor``, ``jobs``, ``threads`` and ``ray_address``
    settings name (checked by :mod:`synthlens.config`)."""
    if name == "ray":
        return RayExecutor(ray_address, threads)
    return LocalExecutor(resolve_jobs(jobs, threads, device), threads)


def task_error(error: BaseException) -> BaseException:
    """The unit's own exception (Ray wraps it in a ``RayTaskError``)."""
    cause = getattr(error, "cause", None)
    if type(error).__name__.startswith("RayTaskError") and isinstance(cause, BaseException):
        return cause
    return error


def run_units(units: Sequence[Unit], executor: Executor, *,
              begin: Callable[[Unit], None], end: Callable[[Unit, dict[str, Any]], None],
              fail: Callable[[Unit, BaseException], None]) -> None:
    """Run independent ``units`` on ``executor``, keeping ``executor.capacity`` in flight
    and starting them in the order given: ``begin`` before a unit is handed over, ``end``
    with its facts once it returned, ``fail`` with its error. After a failure no further
    unit starts; those in flight are waited for (and recorded), then the first error is
    raised (what ``fail`` raises). An interrupt records the units in flight as failed."""
    queue = list(units)
    running: dict[cf.Future[dict[str, Any]], Unit] = {}
    first: tuple[Unit, BaseException] | None = None
    executor.prepare(len(queue))
    try:
        while queue or running:
            while queue and first is None and len(running) < executor.capacity:
                unit = queue.pop(0)
                begin(unit)
                running[executor.submit(unit)] = unit
            finished, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
            for future in [f for f in running if f in finished]:
                unit = running.pop(future)
                error = future.exception()
                if error is None:
                    end(unit, future.result())
                elif first is None:
                    first = (unit, task_error(error))
                else:
                    with contextlib.suppress(Exception):
                        fail(unit, task_error(error))
            if first is not None and not running:
                break
    except BaseException as interrupt:
        for unit in running.values():
            with contextlib.suppress(BaseException):
                fail(unit, interrupt)
        executor.close()
        raise
    if first is not None:
        fail(*first)
