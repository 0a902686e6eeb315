"""What a teacher's dashboard shows of one student's run: `RunSummary`, made from the run's snapshot.

The dashboard draws every student's card from these summaries alone (read from the class store,
sae_core.serve.classes), never from the student's live model: a student may train on another app server.
A summary is small on purpose: a handful of numbers and one grey PNG of the first filters.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from sae_core.analysis import diagnostics
from sae_core.images import filter_montage, to_uint8
from sae_core.train.metrics import features_found
from sae_core.train.snapshot import Snapshot

MONTAGE_UNITS = 64
"""Filters in a card's picture: the first 64 units (an 8 × 8 grid), so that a 784-input model's card
stays a PNG of tens of kilobytes."""
MONTAGE_PAD = 1


@dataclass(frozen=True)
class RunSummary:
    """One student's run at one step, as the dashboard shows it."""

    step: int
    total_steps: int
    """The run's length; 0 for a run until paused."""
    status: str
    dataset: str
    variant: str
    penalty: str
    """The penalty's short name (KL, L1, top-k...)."""
    rho: float | None
    """ρ, or None under a penalty that does not use it."""
    beta: float | None
    """β, or None under a penalty without a weight."""
    hidden: int
    recon_error: float
    """½ · mean ‖x̂ − x‖² on the probe set (the objective's term)."""
    l0: float
    """Mean number of active units per sample."""
    mean_rho_hat: float
    """Mean activation of the hidden units on the probe set."""
    dead: int
    """Units never active on the probe set."""
    fve: float
    """Fraction of variance explained, 1 − Σ‖x − x̂‖² / Σ‖x − x̄‖²."""
    found: int | None = None
    """True features (bars) some unit found; None when the data have no known features."""
    found_total: int | None = None

    def to_json(self) -> str:
        return json.dumps({k: _finite(v) for k, v in asdict(self).items()})

    @classmethod
    def from_json(cls, text: str) -> RunSummary:
        raw: dict[str, Any] = json.loads(text)
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        return cls(**{k: float("nan") if v is None and k in _FLOATS else v for k, v in known.items()})


_FLOATS = ("recon_error", "l0", "mean_rho_hat", "fve")


def _finite(value: Any) -> Any:
    """JSON has no NaN: a missing number is written as null (read back as NaN)."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def summarize(snap: Snapshot) -> RunSummary:
    """The dashboard's numbers of a snapshot (the Train page's metrics row says the same ones)."""
    model = snap.config.model
    spec = model.penalty_spec
    m = snap.metrics
    found = None if snap.truth_match is None else features_found(snap.truth_match)
    return RunSummary(
        step=int(snap.step),
        total_steps=int(snap.total_steps),
        status=str(snap.status),
        dataset=snap.config.data.dataset,
        variant=model.variant,
        penalty=spec.short,
        rho=float(model.rho) if spec.uses_rho else None,
        beta=float(model.beta) if spec.uses_beta else None,
        hidden=int(np.asarray(snap.rho_hat).size),
        recon_error=float(m.get("recon_error", math.nan)),
        l0=float(m.get("l0", math.nan)),
        mean_rho_hat=float(np.mean(snap.rho_hat)) if np.asarray(snap.rho_hat).size else math.nan,
        dead=diagnostics.dead_units(snap),
        fve=float(m.get("fve", math.nan)),
        found=found,
        found_total=None if snap.truth_match is None else int(np.asarray(snap.truth_match).size),
    )


def montage_png(snap: Snapshot, units: int = MONTAGE_UNITS) -> bytes:
    """The first `units` encoder filters as one grey PNG, one pixel per weight (the page scales it up
    without smoothing); mid-grey is zero, as in the Train page's filter view."""
    from PIL import Image  # Pillow comes with matplotlib and torchvision; only a summary needs it

    weights = np.asarray(snap.encoder_weight)[:units]
    h, w = snap.filter_shape
    if weights.shape[1] != h * w:  # a deep or convolutional first layer that is not one picture per unit
        weights = weights[:, : h * w] if weights.shape[1] > h * w else np.zeros((len(weights), h * w))
    grid = filter_montage(weights, (h, w))
    pixels = to_uint8(grid, -1.0, 1.0, background=255)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", optimize=True)
    return buf.getvalue()
