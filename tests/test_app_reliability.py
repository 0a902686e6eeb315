"""The pages when things go wrong on a shared server (AppTest): a run whose training thread raised says
"failed" with the error, holds no training slot, and Train starts it again; a server whose memory budget
the open sessions' runs fill refuses the next run with a message."""

from __future__ import annotations

from pathlib import Path

import pytest
from apptest_helpers import pin_navigation_mode, poll, stop_jobs
from streamlit.testing.v1 import AppTest

from sae_core.train import budget

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


def test_a_full_server_refuses_a_new_run_with_a_message(monkeypatch):
    from pages import server

    pin_navigation_mode(monkeypatch)
    ledger = server.server_memory()
    monkeypatch.setattr(ledger, "budget_bytes", ledger.held() + 2**20)  # room for 1 MB more: none for a run
    at = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT)
    at.query_params.update(TINY)
    at.run()
    at.switch_page("pages/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert any("this server is full" in e and "Try a smaller run" in e for e in errors), errors


def test_two_sessions_on_the_same_settings_share_one_copy_of_the_data(monkeypatch):
    from pages import server

    pin_navigation_mode(monkeypatch)
    query = {**TINY, "dataset": "bars", "n_bars": "3000", "data_seed": "7"}
    sessions = []
    for _ in range(2):
        at = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT)
        at.query_params.update(query)
        at.run()
        at.switch_page("pages/train.py").run()
        assert not at.exception, [e.value for e in at.exception]
        sessions.append(at)
    first, second = (at.session_state["job"] for at in sessions)
    assert first.trainer.dataset is second.trainer.dataset  # one copy, not one per session
    ledger = server.server_memory()
    data_bytes = budget.estimate(first.config).data
    alone = ledger.held()
    second.release()
    assert ledger.held() == alone - (budget.estimate(second.config).total - data_bytes)
    for at in sessions:
        stop_jobs(at)
