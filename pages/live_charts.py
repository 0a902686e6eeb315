"""Charts that redraw in place: a live view refreshes without a blank or a faded frame.

Not a page itself. Why it exists (Streamlit 1.67, read from its Python and frontend code):

* `st.plotly_chart` hashes the whole figure into the element id (`compute_and_register_element_id(...,
  plotly_spec=...)`), and the browser mounts the chart under that id (`<PlotlyChart key={element.id}>`).
  A figure with new numbers is therefore a new React component: the old plot is removed at once, and the
  new one starts unmeasured (width -1 from `useResizeObserver`, drawn with `visibility: hidden`) until a
  post-paint effect measures it and Plotly draws it. Every refresh paints one or more empty frames, more
  of them the busier the machine. No public option keeps the element when the data change.
* An element that is still "stale" half a second into a rerun fades to opacity 0.33 (a `1s ease-in 0.5s`
  transition on `[data-stale=true]`; the tab bar too), so a view that takes that long to redraw pulses.

So each live chart is double-buffered: two slots stacked in one grid cell. Redraw n puts the new figure
in slot n % 2 and sends the other slot's figure again unchanged (on a chart's first draw that slot is an
empty placeholder) (same spec, same id: the browser keeps
that plot as it is); a marker at the end of the live views (`views()`) then tells `STYLE` to bring slot
n % 2 to the front. While the new plot mounts it is invisible and the previous picture behind it shows
through; once drawn it covers it. One marker serves every chart, because Streamlit drops a session whose
browser falls 500 messages behind (`WEBSOCKET_MAX_SEND_QUEUE_SIZE`): each chart costs three messages a
redraw (its stack and two slots) instead of one. `STYLE` also turns the stale fade off in the views.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import streamlit as st

from sae_core.figures import static as static_figures

LIVE_VIEWS = "live_views"
"""Key of the container around the views that refresh while training (pages/train.py)."""
STACK, BACK, FRONT = "__stack", "__back", "__front"
"""Key suffixes: a chart's stack container and its second slot; the marker naming the slot in front."""
FRAME = "live_charts_frame"
"""Session-state count of redraws of the live views: its parity is the slot in front, and it tells a
chart drawn in the last redraw from one that comes back (a tab opened again) with an old back slot."""
_STATE = "live_charts:"
_SELECTION = "__selection"
_MARKER = LIVE_VIEWS + FRONT

STYLE = f"""
.stVerticalBlock[class*="{STACK}"] {{ display: grid !important; grid-template-columns: minmax(0, 1fr); }}
.stVerticalBlock[class*="{STACK}"] > .stElementContainer {{ grid-area: 1 / 1; will-change: transform; }}
.st-key-{LIVE_VIEWS} > [data-testid="stLayoutWrapper"]:has(> .st-key-{_MARKER}0),
.st-key-{LIVE_VIEWS} > [data-testid="stLayoutWrapper"]:has(> .st-key-{_MARKER}1) {{
    display: none !important;
}}
.st-key-{LIVE_VIEWS}:has(.st-key-{_MARKER}0) .stVerticalBlock[class*="{STACK}"]
    > .stElementContainer:nth-child(1),
.st-key-{LIVE_VIEWS}:has(.st-key-{_MARKER}1) .stVerticalBlock[class*="{STACK}"]
    > .stElementContainer:nth-child(2) {{ z-index: 1; }}
.st-key-{LIVE_VIEWS} .stElementContainer[data-stale="true"],
.st-key-{LIVE_VIEWS} div[role="tablist"] {{ opacity: 1 !important; transition: none !important; }}
"""
"""CSS for the page to inject once: slots stacked, the marked one in front, no stale fade. Each rule ends in
a class or tag (not a bare `[class*=…]`), so the browser does not test it against every SVG node of a plot."""


@contextmanager
def views() -> Iterator[None]:
    """The container to draw one redraw of the live views in; `plotly_chart` works only inside it."""
    frame = st.session_state[FRAME] = st.session_state.get(FRAME, 0) + 1
    with st.container(key=LIVE_VIEWS):
        yield
        # Last, so that a chart's new slot is in the page before it is brought to the front. An empty
        # container is left out of the page unless it has a fixed height.
        st.container(key=f"{_MARKER}{frame % 2}", height=1, border=False)


def plotly_chart(
    figure: Any,
    key: str,
    on_select: str | Callable[[], None] = "ignore",
    static: bool = False,
    **kwargs: Any,
) -> None:
    """`st.plotly_chart(figure, key=key, ...)`, double-buffered so that a redraw never blanks the chart.

    The slot keys are `key` and `key + BACK`; a callable `on_select` is called after `selection(key)`
    has been set to the selection of the slot that was clicked. static: draw the figure as plain HTML
    (`figures.static.to_html`: no plotly.js for the browser to load, nothing to hover or click) where it
    can; the next plotly redraw mounts in the other slot, in front of it, so the picture never blanks.
    """
    frame = st.session_state.get(FRAME, 0)
    front = frame % 2
    state = st.session_state.get(_STATE + key)
    if state is None or state["frame"] != frame - 1:
        # First drawn, or back after a gap: only the front slot gets a plot. The other is an empty
        # placeholder until the next redraw fills it (behind the front one, so nothing blanks): a fresh
        # page mounts one plot per chart instead of two, which is most of its time in a busy browser.
        figures = [None, None]
    else:
        figures = list(state["figures"])
    picture = static_figures.to_html(figure) if static else None
    figures[front] = figure if picture is None else StaticPicture(picture)
    st.session_state[_STATE + key] = {"figures": figures, "frame": frame}
    with st.container(key=key + STACK, gap=None):
        for figure_in_slot, slot_key in zip(figures, (key, key + BACK), strict=True):
            if figure_in_slot is None:
                st.empty()
                continue
            if isinstance(figure_in_slot, StaticPicture):
                st.html(figure_in_slot.html)
                continue
            select = _on_select(key, slot_key, on_select) if callable(on_select) else on_select
            st.plotly_chart(figure_in_slot, key=slot_key, on_select=select, **kwargs)


@dataclass(frozen=True)
class StaticPicture:
    """A slot's figure drawn as HTML (sent again unchanged while it stays behind the plotly one)."""

    html: str


def selection(key: str) -> Any:
    """The selection state of the slot of chart `key` that was last clicked (None before a click)."""
    return st.session_state.get(key + _SELECTION)


def _on_select(key: str, slot_key: str, callback: Callable[[], None]) -> Callable[[], None]:
    def on_select() -> None:
        st.session_state[key + _SELECTION] = st.session_state.get(slot_key)
        callback()

    return on_select
