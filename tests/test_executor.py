"""Where the units run changes no number: the smoke demo's ``results.json`` is the same with
one available core as with two, on a local Ray cluster as in this process, and when a run is
started with one executor and resumed with the other. The reference is the session's
``smoke_run`` (the local executor with every core this machine gives the tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from synthlens import cli
from synthlens.config import packaged_config, resolve_config
from synthlens.errors import SettingError, StageError
from synthlens.executor import LocalExecutor, Unit, call_unit, run_units
from synthlens.io import read_json
from synthlens.pipeline import run
from synthlens.runfolder import RunFolder

SRC = Path(__file__).resolve().parents[1] / "src"
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@pytest.fixture(scope="module")
def ray_session() -> Any:
    """A local Ray cluster of two CPUs, shared by the tests of this module."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


def _one_core(command: list[str]) -> None:
    """Run ``command`` on one core only (its affinity mask), with no thread variables set:
    whatever the thread count, synthlens fixes it per unit."""
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("needs os.sched_setaffinity (Linux)")
    core = min(os.sched_getaffinity(0))
    env = {k: v for k, v in os.environ.items() if k not in THREAD_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-m", "synthlens", *command], env=env,
                          capture_output=True, text=True,
                          preexec_fn=lambda: os.sched_setaffinity(0, {core}))
    assert done.returncode == 0, done.stderr[-3000:]


def _smoke_config(**execution: Any) -> Any:
    return resolve_config(packaged_config("demo"), source="demo", budget="smoke",
                          device="cpu", **execution)


def test_one_core_local_and_ray_give_the_smoke_runs_values(smoke_run: Path, ray_session: Any,
                                                            tmp_path: Path) -> None:
    """Generators and the domain encoder trained on one core (local executor, in process),
    every set scored on a Ray cluster of two CPUs, utility trained on one core again: every
    value as in ``smoke_run``."""
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump(packaged_config("demo")))
    out = tmp_path / "mixed"
    common = ["run", str(config), "--budget", "smoke", "--device", "cpu", "--out", str(out),
              "--quiet"]
    _one_core([*common, "--stop-after", "features"])
    run(_smoke_config(executor="ray"), out, mode="resume", stop_after="score", progress=False)
    _one_core([*common, "--resume", "--executor", "local"])

    assert read_json(out / "results.json") == read_json(smoke_run / "results.json")
    manifest = read_json(out / "manifest.json")
    runs = [(r["executor"], r.get("jobs"), r["threads"]) for r in manifest["runs"]]
    assert runs == [("local", 1, 1), ("ray", None, 1), ("local", 1, 1)]
    assert {s.get("threads") for n, s in manifest["stages"].items()
            if n.split("/")[0] in ("generators", "features", "metrics", "utility")} == {1}
    reference = read_json(smoke_run / "manifest.json")["runs"][0]
    assert reference["threads"] == 1 and reference["executor"] == "local"


def test_a_generator_retrained_on_ray_matches_local(smoke_run: Path, smoke_copy: Path,
                                                    ray_session: Any) -> None:
    """A finished local run resumed on Ray with a generator, its metrics and its utility to
    be redone: the same samples, the same results."""
    before = np.load(smoke_copy / "sets" / "cvae" / "samples.npz")["images"]
    redo = ["generators/cvae", "metrics/domain/cvae", "utility/cvae"]
    run(_smoke_config(executor="ray"), smoke_copy, mode="resume", redo=redo, progress=False)
    manifest = read_json(smoke_copy / "manifest.json")
    assert manifest["runs"][-1]["executor"] == "ray"
    assert all(manifest["stages"][s]["finished"] >= manifest["runs"][-1]["started"]
               for s in redo)
    after = np.load(smoke_copy / "sets" / "cvae" / "samples.npz")["images"]
    np.testing.assert_array_equal(after, before)
    assert read_json(smoke_copy / "results.json") == read_json(smoke_run / "results.json")


@pytest.mark.parametrize("command", ["demo", "run", "evaluate"])
def test_executor_ray_without_ray_exits_2_with_one_line(
        command: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    out = tmp_path / "run"
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump(packaged_config("demo")))
    args = {"demo": ["demo", "--budget", "smoke"], "run": ["run", str(config)],
            "evaluate": ["evaluate", "--real", "demo", "--synthetic", f"mine={config}"]}
    assert cli.main([*args[command], "--executor", "ray", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "executor" in err and "pip install 'synthlens[ray]'" in err
    assert not out.exists()


@pytest.mark.parametrize(("setting", "value", "words"), [
    ("threads", 0, "at least 1"),
    ("executor", "spark", "local, ray"),
    ("jobs", 0, "'auto' or a whole number"),
    ("jobs", "many", "'auto' or a whole number"),
    ("ray_address", "auto", "executor ray"),
])
def test_execution_settings_are_checked_at_the_door(setting: str, value: Any,
                                                    words: str) -> None:
    with pytest.raises(SettingError, match=setting) as raised:
        _smoke_config(**{setting: value})
    assert words in str(raised.value)


def test_bad_cli_threads_exit_2_before_a_run_folder(tmp_path: Path) -> None:
    assert cli.main(["demo", "--budget", "smoke", "--threads", "0", "--out",
                     str(tmp_path / "run"), "--quiet"]) == 2
    assert not (tmp_path / "run").exists()


def _ok(value: int) -> dict[str, Any]:
    return {"value": value}


def _broken() -> dict[str, Any]:
    raise RuntimeError("no luck")


def test_a_failing_unit_is_recorded_and_stops_the_rest(tmp_path: Path) -> None:
    """The driver records each unit: done with its facts, failed with its error (raised
    as a StageError naming it); a unit after the failure is not started."""
    folder = RunFolder(tmp_path / "run")
    units = [Unit("a", "ka", _ok, (1,)), Unit("b", "kb", _broken), Unit("c", "kc", _ok, (3,))]

    def begin(unit: Unit) -> None:
        folder.begin(unit.stage, unit.key, threads=unit.threads)

    def end(unit: Unit, facts: dict[str, Any]) -> None:
        folder.end(unit.stage, **facts)

    def fail(unit: Unit, error: BaseException) -> None:
        staged = folder.fail(unit.stage, error)
        assert staged is not None
        raise staged

    with pytest.raises(StageError, match=r"stage b failed.*no luck"):
        run_units(units, LocalExecutor(1), begin=begin, end=end, fail=fail)
    stages = read_json(tmp_path / "run" / "manifest.json")["stages"]
    assert stages["a"]["status"] == "done" and stages["a"]["value"] == 1
    assert stages["b"]["status"] == "failed" and "no luck" in stages["b"]["error"]
    assert "c" not in stages


def _threads_seen() -> dict[str, Any]:
    import torch
    from threadpoolctl import threadpool_info

    return {"torch": torch.get_num_threads(),
            "blas": sorted({pool["num_threads"] for pool in threadpool_info()})}


def test_a_unit_computes_with_its_threads_and_restores_the_callers() -> None:
    import torch

    before = torch.get_num_threads()
    assert call_unit(_threads_seen, 3) == {"torch": 3, "blas": [3]}
    assert torch.get_num_threads() == before


def _progress_line(wait: float) -> dict[str, Any]:
    import io
    import time

    from synthlens import progress

    time.sleep(wait)  # both units in flight at once: two workers
    bar = progress.progress_bar(range(3), file=io.StringIO(), disable=False)
    return {"slot": progress.slot(), "pid": os.getpid(), "position": bar.pos,
            "leave": bar.leave}


def test_local_workers_draw_their_progress_bars_on_lines_of_their_own() -> None:
    """Units side by side in local workers (``--jobs 2``) each draw on their own line
    (1, 2, ...; cleared when done) under one shared lock, so their bars never overwrite
    each other; the driver keeps line 0."""
    from synthlens import progress

    executor = LocalExecutor(2)
    executor.prepare(2)
    try:
        futures = [executor.submit(Unit(f"u{i}", f"k{i}", _progress_line, (1.5,)))
                   for i in range(2)]
        seen = [f.result(timeout=120) for f in futures]
    finally:
        executor.close()
    assert len({s["pid"] for s in seen}) == 2
    assert sorted(s["slot"] for s in seen) == [1, 2]
    assert all(abs(s["position"]) == s["slot"] and s["leave"] is False for s in seen)
    assert progress.slot() == 0  # this process is the driver
    here = progress.progress_bar(range(3), disable=False, leave=True)
    assert here.pos == 0 and here.leave is True
    here.close()
