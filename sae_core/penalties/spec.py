"""The self-description of a sparsity penalty: what everything outside this package reads about it.

Every penalty module in this package ends with `SPEC = PenaltySpec(...)`; `registry` collects them. The
config, the objective, the pages, the figures, Theory, the diagnostics, the sweep and the CLI read these
fields; none of them branches on a penalty's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sae_core.fields import Setting
from sae_core.penalties.code import CodeLayer

ModelSettings = Any
"""A `sae_core.config.sections.ModelConfig` (the config is assembled from these specs, so this package
cannot import it): its fields are read by name."""
Term = Callable[[torch.Tensor, ModelSettings, nn.Module], torch.Tensor]
"""(codes [rows, units], the model config, the model's code layer) -> the β-weighted penalty, a scalar."""


def plain_code_layer(cfg: ModelSettings, units: int, trailing: int = 0) -> nn.Module:
    """The code's activation alone (no top-k, no parameters)."""
    return CodeLayer(cfg.hidden_activation)


def _no_lines(cfg: ModelSettings) -> list[str]:
    return []


LADDER = (3.0, 1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001, 3e-4, 1e-4, 3e-5, 1e-5)
"""Values advice picks from (learning rates, L1 weights): about a factor 3 apart."""


def smaller(value: float) -> float:
    """A value to suggest instead of `value` (a learning rate, a weight): the largest of LADDER at most
    half of it, so advice never repeats the value in use, or a tenth of it below the ladder."""
    return next((step for step in LADDER if step <= value / 2), value / 10)


@dataclass(frozen=True)
class PenaltySpec:
    """A sparsity penalty: its maths, its settings, and how the app presents it."""

    name: str
    """The config value (`--penalty NAME`, `?penalty=NAME`)."""
    title: str
    """What the Penalty select shows: "KL divergence (sigmoid units)"."""
    short: str
    """A short name for titles and legends: "KL", "L1", "top-k"."""
    order: int
    """Position in menus and listings."""
    activation: str
    """The code activation `activation = auto` resolves to under this penalty (unless `activation_for`)."""
    term: Term | None
    """The objective's sparsity term, β included; None when the penalty adds no term (top-k, none)."""
    summary: str
    """One paragraph for Theory: what the penalty does to the code and why."""
    instead_of_kl: str = ""
    """For Theory, when the model is not under KL: what it has instead, in a sentence."""
    uses_rho: bool = False
    """ρ (the target mean activation) is part of the penalty."""
    uses_beta: bool = False
    """β weighs a term of the objective."""
    hidden_reason: str = ""
    """One line the page shows where it hides ρ or β under this penalty."""
    activation_for: Callable[[ModelSettings], str] | None = None
    """(config) -> the activation `auto` resolves to, where it depends on the rest of the model (top-k: on
    the output, i.e. on the kind of data); None: `activation` whatever the model."""
    required_activation: str | None = None
    """The only code activation the penalty is defined on (KL compares Bernoulli means: sigmoid)."""
    beta_default: float | None = None
    """A good β to start from; picking the penalty on the page sets it."""
    adam_lr: float | None = None
    """The largest Adam learning rate its units train at reliably, when lower than the sparse presets' 0.1
    (L1's ReLU units die there): picking the penalty on the page lowers a higher lr to it, and says so."""
    beta_max: float = 10.0
    """The top of the β slider (and of what a link may ask for)."""
    beta_stops: tuple[float, ...] = ()
    """Non-empty: β's good values span decades, so the page offers these stops instead of a linear slider."""
    explore_betas: str = ""
    """The β list the Explore page starts from ("0, 0.3, 1, 3"); empty when β does not apply."""
    term_label: str = "sparsity"
    """The loss chart's name for the term: "sparsity (β·ΣKL)"."""
    term_tex: Callable[[ModelSettings, str, int, str], str | None] = lambda cfg, beta, units, j: None
    """(config, β as LaTeX with the variant's factor, units summed over, their index letter) -> the
    sparsity term in LaTeX with the numbers written in; None: no term."""
    code_tex: Callable[[ModelSettings], list[str]] = _no_lines
    """Lines under the objective that say how the code is made (top-k: h = top_k(W₁x + b₁))."""
    describe: Callable[[ModelSettings], list[str]] = _no_lines
    """What sets a run under it apart, for run titles and listings: ["ρ 0.05", "β 3"], ["top-5"]."""
    dead_units_cause: Callable[[ModelSettings, float], str] = lambda cfg, lr: (
        f"the learning rate ({lr:g}) may be too high; try {smaller(lr):g}"
    )
    """(config, learning rate) -> the likely cause of many dead units under it, with what to try."""
    unit_curve: Callable[[float, torch.Tensor], torch.Tensor] | None = None
    """(ρ, ρ̂ [units]) -> the penalty each unit pays for its mean activation (KL(ρ‖ρ̂ⱼ)), for the per-unit
    penalty view; None when the penalty is not a function of ρ̂."""
    unit_curve_label: str = ""
    """The per-unit view's name for it: "KL(ρ‖ρ̂ⱼ)"."""
    unit_curve_floor: float = 1e-6
    """The smallest ρ̂ the per-unit curve is drawn from (KL: its clamp EPS, below which it is flat)."""
    detail_tex: Callable[[ModelSettings], str] | None = None
    """LaTeX shown under the objective to define the penalty's function (KL's divergence written out)."""
    demo: tuple[dict[str, Any], dict[str, Any]] | None = None
    """Model and training settings of Theory's small run comparing the penalties on bars (None: not shown)."""
    demo_title: str = ""
    """The heading of its run in that comparison: "L1 on ReLU units" (empty: its `title`)."""
    settings_note: Callable[[ModelSettings], str] = lambda cfg: ""
    """Its settings in words for a caption, with the numbers written in: "ρ = 0.1, β = 3", "k = 4"."""
    code_layer: Callable[[ModelSettings, int, int], nn.Module] = plain_code_layer
    """(config, code units, trailing dims of each unit) -> the layer that makes the code from the
    pre-activations: the activation, and whatever the penalty does to the code itself."""
    plain_code: bool = True
    """The code layer is a fixed elementwise function: no top-k, no learned parameters (the contractive
    variant's closed-form Jacobian and the sweep's batched maths need this)."""
    settings: tuple[Setting, ...] = field(default=())
    """Its own config fields (top-k: k)."""
    rules: Callable[[ModelSettings], None] = lambda cfg: None
    """Its own rules on a model config (raise ValueError naming the field), beyond `required_activation`."""
    straight_through_check: Callable[[], float] | None = None
    """For a penalty whose gradient is a straight-through estimate (no finite difference can check it):
    a check of the estimate against the smoothed function it is the derivative of, name -> relative error."""

    @property
    def fields(self) -> tuple[str, ...]:
        """Its own config fields."""
        return tuple(s.name for s in self.settings)

    @property
    def has_term(self) -> bool:
        return self.term is not None

    def check(self, cfg: ModelSettings) -> None:
        """Penalty rules on a model config (raise ValueError naming the field)."""
        if self.required_activation and cfg.hidden_activation != self.required_activation:
            # e.g. KL(ρ‖ρ̂) compares Bernoulli means, so ρ̂ must be a mean of values in (0, 1)
            raise ValueError(
                f"activation must be {self.required_activation} (or auto) with the {self.name} penalty, "
                f"got {cfg.activation!r}"
            )
        self.rules(cfg)
