"""Plain-language warnings about a run, read from a snapshot: most units dead, units saturated.

A teacher's run can fail silently: an L1 weight β that kills every unit, a learning rate so large that
every sigmoid unit sticks at 0 or 1, a sigmoid output asked to draw signed data. The page shows these
next to the progress bar; each says what was seen and the likely cause. Pure functions of a `Snapshot`,
no Streamlit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sae_core.penalties.spec import smaller
from sae_core.train.metrics import features_found

if TYPE_CHECKING:
    from sae_core.train.snapshot import Snapshot

SATURATION_MARGIN = 1e-3
"""A sigmoid activation within this of 0 or 1 counts as saturated (its gradient σ(1 − σ) < 1e-3)."""
SATURATED_FRACTION = 0.95
"""Warn when at least this share of the probe activations is saturated."""
DEAD_FRACTION = 0.5
"""Warn when at least this share of the units is never active on the probe set."""
SPARE_FOUND = 0.9
"""With known features: no dead-unit warning once this share of them is found (the dead units are spare)."""


def _sigmoid_out_of_reach(snap: Snapshot) -> list[str]:
    """A sigmoid output on data outside [0, 1] (superposition's signed vectors, standardized uploads)
    can never reconstruct it: say so, once, instead of the usual warnings."""
    x = snap.data_examples if snap.data_examples is not None else snap.show_inputs
    if snap.config.model.output != "sigmoid" or x is None or np.size(x) == 0:
        return []
    lo, hi = float(np.min(x)), float(np.max(x))
    if lo >= 0.0 and hi <= 1.0:
        return []
    return [
        f"The inputs run from {lo:.2g} to {hi:.2g}, but a sigmoid output only reaches (0, 1), so the "
        "reconstruction can never match them: choose the linear output for this data."
    ]


def _spare_units(snap: Snapshot, live: int) -> bool:
    """With known true features, whether the dead units are spare rather than starved: the live ones are
    at least as many as the true features, or have found nine in ten of them (an overcomplete dictionary
    keeps a unit per feature and lets the rest die, as the superposition preset's does)."""
    total = len(snap.truth_match)
    return live >= total or features_found(snap.truth_match) >= SPARE_FOUND * total


def saturated_fraction(snap: Snapshot) -> float:
    """Share of the probe activations within SATURATION_MARGIN of 0 or 1 (sigmoid codes; 0 otherwise)."""
    acts = np.asarray(snap.activations)
    if snap.code_activation != "sigmoid" or acts.size == 0:
        return 0.0
    return float(((acts < SATURATION_MARGIN) | (acts > 1.0 - SATURATION_MARGIN)).mean())


def run_warnings(snap: Snapshot) -> list[str]:
    """What looks wrong with this run, each with its likely cause; empty before the first step."""
    if snap.step == 0:
        return []
    out_of_reach = _sigmoid_out_of_reach(snap)
    if out_of_reach or "rho_hat" not in snap.config.model.spec.standard_views:
        return out_of_reach
    model, lr = snap.config.model, snap.config.train.lr
    saturated = saturated_fraction(snap)
    if saturated >= SATURATED_FRACTION:
        return [
            f"Saturated: {saturated:.0%} of the hidden activations are stuck at 0 or 1, so almost no "
            f"gradient flows. The learning rate ({lr:g}) is most likely far too high; try "
            f"{min(0.01, smaller(lr)):g}."
        ]
    density = np.asarray(snap.density)
    dead = dead_units(snap)
    if density.size == 0 or dead < DEAD_FRACTION * density.size:
        return []
    if snap.truth_match is not None and _spare_units(snap, density.size - dead):
        return []
    cause = model.penalty_spec.dead_units_cause(model, lr)
    return [f"{dead} of {density.size} units are dead (never active on the probe set): {cause}."]


def dead_units(snap) -> int:
    """Units that never fired on the snapshot's data (density 0): the one count the metrics row, the run
    warnings and a class's cards all show."""
    return int((np.asarray(snap.density) == 0).sum())
