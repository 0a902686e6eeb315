"""The VAE's pictures: prior samples, the latent grid and scatter, KL and variance per latent dimension."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from sae_core.figures.activity import BAR_COLOUR, empty_figure, figure
from sae_core.figures.training import IMAGE_X, IMAGE_Y, grey_heatmap
from sae_core.figures.variants.common import LABEL_COLOURS, data_range, image_figure, missing
from sae_core.images import montage
from sae_core.models.vae import ACTIVE_VARIANCE

if TYPE_CHECKING:
    from sae_core.train.snapshot import Snapshot


def prior_samples_figure(snap: Snapshot) -> go.Figure:
    """Decoded draws z ~ N(0, I) (the same z's at every step): what the model generates from noise."""
    title = "Samples from the prior"
    absent = missing(snap, "prior_samples", title)
    if absent is not None:
        return absent
    samples = np.asarray(snap.extras["prior_samples"], dtype=np.float32)
    z = montage(samples, snap.image_shape)
    lo, hi = data_range(samples)
    return image_figure(
        z,
        f"{title}: x̂ = decoder(z), z ~ N(0, I), {samples.shape[0]} fixed draws (step {snap.step:,})",
        data=[grey_heatmap(z, lo, hi)],
    )


def latent_grid_figure(snap: Snapshot) -> go.Figure:
    """The decoder on a grid over the 2-D latent space (quantiles of N(0, 1) on each axis)."""
    title = "Latent space"
    absent = missing(snap, "latent_grid", title)
    if absent is not None:
        return absent
    grid = np.asarray(snap.extras["latent_grid"], dtype=np.float32)
    axis = np.asarray(snap.extras["latent_axis"], dtype=np.float64)
    side = axis.size
    h, w = snap.image_shape
    z = montage(grid, (h, w), cols=side)
    lo, hi = data_range(grid)
    centres_x = 1 + np.arange(side) * (w + 1) + (w - 1) / 2
    centres_y = 1 + np.arange(side) * (h + 1) + (h - 1) / 2
    ticks = {"showticklabels": True, "tickmode": "array", "ticks": "outside", "tickfont": {"size": 10}}
    xaxis = {**IMAGE_X, **ticks, "tickvals": centres_x, "ticktext": [f"{v:.2f}" for v in axis]}
    yaxis = {**IMAGE_Y, **ticks, "tickvals": centres_y, "ticktext": [f"{v:.2f}" for v in axis[::-1]]}
    yaxis["title"] = {"text": "z₂"}
    return image_figure(
        z,
        f"{title}: decoder(z₁, z₂) on a {side}×{side} grid of N(0, 1) quantiles (step {snap.step:,})",
        "z₁",
        data=[grey_heatmap(z, lo, hi)],
        xaxis=xaxis,
        yaxis=yaxis,
        height=560,
        margin={"l": 70, "r": 10, "t": 50, "b": 60},
    )


def latent_scatter_figure(snap: Snapshot) -> go.Figure:
    """Posterior means μ of the probe inputs in the latent plane (first two dimensions), one colour per
    label (the snapshot's codes and probe labels)."""
    label_name = "digit" if snap.config.data.dataset in ("digits", "mnist") else "class"
    return latent_scatter(snap.activations, snap.probe_labels, snap.step, label_name)


def latent_scatter(
    codes: np.ndarray, labels: np.ndarray | None, step: int, label_name: str = "digit"
) -> go.Figure:
    """The scatter of codes [N, latent ≥ 2] in the plane of their first two dimensions; labels: [N]
    integers or None (one colour)."""
    codes = np.asarray(codes, dtype=np.float64)
    title = f"Posterior means μ of {codes.shape[0]:,} probe inputs (step {step:,})"
    if codes.ndim != 2 or codes.shape[1] < 2:
        return empty_figure(title, "A latent space of one dimension has no plane to draw", "μ₁", "μ₂")
    first_two = "" if codes.shape[1] == 2 else f" (first 2 of {codes.shape[1]} dimensions)"
    marker = {"size": 5, "opacity": 0.75}
    if labels is None:
        traces = [go.Scatter(x=codes[:, 0], y=codes[:, 1], mode="markers", marker=marker, name="inputs")]
    else:
        labels = np.asarray(labels).astype(int)
        traces = []
        for value in np.unique(labels):
            pick = labels == value
            colour = LABEL_COLOURS[int(value) % len(LABEL_COLOURS)]
            traces.append(
                go.Scatter(
                    x=codes[pick, 0],
                    y=codes[pick, 1],
                    mode="markers",
                    name=str(value),
                    marker={**marker, "color": colour},
                    hovertemplate=f"{label_name} {value}<br>μ = (%{{x:.2f}}, %{{y:.2f}})<extra></extra>",
                )
            )
    return figure(
        traces,
        title + first_two,
        "μ₁",
        "μ₂",
        height=560,
        yaxis={"scaleanchor": "x", "scaleratio": 1},
        showlegend=labels is not None,
        legend={"title": {"text": label_name}, "itemsizing": "constant"},
    )


def kl_per_dimension_figure(snap: Snapshot) -> go.Figure:
    """Per latent dimension: the mean KL(q(zⱼ|x) ‖ N(0, 1)) over the probe set (bars) and the mean
    posterior variance σⱼ² (dots, right axis). A dimension with KL ≈ 0 and σ² ≈ 1 is unused: the
    encoder tells the decoder nothing through it (posterior collapse)."""
    title = "KL to the prior and posterior variance per latent dimension"
    if "kl_per_dim" not in snap.extras:
        return empty_figure(title, "This snapshot has no per-dimension KL")
    kl = np.asarray(snap.extras["kl_per_dim"], dtype=np.float64)
    var = np.asarray(snap.extras["posterior_var"], dtype=np.float64)
    dims = np.arange(1, kl.size + 1)
    bars = go.Bar(
        x=dims,
        y=kl,
        marker={"color": BAR_COLOUR},
        name="KL",
        hovertemplate="z%{x}<br>KL = %{y:.3f} nats<extra></extra>",
    )
    dots = go.Scatter(
        x=dims,
        y=var,
        yaxis="y2",
        mode="markers",
        marker={"color": "#d62728", "size": 9},
        name="σ²",
        hovertemplate="z%{x}<br>mean σ² = %{y:.3f}<extra></extra>",
    )
    return figure(
        [bars, dots],
        f"{title} (total {kl.sum():.3g} nats, step {snap.step:,})",
        "latent dimension j",
        "mean KL(q(zⱼ|x) ‖ N(0, 1)) (nats)",
        xaxis={"dtick": 1 if kl.size <= 32 else None},
        yaxis2={
            "title": {"text": "mean posterior variance σⱼ²", "font": {"color": "#d62728"}},
            "overlaying": "y",
            "side": "right",
            "rangemode": "tozero",
            "showgrid": False,
        },
        margin={"l": 60, "r": 70, "t": 50, "b": 50},
    )


def vae_metrics(snap: Snapshot) -> list[tuple[str, str, str | None]]:
    """(label, value, help) rows: the prior KL, and the latent dimensions in use."""
    kl = np.asarray(snap.extras.get("kl_per_dim", np.zeros(0)), dtype=np.float64)
    mu = np.asarray(snap.activations, dtype=np.float64)
    # Burda et al. (2016): a latent dimension is active when its posterior mean varies over the data,
    # Cov_x(E_q[zⱼ]) > 0.01. The model's own rule (VariationalAutoencoder.active) made the density:
    # 1 for a dimension in use, 0 for one that is not.
    active = int((np.asarray(snap.density) > 0).sum())
    return [
        ("KL to the prior", f"{kl.sum():.4g}" if kl.size else "–", "Mean over the probe set, in nats"),
        (
            "Active latent dimensions",
            f"{active} / {mu.shape[1] if mu.ndim == 2 else 0}",
            f"Dimensions whose posterior mean μⱼ varies over the probe set (variance > {ACTIVE_VARIANCE:g}, "
            "Burda et al. 2016); the others carry no information",
        ),
    ]
