"""Explore page: a ρ × β grid of runs (optionally × hidden units, λ or seed) trained together, compared.

The grid is one background job (pages/explore_views.py, sae_core.serve.sweep_job): every cell trains in one
batched computation, and the views redraw once a second from its latest snapshot while it trains. A click
on a cell picks it; "Open on Train" makes it the session's run on the Train page, weights included.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from pages import (
    explore_estimate,
    explore_settings,
    explore_views,
    live_charts,
    navigation_guard,
    presentation,
)
from pages.explore_views import current_job
from sae_core.serve.sweep_job import RemoteSweepJob, SweepJob

navigation_guard.leave_old_multipage_mode()

WAS_ACTIVE = "sweep_was_active"
SWITCH = "sweep_switch"
TRAIN_PAGE = "pages/train.py"


def _switch_if_opened() -> None:
    """A cell was opened (explore_views.on_open): show it on the Train page."""
    if st.session_state.pop(SWITCH, False):
        st.switch_page(TRAIN_PAGE)


def views_fragment(job: SweepJob | RemoteSweepJob) -> Callable[[], None]:
    """The live views, redrawn every REFRESH_S while the sweep trains; frozen while it waits in the queue
    (the queue wakes the page when it starts: see pages/train.py's QUEUED_REFRESH_S) or has ended."""
    polls = job.running or (job.active and not job.wakes_its_page)

    @st.fragment(run_every=explore_views.REFRESH_S if polls else None)
    def views() -> None:
        _switch_if_opened()
        job = current_job()
        if job is None:
            return
        snap = job.latest()
        explore_estimate.record(snap)
        with live_charts.views():
            explore_views.draw_progress(job, snap)
            explore_views.draw_views(job, snap)
        explore_views.draw_cell(job, snap)
        explore_views.draw_probe(job, snap)
        if st.session_state.get(WAS_ACTIVE) != job.active:  # it ended or started on its own: redraw buttons
            st.rerun()

    return views


def main() -> None:
    presentation.inject_style(live_charts.STYLE)
    _switch_if_opened()
    st.title("Explore ρ and β")
    st.write(
        "Train a whole grid of sparse autoencoders at once, one per pair of target activation ρ and penalty "
        "weight β, and see how sparsity trades against reconstruction. Every cell trains in one batched "
        "computation; pick a cell to open it on the Train page."
    )
    job = current_job()
    with st.expander("Sweep settings", expanded=job is None):
        explore_settings.draw_settings()
    error = st.session_state.pop(explore_views.ERROR, None)
    if error:
        st.error(error, icon=":material/error:")
    if job is None:
        try:
            when = explore_estimate.estimate(explore_settings.spec_from_form())
        except ValueError:  # the form holds a bad value: its own message says which when Train is pressed
            when = ""
        st.info(f"Set the grid above and press **Train sweep**; the views fill in while it trains. {when}")
        return
    st.caption(f"This sweep: {explore_views.base_summary(job.spec.base)}.")
    explore_views.draw_buttons(job)
    st.session_state[WAS_ACTIVE] = job.active
    views_fragment(job)()


main()
