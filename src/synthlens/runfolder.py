"""The run folder: the one place a run's state lives.

Layout::

    RUN/
      config.yaml         the resolved config (budget expanded, defaults filled in)
      manifest.json       versions, seeds, input hashes, times, status, finished stages
      data/ generators/ features/ metrics/ utility/ report/   one sub-folder per stage
      sets/NAME/samples.npz  every scored set's images (a user's arrays included)
      inputs/real.npz     the real data, when it was given as arrays (synthlens.evaluate)
      results.json results.csv report.html                   the outputs

The last three stages are ``results`` (assembles ``results.json``), ``analysis`` (adds its
``analysis`` section) and ``report`` (``report.html``, ``results.csv``, ``report/``).

Every file is written atomically (:mod:`synthlens.io`). A stage is recorded as finished in
the manifest, with a fingerprint of its config and inputs, only after all of its outputs
are written; ``--resume`` skips a stage whose fingerprint is unchanged and reruns it
otherwise. A stage that fails is recorded as failed, with the error, and raises a
:class:`~synthlens.errors.StageError` naming it and the file it was writing; the stages
finished before it are kept. An existing run folder is never overwritten without
``resume`` or ``force``.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml

import synthlens
from synthlens.errors import InputError, StageError
from synthlens.io import read_json, write_json, write_text

Mode = Literal["new", "resume", "force"]

MANIFEST = "manifest.json"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def environment() -> dict[str, str]:
    """Versions that can change a number."""
    import scipy
    import sklearn

    return {"synthlens": synthlens.__version__, "python": sys.version.split()[0],
            "torch": torch.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__, "platform": platform.platform(),
            "cuda": torch.version.cuda or "none"}


class RunFolder:
    """A run's folder and manifest.

    ``mode="new"`` refuses a folder that already holds a run (or any files);
    ``"resume"`` continues one (or starts fresh where none exists); ``"force"`` deletes
    the old run first (only a folder that looks like a run, or an empty one).
    ``redo`` (with ``"resume"`` only) names finished stages of the run to run again from an
    empty folder, e.g. ``generators/ldm`` after a code change that its fingerprint (config,
    inputs, seed) cannot see; later stages rerun only if their inputs change.
    """

    def __init__(self, root: str | os.PathLike[str], mode: Mode = "new",
                 redo: Sequence[str] = ()) -> None:
        self.root = Path(root)
        self.mode = mode
        self.redo = set(redo)
        self._started: dict[str, float] = {}
        if self.redo and mode != "resume":
            raise InputError("--redo", "reruns stages of an existing run: use it with --resume")
        exists = self.root.exists() and any(self.root.iterdir())
        is_run = (self.root / MANIFEST).exists()
        if self.root.exists() and not self.root.is_dir():
            raise InputError(self.root, "exists and is not a folder")
        if exists and mode == "new":
            raise InputError(self.root, "already exists; pass --resume to continue that run "
                                        "or --force to replace it")
        if exists and mode == "force":
            if not is_run:
                raise InputError(self.root, "is not empty and holds no synthlens run "
                                            f"({MANIFEST} missing); refusing to delete it")
            shutil.rmtree(self.root)
        if exists and mode == "resume" and not is_run:
            raise InputError(self.root, f"is not empty and holds no synthlens run ({MANIFEST} "
                                        "missing); choose another --out")
        if is_run and mode != "force":
            self.manifest: dict[str, Any] = read_json(self.root / MANIFEST)
        else:
            self.manifest = {"created": _now(), "stages": {}, "inputs": {}, "seeds": {},
                             "runs": []}
        unknown = sorted(self.redo - set(self.manifest["stages"]))
        if unknown:  # checked before anything is written
            known = ", ".join(sorted(self.manifest["stages"])) or "none"
            raise InputError(self.root, f"has no stage {', '.join(unknown)} to redo; "
                                        f"its stages: {known}")
        self.root.mkdir(parents=True, exist_ok=True)
        self.manifest["environment"] = environment()
        self.manifest["status"] = "running"
        self.manifest["runs"].append({"started": _now(), "mode": mode,
                                      "argv": sys.argv[1:]})
        if self.redo:
            self.manifest["runs"][-1]["redo"] = sorted(self.redo)
        self.manifest.pop("finished", None)
        self._save()

    # ------------------------------------------------------------------ paths
    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    # ------------------------------------------------------------------ manifest
    def _save(self) -> None:
        write_json(self.root / MANIFEST, self.manifest)

    def write_config(self, config: Mapping[str, Any]) -> None:
        write_text(self.root / "config.yaml", yaml.safe_dump(dict(config), sort_keys=False))

    def record_inputs(self, **hashes: str) -> None:
        """SHA-256 of every input array (real splits, user synthetic sets)."""
        self.manifest["inputs"].update(hashes)
        self._save()

    def record_seeds(self, **seeds: Any) -> None:
        self.manifest["seeds"].update(seeds)
        self._save()

    def record_run(self, **facts: Any) -> None:
        """Facts about this invocation (``runs[-1]`` of the manifest)."""
        self.manifest["runs"][-1].update(facts)
        self._save()

    def is_done(self, stage: str, key: str) -> bool:
        """True when ``stage`` finished with the same fingerprint, its output is still there
        (a deleted stage folder is computed again), we are resuming and it is not to be
        redone."""
        entry = self.manifest["stages"].get(stage)
        return (self.mode == "resume" and stage not in self.redo and entry is not None
                and entry.get("fingerprint") == key and entry.get("status") == "done"
                and (self.root / entry.get("output", stage)).exists())

    @contextmanager
    def failure(self, stage: str, output: str | os.PathLike[str]) -> Iterator[None]:
        """Name ``stage`` and ``output`` (what it writes) in any failure inside: the error is
        recorded in the manifest (status ``failed``) and raised again as a
        :class:`StageError`. Bad input (:class:`InputError`) and interrupts pass unchanged."""
        try:
            yield
        except (InputError, StageError):
            raise
        except Exception as exc:
            entry = self.manifest["stages"].setdefault(stage, {})
            entry.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            self._save()
            raise StageError(stage, output, exc) from exc

    @contextmanager
    def stage(self, stage: str, key: str, *, output: str | os.PathLike[str] | None = None,
              folder: bool = True) -> Iterator[Path]:
        """Run a stage in this process: yields its folder (``RUN/<stage>``); marks it done
        (with ``key``) only on success, and failed on an error (see :meth:`failure`;
        ``output`` names what it writes, by default its folder). :meth:`begin`,
        :meth:`end` and :meth:`fail` are the same steps for a stage that an executor runs
        elsewhere (:mod:`synthlens.executor`).
        """
        path, output = self.begin(stage, key, output=output, folder=folder)
        try:
            with self.failure(stage, output):
                yield path
        except BaseException:
            self.manifest["stages"][stage]["status"] = "failed"
            self._save()
            raise
        self.end(stage)

    def begin(self, stage: str, key: str, *, output: str | os.PathLike[str] | None = None,
              folder: bool = True, **facts: Any) -> tuple[Path, Path]:
        """Mark ``stage`` running (with ``key`` and ``facts``, e.g. its thread count) and
        return its folder and the output it writes.

        A stage that starts with a different fingerprint than a previous attempt, or that
        is to be redone, starts from an empty folder, so stale files cannot leak into it;
        with the same fingerprint its partial outputs (e.g. checkpoints) are kept for
        resuming. ``folder=False`` is for a stage that writes files of the run's top level
        (``results.json``): no folder is made or emptied.
        """
        entry = self.manifest["stages"].get(stage)
        path = self.root / stage
        if folder and path.exists() and (
                stage in self.redo or (entry is not None and entry.get("fingerprint") != key)):
            shutil.rmtree(path)
        self.redo.discard(stage)  # once per invocation
        if folder:
            path.mkdir(parents=True, exist_ok=True)
        out = Path(output) if output is not None else path
        self._started[stage] = time.perf_counter()
        self.manifest["stages"][stage] = {"fingerprint": key, "status": "running",
                                          "started": _now(),
                                          "output": out.relative_to(self.root).as_posix(),
                                          **facts}
        self._save()
        return path, out

    def end(self, stage: str, **facts: Any) -> None:
        """Mark ``stage`` done, with ``facts`` (e.g. ``resumed_from``)."""
        started = self._started.pop(stage, time.perf_counter())
        self.manifest["stages"][stage].update(
            status="done", finished=_now(), seconds=round(time.perf_counter() - started, 3),
            **facts)
        self._save()

    def fail(self, stage: str, error: BaseException) -> StageError | None:
        """Mark ``stage`` failed with ``error``; the :class:`StageError` to raise (None for
        an interrupt or an error that already names its input or stage)."""
        self._started.pop(stage, None)
        entry = self.manifest["stages"].setdefault(stage, {})
        entry["status"] = "failed"
        if isinstance(error, Exception) and not isinstance(error, InputError | StageError):
            entry["error"] = f"{type(error).__name__}: {error}"
            self._save()
            return StageError(stage, self.root / entry.get("output", stage), error)
        self._save()
        return None

    def finish(self, status: Literal["complete", "stopped", "failed", "interrupted"]) -> None:
        self.manifest["status"] = status
        self.manifest["finished"] = _now()
        self.manifest["runs"][-1]["finished"] = self.manifest["finished"]
        self.manifest["runs"][-1]["status"] = status
        self._save()
