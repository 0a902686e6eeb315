"""Metrics on a hand-made example whose every number is worked out below."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sae_core.config.run import ModelConfig
from sae_core.models import build
from sae_core.models.base import is_active
from sae_core.train import metrics

# Three samples of two pixels and their reconstructions.
X = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 2.0]])
RECON = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
# Codes of four units; with the sigmoid threshold 0.1 unit 2 is never active (dead).
CODES = torch.tensor(
    [
        [0.90, 0.05, 0.001, 0.20],
        [0.50, 0.02, 0.003, 0.05],
        [0.05, 0.30, 0.002, 0.01],
    ]
)


def test_summary_matches_the_hand_computation():
    got = metrics.summary(X, RECON, CODES, active=CODES > 0.1)
    # Squared errors per sample: 1, 0, 1 -> Σ = 2; ½·mean of per-sample sums = ½·(2/3).
    assert got["recon_error"] == pytest.approx(1 / 3)
    assert got["mse"] == pytest.approx(2 / 6)
    # Pixel means (2/3, 2/3); Σ(x − x̄)² = (4+1+1)/9 + (4+4+16)/9 = 10/3; fve = 1 − 2 / (10/3) = 0.4.
    assert got["fve"] == pytest.approx(0.4)
    # Active entries (> 0.1): row 0 has 0.90, 0.20; row 1 has 0.50; row 2 has 0.30 -> (2 + 1 + 1) / 3.
    assert got["l0"] == pytest.approx(4 / 3)
    assert got["dead_fraction"] == pytest.approx(1 / 4)
    assert got["mean_activation"] == pytest.approx((1.45 + 0.37 + 0.006 + 0.26) / 12)


def test_perfect_reconstruction_explains_all_variance():
    got = metrics.summary(X, X.clone(), CODES, active=CODES > 0.1)
    assert got["fve"] == pytest.approx(1.0)
    assert got["recon_error"] == 0.0


def test_predicting_the_pixel_mean_explains_no_variance():
    got = metrics.summary(X, X.mean(dim=0).expand_as(X), CODES, active=CODES > 0.1)
    assert got["fve"] == pytest.approx(0.0, abs=1e-6)


def test_unit_stats_rho_hat_and_density_match_the_hand_computation():
    stats = metrics.unit_stats(CODES, active=CODES > 0.1)
    torch.testing.assert_close(stats["rho_hat"], torch.tensor([1.45, 0.37, 0.006, 0.26]) / 3)
    torch.testing.assert_close(stats["density"], torch.tensor([2 / 3, 1 / 3, 0.0, 1 / 3]))


def test_top_activating_lists_the_strongest_samples_per_unit_in_order():
    top = metrics.top_activating(CODES, n=2)
    assert top.shape == (4, 2)
    assert top.tolist() == [[0, 1], [2, 0], [1, 2], [0, 1]]
    assert metrics.top_activating(CODES, n=10).shape == (4, 3)  # n larger than the data is cut to N


def test_active_threshold_depends_on_the_hidden_activation():
    assert build(ModelConfig(hidden=2), 4, (2, 2)).active_threshold == 0.1
    assert build(ModelConfig(hidden=2, penalty="l1"), 4, (2, 2)).active_threshold == 0.0
    assert build(ModelConfig(variant="ksparse", hidden=2, k=1), 4, (2, 2)).active_threshold == 0.0


def test_signed_codes_count_as_active_when_non_zero_and_sigmoid_codes_above_the_threshold():
    codes = torch.tensor([[-0.3, 0.0, 2.0], [0.0, -1e-9, 0.0]])
    assert is_active(codes, 0.0).tolist() == [[True, False, True], [False, True, False]]
    assert is_active(torch.tensor([[0.09, 0.11]]), 0.1).tolist() == [[False, True]]
    assert metrics.active_rule(0.0) == "hⱼ ≠ 0" and metrics.active_rule(0.1) == "hⱼ > 0.1"


def test_ksparse_with_10_units_and_k_8_reports_l0_of_exactly_8():
    """Top-k keeps the 8 largest linear values, negative ones among them when fewer than 8 are positive:
    every kept value counts, so L0 is 8.0 exactly and no unit is dead (the old 1e-6 rule said 6.5)."""
    cfg = ModelConfig(variant="ksparse", hidden=10, k=8, output="linear")
    torch.manual_seed(0)
    model = build(cfg, 64, (8, 8))
    x = torch.rand(200, 64, generator=torch.Generator().manual_seed(0))
    got = metrics.evaluate(model, x)
    _, codes = metrics.forward_all(model, x)
    assert (codes < 0).any()  # kept negative values exist, so this is a real test of the sign
    assert got["l0"] == 8.0
    assert got["dead_fraction"] == 0.0


def test_vae_l0_counts_the_latent_dimensions_in_use():
    """μ of 3 dimensions over 50 inputs: two vary (variance 1 and 0.04 > 0.01), one barely (1e-4).
    L0 is the number in use, 2, on every sample; one in three is dead."""
    model = build(ModelConfig(variant="vae", latent=3, hidden=4), 4, (2, 2))
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(50, 3, generator=g) * torch.tensor([1.0, 0.2, 0.01]) + 5.0
    active = model.active(mu)
    assert active.tolist() == [[True, True, False]] * 50
    got = metrics.summary(torch.zeros(50, 4), torch.zeros(50, 4), mu, active)
    assert got["l0"] == 2.0 and got["dead_fraction"] == pytest.approx(1 / 3)


def test_evaluate_equals_summary_of_a_forward_pass_in_chunks():
    torch.manual_seed(0)
    model = build(ModelConfig(hidden=3), 4, (2, 2))
    x = torch.rand(10, 4)
    recon, codes = metrics.forward_all(model, x, chunk=3)  # chunks of 3, 3, 3, 1
    with torch.no_grad():
        out = model(x)
    torch.testing.assert_close(recon, out.recon)
    torch.testing.assert_close(codes, out.hidden)
    assert metrics.evaluate(model, x) == pytest.approx(
        metrics.summary(x, out.recon, out.hidden, out.hidden > 0.1)
    )
    assert model.training  # forward_all restores the mode it found


# ----- known answers: the held-out probe and the true features ------------------------------------------
def test_held_out_terms_are_the_objective_on_the_inputs_in_eval_mode():
    torch.manual_seed(1)
    cfg = ModelConfig(hidden=3, rho=0.2, beta=2.0, weight_decay=0.01)
    model = build(cfg, 4, (2, 2))
    x = torch.rand(9, 4, generator=torch.Generator().manual_seed(2))
    got = metrics.held_out(model, x, cfg)
    w1, b1 = model.encoder.weight.detach().double(), model.encoder.bias.detach().double()
    w2, b2 = model.decoder.weight.detach().double(), model.decoder.bias.detach().double()
    h = torch.sigmoid(x.double() @ w1.T + b1)
    recon = torch.sigmoid(h @ w2.T + b2)
    half_sq = 0.5 * ((recon - x.double()) ** 2).sum(dim=1).mean().item()
    rho_hat = h.mean(dim=0)
    kl = (0.2 * torch.log(0.2 / rho_hat) + 0.8 * torch.log(0.8 / (1 - rho_hat))).sum().item()
    decay = 0.5 * 0.01 * ((w1**2).sum() + (w2**2).sum()).item()
    assert got["reconstruction"] == pytest.approx(half_sq, rel=1e-5)
    assert got["recon_error"] == pytest.approx(half_sq, rel=1e-5)
    assert got["sparsity"] == pytest.approx(2.0 * kl, rel=1e-5)
    assert got["total"] == pytest.approx(half_sq + 2.0 * kl + decay, rel=1e-5)
    assert got["samples"] == 9 and model.training


def test_held_out_uses_the_clean_input_of_a_denoising_model():
    torch.manual_seed(0)
    cfg = ModelConfig(hidden=3, variant="denoising", noise_level=0.5)
    model = build(cfg, 4, (2, 2))
    x = torch.rand(50, 4, generator=torch.Generator().manual_seed(3))
    first, second = metrics.held_out(model, x, cfg), metrics.held_out(model, x, cfg)
    assert first == second  # no random corruption in eval mode
    assert first["recon_error"] == pytest.approx(metrics.evaluate(model, x)["recon_error"], rel=1e-6)


def test_feature_match_is_each_true_features_best_pearson_correlation():
    rng = np.random.default_rng(0)
    features, truth = rng.normal(size=(6, 10)), rng.normal(size=(3, 10))
    got = metrics.feature_match(torch.from_numpy(features), torch.from_numpy(truth)).numpy()
    r = np.corrcoef(np.concatenate([truth, features]))[:3, 3:]  # numpy's own Pearson r, [truth, feature]
    np.testing.assert_allclose(got, r.max(axis=1), rtol=1e-10)


def test_features_found_counts_planted_bars_but_not_two_bar_units_or_noise():
    from sae_core.data.datasets import bar_basis

    bars = bar_basis(8).double()  # [16, 64]: rows 0-7 horizontal bars, 8-15 vertical
    rng = np.random.default_rng(1)
    # Units 0-9 draw bars 0-9, scaled and offset (a correlation ignores both), plus a little noise.
    planted = 3.0 * bars[:10] - 1.0 + 0.05 * torch.from_numpy(rng.normal(size=(10, 64)))
    parallel = bars[10] + bars[11]  # two disjoint bars of 8 of the 64 pixels
    crossing = bars[0] + bars[12]  # a horizontal and a vertical bar, one pixel shared
    noise = torch.from_numpy(rng.normal(size=(4, 64)))
    match = metrics.feature_match(torch.cat([planted, parallel[None], crossing[None], noise]), bars)
    assert metrics.features_found(match) == 10 and (match[:10] > 0.99).all()
    # Pearson r by hand: var(bar) = 8 − 8²/64 = 7; cov(a, b) = |a∩b| − 1 (−1 parallel, 0 crossing).
    # r(a + b, a) = (7 + cov) / √(7 · (14 + 2·cov)): 6/√84 ≈ 0.65 for parallel bars, 7/√98 ≈ 0.71 crossing.
    assert match[10].item() == pytest.approx(6 / math.sqrt(84), rel=1e-9)
    assert match[11].item() == pytest.approx(6 / math.sqrt(84), rel=1e-9)
    assert match[12].item() == pytest.approx(7 / math.sqrt(98), rel=1e-9)
    assert (match[13:] < 0.5).all()  # only noise is left for bars 13-15
    assert metrics.features_found(match, threshold=0.6) == 13
