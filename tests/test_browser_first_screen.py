"""The Train page's first screen at projector sizes, in the default mode (presentation mode off).

A lecture on sparsity is about four things: the ρ and β sliders, the filters and the ρ̂ histogram. At
1280×720 and 1366×768 all four must be on the first screen, without scrolling, before a run, while it
trains and after it has finished, when the page says the run was kept and that its length was reached:
those messages go under the views (or in a toast), never above them. Screenshots of the three states
land in artifacts/ for a human to look at.
"""

from __future__ import annotations

import pytest
from browser_helpers import (
    ARTIFACTS,
    BROWSER_TESTS,
    click_button,
    exception_texts,
    filters_signature,
    free_port,
    open_home,
    open_train,
    playwright_sync_api,
    progress,
    streamlit_server,
    wait_until,
    warm_up,
)

from sae_core.store import runs

pytestmark = BROWSER_TESTS
sync_api = playwright_sync_api()

DEADLINE_S = 120
SHORT_RUN = "steps=600"
"""Long enough to be seen training (several seconds), short enough to finish within the test."""
FOUR = {
    "ρ slider": ".st-key-rho",
    "β slider": ".st-key-beta",
    "filters": ".st-key-filters_chart__stack",
    "ρ̂ histogram": ".st-key-rho_hat_chart__stack",
}
BOXES = """selectors => selectors.map(s => {
    const e = document.querySelector(s);
    if (!e) return null;
    const b = e.getBoundingClientRect();
    return [Math.round(b.left), Math.round(b.top), Math.round(b.right), Math.round(b.bottom)];
})"""
SCROLLED = """() => [...document.querySelectorAll('[data-testid="stMain"], [data-testid="stSidebarContent"]')]
    .map(e => e.scrollTop)"""


@pytest.fixture(scope="module")
def app_url(browser, tmp_path_factory):
    env = {runs.ENV_DIR: str(tmp_path_factory.mktemp("runs"))}
    with streamlit_server(DEADLINE_S, free_port(), env) as (url, _):
        warm_up(browser, url, DEADLINE_S)
        yield url


def off_screen(page, size: dict[str, int]) -> dict[str, list[int] | None]:
    """The four elements that are missing or not wholly inside the viewport, with their boxes."""
    boxes = page.evaluate(BOXES, list(FOUR.values()))
    return {
        name: box
        for name, box in zip(FOUR, boxes, strict=True)
        if box is None or box[0] < 0 or box[1] < 0 or box[2] > size["width"] or box[3] > size["height"]
    }


def body_text(page) -> str:
    return page.evaluate("() => document.body.innerText")


@pytest.mark.parametrize(
    "size", [{"width": 1280, "height": 720}, {"width": 1366, "height": 768}], ids=["1280x720", "1366x768"]
)
def test_sliders_filters_and_histogram_stay_on_the_first_screen_before_during_and_after_a_run(
    browser, app_url, size
):
    name = f"{size['width']}x{size['height']}"
    context = browser.new_context(viewport=size)
    page = context.new_page()
    page.set_default_timeout(DEADLINE_S * 1000)
    ARTIFACTS.mkdir(exist_ok=True)
    found = {}
    try:
        open_train(page, app_url, SHORT_RUN, DEADLINE_S)
        wait_until(lambda: filters_signature(page), DEADLINE_S, "the filter chart")
        found["before"] = off_screen(page, size)
        page.screenshot(path=str(ARTIFACTS / f"first-screen-{name}-before.png"))

        click_button(page, "train")
        wait_until(
            lambda: (p := progress(page)) and p.status == "training" and p.step > 0, DEADLINE_S, "training"
        )
        found["during"] = off_screen(page, size)
        page.screenshot(path=str(ARTIFACTS / f"first-screen-{name}-during.png"))

        wait_until(lambda: (p := progress(page)) and p.status == "finished", DEADLINE_S, "the run to end")
        wait_until(lambda: "Kept in your runs" in body_text(page), DEADLINE_S, "the kept-run notice")
        wait_until(lambda: "Training length reached" in body_text(page), DEADLINE_S, "the end caption")
        found["after"] = off_screen(page, size)
        scrolled = page.evaluate(SCROLLED)
        page.screenshot(path=str(ARTIFACTS / f"first-screen-{name}-after.png"))
        errors = exception_texts(page)
    finally:
        context.close()

    assert found == {"before": {}, "during": {}, "after": {}}, f"off the first {name} screen: {found}"
    assert scrolled == [0] * len(scrolled), f"the page or the sidebar had scrolled: {scrolled}"
    assert errors == []


def test_home_shows_the_default_presets_card_on_the_first_screen(browser, app_url):
    size = {"width": 1280, "height": 720}
    context = browser.new_context(viewport=size)
    page = context.new_page()
    try:
        open_home(page, app_url, DEADLINE_S)
        (box,) = page.evaluate(BOXES, [".st-key-preset_bars"])
        page.screenshot(path=str(ARTIFACTS / "first-screen-home-1280x720.png"))
        errors = exception_texts(page)
    finally:
        context.close()
    assert box is not None and box[1] >= 0 and box[3] <= size["height"], (
        f"Open in Train of the bars card: {box}"
    )
    assert errors == []
