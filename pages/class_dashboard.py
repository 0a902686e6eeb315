"""The teacher's dashboard of a class: every student's run, live, from the class store.

Not a page itself (pages/class.py opens it for the teacher's link). Everything is drawn from the
students' published summaries (sae_core.serve.classes), never from a model, so students may train on any
app server. The live part is one fragment that reruns every REFRESH_S seconds: the class scatter
(double-buffered, pages/live_charts.py), the spotlight and one card per student with stable keys, so a
refresh redraws in place instead of blanking the page.
"""

from __future__ import annotations

import math
import time

import streamlit as st

from pages import class_push, class_state, live_charts, presentation
from sae_core.figures import classroom as class_figures
from sae_core.serve.class_summary import MONTAGE_UNITS, RunSummary
from sae_core.serve.classes import AWAY_S, ClassError, ClassInfo, Student

REFRESH_S = 3.0
"""Seconds between two refreshes of the dashboard (students publish about as often)."""
CARDS_PER_ROW = 4
"""Cards in a row: at 1280 px each is about 200 px wide, its filters beside its numbers."""
PICKED = "class_picked"
"""st.session_state: the member id of the student whose dot was clicked last."""
PROJECTOR = "class_projector"
ERROR = "class_error"
"""st.session_state: a refusal of the store's to say at the next refresh (a button's callback cannot draw)."""
SORT, DESCENDING, X_AXIS = "class_sort", "class_sort_descending", "class_x_axis"
SORTS = {
    "nickname": ("Nickname", lambda s: s.nickname.lower()),
    "step": ("Step", lambda r: r.step),
    "rho": ("ρ", lambda r: r.rho),
    "beta": ("β", lambda r: r.beta),
    "penalty": ("Penalty", lambda r: r.penalty),
    "found": ("Bars found", lambda r: r.found),
    "dead": ("Dead units", lambda r: r.dead),
    "l0": ("L0", lambda r: r.l0),
    "fve": ("Variance explained", lambda r: r.fve),
    "recon_error": ("Reconstruction error", lambda r: r.recon_error),
    "mean_rho_hat": ("Mean ρ̂", lambda r: r.mean_rho_hat),
}
"""Sort key -> (label, what to sort by: of the Student for the nickname, else of its run)."""
STYLE = """
.st-key-class_live img { image-rendering: pixelated; }
.st-key-class_live [data-testid="stImage"] { background: white; }
"""
"""Filters are a few pixels each: scaled up without smoothing, as in the Train page's filter view."""


def draw(code: str, token: str | None) -> None:
    store = class_state.store()
    info = store.info(code) if code else None
    if info is None or not store.is_teacher(code, token):
        st.title("Class dashboard")
        st.error(
            "This dashboard opens only with the teacher's own link of the class: its teacher token is "
            "missing or wrong. Students join from the class's join link.",
            icon=":material/lock:",
        )
        st.page_link(class_state.PAGE, label="Join or start a class", icon=":material/school:")
        return
    presentation.inject_style(live_charts.STYLE, STYLE)
    draw_header(info, token)
    if info.is_open():
        class_push.draw(info, token)
    live_fragment(info.code, token, info.is_open())()


# ----- the header -----------------------------------------------------------------------------------------
def draw_header(info: ClassInfo, token: str) -> None:
    """The class's title, its join code and link, the teacher's own link and End, in two short rows (the
    students' cards should start on a projector's first screen)."""
    title, link, end = st.columns([2.4, 1, 1], vertical_alignment="bottom")
    title.header(f"Class: {class_state.escape(info.title)}", anchor=False)
    with link.popover("Your teacher link", icon=":material/key:", width="stretch"):
        st.caption("Keep it to yourself: it opens this dashboard.")
        st.code(class_state.teacher_link(info.code, token), language=None, wrap_lines=True)
    if not info.is_open():
        st.info("This class has ended: no one can join, and the runs below are the last ones sent.")
        return
    end.button("End the class", key="class_end", on_click=_end, args=(info.code, token), width="stretch")
    code, join = st.columns([1, 3.4], vertical_alignment="center")
    code.markdown(f"Join code **{info.code}**  \n{_time_left(info)}")
    join.code(class_state.student_link(info.code), language=None)


def _time_left(info: ClassInfo) -> str:
    minutes = max(0, round((info.expires - time.time()) / 60))
    return f"ends in {minutes} min" if minutes < 120 else f"ends in {minutes / 60:.1f} h"


def _end(code: str, token: str) -> None:
    class_state.store().end_class(code, token)


# ----- the live part --------------------------------------------------------------------------------------
def live_fragment(code: str, token: str, live: bool):
    @st.fragment(run_every=REFRESH_S if live else None)
    def class_live() -> None:
        store = class_state.store()
        info = store.info(code)
        students = store.students(code)
        refused = st.session_state.pop(ERROR, None)
        if refused:
            st.error(refused, icon=":material/lock:")
        with st.container(key="class_live"), live_charts.views():
            counts, toggle = st.columns([3, 1], vertical_alignment="center")
            with counts:
                draw_counts(students)
            spot = next((s for s in students if s.member == info.spotlight), None)
            projector = toggle.toggle(
                "Spotlight alone",
                key=PROJECTOR,
                disabled=spot is None,
                help="Shows only the student in the spotlight, large, for the room.",
            )
            if spot is not None:
                draw_spotlight(spot, code, token, large=projector)
            if not (projector and spot is not None):
                left, right = st.columns([1.6, 1], gap="large")
                with left:
                    draw_scatter(students)
                with right:
                    key, descending = draw_sort()
                    draw_picked(students, code, token)
                draw_cards(sort_students(students, key, descending), code, token)
        if live and not info.is_open():
            st.rerun()  # the class ended (here or in another tab): stop refreshing

    return class_live


def draw_counts(students: list[Student]) -> None:
    now = time.time()
    runs = [s for s in students if s.run is not None]
    training = sum(1 for s in runs if s.run.status == "running" and not s.away(now))
    away = sum(1 for s in students if s.away(now))
    st.caption(
        f"**{len(students)}** student(s) joined · **{training}** training now · {away} away "
        f"(not heard from for {AWAY_S:.0f} s or more) · refreshed every {REFRESH_S:g} s"
    )


LONG_LABELS = {
    "bars": "bars found",
    "found": "features found",
    "dead": "dead units",
    "FVE": "variance explained",
    "error": "reconstruction error",
    "ρ̂": "mean ρ̂",
}
"""The spotlight has room for the card's numbers' full names."""


def draw_spotlight(student: Student, code: str, token: str, large: bool = False) -> None:
    """One student's run on the projector: the filters large, the numbers in big type (larger still with
    "Spotlight alone", when nothing else is on the screen)."""
    with st.container(border=True, key="class_spotlight"):
        head, clear = st.columns([5, 1], vertical_alignment="center")
        head.subheader(f"In the spotlight: {class_state.escape(student.nickname)}")
        clear.button(
            "Clear", key="class_spot_clear", on_click=_spotlight, args=(code, token, None), width="stretch"
        )
        if student.run is None:
            st.caption("No run yet: the picture comes with the student's first step.")
            return
        picture, numbers = st.columns([1.3, 1] if large else [0.75, 1.25], gap="large")
        if student.montage:
            first = f" (the first {MONTAGE_UNITS} units)" if student.run.hidden > MONTAGE_UNITS else ""
            picture.image(student.montage, width="stretch", caption=f"Encoder filters{first}")
        with numbers:
            st.markdown(settings_line(student.run))
            row = metric_row(student.run)
            for start in range(0, len(row), 3):
                for col, (label, value) in zip(st.columns(3), row[start : start + 3], strict=False):
                    col.metric(LONG_LABELS.get(label, label), value)


def _spotlight(code: str, token: str, member: str | None) -> None:
    try:
        class_state.store().set_spotlight(code, token, member)
    except ClassError as err:  # the token was changed under the page: say so instead of a traceback
        st.session_state[ERROR] = str(err)


def draw_scatter(students: list[Student]) -> None:
    """Reconstruction error against L0 or mean ρ̂, one dot per trained run; a click picks its student."""
    runs = [s for s in students if s.run is not None and s.run.step > 0]
    axis = st.segmented_control(
        "x axis",
        list(class_figures.X_AXES),
        default="l0",
        required=True,
        key=X_AXIS,
        format_func={"l0": "L0", "mean_rho_hat": "Mean ρ̂"}.get,
        label_visibility="collapsed",
    )
    axis = axis or "l0"
    figure = class_figures.class_scatter(
        [s.nickname for s in runs],
        [getattr(s.run, axis) for s in runs],
        [s.run.recon_error for s in runs],
        [s.member for s in runs],
        x_axis=axis,
        colour=[_number(s.run.beta) for s in runs],
        picked=st.session_state.get(PICKED),
    )
    live_charts.plotly_chart(
        figure, key="class_scatter", on_select=_on_pick, selection_mode="points", width="stretch"
    )


def draw_picked(students: list[Student], code: str, token: str) -> None:
    picked = next((s for s in students if s.member == st.session_state.get(PICKED)), None)
    if picked is None:
        st.info(
            "Each dot is one student's run at its latest step: click one to see its card here.",
            icon=":material/ads_click:",
        )
    else:
        draw_card(picked, code, token, key="class_picked_card")


def _on_pick() -> None:
    member = class_figures.picked_id(live_charts.selection("class_scatter"))
    if member is not None:
        st.session_state[PICKED] = member


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


# ----- the cards ------------------------------------------------------------------------------------------
def draw_sort() -> tuple[str, bool]:
    """The cards' order: (a key of SORTS, largest first)."""
    by, order = st.columns([1.4, 1], vertical_alignment="bottom")
    key = by.selectbox("Sort the cards by", list(SORTS), key=SORT, format_func=lambda k: SORTS[k][0])
    descending = order.toggle("Largest first", key=DESCENDING)
    return key or "nickname", descending


def draw_cards(ordered: list[Student], code: str, token: str) -> None:
    for start in range(0, len(ordered), CARDS_PER_ROW):
        for col, student in zip(
            st.columns(CARDS_PER_ROW), ordered[start : start + CARDS_PER_ROW], strict=False
        ):
            with col:
                draw_card(student, code, token, key=f"class_card_{student.member}")


def sort_students(students: list[Student], key: str, descending: bool) -> list[Student]:
    """Students sorted by one of SORTS; those without a run (or without that number) come last."""
    pick = SORTS[key][1]
    if key == "nickname":
        return sorted(students, key=pick, reverse=descending)

    def value(student: Student):
        v = None if student.run is None else pick(student.run)
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else v

    known = [s for s in students if value(s) is not None]
    unknown = [s for s in students if value(s) is None]
    return sorted(known, key=value, reverse=descending) + unknown


def draw_card(student: Student, code: str, token: str, key: str) -> None:
    """One student's card: name and step, filters beside the numbers, the settings under them; compact, so
    two rows of cards fit a 1280×720 screen."""
    run = student.run
    with st.container(border=True, key=key, gap="small"):
        head, spot = st.columns([4, 1], vertical_alignment="center", gap="small")
        away = " · *away*" if student.away() else ""
        step = "" if run is None else f" · step {run.step:,}"
        head.markdown(f"**{class_state.escape(student.nickname)}**{step}{away}")
        spot.button(
            ":material/co_present:",
            key=f"{key}_spot",
            type="tertiary",
            help=f"Put {class_state.escape(student.nickname)}'s run in the spotlight (students see it too)",
            on_click=_spotlight,
            args=(code, token, student.member),
        )
        if run is None:
            st.caption("Joined; no run yet.")
            return
        picture, numbers = st.columns([1, 1.15], gap="small", vertical_alignment="center")
        if student.montage:
            picture.image(student.montage, width="stretch")
        numbers.caption("  \n".join(f"{label} **{value}**" for label, value in metric_row(run)))
        st.caption(settings_line(run))


def settings_line(run: RunSummary) -> str:
    parts = [run.dataset, f"{run.hidden} units", run.penalty]
    if run.rho is not None:
        parts.append(f"ρ {run.rho:g}")
    if run.beta is not None:
        parts.append(f"β {run.beta:g}")
    return " · ".join(parts)


def metric_row(run: RunSummary) -> list[tuple[str, str]]:
    """(label, value) of the card's numbers: bars found (when known), dead units, L0, variance explained,
    reconstruction error and mean ρ̂ (labelled ρ̂: a card has room for short words); "–" before the first
    step or for a number the run lacks."""

    def fmt(value: float, spec: str) -> str:
        return "–" if run.step == 0 or not math.isfinite(value) else format(value, spec)

    rows = []
    if run.found is not None:
        what = "bars" if run.dataset == "bars" else "found"
        rows.append((what, "–" if run.step == 0 else f"{run.found}/{run.found_total}"))
    rows += [
        ("dead", "–" if run.step == 0 else f"{run.dead}/{run.hidden}"),
        ("L0", fmt(run.l0, ".1f")),
        ("FVE", fmt(100 * run.fve, ".0f") + (" %" if run.step and math.isfinite(run.fve) else "")),
        ("error", fmt(run.recon_error, ".3g")),
        ("ρ̂", fmt(run.mean_rho_hat, ".3f")),
    ]
    return rows
