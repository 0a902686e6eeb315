"""The superposition dataset (known features, more of them than dimensions) and what a model is scored by on it:
features found by cosine similarity and the mean max cosine similarity (MMCS) of its decoder columns."""

from __future__ import annotations

import pytest
import torch

from sae_core.config.run import DataConfig, RunConfig
from sae_core.data import datasets as data
from sae_core.data.superposition import random_directions, strip_shape, superposition_vectors
from sae_core.train import budget

SMALL = {"dataset": "superposition", "n_features": 24, "n_dims": 12, "feature_prob": 0.1, "n_vectors": 2000}


# ---- the data ----------------------------------------------------------------------------------------------


def test_samples_are_sparse_nonnegative_combinations_of_the_unit_features():
    made = superposition_vectors(3000, 40, 16, 0.05, torch.Generator().manual_seed(3))
    x, f, c = made.vectors, made.features, made.coefficients
    assert x.shape == (3000, 16) and f.shape == (40, 16) and c.shape == (3000, 40)
    torch.testing.assert_close(f.norm(dim=1), torch.ones(40))
    # Each sample is exactly Σᵢ cᵢ·fᵢ, written out as a loop over the present features.
    for i in range(0, 3000, 250):
        expected = sum((c[i, j] * f[j] for j in c[i].nonzero().flatten().tolist()), torch.zeros(16))
        torch.testing.assert_close(x[i], expected)
    assert (c >= 0).all() and (c <= 1).all()
    present = c > 0
    assert abs(present.float().mean().item() - 0.05) < 0.005  # each feature present with probability 0.05
    magnitudes = c[present]
    assert abs(magnitudes.mean().item() - 0.5) < 0.03  # uniform in (0, 1]
    assert present.sum(dim=1).float().mean().item() == pytest.approx(40 * 0.05, abs=0.15)  # a few per sample


def test_random_directions_are_unit_vectors_and_not_orthogonal_when_more_than_dimensions():
    f = random_directions(64, 32, torch.Generator().manual_seed(0))
    torch.testing.assert_close(f.norm(dim=1), torch.ones(64))
    overlap = (f @ f.T - torch.eye(64)).abs()
    assert overlap.max() > 0.3  # 64 directions in 32 dimensions cannot all be orthogonal
    assert torch.linalg.matrix_rank(f) == 32


def test_strip_shape_is_the_most_nearly_square_rectangle():
    assert strip_shape(32) == (4, 8)
    assert strip_shape(30) == (5, 6)
    assert strip_shape(36) == (6, 6)
    assert strip_shape(31) == (1, 31)  # a prime: one row


def test_superposition_dataset_carries_the_features_as_ground_truth_compared_by_cosine():
    cfg = DataConfig(**SMALL)
    d = data.load(cfg)
    assert d.image_shape == (3, 4) and d.n_inputs == 12
    assert d.train.shape == (1800, 12) and d.test.shape == (200, 12)
    assert d.ground_truth.shape == (24, 12) and d.truth_similarity == "cosine"
    made = superposition_vectors(2000, 24, 12, 0.1, torch.Generator().manual_seed(cfg.data_seed))
    torch.testing.assert_close(d.ground_truth, made.features)
    torch.testing.assert_close(torch.cat([d.train, d.test]), made.vectors)
    assert d.train.min() < 0  # signed: not an image in [0, 1]
    assert torch.equal(data.load(cfg).train, d.train)  # deterministic
    assert not torch.equal(data.load(DataConfig(**SMALL, data_seed=1)).ground_truth, d.ground_truth)
    assert data.load(DataConfig(dataset="bars", n_bars=50)).truth_similarity == "correlation"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_dims": 24}, "n_dims must be in \\[2, n_features\\)"),
        ({"n_dims": 1}, "n_dims must be in"),
        ({"feature_prob": 0.0}, "feature_prob must be in \\(0, 1\\]"),
        ({"feature_prob": 1.5}, "feature_prob must be in"),
        ({"n_vectors": 0}, "n_vectors must be >= 1"),
        ({"n_vectors": 2_000_000}, "n_vectors must be <= 1000000"),
        ({"n_features": 5000, "n_dims": 10}, "n_features must be <= 4096"),
    ],
)
def test_superposition_settings_are_validated(changes, message):
    with pytest.raises(ValueError, match=message):
        DataConfig(**{**SMALL, **changes})


def test_superposition_settings_travel_as_flat_fields_and_flags():
    cfg = RunConfig.from_flat({**SMALL, "feature_prob": "0.2", "n_features": "30"})
    assert (cfg.data.n_features, cfg.data.n_dims, cfg.data.feature_prob) == (30, 12, 0.2)
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


def test_budget_knows_the_size_of_superposition_data_without_making_it():
    cfg = RunConfig.from_flat(SMALL)
    made, train, shape = budget.data_shape(cfg)
    assert (made, train, shape) == (2000, 1800, (3, 4))
    small = budget.estimate(cfg).data
    more_features = budget.estimate(cfg.replace(n_features=240)).data
    assert more_features - small == 2000 * (240 - 24) * budget.SUPERPOSITION_BYTES_PER_COEFFICIENT
    huge = cfg.replace(n_vectors=1_000_000, n_features=4096, n_dims=64)
    with pytest.raises(budget.BudgetError, match="n_vectors ≤"):
        budget.check(huge, 2048)
