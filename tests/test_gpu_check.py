"""The CPU half of ``bench/gpu_check.py`` runs in CI: every check of the script runs on the CPU
against its CPU reference (float64 tiles, another batch size or memory format, mixed
precision off) at the ``--quick`` sizes, and passes. On a machine with CUDA the same run on
``--device cuda`` must pass too."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from synthlens.io import read_json

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"
#: Checks that cannot run on one CPU, and why (anything else must pass).
SKIPPED_ON_CPU = {"ddp_nccl": "nccl needs CUDA", "smoke_demo": "--quick"}
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


@pytest.fixture(scope="module")
def gpu_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("device", DEVICES)
def test_every_check_runs_and_passes(gpu_check: ModuleType, tmp_path: Path,
                                     device: str) -> None:
    assert gpu_check.main(["--device", device, "--quick", "--out", str(tmp_path)]) == 0
    report = read_json(tmp_path / "gpu_check.json")
    assert report["device"] == device and report["quick"] and report["passed"]
    rows = {row["name"]: row for row in report["checks"]}
    assert list(rows) == list(gpu_check.CHECKS)
    assert {"device", "knn_engine", "knn_metrics", "knn_scale", "features_pixels",
            "features_domain", "features_vqvae_codes", "generator_cvae", "generator_dcgan",
            "generator_stylegan2", "generator_vqvae2", "generator_ldm", "generator_ddpm",
            "classifier_small_cnn", "classifier_resnet18"} <= rows.keys()
    for name, row in rows.items():
        if row["status"] == "skip":
            expected = SKIPPED_ON_CPU.get(name, "is not installed")  # optional weights
            if device == "cuda" and name == "ddp_nccl":
                expected = "nccl needs at least 2"
            assert expected in row["reason"], (name, row["reason"])
            continue
        assert row["status"] == "pass", (name, row.get("reason"), row.get("max_rel"))
        for key in ("what", "reference", "must_hold", "max_abs", "max_rel", "wall_s"):
            assert key in row, (name, key)
        assert isinstance(row["wall_s"], float) and row["wall_s"] >= 0
        assert (row["peak_gpu_mb"] is None) == (device == "cpu")
    # on the CPU the metric values are those of float64 tiles exactly, and mixed precision
    # changes nothing
    if device == "cpu":
        assert rows["knn_metrics"]["max_rel"] == 0.0
        assert rows["generator_dcgan"]["max_abs"] == 0.0
    table = (tmp_path / "gpu_check.md").read_text()
    assert all(f"| {name} | {rows[name]['status']} |" in table for name in rows)


def test_a_check_that_raises_is_recorded_and_fails_the_run(
        gpu_check: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(ctx: object) -> None:
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(gpu_check, "check_device", broken)
    assert gpu_check.main(["--device", "cpu", "--quick", "--only", "device", "knn_engine",
                           "--out", str(tmp_path)]) == 1
    rows = read_json(tmp_path / "gpu_check.json")["checks"]
    assert [(r["name"], r["status"]) for r in rows] == [("device", "error"),
                                                        ("knn_engine", "pass")]
    assert rows[0]["reason"] == "RuntimeError: kernel exploded"


def test_a_device_torch_cannot_use_exits_2_before_the_folder_exists(
        gpu_check: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert gpu_check.main(["--device", "tpu", "--out", str(out)]) == 2
    assert not out.exists()
    assert capsys.readouterr().err.strip().splitlines() == [
        "gpu_check: error: --device tpu: must be cpu, cuda or auto, got 'tpu'"]
