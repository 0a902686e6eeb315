"""Metrics on a hand-made example whose every number is worked out below."""

from __future__ import annotations

import pytest
import torch

from sae_core import metrics
from sae_core.config import ModelConfig
from sae_core.models import build

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
    got = metrics.summary(X, RECON, CODES, threshold=0.1)
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
    got = metrics.summary(X, X.clone(), CODES, threshold=0.1)
    assert got["fve"] == pytest.approx(1.0)
    assert got["recon_error"] == 0.0


def test_predicting_the_pixel_mean_explains_no_variance():
    got = metrics.summary(X, X.mean(dim=0).expand_as(X), CODES, threshold=0.1)
    assert got["fve"] == pytest.approx(0.0, abs=1e-6)


def test_unit_stats_rho_hat_and_density_match_the_hand_computation():
    stats = metrics.unit_stats(CODES, threshold=0.1)
    torch.testing.assert_close(stats["rho_hat"], torch.tensor([1.45, 0.37, 0.006, 0.26]) / 3)
    torch.testing.assert_close(stats["density"], torch.tensor([2 / 3, 1 / 3, 0.0, 1 / 3]))


def test_top_activating_lists_the_strongest_samples_per_unit_in_order():
    top = metrics.top_activating(CODES, n=2)
    assert top.shape == (4, 2)
    assert top.tolist() == [[0, 1], [2, 0], [1, 2], [0, 1]]
    assert metrics.top_activating(CODES, n=10).shape == (4, 3)  # n larger than the data is cut to N


def test_active_threshold_depends_on_the_hidden_activation():
    assert build(ModelConfig(hidden=2), 4, (2, 2)).active_threshold == 0.1
    assert build(ModelConfig(hidden=2, penalty="l1"), 4, (2, 2)).active_threshold == 1e-6


def test_evaluate_equals_summary_of_a_forward_pass_in_chunks():
    torch.manual_seed(0)
    model = build(ModelConfig(hidden=3), 4, (2, 2))
    x = torch.rand(10, 4)
    recon, codes = metrics.forward_all(model, x, chunk=3)  # chunks of 3, 3, 3, 1
    with torch.no_grad():
        out = model(x)
    torch.testing.assert_close(recon, out.recon)
    torch.testing.assert_close(codes, out.hidden)
    assert metrics.evaluate(model, x) == pytest.approx(metrics.summary(x, out.recon, out.hidden, 0.1))
    assert model.training  # forward_all restores the mode it found
