"""`LossHistory`: the loss terms of a run by step, in bounded memory.

A run that lasts a lecture takes millions of steps; keeping every step's losses would grow without end
and make every snapshot copy all of them. The history keeps at most `cap` points: the first, the last,
and an even spread between them. It records every `stride`-th step (counting from the first) and, when
the points reach `cap`, doubles the stride and drops every other point, so each step costs O(1)
amortised and a copy (`steps()`, `values()`) costs O(cap) at step 100 as at step 10 million.
"""

from __future__ import annotations

import numpy as np

HISTORY_CAP = 4096
"""Points a loss curve keeps: far more than a chart's width in pixels."""


class LossHistory:
    """Steps and named values, at most `cap` points spread evenly over the steps recorded so far."""

    def __init__(self, cap: int = HISTORY_CAP) -> None:
        if cap < 4:
            raise ValueError(f"cap must be >= 4, got {cap}")
        self.cap = cap
        self.stride = 1
        self._steps: list[int] = []
        self._values: dict[str, list[float]] = {}
        self._last: tuple[int, dict[str, float]] | None = None
        """The latest point when it is not on the stride (kept so that the curve ends at the last step)."""

    def __len__(self) -> int:
        return len(self._steps) + (self._last is not None)

    def extend(
        self, steps: range | list[int] | np.ndarray, values: dict[str, np.ndarray | list[float]]
    ) -> None:
        """Record increasing steps with one value per step for each name (vectorised: the trainer hands
        over a whole section of steps at a time)."""
        steps = np.asarray(steps, dtype=np.int64)
        columns = {name: np.asarray(column, dtype=np.float64) for name, column in values.items()}
        if not len(steps):
            return
        self._last = None
        start = 0
        while start < len(steps):
            first = self._steps[0] if self._steps else int(steps[start])
            on = np.flatnonzero((steps[start:] - first) % self.stride == 0)
            take = start + on[: self.cap - len(self._steps)]
            self._steps.extend(steps[take].tolist())
            for name, column in columns.items():
                self._values.setdefault(name, []).extend(column[take].tolist())
            if len(self._steps) < self.cap:
                break
            self._thin()
            start = int(take[-1]) + 1
        if self._steps[-1] != steps[-1]:  # the newest step is off the stride: keep it as the last point
            self._last = (int(steps[-1]), {name: float(column[-1]) for name, column in columns.items()})

    def record(self, step: int, values: dict[str, float]) -> None:
        """One point; a second point at the latest step replaces it (a snapshot taken twice at a step)."""
        if self._last is not None and self._last[0] == step:
            self._last = None
        elif self._steps and self._steps[-1] == step:
            self._steps.pop()
            for column in self._values.values():
                column.pop()
        self.extend([step], {name: [value] for name, value in values.items()})

    def _thin(self) -> None:
        """Double the stride: keep every other recorded point (the first stays)."""
        self.stride *= 2
        del self._steps[1::2]
        for column in self._values.values():
            del column[1::2]

    def truncate(self, step: int) -> None:
        """Forget the points after `step` (steps undone by a restore)."""
        if self._last is not None and self._last[0] > step:
            self._last = None
        keep = int(np.searchsorted(np.asarray(self._steps), step, side="right"))
        del self._steps[keep:]
        for column in self._values.values():
            del column[keep:]

    def steps(self) -> np.ndarray:
        """[T] the recorded steps, increasing (a copy)."""
        tail = [] if self._last is None else [self._last[0]]
        return np.asarray(self._steps + tail, dtype=np.int64)

    def values(self) -> dict[str, np.ndarray]:
        """name -> [T] the values at `steps()` (copies)."""
        out = {}
        for name, column in self._values.items():
            tail = [] if self._last is None else [self._last[1][name]]
            out[name] = np.asarray(column + tail)
        return out

    def latest(self) -> dict[str, float]:
        """name -> the latest step's value (empty before the first)."""
        if self._last is not None:
            return dict(self._last[1])
        return {name: column[-1] for name, column in self._values.items() if column}
