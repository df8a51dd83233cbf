"""What every run holds, read from the shared smoke run made by the real pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import synthlens
from synthlens.errors import InputError
from synthlens.gates import check_gates, parse_gate
from synthlens.io import read_npz
from synthlens.report.compare import difference_rows, difference_text


def _results(run: Path) -> dict:
    return json.loads((run / "results.json").read_text())


def test_real_duplicate_control_is_in_every_run(smoke_run: Path) -> None:
    results = _results(smoke_run)
    dup = results["sets"]["real-duplicate"]
    assert dup["kind"] == "reference" and dup["generator"] == "real-duplicate"
    # count-matched and class-balanced like the generated sets
    assert dup["class_counts"] == results["sets"]["cvae"]["class_counts"]
    assert "utility.augment.gain_auroc" in dup["metrics"]
    # every image is a training image (drawn with replacement)
    train = read_npz(smoke_run / "data" / "train.npz")["images"]
    images = read_npz(smoke_run / dup["files"]["samples"])["images"]
    rows = {img.tobytes() for img in train}
    assert all(img.tobytes() in rows for img in images)
    assert len({img.tobytes() for img in images}) < len(images) or len(images) < 30
    # a reference: not correlated, but named in the findings and the report
    assert "real-duplicate" not in results["analysis"]["sets"]
    ids = [f["id"] for f in results["analysis"]["findings"]]
    assert "duplicate_control" in ids
    assert "real-duplicate" in (smoke_run / "report.html").read_text(encoding="utf-8")


def test_open_run_reads_the_same_numbers(smoke_run: Path) -> None:
    results = _results(smoke_run)
    run = synthlens.open_run(smoke_run)
    assert set(run.sets) == set(results["sets"])
    fid = run.metric("cvae", "fid")
    assert fid.value == results["sets"]["cvae"]["metrics"]["fid"]["value"]
    assert fid.direction == "lower"
    assert run.findings == [f["text"] for f in results["analysis"]["findings"]]
    rows = run.rows()
    assert {(r["set"], r["metric"]) for r in rows if r["kind"] != "floor"} == {
        (s, m) for s, e in results["sets"].items() for m in e["metrics"]}
    with pytest.raises(KeyError, match="has no metric"):
        run.metric("cvae", "fidd")
    with pytest.raises(InputError):
        synthlens.open_run(smoke_run / "data")


def test_gates_on_a_real_run(smoke_run: Path) -> None:
    results = _results(smoke_run)
    candidates = [n for n, e in results["sets"].items() if e["kind"] in ("generated", "user")]
    never = parse_gate("fid < 0")
    always = parse_gate("fid >= 0")
    floor = parse_gate("copy_rate > floor")
    outcomes = check_gates([never, always, floor], results)
    by = {(o.gate.expression, o.set_name): o for o in outcomes}
    assert {s for (e, s) in by if e == "fid < 0"} == set(candidates)
    assert not any(by[("fid < 0", s)].failed for s in candidates)
    assert all(by[("fid >= 0", s)].failed for s in candidates)
    floor_value = results["floors"]["copy_rate"]["value"]
    for s in candidates:
        o = by[("copy_rate > floor", s)]
        assert o.threshold == floor_value
        assert o.failed == (results["sets"][s]["metrics"]["copy_rate"]["value"] > floor_value)
    line = by[("fid >= 0", "cvae")].line()
    assert line.startswith("gate failed: fid >= 0: set cvae: fid = ") and "threshold 0" in line
    json.dumps([o.to_json() for o in outcomes], allow_nan=False)


def test_compare_difference_table_of_two_runs(smoke_run: Path) -> None:
    a = _results(smoke_run)
    b = json.loads(json.dumps(a))
    b["sets"]["cvae"]["metrics"]["fid"]["value"] += 1.5
    rows = difference_rows([a, b])
    fid = next(r for r in rows if r["set"] == "cvae" and r["metric"] == "fid")
    assert fid["differences"] == [pytest.approx(1.5)]
    others = [r for r in rows if not (r["set"] == "cvae" and r["metric"] == "fid")]
    assert all(np.allclose(r["differences"], 0) or not np.isfinite(r["differences"]).all()
               for r in others)
    text = difference_text(rows, ["A", "B"])
    assert text.splitlines()[0].split() == ["set", "metric", "A", "B", "B", "−", "A"]
