"""Contractive autoencoder (Rifai et al. 2011): penalise how much the code moves when the input moves.

For a sigmoid encoder h = σ(Wx + b) the Jacobian is ∂hⱼ/∂xᵢ = hⱼ(1 − hⱼ)·Wⱼᵢ, so its squared Frobenius
norm has the closed form ‖∂h/∂x‖²_F = Σⱼ (hⱼ(1 − hⱼ))² Σᵢ Wⱼᵢ², one matrix product instead of a
Jacobian per sample. The loss term is λ_c times its mean over the batch (a batch mean, like the
reconstruction term, so λ_c does not depend on the batch size).
"""

from __future__ import annotations

import torch

from sae_core.fields import Setting
from sae_core.models.base import AEOutput, ModelSettings
from sae_core.models.sparse import SparseAutoencoder
from sae_core.models.spec import Control, VariantSpec, View
from sae_core.tex import tex_number


def jacobian_norms(h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """‖∂h/∂x‖²_F per sample = Σⱼ (hⱼ(1 − hⱼ))² Σᵢ Wⱼᵢ².

    h: [batch, hidden] sigmoid codes, weight: [hidden, n_inputs] the encoder matrix -> [batch].
    """
    return (h * (1.0 - h)).pow(2) @ weight.pow(2).sum(dim=1)


def contractive_penalty(h: torch.Tensor, weight: torch.Tensor, lam: float) -> torch.Tensor:
    """λ_c · mean over the batch of ‖∂h/∂x‖²_F. h: [batch, hidden], weight: [hidden, n_inputs] -> scalar."""
    return lam * jacobian_norms(h, weight).mean()


class ContractiveAutoencoder(SparseAutoencoder):
    """The one-hidden-layer autoencoder with a sigmoid encoder (always: the closed form needs it)."""

    def __init__(self, n_inputs: int, hidden: int, contraction: float, output: str = "sigmoid") -> None:
        super().__init__(n_inputs, hidden, "sigmoid", output, None)
        self.contraction = contraction

    def extra_terms(self, x: torch.Tensor, out: AEOutput, cfg: ModelSettings) -> dict[str, torch.Tensor]:
        """ "contractive": λ_c·mean ‖∂h/∂x‖²_F, λ_c = cfg.contraction."""
        return {"contractive": contractive_penalty(out.hidden, self.encoder.weight, cfg.contraction)}

    @torch.no_grad()
    def snapshot_extras(self, show: torch.Tensor, probe: torch.Tensor) -> dict[str, torch.Tensor]:
        """ "jacobian_norms": [n_probe] ‖∂h/∂x‖²_F of the encoder at each probe sample."""
        return {"jacobian_norms": jacobian_norms(self.encode(probe), self.encoder.weight)}


def check(cfg: ModelSettings) -> None:
    if cfg.activation not in ("auto", "sigmoid"):
        raise ValueError(
            f"activation must be sigmoid (or auto) for the contractive variant, got {cfg.activation!r}"
        )


def build(cfg: ModelSettings, n_inputs: int, image_shape: tuple[int, int]) -> ContractiveAutoencoder:
    return ContractiveAutoencoder(n_inputs, cfg.hidden, cfg.contraction, cfg.output)


SPEC = VariantSpec(
    name="contractive",
    title="Contractive",
    note="Penalises ‖∂h/∂x‖²: the code ignores small changes of the input. Sigmoid encoder always.",
    build=build,
    order=5,
    settings=(
        Setting(
            "contraction",
            "float",
            0.1,
            "Contractive variant: weight λ_c of ‖∂h/∂x‖²_F.",
            minimum=0.0,
            live=True,
        ),
    ),
    controls=(
        Control("contraction", "Contraction weight λ_c (live)", minimum=0.0, step=0.05, number_format="%.3f"),
    ),
    # Top-k or a learned threshold would break the smooth sigmoid encoder the closed form needs.
    accepts=lambda penalty: penalty.plain_code,
    check=check,
    views=(View("contraction_chart", "contractive:contraction_figure"),),
    metrics="contractive:contractive_metrics",
    extra_tex=lambda cfg: [
        rf"{tex_number(cfg.contraction)}\,\Bigl\lVert \frac{{\partial h}}{{\partial x}} \Bigr\rVert_F^2"
    ],
)
