"""A class on one server: how many students can train at once with the page still answering in 1 s?

Starts the app offline (one server, $SAE_MAX_JOBS set to the largest class size tried, so nobody
queues), then for each class size n opens n headless Chromium sessions on Train with the default preset
run until paused, presses Train in each and, while they all train, measures:
  steps/s per student   from each page's progress line over --window seconds (what a student sees);
  answer                in one more session, paused: seconds from a click on Step to the page showing
                        the new step count (a full rerun of the Train page), median of --clicks clicks.
Target: answer <= 1 s.

Caveat: every student's Chromium runs on this machine too, redrawing its live charts twice a second,
so on a 2-core box the browsers take much of the CPU a real class's own laptops would spend. First run,
2026-12-02 (load 3.7-12): 1 student 258 steps/s and a 2.7 s answer, 2 students 116 steps/s and 2.3 s,
4 students 45 steps/s and 4.0 s. Not yet the figure issue 9 asks for: that needs a client that speaks
Streamlit's websocket without a browser, or the browsers on another machine.

    PYTHONPATH=. python benchmarks/class_load.py [--sizes 1,2,4,6] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from tests.browser_helpers import (
    CHROMIUM,
    VIEWPORT,
    click_button,
    launch_chromium,
    open_train,
    progress,
    start_training_sessions,
    streamlit_app,
    wait_until,
    warm_up,
)

QUERY = "steps=0"  # the default preset (bars), trained until paused
TARGET_S = 1.0


def step_answer(page, clicks: int) -> float:
    """Median seconds from a Step click to the page showing the step after it."""
    times = []
    for _ in range(clicks):
        before = progress(page).step
        start = time.perf_counter()
        click_button(page, "step")
        wait_until(lambda b=before: (p := progress(page)) and p.step > b, 60, "the stepped picture", 0.02)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(browser, url: str, students: int, window_s: float, clicks: int) -> dict:
    contexts, pages = start_training_sessions(browser, url, students, QUERY)
    first = [(progress(page).step, time.perf_counter()) for page in pages]
    watcher = browser.new_context(viewport=VIEWPORT)
    teacher = watcher.new_page()
    open_train(teacher, url, QUERY)
    answer = step_answer(teacher, clicks)
    time.sleep(max(0.0, window_s - (time.perf_counter() - first[0][1])))  # the rest of the window
    rates = []
    for page, (step0, t0) in zip(pages, first, strict=True):
        rates.append((progress(page).step - step0) / (time.perf_counter() - t0))
    for context in [*contexts, watcher]:
        context.close()
    return {
        "students": students,
        "steps_per_s_median": statistics.median(rates),
        "steps_per_s_min": min(rates),
        "answer_s": answer,
        "load": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,2,4,6", help="class sizes to try, comma-separated")
    parser.add_argument("--window", type=float, default=8.0, help="seconds over which step rates are read")
    parser.add_argument("--clicks", type=int, default=3, help="Step clicks timed per class size")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"needs Chromium at {CHROMIUM}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with sync_playwright() as p, streamlit_app(120, env={"SAE_MAX_JOBS": str(max(sizes))}) as url:
        browser = launch_chromium(p)
        warm_up(browser, url, 120)
        for n in sizes:
            rows.append(measure(browser, url, n, args.window, args.clicks))
            r = rows[-1]
            verdict = "ok" if r["answer_s"] <= TARGET_S else "too slow"
            print(
                f"{n} students: {r['steps_per_s_median']:.0f} steps/s each "
                f"(slowest {r['steps_per_s_min']:.0f}), page answers in {r['answer_s']:.2f} s ({verdict}), "
                f"load {r['load']:.1f}"
            )
        browser.close()
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"rows": rows, "target_s": TARGET_S, "args": vars(args)}, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
