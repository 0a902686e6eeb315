"""`RunClock`: the wall-clock time a job has spent running, pauses excluded, and the work done in it.

The trainer times only its stepping sections. On a loaded server a training thread spends much of its
running time outside them (waiting for a core, taking snapshots, handing the lock over), so a rate over
section time overstates the speed: the page said 2,476 samples/s while the run made about 195, and its ETA
fell from 32 s to 12 s over four minutes. What the student waits for is wall-clock time, so the page's
samples/s and ETA come from this clock: from the moment a job starts training to the moment it stops
(pause, stop, the end of the run, a failure), every spell added up.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class RunClock:
    """Running spells of one job on a monotonic clock (`now`, injectable for tests), with the steps and
    samples the trainer counted between each spell's start and end."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._seconds = 0.0  # ended spells
        self._steps = 0
        self._samples = 0
        self._since: float | None = None  # the current spell's start; None while not running
        self._at = (0, 0)  # (steps, samples) of the trainer at that start

    @property
    def running(self) -> bool:
        return self._since is not None

    def start(self, steps: int, samples: int) -> None:
        """A running spell begins, the trainer at `steps` steps and `samples` samples (no-op if one is on)."""
        if self._since is None:
            self._since, self._at = self._now(), (steps, samples)

    def stop(self, steps: int, samples: int) -> None:
        """The current spell ends with the trainer at `steps` and `samples` (no-op if none is on)."""
        if self._since is not None:
            self._seconds += max(0.0, self._now() - self._since)
            self._steps += max(0, steps - self._at[0])
            self._samples += max(0, samples - self._at[1])
            self._since = None

    def totals(self, steps: int, samples: int) -> tuple[float, int, int]:
        """(wall seconds, steps, samples) of every spell so far, the current one up to now."""
        seconds, done, seen = self._seconds, self._steps, self._samples
        if self._since is not None:
            seconds += max(0.0, self._now() - self._since)
            done += max(0, steps - self._at[0])
            seen += max(0, samples - self._at[1])
        return seconds, done, seen

    def samples_per_second(self, steps: int, samples: int) -> float:
        seconds, _, seen = self.totals(steps, samples)
        return seen / seconds if seconds > 0 else 0.0

    def eta(self, steps_left: int, steps: int, samples: int) -> float | None:
        """Seconds until `steps_left` more steps are done at the running rate so far; None before the
        first step of a spell is counted."""
        seconds, done, _ = self.totals(steps, samples)
        if done <= 0 or seconds <= 0:
            return None
        return max(0, steps_left) * seconds / done
