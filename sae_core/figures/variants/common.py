"""What the variants' figures share: the picture helpers and the label colours.

Each variant's own pictures live in the module of its name here (deep.py, conv.py, ...); a variant's spec
names them in its `views`. Every figure is a pure function of a snapshot, drawn in the house style of
`sae_core.figures.training`: one montage in one heatmap, grey scales, labelled axes. Nothing here recomputes
model maths: what a view needs beyond the codes comes in `Snapshot.extras`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from sae_core.figures.activity import empty_figure, figure
from sae_core.figures.training import GAP_COLOUR, IMAGE_X, IMAGE_Y

if TYPE_CHECKING:
    from sae_core.train.snapshot import Snapshot

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


def image_figure(z: np.ndarray, title: str, x_title: str | None = None, **layout) -> go.Figure:
    """A montage z drawn in grey (layout["data"] may replace the default heatmap): square pixels, gaps in
    slate blue, height following the montage."""
    layout.setdefault("xaxis", IMAGE_X)
    layout.setdefault("yaxis", IMAGE_Y)
    layout.setdefault("height", int(np.clip(z.shape[0] * 12 + 90, 260, 560)))
    layout.setdefault("margin", {"l": 10, "r": 10, "t": 50, "b": 10})
    data = layout.pop("data")
    return figure(data, title, x_title, plot_bgcolor=GAP_COLOUR, **layout)


def data_range(*arrays: np.ndarray) -> tuple[float, float]:
    """The grey scale of data pictures: [0, 1], widened only when the data themselves leave it."""
    values = np.concatenate([np.asarray(a, dtype=np.float32).ravel() for a in arrays])
    return min(0.0, float(np.nanmin(values))), max(1.0, float(np.nanmax(values)))


def missing(snap: Snapshot, key: str, title: str) -> go.Figure | None:
    if key in snap.extras:
        return None
    return empty_figure(title, f"This snapshot has no {key.replace('_', ' ')}")
