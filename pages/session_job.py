"""This browser session's run: its current TrainingJob and the one the last rebuild replaced.

Not a page itself. Both live in st.session_state; pages/job_control.py builds, replaces and opens them.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from sae_core.config.run import LIVE_FIELDS, RunConfig
from sae_core.serve.jobs import TrainingJob

JOB = "job"
"""st.session_state: the current TrainingJob of this browser session."""
PREVIOUS = "previous_job"
"""st.session_state: the job replaced by the last rebuild, kept until the user discards it."""


def current_job() -> TrainingJob | None:
    return st.session_state.get(JOB)


def structural(cfg: RunConfig) -> dict[str, Any]:
    """The fields whose change needs a new model (everything except ρ, β, λ, lr)."""
    return {k: v for k, v in cfg.flat().items() if k not in LIVE_FIELDS}
