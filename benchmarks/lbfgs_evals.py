"""L-BFGS in the trainer before and after `sae_core.train.lbfgs.LBFGSStepper`: objective evaluations and time.

The problem is the `ufldl-natural` preset (natural-patches 8x8, 25 sigmoid units, ρ 0.01, β 3, λ 1e-4,
full-batch L-BFGS at lr 1), trained for --steps iterations three ways from the same initial weights, in
one process:

  old       what the trainer did before: torch.optim.LBFGS(max_iter=1) with one step(closure) call per
            trainer step; every call evaluates the objective at its starting point again
  trainer   sae_core.train.trainer.Trainer.advance() (one LBFGSStepper step per trainer step, no snapshots)
  single    one torch.optim.LBFGS(max_iter=steps) call: the evaluations L-BFGS itself needs

Evaluations are counted by a forward hook on the model (one per evaluation of the objective), so the
count does not rely on the trainer's own bookkeeping. The final objective of each is printed: the trainer
must end where one long call ends. Timing, of the optimisation loop only (building the model and the
trainer is outside the clock): a warm-up run of each, then --rounds rounds in rotating order; medians of
wall-clock and of process CPU seconds (on one thread, less disturbed by a neighbour's load) and the
ratios old / trainer are printed, with the load average before and after.

    PYTHONPATH=. python benchmarks/lbfgs_evals.py [--steps 200] [--rounds 3] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from benchmarks.common import machine_info, median
from sae_core import presets
from sae_core.config.run import RunConfig
from sae_core.data import datasets as data
from sae_core.train.objective import loss_terms
from sae_core.train.trainer import Trainer

PRESET = "ufldl-natural"


def preset_config(steps: int) -> RunConfig:
    flat = {**presets.get(PRESET).flat, "steps": steps, "snapshot_every": steps, "device": "cpu"}
    return RunConfig.from_flat(flat)


def objective_of(model: torch.nn.Module, x: torch.Tensor, cfg: RunConfig) -> torch.Tensor:
    return loss_terms(model, x, model(x), cfg.model)["total"]


def counted(model: torch.nn.Module) -> list[int]:
    calls = [0]
    model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def run_torch(cfg: RunConfig, dataset: data.Dataset, per_step: bool) -> dict[str, float]:
    """The old trainer path (per_step: max_iter=1, one call per step) or one long call, timed."""
    trainer = Trainer(cfg, dataset, device="cpu")  # same seed, so the same initial weights as the trainer's
    model, x, steps = trainer.model, trainer.x, cfg.train.steps
    optimizer = torch.optim.LBFGS(
        model.parameters(),
        lr=cfg.train.lr,
        max_iter=1 if per_step else steps,
        max_eval=25 if per_step else 25 * steps,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = objective_of(model, x, cfg)
        loss.backward()
        return loss

    calls = counted(model)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps if per_step else 1):
        optimizer.step(closure)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return finish(model, x, cfg, calls, seconds, cpu)


def run_trainer(cfg: RunConfig, dataset: data.Dataset) -> dict[str, float]:
    trainer = Trainer(cfg, dataset, device="cpu")
    calls = counted(trainer.model)
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.advance()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return finish(trainer.model, trainer.x, cfg, calls, seconds, cpu)


def finish(
    model: torch.nn.Module, x: torch.Tensor, cfg: RunConfig, calls: list[int], seconds: float, cpu: float
) -> dict:
    evaluations = calls[0]
    with torch.no_grad():
        final = float(objective_of(model, x, cfg))
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "evaluations": evaluations,
        "final_objective": final,
        "samples_per_second": evaluations * x.shape[0] / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = preset_config(args.steps)
    dataset = data.load(cfg.data)
    runs = {
        "old": lambda c: run_torch(c, dataset, per_step=True),
        "trainer": lambda c: run_trainer(c, dataset),
        "single": lambda c: run_torch(c, dataset, per_step=False),
    }
    load_before = os.getloadavg()
    for run in runs.values():  # warm-up: allocators, first-call costs
        run(preset_config(5))
    results: dict[str, list[dict]] = {name: [] for name in runs}
    names = list(runs)
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            results[name].append(runs[name](cfg))
    load_after = os.getloadavg()

    info = machine_info(torch.device("cpu"))
    print(f"{PRESET}, {args.steps} L-BFGS iterations, {len(dataset.train)} samples, {args.rounds} rounds")
    print(f"machine: {info}")
    print(f"load average before {load_before}, after {load_after}")
    header = f"{'run':<8} {'evaluations':>11} {'median s':>9} {'median CPU s':>12} {'samples/s':>10}"
    print(f"{header} {'final objective':>16}  seconds")
    summary = {}
    for name, rows in results.items():
        seconds = median([row["seconds"] for row in rows])
        cpu = median([row["cpu_seconds"] for row in rows])
        evaluations = rows[0]["evaluations"]
        final = rows[0]["final_objective"]
        per_second = median([row["samples_per_second"] for row in rows])
        spread = ", ".join(f"{row['seconds']:.2f}" for row in rows)
        numbers = f"{evaluations:>11} {seconds:>9.2f} {cpu:>12.2f} {per_second:>10,.0f} {final:>16.10f}"
        print(f"{name:<8} {numbers}  {spread}")
        summary[name] = {
            "median_seconds": seconds,
            "median_cpu_seconds": cpu,
            "evaluations": evaluations,
            "final_objective": final,
        }
    old, new = summary["old"], summary["trainer"]
    ratio_time = old["median_seconds"] / new["median_seconds"]
    ratio_cpu = old["median_cpu_seconds"] / new["median_cpu_seconds"]
    ratio_evals = old["evaluations"] / new["evaluations"]
    per_round = [o["seconds"] / t["seconds"] for o, t in zip(results["old"], results["trainer"], strict=True)]
    rounds = ", ".join(f"{v:.2f}" for v in per_round)
    print(
        f"old / trainer: time {ratio_time:.2f}x (per round {rounds}), CPU time {ratio_cpu:.2f}x, "
        f"evaluations {ratio_evals:.2f}x"
    )
    gap = new["final_objective"] - summary["single"]["final_objective"]
    print(f"trainer - single final objective: {gap:.3g}")
    if args.json:
        payload = {
            "machine": info,
            "args": vars(args),
            "load_average_before": load_before,
            "load_average_after": load_after,
            "runs": results,
            "summary": summary,
            "old_over_trainer_time": ratio_time,
            "old_over_trainer_cpu_time": ratio_cpu,
            "old_over_trainer_evaluations": ratio_evals,
        }
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=2)


if __name__ == "__main__":
    main()
