"""A training run in a background thread, controlled from UI callbacks (no Streamlit here).

The page keeps one `TrainingJob` per browser session; its buttons call start / pause / step_once /
stop and its sliders call set_live. The thread never touches the UI: it publishes `Snapshot`s and
the page draws the latest one on a timer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .config import RunConfig
from .data import Dataset
from .training import Snapshot, Trainer


class BusyError(RuntimeError):
    """All training slots of this server are in use."""


class TrainingJob:
    """Owns a Trainer and the thread that steps it.

    slots: a server-wide semaphore; a job holds one slot while it trains. idle_timeout: seconds
    without a `latest()` call after which the job pauses itself (its browser tab has gone), unless
    `is_watched()` says that someone is still there (the page passes one that asks the server whether
    the browser session is connected, so a user on another page of the app keeps the run going).
    The run's length (config steps / epochs, live) is its step limit: the thread ends its stepping there
    with status "done"; a run until paused (steps 0) has none. first_snapshot_s: length of the first
    stepping section after each start, so that the page sees the model move within a moment of the
    click instead of after a whole snapshot_interval.
    """

    def __init__(
        self,
        config: RunConfig,
        dataset: Dataset,
        *,
        snapshot_interval: float = 0.25,
        first_snapshot_s: float = 0.02,
        idle_timeout: float = 30.0,
        slots: threading.Semaphore | None = None,
        device: str | None = None,
        is_watched: Callable[[], bool] | None = None,
    ) -> None:
        self.trainer = Trainer(config, dataset, device=device)
        self.snapshot_interval = snapshot_interval
        self.first_snapshot_s = first_snapshot_s
        self._first_section = False  # set by start(): the next stepping section is a short one
        self._published = threading.Condition(threading.Lock())  # notified by _publish
        self.idle_timeout = idle_timeout
        self._is_watched = is_watched
        self._slots = slots
        self._holds_slot = False
        self._lock = threading.RLock()  # guards the trainer and _latest
        self._running = threading.Event()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_read = time.monotonic()
        self.status = "ready"
        self.message: str | None = None
        """Why the job paused itself, if it did (a divergence's message is the trainer's)."""
        self._latest = self.trainer.snapshot("ready")

    # ----- what the page reads --------------------------------------------------------------------------
    @property
    def config(self) -> RunConfig:
        return self.trainer.config

    @property
    def running(self) -> bool:
        return self._running.is_set() and self._thread is not None and self._thread.is_alive()

    @property
    def step_count(self) -> int:
        return self.trainer.step_count

    def latest(self) -> Snapshot:
        """The newest snapshot; reading it also tells the job that someone is still watching."""
        self._last_read = time.monotonic()
        return self._latest

    # ----- controls -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start or resume training in the background. Raises BusyError when no slot is free."""
        if self.running:
            return
        if self.trainer.finished:
            self.status = "done"
            return
        self._acquire_slot()
        self.message = None
        self._last_read = time.monotonic()
        self._first_section = True
        self._halt.clear()
        self._running.set()
        self.status = "running"
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="sae-training", daemon=True)
            self._thread.start()

    resume = start

    def pause(self) -> None:
        self._running.clear()
        if self.status == "running":
            self.status = "paused"
        self._wait_idle()
        self._publish()
        self._release_slot()

    def step_once(self) -> Snapshot:
        """Pause if needed and take exactly one step."""
        self.pause()
        with self._lock:
            if self.trainer.advance(max_steps=1, end=self.trainer.step_count + 1) == "diverged":
                self.status = "diverged"
            self._publish()
        return self._latest

    def stop(self) -> None:
        """End the thread; the model is kept and can still be stepped or saved."""
        self._halt.set()
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.status in ("running", "paused", "ready"):
            self.status = "stopped"
        self._publish()
        self._release_slot()

    def set_config(self, config: RunConfig) -> None:
        """Take the live fields (LIVE_FIELDS: ρ, β, λ, lr, the run's length, λ_c) of an already validated
        config: at the next step while training, at once (and republished) otherwise. ValueError when a
        field that needs a new model differs."""
        with self._lock:
            self.trainer.set_config(config)
            if not self.running:
                self._apply_now()

    def set_live(self, **changes: float) -> None:
        """set_config for a few changed fields, validated here (for callers that hold no config)."""
        with self._lock:
            self.trainer.set_live(**changes)
            if not self.running:
                self._apply_now()

    def _apply_now(self) -> None:
        """Apply a pending live change of a job that is not training, and republish. A finished run
        whose length was raised is paused, not done: start() continues it (same model)."""
        self.trainer.apply_live()
        if self.status == "done" and not self.trainer.finished:
            self.status = "paused"
        self._publish()

    # ----- the thread -----------------------------------------------------------------------------------
    def _loop(self) -> None:
        trainer = self.trainer
        while not self._halt.is_set():
            if not self._running.wait(timeout=0.1):
                continue
            if self._unwatched():
                self.status = "paused"
                self.message = "Paused: nobody has looked at this run for a while (tab closed?)."
                self._running.clear()
                self._publish()
                self._release_slot()
                continue
            section = self.first_snapshot_s if self._first_section else self.snapshot_interval
            self._first_section = False
            with self._lock:
                outcome = trainer.advance(
                    deadline=time.perf_counter() + section, keep_going=self._running.is_set
                )
                if outcome == "diverged":
                    self.status = "diverged"
                    self._running.clear()
                elif outcome == "done" and self.status == "running":
                    self.status = "done"
                    self._running.clear()
                self._publish()
            if not self._running.is_set():
                self._release_slot()

    def _unwatched(self) -> bool:
        """No page has read a snapshot for idle_timeout s and is_watched (when given) sees nobody either."""
        if time.monotonic() - self._last_read <= self.idle_timeout:
            return False
        return self._is_watched is None or not self._is_watched()

    def _publish(self) -> None:
        with self._lock:
            message = self.trainer.message if self.status == "diverged" else self.message
            self._latest = self.trainer.snapshot(self.status, message)
        with self._published:
            self._published.notify_all()

    def wait_for_step(self, step: int, timeout: float) -> Snapshot:
        """Block until a snapshot past `step` is published, the job stops running, or `timeout` s pass;
        return the latest snapshot. Lets a Train click draw the first trained picture in its own rerun."""
        deadline = time.monotonic() + timeout
        with self._published:
            while self._latest.step <= step and self.running and (left := deadline - time.monotonic()) > 0:
                self._published.wait(left)
        return self.latest()

    def _wait_idle(self) -> None:
        """Block until the thread has left its stepping section (it holds the lock there)."""
        with self._lock:
            pass

    def _acquire_slot(self) -> None:
        if self._slots is None or self._holds_slot:
            return
        if not self._slots.acquire(blocking=False):
            raise BusyError("The server is busy: every training slot is in use. Try again in a minute.")
        self._holds_slot = True

    def _release_slot(self) -> None:
        # pause() and the thread can both get here; the lock makes the check-and-release atomic so a
        # BoundedSemaphore is never released twice.
        with self._lock:
            if self._slots is not None and self._holds_slot:
                self._holds_slot = False
                self._slots.release()
