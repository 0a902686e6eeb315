"""The Train page's run: its buttons, progress, numbers and live views, drawn from the job's snapshot.

Not a page itself (pages/train.py lays the page out). The views read only the snapshot, never the live
model: the snapshot carries what they need (the activity threshold, the variant's extras). What a
variant adds is read from its spec (`sae_core.models.spec`): its numbers, its views and their captions.
"""

from __future__ import annotations

import streamlit as st

from pages import common
from sae_core import export, figures, formulas
from sae_core.jobs import BusyError, TrainingJob
from sae_core.snapshot import Snapshot

FIRST_PICTURE_WAIT_S = 0.2  # longest a Train click waits for the job's first snapshot
FILTERS_HEIGHT = 560  # pixels: big enough for a projector even when the montage is small (25 units of 8×8)
BUSY = "busy_message"


# ----- button callbacks -----------------------------------------------------------------------------------
def on_train() -> None:
    st.session_state.pop(BUSY, None)
    job = common.current_job()
    step = job.step_count
    try:
        job.start()
    except BusyError as err:
        st.session_state[BUSY] = str(err)
        return
    # The job publishes after its first few steps (~20 ms): waiting for that lets this click's own rerun
    # draw the first trained picture, instead of the next fragment tick half a second later.
    job.wait_for_step(step, timeout=FIRST_PICTURE_WAIT_S)


def on_pause() -> None:
    common.current_job().pause()


def on_step() -> None:
    common.current_job().step_once()


def on_stop() -> None:
    common.current_job().stop()


def on_reset() -> None:
    common.retire_job("Reset: a fresh model was built with the same settings.")


def on_discard_previous() -> None:
    st.session_state.pop(common.PREVIOUS, None)


# ----- buttons, progress, numbers --------------------------------------------------------------------------
def draw_buttons(job: TrainingJob) -> None:
    snap = job.latest()
    running, done = job.running, job.step_count >= snap.total_steps
    label = "Resume" if job.step_count > 0 and not running and not done else "Train"
    cols = st.columns([1.2, 1, 1, 1, 1, 2.2])
    cols[0].button(
        label,
        key="train",
        type="primary",
        on_click=on_train,
        disabled=running or done,
        help="Train in the background; the views refresh twice a second.",
        width="stretch",
    )
    cols[1].button(
        "Pause",
        key="pause",
        on_click=on_pause,
        disabled=not running,
        help="Hold training; the views keep the last picture.",
        width="stretch",
    )
    cols[2].button(
        "Step",
        key="step",
        on_click=on_step,
        disabled=done,
        help="Pause and take exactly one optimisation step.",
        width="stretch",
    )
    cols[3].button(
        "Stop",
        key="stop",
        on_click=on_stop,
        disabled=not running and snap.status != "paused",
        help="End this run's thread. The model is kept: you can still step or download it.",
        width="stretch",
    )
    cols[4].button(
        "Reset",
        key="reset",
        on_click=on_reset,
        help="A fresh model with the same settings; the current one moves to 'Previous run'.",
        width="stretch",
    )
    cols[5].download_button(
        "Download model (.zip)",
        data=lambda: model_zip(job),
        file_name="sae-model.zip",
        mime="application/zip",
        key="download",
        disabled=running or job.step_count == 0,
        on_click="ignore",
        width="stretch",
        help="model.safetensors + config.json + metrics.json (pause first while training).",
    )
    if done:
        st.caption(
            "Training length reached. Raise *Training length* for a longer run (this builds a new model)."
        )


def model_zip(job: TrainingJob) -> bytes:
    """The model as a zip of the folder export.save writes (weights, config, metrics)."""
    snap = job.latest()
    return export.zip_bytes(job.trainer.model, job.config, snap.metrics, image_shape=snap.image_shape)


def _eta(snap) -> str:
    if snap.seconds <= 0 or snap.step == 0:
        return "–"
    seconds = (snap.total_steps - snap.step) * snap.seconds / snap.step
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


STATUS_TEXT = {
    "ready": "ready",
    "running": "training",
    "paused": "paused",
    "done": "finished",
    "stopped": "stopped",
    "diverged": "diverged",
}


def draw_progress(snap, running: bool) -> None:
    status = "training" if running else STATUS_TEXT.get(snap.status, snap.status)
    text = (
        f"**{status}** · step {snap.step:,} / {snap.total_steps:,} · epoch {snap.epoch:.1f} · "
        f"{snap.samples_per_second:,.0f} samples/s · ETA {_eta(snap) if running else '–'}"
    )
    st.progress(snap.progress, text=text)
    if snap.status == "diverged":
        st.error(snap.message or "Training diverged.", icon=":material/error:")
    elif snap.message and snap.status == "paused":
        st.info(snap.message)


def draw_metrics(snap) -> None:
    row = figures.metrics_row(snap)
    for col, (label, value, help_text) in zip(st.columns(len(row)), row, strict=True):
        col.metric(label, value, help=help_text)


def draw_views(snap) -> None:
    left, right = st.columns([1.15, 1], gap="large")
    with left:
        which = st.segmented_control(
            "Filters",
            ["encoder", "decoder"],
            default="encoder",
            required=True,
            key="filters_which",
            format_func={
                "encoder": "Encoder W₁ (what a unit looks for)",
                "decoder": "Decoder W₂ (what a unit draws)",
            }.get,
        )
        filters = figures.filters_figure(snap, which or "encoder")
        filters.layout.height = max(filters.layout.height or 0, FILTERS_HEIGHT)
        st.plotly_chart(filters, key="filters_chart")
    standard = snap.config.model.spec.standard_views  # the views that mean something for this code
    with right:
        draw_objective()
        if "rho_hat" in standard:
            st.plotly_chart(figures.rho_hat_histogram(snap), key="rho_hat_chart")
    # Lazy tabs: only the open tab's chart is built on each refresh (half the work of drawing all five).
    shown = {label: chart for label, chart in TAB_CHARTS.items() if chart[2] is None or chart[2] in standard}
    tabs = st.tabs(list(shown), key="view_tab", on_change="rerun")
    for tab, (make_figure, key, _) in zip(tabs, shown.values(), strict=True):
        if tab.open:
            with tab:
                if make_figure is figures.loss_figure:
                    log_y = st.toggle("Log-scale loss", key="loss_log_y", value=True)
                    st.plotly_chart(figures.loss_figure(snap, log_y=log_y), key=key)
                else:
                    st.plotly_chart(make_figure(snap), key=key)


# Tab label -> (figure function, chart key, the spec's standard view it is, None: every variant has it).
TAB_CHARTS = {
    "Loss curves": (figures.loss_figure, "loss_chart", None),
    "Activation values": (figures.activation_histogram, "activation_chart", "activations"),
    "Unit density": (figures.density_histogram, "density_chart", "density"),
    "Reconstructions": (figures.reconstructions_figure, "recon_chart", None),
    "KL per unit": (figures.kl_curve_figure, "kl_chart", "kl"),
}


def draw_objective() -> None:
    cfg = common.current_config()
    with st.container(border=True):
        st.latex(formulas.objective_latex(cfg))
        if cfg.model.effective_penalty == "kl":
            st.latex(formulas.kl_latex(cfg.model.rho))


def draw_variant_views(snap: Snapshot) -> None:
    """The snapshot's variant's own numbers and views (from its spec), under a heading."""
    spec = snap.config.model.spec
    if not spec.views and spec.metrics is None:
        return
    st.subheader(f"{spec.title} autoencoder")
    if spec.views_caption:
        st.caption(spec.views_caption)
    rows = spec.metric_rows(snap)
    if rows:
        for col, (label, value, help_text) in zip(st.columns(len(rows)), rows, strict=True):
            col.metric(label, value, help=help_text)
    columns = st.columns(2, gap="large") if any(v.column == 1 for v in spec.views) else [st.container()]
    for view in spec.views:
        with columns[min(view.column, len(columns) - 1)]:
            draw = view.figure_function()
            if view.pick_input:
                shown = int(snap.show_inputs.shape[0])
                index = st.selectbox(
                    "Input shown",
                    list(range(shown)),
                    key=f"{view.key}_input",
                    format_func=lambda i: f"input #{i}",
                )
                st.plotly_chart(draw(snap, index=int(index or 0)), key=view.key)
            else:
                st.plotly_chart(draw(snap), key=view.key)


def draw_previous() -> None:
    prev: TrainingJob | None = st.session_state.get(common.PREVIOUS)
    if prev is None:
        return
    snap = prev.latest()
    m = snap.config.model
    title = (
        f"Previous run: {snap.config.data.dataset}, {m.hidden} hidden, {m.penalty}, "
        f"ρ {m.rho:g}, β {m.beta:g} — step {snap.step:,}"
    )
    with st.expander(title):
        draw_metrics(snap)
        st.plotly_chart(figures.filters_figure(snap, "encoder"), key="previous_filters_chart")
        cols = st.columns(2)
        cols[0].download_button(
            "Download previous model (.zip)",
            data=lambda: model_zip(prev),
            file_name="sae-model-previous.zip",
            mime="application/zip",
            key="download_previous",
            on_click="ignore",
        )
        cols[1].button("Discard previous run", key="discard_previous", on_click=on_discard_previous)
