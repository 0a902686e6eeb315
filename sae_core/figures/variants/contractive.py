"""The contractive variant's picture and numbers: the encoder Jacobian norm per probe sample."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from sae_core.figures.activity import empty_figure, figure, histogram_bars, target_line

if TYPE_CHECKING:
    from sae_core.train.snapshot import Snapshot


def jacobian_norms(snap: Snapshot) -> np.ndarray:
    """[n_probe] ‖∂h/∂x‖²_F of the encoder at each probe sample, as the model computed it."""
    return np.asarray(snap.extras.get("jacobian_norms", np.zeros(0)), dtype=np.float64)


def contractive_metrics(snap: Snapshot) -> list[tuple[str, str, str | None]]:
    """(label, value, help) rows: the loss term, the mean Jacobian norm on the probe set, λ_c."""
    norms = jacobian_norms(snap)
    term = snap.losses.get("contractive")
    lam = snap.config.model.contraction
    return [
        (
            "Contractive term",
            "–" if term is None else f"{term:.4g}",
            "λ_c · mean over the last batch of ‖∂h/∂x‖²_F; also plotted in the loss curves",
        ),
        ("Mean ‖∂h/∂x‖²_F", f"{norms.mean():.4g}" if norms.size else "–", "On the probe set"),
        ("λ_c", f"{lam:g}", "Weight of the contractive term (changes apply live)"),
    ]


def contraction_figure(snap: Snapshot, bins: int = 40) -> go.Figure:
    """How far the code moves when the input moves: ‖∂h/∂x‖²_F per probe sample, mean marked.

    The contractive term of the loss is λ_c times the batch mean of this quantity.
    """
    norms = jacobian_norms(snap)
    if norms.size == 0:
        return empty_figure("Encoder Jacobian", "No probe samples yet", "‖∂h/∂x‖²_F", "samples")
    top = max(float(norms.max()), 1e-12)
    counts, edges = np.histogram(norms, bins=bins, range=(0.0, top * 1.0001))
    bars = histogram_bars(
        counts, edges, "‖J‖² in [%{customdata[0]:.3g}, %{customdata[1]:.3g})<br>%{y} samples"
    )
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
