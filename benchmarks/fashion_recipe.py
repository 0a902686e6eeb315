"""The UFLDL MNIST recipe with Adam and a cosine learning-rate schedule: the exact recipe's probe score in
seconds, with margin, on Fashion-MNIST.

`fashion_probe.py` found Adam at lr 0.01 on batches of 64 levelling off about 0.2 point under the exact
L-BFGS recipe's 83.4% (the `fashion-fast` preset); this script measures settings that decay the learning
rate along a cosine to 0 at the run's end (`lr_schedule` "cosine"), against that preset in the same run.
Same data and probe as fashion_probe.py (Fashion-MNIST, `max_samples` 10 000, the Applications page's
logistic probe on the codes of the 10 000 training images scored on the 10 000 test images), one torch
thread. Each candidate is trained from scratch in one go (a schedule depends on the run's length, so no
checkpoints), with seeds 0 and 1; the candidates take turns, seed by seed, so the load falls on all alike.
The clock covers `Trainer.advance` only, as CPU seconds of this process and as wall seconds.

    PYTHONPATH=. python benchmarks/fashion_recipe.py --json benchmarks/results/fashion-recipe.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from benchmarks.common import machine_info
from benchmarks.fashion_probe import Probe, recipe, roughness
from sae_core.config.run import RunConfig
from sae_core.data import datasets as data
from sae_core.train.trainer import Trainer

BASELINE = "fashion-fast: b64, 1200 steps, constant"
ADAM = {"optimizer": "adam", "lr": 0.01}
CANDIDATES = {  # name -> (settings over the ufldl-mnist preset, steps)
    BASELINE: ({**ADAM, "batch_size": 64}, 1200),
    "b64, 1200 steps, cosine": ({**ADAM, "batch_size": 64, "lr_schedule": "cosine"}, 1200),
    "b64, 1200 steps, cosine, lr 0.02": (
        {**ADAM, "batch_size": 64, "lr": 0.02, "lr_schedule": "cosine"},
        1200,
    ),
    "b64, 2000 steps, cosine": ({**ADAM, "batch_size": 64, "lr_schedule": "cosine"}, 2000),
    "b128, 1500 steps, cosine": ({**ADAM, "batch_size": 128, "lr_schedule": "cosine"}, 1500),
    "b128, 2000 steps, cosine": ({**ADAM, "batch_size": 128, "lr_schedule": "cosine"}, 2000),
}
TARGET = 0.834
"""The exact recipe's accuracy (400 L-BFGS iterations, mean of seeds 0 and 1: fashion_probe.py's run)."""


def train_once(settings: dict, steps: int, seed: int, dataset: data.Dataset, judge: Probe) -> dict:
    flat = recipe({**settings, "seed": seed}, steps)
    trainer = Trainer(RunConfig.from_flat(flat), dataset, "cpu")
    t0, c0 = time.perf_counter(), time.process_time()
    status = trainer.advance()
    cpu_s, wall_s = time.process_time() - c0, time.perf_counter() - t0
    accuracy = judge.codes(trainer.model) if status != "diverged" else float("nan")
    return {
        "seed": seed,
        "cpu_s": round(cpu_s, 2),
        "wall_s": round(wall_s, 2),
        "accuracy": accuracy,
        "status": status,
        "roughness": round(roughness(trainer.model), 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    info = {**machine_info(torch.device("cpu")), "load_average_start": os.getloadavg()}
    dataset = data.load(RunConfig.from_flat(recipe({}, 1)).data)
    judge = Probe(dataset)
    runs: dict[str, list] = {name: [] for name in CANDIDATES}
    for seed in (int(s) for s in args.seeds.split(",")):
        for name, (settings, steps) in CANDIDATES.items():
            runs[name].append(train_once(settings, steps, seed, dataset, judge))
            r = runs[name][-1]
            print(f"{name:34} seed {seed}: CPU {r['cpu_s']:5.1f} s  wall {r['wall_s']:5.1f} s  "
                  f"probe {r['accuracy']:.2%}", flush=True)  # fmt: skip
    base_cpu = sum(r["cpu_s"] for r in runs[BASELINE]) / len(runs[BASELINE])
    table = {}
    for name, rs in runs.items():
        cpu = sum(r["cpu_s"] for r in rs) / len(rs)
        table[name] = {
            "settings": CANDIDATES[name][0],
            "steps": CANDIDATES[name][1],
            "mean_accuracy": sum(r["accuracy"] for r in rs) / len(rs),
            "min_accuracy": min(r["accuracy"] for r in rs),
            "mean_cpu_s": round(cpu, 2),
            "mean_wall_s": round(sum(r["wall_s"] for r in rs) / len(rs), 2),
            "cpu_over_baseline": round(cpu / base_cpu, 2),
            "runs": rs,
        }
        print(f"{name:34} mean {table[name]['mean_accuracy']:.2%} (min {table[name]['min_accuracy']:.2%}), "
              f"CPU {cpu:.1f} s = {cpu / base_cpu:.2f}× the baseline's", flush=True)  # fmt: skip
    out = {"machine": info, "load_average_end": os.getloadavg(), "target": TARGET, "candidates": table}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
