"""The three sections of a run's configuration (data, model, training): frozen dataclasses, validated on
construction, one docstring per field (the CLI help and the page tooltips read them).

`sae_core.config.run` puts them together into a `RunConfig` and turns it into and from flat mappings,
JSON, CLI flags and URL parameters. Field names are unique across the three sections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Literal, get_args

from sae_core.config.datasets import DATASETS
from sae_core.models.denoising import Corruption
from sae_core.models.registry import get_spec

Penalty = Literal["kl", "l1", "topk", "none"]
BETA_DEFAULTS = {"kl": 3.0, "l1": 0.01}
"""A good β for each penalty that has one: UFLDL's 3 for KL; for L1 on ReLU codes 0.01 (on digits, 25 units,
Adam: β 0.01 keeps FVE ≈ 0.9 with a third of the units dead at lr 0.01; β 3 kills every unit)."""
Variant = str
"""A name in `sae_core.models.REGISTRY` (one module per variant), checked when a ModelConfig is built."""
Activation = Literal["auto", "sigmoid", "relu", "linear"]
Output = Literal["sigmoid", "linear"]
Optimizer = Literal["adam", "sgd", "lbfgs"]
DeviceName = Literal["auto", "cpu", "cuda", "mps"]


def _fail(name: str, rule: str, value: Any) -> None:
    raise ValueError(f"{name} must be {rule}, got {value!r}")


def _check_choice(obj: Any) -> None:
    """Every Literal-typed field holds one of its allowed values."""
    hints = {f.name: f.type for f in fields(obj)}
    for name, hint in hints.items():
        allowed = _LITERALS.get(hint if isinstance(hint, str) else getattr(hint, "__name__", ""))
        if allowed is not None and getattr(obj, name) not in allowed:
            _fail(name, "one of " + ", ".join(allowed), getattr(obj, name))


MAX_SEED = 2**63 - 1
"""Largest seed (torch generators take 64-bit seeds)."""
SIZE_LIMITS: dict[str, int | float] = {
    "n_patches": 1_000_000,
    "n_bars": 1_000_000,
    "max_samples": 10_000_000,
    "hidden": 16_384,
    "k": 16_384,
    "k_start": 16_384,
    "layers": 16_384,
    "kernels": 1_024,
    "latent": 1_024,
    "batch_size": 1_000_000,
    "steps": 100_000_000,
    "epochs": 100_000,
    "snapshot_every": 1_000_000,
}
"""The one table of upper bounds on every size-like field (a sample count, a layer width, a number of
steps): a link or a flag can never ask for more. Within them, `sae_core.train.budget` refuses a run whose
estimated memory does not fit the per-run budget. For `layers` the bound is per layer."""
MAX_LAYERS = 8
"""Deep variant: most encoder layers before the code layer."""


def _check_limits(obj: Any) -> None:
    """Every size-like field of obj (SIZE_LIMITS) is at most its bound; seeds are in [0, MAX_SEED]."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        if f.name.endswith("seed") and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED
        ):
            _fail(f.name, "an integer in [0, 2**63 - 1]", value)
        limit = SIZE_LIMITS.get(f.name)
        if limit is None or value is None:
            continue
        if isinstance(value, tuple):
            if len(value) > MAX_LAYERS or any(v > limit for v in value):
                shown = value if len(value) <= MAX_LAYERS else f"{len(value)} layers"
                _fail(f.name, f"at most {MAX_LAYERS} sizes of at most {limit}", shown)
        elif not value <= limit:  # also catches NaN
            _fail(f.name, f"<= {limit} (the size limit)", value)


_LITERALS = {
    "Penalty": get_args(Penalty),
    "Activation": get_args(Activation),
    "Output": get_args(Output),
    "Optimizer": get_args(Optimizer),
    "DeviceName": get_args(DeviceName),
    "Corruption": get_args(Corruption),
}


@dataclass(frozen=True)
class DataConfig:
    """Which data to train on and how to prepare it."""

    dataset: str = "digits"
    """Dataset name; `python -m sae_core datasets` lists them."""
    data_dir: str | None = None
    """Folder with torchvision-layout datasets (default: $SAE_DATA_DIR or ~/.cache/sae-playground)."""
    upload: str | None = None
    """Your .npy/.npz/.zip file, used when dataset is 'upload' (CLI: its path; app: the upload's id)."""
    patch_size: int = 8
    """Side of the square natural-image patches, in pixels."""
    n_patches: int = 10000
    """How many natural-image patches to sample."""
    whiten: bool = False
    """Natural patches: ZCA-whiten them before scaling to [0.1, 0.9] (UFLDL's photos were whitened)."""
    zca_epsilon: float = 0.01
    """Natural patches: ZCA regulariser ε, as a fraction of the mean eigenvalue λ̄: W = U(Λ + ε·λ̄)^-½Uᵀ."""
    bar_prob: float = 0.125
    """Probability that each of the 16 bars is present in a bars image."""
    n_bars: int = 4000
    """How many bars images to generate."""
    max_samples: int | None = None
    """Keep at most this many training samples (None keeps all)."""
    data_seed: int = 0
    """Seed for generated data and patch sampling."""

    def __post_init__(self) -> None:
        _check_limits(self)
        if not self.dataset:
            _fail("dataset", "a dataset name", self.dataset)
        if self.dataset not in DATASETS:
            names = ", ".join(DATASETS)
            raise ValueError(f"unknown dataset {self.dataset!r}; dataset must be one of {names}")
        if not 2 <= self.patch_size <= 64:
            _fail("patch_size", "in [2, 64]", self.patch_size)
        if self.n_patches < 1:
            _fail("n_patches", ">= 1", self.n_patches)
        if not 0.0 < self.zca_epsilon < math.inf:
            _fail("zca_epsilon", "> 0 and finite", self.zca_epsilon)
        if not 0.0 < self.bar_prob < 1.0:
            _fail("bar_prob", "in (0, 1)", self.bar_prob)
        if self.n_bars < 1:
            _fail("n_bars", ">= 1", self.n_bars)
        if self.max_samples is not None and self.max_samples < 1:
            _fail("max_samples", ">= 1 or None", self.max_samples)


@dataclass(frozen=True)
class ModelConfig:
    """The autoencoder and its objective."""

    variant: Variant = "sparse"
    """Autoencoder family: sparse (one hidden layer) or one of the other variants."""
    hidden: int = 25
    """Number of hidden units (the code size)."""
    penalty: Penalty = "kl"
    """Sparsity penalty on the hidden code: kl, l1, topk or none."""
    rho: float = 0.05
    """Target mean activation ρ of each hidden unit (KL penalty)."""
    beta: float = 3.0
    """Weight β of the sparsity penalty (a good start: 3 for kl, 0.01 for l1)."""
    weight_decay: float = 1e-4
    """Weight decay λ: adds (λ/2)·(‖W₁‖² + ‖W₂‖²) to the objective (biases excluded)."""
    k: int = 5
    """Active units kept per sample by the top-k penalty."""
    activation: Activation = "auto"
    """Hidden activation; auto picks sigmoid for kl/none, relu for l1, linear for topk."""
    output: Output = "sigmoid"
    """Decoder output: sigmoid for data in [0, 1], linear for standardized data."""
    layers: tuple[int, ...] = (128, 64)
    """Deep variant: sizes of the encoder layers before the code layer."""
    kernels: int = 16
    """Convolutional variant: number of kernels."""
    kernel_size: int = 5
    """Convolutional variant: side of each square kernel."""
    corruption: Corruption = "gaussian"
    """Denoising variant: how inputs are corrupted."""
    noise_level: float = 0.3
    """Denoising variant: Gaussian σ, or the fraction of pixels masked / flipped."""
    latent: int = 2
    """Variational variant: size of the latent code."""
    contraction: float = 0.1
    """Contractive variant: weight λ_c of ‖∂h/∂x‖²_F."""
    tied: bool = False
    """k-sparse variant: decoder uses the transposed encoder weights."""
    k_start: int = 0
    """k-sparse variant: k at the first step, falling linearly to k over k_anneal of the run (0: none)."""
    k_anneal: float = 0.5
    """k-sparse variant: share of the run over which k falls from k_start to k (the paper: the first half)."""
    alpha: float = 1.0
    """k-sparse variant: outside training, encode with the α·k largest units (Makhzani & Frey's αk, α ≥ 1)."""

    def __post_init__(self) -> None:
        _check_choice(self)
        _check_limits(self)
        if self.k_start < 0:
            _fail("k_start", ">= 0 (0: no schedule)", self.k_start)
        if not 0.0 < self.k_anneal <= 1.0:
            _fail("k_anneal", "in (0, 1]", self.k_anneal)
        if not 1.0 <= self.alpha < math.inf:
            _fail("alpha", ">= 1 and finite", self.alpha)
        spec = self.spec  # raises ValueError for an unknown variant
        if self.hidden < 1:
            _fail("hidden", ">= 1", self.hidden)
        if not (0.0 < self.rho < 1.0) or math.isnan(self.rho):
            _fail("rho", "in (0, 1)", self.rho)
        if not self.beta >= 0.0 or math.isinf(self.beta):
            _fail("beta", ">= 0 and finite", self.beta)
        if not self.weight_decay >= 0.0 or math.isinf(self.weight_decay):
            _fail("weight_decay", ">= 0 and finite", self.weight_decay)
        if self.k < 1 or (self.uses_topk and self.k > self.hidden):
            _fail("k", f"in [1, hidden={self.hidden}]", self.k)
        if self.penalty == "kl" and self.hidden_activation != "sigmoid":
            # KL(ρ‖ρ̂) compares Bernoulli means, so ρ̂ must be a mean of values in (0, 1).
            _fail("activation", "sigmoid (or auto) with the kl penalty", self.activation)
        if any(n < 1 for n in self.layers):
            _fail("layers", "positive sizes", self.layers)
        if self.kernels < 1:
            _fail("kernels", ">= 1", self.kernels)
        if not 1 <= self.kernel_size <= 15 or self.kernel_size % 2 == 0:
            _fail("kernel_size", "odd and in [1, 15]", self.kernel_size)
        if not 0.0 <= self.noise_level <= (10.0 if self.corruption == "gaussian" else 1.0):
            _fail("noise_level", "in [0, 1] (or [0, 10] for gaussian σ)", self.noise_level)
        if self.latent < 1:
            _fail("latent", ">= 1", self.latent)
        if not self.contraction >= 0.0:
            _fail("contraction", ">= 0", self.contraction)
        spec.validate(self)

    @property
    def spec(self) -> Any:
        """The variant's `sae_core.models.spec.VariantSpec`."""
        return get_spec(self.variant)

    @property
    def effective_penalty(self) -> str:
        """The penalty the objective really contains: `penalty`, unless the variant has its own
        regulariser instead (its spec's `fixed_penalty`: none for the VAE, top-k for k-sparse)."""
        return self.spec.effective_penalty(self.penalty)

    @property
    def uses_topk(self) -> bool:
        """Whether k matters: the objective's penalty is top-k."""
        return self.effective_penalty == "topk"

    @property
    def hidden_activation(self) -> str:
        """The activation actually used, with 'auto' resolved from the penalty."""
        if self.activation != "auto":
            return self.activation
        return {"kl": "sigmoid", "none": "sigmoid", "l1": "relu", "topk": "linear"}[self.penalty]


@dataclass(frozen=True)
class TrainConfig:
    """How to optimise."""

    optimizer: Optimizer = "adam"
    """adam, sgd (with momentum) or lbfgs (full batch, the UFLDL recipe)."""
    lr: float = 1e-2
    """Learning rate (for lbfgs: the step length, 1 is the usual choice)."""
    momentum: float = 0.9
    """Momentum of the sgd optimizer."""
    batch_size: int = 128
    """Samples per step; 0 means the full dataset (lbfgs always uses it)."""
    steps: int = 2000
    """Optimisation steps to run; 0 runs until paused (the app only; ignored when epochs is set)."""
    epochs: float | None = None
    """Train for this many passes over the data instead of a fixed step count."""
    seed: int = 0
    """Seed for weight initialisation and batch order."""
    device: DeviceName = "auto"
    """auto picks cuda, then mps, then cpu."""
    snapshot_every: int = 50
    """Steps between snapshots handed to the CLI / the page."""

    def __post_init__(self) -> None:
        _check_choice(self)
        _check_limits(self)
        if not self.lr > 0.0 or math.isinf(self.lr):
            _fail("lr", "> 0 and finite", self.lr)
        if not 0.0 <= self.momentum < 1.0:
            _fail("momentum", "in [0, 1)", self.momentum)
        if self.batch_size < 0:
            _fail("batch_size", ">= 0 (0 = full batch)", self.batch_size)
        if self.steps < 0:
            _fail("steps", ">= 0 (0 = until paused)", self.steps)
        if self.epochs is not None and not self.epochs > 0:
            _fail("epochs", f"> 0 and <= {SIZE_LIMITS['epochs']}, or None", self.epochs)
        if self.snapshot_every < 1:
            _fail("snapshot_every", ">= 1", self.snapshot_every)
