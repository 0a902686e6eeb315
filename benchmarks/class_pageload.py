"""A class opening the link together: how long until every student's browser has the page's files?

A browser's first visit fetches Streamlit's frontend files (about 120 for the Train page) before the page
can draw. This script takes the list from one real visit (headless Chromium, the Train page on the
default preset, every /static/ file it fetched), then lets --students simulated students fetch the page
and that list at the same moment, each over 6 connections as a browser does, and times the wall clock
until the last student has every file.

Two arms, on a fresh server each, alternating round by round:
  streamlit   `SAE_STATIC_MEMORY=0`: Streamlit's own static-file handler answers;
  memory      the app as shipped: sae_core/serve/static_memory.py answers from memory.
We publish the median over rounds of each arm and the ratio memory / streamlit (lower is better).

Caveat: the students are threads of this process on the same machine, so they share the server's CPU,
as the browsers do in live_latency.py; on a real class's own laptops the server would have the machine
to itself and both arms would be faster.

    PYTHONPATH=. python benchmarks/class_pageload.py [--students 20] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import torch
from playwright.sync_api import sync_playwright

from benchmarks.common import machine_info
from sae_core.serve.static_memory import ENV_VAR
from tests.browser_helpers import VIEWPORT, launch_chromium, open_train, streamlit_server

ARMS = {"streamlit": {ENV_VAR: "0"}, "memory": {}}
CONNECTIONS = 6
"""Connections a browser opens to one host over HTTP/1.1 (Chromium's limit)."""


def page_files(url: str) -> list[str]:
    """The /static/ files a fresh Chromium fetches to draw the Train page, as paths ("/static/js/...")."""
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_context(viewport=VIEWPORT).new_page()
            open_train(page, url)
            page.wait_for_timeout(2000)  # the widgets' files, loaded as the page first draws them
            names = page.evaluate("() => performance.getEntriesByType('resource').map((r) => r.name)")
        finally:
            browser.close()
    paths = {n[len(url) :] for n in names if n.startswith(url + "/static/")}
    return sorted(paths)


def fetch(url: str) -> int:
    with urllib.request.urlopen(url, timeout=120) as answer:
        return len(answer.read())


def student(url: str, files: list[str]) -> float:
    """One browser's first visit: the page, then its files over CONNECTIONS connections; seconds."""
    t0 = time.perf_counter()
    fetch(f"{url}/train")
    with ThreadPoolExecutor(CONNECTIONS) as pool:
        sizes = list(pool.map(fetch, [url + f for f in files]))
    if min(sizes) == 0:
        raise RuntimeError("a file came back empty")
    return time.perf_counter() - t0


def one_class(arm: str, files: list[str], students: int) -> dict[str, float]:
    with streamlit_server(env=ARMS[arm]) as (url, _):
        student(url, files)  # one visit first: both arms then read the files from the OS's cache
        t0 = time.perf_counter()
        with ThreadPoolExecutor(students) as pool:
            each = list(pool.map(lambda _: student(url, files), range(students)))
        return {"all": time.perf_counter() - t0, "median_student": statistics.median(each)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    info = machine_info(torch.device("cpu"))
    print(json.dumps(info))
    with streamlit_server() as (url, _):
        files = page_files(url)
    print(f"the Train page's files: {len(files)}")
    runs: dict[str, list[dict[str, float]]] = {arm: [] for arm in ARMS}
    for r in range(args.rounds):
        order = list(ARMS) if r % 2 == 0 else list(ARMS)[::-1]
        for arm in order:
            result = one_class(arm, files, args.students)
            runs[arm].append(result)
            print(
                f"round {r + 1} {arm}: {args.students} students, all files in {result['all']:.2f} s "
                f"(median student {result['median_student']:.2f} s)",
                flush=True,
            )
    medians = {arm: statistics.median(x["all"] for x in runs[arm]) for arm in ARMS}
    ratio = medians["memory"] / medians["streamlit"]
    print(
        f"{args.students} students, every file: Streamlit's handler {medians['streamlit']:.2f} s, "
        f"from memory {medians['memory']:.2f} s (median of {args.rounds}); ratio {ratio:.2f}"
    )
    if args.json:
        out = {"machine": info, "students": args.students, "files": files, "runs": runs, "medians": medians}
        with open(args.json, "w") as f:
            json.dump({**out, "ratio": ratio}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
