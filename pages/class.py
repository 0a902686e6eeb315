"""Class page: a teacher starts a class and gets two links; students join with a nickname.

`/class` offers both forms. `/class?code=ABC123` is the students' link: the join form with the code filled
in. `/class?code=ABC123&teacher=TOKEN` is the teacher's link: the dashboard of every student's run
(pages/class_dashboard.py), which opens only with the class's own token. A joined student trains on the
Train page as usual; its sidebar says which class they are in (pages/class_student.py).
"""

from __future__ import annotations

import streamlit as st

from pages import class_dashboard, class_state, navigation_guard
from sae_core.serve import classes

navigation_guard.leave_old_multipage_mode()

TRAIN_PAGE = "pages/train.py"


def main() -> None:
    code = st.query_params.get(class_state.CODE)
    token = st.query_params.get(class_state.TEACHER)
    if token is not None:  # without the token a teacher's link is a student's: the join form
        class_dashboard.draw(code or "", token)
        return
    st.title("Class")
    if code:
        draw_join(code)
        return
    st.caption(
        "Run a lecture as one experiment: every student trains their own model, and the teacher's "
        "dashboard shows all the runs at once."
    )
    left, right = st.columns(2, gap="large")
    with left:
        draw_join("")
    with right:
        draw_create()


def draw_create() -> None:
    with st.container(border=True):
        st.subheader("Start a class")
        st.caption(
            "You get a link for the students and one for you. Keep yours to yourself: whoever has it "
            "sees the dashboard and can end the class."
        )
        with st.form("create_class", border=False):
            title = st.text_input("Title", placeholder="Sparse autoencoders, lecture 4", max_chars=60)
            minutes = st.number_input(
                "Ends after (minutes)",
                min_value=classes.MIN_MINUTES,
                max_value=classes.MAX_MINUTES,
                value=classes.DEFAULT_MINUTES,
                step=10,
                help="The class closes by itself after this; you can end it earlier from the dashboard.",
            )
            if not st.form_submit_button("Start the class", type="primary"):
                return
    try:
        info, token = class_state.store().create_class(title, minutes=float(minutes))
    except classes.ClassError as err:
        st.error(str(err), icon=":material/block:")
        return
    st.query_params.from_dict({class_state.CODE: info.code, class_state.TEACHER: token})
    st.rerun()


def draw_join(code: str) -> None:
    place = class_state.membership()
    with st.container(border=True):
        st.subheader("Join a class")
        if place is not None and (not code or classes.normal_code(code) == place[0]):
            st.success(
                f"You are in class **{place[0]}** as **{class_state.escape(place[2])}**. Your teacher "
                "sees your run on the Train page.",
                icon=":material/school:",
            )
            cols = st.columns(2)
            if cols[0].button("Go to Train", type="primary", key="class_go_train", width="stretch"):
                st.switch_page(TRAIN_PAGE)
            cols[1].button("Leave the class", key="class_leave", on_click=class_state.leave, width="stretch")
            return
        with st.form("join_class", border=False):
            typed = st.text_input("Class code", value=code, max_chars=12, placeholder="ABC123")
            nickname = st.text_input(
                "Your nickname",
                max_chars=20,
                help=f"What your teacher sees: {classes.NICKNAME_RULE}.",
            )
            if not st.form_submit_button("Join", type="primary"):
                return
    try:
        class_state.join(typed, nickname)
    except classes.ClassError as err:
        st.error(str(err), icon=":material/block:")
        return
    st.switch_page(TRAIN_PAGE)


main()
