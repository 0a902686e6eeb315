"""Figures of hidden-unit activity: ρ̂ and activation histograms, feature density, the per-unit penalty
curve (KL), metrics.

Also the shared look of every figure (`figure`, `empty_figure`). Histograms are binned with numpy and
sent as bars, so a figure carries tens of numbers rather than every activation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from sae_core.analysis import diagnostics
from sae_core.train.metrics import FOUND_THRESHOLD, active_rule, features_found, mmcs

if TYPE_CHECKING:
    from sae_core.train.snapshot import Snapshot

BAR_COLOUR = "#4c78a8"
DEAD_COLOUR = "#d62728"
TARGET_COLOUR = "#d62728"
HIGHLIGHT_COLOUR = "#ff7f0e"
"""The unit picked on the filters figure, wherever it is marked (its tile, its bar, its dot)."""


# ----- shared look ----------------------------------------------------------------------------------------
_TEMPLATE = pio.templates["plotly_white"].to_plotly_json()
"""The template as plain JSON. Setting it the usual way deep-copies and validates it on every figure
(about 15 ms each, several times that on a busy machine), too slow for a page redrawing eight figures
twice a second."""


def figure(
    data: Any,
    title: str,
    x_title: str | None = None,
    y_title: str | None = None,
    height: int = 340,
    xaxis: dict | None = None,
    yaxis: dict | None = None,
    **layout: Any,
) -> go.Figure:
    """A figure in the house style: white template, left-aligned title, tight margins, no legend.

    The whole layout is passed at once and validation is off: each `update_*` call and each validated
    layout costs milliseconds in plotly's Python layer, which a live page redrawing every half second
    pays many times over. The traces are still validated when they are built with `go.*`.
    """
    full = {
        "template": _TEMPLATE,
        "title": {"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 15}},
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
        "showlegend": False,
        "bargap": 0.05,
        "xaxis": {"title": {"text": x_title}, **(xaxis or {})},
        "yaxis": {"title": {"text": y_title}, **(yaxis or {})},
        **layout,
    }
    return go.Figure(data=data, layout=full, _validate=False)


def empty_figure(
    title: str, text: str, x_title: str | None = None, y_title: str | None = None, **axes: Any
) -> go.Figure:
    """A titled figure with a message in the middle, for views that have nothing to draw yet."""
    note = {"text": text, "x": 0.5, "y": 0.5, "xref": "paper", "yref": "paper", "showarrow": False}
    note["font"] = {"size": 16, "color": "#777"}
    yaxis = {"range": [0, 1], "showticklabels": False}
    return figure([], title, x_title, y_title, yaxis=yaxis, annotations=[note], **axes)


def target_line(x: float, label: str, log_x: bool = False) -> tuple[dict, dict]:
    """(shape, annotation): a dashed vertical line at x, labelled above the plot where it hides no bar."""
    shape = {"type": "line", "x0": x, "x1": x, "xref": "x", "y0": 0, "y1": 1, "yref": "paper"}
    shape["line"] = {"dash": "dash", "color": TARGET_COLOUR, "width": 2}
    note = {"x": float(np.log10(x)) if log_x else x, "y": 1.0, "yref": "paper", "yanchor": "bottom"}
    note.update(text=label, showarrow=False, font={"color": TARGET_COLOUR})
    return shape, note


def histogram_bars(counts: np.ndarray, edges: np.ndarray, hover: str, colour: str = BAR_COLOUR) -> go.Bar:
    centres = (edges[:-1] + edges[1:]) / 2
    return go.Bar(
        x=centres,
        y=counts,
        width=np.diff(edges),
        marker={"color": colour, "line": {"width": 0}},
        customdata=np.stack([edges[:-1], edges[1:]], axis=-1),
        hovertemplate=hover + "<extra></extra>",
    )


def valid_unit(highlight: int | None, n: int) -> int | None:
    """The highlighted unit when it is one of the n units, else None (a stale pick after a rebuild)."""
    return int(highlight) if highlight is not None and 0 <= int(highlight) < n else None


def highlight_bar(bars: go.Bar, index: int, text: str, y: float) -> dict:
    """Colour bar `index` of a histogram and return the annotation naming the unit above it."""
    colours = [bars.marker.color] * len(bars.x)
    colours[index] = HIGHLIGHT_COLOUR
    bars.marker.color = colours
    note = {"x": float(bars.x[index]), "y": float(y), "text": text, "showarrow": True, "arrowhead": 2}
    return {**note, "ax": 0, "ay": -28, "font": {"color": HIGHLIGHT_COLOUR}, "bgcolor": "white"}


def bin_of(value: float, edges: np.ndarray) -> int:
    """The bin np.histogram puts value in: [eᵢ, eᵢ₊₁), the last bin closed on the right."""
    return int(np.clip(np.searchsorted(edges, value, side="right") - 1, 0, len(edges) - 2))


def _power_of_ten(d: int) -> str:
    return "1" if d == 0 else "10" + str(d).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))


# ----- histograms -----------------------------------------------------------------------------------------
def rho_hat_histogram(snap: Snapshot, bins: int = 30, highlight: int | None = None) -> go.Figure:
    """How many units have each mean activation ρ̂ⱼ; a dashed line marks the target ρ under the KL penalty.

    highlight: a unit whose bar is coloured and labelled with its ρ̂.
    """
    rho_hat = np.asarray(snap.rho_hat, dtype=np.float64)
    model = snap.config.model
    targeted = model.penalty_spec.uses_rho
    top = max(float(rho_hat.max(initial=0.0)), 2 * model.rho if targeted else 0.0, 1e-3) * 1.05
    counts, edges = np.histogram(rho_hat, bins=bins, range=(0.0, top))
    bars = histogram_bars(counts, edges, "ρ̂ in [%{customdata[0]:.3f}, %{customdata[1]:.3f})<br>%{y} units")
    shape, note = target_line(model.rho, f"target ρ = {model.rho:g}")
    title = f"Mean activation ρ̂ⱼ of each of the {rho_hat.size} units"
    marks = {"shapes": [shape], "annotations": [note]} if targeted else {"annotations": []}
    unit = valid_unit(highlight, rho_hat.size)
    if unit is not None:
        i = bin_of(rho_hat[unit], edges)
        label = f"unit {unit}: ρ̂ = {rho_hat[unit]:.3f}"
        marks["annotations"] = [*marks["annotations"], highlight_bar(bars, i, label, counts[i])]
    return figure([bars], title, "mean activation ρ̂ⱼ", "units", **marks)


def activation_histogram(snap: Snapshot, bins: int = 50) -> go.Figure:
    """Every activation hⱼ(x) over all probe samples and units, counts on a log axis."""
    acts = np.asarray(snap.activations, dtype=np.float64)
    if acts.size == 0:
        return empty_figure("Activations", "No activations yet", "activation hⱼ(x)", "count")
    lo, hi = float(acts.min()), float(acts.max())
    counts, edges = np.histogram(acts.ravel(), bins=bins, range=(lo, hi if hi > lo else lo + 1.0))
    bars = histogram_bars(counts, edges, "h in [%{customdata[0]:.3f}, %{customdata[1]:.3f})<br>%{y:,} values")
    n, hidden = acts.shape
    title = f"All activations ({n:,} samples × {hidden} units)"
    return figure([bars], title, "activation hⱼ(x)", "count (log scale)", yaxis={"type": "log"})


def density_histogram(snap: Snapshot, bins: int = 30, highlight: int | None = None) -> go.Figure:
    """Feature density: log₁₀ of the fraction of probe samples each unit is active on.

    Dead units (density 0) have no logarithm; they get their own red bar at the left, labelled "dead".
    highlight: a unit whose bar is coloured and labelled with its density.
    """
    density = np.asarray(snap.density, dtype=np.float64)
    n_probe = max(1, int(np.shape(snap.activations)[0]))
    alive = density > 0
    dead = int((~alive).sum())
    lo = np.log10(1.0 / n_probe)  # the rarest a live unit can be on the probe set
    counts, edges = np.histogram(np.log10(density[alive]), bins=bins, range=(lo - 1e-9, 0.0))
    width = edges[1] - edges[0]
    dead_x = lo - 2.5 * width
    live_bars = histogram_bars(
        counts, edges, "density 10^[%{customdata[0]:.2f}, %{customdata[1]:.2f})<br>%{y} units"
    )
    dead_bar = go.Bar(
        x=[dead_x],
        y=[dead],
        width=[2 * width],
        marker={"color": DEAD_COLOUR},
        hovertemplate="dead (never active)<br>%{y} units<extra></extra>",
    )
    decades = np.arange(np.ceil(lo), 1)
    xaxis = {
        "tickmode": "array",
        "tickvals": [dead_x, *decades],
        "ticktext": ["dead", *[_power_of_ten(int(d)) for d in decades]],
        "range": [dead_x - 1.5 * width, width],
    }
    title = f"Feature density ({dead} of {density.size} units dead)"
    x_title = f"fraction of samples with {active_rule(snap.active_threshold)} (log scale)"
    notes = []
    unit = valid_unit(highlight, density.size)
    if unit is not None and density[unit] > 0:
        i = bin_of(np.log10(density[unit]), edges)
        label = f"unit {unit}: active on {density[unit]:.1%}"
        notes.append(highlight_bar(live_bars, i, label, counts[i]))
    elif unit is not None:
        notes.append(highlight_bar(dead_bar, 0, f"unit {unit}: dead", dead))
    return figure([live_bars, dead_bar], title, x_title, "units", xaxis=xaxis, annotations=notes)


# ----- the per-unit penalty (KL) --------------------------------------------------------------------------
def kl_curve_figure(snap: Snapshot, highlight: int | None = None) -> go.Figure:
    """The penalty's per-unit curve over ρ̂ (KL(ρ‖ρ̂) on (0, 1)) with each hidden unit as a dot at
    (ρ̂ⱼ, its penalty), for a penalty that is a function of each unit's ρ̂ (`PenaltySpec.unit_curve`).

    Both come from the snapshot (computed with the loss's own function and clamp), so the dots sit on the
    curve. highlight: a unit whose dot is drawn larger, coloured and labelled.
    """
    model = snap.config.model
    rho = model.rho
    penalty = model.penalty_spec
    if snap.kl_curve is None or snap.kl_per_unit is None:
        return empty_figure("Penalty per unit", "This snapshot has no per-unit penalty values")
    name, label = penalty.short, penalty.unit_curve_label
    grid, values = np.asarray(snap.kl_curve, dtype=np.float64)
    q = np.clip(np.asarray(snap.rho_hat, dtype=np.float64), grid[0], grid[-1])
    dots = np.asarray(snap.kl_per_unit, dtype=np.float64)
    curve = go.Scatter(x=grid, y=values, mode="lines", line={"color": "#888"}, hoverinfo="skip")
    units = go.Scatter(
        x=q,
        y=dots,
        mode="markers",
        marker={"color": BAR_COLOUR, "size": 7, "opacity": 0.8, "line": {"width": 0.5, "color": "white"}},
        customdata=np.arange(q.size),
        hovertemplate=f"unit %{{customdata}}<br>ρ̂ = %{{x:.4f}}<br>{name} = %{{y:.4f}}<extra></extra>",
    )
    shape, note = target_line(rho, f"ρ = {rho:g}", log_x=True)
    notes = [note]
    unit = valid_unit(highlight, dots.size)
    if unit is not None:
        units.marker.color = [HIGHLIGHT_COLOUR if j == unit else BAR_COLOUR for j in range(dots.size)]
        units.marker.size = [13 if j == unit else 7 for j in range(dots.size)]
        at = {"x": float(np.log10(q[unit])), "y": float(dots[unit]), "showarrow": True, "arrowhead": 2}
        text = f"unit {unit}: {name} = {dots[unit]:.3g}"
        notes.append({**at, "text": text, "ax": 0, "ay": -30, "font": {"color": HIGHLIGHT_COLOUR}})
    title = f"{label} per unit, total β·Σ{name} = {model.beta * dots.sum():.3g}"
    # Show the whole of every dot, but not the steep wall near ρ̂ = 1 that would flatten the rest.
    half = float(np.interp(0.5, grid, values))
    top = max(float(dots.max(initial=0.0)), half) * 1.1
    return figure(
        [curve, units],
        title,
        "mean activation ρ̂ⱼ (log scale)",
        label,
        xaxis={"type": "log", "dtick": 1, "tickformat": "~g"},
        yaxis={"range": [0, top]},
        shapes=[shape],
        annotations=notes,
    )


UNTRAINED = "–"
UNTRAINED_HELP = ". Shown once the model has trained: a fresh model's value says nothing about sparse coding."


# ----- numbers -----------------------------------------------------------------------------------------
def metrics_row(snap: Snapshot) -> list[tuple[str, str, str | None]]:
    """(label, value, help) for st.metric: reconstruction error, FVE, and, for codes that are unit
    activations, mean ρ̂, L0 and dead units (L0's help states the snapshot's activity threshold)."""
    m = snap.metrics
    model = snap.config.model
    hidden = int(np.asarray(snap.rho_hat).size)
    threshold = snap.active_threshold

    def fmt(key: str, spec: str, scale: float = 1.0) -> str:
        value = m.get(key)
        return "–" if value is None or not np.isfinite(value) else format(value * scale, spec)

    mean_rho = float(np.mean(snap.rho_hat)) if hidden else float("nan")
    # The value stays short: st.metric's big font clips "0.104 (ρ = 0.1)" in a fifth of the page.
    target = model.rho if model.penalty_spec.uses_rho else None
    rho_label = "Mean ρ̂" + (f" (target ρ = {target:g})" if target is not None else "")
    dead = diagnostics.dead_units(snap)
    # A fresh model's numbers mislead (FVE −161 %, every ReLU unit "dead"): they wait for the first step.
    untrained = snap.step == 0
    rows = [
        ("Reconstruction error", fmt("recon_error", ".4g"), "½ · mean over probe samples of ‖x̂ − x‖²"),
        held_out_metric(snap),
        (
            "Variance explained",
            UNTRAINED if untrained else fmt("fve", ".1f", 100.0) + (" %" if "fve" in m else ""),
            "FVE = 1 − Σ‖x − x̂‖² / Σ‖x − x̄‖², x̄ the mean input: 100 % is a perfect reconstruction"
            + (UNTRAINED_HELP if untrained else ""),
        ),
    ]
    rows += truth_metric(snap)
    if "rho_hat" not in model.spec.standard_views:  # the code is not a unit activation (the VAE's μ)
        return rows
    return rows + [
        (
            rho_label,
            "–" if not np.isfinite(mean_rho) else f"{mean_rho:.3f}",
            "Mean activation of the hidden units over the probe set; the KL penalty pulls it to ρ",
        ),
        ("L0", f"{fmt('l0', '.1f')} / {hidden}", l0_help(threshold, target)),
        (
            "Dead units",
            UNTRAINED if untrained else f"{dead} / {hidden}",
            "Units never active on any probe sample" + (UNTRAINED_HELP if untrained else ""),
        ),
    ]


def l0_help(threshold: float, rho: float | None) -> str:
    """What L0 counts: the activity rule, and for sigmoid units that 0.1 is a fixed level, not ρ.
    rho: the penalty's target mean activation, None when it has none."""
    text = f"Units active ({active_rule(threshold, 'h')}) per sample, averaged over the probe set"
    if threshold == 0:
        return text + ": a unit that is off is exactly 0, so this counts non-zeros, negative ones too"
    text += f". Sigmoid units are never exactly 0: {threshold:g} is a fixed level, it does not follow ρ"
    if rho is not None and rho >= threshold:
        text += f". With ρ = {rho:g} a unit at its target mean sits near {threshold:g}: read L0 loosely"
    return text


def held_out_metric(snap: Snapshot) -> tuple[str, str, str]:
    """(label, value, help): the reconstruction error on the held-out probe, or why there is none."""
    label = "Test error"
    if snap.test_metrics is None:
        return label, "no split", "This dataset has no held-out test split (an upload is all training data)."
    value = snap.test_metrics.get("recon_error", float("nan"))
    samples = int(snap.test_metrics.get("samples", 0))
    help_text = (
        f"Reconstruction error ½ · mean ‖x̂ − x‖² on {samples:,} held-out test inputs the model never trains "
        "on. Well above the training error: the model is memorising its training set (overfitting)."
    )
    return label, "–" if not np.isfinite(value) else f"{value:.4g}", help_text


def _truth_counts(snap: Snapshot) -> tuple[int, int, float | None] | None:
    """(features found, true features, MMCS or None) from the snapshot's match, or for a kept run (whose
    snapshot has no match) from its metrics.json numbers; None when no features are known."""
    if snap.truth_match is not None:
        match = np.asarray(snap.truth_match)
        cosine = snap.truth_similarity == "cosine"
        return features_found(match), int(match.size), mmcs(match) if cosine else None
    numbers = snap.metrics or {}
    if "features_found" not in numbers or "features_total" not in numbers:
        return None
    return int(numbers["features_found"]), int(numbers["features_total"]), numbers.get("mmcs")


def truth_metric(snap: Snapshot) -> list[tuple[str, str, str]]:
    """[(label, value, help)] how many of the known true features the units found, and for features
    matched by cosine (superposition) the MMCS; [] when none are known. A kept run's come from its
    metrics.json, so the Runs page's comparison has the same row as the Train page."""
    counts = _truth_counts(snap)
    if counts is None:
        return []
    found, total, mmcs_value = counts
    if mmcs_value is not None:
        found_help = (
            f"The data are sparse sums of {total} known directions, more than the "
            f"{snap.image_shape[0] * snap.image_shape[1]} dimensions they live in. One counts as found when "
            f"some unit's decoder column (the direction it draws) has cosine similarity above "
            f"{FOUND_THRESHOLD:g} with it."
        )
        mmcs_help = (
            "Mean max cosine similarity: for each true feature the best cosine with any unit's decoder "
            "column, averaged over the true features (Sharkey, Braun & Millidge 2022). 1 is a perfect "
            "dictionary; 128 random directions in 32 dimensions score about 0.44."
        )
        return [
            ("Features found", f"{found} / {total}", found_help),
            ("MMCS", f"{mmcs_value:.3f}", mmcs_help),
        ]
    what = "Bars" if snap.config.data.dataset == "bars" else "True features"
    help_text = (
        f"The data are made of {total} known {what.lower()}. One counts as found when some unit's "
        f"feature (its decoder column W₂, or its encoder filter without a linear decoder) correlates above "
        f"{FOUND_THRESHOLD:g} with it, pixel by pixel; one unit can find at most one."
    )
    return [(f"{what} found", f"{found} / {total}", help_text)]
