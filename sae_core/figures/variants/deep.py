"""The deep variant's pictures: one activation histogram per encoder layer."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from sae_core.figures.activity import empty_figure, figure, histogram_bars

if TYPE_CHECKING:
    from sae_core.train.snapshot import Snapshot


def layer_activations(snap: Snapshot) -> list[np.ndarray]:
    """Per-layer activations of the shown inputs [shown, size], first layer first; the last is the code."""
    keys = sorted(
        (k for k in snap.extras if k.startswith("layer") and k.endswith("_activations")), key=_layer
    )
    return [np.asarray(snap.extras[k], dtype=np.float64) for k in keys]


def _layer(key: str) -> int:
    return int(key.removeprefix("layer").removesuffix("_activations"))


def layer_histograms_figure(snap: Snapshot, bins: int = 30) -> go.Figure:
    """One histogram of activation values per encoder layer, side by side in one figure (log counts).

    The hidden layers are ReLU (many exact zeros: the tall left bar); the last panel is the code layer,
    the one the sparsity penalty acts on.
    """
    layers = layer_activations(snap)
    if not layers:
        return empty_figure("Activations per layer", "This snapshot has no per-layer activations")
    n = len(layers)
    gap = 0.06 if n > 1 else 0.0
    width = (1.0 - gap * (n - 1)) / n
    traces, axes, notes = [], {}, []
    code_act = snap.config.model.hidden_activation
    for i, acts in enumerate(layers):
        lo, hi = float(acts.min()), float(acts.max())
        counts, edges = np.histogram(acts.ravel(), bins=bins, range=(lo, hi if hi > lo else lo + 1.0))
        bars = histogram_bars(
            counts, edges, "h in [%{customdata[0]:.3f}, %{customdata[1]:.3f})<br>%{y:,} values"
        )
        suffix = "" if i == 0 else str(i + 1)
        bars.update(xaxis=f"x{suffix}", yaxis=f"y{suffix}")
        traces.append(bars)
        left = i * (width + gap)
        axes[f"xaxis{suffix}"] = {"domain": [left, left + width], "anchor": f"y{suffix}"}
        axes[f"xaxis{suffix}"]["title"] = {"text": "activation"}
        axes[f"yaxis{suffix}"] = {"anchor": f"x{suffix}", "type": "log"}
        if i == 0:
            axes["yaxis"]["title"] = {"text": "count (log scale)"}
        last = i == n - 1
        size = acts.shape[1]
        name = f"code ({size} units, {code_act})" if last else f"layer {i + 1} ({size} units, ReLU)"
        notes.append(
            {"text": name, "x": left + width / 2, "y": 1.0, "xref": "paper", "yref": "paper"}
            | {"yanchor": "bottom", "showarrow": False, "font": {"size": 12}}
        )
    title = f"Activations of each encoder layer on the {layers[0].shape[0]} shown inputs (step {snap.step:,})"
    layout = {"margin": {"l": 60, "r": 20, "t": 70, "b": 50}, "annotations": notes}
    base_x, base_y = axes.pop("xaxis"), axes.pop("yaxis")
    return figure(traces, title, height=320, xaxis=base_x, yaxis=base_y, **axes, **layout)
