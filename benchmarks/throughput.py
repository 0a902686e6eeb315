"""Trainer throughput against a hand-written PyTorch loop that optimises the same objective.

Two problems:
  mnist-shaped  784 -> 196, batch 256, 10 000 random images in [0, 1] (seeded; the shape and cost of
                the ufldl-mnist preset, which keeps 10 000 MNIST images, without the download).
                Reported in samples/s.
  digits        64 -> 25, batch 128, scikit-learn's 8x8 digits (the classroom preset), where the
                cost per step is mostly Python and dispatch overhead. Reported in steps/s.

Three ways to train each, all with Adam and the same sigmoid autoencoder and objective
½·mean‖x̂ − x‖² + β·Σ KL(ρ‖ρ̂) + (λ/2)(‖W₁‖² + ‖W₂‖²):
  bare        the minimal loop: data in one tensor, a randperm per epoch, slices of the shuffled copy
  trainer     sae_core.train.trainer.Trainer.run(), snapshots included (every --snapshot-every steps)
  dataloader  the bare loop fed by DataLoader(TensorDataset(x), shuffle=True)

The variants run interleaved (warm-up, then --rounds rounds in rotating order) in one process and
the script prints medians and ratios of medians. Before timing it checks that the bare loop and the
trainer compute the same thing: from the same weights and batch order, their weights after a few
steps must agree.

    PYTHONPATH=. python benchmarks/throughput.py [--quick] [--device cpu|cuda|auto] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from benchmarks.common import interleaved, machine_info, median, synchronize
from sae_core.config.run import DataConfig, ModelConfig, RunConfig, TrainConfig
from sae_core.data.datasets import Dataset, load
from sae_core.train.trainer import Trainer, resolve_device

EPS = 1e-6  # the clamp on ρ̂ that sae_core.train.objective uses too
CHECK_STEPS = 30
CHECK_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Case:
    """One problem to time."""

    name: str
    hidden: int
    batch: int
    rho: float
    beta: float
    lam: float
    lr: float
    steps: int
    """Steps per timed run: a whole number of epochs, so the bare loop's per-epoch shuffle is paid fairly."""
    quick_steps: int
    """Steps per timed run with --quick."""
    unit: str
    """What the target is stated in: samples/s or steps/s."""
    target: float
    """Required trainer / bare ratio."""


CASES = (
    # 10 000 samples / 256 = 39 steps per epoch; digits: 1438 training images / 128 = 11 steps per epoch.
    Case("mnist-shaped", hidden=196, batch=256, rho=0.1, beta=3.0, lam=3e-3, lr=1e-3,
         steps=117, quick_steps=39, unit="samples/s", target=0.95),
    Case("digits", hidden=25, batch=128, rho=0.05, beta=3.0, lam=1e-4, lr=1e-2,
         steps=1100, quick_steps=275, unit="steps/s", target=1.0),
)  # fmt: skip


def case_data(case: Case) -> Dataset:
    if case.name == "digits":
        return load(DataConfig(dataset="digits"))
    x = torch.rand(10_000, 784, generator=torch.Generator().manual_seed(0))
    return Dataset("random-784", x, None, None, None, (28, 28))


# ----- the hand-written loops --------------------------------------------------------------------------
def bare_model(
    n_inputs: int, case: Case, device: torch.device
) -> tuple[nn.Linear, nn.Linear, torch.optim.Adam]:
    torch.manual_seed(0)
    enc, dec = nn.Linear(n_inputs, case.hidden).to(device), nn.Linear(case.hidden, n_inputs).to(device)
    with torch.no_grad():  # UFLDL's initialisation, as the trainer's model uses
        r = math.sqrt(6.0 / (n_inputs + case.hidden + 1))
        for layer in (enc, dec):
            layer.weight.uniform_(-r, r)
            layer.bias.zero_()
    return enc, dec, torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=case.lr)


def bare_objective(enc: nn.Linear, dec: nn.Linear, xb: torch.Tensor, case: Case) -> torch.Tensor:
    h = torch.sigmoid(enc(xb))
    recon = torch.sigmoid(dec(h))
    rho, rho_hat = case.rho, h.mean(dim=0).clamp(EPS, 1 - EPS)
    kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
    return (
        0.5 * (recon - xb).pow(2).sum(dim=1).mean()
        + case.beta * kl.sum()
        + 0.5 * case.lam * (enc.weight.pow(2).sum() + dec.weight.pow(2).sum())
    )


def bare_loop(x, enc, dec, opt, case: Case, steps: int, generator: torch.Generator) -> None:
    """x: [N, D] on the device. A randperm per epoch, then slices of the shuffled copy."""
    n, step = x.shape[0], 0
    while step < steps:
        shuffled = x[torch.randperm(n, generator=generator).to(x.device)]
        for start in range(0, n - case.batch + 1, case.batch):
            loss = bare_objective(enc, dec, shuffled[start : start + case.batch], case)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step == steps:
                return


def dataloader_loop(loader: DataLoader, enc, dec, opt, case: Case, steps: int, device: torch.device) -> None:
    step = 0
    while step < steps:
        for (xb,) in loader:
            loss = bare_objective(enc, dec, xb.to(device), case)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step == steps:
                return


# ----- timed variants: each takes a step count and returns wall seconds ---------------------------------
def trainer_config(case: Case, steps: int, snapshot_every: int) -> RunConfig:
    return RunConfig(
        model=ModelConfig(
            hidden=case.hidden, penalty="kl", rho=case.rho, beta=case.beta, weight_decay=case.lam
        ),
        train=TrainConfig(
            optimizer="adam",
            lr=case.lr,
            batch_size=case.batch,
            steps=steps,
            seed=0,
            snapshot_every=snapshot_every,
        ),
    )


def variants(case: Case, data: Dataset, device: torch.device, snapshot_every: int) -> dict[str, Callable]:
    x = data.train.to(device)

    def bare(steps: int) -> float:
        enc, dec, opt = bare_model(x.shape[1], case, device)
        generator = torch.Generator().manual_seed(0)
        synchronize(device)
        t0 = time.perf_counter()
        bare_loop(x, enc, dec, opt, case, steps, generator)
        synchronize(device)
        return time.perf_counter() - t0

    def trainer(steps: int) -> float:
        t = Trainer(trainer_config(case, steps, snapshot_every), data, device=device)
        synchronize(device)
        t0 = time.perf_counter()
        for _ in t.run():
            pass
        synchronize(device)
        return time.perf_counter() - t0

    def dataloader(steps: int) -> float:
        enc, dec, opt = bare_model(x.shape[1], case, device)
        loader = DataLoader(
            TensorDataset(data.train),
            batch_size=case.batch,
            shuffle=True,
            drop_last=True,  # every step sees a full batch, as in the other two
            generator=torch.Generator().manual_seed(0),
        )
        synchronize(device)
        t0 = time.perf_counter()
        dataloader_loop(loader, enc, dec, opt, case, steps, device)
        synchronize(device)
        return time.perf_counter() - t0

    return {"bare": bare, "trainer": trainer, "dataloader": dataloader}


def same_computation_gap(case: Case, data: Dataset, device: torch.device) -> float:
    """Largest weight difference between trainer and bare loop after CHECK_STEPS steps from the same
    start and batch order; near 0 means the benchmark compares like with like."""
    trainer = Trainer(trainer_config(case, CHECK_STEPS, CHECK_STEPS), data, device=device)
    enc, dec, opt = bare_model(data.n_inputs, case, device)
    enc.load_state_dict(trainer.model.encoder.state_dict())
    dec.load_state_dict(trainer.model.decoder.state_dict())
    for _ in range(CHECK_STEPS):
        trainer.step()
    bare_loop(data.train.to(device), enc, dec, opt, case, CHECK_STEPS, torch.Generator().manual_seed(0))
    pairs = [(trainer.model.encoder, enc), (trainer.model.decoder, dec)]
    return max(float((a.weight - b.weight).detach().abs().max()) for a, b in pairs)


# ----- reporting ------------------------------------------------------------------------------------------
def summarise(case: Case, steps: int, times: dict[str, list[float]]) -> dict:
    rows = {}
    for name, secs in times.items():
        med = median(secs)
        rows[name] = {
            "seconds": secs,
            "median_s": med,
            "steps_per_s": steps / med,
            "samples_per_s": steps * case.batch / med,
        }
    bare = rows["bare"]["median_s"]
    for row in rows.values():
        row["vs_bare"] = bare / row["median_s"]
    ratio = rows["trainer"]["vs_bare"]
    return {
        "case": asdict(case),
        "steps": steps,
        "variants": rows,
        "ratio": ratio,
        "meets": ratio >= case.target,
    }


ROW = "{:<14}{:<12}{:>7}{:>10}{:>10}{:>12}{:>9}"


def print_table(results: list[dict]) -> None:
    print("\n" + ROW.format("case", "variant", "steps", "median s", "steps/s", "samples/s", "vs bare"))
    for res in results:
        for name, r in res["variants"].items():
            cells = (f"{r['median_s']:.3f}", f"{r['steps_per_s']:.0f}", f"{r['samples_per_s']:.0f}")
            print(ROW.format(res["case"]["name"], name, res["steps"], *cells, f"{r['vs_bare']:.3f}"))
    print()
    for res in results:
        c = res["case"]
        verdict = "meets" if res["meets"] else "MISSES"
        print(
            f"{c['name']}: trainer / bare = {res['ratio']:.3f} in {c['unit']} (target >= {c['target']:.2f}: "
            f"{verdict});  dataloader / bare = {res['variants']['dataloader']['vs_bare']:.3f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of shorter runs (a smoke test)")
    parser.add_argument(
        "--rounds", type=int, default=None, help="timed rounds per variant (default 5, quick 3)"
    )
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps", "auto"))
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--snapshot-every", type=int, default=200, help="trainer steps between snapshots")
    parser.add_argument("--cases", default=",".join(c.name for c in CASES), help="comma-separated case names")
    parser.add_argument(
        "--scale", type=int, default=1, help="multiply the steps per run (a GPU needs longer runs to time)"
    )
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument(
        "--variants", nargs="?", const="all", default=None, help="time the variants (throughput_variants.py)"
    )
    args, unknown = parser.parse_known_args(argv)
    if args.variants is not None:  # all flags handed over: throughput_variants.py has a few of its own
        from benchmarks.throughput_variants import main as variants_main

        return variants_main(sys.argv[1:] if argv is None else argv)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    rounds = args.rounds or (3 if args.quick else 5)
    info = machine_info(device)
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    print(f"rounds={rounds} snapshot_every={args.snapshot_every} quick={args.quick} scale={args.scale}")

    wanted = set(args.cases.split(","))
    results = []
    for case in (c for c in CASES if c.name in wanted):
        data = case_data(case)
        gap = same_computation_gap(case, data, device)
        print(f"{case.name}: max |trainer weights - bare weights| after {CHECK_STEPS} steps = {gap:.1e}")
        if not gap <= CHECK_TOLERANCE:
            print(f"the bare loop does not compute what the trainer does (gap {gap:.1e}); fix the benchmark")
            return 1
        steps = (case.quick_steps if args.quick else case.steps) * args.scale
        times = interleaved(
            variants(case, data, device, args.snapshot_every), steps, rounds, case.quick_steps
        )
        res = summarise(case, steps, times)
        res["check_gap"] = gap
        results.append(res)
        per_round = [round(b / t, 3) for b, t in zip(times["bare"], times["trainer"], strict=True)]
        print(f"{case.name}: trainer / bare per round {per_round}, ratio of medians {res['ratio']:.3f}")
    print_table(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "rounds": rounds, "snapshot_every": args.snapshot_every,
                       "argv": sys.argv[1:], "results": results}, f, indent=2)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
