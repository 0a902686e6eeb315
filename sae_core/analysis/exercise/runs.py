"""Training with the student's penalty: the small bars run of Theory's penalty comparison, once with the
formula the student typed as the sparsity term and once with the built-in KL penalty, same seed.

The student's term is β·Σⱼ f(ρ, ρ̂ⱼ), f their formula on torch tensors and ρ̂ⱼ unit j's mean over the batch,
clamped as the KL penalty clamps it (`theory.clamped_rho_hat`); autograd derives its gradient. It enters the
objective through the trainer's `sparsity_term`, in place of the config's penalty, which stays KL so that
everything else about the run (model, data, optimiser, seed) is the built-in run's. A right formula
therefore trains the same weights, up to float32 rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sae_core.analysis import theory
from sae_core.analysis.exercise.formula import Formula
from sae_core.data import datasets as data
from sae_core.penalties.spec import ModelSettings, Term
from sae_core.train.metrics import features_found
from sae_core.train.trainer import Trainer

STEPS = 300
"""Steps of each run (bars, 16 units: most bars show by then; about a second each on one CPU core)."""


def formula_term(formula: Formula) -> Term:
    """The sparsity term β·Σⱼ f(ρ, ρ̂ⱼ) with f the student's formula, as the trainer calls a penalty's term."""

    def term(codes: torch.Tensor, cfg: ModelSettings, code_layer: nn.Module | None) -> torch.Tensor:
        rho_hat = theory.clamped_rho_hat(codes.mean(dim=0))
        return cfg.beta * formula.torch(cfg.rho, rho_hat).sum()

    return term


@dataclass(frozen=True)
class ExerciseRun:
    """What the page and the CLI show of one run."""

    label: str
    encoder_weight: np.ndarray
    """[hidden, n_inputs] the learned filters."""
    filter_shape: tuple[int, int]
    rho_hat: np.ndarray
    """[hidden] each unit's mean activation on the probe set."""
    rho: float
    beta: float
    losses: dict[str, float]
    """The objective's terms at the last step."""
    recon_error: float
    l0: float
    bars_found: int
    diverged: str | None
    """Why training stopped early, or None."""

    def numbers(self) -> dict[str, float]:
        """The final numbers, for a table beside another run."""
        return {
            "reconstruction term": self.losses.get("reconstruction", float("nan")),
            "sparsity term (β·Σ penalty)": self.losses.get("sparsity", float("nan")),
            "mean ρ̂": float(np.mean(self.rho_hat)),
            "L0 (active units per input)": self.l0,
            "bars found (of 16)": float(self.bars_found),
        }


def run_config(steps: int = STEPS, seed: int = 0):
    """Theory's small KL run on the bars: 16 units, ρ 0.1, β 3, Adam, on the CPU."""
    return theory.penalty_run_config(theory.KL.name, steps, seed)


def train(formula: Formula | None, steps: int = STEPS, seed: int = 0) -> ExerciseRun:
    """Train the small run with the student's `formula` as the penalty, or with the built-in KL (None)."""
    cfg = run_config(steps, seed)
    term = None if formula is None else formula_term(formula)
    trainer = Trainer(cfg, data.load(cfg.data), device="cpu", sparsity_term=term)
    snap = trainer.snapshot()
    for snap in trainer.run():  # noqa: B007 (the last snapshot is the one kept)
        pass
    return ExerciseRun(
        label="built-in KL" if formula is None else f"your formula: {formula.normalised}",
        encoder_weight=snap.encoder_weight,
        filter_shape=tuple(snap.filter_shape),
        rho_hat=np.asarray(snap.rho_hat),
        rho=cfg.model.rho,
        beta=cfg.model.beta,
        losses=dict(snap.losses),
        recon_error=float(snap.metrics["recon_error"]),
        l0=float(snap.metrics["l0"]),
        bars_found=0 if snap.truth_match is None else features_found(snap.truth_match),
        diverged=snap.message if snap.status == "diverged" else None,
    )


def weight_difference(a: ExerciseRun, b: ExerciseRun) -> float:
    """The largest difference between the two runs' filters, relative to the largest filter weight."""
    scale = max(float(np.max(np.abs(b.encoder_weight))), 1e-12)
    return float(np.max(np.abs(a.encoder_weight - b.encoder_weight))) / scale
