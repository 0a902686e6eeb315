"""A page opened at its own address finds its server at once (sae_core/serve/preload.py, base_script).

Streamlit's frontend, opened at /train, first asks /train/_stcore/health, gets a 404 and retries at the root
100 ms later. The page's HTML now names the server's address, so the only health check goes to the right
place, at the root and under a base path (Streamlit's server.baseUrlPath), and the page works in both.
"""

from __future__ import annotations

import pytest
from browser_helpers import (
    BROWSER_TESTS,
    VIEWPORT,
    exception_texts,
    launch_chromium,
    open_home,
    open_train,
    playwright_sync_api,
    streamlit_app,
)

pytestmark = BROWSER_TESTS
sync_api = playwright_sync_api()


@pytest.mark.parametrize("base_path", ["", "sae"])
def test_a_page_opened_at_its_address_asks_the_server_once_where_it_is(base_path):
    with streamlit_app(base_path=base_path) as url, sync_api.sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_context(viewport=VIEWPORT).new_page()
            health: list[str] = []
            page.on("request", lambda r: health.append(r.url) if r.url.endswith("/_stcore/health") else None)
            ready = open_train(page, url)
            assert (ready.status, ready.step) == ("ready", 0)
            assert health and set(health) == {f"{url}/_stcore/health"}, health  # never /train/_stcore/health
            assert page.evaluate("window.__streamlit.BACKEND_BASE_URL") == f"{url}/"
            assert not exception_texts(page)

            home = browser.new_context(viewport=VIEWPORT).new_page()  # the app's root: nothing to take off
            open_home(home, f"{url}/")
            assert home.evaluate("window.__streamlit === undefined")
            assert not exception_texts(home)
        finally:
            browser.close()
