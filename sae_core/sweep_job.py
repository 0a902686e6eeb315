"""A sweep trained in the background, as the Train page's run is: `SweepJob`, a TrainingJob over a grid.

    job = SweepJob(spec, dataset, queue=..., owner=..., is_watched=...)   # the same keywords as TrainingJob
    job.start() / job.pause() / job.stop() / job.release()                # one training slot for the grid
    job.latest() -> SweepSnapshot                                          # immutable, CPU copies
    job.cell_state(i) -> (state dict, RunConfig, step)                    # cell i's weights, between steps

The whole grid is one job: it takes one slot of the server's queue (it is one batched computation on one
thread), pauses itself when its browser session has gone, and the reaper releases it like any run. What
makes that possible is `SweepStepper`, which gives a SweepTrainer the few members TrainingJob uses of a
Trainer (advance, snapshot, step_count, total_steps, finished, config, message).
"""

from __future__ import annotations

from typing import Any

import torch

from .config import RunConfig
from .data import Dataset
from .jobs import TrainingJob
from .sweep import SweepSnapshot, SweepSpec, SweepTrainer

SNAPSHOT_INTERVAL_S = 1.0
"""Seconds of training between two snapshots: a sweep's snapshot evaluates every cell on the probe, so it
is taken less often than a single run's (0.25 s)."""


class SweepStepper:
    """A SweepTrainer with the face TrainingJob expects of a Trainer."""

    message: str | None = None
    model = None  # no single model: TrainingJob.model_copy does not apply to a sweep

    def __init__(self, sweeper: SweepTrainer) -> None:
        self.sweeper = sweeper
        self.config: RunConfig = sweeper.spec.base

    @property
    def step_count(self) -> int:
        return self.sweeper.step_count

    @property
    def total_steps(self) -> int:
        return self.sweeper.total_steps

    @property
    def finished(self) -> bool:
        return self.sweeper.finished

    def advance(self, **kwargs: Any) -> str:
        """SweepTrainer.advance: "running" or "done" (a diverged cell stops alone; the grid goes on)."""
        return self.sweeper.advance(**kwargs)

    def snapshot(self, status: str = "running", message: str | None = None) -> SweepSnapshot:
        snap = self.sweeper.snapshot("done" if status == "done" else status)
        return snap if message is None else _with_message(snap, message)


def _with_message(snap: SweepSnapshot, message: str) -> SweepSnapshot:
    import dataclasses

    return dataclasses.replace(snap, message=message)


class SweepJob(TrainingJob):
    """Every cell of `spec` trained together on one background thread (see the module's docstring)."""

    def __init__(
        self,
        spec: SweepSpec,
        dataset: Dataset,
        *,
        device: str | None = None,
        snapshot_interval: float = SNAPSHOT_INTERVAL_S,
        **job_options: Any,
    ) -> None:
        stepper = SweepStepper(SweepTrainer(spec, dataset, device))
        super().__init__(
            spec.base, dataset, snapshot_interval=snapshot_interval, trainer=stepper, **job_options
        )
        self.spec = spec

    def latest(self) -> SweepSnapshot:  # the same as TrainingJob's; the type differs
        return super().latest()

    def set_config(self, config: RunConfig) -> None:
        raise ValueError("a sweep's settings are fixed once it is built; build a new sweep to change them")

    def cell_state(self, i: int) -> tuple[dict[str, torch.Tensor], RunConfig, int]:
        """(cell i's weights as CPU tensors, its config, the step they are at), taken between two steps.
        RuntimeError when the job was released (its browser session ended)."""
        with self._lock:
            if self.released:
                raise RuntimeError("this sweep was released (its browser session ended); train it again")
            sweeper = self.trainer.sweeper
            state = {k: v.detach().cpu().clone() for k, v in sweeper.cell_state(i).items()}
            return state, self.spec.cells()[i], sweeper.step_count
