"""Train page: the controls, the buttons and the live views of one training run.

The run is a `TrainingJob` in st.session_state["job"] (see pages/job_control.py). The sidebar's controls
(pages/train_controls.py) change its settings; the buttons and views (pages/train_views.py) are drawn
from its latest snapshot in a fragment that reruns twice a second while it trains and stays frozen on
the last picture when it does not.
"""

from __future__ import annotations

import streamlit as st

from pages import (
    class_student,
    classroom,
    job_control,
    live_charts,
    navigation_guard,
    notices,
    presentation,
    runs_store,
    session_job,
    settings_state,
    train_controls,
    train_import,
    train_views,
    unit_card,
    url_state,
)
from sae_core.data import datasets as data
from sae_core.serve.jobs import TrainingJob

navigation_guard.leave_old_multipage_mode()

REFRESH_S = 0.5
QUEUED_REFRESH_S = 5.0
"""While a run waits in the queue its pictures do not change. On a real server the page then asks the
server nothing: the queue wakes it when the run starts (TrainingJob.wakes_its_page; a class of 100 whose
98 waiting pages asked every 5 s took the cores from the two who trained). Where nothing can wake it, it
looks again every 5 s."""
WAS_ACTIVE = "job_was_active"
"""(training, queued) at the last full run of the page: a change redraws the buttons too."""


def live_views_fragment(job: TrainingJob):
    waiting = job.status == "queued" and not job.wakes_its_page
    every = REFRESH_S if job.running else QUEUED_REFRESH_S if waiting else None

    @st.fragment(run_every=every)
    def live_views() -> None:
        job = session_job.current_job()
        if job is None:
            return
        snap = job.latest()
        running = job.running
        with live_charts.views():  # charts redrawn without blank or faded frames
            train_views.draw_progress(snap, running, job.queue_place(), job.eta_seconds())
            train_views.draw_metrics(snap)
            train_views.draw_views(snap, running)
            train_views.draw_run_messages(snap, running, job.queue_place())
            train_views.draw_variant_views(snap)
        if st.session_state.get(WAS_ACTIVE, (False, False)) != _active(job):
            # The run ended on its own, or its turn in the queue came: redraw the buttons (and the timer).
            st.rerun()
        unit_card.draw(job)  # only a note while training: the card runs the model, so it waits for a pause

    return live_views


def _active(job: TrainingJob) -> tuple[bool, bool]:
    return job.running, job.status == "queued"


def main() -> None:
    presentation.inject_style(live_charts.STYLE, presentation.FIRST_SCREEN_STYLE)
    if not presentation.is_on():  # on a projector the screen's height goes to the pictures
        st.title("Train a sparse autoencoder")
    presentation.draw_toggle()
    classroom.draw_note()
    class_student.draw()  # a joined student: the class, the teacher's next setting
    train_import.draw()  # the top of the sidebar: a saved model instead of the settings below
    train_controls.draw_controls()
    classroom.draw_share()
    try:
        _main_body()
    finally:  # under the views (above them it would push them off a projector's screen), and a toast
        notice = st.session_state.pop(notices.NOTICE, None)
        if notice:
            st.info(notice, icon=":material/info:")
            st.toast(notice, icon=":material/info:")


def _main_body() -> None:
    cfg = settings_state.current_config()
    url_state.write_query_params(cfg)
    if cfg.data.dataset == "upload" and not cfg.data.upload:
        st.info("Upload a .npy, .npz or .zip of images in the sidebar to train on your own data.")
        return
    try:
        job = job_control.sync_job(cfg)
    except (data.DataUnavailableError, data.UploadError, ValueError) as err:
        ok, where = data.availability(cfg.data.dataset) if cfg.data.dataset in data.DATASETS else (False, "")
        st.error(f"Cannot build this run: {err}", icon=":material/cloud_off:")
        if not ok:
            st.caption(f"{cfg.data.dataset}: {where}")
        train_views.draw_previous()
        return
    runs_store.keep_ended_run(job)  # finished or stopped: kept for the Runs page
    runs_store.announce_pruned()  # runs of yours another browser's keep deleted since you last looked
    train_views.draw_buttons(job)
    busy = st.session_state.pop(train_views.BUSY, None)
    if busy:  # a toast: a message above the views would push them off a projector's screen
        st.toast(busy, icon=":material/hourglass_top:")
    st.session_state[WAS_ACTIVE] = _active(job)
    live_views_fragment(job)()
    train_views.draw_length_reached(job)
    if busy:
        st.warning(busy, icon=":material/hourglass_top:")
    train_views.draw_previous()


main()
