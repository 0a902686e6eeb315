"""A page whose run waits in the queue asks the server nothing until its turn comes (issue 26).

A real server with one training slot and two students, each a browserless websocket session
(tests/ws_client.py) that reruns every `st.fragment(run_every=...)` the server asks for, as a browser does.
The second student's run waits in the queue: over a minute its page makes no rerun at all (before, it asked
every 5 s whether its turn had come, and at 98 waiting students those reruns took the two trainers' cores).
When the first student pauses, the queue starts the second run and the server redraws its page by itself.
"""

from __future__ import annotations

import asyncio

import pytest
from browser_helpers import parse_progress, streamlit_server
from ws_client import Student, until

pytestmark = pytest.mark.slow

QUERY = "preset=quick-digits&steps=0"  # a run until paused: it holds its slot until its student pauses
WAIT_S = 60.0


def _status(student: Student) -> str | None:
    progress = student.read(parse_progress)
    return progress.status if progress is not None else None


async def _class(url: str) -> None:
    async with Student(url, query=QUERY) as first, Student(url, query=QUERY) as second:
        await first.rerun("train")
        await until(lambda: _status(first) == "training", 60, "the first run to train")
        await second.rerun("train")
        assert _status(second) == "queued"
        runs, finished = second.fragment_runs, second.scripts_finished
        await asyncio.sleep(WAIT_S)  # what is measured here is the absence of requests over this time
        assert (second.fragment_runs, second.scripts_finished) == (runs, finished), (
            "a waiting page reran on its own"
        )
        assert first.fragment_runs > WAIT_S  # the training page did redraw twice a second meanwhile

        await first.rerun("pause")
        await until(lambda: _status(second) == "training", 30, "the queue to wake the second page")
        assert second.scripts_finished > finished  # a rerun the server started: the student did nothing
        await until(lambda: second.fragment_runs > runs, 10, "the woken page to redraw while it trains")
        await second.rerun("pause")


def test_a_waiting_page_does_no_periodic_work_and_is_woken_when_its_turn_comes():
    with streamlit_server(env={"SAE_MAX_JOBS": "1", "SAE_IDLE_TIMEOUT_S": "600"}) as (url, _):
        asyncio.run(_class(url))
