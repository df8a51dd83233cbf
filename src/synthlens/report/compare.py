"""Two runs side by side: one self-contained HTML page (``synthlens compare RUN_A RUN_B``).

Reads each run's ``results.json`` only. Shows what differs in the setup (dataset hashes,
versions), the findings of each run, and every (set, metric) value of both runs with the
difference, so that a change of generator, budget or metric code can be judged at a glance.
"""

from __future__ import annotations

import math
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from synthlens.analysis import table
from synthlens.analysis.categories import metric_category, metric_label
from synthlens.analysis.findings import fmt
from synthlens.errors import InputError
from synthlens.io import write_text
from synthlens.report.runfiles import RunFiles

COMPARE_SECTIONS = (("setup", "Setup"), ("findings", "Findings"), ("scores", "Scores"))


def _cell(results: dict[str, Any], s: str, m: str) -> tuple[str, float]:
    if s not in results["sets"]:
        return '<td class="na">no such set</td>', math.nan
    v = table.value(results, s, m)
    if not math.isfinite(v):
        return '<td class="na">–</td>', math.nan
    interval = table.ci(results, s, m)
    ci = f'<span class="ci">[{fmt(interval[0])}, {fmt(interval[1])}]</span>' if interval else ""
    return f"<td>{fmt(v)}{ci}</td>", v


def _scores(a: dict[str, Any], b: dict[str, Any]) -> str:
    sets = list(dict.fromkeys([*a["sets"], *b["sets"]]))
    metrics = list(dict.fromkeys([*table.metric_names(a), *table.metric_names(b)]))
    metrics.sort(key=table.metric_order)
    html = ""
    for cat in ("fidelity", "variety", "privacy", "other", "utility"):
        rows = []
        for m in (m for m in metrics if metric_category(m) == cat):
            try:
                sign = table.sign(a if m in table.metric_names(a) else b, m)
            except KeyError:
                continue
            arrow = "↑" if sign > 0 else "↓"
            for s in sets:
                cell_a, va = _cell(a, s, m)
                cell_b, vb = _cell(b, s, m)
                if not (math.isfinite(va) or math.isfinite(vb)):
                    continue
                diff = vb - va
                klass = ""
                if math.isfinite(diff) and diff != 0:
                    klass = ' class="better"' if sign * diff > 0 else ' class="worse"'
                rows.append(f"<tr><td>{escape(s)}</td><td>{escape(metric_label(m))} "
                            f'<span class="arrow">{arrow}</span></td>{cell_a}{cell_b}'
                            f"<td{klass}>{fmt(diff) if math.isfinite(diff) else '–'}</td></tr>")
        if rows:
            html += (f"<h3>{cat.capitalize()}</h3><div class=tablewrap><table><tr><th>set</th>"
                     "<th>metric</th><th>run A</th><th>run B</th><th>B − A</th></tr>"
                     + "".join(rows) + "</table></div>")
    return html or '<p class="absent">Neither run has metrics.</p>'


def _setup(ra: RunFiles, rb: RunFiles) -> str:
    rows = []
    a, b = ra.results, rb.results
    keys = [("run folder", lambda r, f: f.root.resolve().name),
            ("dataset", lambda r, f: (r.get("dataset") or {}).get("name")),
            ("dataset SHA-256", lambda r, f: (r.get("dataset") or {}).get("sha256")),
            ("schema", lambda r, f: r.get("schema_version")),
            ("synthlens", lambda r, f: r.get("synthlens_version")),
            ("sets", lambda r, f: ", ".join(r["sets"]))]
    for label, get in keys:
        va, vb = get(a, ra), get(b, rb)
        same = "" if va == vb else ' class="worse"'
        rows.append(f"<tr><td>{escape(label)}</td><td>{escape(str(va))}</td>"
                    f"<td{same}>{escape(str(vb))}</td></tr>")
    return ("<div class=tablewrap><table class=text><tr><th></th><th>run A</th><th>run B</th>"
            "</tr>" + "".join(rows) + "</table></div>")


def _findings(fa: list[dict[str, str]], fb: list[dict[str, str]]) -> str:
    def items(fs: list[dict[str, str]]) -> str:
        return "".join(f'<li class="{escape(f["level"])}">{escape(f["text"])}</li>' for f in fs)

    return (f'<div class="grid"><div><h3>Run A</h3><ul class="findings">{items(fa)}</ul></div>'
            f'<div><h3>Run B</h3><ul class="findings">{items(fb)}</ul></div></div>')


def difference_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (set, metric) present in any run: each run's value and CI, and each later
    run's difference from the first (``B − A``, ``C − A``, ...), for ``synthlens compare``."""
    sets = list(dict.fromkeys(s for r in runs for s in r["sets"]))
    metrics = list(dict.fromkeys(m for r in runs for m in table.metric_names(r)))
    metrics.sort(key=table.metric_order)
    rows: list[dict[str, Any]] = []
    for s in sets:
        for m in metrics:
            values = [table.value(r, s, m) if s in r["sets"] else math.nan for r in runs]
            if not any(math.isfinite(v) for v in values):
                continue
            cis = [table.ci(r, s, m) if s in r["sets"] else None for r in runs]
            rows.append({"set": s, "metric": m, "values": values, "cis": cis,
                         "differences": [v - values[0] for v in values[1:]]})
    return rows


def difference_text(rows: list[dict[str, Any]], labels: list[str]) -> str:
    """The rows of :func:`difference_rows` as an aligned plain-text table (one line each)."""
    def cell(v: float, ci: tuple[float, float] | None) -> str:
        if not math.isfinite(v):
            return "–"
        return fmt(v) + (f" [{fmt(ci[0])}, {fmt(ci[1])}]" if ci else "")

    header = ["set", "metric", *labels,
              *(f"{label} − {labels[0]}" for label in labels[1:])]
    body = [[r["set"], r["metric"], *(cell(v, c) for v, c in zip(r["values"], r["cis"],
                                                                 strict=True)),
             *(fmt(d) if math.isfinite(d) else "–" for d in r["differences"])] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=True)]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip()
                     for line in [header, *body]) + "\n"


def compare_runs(run_a: str | Path, run_b: str | Path, out: str | Path) -> Path:
    """Write a self-contained HTML comparison of two run folders to ``out``; return its path."""
    ra, rb = RunFiles.open(run_a), RunFiles.open(run_b)
    for run in (ra, rb):
        source = str(run.root / "results.json")
        table.check_results(run.results, source)
        if not isinstance(run.results.get("analysis"), dict):  # stored by the run, not redone
            raise InputError(source, "holds no 'analysis' section (the run's analysis stage "
                                     "has not finished); continue the run with --resume")
    aa, ab = ra.results["analysis"], rb.results["analysis"]
    body = {"setup": _setup(ra, rb), "findings": _findings(aa["findings"], ab["findings"]),
            "scores": _scores(ra.results, rb.results)}
    css = resources.files("synthlens.report").joinpath("report.css").read_text("utf-8")
    css += "td.better { color: #1a9850; font-weight: 600; } td.worse { color: #c0392b; }"
    title = f"synthlens comparison — {ra.root.resolve().name} vs {rb.root.resolve().name}"
    nav = "".join(f'<a href="#{sid}">{escape(name)}</a>' for sid, name in COMPARE_SECTIONS)
    sections = "".join(f'<section id="{sid}"><h2>{escape(name)}</h2>{body[sid]}</section>'
                       for sid, name in COMPARE_SECTIONS)
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{css}</style></head><body>"
            f'<header class="top"><h1>{escape(title)}</h1><p>Green: run B better; red: run B '
            "worse (by each metric's direction); differences within the CIs may be noise."
            f"</p></header><nav>{nav}</nav><main>{sections}</main></body></html>\n")
    out = Path(out)
    if out.is_dir():
        out = out / "compare.html"
    write_text(out, page)
    return out
