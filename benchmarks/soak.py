"""Soak: browser sessions come, train and go; does the server give their threads and memory back?

Starts the app (offline) with a short disconnected-session TTL, then for --rounds rounds opens
--sessions headless Chromium sessions on Train, presses Train in each, lets them train --train-s
seconds, closes them and watches the server for --settle-s seconds. Prints the server's resident
memory and thread count (from /proc) before, at the peak of each round and after it. Each session's run
has a data seed of its own (its own copy of the data) unless --shared-data; with --sweeps each session
trains a 2 × 2 sweep on Explore instead (digits, 9 units). Uploads: benchmarks/upload_soak.py.

    PYTHONPATH=. python benchmarks/soak.py [--rounds 5] [--sessions 4] [--sweeps] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

from tests.browser_helpers import (
    CHROMIUM,
    VIEWPORT,
    click_button,
    launch_chromium,
    process_usage,
    session_soak,
    streamlit_server,
    wait_until,
    warm_up,
)

QUERY = "dataset=bars&n_bars=100000&steps=100000"
SWEEP_PROGRESS = ".st-key-live_views [data-testid='stProgress']"


def sweep_step(page) -> int | None:
    """The step on the Explore page's progress line ('training · step 120 / 600 · ...'), else None."""
    texts = page.locator(SWEEP_PROGRESS).all_inner_texts()
    match = re.search(r"step\s*([\d,]+)\s*/", texts[0]) if texts else None
    return int(match.group(1).replace(",", "")) if match else None


def start_sweep_sessions(browser, url: str, sessions: int, query) -> tuple[list, list]:
    """Open `sessions` browser sessions on Explore, start a 2 × 2 ρ × β sweep in each (query: ignored),
    and wait until every one has taken a step; (their contexts, their pages)."""
    contexts, pages = [], []
    for _ in range(sessions):
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        page.goto(f"{url}/explore")
        page.locator(".st-key-sweep_rhos input").wait_for(timeout=90_000)
        for key, text in (("sweep_rhos", "0.05, 0.2"), ("sweep_betas", "0, 3"), ("sweep_steps", "100000")):
            page.locator(f".st-key-{key} input").fill(text)
        click_button(page, "sweep_train")
        contexts.append(context)
        pages.append(page)
    for page in pages:
        wait_until(lambda page=page: (s := sweep_step(page)) and s > 0 and s, 120, "every sweep to train")
    return contexts, pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--train-s", type=float, default=5.0)
    parser.add_argument("--settle-s", type=float, default=20.0)
    parser.add_argument("--query", default=QUERY, help="Train page settings of every session")
    parser.add_argument(
        "--shared-data",
        action="store_true",
        help="every session on the same dataset (one shared copy); else each has a data seed of its own",
    )
    parser.add_argument("--sweeps", action="store_true", help="each session trains a sweep on Explore")
    parser.add_argument("--json", help="also write the readings to this JSON file")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"needs Chromium at {CHROMIUM}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    env = {"STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL": "2", "SAE_MAX_JOBS": str(args.sessions)}
    rounds = []
    with sync_playwright() as p, streamlit_server(120, env=env) as (url, server):
        browser = launch_chromium(p)
        warm_up(browser, url, 120)
        start = process_usage(server.pid)
        print(f"start: {start[0]:.0f} MB, {start[1]} threads")
        for i in range(args.rounds):
            query = args.query if args.shared_data else (lambda i: f"{args.query}&data_seed={i + 1}")
            kind = {"start": start_sweep_sessions, "step_of": sweep_step} if args.sweeps else {}
            r = session_soak(
                browser, url, server.pid, args.sessions, query, args.train_s, args.settle_s, **kind
            )
            rounds.append(r)
            print(
                f"round {i + 1}: peak {r['during'][0]:.0f} MB / {r['during'][1]} threads "
                f"({r['during'][2]} training), after {r['after'][0]:.0f} MB / {r['after'][1]} threads "
                f"({r['after'][2]} training), steps {r['steps']}"
            )
        browser.close()
    result = {"start": start, "rounds": rounds, "args": vars(args), "load": os.getloadavg()}
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
