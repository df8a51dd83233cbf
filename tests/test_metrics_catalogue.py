"""The one metric catalogue: read from the metric classes, torch-free, not repeated;
hyperparameters reaching the constructors; the CI / per-class table of the docs."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import warnings
from pathlib import Path

from synthlens.analysis.categories import (
    counted_once,
    metric_category,
    metric_description,
    metric_label,
)
from synthlens.metrics import (
    FEATURE_METRICS,
    IMAGE_METRICS,
    REGISTRY,
    RUN_METRICS,
    evaluate_features,
    evaluate_images,
    variety_scores,
)
from synthlens.metrics.catalogue import FAMILIES, METRIC_CLASSES, MetricSpec

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "synthlens"
CLASS_MODULES = {SRC / "metrics" / name for name in ("fidelity.py", "variety.py", "privacy.py")}


def test_catalogue_and_analysis_import_without_torch():
    code = ("import sys\n"
            "import synthlens.metrics.catalogue, synthlens.analysis\n"
            "from synthlens.metrics import REGISTRY, FEATURE_METRICS, IMAGE_METRICS\n"
            "assert REGISTRY and FEATURE_METRICS and IMAGE_METRICS\n"
            "bad = [m for m in ('torch', 'synthlens.metrics.knn') if m in sys.modules]\n"
            "assert not bad, bad\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr


def test_every_entry_is_read_from_its_class():
    assert len({cls.name for cls in METRIC_CLASSES}) == len(METRIC_CLASSES)
    assert list(REGISTRY) == [cls.name for cls in METRIC_CLASSES]
    labels = [spec.label for spec in REGISTRY.values()]
    assert len(set(labels)) == len(labels)
    for cls in METRIC_CLASSES:
        spec = REGISTRY[cls.name]
        assert spec == MetricSpec.of(cls)
        assert spec.direction in ("higher", "lower") and spec.family in FAMILIES
        assert spec.label and spec.description and spec.reference and spec.min_n >= 1
        assert spec.redundant_with is None or spec.redundant_with in REGISTRY
        # analysis and report read the same facts
        assert metric_category(cls.name) == spec.family
        assert metric_label(cls.name) == spec.label
        assert metric_description(cls.name) == spec.description
    assert REGISTRY["privacy"].redundant_with == "copy_rate"
    assert "fidelity" not in REGISTRY  # no metric by that name exists


def test_metric_lists_keep_the_order_run_fingerprints_hash():
    # Run folders fingerprint these lists ("all" metrics): reordering them would rescore
    # every resumed run.
    assert FEATURE_METRICS == (
        "fid", "kid", "precision", "density", "alpha_precision", "fidelity_privacy_aware",
        "recall", "coverage", "beta_recall", "vendi", "authenticity", "copy_rate", "privacy",
        "dcr_ratio", "memorisation_rate", "mia_auc")
    assert IMAGE_METRICS == ("mean_image_kb", "ms_ssim_diversity", "label_consistency")
    assert RUN_METRICS == ("variety",)


def _strings(node: ast.AST) -> list[str]:
    """String constants of a table value: itself, a call's arguments, a tuple's items."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Call):
        items = [*node.args, *(k.value for k in node.keywords)]
    elif isinstance(node, ast.Tuple | ast.List):
        items = node.elts
    else:
        return []
    return [s for item in items if isinstance(item, ast.Constant)
            and isinstance(s := item.value, str)]


def _is_metric(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value in REGISTRY


def _row_head(node: ast.AST) -> ast.AST | None:
    """First item of a ``("name", ...)`` tuple or a ``Info("name", ...)`` call."""
    items = (node.elts if isinstance(node, ast.Tuple)
             else node.args if isinstance(node, ast.Call) else [])
    return items[0] if items else None


def test_no_second_table_of_metric_facts_in_src():
    """Nothing outside the metric classes keeps per-metric texts: no dict keyed by metric
    names with text values, no list of (name, text, ...) rows, no ``Spec("name", ...,
    "a description")`` entry, no copied description."""
    descriptions = {spec.description for spec in REGISTRY.values()}
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path in CLASS_MODULES:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Dict):
                rows = [v for k, v in zip(node.keys, node.values, strict=True)
                        if _is_metric(k) and _strings(v)]
                if len(rows) >= 3:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} dict")
            elif isinstance(node, ast.Tuple | ast.List):
                rows = [e for e in node.elts
                        if _is_metric(_row_head(e)) and len(_strings(e)) >= 2]
                if len(rows) >= 3:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} rows")
            elif isinstance(node, ast.Call) and _is_metric(_row_head(node)) and any(
                    len(text) >= 30 for text in _strings(node)):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} entry")  # Spec("x", ..)
            elif isinstance(node, ast.Constant) and node.value in descriptions:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} description")
    assert not found, found


def test_hyperparameters_reach_the_constructors(two_classes):
    ref, syn, syn_labels, images, _ = two_classes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = evaluate_features(ref, syn, syn_labels, n_bootstrap=10, level=0.5,
                                metrics=["fid", "kid", "memorisation_rate", "precision"],
                                fid_bootstrap=5, kid_subsets=3, kid_subset_size=50,
                                kid_precision="float64", memorisation_percentile=5.0)
        wide = evaluate_features(ref, syn, syn_labels, n_bootstrap=10, level=0.99,
                                 metrics=["precision"])
        img = evaluate_images(images, syn_labels, metrics=["ms_ssim_diversity"],
                              ms_ssim_pairs=7, n_bootstrap=0)
    assert out["fid"].ci is not None and out["fid"].details["bootstrap"] == 5
    assert out["kid"].details["subsets"] == 3 and out["kid"].details["subset_size"] == 50
    assert out["kid"].details["inner_products"] == "float64"
    assert out["memorisation_rate"].details["percentile"] == 5.0
    narrow_ci, wide_ci = out["precision"].ci, wide["precision"].ci
    assert wide_ci[1] - wide_ci[0] >= narrow_ci[1] - narrow_ci[0]
    assert img["ms_ssim_diversity"].details["pairs_per_class"] == 7
    assert img["ms_ssim_diversity"].ci is None


# -- the CI / per-class statement of docs/metrics.md and README.md --------------------------


def _docs_table() -> dict[str, tuple[str, str]]:
    """``{metric: (ci cell, per_class cell)}`` from docs/metrics.md's table."""
    text = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    section = text.split("### Intervals and per-class values", 1)[1].split("\n#", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and (m := re.fullmatch(r"`(\w+)`", cells[0])):
            rows[m.group(1)] = (cells[1], cells[2])
    return rows


def _has(cell: str) -> bool:
    assert cell.split()[0].rstrip(",;:") in ("yes", "no"), cell
    return cell.startswith("yes")


def test_docs_say_which_metrics_have_a_ci_and_per_class_values(two_classes):
    ref, syn, syn_labels, images, _ = two_classes
    rows = _docs_table()
    assert set(rows) == set(REGISTRY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        real = {**evaluate_features(ref, syn, syn_labels, n_bootstrap=20, kid_subsets=3),
                **evaluate_images(images, syn_labels, classifier=lambda x: syn_labels,
                                  n_bootstrap=20, ms_ssim_pairs=10)}
        sizes = {"a": real["mean_image_kb"],
                 "b": evaluate_images(images[::-1], syn_labels, metrics=["mean_image_kb"],
                                      n_bootstrap=20)["mean_image_kb"]}
        real["variety"] = variety_scores(sizes)["a"]
        with_fid_ci = evaluate_features(ref, syn, syn_labels, metrics=["fid"], fid_bootstrap=5)
    for name, (ci, per_class) in rows.items():
        assert (real[name].ci is not None) == _has(ci), (name, ci)
        assert (real[name].per_class is not None) == _has(per_class), (name, per_class)
    assert "fid_bootstrap" in rows["fid"][0] and with_fid_ci["fid"].ci is not None

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    no_ci = re.search(r"no CI: (.*?);", readme, re.S)
    no_per_class = re.search(r"no per-class values: (.*?)\)", readme, re.S)
    assert no_ci and no_per_class
    assert set(re.findall(r"`(\w+)`", no_ci.group(1))) - {"fid_bootstrap"} == {
        n for n, (ci, _) in rows.items() if not _has(ci)}
    assert set(re.findall(r"`(\w+)`", no_per_class.group(1))) == {
        n for n, (_, pc) in rows.items() if not _has(pc)}


def test_counted_once_keeps_privacy_only_without_copy_rate():
    assert counted_once(["copy_rate", "privacy", "fid"]) == ["copy_rate", "fid"]
    assert counted_once(["privacy", "fid"]) == ["privacy", "fid"]
    assert counted_once(["privacy@pixels", "copy_rate", "copy_rate@pixels"]) == [
        "copy_rate", "copy_rate@pixels"]
    assert counted_once(["privacy@pixels", "copy_rate"]) == ["privacy@pixels", "copy_rate"]
