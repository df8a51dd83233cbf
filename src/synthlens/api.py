"""The Python entry points, ``synthlens.evaluate`` and ``synthlens.run``: the CLI's
``evaluate`` and ``run`` commands as functions that return a :class:`~synthlens.results.Results`.

Both are thin layers over :func:`synthlens.pipeline.evaluate` and
:func:`synthlens.pipeline.run`: every other keyword is handed on as it is, so the functions
take the options the pipeline takes, and the config is checked exactly as the CLI checks
it (bad input raises :class:`~synthlens.errors.InputError` before a run folder exists).
The pipeline (and torch) is imported on the first call, so ``import synthlens`` stays light.

``out=None`` makes a new run folder under the system's temporary folder
(``tempfile.gettempdir()``, named ``synthlens-evaluate-*`` or ``synthlens-run-*``); it is
kept after the call, so the returned ``Results`` (its ``root``) can still re-render the
report, and its scores are read into memory.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from synthlens.errors import InputError
from synthlens.results import Results, open_run

PathLike = str | os.PathLike[str]


def evaluate(real: PathLike | Mapping[str, Any], synthetic: Mapping[str, Any],
             out: PathLike | None = None, *, resume: bool = False, force: bool = False,
             **options: Any) -> Results:
    """Score synthetic sets against real data, as ``synthlens evaluate`` does.

    Parameters
    ----------
    real:
        What ``--real`` takes (``"demo"``, a MedMNIST name, an ``.npz`` or an image folder),
        or the arrays of a MedMNIST-layout ``.npz`` in memory: a mapping with
        ``train_images``, ``train_labels``, ``val_images``, ``val_labels``, ``test_images``,
        ``test_labels`` and optionally ``class_names`` (e.g. ``dict(np.load(path))``).
    synthetic:
        ``{name: set}``; a set is a path (as ``--synthetic NAME=PATH``), an
        ``(images, labels)`` pair or a mapping ``{"images", "labels"[, "class_names"]}``.
        Images are ``uint8`` (0-255) or float in [0, 1] (stored as ``round(255 x)``),
        shaped ``(N, H, W)``, ``(N, H, W, 1)`` or ``(N, H, W, 3)``; labels index the real
        classes. Arrays pass the checks a file passes.
    out:
        The run folder; None: a new temporary one (see the module docstring).
    resume, force:
        Continue the run in ``out`` / replace it (``--resume`` / ``--force``).
    **options:
        Handed to :func:`synthlens.pipeline.evaluate`: ``extractors``, ``metrics``,
        ``protocols`` (``[]``: no utility stage), ``budget`` (default ``demo``), ``seed``,
        ``device``, ``fail_if`` (gates: a failed gate is listed in
        ``Results.failed_gates``, nothing is raised), ``progress``, ``on_stage``,
        ``executor``, ``jobs``, ``threads``, ``ray_address`` (docs/scaling.md), ...

    The arrays are kept in the run folder (``inputs/real.npz``, ``sets/NAME/samples.npz``)
    and ``config.yaml`` names those copies, so the run can be repeated from its folder
    (:class:`synthlens.pipeline.InMemory`).
    """
    from synthlens import pipeline
    from synthlens.data import ACCEPTED_ARRAYS, as_named_arrays

    if not isinstance(synthetic, Mapping) or not synthetic:
        raise InputError("synthetic", "expected a mapping {name: set} with at least one set; "
                                      f"a set is a path or {ACCEPTED_ARRAYS}")
    if not isinstance(real, str | os.PathLike | Mapping):
        raise InputError("real", f"got {type(real).__name__}; accepted: a dataset name or "
                                 "path (as --real) or a mapping of the .npz layout's arrays "
                                 "(train_images, train_labels, val_*, test_*)")
    sets = {name: value if isinstance(value, str | os.PathLike)
            else as_named_arrays(value, str(name)) for name, value in synthetic.items()}
    try:
        folder = pipeline.evaluate(real, sets, _out(out, "evaluate"),
                                   mode=_mode(resume, force), **options)
    except InputError as error:  # name the keyword argument, not the command-line option
        if error.source not in pipeline.EVALUATE_OPTIONS.values():
            raise
        keyword = error.source.removeprefix("--").replace("-", "_")
        raise InputError(f"{keyword}=", error.problem) from None
    return open_run(folder)


def run(config: PathLike | Mapping[str, Any], out: PathLike | None = None, *,
        resume: bool = False, force: bool = False, budget: str | None = None,
        seed: int | None = None, device: str | None = None, fail_if: tuple[str, ...] = (),
        **options: Any) -> Results | None:
    """Run the pipeline from a config, as ``synthlens run`` does.

    ``config`` is a path to a YAML config (relative data paths taken from its folder) or
    the same settings as a dict (relative paths taken from the working directory); either
    is checked by :func:`synthlens.config.resolve_config`, as the CLI checks a config.
    ``budget``, ``seed``, ``device`` and ``fail_if`` override the config (``--budget``,
    ``--seed``, ``--device``, ``--fail-if``), and so do ``executor``, ``jobs``, ``threads``
    and ``ray_address`` (docs/scaling.md); the other keywords (``stop_after``, ``redo``,
    ``progress``, ``on_stage``, ...) are handed to :func:`synthlens.pipeline.run`.
    Returns the run's :class:`Results`, or None for a run ended early by ``stop_after``.
    """
    from synthlens import pipeline
    from synthlens.config import EXECUTION, load_config, resolve_config

    overrides: dict[str, Any] = {"budget": budget, "seed": seed, "device": device,
                                 "fail_if": tuple(fail_if),
                                 **{k: options.pop(k) for k in EXECUTION if k in options}}
    if isinstance(config, str | os.PathLike):
        settings = load_config(config, **overrides)
    elif isinstance(config, Mapping):
        settings = resolve_config(config, source="config", **overrides)
    else:
        raise InputError("config", f"got {type(config).__name__}; accepted: a path to a YAML "
                                   "config or a mapping of its settings")
    folder = pipeline.run(settings, _out(out, "run"), mode=_mode(resume, force), **options)
    return open_run(folder) if (folder / "results.json").is_file() else None


def _mode(resume: bool, force: bool) -> str:
    if resume and force:
        raise InputError("resume/force", "choose one of resume and force")
    return "resume" if resume else "force" if force else "new"


def _out(out: PathLike | None, command: str) -> Path:
    return Path(out) if out is not None else Path(tempfile.mkdtemp(prefix=f"synthlens-{command}-"))
