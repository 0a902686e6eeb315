"""Helpers shared by the benchmark scripts: the machine's description and interleaved timing.

Benchmarks here compare variants measured in the same process, round by round, so that a busy
shared machine slows every variant alike; what we publish are ratios of medians.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

import torch


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> dict[str, str | int]:
    """What a published figure needs next to it to be read: CPU, cores, threads, versions, GPU."""
    info: dict[str, str | int] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 0,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        info["load_average_1min"] = f"{os.getloadavg()[0]:.2f}"
    except OSError:
        pass
    return info


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so that a wall-clock reading covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(
    variants: dict[str, Callable[[int], float]], steps: int, rounds: int, warmup_steps: int
) -> dict[str, list[float]]:
    """Run every variant for `steps` steps once per round, rotating the order each round.

    Each variant is called with a step count and returns the seconds it took. Rotation keeps a
    variant from always running right after the same neighbour (caches, clock boost, a neighbour's
    burst of load). A first untimed call of `warmup_steps` per variant warms allocators and kernels.
    """
    names = list(variants)
    for name in names:
        variants[name](warmup_steps)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            times[name].append(variants[name](steps))
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)
