"""The objective, as pure functions that return named terms.

Objective (UFLDL): ½·mean‖x̂ − x‖² + (λ/2)·Σ‖W‖² + β·Σⱼ KL(ρ‖ρ̂ⱼ), with L1 and top-k as alternatives.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable

import torch

from sae_core.config.run import ModelConfig
from sae_core.models.base import AEOutput, Autoencoder

EPS = 1e-6
"""ρ̂ is clamped to [EPS, 1 − EPS] so KL(ρ‖ρ̂) stays finite when a unit is fully off or saturated. The clamp
is straight-through (see `kl_divergence`): it bounds the value, not the restoring force."""


def add_all(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    """t₁ + t₂ + … (at least one). Unlike builtin sum it does not start from 0, so the graph has no
    `0 + t₁` node: one op fewer forward and backward per step, and the same value to the last bit."""
    return functools.reduce(operator.add, tensors)


def clamp_straight_through(t: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """t clamped to [low, high] in value, with the gradient of the identity: d/dt = 1 everywhere."""
    return t + (t.clamp(low, high) - t).detach()


def kl_divergence(rho: float, rho_hat: torch.Tensor) -> torch.Tensor:
    """KL between Bernoulli(ρ) and Bernoulli(ρ̂), elementwise. rho_hat: [hidden] -> [hidden].

    ρ̂ is clamped to [EPS, 1 − EPS] straight-through: a plain clamp has zero gradient outside the band,
    so a dead unit (ρ̂ < EPS) would feel no pull back towards ρ. Here it gets the derivative at the
    band's edge, −ρ/EPS + (1 − ρ)/(1 − EPS), which pushes ρ̂ up (and the mirror image pushes a
    saturated unit down).
    """
    rho_hat = clamp_straight_through(rho_hat, EPS, 1.0 - EPS)
    return rho * torch.log(rho / rho_hat) + (1.0 - rho) * torch.log((1.0 - rho) / (1.0 - rho_hat))


def kl_sparsity(hidden: torch.Tensor, rho: float, beta: float) -> torch.Tensor:
    """β · Σⱼ KL(ρ‖ρ̂ⱼ), ρ̂ⱼ the mean activation of unit j over the batch. hidden: [batch, hidden]."""
    return beta * kl_divergence(rho, hidden.mean(dim=0)).sum()


def l1_sparsity(hidden: torch.Tensor, beta: float) -> torch.Tensor:
    """β · mean over samples of Σⱼ |hⱼ|. hidden: [batch, hidden]."""
    return beta * hidden.abs().sum(dim=1).mean()


def weight_decay(weights: list[torch.Tensor], lam: float) -> torch.Tensor:
    """(λ/2) · Σ ‖W‖²_F over the given matrices."""
    return 0.5 * lam * add_all(w.pow(2).sum() for w in weights)


def sparsity_term(hidden: torch.Tensor, cfg: ModelConfig) -> torch.Tensor | None:
    """The penalty named by cfg.penalty; None for top-k (sparse by construction) and none."""
    if cfg.penalty == "kl":
        return kl_sparsity(hidden, cfg.rho, cfg.beta)
    if cfg.penalty == "l1":
        return l1_sparsity(hidden, cfg.beta)
    return None


def loss_terms(
    model: Autoencoder, x: torch.Tensor, out: AEOutput, cfg: ModelConfig
) -> dict[str, torch.Tensor]:
    """Named terms of the objective plus their sum under "total".

    x: [batch, n_inputs] the clean input; out: the model's forward on it. The model supplies its
    reconstruction term (the VAE's likelihood), the codes the sparsity penalty sees (conv: one row per
    position; None: no penalty) and their weight (conv: the number of positions), and terms of its own
    (the VAE's prior KL, the contractive penalty).
    """
    terms = {"reconstruction": model.reconstruction_term(out.recon, x)}
    codes = model.sparsity_codes(out)
    sparsity = None if codes is None else sparsity_term(codes, cfg)
    if sparsity is not None:
        scale = model.sparsity_scale
        terms["sparsity"] = sparsity if scale == 1.0 else scale * sparsity
    terms.update(model.extra_terms(x, out, cfg))
    # Always present (a constant 0 when λ = 0) so the set of terms, and so the loss history's columns,
    # stays the same when λ is moved to or from 0 during a run.
    if cfg.weight_decay > 0:
        terms["weight_decay"] = weight_decay(model.decayed_weights(), cfg.weight_decay)
    else:
        terms["weight_decay"] = out.recon.new_zeros(())
    terms["total"] = add_all(terms.values())
    return terms
