"""Figures of Theory's exercise: the student's curve over the true one, and the run trained with their
formula beside the built-in run (filters and ρ̂ histograms). Pure functions -> go.Figure, labelled axes.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sae_core.analysis.exercise.check import PLOT_RHO, TITLES, Result
from sae_core.analysis.exercise.runs import ExerciseRun
from sae_core.figures.activity import BAR_COLOUR, HIGHLIGHT_COLOUR, TARGET_COLOUR, figure, target_line
from sae_core.figures.training import GAP_COLOUR, GREY, IMAGE_X, IMAGE_Y
from sae_core.images import filter_montage

TRUE_COLOUR = "#555"
RIGHT_COLOUR = "#2ca02c"
WRONG_COLOUR = HIGHLIGHT_COLOUR


def attempt_figure(result: Result, rho: float = PLOT_RHO) -> go.Figure:
    """The student's formula (dashed) over the true function (grey) against ρ̂ at one checked ρ; the
    y range is the true curve's, so a wild formula runs off the plot instead of flattening the truth."""
    q, student, true = result.curves(rho)
    rho = float(result.rhos[np.argmin(np.abs(result.rhos - rho))])
    name = TITLES[result.step]
    shown = np.where(np.isfinite(student), student, np.nan)  # gaps where the formula is not finite
    colour = RIGHT_COLOUR if result.correct else WRONG_COLOUR
    traces = [
        go.Scatter(x=q, y=true, mode="lines", name=f"true {name}", line={"color": TRUE_COLOUR, "width": 5}),
        go.Scatter(
            x=q,
            y=shown,
            mode="lines",
            name="yours",
            hovertemplate=f"{result.formula.normalised}<br>ρ̂ = %{{x:.3f}}: %{{y:.4g}}<extra></extra>",
            line={"color": colour, "width": 2.5, "dash": "dash"},
            connectgaps=False,
        ),
    ]
    lo, hi = float(np.min(true)), float(np.max(true))
    pad = 0.12 * (hi - lo)
    shape, note = target_line(rho, f"ρ = {rho:g}")
    verdict = "right" if result.correct else "not yet right"
    return figure(
        traces,
        f"{name} at ρ = {rho:g}: yours is {verdict}",
        "mean activation ρ̂",
        name,
        height=360,
        xaxis={"range": [0, 1]},
        yaxis={"range": [lo - pad, hi + pad], "zeroline": True},
        shapes=[shape],
        annotations=[note],
        showlegend=True,
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0},
        margin={"l": 70, "r": 20, "t": 50, "b": 100},
    )


def runs_figure(mine: ExerciseRun, builtin: ExerciseRun, bins: int = 20) -> go.Figure:
    """Two runs side by side: their filters (top) and the histogram of their units' ρ̂ with the target ρ
    marked (bottom)."""
    fig = make_subplots(
        rows=2,
        cols=2,
        row_heights=[0.6, 0.4],
        vertical_spacing=0.16,
        horizontal_spacing=0.08,
        subplot_titles=(
            "your formula: filters",
            "built-in KL: filters",
            f"ρ̂ per unit (dashed: ρ = {mine.rho:g})",
            f"ρ̂ per unit (dashed: ρ = {builtin.rho:g})",
        ),
    )
    top = max(np.max(mine.rho_hat), np.max(builtin.rho_hat), mine.rho * 2)
    edges = np.linspace(0.0, float(top) * 1.05, bins + 1)
    for col, run in enumerate((mine, builtin), start=1):
        z = filter_montage(run.encoder_weight, run.filter_shape)
        heat = go.Heatmap(z=z, zmin=-1, zmax=1, colorscale=GREY, showscale=False, hoverinfo="skip")
        fig.add_trace(heat, row=1, col=col)
        # The gaps between tiles (NaN) show the background: paint it behind the picture only, so the
        # histograms below keep a white one.
        gaps = {"type": "rect", "x0": -0.5, "y0": -0.5, "x1": z.shape[1] - 0.5, "y1": z.shape[0] - 0.5}
        fig.add_shape(**gaps, fillcolor=GAP_COLOUR, line_width=0, layer="below", row=1, col=col)
        fig.update_xaxes(IMAGE_X, row=1, col=col)
        fig.update_yaxes({**IMAGE_Y, "scaleanchor": fig.data[-1].xaxis}, row=1, col=col)
        counts, _ = np.histogram(run.rho_hat, bins=edges)
        bars = go.Bar(
            x=(edges[:-1] + edges[1:]) / 2,
            y=counts,
            width=np.diff(edges),
            marker={"color": BAR_COLOUR},
            hovertemplate="ρ̂ ≈ %{x:.3f}<br>%{y} units<extra></extra>",
        )
        fig.add_trace(bars, row=2, col=col)
        fig.add_vline(x=run.rho, line={"dash": "dash", "color": TARGET_COLOUR, "width": 2}, row=2, col=col)
        fig.update_xaxes(title_text="mean activation ρ̂", row=2, col=col)
        fig.update_yaxes(title_text="units", row=2, col=col)
    fig.update_layout(
        height=520,
        showlegend=False,
        template="plotly_white",
        margin={"l": 60, "r": 20, "t": 40, "b": 60},
    )
    return fig
