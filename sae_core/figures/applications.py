"""Plotly figures of the applications (sae_core.analysis.applications): pure functions of their results.

Probe accuracies, confusion matrix, accuracy against labelled examples, 2-D maps, the denoising strip and
its PSNR curve, reconstruction-error histograms and the ROC curve. Every chart has labelled axes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from sae_core.analysis.applications.anomaly import Anomalies
from sae_core.analysis.applications.bars_probe import PresenceProbe
from sae_core.analysis.applications.denoise import NOISE_KINDS, Denoised
from sae_core.analysis.applications.embedding import Embedding
from sae_core.analysis.applications.probe import FEATURE_TITLES, ProbeResult
from sae_core.figures.activity import BAR_COLOUR, figure
from sae_core.figures.training import GAP_COLOUR, IMAGE_X, IMAGE_Y, grey_heatmap
from sae_core.figures.variants.common import LABEL_COLOURS
from sae_core.images import montage

FEATURE_COLOURS = {"codes": "#d62728", "pixels": "#4c78a8", "pca": "#54a24b"}
NORMAL_COLOUR, ANOMALY_COLOUR = "#4c78a8", "#d62728"
CLASS_COLOURS = LABEL_COLOURS  # the same colour per class as the VAE's latent scatter
LEGEND = {"orientation": "h", "y": -0.25, "x": 0.0}


def probe_accuracy_figure(results: Mapping[str, ProbeResult]) -> go.Figure:
    """One bar per kind of features: held-out accuracy of the linear probe."""
    names = list(results)
    bars = go.Bar(
        x=[f"{results[n].title} ({results[n].n_features})" for n in names],
        y=[results[n].accuracy for n in names],
        marker_color=[FEATURE_COLOURS.get(n, BAR_COLOUR) for n in names],
        text=[f"{results[n].accuracy:.1%}" for n in names],
        textposition="outside",
        hovertemplate="%{x}: %{y:.2%}<extra></extra>",
    )
    return figure(
        [bars],
        "Linear probe: held-out accuracy",
        "Features (dimensions)",
        "Test accuracy",
        yaxis={"range": [0, 1.1], "tickformat": ".0%"},
    )


def bar_presence_figure(result: PresenceProbe) -> go.Figure:
    """Held-out accuracy of each bar's presence probe, on the codes and on raw pixels."""
    n = len(result.per_bar["codes"])
    names = [f"row {i}" for i in range(n // 2)] + [f"col {i}" for i in range(n - n // 2)]
    bars = [
        go.Bar(
            x=names,
            y=result.per_bar[key],
            name=probe_title,
            marker_color=FEATURE_COLOURS[key],
            hovertemplate="%{x}: %{y:.1%}<extra>" + probe_title + "</extra>",
        )
        for key, probe_title in (("codes", "Hidden codes"), ("pixels", "Raw pixels"))
    ]
    floor = min(result.base_rate, float(min(v.min() for v in result.per_bar.values()))) - 0.05
    return figure(
        bars,
        "Is this bar in the image? Held-out accuracy per bar",
        "Bar (horizontal rows, then vertical columns)",
        "Test accuracy",
        yaxis={"range": [max(0.0, floor), 1.01], "tickformat": ".0%"},
        barmode="group",
        showlegend=True,
        legend=LEGEND,
    )


def confusion_figure(result: ProbeResult) -> go.Figure:
    """Confusion matrix of one probe: rows are true classes, columns predicted ones (counts)."""
    labels = [str(c) for c in result.classes]
    heat = go.Heatmap(
        z=result.confusion,
        x=labels,
        y=labels,
        colorscale="Blues",
        showscale=False,
        text=result.confusion,
        texttemplate="%{text}",
        hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>",
    )
    return figure(
        [heat],
        f"Confusion matrix: probe on {result.title.lower()}",
        "Predicted class",
        "True class",
        height=380,
        xaxis={"type": "category"},
        yaxis={"type": "category", "autorange": "reversed"},
    )


def learning_curve_figure(curves: Mapping[str, Sequence[tuple[int, float]]]) -> go.Figure:
    """Held-out accuracy against the number of labelled training examples, one line per kind of features."""
    lines = [
        go.Scatter(
            x=[p[0] for p in points],
            y=[p[1] for p in points],
            mode="lines+markers",
            name=FEATURE_TITLES.get(name, name),
            line={"color": FEATURE_COLOURS.get(name, BAR_COLOUR)},
            hovertemplate="%{x} labels: %{y:.1%}<extra>" + FEATURE_TITLES.get(name, name) + "</extra>",
        )
        for name, points in curves.items()
    ]
    counts = sorted({p[0] for points in curves.values() for p in points})
    return figure(
        lines,
        "Accuracy against labelled examples",
        "Labelled training examples (log scale)",
        "Test accuracy",
        xaxis={
            "type": "log",
            "tickmode": "array",
            "tickvals": counts,
            "ticktext": [f"{n:,}" for n in counts],
        },
        yaxis={"tickformat": ".0%"},
        showlegend=True,
        legend=LEGEND,
    )


def embedding_figure(embedding: Embedding, which: str) -> go.Figure:
    """The 2-D map of the codes (which="codes") or of the raw pixels ("pixels"), coloured by class."""
    points = embedding.codes if which == "codes" else embedding.pixels
    method = "PCA" if embedding.method == "pca" else "t-SNE"
    title = f"{method} of the {'hidden codes' if which == 'codes' else 'raw pixels'}"
    if embedding.explained is not None:
        kept = embedding.explained[which]
        title += f" ({kept:.0%} of the variance)" if np.isfinite(kept) else " (no variance: all one point)"
    labels = embedding.labels
    groups = (
        [(None, np.ones(len(points), bool))]
        if labels is None
        else [(c, labels == c) for c in np.unique(labels)]
    )
    traces = [
        go.Scattergl(
            x=points[mask, 0],
            y=points[mask, 1],
            mode="markers",
            name="samples" if c is None else f"class {c}",
            marker={"size": 5, "opacity": 0.7, "color": CLASS_COLOURS[i % len(CLASS_COLOURS)]},
            hovertemplate=("" if c is None else f"class {c}<br>") + "(%{x:.2f}, %{y:.2f})<extra></extra>",
        )
        for i, (c, mask) in enumerate(groups)
    ]
    return figure(
        traces,
        title,
        f"{method} axis 1",
        f"{method} axis 2",
        height=420,
        showlegend=labels is not None,
        legend={"itemsizing": "constant"},
    )


def denoise_figure(result: Denoised, image_shape: tuple[int, int]) -> go.Figure:
    """Clean test images (top), with noise (middle), and the model's reconstruction of the noisy ones."""
    h, w = image_shape
    n = len(result.clean)
    z = montage(np.concatenate([result.clean, result.noisy, result.recon]), (h, w), cols=n)
    rows = ["clean", "noisy", "reconstructed"]
    yaxis = {**IMAGE_Y, "showticklabels": True, "tickmode": "array", "ticktext": rows}
    yaxis.update(tickvals=[(h - 1) / 2 + 1 + i * (h + 1) for i in range(3)])
    kind = NOISE_KINDS.get(result.kind, result.kind)
    return figure(
        [grey_heatmap(z, 0.0, 1.0)],
        f"{kind} noise, level {result.level:g}",
        "Test images",
        None,
        height=330,
        xaxis=IMAGE_X,
        yaxis=yaxis,
        plot_bgcolor=GAP_COLOUR,
        margin={"l": 100, "r": 10, "t": 50, "b": 30},
    )


def psnr_curve_figure(
    curve: Mapping[str, Sequence[float]], kind: str, level: float | None = None
) -> go.Figure:
    """PSNR of the noisy inputs and of their reconstructions against the noise level (higher is better)."""
    lines = [
        go.Scatter(
            x=curve["level"],
            y=curve[key],
            mode="lines+markers",
            name=name,
            line={"color": colour},
            hovertemplate="level %{x:g}: %{y:.2f} dB<extra>" + name + "</extra>",
        )
        for key, name, colour in (("noisy", "noisy input", "#7f7f7f"), ("recon", "reconstruction", "#d62728"))
    ]
    shapes = []
    if level is not None:
        shapes.append(
            {
                "type": "line",
                "x0": level,
                "x1": level,
                "y0": 0,
                "y1": 1,
                "yref": "paper",
                "line": {"dash": "dot", "color": "#999"},
            }
        )
    return figure(
        lines,
        f"PSNR against noise level ({NOISE_KINDS.get(kind, kind)})",
        "Noise level",
        "PSNR (dB)",
        showlegend=True,
        legend=LEGEND,
        shapes=shapes,
    )


def error_histogram_figure(result: Anomalies, threshold: float | None = None, bins: int = 40) -> go.Figure:
    """Histograms of the reconstruction error of normal samples and of anomalies, with the threshold."""
    both = np.concatenate([result.normal, result.anomalous])
    edges = np.linspace(float(both.min()), float(both.max()) + 1e-12, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    traces = []
    for values, name, colour in (
        (result.normal, "normal", NORMAL_COLOUR),
        (result.anomalous, "anomalies", ANOMALY_COLOUR),
    ):
        counts, _ = np.histogram(values, edges)
        fraction = counts / max(1, len(values))
        traces.append(
            go.Bar(
                x=centres,
                y=fraction,
                name=f"{name} ({len(values)})",
                marker_color=colour,
                opacity=0.6,
                hovertemplate="error %{x:.3g}: %{y:.1%}<extra>" + name + "</extra>",
            )
        )
    shapes = []
    if threshold is not None:
        shapes.append(
            {
                "type": "line",
                "x0": threshold,
                "x1": threshold,
                "y0": 0,
                "y1": 1,
                "yref": "paper",
                "line": {"dash": "dash", "color": "#222", "width": 2},
            }
        )
    return figure(
        traces,
        "Reconstruction error: normal vs anomalies",
        "Mean squared pixel error",
        "Fraction of samples",
        barmode="overlay",
        bargap=0,
        showlegend=True,
        legend=LEGEND,
        shapes=shapes,
    )


def roc_figure(result: Anomalies, point: Mapping[str, float] | None = None) -> go.Figure:
    """ROC curve of the reconstruction error as a detector; the threshold's operating point as a dot."""
    traces = [
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#bbb"}, hoverinfo="skip"),
        go.Scatter(
            x=result.fpr,
            y=result.tpr,
            mode="lines",
            line={"color": ANOMALY_COLOUR, "width": 2},
            hovertemplate="false alarms %{x:.1%}, found %{y:.1%}<extra></extra>",
        ),
    ]
    if point is not None:
        traces.append(
            go.Scatter(
                x=[point["false_positive_rate"]],
                y=[point["recall"]],
                mode="markers",
                marker={"size": 11, "color": "#222"},
                hovertemplate="threshold<extra></extra>",
            )
        )
    return figure(
        traces,
        f"ROC curve (AUC {result.auc:.3f})",
        "False-positive rate",
        "True-positive rate (recall)",
        xaxis={"range": [0, 1]},
        yaxis={"range": [0, 1.02]},
    )
