"""The whole config is checked before anything runs: every bad setting exits 2 with one
line naming the file, the key path and the accepted values, and no run folder is made.

Each case is a real ``synthlens run CONFIG --out DIR`` (in process, through
``synthlens.cli.main``) on the smoke budget and the demo data; none trains anything,
since validation must fail first.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from synthlens.cli import main

BASE = {"budget": "smoke", "dataset": {"source": "demo"},
        "generators": [{"family": "dcgan"}]}

# (what is wrong, config changes, key path, a piece of the message that names the problem,
#  accepted values that must be listed)
CASES = [
    ("unknown neighbourhood rule", {"metrics": {"neighbourhood": "strict"}},
     "metrics.neighbourhood", "unknown rule 'strict'", ["closed", "open"]),
    ("subsample of an unlisted space", {"features": {"extractors": ["domain"],
                                                     "subsample": {"pixels": 500}}},
     "features.subsample.pixels", "is not one of features.extractors", ["domain"]),
    ("misspelt metric", {"metrics": {"names": ["fid", "precison"]}},
     "metrics.names[1]", "unknown metric 'precison'", ["fid", "precision", "kid", "all"]),
    ("unknown family", {"generators": [{"family": "stylegan3"}]},
     "generators[0].family", "unknown generator family 'stylegan3'",
     ["cvae", "dcgan", "ddpm", "ldm", "stylegan2", "vqvae2"]),
    ("misspelt generator parameter", {"generators": [{"family": "dcgan",
                                                      "params": {"widht": 8}}]},
     "generators[0].params.widht", "unknown parameter of dcgan", ["beta1", "width", "z_dim"]),
    ("wrongly typed generator parameter", {"generators": [{"family": "dcgan",
                                                           "params": {"width": "8"}}]},
     "generators[0].params.width", "expected an integer, got '8'", []),
    ("out-of-range generator parameter", {"generators": [{"family": "stylegan2",
                                                          "params": {"truncation": 2.0}}]},
     "generators[0].params.truncation", "psi must lie in [0, 1]", []),
    ("bad choice of a generator parameter", {"generators": [{"family": "vqvae2",
                                                             "params": {"prior": "lstm"}}]},
     "generators[0].params.prior", "'lstm' is not a choice", ["'transformer'", "'pixelcnn'"]),
    ("bad budget option", {"budget_overrides": {"generators": {"dcgan": {
        "options": {"widht": 8}}}}},
     "budget_overrides.generators.dcgan.options.widht", "unknown budget option of dcgan",
     ["beta1", "mixed_precision", "stage_batch_sizes", "width", "z_dim"]),
    ("wrongly typed budget option", {"budget_overrides": {"generators": {"ldm": {
        "options": {"channel_mults": 12}}}}},
     "budget_overrides.generators.ldm.options.channel_mults",
     "expected a list of integers, got 12", []),
    ("bad budget key", {"budget_overrides": {"generators": {"dcgan": {"stepz": 8}}}},
     "budget_overrides.generators.dcgan.stepz", "unknown budget key",
     ["batch_size", "lr", "options", "stage_fractions", "steps"]),
    ("stage a family does not have", {"budget_overrides": {"generators": {"dcgan": {
        "stage_fractions": {"prior": 0.5}}}}},
     "budget_overrides.generators.dcgan.stage_fractions.prior", "unknown stage of dcgan",
     ["main"]),
    ("budget for an unknown family", {"budget_overrides": {"generators": {"stylegan3": {
        "steps": 2}}}},
     "budget_overrides.generators.stylegan3", "unknown generator family", ["stylegan2"]),
    ("bad metric effort", {"budget_overrides": {"metrics": {"n_bootstrapp": 3}}},
     "budget_overrides.metrics.n_bootstrapp", "unknown setting",
     ["kid_subsets", "ms_ssim_pairs", "n_bootstrap"]),
    ("unknown sample knob", {"generators": [{"family": "stylegan2",
                                             "sample": {"psi": [0.5, 1.0]}}]},
     "generators[0].sample.psi", "unknown sample knob of stylegan2",
     ["noise_mode", "truncation"]),
    ("out-of-range sweep value", {"generators": [{"family": "stylegan2",
                                                  "sample": {"truncation": [0.5, 1.5]}}]},
     "generators[0].sample.truncation", "psi must lie in [0, 1], got 1.5", []),
    ("two knobs swept", {"generators": [{"family": "ddpm", "sample": {
        "guidance_scale": [1.0, 2.0], "eta": [0.0, 1.0]}}]},
     "generators[0].sample", "only one knob can sweep", []),
    ("unknown protocol", {"utility": {"protocols": ["augment", "tstr"]}},
     "utility.protocols[1]", "unknown protocol 'tstr'",
     ["augment", "synthetic_only", "low_data", "cross_task"]),
    ("cross-task protocol without its dataset", {"utility": {"protocols": ["cross_task"]}},
     "utility.protocols[0]", "needs a second labelled dataset",
     []),
    ("unknown extractor", {"features": {"extractors": ["inceptoin"]}},
     "features.extractors[0]", "unknown extractor 'inceptoin'",
     ["domain", "inception", "pixels", "'package.module:factory'"]),
    ("unknown extractor option", {"features": {"extractors": ["domain"],
                                               "options": {"domain": {"epochz": 2}}}},
     "features.options.domain.epochz", "unknown option of the domain extractor",
     ["epochs", "width", "convs_per_block", "val_fraction"]),
    ("missing extractor option", {"features": {"extractors": ["torchscript"]}},
     "features.options.torchscript.path", "missing", []),
    ("primary space not extracted", {"features": {"extractors": ["domain"],
                                                  "primary": "pixels"}},
     "features.primary", "'pixels' is not one of features.extractors", ["domain"]),
    ("unknown classifier setting", {"budget_overrides": {"utility": {"classifier": {
        "epoch": 3}}}},
     "budget_overrides.utility.classifier.epoch", "unknown classifier setting",
     ["arch", "epochs", "lr", "width"]),
    ("bad classifier value", {"budget_overrides": {"utility": {"classifier": {
        "arch": "resnet50"}}}},
     "budget_overrides.utility.classifier.arch", "unknown classifier 'resnet50'",
     ["resnet18", "small_cnn"]),
    ("unknown utility setting", {"budget_overrides": {"utility": {"seed": [0]}}},
     "budget_overrides.utility.seed", "unknown key of the utility settings",
     ["seeds", "protocols"]),
    ("unknown reference", {"references": ["real-holdout", "holdout"]},
     "references[1]", "unknown reference 'holdout'", ["real-holdout", "noise"]),
    ("set name used twice", {"generators": [{"name": "a", "family": "cvae"},
                                            {"name": "a", "family": "dcgan"}]},
     "generators[1].name", "set name 'a' is used twice", []),
    ("reserved set name", {"generators": [{"name": "real-only", "family": "cvae"}]},
     "generators[0].name", "'real-only' is a reserved set name", []),
    ("unknown top-level key", {"metric": {"names": "all"}},
     "metric", "unknown key of the config", ["metrics", "features", "budget_overrides"]),
    ("unknown key of a section", {"dataset": {"source": "demo", "sise": 28}},
     "dataset.sise", "unknown setting", ["cache_dir", "download", "size", "source"]),
    ("wrongly typed top-level value", {"seed": "one"}, "seed", "expected an integer", []),
    ("out-of-range holdout", {"holdout_fraction": 0.7}, "holdout_fraction",
     "must lie in (0, 0.5)", []),
    ("image size a family cannot take", {"dataset": {"source": "demo", "size": 30},
                                         "generators": [{"family": "stylegan2"}]},
     "generators[0]", "stylegan2 takes square images whose side is a multiple of 4, "
                      "not 30×30", []),
]


def _run(tmp_path: Path, changes: dict[str, object],
         capsys: pytest.CaptureFixture[str]) -> tuple[int, str, Path, Path]:
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({**BASE, **changes}))
    out = tmp_path / "out"
    code = main(["run", str(config), "--out", str(out), "--quiet"])
    return code, capsys.readouterr().err, config, out


@pytest.mark.parametrize(("problem", "changes", "key", "message", "accepted"), CASES,
                         ids=[case[0] for case in CASES])
def test_bad_setting_exits_2_naming_file_key_and_accepted_values(
        problem: str, changes: dict[str, object], key: str, message: str,
        accepted: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, config, out = _run(tmp_path, changes, capsys)
    assert code == 2, (problem, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, (problem, err)
    assert lines[0].startswith(f"synthlens: error: {config}: {key}: "), (problem, lines[0])
    assert message in lines[0], (problem, lines[0])
    if accepted:
        listed = lines[0].split("; accepted: ", 1)[1]
        assert set(accepted) <= set(listed.split(", ")), (problem, lines[0])
    assert not out.exists(), problem


def test_budget_problems_are_named_where_they_were_written() -> None:
    """A budget setting the config overrides is named by its ``budget_overrides`` key; in
    a resolved config (a run's config.yaml) by its ``budget_settings`` key."""
    from synthlens.config import RunConfig, resolve_config
    from synthlens.errors import SettingError

    raw = {"budget": "smoke", "budget_overrides": {"metrics": {"kid_subsets": 0}}}
    with pytest.raises(SettingError) as info:
        resolve_config(raw, source="x.yaml")
    assert info.value.key == "budget_overrides.metrics.kid_subsets"
    assert str(info.value) == ("x.yaml: budget_overrides.metrics.kid_subsets: must be at "
                               "least 1, got 0")
    resolved = resolve_config({"budget": "smoke"}).to_dict()
    resolved["budget_settings"]["generators"]["dcgan"]["options"]["widht"] = 8
    with pytest.raises(SettingError, match=r"^config\.yaml: budget_settings\.generators\."
                                           r"dcgan\.options\.widht: unknown budget option"):
        RunConfig.from_resolved(resolved, source="config.yaml")


@pytest.mark.parametrize("budget", ["smoke", "demo", "standard", "full"])
def test_every_shipped_config_validates(budget: str) -> None:
    """configs/*.yaml and the packaged configs resolve and pass every check under every
    budget (the budgets themselves included: each family's options, the utility
    classifier, the extractor settings)."""
    from synthlens.config import load_config, resolve_config

    root = Path(__file__).resolve().parents[1]
    files = sorted((root / "configs").glob("*.yaml"))
    packaged = sorted((root / "src" / "synthlens" / "configs").glob("*.yaml"))
    assert files and {p.name for p in packaged} >= {"budgets.yaml", "demo.yaml",
                                                     "evaluate.yaml"}
    for path in files:
        load_config(path, budget=budget)
    for path in packaged:
        if path.name != "budgets.yaml":
            resolve_config(yaml.safe_load(path.read_text()), source=path.name, budget=budget)
