"""Advice that follows the numbers in use (issue 21): a warning never suggests the learning rate or the
weight that is already set."""

from __future__ import annotations

import re

import pytest

from sae_core.config.run import RunConfig
from sae_core.penalties.registry import PENALTIES
from sae_core.penalties.spec import smaller

SUGGESTED = re.compile(r"\b(?:try|say) (\d[\d.e-]*)")


@pytest.mark.parametrize("value", [3.0, 1.0, 0.3, 0.1, 0.05, 0.03, 0.01, 0.003, 0.001, 1e-4, 1e-6])
def test_a_suggested_value_is_well_below_the_one_in_use(value):
    assert 0 < smaller(value) <= value / 2


@pytest.mark.parametrize("penalty", sorted(PENALTIES))
@pytest.mark.parametrize(("lr", "beta"), [(0.1, 1.0), (0.01, 0.3), (0.003, 0.1), (0.001, 0.03)])
def test_dead_unit_advice_never_repeats_the_learning_rate_or_beta_in_use(penalty, lr, beta):
    model = RunConfig.from_flat({"penalty": penalty, "beta": beta}).model
    cause = PENALTIES[penalty].dead_units_cause(model, lr)
    suggested = [float(n.rstrip(".")) for n in SUGGESTED.findall(cause)]
    assert lr not in suggested and beta not in suggested, cause
    if "learning rate" in cause and suggested:
        assert min(suggested) < lr, cause


def test_the_kl_advice_at_the_usual_rate_offers_a_smaller_one():
    model = RunConfig.from_flat({"penalty": "kl"}).model
    cause = PENALTIES["kl"].dead_units_cause(model, 0.01)
    assert "smaller learning rate (0.01)" not in cause
    assert "below the current 0.01 (say 0.003)" in cause
