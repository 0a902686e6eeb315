"""Trainer throughput for every autoencoder variant against a minimal hand-written loop of the same model.

One problem for all of them: scikit-learn's 8x8 digits (64 inputs, 1438 training images), batch 128,
Adam at lr 1e-2, and the ModelConfig defaults the app starts a variant with (25 code units, ρ 0.05, β 3,
λ 1e-4; deep layers 128, 64; conv 16 kernels of 5x5; gaussian noise σ 0.3; VAE latent 2; contraction 0.1;
k 5). Reported in steps/s: at this size a step is mostly Python and dispatch overhead, which is what a
trainer can add.

Per variant, two ways to train:
  bare      what a competent engineer writes without the library: the layers as plain nn modules, the
            objective written out here (not imported from sae_core), torch.optim.Adam with its defaults,
            data in one tensor, a randperm per epoch and slices of the shuffled copy
  trainer   sae_core.train.trainer.Trainer.run(), snapshots (and the variant's snapshot extras) included,
            one every --snapshot-every steps and one at the end; its Adam is the fused kernel

Before timing, a check that both compute the same thing: from the same initial weights, batch order and
(for denoising and vae) the same noise draws, 30 steps each; the largest difference of any parameter must
stay under 1e-4. It is not exactly 0: the trainer's fused Adam rounds differently from the default Adam,
and some objectives here are written in a different but equal form (see each `bare_*`).

Timing: a warm-up run per loop, then --rounds rounds in rotating order, in one process; medians and the
ratio of medians (trainer / bare steps/s, wall clock) are printed, with the load average before and after.
The same ratio in process CPU time is printed next to it: a neighbour's load disturbs it less, since it
does not count the time spent waiting for a core (meaningful on the CPU device, with --threads 1).
--fused-bare adds a third loop, the bare loop with Adam(fused=True): trainer / that is the trainer's own
cost (batching, loss bookkeeping, syncs, snapshots) with the optimizer taken out of the comparison.

    PYTHONPATH=. python benchmarks/throughput_variants.py [--quick] [--threads 1] [--variants deep,vae]
        [--fused-bare] [--rounds 5] [--snapshot-every 200] [--device cpu] [--json out.json]
    PYTHONPATH=. python benchmarks/throughput.py --variants ...   (the same: throughput.py hands over)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.common import interleaved, machine_info, median, synchronize
from sae_core.config.run import DataConfig, ModelConfig, RunConfig, TrainConfig
from sae_core.data.datasets import Dataset, load
from sae_core.models import build
from sae_core.train.trainer import Trainer, resolve_device

VARIANTS = ("sparse", "deep", "conv", "denoising", "vae", "contractive", "ksparse")
BATCH = 128
LR = 1e-2
EPS = 1e-6  # the clamp on ρ̂, as in sae_core.train.objective
STEPS_PER_EPOCH = 1438 // BATCH  # 11 full batches of digits per epoch
# 440 steps per timed run: whole epochs, so the bare loop pays its per-epoch shuffle at its real rate
STEPS = 40 * STEPS_PER_EPOCH
QUICK_STEPS = 10 * STEPS_PER_EPOCH
CHECK_STEPS = 30
CHECK_TOLERANCE = 1e-4
NOISE_SEED = 7  # global RNG seed before a run, so denoising / vae draw the same noise in both loops


# ----- the hand-written models and objectives ------------------------------------------------------------
@dataclass
class Bare:
    """A hand-written model: its parameters (in the order the library's model registers its own) and its
    objective on one clean batch xb [batch, 64] -> scalar."""

    params: list[nn.Parameter]
    objective: Callable[[torch.Tensor], torch.Tensor]


def half_sse(recon: torch.Tensor, xb: torch.Tensor) -> torch.Tensor:
    """½ · mean over the batch of the squared error summed over pixels."""
    return 0.5 * ((recon - xb) ** 2).sum() / xb.shape[0]


def kl_penalty(rho_hat: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    """β Σⱼ KL(ρ‖ρ̂ⱼ) for Bernoulli means ρ̂ [units], clamped to [EPS, 1 − EPS]."""
    q, rho = rho_hat.clamp(EPS, 1 - EPS), cfg.rho
    return cfg.beta * (rho * (rho / q).log() + (1 - rho) * ((1 - rho) / (1 - q)).log()).sum()


def decay(weights: list[torch.Tensor], cfg: ModelConfig) -> torch.Tensor:
    return 0.5 * cfg.weight_decay * sum((w**2).sum() for w in weights)


def params_of(*modules: nn.Module) -> list[nn.Parameter]:
    return [p for m in modules for p in m.parameters()]


def bare_sparse(cfg: ModelConfig, device: torch.device) -> Bare:
    enc, dec = nn.Linear(64, cfg.hidden).to(device), nn.Linear(cfg.hidden, 64).to(device)

    def objective(xb):
        h = torch.sigmoid(enc(xb))
        recon = torch.sigmoid(dec(h))
        return half_sse(recon, xb) + kl_penalty(h.mean(0), cfg) + decay([enc.weight, dec.weight], cfg)

    return Bare(params_of(enc, dec), objective)


def bare_deep(cfg: ModelConfig, device: torch.device) -> Bare:
    """ReLU layers 64 -> 128 -> 64, sigmoid code of 25, mirrored ReLU decoder, sigmoid output."""
    a, b = cfg.layers
    enc = nn.Sequential(nn.Linear(64, a), nn.ReLU(), nn.Linear(a, b), nn.ReLU(), nn.Linear(b, cfg.hidden))
    dec = nn.Sequential(nn.Linear(cfg.hidden, b), nn.ReLU(), nn.Linear(b, a), nn.ReLU(), nn.Linear(a, 64))
    enc, dec = enc.to(device), dec.to(device)
    weights = [m.weight for m in (*enc, *dec) if isinstance(m, nn.Linear)]

    def objective(xb):
        h = torch.sigmoid(enc(xb))
        recon = torch.sigmoid(dec(h))
        return half_sse(recon, xb) + kl_penalty(h.mean(0), cfg) + decay(weights, cfg)

    return Bare(params_of(enc, dec), objective)


def bare_conv(cfg: ModelConfig, device: torch.device) -> Bare:
    """Conv 5x5 stride 2 to 16 sigmoid maps of 4x4, transposed conv back to 8x8; ρ̂ per kernel is the mean
    of its map over samples and positions (written here as a mean over dims 0, 2, 3)."""
    ks, pad = cfg.kernel_size, cfg.kernel_size // 2
    enc = nn.Conv2d(1, cfg.kernels, ks, stride=2, padding=pad).to(device)
    dec = nn.ConvTranspose2d(cfg.kernels, 1, ks, stride=2, padding=pad, output_padding=1).to(device)

    def objective(xb):
        maps = torch.sigmoid(enc(xb.view(-1, 1, 8, 8)))
        recon = torch.sigmoid(dec(maps)).view(-1, 64)
        sparsity = kl_penalty(maps.mean((0, 2, 3)), cfg)
        return half_sse(recon, xb) + sparsity + decay([enc.weight, dec.weight], cfg)

    return Bare(params_of(enc, dec), objective)


def bare_denoising(cfg: ModelConfig, device: torch.device) -> Bare:
    """Encode x + σ·ε (global RNG), reconstruct the clean x."""
    enc, dec = nn.Linear(64, cfg.hidden).to(device), nn.Linear(cfg.hidden, 64).to(device)

    def objective(xb):
        h = torch.sigmoid(enc(xb + cfg.noise_level * torch.randn_like(xb)))
        recon = torch.sigmoid(dec(h))
        return half_sse(recon, xb) + kl_penalty(h.mean(0), cfg) + decay([enc.weight, dec.weight], cfg)

    return Bare(params_of(enc, dec), objective)


def bare_vae(cfg: ModelConfig, device: torch.device) -> Bare:
    """64 -> ReLU 25 -> (μ, log σ²) of 2; z = μ + σ·ε; 2 -> ReLU 25 -> sigmoid 64. Loss: Bernoulli negative
    log-likelihood + KL(q ‖ N(0, I)), both per sample averaged over the batch, + weight decay on all five."""
    layers = [(64, cfg.hidden), (cfg.hidden, cfg.latent), (cfg.hidden, cfg.latent), (cfg.latent, cfg.hidden)]
    enc, to_mu, to_logvar, dec_h = (nn.Linear(i, o).to(device) for i, o in layers)
    dec = nn.Linear(cfg.hidden, 64).to(device)
    modules = (enc, to_mu, to_logvar, dec_h, dec)

    def objective(xb):
        a = torch.relu(enc(xb))
        mu, logvar = to_mu(a), to_logvar(a)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        recon = torch.sigmoid(dec(torch.relu(dec_h(z))))
        n = xb.shape[0]
        nll = F.binary_cross_entropy(recon, xb, reduction="sum") / n
        kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum() / n
        return nll + kl + decay([m.weight for m in modules], cfg)

    return Bare(params_of(*modules), objective)


def bare_contractive(cfg: ModelConfig, device: torch.device) -> Bare:
    """The sparse autoencoder plus λ_c · mean ‖∂h/∂x‖²_F, in closed form for a sigmoid encoder:
    ‖∂h/∂x‖²_F = Σⱼ (hⱼ(1 − hⱼ))² ‖Wⱼ‖² (written here as a broadcast product, not a matrix product)."""
    enc, dec = nn.Linear(64, cfg.hidden).to(device), nn.Linear(cfg.hidden, 64).to(device)

    def objective(xb):
        h = torch.sigmoid(enc(xb))
        recon = torch.sigmoid(dec(h))
        jacobian_sq = ((h * (1 - h)) ** 2 * (enc.weight**2).sum(1)).sum(1)  # [batch]
        return (
            half_sse(recon, xb)
            + kl_penalty(h.mean(0), cfg)
            + cfg.contraction * jacobian_sq.mean()
            + decay([enc.weight, dec.weight], cfg)
        )

    return Bare(params_of(enc, dec), objective)


def bare_ksparse(cfg: ModelConfig, device: torch.device) -> Bare:
    """Linear codes, the k largest per sample kept, untied decoder with its own bias; no sparsity term."""
    enc = nn.Linear(64, cfg.hidden).to(device)
    dec = nn.Linear(cfg.hidden, 64, bias=False).to(device)
    dec_bias = nn.Parameter(torch.zeros(64, device=device))

    def objective(xb):
        pre = enc(xb)
        top = pre.topk(cfg.k, dim=1)
        code = torch.zeros_like(pre).scatter(1, top.indices, top.values)
        recon = torch.sigmoid(dec(code) + dec_bias)
        return half_sse(recon, xb) + decay([enc.weight, dec.weight], cfg)

    # A module lists its own parameters before its submodules': the library model's list starts with the bias.
    return Bare([dec_bias, *params_of(enc, dec)], objective)


BARE = {
    "sparse": bare_sparse,
    "deep": bare_deep,
    "conv": bare_conv,
    "denoising": bare_denoising,
    "vae": bare_vae,
    "contractive": bare_contractive,
    "ksparse": bare_ksparse,
}


def bare_loop(
    x: torch.Tensor, bare: Bare, opt: torch.optim.Optimizer, steps: int, gen: torch.Generator
) -> None:
    """x: [N, 64] on the device. A randperm per epoch, then full batches sliced from the shuffled copy."""
    n, step = x.shape[0], 0
    while step < steps:
        shuffled = x[torch.randperm(n, generator=gen).to(x.device)]
        for start in range(0, n - BATCH + 1, BATCH):
            loss = bare.objective(shuffled[start : start + BATCH])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step == steps:
                return


# ----- the two ways, timed ---------------------------------------------------------------------------------
def run_config(variant: str, steps: int, snapshot_every: int) -> RunConfig:
    return RunConfig(
        data=DataConfig(dataset="digits"),
        model=ModelConfig(variant=variant),
        train=TrainConfig(optimizer="adam", lr=LR, batch_size=BATCH, steps=steps, seed=0,
                          snapshot_every=snapshot_every),
    )  # fmt: skip


def copy_params_(bare: Bare, source: nn.Module) -> None:
    """Load the library model's parameters into the hand-written one, in registration order."""
    src = list(source.parameters())
    shapes = [tuple(p.shape) for p in bare.params], [tuple(p.shape) for p in src]
    if shapes[0] != shapes[1]:
        raise ValueError(f"hand-written parameters {shapes[0]} do not line up with the model's {shapes[1]}")
    with torch.no_grad():
        for mine, theirs in zip(bare.params, src, strict=True):
            mine.copy_(theirs)


def initial_model(cfg: RunConfig, data: Dataset, device: torch.device) -> nn.Module:
    """The weights the Trainer starts from (it seeds torch and builds the model the same way)."""
    torch.manual_seed(cfg.train.seed)
    return build(cfg.model, data.n_inputs, data.image_shape).to(device)


def make_bare(
    variant: str, data: Dataset, device: torch.device, fused: bool = False
) -> tuple[Bare, torch.optim.Adam]:
    """The hand-written model at the trainer's initial weights, and Adam (the default one unless `fused`)."""
    cfg = run_config(variant, 1, 1)
    bare = BARE[variant](cfg.model, device)
    copy_params_(bare, initial_model(cfg, data, device))
    return bare, torch.optim.Adam(bare.params, lr=LR, **({"fused": True} if fused else {}))


def timed_loops(
    variant: str, data: Dataset, device: torch.device, snapshot_every: int, fused_bare: bool
) -> tuple[dict[str, Callable[[int], float]], dict[str, list[float]]]:
    """({"trainer": f, "bare": f[, "bare_fused": f]}, cpu): each f(steps) returns the wall seconds of its
    training loop alone and appends the loop's process CPU seconds to cpu[name] (warm-up included)."""
    x = data.train.to(device)
    cpu: dict[str, list[float]] = {}

    def clocked(name: str, loop: Callable[[], object]) -> float:
        torch.manual_seed(NOISE_SEED)
        synchronize(device)
        t0, c0 = time.perf_counter(), time.process_time()
        loop()
        synchronize(device)
        cpu.setdefault(name, []).append(time.process_time() - c0)
        return time.perf_counter() - t0

    def bare_with(name: str, fused: bool) -> Callable[[int], float]:
        def bare(steps: int) -> float:
            model, opt = make_bare(variant, data, device, fused)
            gen = torch.Generator().manual_seed(0)
            return clocked(name, lambda: bare_loop(x, model, opt, steps, gen))

        return bare

    def trainer(steps: int) -> float:
        t = Trainer(run_config(variant, steps, snapshot_every), data, device=device)
        return clocked("trainer", lambda: list(t.run()))

    loops = {"trainer": trainer, "bare": bare_with("bare", False)}
    if fused_bare:  # the same loop with the trainer's optimizer: what is left is the trainer's own cost
        loops["bare_fused"] = bare_with("bare_fused", True)
    return loops, cpu


def snapshot_ms(variant: str, data: Dataset, device: torch.device, repeats: int = 7) -> float:
    """Median milliseconds of one Trainer.snapshot() (probe forward, metrics, CPU copies, extras)."""
    t = Trainer(run_config(variant, STEPS_PER_EPOCH, STEPS_PER_EPOCH), data, device=device)
    for _ in range(STEPS_PER_EPOCH):
        t.step()
    t.snapshot()  # warm-up
    times = []
    for _ in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        t.snapshot()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return 1000 * median(times)


def same_computation_gap(variant: str, data: Dataset, device: torch.device) -> float:
    """Largest |trainer − bare| over all parameters after CHECK_STEPS steps from the same weights, batch
    order and noise draws."""
    trainer = Trainer(run_config(variant, CHECK_STEPS, CHECK_STEPS), data, device=device)
    bare, opt = make_bare(variant, data, device)
    copy_params_(bare, trainer.model)  # the same weights make_bare loaded, by construction; cheap to be sure
    torch.manual_seed(NOISE_SEED)
    for _ in range(CHECK_STEPS):
        trainer.step()
    torch.manual_seed(NOISE_SEED)
    bare_loop(data.train.to(device), bare, opt, CHECK_STEPS, torch.Generator().manual_seed(0))
    pairs = zip(trainer.model.parameters(), bare.params, strict=True)
    return max(float((a - b).detach().abs().max()) for a, b in pairs)


# ----- reporting ------------------------------------------------------------------------------------------
def load_text() -> str:
    try:
        return "/".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def summarise(
    variant: str,
    steps: int,
    times: dict[str, list[float]],
    cpu: dict[str, list[float]],
    gap: float,
    snap_ms: float,
) -> dict:
    """Wall-clock rates and their ratio (what we publish), and the same ratio in process CPU time, which a
    neighbour's load disturbs less (it does not count time spent waiting for a core)."""
    rates = {name: steps / median(secs) for name, secs in times.items()}
    per_round = [b / t for b, t in zip(times["bare"], times["trainer"], strict=True)]
    res = {
        "variant": variant,
        "steps": steps,
        "seconds": times,
        "cpu_seconds": cpu,
        "trainer_steps_per_s": rates["trainer"],
        "bare_steps_per_s": rates["bare"],
        "ratio": rates["trainer"] / rates["bare"],
        "per_round_ratio": per_round,
        "cpu_ratio": median(cpu["bare"]) / median(cpu["trainer"]),
        "check_gap": gap,
        "snapshot_ms": snap_ms,
    }
    if "bare_fused" in rates:
        res["bare_fused_steps_per_s"] = rates["bare_fused"]
        res["ratio_vs_fused"] = rates["trainer"] / rates["bare_fused"]
        res["cpu_ratio_vs_fused"] = median(cpu["bare_fused"]) / median(cpu["trainer"])
    return res


ROW = "{:<12}{:>6}{:>9}{:>8}{:>7}{:>11}{:>7}{:>8}{:>6}{:>9}{:>7}{:>8}"


def print_table(results: list[dict]) -> None:
    """Rates in steps/s; "ratio" is trainer / bare in wall time, "cpu" the same in process CPU time,
    "range" the spread of the per-round wall ratios, "snap" one snapshot in ms, "check" the weight gap."""
    head = ("variant", "steps", "trainer", "bare", "ratio", "range", "cpu", "snap ms", "check")
    print("\n" + ROW.format(*head, "fused", "ratio", "cpu"))
    for r in results:
        spread = f"{min(r['per_round_ratio']):.2f}-{max(r['per_round_ratio']):.2f}"
        rates = f"{r['trainer_steps_per_s']:.0f}", f"{r['bare_steps_per_s']:.0f}", f"{r['ratio']:.3f}"
        cells = (spread, f"{r['cpu_ratio']:.3f}", f"{r['snapshot_ms']:.1f}", f"{r['check_gap']:.0e}")
        fused = ("", "", "")
        if "ratio_vs_fused" in r:
            fused = (
                f"{r['bare_fused_steps_per_s']:.0f}",
                f"{r['ratio_vs_fused']:.3f}",
                f"{r['cpu_ratio_vs_fused']:.3f}",
            )
        print(ROW.format(r["variant"], r["steps"], *rates, *cells, *fused))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--variants", nargs="?", const="all", default="all", help="comma-separated variants (default: all)"
    )
    parser.add_argument("--quick", action="store_true", help="3 rounds of shorter runs (a smoke test)")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (default 5, quick 3)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps", "auto"))
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--snapshot-every", type=int, default=200, help="trainer steps between snapshots")
    parser.add_argument("--scale", type=int, default=1, help="multiply the steps per run")
    parser.add_argument(
        "--fused-bare",
        action="store_true",
        help="also time the bare loop with Adam(fused=True), as the trainer",
    )
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    wanted = VARIANTS if args.variants == "all" else tuple(args.variants.split(","))
    unknown = [v for v in wanted if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    rounds = args.rounds or (3 if args.quick else 5)
    steps = (QUICK_STEPS if args.quick else STEPS) * args.scale
    info = machine_info(device)
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    print(f"load average (1/5/15 min) before: {load_text()}")
    print(f"steps={steps} rounds={rounds} snapshot_every={args.snapshot_every} batch={BATCH} problem=digits")

    data = load(DataConfig(dataset="digits"))
    results = []
    for variant in wanted:
        gap = same_computation_gap(variant, data, device)
        print(f"{variant}: max |trainer - bare| over all parameters after {CHECK_STEPS} steps = {gap:.1e}")
        if not gap <= CHECK_TOLERANCE:
            print(f"the bare {variant} loop does not compute what the trainer does; fix the benchmark")
            return 1
        loops, cpu = timed_loops(variant, data, device, args.snapshot_every, args.fused_bare)
        times = interleaved(loops, steps, rounds, QUICK_STEPS)
        cpu = {name: secs[1:] for name, secs in cpu.items()}  # drop the warm-up run
        res = summarise(variant, steps, times, cpu, gap, snapshot_ms(variant, data, device))
        results.append(res)
        per_round = ", ".join(f"{r:.3f}" for r in res["per_round_ratio"])
        print(f"{variant}: trainer / bare per round [{per_round}], ratio of medians {res['ratio']:.3f}")
    load_after = load_text()
    print(f"load average (1/5/15 min) after: {load_after}")
    print_table(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "load_after": load_after, "rounds": rounds,
                       "snapshot_every": args.snapshot_every, "argv": sys.argv[1:], "results": results},
                      f, indent=2)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
