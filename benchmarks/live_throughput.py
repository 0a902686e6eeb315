"""Training throughput while a browser watches the run, against the same run with nobody watching.

One config, the default preset (bars 64 -> 16, batch 1000, Adam lr 0.1, ρ 0.1, β 3), run four ways:
  trainer   Trainer.step() in a loop, losses synced every 50 steps: training and nothing else
  cli       Trainer.run() as `sae train` uses it: a snapshot (probe forward pass) every 50 steps
  job       TrainingJob in this process: the app's background thread, snapshots every 0.25 s, no UI
  browser   the app itself: `streamlit run app.py` with a headless Chromium on the Train page, which
            reruns its live-views fragment twice a second; rate read from the page's step count
Each measurement is a window of --seconds; the four alternate in rotating order for --rounds rounds
(only one trains at a time: the others are paused), so machine noise hits all of them alike. The
browser rate comes from the step counts the page shows and the page's clock at each change, i.e.
what a viewer sees. Target: browser / trainer >= 0.9.

It also times the pieces that can slow the app's run down, in this process: one snapshot
(Trainer.snapshot, which the job takes under its lock every 0.25 s) and one redraw's figure building.

    PYTHONPATH=. python benchmarks/live_throughput.py [--seconds 8] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable

import torch

from benchmarks.common import machine_info
from sae_core.config.run import RunConfig
from sae_core.data import datasets as data
from sae_core.figures import training as figures
from sae_core.presets import DEFAULT_PRESET, get
from sae_core.serve.jobs import TrainingJob
from sae_core.train.trainer import Trainer
from tests.browser_helpers import (
    CHROMIUM,
    PROGRESS,
    VIEWPORT,
    click_button,
    launch_chromium,
    open_train,
    progress,
    streamlit_app,
    wait_until,
    warm_up,
)

TARGET = 0.9
DEADLINE_S = 90.0
LONG_STEPS = 10_000_000  # never reached: every run is stopped by its window
SYNC_EVERY = 50

# Keeps window.__steps = [[performance.now() ms, step, app's samples/s], ...], one entry per change.
RECORDER_JS = f"""() => {{
    window.__steps = [];
    let last = null;
    const read = () => {{
        const text = document.querySelector('{PROGRESS}')?.innerText ?? '';
        const m = /step\\s*([\\d,]+).*?([\\d,]+)\\s*samples\\/s/.exec(text);
        if (!m) return;
        const step = parseInt(m[1].replace(/,/g, ''), 10);
        if (step === last) return;
        last = step;
        window.__steps.push([performance.now(), step, parseInt(m[2].replace(/,/g, ''), 10)]);
    }};
    const options = {{subtree: true, childList: true, characterData: true}};
    new MutationObserver(read).observe(document.body, options);
}}"""


def run_config() -> RunConfig:
    return RunConfig.from_flat({**get(DEFAULT_PRESET).flat, "steps": LONG_STEPS})


# ----- in-process variants -------------------------------------------------------------------------------
def trainer_window(trainer: Trainer, seconds: float) -> float:
    """Steps/s of bare Trainer.step() with a loss sync every SYNC_EVERY steps."""
    n0, t0 = trainer.step_count, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(SYNC_EVERY):
            trainer.step()
        trainer.sync()
    return (trainer.step_count - n0) / (time.perf_counter() - t0)


def cli_window(trainer: Trainer, seconds: float) -> float:
    """Steps/s of Trainer.run(), which snapshots every config.train.snapshot_every steps (as the CLI)."""
    n0, t0 = trainer.step_count, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in trainer.run(steps=trainer.config.train.snapshot_every):
            pass
    return (trainer.step_count - n0) / (time.perf_counter() - t0)


def job_window(job: TrainingJob, seconds: float) -> float:
    """Steps/s of the app's TrainingJob thread with nobody drawing its snapshots."""
    job.start()
    n0, t0 = job.step_count, time.perf_counter()
    time.sleep(seconds)  # the measurement window itself; the thread trains meanwhile
    n1, t1 = job.step_count, time.perf_counter()
    job.latest()
    job.pause()
    return (n1 - n0) / (t1 - t0)


# ----- the browser ----------------------------------------------------------------------------------------
def browser_window(page, seconds: float) -> tuple[float, float]:
    """Resume the app's run, record the page's step counts for `seconds`, pause it.

    Returns (steps/s seen on the page, the app's own samples/s figure at the end of the window).
    """
    page.evaluate("() => { window.__steps = []; }")
    click_button(page, "train")  # labelled Resume after the first window
    wait_until(lambda: (p := progress(page)) and p.status == "training", DEADLINE_S, "training")
    page.wait_for_timeout(seconds * 1000)  # the measurement window itself
    entries = page.evaluate("() => window.__steps")
    click_button(page, "pause")
    wait_until(lambda: (p := progress(page)) and p.status == "paused", DEADLINE_S, "the run to pause")
    # Drop the first change: it may show a snapshot from before the resume.
    entries = entries[1:]
    if len(entries) < 3:
        raise RuntimeError(f"only {len(entries)} step updates in {seconds} s: is the page refreshing?")
    (t_first, s_first, _), (t_last, s_last, app_rate) = entries[0], entries[-1]
    return (s_last - s_first) / ((t_last - t_first) / 1000), float(app_rate)


# ----- costs of the pieces --------------------------------------------------------------------------------
def median_ms(fn: Callable[[], object], repeats: int = 15) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def piece_costs(trainer: Trainer) -> dict[str, float]:
    """Milliseconds for one snapshot, one redraw's figures (filters, ρ̂ histogram, loss curves, metrics)."""
    snap = trainer.snapshot()

    def redraw() -> None:
        figures.filters_figure(snap, "encoder").to_plotly_json()
        figures.rho_hat_histogram(snap).to_plotly_json()
        figures.loss_figure(snap, log_y=True).to_plotly_json()
        figures.metrics_row(snap)

    steps = 200
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    trainer.sync()
    step_ms = 1000 * (time.perf_counter() - t0) / steps
    return {
        "step_ms": step_ms,
        "snapshot_ms": median_ms(trainer.snapshot),
        "redraw_figures_ms": median_ms(redraw),
    }


# ----- main -----------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="length of one measurement window")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all four variants (default 3)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"needs Chromium at {CHROMIUM}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    cfg = run_config()
    dataset = data.load(cfg.data)
    batch = cfg.train.batch_size
    trainer, cli_trainer = Trainer(cfg, dataset), Trainer(cfg, dataset)
    job = TrainingJob(cfg, dataset)
    rates: dict[str, list[float]] = {"trainer": [], "cli": [], "job": [], "browser": []}
    app_reported: list[float] = []
    with sync_playwright() as p:
        browser = launch_chromium(p)
        with streamlit_app(deadline_s=DEADLINE_S) as url:
            warm_up(browser, url, DEADLINE_S)
            page = browser.new_context(viewport=VIEWPORT).new_page()
            open_train(page, url, f"steps={LONG_STEPS}", timeout_s=DEADLINE_S)
            page.evaluate(RECORDER_JS)

            def browser_variant(seconds: float) -> float:
                rate, app_rate = browser_window(page, seconds)
                app_reported.append(app_rate)
                return rate

            variants: dict[str, Callable[[float], float]] = {
                "trainer": lambda s: trainer_window(trainer, s),
                "cli": lambda s: cli_window(cli_trainer, s),
                "job": lambda s: job_window(job, s),
                "browser": browser_variant,
            }
            for fn in variants.values():  # warm-up: allocators, caches, the first fragment runs
                fn(min(2.0, args.seconds))
            names = list(variants)
            for r in range(args.rounds):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    rates[name].append(variants[name](args.seconds))
                print("round", r + 1, {k: f"{v[-1] * batch:,.0f} samples/s" for k, v in rates.items()})
        browser.close()
    job.stop()

    med = {name: statistics.median(v) * batch for name, v in rates.items()}
    costs = piece_costs(Trainer(cfg, dataset))
    result = {
        "benchmark": "live_throughput",
        "preset": DEFAULT_PRESET,
        "window_s": args.seconds,
        "rounds": args.rounds,
        "samples_per_s_median": med,
        "samples_per_s_runs": {k: [x * batch for x in v] for k, v in rates.items()},
        "app_reported_samples_per_s": app_reported,
        "ratio_browser_to_trainer": med["browser"] / med["trainer"],
        "ratio_browser_to_cli": med["browser"] / med["cli"],
        "ratio_browser_to_job": med["browser"] / med["job"],
        "ratio_job_to_trainer": med["job"] / med["trainer"],
        "target": TARGET,
        "costs_ms": costs,
        "machine": machine_info(torch.device("cpu")),
    }
    for name, value in med.items():
        print(f"{name:8s} {value:10,.0f} samples/s (median of {len(rates[name])})")
    ratio = result["ratio_browser_to_trainer"]
    print(
        f"browser / trainer = {ratio:.3f} (target >= {TARGET}: {'met' if ratio >= TARGET else 'NOT met'}); "
        f"browser / cli = {result['ratio_browser_to_cli']:.3f}; "
        f"browser / job = {result['ratio_browser_to_job']:.3f}; "
        f"job / trainer = {result['ratio_job_to_trainer']:.3f}"
    )
    print(
        f"one step {costs['step_ms']:.2f} ms, one snapshot {costs['snapshot_ms']:.1f} ms, "
        f"one redraw's figures {costs['redraw_figures_ms']:.1f} ms"
    )
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
