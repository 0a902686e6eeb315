"""The filters at a size a projector's back row can read: the most active units' tiles, large.

196 filters of 28×28 share one montage at about 24 screen pixels a tile; this view draws only the
`count` units that fire most often (their density on the probe set, else their mean activation ρ̂ⱼ),
each tile labelled with its unit's number, so the same chart area shows a handful of tiles several
times larger. `large_tiles_figure` draws any set of filters this way (the Explore page's picked cell);
`large_filters_figure` is it for a run's snapshot (the Train page). Pure functions, as every figure.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from sae_core.figures.activity import figure
from sae_core.figures.training import GAP_COLOUR, GREY, IMAGE_X, IMAGE_Y, filter_source
from sae_core.images import filter_montage, grid_shape
from sae_core.train.snapshot import Snapshot

LARGE_COUNT = 16
"""Tiles in the large view: 4 × 4, each about a quarter of the chart's width."""
LARGE_HEIGHT = 560
"""The chart's height in pixels (a page may set its own)."""


def most_active(score: np.ndarray, count: int = LARGE_COUNT) -> np.ndarray:
    """Indices of the `count` highest scores, highest first; ties keep the lower index first.
    score: [units]."""
    score = np.asarray(score, dtype=np.float64)
    return np.argsort(-score, kind="stable")[: min(count, len(score))]


def most_active_units(snap: Snapshot, count: int = LARGE_COUNT) -> np.ndarray:
    """Indices of the `count` units that are active most often (density; ρ̂ without it), most active first;
    ties keep the lower index first. Fewer when the model has fewer units."""
    n = np.asarray(snap.encoder_weight).shape[0]
    density = np.asarray(snap.density if snap.density is not None else [], dtype=np.float64)
    rho_hat = np.asarray(snap.rho_hat if snap.rho_hat is not None else [], dtype=np.float64)
    score = density if density.shape == (n,) else rho_hat if rho_hat.shape == (n,) else np.zeros(n)
    return most_active(score, count)


def large_tiles_figure(
    weights: np.ndarray,
    shape: tuple[int, int],
    units: np.ndarray,
    what: str,
    height: int = LARGE_HEIGHT,
) -> go.Figure:
    """The filters of `units` (weights: [all units, pixels], each tile `shape`) as one montage of large
    tiles in that order, each numbered with its unit; titled "{what}: the n most active of N units"."""
    weights = np.asarray(weights)
    z = filter_montage(weights[units], shape)
    _, cols = grid_shape(len(units))
    h, w = shape
    labels = [
        {
            "x": 1 + c * (w + 1) - 0.5,
            "y": 1 + r * (h + 1) - 0.5,
            "text": f"<b>{int(unit)}</b>",
            "showarrow": False,
            "xanchor": "left",
            "yanchor": "top",
            "font": {"size": 14, "color": "#ffd166"},
            "bgcolor": "rgba(0, 0, 0, 0.55)",
        }
        for i, unit in enumerate(units)
        for r, c in [divmod(i, cols)]
    ]
    tiles = go.Heatmap(
        z=z, zmin=-1.0, zmax=1.0, colorscale=GREY, showscale=False, hoverongaps=False, hoverinfo="skip"
    )
    return figure(
        [tiles],
        f"{what}: the {len(units)} most active of {weights.shape[0]} units",
        height=height,
        xaxis=IMAGE_X,
        yaxis=IMAGE_Y,
        plot_bgcolor=GAP_COLOUR,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        annotations=labels,
    )


def large_filters_figure(snap: Snapshot, which: str = "encoder", count: int = LARGE_COUNT) -> go.Figure:
    """A run's filters (`which`: encoder or decoder) of its `count` most active units, large."""
    weights, shape, title = filter_source(snap, which)
    return large_tiles_figure(weights, shape, most_active_units(snap, count), title.split(",")[0])
