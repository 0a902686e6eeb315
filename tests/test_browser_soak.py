"""Closed tabs give back what their runs held (real Chromium, real server, its /proc numbers).

Before, a closed tab's job paused after 30 s but its thread polled forever and kept the model, the
optimizer and the data alive: threads went 12 -> 19 after 8 sessions and never dropped. Now a job's
thread ends when it stops training, a job whose tab is gone pauses within seconds
(sae_core.jobs.DISCONNECT_GRACE_S), and once Streamlit's disconnected-session TTL has passed the server's
reaper (sae_core.scheduler.Reaper) releases the run. The server here keeps disconnected sessions for
2 s instead of 120 s, so the test waits seconds.

The server's own thread count moves by one or two with no session at all (Streamlit's and torch's
worker pools), so the test compares rounds: after the last round of sessions has come and gone the
server holds fewer than one more thread per session than after the first (a thread left per session
grows by that every round), and each round gives its runs' memory back. That the memory left after a
round does not creep up round after round is checked over more rounds in tests/test_soak.py, whose
students speak the websocket without a browser.
"""

from __future__ import annotations

import pytest
from browser_helpers import CHROMIUM, launch_chromium, session_soak, streamlit_server, warm_up

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"needs Debian's Chromium at {CHROMIUM} (apt install chromium)"
    ),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")

DEADLINE_S = 90
SESSIONS = 3
ROUNDS = 2  # more rounds, and the memory of each, in tests/test_soak.py (no browser, cheaper)
# 100,000 bars images of 8×8 in float32: 25.6 MB, and each session's run gets its own copy of the data.
QUERY = "dataset=bars&n_bars=100000&steps=100000"
RUN_MB = 20  # the least each open run adds to the server's memory: the test can see a run's worth
SETTLE_S = 30
"""Disconnect grace (5 s) + session TTL (2 s) + the reaper's period (5 s), with room for a loaded machine:
with 15 s, a full CI run (load from the tests before it) once read the second round's threads before they
had ended (8 -> 15 threads), while the test alone passed."""


@pytest.fixture(scope="module")
def rounds():
    """ROUNDS soak rounds on one server with a short session TTL: [{"during", "after", "steps"}]."""
    env = {"STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL": "2", "SAE_MAX_JOBS": str(SESSIONS)}
    with sync_api.sync_playwright() as p, streamlit_server(DEADLINE_S, env=env) as (url, server):
        browser = launch_chromium(p)
        warm_up(browser, url, DEADLINE_S)
        result = [
            session_soak(browser, url, server.pid, SESSIONS, QUERY, train_s=3, settle_s=SETTLE_S)
            for _ in range(ROUNDS)
        ]
        browser.close()
    return result


def test_closed_sessions_end_their_threads_and_give_their_runs_memory_back(rounds):
    assert all(steps > 0 for r in rounds for steps in r["steps"]), rounds
    for r in rounds:  # the runs were really there (a thread and a copy of the data each), then gone
        assert r["during"][1] >= r["after"][1] + SESSIONS, rounds
        assert r["during"][0] >= r["after"][0] + SESSIONS * RUN_MB, rounds
    # A thread left behind per session adds SESSIONS per round, (ROUNDS - 1) * SESSIONS in all; the
    # server's own pools move by one or two either way.
    assert rounds[-1]["after"][1] < rounds[0]["after"][1] + SESSIONS, rounds
