"""Kept runs outlive the server (real Chromium, real `streamlit run app.py`).

Train a tiny run to its end, stop the server, start a new one on the same runs folder, and open the Runs
page in the same browser: the run is listed. The browser keeps its XSRF cookie, which the new server
accepts and re-masks (pages/runs_store.owner reads the token under the mask), so the browser is still
the run's owner; a fresh browser context is somebody else and sees no runs.
"""

from __future__ import annotations

from browser_helpers import (
    BROWSER_TESTS,
    VIEWPORT,
    click_button,
    exception_texts,
    free_port,
    open_train,
    playwright_sync_api,
    progress,
    screenshot,
    streamlit_server,
    wait_until,
)

from sae_core.store import runs

pytestmark = BROWSER_TESTS
sync_api = playwright_sync_api()

DEADLINE_S = 90  # generous: 2 CPU cores shared with other jobs; the first page load imports torch
QUICK = "dataset=digits&hidden=4&steps=150&batch_size=32"


def _text(page) -> str:
    return page.evaluate("() => document.body.innerText")


def test_a_finished_run_is_listed_after_the_server_restarts(browser, tmp_path):
    env = {runs.ENV_DIR: str(tmp_path / "runs")}
    port = free_port()
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(DEADLINE_S * 1000)
    try:
        with streamlit_server(DEADLINE_S, port, env):
            open_train(page, f"http://127.0.0.1:{port}", QUICK, DEADLINE_S)
            click_button(page, "train")
            wait_until(
                lambda: (p := progress(page)) and p.status == "finished", DEADLINE_S, "the run to finish"
            )
            wait_until(
                lambda: "Kept in your runs" in _text(page), DEADLINE_S, "the page to say the run is kept"
            )
            assert exception_texts(page) == []
        (kept,) = runs.RunStore(tmp_path / "runs").list_runs(None)
        assert (kept.status, kept.steps) == ("finished", 150)

        with streamlit_server(DEADLINE_S, port, env) as (url, _):  # a new server process, same folder
            page.goto(f"{url}/runs")
            page.locator(f".st-key-open_{kept.id} button:visible").wait_for(timeout=DEADLINE_S * 1000)
            assert kept.title in _text(page)
            assert exception_texts(page) == []
            screenshot(page, "runs-after-restart.png")

            stranger = browser.new_context(viewport=VIEWPORT).new_page()
            stranger.goto(f"{url}/runs")
            stranger.get_by_text("No kept runs yet").wait_for(timeout=DEADLINE_S * 1000)
            stranger.context.close()
    finally:
        context.close()
