"""How long the Explore page's grid will take, from the speed this server has shown.

Not a page itself. Every sweep that trains here records its speed (cell-steps a second) under the
settings that set its cost (dataset, variant, penalty, hidden units, batch size); before a new sweep the
page multiplies the grid's cell-steps by the speed recorded for the same settings. Without one it says
that the first sweep measures it, instead of promising seconds that a busy server does not keep.
"""

from __future__ import annotations

import threading
from typing import Any

import streamlit as st

from sae_core.presets import duration_text

MIN_SECONDS = 1.0
"""A sweep's speed is kept once it has trained this long (the first steps include start-up)."""


@st.cache_resource
def _speeds() -> tuple[dict, threading.Lock]:
    """Server-wide: cost key -> cell-steps a second, with the lock that guards it (shared by all sessions)."""
    return {}, threading.Lock()


def cost_key(base: Any) -> tuple:
    """What a sweep's speed depends on, from its base config."""
    return (
        base.data.dataset,
        base.model.variant,
        base.model.penalty,
        base.model.hidden,
        base.train.batch_size,
    )


def record(snap: Any) -> None:
    """Keep the speed of a sweep that has trained long enough (its latest snapshot)."""
    if snap.step <= 0 or snap.seconds < MIN_SECONDS:
        return
    speeds, lock = _speeds()
    with lock:
        speeds[cost_key(snap.spec.base)] = snap.spec.n_cells * snap.step / snap.seconds


def estimate(spec: Any) -> str:
    """One sentence on how long `spec` (the grid the form describes) will take on this server."""
    speeds, lock = _speeds()
    with lock:
        rate = speeds.get(cost_key(spec.base))
    steps = spec.base.train.steps
    if rate is None or not steps:
        return (
            "How long it takes depends on this server's load: the first sweep with these settings measures "
            "it, and the progress line counts the seconds."
        )
    seconds = spec.n_cells * steps / rate
    return (
        f"On this server the grid set above ({spec.n_cells} cells × {steps:,} steps) takes about "
        f"{duration_text(seconds)}, at the {rate:,.0f} cell-steps a second an earlier sweep with these "
        "settings trained at."
    )
