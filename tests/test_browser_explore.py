"""The Explore page in a real headless Chromium: a 2 × 2 sweep trains while its progress moves, a click
on a cell of the filters picks that cell, and Open on Train shows it there at the sweep's step.

Screenshots at 1280×720 (a projector) and 1600×1000 land in artifacts/ (explore-*.png)."""

from __future__ import annotations

from browser_helpers import (
    BROWSER_TESTS,
    click_button,
    exception_texts,
    launch_chromium,
    playwright_sync_api,
    progress,
    screenshot,
    streamlit_app,
    wait_until,
    warm_up,
)

pytestmark = BROWSER_TESTS
sync_api = playwright_sync_api()

DEADLINE_S = 90
STEPS = 600
SWEEP_PROGRESS = ".st-key-live_views [data-testid='stProgress']"


def sweep_step(page) -> tuple[str, int] | None:
    """(status, step) from the sweep's progress line, e.g. 'training · step 120 / 600 · 4 cells ...'."""
    import re

    texts = page.locator(SWEEP_PROGRESS).all_inner_texts()
    match = re.search(r"(\w+)\s*·\s*step\s*([\d,]+)\s*/", texts[0]) if texts else None
    return (match.group(1), int(match.group(2).replace(",", ""))) if match else None


def fill(page, key: str, text: str) -> None:
    box = page.locator(f".st-key-{key} input")
    box.fill(text)


def test_a_two_by_two_sweep_trains_live_and_a_clicked_cell_opens_on_train():
    with sync_api.sync_playwright() as p, streamlit_app(DEADLINE_S) as url:
        browser = launch_chromium(p)
        warm_up(browser, url, DEADLINE_S)
        for width, height in ((1280, 720), (1600, 1000)):
            page = browser.new_page(viewport={"width": width, "height": height})
            sweep_click_and_open(page, url, f"explore-{width}x{height}.png")
            page.close()
        browser.close()


def sweep_click_and_open(page, url: str, picture: str) -> None:
    page.goto(f"{url}/explore")
    page.locator(".st-key-sweep_rhos input").wait_for(timeout=DEADLINE_S * 1000)
    fill(page, "sweep_rhos", "0.05, 0.2")
    fill(page, "sweep_betas", "0, 3")
    fill(page, "sweep_steps", str(STEPS))
    click_button(page, "sweep_train")
    first = wait_until(lambda: sweep_step(page), DEADLINE_S, "the sweep's progress line")
    if first[0] == "training":  # it moves while training (a fast machine may finish first)
        wait_until(lambda: (s := sweep_step(page)) and s[1] > first[1], 30, "the sweep to advance")
    wait_until(lambda: (s := sweep_step(page)) and s[0] == "done", DEADLINE_S, "the sweep to end")
    assert not exception_texts(page)
    screenshot(page, picture)
    # Click the bottom-right cell (ρ 0.2, β 3) of the filters figure.
    plot = page.locator(".st-key-sweep_thumbnails .js-plotly-plot .nsewdrag").first
    plot.scroll_into_view_if_needed()
    box = wait_until(lambda: plot.bounding_box(), 30, "the filters of the cells")
    page.mouse.click(box["x"] + 0.75 * box["width"], box["y"] + 0.75 * box["height"])
    open_button = page.locator(".st-key-sweep_open button:visible")
    wait_until(lambda: "ρ 0.2, β 3" in open_button.inner_text(), 30, "the clicked cell to be picked")
    click_button(page, "sweep_open")
    page.locator(".st-key-train button:visible").wait_for(timeout=DEADLINE_S * 1000)
    shown = wait_until(lambda: progress(page), 30, "the Train page's progress line")
    assert shown.step == STEPS, shown
    # The notice is drawn by the same rerun as the progress line, but a rerun still in flight can hide the
    # page's elements for a moment: wait for the notice rather than read the body once.
    wait_until(
        lambda: "Opened the sweep's cell ρ 0.2, β 3" in page.evaluate("() => document.body.innerText"),
        30,
        "the notice that says which cell was opened",
    )
    assert not exception_texts(page)
