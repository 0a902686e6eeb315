"""Contractive autoencoder (Rifai et al. 2011): penalise how much the code moves when the input moves.

For a sigmoid encoder h = σ(Wx + b) the Jacobian is ∂hⱼ/∂xᵢ = hⱼ(1 − hⱼ)·Wⱼᵢ, so its squared Frobenius
norm has the closed form ‖∂h/∂x‖²_F = Σⱼ (hⱼ(1 − hⱼ))² Σᵢ Wⱼᵢ², one matrix product instead of a
Jacobian per sample. The loss term is λ_c times its mean over the batch (a batch mean, like the
reconstruction term, so λ_c does not depend on the batch size).
"""

from __future__ import annotations

import torch

from ..config import ModelConfig
from ..models import AEOutput, SparseAutoencoder


def contractive_penalty(h: torch.Tensor, weight: torch.Tensor, lam: float) -> torch.Tensor:
    """λ_c · mean over the batch of Σⱼ (hⱼ(1 − hⱼ))² Σᵢ Wⱼᵢ².

    h: [batch, hidden] sigmoid codes, weight: [hidden, n_inputs] the encoder matrix -> scalar.
    """
    return lam * ((h * (1.0 - h)).pow(2) @ weight.pow(2).sum(dim=1)).mean()


class ContractiveAutoencoder(SparseAutoencoder):
    """The one-hidden-layer autoencoder with a sigmoid encoder (always: the closed form needs it)."""

    def __init__(self, n_inputs: int, hidden: int, contraction: float, output: str = "sigmoid") -> None:
        super().__init__(n_inputs, hidden, "sigmoid", output, None)
        self.contraction = contraction

    def extra_terms(self, x: torch.Tensor, out: AEOutput, cfg: ModelConfig) -> dict[str, torch.Tensor]:
        """ "contractive": λ_c·mean ‖∂h/∂x‖²_F, λ_c = cfg.contraction."""
        return {"contractive": contractive_penalty(out.hidden, self.encoder.weight, cfg.contraction)}
