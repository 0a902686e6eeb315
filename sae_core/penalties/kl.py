"""The KL sparsity penalty of the UFLDL exercise: β·Σⱼ KL(ρ‖ρ̂ⱼ) on sigmoid units.

ρ̂ⱼ is unit j's mean activation over the batch; KL(ρ‖ρ̂ⱼ) is the divergence between two Bernoulli
distributions with means ρ and ρ̂ⱼ, zero at ρ̂ⱼ = ρ and steep as ρ̂ⱼ nears 0 or 1.
"""

from __future__ import annotations

import torch
from torch import nn

from sae_core.penalties.spec import ModelSettings, PenaltySpec, smaller
from sae_core.tex import aligned, tex_number

EPS = 1e-6
"""ρ̂ is clamped to [EPS, 1 − EPS] so KL(ρ‖ρ̂) stays finite when a unit is fully off or saturated. The clamp
is straight-through (see `kl_divergence`): it bounds the value, not the restoring force."""


def clamp_straight_through(t: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """t clamped to [low, high] in value, with the gradient of the identity: d/dt = 1 everywhere."""
    return t + (t.clamp(low, high) - t).detach()


def kl_divergence(rho: float | torch.Tensor, rho_hat: torch.Tensor) -> torch.Tensor:
    """KL between Bernoulli(ρ) and Bernoulli(ρ̂), elementwise. rho_hat: [hidden] -> [hidden] (ρ broadcasts).

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


def term(codes: torch.Tensor, cfg: ModelSettings, code_layer: nn.Module) -> torch.Tensor:
    return kl_sparsity(codes, cfg.rho, cfg.beta)


def term_tex(cfg: ModelSettings, beta: str, units: int, j: str) -> str:
    rho = tex_number(cfg.rho)
    return rf"{beta}\sum_{{{j}=1}}^{{{units}}} \mathrm{{KL}}\bigl({rho} \,\big\|\, \hat\rho_{j}\bigr)"


def kl_latex(rho: float) -> str:
    """The Bernoulli KL divergence, in symbols and with ρ substituted, and the definition of ρ̂ⱼ."""
    r, one_minus, eps = tex_number(rho), tex_number(1.0 - rho), tex_number(EPS)
    return aligned(
        [
            r"\mathrm{KL}(\rho \,\|\, \hat\rho_j) &= \rho \log\frac{\rho}{\hat\rho_j}"
            r" + (1-\rho)\log\frac{1-\rho}{1-\hat\rho_j}",
            rf"&= {r}\log\frac{{{r}}}{{\hat\rho_j}} + {one_minus}\log\frac{{{one_minus}}}{{1-\hat\rho_j}}",
            r"\hat\rho_j &= \frac{1}{m}\sum_{i=1}^{m} h_j\bigl(x^{(i)}\bigr)",
            rf"&\quad \text{{clamped to }} [{eps},\, 1 - {eps}]",
        ]
    )


def dead_units_cause(cfg: ModelSettings, lr: float) -> str:
    return (
        f"β = {cfg.beta:g} with a target ρ = {cfg.rho:g} switches units off faster than the "
        f"reconstruction can use them; try a larger ρ, a smaller β or a learning rate below the current "
        f"{lr:g} (say {smaller(lr):g})"
    )


SPEC = PenaltySpec(
    name="kl",
    title="KL divergence (sigmoid units)",
    short="KL",
    order=0,
    activation="sigmoid",
    required_activation="sigmoid",
    term=term,
    uses_rho=True,
    uses_beta=True,
    beta_default=3.0,  # UFLDL's β
    beta_max=10.0,
    explore_betas="0, 0.3, 1, 3",
    term_label="sparsity (β·ΣKL)",
    term_tex=term_tex,
    describe=lambda cfg: [f"ρ {cfg.rho:g}", f"β {cfg.beta:g}"],
    dead_units_cause=dead_units_cause,
    unit_curve=kl_divergence,
    unit_curve_label="KL(ρ‖ρ̂ⱼ)",
    unit_curve_floor=EPS,
    detail_tex=lambda cfg: kl_latex(cfg.rho),
    demo=({"penalty": "kl", "rho": 0.1, "beta": 3.0}, {"lr": 0.1, "batch_size": 500}),
    demo_title="KL(ρ‖ρ̂) on sigmoid units",
    settings_note=lambda cfg: f"ρ = {cfg.rho:g}, β = {cfg.beta:g}",
    summary=(
        "**KL**: each unit's mean activation ρ̂ⱼ over the batch is pulled towards the target ρ by "
        "β·KL(ρ‖ρ̂ⱼ), the divergence between two coins that come up heads with probabilities ρ and ρ̂ⱼ. "
        "It is zero at ρ̂ⱼ = ρ and rises steeply towards ρ̂ⱼ = 0 or 1, so every unit is kept busy about a "
        "fraction ρ of the time: sparse over the data, yet never dead."
    ),
)
