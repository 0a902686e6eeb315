"""How far `sae sweep` can fall: its fixed costs and the fastest batched step in reach, against the same
16 runs one after another.

Issue 19 asks `sae sweep` of a ρ × β 4 × 4 grid (batch 128) to take at most 0.15 of the 16 runs trained
one after another in one process on digits (64 → 25, 2,000 steps), and at most 0.5 on Fashion-MNIST
(784 → 196, 200 steps, λ 3e-3); benchmarks/sweep_cli.py measures both. This script measures, in one run
per case, what bounds those ratios from below on this machine:

  sequential   the 16 cells' configs, each trained to the end by its own `Trainer.run()` (one torch
               thread, as `sae train` and the app run), as benchmarks/sweep_cli.py's sequential arm;
  engine       the sweep's own training of the grid (`SweepTrainer`, 13 models: the β = 0 column's four
               cells are one run), a snapshot every 200 steps, eager steps (a fresh `sae sweep` of these
               lengths does not trace: sae_core.sweep.traced.MIN_STEPS_COLD), on every core;
  floor        a hand-written step of the same 13 models with a leading cell axis, the design the issue
               names first: the shared batch's encoder as one matrix product for every cell, the
               decoders as one batched product, the objective (½·mean‖x̂ − x‖² + β·Σ KL + (λ/2)·Σ‖W‖²) as
               tensor arithmetic, autograd's backward and torch's fused Adam. It has no snapshots, no loss
               history, no divergence checks and no data loader: none of the engine's bookkeeping, so no
               implementation of that design can step faster than this on this machine. Timed at one
               thread and at every core; the faster counts.
  fixed        what the command spends outside training, measured in fresh interpreters: `import
               torch` (less a bare interpreter start-up), and the whole command's wall time less
               start-up and less the training seconds it reports.

The best the command could reach is then (fixed + the floor's training) / sequential, printed beside the
target. The in-process arms alternate round by round (benchmarks.common.interleaved).

    PYTHONPATH=. python benchmarks/sweep_floor.py [--rounds 3] [--cases digits,mnist] [--json F]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import interleaved, machine_info, median
from benchmarks.sweep import BETAS, RHOS, dataset_of
from benchmarks.sweep_cli import CASES, SNAPSHOT_EVERY, base_config, command, run_command
from benchmarks.sweep_cli import sequential as sequential_runs
from sae_core.config.run import RunConfig
from sae_core.sweep.trainer import SweepSpec, SweepTrainer
from sae_core.train.heap import keep_freed_memory
from sae_core.train.threads import all_cores


def spec_of(case: str, steps: int) -> SweepSpec:
    return SweepSpec(base_config(case, steps), RHOS, BETAS)


def engine(case: str, dataset, threads: int):
    def run(steps: int) -> float:
        torch.set_num_threads(threads)
        try:
            sweeper = SweepTrainer(spec_of(case, steps), dataset, device="cpu")
            for block in sweeper.blocks:
                block.trace = False  # as a fresh `sae sweep` of this length
            t0 = time.perf_counter()
            while not sweeper.finished:
                sweeper.advance(max_steps=SNAPSHOT_EVERY - sweeper.step_count % SNAPSHOT_EVERY)
                sweeper.snapshot()
            return time.perf_counter() - t0
        finally:
            torch.set_num_threads(1)

    return run


def trained_cells(case: str) -> list[RunConfig]:
    """The cells the sweep trains (one per β = 0 column)."""
    spec = spec_of(case, 1)
    return [c for i, c in enumerate(spec.cells()) if spec.twins()[i] == i]


def floor(case: str, dataset, threads: int):
    """The hand-written step of the grid's trained cells (see the module's docstring), `steps` of them."""
    cells = trained_cells(case)
    x = dataset.train
    g, d, h, b = len(cells), x.shape[1], cells[0].model.hidden, 128
    rho = torch.tensor([c.model.rho for c in cells]).view(g, 1)
    beta = torch.tensor([c.model.beta for c in cells])
    lam = torch.tensor([c.model.weight_decay for c in cells])
    decays = bool((lam > 0).any())

    def run(steps: int) -> float:
        torch.set_num_threads(threads)
        try:
            gen = torch.Generator().manual_seed(0)
            r = 6**0.5 / (d + h + 1) ** 0.5
            w1 = (torch.rand(d, g * h, generator=gen) * 2 * r - r).requires_grad_()
            b1 = torch.zeros(g * h, requires_grad=True)
            w2 = (torch.rand(g, h, d, generator=gen) * 2 * r - r).requires_grad_()
            b2 = torch.zeros(g, 1, d, requires_grad=True)
            opt = torch.optim.Adam([w1, b1, w2, b2], lr=0.01, fused=True)
            t0 = time.perf_counter()
            for _ in range(steps):
                xb = x.index_select(0, torch.randint(0, x.shape[0], (b,), generator=gen))
                code = torch.sigmoid(torch.addmm(b1, xb, w1)).view(b, g, h).transpose(0, 1)  # [G, B, H]
                recon = torch.sigmoid(torch.baddbmm(b2, code, w2))  # [G, B, D]
                loss = ((recon - xb) ** 2).sum(dim=(1, 2)) * (0.5 / b)
                q = code.mean(dim=1).clamp(1e-6, 1 - 1e-6)
                kl = (rho * torch.log(rho / q) + (1 - rho) * torch.log((1 - rho) / (1 - q))).sum(dim=1)
                loss = loss + beta * kl
                if decays:
                    norms = (w1**2).view(d, g, h).sum(dim=(0, 2)) + (w2**2).sum(dim=(1, 2))
                    loss = loss + 0.5 * lam * norms
                opt.zero_grad(set_to_none=True)
                loss.sum().backward()
                opt.step()
            return time.perf_counter() - t0
        finally:
            torch.set_num_threads(1)

    return run


def fixed_costs(case: str, steps: int, rounds: int) -> dict[str, list[float]]:
    """Seconds of `import torch` and of the command outside training, each less a bare start-up."""
    out: dict[str, list[float]] = {"import_torch": [], "outside_training": [], "command": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            startup = run_command([sys.executable, "-c", "pass"])
            out["import_torch"].append(run_command([sys.executable, "-c", "import torch"]) - startup)
            folder = Path(tmp) / f"run{r}"
            took = run_command(command(case, steps, folder)) - startup
            training = json.loads((folder / "sweep.json").read_text())["seconds"]
            out["command"].append(took)
            out["outside_training"].append(took - training)
    return out


def measure(case: str, rounds: int) -> dict:
    """Every arm at the case's full length: each run's fixed costs (building it, its snapshots) are part of
    what a user waits for, so shorter arms could not be scaled up to it."""
    dataset, source = dataset_of(case)
    steps = CASES[case]["steps"]
    cores = all_cores()
    arms = {
        "sequential": lambda n: sequential_runs(case, n, dataset),
        "engine": engine(case, dataset, cores),
        "floor_1_thread": floor(case, dataset, 1),
        f"floor_{cores}_threads": floor(case, dataset, cores),
    }
    times = interleaved(arms, steps, rounds, warmup_steps=max(2, steps // 10))
    fixed = fixed_costs(case, steps, rounds)
    seq_s = median(times["sequential"])
    floor_1 = median(times["floor_1_thread"])
    floor_n = median(times[f"floor_{cores}_threads"])
    floor_s = min(floor_1, floor_n)
    engine_s = median(times["engine"])
    outside = median(fixed["outside_training"])
    target = CASES[case]["target"]
    summary = {
        "data": source,
        "steps": steps,
        "models": len(trained_cells(case)),
        "sequential_s": seq_s,
        "engine_training_s": engine_s,
        "floor_training_s": floor_s,
        "floor_1_thread_s": floor_1,
        f"floor_{cores}_threads_s": floor_n,
        "import_torch_s": median(fixed["import_torch"]),
        "command_s": median(fixed["command"]),
        "outside_training_s": outside,
        "command_ratio": median(fixed["command"]) / seq_s,
        "best_ratio": (outside + floor_s) / seq_s,
        "target": target,
    }
    best = summary["best_ratio"]
    print(
        f"{case} ({source}, {steps} steps): 16 runs one after another {seq_s:.2f} s; the engine trains the "
        f"grid in {engine_s:.2f} s ({engine_s / steps * 1e3:.2f} ms a step), the floor in {floor_s:.2f} s "
        f"({floor_s / steps * 1e3:.2f} ms a step; 1 thread {floor_1:.2f} s, {cores} threads {floor_n:.2f} s)"
    )
    print(
        f"  sae sweep: {summary['command_s']:.2f} s less start-up (ratio {summary['command_ratio']:.3f}), of "
        f"which {outside:.2f} s outside training ({summary['import_torch_s']:.2f} s of it import torch)"
    )
    verdict = "within" if best <= target else "above"
    room = target * seq_s - outside
    print(
        f"  best reachable: ({outside:.2f} + {floor_s:.2f}) / {seq_s:.2f} = {best:.3f}, {verdict} the target "
        f"{target}; the target leaves {room:.2f} s for training ({room / steps * 1e3:.2f} ms a step)"
    )
    return {"times": times, "fixed": fixed, "summary": summary}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", default="digits,mnist")
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    keep_freed_memory()  # as `sae` commands do
    report = {"machine": machine_info(torch.device("cpu")), "args": vars(args), "cases": {}}
    print(json.dumps(report["machine"]))
    for case in args.cases.split(","):
        if case == "mnist" and dataset_of(case)[1] != "fashion-mnist":
            print("mnist: Fashion-MNIST is not on disk; the command needs it, skipping", file=sys.stderr)
            continue
        report["cases"][case] = measure(case, args.rounds)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
