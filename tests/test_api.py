"""The Python API: ``synthlens.evaluate`` on arrays is ``synthlens evaluate`` on the same
data as files, bad arrays fail at the door like bad files, ``synthlens.run`` takes a dict
config, and the README's "From Python" section runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import synthlens
from synthlens.cli import main
from synthlens.data import SPLITS, make_demo
from synthlens.errors import InputError, SettingError
from synthlens.pipeline import load_inputs

ROOT = Path(__file__).resolve().parents[1]
FAST = {"extractors": ["pixels"], "metrics": ["fid", "precision", "recall", "copy_rate"],
        "protocols": [], "budget": "smoke", "device": "cpu", "progress": False}


@pytest.fixture(scope="module")
def arrays() -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """A small real dataset in the .npz layout (a subset of the demo phantoms, in memory)
    and a synthetic set: float images in [0, 1] and labels."""
    demo, rng = make_demo(28), np.random.default_rng(0)
    real: dict[str, np.ndarray] = {"class_names": np.array(demo.class_names)}
    for split, n in zip(SPLITS, (400, 100, 100), strict=True):
        part = getattr(demo, split)
        index = np.sort(rng.choice(len(part), n, replace=False))
        real[f"{split}_images"], real[f"{split}_labels"] = part.images[index], part.labels[index]
    noisy = real["train_images"][:120] / 255 + rng.normal(0, 0.05, (120, 28, 28))
    return real, np.clip(noisy, 0, 1), real["train_labels"][:120]


def _values(run: Path) -> dict[str, Any]:
    """Every metric value and CI of a run's results.json, by (set, metric), floors too."""
    res = synthlens.open_run(run)
    return {(row["set"], row["metric"]): (row["value"], row["ci_low"], row["ci_high"])
            for row in res.rows()}


def test_evaluate_on_arrays_equals_the_cli_on_the_same_files(arrays, tmp_path: Path) -> None:
    real, images, labels = arrays
    res = synthlens.evaluate(real, {"mine": (images, labels)}, out=tmp_path / "api", **FAST)
    assert isinstance(res, synthlens.Results) and res.kind("mine") == "user"

    np.savez(tmp_path / "real.npz", **real)
    np.savez(tmp_path / "mine.npz", images=np.round(images * 255).astype(np.uint8),
             labels=labels)
    code = main(["evaluate", "--real", str(tmp_path / "real.npz"), "--synthetic",
                 f"mine={tmp_path / 'mine.npz'}", "--out", str(tmp_path / "cli"),
                 "--extractors", *FAST["extractors"], "--metrics", *FAST["metrics"],
                 "--protocols", "--budget", "smoke", "--device", "cpu", "--quiet"])
    assert code == 0
    api, cli = _values(tmp_path / "api"), _values(tmp_path / "cli")
    assert len(api) >= 16 and ("mine", "copy_rate") in api and ("real-vs-real", "fid") in api
    assert api == cli

    # the run folder keeps the arrays and config.yaml names the copies: the run can be
    # repeated from its folder alone, with the same inputs
    saved = yaml.safe_load((tmp_path / "api" / "config.yaml").read_text(encoding="utf-8"))
    again = load_inputs(saved)
    assert again.real.hashes() == res.data["dataset"]["sha256"]
    assert again.user_sets["mine"].sha256() == res.data["sets"]["mine"]["sha256"]


def _bad_sets(real: dict[str, np.ndarray]) -> list[tuple[object, str]]:
    images, labels = real["train_images"][:8], real["train_labels"][:8]
    return [
        ((images * 1.0, labels), "float images must lie in [0, 1]"),
        ((images.astype(np.int32), labels), "accepted: uint8 (0-255) or float in [0, 1]"),
        ((images[:, :, 0], labels), "expected (N, H, W) or (N, H, W, 3)"),
        ((images, labels[:5]), "8 images but 5 labels"),
        ((images, labels + 5), "but the real data has only 2 classes"),
        ((images[:, :16, :16], labels), "are 16x16 grey but the real images are 28x28"),
        ({"images": images}, "missing key labels"),
        ({"images": images, "labels": labels, "class_names": ["normal", "cat"]},
         "unknown class name(s) ['cat']"),
        (42, "accepted: a path (.npz or class folders), an (images, labels) pair"),
    ]


def test_bad_arrays_raise_input_error_naming_the_set_before_any_folder(arrays,
                                                                        tmp_path: Path) -> None:
    real = arrays[0]
    out = tmp_path / "run"
    for value, expected in _bad_sets(real):
        with pytest.raises(InputError) as caught:
            synthlens.evaluate(real, {"bad": value}, out=out, **FAST)
        assert caught.value.source.startswith("synthetic['bad']"), caught.value
        assert expected in caught.value.problem, caught.value
        assert not out.exists()
    with pytest.raises(InputError, match=r"real: missing key test_labels"):
        synthlens.evaluate({k: v for k, v in real.items() if k != "test_labels"},
                           {"s": (real["train_images"], real["train_labels"])}, out=out, **FAST)
    with pytest.raises(InputError, match=r"real:train_images: float images must lie"):
        synthlens.evaluate({**real, "train_images": real["train_images"] * 2.0},
                           {"s": (real["train_images"], real["train_labels"])}, out=out, **FAST)
    # A bad option is named as the keyword argument it came from, not as a CLI option.
    pair = {"s": (real["train_images"], real["train_labels"])}
    for options, keyword in (({"metrics": ["no_such_metric"]}, "metrics="),
                             ({"non_members": "train"}, "non_members=")):
        with pytest.raises(InputError) as caught:
            synthlens.evaluate(real, pair, out=out, **{**FAST, **options})
        assert caught.value.source == keyword and "--" not in str(caught.value), caught.value
    assert not out.exists()


def test_arrays_and_files_meet_the_same_checks(arrays, tmp_path: Path) -> None:
    """One validator: the same bad set, given as arrays or as an .npz, fails the same way."""
    real = arrays[0]
    images, labels = real["train_images"][:8], real["train_labels"][:8]
    for i, (value, _) in enumerate(_bad_sets(real)[3:8]):
        as_mapping = value if isinstance(value, dict) else {"images": value[0],
                                                            "labels": value[1]}
        np.savez(tmp_path / f"bad{i}.npz", **as_mapping)
        problems = []
        for given in (as_mapping, tmp_path / f"bad{i}.npz"):
            with pytest.raises(InputError) as caught:
                synthlens.evaluate(real, {"bad": given}, out=tmp_path / "run", **FAST)
            problems.append(caught.value.problem)
        assert problems[0] == problems[1].replace("the file has", "the arrays given are")
    assert images.dtype == np.uint8 and labels.shape == (8,)


def test_run_takes_a_dict_config_checked_as_the_cli_checks_a_file(arrays,
                                                                  tmp_path: Path) -> None:
    real = arrays[0]
    np.savez(tmp_path / "real.npz", **real)
    config = {"dataset": {"source": str(tmp_path / "real.npz")}, "generators": [],
              "references": ["real-holdout", "noise"],
              "features": {"extractors": ["pixels"]},
              "metrics": {"names": ["fid", "precision"]}, "utility": {"protocols": []}}
    res = synthlens.run(config, out=tmp_path / "run", budget="smoke", device="cpu",
                        progress=False)
    assert res is not None and set(res.sets) == {"real-holdout", "noise", "real-only"}
    precision = res.metric("noise", "precision")
    assert precision.direction == "higher" and precision.ci is not None
    assert precision.value < res.metric("real-holdout", "precision").value

    with pytest.raises(SettingError, match=r"config: generatrs: unknown key"):
        synthlens.run({**config, "generatrs": []}, out=tmp_path / "bad")
    with pytest.raises(InputError, match=r"--fail-if"):
        synthlens.run(config, out=tmp_path / "bad", fail_if=("fid >> 3",))
    assert not (tmp_path / "bad").exists()


def _python_blocks(section: str) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"## {section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)


def test_the_readme_from_python_section_runs(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = _python_blocks("From Python")
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    namespace: dict[str, Any] = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    res, again = namespace["res"], namespace["again"]
    assert (tmp_path / "elsewhere" / "report.html").is_file()
    assert again.data == res.data and res.findings
    assert res.metric("mine", "copy_rate").direction == "lower"
    assert namespace["study"].root == Path("runs/references")


def test_import_synthlens_stays_light() -> None:
    code = ("import sys, synthlens\n"
            "assert callable(synthlens.evaluate) and callable(synthlens.run)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'pandas') "
            "or m == 'synthlens.pipeline'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert out.stdout.strip() == "[]", out.stdout
