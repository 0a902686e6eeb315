"""The Explore page's parts: the sweep's buttons, its views over the grid, one picked cell and the probe.

Not a page itself (pages/explore.py lays the page out). The sweep is a `sae_core.serve.sweep_job.SweepJob` in
st.session_state[JOB]: one background job for the whole grid, on one of the server's training slots.
The views read only its latest snapshot; opening a cell on Train copies that cell's weights out of it.
"""

from __future__ import annotations

import math

import numpy as np
import streamlit as st

from pages import datasets, job_control, live_charts, notices, presentation
from sae_core.analysis import sweep_probe
from sae_core.analysis.applications import NotApplicable
from sae_core.config.run import RunConfig
from sae_core.data import datasets as data
from sae_core.figures import sweep as figures_sweep
from sae_core.serve.jobs import BusyError
from sae_core.serve.sweep_job import RemoteSweepJob, SweepJob
from sae_core.sweep.block import model_from_state
from sae_core.sweep.spec import AXIS_LABELS
from sae_core.sweep.trainer import SweepSnapshot, SweepSpec

JOB = "sweep_job"
"""This browser session's SweepJob."""
SELECTED = "sweep_selected"
"""The cell picked by a click on a view (or the cell picker)."""
PROBE = "sweep_probe"
"""{"key": (id(job), step), "cells": {cell: accuracy}, "pixels": accuracy} of the last probe run."""
ERROR = "sweep_error"
LARGE = "sweep_large"
"""The "Large" switch: the picked cell's most active filters, large, instead of every cell's first ones."""
SHOW_METRIC = "sweep_show_metric"
"""A metric the grid should be coloured by at the next run (the probe's, once computed)."""
VIEW_METRICS = (
    "recon_error",
    "mean_activation",
    "l0",
    "dead_units",
    "fve",
    "mmcs",
    "features_found",
    "probe_accuracy",
)
TRADEOFFS = {
    "l0": ("recon_error", "l0"),
    "mean_activation": ("recon_error", "mean_activation"),
    "mmcs": ("l0", "mmcs"),
}
"""The trade-off plot's choices: (x, y). On data with known features (superposition) L0 against MMCS: how
few units per input against how well the dictionary matches the true features."""
TRADEOFF_NAMES = {"l0": "L0 (active units)", "mean_activation": "Mean ρ̂", "mmcs": "MMCS against L0"}
REFRESH_S = 1.0


def current_job() -> SweepJob | None:
    return st.session_state.get(JOB)


# ----- buttons ----------------------------------------------------------------------------------------------
FIRST_PICTURE_WAIT_S = 1.0
"""Longest a Train sweep click waits for the grid's first trained snapshot, so that its own rerun draws it."""


def start(job: SweepJob) -> None:
    try:
        job.start()
    except BusyError as err:
        st.session_state[ERROR] = str(err)
        return
    if isinstance(job, SweepJob):
        job.wait_for_step(job.step_count, timeout=FIRST_PICTURE_WAIT_S)


def on_resume() -> None:
    start(current_job())


def on_pause() -> None:
    current_job().pause()


def on_stop() -> None:
    current_job().stop()


def draw_buttons(job: SweepJob | RemoteSweepJob) -> None:
    active, snap = job.active, job.latest()
    remote = isinstance(job, RemoteSweepJob)
    cols = st.columns([1, 1, 1, 3])
    cols[0].button(
        "Resume",
        key="sweep_resume",
        on_click=on_resume,
        width="stretch",
        disabled=remote or active or job.finished or job.status == "stopped",
        help="Go on training every cell from where the sweep paused.",
    )
    cols[1].button(
        "Pause",
        key="sweep_pause",
        on_click=on_pause,
        disabled=remote or not active,
        width="stretch",
        help="Hold the whole grid (or leave the queue); the views keep the last picture.",
    )
    cols[2].button(
        "Stop",
        key="sweep_stop",
        on_click=on_stop,
        width="stretch",
        disabled=not active and snap.status != "paused",
        help="End the sweep's thread. Its cells are kept: you can still open them on Train.",
    )
    if remote:
        cols[3].caption(
            f"Training on the {job.backend} backend: the grid fills in as groups of cells return."
        )


# ----- views ------------------------------------------------------------------------------------------------
def draw_progress(job: SweepJob, snap: SweepSnapshot) -> None:
    spec = snap.spec
    status = "training" if job.running else job.status
    place = job.queue_place()
    queued = f" · place {place} in the queue" if place else ""
    diverged = sum(c.status == "diverged" for c in snap.cells)
    text = (
        f"**{status}**{queued} · step {snap.step:,} / {snap.total_steps:,} · {spec.n_cells} cells "
        f"({' × '.join(str(n) for n in spec.shape if n > 1) or '1'}) · {snap.seconds:.1f} s"
        + (f" · {diverged} diverged" if diverged else "")
    )
    st.progress(snap.progress, text=text)
    if snap.message and status == "failed":
        st.error(snap.message, icon=":material/error:")
    elif snap.message and status in ("paused", "stopped"):
        st.info(snap.message)


def _layer_picker(spec: SweepSpec) -> int:
    if spec.axis is None:
        return 0
    labels = [f"{AXIS_LABELS[spec.axis]} = {v:g}" for v in spec.axis_values]
    choice = st.radio("Slice of the third axis", labels, horizontal=True, key="sweep_layer")
    return labels.index(choice) if choice in labels else 0


def on_view_select(key: str) -> None:
    cell = figures_sweep.selected_cell(live_charts.selection(key))
    if cell is not None:
        st.session_state[SELECTED] = cell


def draw_views(job: SweepJob, snap: SweepSnapshot) -> None:
    """Heatmap of the chosen number, the cells' filters and the trade-off, in tabs; clicks pick a cell."""
    spec = snap.spec
    layer = _layer_picker(spec)
    selected = st.session_state.get(SELECTED)
    probe = _probe_values(job, snap)
    metrics = [m for m in VIEW_METRICS if (probe is not None if m == "probe_accuracy" else snap.has(m))]
    if not metrics:  # a sweep on a cluster before its first block is back: no cell has numbers yet
        st.caption("The grid's pictures appear here as soon as its first block of cells is back.")
        return
    if st.session_state.get(SHOW_METRIC) in metrics:
        st.session_state["sweep_metric"] = st.session_state.pop(SHOW_METRIC)
    choose, zoom = st.columns([6, 1], vertical_alignment="bottom")
    metric = choose.radio(
        "Colour the grid by",
        metrics,
        format_func=figures_sweep.NAMES.get,
        horizontal=True,
        key="sweep_metric",
    )
    large = zoom.toggle(
        "Large",
        key=LARGE,
        help="The picked cell's encoder filters W₁, its most active units at a size a projector shows.",
    )
    metric = metric if metric in metrics else metrics[0]
    values = probe if metric == "probe_accuracy" else None
    left, right = st.columns(2)
    with left:
        _chart(figures_sweep.heatmap_figure(snap, metric, layer, values, selected), "sweep_heatmap")
    with right:
        if large:  # no tile to click: each is one unit of the picked cell, numbered
            draw_large_filters(job, snap)
        else:
            _chart(figures_sweep.thumbnails_figure(snap, layer, selected), "sweep_thumbnails")
    y_metric = st.radio(
        "Sparsity measure of the trade-off",
        [y for y in TRADEOFFS if snap.has(y)],
        horizontal=True,
        format_func=TRADEOFF_NAMES.get,
        key="sweep_tradeoff_y",
    )
    x_metric, y_metric = TRADEOFFS.get(y_metric or "l0", TRADEOFFS["l0"])
    _chart(figures_sweep.tradeoff_figure(snap, y_metric, selected, x_metric=x_metric), "sweep_tradeoff")
    st.caption(
        "Numbers on up to 1,000 training samples (the Train page's probe set). Click a cell of the heatmap "
        "or the filters, or a point of the trade-off, to pick it; the Pareto front joins the cells that no "
        "other cell beats on both reconstruction and sparsity."
    )


def _chart(figure, key: str) -> None:
    live_charts.plotly_chart(
        presentation.enlarge(figure),
        key=key,
        on_select=lambda: on_view_select(key),
        selection_mode="points",
        config={"displayModeBar": False},
    )


def picked_cell(snap: SweepSnapshot) -> int | None:
    """The cell the views and the cell picker show: the one clicked, else the first with results."""
    cells = [c.index for c in snap.cells]  # a remote sweep has only the blocks that came back
    selected = st.session_state.get(SELECTED)
    return selected if selected in cells else (cells[0] if cells else None)


def draw_large_filters(job: SweepJob, snap: SweepSnapshot) -> None:
    """The picked cell's most active filters, large, drawn from its model's weights."""
    index = picked_cell(snap)
    if index is None:
        st.caption("No cell has finished yet: its filters show here once one has.")
        return
    try:
        state, cfg, step = job.cell_state(index)
    except RuntimeError as err:
        st.caption(f"Cannot show this cell's filters: {err}.")
        return
    model = model_from_state(cfg, state, snap.image_shape, step, snap.total_steps)
    filters = model.filters().detach().cpu().numpy()
    shape = tuple(model.filter_shape(snap.image_shape))
    label = cell_label(snap.spec, index)
    live_charts.plotly_chart(
        presentation.enlarge(figures_sweep.cell_filters_figure(snap, index, filters, shape, label)),
        key="sweep_large_filters",
        config={"displayModeBar": False},
    )


def _probe_values(job: SweepJob, snap: SweepSnapshot) -> np.ndarray | None:
    found = st.session_state.get(PROBE)
    if not found or found["key"] != (id(job), snap.step):
        return None
    return sweep_probe.probe_grid(snap.spec, found["cells"])


# ----- one cell ---------------------------------------------------------------------------------------------
def cell_label(spec: SweepSpec, i: int) -> str:
    a, r, b = spec.coords(i)
    axis = "" if spec.axis is None else f", {AXIS_LABELS[spec.axis]} {spec.axis_values[a]:g}"
    return f"ρ {spec.rhos[r]:g}, β {spec.betas[b]:g}{axis}"


def draw_cell(job: SweepJob, snap: SweepSnapshot) -> None:
    """The picked cell: its numbers, and a button that opens it on the Train page with its weights."""
    spec = snap.spec
    cells = [c.index for c in snap.cells]  # a remote sweep has only the blocks that came back
    index = picked_cell(snap)
    if index is None:
        return
    st.session_state["sweep_cell_pick"] = index  # a click on a view moves the picker too
    pick = st.selectbox(
        "Cell", cells, format_func=lambda i: cell_label(spec, i), key="sweep_cell_pick", on_change=_on_pick
    )
    cell = snap.cell(pick)
    row = [
        ("Reconstruction error", f"{cell.metrics['recon_error']:.4f}"),
        ("Mean ρ̂", f"{cell.metrics['mean_activation']:.3f}"),
        ("L0", f"{cell.metrics['l0']:.1f}"),
        ("Dead units", f"{cell.metrics['dead_units']:.0f}"),
        ("FVE", f"{cell.metrics['fve']:.3f}"),
    ]
    if "mmcs" in cell.metrics:  # data with known directions: how much of the answer this cell found
        found, total = cell.metrics["features_found"], cell.metrics["features_total"]
        row += [("Features found", f"{found:.0f} / {total:.0f}"), ("MMCS", f"{cell.metrics['mmcs']:.3f}")]
    for col, (label, value) in zip(st.columns(len(row)), row, strict=True):
        col.metric(label, value)
    if cell.status == "diverged":
        st.error(cell.message or "This cell diverged.")
    st.button(
        f"Open {cell_label(spec, pick)} on Train",
        key="sweep_open",
        type="primary",
        on_click=on_open,
        args=(pick,),
        disabled=job.released,
        help="Make this cell's model your run on the Train page, trained weights and step included. "
        "Your current run there is kept as the previous run; the sweep is paused.",
    )


def _on_pick() -> None:
    st.session_state[SELECTED] = st.session_state["sweep_cell_pick"]


def on_open(cell: int) -> None:
    job = current_job()
    try:
        if job.active and not isinstance(job, RemoteSweepJob):
            job.pause()  # the Train page's run needs the slot; the sweep keeps its place
        state, cfg, step = job.cell_state(cell)
        opened = job_control.open_model(
            cfg, state, step, source=f"the sweep's cell {cell_label(job.spec, cell)}"
        )
    except (RuntimeError, ValueError, data.DataUnavailableError) as err:
        st.session_state[ERROR] = f"Cannot open this cell: {err}"
        return
    st.session_state[notices.NOTICE] = (
        f"Opened the sweep's cell {cell_label(job.spec, cell)} at step {step:,}: press "
        f"**{job_control.train_label(opened)}** to train it on."
    )
    st.session_state["sweep_switch"] = True


# ----- probe ------------------------------------------------------------------------------------------------
def draw_probe(job: SweepJob, snap: SweepSnapshot) -> None:
    """A button that fits the linear probe on every cell's codes (after training: it takes a while)."""
    found = st.session_state.get(PROBE)
    fresh = found is not None and found["key"] == (id(job), snap.step)
    if fresh:
        best = max(found["cells"].items(), key=lambda kv: kv[1])
        st.caption(
            f"Probe accuracy (logistic regression on {sweep_probe.PROBE_TRAIN:,} labelled codes, scored on "
            f"{sweep_probe.PROBE_TEST:,} held out): best {best[1]:.1%} at {cell_label(snap.spec, best[0])}; "
            f"the same probe on raw pixels: {found['pixels']:.1%}."
        )
        return
    if not st.button(
        "Compute probe accuracy",
        key="sweep_probe_button",
        disabled=job.active,
        help="Fit a linear classifier on every cell's codes: which ρ and β give codes that "
        "tell the classes apart best. Pause or finish the sweep first.",
    ):
        return
    try:
        dataset = datasets.load_dataset(snap.spec.base.data)
        split = sweep_probe.probe_split(dataset)
    except NotApplicable as err:
        st.info(str(err))
        return
    bar = st.progress(0.0, text="Probing the cells…")
    cells = {}
    for n, c in enumerate(snap.cells):
        state, cfg, step = job.cell_state(c.index)
        model = model_from_state(cfg, state, snap.image_shape, step, snap.total_steps)
        acc = sweep_probe.cell_accuracy(model, split) if c.status != "diverged" else math.nan
        cells[c.index] = acc
        bar.progress((n + 1) / len(snap.cells), text=f"Probing the cells… {n + 1} of {len(snap.cells)}")
    pixels = sweep_probe.pixel_accuracy(split)
    st.session_state[PROBE] = {"key": (id(job), snap.step), "cells": cells, "pixels": pixels}
    st.session_state[SHOW_METRIC] = "probe_accuracy"  # set before the radio is drawn, in the next run
    st.rerun()


def base_summary(cfg: RunConfig) -> str:
    """ "bars · Sparse (one hidden layer) · 16 hidden · 600 steps": the sweep's data, variant, hidden units
    (when the variant has them: not the conv model, whose size is its kernels) and length."""
    m = cfg.model
    size = f"{m.hidden} hidden" if m.spec.hidden_label is not None else None
    parts = [cfg.data.dataset, m.spec.title, size, f"{cfg.train.steps:,} steps"]
    return " · ".join(p for p in parts if p)
