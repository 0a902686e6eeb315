"""Controls that do what they say: β per penalty, values a link cannot put out of a control's range,
settings that do not apply shown as such, runs that say they failed, and no misleading numbers before
training. Unit tests of the diagnostics plus the Train page driven with AppTest."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from apptest_helpers import pin_navigation_mode, poll, stop_jobs
from streamlit.testing.v1 import AppTest

from sae_core.analysis import diagnostics
from sae_core.config.run import BETA_DEFAULTS, RunConfig
from sae_core.data.datasets import load
from sae_core.figures import training as figures
from sae_core.train.trainer import Trainer

APP = Path(__file__).resolve().parent.parent / "app.py"
RUN_TIMEOUT = 60
TINY = {"dataset": "digits", "hidden": "4", "steps": "100000", "batch_size": "32"}


# ----- β per penalty and the diagnostics: real runs ------------------------------------------------------
@pytest.fixture(scope="module")
def digits():
    return load(RunConfig().data)


def _run(digits, steps: int, **changes):
    torch.manual_seed(0)
    flat = {"dataset": "digits", "hidden": 25, "steps": steps, "snapshot_every": steps, "device": "cpu"}
    trainer = Trainer(RunConfig.from_flat({**flat, **changes}), digits)
    return list(trainer.run())[-1]


def test_the_l1_default_beta_keeps_most_units_alive_where_the_kl_default_kills_them(digits):
    default = _run(digits, 600, penalty="l1", beta=BETA_DEFAULTS["l1"], lr=0.003)
    kl_beta = _run(digits, 600, penalty="l1", beta=BETA_DEFAULTS["kl"], lr=0.003)
    dead_default = int((default.density == 0).sum())
    dead_kl_beta = int((kl_beta.density == 0).sum())
    assert dead_default < 25 // 2 and default.metrics["fve"] > 0.7, (dead_default, default.metrics)
    assert dead_kl_beta >= 23, dead_kl_beta  # β 3 under L1: every unit (or nearly) dies
    assert diagnostics.run_warnings(default) == []
    (warning,) = diagnostics.run_warnings(kl_beta)
    assert f"{dead_kl_beta} of 25 units are dead" in warning and "L1 weight β = 3" in warning


def test_a_huge_learning_rate_is_reported_as_saturation(digits):
    snap = _run(digits, 100, lr=50.0)
    acts = snap.activations
    independent = float(((acts < 1e-3) | (acts > 1 - 1e-3)).mean())
    assert diagnostics.saturated_fraction(snap) == pytest.approx(independent)
    assert independent > 0.95
    (warning,) = diagnostics.run_warnings(snap)
    assert warning.startswith("Saturated:") and "learning rate (50)" in warning
    healthy = _run(digits, 100, lr=0.01)
    assert diagnostics.saturated_fraction(healthy) < 0.5 and diagnostics.run_warnings(healthy) == []


def test_numbers_of_an_untrained_model_wait_for_the_first_step(digits):
    trainer = Trainer(RunConfig.from_flat({"dataset": "digits", "hidden": 5, "device": "cpu"}), digits)
    fresh = trainer.snapshot("ready")
    values = {label: value for label, value, _ in figures.metrics_row(fresh)}
    assert values["Variance explained"] == "–" and values["Dead units"] == "–"
    assert values["Reconstruction error"] != "–"  # the error of a fresh model is a fair number
    trained = dataclasses.replace(fresh, step=1)
    values = {label: value for label, value, _ in figures.metrics_row(trained)}
    assert values["Variance explained"].endswith("%") and values["Dead units"].endswith("/ 5")
    assert diagnostics.run_warnings(fresh) == []


# ----- the page ------------------------------------------------------------------------------------------
@pytest.fixture
def apps(monkeypatch):
    pin_navigation_mode(monkeypatch)
    made: list[AppTest] = []

    def make(query: dict[str, str]) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT)
        at.query_params.update({**TINY, **query})
        made.append(at)
        at.run()
        at.switch_page("pages/train.py").run()
        return at

    yield make
    for at in made:
        stop_jobs(at)


def _no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


@pytest.mark.parametrize(
    "query, message",
    [
        ({"beta": "50"}, "β can be at most 10 for the KL penalty (you asked for `50`)"),
        ({"penalty": "l1", "beta": "5"}, "β can be at most 1 for the L1 penalty (you asked for `5`)"),
        ({"beta": "5", "penalty": "l1"}, "β can be at most 1 for the L1 penalty (you asked for `5`)"),
    ],
)
def test_a_link_with_beta_out_of_its_controls_range_is_refused_next_to_it(apps, query, message):
    at = apps(query)
    _no_exceptions(at)  # no StreamlitValueAboveMaxError traceback
    assert any(message in e for e in _errors(at)), _errors(at)
    job = at.session_state["job"]
    penalty = job.config.model.penalty
    assert job.config.model.beta == BETA_DEFAULTS[penalty]  # the penalty's default stands in


def test_a_link_with_only_the_l1_penalty_gets_the_l1_beta(apps):
    at = apps({"penalty": "l1"})
    _no_exceptions(at)
    assert at.session_state["job"].config.model.beta == BETA_DEFAULTS["l1"]
    beta = at.select_slider(key="beta")
    assert beta.value == BETA_DEFAULTS["l1"] and "log scale" in beta.label
    assert min(beta.options) == "0.0" and max(beta.options) == "1.0"
    assert not _errors(at)


def test_choosing_a_penalty_on_the_page_brings_its_beta(apps):
    at = apps({})
    assert at.slider(key="beta").value == BETA_DEFAULTS["kl"]
    at.selectbox(key="penalty").set_value("l1").run()
    _no_exceptions(at)
    assert at.select_slider(key="beta").value == BETA_DEFAULTS["l1"]
    assert at.session_state["job"].config.model.beta == BETA_DEFAULTS["l1"]
    assert any("a good start for the l1 penalty" in i.value for i in at.info)
    at.selectbox(key="penalty").set_value("kl").run()
    assert at.slider(key="beta").value == BETA_DEFAULTS["kl"]


def test_deep_and_vae_collapse_at_the_bars_learning_rate_which_training_confirms():
    """Why VariantSpec.adam_lr exists: on digits at the bars preset's Adam lr 0.1 a deep and a VAE model keep
    no active unit after 400 steps, at 0.01 they do; a conv model needs no such limit."""
    data = load(RunConfig.from_flat({"dataset": "digits"}).data)

    def active_units(variant: str, lr: float) -> float:
        flat = {"dataset": "digits", "variant": variant, "lr": lr, "steps": 400, "seed": 0}
        trainer = Trainer(RunConfig.from_flat(flat), data)
        for _ in trainer.run():
            pass
        model = trainer.model.eval()
        with torch.no_grad():
            codes = model.encode(data.test)
        return float(model.active(codes).float().mean(0).gt(0.01).sum())

    for variant in ("deep", "vae"):
        limit = RunConfig.from_flat({"variant": variant}).model.spec.adam_lr
        assert limit is not None and active_units(variant, 0.1) == 0 and active_units(variant, limit) >= 2
    assert RunConfig.from_flat({"variant": "conv"}).model.spec.adam_lr is None


def test_picking_deep_on_the_bars_preset_lowers_the_learning_rate_and_says_why(apps):
    at = apps({})
    assert at.number_input(key="lr").value == pytest.approx(0.1)
    at.selectbox(key="variant").set_value("conv").run()
    assert at.number_input(key="lr").value == pytest.approx(0.1)  # conv trains well at 0.1
    at.selectbox(key="variant").set_value("deep").run()
    _no_exceptions(at)
    assert at.number_input(key="lr").value == pytest.approx(0.01)
    assert at.session_state["job"].config.train.lr == pytest.approx(0.01)
    assert any("Learning rate set to 0.01" in i.value for i in at.info)
    linked = apps({"variant": "vae"})
    assert linked.session_state["job"].config.train.lr == pytest.approx(0.01)
    assert apps({"variant": "vae", "lr": "0.05"}).session_state["job"].config.train.lr == pytest.approx(0.05)


@pytest.mark.parametrize(
    "query, rho_off, beta_off, reason",
    [
        ({"penalty": "kl"}, False, False, None),
        ({"penalty": "l1"}, True, False, "ρ is not used by the L1 penalty"),
        ({"penalty": "topk", "k": "2"}, True, True, "ρ and β are not used by top-k"),
        ({"penalty": "none"}, True, True, "ρ and β are not used: there is no sparsity penalty"),
        ({"variant": "vae"}, True, True, "The prior KL regularises the VAE's code"),
        ({"variant": "ksparse", "k": "2"}, True, True, "Top-k is this model's regulariser"),
    ],
)
def test_controls_that_do_not_apply_are_disabled_with_the_reason(apps, query, rho_off, beta_off, reason):
    at = apps(query)
    _no_exceptions(at)
    assert at.select_slider(key="rho").disabled == rho_off
    beta = at.select_slider(key="beta") if query.get("penalty") == "l1" else at.slider(key="beta")
    assert beta.disabled == beta_off
    captions = " ".join(c.value for c in at.sidebar.caption)
    if reason is not None:
        assert reason in captions
    if "variant" in query:  # variants with a regulariser of their own have no penalty select
        assert "penalty" not in [s.key for s in at.selectbox]


def test_the_page_warns_when_a_run_saturates(apps):
    at = apps({"lr": "50", "hidden": "8"})
    job = at.session_state["job"]
    at.button(key="train").click().run()
    poll(at, lambda: job.step_count >= 50, "50 steps", 60)
    job.pause()
    at.run()
    _no_exceptions(at)
    warnings = [w.value for w in at.warning]
    assert any(w.startswith("Saturated:") and "learning rate (50)" in w for w in warnings), warnings
    values = {m.label: m.value for m in at.metric}
    assert np.isfinite(job.latest().metrics["fve"]) and values["Variance explained"] != "–"
