"""Runs page: this browser's kept runs (sae_core.store.runs), each to open on Train again or delete, and a
side-by-side comparison of two to four of them (pages/runs_compare.py)."""

from __future__ import annotations

import time

import streamlit as st

from pages import (
    job_control,
    navigation_guard,
    notices,
    runs_compare,
    runs_store,
    session_job,
    settings_state,
)
from sae_core.data import datasets as data
from sae_core.penalties.registry import PENALTIES
from sae_core.store import runs

navigation_guard.leave_old_multipage_mode()

TRAIN_PAGE = "pages/train.py"
SHOWN = 12
"""Runs listed before "Show all"."""
SHOW_ALL = "runs_show_all"


def main() -> None:
    st.title("Runs")
    st.caption(
        "Every run of yours that finished, was stopped or was downloaded on the Train page is kept here, "
        "on this server, through reloads and restarts: open one again on Train, or compare two to four "
        "side by side."
    )
    runs_store.keep_ended_run(session_job.current_job())  # a run that ended while you were on another page
    runs_store.announce_pruned()  # runs of yours another browser's keep deleted since you last looked
    notice_box = st.empty()
    infos = runs_store.store().list_runs(runs_store.owner())
    if not infos:
        st.info(
            "No kept runs yet. Train a model on the **Train** page: when it finishes, when you press "
            "**Stop**, or when you download it, it is kept here.",
            icon=":material/folder_open:",
        )
    else:
        draw_list(infos)
        runs_compare.draw(infos)
    notice = st.session_state.pop(notices.NOTICE, None)
    if notice:
        notice_box.info(notice, icon=":material/info:")


def draw_list(infos: list[runs.RunInfo]) -> None:
    store = runs_store.store()
    used = sum(info.size_bytes for info in infos)
    st.subheader(f"Your kept runs ({len(infos)})")
    st.caption(
        f"Newest first; yours take {_size(used)}. This server keeps at most "
        f"{store.max_bytes / runs.MB:g} MB and {store.max_runs} runs in all, and deletes the oldest "
        "to make room (you are told when it does)."
    )
    show_all = len(infos) <= SHOWN or st.session_state.get(SHOW_ALL, False)
    for info in infos if show_all else infos[:SHOWN]:
        draw_row(info)
    if len(infos) > SHOWN:
        st.toggle(f"Show all {len(infos)} runs", key=SHOW_ALL)


def draw_row(info: runs.RunInfo) -> None:
    with st.container(border=True):
        text, open_col, delete_col = st.columns([6, 1.4, 1], vertical_alignment="center")
        text.markdown(f"**{info.title}**")  # made by runs.run_title from numbers and fixed names
        text.caption(describe(info))
        if open_col.button("Open on Train", key=f"open_{info.id}", type="primary", width="stretch"):
            open_run(info)
        delete_col.button(
            "Delete", key=f"delete_{info.id}", on_click=delete_run, args=(info.id,), width="stretch"
        )


def describe(info: runs.RunInfo) -> str:
    recon = "–" if info.recon_error is None else f"{info.recon_error:.4g}"
    when = time.strftime("%d %b %Y, %H:%M", time.localtime(info.saved))
    return (
        f"{info.dataset} · {info.variant} · {info.hidden} units · "
        f"{_penalty_text(info)} · {info.steps:,} steps · "
        f"reconstruction error {recon} · {info.status} {when} · {_size(info.size_bytes)}"
    )


def _penalty_text(info: runs.RunInfo) -> str:
    """ "KL, ρ 0.05, β 3", "L1, β 0.01", "top-k": the penalty with the weights it uses."""
    spec = PENALTIES.get(info.penalty)
    if spec is None:  # a run kept by a version that had a penalty this one lacks
        return info.penalty
    parts = [spec.short]
    if spec.uses_rho:
        parts.append(f"ρ {info.rho:g}")
    if spec.uses_beta:
        parts.append(f"β {info.beta:g}")
    return ", ".join(parts)


def _size(n: int) -> str:
    return f"{n / runs.MB:.1f} MB" if n >= runs.MB else f"{max(1, round(n / 1024))} kB"


def open_run(info: runs.RunInfo) -> None:
    """Make the kept run this session's run (paused at its step) and show it on Train."""
    try:
        stored = runs_store.store().load_run(info.id, runs_store.owner())
        cfg = stored.config
        if cfg.data.dataset == "upload":  # an upload belongs to the session that made it: use yours
            cfg = cfg.replace(upload=settings_state.settings().get("upload"))
            if not cfg.data.upload:
                raise ValueError(
                    "this run trained on an uploaded file: upload images of its size on Train first"
                )
        source = f"the kept run “{info.title}”"
        job = job_control.open_model(cfg, stored.state_dict(), start_step=stored.info.steps, source=source)
    except (KeyError, ValueError, RuntimeError, OSError, data.DataUnavailableError) as err:
        st.error(f"Cannot open this run: {err}", icon=":material/error:")
        return
    runs_store.mark_kept(job)
    notices.add_notice(
        f"This is your kept run “{info.title}”, paused at step {job.step_count:,}: "
        "**Train** trains it further (kept again as a new run); the kept one stays as it is."
    )
    st.switch_page(TRAIN_PAGE)


def delete_run(run_id: str) -> None:
    try:
        info = runs_store.store().delete_run(run_id, runs_store.owner())
    except (KeyError, ValueError):
        notices.add_notice("That run was already gone.")
        return
    runs_compare.forget(run_id)
    notices.add_notice(f"Deleted “{info.title}”.")


main()
