"""A 4 × 4 ρ × β sweep trained batched (sae_core.sweep.trainer) against the same 16 runs one after another
(Trainer).

Two problems, both Adam, batch 128, ρ ∈ {0.01, 0.05, 0.1, 0.2} × β ∈ {0, 1, 3, 10}:
  digits  64 → 25 on scikit-learn's 8×8 digits (1437 training images): per-step cost is mostly overhead.
          Target: batched ≤ 0.15 × sequential.
  mnist   784 → 196 on Fashion-MNIST (60 000 images; 10 000 seeded random images in [0, 1] when it is not on
          disk), λ = 3e-3: per-step cost is mostly matmuls. Target: batched ≤ 0.5 × sequential.

Both arms do the whole job: the sequential arm builds each Trainer and runs `Trainer.run()` (snapshots every
--snapshot-every steps and at the end); the batched arm builds one SweepTrainer and advances it, taking a
SweepSnapshot at the same cadence. Before timing, a short run checks that the two give the same weights.
The arms run interleaved (a warm-up, then --rounds rounds in rotating order, benchmarks.common) with the
same torch thread count and the same heap (freed memory kept, as in a `sae` command, unless --glibc-heap);
we publish the ratio of the medians.

    PYTHONPATH=. python benchmarks/sweep.py [--threads 2] [--rounds 3] [--cases digits,mnist] [--json F]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from benchmarks.common import interleaved, machine_info, median
from sae_core.config.run import RunConfig
from sae_core.data import datasets as data
from sae_core.data.datasets import Dataset
from sae_core.sweep.trainer import SweepSpec, SweepTrainer
from sae_core.train.heap import keep_freed_memory
from sae_core.train.trainer import Trainer

RHOS = (0.01, 0.05, 0.1, 0.2)
BETAS = (0.0, 1.0, 3.0, 10.0)
CASES = {
    "digits": {"hidden": 25, "steps": 600, "target": 0.15},
    "mnist": {"hidden": 196, "steps": 60, "target": 0.5, "rho": 0.1, "weight_decay": 3e-3},
}
CHECK_STEPS = 20
CHECK_TOLERANCE = 1e-4


def dataset_of(case: str) -> tuple[Dataset, str]:
    if case == "digits":
        return data.load(RunConfig().data), "digits"
    if data.availability("fashion-mnist")[0]:
        return data.load(RunConfig().replace(dataset="fashion-mnist").data), "fashion-mnist"
    x = torch.rand(11000, 784, generator=torch.Generator().manual_seed(0))
    return Dataset("upload", x[:10000], x[10000:], None, None, (28, 28)), "random 784-dim"


def base_config(case: str, steps: int, snapshot_every: int) -> RunConfig:
    settings = {k: v for k, v in CASES[case].items() if k not in ("steps", "target")}
    return RunConfig().replace(
        **settings, batch_size=128, optimizer="adam", device="cpu", steps=steps, snapshot_every=snapshot_every
    )


def sequential(spec: SweepSpec, dataset: Dataset) -> list[Trainer]:
    trainers = []
    for cfg in spec.cells():
        trainer = Trainer(cfg, dataset, device="cpu")
        for _ in trainer.run():
            pass
        trainers.append(trainer)
    return trainers


def batched(spec: SweepSpec, dataset: Dataset) -> SweepTrainer:
    sweeper = SweepTrainer(spec, dataset, device="cpu")
    every = spec.base.train.snapshot_every
    while not sweeper.finished:
        sweeper.advance(max_steps=every - sweeper.step_count % every)
        sweeper.snapshot()
    return sweeper


def same_weights(case: str, dataset: Dataset, every: int) -> float:
    spec = SweepSpec(base_config(case, CHECK_STEPS, every), RHOS, BETAS)
    sweeper = batched(spec, dataset)
    worst = 0.0
    for i, trainer in enumerate(sequential(spec, dataset)):
        for key, value in trainer.model.state_dict().items():
            worst = max(worst, float((sweeper.cell_state(i)[key] - value).abs().max()))
    return worst


def timed(fn, case: str, dataset: Dataset, every: int):
    def run(steps: int) -> float:
        spec = SweepSpec(base_config(case, steps, every), RHOS, BETAS)
        t0 = time.perf_counter()
        fn(spec, dataset)
        return time.perf_counter() - t0

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads, both arms")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", default="digits,mnist")
    parser.add_argument("--snapshot-every", type=int, default=200)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every case's step count")
    parser.add_argument("--json", metavar="OUT", help="write every timing and the machine here")
    parser.add_argument(
        "--glibc-heap",
        action="store_true",
        help="keep glibc's default heap; without it the process keeps freed memory as `sae` commands do "
        "(sae_core.train.heap), for both arms",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not args.glibc_heap:
        keep_freed_memory()
    report = {"machine": machine_info(torch.device("cpu")), "args": vars(args), "cases": {}}
    print(json.dumps(report["machine"]))
    for case in args.cases.split(","):
        dataset, source = dataset_of(case)
        steps = max(1, round(CASES[case]["steps"] * args.scale))
        diff = same_weights(case, dataset, args.snapshot_every)
        print(f"{case} ({source}): largest weight difference after {CHECK_STEPS} steps {diff:.1e}")
        if diff > CHECK_TOLERANCE:
            print(f"{case}: batched and sequential weights differ by {diff:g}", file=sys.stderr)
            return 1
        arms = {
            "sequential": timed(sequential, case, dataset, args.snapshot_every),
            "batched": timed(batched, case, dataset, args.snapshot_every),
        }
        times = interleaved(arms, steps, args.rounds, warmup_steps=max(2, steps // 10))
        ratio = median(times["batched"]) / median(times["sequential"])
        rounds = [b / s for b, s in zip(times["batched"], times["sequential"], strict=True)]
        target = CASES[case]["target"]
        verdict = "meets" if ratio <= target else "misses"
        print(
            f"{case}: {steps} steps × 16 cells; sequential median {median(times['sequential']):.2f} s, "
            f"batched {median(times['batched']):.2f} s, ratio {ratio:.3f} ({verdict} the target ≤ {target}); "
            f"per round {', '.join(f'{r:.3f}' for r in rounds)}"
        )
        report["cases"][case] = {
            "data": source,
            "steps": steps,
            "times": times,
            "ratio": ratio,
            "round_ratios": rounds,
            "target": target,
            "max_weight_difference": diff,
        }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
