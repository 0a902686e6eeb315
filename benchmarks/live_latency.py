"""Latency from pressing Train to the first updated view, measured in a real headless Chromium.

Starts `streamlit run app.py` (offline), opens the Train page on the default preset (bars, 64 -> 16,
batch 1000, Adam) in a fresh browser session per repeat, and installs a MutationObserver before the
click. The click time is the page's performance.now() in a capture-phase click listener; the observer
stamps the first moment the filter montage's heatmap data differ from what was shown before the click,
and the first moment the progress line shows a step above 0. (Before the first step and while training the
montage is a plain picture, not a plot (sae_core/figures/static.py): its PNG is what changes.)
Target: the filters change within 1 s of the click.

Three figures:
  warm         --repeats sessions on one server, after an untimed first session (the steady state);
  first click  --fresh-servers times a new server each: open the Train page, press Train once. This is
               the click a visitor feels; the server warms torch, the optimizer and plotly up as it starts,
               before it listens (sae_core/serve/startup.py), and the page is opened the moment the server
               answers, as a visitor would.
  cold page    on each of those fresh servers, the seconds from opening the Train page to the page ready
               to use: the Train button enabled, the progress line and the filter montage drawn.
               Target: at most 2.5 s on a quiet machine (COLD_PAGE_TARGET_S).

With --baseline-checkout DIR (another revision's checkout, e.g. from `git worktree add DIR REV`), each
fresh-server round also starts a server from DIR, in alternating order, and the cold page and the first
click are reported for both and as a ratio (this machine's timings drift by 10-20% within minutes, so a
change is judged against a baseline measured in the same run).

    PYTHONPATH=. python benchmarks/live_latency.py [--repeats 7] [--fresh-servers 3] [--json out.json]
        [--baseline-checkout DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from benchmarks.common import machine_info
from sae_core.presets import DEFAULT_PRESET, get
from tests.browser_helpers import (
    CHROMIUM,
    FILTERS_PICTURE,
    FILTERS_SIGNATURE_JS,
    PROGRESS,
    ROOT,
    VIEWPORT,
    click_button,
    launch_chromium,
    open_train,
    progress,
    streamlit_app,
    wait_until,
    warm_up,
)

TARGET_S = 1.0
COLD_PAGE_TARGET_S = 2.5
READY_JS = f"""() => !!document.querySelector('{FILTERS_PICTURE}')
    && !!document.querySelector('{PROGRESS}')
    && document.querySelector('.st-key-train button') !== null
    && !document.querySelector('.st-key-train button').disabled"""
DEADLINE_S = 90.0

# Stamps window.__latency.{click, rerun, filters, step} (ms, performance.now()): rerun is when the page
# shows the Train button disabled (the click's full script rerun has arrived). The observer compares the
# pictures (the heatmap's z data, or the plain picture's PNG), not DOM churn, so a redraw of the same
# picture does not count as an update.
OBSERVER_JS = f"""() => {{
    const signature = {FILTERS_SIGNATURE_JS};
    const step = () => {{
        const m = /step\\s*([\\d,]+)/.exec(document.querySelector('{PROGRESS}')?.innerText ?? '');
        return m ? parseInt(m[1].replace(/,/g, ''), 10) : null;
    }};
    const trainDisabled = () => !!document.querySelector('.st-key-train button')?.disabled;
    const lat = {{click: null, rerun: null, filters: null, step: null, baseline: signature()}};
    window.__latency = lat;
    document.addEventListener('click', (event) => {{
        if (lat.click === null && event.target.closest('.st-key-train')) lat.click = performance.now();
    }}, true);
    const check = () => {{
        if (lat.click === null) return;
        const now = performance.now();
        if (lat.rerun === null && trainDisabled()) lat.rerun = now;
        if (lat.filters === null && signature() !== lat.baseline) lat.filters = now;
        if (lat.step === null && (step() ?? 0) > 0) lat.step = now;
        if (lat.filters !== null && lat.step !== null) observer.disconnect();
    }};
    const observer = new MutationObserver(check);
    const options = {{subtree: true, childList: true, attributes: true, characterData: true}};
    observer.observe(document.body, options);
}}"""


def measure_once(browser, url: str) -> dict[str, float]:
    """One fresh session: open Train (timed to the page ready to use: `page`), press Train; seconds from
    the click to each first update."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    try:
        start = time.perf_counter()
        ready = open_train(page, url, timeout_s=DEADLINE_S)
        page.wait_for_function(READY_JS, timeout=DEADLINE_S * 1000, polling=20)
        page_s = time.perf_counter() - start
        if (ready.status, ready.step) != ("ready", 0):
            raise RuntimeError(f"expected a fresh run, found {ready}")
        page.evaluate(OBSERVER_JS)
        click_button(page, "train")
        page.wait_for_function(
            "() => ['rerun', 'filters', 'step'].every((k) => window.__latency[k] !== null)",
            timeout=DEADLINE_S * 1000,
        )
        lat = page.evaluate("() => window.__latency")
        click_button(page, "pause")  # stop this session's thread before the next repeat
        wait_until(lambda: (p := progress(page)) and p.status != "training", 60, "the run to pause")
        clicks = {name: (lat[name] - lat["click"]) / 1000 for name in ("rerun", "filters", "step")}
        return {"page": page_s, **clicks}
    finally:
        context.close()


def preset_description() -> str:
    """The preset a fresh Train page opens on, in words (it is the one timed)."""
    flat = get(DEFAULT_PRESET).flat
    return (
        f"{DEFAULT_PRESET} ({flat['dataset']}, {flat['hidden']} hidden, batch {flat['batch_size']}, "
        f"{flat['optimizer']} lr {flat['lr']:g})"
    )


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="fresh sessions to time (default 7)")
    parser.add_argument("--fresh-servers", type=int, default=3, help="first clicks, one new server each")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument(
        "--baseline-checkout",
        type=Path,
        help="another checkout: its fresh servers, interleaved, as a baseline",
    )
    args = parser.parse_args(argv)
    if args.baseline_checkout is not None and not (args.baseline_checkout / "app.py").is_file():
        print(f"--baseline-checkout {args.baseline_checkout}: no app.py there", file=sys.stderr)
        return 2
    if not CHROMIUM.exists():
        print(f"needs Chromium at {CHROMIUM}", file=sys.stderr)
        return 2

    from playwright.sync_api import sync_playwright

    runs, first, baseline = [], [], []
    arms = [("this checkout", ROOT, first)]
    if args.baseline_checkout is not None:
        arms.append(("baseline", args.baseline_checkout.resolve(), baseline))
    with sync_playwright() as p:
        browser = launch_chromium(p)
        for i in range(args.fresh_servers):
            for name, root, out in arms if i % 2 == 0 else arms[::-1]:
                with streamlit_app(deadline_s=DEADLINE_S, root=root) as url:
                    out.append(measure_once(browser, url))
                print(
                    f"fresh server {i + 1} ({name}): "
                    + ", ".join(f"{k} {v:.3f} s" for k, v in out[-1].items())
                )
        with streamlit_app(deadline_s=DEADLINE_S) as url:
            warm_up(browser, url, DEADLINE_S)
            measure_once(browser, url)  # untimed: the first Train also loads the data and builds caches
            for i in range(args.repeats):
                runs.append(measure_once(browser, url))
                print(f"repeat {i + 1}: " + ", ".join(f"{k} {v:.3f} s" for k, v in runs[-1].items()))
        browser.close()

    result = {
        "benchmark": "live_latency",
        "what": "seconds from the Train click to the first changed filter montage / step count in Chromium",
        "preset": preset_description(),
        "target_s": TARGET_S,
        "filters_s": summary([r["filters"] for r in runs]),
        "step_s": summary([r["step"] for r in runs]),
        "rerun_s": summary([r["rerun"] for r in runs]),
        "runs": runs,
        "first_click_filters_s": summary([r["filters"] for r in first]) if first else None,
        "cold_page_s": summary([r["page"] for r in first]) if first else None,
        "cold_page_target_s": COLD_PAGE_TARGET_S,
        "first_click_runs": first,
        "machine": machine_info(torch.device("cpu")),
    }
    if baseline:
        result["baseline"] = {
            "checkout": str(args.baseline_checkout),
            "cold_page_s": summary([r["page"] for r in baseline]),
            "first_click_filters_s": summary([r["filters"] for r in baseline]),
            "first_click_runs": baseline,
        }
        result["cold_page_ratio"] = (
            result["cold_page_s"]["median"] / result["baseline"]["cold_page_s"]["median"]
        )
    f, s = result["filters_s"], result["step_s"]
    if first:
        fc, cold = result["first_click_filters_s"], result["cold_page_s"]
        print(
            f"cold Train page of a fresh server -> ready to use: median {cold['median']:.3f} s "
            f"(min {cold['min']:.3f}, max {cold['max']:.3f}); target <= {COLD_PAGE_TARGET_S:g} s: "
            f"{'met' if cold['median'] <= COLD_PAGE_TARGET_S else 'NOT met'}"
        )
        print(
            f"first click of a fresh server -> filters changed: median {fc['median']:.3f} s "
            f"(min {fc['min']:.3f}, max {fc['max']:.3f}); target <= {TARGET_S:g} s: "
            f"{'met' if fc['median'] <= TARGET_S else 'NOT met'}"
        )
    if baseline:
        b = result["baseline"]["cold_page_s"]
        print(
            f"baseline ({args.baseline_checkout}) cold Train page: median {b['median']:.3f} s "
            f"(min {b['min']:.3f}, max {b['max']:.3f}); "
            f"this checkout / baseline: {result['cold_page_ratio']:.3f}"
        )
    print(
        f"click -> filters changed: median {f['median']:.3f} s (min {f['min']:.3f}, max {f['max']:.3f}); "
        f"click -> step > 0: median {s['median']:.3f} s; "
        f"click -> buttons redrawn: median {result['rerun_s']['median']:.3f} s; "
        f"target <= {TARGET_S:g} s: "
        f"{'met' if f['median'] <= TARGET_S else 'NOT met'}"
    )
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
