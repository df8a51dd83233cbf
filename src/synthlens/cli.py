"""Command line: argument parsing only; every command calls :mod:`synthlens.pipeline`.

Exit codes: 0 success, 2 bad input (one line on stderr naming the file and the problem,
and for a config setting its key path and the accepted values; the whole config is checked
before a run folder exists), 1 anything else (a bug: the traceback is shown; when a stage of
a run failed, a last line names the stage and the file it was writing), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from synthlens import __version__
from synthlens.config import BUDGETS, DEVICES, STAGES
from synthlens.data.resize import RESIZE_METHODS
from synthlens.errors import InputError, StageError
from synthlens.executor import EXECUTORS
from synthlens.gates import GATE_EXIT_CODE

DESCRIPTION = """\
synthlens scores synthetic medical images on fidelity, variety, privacy and utility,
and tells you whether fidelity (what people select generators by) predicts utility
(what a downstream model gains) on your data.

Start here:
  synthlens demo                      the whole analysis on built-in phantom X-rays
  synthlens evaluate --real REAL.npz --synthetic mine=SYN.npz --out runs/mine
                                      score synthetic sets you already have
  synthlens run configs/study.yaml    train generators and score them, from a config
  synthlens report runs/demo          rebuild a run's report.html
"""


def _out_default(command: str) -> str:
    return str(Path("runs") / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}")


def _mode(args: argparse.Namespace) -> str:
    if getattr(args, "resume", False) and getattr(args, "force", False):
        raise InputError("--resume/--force", "choose one of --resume and --force")
    if getattr(args, "resume", False):
        return "resume"
    return "force" if getattr(args, "force", False) else "new"


def _synthetic_pairs(pairs: Sequence[str]) -> dict[str, str]:
    """``NAME=PATH`` pairs (the names are checked with the rest of the config)."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise InputError(pair, "--synthetic takes NAME=PATH (e.g. stylegan=samples.npz)")
        if name in out:
            raise InputError(pair, f"synthetic set name {name!r} given twice")
        out[name] = path
    return out


def _add_common(parser: argparse.ArgumentParser, *, out: bool = True) -> None:
    if out:
        parser.add_argument("--out", metavar="DIR",
                            help="run folder to create (default: runs/<command>-<time>)")
        parser.add_argument("--resume", action="store_true",
                            help="continue an interrupted run in --out, skipping finished "
                                 "stages whose inputs and config are unchanged")
        parser.add_argument("--force", action="store_true",
                            help="replace an existing run in --out")
    parser.add_argument("--device", choices=list(DEVICES), default=None,
                        help="where to train and extract features (default: auto = cuda "
                             "when a GPU is present)")
    parser.add_argument("--seed", type=int, default=None, help="master random seed (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    if out:
        parser.add_argument("--executor", choices=list(EXECUTORS), default=None,
                            help="where the units run: local (default) or ray (a Ray "
                                 "cluster; pip install 'synthlens[ray]'); never changes a "
                                 "number, and --resume may switch it")
        parser.add_argument("--ray-address", metavar="ADDR", default=None,
                            help="with --executor ray: the cluster to join (e.g. auto, "
                                 "ray://head:10001; default: a local cluster)")
        parser.add_argument("--jobs", type=_jobs, default=None, metavar="N",
                            help="local executor: units side by side in N processes, or "
                                 "auto (default: available cores // --threads)")
        parser.add_argument("--threads", type=int, default=None, metavar="N",
                            help="torch and BLAS threads per unit (default 1); fixed, so "
                                 "the numbers do not depend on the machine's core count")
        parser.add_argument("--fail-if", action="append", default=[], metavar="GATE",
                            help="exit 3 (after writing every output) when GATE holds for a "
                                 "set, e.g. 'memorisation_rate > 0.01', "
                                 "'utility.augment.gain_auroc < 0', 'fid@inception > 30', "
                                 "'copy_rate > floor'; repeatable (see docs/results.md)")


def _jobs(value: str) -> int | str:
    if value == "auto" or value.isdigit():
        return value if value == "auto" else int(value)
    raise argparse.ArgumentTypeError(f"expected auto or a whole number, got {value!r}")


def _execution(args: argparse.Namespace) -> dict[str, object]:
    """``--threads``, ``--executor``, ``--jobs``, ``--ray-address`` as config overrides."""
    return {"threads": args.threads, "executor": args.executor, "jobs": args.jobs,
            "ray_address": args.ray_address}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="synthlens", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"synthlens {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo", help="run the whole analysis on built-in phantom chest X-rays",
        description="Train generators on built-in, procedurally generated chest X-ray "
                    "phantoms (normal vs pneumonia-like opacity), score every synthetic set "
                    "and write results.json, results.csv and report.html. Needs no files "
                    "and no network.")
    demo.add_argument("--budget", choices=list(BUDGETS), default="demo",
                      help="how long to train: smoke (< 2 min, for tests), demo (default, "
                           "< 10 min on 2 CPU cores), standard, full (GPU)")
    _add_common(demo)

    run = commands.add_parser(
        "run", help="run the pipeline from a YAML config",
        description="Run the pipeline described by CONFIG (dataset, generators, budget, "
                    "feature extractors, metrics, utility protocols, seed). See "
                    "configs/*.yaml for examples.")
    run.add_argument("config", metavar="CONFIG.yaml")
    run.add_argument("--budget", choices=list(BUDGETS), default=None,
                     help="override the config's budget")
    run.add_argument("--stop-after", choices=list(STAGES), default=None, metavar="STAGE",
                     help="end the run after this stage (data, generate, features, score), "
                          "e.g. train generators now and score later with --resume")
    run.add_argument("--redo", action="append", default=[], metavar="STAGE",
                     help="with --resume: run this finished stage again, named as in the "
                          "run's manifest.json (e.g. generators/ldm after a code change); "
                          "repeatable. Later stages rerun only where their inputs change")
    _add_common(run)

    evaluate = commands.add_parser(
        "evaluate", help="score synthetic sets you bring (no generator training)",
        description="Score one or more synthetic sets against real data. REAL is a "
                    "MedMNIST-style .npz (train_/val_/test_ images and labels), an image "
                    "folder with one sub-folder per class, or a MedMNIST name. Each "
                    "synthetic set is NAME=PATH where PATH is an .npz with 'images' and "
                    "'labels' (or train_images/train_labels) or a class-folder tree.")
    evaluate.add_argument("--real", required=True, metavar="PATH",
                          help="real labelled data (.npz, folder or MedMNIST name)")
    evaluate.add_argument("--synthetic", required=True, nargs="+", metavar="NAME=PATH",
                          help="synthetic sets to score")
    evaluate.add_argument("--budget", choices=list(BUDGETS),
                          default="demo", help="training budget of the utility classifiers "
                                               "and in-domain encoder (default demo)")
    evaluate.add_argument("--extractors", nargs="+", metavar="NAME", default=None,
                          help="feature spaces to score in (first = headline); default domain")
    evaluate.add_argument("--metrics", nargs="+", metavar="NAME", default=None,
                          help="metrics to compute (default: the full battery)")
    evaluate.add_argument("--protocols", nargs="*", metavar="NAME", default=None,
                          help="utility protocols (default: the budget's; none to skip utility)")
    evaluate.add_argument("--members", metavar="SPLIT_OR_PATH", default=None,
                          help="the real images your generator was trained on, the privacy "
                               "metrics' members: train, val, test or a labelled set (.npz "
                               "or class folders) (default: train)")
    evaluate.add_argument("--non-members", metavar="SPLIT_OR_PATH", default=None,
                          help="real images your generator never saw, the privacy metrics' "
                               "non-members and the real-holdout set (default: val)")
    evaluate.add_argument("--resize", choices=list(RESIZE_METHODS), default=None,
                          help="bring synthetic sets of another image size to the real size: "
                               "area (pixel averaging) or lanczos (default: none, refuse them)")
    evaluate.add_argument("--strict", action="store_true", default=None,
                          help="refuse (exit 2) a synthetic set holding exact copies of real "
                               "val or test images (default: score it and flag it)")
    _add_common(evaluate)

    report = commands.add_parser(
        "report", help="rebuild report.html, results.csv and figures of a run",
        description="Re-render a finished run's report (report.html, results.csv, "
                    "report/figures) from its folder: the scores and the analysis stored "
                    "in results.json, nothing recomputed.")
    report.add_argument("run_dir", metavar="RUN_DIR")

    compare = commands.add_parser(
        "compare", help="the metric differences between finished runs, with CIs",
        description="Print every (set, metric) of two or more finished runs side by side "
                    "with its CI and each run's difference from the first (the same sets "
                    "scored under two seeds, two feature spaces, two versions...), and write "
                    "compare.csv and compare.html (the first two runs) to --out.")
    compare.add_argument("runs", nargs="+", metavar="RUN_DIR")
    compare.add_argument("--out", metavar="DIR", default=None,
                         help="folder for compare.csv and compare.html (default: the first "
                              "run's folder)")
    return parser


def _dispatch(args: argparse.Namespace) -> Path:
    from synthlens import pipeline
    from synthlens.config import load_config

    talk = not args.quiet if hasattr(args, "quiet") else True
    # Progress bars only on a terminal: a log file or CI gets one line per stage instead of
    # carriage-return frames.
    progress = talk and sys.stderr.isatty()

    def on_stage(message: str) -> None:
        if talk:
            print(f"synthlens: {message}", file=sys.stderr, flush=True)

    if args.command == "report":
        return pipeline.rebuild_report(args.run_dir)
    if args.command == "compare":
        return _compare(args.runs, args.out)
    mode = _mode(args)
    out = args.out or _out_default(args.command)
    device = args.device
    if args.command == "demo":
        return pipeline.demo(out, budget=args.budget, seed=args.seed or 0,
                             device=device or "auto", mode=mode, progress=progress,
                             on_stage=on_stage, fail_if=args.fail_if, **_execution(args))
    if args.command == "run":
        config = load_config(args.config, budget=args.budget, seed=args.seed, device=device,
                             fail_if=args.fail_if, **_execution(args))
        return pipeline.run(config, out, mode=mode, progress=progress, on_stage=on_stage,
                            stop_after=args.stop_after, redo=args.redo)
    synthetic = _synthetic_pairs(args.synthetic)
    protocols = [] if args.protocols == ["none"] else args.protocols
    return pipeline.evaluate(args.real, synthetic, out, budget=args.budget,
                             seed=args.seed or 0, device=device or "auto", mode=mode,
                             extractors=args.extractors, metrics=args.metrics,
                             protocols=protocols, members=args.members,
                             non_members=args.non_members, resize=args.resize,
                             strict=args.strict, progress=progress, on_stage=on_stage,
                             fail_if=args.fail_if, **_execution(args))


def _compare(runs: Sequence[str], out: str | None) -> Path:
    """``synthlens compare``: print the difference table, write compare.csv and .html."""
    import csv
    import io

    from synthlens.io import write_text
    from synthlens.report.compare import compare_runs, difference_rows, difference_text
    from synthlens.results import open_run

    if len(runs) < 2:
        raise InputError("compare", "name at least two run folders to compare")
    opened = [open_run(r) for r in runs]
    labels = [chr(ord("A") + i) if i < 26 else f"R{i}" for i in range(len(opened))]
    rows = difference_rows([r.data for r in opened])
    for label, r in zip(labels, opened, strict=True):
        print(f"{label}: {r.root}")
    print(difference_text(rows, labels), end="")
    folder = Path(out) if out else opened[0].root
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["set", "metric",
                     *(f"{x}_{k}" for x in labels for k in ("value", "ci_low", "ci_high")),
                     *(f"{x}_minus_{labels[0]}" for x in labels[1:])])
    for row in rows:
        cells: list[object] = [row["set"], row["metric"]]
        for value, ci in zip(row["values"], row["cis"], strict=True):
            cells += [value, *(ci if ci else ("", ""))]
        writer.writerow([*cells, *row["differences"]])
    write_text(folder / "compare.csv", buf.getvalue())
    compare_runs(opened[0].root, opened[1].root, folder / "compare.html")
    return folder / "compare.csv"


def _summary(run_dir: Path) -> tuple[list[str], bool]:
    """The closing lines of a finished run (the report's path, the headline findings, the
    failed gates) and whether a gate failed."""
    from synthlens.gates import outcome_from_json
    from synthlens.results import open_run

    if not (run_dir / "results.json").is_file():
        return [f"synthlens: done: {run_dir} (stopped before the results)"], False
    res = open_run(run_dir)
    lines = [f"synthlens: report: {run_dir / 'report.html'}"]
    for finding in res.analysis.get("findings", []):
        if finding.get("level") in ("key", "warning"):
            lines.append(f"synthlens: - {' '.join(str(finding['text']).split())}")
    failed = res.failed_gates
    lines += [f"synthlens: {outcome_from_json(g).line()}" for g in failed]
    if res.gates and not failed:
        n = len({g["expression"] for g in res.gates})
        lines.append(f"synthlens: {n} gate{'s' if n > 1 else ''} passed")
    return lines, bool(failed)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="synthlens: %(message)s")
    if getattr(args, "quiet", False):
        os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        result = _dispatch(args)
    except InputError as error:
        message = " ".join(str(error).split())  # one line, whatever the message held
        print(f"synthlens: error: {message}", file=sys.stderr)
        return 2
    except StageError as error:
        if error.__cause__ is not None:
            traceback.print_exception(error.__cause__)
        print(f"synthlens: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("synthlens: interrupted; continue with --resume", file=sys.stderr)
        return 130
    if args.command in ("demo", "run", "evaluate") and result.is_dir():
        lines, failed = _summary(result)
        print("\n".join(lines))
        return GATE_EXIT_CODE if failed else 0
    print(f"synthlens: done: {result}" if result.is_dir() else f"synthlens: wrote {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
