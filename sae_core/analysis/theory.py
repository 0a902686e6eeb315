"""The numbers behind the Theory page: the KL penalty and its slope, the sparsity delta, a gradient check
of the current configuration, small runs under each penalty, and lifetime / population sparsity.

Pure functions (numpy and torch, no Streamlit); the page calls them and `figures_theory` draws them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sae_core.config.run import DataConfig, ModelConfig, RunConfig, TrainConfig
from sae_core.penalties.kl import EPS, clamp_straight_through
from sae_core.penalties.kl import SPEC as KL
from sae_core.penalties.registry import PENALTIES, get_penalty
from sae_core.train import gradcheck
from sae_core.train.metrics import features_found

COPIED_FIELDS = (
    "rho",
    "beta",
    "weight_decay",
    "activation",
    "output",
    "corruption",
    "noise_level",
    "contraction",
    "tied",
)
"""What the gradient check copies from the current configuration; the sizes are gradcheck's tiny ones."""
PENALTY_RUN_STEPS = 300
"""Steps of each small run of the penalty comparison (bars, 16 units: the bars show within ~200)."""


# ----- the KL penalty --------------------------------------------------------------------------------------
def clamped_rho_hat(rho_hat: torch.Tensor) -> torch.Tensor:
    """ρ̂ clamped to [EPS, 1 − EPS] as the KL penalty clamps it (straight-through), for a student's own
    formula of the penalty (`sae_core.analysis.exercise`)."""
    return clamp_straight_through(rho_hat, EPS, 1.0 - EPS)


def kl(rho: float, rho_hat: np.ndarray | float) -> np.ndarray:
    """KL(ρ‖ρ̂) = ρ log(ρ/ρ̂) + (1−ρ) log((1−ρ)/(1−ρ̂)) elementwise, ρ̂ clamped as in the loss."""
    q = np.clip(np.asarray(rho_hat, dtype=np.float64), EPS, 1.0 - EPS)
    return rho * np.log(rho / q) + (1.0 - rho) * np.log((1.0 - rho) / (1.0 - q))


def kl_slope(rho: float, rho_hat: np.ndarray | float) -> np.ndarray:
    """∂KL(ρ‖ρ̂)/∂ρ̂ = −ρ/ρ̂ + (1−ρ)/(1−ρ̂): negative below ρ (pushes ρ̂ up), positive above it."""
    q = np.clip(np.asarray(rho_hat, dtype=np.float64), EPS, 1.0 - EPS)
    return -rho / q + (1.0 - rho) / (1.0 - q)


SUBSCRIPTS = {"j": "ⱼ", "k": "ₖ"}


def kl_units(snap) -> np.ndarray | None:
    """The ρ̂ the KL penalty of the snapshot's model sums over (one per unit; one per kernel for conv,
    over samples and positions), or None when its objective has no KL sparsity term."""
    if snap.config.model.penalty_spec is not KL or snap.penalty_rho_hat is None:
        return None
    return np.asarray(snap.penalty_rho_hat)


def kl_units_caption(snap) -> str:
    """What the dots of the KL curve are, for a snapshot whose model is under the KL penalty."""
    cfg = snap.config.model
    _, letter = cfg.spec.penalty_units(cfg)
    n, sub = np.size(snap.penalty_rho_hat), SUBSCRIPTS.get(letter, "")
    return f"Dots: the {n} ρ̂{sub} of the current model's KL penalty (step {snap.step:,}) at their KL(ρ‖ρ̂)."


def sparsity_instead(model: ModelConfig) -> str | None:
    """What `model` has instead of the KL sparsity penalty, in a sentence; None when it is under KL."""
    if model.penalty_spec is KL:
        return None
    return model.spec.penalty_reason if model.spec.fixed_penalty else model.penalty_spec.instead_of_kl


def not_kl_note(model: ModelConfig) -> str | None:
    """Why the current model's units are not on the KL curve, and what it has instead; None under KL."""
    instead = sparsity_instead(model)
    if instead is None:
        return None
    return f"The current model is not under the KL penalty, so its units are not on this curve. {instead}"


# ----- the gradient check ----------------------------------------------------------------------------------
def tiny_copy(model: ModelConfig) -> dict[str, object]:
    """The fields of `model` that the gradient check keeps (its objective's weights, activations, the
    variant's own settings); gradcheck.tiny_problem supplies the tiny sizes."""
    return {name: getattr(model, name) for name in COPIED_FIELDS}


def tiny_sizes(model: ModelConfig) -> str:
    """The sizes of the gradient check's tiny copy of `model`, in words ("hidden = 4, latent = 2")."""
    spec = model.spec
    names = (["hidden"] if spec.hidden_label else []) + list(spec.fields)
    if model.uses_topk and "k" not in names:
        names.append("k")
    sizes = {n: gradcheck.TINY_SETTINGS[n] for n in names if n in gradcheck.TINY_SETTINGS}
    h, w = gradcheck.TINY_IMAGE
    return ", ".join([*(f"{n.replace('_', ' ')} = {v}" for n, v in sizes.items()), f"{h}×{w} inputs"])


def gradient_check(model: ModelConfig, seed: int = 0, eps: float = 1e-6) -> dict[str, float]:
    """{parameter name -> relative error ‖a − n‖/‖a + n‖} of autograd against central differences, on a
    float64 model of the same variant, penalty and settings as `model` but tiny (gradcheck.tiny_problem)."""
    penalty = model.effective_penalty
    net, x, cfg = gradcheck.tiny_problem(penalty, seed, variant=model.variant, **tiny_copy(model))
    return gradcheck.check_gradients(net, x, cfg, eps, seed)


# ----- small runs under each penalty -----------------------------------------------------------------------
@dataclass(frozen=True)
class PenaltyRun:
    """What the side-by-side comparison shows of one small run."""

    penalty: str
    encoder_weight: np.ndarray
    """[hidden, n_inputs] the learned filters."""
    filter_shape: tuple[int, int]
    l0: float
    """Mean active units per sample on the probe set."""
    recon_error: float
    bars_found: int
    """How many of the 16 true bars some unit's feature matches (metrics.FOUND_THRESHOLD)."""
    note: str
    """The penalty's settings, for the caption (its spec's `settings_note`: ρ and β, β, or k)."""


COMPARED_PENALTIES: tuple[str, ...] = tuple(name for name, spec in PENALTIES.items() if spec.demo is not None)
"""The penalties of the side-by-side comparison, in menu order: those whose spec has a `demo` run (model
and training fields on the bars with 16 units: in 300 Adam steps KL finds about 14 of the 16 bars, L1
and top-k, whose codes are ReLU and linear, find fewer and draw mixtures)."""


def penalty_run_config(penalty: str, steps: int = PENALTY_RUN_STEPS, seed: int = 0) -> RunConfig:
    """The small run of the comparison: bars (2000 images), 16 units, Adam, on the CPU, with the settings
    of the penalty's `demo` (ValueError for a penalty that has none)."""
    demo = get_penalty(penalty).demo
    if demo is None:
        raise ValueError(f"penalty must be one of {', '.join(COMPARED_PENALTIES)}, got {penalty!r}")
    model_fields, train_fields = demo
    model = ModelConfig(hidden=16, weight_decay=1e-4, **model_fields)
    train = TrainConfig(steps=steps, seed=seed, device="cpu", snapshot_every=steps, **train_fields)
    return RunConfig(data=DataConfig(dataset="bars", n_bars=2000), model=model, train=train)


def penalty_run(penalty: str, steps: int = PENALTY_RUN_STEPS, seed: int = 0) -> PenaltyRun:
    """Train one small run under `penalty` and keep its filters and three numbers."""
    from sae_core.data import datasets as data
    from sae_core.train.trainer import Trainer

    cfg = penalty_run_config(penalty, steps, seed)
    trainer = Trainer(cfg, data.load(cfg.data), device="cpu")
    snap = trainer.snapshot()
    for snap in trainer.run():  # noqa: B007 (the last snapshot is the one kept)
        pass
    m = cfg.model
    note = m.penalty_spec.settings_note(m)
    found = 0 if snap.truth_match is None else features_found(snap.truth_match)
    return PenaltyRun(
        penalty=penalty,
        encoder_weight=snap.encoder_weight,
        filter_shape=tuple(snap.filter_shape),
        l0=float(snap.metrics["l0"]),
        recon_error=float(snap.metrics["recon_error"]),
        bars_found=found,
        note=note,
    )


# ----- lifetime and population sparsity --------------------------------------------------------------------
def lifetime_sparsity(active: np.ndarray) -> np.ndarray:
    """Per unit, the fraction of samples it is active on (its density). active: [N, H] bool -> [H]."""
    return np.asarray(active, dtype=np.float64).mean(axis=0)


def population_sparsity(active: np.ndarray) -> np.ndarray:
    """Per sample, the fraction of units active on it (L0 / H). active: [N, H] bool -> [N]."""
    return np.asarray(active, dtype=np.float64).mean(axis=1)


# ----- features in superposition -----------------------------------------------------------------------
SUPERPOSITION_TEX = (
    r"x = \sum_{i=1}^{n} c_i\, f_i, \qquad f_i \in \mathbb{R}^m,\; \|f_i\| = 1,\; n > m,"
    r"\; c_i \ge 0 \text{ and mostly } 0"
)
MMCS_TEX = r"\mathrm{MMCS} = \frac{1}{n}\sum_{i=1}^{n} \max_j \frac{f_i^{\top} d_j}{\|d_j\|}"
"""The toy model of superposition (Elhage et al. 2022) and the mean max cosine similarity, for Theory."""
