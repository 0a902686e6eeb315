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


def _slots(at: AppTest) -> dict[str, tuple[str, str] | None]:
    """Slot key -> (element id, figure spec) of the filter chart's two slots; None for an empty slot."""
    charts = {c.proto.id.split("-", 2)[-1]: c.proto for c in at.get("plotly_chart")}
    return {key: (charts[key].id, charts[key].spec) if key in charts else None for key in SLOTS}


def test_a_fresh_page_draws_each_chart_once_and_leaves_its_second_slot_empty(at):
    slots = _slots(at)
    front = SLOTS[at.session_state[live_charts.FRAME] % 2]
    assert slots[front] is not None
    assert slots[SLOTS[1 - SLOTS.index(front)]] is None
    charts = [c.proto.id.split("-", 2)[-1].removesuffix(live_charts.BACK) for c in at.get("plotly_chart")]
    assert "rho_hat_chart" in charts and len(charts) == len(set(charts))  # every live chart: one plot


def test_each_redraw_changes_only_the_slot_it_brings_to_the_front(at):
    assert not at.exception
    before = _slots(at)
    for _ in range(3):
        at.button(key="step").click().run()  # one optimisation step: new weights, a new filter figure
        assert not at.exception
        now = _slots(at)
        front = SLOTS[at.session_state[live_charts.FRAME] % 2]
        back = SLOTS[1 - SLOTS.index(front)]
        assert now[back] is not None and now[back] == before[back]  # the browser keeps that plot as it is
        assert now[front] != before[front]  # a new figure (the first time, in the empty slot)
        before = now


def test_the_back_slot_holds_the_figure_the_front_one_showed_last(at):
    at.button(key="step").click().run()
    previous = _slots(at)[SLOTS[at.session_state[live_charts.FRAME] % 2]]
    at.button(key="step").click().run()
    back = SLOTS[1 - at.session_state[live_charts.FRAME] % 2]
    assert _slots(at)[back] == previous


def test_presentation_mode_drops_the_title_and_enlarges_chart_text(at):
    assert [t.value for t in at.title] == ["Train a sparse autoencoder"]
    at.toggle(key=presentation.KEY).set_value(True).run()
    assert not at.exception
    assert list(at.title) == []
    front = SLOTS[at.session_state[live_charts.FRAME] % 2]
    layout = json.loads(_slots(at)[front][1])["layout"]
    assert layout["font"]["size"] == presentation.FONT
    assert layout["xaxis"]["tickfont"]["size"] == presentation.FONT
    assert layout["height"] == presentation.FILTERS_HEIGHT
    at.toggle(key=presentation.KEY).set_value(False).run()
    assert [t.value for t in at.title] == ["Train a sparse autoencoder"]
