"""The Train sidebar's "Import a model" and "Share with the class" are popovers (real Chromium).

Their widgets are drawn when a popover opens, so a fresh Train page does not fetch the browser code of the
file uploader, the multiselect or the code box (pages/train_import.py, pages/classroom.py). Opened, each
works as the expander it replaced did: the link follows the multiselect, and a refused zip says why, in a
popover that stays open over the reruns.
"""

from __future__ import annotations

import io
import zipfile

from browser_helpers import (
    BROWSER_TESTS,
    exception_texts,
    launch_chromium,
    open_train,
    playwright_sync_api,
    progress,
    streamlit_app,
    wait_until,
)

pytestmark = BROWSER_TESTS
sync_api = playwright_sync_api()

DEADLINE_MS = 60_000
BODY = '[data-testid="stPopoverBody"]'
DEFERRED = ("FileUploader.", "Multiselect.", "StreamlitSyntaxHighlighter.")
"""Streamlit's files for the popovers' widgets (their names less the content hash)."""


def scripts(page) -> list[str]:
    return page.evaluate(
        "() => performance.getEntriesByType('resource').map(e => e.name.split('/').pop())"
        ".filter(n => n.endsWith('.js'))"
    )


def test_the_sidebar_popovers_load_nothing_until_opened_and_then_work():
    with streamlit_app() as url, sync_api.sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
            open_train(page, url)
            loaded = scripts(page)
            assert any(n.startswith("Selectbox.") for n in loaded)  # the list is read as it should be
            assert not [n for n in loaded if n.startswith(DEFERRED)], loaded

            sidebar = page.locator('[data-testid="stSidebar"]')
            sidebar.get_by_text("Share with the class").click()
            code = page.locator(f'{BODY} [data-testid="stCode"]')
            code.wait_for(timeout=DEADLINE_MS)
            assert code.inner_text().strip() == f"{url}/train?classroom=rho,beta"
            page.locator(f'{BODY} [data-testid="stMultiSelect"] input').click()
            page.keyboard.press("Backspace")  # takes β off the list: the page reruns, the popover stays
            wait_until(
                lambda: code.inner_text().strip() == f"{url}/train?classroom=rho" or None,
                DEADLINE_MS / 1000,
                "the link without beta",
            )
            page.locator("h1").first.click()  # a click outside closes it
            page.locator(BODY).wait_for(state="detached", timeout=DEADLINE_MS)

            sidebar.get_by_text("Import a model (.zip)").click()
            uploader = page.locator(f"{BODY} input[type=file]")
            uploader.wait_for(state="attached", timeout=DEADLINE_MS)
            raw = io.BytesIO()
            with zipfile.ZipFile(raw, "w") as z:
                z.writestr("notes.txt", "not a model")
            uploader.set_input_files(
                {"name": "bad.zip", "mimeType": "application/zip", "buffer": raw.getvalue()}
            )
            refusal = page.locator(f'{BODY} [data-testid="stAlertContentError"]')
            refusal.wait_for(timeout=DEADLINE_MS)
            assert "Not imported" in refusal.inner_text() and "config.json" in refusal.inner_text()
            shown = progress(page)
            assert shown is not None and (shown.status, shown.step) == ("ready", 0), (
                shown
            )  # the run is as it was
            assert not exception_texts(page)
        finally:
            browser.close()
