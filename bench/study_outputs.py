"""Copy a finished study run's shareable outputs into the docs, and list its numbers.

    python bench/study_outputs.py runs/pneumonia docs/study/pneumoniamnist
    python bench/study_outputs.py runs/pneumonia --numbers      # what docs/study.md can cite

The copy holds ``results.json``, ``results.csv``, ``report.html`` and the report's key
figures (PNG); never model weights, features or images as arrays. ``--numbers`` prints
the values docs/study.md cites, each with the JSON path that tests/test_study_doc.py
resolves (``#/analysis/...``), so the document is written from the file, not by hand.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

#: The report's figures that go with the committed study (the rest are per-set grids).
KEY_FIGURES = ("plane.png", "utility.png", "audit_categories.png", "radar.png",
               "per_class.png", "training_curves.png", "samples_real-train.png")
LIMIT_BYTES = 10 * 2**20


def copy_outputs(run: Path, target: Path) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    figures = run / "report" / "figures"
    copied = []
    for source in [run / "results.json", run / "results.csv", run / "report.html",
                   *(figures / name for name in KEY_FIGURES)]:
        if not source.exists():
            raise SystemExit(f"study_outputs: {source} is missing; is the run finished?")
        copied.append(Path(shutil.copy2(source, target / source.name)))
    total = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    if total > LIMIT_BYTES:
        raise SystemExit(f"study_outputs: {target} holds {total / 2**20:.1f} MB, over 10 MB")
    return copied


def numbers(results: dict[str, Any]) -> list[tuple[str, Any]]:
    """(JSON path, value) of what the study document cites."""
    a = results["analysis"]
    out: list[tuple[str, Any]] = []
    trade = a.get("tradeoff") or {}
    for key, value in (trade.get("composite") or {}).items():
        if isinstance(value, int | float | list):
            out.append((f"/analysis/tradeoff/composite/{key}", value))
    for c in a["correlations"]:
        sel = f"[metric={c['metric']},utility={c['utility']}]"
        for key in ("spearman", "spearman_ci", "spearman_p", "spearman_q", "n"):
            out.append((f"/analysis/correlations/{sel}/{key}", c.get(key)))
    for name, gain in a["utility_gains"].items():
        for key in ("gain", "ci", "p_value"):
            out.append((f"/analysis/utility_gains/{name}/{key}", gain.get(key)))
    for entry in a.get("feature_space_agreement") or []:
        out.append(("/analysis/feature_space_agreement", entry))
    for metric, entry in sorted(results["floors"].items()):
        out.append((f"/floors/{metric}/value", entry.get("value")))
    for name, entry in results["sets"].items():
        for metric, value in sorted(entry["metrics"].items()):
            if metric.startswith("utility.") and not metric.split(".")[-1].startswith("gain"):
                continue
            out.append((f"/sets/{name}/metrics/{metric}/value", value.get("value")))
            if value.get("ci") is not None:
                out.append((f"/sets/{name}/metrics/{metric}/ci", value["ci"]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("target", type=Path, nargs="?")
    parser.add_argument("--numbers", action="store_true")
    args = parser.parse_args(argv)
    if args.target is not None:
        for path in copy_outputs(args.run, args.target):
            print(path)
    if args.numbers:
        results = json.loads((args.run / "results.json").read_text(encoding="utf-8"))
        for path, value in numbers(results):
            print(f"{path}\t{json.dumps(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
