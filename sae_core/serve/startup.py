"""What a server does once, when it starts and before it answers its first visitor.

`streamlit run app.py` serves app.py's `st.App`, whose lifespan is `lifespan` below. Left to the first
visitor, a fresh server's Train page took 6-10 s on a quiet 2-core machine: the page imported torch
(about 2.5 s), built the run's Adam optimizer, whose first construction imports torch._dynamo (about 2 s),
and drew the first figures through plotly's lazy modules, while the warm-up started by that same visit
competed with it for the interpreter. Here all of that happens before the server listens (Streamlit prints
the address first; the server answers once this prints "Warmed up"). No Streamlit here.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sae_core.serve.warmup import warm_up_now


@asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[None]:
    """The server's start-up: warm torch, the optimizer and the figures up, then serve."""
    start = time.perf_counter()
    print("  Warming up torch and the figures before serving...", file=sys.stderr, flush=True)
    warm_up_now()
    print(f"  Warmed up in {time.perf_counter() - start:.1f} s.", file=sys.stderr, flush=True)
    yield
