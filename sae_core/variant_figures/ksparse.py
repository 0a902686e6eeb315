"""The k-sparse variant's picture and numbers: non-zero code units per probe sample against k."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from ..figures_activity import BAR_COLOUR, figure, target_line

if TYPE_CHECKING:
    from ..snapshot import Snapshot


def active_per_sample(snap: Snapshot) -> np.ndarray:
    """[n_probe] how many code units are non-zero on each probe sample (top-k keeps exactly k)."""
    return (np.asarray(snap.activations) != 0).sum(axis=1)


def ksparse_metrics(snap: Snapshot) -> list[tuple[str, str, str | None]]:
    """(label, value, help) rows: how many probe samples keep exactly k non-zero units."""
    active = active_per_sample(snap)
    k = snap.config.model.k
    exact = int((active == k).sum())
    return [
        ("k", str(k), "Units kept per sample by top-k"),
        (
            "Samples with exactly k active",
            f"{exact:,} / {active.size:,}",
            "The others have units that are exactly 0 among their top k",
        ),
    ]


def active_per_sample_figure(snap: Snapshot) -> go.Figure:
    """Histogram of the number of non-zero units per probe sample, with k marked."""
    counts_per_sample = active_per_sample(snap)
    hidden = int(np.asarray(snap.activations).shape[1])
    k = snap.config.model.k
    values, counts = np.unique(counts_per_sample, return_counts=True)
    bars = go.Bar(
        x=values,
        y=counts,
        marker={"color": BAR_COLOUR},
        hovertemplate="%{x} non-zero units<br>%{y} samples<extra></extra>",
    )
    shape, note = target_line(k, f"k = {k}")
    return figure(
        [bars],
        f"Non-zero code units per probe sample ({counts_per_sample.size:,} samples, {hidden} units)",
        "non-zero units in the code",
        "samples",
        xaxis={"range": [-0.5, hidden + 0.5]},
        shapes=[shape],
        annotations=[note],
    )
