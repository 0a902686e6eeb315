"""A sweep trained in the background, as the Train page's run is: `SweepJob`, a TrainingJob over a grid.

    job = SweepJob(spec, dataset, queue=..., owner=..., is_watched=...)   # the same keywords as TrainingJob
    job.start() / job.pause() / job.stop() / job.release()                # one training slot for the grid
    job.latest() -> SweepSnapshot                                          # immutable, CPU copies
    job.cell_state(i) -> (state dict, RunConfig, step)                    # cell i's weights, between steps

The whole grid is one job: it takes one slot of the server's queue (it is one batched computation on one
thread), pauses itself when its browser session has gone, and the reaper releases it like any run. What
makes that possible is `SweepStepper`, which gives a SweepTrainer the few members TrainingJob uses of a
Trainer (advance, snapshot, step_count, total_steps, finished, config, message).

`RemoteSweepJob` is the same for a sweep whose blocks train on a Ray cluster (sae_core.sweep.ray_backend): a
thread here waits for them, and latest() shows the blocks that have come back.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from typing import Any

import numpy as np
import torch

from sae_core.config.run import RunConfig
from sae_core.data.datasets import Dataset
from sae_core.serve.jobs import TRAINING_THREAD, TrainingJob
from sae_core.serve.scheduler import name_os_thread
from sae_core.sweep.trainer import SweepSnapshot, SweepSpec, SweepTrainer

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
        self.queue_cost = spec.n_cells  # one thread, but every cell's work: counted so in its browser's share

    def latest(self) -> SweepSnapshot:  # the same as TrainingJob's; the type differs
        return super().latest()

    @property
    def finished(self) -> bool:
        return self.trainer.finished

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


class RemoteSweepJob:
    """A sweep whose blocks train elsewhere (a backend of sae_core.sweep.run: "ray" on a cluster), driven
    from a background thread here. Offers what the Explore page uses of a SweepJob: start, stop, status,
    latest() (the blocks finished so far: the others' cells are missing), cell_state. Blocks cannot pause
    on a cluster, and the work takes no training slot of this server (it runs on the cluster's cores)."""

    released = False
    wakes_its_page = False
    """It never waits in this server's queue (see TrainingJob.wakes_its_page)."""

    def __init__(self, spec: SweepSpec, dataset: Dataset, backend: str = "ray") -> None:
        from sae_core.sweep.run import BACKENDS, check_backend

        check_backend(backend)
        spec.check_memory(samples=len(dataset.train), image_shape=dataset.image_shape)
        self.spec, self.backend = spec, backend
        self._run = BACKENDS[backend]
        self._dataset: Dataset | None = dataset
        self._results: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.status = "ready"
        self.message: str | None = None
        self._t0 = 0.0
        self._image_shape = tuple(dataset.image_shape)

    # ----- what the page reads ----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def active(self) -> bool:
        return self.running

    @property
    def finished(self) -> bool:
        return self.status == "done"

    def queue_place(self) -> int | None:
        return None

    @property
    def step_count(self) -> int:
        return self.latest().step

    def latest(self) -> SweepSnapshot:
        with self._lock:
            results = [self._results[b] for b in sorted(self._results)]
            status, message = self.status, self.message
        total = self._total_steps()
        if not results:
            return SweepSnapshot(self.spec, 0, total, 0.0, status, (), self._image_shape, message)
        snap = SweepSnapshot.combine([r.snapshot for r in results])
        done = len(results) == len(self.spec.blocks())
        step = snap.step if done else 0  # the grid as a whole is at step 0 until its last block is in
        return dataclasses.replace(snap, step=step, status=status, message=message)

    def _total_steps(self) -> int:
        t = self.spec.base.train
        if t.epochs is None or self._dataset is None:
            return t.steps
        n, b = len(self._dataset.train), t.batch_size
        return max(1, math.ceil(t.epochs * n / (n if b == 0 or b >= n else b)))

    def cell_state(self, i: int) -> tuple[dict[str, torch.Tensor], RunConfig, int]:
        with self._lock:
            for result in self._results.values():
                if i in result.cells:
                    state = result.states[result.cells.index(i)]
                    tensors = {k: torch.as_tensor(np.array(v)) for k, v in state.items()}
                    return tensors, self.spec.cells()[i], result.snapshot.step
        raise RuntimeError(f"cell {i} has not finished training yet")

    # ----- controls ---------------------------------------------------------------------------------------
    def start(self) -> None:
        if self.running or self.status in ("done", "stopped", "failed"):
            return
        self.status, self.message, self._t0 = "running", None, time.perf_counter()
        self._thread = threading.Thread(target=self._loop, name=TRAINING_THREAD, daemon=True)
        self._thread.start()

    def pause(self) -> None:
        """Blocks on a cluster cannot pause: this is stop()."""
        self.stop()

    def stop(self) -> None:
        """Cancel what has not come back (at the backend's next poll); keep the blocks that have. Returns
        at once: the thread ends by itself, and a block that comes back after this is not taken."""
        self._stop.set()
        with self._lock:
            if self.status in ("running", "ready"):
                self.status = "stopped"
                self.message = "Stopped: the cells of the blocks that had finished are kept."

    def set_config(self, config: RunConfig) -> None:
        raise ValueError("a sweep's settings are fixed once it is built; build a new sweep to change them")

    def _loop(self) -> None:
        from sae_core.sweep.run import Stopped

        name_os_thread(TRAINING_THREAD)
        try:
            self._run(self.spec, self._dataset, on_result=self._keep, should_stop=self._stop.is_set)
        except Stopped:
            return  # stop() says what happened
        except Exception as err:  # the cluster's error, in one line, for the page
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            with self._lock:
                self.status, self.message = "failed", f"The {self.backend} backend failed: {first}"
            return
        finally:
            self._dataset = None  # the cluster has its copy; this server need not keep one
        with self._lock:
            if self.status == "running":
                self.status = "done"

    def _keep(self, result) -> None:
        with self._lock:
            if not self._stop.is_set():
                self._results[result.block] = result
