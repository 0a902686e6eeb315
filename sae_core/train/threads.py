"""How many CPU threads a training step may use: one unless $SAE_TORCH_THREADS says otherwise.

One policy for the app's server (pages/server.py, once per process) and the command line (at the start of
every `sae` command). The models are small, and on a busy machine two OpenMP threads per step measured
10-20× slower than one (digits, 25 units: ~550 steps/s with 1 thread, 28-390 with 2, varying with the
load); `sae probe --self-taught` on 10 000 Fashion-MNIST images took 109 s with torch's default of two
threads and 32 s with one at a load of 5 on 2 cores (benchmarks/README.md, `probe_report.py`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

ENV_VAR = "SAE_TORCH_THREADS"
DEFAULT_THREADS = 1


def configure_threads(environ: Mapping[str, str] = os.environ) -> int:
    """Set torch's intra-op thread count from $SAE_TORCH_THREADS (default 1, at least 1); return it.
    ValueError names the variable when it is not a whole number."""
    import torch

    raw = environ.get(ENV_VAR, str(DEFAULT_THREADS))
    try:
        threads = max(1, int(raw))
    except ValueError:
        raise ValueError(f"${ENV_VAR} must be a whole number of threads, got {raw!r}") from None
    torch.set_num_threads(threads)
    return threads
