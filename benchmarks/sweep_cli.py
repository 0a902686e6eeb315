"""`sae sweep` end to end, as a user waits for it, against the same runs trained one after another.

The sweep arm runs the command in a fresh interpreter (`python -m sae_core sweep ... --out DIR`: imports,
data, training, the table and every cell's folder) and times it from outside; one interpreter start-up
(`python -c pass`, measured in the same round) is taken off, since the sequential arm is timed inside a
process that has already started. The sequential arm trains each cell's config with its own `Trainer`
in this process, one after another, to the end, with a snapshot every --snapshot-every steps as a run
does (its imports and data are already loaded: the comparison favours it).

Two problems, Adam, batch 128, ρ ∈ {0.01, 0.05, 0.1, 0.2} × β ∈ {0, 1, 3, 10}:
  digits  64 → 25 on scikit-learn's digits, 2,000 steps. Target: the command ≤ 0.15 × sequential.
  mnist   784 → 196 on Fashion-MNIST (random images when it is not on disk), 200 steps, λ = 3e-3.
          Target: ≤ 0.5 × sequential.
Each arm runs with its own default thread count, as a user gets them: the command with every core (what
`sae sweep` uses; --threads N sets $SAE_TORCH_THREADS for it), the runs with one torch thread (what `sae
train` and the app use; --run-threads) in a process that keeps its freed memory as `sae` commands do.
The arms alternate round by round (benchmarks.common.interleaved); we publish the ratio of the medians,
and the command's own breakdown (training seconds from sweep.json, the rest: imports, data, files).

    PYTHONPATH=. python benchmarks/sweep_cli.py [--rounds 3] [--cases digits,mnist] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import interleaved, machine_info, median
from benchmarks.sweep import BETAS, RHOS, dataset_of
from sae_core.config.run import RunConfig
from sae_core.sweep.trainer import SweepSpec
from sae_core.train.heap import keep_freed_memory
from sae_core.train.trainer import Trainer

CASES = {
    "digits": {"flags": ["--hidden", "25"], "steps": 2000, "target": 0.15, "settings": {"hidden": 25}},
    "mnist": {
        "flags": ["--dataset", "fashion-mnist", "--hidden", "196", "--weight-decay", "3e-3"],
        "steps": 200,
        "target": 0.5,
        "settings": {"dataset": "fashion-mnist", "hidden": 196, "weight_decay": 3e-3},
    },
}
SNAPSHOT_EVERY = 200


def command(case: str, steps: int, out: Path) -> list[str]:
    grid = ["--rho", ",".join(map(str, RHOS)), "--beta", ",".join(map(str, BETAS))]
    train = ["--steps", str(steps), "--batch-size", "128", "--device", "cpu"]
    return [
        sys.executable,
        "-m",
        "sae_core",
        "sweep",
        *grid,
        *CASES[case]["flags"],
        *train,
        "--quiet",
        "--out",
        str(out),
    ]


def run_command(args: list[str], threads: int | None = None) -> float:
    """Seconds the command takes; threads: $SAE_TORCH_THREADS for it (None: unset, the command's default)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("SAE_TORCH_THREADS", None)
    if threads is not None:
        env["SAE_TORCH_THREADS"] = str(threads)
    t0 = time.perf_counter()
    subprocess.run(args, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def base_config(case: str, steps: int) -> RunConfig:
    """The config every cell of the case's grid shares, as the command's flags give it."""
    return RunConfig().replace(
        **CASES[case]["settings"], batch_size=128, steps=steps, device="cpu", snapshot_every=SNAPSHOT_EVERY
    )


def sequential(case: str, steps: int, dataset) -> float:
    """Seconds to train the grid's 16 configs one after another, each with its own Trainer."""
    base = base_config(case, steps)
    if case == "mnist" and dataset.name != "fashion-mnist":
        base = base.replace(dataset="digits")  # only the config's dataset name; the data is the random set
    t0 = time.perf_counter()
    for cfg in SweepSpec(base, RHOS, BETAS).cells():
        trainer = Trainer(cfg, dataset, device="cpu")
        for _ in trainer.run():
            pass
    return time.perf_counter() - t0


def measure(case: str, steps: int, dataset, threads: int | None, rounds: int) -> dict[str, list[float]]:
    """Both arms, interleaved: "sweep" (the command less a start-up) and "sequential" seconds per round,
    with the sweep's "startup" and "training" seconds beside them."""
    extra: dict[str, list[float]] = {"startup": [], "training": []}  # the warm-up's first
    with tempfile.TemporaryDirectory() as tmp:

        def sweep_arm(n: int) -> float:
            out = Path(tmp) / f"run{len(extra['startup'])}"
            startup = run_command([sys.executable, "-c", "pass"])
            took = run_command(command(case, n, out), threads)
            extra["startup"].append(startup)
            extra["training"].append(json.loads((out / "sweep.json").read_text())["seconds"])
            return took - startup

        arms = {"sweep": sweep_arm, "sequential": lambda n: sequential(case, n, dataset)}
        times = interleaved(arms, steps, rounds, warmup_steps=max(2, steps // 10))
    return {**times, **{name: values[1:] for name, values in extra.items()}}  # the warm-up's left out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--threads", type=int, help="$SAE_TORCH_THREADS for the command (default: unset, every core)"
    )
    parser.add_argument(
        "--run-threads",
        type=int,
        default=1,
        help="torch threads of the sequential runs (default 1, as a run)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", default="digits,mnist")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every case's step count")
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.run_threads)
    keep_freed_memory()  # the runs' process keeps its freed memory as `sae train`'s would
    report = {"machine": machine_info(torch.device("cpu")), "args": vars(args), "cases": {}}
    print(json.dumps(report["machine"]))
    for case in args.cases.split(","):
        dataset, source = dataset_of(case)
        if case == "mnist" and source != "fashion-mnist":
            print("mnist: Fashion-MNIST is not on disk; the command needs it, skipping", file=sys.stderr)
            continue
        steps = max(1, round(CASES[case]["steps"] * args.scale))
        times = measure(case, steps, dataset, args.threads, args.rounds)
        ratio = median(times["sweep"]) / median(times["sequential"])
        target = CASES[case]["target"]
        verdict = "meets" if ratio <= target else "misses"
        print(
            f"{case} ({source}): 16 cells × {steps} steps; sequential {median(times['sequential']):.2f} s, "
            f"sae sweep {median(times['sweep']):.2f} s less start-up (of which training "
            f"{median(times['training']):.2f} s), ratio {ratio:.3f} ({verdict} the target ≤ {target}); per "
            f"round {', '.join(f'{s / q:.3f}' for s, q in zip(times['sweep'], times['sequential'], strict=True))}"  # noqa: E501
        )
        report["cases"][case] = {
            "data": source,
            "steps": steps,
            "times": times,
            "ratio": ratio,
            "target": target,
        }
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
