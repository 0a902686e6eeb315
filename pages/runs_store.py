"""The pages' side of kept runs (sae_core.store.runs): the server's RunStore, whose runs, keeping this run.

Not a page itself. When is a run kept? When the Train page sees it finished or stopped, when it is
replaced (Reset, a rebuild, opening another model: job_control.retire_job stops it), and when its model is
downloaded (`keep_ended_run`, `on_download`). Once per training run and step: keeping the same run again
at a later step with the same settings (it trained on) rewrites its entry in place, so one training run
is one entry; after a live change of ρ, β, λ or the learning rate it is a new entry, and so is a fresh
model. A run opened from the Runs page is not kept again at the step it was opened at, and an imported
model (keep_run(job, "imported")) is kept as it came: trained on, either is kept as a new entry and the
one it came from stays.

Who "you" are: the browser, by Streamlit's XSRF cookie. The cookie is re-masked on every page load
(`2|mask|masked token|time`), so the key is the unmasked token, the same across reloads, tabs and server
restarts; the store writes only a hash of it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import streamlit as st

from pages import notices, server
from pages.session_job import PREVIOUS, current_job
from sae_core.serve.jobs import TrainingJob
from sae_core.store import runs

KEPT = "kept_runs"
"""st.session_state: id(job) -> _Kept, the last keep of the session's current and previous runs."""
LENGTH_FIELDS = ("steps", "epochs")
REASONS = {"done": "finished", "stopped": "stopped"}
"""Job status -> why the run is kept, for runs that ended."""


@st.cache_resource
def store() -> runs.RunStore:
    """The server's runs folder: `-- --runs-dir DIR` after `streamlit run app.py`, else $SAE_RUNS_DIR,
    else <data dir>/runs. One object for every session (it locks its own writes)."""
    return runs.RunStore(runs.resolve_root(args=sys.argv[1:]))


def owner() -> str:
    """This browser's key (server.browser_owner: the unmasked XSRF token, or "session:<id>" without one)."""
    return server.browser_owner()


def keep_ended_run(job: TrainingJob | None) -> runs.RunInfo | None:
    """Keep the session's run if it has finished or was stopped (once per step); see keep_run."""
    if job is None or job is not current_job() or job.status not in REASONS:
        return None
    return keep_run(job, REASONS[job.status])


def keep_retired(job: TrainingJob) -> runs.RunInfo | None:
    """A run that is being replaced (job_control.retire_job): kept as finished or stopped."""
    return keep_run(job, "finished" if job.status == "done" else "stopped")


def keep_current_run(reason: runs.Status) -> runs.RunInfo | None:
    """keep_run for the session's current run (an importer passes "imported" after job_control.open_model)."""
    return keep_run(current_job(), reason)


def on_download() -> None:
    """The Train page's download button: the downloaded model is kept too."""
    keep_current_run("downloaded")


def on_download_previous() -> None:
    """The previous run's download button."""
    keep_run(st.session_state.get(PREVIOUS), "downloaded")


def keep_run(job: TrainingJob | None, reason: runs.Status) -> runs.RunInfo | None:
    """Keep `job` (the session's current or previous run) as it is now, unless this step of it is kept
    already; tell the user (notices.add_notice), also about runs pruned to make room. None when nothing
    was kept. Kept before by this session with the same settings (the run's length aside), its entry is
    rewritten; after a live change of ρ, β, λ or the learning rate it is kept as a new entry, so that the
    state trained under the old settings stays as it was."""
    if job is None or job.step_count == 0 or job.trainer.model is None:  # a released job has no model
        return None
    model, step = job.model_copy()
    snap = job.latest()
    if snap.step != step:  # training moved on between the two reads: it is kept when it ends instead
        return None
    earlier = _kept().get(id(job))
    if earlier is not None and earlier.job is job and earlier.step == step:
        return None
    same = earlier is not None and earlier.job is job and earlier.settings == _settings(snap)
    replace = earlier.run_id if same else None
    try:
        result = store().save_run(model, snap, owner=owner(), status=reason, replace=replace)
    except (OSError, ValueError) as err:
        notices.add_notice(f"Could not keep this run in {notices.literal(store().root)}: {err}")
        return None
    # An imported model's entry stays as it came; a later keep of that job is an entry of its own.
    _remember(job, step, None if reason == "imported" else result.run.id, _settings(snap))
    if replace is not None and result.run.id == replace:
        notices.add_notice(f"Your kept run is now at step {step:,} ({reason}).")
    else:
        notices.add_notice(f"Kept in your runs ({reason}): {result.run.title}. The Runs page lists them.")
    if result.pruned:
        notices.add_notice(pruned_message(result.pruned, store()))
    return result.run


def mark_kept(job: TrainingJob) -> None:
    """This job's current state is a kept run already (it was opened from one): do not keep it again at
    this step; a later keep is a new entry."""
    _remember(job, job.step_count, None, _settings(job.latest()))


@dataclass(frozen=True)
class _Kept:
    job: TrainingJob
    step: int
    run_id: str | None
    """The entry a later keep of the same job and settings rewrites; None: a later keep is a new entry."""
    settings: dict


def _kept() -> dict[int, _Kept]:
    return st.session_state.setdefault(KEPT, {})


def _remember(job: TrainingJob, step: int, run_id: str | None, settings: dict) -> None:
    """Note the keep; forget jobs that are neither the current nor the previous run (their models)."""
    live = {id(j) for j in (current_job(), st.session_state.get(PREVIOUS), job) if j is not None}
    kept = {key: entry for key, entry in _kept().items() if key in live}
    kept[id(job)] = _Kept(job, step, run_id, settings)
    st.session_state[KEPT] = kept


def _settings(snap) -> dict:
    """A run's settings but its length, which Train on raises without changing the run."""
    return {k: v for k, v in snap.config.flat().items() if k not in LENGTH_FIELDS}


def announce_pruned() -> None:
    """Tell this browser, once, of its kept runs that another browser's keep pruned since it last looked
    (the store's notes: which run, when, why), as a notice on the page that runs now."""
    try:
        notes = store().take_pruned_notes(owner())
    except OSError:
        return
    for note in notes:
        kept = time.strftime("%d %b %H:%M", time.localtime(note.saved))
        gone = time.strftime("%d %b %H:%M", time.localtime(note.pruned))
        notices.add_notice(
            f"Your kept run **{note.title}** (kept {kept}) was deleted at {gone} to make room: {note.reason}."
        )


def pruned_message(pruned: list[runs.RunInfo], run_store: runs.RunStore) -> str:
    n = len(pruned)
    limit = run_store.max_bytes / runs.MB
    return (
        f"Deleted the {n} oldest kept run{'s' if n > 1 else ''} of this server to stay under "
        f"{limit:g} MB and {run_store.max_runs} runs."
    )
