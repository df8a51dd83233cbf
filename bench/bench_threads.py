"""The demo under the old and the new thread policy, idle and with one core held, in one run.

    python bench/bench_threads.py --out runs/bench-threads            # the default demo, 4 runs
    python bench/bench_threads.py --out runs/bench-threads --budget smoke   # a quick look

Policies:

* ``old``: one unit at a time, torch's own thread count (all cores: ``--jobs 1 --threads
  N`` with N the machine's cores), as synthlens ran before the thread policy;
* ``new``: the default, one thread per unit and as many units side by side as there are
  cores (``--threads 1 --jobs auto``).

Load: ``idle``, or ``busy``: a competing process spinning on one core for the whole run
(a pure-Python loop, as a laptop's other work would). The runs are interleaved (old idle,
new idle, old busy, new busy) so that a drift of the machine hits both policies. For each
run: wall and CPU seconds (children included) and whether its ``results.json`` values equal
the idle run of the same policy (a policy's numbers must not depend on load). Prints the
markdown table for docs/benchmarks.md and writes ``OUT/bench_threads.json``.

Run it on an otherwise idle machine: nothing else may hold a core while it measures.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

POLICIES = {"old": lambda cores: ["--jobs", "1", "--threads", str(cores)],
            "new": lambda cores: ["--jobs", "auto", "--threads", "1"]}


def _spin(stop: Any) -> None:
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def _values(results: dict[str, Any]) -> dict[str, Any]:
    """Every metric value of every set and floor (what must not depend on the policy's load)."""
    out = {}
    for name, entry in results["sets"].items():
        for metric, value in entry["metrics"].items():
            out[f"{name}/{metric}"] = value.get("value")
    for metric, value in results["floors"].items():
        out[f"floor/{metric}"] = value.get("value")
    return out


def run_demo(out: Path, budget: str, policy: str, cores: int, busy: bool) -> dict[str, Any]:
    folder = out / f"{policy}-{'busy' if busy else 'idle'}"
    shutil.rmtree(folder, ignore_errors=True)
    stop = multiprocessing.Event()
    spinner = multiprocessing.Process(target=_spin, args=(stop,), daemon=True) if busy else None
    if spinner is not None:
        spinner.start()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        subprocess.run([sys.executable, "-m", "synthlens", "demo", "--budget", budget,
                        "--device", "cpu", "--out", str(folder), "--quiet",
                        *POLICIES[policy](cores)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        wall = time.perf_counter() - start
        # Read the children's CPU before the spinner is reaped, so its time is not counted.
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if spinner is not None:
            stop.set()
            spinner.join()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    return {"policy": policy, "load": "busy" if busy else "idle", "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1), "values": _values(results)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget", default="demo")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    cores = len(os.sched_getaffinity(0))
    runs = [run_demo(args.out, args.budget, policy, cores, busy)
            for busy in (False, True) for policy in ("old", "new")]
    idle = {r["policy"]: r for r in runs if r["load"] == "idle"}
    rows = []
    for r in runs:
        base = idle[r["policy"]]
        same = r["values"] == base["values"]
        rows.append({**{k: v for k, v in r.items() if k != "values"},
                     "vs_idle": round(r["wall_s"] / base["wall_s"], 2),
                     "vs_old_idle": round(r["wall_s"] / idle["old"]["wall_s"], 2),
                     "values_equal_idle": same})
    report = {"machine": {"platform": platform.platform(), "cores": cores,
                          "python": platform.python_version()},
              "budget": args.budget, "date": time.strftime("%Y-%m-%d"), "runs": rows,
              "policies_agree": idle["old"]["values"] == idle["new"]["values"]}
    (args.out / "bench_threads.json").write_text(json.dumps(report, indent=2) + "\n",
                                                 encoding="utf-8")
    print("| policy | load | wall (s) | CPU (s) | × its idle | × old idle | values = its idle |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['policy']} | {r['load']} | {r['wall_s']} | {r['cpu_s']} | {r['vs_idle']} "
              f"| {r['vs_old_idle']} | {'yes' if r['values_equal_idle'] else 'no'} |")
    print(f"old and new idle give the same values: {report['policies_agree']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
