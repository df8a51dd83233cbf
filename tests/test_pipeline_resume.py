"""Kill `synthlens run` (SIGKILL, no chance to clean up) while a generator trains, then
`--resume`: training continues from the last checkpoint and ends exactly where an
uninterrupted run ends. A late stage that fails costs none of the earlier ones."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import synthlens
from synthlens.io import read_json

CONFIG = {
    "name": "kill-and-resume",
    "budget": "smoke",
    "seed": 0,
    "dataset": {"source": "demo", "size": 28},
    "generators": [{"name": "dcgan", "family": "dcgan"}],
    "references": [],
    "features": {"extractors": ["domain"]},
    "utility": {"protocols": []},
    # long enough to be caught mid-training, checkpoints often enough to lose little
    "budget_overrides": {"generators": {"dcgan": {"steps": 400, "checkpoint_every": 20}}},
}
STAGE = "generators/dcgan"


def _command(config: Path, out: Path, *extra: str, stop_after: str | None = "generate",
             ) -> list[str]:
    stop = ["--stop-after", stop_after] if stop_after else []
    return [sys.executable, "-m", "synthlens", "run", str(config), "--out", str(out),
            "--device", "cpu", *stop, *extra]


def _env() -> dict[str, str]:
    # one thread each, so that the killed run and the reference run cost little
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _checkpointed_steps(workdir: Path) -> int:
    """Steps covered by the curves written beside the last checkpoint (0 before one)."""
    try:
        curves = json.loads((workdir / "curves.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return 0
    steps = [s for key, values in curves.items() if key.split("/")[-1] == "step"
             for s in values]
    return max(steps, default=0)


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "run.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


def test_killed_run_resumes_from_its_last_checkpoint(config_file: Path, tmp_path: Path) -> None:
    killed = tmp_path / "killed"
    process = subprocess.Popen(_command(config_file, killed, "--quiet"), env=_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    try:
        # wait until at least two checkpoints exist, so resuming skips real work
        while _checkpointed_steps(killed / STAGE) < 40:
            if process.poll() is not None:
                pytest.fail("the run ended before it could be killed: "
                            + process.stderr.read().decode()[-2000:])
            if time.monotonic() > deadline:
                pytest.fail("no checkpoint within 300 s")
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    manifest = read_json(killed / "manifest.json")
    assert manifest["stages"][STAGE]["status"] == "running"  # the kill left it unfinished
    assert not (killed / STAGE / "model.pt").exists()
    assert (killed / STAGE / "checkpoint.pt").exists()

    # Without --resume the folder is refused, with it the run continues.
    refused = subprocess.run(_command(config_file, killed, "--quiet"), env=_env(),
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    resumed = subprocess.run(_command(config_file, killed, "--resume"), env=_env(),
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    entry = read_json(killed / "manifest.json")["stages"][STAGE]
    assert entry["status"] == "done"
    assert entry["resumed_from"]["stage"] == "main"
    assert 40 <= entry["resumed_from"]["step"] < 400
    assert entry["resumed_from"]["step"] % 20 == 0  # a checkpoint boundary
    assert "continued from its checkpoint" in resumed.stderr
    assert read_json(killed / "manifest.json")["status"] == "stopped"
    assert not (killed / STAGE / "checkpoint.pt").exists()  # model.pt supersedes it

    # An uninterrupted run gives the same model, hence the same samples.
    fresh = tmp_path / "fresh"
    complete = subprocess.run(_command(config_file, fresh, "--quiet"), env=_env(),
                              capture_output=True, text=True)
    assert complete.returncode == 0, complete.stderr[-2000:]
    assert "resumed_from" not in read_json(fresh / "manifest.json")["stages"][STAGE]
    a = np.load(killed / "sets" / "dcgan" / "samples.npz")
    b = np.load(fresh / "sets" / "dcgan" / "samples.npz")
    np.testing.assert_array_equal(a["images"], b["images"])
    np.testing.assert_array_equal(a["labels"], b["labels"])
    curves_a = read_json(killed / STAGE / "curves.json")
    assert curves_a == read_json(fresh / STAGE / "curves.json")

    # Scoring later: --resume without --stop-after runs the remaining stages only.
    before = read_json(killed / "manifest.json")["stages"][STAGE]
    finished = subprocess.run(_command(config_file, killed, "--quiet", "--resume",
                                       stop_after=None), env=_env(),
                              capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "report:" not in finished.stderr  # --quiet silences every progress bar
    manifest = read_json(killed / "manifest.json")
    assert manifest["status"] == "complete"
    assert manifest["stages"][STAGE] == before  # the generator was not trained again
    results = read_json(killed / "results.json")
    assert results["sets"]["dcgan"]["metrics"]["fid"]["value"] > 0


def test_unknown_stop_after_stage_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    from synthlens.errors import InputError
    from synthlens.pipeline import run

    with pytest.raises(InputError, match="unknown stage 'report'"):
        run({}, tmp_path / "run", stop_after="report")
    assert not (tmp_path / "run").exists()


def test_redo_retrains_one_generator_and_keeps_the_rest(config_file: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    """``--redo STAGE`` with ``--resume`` retrains a finished generator whose fingerprint
    did not change (e.g. after a code change) and leaves the other stages alone."""
    from synthlens.cli import main

    config = yaml.safe_load(config_file.read_text())
    config["generators"].append({"name": "cvae", "family": "cvae"})
    config["budget_overrides"] = {"generators": {"dcgan": {"steps": 20},
                                                 "cvae": {"steps": 20}}}
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    base = ["run", str(path), "--out", str(out), "--device", "cpu", "--quiet",
            "--stop-after", "generate"]
    assert main(base) == 0
    first = read_json(out / "manifest.json")["stages"]
    samples = np.load(out / "sets" / "dcgan" / "samples.npz")["images"]
    for stage in (STAGE, "generators/cvae"):  # a trained-again stage starts from scratch
        (out / stage / "marker").write_text("first run")

    assert main([*base, "--redo", STAGE]) == 2  # needs --resume; nothing written
    assert "--redo" in capsys.readouterr().err
    assert main([*base, "--resume", "--redo", "generators/unet"]) == 2
    assert "no stage generators/unet to redo" in capsys.readouterr().err
    assert read_json(out / "manifest.json")["stages"] == first

    assert main([*base, "--resume", "--redo", STAGE]) == 0
    manifest = read_json(out / "manifest.json")
    assert manifest["runs"][-1]["redo"] == [STAGE]
    assert not (out / STAGE / "marker").exists() and (out / STAGE / "model.pt").exists()
    assert (out / "generators" / "cvae" / "marker").exists()  # untouched
    assert manifest["stages"]["generators/cvae"] == first["generators/cvae"]
    # same config and seed: the retrained generator draws the same samples
    np.testing.assert_array_equal(np.load(out / "sets" / "dcgan" / "samples.npz")["images"],
                                  samples)


DEMO_CONFIG = Path(synthlens.__file__).parent / "configs" / "demo.yaml"


def _resume_demo(out: Path, *extra: str) -> int:
    """``synthlens run demo.yaml --budget smoke --resume`` on a copy of the shared smoke run
    (the same config as ``synthlens demo``, so every finished stage is found)."""
    from synthlens.cli import main

    return main(["run", str(DEMO_CONFIG), "--budget", "smoke", "--device", "cpu", "--out",
                 str(out), "--quiet", "--resume", *extra])


def _counting(calls: dict[str, int], name: str, real: Callable[..., Any]) -> Callable[..., Any]:
    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[name] += 1
        return real(*args, **kwargs)
    return counted


def _except(stages: dict, name: str) -> dict:
    return {k: v for k, v in stages.items() if k != name}


def test_a_failed_assembly_costs_no_earlier_stage_and_resume_reruns_only_it(
        smoke_copy: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    """Assembling results.json fails (injected): the run exits 1 with a last line naming the
    stage and the file, the manifest records it, no earlier stage is touched; ``--resume``
    after the fix runs the results stage alone (the analysis and the report it would
    produce are already there and unchanged)."""
    import synthlens.analysis
    import synthlens.report
    from synthlens.pipeline import Pipeline

    before = read_json(smoke_copy / "manifest.json")["stages"]
    results = (smoke_copy / "results.json").read_bytes()

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("injected assembly failure")

    with monkeypatch.context() as patch:
        patch.setattr(Pipeline, "assemble", broken)
        assert _resume_demo(smoke_copy, "--redo", "results") == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: injected assembly failure" in err
    assert err.strip().splitlines()[-1] == (
        f"synthlens: error: stage results failed ({smoke_copy / 'results.json'}): "
        "RuntimeError: injected assembly failure; the stages before it are kept: fix the "
        "cause and continue the run with --resume")
    manifest = read_json(smoke_copy / "manifest.json")
    assert manifest["status"] == "failed" and manifest["runs"][-1]["status"] == "failed"
    assert manifest["stages"]["results"]["status"] == "failed"
    assert manifest["stages"]["results"]["error"] == "RuntimeError: injected assembly failure"
    assert _except(manifest["stages"], "results") == _except(before, "results")
    assert (smoke_copy / "results.json").read_bytes() == results  # atomic: never half-written

    calls = {"analyse": 0, "build_report": 0}
    for module, name in ((synthlens.analysis, "analyse"), (synthlens.report, "build_report")):
        monkeypatch.setattr(module, name, _counting(calls, name, getattr(module, name)))
    assert _resume_demo(smoke_copy) == 0
    manifest = read_json(smoke_copy / "manifest.json")
    assert manifest["status"] == "complete"
    assert manifest["stages"]["results"]["status"] == "done"
    assert "error" not in manifest["stages"]["results"]
    assert manifest["stages"]["results"]["started"] >= before["results"]["finished"]
    assert _except(manifest["stages"], "results") == _except(before, "results")
    assert calls == {"analyse": 0, "build_report": 0}
    assert (smoke_copy / "results.json").read_bytes() == results


def test_a_deleted_stage_is_recomputed_bit_identically_on_resume(smoke_copy: Path) -> None:
    """Delete finished stages (a generator with its set, a metrics stage, a set's utility
    and every cached classifier) and resume: their outputs come back byte for byte, the
    classifiers retrained for them are byte-identical, and nothing else runs."""
    import shutil

    from synthlens.cli import main

    kept = {p: p.read_bytes() for p in (
        smoke_copy / "sets" / "cvae" / "samples.npz",
        smoke_copy / "metrics" / "domain" / "dcgan" / "metrics.json",
        smoke_copy / "utility" / "ldm" / "utility.json",
        smoke_copy / "results.json")}
    before = read_json(smoke_copy / "manifest.json")["stages"]
    arms = {p.name: p.read_bytes() for p in (smoke_copy / "utility" / "arms").glob("*.npz")}
    for stage in ("generators/cvae", "sets/cvae", "metrics/domain/dcgan", "utility/ldm",
                  "utility/arms"):
        shutil.rmtree(smoke_copy / stage)
    assert main(["demo", "--budget", "smoke", "--out", str(smoke_copy), "--quiet",
                 "--resume", "--device", "cpu"]) == 0
    for path, data in kept.items():
        assert path.read_bytes() == data, path
    after = read_json(smoke_copy / "manifest.json")["stages"]
    rerun = {s for s in after if after[s].get("finished") != before[s].get("finished")}
    assert {"generators/cvae", "metrics/domain/dcgan", "utility/ldm"} <= rerun
    assert not {s for s in rerun if s.startswith(("generators/", "metrics/", "utility/"))
                and s not in ("generators/cvae", "metrics/domain/dcgan", "utility/ldm")}
    retrained = sorted((smoke_copy / "utility" / "arms").glob("*.npz"))
    assert retrained  # the real-only and ldm classifiers, trained again ...
    for path in retrained:  # ... to the same predictions (``meta`` also holds their time)
        import io

        with np.load(path) as new, np.load(io.BytesIO(arms[path.name])) as old:
            assert set(new.files) == set(old.files)
            for key in new.files:
                if key != "meta":
                    assert np.array_equal(new[key], old[key]), (path.name, key)
