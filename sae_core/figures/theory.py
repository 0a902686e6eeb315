"""Figures of the Theory page: the KL curve with its slope, why KL needs (0, 1), penalties side by side,
lifetime and population sparsity. Pure functions of numbers and arrays -> go.Figure, labelled axes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sae_core.analysis.theory import PenaltyRun, kl, kl_slope, lifetime_sparsity, population_sparsity
from sae_core.figures.activity import (
    BAR_COLOUR,
    HIGHLIGHT_COLOUR,
    TARGET_COLOUR,
    figure,
    histogram_bars,
    target_line,
)
from sae_core.figures.training import GAP_COLOUR, GREY, IMAGE_X, IMAGE_Y
from sae_core.images import filter_montage
from sae_core.penalties.registry import get_penalty

CURVE = np.linspace(0.002, 0.998, 500)
"""ρ̂ grid of the KL curves (linear: the tangent at ρ̂ is a straight line on a linear axis)."""
PENALTY_TITLES = {"kl": "KL(ρ‖ρ̂) on sigmoid units", "l1": "L1 on ReLU units", "topk": "top-k on linear units"}


def kl_curve_figure(rho: float, at: float, units: np.ndarray | None = None, beta: float = 1.0) -> go.Figure:
    """KL(ρ‖ρ̂) over ρ̂ in (0, 1), its tangent at ρ̂ = `at` (slope −ρ/ρ̂ + (1−ρ)/(1−ρ̂)), and the current
    model's units as dots at (ρ̂ⱼ, KL(ρ‖ρ̂ⱼ)) when `units` (their ρ̂ⱼ) are given. beta: for the title's β·slope.
    """
    values = kl(rho, CURVE)
    value, slope = float(kl(rho, at)), float(kl_slope(rho, at))
    curve = go.Scatter(x=CURVE, y=values, mode="lines", name="KL(ρ‖ρ̂)", line={"color": "#555", "width": 2})
    half = 0.12  # half-width of the tangent segment, in ρ̂
    xs = np.array([max(0.0, at - half), min(1.0, at + half)])
    tangent = go.Scatter(
        x=xs,
        y=value + slope * (xs - at),
        mode="lines",
        name=f"slope at ρ̂ = {at:g}",
        line={"color": HIGHLIGHT_COLOUR, "width": 2, "dash": "dot"},
        hoverinfo="skip",
    )
    point = go.Scatter(
        x=[at],
        y=[value],
        mode="markers",
        name="chosen ρ̂",
        marker={"color": HIGHLIGHT_COLOUR, "size": 12},
        hovertemplate="ρ̂ = %{x:.3f}<br>KL = %{y:.4f}<extra></extra>",
    )
    traces = [curve, tangent, point]
    top = max(float(kl(rho, 0.5)), value) * 1.15
    if units is not None and np.size(units):
        q = np.clip(np.asarray(units, dtype=np.float64), CURVE[0], CURVE[-1])
        dots = kl(rho, q)
        traces.append(
            go.Scatter(
                x=q,
                y=dots,
                mode="markers",
                name="this model's units",
                marker={
                    "color": BAR_COLOUR,
                    "size": 8,
                    "opacity": 0.8,
                    "line": {"width": 0.5, "color": "white"},
                },
                customdata=np.arange(q.size),
                hovertemplate="unit %{customdata}<br>ρ̂ = %{x:.4f}<br>KL = %{y:.4f}<extra></extra>",
            )
        )
        top = max(top, float(dots.max()) * 1.1)
    shape, note = target_line(rho, f"ρ = {rho:g}")
    title = f"KL(ρ‖ρ̂) at ρ̂ = {at:g}: {value:.4g}, slope {slope:.4g} (β·slope = {beta * slope:.4g})"
    return figure(
        traces,
        title,
        "mean activation ρ̂",
        "KL(ρ ‖ ρ̂)",
        height=380,
        xaxis={"range": [0, 1]},
        yaxis={"range": [0, top]},
        shapes=[shape],
        annotations=[note],
        showlegend=True,
        legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0},
        margin={"l": 60, "r": 20, "t": 50, "b": 90},
    )


def activation_range_figure(rho: float) -> go.Figure:
    """Why KL needs activations in (0, 1): the curve is defined only there, with a wall at both ends;
    outside, log ρ̂ or log(1 − ρ̂) has no value (shaded). Sigmoid units stay inside, ReLU means can leave."""
    inside = kl(rho, CURVE)
    curve = go.Scatter(x=CURVE, y=inside, mode="lines", line={"color": "#555", "width": 2}, name="KL(ρ‖ρ̂)")
    top = float(kl(rho, 0.9)) * 1.2
    band = {"type": "rect", "xref": "x", "yref": "paper", "y0": 0, "y1": 1, "line": {"width": 0}}
    shaded = {**band, "fillcolor": "rgba(214, 39, 40, 0.15)"}
    shapes = [{**shaded, "x0": -0.5, "x1": 0.0}, {**shaded, "x0": 1.0, "x1": 1.5}]
    note = {"yref": "paper", "y": 0.5, "showarrow": False, "font": {"color": TARGET_COLOUR}}
    notes = [
        {**note, "x": -0.25, "text": "ρ̂ ≤ 0:<br>log ρ̂ undefined"},
        {**note, "x": 1.25, "text": "ρ̂ ≥ 1:<br>log(1−ρ̂) undefined"},
        {**note, "x": 0.5, "y": 0.92, "text": "sigmoid units: ρ̂ always in (0, 1)", "font": {"color": "#555"}},
    ]
    return figure(
        [curve],
        "KL(ρ‖ρ̂) exists only for 0 < ρ̂ < 1",
        "mean activation ρ̂ (a ReLU unit's mean can be any value ≥ 0)",
        "KL(ρ ‖ ρ̂)",
        height=320,
        xaxis={"range": [-0.5, 1.5]},
        yaxis={"range": [0, top]},
        shapes=shapes,
        annotations=notes,
    )


def penalty_filters_figure(runs: Sequence[PenaltyRun]) -> go.Figure:
    """The filters of one small run per penalty, side by side (UFLDL grey scale per tile), each named with
    its settings and numbers under it."""
    fig = make_subplots(rows=1, cols=len(runs), horizontal_spacing=0.04)
    for i, run in enumerate(runs, start=1):
        z = filter_montage(run.encoder_weight, run.filter_shape)
        heat = go.Heatmap(
            z=z, zmin=-1, zmax=1, colorscale=GREY, showscale=False, hoverongaps=False, hoverinfo="skip"
        )
        fig.add_trace(heat, row=1, col=i)
        title = PENALTY_TITLES.get(run.penalty) or get_penalty(run.penalty).title
        name = f"<b>{title}</b><br>{run.note}"
        name += f" · L0 {run.l0:.1f} · bars found {run.bars_found}"
        fig.update_xaxes({**IMAGE_X, "title": {"text": name, "font": {"size": 13}}}, row=1, col=i)
        fig.update_yaxes({**IMAGE_Y, "scaleanchor": fig.data[-1].xaxis}, row=1, col=i)
    fig.update_layout(
        height=380,
        margin={"l": 10, "r": 10, "t": 20, "b": 70},
        plot_bgcolor=GAP_COLOUR,
        template="plotly_white",
    )
    return fig


def lifetime_figure(activations: np.ndarray, threshold: float, bins: int = 25) -> go.Figure:
    """Lifetime sparsity: each unit's activation distribution across the samples, one column per unit
    (colour: fraction of samples in each activation bin), units sorted by how often they are active."""
    acts = np.asarray(activations, dtype=np.float64)
    n, hidden = acts.shape
    life = lifetime_sparsity(np.abs(acts) > threshold)
    order = np.argsort(-life, kind="stable")
    lo, hi = float(acts.min(initial=0.0)), float(acts.max(initial=1.0))
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    counts = np.stack([np.histogram(acts[:, j], bins=edges)[0] for j in order], axis=1) / max(n, 1)
    centres = (edges[:-1] + edges[1:]) / 2
    heat = go.Heatmap(
        z=np.log10(np.maximum(counts, 1.0 / (10 * max(n, 1)))),
        x=[str(j) for j in order],
        y=centres,
        colorscale="Blues",
        colorbar={"title": {"text": "log₁₀ fraction"}, "thickness": 12},
        customdata=np.broadcast_to(life[order], counts.shape),
        hovertemplate="unit %{x}<br>h ≈ %{y:.3f}<br>log₁₀ fraction %{z:.2f}"
        "<br>active on %{customdata:.1%} of samples<extra></extra>",
    )
    title = f"Lifetime sparsity: each unit over {n:,} samples"
    x_title = f"unit (most often active first; mean density {life.mean():.1%})"
    return figure([heat], title, x_title, "activation hⱼ(x)", xaxis={"type": "category"})


def population_figure(activations: np.ndarray, threshold: float, bins: int = 20) -> go.Figure:
    """Population sparsity: for each sample, the fraction of units active on it, as a histogram."""
    acts = np.asarray(activations, dtype=np.float64)
    pop = population_sparsity(np.abs(acts) > threshold)
    counts, edges = np.histogram(pop, bins=bins, range=(0.0, 1.0))
    bars = histogram_bars(
        counts, edges, "[%{customdata[0]:.0%}, %{customdata[1]:.0%}) of units<br>%{y} samples"
    )
    title = f"Population sparsity: each sample over {acts.shape[1]} units"
    x_title = f"fraction of units active on a sample (mean {pop.mean():.1%})"
    return figure([bars], title, x_title, "samples", xaxis={"tickformat": ".0%"})
