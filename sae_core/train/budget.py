"""How much memory a run will take, estimated before anything is allocated, and the per-run budget.

A run holds its data (train + test as float32, and for a moment what loading them takes), its model's
parameters with their gradients, the optimizer's state and the trainer's restorable copies of the
weights, and the activations one training step keeps for its backward pass. The model and its
activations are measured by building the model on PyTorch's "meta" device, where tensors have shapes
but no storage: nothing is allocated whatever the sizes, and no variant needs a formula of its own.

`check(cfg)` raises `BudgetError` (a ValueError) when the estimate is over the budget: $SAE_RUN_MEMORY_MB,
or `sae train --memory-mb`, else DEFAULT_RUN_MEMORY_MB. Its message says what would fit.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass

import torch
from torch import nn

from sae_core.config.run import ModelConfig, RunConfig
from sae_core.config.sections import SIZE_LIMITS

DEFAULT_RUN_MEMORY_MB = 2048
"""Per-run budget when neither $SAE_RUN_MEMORY_MB nor a flag sets one: every preset fits several times."""
ENV_VAR = "SAE_RUN_MEMORY_MB"
MB = 2**20

TORCHVISION_SIZES = {"mnist": 60000, "fashion-mnist": 60000, "kmnist": 60000, "cifar10": 50000}
"""Training samples of each torchvision dataset (each has 10000 test images besides)."""
LOAD_BYTES_PER_VALUE = {"digits": 20, "natural-patches": 28, "bars": 10, "superposition": 12, "upload": 8}
"""Peak bytes per value while a dataset is made (float64 intermediates for the patches' normalisation,
the uploaded bytes next to their float32 array); the torchvision ones keep uint8 and float32 (6)."""
SUPERPOSITION_BYTES_PER_COEFFICIENT = 9
"""Peak bytes per coefficient while superposition's samples are made: float32 magnitudes, a bool of
which features are present and the float32 draw it comes from."""
OPTIMIZER_COPIES = {"adam": 2, "sgd": 1, "lbfgs": 2 * 20 + 4}
"""Parameter-sized tensors of optimizer state: Adam's two moments, SGD's momentum, L-BFGS's curvature
history (history_size 20 pairs) and its work vectors."""
WEIGHT_COPIES = 4
"""Weights, gradients, and the trainer's last two good copies (it restores them after a divergence)."""
PROBE_SAMPLES = 1000
"""training.PROBE_SIZE: the samples every snapshot runs through the model (and metrics.EVAL_CHUNK: the rows
per forward pass of a final evaluation, so that evaluating a whole dataset needs no more than this)."""
SNAPSHOTS_HELD = 2
"""Snapshots alive at once: the one the page (or the CLI) holds and the one being made. Each keeps the probe's
codes and CPU copies of the filters and the dictionary."""


class BudgetError(ValueError):
    """A run's estimated memory is over the per-run budget; the message says what would fit."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a run needs at its peak, by part."""

    data: int
    model: int
    """Parameters, gradients and the trainer's copies of the weights."""
    optimizer: int
    activations: int
    """What one training step keeps for its backward pass (twice: the backward pass's own), plus the
    snapshot's forward pass over the probe samples and what the snapshots alive at once keep."""

    @property
    def total(self) -> int:
        return self.data + self.model + self.optimizer + self.activations

    def describe(self) -> str:
        parts = (
            f"data {_size(self.data)}, model {_size(self.model)}, optimizer state {_size(self.optimizer)}, "
            f"activations {_size(self.activations)}"
        )
        return f"about {_size(self.total)} ({parts})"


def budget_mb(override: float | None = None) -> float:
    """The per-run budget in MB: `override` (a flag), else $SAE_RUN_MEMORY_MB, else the default."""
    value: object = override
    source = "--memory-mb"
    if value is None:
        value, source = os.environ.get(ENV_VAR), ENV_VAR
    if value is None or value == "":
        return float(DEFAULT_RUN_MEMORY_MB)
    try:
        mb = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        mb = math.nan
    if not (mb > 0 and math.isfinite(mb)):
        raise ValueError(f"{source} must be a positive number of MB, got {value!r}")
    return mb


def data_shape(cfg: RunConfig) -> tuple[int, int, tuple[int, int]]:
    """(samples made, training samples kept, image shape) of cfg's dataset, known without loading it.
    Not for uploads: their shape comes from the file (see `estimate`)."""
    from sae_core.data.datasets import DATASETS, TEST_FRACTION

    d = cfg.data
    if d.dataset == "natural-patches":
        made, shape = d.n_patches, (d.patch_size, d.patch_size)
        train = made - math.floor(TEST_FRACTION * made)
    elif d.dataset == "bars":
        made, shape = d.n_bars, (8, 8)
        train = made - math.floor(TEST_FRACTION * made)
    elif d.dataset == "superposition":
        from sae_core.data.superposition import strip_shape

        made, shape = d.n_vectors, strip_shape(d.n_dims)
        train = made - math.floor(TEST_FRACTION * made)
    elif d.dataset == "digits":
        made, train, shape = 1797, 1797 - round(0.2 * 1797), (8, 8)
    elif d.dataset in TORCHVISION_SIZES:
        train = TORCHVISION_SIZES[d.dataset]
        made, shape = train + 10000, DATASETS[d.dataset].image_shape  # + the 10000 test images
    else:
        raise ValueError(f"the size of dataset {d.dataset!r} is known only once it is loaded")
    if d.max_samples is not None:
        train = min(train, d.max_samples)
    return made, train, tuple(shape)


def estimate(
    cfg: RunConfig, samples: int | None = None, image_shape: tuple[int, int] | None = None
) -> MemoryEstimate:
    """Peak bytes of a run of cfg, allocating nothing. samples / image_shape: the loaded data's size
    when it is known (an upload); else read from the config."""
    if samples is not None and image_shape is not None:
        n_train = samples if cfg.data.max_samples is None else min(samples, cfg.data.max_samples)
        made, shape = samples, tuple(image_shape)
    else:
        made, n_train, shape = data_shape(cfg)
    n_inputs = shape[0] * shape[1]
    per_value = LOAD_BYTES_PER_VALUE.get(cfg.data.dataset, 6)
    data = made * n_inputs * per_value
    if cfg.data.dataset == "superposition":  # its coefficients, [samples, n_features], while it is made
        data += made * cfg.data.n_features * SUPERPOSITION_BYTES_PER_COEFFICIENT
    t = cfg.train
    full = t.batch_size == 0 or t.batch_size >= n_train or t.optimizer == "lbfgs"
    batch = n_train if full else t.batch_size
    params, per_sample, code = _measure(cfg, n_inputs, shape)
    probe = min(PROBE_SAMPLES, n_train)
    snapshots = SNAPSHOTS_HELD * (probe * code + 2 * params)
    return MemoryEstimate(
        data=data,
        model=WEIGHT_COPIES * params,
        optimizer=OPTIMIZER_COPIES[t.optimizer] * params,
        activations=(2 * batch + probe) * per_sample + batch * n_inputs * 4 + snapshots,
    )


MEASURE_BATCH = 16
"""Samples of the measuring forward pass: what it saves grows linearly with the batch."""
MEASURE_ON_CPU_BYTES = 64 * 2**20
"""Models with at most this many bytes of parameters are measured on the CPU (`_measure`)."""


def _measure(cfg: RunConfig, n_inputs: int, shape: tuple[int, int]) -> tuple[int, int, int]:
    """`_measure_model` of the run's model (it reads nothing else of the run)."""
    return _measure_model(cfg.model, n_inputs, tuple(shape))


@functools.lru_cache(maxsize=64)
def _measure_model(model_cfg: ModelConfig, n_inputs: int, shape: tuple[int, int]) -> tuple[int, int, int]:
    """(parameter bytes, bytes per sample that a training step's forward pass and objective keep for
    backward, bytes of one sample's code), from one forward pass of MEASURE_BATCH samples.

    Kept per model config and input shape: every new Train page asks for its run's estimate, most of a
    class with the same settings, and building and running the model was half of a fresh page's script
    time (0.18 of 0.36 s, py-spy, 2026-12-07).

    The model is first built on the meta device (shapes only: nothing is allocated). One of at most
    MEASURE_ON_CPU_BYTES is then measured on the CPU, where a forward pass costs milliseconds; a larger
    one on the meta device, whose first linear layer imports torch._dynamo (about 1.8 s, once per process;
    torch.optim's first optimizer imports it too, so this spares a page or command that only checks a
    config). The objective is counted as twice the reconstruction and the code per sample (its terms are
    elementwise in them), since PyTorch's meta kernels for them are slow to trace.
    """
    from sae_core.models import build, build_seeded

    saved = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        if not isinstance(t, nn.Parameter) and not isinstance(t._base, nn.Parameter):  # weights: counted
            saved += t.numel() * t.element_size()
        return t

    with torch.device("meta"):
        model = build(model_cfg, n_inputs, shape)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    on_cpu = params <= MEASURE_ON_CPU_BYTES
    if on_cpu:  # seeded under the builds' lock, the global RNG put back: no other run notices
        model = build_seeded(model_cfg, n_inputs, shape, 0)
    # Device and autograd hooks are thread-local: a training thread running meanwhile is not affected.
    with torch.device("cpu" if on_cpu else "meta"), torch.enable_grad():
        x = torch.zeros(MEASURE_BATCH, n_inputs)
        noise = model.draw_noise(x, torch.Generator() if on_cpu else None)  # not the global RNG
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(x, noise=noise)
    objective = 2 * (out.recon.numel() + out.hidden.numel()) * out.recon.element_size()
    code = math.ceil(out.hidden.numel() * out.hidden.element_size() / MEASURE_BATCH)
    return params, math.ceil((saved + objective) / MEASURE_BATCH), code


def model_bytes(model: ModelConfig, image_shape: tuple[int, int]) -> int:
    """Bytes of the parameters of the model `model` describes for inputs of image_shape (built on meta)."""
    from sae_core.models import build

    with torch.device("meta"):
        built = build(model, image_shape[0] * image_shape[1], tuple(image_shape))
    return sum(p.numel() * p.element_size() for p in built.parameters())


def check(
    cfg: RunConfig,
    limit_mb: float | None = None,
    samples: int | None = None,
    image_shape: tuple[int, int] | None = None,
) -> MemoryEstimate:
    """The run's estimate; BudgetError when it is over the budget (see `budget_mb`)."""
    mb = budget_mb(limit_mb)
    need = estimate(cfg, samples, image_shape)
    limit = int(mb * MB)
    if need.total <= limit:
        return need
    fits = what_fits(cfg, limit, samples, image_shape)
    within = f"; within it: {', or '.join(fits)}" if fits else ""
    raise BudgetError(
        f"this run would need {need.describe()}, more than the per-run memory budget of {mb:g} MB "
        f"(set by {ENV_VAR if limit_mb is None else '--memory-mb'}){within}"
    )


def what_fits(
    cfg: RunConfig, limit: int, samples: int | None = None, image_shape: tuple[int, int] | None = None
) -> list[str]:
    """For each size that matters to cfg's memory, the largest value that fits `limit` bytes with the
    others unchanged ("hidden ≤ 3120"); sizes that cannot bring it under are left out."""
    sizes = {"natural-patches": "n_patches", "bars": "n_bars", "superposition": "n_vectors"}
    names = [sizes.get(cfg.data.dataset), "hidden", *cfg.model.spec.fields, "batch_size"]
    out = []
    for name in dict.fromkeys(n for n in names if n):
        value = cfg.flat()[name]
        if name == "batch_size" and cfg.train.optimizer == "lbfgs":
            continue
        if name == "batch_size" and value == 0:
            value = _train_samples(cfg, samples)
        if not isinstance(value, int) or isinstance(value, bool) or name not in SIZE_LIMITS:
            continue
        best = _largest_fitting(cfg, name, value, limit, samples, image_shape)
        if best is not None:
            out.append(f"{name} ≤ {best}")
    return out


def _train_samples(cfg: RunConfig, samples: int | None) -> int:
    n = samples if samples is not None else data_shape(cfg)[1]
    return n if cfg.data.max_samples is None else min(n, cfg.data.max_samples)


def _largest_fitting(
    cfg: RunConfig, name: str, value: int, limit: int, samples: int | None, shape: tuple[int, int] | None
) -> int | None:
    """Memory is close to affine in each size: fit a line through two values, solve, then step down
    until the estimate really fits (a few estimates, not a search)."""

    def need(v: int) -> int | None:
        try:
            return estimate(cfg.replace(**{name: v}), samples, shape).total
        except ValueError:  # e.g. hidden below k: not a run the user could pick
            return None

    low = max(1, value // 2)
    at_value, at_low = need(value), need(low)
    if at_value is None or at_low is None or low >= value or at_value <= at_low:
        return None
    slope = (at_value - at_low) / (value - low)
    guess = min(value - 1, low + math.floor((limit - at_low) / slope))
    for _ in range(8):
        if guess < 1:
            return None
        fits = need(guess)
        if fits is not None and fits <= limit:
            return guess
        guess = math.floor(guess * 0.8)
    return None


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / MB:.0f} MB" if n >= MB else f"{n / 1024:.0f} KB"


__all__ = ["BudgetError", "MemoryEstimate", "budget_mb", "check", "estimate", "model_bytes", "what_fits"]
