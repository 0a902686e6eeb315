"""Helpers shared by the AppTest suites (test_app_pages, test_variant_views)."""

from __future__ import annotations

import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from pages.live_charts import FRAME

APP = Path(__file__).resolve().parent.parent / "app.py"


def pin_navigation_mode(monkeypatch) -> None:
    """Run AppTests as a live server runs once its first visit has gone through app.py.

    A server leaves Streamlit's old pages/-folder mode for good at its first st.navigation call
    (pages/navigation_guard.leave_old_multipage_mode). AppTest resets that process-wide flag before every run,
    which would replay the first-visit path on each click; this undoes only that reset.
    """
    from streamlit.runtime import pages_manager

    real_init = pages_manager.PagesManager.__init__

    def init(self, *args, **kwargs):
        if pages_manager.PagesManager.uses_pages_directory is None:
            pages_manager.PagesManager.uses_pages_directory = False
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(pages_manager.PagesManager, "__init__", init)


def open_train_page(query: dict[str, str], timeout_s: float, made: list[AppTest]) -> AppTest:
    """A new session opened on app.py with `query` in its URL, switched to Train, with no exception;
    it is appended to `made` so the caller's fixture can stop its jobs (stop_jobs) afterwards."""
    at = AppTest.from_file(str(APP), default_timeout=timeout_s)
    at.query_params.update(query)
    made.append(at)
    at.run()
    at.switch_page("pages/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def stop_jobs(at: AppTest) -> None:
    """Stop the session's current and previous training jobs, so no thread or slot outlives a test."""
    for key in ("job", "previous_job"):
        job = at.session_state[key] if key in at.session_state else None
        if job is not None:
            job.stop()


def poll(at: AppTest, done, what: str, deadline_s: float) -> None:
    """Rerun the page (as the fragment timer would) until done() or the deadline."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        at.run()
        if done():
            return
        time.sleep(0.05)  # a pause between polls, not synchronisation: done() decides
    raise AssertionError(f"timed out waiting for {what}")


def pictures(at: AppTest) -> dict[str, str]:
    """The live charts drawn as plain pictures (sae_core/figures/static.py), by chart key: the HTML of the
    picture in the chart's stack (pages/live_charts.py), the newest one where both slots hold one."""
    out: dict[str, str] = {}

    def walk(node) -> None:
        for child in getattr(node, "children", {}).values():
            block_id = str(getattr(getattr(child, "proto", None), "id", "") or "")
            if type(child).__name__ == "Block" and block_id.endswith("__stack"):
                key = block_id.split("-", 2)[-1].removesuffix("__stack")
                frame = at.session_state[FRAME] if FRAME in at.session_state else 0
                slots = list(child.children.values())
                ordered = [slots[frame % 2], *slots] if len(slots) == 2 else slots
                html = [s.proto.body for s in ordered if getattr(s, "type", None) == "html"]
                if html:
                    out[key] = html[0]
            walk(child)

    walk(at._tree)
    return out
