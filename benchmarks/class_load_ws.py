"""A class on one server, without browsers: how many students train at once with the page answering in 1 s?

Each student is a `tests.ws_client.Student`: one websocket session that opens Train at the quick
preset run until paused, presses Train and reruns the live-views fragment twice a second as a browser
would, so the server does all the work a real class gives it while no Chromium competes for its cores.
For each class size n, while all n train (or, with the server's own slot count, --max-jobs 0, while as
many train as it has slots and the others wait in its queue):
  steps/s per student   from each training student's progress line over --window seconds, --settle
                        seconds after the first Train press (an L-BFGS run slows as it trains);
  page load             seconds for one more student's first full run of the Train page;
  answer                that student, paused, presses Step: seconds from the click to the server's end of
                        the rerun (median and worst of --clicks). Target: <= 1 s.
The server is started with $SAE_MAX_JOBS = the largest size tried (nobody queues; --max-jobs to change).
--servers N runs N app servers behind nginx instead (scripts/class_servers.py, each with its share of the
cores as slots): a student without the proxy's cookie goes to the next server in turn, so the class spreads
over them; steps/s and answers are then read through the proxy.

    PYTHONPATH=. python benchmarks/class_load_ws.py [--sizes 1,2,4,8,12] [--servers 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sae_core.serve.jobs import DISCONNECT_GRACE_S
from tests.browser_helpers import parse_progress, process_usage, streamlit_server
from tests.ws_client import Student, until

QUERY = "preset=quick-digits&steps=0"
TARGET_S = 1.0


def _started(student: Student):
    """The student's progress once their run trains or waits in the queue (the server's slots are full)."""
    p = student.read(parse_progress)
    return p if p is not None and p.status in ("training", "queued") else None


async def measure(url: str, students: int, window_s: float, clicks: int, settle_s: float) -> dict:
    class_ = [Student(url, query=QUERY) for _ in range(students)]
    pressed = None
    for s in class_:
        await s.__aenter__()
        await s.rerun("train")
        pressed = pressed or time.perf_counter()
    try:
        for s in class_:
            await until(lambda s=s: _started(s), 120, "a student's run to train or queue")
        # An L-BFGS run's steps get slower as it trains (quick digits: 110 steps/s in its first 5 s, 55-60
        # from 10 s on, on one quiet core), so every class size reads its rates from the same point of its
        # trainers' runs: `settle_s` after the first Train press (a big class takes that long to arrive).
        await asyncio.sleep(max(0.0, pressed + settle_s - time.perf_counter()))
        first = [(s.read(parse_progress), time.perf_counter()) for s in class_]
        training = [p.status == "training" for p, _ in first]
        async with Student(url, query=QUERY) as teacher:
            load_s = teacher.run_seconds[0]
            times = [await teacher.rerun("step") for _ in range(clicks)]
            stepped = teacher.read(parse_progress)
        await asyncio.sleep(max(0.0, window_s - (time.perf_counter() - first[0][1])))
        now = time.perf_counter()
        ends = [s.read(parse_progress).step for s in class_]
        rates = [
            (end - p0.step) / (now - t0)
            for end, (p0, t0), trains in zip(ends, first, training, strict=True)
            if trains
        ]
        ticks = sum(s.fragment_runs for s in class_)
    finally:
        for s in class_:
            await s.__aexit__(None, None, None)
    return {
        "students": students,
        "training": sum(training),
        "queued": students - sum(training),
        "steps_per_s_median": statistics.median(rates),
        "steps_per_s_min": min(rates),
        "steps_per_s": rates,
        "page_load_s": load_s,
        "answer_median_s": statistics.median(times),
        "answer_max_s": max(times),
        "step_clicks_reached": stepped.step if stepped else None,
        "fragment_reruns": ticks,
        "load": os.getloadavg()[0],
    }


async def settle(procs, seconds: float) -> list:
    """Let the servers pause the last class's runs (their sessions are gone) and give their slots back, so
    the next class size does not queue behind them; each server's (RSS MB, threads) after."""
    await asyncio.sleep(seconds)
    return [process_usage(proc.pid) for proc in procs]


@contextmanager
def servers_at(count: int, env: dict[str, str], max_jobs: int | None) -> Iterator[tuple[str, list]]:
    """(the URL students open, the app server processes): one server, or `count` behind nginx."""
    if count == 1:
        with streamlit_server(120, env=env) as (url, proc):
            yield url, [proc]
        return
    from scripts.class_servers import class_servers, free_port

    listen = f"127.0.0.1:{free_port()}"
    with tempfile.TemporaryDirectory(prefix="sae-class-") as prefix:
        with class_servers(count, listen, Path(prefix), max_jobs=max_jobs, env=env) as running:
            yield running.url, running.servers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,2,4,8,12", help="class sizes to try, comma-separated")
    parser.add_argument("--window", type=float, default=10.0, help="seconds over which step rates are read")
    parser.add_argument("--clicks", type=int, default=5, help="Step clicks timed per class size")
    parser.add_argument(
        "--settle", type=float, default=30.0, help="seconds from the first Train press to reading rates"
    )
    parser.add_argument(
        "--max-jobs",
        type=int,
        help="$SAE_MAX_JOBS (default: the largest size, nobody queues; 0: the server default, one per core)",
    )
    parser.add_argument("--servers", type=int, default=1, help="app servers behind nginx (default 1: none)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    env = {"SAE_IDLE_TIMEOUT_S": "3600"}
    if args.max_jobs != 0 and args.servers == 1:  # 0: the server's own default, one slot per core
        env["SAE_MAX_JOBS"] = str(args.max_jobs or max(sizes))
    rows = []
    with servers_at(args.servers, env, args.max_jobs or None) as (url, procs):
        for _ in range(args.servers):  # one throwaway session per server (the proxy takes turns)
            asyncio.run(_warm(url))
        for n in sizes:
            try:
                row = asyncio.run(measure(url, n, args.window, args.clicks, args.settle))
            except TimeoutError:  # a rerun took over ws_client's 120 s: the server no longer answers
                print(f"{n:>2} students: the server stopped answering (a rerun took over 120 s)", flush=True)
                rows.append({"students": n, "answer_median_s": None})
                break
            row["servers_after"] = asyncio.run(settle(procs, DISCONNECT_GRACE_S + 5.0))
            rows.append(row)
            verdict = "ok" if row["answer_median_s"] <= TARGET_S else "too slow"
            print(
                f"{n:>2} students ({row['training']} training, {row['queued']} queued): "
                f"{row['steps_per_s_median']:6.0f} steps/s each "
                f"(slowest {row['steps_per_s_min']:.0f}); a new student's page loads in "
                f"{row['page_load_s']:.2f} s, Step answers in {row['answer_median_s']:.2f} s "
                f"(worst {row['answer_max_s']:.2f}) {verdict}; load {row['load']:.1f}",
                flush=True,
            )
    holds = [r["students"] for r in rows if (r["answer_median_s"] or math.inf) <= TARGET_S]
    print(f"largest class size tried with Step answering within {TARGET_S:.0f} s: {max(holds, default=0)}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"rows": rows, "target_s": TARGET_S, "args": vars(args)}, out, indent=2)
    return 0


async def _warm(url: str) -> None:
    """One throwaway session: the server's first run imports torch and fills its caches."""
    async with Student(url, query=QUERY):
        pass


if __name__ == "__main__":
    sys.exit(main())
