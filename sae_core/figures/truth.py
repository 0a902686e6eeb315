"""The known answer against what was learned: each true feature beside its best-matching learned feature.

For data made of known directions (superposition): row i shows the true feature fᵢ, the decoder column of
the unit that matches it best (scaled to unit length, as the cosine sees it) and their cosine similarity,
so a class sees which features the dictionary has taken out of superposition and which it has not yet.
The matching itself is `sae_core.train.metrics.best_match`, done by the trainer; this only draws it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from sae_core.figures.activity import BAR_COLOUR, DEAD_COLOUR, empty_figure, figure
from sae_core.train.metrics import FOUND_THRESHOLD, features_found

if TYPE_CHECKING:
    from sae_core.train.snapshot import Snapshot

TITLE = "True features beside the learned ones that match them best"
MAX_ROWS = 128
"""Rows drawn at most: the first true features (a heatmap row per feature stays readable up to here)."""
DIVERGING = [[0.0, "#2166ac"], [0.5, "#f7f7f7"], [1.0, "#b2182b"]]
"""Negative blue, zero white, positive red: a direction's sign matters (the cosine counts it)."""
PANELS = {"x": [0.0, 0.34], "x2": [0.40, 0.74], "x3": [0.80, 1.0]}
"""Horizontal extent of the three panels: true features, learned ones, their cosine."""


def has_truth_pairs(snap: Snapshot) -> bool:
    """Whether the snapshot can draw this view: true features matched by cosine to decoder columns."""
    return (
        snap.truth_similarity == "cosine"
        and snap.truth_match is not None
        and snap.truth_units is not None
        and snap.ground_truth is not None
        and snap.decoder_weight is not None
    )


def truth_pairs_figure(snap: Snapshot, height: int = 520) -> go.Figure:
    """Three panels sharing one row per true feature: fᵢ (dimension by dimension), the unit-length decoder
    column of the unit that matches it best, and their cosine with the FOUND_THRESHOLD line."""
    if not has_truth_pairs(snap):
        return empty_figure(TITLE, "This run has no known directions to compare with (superposition has)")
    truth = np.asarray(snap.ground_truth, dtype=np.float64)
    match = np.asarray(snap.truth_match, dtype=np.float64)
    units = np.asarray(snap.truth_units)
    n = min(len(truth), MAX_ROWS)
    columns = np.asarray(snap.decoder_weight, dtype=np.float64)[:, units[:n]].T  # [n, D]
    learned = columns / np.maximum(np.linalg.norm(columns, axis=1, keepdims=True), 1e-12)
    rows = np.arange(1, n + 1)
    scale = max(float(np.abs(truth[:n]).max()), 1e-12)  # both panels on the true features' scale
    shared = {"zmin": -scale, "zmax": scale, "colorscale": DIVERGING, "showscale": False, "xgap": 1}
    dims = np.arange(1, truth.shape[1] + 1)
    unit_text = np.repeat(units[:n, None], truth.shape[1], axis=1)
    found = match[:n] > FOUND_THRESHOLD
    traces = [
        go.Heatmap(
            z=truth[:n],
            x=dims,
            y=rows,
            hovertemplate="true feature %{y}<br>dimension %{x}: %{z:.2f}<extra></extra>",
            **shared,
        ),
        go.Heatmap(
            z=learned,
            x=dims,
            y=rows,
            xaxis="x2",
            customdata=unit_text,
            hovertemplate="unit %{customdata}<br>dimension %{x}: %{z:.2f}<extra></extra>",
            **shared,
        ),
        go.Bar(
            x=match[:n],
            y=rows,
            orientation="h",
            xaxis="x3",
            marker={"color": np.where(found, BAR_COLOUR, DEAD_COLOUR).tolist()},
            customdata=units[:n],
            hovertemplate="feature %{y} ↔ unit %{customdata}<br>cosine %{x:.3f}<extra></extra>",
        ),
    ]
    total = len(truth)
    shown = "" if n == total else f" (the first {n} of {total})"
    title = f"True vs learned features: {features_found(match)} of {total} found{shown} (red: not yet)"
    feature_axis = {"autorange": "reversed", "title": {"text": "true feature i"}, "tickfont": {"size": 11}}
    return figure(
        traces,
        title,
        height=height,
        xaxis={"domain": PANELS["x"], "title": {"text": "true feature fᵢ: dimension"}},
        xaxis2={
            "domain": PANELS["x2"],
            "anchor": "y",
            "title": {"text": "best-matching decoder column: dimension"},
        },
        xaxis3={
            "domain": PANELS["x3"],
            "anchor": "y",
            "range": [min(0.0, float(match.min())), 1.0],
            "title": {"text": f"cosine (found > {FOUND_THRESHOLD:g})"},
        },
        yaxis=feature_axis,
        shapes=[
            {
                "type": "line",
                "xref": "x3",
                "yref": "paper",
                "x0": FOUND_THRESHOLD,
                "x1": FOUND_THRESHOLD,
                "y0": 0,
                "y1": 1,
                "line": {"color": "#222", "dash": "dash", "width": 1},
            }
        ],
        margin={"l": 70, "r": 20, "t": 50, "b": 55},
        bargap=0.15,
    )
