"""Simulated students for the class dashboard: real small runs on the bars, published to a class store
as a student's Train page publishes them (sae_core.serve.class_summary).

Shared by tests/test_browser_class.py, scripts/class_screenshots.py and benchmarks/class_dashboard.py.
"""

from __future__ import annotations

import itertools

import torch

from sae_core.config.run import RunConfig
from sae_core.data import datasets
from sae_core.presets import load_presets
from sae_core.serve import class_summary, classes
from sae_core.train.snapshot import Snapshot
from sae_core.train.trainer import Trainer

NAMES = (
    "Ada", "Bo", "Cy", "Dee", "Eli", "Fay", "Gus", "Hal", "Ivy", "Jo", "Kai", "Lu", "Max", "Nia", "Oz",
    "Pia", "Quin", "Ray", "Sol", "Tia", "Uma", "Vic", "Wes", "Xia", "Yan", "Zoe", "Abe", "Bea", "Cal", "Dot",
)  # fmt: skip
RHOS = (0.01, 0.03, 0.05, 0.1, 0.2, 0.3)
BETAS = (0.3, 1.0, 3.0, 6.0, 10.0)


def student_settings(n: int) -> list[dict[str, float]]:
    """n different (ρ, β) pairs, spread over the grid a class would try."""
    grid = list(itertools.product(RHOS, BETAS))
    step = max(1, len(grid) // n)
    picked = grid[::step][:n]
    picked += [p for p in grid if p not in picked][: n - len(picked)]
    return [{"rho": rho, "beta": beta} for rho, beta in picked]


def train_students(n: int, steps: int = 400, batch_size: int = 250, hidden: int = 16) -> list[Snapshot]:
    """The last snapshot of n bars runs, one per setting of `student_settings` (one torch thread: these
    tiny models train faster alone than with threads fighting over a busy machine's cores)."""
    torch.set_num_threads(1)
    base = {**load_presets()["bars"].flat, "steps": steps, "batch_size": batch_size, "hidden": hidden}
    dataset = datasets.load(RunConfig.from_flat(base).data)
    snaps = []
    for change in student_settings(n):
        trainer = Trainer(RunConfig.from_flat({**base, **change}), dataset)
        snaps.append(list(trainer.run())[-1])
    return snaps


def fill_class(store: classes.ClassStore, code: str, snaps: list[Snapshot]) -> list[str]:
    """Join one student per snapshot (NAMES in order) and publish their run; their member ids."""
    members = []
    for name, snap in zip(NAMES, snaps, strict=False):
        member = store.join(code, name, owner=f"simulated:{name}")
        store.publish(member, class_summary.summarize(snap), class_summary.montage_png(snap))
        members.append(member)
    return members
