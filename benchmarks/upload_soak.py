"""Uploads soak: browser sessions upload a big .npy and close; what do the server's memory and disk keep?

Starts the app (offline) with a short disconnected-session TTL (2 s); for --rounds rounds opens --sessions
headless Chromium sessions on Train with the upload dataset, uploads one --mb MB .npy in each (waiting for
the page to say it loaded), closes them all, then reads the server's resident memory and the bytes under
the uploads folder every 5 s for --settle-s seconds; at the end opens one more session and reads them
again once the reaper has had a round (Streamlit forgets expired sessions only when its session store is
next used).

    PYTHONPATH=. python benchmarks/upload_soak.py [--sessions 3] [--rounds 2] [--mb 146] [--json out.json]

Measured on a busy 2-core machine (2026-12-07), three sessions with a 146 MB .npy each, server resident
memory: before (main at 6397d63) 667 MB at the start, 2108 MB with the uploads, 1637 MB and 438 MB on disk
65 s after the sessions closed; with the uploads freed at the session's end (379d0b5) 598, 1654 and
1039 MB, 0 MB on disk: each ended session's uploader value stayed with its session. Since b2daf18, two
rounds: 605 MB at the start, 1658 and 1636 MB with the uploads, 744 and 748 MB after each round, 751 MB
after one more session; the 146 MB over the start is what the first Train page costs a server once
(benchmarks/README.md, "A class server's memory and slots").
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tests.browser_helpers import CHROMIUM, launch_chromium, process_usage, streamlit_server, warm_up

UPLOADER = ".st-key-upload_file input[type=file]"
UPLOAD_ROOT = Path(tempfile.gettempdir()) / "sae-playground-uploads"


def disk_mb(root: Path = UPLOAD_ROOT) -> float:
    """MB of the files under the uploads root (every server's folder; older versions wrote into it)."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 2**20 if root.exists() else 0.0


def upload_round(browser, url: str, pid: int, data: Path, args) -> dict:
    """--sessions sessions upload `data` on Train and close; the server's (MB, MB on disk) with the uploads
    and every 5 s for --settle-s seconds after they closed."""
    contexts = []
    for _ in range(args.sessions):
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(300_000)
        page.goto(f"{url}/train?dataset=upload&hidden=4")
        page.locator(UPLOADER).set_input_files(data)
        page.get_by_text(f"Loaded {data.name}:").first.wait_for()
        contexts.append(context)
    reading = {"uploaded": (round(process_usage(pid)[0]), round(disk_mb()))}
    print(f"file {data.stat().st_size / 2**20:.0f} MB; uploaded {reading['uploaded']}", flush=True)
    for context in contexts:
        context.close()
    closed = time.monotonic()
    reading["after"] = []
    while (elapsed := time.monotonic() - closed) < args.settle_s:
        time.sleep(5.0)  # a sampling period
        rss, disk = process_usage(pid)[0], disk_mb()
        reading["after"].append((round(elapsed), round(rss), round(disk)))
        print(
            f"{elapsed:5.0f} s after closing: server {rss:.0f} MB, uploads on disk {disk:.0f} MB", flush=True
        )
    return reading


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=3)
    parser.add_argument("--mb", type=float, default=146.0)
    parser.add_argument("--settle-s", type=float, default=70.0)
    parser.add_argument("--rounds", type=int, default=1, help="rounds of --sessions uploads on one server")
    parser.add_argument("--json", help="also write the readings to this JSON file")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"needs Chromium at {CHROMIUM}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    side = 28
    rows = int(args.mb * 2**20 / (4 * side * side))
    data = Path(tempfile.mkdtemp()) / "big.npy"
    np.save(data, np.random.default_rng(0).random((rows, side, side), dtype=np.float32))
    env = {"STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL": "2"}
    readings: dict = {"file_mb": round(data.stat().st_size / 2**20, 1)}
    with sync_playwright() as p, streamlit_server(120, env=env) as (url, server):
        browser = launch_chromium(p)
        warm_up(browser, url, 120)
        readings["start"] = (process_usage(server.pid)[0], disk_mb())
        readings["rounds"] = []
        for i in range(args.rounds):
            readings["rounds"].append(upload_round(browser, url, server.pid, data, args))
            print(f"round {i + 1}: {readings['rounds'][-1]}", flush=True)
        context = browser.new_context()
        context.new_page().goto(f"{url}/train")
        time.sleep(8.0)  # one reaper period (5 s) and the session's first run
        readings["after_next_session"] = (round(process_usage(server.pid)[0]), round(disk_mb()))
        print(f"after one more session: server {readings['after_next_session'][0]} MB")
        context.close()
        browser.close()
    data.unlink()
    if args.json:
        Path(args.json).write_text(json.dumps(readings, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
