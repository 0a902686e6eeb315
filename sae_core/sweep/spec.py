"""`SweepSpec`: a grid of runs over ρ × β (and optionally a third axis), validated before anything trains.

Cell order is fixed and documented because the page, the CLI table and the folders all index by it:
cell i = (axis index a, ρ index r, β index b) with i = (a·len(rhos) + r)·len(betas) + b, so β varies fastest.
Without a third axis a is always 0. Every cell is a full `RunConfig`: the base config with ρ, β and the
axis field replaced (validated like any config).

Every registered variant and penalty sweeps: the cells run the models' own code (sae_core.sweep.block).
Cells that differ only in PER_CELL fields train together as one block (`blocks()`); a third axis over a
size (hidden units, k, the latent size, the kernels) makes one block per value. Only what a stack of
runs cannot share is refused: L-BFGS (its line search is per run) and a learning-rate schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from sae_core.config.run import RunConfig
from sae_core.models.registry import get_spec
from sae_core.train import budget

Axis = Literal["hidden", "weight_decay", "seed", "k", "latent", "kernels"]
AXES: tuple[str, ...] = get_args(Axis)
SUPPORTED_OPTIMIZERS = ("adam", "sgd")
PER_CELL = ("rho", "beta", "weight_decay", "seed")
"""The fields the cells of one block may differ in (the objective's weights, and the seed)."""
MAX_VALUES = 12
"""Most values on the ρ axis and on the β axis."""
MAX_AXIS_VALUES = 8
"""Most values on the third axis."""
MAX_CELLS = 256
SWEEP_MEMORY_FACTOR = 4
"""A whole sweep may take this many times the per-run memory budget (sae_core.train.budget): it is many runs,
but one job on the machine."""
AXIS_LABELS = {
    "hidden": "hidden units",
    "weight_decay": "λ (weight decay)",
    "seed": "seed",
    "k": "k (units kept)",
    "latent": "latent size",
    "kernels": "kernels",
}


def axes_for(base: RunConfig) -> tuple[str, ...]:
    """The third axes that change something for this config's variant and penalty: λ and the seed always,
    hidden units where the variant has them, and a size its variant or penalty declares (k, latent,
    kernels)."""
    m = base.model
    spec = get_spec(m.variant)
    own = {*spec.fields, *m.penalty_spec.fields}
    return tuple(
        a
        for a in AXES
        if a in ("weight_decay", "seed") or (a == "hidden" and spec.hidden_label is not None) or a in own
    )


def _values(name: str, values: Any, kind: type, limit: int) -> tuple:
    """values as a tuple of `kind`, non-empty, at most `limit`, without duplicates."""
    try:
        out = tuple(kind(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a list of {kind.__name__} values, got {values!r}") from None
    if kind is int and any(float(v) != int(float(v)) for v in values):
        raise ValueError(f"{name} must hold whole numbers, got {values!r}")
    if not out:
        raise ValueError(f"{name} must hold at least one value")
    if len(out) > limit:
        raise ValueError(f"{name} may hold at most {limit} values, got {len(out)}")
    if len(set(out)) != len(out):
        raise ValueError(f"{name} holds a value twice: {list(out)}")
    if kind is float and not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name} must hold finite numbers, got {list(out)}")
    return out


@dataclass(frozen=True)
class SweepSpec:
    """A ρ × β grid (× an optional third axis) of runs that share everything else with `base`."""

    base: RunConfig
    """The settings every cell shares (its rho and beta, and its axis field, are replaced per cell)."""
    rhos: tuple[float, ...]
    """Target activations ρ, one grid row each."""
    betas: tuple[float, ...]
    """Penalty weights β, one grid column each."""
    axis: Axis | None = None
    """Optional third axis: hidden units, weight decay λ or seed."""
    axis_values: tuple[float | int, ...] = ()
    """The third axis's values (ints for hidden and seed)."""
    memory_mb: float | None = None
    """Per-run memory budget override (as `sae train --memory-mb`); None: $SAE_RUN_MEMORY_MB or the default.
    The whole sweep may use SWEEP_MEMORY_FACTOR times it."""
    _cells: tuple[RunConfig, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.base, RunConfig):
            raise ValueError(f"base must be a RunConfig, got {type(self.base).__name__}")
        self._check_supported()
        set_ = object.__setattr__  # frozen: normalise lists (JSON, the page) to tuples once, here
        set_(self, "rhos", _values("rhos", self.rhos, float, MAX_VALUES))
        set_(self, "betas", _values("betas", self.betas, float, MAX_VALUES))
        if self.axis is None:
            if len(self.axis_values):
                raise ValueError("axis_values needs an axis (hidden, weight_decay or seed)")
            set_(self, "axis_values", ())
        elif self.axis not in AXES:
            raise ValueError(f"axis must be one of {', '.join(AXES)} or None, got {self.axis!r}")
        elif self.axis not in axes_for(self.base):
            m = self.base.model
            raise ValueError(
                f"axis: {self.axis} does not apply to the {m.variant} variant with the "
                f"{m.effective_penalty} penalty; its axes are {', '.join(axes_for(self.base))}"
            )
        else:
            kind = float if self.axis == "weight_decay" else int
            set_(self, "axis_values", _values("axis_values", self.axis_values, kind, MAX_AXIS_VALUES))
        self._check_used()
        if self.n_cells > MAX_CELLS:
            raise ValueError(f"the grid has {self.n_cells} cells; a sweep may have at most {MAX_CELLS}")
        set_(self, "_cells", tuple(self._cell(i) for i in range(self.n_cells)))
        if self.base.data.dataset != "upload":  # an upload's size is known once it is loaded
            self.check_memory()

    def _check_supported(self) -> None:
        t = self.base.train
        if t.lr_schedule != "constant":
            raise ValueError(f"lr_schedule {t.lr_schedule!r} cannot be swept; sweeps keep the lr constant")
        if t.optimizer not in SUPPORTED_OPTIMIZERS:
            raise ValueError(
                f"optimizer {t.optimizer!r} cannot be swept (its line search is per run); the sweep "
                f"supports the optimizers {', '.join(SUPPORTED_OPTIMIZERS)}"
            )

    def _check_used(self) -> None:
        """A grid axis the objective ignores would train identical models: refuse it."""
        m = self.base.model
        penalty = m.penalty_spec
        # A variant with a regulariser of its own (the VAE's prior, k-sparse's top-k) is named for it.
        who = f"the {penalty.name} penalty" if m.spec.fixed_penalty is None else f"the {m.variant} variant"
        if not penalty.uses_rho and len(self.rhos) > 1:
            raise ValueError(f"rhos: {who} does not use ρ; give one value")
        if not penalty.uses_beta and len(self.betas) > 1:
            raise ValueError(f"betas: {who} does not use β; give one value")

    def _cell(self, i: int) -> RunConfig:
        a, r, b = self.coords(i)
        changes: dict[str, Any] = {"rho": self.rhos[r], "beta": self.betas[b]}
        if self.axis is not None:
            changes[self.axis] = self.axis_values[a]
        try:
            return self.base.replace(**changes)
        except ValueError as e:
            where = ", ".join(f"{k}={v}" for k, v in changes.items())
            field_name = next((f"{k}s" for k in ("rho", "beta") if str(e).startswith(k)), "axis_values")
            raise ValueError(f"{field_name}: cell {where}: {e}") from None

    # ----- the grid -------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        """(third-axis values or 1, ρ values, β values)."""
        return max(1, len(self.axis_values)), len(self.rhos), len(self.betas)

    @property
    def n_cells(self) -> int:
        return math.prod(self.shape)

    def coords(self, i: int) -> tuple[int, int, int]:
        """Cell i -> (axis index, ρ index, β index)."""
        if not 0 <= i < self.n_cells:
            raise IndexError(f"cell {i} is outside the grid of {self.n_cells}")
        rest, b = divmod(i, len(self.betas))
        a, r = divmod(rest, len(self.rhos))
        return a, r, b

    def index(self, rho_i: int, beta_i: int, axis_i: int = 0) -> int:
        return (axis_i * len(self.rhos) + rho_i) * len(self.betas) + beta_i

    def cells(self) -> tuple[RunConfig, ...]:
        """Every cell's full config, in cell order."""
        return self._cells

    def axis_value(self, i: int) -> float | int | None:
        return None if self.axis is None else self.axis_values[self.coords(i)[0]]

    def cell_name(self, i: int) -> str:
        """A folder-safe name: "03-rho0.05-beta3" (+ "-hidden25")."""
        a, r, b = self.coords(i)
        name = f"{i:0{len(str(self.n_cells - 1))}d}-rho{self.rhos[r]:g}-beta{self.betas[b]:g}"
        return name if self.axis is None else f"{name}-{self.axis}{self.axis_values[a]:g}"

    def blocks(self) -> tuple[tuple[int, ...], ...]:
        """Cell indices grouped by everything but the PER_CELL fields (so by hidden size, k, ...): each
        group trains as one batched computation."""
        groups: dict[str, list[int]] = {}
        for i, cfg in enumerate(self._cells):
            shared = {k: v for k, v in cfg.flat().items() if k not in PER_CELL}
            groups.setdefault(repr(sorted(shared.items())), []).append(i)
        return tuple(tuple(g) for g in groups.values())

    def twins(self) -> tuple[int, ...]:
        """Per cell, the cell that trains for it: itself, or the first cell whose run is the same one.

        With β = 0 the cells that differ only in ρ are the same run: ρ is read only by the penalty
        (`PenaltySpec.uses_rho`), whose term carries β as a factor (`PenaltySpec.term`), so at β = 0 the
        term and its gradient are 0 whatever ρ is. A ρ × β grid's β = 0 column is then trained once, not
        once per ρ (tests/test_sweep.py holds each twin to its own run for every variant). Twins differ
        in nothing a block shares, so they are in the same block."""
        first: dict[str, int] = {}
        out = []
        for i, cfg in enumerate(self._cells):
            flat = cfg.flat()
            if flat["beta"] == 0:
                flat["rho"] = None
            out.append(first.setdefault(repr(sorted(flat.items())), i))
        return tuple(out)

    # ----- memory ---------------------------------------------------------------------------------------
    def check_memory(
        self, samples: int | None = None, image_shape: tuple[int, int] | None = None
    ) -> budget.MemoryEstimate:
        """The whole sweep's estimate (its data once, every cell's model, optimizer state and activations);
        budget.BudgetError, saying how many cells would fit, when it is over SWEEP_MEMORY_FACTOR × the
        per-run budget."""
        per_block = [budget.estimate(self._cells[block[0]], samples, image_shape) for block in self.blocks()]
        sizes = [len(b) for b in self.blocks()]
        data = max(e.data for e in per_block)
        cell = [e.model + e.optimizer + e.activations for e in per_block]
        need = budget.MemoryEstimate(
            data=data,
            model=sum(n * e.model for n, e in zip(sizes, per_block, strict=True)),
            optimizer=sum(n * e.optimizer for n, e in zip(sizes, per_block, strict=True)),
            activations=sum(n * e.activations for n, e in zip(sizes, per_block, strict=True)),
        )
        mb = budget.budget_mb(self.memory_mb)
        limit = int(SWEEP_MEMORY_FACTOR * mb * budget.MB)
        if need.total <= limit:
            return need
        fit = max(0, (limit - data) // max(cell))
        source = budget.ENV_VAR if self.memory_mb is None else "--memory-mb"
        raise budget.BudgetError(
            f"this sweep of {self.n_cells} cells would need {need.describe()}, more than the sweep "
            f"budget of {SWEEP_MEMORY_FACTOR * mb:g} MB ({SWEEP_MEMORY_FACTOR} × the per-run budget of "
            f"{mb:g} MB set by {source}); at most {fit} cells of the largest size fit"
        )

    # ----- serialisation --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base.to_dict(),
            "rhos": list(self.rhos),
            "betas": list(self.betas),
            "axis": self.axis,
            "axis_values": list(self.axis_values),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], memory_mb: float | None = None) -> SweepSpec:
        unknown = set(d) - {"base", "rhos", "betas", "axis", "axis_values"}
        if unknown:
            raise ValueError(f"unknown sweep field(s): {', '.join(sorted(unknown))}")
        return cls(
            base=RunConfig.from_dict(d.get("base", {})),
            rhos=tuple(d.get("rhos", ())),
            betas=tuple(d.get("betas", ())),
            axis=d.get("axis"),
            axis_values=tuple(d.get("axis_values", ())),
            memory_mb=memory_mb,
        )
