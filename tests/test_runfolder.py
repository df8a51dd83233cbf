"""The run folder: atomic writes, refusal to overwrite, resume skipping, manifest."""

from __future__ import annotations

import os

import numpy as np
import pytest

from synthlens.errors import InputError, StageError
from synthlens.hashing import json_sha256
from synthlens.io import atomic_path, read_json, read_npz, write_json, write_npz
from synthlens.runfolder import RunFolder


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text('{"a": 2, "half')
        raise RuntimeError("killed mid-write")
    assert read_json(target) == {"a": 1}
    assert sorted(os.listdir(tmp_path)) == ["out.json"]  # no temporary file left


def test_write_json_refuses_nan(tmp_path):
    with pytest.raises(ValueError):
        write_json(tmp_path / "x.json", {"v": float("nan")})
    assert not (tmp_path / "x.json").exists()


def test_npz_round_trip(tmp_path):
    write_npz(tmp_path / "a.npz", x=np.arange(5), names=np.array(["a", "b"]))
    data = read_npz(tmp_path / "a.npz")
    assert data["x"].tolist() == [0, 1, 2, 3, 4] and data["names"].tolist() == ["a", "b"]
    assert sorted(os.listdir(tmp_path)) == ["a.npz"]


def test_new_run_refuses_existing_folder(tmp_path):
    RunFolder(tmp_path / "run").finish("complete")
    with pytest.raises(InputError, match="already exists; pass --resume"):
        RunFolder(tmp_path / "run")


def test_force_replaces_a_run_but_not_other_folders(tmp_path):
    run = RunFolder(tmp_path / "run")
    (run.path("old.txt")).write_text("stale")
    run.finish("complete")
    RunFolder(tmp_path / "run", mode="force")
    assert not (tmp_path / "run" / "old.txt").exists()
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(InputError, match="holds no synthlens run"):
        RunFolder(other, mode="force")
    assert (other / "holiday.jpg").exists()


def test_resume_skips_done_stage_and_reruns_changed_one(tmp_path):
    run = RunFolder(tmp_path / "run")
    with run.stage("metrics/a", json_sha256({"k": 5})) as folder:
        write_json(folder / "m.json", {"v": 1})
    run.finish("complete")

    resumed = RunFolder(tmp_path / "run", mode="resume")
    assert resumed.is_done("metrics/a", json_sha256({"k": 5}))
    assert not resumed.is_done("metrics/a", json_sha256({"k": 3}))
    with resumed.stage("metrics/a", json_sha256({"k": 3})) as folder:
        # a changed fingerprint starts from an empty stage folder
        assert not (folder / "m.json").exists()
    # a fresh (non-resume) run never skips
    assert not RunFolder(tmp_path / "other").is_done("metrics/a", json_sha256({"k": 5}))


def test_redo_reruns_a_finished_stage_from_an_empty_folder(tmp_path):
    run = RunFolder(tmp_path / "run")
    for stage in ("generators/a", "generators/b"):
        with run.stage(stage, json_sha256(stage)) as folder:
            write_json(folder / "model.json", {"v": 1})
    run.finish("complete")
    before = (tmp_path / "run" / "manifest.json").read_text()

    # refused before anything is written: without --resume, or a stage the run lacks
    with pytest.raises(InputError, match="--resume"):
        RunFolder(tmp_path / "run", mode="new", redo=["generators/a"])
    with pytest.raises(InputError, match=r"no stage generators/c to redo.*generators/a"):
        RunFolder(tmp_path / "run", mode="resume", redo=["generators/c"])
    with pytest.raises(InputError, match="no stage"):
        RunFolder(tmp_path / "fresh", mode="resume", redo=["generators/a"])
    assert (tmp_path / "run" / "manifest.json").read_text() == before
    assert not (tmp_path / "fresh").exists()

    resumed = RunFolder(tmp_path / "run", mode="resume", redo=["generators/a"])
    assert not resumed.is_done("generators/a", json_sha256("generators/a"))
    assert resumed.is_done("generators/b", json_sha256("generators/b"))
    with resumed.stage("generators/a", json_sha256("generators/a")) as folder:
        assert not (folder / "model.json").exists()  # same fingerprint, still a fresh start
        write_json(folder / "model.json", {"v": 2})
    assert resumed.is_done("generators/a", json_sha256("generators/a"))  # once per run
    resumed.finish("complete")
    manifest = read_json(tmp_path / "run" / "manifest.json")
    assert manifest["runs"][-1]["redo"] == ["generators/a"]
    assert read_json(tmp_path / "run" / "generators" / "b" / "model.json") == {"v": 1}


def test_failed_stage_is_not_done_and_manifest_records_it(tmp_path):
    run = RunFolder(tmp_path / "run")
    key = json_sha256("x")
    with pytest.raises(StageError, match=r"stage utility/a failed \(.*utility/a\): "
                                         r"ZeroDivisionError: division by zero; .*--resume"
                       ) as caught, run.stage("utility/a", key):
        1 / 0  # noqa: B018
    assert isinstance(caught.value.__cause__, ZeroDivisionError)
    assert caught.value.stage == "utility/a"
    run.finish("failed")
    manifest = read_json(tmp_path / "run" / "manifest.json")
    assert manifest["status"] == "failed"
    entry = manifest["stages"]["utility/a"]
    assert entry["status"] == "failed" and entry["error"] == "ZeroDivisionError: division by zero"
    assert entry["output"] == "utility/a"
    assert not RunFolder(tmp_path / "run", mode="resume").is_done("utility/a", key)


def test_a_top_level_stage_names_its_file_and_bad_input_passes_unchanged(tmp_path):
    run = RunFolder(tmp_path / "run")
    out = run.path("results.json")
    with run.stage("results", json_sha256("r"), output=out, folder=False):
        out.write_text("{}")
    assert not (tmp_path / "run" / "results").exists()  # no stage folder for a top-level file
    assert run.manifest["stages"]["results"]["output"] == "results.json"
    with pytest.raises(StageError, match=r"stage results failed \(.*results\.json\)"), \
            run.failure("results", out):
        raise KeyError("x")
    assert run.manifest["stages"]["results"]["status"] == "failed"
    with pytest.raises(InputError), run.stage("analysis", json_sha256("a"), folder=False):
        raise InputError("somewhere", "bad")  # exit code 2, not a failed stage's 1
    assert run.manifest["stages"]["analysis"]["status"] == "failed"


def test_manifest_records_versions_seeds_and_hashes(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.record_inputs(**{"real.train": "ab" * 32})
    run.record_seeds(seed=7)
    run.finish("complete")
    manifest = read_json(tmp_path / "run" / "manifest.json")
    env = manifest["environment"]
    assert {"synthlens", "torch", "numpy", "python"} <= set(env)
    assert manifest["seeds"] == {"seed": 7}
    assert manifest["inputs"]["real.train"] == "ab" * 32
    assert manifest["created"] <= manifest["finished"]

