"""Fixtures shared by every test module (keep this file small and generic)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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
