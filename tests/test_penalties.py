"""The penalty plugins: every spec is complete and usable; JumpReLU's maths against written-out formulas."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from sae_core.config.run import ModelConfig, RunConfig
from sae_core.config.sections import DECLARED
from sae_core.data import datasets as data
from sae_core.models import REGISTRY, build
from sae_core.penalties import jumprelu
from sae_core.penalties.registry import PENALTIES, PENALTY_NAMES, get_penalty
from sae_core.store import export
from sae_core.train.objective import loss_terms
from sae_core.train.trainer import Trainer

CORE_FIELDS = {f.name for f in dataclasses.fields(ModelConfig)} - set(DECLARED)


def test_every_penalty_module_in_the_package_is_registered_and_nothing_else():
    folder = Path(jumprelu.__file__).parent
    modules = {p.stem for p in folder.glob("*.py")} - {"__init__", "spec", "registry", "code"}
    assert set(PENALTY_NAMES) == modules


@pytest.mark.parametrize("name", PENALTY_NAMES)
def test_a_penalty_spec_says_what_the_pages_need(name):
    spec = PENALTIES[name]
    assert spec.name == name and spec.title and spec.short and spec.summary
    assert spec.has_term == spec.uses_beta, "β weighs the term: a penalty has both or neither"
    if spec.uses_rho:
        assert spec.uses_beta
    if not (spec.uses_rho and spec.uses_beta):
        assert spec.hidden_reason, "the page says why it disables ρ or β"
    if spec.beta_default is not None:
        assert 0.0 <= spec.beta_default <= spec.beta_max
    assert all(0.0 <= b <= spec.beta_max for b in spec.beta_stops)
    for setting in spec.settings:
        assert setting.name not in CORE_FIELDS and setting.doc and DECLARED[setting.name] == setting


@pytest.mark.parametrize("name", PENALTY_NAMES)
def test_each_penalty_trains_each_variant_that_takes_it(name):
    spec = get_penalty(name)
    for variant, vspec in REGISTRY.items():
        if name not in vspec.penalties or vspec.fixed_penalty is not None:
            continue
        cfg = ModelConfig(variant=variant, penalty=name, hidden=6, k=2, layers=(5,), kernels=2, kernel_size=3,
                          beta=spec.beta_default or 0.0)  # fmt: skip
        torch.manual_seed(0)
        model = build(cfg, 36, (6, 6))
        x = torch.rand(8, 36)
        terms = loss_terms(model, x, model(x), cfg)
        assert ("sparsity" in terms) == spec.has_term, (variant, name)
        terms["total"].backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters()), variant


def test_a_variant_refuses_a_penalty_it_does_not_take_naming_the_ones_it_does():
    takes = REGISTRY["contractive"].penalties
    with pytest.raises(ValueError, match=f"penalty must be one of {', '.join(takes)} for the contractive"):
        ModelConfig(variant="contractive", penalty="jumprelu")


# ----- JumpReLU ---------------------------------------------------------------------------------------------
def test_jumprelu_passes_z_only_above_each_units_threshold():
    layer = jumprelu.JumpReLU(3, threshold=0.5, bandwidth=0.1)
    with torch.no_grad():
        layer.log_threshold.copy_(torch.tensor([0.2, 0.5, 1.0]).log())
    z = torch.tensor([[0.1, 0.6, 0.9], [0.3, 0.4, 1.5], [-2.0, 0.51, 1.01]])
    expected = torch.tensor([[0.0, 0.6, 0.0], [0.3, 0.0, 1.5], [0.0, 0.51, 1.01]])
    assert torch.allclose(layer(z), expected)
    assert torch.equal(layer.gate, (expected != 0).float())


def test_jumprelu_gradients_are_the_straight_through_formulas():
    """∂/∂θ of Σ g·z·H(z−θ) + β/m Σ H(z−θ), with K(u) = 1 for |u| < ½: −Σ g·z/ε·K − β/m Σ K/ε; ∂/∂z = g·H."""
    eps, beta = 0.2, 0.3
    gen = torch.Generator().manual_seed(1)
    z = (torch.rand(50, 4, generator=gen, dtype=torch.float64) * 2).requires_grad_()
    g = torch.randn(50, 4, generator=gen, dtype=torch.float64)
    layer = jumprelu.JumpReLU(4, threshold=0.7, bandwidth=eps).double()
    h = layer(z)
    cfg = ModelConfig(penalty="jumprelu", beta=beta, hidden=4)
    total = (g * h).sum() + jumprelu.l0_term(h, cfg, layer)
    total.backward()

    theta = torch.full((4,), 0.7, dtype=torch.float64)
    window = ((z.detach() - theta).abs() < eps / 2).double()
    d_theta = -(g * z.detach() / eps * window).sum(0) - beta / 50 * (window / eps).sum(0)
    d_log_theta = d_theta * theta  # θ = exp(log θ)
    assert torch.allclose(layer.log_threshold.grad, d_log_theta)
    assert torch.allclose(z.grad, g * (z.detach() > theta).double())  # nothing through the L0 step


def test_jumprelu_l0_term_is_beta_times_the_mean_count_of_units_on():
    layer = jumprelu.JumpReLU(5, threshold=0.5, bandwidth=0.1)
    z = torch.tensor([[0.1, 0.6, 0.9, 0.0, 2.0], [0.7, 0.4, 0.2, 0.8, 0.0]])
    h = layer(z)
    cfg = ModelConfig(penalty="jumprelu", beta=0.25, hidden=5)
    assert jumprelu.l0_term(h, cfg, layer).item() == pytest.approx(0.25 * (3 + 2) / 2)


def test_jumprelu_straight_through_estimate_is_the_derivative_of_the_smoothed_step():
    assert jumprelu.straight_through_check() < 1e-8
    assert jumprelu.straight_through_check(seed=3) < 1e-8


def test_jumprelu_thresholds_are_saved_and_loaded_with_the_model(tmp_path):
    cfg = RunConfig().replace(penalty="jumprelu", beta=0.05, hidden=6, jump_threshold=0.3)
    torch.manual_seed(0)
    model = build(cfg.model, 64, (8, 8))
    with torch.no_grad():
        model.code_layer.log_threshold.copy_(torch.linspace(-3, 0, 6))
    export.save(model, cfg, tmp_path / "run", image_shape=(8, 8))
    loaded, loaded_cfg, _ = export.load(tmp_path / "run")
    assert loaded_cfg == cfg
    assert torch.equal(loaded.code_layer.log_threshold, model.code_layer.log_threshold)
    x = torch.rand(4, 64)
    assert torch.equal(loaded.encode(x), model.eval().encode(x))


def test_jumprelu_thresholds_are_not_weight_decayed():
    model = build(ModelConfig(penalty="jumprelu", variant="conv", kernels=2, kernel_size=3), 36, (6, 6))
    decayed = {id(p) for p in model.decayed_weights()}
    assert id(model.code_layer.log_threshold) not in decayed and len(decayed) == 2


def test_jumprelu_config_rules():
    with pytest.raises(
        ValueError, match="activation must be jumprelu \\(or auto\\) with the jumprelu penalty"
    ):
        ModelConfig(penalty="jumprelu", activation="relu")
    with pytest.raises(ValueError, match=r"jump_threshold must be in \(0, 10\]"):
        ModelConfig(penalty="jumprelu", jump_threshold=0.0)
    assert ModelConfig(penalty="jumprelu").hidden_activation == "jumprelu"


def _bars_run(beta: float) -> tuple[float, float, float]:
    cfg = RunConfig.from_flat(
        {"dataset": "bars", "n_bars": 1000, "hidden": 16, "penalty": "jumprelu", "beta": beta,
         "steps": 600, "batch_size": 250, "lr": 0.03, "snapshot_every": 600}
    )  # fmt: skip
    trainer = Trainer(cfg, data.load(cfg.data))
    *_, snap = trainer.run()
    theta = float(trainer.model.code_layer.threshold.detach().mean())
    return snap.metrics["l0"], snap.metrics["fve"], theta


@pytest.mark.slow
def test_a_larger_l0_weight_raises_the_thresholds_and_lowers_l0_on_bars():
    l0_free, fve_free, theta_free = _bars_run(0.0)
    l0_sparse, fve_sparse, theta_sparse = _bars_run(0.1)
    assert l0_sparse < 0.7 * l0_free and theta_sparse > theta_free
    assert fve_sparse > 0.9  # sparser, and still a good reconstruction of the bars
