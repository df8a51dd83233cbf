"""Gate expressions are read, and refused, before anything runs."""

from __future__ import annotations

import pytest

from synthlens.errors import InputError
from synthlens.gates import parse_gate


def known(name: str) -> bool:
    return name in {"memorisation_rate", "copy_rate", "fid@inception", "utility.augment.gain_auroc"}


@pytest.mark.parametrize(("text", "metric", "op", "threshold", "set_name"), [
    ("memorisation_rate > 0.01", "memorisation_rate", ">", 0.01, None),
    ("utility.augment.gain_auroc<0", "utility.augment.gain_auroc", "<", 0.0, None),
    ("fid@inception >= 30", "fid@inception", ">=", 30.0, None),
    ("copy_rate > floor", "copy_rate", ">", None, None),
    ("dcgan: copy_rate <= 1e-3", "copy_rate", "<=", 0.001, "dcgan"),
])
def test_gates_parse(text, metric, op, threshold, set_name):
    gate = parse_gate(text, known_metric=known, known_sets=["dcgan", "cvae"])
    assert (gate.metric, gate.op, gate.threshold, gate.set_name) == (metric, op, threshold,
                                                                    set_name)
    assert gate.uses_floor is (threshold is None)


@pytest.mark.parametrize(("text", "message"), [
    ("memorisation_rate = 0.01", "OP one of"),
    ("memorisation_rate >", "cannot read gate"),
    ("memorisation_rate > lots", "neither a number nor 'floor'"),
    ("memorisation_rate > nan", "must be finite"),
    ("memorisation > 0.01", "unknown metric 'memorisation'"),
    ("utility.augment.gain_auroc < floor", "no real-vs-real floor"),
    ("stylegan: copy_rate > 0", "unknown set 'stylegan'"),
])
def test_malformed_gates_are_input_errors(text, message):
    with pytest.raises(InputError, match=message) as error:
        parse_gate(text, source="run.yaml: gates[0]", known_metric=known,
                   known_sets=["dcgan", "cvae"])
    assert "run.yaml: gates[0]" in str(error.value)
