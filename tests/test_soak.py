"""Sessions that come and go leave nothing behind in the server (its /proc numbers, no browser).

Students here are `ws_client.Student`s: each opens Train over the app's websocket, presses Train on a
run with its own 25.6 MB of data (its own data seed: sessions on the same dataset share one copy, which
the last round checks) and closes its connection a few seconds later, which is what the server sees of a
closed tab. The server keeps disconnected sessions 2 s instead of 120 s. After
every round the reaper must have ended the runs' threads and freed their models and data: the server's
memory after the last rounds stays within two runs of what it held after the first round (a run kept per
session would add three per round, one kept per round one), and its thread count is back where it was.

Seen with this test's setting, 8 rounds (2026-12-02, each session then with a copy of its own of the same
data): 801 MB before, 816-825 MB after every round, 985-995 MB while a round trained; 7 threads after
every round, 10-11 while training. With the data shared and a data seed per session (2026-12-07, load
6-9): 763 MB before, 798-802 MB after each round, 834-836 MB while one trained, 810-820 MB while the
shared round did. With real browsers
(tests/test_browser_soak.py) the after-round figure climbs by about 60 MB over the first three rounds and
then stays (855, 866, 921, 894, 917 MB): Streamlit's own per-browser caches, not the runs.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from browser_helpers import process_usage, streamlit_server
from ws_client import Student

pytestmark = pytest.mark.slow

SESSIONS = 3
ROUNDS = 5
QUERY = "dataset=bars&n_bars=100000&steps=100000"  # 100,000 8×8 images in float32: 25.6 MB per dataset
RUN_MB = 25
REAPER_S = 6.0  # sae_core.serve.scheduler's reaper runs every 5 s
SETTLE_S = 20.0  # disconnect grace (5 s) + session TTL (2 s) + the reaper's period (5 s), with room


def own_data(i: int) -> str:
    """Student i's settings: the bars with a data seed of its own, so its run holds a dataset of its own."""
    return f"{QUERY}&data_seed={i + 1}"


async def _round(url: str, pid: int, train_s: float, query=own_data) -> tuple[list[int], tuple[float, int]]:
    """SESSIONS students (settings query(i)) train for train_s, then all disconnect; (the steps each
    reached, the server's (RSS MB, threads) just before they left)."""
    students = [Student(url, query=query(i)) for i in range(SESSIONS)]
    try:
        for s in students:
            await s.__aenter__()
            await s.rerun("train")
        await asyncio.sleep(train_s)  # the load itself, not synchronisation
        return [p.step if (p := s.read(_progress)) else 0 for s in students], process_usage(pid)
    finally:
        for s in students:
            await s.__aexit__(None, None, None)


def _progress(text: str):
    from browser_helpers import parse_progress

    return parse_progress(text)


def _settle(pid: int, floor_threads: int, seconds: float) -> tuple[float, int]:
    """Poll until the thread count is back to floor_threads (or seconds pass), then watch one more
    reaper period (it frees the runs after their threads end): the lowest (RSS MB, threads) seen."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process_usage(pid)[1] > floor_threads:
        time.sleep(0.5)
    readings = [process_usage(pid)]
    end = time.monotonic() + REAPER_S
    while time.monotonic() < end:
        time.sleep(0.5)  # a sampling period
        readings.append(process_usage(pid))
    return min(r[0] for r in readings), min(r[1] for r in readings)


@pytest.fixture(scope="module")
def rounds():
    env = {"STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL": "2", "SAE_MAX_JOBS": str(SESSIONS)}
    with streamlit_server(90, env=env) as (url, server):

        async def warm():
            async with Student(url, query=QUERY):
                pass

        asyncio.run(warm())
        start = _settle(server.pid, 0, 10.0)
        result = []
        for _ in range(ROUNDS):
            steps, during = asyncio.run(_round(url, server.pid, train_s=3.0))
            after = _settle(server.pid, start[1], SETTLE_S)
            result.append({"steps": steps, "during": during, "after": after})
        steps, during = asyncio.run(_round(url, server.pid, 3.0, query=lambda i: f"{QUERY}&data_seed=0"))
        shared = {"steps": steps, "during": during, "after": _settle(server.pid, start[1], SETTLE_S)}
    return {"start": start, "rounds": result, "shared": shared}


def test_every_session_trained_and_its_run_was_really_held(rounds):
    # Every round: each session's run stepped and had a thread of its own while the round trained. The
    # first round's runs hold three datasets of their own (77 MB) that the server did not hold before
    # (seen: 70 MB above the start). Later rounds need not raise the server's memory: glibc keeps freed
    # blocks of this size in its heap once it has returned one (its mmap threshold rises), and the next
    # round's data reuse them. So how much a round gives back when it ends depends on the allocator:
    # seen 34-37 MB in most rounds, but 7 MB for a first round in CI under load, and a shared round once
    # gave back more than an own-data round. The memory checks here are against the start and against
    # the first round's end (below), not against what each round gives back.
    for r in rounds["rounds"]:
        assert all(step > 0 for step in r["steps"]), rounds
        assert r["during"][1] >= r["after"][1] + SESSIONS, rounds
    first = rounds["rounds"][0]
    assert first["during"][0] >= rounds["start"][0] + 2 * RUN_MB, rounds


def test_sessions_on_the_same_data_hold_one_copy_of_it(rounds):
    # Three runs on one dataset: one 25.6 MB copy and three small models, where a copy each held 75 MB
    # more than the rounds' end (the check above, on runs with data of their own).
    shared = rounds["shared"]
    assert all(step > 0 for step in shared["steps"]), rounds
    assert shared["during"][0] < shared["after"][0] + 2 * RUN_MB, rounds


def test_threads_end_when_sessions_end(rounds):
    assert all(r["after"][1] <= rounds["start"][1] + 1 for r in rounds["rounds"]), rounds


def test_memory_after_each_round_stays_where_the_first_round_left_it(rounds):
    # A run kept per session would add SESSIONS * RUN_MB (75 MB) every round, 300 MB by the last; one run
    # kept per round adds 25 MB a round, 100 MB by the last. The allocator and Streamlit's own caches make
    # one-time steps of up to 50 MB that later rounds give back (seen in full CI runs: 817, 814, 848, 852 and
    # 813, 808, 863, 823 MB), so no round may pass a run per session plus one, and the lower of the last two
    # rounds must stay within two runs of the first (a run kept per round is at three and four by then).
    after = [round(r["after"][0]) for r in rounds["rounds"]]
    assert all(mb < after[0] + (SESSIONS + 1) * RUN_MB for mb in after[1:]), f"MB after each round: {after}"
    assert min(after[-2:]) < after[0] + 2 * RUN_MB, f"MB after each round: {after}"
