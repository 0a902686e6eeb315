"""The Train page of a run whose training thread raised: it says "failed" with the error, the run holds no
training slot, and Train starts it again (AppTest)."""

from __future__ import annotations

from pathlib import Path

import pytest
from apptest_helpers import pin_navigation_mode, poll, stop_jobs
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parent.parent / "app.py"
RUN_TIMEOUT = 60
TINY = {"dataset": "digits", "hidden": "4", "steps": "100000", "batch_size": "32"}


@pytest.fixture
def app(monkeypatch):
    pin_navigation_mode(monkeypatch)
    at = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT)
    at.query_params.update(TINY)
    at.run()
    at.switch_page("pages/train.py").run()
    yield at
    stop_jobs(at)


def test_a_run_whose_thread_raises_says_failed_and_trains_again(app):
    from pages import server

    at = app
    job = at.session_state["job"]
    real_step = job.trainer.step

    def broken_step():
        raise RuntimeError("simulated fault in a step")

    job.trainer.step = broken_step  # the instance's step: the next one the thread takes raises
    at.button(key="train").click().run()
    poll(at, lambda: job.latest().status == "failed", "the run to fail", 60)
    progress = at.get("progress")[0].proto.text
    assert "failed" in progress and "training" not in progress
    assert any("Training failed: RuntimeError: simulated fault in a step" in e.value for e in at.error)
    assert server.training_queue().place(job) is None  # its slot is back at once
    job.trainer.step = real_step
    at.button(key="train").click().run()
    poll(at, lambda: job.running and job.step_count > 0, "the run to train again", 60)
    assert not any("Training failed" in e.value for e in at.error)
    assert not at.exception, [e.value for e in at.exception]
