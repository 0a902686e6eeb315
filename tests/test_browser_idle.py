"""A run keeps training while its user looks at another page of the app (real Chromium, real server).

A job pauses itself only when no tab of its browser session is connected (pages/server.session_watcher).
Before, it paused once the Train page had not drawn it for the idle timeout, so going to Home for half a
minute paused the class's run. The server here runs with a short SAE_IDLE_TIMEOUT_S, so the test waits
seconds, not minutes.
"""

from __future__ import annotations

import time

import pytest
from browser_helpers import (
    BROWSER_TESTS,
    VIEWPORT,
    click_button,
    exception_texts,
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

DEADLINE_S = 90  # generous: 2 CPU cores shared with other jobs; the first page load imports torch
IDLE_TIMEOUT_S = 2
AWAY_S = 3 * IDLE_TIMEOUT_S
NAV_LINK = '[data-testid="stSidebarNavLink"]'
PAUSED_MESSAGE = "Paused:"  # the job's message when it pauses itself (sae_core/serve/jobs.py)


@pytest.fixture(scope="module")
def app_url(browser):
    with streamlit_app(deadline_s=DEADLINE_S, env={"SAE_IDLE_TIMEOUT_S": str(IDLE_TIMEOUT_S)}) as url:
        warm_up(browser, url, DEADLINE_S)
        yield url


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(DEADLINE_S * 1000)
    yield page
    screenshot(page, f"last-{request.node.name}.png")
    context.close()


def go_to(page, title: str) -> None:
    """Switch page through the sidebar navigation, as a user does (same browser session, no reload)."""
    page.locator(NAV_LINK, has_text=title).click()


def test_a_run_keeps_training_while_its_user_is_on_home(page, app_url):
    open_train(page, app_url, "steps=100000", timeout_s=DEADLINE_S)
    click_button(page, "train")
    left_at = wait_until(
        lambda: (p := progress(page)) and p.status == "training" and p.step > 0 and p,
        DEADLINE_S,
        "training to start",
    )

    go_to(page, "Home")
    page.locator("h1", has_text="Sparse Autoencoder Playground").wait_for()
    # Not a synchronisation: a window of three idle timeouts in which nothing reads the job's snapshots
    # (the old rule paused it here).
    time.sleep(AWAY_S)

    go_to(page, "Train")
    back = wait_until(lambda: progress(page), DEADLINE_S, "the progress line")
    assert back.status == "training", back
    assert back.step > left_at.step, (left_at, back)
    assert PAUSED_MESSAGE not in page.evaluate("() => document.body.innerText")
    wait_until(lambda: progress(page).step > back.step, DEADLINE_S, "the step count to keep rising")
    assert exception_texts(page) == []

    click_button(page, "pause")  # stop competing for the CPU before the server goes
    wait_until(lambda: (p := progress(page)) and p.status == "paused", DEADLINE_S, "the run to pause")
