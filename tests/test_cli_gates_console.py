"""Gates for pipelines, the closing console lines and `synthlens compare`, on the real smoke run.

The gate and console tests resume a copy of the shared smoke run with new gates: every
stage but results, analysis and report is reused, so they cost seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from synthlens.cli import main

SMOKE = ["demo", "--budget", "smoke", "--device", "cpu"]


def test_a_malformed_gate_exits_2_before_anything_is_written(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    code = main([*SMOKE, "--out", str(out), "--fail-if", "memorisation_rate >> 0.01"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("synthlens: error: --fail-if: cannot read gate")
    assert not out.exists()
    code = main([*SMOKE, "--out", str(out), "--fail-if", "memorisaton_rate > 0.01"])
    assert code == 2 and "unknown metric 'memorisaton_rate'" in capsys.readouterr().err
    assert not out.exists()


def test_a_failing_gate_exits_3_with_its_line_and_results_record_the_gates(
        smoke_copy: Path, capsys) -> None:
    code = main([*SMOKE, "--out", str(smoke_copy), "--resume", "--quiet",
                 "--fail-if", "fid >= 0", "--fail-if", "fid < 0"])
    out = capsys.readouterr().out.splitlines()
    assert code == 3
    results = json.loads((smoke_copy / "results.json").read_text())
    gates = results["gates"]
    candidates = {n for n, e in results["sets"].items() if e["kind"] in ("generated", "user")}
    assert {(g["expression"], g["set"]) for g in gates} == {
        (e, s) for e in ("fid >= 0", "fid < 0") for s in candidates}
    assert all(g["failed"] for g in gates if g["expression"] == "fid >= 0")
    assert not any(g["failed"] for g in gates if g["expression"] == "fid < 0")
    failed_lines = [line for line in out if "gate failed" in line]
    assert len(failed_lines) == len(candidates)
    cvae = next(line for line in failed_lines if "set cvae:" in line)
    value = results["sets"]["cvae"]["metrics"]["fid"]["value"]
    assert cvae == (f"synthlens: gate failed: fid >= 0: set cvae: fid = {value:.4g}, "
                    "threshold 0")
    assert not any("fid < 0" in line for line in failed_lines)


def test_passing_gates_exit_0_and_the_console_ends_with_report_and_findings(
        smoke_copy: Path, capsys) -> None:
    code = main([*SMOKE, "--out", str(smoke_copy), "--resume", "--quiet",
                 "--fail-if", "fid < 0", "--fail-if", "copy_rate > 1"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    results = json.loads((smoke_copy / "results.json").read_text())
    headline = [f["text"] for f in results["analysis"]["findings"]
                if f["level"] in ("key", "warning")]
    assert headline, "the smoke run has headline findings"
    assert out[-len(headline) - 2] == f"synthlens: report: {smoke_copy / 'report.html'}"
    assert out[-len(headline) - 1:-1] == [f"synthlens: - {' '.join(t.split())}"
                                          for t in headline]
    assert out[-1] == "synthlens: 2 gates passed"


def test_stderr_in_a_file_gets_lines_not_carriage_returns(smoke_copy: Path,
                                                          tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    with log.open("wb") as err:
        done = subprocess.run([sys.executable, "-m", "synthlens", *SMOKE, "--out",
                               str(smoke_copy), "--resume"], stderr=err,
                              stdout=subprocess.PIPE, timeout=600, check=False)
    assert done.returncode == 0, log.read_text()
    text = log.read_bytes()
    assert b"\r" not in text
    assert done.stdout.decode().splitlines()[0] == \
        f"synthlens: report: {smoke_copy / 'report.html'}"


def test_compare_prints_and_writes_the_difference_table(smoke_run: Path, smoke_copy: Path,
                                                        tmp_path: Path, capsys) -> None:
    results = json.loads((smoke_copy / "results.json").read_text())
    results["sets"]["cvae"]["metrics"]["fid"]["value"] += 2.0
    (smoke_copy / "results.json").write_text(json.dumps(results))
    code = main(["compare", str(smoke_run), str(smoke_copy), "--out", str(tmp_path)])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0] == f"A: {smoke_run}" and out[1] == f"B: {smoke_copy}"
    assert out[2].split() == ["set", "metric", "A", "B", "B", "−", "A"]
    fid = next(line for line in out if line.split()[:2] == ["cvae", "fid"])
    assert fid.split()[-1] == "2"
    csv_text = (tmp_path / "compare.csv").read_text().splitlines()
    assert csv_text[0].startswith("set,metric,A_value,A_ci_low,A_ci_high,B_value")
    assert (tmp_path / "compare.html").is_file()
    with pytest.raises(SystemExit):
        main(["compare"])
