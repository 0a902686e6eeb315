"""Figures of the autoencoder variants: pure functions of a snapshot (and arrays) -> go.Figure.

Each variant puts its own pictures in `Snapshot.extras` (see `model.snapshot_extras` in
sae_core/variants/); this module draws them in the house style of `figures`: every picture is one
montage in one heatmap, grey scales, labelled axes.
- deep: `layer_histograms_figure` (one activation histogram per encoder layer, one figure).
- conv: `feature_maps_figure`, `decoder_kernels_figure`, `kernel_rho_figure` (ρ̂ per kernel).
- denoising: `denoising_figure` (corrupted / clean / reconstruction rows).
- vae: `prior_samples_figure`, `latent_grid_figure`, `latent_scatter_figure`.
- contractive: `jacobian_norms` and `contraction_figure` (‖∂h/∂x‖²_F per probe sample).
- ksparse: `active_per_sample` and `active_per_sample_figure` (non-zero units per sample against k).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from .figures import GAP_COLOUR, IMAGE_X, IMAGE_Y, grey_heatmap
from .figures_activity import BAR_COLOUR, _bars, empty_figure, figure, target_line
from .images import filter_montage, montage
from .variants.conv import kernel_rho_hat

if TYPE_CHECKING:
    from .training import Snapshot

LABEL_COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
"""One colour per class label (plotly's ten-colour cycle), so digit 3 is always red."""


def _image_figure(z: np.ndarray, title: str, x_title: str | None = None, **layout) -> go.Figure:
    """A montage z drawn in grey (layout["data"] may replace the default heatmap): square pixels, gaps in
    slate blue, height following the montage."""
    layout.setdefault("xaxis", IMAGE_X)
    layout.setdefault("yaxis", IMAGE_Y)
    layout.setdefault("height", int(np.clip(z.shape[0] * 12 + 90, 260, 560)))
    layout.setdefault("margin", {"l": 10, "r": 10, "t": 50, "b": 10})
    data = layout.pop("data")
    return figure(data, title, x_title, plot_bgcolor=GAP_COLOUR, **layout)


def _data_range(*arrays: np.ndarray) -> tuple[float, float]:
    """The grey scale of data pictures: [0, 1], widened only when the data themselves leave it."""
    values = np.concatenate([np.asarray(a, dtype=np.float32).ravel() for a in arrays])
    return min(0.0, float(np.nanmin(values))), max(1.0, float(np.nanmax(values)))


def _missing(snap: Snapshot, key: str, title: str) -> go.Figure | None:
    if key in snap.extras:
        return None
    return empty_figure(title, f"This snapshot has no {key.replace('_', ' ')}")


# ----- deep -----------------------------------------------------------------------------------------------
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
        bars = _bars(counts, edges, "h in [%{customdata[0]:.3f}, %{customdata[1]:.3f})<br>%{y:,} values")
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


# ----- conv -----------------------------------------------------------------------------------------------
def feature_maps_figure(snap: Snapshot, index: int = 0) -> go.Figure:
    """Shown input `index` (left) and the feature map of every kernel on it (right, one montage).

    Map k is where kernel k fires on this input; the maps are half the input's size (stride 2).
    """
    title = "Feature maps"
    missing = _missing(snap, "feature_maps", title)
    if missing is not None:
        return missing
    maps = np.asarray(snap.extras["feature_maps"], dtype=np.float32)  # [shown, kernels, h', w']
    if not 0 <= index < maps.shape[0]:
        raise ValueError(f"index must be in [0, {maps.shape[0] - 1}], got {index}")
    kernels, mh, mw = maps.shape[1:]
    z_maps = montage(maps[index].reshape(kernels, -1), (mh, mw))
    z_input = montage(np.asarray(snap.show_inputs[index : index + 1], dtype=np.float32), snap.image_shape)
    # 0 is black and the strongest response on this input white: sparse sigmoid maps sit near ρ, which a
    # fixed 0..1 scale would draw all black.
    lo, hi = min(0.0, float(maps[index].min())), max(float(maps[index].max()), 1e-6)
    in_lo, in_hi = _data_range(z_input[~np.isnan(z_input)])
    picture = grey_heatmap(z_input, in_lo, in_hi, "pixel %{z:.2f}")
    units = _kernel_map(kernels, (mh, mw))
    response = grey_heatmap(z_maps, lo, hi, "kernel %{customdata}<br>activation %{z:.3f}")
    response.update(customdata=units, xaxis="x2", yaxis="y2")
    # The input takes a share of the width matching its size next to the montage, both at the same scale.
    share = float(np.clip(z_input.shape[1] / (z_input.shape[1] + z_maps.shape[1]), 0.15, 0.45))
    x_in = {**IMAGE_X, "domain": [0.0, share - 0.03], "title": {"text": f"input #{index}"}}
    x_maps = {**IMAGE_X, "domain": [share + 0.02, 1.0], "anchor": "y2"}
    x_maps["title"] = {"text": f"{kernels} maps of {mh}×{mw}, one per kernel (white = {hi:.3g})"}
    y_maps = {**IMAGE_Y, "scaleanchor": "x2", "anchor": "x2"}
    return figure(
        [picture, response],
        f"Feature maps of shown input #{index} (step {snap.step:,})",
        height=int(np.clip(z_maps.shape[0] * 14 + 110, 300, 560)),
        xaxis=x_in,
        yaxis=IMAGE_Y,
        xaxis2=x_maps,
        yaxis2=y_maps,
        plot_bgcolor=GAP_COLOUR,
        margin={"l": 10, "r": 10, "t": 50, "b": 50},
    )


def _kernel_map(n: int, shape: tuple[int, int]) -> np.ndarray:
    """The kernel index under each pixel of a montage of n tiles (NaN in the gaps)."""
    index = np.repeat(np.arange(n, dtype=np.float32), shape[0] * shape[1]).reshape(n, -1)
    return montage(index, shape)


def decoder_kernels_figure(snap: Snapshot) -> go.Figure:
    """What one active code unit of each kernel paints into the output (the transposed convolution)."""
    title = "Decoder kernels"
    missing = _missing(snap, "decoder_kernels", title)
    if missing is not None:
        return missing
    kernels = np.asarray(snap.extras["decoder_kernels"], dtype=np.float32)
    shape = tuple(snap.filter_shape)
    z = filter_montage(kernels, shape)
    return _image_figure(
        z,
        f"{title}: what each kernel paints ({kernels.shape[0]} of {shape[0]}×{shape[1]}, each normalised)",
        data=[grey_heatmap(z, -1.0, 1.0, "weight %{z:.2f}")],
    )


def kernel_rho_figure(snap: Snapshot) -> go.Figure:
    """Mean activation ρ̂ of each kernel over probe samples and positions: what the penalty pulls to ρ."""
    kernels = int(np.asarray(snap.encoder_weight).shape[0])
    rho_hat = kernel_rho_hat(snap.activations, kernels)
    model = snap.config.model
    bars = go.Bar(
        x=np.arange(kernels),
        y=rho_hat,
        marker={"color": BAR_COLOUR},
        hovertemplate="kernel %{x}<br>ρ̂ = %{y:.4f}<extra></extra>",
    )
    marks = {}
    if model.effective_penalty == "kl":
        line = {"type": "line", "x0": 0, "x1": 1, "xref": "paper", "y0": model.rho, "y1": model.rho}
        line["line"] = {"dash": "dash", "color": "#d62728", "width": 2}
        # The label sits right of the plot, where no bar can hide it.
        note = {"x": 1.0, "xref": "paper", "y": model.rho, "xanchor": "left", "yanchor": "middle"}
        note.update(text=f" ρ = {model.rho:g}", showarrow=False, font={"color": "#d62728"})
        marks = {"shapes": [line], "annotations": [note], "margin": {"l": 60, "r": 70, "t": 50, "b": 50}}
    return figure(
        [bars],
        f"Mean activation ρ̂ of each kernel (step {snap.step:,})",
        "kernel",
        "ρ̂ (over samples and positions)",
        xaxis={"dtick": 1 if kernels <= 32 else None},
        **marks,
    )


# ----- denoising ------------------------------------------------------------------------------------------
ROW_NAMES = ("corrupted input", "clean input", "reconstruction")


def denoising_rows(snap: Snapshot) -> np.ndarray:
    """[3, shown, n_inputs]: corrupted inputs, clean inputs, and the model's output on the corrupted ones."""
    return np.stack(
        [
            np.asarray(snap.extras["noisy_inputs"], dtype=np.float32),
            np.asarray(snap.show_inputs, dtype=np.float32),
            np.asarray(snap.extras["denoised"], dtype=np.float32),
        ]
    )


def denoising_figure(snap: Snapshot) -> go.Figure:
    """Three rows of one montage: what the encoder sees, what the loss wants, what the decoder gives.

    Under each column: ½‖x̂ − x‖² between the reconstruction (from the corrupted input) and the clean input.
    The grey scale is the clean data's (0 black, 1 white): Gaussian noise beyond it shows as clipped pixels.
    """
    title = "Denoising"
    missing = _missing(snap, "noisy_inputs", title)
    if missing is not None:
        return missing
    rows = denoising_rows(snap)
    _, n, _ = rows.shape
    h, w = snap.image_shape
    z = montage(rows.reshape(3 * n, -1), (h, w), cols=n)
    lo, hi = _data_range(rows[1], rows[2])
    errors = 0.5 * ((rows[2] - rows[1]) ** 2).sum(axis=1)
    xaxis = {**IMAGE_X, "showticklabels": True, "tickmode": "array"}
    xaxis.update(tickvals=1 + np.arange(n) * (w + 1) + (w - 1) / 2, ticktext=[f"{e:.3g}" for e in errors])
    yaxis = {**IMAGE_Y, "showticklabels": True, "tickmode": "array", "ticktext": list(ROW_NAMES)}
    yaxis.update(
        tickvals=[1 + r * (h + 1) + (h - 1) / 2 for r in range(3)],
        ticks="outside",
        ticklen=8,
        tickcolor="rgba(0,0,0,0)",
    )
    model = snap.config.model
    return _image_figure(
        z,
        f"{title}: {_corruption_text(model.corruption, model.noise_level)} (step {snap.step:,})",
        "½‖x̂ − x‖² per image, x̂ decoded from the corrupted input",
        data=[grey_heatmap(z, lo, hi)],
        xaxis=xaxis,
        yaxis=yaxis,
        height=360,
        margin={"l": 130, "r": 10, "t": 50, "b": 50},
    )


def _corruption_text(kind: str, level: float) -> str:
    return {
        "gaussian": f"Gaussian noise σ = {level:g}",
        "mask": f"{level:.0%} of pixels masked to 0",
        "salt_pepper": f"{level:.0%} of pixels set to 0 or 1",
    }.get(kind, kind)


# ----- vae ------------------------------------------------------------------------------------------------
def prior_samples_figure(snap: Snapshot) -> go.Figure:
    """Decoded draws z ~ N(0, I) (the same z's at every step): what the model generates from noise."""
    title = "Samples from the prior"
    missing = _missing(snap, "prior_samples", title)
    if missing is not None:
        return missing
    samples = np.asarray(snap.extras["prior_samples"], dtype=np.float32)
    z = montage(samples, snap.image_shape)
    lo, hi = _data_range(samples)
    return _image_figure(
        z,
        f"{title}: x̂ = decoder(z), z ~ N(0, I), {samples.shape[0]} fixed draws (step {snap.step:,})",
        data=[grey_heatmap(z, lo, hi)],
    )


def latent_grid_figure(snap: Snapshot) -> go.Figure:
    """The decoder on a grid over the 2-D latent space (quantiles of N(0, 1) on each axis)."""
    title = "Latent space"
    missing = _missing(snap, "latent_grid", title)
    if missing is not None:
        return missing
    grid = np.asarray(snap.extras["latent_grid"], dtype=np.float32)
    axis = np.asarray(snap.extras["latent_axis"], dtype=np.float64)
    side = axis.size
    h, w = snap.image_shape
    z = montage(grid, (h, w), cols=side)
    lo, hi = _data_range(grid)
    centres_x = 1 + np.arange(side) * (w + 1) + (w - 1) / 2
    centres_y = 1 + np.arange(side) * (h + 1) + (h - 1) / 2
    ticks = {"showticklabels": True, "tickmode": "array", "ticks": "outside", "tickfont": {"size": 10}}
    xaxis = {**IMAGE_X, **ticks, "tickvals": centres_x, "ticktext": [f"{v:.2f}" for v in axis]}
    yaxis = {**IMAGE_Y, **ticks, "tickvals": centres_y, "ticktext": [f"{v:.2f}" for v in axis[::-1]]}
    yaxis["title"] = {"text": "z₂"}
    return _image_figure(
        z,
        f"{title}: decoder(z₁, z₂) on a {side}×{side} grid of N(0, 1) quantiles (step {snap.step:,})",
        "z₁",
        data=[grey_heatmap(z, lo, hi)],
        xaxis=xaxis,
        yaxis=yaxis,
        height=560,
        margin={"l": 70, "r": 10, "t": 50, "b": 60},
    )


def latent_scatter_figure(
    codes: np.ndarray, labels: np.ndarray | None, step: int, label_name: str = "digit"
) -> go.Figure:
    """Posterior means μ of many inputs in the latent plane (first two dimensions), one colour per label.

    codes: [N, latent ≥ 2]; labels: [N] integers or None (one colour).
    """
    codes = np.asarray(codes, dtype=np.float64)
    title = f"Posterior means μ of {codes.shape[0]:,} test inputs (step {step:,})"
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


# ----- contractive ----------------------------------------------------------------------------------------
def jacobian_norms(snap: Snapshot) -> np.ndarray:
    """‖∂h/∂x‖²_F of the sigmoid encoder at each probe sample: Σⱼ (hⱼ(1 − hⱼ))² Σᵢ W₁[j, i]². -> [n_probe]."""
    h = np.asarray(snap.activations, dtype=np.float64)
    w = np.asarray(snap.encoder_weight, dtype=np.float64)
    return (h * (1.0 - h)) ** 2 @ (w**2).sum(axis=1)


def contraction_figure(snap: Snapshot, bins: int = 40) -> go.Figure:
    """How far the code moves when the input moves: ‖∂h/∂x‖²_F per probe sample, mean marked.

    The contractive term of the loss is λ_c times the batch mean of this quantity.
    """
    norms = jacobian_norms(snap)
    if norms.size == 0:
        return empty_figure("Encoder Jacobian", "No probe samples yet", "‖∂h/∂x‖²_F", "samples")
    top = max(float(norms.max()), 1e-12)
    counts, edges = np.histogram(norms, bins=bins, range=(0.0, top * 1.0001))
    bars = _bars(counts, edges, "‖J‖² in [%{customdata[0]:.3g}, %{customdata[1]:.3g})<br>%{y} samples")
    mean = float(norms.mean())
    shape, note = target_line(mean, f"mean {mean:.3g}")
    lam = snap.config.model.contraction
    return figure(
        [bars],
        f"Encoder Jacobian ‖∂h/∂x‖²_F per probe sample; λ_c·mean = {lam * mean:.3g} (step {snap.step:,})",
        "‖∂h/∂x‖²_F (lower: the code ignores small changes of x)",
        "samples",
        shapes=[shape],
        annotations=[note],
    )


# ----- k-sparse -------------------------------------------------------------------------------------------
def active_per_sample(snap: Snapshot) -> np.ndarray:
    """[n_probe] how many code units are non-zero on each probe sample (top-k keeps exactly k)."""
    return (np.asarray(snap.activations) != 0).sum(axis=1)


def active_per_sample_figure(snap: Snapshot) -> go.Figure:
    """Histogram of the number of non-zero units per probe sample, with k marked."""
    counts_per_sample = active_per_sample(snap)
    hidden = int(np.asarray(snap.activations).shape[1])
    k = snap.config.model.k
    values, counts = np.unique(counts_per_sample, return_counts=True)
    bars = go.Bar(
        x=values,
        y=counts,
        marker={"color": BAR_COLOUR},
        hovertemplate="%{x} non-zero units<br>%{y} samples<extra></extra>",
    )
    shape, note = target_line(k, f"k = {k}")
    return figure(
        [bars],
        f"Non-zero code units per probe sample ({counts_per_sample.size:,} samples, {hidden} units)",
        "non-zero units in the code",
        "samples",
        xaxis={"range": [-0.5, hidden + 0.5]},
        shapes=[shape],
        annotations=[note],
    )


__all__ = [
    "active_per_sample",
    "active_per_sample_figure",
    "contraction_figure",
    "decoder_kernels_figure",
    "denoising_figure",
    "denoising_rows",
    "feature_maps_figure",
    "jacobian_norms",
    "kernel_rho_figure",
    "latent_grid_figure",
    "latent_scatter_figure",
    "layer_activations",
    "layer_histograms_figure",
    "prior_samples_figure",
]
