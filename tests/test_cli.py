"""The command line: help, exit codes, one-line errors that name the file, nothing written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synthlens.cli import build_parser, main


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _good_arrays(n=40, size=8, rng=None):
    rng = rng or np.random.default_rng(0)
    out = {}
    for split in ("train", "val", "test"):
        out[f"{split}_images"] = rng.integers(0, 255, (n, size, size), dtype=np.uint8)
        out[f"{split}_labels"] = (np.arange(n) % 2).astype(np.uint8)[:, None]
    return out


def test_help_mentions_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for command in ("demo", "run", "evaluate", "report"):
        assert command in text
    for command in ("demo", "run", "evaluate", "report"):
        assert build_parser().parse_known_args([command, "x"] if command != "evaluate" else
                                               [command, "--real", "a", "--synthetic", "b=c"])


def _bad_inputs(tmp_path):
    good = _good_arrays()
    cases = {}
    missing = dict(good)
    del missing["val_labels"]
    cases["missing key"] = (_npz(tmp_path / "missing.npz", **missing), "val_labels")
    mismatch = dict(good)
    mismatch["train_labels"] = mismatch["train_labels"][:-3]
    cases["count mismatch"] = (_npz(tmp_path / "mismatch.npz", **mismatch), "labels")
    floats = dict(good)
    floats["train_images"] = floats["train_images"].astype(np.float32)
    cases["dtype"] = (_npz(tmp_path / "float.npz", **floats), "float32")
    nan = dict(good)
    nan["test_images"] = nan["test_images"].astype(np.float32)
    nan["test_images"][0, 0, 0] = np.nan
    cases["nan"] = (_npz(tmp_path / "nan.npz", **nan), "NaN")
    single = dict(good)
    single["val_labels"] = np.zeros_like(single["val_labels"])
    cases["single class"] = (_npz(tmp_path / "single.npz", **single), "single class")
    pickled = dict(good)
    pickled["train_images"] = np.array([np.zeros((8, 8)), np.zeros((9, 9))], dtype=object)
    cases["pickle"] = (_npz(tmp_path / "pickled.npz", **pickled), "pickle")
    not_npz = tmp_path / "notes.npz"
    not_npz.write_text("not a zip file")
    cases["not npz"] = (not_npz, "notes.npz")
    return cases


def test_bad_real_inputs_exit_2_with_one_line_and_no_run_folder(tmp_path, capsys):
    synthetic = _npz(tmp_path / "syn.npz", images=np.zeros((4, 8, 8), np.uint8),
                     labels=np.array([0, 1, 0, 1]))
    for problem, (path, expected) in _bad_inputs(tmp_path).items():
        out = tmp_path / f"run-{path.stem}"
        code = main(["evaluate", "--real", str(path), "--synthetic", f"s={synthetic}",
                     "--out", str(out), "--quiet", "--budget", "smoke"])
        err = capsys.readouterr().err.strip()
        assert code == 2, problem
        assert len(err.splitlines()) == 1, (problem, err)
        assert path.name in err and expected.lower() in err.lower(), (problem, err)
        assert not out.exists(), problem


def test_bad_synthetic_set_and_bad_pair(tmp_path, capsys):
    real = _npz(tmp_path / "real.npz", **_good_arrays())
    wrong_size = _npz(tmp_path / "big.npz", images=np.zeros((4, 16, 16), np.uint8),
                      labels=np.array([0, 1, 0, 1]))
    code = main(["evaluate", "--real", str(real), "--synthetic", f"s={wrong_size}",
                 "--out", str(tmp_path / "r1"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "big.npz" in err and not (tmp_path / "r1").exists()
    code = main(["evaluate", "--real", str(real), "--synthetic", "no-equals-sign",
                 "--out", str(tmp_path / "r2"), "--quiet"])
    assert code == 2 and "NAME=PATH" in capsys.readouterr().err


def test_report_of_a_folder_without_results(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "results.json" in capsys.readouterr().err


def test_run_with_missing_config(tmp_path, capsys):
    assert main(["run", str(tmp_path / "absent.yaml")]) == 2
    assert "absent.yaml: config file not found" in capsys.readouterr().err


def test_bad_image_folder_exits_2_naming_the_file(tmp_path, capsys):
    from PIL import Image

    root = tmp_path / "xrays"
    for label in ("normal", "pneumonia"):
        (root / label).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(root / label / f"{i}.png")
    (root / "pneumonia" / "notes.txt").write_text("not an image")
    out = tmp_path / "run"
    code = main(["evaluate", "--real", str(root), "--synthetic", f"s={root}",
                 "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "notes.txt" in err and not out.exists()


def test_evaluate_options_are_checked_and_named(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """``evaluate``'s --metrics, --extractors and --protocols go through the same checks
    and the message names the option."""
    base = ["evaluate", "--real", "demo", "--synthetic", f"s={tmp_path / 'none.npz'}",
            "--budget", "smoke", "--quiet"]
    cases = [(["--metrics", "fid", "precison"], "--metrics: unknown metric 'precison'"),
             (["--extractors", "inceptoin"], "--extractors: unknown extractor 'inceptoin'"),
             (["--protocols", "augmnt"], "--protocols: unknown protocol 'augmnt'")]
    for extra, expected in cases:
        out = tmp_path / "out"
        code = main([*base, *extra, "--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1, err
        assert err.startswith(f"synthlens: error: {expected}; accepted: "), err
        assert not out.exists()
    code = main(["evaluate", "--real", "demo", "--synthetic", f"noise={tmp_path / 'x.npz'}",
                 "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 2
    assert "--synthetic: 'noise' is a reserved set name" in capsys.readouterr().err


def test_protocols_none_skips_utility(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``--protocols none`` (as the help says) means no utility stage: protocols []."""
    from synthlens import pipeline

    seen = {}

    def fake_run(config: object, out: object, **_: object) -> Path:
        seen["config"] = config
        return tmp_path

    monkeypatch.setattr(pipeline, "run", fake_run)
    assert main(["evaluate", "--real", "demo", "--synthetic", "s=x.npz", "--protocols",
                 "none", "--out", str(tmp_path / "o"), "--quiet"]) == 0
    assert seen["config"].utility.protocols == ()  # type: ignore[attr-defined]
    assert seen["config"]["utility"]["protocols"] == []  # type: ignore[index]
