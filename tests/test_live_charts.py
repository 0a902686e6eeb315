"""The Train page's double-buffered charts and presentation mode, through AppTest (no browser).

What keeps a redraw from blanking a chart (pages/live_charts.py) is visible in the elements the page
sends: each redraw changes exactly one slot of a chart, the one the redraw brings to the front, and sends
the other with the very same element id, which the browser keeps as it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from apptest_helpers import pin_navigation_mode, stop_jobs
from streamlit.testing.v1 import AppTest

from pages import live_charts, presentation

APP = Path(__file__).resolve().parent.parent / "app.py"
RUN_TIMEOUT = 60  # seconds per script run: the first one imports torch and loads data on 2 shared cores
SLOTS = ("filters_chart", "filters_chart" + live_charts.BACK)


@pytest.fixture
def at(monkeypatch):
    pin_navigation_mode(monkeypatch)
    app = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT)
    app.query_params.update({"dataset": "digits", "hidden": "4", "steps": "100000", "batch_size": "32"})
    app.run()
    app.switch_page("pages/train.py").run()
    yield app
    stop_jobs(app)


def _slots(at: AppTest, chart: str = "filters_chart") -> dict[str, tuple[str, str] | None]:
    """Slot key -> what the slot of `chart` holds, in order: ("plot", its element id and figure spec) or
    ("picture", the plain HTML of figures.static); None for an empty slot."""
    stack = next(b for b in _blocks(at._tree) if str(b.proto.id).endswith(chart + live_charts.STACK))
    out = {}
    for key, child in zip((chart, chart + live_charts.BACK), stack.children.values(), strict=True):
        kind = getattr(child, "type", None)
        if kind == "plotly_chart":
            out[key] = (child.proto.id, child.proto.spec)
        elif kind == "html":
            out[key] = ("picture", child.proto.body)
        else:
            out[key] = None
    return out


def _blocks(node):
    for child in getattr(node, "children", {}).values():
        if type(child).__name__ == "Block":
            yield child
        yield from _blocks(child)


def test_a_fresh_page_draws_each_picture_once_without_plotly(at):
    """Before the first step the live views are plain pictures (figures.static): no plotly chart at all,
    one picture per live chart, in the front slot, the other slot empty."""
    assert at.get("plotly_chart") == []
    front = at.session_state[live_charts.FRAME] % 2
    for chart, has_image in (("filters_chart", True), ("data_chart", True), ("rho_hat_chart", False)):
        slots = list(_slots(at, chart).values())
        assert slots[front][0] == "picture" and ("<img" in slots[front][1]) == has_image, chart
        assert slots[1 - front] is None


def test_each_redraw_changes_only_the_slot_it_brings_to_the_front(at):
    assert not at.exception
    before = _slots(at)
    for i in range(3):
        at.button(key="step").click().run()  # one optimisation step: new weights, a new filter figure
        assert not at.exception
        now = _slots(at)
        front = SLOTS[at.session_state[live_charts.FRAME] % 2]
        back = SLOTS[1 - SLOTS.index(front)]
        assert now[back] is not None and now[back] == before[back]  # the browser keeps that one as it is
        assert now[back][0] == ("picture" if i == 0 else now[back][0])  # the first plot covers the picture
        assert now[front] != before[front] and now[front][0] != "picture"  # paused: a plot to click
        before = now


def test_the_back_slot_holds_the_figure_the_front_one_showed_last(at):
    at.button(key="step").click().run()
    previous = _slots(at)[SLOTS[at.session_state[live_charts.FRAME] % 2]]
    at.button(key="step").click().run()
    back = SLOTS[1 - at.session_state[live_charts.FRAME] % 2]
    assert _slots(at)[back] == previous


def test_while_training_the_pictures_are_plain_and_paused_they_are_plots(at):
    at.button(key="train").click().run()
    assert not at.exception and at.session_state["job"].running
    front = SLOTS[at.session_state[live_charts.FRAME] % 2]
    assert _slots(at)[front][0] == "picture"
    at.button(key="pause").click().run()
    assert not at.exception and not at.session_state["job"].running
    front = SLOTS[at.session_state[live_charts.FRAME] % 2]
    assert _slots(at)[front][0] != "picture"


def test_presentation_mode_drops_the_title_and_enlarges_chart_text(at):
    assert [t.value for t in at.title] == ["Train a sparse autoencoder"]
    at.toggle(key=presentation.KEY).set_value(True).run()
    assert not at.exception
    assert list(at.title) == []
    front = SLOTS[at.session_state[live_charts.FRAME] % 2]
    picture = _slots(at)[front][1]  # before the first step: the plain picture, its text enlarged too
    assert (
        f"height:{presentation.FILTERS_HEIGHT}px" in picture and f"font-size:{presentation.FONT}px" in picture
    )
    at.button(key="step").click().run()
    front = SLOTS[at.session_state[live_charts.FRAME] % 2]
    layout = json.loads(_slots(at)[front][1])["layout"]
    assert layout["font"]["size"] == presentation.FONT
    assert layout["xaxis"]["tickfont"]["size"] == presentation.FONT
    assert layout["height"] == presentation.FILTERS_HEIGHT
    at.toggle(key=presentation.KEY).set_value(False).run()
    assert [t.value for t in at.title] == ["Train a sparse autoencoder"]
