"""Features in superposition: more known features than dimensions, as in the toy models of superposition.

Elhage et al. (2022, "Toy Models of Superposition") show that a network can store n sparse features in
m < n dimensions, as almost-orthogonal directions; Sharkey, Braun & Millidge (2022, "Taking features out
of superposition with sparse autoencoders") generate such data with known features and show that a sparse
autoencoder's decoder recovers them, scored by the mean max cosine similarity (MMCS). The data here are
theirs in miniature: n random unit directions in m dimensions, and each sample a sparse non-negative
combination of a few of them.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch


class SuperpositionSample(NamedTuple):
    """What `superposition_vectors` makes: the data and the answer that generated it."""

    vectors: torch.Tensor
    """[N, m] the samples, x = Σᵢ cᵢ·fᵢ."""
    features: torch.Tensor
    """[n, m] the true features fᵢ, unit vectors."""
    coefficients: torch.Tensor
    """[N, n] the cᵢ of each sample: 0 where feature i is absent, uniform in (0, 1] where present."""


def random_directions(n: int, m: int, generator: torch.Generator) -> torch.Tensor:
    """n random unit vectors in m dimensions: [n, m], each row a normalised Gaussian (uniform on the
    sphere). With n > m they cannot be orthogonal; in many dimensions random ones are nearly so."""
    directions = torch.randn(n, m, generator=generator)
    return directions / directions.norm(dim=1, keepdim=True).clamp_min(1e-12)


def superposition_vectors(
    n_vectors: int, n_features: int, n_dims: int, prob: float, generator: torch.Generator
) -> SuperpositionSample:
    """n_vectors samples of n_features sparse features packed into n_dims dimensions.

    Each feature is present in a sample independently with probability `prob`, with a magnitude drawn
    uniformly from (0, 1] (the toy models' recipe), so a sample holds prob·n_features features on average
    and may hold none.
    """
    features = random_directions(n_features, n_dims, generator)
    present = torch.rand(n_vectors, n_features, generator=generator) < prob
    # In place, so that making them peaks at two [N, n] tensors (sae_core.train.budget counts it).
    # 1 − U[0, 1) is in (0, 1]: a present feature is never 0.
    coefficients = torch.rand(n_vectors, n_features, generator=generator).neg_().add_(1.0).mul_(present)
    return SuperpositionSample(coefficients @ features, features, coefficients)


def strip_shape(n_dims: int) -> tuple[int, int]:
    """(H, W) to draw an n_dims vector as an image: the most nearly square rectangle with H·W = n_dims
    and H ≤ W (32 -> 4×8, 30 -> 5×6), so the filter, data and reconstruction views draw one tile per vector;
    a prime n_dims gives one row."""
    height = max(h for h in range(1, math.isqrt(n_dims) + 1) if n_dims % h == 0)
    return height, n_dims // height
