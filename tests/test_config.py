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
    with pytest.raises(InputError, match=r"c\.yaml: unknown key 'datasett'"):
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


def test_shipped_example_configs_resolve():
    from pathlib import Path

    from synthlens.generators import GENERATORS

    root = Path(__file__).resolve().parents[1] / "configs"
    for path in sorted(root.glob("*.yaml")):
        config = load_config(path, budget="smoke")
        for spec in config["generators"]:
            assert spec["family"] in GENERATORS, (path, spec)
            assert spec["family"] in config["budget_settings"]["generators"], (path, spec)
