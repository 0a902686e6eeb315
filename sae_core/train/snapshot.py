"""`Snapshot`: the state of a run at one step, as the trainer hands it to the page, the CLI and the views.

Immutable and on the CPU: numbers and copies of everything the views draw, so a view never needs the
live model (what a variant's pictures need beyond the codes is in `extras`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sae_core.config.run import RunConfig


@dataclass(frozen=True)
class Snapshot:
    """The state of a run at one step: numbers and CPU copies of everything the views draw."""

    step: int
    total_steps: int
    """The run's length; 0 for a run until paused."""
    epoch: float
    seconds: float
    """Training time so far, pauses excluded."""
    samples_per_second: float
    """Samples passed through the objective per second of training: batch size × evaluations, so an
    L-BFGS step counts every evaluation of its line search."""
    losses: dict[str, float]
    """Latest step's loss terms, including "total"."""
    history_steps: np.ndarray
    """[T] step numbers of the recorded losses."""
    history: dict[str, np.ndarray]
    """term -> [T] loss values."""
    encoder_weight: np.ndarray
    """[hidden, n_inputs] first-layer filters."""
    decoder_weight: np.ndarray | None
    """[n_inputs, hidden] last-layer dictionary (columns are features); None if the model has none."""
    filter_shape: tuple[int, int]
    """(h, w) of one filter tile: the image shape, or the kernel size for convolutional models."""
    rho_hat: np.ndarray
    """[hidden] mean activation of each unit on the probe set."""
    density: np.ndarray
    """[hidden] fraction of probe samples on which each unit is active."""
    activations: np.ndarray
    """[n_probe, hidden] activations on the probe set."""
    show_inputs: np.ndarray
    """[SHOW_SIZE, n_inputs] fixed inputs for the reconstruction view."""
    show_recon: np.ndarray
    """[SHOW_SIZE, n_inputs] their reconstructions."""
    metrics: dict[str, float]
    """summary() on the probe set."""
    config: RunConfig
    image_shape: tuple[int, int]
    status: str = "running"
    """running | paused | done | stopped | diverged."""
    message: str | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    """Variant-specific arrays from the model's `snapshot_extras` (noisy inputs, prior samples, feature
    maps, Jacobian norms...)."""
    code_activation: str = "sigmoid"
    """The code's activation (the model's: sigmoid, relu or linear)."""
    active_threshold: float = 0.1
    """A unit is active on a sample when its code exceeds this (the model's; L0, dead units, density)."""
    penalty_rho_hat: np.ndarray | None = None
    """[penalty units] ρ̂ as the sparsity penalty sees it (one per kernel for conv); None when the model
    has no sparsity penalty."""
    kl_per_unit: np.ndarray | None = None
    """[hidden] the penalty's per-unit curve at each unit's ρ̂ (KL(ρ‖ρ̂ⱼ), clamped as in the loss); None
    under a penalty without one (`PenaltySpec.unit_curve`)."""
    kl_curve: np.ndarray | None = None
    """[2, KL_CURVE_POINTS] ρ̂ grid (log-spaced) and the per-unit curve on it (KL(ρ‖ρ̂)), the curve its view
    draws; None under a penalty without one."""
    probe_labels: np.ndarray | None = None
    """[n_probe] class labels of the probe samples, when the dataset has labels."""
    test_metrics: dict[str, float] | None = None
    """On the held-out probe (the test split's first samples, up to PROBE_SIZE: training.TEST_PROBE_PIXELS;
    model in eval mode): recon_error, the objective's terms and "samples"; None without a test split."""
    test_history_steps: np.ndarray | None = None
    """[S] the steps at which the held-out probe was evaluated (one per step that had a snapshot)."""
    test_history: dict[str, np.ndarray] = field(default_factory=dict)
    """term -> [S] the objective's held-out terms (metrics.HELD_OUT_TERMS) at test_history_steps."""
    truth_match: np.ndarray | None = None
    """[true features] each known generating feature's best similarity with a unit's feature
    (metrics.feature_match, by `truth_similarity`); None when the dataset has no ground truth (bars and
    superposition have one)."""
    truth_units: np.ndarray | None = None
    """[true features] the unit whose feature matches each true feature best (truth_match's index)."""
    truth_similarity: str = "correlation"
    """How truth_match compares features: the dataset's `truth_similarity` (correlation or cosine)."""
    ground_truth: np.ndarray | None = None
    """[true features, n_inputs] the true features themselves (read-only, shared by all snapshots)."""
    evaluations: int = 0
    """Objective evaluations so far: one per step for Adam and SGD, one or more for L-BFGS."""
    data_examples: np.ndarray | None = None
    """[n, n_inputs] the first training inputs, for the data strip (read-only, shared by all snapshots)."""

    @property
    def until_paused(self) -> bool:
        """The run has no length of its own: it trains until someone pauses it."""
        return self.total_steps == 0

    @property
    def progress(self) -> float:
        """Fraction of the run's length done, in [0, 1]; 0 for a run until paused (it has no end)."""
        return 0.0 if self.until_paused else min(1.0, self.step / self.total_steps)
