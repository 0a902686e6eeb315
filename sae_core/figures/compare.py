"""Two to four runs side by side: their settings (which differ), their numbers, their loss curves overlaid.

Pure functions over snapshots (a kept run's `StoredRun.snapshot()` or a live one), so the Runs page only
lays out what these return. Each run has a label ("1. digits · ρ 0.05 · …") and a colour, the same
in every table and chart of the comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go

from sae_core.config.run import RunConfig
from sae_core.figures.training import (
    downsample_indices,
    empty_figure,
    figure,
    log_axis,
    metrics_row,
    term_label,
)
from sae_core.train.snapshot import Snapshot

RUN_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
"""One colour per compared run, in order (at most four runs are compared)."""
MAX_RUNS = len(RUN_COLOURS)
HIDDEN_SETTINGS = ("upload", "data_dir")
"""Settings that name files on the server: not shown."""


def short_labels(titles: Sequence[str]) -> list[str]:
    """ "1. ρ 0.2 · β 0.5": each run's number and the parts of its title (runs.run_title, parts joined by
    " · ") that not every compared run shares; a narrow column or a legend has room for no more."""
    parts = [title.split(" · ") for title in titles]
    shared = set.intersection(*(set(p) for p in parts)) if parts else set()
    own = [" · ".join(x for x in p if x not in shared) for p in parts]
    return [f"{i}. {text}" if text else f"{i}." for i, text in enumerate(own, start=1)]


@dataclass(frozen=True)
class SettingRow:
    name: str
    values: list[Any]
    differs: bool


def setting_rows(configs: Sequence[RunConfig]) -> list[SettingRow]:
    """Every setting of the runs (config field order), with whether its value is not the same in all."""
    flats = [cfg.flat() for cfg in configs]
    rows = []
    for name in flats[0] if flats else []:
        if name in HIDDEN_SETTINGS:
            continue
        values = [_shown(flat.get(name)) for flat in flats]
        rows.append(SettingRow(name, values, any(v != values[0] for v in values[1:])))
    return rows


def _shown(value: Any) -> Any:
    """A value as the table shows it: lists as "128, 64", None as "–" (tables want one type per row)."""
    if value is None:
        return "–"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value) if not isinstance(value, bool) else ("yes" if value else "no")


def metric_rows(snaps: Sequence[Snapshot]) -> list[tuple[str, list[str], str | None]]:
    """(label, one value per run, help): the Train page's metric row of each run, plus its length and time.
    A metric one run lacks (the VAE has no ρ̂) is "–" there."""
    rows: dict[str, tuple[list[str], str | None]] = {}
    for i, snap in enumerate(snaps):
        facts = [
            ("Steps", f"{snap.step:,}", "Optimisation steps the run took before it was kept"),
            ("Training time", f"{snap.seconds:.1f} s", "Seconds of training, pauses excluded"),
            ("Final total loss", _loss(snap), "The whole objective on the last step's batch"),
        ]
        for label, value, help_text in [*facts, *metrics_row(snap)]:
            # "Mean ρ̂ (target ρ = 0.05)": the run's own part of a label goes with its value, so that the
            # runs share one row.
            name, _, own = label.partition(" (")
            values, _ = rows.setdefault(name, (["–"] * len(snaps), help_text))
            values[i] = f"{value} ({own}" if own else value
    return [(label, values, help_text) for label, (values, help_text) in rows.items()]


def _loss(snap: Snapshot) -> str:
    total = snap.history.get("total")
    return "–" if total is None or len(total) == 0 else f"{float(total[-1]):.4g}"


def loss_terms(snaps: Sequence[Snapshot]) -> list[str]:
    """Loss terms recorded by every one of the runs, "total" first."""
    common = [t for t in (snaps[0].history if snaps else {}) if all(t in s.history for s in snaps)]
    return sorted(common, key=lambda t: (t != "total", t))


def loss_overlay_figure(
    labels: Sequence[str], snaps: Sequence[Snapshot], term: str = "total", log_y: bool = True
) -> go.Figure:
    """One loss term of each run against the step, one coloured line per run (long curves downsampled)."""
    traces = []
    for i, (label, snap) in enumerate(zip(labels, snaps, strict=True)):
        values = np.asarray(snap.history.get(term, []), dtype=np.float64)
        steps = np.asarray(snap.history_steps)
        if values.size == 0 or values.shape != steps.shape:
            continue
        keep = downsample_indices(values, 1000)
        line = {"color": RUN_COLOURS[i % MAX_RUNS], "width": 2}
        traces.append(go.Scatter(x=steps[keep], y=values[keep], mode="lines", name=label, line=line))
    penalties = {snap.config.model.effective_penalty for snap in snaps}
    name = term_label(term, penalties.pop() if len(penalties) == 1 else "")  # KL and L1 runs: "sparsity"
    y_title = f"{name} loss" + (" (log scale)" if log_y else "")
    if not traces:
        return empty_figure(f"Loss: {name}", "No loss history was kept with these runs", "step", y_title)
    return figure(
        traces,
        f"Training loss: {name}, one line per run",
        "step",
        y_title,
        height=380,
        yaxis=log_axis(traces) if log_y else None,
        showlegend=True,
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "xanchor": "left", "x": 0.0},
        margin={"l": 60, "r": 20, "t": 50, "b": 90},
        hovermode="x unified",
    )
