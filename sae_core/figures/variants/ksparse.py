"""The k-sparse variant's picture and numbers: non-zero code units per probe sample against k."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from sae_core.figures.activity import BAR_COLOUR, figure, target_line

if TYPE_CHECKING:
    from sae_core.train.snapshot import Snapshot


def active_per_sample(snap: Snapshot) -> np.ndarray:
    """[n_probe] how many code units are non-zero on each probe sample (top-k keeps exactly k)."""
    return (np.asarray(snap.activations) != 0).sum(axis=1)


def kept_units(snap: Snapshot) -> tuple[int, int]:
    """(k training uses now, units the snapshot's codes keep: round(α·k)), from the model's extras."""
    k = snap.config.model.k
    k_train = int(np.asarray(snap.extras.get("k_train", k)))
    return k_train, int(np.asarray(snap.extras.get("k_encode", k_train)))


def ksparse_metrics(snap: Snapshot) -> list[tuple[str, str, str | None]]:
    """(label, value, help) rows: k now, and how many probe samples keep exactly the encoded number."""
    active = active_per_sample(snap)
    model = snap.config.model
    k_train, k_encode = kept_units(snap)
    exact = int((active == k_encode).sum())
    k_help = "Units kept per sample by top-k in training"
    if model.k_start:
        k_help += (
            f"; it falls from {model.k_start} to {model.k} over the first {model.k_anneal:.0%} of the run"
        )
    rows = [("k", str(k_train), k_help)]
    if k_encode != k_train:
        rows.append(("Units kept when encoding", str(k_encode), f"round(α·k) with α = {model.alpha:g}"))
    rows.append(
        (
            f"Samples with exactly {k_encode} active",
            f"{exact:,} / {active.size:,}",
            "The others have units that are exactly 0 among their top ones",
        )
    )
    return rows


def active_per_sample_figure(snap: Snapshot) -> go.Figure:
    """Histogram of the number of non-zero units per probe sample, with k marked."""
    counts_per_sample = active_per_sample(snap)
    hidden = int(np.asarray(snap.activations).shape[1])
    k_train, k = kept_units(snap)
    values, counts = np.unique(counts_per_sample, return_counts=True)
    bars = go.Bar(
        x=values,
        y=counts,
        marker={"color": BAR_COLOUR},
        hovertemplate="%{x} non-zero units<br>%{y} samples<extra></extra>",
    )
    shape, note = target_line(k, f"k = {k}" if k == k_train else f"α·k = {k}")
    return figure(
        [bars],
        f"Non-zero code units per probe sample ({counts_per_sample.size:,} samples, {hidden} units)",
        "non-zero units in the code",
        "samples",
        xaxis={"range": [-0.5, hidden + 0.5]},
        shapes=[shape],
        annotations=[note],
    )
