"""Train page: the controls, the buttons and the live views of one training run.

The run is a `TrainingJob` in st.session_state["job"] (see pages/common.py). Widget callbacks change
its settings or press its buttons; the views are drawn from its latest snapshot in a fragment that
reruns twice a second while it trains and stays frozen on the last picture when it does not.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import zipfile
from pathlib import Path
from typing import get_args

import streamlit as st

from pages import common, variant_views
from sae_core import data, figures, formulas
from sae_core.config import FIELD_DOCS, Optimizer, Penalty
from sae_core.jobs import BusyError, TrainingJob
from sae_core.models import BUILDERS

common.leave_old_multipage_mode()

REFRESH_S = 0.5
FIRST_PICTURE_WAIT_S = 0.2  # longest a Train click waits for the job's first snapshot
FILTERS_HEIGHT = 560  # pixels: big enough for a projector even when the montage is small (25 units of 8×8)
RHO_GRID = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
PENALTY_NAMES = {
    "kl": "KL divergence (sigmoid units)",
    "l1": "L1 on activations (ReLU)",
    "topk": "Top-k",
    "none": "None",
}
BUSY = "busy_message"
WAS_RUNNING = "job_was_running"
UPLOAD_DIR = Path(tempfile.gettempdir()) / "sae-playground-uploads"


# ----- callbacks ------------------------------------------------------------------------------------------
def on_setting(key: str) -> None:
    """A control changed: see common.change_setting."""
    common.change_setting(key)


def on_upload() -> None:
    """Check the uploaded file now, so a bad file gets a message next to the uploader, then store it."""
    upload = st.session_state.get("upload_file")
    common.errors().pop("upload", None)
    if upload is None:
        return
    raw = upload.getvalue()
    try:
        x, shape = data.load_upload_bytes(raw, upload.name)
    except data.UploadError as err:
        common.errors()["upload"] = str(err)
        return
    UPLOAD_DIR.mkdir(parents=True, exist_ok=True)
    path = UPLOAD_DIR / (hashlib.sha256(raw).hexdigest()[:20] + Path(upload.name).suffix.lower())
    if not path.exists():
        path.write_bytes(raw)
    common.apply_setting("upload", str(path))
    st.session_state[common.NOTICE] = (
        f"Loaded {upload.name}: {len(x)} samples of {shape[0]}×{shape[1]} pixels."
    )


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


# ----- controls -------------------------------------------------------------------------------------------
def _error_under(key: str) -> None:
    message = common.errors().get(key)
    if message:
        st.error(f"Not applied: {message}", icon=":material/block:")


def _widget(kind, label: str, key: str, **kwargs) -> None:
    kind(label, key=key, help=FIELD_DOCS.get(key), on_change=on_setting, args=(key,), **kwargs)
    _error_under(key)


def _dataset_label(name: str) -> str:
    info = data.DATASETS[name]
    ok, _ = data.availability(name)
    return info.title if ok else f"{info.title} (not installed)"


def draw_controls() -> None:
    """The sidebar: every control is keyed by its config field name and initialised from the settings."""
    flat = common.current_config().flat()
    for key in common.WIDGET_KEYS:
        if key not in st.session_state:
            st.session_state[key] = flat[key]
    rho_options = sorted(set(RHO_GRID) | {flat["rho"]} | _valid_float(st.session_state["rho"]))
    with st.sidebar:
        st.subheader("Data")
        _widget(st.selectbox, "Dataset", "dataset", options=list(data.DATASETS), format_func=_dataset_label)
        if st.session_state["dataset"] == "upload":
            st.file_uploader(
                "Your data (.npy, .npz or .zip of images)",
                type=["npy", "npz", "zip"],
                key="upload_file",
                on_change=on_upload,
                help=FIELD_DOCS.get("upload"),
            )
            _error_under("upload")
        st.subheader("Model")
        _widget(
            st.selectbox,
            "Variant",
            "variant",
            options=list(BUILDERS),
            format_func=variant_views.variant_label,
        )
        variant_views.draw_controls(st.session_state["variant"])
        _widget(st.number_input, "Hidden units", "hidden", min_value=1, step=1)
        _widget(
            st.selectbox,
            "Sparsity penalty",
            "penalty",
            options=list(get_args(Penalty)),
            format_func=PENALTY_NAMES.get,
        )
        if st.session_state["penalty"] == "topk":
            _widget(st.number_input, "k (active units per sample)", "k", min_value=1, step=1)
        st.subheader("Objective (changes apply live)")
        _widget(st.select_slider, "Target activation ρ", "rho", options=rho_options)
        _widget(st.slider, "Sparsity weight β", "beta", min_value=0.0, max_value=10.0, step=0.1)
        _widget(st.number_input, "Weight decay λ", "weight_decay", step=1e-4, format="%.5f")
        st.subheader("Optimisation")
        _widget(st.selectbox, "Optimizer", "optimizer", options=list(get_args(Optimizer)))
        _widget(st.number_input, "Learning rate (live)", "lr", step=1e-3, format="%.4f")
        _widget(st.number_input, "Batch size (0 = all data)", "batch_size", min_value=0, step=32)
        _widget(st.number_input, "Training length (steps)", "steps", min_value=1, step=100)
        _widget(st.number_input, "Seed", "seed", step=1)
        st.caption("Changing anything outside *Objective* and the learning rate builds a new model.")


def _valid_float(value) -> set[float]:
    return {float(value)} if isinstance(value, int | float) else set()


# ----- buttons, progress, views -----------------------------------------------------------------------------
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
    """The model as a zip of the folder export.save writes."""
    from sae_core import export

    snap = job.latest()
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        out = export.save(job.trainer.model, job.config, tmp, snap.metrics, image_shape=snap.image_shape)
        for path in sorted(Path(out).iterdir()):
            zf.write(path, path.name)
    return buf.getvalue()


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
    with right:
        draw_objective()
        st.plotly_chart(figures.rho_hat_histogram(snap), key="rho_hat_chart")
    # Lazy tabs: only the open tab's chart is built on each refresh (half the work of drawing all five).
    tabs = st.tabs(list(TAB_CHARTS), key="view_tab", on_change="rerun")
    for tab, (make_figure, key) in zip(tabs, TAB_CHARTS.values(), strict=True):
        if tab.open:
            with tab:
                if make_figure is figures.loss_figure:
                    log_y = st.toggle("Log-scale loss", key="loss_log_y", value=True)
                    st.plotly_chart(figures.loss_figure(snap, log_y=log_y), key=key)
                else:
                    st.plotly_chart(make_figure(snap), key=key)


# Tab label -> (figure function, chart key).
TAB_CHARTS = {
    "Loss curves": (figures.loss_figure, "loss_chart"),
    "Activation values": (figures.activation_histogram, "activation_chart"),
    "Unit density": (figures.density_histogram, "density_chart"),
    "Reconstructions": (figures.reconstructions_figure, "recon_chart"),
    "KL per unit": (figures.kl_curve_figure, "kl_chart"),
}


def draw_objective() -> None:
    cfg = common.current_config()
    with st.container(border=True):
        st.latex(formulas.objective_latex(cfg))
        if cfg.model.penalty == "kl" and cfg.model.variant not in variant_views.NO_PENALTY:
            st.latex(formulas.kl_latex(cfg.model.rho))


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


# ----- the page -------------------------------------------------------------------------------------------
def live_views_fragment(job: TrainingJob):
    @st.fragment(run_every=REFRESH_S if job.running else None)
    def live_views() -> None:
        job = common.current_job()
        if job is None:
            return
        snap = job.latest()
        running = job.running
        draw_progress(snap, running)
        draw_metrics(snap)
        draw_views(snap)
        variant_views.draw_views(snap, job)
        if st.session_state.get(WAS_RUNNING) and not running:
            st.session_state[WAS_RUNNING] = False
            st.rerun()  # the run ended on its own: redraw the buttons (and stop this timer)

    return live_views


def main() -> None:
    st.title("Train a sparse autoencoder")
    draw_controls()
    notice_box = st.empty()  # filled at the end: building the job may add a notice
    try:
        _main_body()
    finally:
        notice = st.session_state.pop(common.NOTICE, None)
        if notice:
            notice_box.info(notice, icon=":material/info:")


def _main_body() -> None:
    cfg = common.current_config()
    common.write_query_params(cfg)
    if cfg.data.dataset == "upload" and not cfg.data.upload:
        st.info("Upload a .npy, .npz or .zip of images in the sidebar to train on your own data.")
        return
    try:
        job = common.sync_job(cfg)
    except (data.DataUnavailableError, data.UploadError, ValueError) as err:
        ok, where = data.availability(cfg.data.dataset) if cfg.data.dataset in data.DATASETS else (False, "")
        st.error(f"Cannot build this run: {err}", icon=":material/cloud_off:")
        if not ok:
            st.caption(f"{cfg.data.dataset}: {where}")
        draw_previous()
        return
    draw_buttons(job)
    busy = st.session_state.pop(BUSY, None)
    if busy:
        st.warning(busy, icon=":material/hourglass_top:")
    st.session_state[WAS_RUNNING] = job.running
    live_views_fragment(job)()
    draw_previous()


main()
