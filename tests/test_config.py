"""Config resolution: defaults, budgets as data, clear errors for bad keys."""

from __future__ import annotations

import pytest

from synthlens.config import load_budgets, load_config, packaged_config, resolve_config
from synthlens.errors import InputError


def test_budgets_have_every_section():
    budgets = load_budgets()
    assert set(budgets) == {"smoke", "demo", "standard", "full"}
    for name, budget in budgets.items():
        assert {"generators", "features", "utility"} <= set(budget), name


def test_resolve_expands_budget_and_applies_overrides():
    config = resolve_config({"budget": "smoke",
                             "budget_overrides": {"utility": {"seeds": [3]}}},
                            seed=11, device="cpu")
    assert config["seed"] == 11 and config["device"] == "cpu"
    assert config["budget_settings"]["utility"]["seeds"] == [3]
    assert "generators" in config["budget_settings"]


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("datasett: {source: demo}\n")
    with pytest.raises(InputError, match=r"c\.yaml: datasett: unknown key of the config; "
                                         r"accepted: budget, budget_overrides, dataset, "):
        load_config(path)


def test_bad_budget_and_missing_file(tmp_path):
    with pytest.raises(InputError, match="budget 'huge'"):
        resolve_config({"budget": "huge"})
    with pytest.raises(InputError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_config(bad)


def test_generator_specs_get_names_and_duplicates_are_refused():
    config = resolve_config({"generators": [{"family": "cvae"}]})
    assert config["generators"][0]["name"] == "cvae"
    with pytest.raises(InputError, match="used twice"):
        resolve_config({"generators": [{"family": "cvae", "name": "noise"}]})


def test_relative_dataset_path_is_taken_from_config_folder(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.npz").write_bytes(b"")
    path = tmp_path / "c.yaml"
    path.write_text("dataset: {source: data/x.npz}\n")
    assert load_config(path)["dataset"]["source"] == str(tmp_path / "data" / "x.npz")


def test_packaged_demo_config_resolves():
    config = resolve_config(packaged_config("demo"), budget="smoke")
    assert config["dataset"]["source"] == "demo"
    for spec in config["generators"]:
        assert spec["family"] in config["budget_settings"]["generators"]


def test_resolved_config_is_typed_and_round_trips_through_config_yaml():
    """resolve_config returns a typed RunConfig; its to_dict() is plain YAML data (what
    the run folder's config.yaml holds) and reads back to the same config."""
    import yaml

    from synthlens.config import GeneratorSpec, RunConfig
    from synthlens.generators import Budget

    raw = {"budget": "smoke", "generators": [
        {"family": "stylegan2", "sample": {"truncation": [0.5, 1.0]}},
        {"name": "small", "family": "ddpm", "params": {"channel_mults": [1, 2]}}],
        "metrics": {"names": ["fid", "recall"]}}
    config = resolve_config(raw, source="x.yaml")
    assert isinstance(config, RunConfig) and config.source == "x.yaml"
    first, second = config.generators
    assert isinstance(first, GeneratorSpec) and first.name == "stylegan2"
    assert second.name == "small" and second.params == {"channel_mults": [1, 2]}
    assert first.variants() == [("stylegan2-truncation0.5", {"truncation": 0.5}),
                                ("stylegan2-truncation1", {"truncation": 1.0})]
    assert config.metrics.names == ("fid", "recall") and not config.metrics.all
    assert config.features.primary == "domain" and config.utility.protocols is None
    budget = config.budget_settings.generator_budget("ddpm")
    assert isinstance(budget, Budget) and budget.steps == 20
    assert config.budget_settings.utility_config().seeds == (0, 1)
    plain = config.to_dict()
    assert yaml.safe_load(yaml.safe_dump(plain, sort_keys=False)) == plain
    # params and sample stay as written: they enter the generator stage's fingerprint
    assert plain["generators"][1] == {"name": "small", "family": "ddpm",
                                      "params": {"channel_mults": [1, 2]}, "sample": {}}
    assert plain["metrics"] == {"names": ["fid", "recall"], "k": 5, "neighbourhood": "closed"}
    assert list(plain)[-1] == "budget_settings" and "budget_overrides" not in plain
    assert dict(config) == plain and config["generators"] == plain["generators"]
    assert RunConfig.from_resolved(plain, source="config.yaml") == config
    assert RunConfig.from_resolved(config) is config


def test_primary_defaults_to_domain_else_the_first_extractor():
    assert resolve_config({"features": {"extractors": ["pixels", "domain"]}}) \
        .features.primary == "domain"
    assert resolve_config({"features": {"extractors": ["pixels"]}}).features.primary == "pixels"
    with pytest.raises(InputError, match=r"features\.primary: 'inception' is not one of"):
        resolve_config({"features": {"extractors": ["pixels"], "primary": "inception"}})


def test_extractor_options_merge_the_config_over_the_budget():
    config = resolve_config({"budget": "smoke",
                             "features": {"options": {"domain": {"width": 24}}}})
    assert config.extractor_options("domain") == {"epochs": 1, "width": 24}
    assert config.extractor_options("pixels") == {}


def test_shipped_example_configs_resolve():
    from pathlib import Path

    from synthlens.generators import GENERATORS

    root = Path(__file__).resolve().parents[1] / "configs"
    for path in sorted(root.glob("*.yaml")):
        config = load_config(path, budget="smoke")
        for spec in config["generators"]:
            assert spec["family"] in GENERATORS, (path, spec)
            assert spec["family"] in config["budget_settings"]["generators"], (path, spec)
