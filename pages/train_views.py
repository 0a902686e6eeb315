"""The Train page's run: its buttons, progress, numbers and live views, drawn from the job's snapshot.

Not a page itself (pages/train.py lays the page out). The views read only the snapshot, never the live
model: the snapshot carries what they need (the activity threshold, the variant's extras). What a
variant adds is read from its spec (`sae_core.models.spec`): its numbers, its views and their captions.
"""

from __future__ import annotations

import streamlit as st

from pages import job_control, live_charts, presentation, runs_store, session_job, settings_state
from sae_core.analysis import diagnostics, formulas
from sae_core.figures import large_filters
from sae_core.figures import training as figures
from sae_core.figures import truth as truth_figures
from sae_core.serve.jobs import BusyError, TrainingJob
from sae_core.store import export
from sae_core.train.snapshot import Snapshot

FIRST_PICTURE_WAIT_S = 0.2  # longest a Train click waits for the job's first snapshot
FILTERS_HEIGHT = 372
"""Pixels of the filter montage in the default mode: what is left of a 1280×720 screen under the title,
the buttons, the progress line, the numbers and the filter switch (tests/test_browser_first_screen.py)."""
RIGHT_HEIGHT = FILTERS_HEIGHT + 48
"""The ρ̂ histogram beside the filters: as tall as the filters and their switch together."""
BUSY = "busy_message"
HIGHLIGHT = "highlight_unit"  # the unit picked by a click on a filter tile, marked in the unit views
DATA_TAB = "Training data"  # the open tab before the first step: what the model will learn from


# ----- button callbacks -----------------------------------------------------------------------------------
def on_train() -> None:
    st.session_state.pop(BUSY, None)
    job = session_job.current_job()
    step = job.step_count
    try:
        job.start()
    except BusyError as err:
        st.session_state[BUSY] = str(err)
        return
    # The job publishes after its first few steps (~20 ms): waiting for that lets this click's own rerun
    # draw the first trained picture, instead of the next fragment tick half a second later.
    job.wait_for_step(step, timeout=FIRST_PICTURE_WAIT_S)


def on_train_on() -> None:
    """A finished run: add its length again, as a live change (the same model trains on), and start."""
    job = session_job.current_job()
    more = job.trainer.total_steps
    if job.config.train.epochs is not None:  # a length in epochs (from a link) goes on in steps
        settings_state.set_setting("epochs", None)
    settings_state.set_setting("steps", job.step_count + more)
    st.session_state["steps"] = settings_state.settings()["steps"]  # the length's number input follows
    on_train()


def on_pause() -> None:
    session_job.current_job().pause()


def on_step() -> None:
    session_job.current_job().step_once()


def on_stop() -> None:
    session_job.current_job().stop()


def on_reset() -> None:
    job_control.retire_job("Reset: a fresh model was built with the same settings.")


def on_filter_select() -> None:
    """A click on a filter tile: keep its unit (a double click, which clears the selection, forgets it).

    Kept under a key of our own because the chart's selection is not: a refresh that changes the figure
    makes it a new element with an empty selection, and the unit must stay marked while training.
    """
    st.session_state[HIGHLIGHT] = figures.selected_unit(live_charts.selection("filters_chart"))


def on_discard_previous() -> None:
    st.session_state.pop(session_job.PREVIOUS, None)


# ----- buttons, progress, numbers --------------------------------------------------------------------------
def draw_buttons(job: TrainingJob) -> None:
    snap = job.latest()
    running, done = job.active, job.trainer.finished
    length = job.trainer.total_steps
    label = job_control.train_label(job)
    train_help = "Train in the background; the views refresh twice a second."
    if done:
        train_help = f"Add another {length:,} steps to this model and train on (nothing is rebuilt)."
    cols = st.columns([1.2, 1, 1, 1, 1, 2.2])
    cols[0].button(
        label,
        key="train",
        type="primary",
        on_click=on_train_on if done else on_train,
        disabled=running,
        help=train_help,
        width="stretch",
    )
    cols[1].button(
        "Pause",
        key="pause",
        on_click=on_pause,
        disabled=not running,
        help="Hold training (or leave the queue); the views keep the last picture.",
        width="stretch",
    )
    cols[2].button(
        "Step",
        key="step",
        on_click=on_step,
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
        on_click=runs_store.on_download,  # a downloaded model is kept on the Runs page too
        width="stretch",
        help="model.safetensors, config.json, metrics.json (with the step count), filters.png, "
        "reconstructions.png and the loss history as CSV (pause first while training). It is kept "
        "on the Runs page too.",
    )


def draw_length_reached(job: TrainingJob) -> None:
    """Under the views (a caption above them would push the filters off a projector's screen): what
    **Train on** does once the run has reached its length."""
    length = job.trainer.total_steps
    if job.trainer.finished and not job.active and not presentation.is_on():
        st.caption(
            f"Training length reached ({length:,} steps). **Train on** adds another {length:,} steps to "
            "this same model; raising *Training length* and pressing **Resume** trains on too, and **Step** "
            "still works. Nothing is rebuilt."
        )


def model_zip(job: TrainingJob) -> bytes:
    """The model as a zip: the folder export.save writes (weights, config, metrics with the step count)
    and the snapshot's files (filters.png, reconstructions.png, loss history CSV)."""
    snap = job.latest()
    return export.zip_bytes(
        job.trainer.model,
        job.config,
        export.snapshot_metrics(snap),
        image_shape=snap.image_shape,
        snapshot=snap,
    )


def _eta(snap, eta_s: float | None) -> str:
    """The job's estimate (TrainingJob.eta_seconds: wall clock, pauses excluded) as text."""
    if eta_s is None or snap.until_paused:
        return "–"
    seconds = eta_s
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


STATUS_TEXT = {
    "ready": "ready",
    "running": "training",
    "paused": "paused",
    "done": "finished",
    "stopped": "stopped",
    "diverged": "diverged",
    "queued": "queued",
    "failed": "failed",
}


def status_word(snap, running: bool) -> str:
    """The run's status in a word, as the buttons see it: a model opened at its length's end (a sweep's
    cell, a kept run) is "finished" (its button reads Train on), one opened part-way "paused" (Resume)."""
    if running:
        return "training"
    if snap.status == "ready" and snap.step > 0:
        return "finished" if not snap.until_paused and snap.step >= snap.total_steps else "paused"
    return STATUS_TEXT.get(snap.status, snap.status)


def draw_progress(snap, running: bool, queue_place: int | None = None, eta_s: float | None = None) -> None:
    status = status_word(snap, running)
    queued = f" · place {queue_place} in the queue" if queue_place and not running else ""
    length = "· until paused" if snap.until_paused else f"/ {snap.total_steps:,}"
    eta = "" if snap.until_paused else f" · ETA {_eta(snap, eta_s) if running else '–'}"
    text = (
        f"**{status}**{queued} · step {snap.step:,} {length} · epoch {snap.epoch:.1f} · "
        f"{snap.samples_per_second:,.0f} samples/s{eta}"
    )
    st.progress(snap.progress, text=text)


def draw_run_messages(snap, running: bool, queue_place: int | None = None) -> None:
    """The run's messages (queued, diverged, paused by itself, dead or saturated units), drawn under the
    views: above them they would push the filters and the ρ̂ histogram off a projector's screen. The
    progress line above says the status in a word."""
    if queue_place and not running:
        st.info(
            "Every training slot of this server is in use, or this browser already trains its fair share "
            "of them (half the slots; a sweep counts by its cells). This run starts by itself when its "
            "turn comes, and this page then updates by itself (the place above is the one it had when "
            "this page was drawn); **Pause** leaves the queue.",
            icon=":material/hourglass_top:",
        )
    if snap.status in ("diverged", "failed"):
        st.error(snap.message or f"Training {snap.status}.", icon=":material/error:")
    elif snap.message and snap.status == "paused":
        st.info(snap.message)
    for warning in diagnostics.run_warnings(snap):  # dead or saturated units, with the likely cause
        st.warning(warning, icon=":material/warning:")


def draw_metrics(snap) -> None:
    row = figures.metrics_row(snap)
    for col, (label, value, help_text) in zip(st.columns(len(row)), row, strict=True):
        col.metric(label, value, help=help_text)


def live_chart(figure, key: str, height: int | None = None, static: bool = False, **kwargs) -> None:
    """A chart of the live views: redrawn without a blank frame, its text enlarged in presentation mode.

    static: draw it without plotly where it can be (`figures.static`), as the views are drawn until the
    model's first step."""
    if height is not None:
        figure.layout.height = height
    live_charts.plotly_chart(presentation.enlarge(figure), key=key, static=static, **kwargs)


def draw_views(snap, running: bool = False) -> None:
    """The live views. Before the first step and while training (no unit picked) the pictures are plain
    HTML (figures.static): a fresh page shows the lesson without loading plotly.js first, and a redraw is
    an image and a few boxes. Paused or ended, they are plots again: hover a tile, click it for its unit."""
    present = presentation.is_on()
    static = (snap.step == 0 or running) and st.session_state.get(HIGHLIGHT) is None
    left, right = st.columns([1.15, 1], gap="medium" if present else "large")
    with left:
        switch, zoom = st.columns([3.2, 1], vertical_alignment="center", gap="small")
        which = switch.segmented_control(
            "Filters",
            ["encoder", "decoder"],
            default="encoder",
            required=True,
            key="filters_which",
            format_func={"encoder": "Encoder W₁: looks for", "decoder": "Decoder W₂: draws"}.get,
            help="Encoder W₁: the input that excites each unit most. Decoder W₂: the picture each unit "
            "adds to the reconstruction.",
            label_visibility="collapsed",  # its options name it; the room goes to the filters
        )
        # No tooltip: its icon does not fit beside the switch at 1280 px; the chart title says what it shows.
        large = zoom.toggle("Large", key="filters_large")
        highlight = st.session_state.get(HIGHLIGHT)
        unit = figures.unit_of_tile(snap, highlight)  # the same unit in the ρ̂, density and KL views
        height = presentation.FILTERS_HEIGHT if present else FILTERS_HEIGHT
        if large:  # no tile to click: each is one unit, numbered
            large_figure = large_filters.large_filters_figure(snap, which or "encoder")
            live_chart(large_figure, "filters_chart", height, static=static)
        else:
            filters = figures.filters_figure(snap, which or "encoder", highlight=highlight)
            select = {"on_select": on_filter_select, "selection_mode": "points"}
            live_chart(filters, "filters_chart", height, static=static, **select)
    standard = snap.config.model.spec.standard_views  # the views that mean something for this code
    with right:  # the pictures first, on the first screen; the formulas under them
        if "rho_hat" in standard:
            histogram = figures.rho_hat_histogram(snap, highlight=unit)
            right_height = presentation.RIGHT_HEIGHT if present else RIGHT_HEIGHT
            live_chart(histogram, "rho_hat_chart", right_height, static=static)
        draw_objective()
    # Lazy tabs: only the open tab's chart is built on each refresh (half the work of drawing all five).
    shown = {
        _tab_label(label, snap): chart
        for label, chart in TAB_CHARTS.items()
        if _shows(chart[2], snap, standard)
    }
    # Before the first step the data tab is open; the first step changes the default and so opens the first
    # tab (the true-feature pairs where there are some, else the loss).
    default = DATA_TAB if snap.step == 0 else None
    tabs = st.tabs(list(shown), key="view_tab", on_change="rerun", default=default)
    for tab, (make_figure, key, _) in zip(tabs, shown.values(), strict=True):
        if tab.open:
            with tab:
                if make_figure is figures.loss_figure:
                    log_y = st.toggle("Log-scale loss", key="loss_log_y", value=True)
                    live_chart(figures.loss_figure(snap, log_y=log_y), key, static=static)
                elif make_figure in MARKS_A_UNIT:
                    live_chart(make_figure(snap, highlight=unit), key, static=static)
                else:
                    live_chart(make_figure(snap), key, static=static)


PENALTY_TAB = "Penalty per unit"
"""Its tab shows the penalty's short name instead ("KL per unit")."""
TRUTH_VIEW = "truth_pairs"
"""The view of a dataset with known directions (superposition): first, so it is the tab open once training
starts, as the filters are for pictures."""
# Tab label -> (figure function, chart key, the spec's standard view it is, None: every variant has it;
# TRUTH_VIEW: shown when the data have known directions).
TAB_CHARTS = {
    "True vs learned features": (truth_figures.truth_pairs_figure, "truth_chart", TRUTH_VIEW),
    "Loss curves": (figures.loss_figure, "loss_chart", None),
    "Activation values": (figures.activation_histogram, "activation_chart", "activations"),
    "Unit density": (figures.density_histogram, "density_chart", "density"),
    "Reconstructions": (figures.reconstructions_figure, "recon_chart", None),
    PENALTY_TAB: (figures.kl_curve_figure, "kl_chart", "penalty_curve"),
    DATA_TAB: (figures.data_figure, "data_chart", None),
}
MARKS_A_UNIT = (figures.density_histogram, figures.kl_curve_figure)  # they take highlight=


def _tab_label(label: str, snap: Snapshot) -> str:
    """The per-unit penalty tab is named for the penalty ("KL per unit"); the others as they are."""
    return f"{snap.config.model.penalty_spec.short} per unit" if label == PENALTY_TAB else label


def _shows(view: str | None, snap: Snapshot, standard: frozenset[str]) -> bool:
    """Whether a tab is drawn for this snapshot: every variant's views, the standard views that mean
    something for its code, and the true-feature pairs where the data have known directions."""
    if view is None:
        return True
    if view == TRUTH_VIEW:
        return truth_figures.has_truth_pairs(snap)
    return view in standard and _has_view(view, snap)


def _has_view(view: str, snap: Snapshot) -> bool:
    """Whether the snapshot has what a standard view draws: the per-unit penalty only under a penalty that
    is a function of each unit's ρ̂ (KL)."""
    return view != "penalty_curve" or snap.kl_per_unit is not None


def draw_objective() -> None:
    cfg = settings_state.current_config()
    with st.container(border=True, key=presentation.OBJECTIVE_BOX):  # its formulas scale to fit it
        st.latex(formulas.objective_latex(cfg))
        detail = cfg.model.penalty_spec.detail_tex
        if detail is not None:
            st.latex(detail(cfg.model))


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
                live_chart(draw(snap, index=int(index or 0)), view.key)
            else:
                live_chart(draw(snap), view.key)


def draw_previous() -> None:
    prev: TrainingJob | None = st.session_state.get(session_job.PREVIOUS)
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
            on_click=runs_store.on_download_previous,
        )
        cols[1].button("Discard previous run", key="discard_previous", on_click=on_discard_previous)
