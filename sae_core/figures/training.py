"""Plotly figures of a training snapshot: pure functions `*_figure(snapshot) -> go.Figure`.

This module draws the loss curves and the pictures (filters, reconstructions); the histograms of unit
activity, the per-unit penalty curve and the metric row live in `figures_activity` and are re-exported
here, so pages only need `from sae_core import figures`. Everything is numpy: images are one montage in
one heatmap, histograms are binned here and sent as bars, long curves are downsampled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go

from sae_core.figures.activity import (
    HIGHLIGHT_COLOUR,
    activation_histogram,
    density_histogram,
    empty_figure,
    figure,
    kl_curve_figure,
    metrics_row,
    rho_hat_histogram,
    valid_unit,
)
from sae_core.images import filter_montage, grid_shape, montage
from sae_core.penalties.registry import PENALTIES

if TYPE_CHECKING:
    from sae_core.train.snapshot import Snapshot

GREY = [[0.0, "black"], [1.0, "white"]]
"""Low values black, high values white (plotly's named 'Greys' runs the other way in some versions)."""
GAP_COLOUR = "#35506b"
"""Background showing through the NaN gaps between tiles: slate blue, never mistaken for a weight."""
TERM_COLOURS = {
    "reconstruction": "#1f77b4",
    "sparsity": "#d62728",
    "weight_decay": "#2ca02c",
    "total": "#222",
}

__all__ = [
    "loss_figure",
    "filters_figure",
    "selected_unit",
    "unit_of_tile",
    "reconstructions_figure",
    "data_figure",
    "rho_hat_histogram",
    "activation_histogram",
    "density_histogram",
    "kl_curve_figure",
    "metrics_row",
    "empty_figure",
    "downsample_indices",
    "term_label",
    "log_axis",
]


def grey_heatmap(z: np.ndarray, lo: float, hi: float, hover: str = "value %{z:.2f}") -> go.Heatmap:
    """One grey image trace: lo is black, hi is white, gaps (NaN) show the background."""
    return go.Heatmap(
        z=z,
        zmin=lo,
        zmax=hi,
        colorscale=GREY,
        showscale=False,
        hoverongaps=False,
        hovertemplate=hover + "<extra></extra>",
    )


# ----- loss curves ---------------------------------------------------------------------------------------
def term_label(term: str, penalty: str) -> str:
    """Legend name of a loss term as the trainer names it; the sparsity term is named by `penalty` (its
    spec's `term_label`), or plainly "sparsity" for "" (runs under several penalties)."""
    if term == "sparsity":
        spec = PENALTIES.get(penalty)
        return "sparsity" if spec is None else spec.term_label
    return term.replace("_", " ")


def downsample_indices(values: np.ndarray, max_points: int) -> np.ndarray:
    """Indices of at most `max_points` points of a long curve, first and last always kept.

    Min/max bucketing: the interior is cut into equal buckets and each keeps its lowest and its highest
    point, so spikes (a learning rate that is too high) survive the thinning. values: [T] -> [≤ max_points].
    """
    t = len(values)
    if t <= max_points:
        return np.arange(t)
    buckets = max(1, (max_points - 2) // 2)
    size = math.ceil((t - 2) / buckets)
    buckets = math.ceil((t - 2) / size)
    interior = np.full(buckets * size, np.nan)
    interior[: t - 2] = values[1:-1]
    rows = interior.reshape(buckets, size)
    offsets = 1 + np.arange(buckets) * size
    lows, highs = offsets + np.nanargmin(rows, axis=1), offsets + np.nanargmax(rows, axis=1)
    return np.unique(np.concatenate([[0], lows, highs, [t - 1]]))


def log_axis(traces: list[go.Scatter]) -> dict:
    """A log y axis that stays readable: over two or more decades, labels only at powers of ten.

    Plotly's default labels the 2 and 5 of every decade too, which over four decades of loss reads as
    "5 2 10 5 2 1 5 2 0.1". Then the axis gets one label per decade and unlabelled minor ticks at 2..9.
    Over a narrow range decade labels would leave one label or none, so Plotly's own ticks (1.5, 2, 2.5, ...)
    stay.
    """
    ys = np.concatenate([np.asarray(t.y, dtype=np.float64) for t in traces]) if traces else np.array([])
    ys = ys[np.isfinite(ys) & (ys > 0)]
    decades = float(np.log10(ys.max() / ys.min())) if ys.size else 0.0
    if decades < 2.0:
        return {"type": "log"}
    minor = {"dtick": "D1", "ticks": "outside", "ticklen": 3, "showgrid": False}
    return {"type": "log", "dtick": 1, "tickformat": "~g", "ticks": "outside", "ticklen": 6, "minor": minor}


def loss_figure(snap: Snapshot, log_y: bool = False, max_points: int = 1000) -> go.Figure:
    """Every loss term and their total against the step; long histories are downsampled per term."""
    steps = np.asarray(snap.history_steps)
    if steps.size == 0 or not snap.history:
        return empty_figure(
            "Loss", "Press Train to start", "step", "loss", xaxis={"range": [0, max(1, snap.total_steps)]}
        )
    names = [t for t in snap.history if t != "total"] + (["total"] if "total" in snap.history else [])
    traces = []
    for term in names:
        values = np.asarray(snap.history[term], dtype=np.float64)
        keep = downsample_indices(values, max_points)
        line = {"color": TERM_COLOURS.get(term), "width": 2.5 if term == "total" else 1.5}
        label = term_label(term, snap.config.model.effective_penalty)
        traces.append(go.Scatter(x=steps[keep], y=values[keep], mode="lines", name=label, line=line))
    traces += _held_out_traces(snap, max_points)
    length = "until paused" if snap.until_paused else f"of {snap.total_steps:,}"
    no_test = "" if snap.test_metrics is not None else " · no test split"
    return figure(
        traces,
        f"Loss terms (step {snap.step:,} {length}){no_test}",
        "step",
        "loss (log scale)" if log_y else "loss",
        yaxis=log_axis(traces) if log_y else None,
        showlegend=True,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
        hovermode="x unified",
    )


TEST_POINTS = 80
"""Most points of a test curve: each is a ring, and rings must stay apart to read as points over the
training curve they follow closely (one point per snapshot is 240 a minute)."""


def _held_out_traces(snap: Snapshot, max_points: int) -> list[go.Scatter]:
    """The held-out probe's terms as dotted lines of rings, named "test …", one point per step that had
    a snapshot (thinned to TEST_POINTS, extremes kept).

    Training curves are the objective on each step's batch; these are the same terms on the fixed test
    inputs, so a gap that opens between the two is overfitting.
    """
    steps = np.asarray(snap.test_history_steps if snap.test_history_steps is not None else [])
    traces = []
    for term, values in snap.test_history.items():
        values = np.asarray(values, dtype=np.float64)
        if steps.size == 0 or values.shape != steps.shape:
            continue
        keep = downsample_indices(values, min(max_points, TEST_POINTS))
        colour = TERM_COLOURS.get(term)
        line = {"color": colour, "width": 1.5, "dash": "dot"}
        marker = {"symbol": "circle-open", "size": 7, "color": colour, "line": {"width": 1.5}}
        label = "test " + term_label(term, snap.config.model.effective_penalty)
        traces.append(
            go.Scatter(
                x=steps[keep], y=values[keep], mode="lines+markers", name=label, line=line, marker=marker
            )
        )
    return traces


# ----- images -----------------------------------------------------------------------------------------------
def _unit_map(n: int, shape: tuple[int, int], cols: int | None = None) -> np.ndarray:
    """[rows·(h+1)+1, cols·(w+1)+1] the unit index under each montage pixel, NaN in the gaps."""
    h, w = shape
    rows, cols = grid_shape(n, cols)
    out = np.full((rows * (h + 1) + 1, cols * (w + 1) + 1), np.nan, dtype=np.float32)
    tile_rows = np.full(rows * (h + 1) + 1, -1)
    tile_cols = np.full(cols * (w + 1) + 1, -1)
    for r in range(rows):
        tile_rows[1 + r * (h + 1) : 1 + r * (h + 1) + h] = r
    for c in range(cols):
        tile_cols[1 + c * (w + 1) : 1 + c * (w + 1) + w] = c
    unit = tile_rows[:, None] * cols + tile_cols[None, :]
    inside = (tile_rows[:, None] >= 0) & (tile_cols[None, :] >= 0) & (unit < n)
    out[inside] = unit[inside]
    return out


IMAGE_X = {"showticklabels": False, "showgrid": False, "zeroline": False, "ticks": "", "constrain": "domain"}
IMAGE_Y = {**IMAGE_X, "autorange": "reversed", "scaleanchor": "x", "scaleratio": 1}
"""Axes of a picture: square pixels, first row at the top, no ticks or grid."""


def filter_source(snap: Snapshot, which: str) -> tuple[np.ndarray, tuple[int, int], str]:
    """(weights [units, pixels], tile shape, title) of the filters to draw."""
    if which not in ("encoder", "decoder"):
        raise ValueError(f"which must be 'encoder' or 'decoder', got {which!r}")
    encoder = (snap.encoder_weight, tuple(snap.filter_shape), "Encoder filters W₁, each unit normalised")
    if which == "encoder":
        return encoder
    if snap.decoder_weight is None:
        w, shape, _ = encoder
        return w, shape, "Encoder filters W₁ (this model has no linear decoder), each unit normalised"
    weights = np.asarray(snap.decoder_weight).T
    h, w = snap.image_shape
    shape = (h, w) if weights.shape[1] == h * w else tuple(snap.filter_shape)
    return weights, shape, "Decoder features W₂ᵀ (columns of W₂), each unit normalised"


def filters_figure(snap: Snapshot, which: str = "encoder", highlight: int | None = None) -> go.Figure:
    """All filters as one grey montage (UFLDL display: black = −1, mid-grey = 0, white = +1 per tile).

    Hovering a tile names its unit, ρ̂ⱼ, its penalty (under one with a per-unit curve: KL(ρ‖ρ̂ⱼ)) and
    density. Plotly cannot select heatmap cells, so a grid of invisible points over each tile (trace 1)
    takes the clicks: Streamlit's on_select reports one, `selected_unit` reads its unit. `highlight`: a
    unit to outline.
    """
    weights, shape, title = filter_source(snap, which)
    n = weights.shape[0]
    z = filter_montage(weights, shape)
    units = _unit_map(n, shape)
    rho_hat = np.asarray(snap.rho_hat, dtype=np.float32)
    has_rho = rho_hat.shape == (n,)
    rho_map = np.full(units.shape, np.nan, dtype=np.float32)
    inside = ~np.isnan(units)
    if has_rho:
        rho_map[inside] = rho_hat[units[inside].astype(np.int64)]
    hover = "unit %{customdata[0]}<br>ρ̂ = %{customdata[1]:.3f}" if has_rho else "unit %{customdata[0]}"
    tiles = go.Heatmap(
        z=z,
        customdata=np.stack([units, rho_map], axis=-1),
        zmin=-1.0,
        zmax=1.0,
        colorscale=GREY,
        showscale=False,
        hoverongaps=False,
        hovertemplate=hover + "<br>weight %{z:.2f}<extra></extra>",
    )
    unit = valid_unit(highlight, n)
    return figure(
        [tiles, _click_targets(snap, n, shape)],
        f"{title} ({n} units, {shape[0]}×{shape[1]})",
        height=int(np.clip(z.shape[0] + 70, 360, 620)),  # about one screen pixel per montage pixel
        xaxis=IMAGE_X,
        yaxis=IMAGE_Y,
        plot_bgcolor=GAP_COLOUR,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        hoverdistance=30,  # the click targets are at most ~25 px apart on screen
        shapes=[] if unit is None else [_tile_outline(unit, n, shape)],
    )


CLICK_TARGETS = 17
"""About this many click targets along the montage's longer side: a 500-pixel-wide chart then has one at
least every 30 screen pixels, within reach of any pointer (hoverdistance 30), whatever the tile count."""


def _tile_origins(n: int, shape: tuple[int, int]) -> np.ndarray:
    """[n, 2] (row, column) of each tile's top-left pixel in the montage (1-pixel gaps, as _unit_map)."""
    h, w = shape
    _, cols = grid_shape(n)
    r, c = np.divmod(np.arange(n), cols)
    return np.stack([1 + r * (h + 1), 1 + c * (w + 1)], axis=1)


def _click_targets(snap: Snapshot, n: int, shape: tuple[int, int]) -> go.Scatter:
    """Invisible points, k×k per tile, carrying each unit's [index, ρ̂, penalty (KL), density] and their
    hover (the penalty only under one with a per-unit curve)."""
    h, w = shape
    k = max(1, min(max(h, w), math.ceil(CLICK_TARGETS / max(grid_shape(n)))))
    frac = (np.arange(k) + 0.5) / k
    origins = _tile_origins(n, shape)
    ys = (origins[:, :1, None] - 0.5 + h * frac[None, :, None]).repeat(k, axis=2)
    xs = (origins[:, 1:, None] - 0.5 + w * frac[None, None, :]).repeat(k, axis=1)
    penalty = snap.config.model.penalty_spec
    curve = snap.kl_per_unit if penalty.unit_curve is not None else None
    per_unit, lines = [np.arange(n, dtype=np.float64)], ["unit %{customdata[0]}"]
    for values, line in (
        (snap.rho_hat, "ρ̂ = %{customdata[1]:.3f}"),
        (curve, penalty.unit_curve_label + " = %{customdata[2]:.3g}"),
        (snap.density, "active on %{customdata[3]:.1%} of samples"),
    ):
        ok = values is not None and np.shape(values) == (n,)  # conv: ρ̂ per position, not per tile
        per_unit.append(np.asarray(values, dtype=np.float64) if ok else np.full(n, np.nan))
        lines += [line] if ok else []
    custom = np.repeat(np.stack(per_unit, axis=1), k * k, axis=0)
    invisible = {"opacity": 0.0}
    return go.Scatter(
        x=xs.ravel(),
        y=ys.ravel(),
        mode="markers",
        marker={"size": 8, "opacity": 0.0},
        selected={"marker": invisible},
        unselected={"marker": invisible},
        customdata=custom,
        hovertemplate="<br>".join(lines) + "<extra></extra>",
        showlegend=False,
    )


def _tile_outline(unit: int, n: int, shape: tuple[int, int]) -> dict:
    """A rectangle around the unit's tile in the montage."""
    h, w = shape
    top, left = _tile_origins(n, shape)[unit]
    rect = {"type": "rect", "xref": "x", "yref": "y", "x0": left - 1, "x1": left + w, "y0": top - 1}
    return {**rect, "y1": top + h, "line": {"color": HIGHLIGHT_COLOUR, "width": 3}}


def unit_of_tile(snap: Snapshot, tile: int | None) -> int | None:
    """The code unit that filter tile `tile` belongs to, for the unit views (ρ̂, density, KL); None when
    no tile is picked or the tiles are not the code's units (conv kernels, a deep net's first layer: their
    count differs from ρ̂'s, the rule the tiles' own hover follows too)."""
    tiles = int(np.shape(snap.encoder_weight)[0])
    return valid_unit(tile, tiles) if tiles == np.size(snap.rho_hat) else None


def selected_unit(state: Mapping[str, Any] | None) -> int | None:
    """The unit of the point a click on the filters figure selected, or None.

    state: what st.plotly_chart(..., on_select=...) hands back, {"selection": {"points": [...]}}, each point
    with the "customdata" of `_click_targets` ([unit, ρ̂, KL, density]); the inner selection works too.
    Streamlit 1.67 sends a point's customdata row as an object, {"0": unit, "1": ρ̂, ...}; a list is read too.
    """
    selection = (state or {}).get("selection", state) or {}
    for point in selection.get("points") or []:
        custom = point.get("customdata")
        if isinstance(custom, Mapping):
            custom = custom.get("0", custom.get(0))
        elif isinstance(custom, list | tuple) and custom:
            custom = custom[0]
        if isinstance(custom, int | float) and np.isfinite(custom):
            return int(custom)
    return None


def reconstructions_figure(snap: Snapshot) -> go.Figure:
    """Fixed inputs (top row) above their reconstructions (bottom row), with ½‖x̂ − x‖² under each pair."""
    inputs = np.asarray(snap.show_inputs, dtype=np.float32)
    recon = np.asarray(snap.show_recon, dtype=np.float32)
    n = inputs.shape[0]
    h, w = snap.image_shape
    z = montage(np.concatenate([inputs, recon]), (h, w), cols=n)
    errors = 0.5 * ((recon - inputs) ** 2).sum(axis=1)
    # Data in [0, 1] keep the fixed 0..1 grey scale; standardised data widen it so nothing clips.
    lo, hi = min(0.0, float(np.nanmin(z))), max(1.0, float(np.nanmax(z)))
    pixels = grey_heatmap(z, lo, hi)
    xaxis = {**IMAGE_X, "showticklabels": True, "tickmode": "array"}
    xaxis.update(tickvals=1 + np.arange(n) * (w + 1) + (w - 1) / 2, ticktext=[f"{e:.3g}" for e in errors])
    yaxis = {**IMAGE_Y, "showticklabels": True, "tickmode": "array", "ticktext": ["input", "reconstruction"]}
    # Invisible outside ticks push the row labels off the images.
    yaxis.update(
        tickvals=[(h - 1) / 2 + 1, (h - 1) / 2 + h + 2], ticks="outside", ticklen=8, tickcolor="rgba(0,0,0,0)"
    )
    return figure(
        [pixels],
        f"Inputs and reconstructions (step {snap.step:,})",
        "½‖x̂ − x‖² per image",
        height=300,
        xaxis=xaxis,
        yaxis=yaxis,
        plot_bgcolor=GAP_COLOUR,
        margin={"l": 100, "r": 10, "t": 50, "b": 50},
    )


def data_figure(snap: Snapshot, cols: int = 10) -> go.Figure:
    """The data before any training: the first training inputs as one grey montage, `cols` to a row."""
    x = snap.data_examples
    if x is None or len(x) == 0:
        return empty_figure("Training data", "This snapshot carries no training inputs")
    n = len(x)
    h, w = snap.image_shape
    cols = min(cols, n)
    z = montage(np.asarray(x, dtype=np.float32), (h, w), cols=cols)
    lo, hi = min(0.0, float(np.nanmin(z))), max(1.0, float(np.nanmax(z)))  # as reconstructions_figure
    pixels = grey_heatmap(z, lo, hi, hover="input %{customdata}<br>pixel %{z:.2f}")
    pixels.customdata = _unit_map(n, (h, w), cols)
    return figure(
        [pixels],
        f"Training data: the first {n} inputs ({h}×{w}, {snap.config.data.dataset})",
        height=300,
        xaxis=IMAGE_X,
        yaxis=IMAGE_Y,
        plot_bgcolor=GAP_COLOUR,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
