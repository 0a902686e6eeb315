"""The life of this session's training run: built for the settings, rebuilt when they need a new model,
retired (and kept on the Runs page), or replaced by a trained model the user opens.

Not a page itself. The job trains in its own thread on one of the server's slots (pages/server.py); the
pages only call these functions and read its snapshots.
"""

from __future__ import annotations

from collections.abc import Mapping

import streamlit as st
import torch

from pages import runs_store
from pages.datasets import load_dataset, session_uploads
from pages.notices import add_notice
from pages.server import (
    browser_owner,
    idle_timeout_s,
    reaper,
    server_memory,
    session_waker,
    session_watcher,
    training_queue,
)
from pages.session_job import JOB, PREVIOUS, current_job, structural
from pages.settings_state import SERVER_ONLY, base_settings, current_config, replace_settings
from sae_core.config.run import RunConfig
from sae_core.serve.jobs import TrainingJob
from sae_core.train import budget


def check_memory(cfg: RunConfig) -> budget.MemoryEstimate:
    """budget.check before anything is built: BudgetError (a ValueError) says what would fit; then the
    server's budget: ServerFullError (a ValueError) when the sessions open now hold too much (a dataset
    other sessions' runs already hold counts once). The run's estimate."""
    if cfg.data.dataset == "upload":
        samples, shape = session_uploads().shape(cfg.data.upload)
        need = budget.check(cfg, samples=samples, image_shape=shape)
    else:
        need = budget.check(cfg)
    server_memory().check_run(need, cfg.data)
    return need


def build_job(
    cfg: RunConfig, initial_state: Mapping[str, torch.Tensor] | None = None, start_step: int = 0
) -> TrainingJob:
    """A fresh job on the (cached) dataset, once the run's memory estimate fits the per-run budget;
    raises DataUnavailableError / UploadError / ValueError (budget.BudgetError among them). With
    initial_state it starts from those weights at start_step (see open_model)."""
    need = check_memory(cfg)
    dataset = load_dataset(cfg.data)
    job = TrainingJob(
        cfg,
        dataset,
        queue=training_queue(),
        owner=browser_owner(),
        idle_timeout=idle_timeout_s(),
        is_watched=session_watcher(),
        wake=session_waker(),
        initial_state=initial_state,
        start_step=start_step,
    )
    reaper().watch(job)
    server_memory().add_run(job, need, cfg.data)
    return job


def open_model(
    cfg: RunConfig, state: Mapping[str, torch.Tensor], start_step: int = 0, source: str = "a saved model"
) -> TrainingJob:
    """Make a trained model (an imported zip, a saved run, a sweep's cell) this session's run: its config
    becomes the settings (the widgets follow), the current run is kept as the previous one, and the new
    job starts paused from `state` at `start_step`. The caller then shows the Train page
    (st.switch_page("pages/train.py")). Raises what build_job raises, and RuntimeError naming the
    mismatch when the weights do not fit the config's model; the current run is untouched then."""
    # Never a data folder from the model's side (a zip, a saved run): this server's, as every run's.
    cfg = cfg.replace(data_dir=current_config().data.data_dir)
    flat = {k: v for k, v in cfg.flat().items() if k not in SERVER_ONLY or k == "upload"}
    try:
        job = build_job(cfg, initial_state=state, start_step=start_step)
    except RuntimeError as err:  # load_state_dict: missing / unexpected keys, shape mismatches
        raise RuntimeError(f"The weights of {source} do not fit its configuration: {err}") from err
    retire_job(f"Opened {source}.")
    replace_settings({**base_settings(), **flat})
    st.session_state[JOB] = job
    return job


def train_label(job: TrainingJob) -> str:
    """The Train page's first button for this job: "Train on" once its length is reached, "Resume" for a
    model that has trained (an opened one too), else "Train". Notices that name the button use this."""
    if job.trainer.finished:
        return "Train on"
    return "Resume" if job.step_count > 0 and not job.active else "Train"


def retire_job(reason: str) -> None:
    """Stop the current job; keep it as the previous run if it has trained at all."""
    job = current_job()
    if job is None:
        return
    job.stop()
    runs_store.keep_retired(job)  # a run replaced is kept on the Runs page (if it trained)
    st.session_state[JOB] = None
    if job.step_count > 0:
        st.session_state[PREVIOUS] = job
        add_notice(f"{reason} The previous run (step {job.step_count}) is kept below.")
    else:
        add_notice(reason)


def sync_job(cfg: RunConfig) -> TrainingJob:
    """The session's job for cfg: reuse it when only live fields differ, else rebuild."""
    job = current_job()
    if job is not None and structural(job.config) != structural(cfg):
        changed = [k for k, v in structural(cfg).items() if structural(job.config).get(k) != v]
        retire_job(f"Changed {', '.join(changed)}: that needs a new model, so one was built.")
        job = None
    if job is None:
        job = build_job(cfg)
        st.session_state[JOB] = job
        return job
    if cfg != job.config:  # only live fields differ (a slider moved, or a URL / preset set them)
        job.set_config(cfg)
    return job
