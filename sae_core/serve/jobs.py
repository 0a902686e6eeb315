"""A training run in a background thread, controlled from UI callbacks (no Streamlit here).

The page keeps one `TrainingJob` per browser session; its buttons call start / pause / step_once /
stop and its sliders hand it a new config (set_config). The thread never touches the UI: it publishes
`Snapshot`s and the page draws the latest one on a timer. The thread lives only while the job trains: a
paused job holds no thread, and `release()` (the server's `scheduler.Reaper`, for a session that has
gone) gives back its model, optimizer and data too.
"""

from __future__ import annotations

import atexit
import copy
import dataclasses
import functools
import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import torch

from sae_core.config.run import RunConfig
from sae_core.data.datasets import Dataset
from sae_core.serve.run_clock import RunClock
from sae_core.serve.scheduler import BusyError, TrainingQueue, name_os_thread
from sae_core.train.trainer import Snapshot, Trainer

__all__ = ["BusyError", "TrainingJob"]

log = logging.getLogger(__name__)

LOCK_HANDOVER_S = 0.001
"""The training thread's pause between two sections, off the job's lock (see TrainingJob._loop)."""
TRAINING_THREAD = "sae-training"
"""The name of a job's thread, in Python and in the operating system (scheduler.name_os_thread)."""
SHUTDOWN_JOIN_S = 5.0
"""At interpreter exit, how long `shutdown_all` waits for each training thread to leave its step."""
DISCONNECT_GRACE_S = 5.0
"""A running job whose browser session has had no tab connected for this long pauses itself (the tab
was closed or reloaded: a reload is a new session, so the old run must not keep its slot)."""


class TrainingJob:
    """Owns a Trainer and the thread that steps it.

    queue: the server's `TrainingQueue`; a job holds a place in it while it trains or waits, as `owner`
    (its browser). With no free slot, start() leaves the job "queued" (`queue_place()` says where) and
    it starts by itself when its turn comes. is_watched: says whether the job's browser session has a
    tab connected (the page passes one that asks the server, so a user on another page of the app keeps
    the run going); a running job pauses itself once it has been False for disconnect_grace_s. wake: called
    (from the thread that freed the slot) when a queued job starts by itself, so that its page, which
    does not poll while it waits, redraws as "training". Without
    one (AppTest, scripts), the job pauses after idle_timeout seconds without a `latest()` call.
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
        queue: TrainingQueue | None = None,
        owner: str = "",
        device: str | None = None,
        is_watched: Callable[[], bool] | None = None,
        wake: Callable[[], None] | None = None,
        disconnect_grace_s: float = DISCONNECT_GRACE_S,
        initial_state: Mapping[str, torch.Tensor] | None = None,
        start_step: int = 0,
        trainer: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # trainer: something else that steps like a Trainer (sae_core.serve.sweep_job.SweepStepper: a whole
        # sweep); config and dataset are then only what it was built from.
        self.trainer = (
            trainer
            if trainer is not None
            else Trainer(config, dataset, device=device, initial_state=initial_state, start_step=start_step)
        )
        self._clock = RunClock(clock)  # the wall-clock time it has trained: the page's samples/s and ETA
        self.snapshot_interval = snapshot_interval
        self.first_snapshot_s = first_snapshot_s
        self._first_section = False  # set by start(): the next stepping section is a short one
        self._published = threading.Condition(threading.Lock())  # notified by _publish
        self.idle_timeout = idle_timeout
        self._is_watched = is_watched
        self._wake = wake
        self.disconnect_grace_s = disconnect_grace_s
        self._unwatched_since: float | None = None
        self._paused_unwatched = False  # paused by itself for want of a tab: revive() may train it again
        self._last_seen = time.monotonic()  # the session last seen connected (or the page last read)
        self._queue = queue
        self._owner = owner
        self._ticket: object | None = None  # this job's current place in the queue (see _on_grant)
        self._released = False
        self._lock = threading.RLock()  # guards the trainer and _latest
        self._running = threading.Event()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_read = time.monotonic()
        self.status = "ready"
        self.message: str | None = None
        """Why the job paused itself, if it did (a divergence's message is the trainer's)."""
        self._latest = self.trainer.snapshot("ready")

    queue_cost = 1
    """How many runs' worth of the server this job is, against its browser's share of the training slots
    (a sweep: its cells)."""

    # ----- what the page reads --------------------------------------------------------------------------
    @property
    def config(self) -> RunConfig:
        return self.trainer.config

    @property
    def running(self) -> bool:
        return self._running.is_set() and self._thread is not None and self._thread.is_alive()

    @property
    def released(self) -> bool:
        """Its browser session ended and the reaper let go of its model and data (see release)."""
        return self._released

    @property
    def active(self) -> bool:
        """Training or waiting in the queue to train: the page keeps refreshing."""
        return self.running or self.status == "queued"

    @property
    def wakes_its_page(self) -> bool:
        """Whether its page is woken when the job starts from the queue (so need not poll while it waits)."""
        return self._wake is not None

    def queue_place(self) -> int | None:
        """Its place in the server's queue while "queued" (1 = next), else None."""
        place = None if self._queue is None or self.status != "queued" else self._queue.place(self)
        return place or None

    @property
    def step_count(self) -> int:
        return self.trainer.step_count

    def latest(self) -> Snapshot:
        """The newest snapshot; reading it also tells the job that someone is still watching."""
        self._last_read = self._last_seen = time.monotonic()
        return self._latest

    def model_copy(self) -> tuple[torch.nn.Module, int]:
        """(a CPU copy of the model in eval mode, the step it is at), taken between two steps (the thread
        holds the lock while it steps): what a page may run on the UI thread while the job trains on."""
        with self._lock:
            model = copy.deepcopy(self.trainer.model).cpu().eval()
            return model, self.trainer.step_count

    # ----- controls -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start or resume training in the background; with every slot taken, join the queue (status
        "queued") and start when its turn comes. BusyError when its browser holds all it may. A job that
        failed (its thread raised) starts again like a paused one."""
        if self.active or self._released:  # a quick answer without waiting for a training section
            return
        with self._lock:
            if self.active or self._released:
                return
            if self.trainer.finished:
                self.status = "done"
                return
            self._halt.clear()  # a stop before this start is over; a stop after it takes the lock too
            self._paused_unwatched = False
            # The queue's lock is taken inside a job's, never the other way round (see _release_slot).
            if self._queue is None:
                place = 0
            else:  # a ticket of its own for this place: a grant of a place given up since is stale
                self._ticket = ticket = object()
                grant = functools.partial(self._on_grant, ticket)
                place = self._queue.acquire(self, self._owner, grant, cost=self.queue_cost)
            self.message = None
            self._last_read = time.monotonic()
            if place:
                if self.status != "queued":
                    self._resume_status = self.status
                self.status = "queued"
                self._publish()
                return
            self._begin()

    resume = start

    def _begin(self) -> None:
        """Train from now on (under the lock, with a slot or without a queue)."""
        with self._lock:
            self._first_section = True
            self._halt.clear()
            self._running.set()
            if self.status == "failed":  # the error is no longer the news (the first section republishes)
                self._latest = dataclasses.replace(self._latest, status="running", message=None)
            self.status = "running"
            self.message = None
            self._clock.start(*self._work())
            if self._thread is None:  # the thread clears this, under the lock, when it ends
                self._thread = threading.Thread(target=self._loop, name=TRAINING_THREAD, daemon=True)
                _TRAINING.add(self)
                self._thread.start()

    def _on_grant(self, ticket: object) -> None:
        """The queue gave this job a slot (called from the thread that freed it, after the queue's lock).

        The grant is stale when the job gave its place up after the queue moved it into a slot and before
        this call (Pause, then Train again): that place is back already, and the job may be waiting under
        a new ticket, which must not start on the old one's grant."""
        with self._lock:
            if ticket is not self._ticket:
                return
            if self.status == "queued" and not self._halt.is_set():
                if self._is_watched is not None and not self._is_watched():
                    # Its tab was closed or reloaded while it waited: it would train unseen until the
                    # disconnect grace paused it, holding a slot a student in the room is waiting for.
                    self.status = "paused"
                    self.message = (
                        "Left the queue: no tab of this browser session was open when its turn came."
                    )
                    self._paused_unwatched = True
                    self._publish()
                else:
                    self._last_read = time.monotonic()
                    self._begin()
                    if self._wake is not None:
                        self._wake()
                    return
            self._release_slot()  # it left the queue meanwhile (or its tab did): pass the slot on

    def pause(self) -> None:
        self._running.clear()  # the thread's section ends at its next step; the lock waits for that
        with self._lock:
            self._running.clear()  # again: a grant may have started it between the line above and here
            self._paused_unwatched = False
            self._clock.stop(*self._work())
            if self.status == "running":
                self.status = "paused"
            elif self.status == "queued":  # leaves the queue: back to what it was before
                self.status = getattr(self, "_resume_status", "paused")
            self._publish()
            self._release_slot()

    def step_once(self) -> Snapshot:
        """Pause if needed and take exactly one step (a failure in it fails the job, as in the thread)."""
        self.pause()
        with self._lock:
            try:
                if self.trainer.advance(max_steps=1, end=self.trainer.step_count + 1) == "diverged":
                    self.status = "diverged"
                elif self.status == "failed":
                    self.status = "paused"
                self._publish()
            except Exception as err:  # noqa: BLE001 - said on the page, logged in full for the server
                self._fail(err)
        return self._latest

    def stop(self) -> None:
        """End the thread; the model is kept and can still be stepped or saved."""
        self._halt.set()  # the thread's section ends at its next step; the lock waits for that
        self._running.clear()
        with self._lock:
            self._halt.set()  # again: a start() may have run between the lines above and here
            self._paused_unwatched = False
            self._running.clear()
            self._clock.stop(*self._work())
            thread = self._thread  # the thread clears the attribute itself as it ends
            if self.status in ("running", "paused", "ready", "queued"):
                self.status = "stopped"
            self._publish()
            self._release_slot()
        # The thread is between two sections; it ends at its next look at the flags. Not waited for
        # once the job trains again (a start() from another thread right after this one).
        deadline = time.monotonic() + 10
        while (
            thread is not None
            and thread is not threading.current_thread()
            and thread.is_alive()
            and not self._running.is_set()
            and time.monotonic() < deadline
        ):
            thread.join(timeout=0.05)

    def release(self) -> None:
        """Stop, and let go of the trainer (model, optimizer, data): for a run whose browser session has
        gone for good. The last snapshot stays readable; nothing can train or step any more."""
        self.stop()
        with self._lock:
            self._released = True
            self.status = "stopped"
            self.message = "Released: this run's browser session ended."
            self._latest = dataclasses.replace(self._latest, status="stopped", message=self.message)
            self.trainer = _ReleasedTrainer(self.trainer)

    def abandoned_for(self) -> float:
        """Seconds since the job's browser session was last seen connected; 0 while it is, and always 0
        without a way to tell (no is_watched: AppTest, scripts), so such a job is never released."""
        if self._is_watched is None or self._released:
            return 0.0
        if self._is_watched():
            self._last_seen = time.monotonic()
            return 0.0
        return time.monotonic() - self._last_seen

    def revive(self) -> bool:
        """Train again a run that paused itself (or left the queue) because its browser session had no tab
        connected, now that the same session has one again; True if it was started (or queued) again.

        A tab that stays open can lose its connection for longer than disconnect_grace_s: on a loaded
        server (three tabs training 4,096 units on two cores) the browser's websocket dropped and came
        back to the same session, while the run had paused for good and the page, not redrawn, still said
        "training". The server's reaper calls this at each of its rounds. A run paused by its user, or
        stopped, is never revived."""
        if not self._paused_unwatched or self._released or self._is_watched is None:
            return False
        if not self._is_watched():
            return False
        with self._lock:
            if not self._paused_unwatched or self.status != "paused":
                return False
            self._paused_unwatched = False
        try:
            self.start()
        except BusyError:  # its browser holds all it may meanwhile: it stays paused, as its user left it
            return False
        return True

    def set_config(self, config: RunConfig) -> None:
        """Take the live fields (LIVE_FIELDS: ρ, β, λ, lr, the run's length, λ_c) of an already validated
        config: at the next step while training, at once (and republished) otherwise. ValueError when a
        field that needs a new model differs."""
        with self._lock:
            self.trainer.set_config(config)
            if not self.running:
                self._apply_now()

    def _apply_now(self) -> None:
        """Apply a pending live change of a job that is not training, and republish. A finished run
        whose length was raised is paused, not done: start() continues it (same model)."""
        with self._lock:
            self.trainer.apply_live()
            if self.status == "done" and not self.trainer.finished:
                self.status = "paused"
            self._publish()

    # ----- the thread -----------------------------------------------------------------------------------
    def _loop(self) -> None:
        """The training thread. Whatever it raises (a bug, an out-of-memory error, a model that cannot
        take a step) fails the job: it says so with the error, gives its slot back at once and can be
        started again; the thread never ends with the job still "running"."""
        name_os_thread(TRAINING_THREAD)
        try:
            self._train()
        except BaseException as err:  # noqa: BLE001 - said on the page, logged in full for the server
            with self._lock:
                if self._thread is threading.current_thread():  # start() makes a new thread
                    self._thread = None
                self._fail(err)
                self._release_slot()

    def _train(self) -> None:
        trainer = self.trainer
        while True:
            with self._lock:  # ends here, so that start() sees no thread and makes a new one
                if self._halt.is_set() or not self._running.is_set():
                    self._thread = None
                    return
            if self._unwatched():
                with self._lock:
                    if self._running.is_set() and self.status == "running":
                        self.status = "paused"
                        self.message = (
                            "Paused: nobody has looked at this run for a while (tab closed?)."
                            if self._is_watched is None
                            else "Paused: no tab of this browser session was open (closed or reloaded)."
                        )
                        self._running.clear()
                        self._paused_unwatched = True
                        self._clock.stop(*self._work())
                        self._release_slot()  # before the snapshot says "paused": whoever reads it finds
                        self._publish()  # the slot already free for the others
                continue
            section = self.first_snapshot_s if self._first_section else self.snapshot_interval
            self._first_section = False
            with self._lock:
                outcome = trainer.advance(
                    deadline=time.perf_counter() + section, keep_going=self._running.is_set
                )
                ended = outcome == "diverged" or (outcome == "done" and self.status == "running")
                if ended:
                    self.status = outcome
                    self._clock.stop(*self._work())
                self._publish(strict=True)
                if ended:  # after the final snapshot is out: once a job is not active, latest() is final
                    self._running.clear()
                if not self._running.is_set():
                    self._release_slot()
            # Locks are not fair: released and taken again at once, this thread could keep a page that
            # waits for the lock (a live change, Pause, Step) out for as long as it trains. Seen: an
            # AppTest's set_config waited 30 s, until the idle timeout paused the run. A moment off the
            # lock and the GIL lets the waiter in.
            time.sleep(LOCK_HANDOVER_S)

    def _fail(self, err: BaseException) -> None:
        """Under the lock: the job failed with `err` (status "failed", the error on the page, the
        traceback in the server's log). The caller gives the slot back."""
        log.error("training job of %r failed", self._owner or "this session", exc_info=err)
        self._running.clear()
        self._clock.stop(*self._work())
        self.status = "failed"
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        self.message = (
            f"Training failed: {type(err).__name__}{': ' + first if first else ''}. The model is kept "
            "at its last step; press Train to try again, or Reset for a fresh model."
        )
        self._publish()

    def _unwatched(self) -> bool:
        """No tab of its browser session for disconnect_grace_s (with is_watched), or no page read for
        idle_timeout s (without)."""
        now = time.monotonic()
        if self._is_watched is None:
            return now - self._last_read > self.idle_timeout
        if self._is_watched():
            self._unwatched_since = None
            self._last_seen = now
            return False
        if self._unwatched_since is None:
            self._unwatched_since = now
        return now - self._unwatched_since > self.disconnect_grace_s

    def _publish(self, strict: bool = False) -> None:
        """A new snapshot for the page. When the snapshot itself fails (out of memory, a model that cannot
        evaluate), the last one is republished with the new status and message; with strict (the training
        thread), the error is raised instead, and fails the job."""
        with self._lock:
            message = self.trainer.message if self.status == "diverged" else self.message
            try:
                self._latest = self._timed(self.trainer.snapshot(self.status, message))
            except Exception:
                if strict:
                    raise
                log.exception("snapshot of a %s training job failed", self.status)
                self._latest = dataclasses.replace(self._latest, status=self.status, message=message)
        with self._published:
            self._published.notify_all()

    def _work(self) -> tuple[int, int]:
        """(steps, samples) the trainer has done (a sweep's stepper counts no samples)."""
        return self.trainer.step_count, getattr(self.trainer, "samples", 0)

    def _timed(self, snap: Any) -> Any:
        """The snapshot with its time and rate from the job's wall clock (RunClock), pauses excluded."""
        seconds, _, _ = self._clock.totals(*self._work())
        if hasattr(snap, "samples_per_second"):
            rate = self._clock.samples_per_second(*self._work())
            return dataclasses.replace(snap, seconds=seconds, samples_per_second=rate)
        return dataclasses.replace(snap, seconds=seconds)

    def eta_seconds(self) -> float | None:
        """Seconds until the run's end at the rate it has trained so far, wall clock, pauses excluded; None
        for a run until paused or before its first step."""
        total = self.trainer.total_steps
        if not total:
            return None
        return self._clock.eta(total - self.trainer.step_count, *self._work())

    def wait_for_step(self, step: int, timeout: float) -> Snapshot:
        """Block until a snapshot past `step` is published, the job stops running, or `timeout` s pass;
        return the latest snapshot. Lets a Train click draw the first trained picture in its own rerun."""
        deadline = time.monotonic() + timeout
        with self._published:
            while self._latest.step <= step and self.running and (left := deadline - time.monotonic()) > 0:
                self._published.wait(left)
        return self.latest()

    def _release_slot(self) -> None:
        """Give the slot back or leave the queue (idempotent: the queue forgets a job it does not hold).

        Called under this job's lock, like every change of its state, so that no other thread can start
        the job between its decision to let go and the slot's return (the job would train without a
        slot). Giving the slot back may grant it to the next job, whose _on_grant takes that job's lock
        from here. That cannot deadlock: the queue's lock is never held while a job's lock is taken, and a
        grant goes only to a job that was waiting when the queue was last changed, which a job that is
        giving its own place back (under its lock, so it cannot queue again meanwhile) never is."""
        if self._queue is not None:
            self._ticket = None
            self._queue.release(self)


_TRAINING: weakref.WeakSet[TrainingJob] = weakref.WeakSet()
"""Jobs that have had a training thread: what `shutdown_all` stops when the process exits."""


def shutdown_all(timeout_s: float = SHUTDOWN_JOIN_S) -> int:
    """Stop every training thread and wait for each to leave its step; how many were still running.

    Registered with atexit, so it runs when the server exits (Streamlit's SIGTERM handler stops the
    server, then the interpreter exits): a daemon thread still inside a torch operation when the
    interpreter finalizes makes the C++ runtime abort with "terminate called without an active
    exception". Flags only (no snapshot, no slot bookkeeping): the process is going."""
    threads = []
    for job in list(_TRAINING):
        job._halt.set()
        job._running.clear()
        thread = job._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            threads.append(thread)
    deadline = time.monotonic() + timeout_s
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    return len(threads)


atexit.register(shutdown_all)


class _ReleasedTrainer:
    """What is left of a released job's trainer: its config and step count, no tensors."""

    def __init__(self, trainer: Trainer) -> None:
        self.config = trainer.config
        self.step_count = trainer.step_count
        self.total_steps = trainer.total_steps
        self.finished = True
        self.model = None
