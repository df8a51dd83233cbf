"""synthlens metrics against their peers, on the same random features, in one process.

    python bench/metrics_vs_peers.py                      # N=10,000, d=2048, 6 sets
    python bench/metrics_vs_peers.py --n 2000 --d 256     # a quick look
    python bench/metrics_vs_peers.py --n 50000 --memory-only   # the large-N memory check

Sections:
  A. PRDC: ``prdc.compute_prdc`` vs synthlens precision/recall/density/coverage (time, peak
     memory above the features, value differences; any difference is traced to the pairs
     where float32 rounding in ``prdc`` turns a distance into a tie with the radius).
  B. FID: the usual ``scipy.linalg.sqrtm`` formula vs synthlens (time, value difference).
  C. A run with S synthetic sets: every feature-space metric of synthlens (FID, KID, PRDC,
     α/β/authenticity, F^p, Vendi, copy sets, DCR, memorisation, MIA, with bootstrap CIs)
     vs ``prdc`` alone on the same sets.
  D. (--memory-only) synthlens PRDC at large N: time and peak memory above the features.

Peak memory is the largest resident set size sampled every 5 ms during a call, minus the
resident size just before it (torch allocations are invisible to tracemalloc). Timings on a
shared machine vary with its load; the ratios are measured back to back in one process.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import platform
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE


class PeakMemory:
    """Peak resident memory above the level at entry, sampled by a background thread."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak = 0
        self.base = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        self.base = rss_bytes()
        self.peak = self.base
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def above_mb(self) -> float:
        return (self.peak - self.base) / 2**20


CPU_SECONDS: list[float] = []


def measure(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, wall seconds, peak MB above the start); CPU seconds go to ``CPU_SECONDS``.

    On a machine shared with other work, wall time depends on how many threads each
    contender runs (``prdc`` asks scikit-learn for 8); the CPU time this process used is
    reported beside it.
    """
    with PeakMemory() as mem:
        cpu = time.process_time()
        start = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - start
        CPU_SECONDS.append(time.process_time() - cpu)
    return result, seconds, mem.above_mb


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """prdc prints sample sizes; metrics warn about small subsets. Keep the output readable."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def make_sets(n: int, d: int, n_sets: int, n_holdout: int, seed: int
              ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    real = rng.standard_normal((n, d), dtype=np.float32)
    holdout = rng.standard_normal((n_holdout, d), dtype=np.float32)
    sets = []
    for i in range(n_sets):
        # from faithful (same distribution) to poor: a wider spread and a growing shift
        # (at d=2048, precision falls from about 0.5 to 0.13 over six sets)
        scale = np.float32(1.0 + 0.004 * i)
        shift = np.float32(0.01 * i)
        sets.append(rng.standard_normal((n, d), dtype=np.float32) * scale + shift)
    return real, holdout, sets


def scipy_fid(real: np.ndarray, fake: np.ndarray) -> float:
    """The pytorch-fid formula: float64 moments, ``scipy.linalg.sqrtm`` of the product."""
    import scipy.linalg

    mu1, mu2 = real.mean(0, dtype=np.float64), fake.mean(0, dtype=np.float64)
    s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    covmean, _ = scipy.linalg.sqrtm(s1 @ s2, disp=False)
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def prdc_float32_ties(real: np.ndarray, fake: np.ndarray, k: int, block: int = 1000
                      ) -> dict[str, int]:
    """Where ``prdc`` and exact arithmetic disagree: count entries whose float32 distance
    equals the float32 radius (``prdc``'s ``<`` says outside) while the exact float64
    distance is within the exact radius (synthlens' ``<=`` says inside), and the reverse."""
    from prdc.prdc import compute_pairwise_distance, get_kth_value

    from synthlens.metrics.knn import NeighbourEngine

    exact_real = NeighbourEngine(precision="float64").knn(real, None, k)
    radius64 = np.sqrt(exact_real.kth())
    radius32 = np.concatenate([get_kth_value(compute_pairwise_distance(real[s:s + block], real),
                                             k + 1) for s in range(0, len(real), block)])
    counts = {"float32_tie_counted_by_synthlens": 0, "other_disagreements": 0}
    for s in range(0, len(fake), block):
        d32 = compute_pairwise_distance(real, fake[s:s + block])  # (real, fake) float32
        prdc_in = d32 < radius32[:, None]
        near = np.abs(d32 - radius32[:, None]) <= 4e-6 * radius32[:, None]
        ri, fj = np.nonzero(near)
        if len(ri):
            a = np.asarray(real[ri], np.float64)
            b = np.asarray(fake[s + fj], np.float64)
            exact = np.sqrt(np.einsum("ij,ij->i", a - b, a - b))
            ours_in = exact <= radius64[ri]
            disagree = ours_in != prdc_in[ri, fj]
            ties = disagree & (d32[ri, fj] == radius32[ri])
            counts["float32_tie_counted_by_synthlens"] += int(ties.sum())
            counts["other_disagreements"] += int((disagree & ~ties).sum())
    return counts


def section_prdc(real: np.ndarray, fake: np.ndarray, k: int, memory_mb: float,
                 explain: bool) -> dict[str, Any]:
    import prdc

    from synthlens.metrics import RealReference, evaluate_features

    names = ["precision", "recall", "density", "coverage"]

    def ours() -> dict[str, float]:
        ref = RealReference(k=k, memory_mb=memory_mb).fit(real)
        nb = ref.compare(fake, realism=False)
        res = evaluate_features(ref, fake, metrics=names, neighbourhoods=nb, n_bootstrap=0)
        return {n: res[n].value for n in names}

    with quiet():
        ours_vals, ours_s, ours_mb = measure(ours)
        ours_cpu = CPU_SECONDS[-1]
        peer_vals, peer_s, peer_mb = measure(lambda: prdc.compute_prdc(real, fake, k))
        peer_cpu = CPU_SECONDS[-1]
    out: dict[str, Any] = {
        "synthlens_s": ours_s, "synthlens_peak_mb": ours_mb,
        "prdc_s": peer_s, "prdc_peak_mb": peer_mb,
        "synthlens_cpu_s": ours_cpu, "prdc_cpu_s": peer_cpu, "cpu_ratio": peer_cpu / ours_cpu,
        "speedup": peer_s / ours_s, "memory_ratio": ours_mb / max(peer_mb, 1e-9),
        "values": {n: {"synthlens": ours_vals[n], "prdc": float(peer_vals[n]),
                       "abs_diff": abs(ours_vals[n] - float(peer_vals[n]))} for n in names},
    }
    if explain and max(v["abs_diff"] for v in out["values"].values()) > 1e-6:
        out["disagreements"] = prdc_float32_ties(real, fake, k)
    return out


def section_fid(real: np.ndarray, fake: np.ndarray) -> dict[str, Any]:
    from synthlens.metrics.fidelity import fid

    with quiet():
        ours, ours_s, ours_mb = measure(lambda: fid(real, fake))
        ours_cpu = CPU_SECONDS[-1]
        peer, peer_s, peer_mb = measure(lambda: scipy_fid(real, fake))
        peer_cpu = CPU_SECONDS[-1]
    return {"synthlens": ours, "scipy_sqrtm": peer, "abs_diff": abs(ours - peer),
            "synthlens_cpu_s": ours_cpu, "scipy_cpu_s": peer_cpu,
            "rel_diff": abs(ours - peer) / abs(peer), "synthlens_s": ours_s, "scipy_s": peer_s,
            "speedup": peer_s / ours_s, "synthlens_peak_mb": ours_mb, "scipy_peak_mb": peer_mb}


def section_run(real: np.ndarray, holdout: np.ndarray, sets: list[np.ndarray], k: int,
                memory_mb: float, prdc_sets: int, n_bootstrap: int) -> dict[str, Any]:
    import prdc

    from synthlens.metrics import FEATURE_METRICS, RealReference, evaluate_features

    def ours() -> dict[str, Any]:
        timings = {}
        start = time.perf_counter()
        ref = RealReference(k=k, memory_mb=memory_mb).fit(real, holdout=holdout)
        timings["fit"] = time.perf_counter() - start
        per_set = []
        for x in sets:
            start = time.perf_counter()
            res = evaluate_features(ref, x, n_bootstrap=n_bootstrap)
            per_set.append(time.perf_counter() - start)
            timings.setdefault("values", []).append({n: r.value for n, r in res.items()})
        timings["per_set"] = per_set
        return timings

    with quiet():
        timings, ours_s, ours_mb = measure(ours)
        ours_cpu = CPU_SECONDS[-1]
        peer_times, peer_cpu = [], []
        for x in sets[:prdc_sets]:
            _, t, _ = measure(lambda x=x: prdc.compute_prdc(real, x, k))
            peer_times.append(t)
            peer_cpu.append(CPU_SECONDS[-1])
    peer_total = float(np.mean(peer_times)) * len(sets)
    peer_cpu_total = float(np.mean(peer_cpu)) * len(sets)
    return {"metrics": list(FEATURE_METRICS), "n_sets": len(sets),
            "synthlens_s": ours_s, "synthlens_fit_s": timings["fit"],
            "synthlens_cpu_s": ours_cpu, "prdc_cpu_total_s": peer_cpu_total,
            "cpu_ratio_prdc_over_synthlens": peer_cpu_total / ours_cpu,
            "synthlens_per_set_s": timings["per_set"], "synthlens_peak_mb": ours_mb,
            "prdc_s_measured": peer_times,
            "prdc_total_s": peer_total, "prdc_extrapolated": prdc_sets < len(sets),
            "ratio_prdc_over_synthlens": peer_total / ours_s,
            "values_first_set": timings["values"][0]}


def section_memory(n: int, d: int, k: int, memory_mb: float, seed: int) -> dict[str, Any]:
    from synthlens.metrics import RealReference, evaluate_features

    rng = np.random.default_rng(seed)
    real = rng.standard_normal((n, d), dtype=np.float32)
    fake = rng.standard_normal((n, d), dtype=np.float32)
    names = ["precision", "recall", "density", "coverage"]

    def ours() -> dict[str, float]:
        ref = RealReference(k=k, memory_mb=memory_mb, progress=True).fit(real)
        nb = ref.compare(fake, realism=False)
        res = evaluate_features(ref, fake, metrics=names, neighbourhoods=nb, n_bootstrap=0)
        return {n: res[n].value for n in names}

    with quiet():
        vals, seconds, peak = measure(ours)
    return {"n": n, "d": d, "values": vals, "synthlens_s": seconds, "synthlens_peak_mb": peak,
            "synthlens_cpu_s": CPU_SECONDS[-1],
            "features_mb": 2 * real.nbytes / 2**20, "memory_mb_budget": memory_mb}


def machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__, "load_avg_at_start": os.getloadavg(),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="real and synthetic set size")
    parser.add_argument("--d", type=int, default=2048, help="feature dimension")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--sets", type=int, default=6, help="synthetic sets in section C")
    parser.add_argument("--prdc-sets", type=int, default=None,
                        help="run prdc on this many of the sets and extrapolate (default: all)")
    parser.add_argument("--holdout", type=int, default=2000, help="held-out real samples")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples")
    parser.add_argument("--memory-mb", type=float, default=256.0, help="engine memory budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", default="", help="comma-separated sections to skip (A,B,C)")
    parser.add_argument("--memory-only", action="store_true", help="only section D")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    report: dict[str, Any] = {"machine": machine(), "args": vars(args)}
    print(json.dumps(report["machine"]), flush=True)
    if args.memory_only:
        report["D_memory"] = section_memory(args.n, args.d, args.k, args.memory_mb, args.seed)
        print(json.dumps(report["D_memory"], indent=1), flush=True)
    else:
        skip = {s.strip().upper() for s in args.skip.split(",") if s.strip()}
        real, holdout, sets = make_sets(args.n, args.d, args.sets, args.holdout, args.seed)
        if "A" not in skip:
            report["A_prdc"] = section_prdc(real, sets[0], args.k, args.memory_mb, explain=True)
            print("A", json.dumps(report["A_prdc"], indent=1), flush=True)
        if "B" not in skip:
            report["B_fid"] = section_fid(real, sets[0])
            print("B", json.dumps(report["B_fid"], indent=1), flush=True)
        if "C" not in skip:
            report["C_run"] = section_run(real, holdout, sets, args.k, args.memory_mb,
                                          args.prdc_sets or args.sets, args.bootstrap)
            print("C", json.dumps(report["C_run"], indent=1), flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1)
    return report


if __name__ == "__main__":
    main()
