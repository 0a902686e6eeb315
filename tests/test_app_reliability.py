"""The pages when things go wrong on a shared server (AppTest): a run whose training thread raised says
"failed" with the error, holds no training slot, and Train starts it again; a server whose memory budget
the open sessions' runs fill refuses the next run with a message."""

from __future__ import annotations

from pathlib import Path

import pytest
from apptest_helpers import pin_navigation_mode, poll, stop_jobs
from streamlit.testing.v1 import AppTest

from sae_core.config.run import RunConfig
from sae_core.serve.memory import ServerMemory
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


class OtherRuns:
    """Stands for the runs of other sessions in a ledger (which holds its jobs by weak reference)."""


def own_ledger(monkeypatch, budget_mb: float) -> ServerMemory:
    """A server memory ledger for this test alone, in place of the server's (cached) one: jobs that earlier
    tests in this worker left behind, released or collected at any moment, do not move its figures."""
    from pages import job_control, server

    ledger = ServerMemory(budget_mb=budget_mb)
    monkeypatch.setattr(server, "server_memory", lambda: ledger)
    monkeypatch.setattr(job_control, "server_memory", lambda: ledger)
    return ledger


def test_a_full_server_refuses_a_new_run_with_a_message(monkeypatch):
    pin_navigation_mode(monkeypatch)
    need = budget.estimate(RunConfig.from_flat(TINY))  # from_flat reads the link's strings as the page does
    ledger = own_ledger(monkeypatch, budget_mb=3)
    others = OtherRuns()
    ledger.add(others, 2 * 2**20)  # the other sessions' runs hold 2 of the 3 MB
    assert need.total - need.data > 2**20  # TINY's run does not fit in the last 1 MB, even on shared data
    at = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT)
    at.query_params.update(TINY)
    at.run()
    at.switch_page("pages/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert any(
        "this server is full" in e and "hold about 2 MB of its 3 MB" in e and "Try a smaller run" in e
        for e in errors
    ), errors
    assert ledger.held() == 2 * 2**20  # nothing was added for the refused run


def test_two_sessions_on_the_same_settings_share_one_copy_of_the_data(monkeypatch):
    pin_navigation_mode(monkeypatch)
    ledger = own_ledger(monkeypatch, budget_mb=1000)
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
    one, two = budget.estimate(first.config), budget.estimate(second.config)
    assert one.data == two.data > 0
    assert ledger.held() == (one.total - one.data) + (two.total - two.data) + one.data  # the data once
    second.release()
    assert ledger.held() == one.total
    for at in sessions:
        stop_jobs(at)
