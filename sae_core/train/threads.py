"""How many CPU threads a training step may use: one unless $SAE_TORCH_THREADS says otherwise (a sweep
from the command line: every core the process may use).

One policy for the app's server (pages/server.py, once per process) and the command line (at the start of
every `sae` command). The models are small, and on a busy machine two OpenMP threads per step measured
10-20× slower than one (digits, 25 units: ~550 steps/s with 1 thread, 28-390 with 2, varying with the
load); `sae probe --self-taught` on 10 000 Fashion-MNIST images took 109 s with torch's default of two
threads and 32 s with one at a load of 5 on 2 cores (benchmarks/README.md, `probe_report.py`).

`sae sweep` is the exception: one process training one stack of models, whose batched products are large
enough to share out. On 2 quiet cores a step of its 16 cells of 64 → 25 took 2.2 ms with two threads
against 2.7 ms with one, and of 784 → 196 37-44 ms against 69-74 ms (2026-12-07). Runs keep one: a
single 64 → 25 run was no faster with two, a 784 → 196 run about 1.35× (benchmarks/README.md,
sweep_cli.py), and the app's server runs many at once. $SAE_TORCH_THREADS=1 keeps a sweep on one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

ENV_VAR = "SAE_TORCH_THREADS"
DEFAULT_THREADS = 1


def all_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def configure_threads(environ: Mapping[str, str] = os.environ, default: int = DEFAULT_THREADS) -> int:
    """Set torch's intra-op thread count from $SAE_TORCH_THREADS (else `default`; at least 1); return it.
    ValueError names the variable when it is not a whole number."""
    import torch

    raw = environ.get(ENV_VAR, str(default))
    try:
        threads = max(1, int(raw))
    except ValueError:
        raise ValueError(f"${ENV_VAR} must be a whole number of threads, got {raw!r}") from None
    torch.set_num_threads(threads)
    return threads
