"""Charts that redraw in place: a live view refreshes without a blank or a faded frame.

Not a page itself. Why it exists (Streamlit 1.67, read from its Python and frontend code):

* `st.plotly_chart` hashes the whole figure into the element id (`compute_and_register_element_id(...,
  plotly_spec=...)`), and the browser mounts the chart under that id (`<PlotlyChart key={element.id}>`).
  A figure with new numbers is therefore a new React component: the old plot is removed at once, and the
  new one starts unmeasured (width -1 from `useResizeObserver`, drawn with `visibility: hidden`) until a
  post-paint effect measures it and Plotly draws it. Every refresh paints one or more empty frames, more
  of them the busier the machine. No public option keeps the element when the data change.
* An element that is still "stale" half a second into a rerun fades (`opacity` with a `1s ease-in 0.5s`
  transition on `[data-stale=true]`), so a view that takes that long to redraw pulses grey.

So each live chart is double-buffered: two slots stacked in one grid cell. A redraw puts the new figure
in the slot at the back, sends the other slot's figure again unchanged (same spec, same id: the browser
keeps that plot as it is) and then flips which slot is in front through a marker element that `STYLE`
reads. While the new plot mounts it is invisible and the previous picture behind it shows through; once
drawn it covers it. `STYLE` also turns the stale fade off inside the live views (`LIVE_VIEWS`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

LIVE_VIEWS = "live_views"
"""Key of the container around the views that refresh while training (pages/train.py)."""
STACK, BACK, FRONT = "__stack", "__back", "__front"
"""Key suffixes: the stack container, the second slot, the marker naming the slot in front (0 or 1)."""
FRAME = "live_charts_frame"
"""Session-state counter of live redraws (`new_frame`): tells a chart drawn in the last one from one
that comes back (a tab opened again), whose back slot holds an old picture."""
_STATE = "live_charts:"
_SELECTION = "__selection"

STYLE = f"""
[class*="st-key-"][class*="{STACK}"] {{ display: grid !important; grid-template-columns: minmax(0, 1fr); }}
[class*="st-key-"][class*="{STACK}"] > * {{ grid-area: 1 / 1; }}
[class*="st-key-"][class*="{STACK}"] > :has(> [class*="{FRONT}"]) {{ display: none !important; }}
[class*="{STACK}"]:has(> * > [class*="{FRONT}0"]) > :not([class*="{BACK}"]),
[class*="{STACK}"]:has(> * > [class*="{FRONT}1"]) > [class*="{BACK}"] {{ z-index: 1; }}
.st-key-{LIVE_VIEWS} [data-stale="true"],
.st-key-{LIVE_VIEWS} [role="tablist"] {{ opacity: 1 !important; transition: none !important; }}
"""
"""CSS for the page to inject once: slots stacked, the marked one in front, no stale fade."""


def new_frame() -> None:
    """Call once at the start of each redraw of the live views."""
    st.session_state[FRAME] = st.session_state.get(FRAME, 0) + 1


def plotly_chart(
    figure: Any, key: str, on_select: str | Callable[[], None] = "ignore", **kwargs: Any
) -> None:
    """`st.plotly_chart(figure, key=key, ...)`, double-buffered so that a redraw never blanks the chart.

    The slot keys are `key` and `key + BACK`; a callable `on_select` is called after `selection(key)`
    has been set to the selection of the slot that was clicked.
    """
    frame = st.session_state.get(FRAME, 0)
    state = st.session_state.get(_STATE + key)
    if state is None or state["frame"] < frame - 1:  # first drawn, or back after a gap: both show it
        figures, front = [figure, figure], 0
    else:
        front = 1 - state["front"]
        figures = list(state["figures"])
        figures[front] = figure
    st.session_state[_STATE + key] = {"figures": figures, "front": front, "frame": frame}
    with st.container(key=key + STACK, gap=None):
        for figure_in_slot, slot_key in zip(figures, (key, key + BACK), strict=True):
            select = _on_select(key, slot_key, on_select) if callable(on_select) else on_select
            st.plotly_chart(figure_in_slot, key=slot_key, on_select=select, **kwargs)
        with st.container(key=f"{key}{FRONT}{front}"):  # the marker STYLE reads (not displayed)
            st.html("<span></span>")  # an empty container is not put in the page at all


def selection(key: str) -> Any:
    """The selection state of the slot of chart `key` that was last clicked (None before a click)."""
    return st.session_state.get(key + _SELECTION)


def _on_select(key: str, slot_key: str, callback: Callable[[], None]) -> Callable[[], None]:
    def on_select() -> None:
        st.session_state[key + _SELECTION] = st.session_state.get(slot_key)
        callback()

    return on_select
