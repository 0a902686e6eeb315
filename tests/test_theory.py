"""The Theory page (pages/theory.py) and its library side (sae_core.analysis.theory, sae_core.figures.theory).

Formulas are checked against ones written out here, and against autograd: the UFLDL sparsity delta is
what back-propagation gives for the KL term.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from apptest_helpers import pin_navigation_mode, poll, stop_jobs
from streamlit.testing.v1 import AppTest

from sae_core import presets
from sae_core.analysis import theory
from sae_core.config.run import ModelConfig
from sae_core.figures import theory as figures_theory
from sae_core.train import gradcheck

APP = Path(__file__).resolve().parent.parent / "app.py"
TINY_PAGE = {"dataset": "digits", "hidden": "4", "steps": "100000", "batch_size": "32"}


def _kl_slope(rho: float, q: float) -> float:
    """d/dq [ρ log(ρ/q) + (1−ρ) log((1−ρ)/(1−q))], written out."""
    return -rho / q + (1.0 - rho) / (1.0 - q)


def _kl(rho: float, q: float) -> float:
    return rho * math.log(rho / q) + (1.0 - rho) * math.log((1.0 - rho) / (1.0 - q))


# ----- the KL penalty and its gradient ----------------------------------------------------------------------
@pytest.mark.parametrize(("rho", "q"), [(0.05, 0.01), (0.05, 0.3), (0.1, 0.1), (0.3, 0.9), (0.01, 0.5)])
def test_kl_and_its_slope_match_the_written_out_formulas(rho, q):
    assert float(theory.kl(rho, q)) == pytest.approx(_kl(rho, q), rel=1e-12)
    assert float(theory.kl_slope(rho, q)) == pytest.approx(_kl_slope(rho, q), rel=1e-12)
    h = 1e-6  # and the slope is the curve's: central difference of the formula
    assert float(theory.kl_slope(rho, q)) == pytest.approx(
        (_kl(rho, q + h) - _kl(rho, q - h)) / (2 * h), rel=1e-6, abs=1e-8
    )


@pytest.mark.parametrize(("rho", "at"), [(0.05, 0.3), (0.2, 0.05), (0.1, 0.9)])
def test_kl_curve_figure_draws_the_tangent_with_the_analytic_slope(rho, at):
    fig = figures_theory.kl_curve_figure(rho, at, beta=3.0)
    curve, tangent, point = fig.data[:3]
    (x0, x1), (y0, y1) = tangent.x, tangent.y
    assert (y1 - y0) / (x1 - x0) == pytest.approx(_kl_slope(rho, at), rel=1e-9)
    assert point.x[0] == at and point.y[0] == pytest.approx(_kl(rho, at), rel=1e-9)
    assert np.interp(at, curve.x, curve.y) == pytest.approx(_kl(rho, at), rel=1e-3)
    assert fig.layout.xaxis.title.text == "mean activation ρ̂" and fig.layout.yaxis.title.text == "KL(ρ ‖ ρ̂)"
    assert f"slope {_kl_slope(rho, at):.4g}" in fig.layout.title.text


def test_kl_curve_figure_puts_the_models_units_on_the_curve():
    units = np.array([0.01, 0.05, 0.2, 0.6])
    dots = figures_theory.kl_curve_figure(0.05, 0.3, units).data[3]
    np.testing.assert_allclose(dots.y, [_kl(0.05, q) for q in units], rtol=1e-9)


def test_beta_times_the_kl_slope_is_what_backpropagation_gives_the_hidden_layer():
    """UFLDL: the KL term adds β(−ρ/ρ̂ⱼ + (1−ρ)/(1−ρ̂ⱼ)) · f'(zⱼ) / m to ∂J/∂zⱼ⁽ⁱ⁾ of every sample i."""
    torch.manual_seed(0)
    m, hidden, rho, beta = 7, 5, 0.1, 3.0
    z = torch.randn(m, hidden, dtype=torch.float64, requires_grad=True)
    h = torch.sigmoid(z)
    rho_hat = h.mean(dim=0)
    penalty = beta * (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()
    (grad,) = torch.autograd.grad(penalty, z)
    a = h.detach().numpy()
    delta = beta * theory.kl_slope(rho, rho_hat.detach().numpy())  # UFLDL's sparsity delta
    np.testing.assert_allclose(grad.numpy(), delta[None, :] * a * (1 - a) / m, rtol=1e-10)


def test_lifetime_and_population_sparsity_on_a_known_code():
    active = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 0, 0], [1, 0, 1, 0]], dtype=bool)
    np.testing.assert_allclose(theory.lifetime_sparsity(active), [1.0, 0.25, 0.25, 0.0])
    np.testing.assert_allclose(theory.population_sparsity(active), [0.25, 0.5, 0.25, 0.5])
    acts = np.where(active, 0.9, 0.02)
    pop = figures_theory.population_figure(acts, 0.1)
    assert pop.data[0].y.sum() == 4
    assert pop.layout.xaxis.title.text == "fraction of units active on a sample (mean 37.5%)"
    life = figures_theory.lifetime_figure(acts, 0.1)
    assert list(life.data[0].x) == ["0", "1", "2", "3"]  # most often active first (stable order on ties)
    assert life.layout.yaxis.title.text == "activation hⱼ(x)"


# ----- the gradient check of the current settings -----------------------------------------------------------
@pytest.mark.parametrize(
    "model",
    [
        presets.get(presets.DEFAULT_PRESET).config.model,
        ModelConfig(penalty="l1", beta=0.01),
        ModelConfig(penalty="topk", k=3),
        ModelConfig(variant="denoising", rho=0.02, beta=5.0),
    ],
    ids=["default-preset", "l1", "topk", "denoising"],
)
def test_gradient_check_of_a_configuration_is_below_tolerance(model):
    errors = theory.gradient_check(model)
    assert errors and max(errors.values()) < gradcheck.TOLERANCE, errors


def test_gradient_check_copies_the_objectives_settings():
    model = ModelConfig(rho=0.02, beta=5.0, weight_decay=3e-3)
    copied = theory.tiny_copy(model)
    assert (copied["rho"], copied["beta"], copied["weight_decay"]) == (0.02, 5.0, 3e-3)


def test_penalty_comparison_draws_one_filter_grid_per_penalty():
    assert theory.COMPARED_PENALTIES == ("kl", "l1", "topk", "jumprelu")  # every penalty with a demo run
    runs = [theory.penalty_run(p, steps=20) for p in theory.COMPARED_PENALTIES]
    n = len(runs)
    assert [r.encoder_weight.shape for r in runs] == [(16, 64)] * n
    assert runs[2].l0 == pytest.approx(4.0)  # top-k keeps exactly k = 4 units per input
    fig = figures_theory.penalty_filters_figure(runs)
    assert [t.type for t in fig.data] == ["heatmap"] * n
    names = [fig.layout[f"xaxis{i if i > 1 else ''}"].title.text for i in range(1, n + 1)]
    assert names[0].startswith("<b>KL(ρ‖ρ̂) on sigmoid units</b><br>ρ = 0.1, β = 3 · L0 ")
    assert names[1].startswith("<b>L1 on ReLU units</b><br>β = 0.05 · L0 ")
    assert names[2].startswith("<b>top-k on linear units</b><br>k = 4 · L0 4.0 · bars found ")
    assert names[3].startswith("<b>L0 on JumpReLU units</b><br>β = 0.05, θ₀ = 0.3 · L0 ")
    with pytest.raises(ValueError, match="penalty must be one of kl, l1, topk, jumprelu, got 'none'"):
        theory.penalty_run_config("none")


@pytest.mark.parametrize("penalty", ["l1", "topk", "none", "jumprelu"])
def test_a_model_not_under_kl_says_what_it_has_instead_and_has_no_dots_on_the_kl_curve(penalty):
    model = ModelConfig(hidden=8, penalty=penalty, k=3)
    assert theory.sparsity_instead(model) == model.penalty_spec.instead_of_kl != ""
    assert theory.not_kl_note(model).startswith("The current model is not under the KL penalty")
    assert theory.sparsity_instead(ModelConfig(penalty="kl")) is None
    vae = ModelConfig(variant="vae")
    assert theory.sparsity_instead(vae) == vae.spec.penalty_reason


# ----- the page ---------------------------------------------------------------------------------------------
@pytest.fixture
def apps(monkeypatch):
    pin_navigation_mode(monkeypatch)
    made: list[AppTest] = []

    def make() -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=120)  # the penalty runs train on the first visit
        at.query_params.update(TINY_PAGE)
        made.append(at)
        at.run()
        return at

    yield make
    for at in made:
        stop_jobs(at)


def _no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def test_theory_page_gradient_check_reports_relative_errors_below_1e7(apps):
    at = apps()
    at.switch_page("pages/theory.py").run()
    _no_exceptions(at)
    assert any("Train a model on the Train page" in i.value for i in at.info)  # no model yet
    at.button(key="gradcheck_button").click().run()
    _no_exceptions(at)
    table = at.dataframe[0].value
    assert set(table["parameter"]) == {"encoder.weight", "encoder.bias", "decoder.weight", "decoder.bias"}
    errors = [float(v) for v in table["relative error"]]
    assert max(errors) < 1e-7, errors
    assert any("the check passes" in s.value for s in at.success)


def test_theory_page_draws_the_model_trained_on_train(apps):
    at = apps()
    at.switch_page("pages/train.py").run()
    job = at.session_state["job"]
    at.button(key="train").click().run()
    poll(at, lambda: job.step_count > 10, "some training steps", 60)
    at.button(key="pause").click().run()
    at.switch_page("pages/theory.py").run()
    _no_exceptions(at)
    assert "The maths of a sparse autoencoder" in [t.value for t in at.title]
    assert len(at.latex) >= 6  # objective, KL, its gradient, the two deltas, the weight gradients
    assert any("Dots: the 4 ρ̂ⱼ of the current model's KL penalty" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 5  # KL curve, the (0, 1) range, lifetime, population, penalties
    at.slider(key="theory_rho").set_value(0.2).run()
    at.slider(key="theory_rho_hat").set_value(0.05).run()
    slope = next(m for m in at.metric if m.label.startswith("Slope"))
    assert float(slope.value) == pytest.approx(_kl_slope(0.2, 0.05), rel=1e-3)
    _no_exceptions(at)


def test_theory_page_ends_with_why_superposition_matters_and_the_mmcs_formula(apps):
    at = apps()
    at.switch_page("pages/theory.py").run()
    _no_exceptions(at)
    headers = [h.value for h in at.header]
    assert headers[-1] == "From UFLDL to language models: features in superposition"
    text = " ".join(m.value for m in at.markdown)
    assert "Elhage et al. 2022" in text and "Sharkey, Braun & Millidge 2022" in text and "Bricken" in text
    shown = " ".join(latex.value for latex in at.latex)
    assert theory.MMCS_TEX in shown and theory.SUPERPOSITION_TEX in shown
