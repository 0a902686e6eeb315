"""The objective, as pure functions that return named terms.

Objective (UFLDL): ½·mean‖x̂ − x‖² + (λ/2)·Σ‖W‖² + β·Σⱼ KL(ρ‖ρ̂ⱼ); the sparsity term is the penalty's own
(`sae_core.penalties`: KL, L1, JumpReLU's L0, or none for top-k), the reconstruction term the model's.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable

import torch

from sae_core.config.run import ModelConfig
from sae_core.models.base import AEOutput, Autoencoder
from sae_core.penalties.spec import Term


def add_all(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    """t₁ + t₂ + … (at least one). Unlike builtin sum it does not start from 0, so the graph has no
    `0 + t₁` node: one op fewer forward and backward per step, and the same value to the last bit."""
    return functools.reduce(operator.add, tensors)


def weight_decay(weights: list[torch.Tensor], lam: float | torch.Tensor) -> torch.Tensor:
    """(λ/2) · Σ ‖W‖²_F over the given matrices."""
    return 0.5 * lam * add_all(w.pow(2).sum() for w in weights)


def sparsity_term(
    hidden: torch.Tensor,
    cfg: ModelConfig,
    code_layer: torch.nn.Module | None = None,
    term: Term | None = None,
) -> torch.Tensor | None:
    """The β-weighted term of the objective's penalty (`cfg.penalty_spec`); None when it adds none (top-k,
    none). hidden: [rows, units] the codes it acts on; code_layer: the model's, for a penalty that reads
    more of the forward pass than the codes (JumpReLU's gate); term: a sparsity term to use in place of
    the penalty's own (Theory's exercise trains with a formula the student typed)."""
    term = cfg.penalty_spec.term if term is None else term
    return None if term is None else term(hidden, cfg, code_layer)


def loss_terms(
    model: Autoencoder, x: torch.Tensor, out: AEOutput, cfg: ModelConfig, term: Term | None = None
) -> dict[str, torch.Tensor]:
    """Named terms of the objective plus their sum under "total".

    x: [batch, n_inputs] the clean input; out: the model's forward on it. The model supplies its
    reconstruction term (the VAE's likelihood), the codes the sparsity penalty sees (conv: one row per
    position; None: no penalty) and their weight (conv: the number of positions), and terms of its own
    (the VAE's prior KL, the contractive penalty). term: a sparsity term in place of the penalty's own.
    """
    terms = {"reconstruction": model.reconstruction_term(out.recon, x)}
    codes = model.sparsity_codes(out)
    sparsity = None if codes is None else sparsity_term(codes, cfg, model.code_layer, term)
    if sparsity is not None:
        scale = model.sparsity_scale
        terms["sparsity"] = sparsity if scale == 1.0 else scale * sparsity
    terms.update(model.extra_terms(x, out, cfg))
    # Always present (a constant 0 when λ = 0) so the set of terms, and so the loss history's columns,
    # stays the same when λ is moved to or from 0 during a run.
    lam = cfg.weight_decay  # a tensor when a sweep gives each of its cells its own λ
    if isinstance(lam, torch.Tensor) or lam > 0:
        terms["weight_decay"] = weight_decay(model.decayed_weights(), lam)
    else:
        terms["weight_decay"] = out.recon.new_zeros(())
    terms["total"] = add_all(terms.values())
    return terms
