"""How long each preset takes on this machine, as the app trains it: the figure its Home card shows.

For every preset in sae_core/presets.json: load its data (the ALTERNATIVE dataset that the card opens when
the preset's own is not on disk, e.g. Fashion-MNIST for MNIST), build a `Trainer` and train to the preset's
length on one torch thread (the app gives each job one), in sections of --interval seconds with a snapshot
after each, as the app's `TrainingJob` does. Recorded per run, as wall-clock and as CPU seconds of this
process: loading the data (after one untimed load that pays the imports), building the trainer and
training (snapshots included), their sum, and the final metrics. On one thread the CPU seconds are what
the run takes on an otherwise idle core; on a shared machine the wall clock also counts the neighbours'
work, so the CPU figure (median over --repeats) is what `--write-presets` stores as the preset's
"seconds", the figure its card shows.

For bars it also records the first step at which every one of the 16 true bars is found: some unit's
normalised filter correlates above 0.9 with the bar. It checks every --check-every steps, off the clock.
For every dataset with known features it records, from the last snapshot, how many were found
(features_found, features_total) and for superposition the mean max cosine similarity (mmcs), and there
the first checked step at which 90 % of the features are found with MMCS ≥ 0.9 (off the clock too).

A preset listed in --limit (default ufldl-mnist=60: 400 full-batch L-BFGS iterations on 10 000 images) is
not run to the end: it runs that many steps and its time is extrapolated, the rest of the run at the
per-step rate of the second half of the short run (the first L-BFGS iterations search longer lines).

    PYTHONPATH=. python benchmarks/preset_times.py [--presets bars,quick-digits] [--repeats 3]
        [--out benchmarks/results/preset-times-NAME.json] [--write-presets]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from benchmarks.common import machine_info
from sae_core import presets
from sae_core.config.run import RunConfig
from sae_core.data import datasets as data
from sae_core.train import metrics
from sae_core.train.trainer import Trainer

BAR_MATCH = 0.9
SNAPSHOT_INTERVAL_S = 0.25  # TrainingJob's snapshot_interval: the app's cadence
DEFAULT_LIMITS = {"ufldl-mnist": 60}


def bars_found(filters: np.ndarray, size: int = 8) -> int:
    """How many of the 2·size true bars some unit's filter matches (Pearson correlation > BAR_MATCH)."""

    def unit_rows(m: np.ndarray) -> np.ndarray:
        m = m - m.mean(axis=1, keepdims=True)
        return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)

    corr = unit_rows(np.asarray(filters, np.float64)) @ unit_rows(data.bar_basis(size).double().numpy()).T
    return int((corr.max(axis=0) > BAR_MATCH).sum())


def targets_met(decoder: torch.Tensor, truth: torch.Tensor) -> bool:
    """Superposition's targets: at least 90 % of the true features found by a decoder column (cosine > 0.9)
    and a mean max cosine similarity of at least 0.9."""
    match = metrics.feature_match(decoder.T, truth, "cosine")
    return metrics.features_found(match) >= 0.9 * len(truth) and metrics.mmcs(match) >= 0.9


@dataclass
class Run:
    """One timed run of one preset."""

    load_s: float
    load_cpu_s: float
    train_s: float
    train_cpu_s: float
    steps: int
    """Steps actually taken (fewer than the preset's when limited)."""
    second_half_s: float
    second_half_cpu_s: float
    """Wall and CPU seconds of the second half of the steps (for the extrapolation)."""
    metrics: dict[str, float]
    all_bars_step: int | None = None
    truth: dict[str, float] = field(default_factory=dict)
    targets_step: int | None = None
    """Superposition: the first checked step with 90 % of the features found and MMCS ≥ 0.9."""
    """At the end, for data with known features: features_found, features_total (and mmcs for cosine)."""
    bars_at_end: int | None = None
    bars_by_step: dict[int, int] = field(default_factory=dict)

    def total(self, total_steps: int, cpu: bool) -> float:
        """Load + train, the training part extrapolated to total_steps when the run was limited."""
        load, train, half = (
            (self.load_cpu_s, self.train_cpu_s, self.second_half_cpu_s)
            if cpu
            else (self.load_s, self.train_s, self.second_half_s)
        )
        rate = half / (self.steps - self.steps // 2)
        return load + train + rate * max(0, total_steps - self.steps)


def time_preset(flat: dict, dataset: str, limit: int | None, interval: float, check_every: int) -> Run:
    cfg = RunConfig.from_flat({**flat, "dataset": dataset, "device": "cpu"})
    t0, c0 = time.perf_counter(), time.process_time()
    ds = data.load(cfg.data)
    run = Run(time.perf_counter() - t0, time.process_time() - c0, 0.0, 0.0, 0, 0.0, 0.0, {})

    t0, c0 = time.perf_counter(), time.process_time()
    trainer = Trainer(cfg, ds, "cpu")
    stop = min(limit or trainer.total_steps, trainer.total_steps)
    halfway, half_clock, half_cpu = stop // 2, None, 0.0
    bars = dataset == "bars"
    cosine = ds.ground_truth is not None and ds.truth_similarity == "cosine"
    off_clock, off_cpu = 0.0, 0.0  # seconds spent on the bar checks, taken out of the training time
    section_end = time.perf_counter() + interval
    while trainer.step_count < stop:
        nxt = [stop]
        if bars or cosine:
            nxt.append((trainer.step_count // check_every + 1) * check_every)
        if half_clock is None:
            nxt.append(halfway)
        trainer.advance(end=min(s for s in nxt if s > trainer.step_count), deadline=section_end)
        if time.perf_counter() >= section_end or trainer.step_count >= stop:
            snap = trainer.snapshot("done" if trainer.step_count >= stop else "running")
            section_end = time.perf_counter() + interval
        if half_clock is None and trainer.step_count >= halfway:
            half_clock, half_cpu = time.perf_counter() - off_clock, time.process_time() - off_cpu
        if bars and trainer.step_count % check_every == 0:
            w, c = time.perf_counter(), time.process_time()
            found = bars_found(trainer.model.filters().detach().numpy())
            run.bars_by_step[trainer.step_count] = found
            if found == 2 * 8 and run.all_bars_step is None:
                run.all_bars_step = trainer.step_count
            off_clock += time.perf_counter() - w
            off_cpu += time.process_time() - c
        if cosine and run.targets_step is None and trainer.step_count % check_every == 0:
            w, c = time.perf_counter(), time.process_time()
            if targets_met(trainer.model.dictionary().detach(), ds.ground_truth):
                run.targets_step = trainer.step_count
            off_clock += time.perf_counter() - w
            off_cpu += time.process_time() - c
    end, end_cpu = time.perf_counter() - off_clock, time.process_time() - off_cpu
    run.train_s, run.train_cpu_s, run.steps = end - t0, end_cpu - c0, trainer.step_count
    run.second_half_s = end - (half_clock if half_clock is not None else t0)
    run.second_half_cpu_s = end_cpu - (half_cpu if half_clock is not None else c0)
    run.metrics = {k: round(v, 4) for k, v in snap.metrics.items()}
    run.truth = metrics.truth_summary(snap.truth_match, snap.truth_similarity)
    if bars:
        run.bars_at_end = bars_found(snap.encoder_weight)
    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", default="", help="comma-separated names (default: all)")
    ap.add_argument("--repeats", type=int, default=1, help="runs per preset; the median is published")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the app: 1 per job)")
    ap.add_argument("--interval", type=float, default=SNAPSHOT_INTERVAL_S, help="seconds between snapshots")
    ap.add_argument("--check-every", type=int, default=50, help="bars: steps between checks")
    ap.add_argument(
        "--limit", action="append", default=[], metavar="NAME=STEPS", help="run only STEPS and extrapolate"
    )
    ap.add_argument(
        "--out", default=None, help="JSON file (default benchmarks/results/preset-times-DATE.json)"
    )
    ap.add_argument("--write-presets", action="store_true", help="store the rounded seconds in presets.json")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    limits = dict(DEFAULT_LIMITS)
    for item in args.limit:
        name, _, steps = item.partition("=")
        limits[name] = int(steps)
    loaded = presets.load_presets()
    names = [n for n in args.presets.split(",") if n] or list(loaded)
    info = machine_info(torch.device("cpu"))
    print(json.dumps(info), flush=True)
    results = {}
    for name in names:
        preset = loaded[name]
        dataset = presets.dataset_to_open(preset)
        if not data.availability(dataset)[0]:
            print(f"{name}: {dataset} is not on disk here, skipped", flush=True)
            continue
        total_steps = preset.config.train.steps
        limit = limits.get(name)
        data.load(RunConfig.from_flat({**preset.flat, "dataset": dataset}).data)  # imports, file cache
        runs = [
            time_preset(preset.flat, dataset, limit, args.interval, args.check_every)
            for _ in range(args.repeats)
        ]
        cpu = [r.total(total_steps, cpu=True) for r in runs]
        wall = [r.total(total_steps, cpu=False) for r in runs]
        results[name] = {
            "dataset": dataset,
            "steps": total_steps,
            "steps_run": runs[0].steps,
            "extrapolated": runs[0].steps < total_steps,
            "seconds": round(statistics.median(cpu), 2),
            "wall_seconds": round(statistics.median(wall), 2),
            "runs": [
                {**r.__dict__, "total_cpu_s": round(c, 2), "total_wall_s": round(w, 2)}
                for r, c, w in zip(runs, cpu, wall, strict=True)
            ],
        }
        bars = [r.all_bars_step for r in runs] if dataset == "bars" else None
        print(
            f"{name:14} {dataset:15} {runs[0].steps:4d}/{total_steps:<4d} steps  CPU "
            + ", ".join(f"{t:.1f}" for t in cpu)
            + " s  wall "
            + ", ".join(f"{t:.1f}" for t in wall)
            + " s"
            + ("  (extrapolated)" if runs[0].steps < total_steps else "")
            + (f"  all 16 bars at step {bars}" if bars else "")
            + "".join(f"  {k} {v:.3g}" for k, v in runs[0].truth.items())
            + (f"  targets met at step {[r.targets_step for r in runs]}" if "mmcs" in runs[0].truth else ""),
            flush=True,
        )
    load_after = f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "n/a"
    out = args.out or f"benchmarks/results/preset-times-{time.strftime('%Y%m%d-%H%M')}.json"
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"machine": info, "load_average_1min_after": load_after, "args": vars(args),
                   "presets": results}, f, indent=1)  # fmt: skip
    print(f"wrote {out}")
    if args.write_presets:
        write_seconds(results)
    return 0


def write_seconds(results: dict) -> None:
    """Store each measured preset's seconds in presets.json (to 0.1 s under 10 s, else whole seconds)."""
    raw = json.loads(presets.PRESETS_FILE.read_text(encoding="utf-8"))
    for name, result in results.items():
        seconds = result["seconds"]
        raw[name]["seconds"] = round(seconds, 1) if seconds < 10 else round(seconds)
        if result["extrapolated"]:
            raw[name]["extrapolated"] = True
        else:
            raw[name].pop("extrapolated", None)
    presets.PRESETS_FILE.write_text(json.dumps(raw, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"updated {presets.PRESETS_FILE}")


if __name__ == "__main__":
    sys.exit(main())
