"""The denoising variant's picture: corrupted input, clean input and reconstruction, column by column."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from sae_core.figures.training import IMAGE_X, IMAGE_Y, grey_heatmap
from sae_core.figures.variants.common import data_range, image_figure, missing
from sae_core.images import montage

if TYPE_CHECKING:
    from sae_core.train.snapshot import Snapshot


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
    absent = missing(snap, "noisy_inputs", title)
    if absent is not None:
        return absent
    rows = denoising_rows(snap)
    _, n, _ = rows.shape
    h, w = snap.image_shape
    z = montage(rows.reshape(3 * n, -1), (h, w), cols=n)
    lo, hi = data_range(rows[1], rows[2])
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
    return image_figure(
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
