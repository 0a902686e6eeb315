"""A unit's card in a real headless Chromium: train the bars to the end, click a tile of the filter grid,
and see that unit's card (its number in the input, its title over the card's chart) under the live views.
"""

from __future__ import annotations

from browser_helpers import (
    BROWSER_TESTS,
    VIEWPORT,
    click_button,
    exception_texts,
    launch_chromium,
    open_train,
    playwright_sync_api,
    progress,
    screenshot,
    streamlit_app,
    wait_until,
)

pytestmark = BROWSER_TESTS
sync_api = playwright_sync_api()

DEADLINE_S = 90  # 2 CPU cores shared with other jobs; the first page load imports torch
SHORT_RUN = "dataset=bars&hidden=16&steps=300"  # ends within seconds, so the card opens without a pause
CARD_TITLE_JS = (
    "() => Array.from(document.querySelectorAll('.st-key-unit_card_chart .gtitle'))"
    ".map(e => e.textContent).join(' | ')"
)


def test_clicking_a_filter_tile_opens_that_units_card():
    with sync_api.sync_playwright() as p, streamlit_app(deadline_s=DEADLINE_S) as url:
        browser = launch_chromium(p)
        page = browser.new_context(viewport=VIEWPORT).new_page()
        page.set_default_timeout(DEADLINE_S * 1000)
        try:
            open_train(page, url, SHORT_RUN, timeout_s=DEADLINE_S)
            click_button(page, "train")
            wait_until(lambda: (s := progress(page)) and s.status == "finished", DEADLINE_S, "the run to end")
            wait_until(lambda: "unit 0 of 16" in page.evaluate(CARD_TITLE_JS), DEADLINE_S, "unit 0's card")

            plot = page.locator(".st-key-filters_chart__stack .nsewdrag").first
            plot.scroll_into_view_if_needed()
            box = wait_until(lambda: plot.bounding_box(), DEADLINE_S, "the filter montage")
            side = 4 * 9 + 1  # 16 units: a 4×4 grid of 8×8 tiles with 1-pixel gaps
            middle = (1 + 9 + 4) / side  # the middle of tile 5 (row 1, column 1)
            page.mouse.click(box["x"] + middle * box["width"], box["y"] + middle * box["height"])

            wait_until(lambda: "unit 5 of 16" in page.evaluate(CARD_TITLE_JS), DEADLINE_S, "unit 5's card")
            unit_box = page.locator(".st-key-card_unit input")
            # The input takes its new value a render after the chart's title (seen under load 11 in CI).
            wait_until(lambda: unit_box.input_value() == "5", DEADLINE_S, "unit 5 in the unit box")
            metrics = " ".join(page.locator('.st-key-unit_card [data-testid="stMetric"]').all_inner_texts())
            assert "ρ̂ⱼ" in metrics and "Rise when switched off" in metrics
            assert exception_texts(page) == []
            page.locator(".st-key-unit_card").scroll_into_view_if_needed()
            screenshot(page, "train-unit-card.png")
        finally:
            browser.close()
