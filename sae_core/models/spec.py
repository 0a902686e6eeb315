"""The self-description of a variant: what the page, the formulas, the CLI and the views read from it.

Every variant module in this package ends with `SPEC = VariantSpec(...)`; `registry` collects them.
Nothing outside a variant's module branches on its name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sae_core.fields import Setting
from sae_core.models.base import ModelSettings
from sae_core.penalties.registry import PENALTIES
from sae_core.penalties.spec import PenaltySpec

if TYPE_CHECKING:
    from torch import nn

STANDARD_VIEWS = frozenset({"rho_hat", "activations", "density", "penalty_curve"})
"""The page's own activity views; a variant whose code is not a unit activation leaves some out. The
per-unit penalty curve (`penalty_curve`) shows only under a penalty that has one (its `unit_curve`)."""


@dataclass(frozen=True)
class Control:
    """A page control for one of the variant's own config fields (its widget kind follows the field type)."""

    field: str
    """The ModelSettings field; also the widget key, URL parameter and CLI flag."""
    label: str
    choices: tuple[Any, ...] | None = None
    """Options of a select; None: the field's Literal values, or a number / text / checkbox input."""
    choice_names: dict[Any, str] | None = None
    minimum: float | None = None
    step: float | None = None
    number_format: str | None = None


@dataclass(frozen=True)
class View:
    """One of the variant's pictures: a pure figure function of the snapshot in
    `sae_core.figures.variants`."""

    key: str
    """The chart's key on the page."""
    figure: str
    """"module:function" inside `sae_core.figures.variants`, imported when first drawn (models stay free of
    plotly). The function takes the snapshot (and `index=` when `pick_input`)."""
    column: int = 0
    """0: left column, 1: right column."""
    pick_input: bool = False
    """The page offers a choice of the shown input and passes it as `index`."""

    def figure_function(self) -> Callable[..., Any]:
        return variant_figure(self.figure)


def variant_figure(path: str) -> Callable[..., Any]:
    """The function that "module:function" names inside `sae_core.figures.variants`."""
    module, name = path.split(":")
    return getattr(importlib.import_module(f"sae_core.figures.variants.{module}"), name)


def _no_terms(cfg: ModelSettings) -> list[str]:
    return []


def _hidden_units(cfg: ModelSettings) -> tuple[int, str]:
    return cfg.hidden, "j"


def _no_rules(cfg: ModelSettings) -> None:
    return None


def _code_units(cfg: ModelSettings, width: int) -> str:
    return f"{width} hidden units"


@dataclass(frozen=True)
class VariantSpec:
    """A variant: how to build it and how everything else presents it."""

    name: str
    """The config value (`--variant NAME`, `?variant=NAME`)."""
    title: str
    """What the Variant select shows."""
    note: str
    """One line for the page, under the Variant select."""
    build: Callable[[ModelSettings, int, tuple[int, int]], nn.Module]
    """(model config, n_inputs = H·W, image shape) -> the model."""
    order: int
    """Position in menus and listings."""
    controls: tuple[Control, ...] = ()
    """Its own settings."""
    hidden_label: str | None = "Hidden units"
    """Label of the *hidden* field on the page; None when the variant does not use it."""
    settings: tuple[Setting, ...] = ()
    """Its own config fields (the model section gains them; `controls` say how the page shows them)."""
    accepts: Callable[[PenaltySpec], bool] = lambda penalty: True
    """Which sparsity penalties it takes (all by default), judged from their specs."""
    fixed_penalty: str | None = None
    """Set when the variant ignores `penalty`: the penalty its objective really contains ("none", "topk")."""
    penalty_reason: str = ""
    """Why the penalty, ρ and β do not apply, when `fixed_penalty` is set (one line for the page)."""
    views: tuple[View, ...] = ()
    views_caption: str = ""
    """A sentence or two over the variant's own views."""
    code_units: Callable[[ModelSettings, int], str] = _code_units
    """(config, code width) -> what the numbers of the code are, in words ("64 kernel·position units (4
    kernels × 16 positions)"): the Applications and Theory pages name the features they work on."""
    adam_lr: float | None = None
    """The largest Adam learning rate it trains at reliably, when lower than the sparse presets' 0.1 (a deep
    or VAE model collapses there): picking the variant on the page lowers a higher lr to it, and says so."""
    metrics: str | None = None
    """"module:function" in `sae_core.figures.variants` giving (label, value, help) rows of its own."""
    standard_views: frozenset[str] = STANDARD_VIEWS
    """Which of the page's activity views mean something for this code."""
    check: Callable[[ModelSettings], None] = _no_rules
    """Variant rules on a config (raise ValueError naming the field); run when a ModelSettings is built."""
    # ----- the objective in LaTeX (sae_core.analysis.formulas assembles it) -----
    reconstruction_tex: Callable[[ModelSettings], str | None] = lambda cfg: None
    """Replaces ½·mean‖x̂ − x‖² (e.g. a likelihood); None keeps it."""
    extra_tex: Callable[[ModelSettings], list[str]] = _no_terms
    """Terms the variant adds, one per line."""
    notes_tex: Callable[[ModelSettings], list[str]] = _no_terms
    """Lines under the objective (what x̂ is decoded from, ...)."""
    decays_every_layer: bool = False
    """Weight decay acts on more than W₁ and W₂ (written Σₗ‖Wₗ‖²)."""
    penalty_units: Callable[[ModelSettings], tuple[int, str]] = _hidden_units
    """(how many ρ̂ the penalty sums over, their index letter)."""
    penalty_factor_tex: str = ""
    """A factor written between β and the penalty's sum: the model's `sparsity_scale` (conv: "P")."""

    def effective_penalty(self, penalty: str) -> str:
        """The penalty the objective really contains for a configured `penalty`."""
        return self.fixed_penalty or penalty

    def metric_rows(self, snap: Any) -> list[tuple[str, str, str | None]]:
        """(label, value, help) rows of the variant's own numbers for a snapshot (none by default)."""
        return [] if self.metrics is None else variant_figure(self.metrics)(snap)

    @property
    def fields(self) -> tuple[str, ...]:
        """Its own config fields."""
        return tuple(dict.fromkeys([*(s.name for s in self.settings), *(c.field for c in self.controls)]))

    @property
    def penalties(self) -> tuple[str, ...]:
        """The names of the registered penalties it takes, in menu order."""
        return tuple(name for name, spec in PENALTIES.items() if self.accepts(spec))

    def validate(self, cfg: ModelSettings) -> None:
        if self.fixed_penalty is None and cfg.penalty not in self.penalties:
            raise ValueError(
                f"penalty must be one of {', '.join(self.penalties)} for the {self.name} variant, "
                f"got {cfg.penalty!r}"
            )
        self.check(cfg)
