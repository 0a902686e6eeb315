"""Training slots for a shared server: a first-come queue, a per-owner limit, and a reaper (no Streamlit).

A class of students shares one server. `TrainingQueue` lets at most `slots` jobs train at once and
queues the rest in arrival order; when a slot frees, the first waiting job that may take it is told (its
`on_grant`) and starts. An owner (a browser, or a browser session) may hold at most `per_owner` places,
training or queued, and may train on at most its fair share of the slots (`share`: half of them, at least
one), a job counted by its cost (a sweep of many cells counts as many runs, up to the share), so one
student cannot fill every slot by opening tabs, reloading or starting sweeps: their job waits, and other
students' jobs behind it in the queue may pass it.

`Reaper` gives back what abandoned runs hold: a job whose browser session has been gone for longer
than the server keeps a disconnected session (Streamlit's `server.disconnectedSessionTTL`) is stopped and
its model, optimizer and data are released, so memory returns even when nobody opens the app again.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)


class BusyError(RuntimeError):
    """This owner already holds as many training places as it may."""


def name_os_thread(name: str) -> None:
    """Give the calling thread `name` in the operating system too (Linux: /proc/PID/task/TID/comm, shown by
    `top -H` and `ps -L`), so a server's training threads can be counted from outside. Python's own thread
    names stay inside the interpreter. Does nothing where prctl is not available."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # 15 = PR_SET_NAME, names are at most 15 bytes
    except (OSError, AttributeError):
        pass


def default_slots() -> int:
    """Jobs that may train at once: one per CPU core ($SAE_MAX_JOBS overrides). Each job steps with one
    thread, so more jobs than cores only slows every student down, and the web server needs a share."""
    if os.environ.get("SAE_MAX_JOBS"):
        return max(1, int(os.environ["SAE_MAX_JOBS"]))
    return max(1, os.cpu_count() or 1)


class TrainingQueue:
    """`slots` places that train, a FIFO of jobs waiting for one, at most `per_owner` places per owner and
    at most `share` slots' worth of training per owner (jobs weighed by their cost)."""

    def __init__(self, slots: int, per_owner: int = 1, share: int | None = None) -> None:
        if slots < 1 or per_owner < 1:
            raise ValueError(f"slots and per_owner must be >= 1, got {slots} and {per_owner}")
        self.slots = slots
        self.per_owner = per_owner
        self.share = max(1, slots // 2) if share is None else max(1, min(share, slots))
        """The most one owner may train at once, in runs (a job of cost c counts min(c, share))."""
        self._lock = threading.Lock()
        self._holders: dict[object, tuple[str, int]] = {}  # job -> (owner, weight), the jobs training now
        # (job, owner, on_grant, weight), in arrival order
        self._waiting: deque[tuple[object, str, Callable[[], None], int]] = deque()

    def acquire(self, job: object, owner: str, on_grant: Callable[[], None], cost: int = 1) -> int:
        """0 when `job` may train now; else its place in the queue (1 = next), and `on_grant()` is
        called, from the thread that frees a slot, when its turn comes. BusyError past the owner's limit.
        cost: how many runs' worth of the machine the job is (a sweep: its cells), counted up to `share`
        against its owner's share. Never grants another job (so a caller may hold its own job's lock)."""
        weight = max(1, min(int(cost), self.share))
        with self._lock:
            if job in self._holders:
                return 0
            for place, waiting in enumerate(self._waiting, start=1):
                if waiting[0] is job:
                    return place
            if self._owned(owner) >= self.per_owner:
                raise BusyError(
                    f"This browser already has {self._owned(owner)} run(s) training or queued on this "
                    f"server (at most {self.per_owner}). Pause it before starting another."
                )
            # A waiting job that could take a free slot would have been granted it when the slot freed:
            # the ones still waiting are over their owner's share, and a newcomer may pass them.
            if self._fits(owner, weight):
                self._holders[job] = (owner, weight)
                return 0
            self._waiting.append((job, owner, on_grant, weight))
            return len(self._waiting)

    def release(self, job: object) -> None:
        """`job` gives its slot back or leaves the queue (either is a no-op when it holds neither); the
        first waiting jobs that fit move into the free slots and are granted, outside the lock."""
        with self._lock:
            self._holders.pop(job, None)
            self._waiting = deque(w for w in self._waiting if w[0] is not job)
            granted = []
            for waiting in list(self._waiting):
                if len(self._holders) >= self.slots:
                    break
                other, owner, on_grant, weight = waiting
                if self._fits(owner, weight):
                    self._waiting.remove(waiting)
                    self._holders[other] = (owner, weight)
                    granted.append(on_grant)
        for on_grant in granted:
            on_grant()

    def _fits(self, owner: str, weight: int) -> bool:
        """A free slot, and the owner's training within its share with this job too (under the lock)."""
        training = sum(w for o, w in self._holders.values() if o == owner)
        return len(self._holders) < self.slots and training + weight <= self.share

    def place(self, job: object) -> int | None:
        """0 while `job` trains, its place in the queue while it waits, None otherwise."""
        with self._lock:
            if job in self._holders:
                return 0
            for place, waiting in enumerate(self._waiting, start=1):
                if waiting[0] is job:
                    return place
            return None

    def counts(self) -> tuple[int, int]:
        """(training, waiting)."""
        with self._lock:
            return len(self._holders), len(self._waiting)

    def _owned(self, owner: str) -> int:
        return sum(o == owner for o, _ in self._holders.values()) + sum(w[1] == owner for w in self._waiting)

    def training(self, owner: str) -> int:
        """How many runs' worth `owner` trains now (its jobs' weights)."""
        with self._lock:
            return sum(w for o, w in self._holders.values() if o == owner)


def give_back_memory() -> None:
    """Collect cycles, then ask glibc to return its free heap pages to the system. Without the second
    step a released run's tensors go back to malloc's free lists and the server's resident memory stays
    where it was (glibc serves allocations under its adaptive mmap threshold, up to 32 MB, from the
    heap); malloc_trim(0) is glibc's call for that. Elsewhere (macOS, musl) only the collection runs."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class Reapable(Protocol):
    def abandoned_for(self) -> float:
        """Seconds since its browser session was last seen connected (0 while it is)."""

    def release(self) -> None:
        """Stop and drop the model, optimizer and data."""


LINGER_S = 120.0
"""How long after releasing a job the reaper keeps collecting garbage while the job is still alive."""


class Reaper:
    """One server-wide thread that releases jobs abandoned for longer than `ttl_s` (weak references:
    a job that is garbage already is simply forgotten).

    An ended session's objects (its session state, with the job, the upload store and Streamlit's own
    copy of an upload's bytes) form reference cycles that become garbage only once Streamlit drops the
    session, which may be after the release; an idle server then allocates too little for Python's
    garbage collector to run, and the bytes stayed: three closed sessions that had each uploaded 146 MB
    left two of the three uploads (292 MB, one live mapping of 146 MB each) in the server until the next
    full collection. So after a release the reaper collects at each of its passes while a released job
    is still alive, for at most LINGER_S.
    """

    def __init__(self, ttl_s: float, interval_s: float = 5.0) -> None:
        self.ttl_s = ttl_s
        self.interval_s = interval_s
        self._jobs: weakref.WeakSet = weakref.WeakSet()
        self._released: list[tuple[weakref.ref, float]] = []  # (a released job, when), until it is gone
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, job: Reapable) -> None:
        with self._lock:
            self._jobs.add(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="sae-reaper", daemon=True)
                self._thread.start()

    def reap(self) -> int:
        """Release every job abandoned for longer than ttl_s now; how many were."""
        with self._lock:
            jobs = list(self._jobs)
        gone = [job for job in jobs if job.abandoned_for() > self.ttl_s]
        now = time.monotonic()
        for job in gone:
            job.release()
            with self._lock:
                self._jobs.discard(job)
                self._released.append((weakref.ref(job), now))
        count = len(gone)
        del jobs, gone  # no reference of this frame keeps a released job alive through the collection
        job = None
        if self._lingering(now):
            give_back_memory()
        return count

    def _lingering(self, now: float) -> bool:
        """Whether a job released in the last LINGER_S is still alive (its session not yet collected)."""
        with self._lock:
            self._released = [
                (ref, t) for ref, t in self._released if ref() is not None and now - t < LINGER_S
            ]
            return bool(self._released)

    def revive(self) -> int:
        """Train again the runs that paused for want of a tab whose session has one again (the job's
        `revive`, where it has one); how many were."""
        with self._lock:
            jobs = list(self._jobs)
        revived = 0
        for job in jobs:
            try:
                revived += bool(getattr(job, "revive", lambda: False)())
            except Exception:  # noqa: BLE001 - one job's trouble must not stop the server's housekeeping
                log.exception("reviving a training job failed")
        return revived

    def _loop(self) -> None:
        name_os_thread("sae-reaper")
        while True:
            time.sleep(self.interval_s)  # a housekeeping period, not a synchronisation
            self.reap()
            self.revive()
