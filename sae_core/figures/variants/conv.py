"""The convolutional variant's pictures: feature maps, decoder kernels, ρ̂ per kernel."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from sae_core.figures.activity import BAR_COLOUR, empty_figure, figure
from sae_core.figures.training import GAP_COLOUR, IMAGE_X, IMAGE_Y, grey_heatmap
from sae_core.figures.variants.common import data_range, image_figure, missing
from sae_core.images import filter_montage, montage

if TYPE_CHECKING:
    from sae_core.train.snapshot import Snapshot


def feature_maps_figure(snap: Snapshot, index: int = 0) -> go.Figure:
    """Shown input `index` (left) and the feature map of every kernel on it (right, one montage).

    Map k is where kernel k fires on this input; the maps are half the input's size (stride 2).
    """
    title = "Feature maps"
    absent = missing(snap, "feature_maps", title)
    if absent is not None:
        return absent
    maps = np.asarray(snap.extras["feature_maps"], dtype=np.float32)  # [shown, kernels, h', w']
    if not 0 <= index < maps.shape[0]:
        raise ValueError(f"index must be in [0, {maps.shape[0] - 1}], got {index}")
    kernels, mh, mw = maps.shape[1:]
    z_maps = montage(maps[index].reshape(kernels, -1), (mh, mw))
    z_input = montage(np.asarray(snap.show_inputs[index : index + 1], dtype=np.float32), snap.image_shape)
    # 0 is black and the strongest response on this input white: sparse sigmoid maps sit near ρ, which a
    # fixed 0..1 scale would draw all black.
    lo, hi = min(0.0, float(maps[index].min())), max(float(maps[index].max()), 1e-6)
    in_lo, in_hi = data_range(z_input[~np.isnan(z_input)])
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
    absent = missing(snap, "decoder_kernels", title)
    if absent is not None:
        return absent
    kernels = np.asarray(snap.extras["decoder_kernels"], dtype=np.float32)
    shape = tuple(snap.filter_shape)
    z = filter_montage(kernels, shape)
    return image_figure(
        z,
        f"{title}: what each kernel paints ({kernels.shape[0]} of {shape[0]}×{shape[1]}, each normalised)",
        data=[grey_heatmap(z, -1.0, 1.0, "weight %{z:.2f}")],
    )


def kernel_rho_figure(snap: Snapshot) -> go.Figure:
    """Mean activation ρ̂ of each kernel over probe samples and positions: what the penalty pulls to ρ."""
    kernels = int(np.asarray(snap.encoder_weight).shape[0])
    if snap.penalty_rho_hat is None:
        return empty_figure("Mean activation ρ̂ of each kernel", "This snapshot has no penalty ρ̂")
    rho_hat = np.asarray(snap.penalty_rho_hat)  # the penalty's own ρ̂: one per kernel
    model = snap.config.model
    bars = go.Bar(
        x=np.arange(kernels),
        y=rho_hat,
        marker={"color": BAR_COLOUR},
        hovertemplate="kernel %{x}<br>ρ̂ = %{y:.4f}<extra></extra>",
    )
    marks = {}
    if model.penalty_spec.uses_rho:
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
