"""Fixtures shared by every test module (keep this file small and generic)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

# ../shared/data relative to the repository root: real datasets that are never copied here
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Callable[[str], Path]:
    """A function NAME -> path of ``../shared/data/NAME``; skips the test when it is absent."""

    def locate(name: str) -> Path:
        path = SHARED_DATA / name
        if not path.exists():
            pytest.skip(f"../shared/data/{name} not found at {path}: this test needs the "
                        "shared real datasets, which a user's machine does not have")
        return path

    return locate


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run folder of ``synthlens demo --budget smoke --device cpu``, made by the real
    pipeline once per test session and shared by every test that reads a run (the report,
    the results schema, the end-to-end and resume tests).

    Read-only: a test that changes a run works on a copy (the ``smoke_copy`` fixture).
    """
    from synthlens.pipeline import demo

    return demo(tmp_path_factory.mktemp("smoke") / "demo", budget="smoke", device="cpu",
                progress=False)


@pytest.fixture
def smoke_copy(smoke_run: Path, tmp_path: Path) -> Path:
    """A private copy of the shared smoke run (same folder name), for tests that change it."""
    return Path(shutil.copytree(smoke_run, tmp_path / smoke_run.name, symlinks=True))


@pytest.fixture(scope="session")
def two_classes() -> tuple:
    """Two labelled classes: real training set with a holdout, a synthetic set, images."""
    rng = np.random.default_rng(0)
    real = np.r_[rng.standard_normal((120, 8)), rng.standard_normal((120, 8)) + 3]
    labels = np.repeat([0, 1], 120)
    holdout = np.r_[rng.standard_normal((40, 8)), rng.standard_normal((40, 8)) + 3]
    holdout_labels = np.repeat([0, 1], 40)
    syn = np.r_[rng.standard_normal((60, 8)), rng.standard_normal((60, 8)) * 0.5 + 3]
    syn_labels = np.repeat([0, 1], 60)
    images = rng.integers(0, 256, (120, 16, 16), dtype=np.uint8)
    from synthlens.metrics import RealReference

    ref = RealReference(k=5, feature_space={"extractor": "test"}).fit(
        real, labels, holdout=holdout, holdout_labels=holdout_labels,
        class_names=["normal", "pneumonia"])
    return ref, syn, syn_labels, images, holdout
