"""The Train page on a classroom projector, in a real headless Chromium: pictures that stay on the screen.

Two things a class sees: the filter chart must not blank or fade while it refreshes twice a second
(pages/live_charts.py says why Streamlit would), and at 1280×720 nothing may be cut off and presentation
mode must fit the live controls (ρ, β), the filters and the ρ̂ histogram on one screen. Screenshots
land in artifacts/ for a human to look at.
"""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from browser_helpers import (
    ARTIFACTS,
    BROWSER_TESTS,
    click_button,
    exception_texts,
    filters_signature,
    open_train,
    playwright_sync_api,
    progress,
    screenshot,
    streamlit_app,
    wait_until,
    warm_up,
)

pytestmark = BROWSER_TESTS
sync_api = playwright_sync_api()
Image = pytest.importorskip("PIL.Image", reason="needs Pillow to read screenshots")

DEADLINE_S = 90
LONG_RUN = "steps=100000"
PROJECTOR = {"width": 1280, "height": 720}
SAMPLES = 40
BLANK_STD = 3.0  # grey levels: a chart area this flat is empty (Streamlit's blank remount)
FADED_CONTRAST = 0.75  # of the settled frame's: Streamlit's stale fade (opacity 0.33) leaves about a third
FADED_BRIGHTER = 20.0  # grey levels brighter than the settled frame: the fade blends towards white

FILTERS_BOX = """() => {
    const e = document.querySelector('.st-key-filters_chart__stack');
    const b = e.getBoundingClientRect();
    return {x: b.left, y: b.top, width: b.width, height: Math.min(b.bottom, innerHeight) - b.top};
}"""
CLIPPED = """() => {
    const out = [];
    const text = e => e.innerText.trim().replace(/\\s+/g, ' ').slice(0, 50);
    const wider = (selector, what) => document.querySelectorAll(selector).forEach(e => {
        if (e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1)
            out.push(`${what} "${text(e)}": needs ${e.scrollWidth}px, has ${e.clientWidth}px`);
    });
    wider('[data-testid="stMetricLabel"] :is(div, p)', 'metric label');  // the ellipsis is on a div
    wider('[data-testid="stMetricValue"] :is(div, p)', 'metric value');
    wider('.st-key-filters_which [role="radiogroup"]', 'filter switch');
    wider('.st-key-filters_which button p', 'filter switch label');
    // A formula may overflow its own shrink-wrapped span by a pixel of KaTeX struts; what counts is its box.
    document.querySelectorAll('.st-key-objective_box .katex-display').forEach(d => {
        const box = d.closest('.st-key-objective_box'), style = getComputedStyle(box);
        const room = box.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
        const b = box.getBoundingClientRect(), r = d.querySelector('.katex').getBoundingClientRect();
        if (d.scrollWidth > room || r.left < b.left || r.right > b.right)
            out.push(`formula "${text(d).slice(0, 30)}": needs ${d.scrollWidth}px, its box has ${room}px`);
    });
    return out;
}"""
BOXES = """selectors => Object.fromEntries(selectors.map(s => {
    const e = document.querySelector(s);
    if (!e) return [s, null];
    const b = e.getBoundingClientRect();
    return [s, [Math.round(b.left), Math.round(b.top), Math.round(b.right), Math.round(b.bottom)]];
}))"""
SCROLLED = """() => [...document.querySelectorAll('[data-testid="stMain"], [data-testid="stSidebarContent"]')]
    .map(e => e.scrollTop)"""
ON_ONE_SCREEN = [
    ".st-key-rho",
    ".st-key-beta",
    ".st-key-filters_chart__stack",
    ".st-key-rho_hat_chart__stack",
]


@pytest.fixture(scope="module")
def app_url(browser):
    with streamlit_app(deadline_s=DEADLINE_S) as url:
        warm_up(browser, url, DEADLINE_S)
        yield url


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport=PROJECTOR)
    page = context.new_page()
    page.set_default_timeout(DEADLINE_S * 1000)
    yield page
    screenshot(page, f"last-{request.node.name}.png")
    context.close()


def _grey_stats(png: bytes) -> tuple[float, float]:
    """(mean, standard deviation) of a screenshot's grey levels."""
    grey = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64)
    return float(grey.mean()), float(grey.std())


def _train(page) -> None:
    before = wait_until(lambda: filters_signature(page), DEADLINE_S, "the filter chart")
    click_button(page, "train")
    wait_until(lambda: (p := progress(page)) and p.status == "training", DEADLINE_S, "training")
    wait_until(lambda: filters_signature(page) not in (None, before), DEADLINE_S, "the filters to change")


def _pause(page) -> None:
    click_button(page, "pause")
    wait_until(lambda: (p := progress(page)) and p.status == "paused", DEADLINE_S, "the run to pause")


def _presentation_mode(page, on: bool) -> None:
    page.locator(".st-key-presentation label").first.click()
    title = page.locator("h1", has_text="Train a sparse autoencoder")
    wait_until(lambda: (title.count() == 0) == on, DEADLINE_S, f"presentation mode {'on' if on else 'off'}")


def test_filter_chart_never_blanks_or_fades_while_training(page, app_url):
    open_train(page, app_url, LONG_RUN, timeout_s=DEADLINE_S)
    _train(page)
    box = page.evaluate(FILTERS_BOX)
    first = filters_signature(page)
    samples = []
    for _ in range(SAMPLES):  # each screenshot takes a frame or more: about a redraw apart on 2 cores
        samples.append(_grey_stats(page.screenshot(clip=box)))
    redrawn = filters_signature(page) != first
    steps = progress(page).step
    _pause(page)
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    time.sleep(1.0)  # let a stale fade, were there one, run out: the settled frame must be settled
    settled_mean, settled_std = _grey_stats(page.screenshot(clip=box))
    screenshot(page, "projector-filters-settled.png")

    assert redrawn, f"the filters did not change during the {SAMPLES} samples (step {steps})"
    blank = [i for i, (_, std) in enumerate(samples) if std < BLANK_STD]
    faded = [
        i
        for i, (mean, std) in enumerate(samples)
        if std < FADED_CONTRAST * settled_std or mean > settled_mean + FADED_BRIGHTER
    ]
    assert blank == [], f"blank frames {blank} of {SAMPLES} (grey std < {BLANK_STD}): {samples}"
    assert faded == [], (
        f"faded frames {faded} of {SAMPLES} against the settled ({settled_mean:.0f}, {settled_std:.0f}): "
        f"{samples}"
    )
    assert exception_texts(page) == []


def test_at_1280x720_nothing_is_clipped_and_presentation_mode_fits_one_screen(page, app_url):
    open_train(page, app_url, LONG_RUN, timeout_s=DEADLINE_S)
    wait_until(lambda: filters_signature(page), DEADLINE_S, "the filter chart")
    clipped = page.evaluate(CLIPPED)
    assert clipped == [], "clipped at 1280×720:\n" + "\n".join(clipped)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "projector-1280x720.png"))

    _presentation_mode(page, on=True)
    _train(page)
    clipped = page.evaluate(CLIPPED)
    boxes = page.evaluate(BOXES, ON_ONE_SCREEN)
    scrolled = page.evaluate(SCROLLED)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "projector-1280x720-presentation.png"))  # the screen, mid-training
    _pause(page)

    assert clipped == [], "clipped in presentation mode:\n" + "\n".join(clipped)
    assert scrolled == [0] * len(scrolled), f"the page or the sidebar had to scroll: {scrolled}"
    off_screen = {
        name: box
        for name, box in boxes.items()
        if box is None
        or box[0] < 0
        or box[1] < 0
        or box[2] > PROJECTOR["width"]
        or box[3] > PROJECTOR["height"]
    }
    assert off_screen == {}, f"not within the 1280×720 screen: {off_screen} (all: {boxes})"

    _presentation_mode(page, on=False)  # the mode goes off again: the title comes back
    assert exception_texts(page) == []
