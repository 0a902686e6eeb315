"""The class scatter: one dot per student, reconstruction error against L0 or mean ρ̂.

Each student's run is one point of the trade-off a ρ × β sweep draws (sae_core.figures.sweep's scatter):
a class that spreads its settings draws the curve together. A pure function of plain numbers, so the
dashboard can build it from the class store without any student's model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

X_AXES = {
    "l0": "L0 (mean active units per sample)",
    "mean_rho_hat": "Mean ρ̂ (mean activation of the hidden units)",
}
"""The x axes the dashboard offers: the summary's field -> its axis title."""
Y_TITLE = "Reconstruction error (½ · mean ‖x̂ − x‖²)"


def class_scatter(
    names: Sequence[str],
    x: Sequence[float],
    y: Sequence[float],
    ids: Sequence[str],
    x_axis: str = "l0",
    colour: Sequence[float] | None = None,
    colour_title: str = "β",
    picked: str | None = None,
    height: int = 340,
) -> go.Figure:
    """One labelled dot per student (NaN coordinates are left out); `ids` ride along as customdata so a
    click names the student; `colour` (β, say) colours the dots; `picked` is ringed."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(xs) & np.isfinite(ys)
    idx = np.flatnonzero(keep)
    marker: dict = {"size": 13, "line": {"width": 1, "color": "white"}}
    if colour is not None and idx.size:
        c = np.asarray(colour, dtype=float)[idx]
        marker.update(color=c, colorscale="Viridis", showscale=True, colorbar={"title": colour_title})
    fig = go.Figure(
        go.Scatter(
            x=xs[idx],
            y=ys[idx],
            mode="markers+text",
            text=[names[i] for i in idx],
            textposition=_label_sides(xs[idx]),
            customdata=[ids[i] for i in idx],
            marker=marker,
            hovertemplate="%{text}<br>x %{x:.3g}<br>error %{y:.4g}<extra></extra>",
            name="students",
        )
    )
    if picked is not None and picked in ids and keep[list(ids).index(picked)]:
        i = list(ids).index(picked)
        fig.add_trace(
            go.Scatter(
                x=[xs[i]],
                y=[ys[i]],
                mode="markers",
                marker={"size": 24, "color": "rgba(0,0,0,0)", "line": {"width": 3, "color": "#d62728"}},
                hoverinfo="skip",
                showlegend=False,
            )
        )
    fig.update_layout(
        height=height,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        title={"text": f"The class's trade-off: {len(idx)} run(s)", "x": 0.0},
        xaxis_title=X_AXES.get(x_axis, x_axis),
        yaxis_title=Y_TITLE,
        showlegend=False,
        uirevision="class",  # zoom and pan survive the refreshes
    )
    return fig


def _label_sides(x: np.ndarray) -> list[str]:
    """Names above and below their dots in turn, left to right, so that neighbours' names do not overlap
    as often as they would all above."""
    sides = ["top center"] * len(x)
    for rank, i in enumerate(np.argsort(x, kind="stable")):
        sides[i] = "top center" if rank % 2 == 0 else "bottom center"
    return sides


def picked_id(state: Mapping[str, Any] | None) -> str | None:
    """The student id of the dot a click selected (what st.plotly_chart's on_select hands back,
    {"selection": {"points": [...]}}, or the inner selection), or None."""
    selection = (state or {}).get("selection", state) or {}
    for point in selection.get("points") or []:
        custom = point.get("customdata")
        if isinstance(custom, Mapping):  # a customdata row arrives as {"0": ...}
            custom = custom.get("0", custom.get(0))
        elif isinstance(custom, list | tuple) and custom:
            custom = custom[0]
        if isinstance(custom, str) and custom:
            return custom
    return None
