"""Sweeps: a ρ × β grid of runs (optionally × hidden units, λ or seed) trained together, batched.

API (the Explore page, `sae sweep` and the Ray backend build on these; nothing here imports streamlit):

    spec = SweepSpec(base=RunConfig(...), rhos=(0.01, 0.05), betas=(0.0, 3.0),
                     axis="hidden", axis_values=(16, 25))      # axis and axis_values are optional
    spec.cells()                 every cell's full RunConfig, in cell order (sae_core.sweep.spec explains it)
    spec.blocks()                cell indices grouped by shape; each group trains as one batched computation
    sweeper = SweepTrainer(spec, dataset)
    sweeper.advance(max_steps=None, deadline=None, keep_going=None) -> "running" | "done"
                                 one section, as Trainer.advance
    sweeper.step_count, sweeper.total_steps, sweeper.finished, sweeper.seconds
    sweeper.snapshot() -> SweepSnapshot        immutable, CPU numpy copies; .cells[i] is a CellSnapshot
    sweeper.cell_state(i) -> state dict (CPU tensors); sae_core.sweep.block.model_from_state makes it the
                                 ordinary model (models.build) of cell i's config

Equality: every cell ends with the weights sae_core.train.trainer.Trainer gives its config on its own (same
seed, same batch order, same noise, same optimizer numerics, within float rounding); tests/test_sweep.py
checks it for every registered variant and penalty and both optimizers. Metrics are computed on the
Trainer's fixed probe (PROBE_SIZE training samples picked by a generator seeded 1234) by the same code as a
run's snapshot, so a cell's numbers match that run's Train page. Cells that are the same run (a β = 0
column's cells, which differ only in ρ: `SweepSpec.twins`) are trained once and each reported as itself.
Refused: L-BFGS and lr schedules (a ValueError that says so).
Running a spec into a folder (the CLI, backends): sae_core.sweep.run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from sae_core.config.run import RunConfig
from sae_core.data.datasets import Dataset
from sae_core.sweep.block import BlockTrainer
from sae_core.sweep.spec import AXES, SUPPORTED_OPTIMIZERS, SweepSpec
from sae_core.train.trainer import PROBE_SIZE, resolve_device

__all__ = [
    "AXES",
    "CellSnapshot",
    "METRICS",
    "SUPPORTED_OPTIMIZERS",
    "SweepSnapshot",
    "SweepSpec",
    "SweepTrainer",
]

METRICS = {
    "recon_error": "Reconstruction error ½·mean‖x̂ − x‖²",
    "mean_activation": "Mean ρ̂ (mean activation)",
    "l0": "L0 (active units per input)",
    "dead_units": "Dead units",
    "fve": "Fraction of variance explained",
    "mse": "Mean squared error per pixel",
    "loss": "Objective (last step)",
    "features_found": "True features found (similarity > 0.9)",
    "mmcs": "MMCS (mean max cosine similarity)",
}
"""The per-cell numbers a grid can be coloured by (`SweepSnapshot.grid`), with labels for axes and legends.
The last two only on data with known features (features_found) matched by cosine (mmcs: superposition);
`SweepSnapshot.has` says whether a snapshot has one."""


TRUTH_COLUMNS = ("features_found", "features_total", "mmcs")
"""sweep.csv's extra columns on data with known features (`metrics.truth_summary`)."""


@dataclass(frozen=True)
class CellSnapshot:
    """One cell of the grid at one step (CPU copies)."""

    index: int
    config: RunConfig
    rho: float
    beta: float
    axis_value: float | int | None
    block: int
    """Which of spec.blocks() trained it."""
    status: str
    """running | done | diverged."""
    message: str | None
    losses: dict[str, float]
    """Latest step's loss terms (reconstruction, sparsity when the objective has it, weight_decay, total)."""
    metrics: dict[str, float]
    """On the probe: recon_error, mse, fve, mean_activation (mean ρ̂), l0, dead_fraction, dead_units; with
    ground truth also features_found, features_total and (cosine matching) mmcs, from the weights."""
    history_steps: np.ndarray
    """[T] steps of the recorded losses (bounded: sweep_block.HISTORY_CAP points)."""
    history: dict[str, np.ndarray]
    """term -> [T]."""
    rho_hat: np.ndarray
    """[hidden] each unit's mean activation on the probe."""
    thumbnail: np.ndarray
    """[h, w] float32 montage of the first THUMB_UNITS encoder filters (images.filter_montage: each in
    [-1, 1], NaN between tiles)."""
    seconds: float
    """Training time of its block (the cells of a block train together)."""


@dataclass(frozen=True)
class SweepSnapshot:
    """The grid at one step. `cells` are in cell order (a block's own snapshot holds only its cells)."""

    spec: SweepSpec
    step: int
    total_steps: int
    seconds: float
    status: str
    """running | done | stopped (what the caller says) ."""
    cells: tuple[CellSnapshot, ...]
    image_shape: tuple[int, int]
    message: str | None = None
    """Why it stopped or paused, when it did (a background job says: sae_core.serve.sweep_job)."""

    @property
    def progress(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0

    def cell(self, i: int) -> CellSnapshot:
        return next(c for c in self.cells if c.index == i)

    def value(self, cell: CellSnapshot, metric: str) -> float:
        if metric == "loss":
            return cell.losses.get("total", math.nan)
        return float(cell.metrics.get(metric, math.nan))

    def has(self, metric: str) -> bool:
        """Whether the cells carry this metric (the truth metrics need data with known features)."""
        return metric == "loss" or any(metric in c.metrics for c in self.cells)

    def grid(self, metric: str) -> np.ndarray:
        """[axis values or 1, len(rhos), len(betas)] of one of METRICS; NaN for cells not in this snapshot."""
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
        out = np.full(self.spec.shape, np.nan)
        for c in self.cells:
            out[self.spec.coords(c.index)] = self.value(c, metric)
        return out

    def rows(self) -> list[dict]:
        """One flat dict per cell: the table `sae sweep` writes (sweep.csv / sweep.json)."""
        axis = self.spec.axis
        rows = []
        for c in self.cells:
            row: dict = {"cell": c.index, "name": self.spec.cell_name(c.index), "rho": c.rho, "beta": c.beta}
            if axis is not None:
                row[axis] = c.axis_value
            row.update({k: c.metrics[k] for k in ("recon_error", "mean_activation", "l0", "dead_units")})
            row.update(fve=c.metrics["fve"], mse=c.metrics["mse"], loss=c.losses.get("total", math.nan))
            row.update({k: c.metrics[k] for k in TRUTH_COLUMNS if k in c.metrics})
            row.update(status=c.status, steps=self.step, seconds=c.seconds)
            rows.append(row)
        return rows

    @staticmethod
    def combine(parts: list[SweepSnapshot]) -> SweepSnapshot:
        """One snapshot of the whole grid from the snapshots of its blocks (e.g. trained apart)."""
        first = parts[0]
        cells = tuple(sorted((c for p in parts for c in p.cells), key=lambda c: c.index))
        statuses = {p.status for p in parts}
        status = statuses.pop() if len(statuses) == 1 else "stopped"
        return SweepSnapshot(
            first.spec, min(p.step for p in parts), first.total_steps, sum(p.seconds for p in parts),
            status, cells, first.image_shape,
        )  # fmt: skip


class SweepTrainer:
    """Trains the cells of `spec` (or only the blocks named) on `dataset`, every block batched."""

    def __init__(
        self,
        spec: SweepSpec,
        dataset: Dataset,
        device: torch.device | str | None = None,
        blocks: tuple[int, ...] | None = None,
    ) -> None:
        self.spec, self.dataset = spec, dataset
        spec.check_memory(samples=len(dataset.train), image_shape=dataset.image_shape)
        self.device = torch.device(device) if device is not None else resolve_device(spec.base.train.device)
        self.x = dataset.train.to(self.device)
        self.n = self.x.shape[0]
        probe = torch.randperm(self.n, generator=torch.Generator().manual_seed(1234))[:PROBE_SIZE]
        self.probe = self.x[probe.to(self.device)]  # the Trainer's probe
        chosen = range(len(spec.blocks())) if blocks is None else blocks
        cells = spec.cells()
        self.block_ids = tuple(chosen)
        self.block_cells = tuple(spec.blocks()[b] for b in self.block_ids)
        """Per block trained here: its cells."""
        self.twins = spec.twins()
        """Per cell of the spec: the cell trained for it (`SweepSpec.twins`: β = 0 makes ρ irrelevant)."""
        self.trained_cells = tuple(tuple(i for i in ids if self.twins[i] == i) for ids in self.block_cells)
        """Per block: the cells its BlockTrainer trains (each cell's twin is among them)."""
        self.blocks = tuple(
            BlockTrainer([cells[i] for i in ids], dataset, self.x, self.batch_size, self.device)
            for ids in self.trained_cells
        )
        self.step_count = 0
        self.seconds = 0.0

    @property
    def batch_size(self) -> int:
        b = self.spec.base.train.batch_size
        return self.n if b == 0 or b >= self.n else b

    @property
    def total_steps(self) -> int:
        """The run's length in steps (as Trainer.total_steps); 0 for a sweep until paused."""
        t = self.spec.base.train
        if t.epochs is None:
            return t.steps
        return max(1, math.ceil(t.epochs * self.n / self.batch_size))

    @property
    def finished(self) -> bool:
        """Every cell reached the end, or diverged."""
        return self._reached(None) or all(b.all_frozen for b in self.blocks)

    def _reached(self, end: int | None) -> bool:
        stop = end if end is not None else self.total_steps or None
        return stop is not None and self.step_count >= stop

    def advance(
        self,
        max_steps: int | None = None,
        deadline: float | None = None,
        keep_going: Callable[[], bool] | None = None,
        end: int | None = None,
    ) -> str:
        """Step every block until step `end` (default: total_steps), `max_steps` steps, the time `deadline`
        (time.perf_counter()) or `keep_going()` false; then sync. Returns "running" or "done"."""
        t0 = time.perf_counter()
        taken = 0
        try:
            while (
                not self._reached(end)
                and not self.finished
                and (max_steps is None or taken < max_steps)
                and (deadline is None or time.perf_counter() < deadline)
                and (keep_going is None or keep_going())
            ):
                for block in self.blocks:
                    if not block.all_frozen:
                        block.step(self.step_count, self.total_steps)
                self.step_count += 1
                taken += 1
            self.sync()
        finally:
            self.seconds += time.perf_counter() - t0
        return "done" if self._reached(end) or self.finished else "running"

    def sync(self) -> None:
        for block in self.blocks:
            block.sync(self.step_count)

    def _find(self, i: int) -> tuple[int, int]:
        """(block, position in its BlockTrainer) of the cell that trains for cell i."""
        for b, (ids, trained) in enumerate(zip(self.block_cells, self.trained_cells, strict=True)):
            if i in ids:
                return b, trained.index(self.twins[i])
        raise IndexError(
            f"cell {i} is not trained here (cells: {sorted(c for ids in self.block_cells for c in ids)})"
        )

    def cell_state(self, i: int) -> dict[str, torch.Tensor]:
        b, g = self._find(i)
        return self.blocks[b].state_dict(g)

    def snapshot(self, status: str | None = None) -> SweepSnapshot:
        """Sync, evaluate every cell on the probe and copy what the views need."""
        self.sync()
        done = self.finished
        cells = []
        for b, (block, ids) in enumerate(zip(self.blocks, self.block_cells, strict=True)):
            evaluated = block.evaluate(self.probe, self.step_count, self.total_steps)
            for i in ids:
                g = self.trained_cells[b].index(self.twins[i])
                ev = {**evaluated[g], "metrics": dict(evaluated[g]["metrics"])}  # a twin's own dict
                cells.append(self._cell(i, self.block_ids[b], block, g, ev, done))
        cells.sort(key=lambda c: c.index)
        return SweepSnapshot(
            spec=self.spec,
            step=self.step_count,
            total_steps=self.total_steps,
            seconds=self.seconds,
            status=status or ("done" if done else "running"),
            cells=tuple(cells),
            image_shape=tuple(self.dataset.image_shape),
        )

    def _cell(self, i: int, b: int, block: BlockTrainer, g: int, ev: dict, done: bool) -> CellSnapshot:
        cfg = self.spec.cells()[i]
        history = block.histories[g]
        status = "diverged" if g in block.frozen else "done" if done else "running"
        return CellSnapshot(
            index=i,
            config=cfg,
            rho=cfg.model.rho,
            beta=cfg.model.beta,
            axis_value=self.spec.axis_value(i),
            block=b,
            status=status,
            message=block.messages.get(g),
            losses=history.latest(),
            metrics=ev["metrics"],
            history_steps=history.steps(),
            history=history.values(),
            rho_hat=ev["rho_hat"],
            thumbnail=ev["thumbnail"],
            seconds=block.seconds,
        )
