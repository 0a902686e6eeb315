"""The server's memory budget: what the live sessions' runs hold, counted against one server-wide limit.

The per-run budget (sae_core.train.budget) bounds one run; a class of students opening big runs side by
side could still exhaust the machine: opening `?dataset=bars&n_bars=1000000&hidden=16384` without pressing
Train took one session from 921 to 1943 MB. `ServerMemory` keeps, for every live job, its memory estimate,
and refuses a new one (`ServerFullError`, a ValueError whose message the pages show) when the jobs alive
and not released would hold more than the budget with it: $SAE_SERVER_MEMORY_MB, default three quarters
of the machine's memory.

A job's share is counted while the job object is alive and not released: the reaper's release of an
ended session's run gives its share back at once, and a job dropped otherwise (replaced, discarded) gives
it back when it is collected. Nothing in the job has to know about the ledger.
"""

from __future__ import annotations

import math
import os
import threading
import weakref
from typing import Any

ENV_VAR = "SAE_SERVER_MEMORY_MB"
MACHINE_SHARE = 0.75
"""Default budget: this share of the machine's physical memory (the rest: the server itself, the OS)."""
MB = 2**20


class ServerFullError(ValueError):
    """The live sessions' runs hold too much of the server's memory for one more."""


def machine_bytes() -> int | None:
    """The machine's physical memory, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def server_budget_mb(value: str | None = None) -> float:
    """$SAE_SERVER_MEMORY_MB (or `value`) in MB, else MACHINE_SHARE of the machine's memory (else 8 GB).
    ValueError, naming the variable, for a value that is not a positive number."""
    raw = os.environ.get(ENV_VAR) if value is None else value
    if raw is None or raw == "":
        total = machine_bytes()
        return MACHINE_SHARE * total / MB if total else 8192.0
    try:
        mb = float(raw)
    except ValueError:
        mb = math.nan
    if not (mb > 0 and math.isfinite(mb)):
        raise ValueError(f"{ENV_VAR} must be a positive number of MB, got {raw!r}")
    return mb


class ServerMemory:
    """Estimates of the live jobs' memory against `budget_mb`. Thread-safe: one per server."""

    def __init__(self, budget_mb: float | None = None) -> None:
        self.budget_bytes = int((server_budget_mb() if budget_mb is None else budget_mb) * MB)
        self._lock = threading.Lock()
        self._held: dict[int, tuple[weakref.ref, int]] = {}  # id(job) -> (job, bytes)

    def held(self) -> int:
        """Bytes the live, unreleased jobs are estimated to hold."""
        with self._lock:
            return sum(n for ref, n in self._held.values() if _counts(ref()))

    def check(self, nbytes: int) -> None:
        """ServerFullError when `nbytes` more would not fit next to what the live jobs hold."""
        held = self.held()
        if held + nbytes > self.budget_bytes:
            raise ServerFullError(
                f"this server is full: the runs of the sessions open now hold about {_mb(held)} of its "
                f"{_mb(self.budget_bytes)} ({ENV_VAR}), and this run needs about {_mb(nbytes)} more. "
                "Try a smaller run, or again once other students have closed theirs."
            )

    def add(self, job: Any, nbytes: int) -> None:
        """Count `job` as holding `nbytes` until it is released or collected."""
        key = id(job)
        with self._lock:
            self._held[key] = (weakref.ref(job, lambda _, key=key: self._forget(key)), int(nbytes))

    def _forget(self, key: int) -> None:
        with self._lock:
            entry = self._held.get(key)
            if entry is not None and entry[0]() is None:
                del self._held[key]


def _counts(job: Any) -> bool:
    return job is not None and not getattr(job, "released", False)


def _mb(n: int) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / MB:.0f} MB"
