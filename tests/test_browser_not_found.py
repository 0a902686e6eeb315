"""An address that names no page shows "No such page" with a link to every page (real Chromium).

Streamlit alone would run Home there under a generic error box; app.py puts a hidden page at the unknown
path instead (pages/not_found.py), so the address stays as typed, and its Home link goes home.
"""

from __future__ import annotations

from browser_helpers import (
    BROWSER_TESTS,
    VIEWPORT,
    exception_texts,
    launch_chromium,
    playwright_sync_api,
    streamlit_app,
    warm_up,
)

pytestmark = BROWSER_TESTS
sync_api = playwright_sync_api()

DEADLINE_MS = 90_000  # 2 CPU cores shared with other jobs; the first page load imports torch
PAGES = {"Home": "", "Train": "train", "Explore": "explore", "Runs": "runs", "Class": "class"}
PAGES |= {"Applications": "applications", "Theory": "theory"}


def test_an_unknown_page_says_so_and_links_to_every_page():
    with streamlit_app() as url, sync_api.sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            # The very first visit of a fresh server still gets Streamlit's own box over the page as well
            # (pages/not_found.py); every later one, in any browser, gets the page alone.
            warm_up(browser, url)
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.goto(f"{url}/nonexistent")
            main = page.locator('[data-testid="stMain"]')
            main.locator("h1", has_text="No such page").wait_for(timeout=DEADLINE_MS)
            assert "no page at /nonexistent" in main.inner_text()
            assert page.url.rstrip("/").endswith("/nonexistent")
            links = main.locator('[data-testid="stPageLink-NavLink"]')
            # A link's text is its icon's name, then its title; a.href is the absolute address.
            hrefs = {
                links.nth(i).inner_text().split()[-1]: links.nth(i).evaluate("a => a.href")
                for i in range(len(PAGES))  # nth(i) waits for the i-th link; count() would not
            }
            assert set(hrefs) == set(PAGES) and links.count() == len(PAGES)
            for title, path in PAGES.items():
                if path:  # Streamlit gives the default page's link no href; the click below follows it
                    assert hrefs[title] == f"{url}/{path}", title
            assert page.locator('[role="dialog"]', has_text="Page not found").count() == 0
            assert not main.locator("h1", has_text="Sparse Autoencoder Playground").count()  # not Home

            links.filter(has_text="Home").click()
            main.locator("h1", has_text="Sparse Autoencoder Playground").wait_for(timeout=DEADLINE_MS)
            assert page.url.rstrip("/") == url and not main.locator("h1", has_text="No such page").count()
            assert not exception_texts(page)
        finally:
            browser.close()
