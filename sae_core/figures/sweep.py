"""Plotly figures of a sweep (the Explore page): pure functions of a `SweepSnapshot`.

    heatmap_figure(snap, metric, layer)      one number per cell of one ρ × β slice, written in the cell
    thumbnails_figure(snap, layer)           every cell's first filters, laid out as the grid
    cell_filters_figure(snap, cell, ...)     one cell's most active filters, large (figures.large_filters)
    tradeoff_figure(snap, y_metric, x_metric)  reconstruction error (or L0) against sparsity (or MMCS), the
                                             Pareto front marked
    selected_cell(selection)                 the cell a click on any of them picked (or None)

Rows are ρ (smallest at the top, as in a table), columns β. Every figure carries invisible click targets
at the cells (plotly cannot select heatmap cells), whose customdata is the cell's index.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go

from sae_core.figures.activity import HIGHLIGHT_COLOUR, figure
from sae_core.figures.large_filters import LARGE_HEIGHT, large_tiles_figure, most_active
from sae_core.figures.training import GAP_COLOUR, GREY, selected_unit
from sae_core.sweep.spec import AXIS_LABELS
from sae_core.sweep.trainer import METRICS, SweepSnapshot

RHO_TITLE = "ρ (target mean activation)"
BETA_TITLE = "β (sparsity penalty weight)"
EXTRA_METRICS = {"probe_accuracy": "Linear-probe accuracy on the codes"}
"""Numbers the page computes after training (not in the snapshot), coloured the same way."""
LOWER_IS_BETTER = {"recon_error", "mse", "loss", "dead_units", "l0", "mean_activation"}
NAMES = {
    "recon_error": "Reconstruction error",
    "mean_activation": "Mean ρ̂",
    "l0": "L0 (active units)",
    "dead_units": "Dead units",
    "fve": "Variance explained",
    "probe_accuracy": "Probe accuracy",
    "features_found": "Features found",
    "mmcs": "MMCS",
}
"""Short names for choosing a metric (the axis titles say the whole thing)."""
SHORT_LABELS = {
    "recon_error": "recon. error",
    "mean_activation": "mean ρ̂",
    "l0": "L0",
    "dead_units": "dead units",
    "fve": "FVE",
    "mse": "MSE",
    "loss": "objective",
    "probe_accuracy": "accuracy",
    "features_found": "found",
    "mmcs": "MMCS",
}
"""For colour bars, where the long labels do not fit."""
FORMATS = {
    "dead_units": "{:.0f}",
    "l0": "{:.1f}",
    "fve": "{:.2f}",
    "probe_accuracy": "{:.1%}",
    "features_found": "{:.0f}",
    "mmcs": "{:.3f}",
}
_INVISIBLE = {"opacity": 0.0}


def metric_label(metric: str) -> str:
    return {**METRICS, **EXTRA_METRICS}[metric]


def layer_title(snap: SweepSnapshot, layer: int) -> str:
    """' · hidden units = 25' for a grid with a third axis, else ''."""
    spec = snap.spec
    return "" if spec.axis is None else f" · {AXIS_LABELS[spec.axis]} = {spec.axis_values[layer]:g}"


def _labels(values: tuple[float, ...]) -> list[str]:
    return [f"{v:g}" for v in values]


def _format(metric: str, value: float) -> str:
    return "–" if not math.isfinite(value) else FORMATS.get(metric, "{:.3g}").format(value)


def heatmap_figure(
    snap: SweepSnapshot,
    metric: str,
    layer: int = 0,
    values: np.ndarray | None = None,
    selected: int | None = None,
    height: int = 420,
) -> go.Figure:
    """metric of every cell of one slice as a heatmap, the value written in each cell.

    values: [axis, ρ, β] numbers to show instead of snap.grid(metric) (probe accuracy, computed later);
    NaN where a cell has none yet. Colours run from dark (worse) to light (better) whatever the metric.
    """
    spec = snap.spec
    z = (snap.grid(metric) if values is None else np.asarray(values, dtype=np.float64))[layer]
    text = [[_format(metric, v) for v in row] for row in z]
    rows, cols = _labels(spec.rhos), _labels(spec.betas)
    scale = "Viridis_r" if metric in LOWER_IS_BETTER else "Viridis"
    cells = go.Heatmap(
        z=z,
        x=cols,
        y=rows,
        text=text,
        texttemplate="%{text}",
        textfont={"size": 14},
        colorscale=scale,
        colorbar={"title": {"text": SHORT_LABELS[metric], "side": "right"}, "thickness": 14},
        hoverinfo="skip",  # the click targets over the cells carry the hover (and the clicks)
        xgap=2,
        ygap=2,
    )
    title = f"{metric_label(metric)}{layer_title(snap, layer)}"
    return figure(
        [
            cells,
            _targets(snap, layer, lambda r, b: (cols[b], rows[r]), lambda i: _value_line(snap, i, metric, z)),
        ],
        title,
        BETA_TITLE,
        RHO_TITLE,
        height=height,
        xaxis={"type": "category", "side": "bottom"},
        yaxis={"type": "category", "autorange": "reversed"},
        margin={"l": 80, "r": 20, "t": 50, "b": 60},
        shapes=_outline(snap, layer, selected, lambda r, b: (b - 0.5, b + 0.5, r - 0.5, r + 0.5)),
    )


def thumbnails_figure(
    snap: SweepSnapshot, layer: int = 0, selected: int | None = None, height: int | None = None
) -> go.Figure:
    """Each cell's thumbnail (its first filters: black −1, grey 0, white +1) at its place in the grid."""
    spec = snap.spec
    rows, cols = len(spec.rhos), len(spec.betas)
    thumbs = {spec.coords(c.index)[1:]: c.thumbnail for c in snap.cells if spec.coords(c.index)[0] == layer}
    th = max((t.shape[0] for t in thumbs.values()), default=1)
    tw = max((t.shape[1] for t in thumbs.values()), default=1)
    gap = max(2, th // 8)
    z = np.full((rows * (th + gap) - gap, cols * (tw + gap) - gap), np.nan, dtype=np.float32)
    for (r, b), t in thumbs.items():
        top, left = r * (th + gap), b * (tw + gap)
        z[top : top + t.shape[0], left : left + t.shape[1]] = t
    centre_x = [b * (tw + gap) + (tw - 1) / 2 for b in range(cols)]
    centre_y = [r * (th + gap) + (th - 1) / 2 for r in range(rows)]
    tiles = go.Heatmap(z=z, zmin=-1, zmax=1, colorscale=GREY, showscale=False, hoverinfo="skip")
    status = {c.index: c.status for c in snap.cells}
    recon = {c.index: c.metrics["recon_error"] for c in snap.cells}
    notes = [
        {
            "x": centre_x[b],
            "y": centre_y[r],
            "text": "diverged",
            "showarrow": False,
            "font": {"color": "#d62728"},
        }
        for i in range(spec.n_cells)
        if spec.coords(i)[0] == layer and status.get(i) == "diverged"
        for r, b in [spec.coords(i)[1:]]
    ]

    def box(r: int, b: int) -> tuple[float, float, float, float]:
        return (
            centre_x[b] - tw / 2 - 1,
            centre_x[b] + tw / 2 + 1,
            centre_y[r] - th / 2 - 1,
            centre_y[r] + th / 2 + 1,
        )

    axis = {"showgrid": False, "zeroline": False, "ticks": ""}
    return figure(
        [
            tiles,
            _targets(
                snap,
                layer,
                lambda r, b: (centre_x[b], centre_y[r]),
                lambda i: f"<br>recon. error {recon.get(i, math.nan):.3g}",
            ),
        ],
        f"First filters of every cell{layer_title(snap, layer)}",
        BETA_TITLE,
        RHO_TITLE,
        height=height or int(np.clip(120 + 75 * rows, 420, 760)),
        xaxis={**axis, "tickvals": centre_x, "ticktext": _labels(spec.betas), "constrain": "domain"},
        yaxis={
            **axis,
            "tickvals": centre_y,
            "ticktext": _labels(spec.rhos),
            "autorange": "reversed",
            "scaleanchor": "x",
            "constrain": "domain",  # the spare height stays page-white, not tile-gap blue
        },
        plot_bgcolor=GAP_COLOUR,
        margin={"l": 80, "r": 20, "t": 50, "b": 60},
        annotations=notes,
        shapes=_outline(snap, layer, selected, box),
    )


def cell_filters_figure(
    snap: SweepSnapshot,
    index: int,
    filters: np.ndarray,
    shape: tuple[int, int],
    label: str,
    height: int = LARGE_HEIGHT,
) -> go.Figure:
    """Cell `index`'s encoder filters (filters: [units, pixels] from its model, each tile `shape`) of its most
    active units (mean activation ρ̂ on the probe), large and numbered, as the Train page's large view;
    titled by `label` (the cell's settings), short enough for half a projector's width."""
    units = most_active(snap.cell(index).rho_hat)
    return large_tiles_figure(filters, shape, units, f"Cell {label}", height)


def pareto_mask(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[N] True for the points no other point beats on both x and y (lower is better on each; NaN never
    on the front): a point is dominated when another is at most as large on both and smaller on one."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    front = np.zeros(len(x), dtype=bool)
    for i in np.flatnonzero(ok):
        others = ok & (x <= x[i]) & (y <= y[i]) & ((x < x[i]) | (y < y[i]))
        front[i] = not others.any()
    return front


def tradeoff_figure(
    snap: SweepSnapshot,
    y_metric: str = "l0",
    selected: int | None = None,
    height: int = 420,
    x_metric: str = "recon_error",
) -> go.Figure:
    """x_metric against y_metric for every cell: by default reconstruction error against a sparsity measure,
    or, on data with known features, L0 against MMCS (how few units per input against how well the
    dictionary matches the true features). The Pareto front joins the cells no other cell beats on both
    (lower is better, except for the metrics not in LOWER_IS_BETTER), the best trade-offs the grid found."""
    spec = snap.spec
    cells = list(snap.cells)
    x = np.array([snap.value(c, x_metric) for c in cells])
    y = np.array([snap.value(c, y_metric) for c in cells])
    front = pareto_mask(*(v if m in LOWER_IS_BETTER else -v for v, m in ((x, x_metric), (y, y_metric))))
    axis_line = "" if spec.axis is None else f"<br>{AXIS_LABELS[spec.axis]} = %{{customdata[3]}}"
    custom = np.array(
        [[c.index, c.rho, c.beta, c.axis_value if c.axis_value is not None else np.nan] for c in cells]
    )
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    points = []
    for n, beta in enumerate(spec.betas):  # one trace per β, so the legend names the colours
        mine = [k for k, c in enumerate(cells) if c.beta == beta]
        points.append(
            go.Scatter(
                x=x[mine],
                y=y[mine],
                mode="markers",
                marker={
                    "size": 12,
                    "color": palette[n % len(palette)],
                    "symbol": "circle" if n < len(palette) else "diamond",
                    "line": {
                        "width": [3 if cells[k].index == selected else 0.5 for k in mine],
                        "color": [HIGHLIGHT_COLOUR if cells[k].index == selected else "#fff" for k in mine],
                    },
                },
                customdata=custom[mine],
                hovertemplate="ρ = %{customdata[1]:g}, β = %{customdata[2]:g}"
                + axis_line
                + f"<br>{SHORT_LABELS[x_metric]} %{{x:.4g}}, {SHORT_LABELS[y_metric]} %{{y:.3g}}"
                + "<br>click to pick this cell<extra></extra>",
                name=f"{beta:g}",
            )
        )
    order = np.argsort(x[front])
    line = go.Scatter(
        x=x[front][order],
        y=y[front][order],
        mode="lines",
        line={"color": "#444", "dash": "dash", "width": 1.5},
        hoverinfo="skip",
        name="Pareto front",
        showlegend=False,
    )
    what = (
        "Reconstruction against sparsity"
        if x_metric == "recon_error"
        else f"{NAMES.get(y_metric, y_metric)} against {NAMES.get(x_metric, x_metric)}"
    )
    return figure(
        [line, *points],
        f"{what} ({front.sum()} of {len(cells)} cells on the Pareto front, dashed)",
        metric_label(x_metric),
        metric_label(y_metric),
        height=height,
        margin={"l": 70, "r": 20, "t": 50, "b": 60},
        showlegend=True,
        legend={"title": {"text": "β"}},
    )


def selected_cell(state: Mapping[str, Any] | None) -> int | None:
    """The cell index of the point a click on one of these figures selected, or None: the first point's
    customdata[0], read as the filters figure reads its units (figures.selected_unit)."""
    return selected_unit(state)


def _targets(snap: SweepSnapshot, layer: int, where, lines=None) -> go.Scatter:
    """An invisible point at each cell of the slice, customdata = [cell index], hover = the cell's ρ and β
    (and lines(cell), when given). Plotly selects only a point it hovers, so the hover must be on."""
    spec = snap.spec
    ids = [i for i in range(spec.n_cells) if spec.coords(i)[0] == layer]
    xy = [where(*spec.coords(i)[1:]) for i in ids]
    text = []
    for i in ids:
        _, r, b = spec.coords(i)
        extra = lines(i) if lines is not None else ""
        text.append(f"ρ = {spec.rhos[r]:g}, β = {spec.betas[b]:g}{extra}")
    return go.Scatter(
        x=[p[0] for p in xy],
        y=[p[1] for p in xy],
        mode="markers",
        marker={"size": 30, "opacity": 0.0},
        selected={"marker": _INVISIBLE},
        unselected={"marker": _INVISIBLE},
        customdata=[[i] for i in ids],
        text=text,
        hovertemplate="%{text}<br>click to pick this cell<extra></extra>",
        showlegend=False,
    )


def _value_line(snap: SweepSnapshot, i: int, metric: str, z: np.ndarray) -> str:
    _, r, b = snap.spec.coords(i)
    return f"<br>{SHORT_LABELS[metric]} {_format(metric, float(z[r, b]))}"


def _outline(snap: SweepSnapshot, layer: int, selected: int | None, box) -> list[dict]:
    """A highlight rectangle around the selected cell, when it is in this slice."""
    spec = snap.spec
    if selected is None or not 0 <= selected < spec.n_cells or spec.coords(selected)[0] != layer:
        return []
    x0, x1, y0, y1 = box(*spec.coords(selected)[1:])
    rect = {"type": "rect", "xref": "x", "yref": "y", "x0": x0, "x1": x1, "y0": y0, "y1": y1}
    return [{**rect, "line": {"color": HIGHLIGHT_COLOUR, "width": 3}}]
