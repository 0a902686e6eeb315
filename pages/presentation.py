"""The Train page on a projector: nothing clipped at 1280×720, and a presentation mode for the class.

Not a page itself. `PAGE_STYLE` (always on) lets metric labels wrap instead of ending in "…" and scales
the objective's formulas to the width of their box. Presentation mode (a toggle at the top of the
sidebar) fits the live controls, the buttons, the filters and the ρ̂ histogram on one 1280×720 screen:
ρ and β move to the top of the sidebar, the page title and the filter switch's label go, the space around
the page shrinks, and chart text grows so that it reads from the back of a room.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

KEY = "presentation"
ON = "presentation_on"
"""The mode, remembered under a key of our own: Streamlit drops a widget's state on a page without it."""
OBJECTIVE_BOX = "objective_box"
"""Key of the bordered container of the objective's formulas (pages/train_views.py)."""

FILTERS_HEIGHT = 380
"""Pixels of the filter montage in presentation mode: what is left of 720 under the buttons and numbers."""
RIGHT_HEIGHT = FILTERS_HEIGHT + 48
"""The ρ̂ histogram beside it: as tall as the filters and their switch together."""
FONT = 16
"""Chart text in presentation mode (Streamlit's chart theme uses 12-14 px)."""
TITLE_FONT = 18

PAGE_STYLE = f"""
[data-testid="stMetric"] {{ container-type: inline-size; }}
[data-testid="stMetricLabel"] div, [data-testid="stMetricLabel"] p {{
    white-space: normal !important; overflow: visible !important; text-overflow: clip !important;
    overflow-wrap: normal !important; word-break: normal !important;
}}
[data-testid="stMetricLabel"] {{ height: auto !important; }}
[data-testid="stMetricLabel"] p {{ font-size: clamp(0.75rem, 11cqi, 0.875rem) !important; }}
[data-testid="stMetricValue"] {{ font-size: clamp(1.25rem, 18cqi, 2.25rem) !important; }}
.st-key-{OBJECTIVE_BOX} {{ container-type: inline-size; }}
.st-key-{OBJECTIVE_BOX} .katex-display > .katex {{ font-size: min(1.21em, 4.6cqi); }}
"""
"""Metric labels wrap rather than end in "…", and a metric's text and a formula's font follow the width
of their box (a formula's 4.6 % of it: the KL formula, the widest, is about 19 em wide; a metric value
"59.5 / 196" is about 5.5 em), so seven metrics and the formulas fit at 1280 px."""

FIRST_SCREEN_STYLE = f"""
[data-testid="stMainBlockContainer"] {{ padding-top: 3.5rem !important; padding-bottom: 3rem !important; }}
[data-testid="stMainBlockContainer"] h1 {{ font-size: 2rem !important; padding: 0 0 0.5rem 0 !important; }}
[data-testid="stSidebarUserContent"] .st-key-{KEY} {{ order: -3; }}
[data-testid="stSidebarUserContent"] [data-testid="stElementContainer"]:has(+ .st-key-rho),
[data-testid="stSidebarUserContent"] .st-key-rho,
[data-testid="stSidebarUserContent"] .st-key-beta {{ order: -2; }}
"""
"""The Train page in either mode: a compact title and the live controls (the objective's heading, ρ, β)
first in the sidebar, so that at 1280×720 ρ, β, the filters and the ρ̂ histogram are on the first screen."""

PRESENTATION_STYLE = """
[data-testid="stMainBlockContainer"] {
    padding-top: 3rem !important; padding-left: 1.5rem !important; padding-right: 1.5rem !important;
}
"""
"""Less room around the page (the title goes too)."""


def is_on() -> bool:
    return bool(st.session_state.get(KEY, st.session_state.get(ON, False)))


def _remember() -> None:
    st.session_state[ON] = st.session_state[KEY]


def draw_toggle() -> None:
    """The mode's toggle, in the sidebar."""
    with st.sidebar:
        st.toggle(
            "Presentation mode",
            key=KEY,
            value=st.session_state.get(ON, False),
            on_change=_remember,
            help="For a projector: ρ and β at the top of the sidebar, the filters and the ρ̂ histogram "
            "side by side on one screen, larger chart text.",
        )


def inject_style(*extra: str) -> None:
    """The page's CSS (with `extra` rules), and presentation mode's when it is on."""
    css = PAGE_STYLE + "".join(extra) + (PRESENTATION_STYLE if is_on() else "")
    st.html(f"<style>{css}</style>")


def enlarge(figure: Any) -> Any:
    """In presentation mode, chart text large enough for the back of a room (the figure, changed)."""
    if not is_on():
        return figure
    axis = {"tickfont": {"size": FONT}, "title": {"font": {"size": FONT}}}
    figure.update_layout(
        font={"size": FONT},
        title_font_size=TITLE_FONT,
        hoverlabel_font_size=FONT,
        legend_font_size=FONT,
        xaxis=axis,
        yaxis=axis,
    )
    for note in figure.layout.annotations:
        note.font.size = max(note.font.size or 0, FONT)
    return figure
