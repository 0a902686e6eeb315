"""The three sections of a run's configuration (data, model, training): frozen dataclasses, validated on
construction, one docstring per field (the CLI help and the page tooltips read them).

`sae_core.config.run` puts them together into a `RunConfig` and turns it into and from flat mappings,
JSON, CLI flags and URL parameters. Field names are unique across the three sections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any, Literal, get_args

from sae_core.config.datasets import DATASETS
from sae_core.fields import Setting
from sae_core.models.registry import REGISTRY, get_spec
from sae_core.models.spec import VariantSpec
from sae_core.penalties.registry import DEFAULT_PENALTY, PENALTIES, get_penalty
from sae_core.penalties.spec import PenaltySpec

Penalty = str
"""A name in `sae_core.penalties.PENALTIES` (one module per penalty), checked when a ModelConfig is built."""
BETA_DEFAULTS = {name: spec.beta_default for name, spec in PENALTIES.items() if spec.beta_default is not None}
"""A good β for each penalty that has one (each penalty's spec says why)."""
Variant = str
"""A name in `sae_core.models.REGISTRY` (one module per variant), checked when a ModelConfig is built."""
Activation = Literal["auto", "sigmoid", "relu", "linear"]
Output = Literal["sigmoid", "linear"]
Optimizer = Literal["adam", "sgd", "lbfgs"]
Schedule = Literal["constant", "cosine"]
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
    "n_vectors": 1_000_000,
    "n_features": 4096,
    "n_dims": 4095,  # < n_features, whose bound is 4096
    "max_samples": 10_000_000,
    "hidden": 16_384,
    "batch_size": 1_000_000,
    "steps": 100_000_000,
    "epochs": 100_000,
    "snapshot_every": 1_000_000,
}
"""The one table of upper bounds on every size-like field (a sample count, a layer width, a number of
steps): a link or a flag can never ask for more. Within them, `sae_core.train.budget` refuses a run whose
estimated memory does not fit the per-run budget. The variants and penalties add the bounds of the size
settings they declare (k, layers, kernels, latent...); for `layers` the bound is per layer."""


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
            most = DECLARED[f.name].max_items if f.name in DECLARED else None
            if (most is not None and len(value) > most) or any(v > limit for v in value):
                shown = value if most is None or len(value) <= most else f"{len(value)} layers"
                _fail(f.name, f"at most {most} sizes of at most {limit}", shown)
        elif not value <= limit:  # also catches NaN
            _fail(f.name, f"<= {limit} (the size limit)", value)


_LITERALS = {
    "Activation": get_args(Activation),
    "Output": get_args(Output),
    "Optimizer": get_args(Optimizer),
    "Schedule": get_args(Schedule),
    "DeviceName": get_args(DeviceName),
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
    n_features: int = 64
    """Superposition: how many true features (random unit directions) the data are made of."""
    n_dims: int = 32
    """Superposition: the dimensions the features are packed into (fewer than n_features)."""
    feature_prob: float = 0.05
    """Superposition: probability that each true feature is in a sample (its magnitude uniform in (0, 1])."""
    n_vectors: int = 20000
    """Superposition: how many samples to generate."""
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
        if not 2 <= self.n_dims < self.n_features:
            _fail("n_dims", f"in [2, n_features) = [2, {self.n_features})", self.n_dims)
        if not 0.0 < self.feature_prob <= 1.0:
            _fail("feature_prob", "in (0, 1]", self.feature_prob)
        if self.n_vectors < 1:
            _fail("n_vectors", ">= 1", self.n_vectors)
        if self.max_samples is not None and self.max_samples < 1:
            _fail("max_samples", ">= 1 or None", self.max_samples)


@dataclass(frozen=True)
class _ModelCore:
    """The autoencoder and its objective.

    The fields every variant and penalty shares; `ModelConfig` adds the settings the registered variants
    and penalties declare for themselves (`sae_core.fields.Setting`), so a new variant or penalty brings
    its own fields, flags, URL keys and widgets without editing this module.
    """

    variant: Variant = "sparse"
    """Autoencoder family: sparse (one hidden layer) or one of the other variants."""
    hidden: int = 25
    """Number of hidden units (the code size)."""
    penalty: Penalty = DEFAULT_PENALTY
    """Sparsity penalty on the hidden code (`sae_core.penalties`)."""
    rho: float = 0.05
    """Target mean activation ρ of each hidden unit (KL penalty)."""
    beta: float = 3.0
    """Weight β of the sparsity penalty (each penalty suggests its own: 3 for kl, 0.01 for l1)."""
    weight_decay: float = 1e-4
    """Weight decay λ: adds (λ/2)·(‖W₁‖² + ‖W₂‖²) to the objective (biases excluded)."""
    activation: Activation = "auto"
    """Hidden activation; auto takes the penalty's (sigmoid for kl/none, relu for l1; for topk sigmoid under a
    sigmoid output, linear under a linear one)."""
    output: Output = "sigmoid"
    """Decoder output: sigmoid for data in [0, 1], linear for standardized data."""

    def __post_init__(self) -> None:
        _check_choice(self)
        _check_limits(self)
        for setting in DECLARED.values():
            setting.check(getattr(self, setting.name))
        for setting in DECLARED.values():
            if setting.rule is not None:
                setting.rule(self)
        spec = self.spec  # raises ValueError for an unknown variant
        penalty = get_penalty(self.penalty)  # and for an unknown penalty
        if self.hidden < 1:
            _fail("hidden", ">= 1", self.hidden)
        if not (0.0 < self.rho < 1.0) or math.isnan(self.rho):
            _fail("rho", "in (0, 1)", self.rho)
        if not self.beta >= 0.0 or math.isinf(self.beta):
            _fail("beta", ">= 0 and finite", self.beta)
        if not self.weight_decay >= 0.0 or math.isinf(self.weight_decay):
            _fail("weight_decay", ">= 0 and finite", self.weight_decay)
        if spec.fixed_penalty is None:
            penalty.check(self)
        get_penalty(self.effective_penalty).rules(self)
        spec.validate(self)

    @property
    def spec(self) -> VariantSpec:
        """The variant's `sae_core.models.spec.VariantSpec`."""
        return get_spec(self.variant)

    @property
    def effective_penalty(self) -> str:
        """The penalty the objective really contains: `penalty`, unless the variant has its own
        regulariser instead (its spec's `fixed_penalty`: none for the VAE, top-k for k-sparse)."""
        return self.spec.effective_penalty(self.penalty)

    @property
    def penalty_spec(self) -> PenaltySpec:
        """The spec of the penalty the objective really contains (`effective_penalty`)."""
        return get_penalty(self.effective_penalty)

    @property
    def uses_topk(self) -> bool:
        """Whether k matters: the objective's penalty declares it (top-k)."""
        return any(s.name == "k" for s in self.penalty_spec.settings)

    @property
    def hidden_activation(self) -> str:
        """The activation actually used, with 'auto' resolved from the penalty."""
        if self.activation != "auto":
            return self.activation
        penalty = get_penalty(self.penalty)
        return penalty.activation if penalty.activation_for is None else penalty.activation_for(self)


def _declared_settings() -> dict[str, Setting]:
    """Every Setting the penalties and variants declare, by name; a name declared twice must agree."""
    out: dict[str, Setting] = {}
    owners = [*PENALTIES.values(), *REGISTRY.values()]
    for owner in owners:
        for setting in owner.settings:
            if setting.name in out and out[setting.name] != setting:
                raise TypeError(f"setting {setting.name!r} is declared twice, differently")
            if setting.name in {f.name for f in fields(_ModelCore)}:
                raise TypeError(f"setting {setting.name!r} shadows a core model field")
            out[setting.name] = setting
    return out


DECLARED: dict[str, Setting] = _declared_settings()
"""The model settings the registered penalties and variants declare (name -> Setting)."""
SETTING_OWNERS: dict[str, tuple[str, ...]] = {
    name: tuple(o.name for o in [*PENALTIES.values(), *REGISTRY.values()] if name in o.fields)
    for name in DECLARED
}
"""Which penalties and variants declare each setting (for help texts: "[conv only]")."""
SIZE_LIMITS.update({s.name: s.maximum for s in DECLARED.values() if s.size_limit})

ModelConfig = make_dataclass(
    "ModelConfig",
    [(s.name, s.type, field(default=s.default)) for s in DECLARED.values()],
    bases=(_ModelCore,),
    frozen=True,
)
ModelConfig.__module__ = __name__  # so that pickle (Ray, the sweep's workers) finds it here
ModelConfig.__doc__ = _ModelCore.__doc__


@dataclass(frozen=True)
class TrainConfig:
    """How to optimise."""

    optimizer: Optimizer = "adam"
    """adam, sgd (with momentum) or lbfgs (full batch, the UFLDL recipe)."""
    lr: float = 1e-2
    """Learning rate (for lbfgs: the step length, 1 is the usual choice)."""
    lr_schedule: Schedule = "constant"
    """constant, or cosine: lr·½(1 + cos(π·step/steps)), from lr down to 0 at the run's end (adam, sgd)."""
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
        if self.lr_schedule != "constant" and self.steps == 0 and self.epochs is None:
            _fail("lr_schedule", "constant for a run until paused (no end to decay to)", self.lr_schedule)
        if self.lr_schedule != "constant" and self.optimizer == "lbfgs":
            _fail("lr_schedule", "constant with lbfgs (its line search sets the step)", self.lr_schedule)
