"""A joined student's side of a class, in the Train page's sidebar: the class, the teacher's next setting
(one click applies it), the run the teacher put on the projector, and leaving.

Not a page itself. A small fragment reruns every PUBLISH_S seconds on its own: it publishes this session's
latest snapshot to the class store (only when there is a new one; a heartbeat otherwise, so the teacher
sees who is there) and reads what the teacher changed. The training thread never touches the store.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import streamlit as st

from pages import class_state, classroom, session_job, settings_state, url_state
from sae_core.serve import class_summary

PUBLISH_S = 3.0
"""Seconds between two publications of a student's run (and looks at what the teacher sent)."""
PUBLISHED = "class_published"
"""st.session_state: id of the last snapshot published, so an unchanged run is not sent again."""
APPLIED = "class_applied"
"""st.session_state: the time of the teacher's setting this student applied (or set aside) last."""

STYLE = (
    '[data-testid="stSidebarUserContent"] [data-testid="stLayoutWrapper"]:has(.st-key-class_student)'
    " { order: -4; }"
)
"""The class box first in the sidebar, above the live controls (pages/presentation.py orders those -3 and
-2): what the teacher sends is the first thing a student sees. The rule is on the wrappers around it (the
fragment's block among them), since only the sidebar's direct children take part in its order."""


def draw() -> None:
    """The class box at the top of the Train page's sidebar, when this session has joined a class."""
    if class_state.membership() is None:
        return
    st.html(f"<style>{STYLE}</style>")
    with st.sidebar:
        student_box()


@st.fragment(run_every=PUBLISH_S)
def student_box() -> None:
    place = class_state.membership()
    if place is None:
        return
    code, member, nickname = place
    store = class_state.store()
    info = store.info(code)
    if info is None or not info.is_open() or not store.is_member(member):
        st.session_state.pop(class_state.MEMBER, None)
        st.info("Your class has ended: your run is yours alone again.", icon=":material/school:")
        return
    publish(member)
    with st.container(border=True, key="class_student"):
        st.markdown(
            f":material/school: Class **{code}** · you are **{class_state.escape(nickname)}**; "
            "your teacher sees this run."
        )
        if info.pushed and st.session_state.get(APPLIED) != info.pushed_at:
            draw_offer(info.pushed, info.pushed_at)
        if info.spotlight and info.spotlight != member:
            draw_spotlight(store.student(info.spotlight))
        st.button("Leave the class", key="class_student_leave", on_click=class_state.leave)


def publish(member: str) -> None:
    """Send the run's latest snapshot when it is new since the last time; else only say "still here"."""
    job = session_job.current_job()
    snap = None if job is None else job.latest()
    # What was sent, by value: an id() of a snapshot can come back for a later one once the first is freed,
    # and the run's last snapshot was then never sent (its card stuck at an earlier step).
    sent = None if snap is None else (id(job), snap.step, snap.status, job.running)
    if snap is None or st.session_state.get(PUBLISHED) == sent:
        class_state.store().publish(member, None, None)
        return
    summary = class_summary.summarize(snap)
    if job.running:  # the snapshot says how it was made; the job says whether it trains now
        summary = dataclasses.replace(summary, status="running")
    class_state.store().publish(member, summary, class_summary.montage_png(snap))
    st.session_state[PUBLISHED] = sent


def draw_offer(pushed: dict[str, Any], pushed_at: float | None) -> None:
    st.info(f"Your teacher suggests {class_state.escape(pushed['label'])}.", icon=":material/campaign:")
    apply_col, later_col = st.columns(2)
    if apply_col.button("Apply", key="class_apply", type="primary", width="stretch"):
        apply(pushed["query"])
        st.session_state[APPLIED] = pushed_at
        st.rerun()  # the whole page: the controls and the run follow the new settings
    if later_col.button("Not now", key="class_not_now", width="stretch"):
        st.session_state[APPLIED] = pushed_at
        st.rerun(scope="fragment")


def apply(query: dict[str, str]) -> None:
    """The teacher's setting, as if the student had opened it as a link in a new tab: from the start
    settings, a preset first when named, then the link's values; a link's classroom mode comes with it."""
    params = dict(query)
    settings_state.replace_settings(settings_state.base_settings())
    if classroom.PARAM not in params:
        classroom.leave()
    url_state.apply_query(params)


def draw_spotlight(student) -> None:
    if student is None or student.run is None:
        return
    with st.expander(
        f"On the projector: {class_state.escape(student.nickname)}", icon=":material/co_present:"
    ):
        if student.montage:
            st.image(student.montage, width="stretch")
        run = student.run
        caption = f"{run.penalty} · step {run.step:,}"
        if run.rho is not None:
            caption += f" · ρ {run.rho:g}"
        if run.beta is not None:
            caption += f" · β {run.beta:g}"
        st.caption(caption)
