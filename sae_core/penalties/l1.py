"""The L1 sparsity penalty: β·mean over samples of Σⱼ|hⱼ|, on ReLU codes.

Every bit of activity costs the same, whatever the unit's mean: there is no target ρ.
"""

from __future__ import annotations

import torch
from torch import nn

from sae_core.penalties.spec import ModelSettings, PenaltySpec, smaller


def l1_sparsity(hidden: torch.Tensor, beta: float) -> torch.Tensor:
    """β · mean over samples of Σⱼ |hⱼ|. hidden: [batch, hidden]."""
    return beta * hidden.abs().sum(dim=1).mean()


def term(codes: torch.Tensor, cfg: ModelSettings, code_layer: nn.Module) -> torch.Tensor:
    return l1_sparsity(codes, cfg.beta)


def term_tex(cfg: ModelSettings, beta: str, units: int, j: str) -> str:
    per_sample = rf"\sum_{{{j}=1}}^{{{units}}} \bigl|h_{j}^{{(i)}}\bigr|"
    return rf"{beta}\cdot\frac{{1}}{{m}}\sum_{{i=1}}^{{m}}" + per_sample


def dead_units_cause(cfg: ModelSettings, lr: float) -> str:
    return (
        f"the L1 weight β = {cfg.beta:g} is too strong for these units (try {smaller(cfg.beta):g}), or the "
        f"learning rate ({lr:g}) pushes ReLU units below 0 for good (try {smaller(lr):g})"
    )


SPEC = PenaltySpec(
    name="l1",
    title="L1 on activations (ReLU)",
    short="L1",
    order=1,
    activation="relu",
    term=term,
    uses_beta=True,
    hidden_reason="ρ is not used by the L1 penalty (it has no target activation).",
    # On digits, 25 units, Adam: β 0.01 keeps FVE ≈ 0.9 with a third of the units dead at lr 0.01; β 3
    # kills every unit, and so does anything above 1.
    beta_default=0.01,
    # The bars preset (16 units, batch 1000) at its Adam lr 0.1: a quarter of the ReLU units die and 0-5 of
    # the 16 bars are found, at any β from 0.001 to 0.1; at 0.03 with β 0.01 14 of 16 are (seeds 0 and 1;
    # tests/test_lecture_defaults.py trains it).
    adam_lr=0.03,
    beta_max=1.0,
    beta_stops=(0.0, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
    explore_betas="0, 0.003, 0.01, 0.03",
    term_label="sparsity (β·L1)",
    term_tex=term_tex,
    describe=lambda cfg: [f"L1 β {cfg.beta:g}"],
    dead_units_cause=dead_units_cause,
    demo=({"penalty": "l1", "beta": 0.05}, {"lr": 0.05, "batch_size": 256}),
    demo_title="L1 on ReLU units",
    settings_note=lambda cfg: f"β = {cfg.beta:g}",
    summary=(
        "**L1**: β times the mean of Σⱼ|hⱼ| over the samples. Every unit of activity costs the same, so the "
        "cheapest code uses few units a little; there is no target ρ, and a unit pushed below zero by a "
        "ReLU gets no gradient back (it can die)."
    ),
    instead_of_kl=(
        "Its penalty is L1, β times the mean of Σⱼ|hⱼ|: there is no target ρ, and every bit of activity "
        "costs the same, whatever the unit's mean."
    ),
)
