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

Datasets are shared between sessions (sae_core.data.shared): a run's estimate comes in two parts, its own
bytes (model, optimizer, activations) and its data's, and the data of one dataset (`data_key`, its
DataConfig) is counted once however many live jobs train on it.
"""

from __future__ import annotations

import math
import os
import threading
import weakref
from collections.abc import Hashable
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
        # id(job) -> (job, its own bytes, its data's key, the data's bytes)
        self._held: dict[int, tuple[weakref.ref, int, Hashable, int]] = {}

    def held(self) -> int:
        """Bytes the live, unreleased jobs are estimated to hold, each shared dataset counted once."""
        return sum(self._tally())

    def _tally(self) -> tuple[int, int]:
        """(the live jobs' own bytes, their datasets' bytes, each dataset once)."""
        own, data = 0, {}
        with self._lock:
            for ref, n, key, data_bytes in self._held.values():
                if _counts(ref()):
                    own += n
                    data[key] = max(data.get(key, 0), data_bytes)
        return own, sum(data.values())

    def holds_data(self, data_key: Hashable) -> bool:
        """Whether a live job counts the dataset `data_key` already (a new run on it adds no data)."""
        with self._lock:
            return any(key == data_key and _counts(ref()) for ref, _, key, _ in self._held.values())

    def check(self, nbytes: int, data_key: Hashable = None, data_bytes: int = 0) -> None:
        """ServerFullError when a run of `nbytes` of its own, on data `data_key` of `data_bytes` (counted
        only when no live job holds that dataset yet), would not fit next to what the live jobs hold."""
        held = self.held()
        if data_key is not None and not self.holds_data(data_key):
            nbytes += data_bytes
        if held + nbytes > self.budget_bytes:
            raise ServerFullError(
                f"this server is full: the runs of the sessions open now hold about {_mb(held)} of its "
                f"{_mb(self.budget_bytes)} ({ENV_VAR}), and this run needs about {_mb(nbytes)} more. "
                "Try a smaller run, or again once other students have closed theirs."
            )

    def add(self, job: Any, nbytes: int, data_key: Hashable = None, data_bytes: int = 0) -> None:
        """Count `job` as holding `nbytes` of its own and the dataset `data_key` (`data_bytes`, shared with
        the other jobs on it) until it is released or collected. Without a data_key its data is in nbytes."""
        key = id(job)
        ref = weakref.ref(job, lambda _, key=key: self._forget(key))
        with self._lock:
            self._held[key] = (
                ref,
                int(nbytes),
                data_key if data_key is not None else ("job", key),
                data_bytes,
            )

    def check_run(self, estimate: Any, data_key: Hashable) -> None:
        """check() for a run's MemoryEstimate (sae_core.train.budget): its data counted once per dataset."""
        self.check(estimate.total - estimate.data, data_key, estimate.data)

    def add_run(self, job: Any, estimate: Any, data_key: Hashable) -> None:
        """add() for a run's MemoryEstimate, its data shared with the other live runs on data_key."""
        self.add(job, estimate.total - estimate.data, data_key, estimate.data)

    def _forget(self, key: int) -> None:
        with self._lock:
            entry = self._held.get(key)
            if entry is not None and entry[0]() is None:
                del self._held[key]


def _counts(job: Any) -> bool:
    return job is not None and not getattr(job, "released", False)


def _mb(n: int) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / MB:.0f} MB"
