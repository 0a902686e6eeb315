"""One block of a sweep's cells trained to the end, as a pure function every backend maps.

    result = train_block(spec, block, dataset)       one block of spec.blocks(), trained to the end; pure
                                                     (no files, no globals), its result plain picklable data

`sae_core.sweep.run` trains the blocks in this process or hands them to `sae_core.sweep.ray_backend`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sae_core.data.datasets import Dataset
from sae_core.sweep.trainer import SweepSnapshot, SweepSpec, SweepTrainer

Progress = Callable[[int, int, int, int], None]
"""progress(block, number of blocks, step, total_steps), called as a block trains (local backend)."""
PROGRESS_POINTS = 10
"""Progress calls per block."""


@dataclass(frozen=True)
class BlockResult:
    """What training one block gives: its final snapshot and every cell's weights (numpy, CPU)."""

    block: int
    cells: tuple[int, ...]
    snapshot: SweepSnapshot
    states: tuple[dict[str, np.ndarray], ...]
    """Per cell of `cells`: its model's state dict."""


def train_block(
    spec: SweepSpec,
    block: int,
    dataset: Dataset,
    device: str | None = None,
    progress: Progress | None = None,
) -> BlockResult:
    """Train block `block` of spec.blocks() to the sweep's end and return its cells (a pure function)."""
    sweeper = SweepTrainer(spec, dataset, device, blocks=(block,))
    if sweeper.total_steps == 0:
        raise ValueError("a sweep run into a folder needs a length: give steps > 0 or epochs")
    chunk = max(1, math.ceil(sweeper.total_steps / PROGRESS_POINTS))
    n_blocks = len(spec.blocks())
    while not sweeper.finished:
        sweeper.advance(max_steps=chunk)
        if progress is not None:
            progress(block, n_blocks, sweeper.step_count, sweeper.total_steps)
    cells = spec.blocks()[block]
    states = tuple({k: v.numpy() for k, v in sweeper.cell_state(i).items()} for i in cells)
    return BlockResult(block, cells, sweeper.snapshot(), states)


class Stopped(Exception):
    """A backend's should_stop() said so: the sweep ended before its last block."""
