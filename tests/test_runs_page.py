"""The Runs page (pages/runs.py) and the Train page keeping its runs (pages/runs_store.py), in AppTest.

Each test has its own runs folder ($SAE_RUNS_DIR, the server's cached RunStore cleared around it). Every
AppTest session has the same id and no cookie, so its runs belong to OWNER; runs made for it are saved
straight into the store from tiny trained models.
"""

from __future__ import annotations

import pytest
from apptest_helpers import APP, pin_navigation_mode, poll, stop_jobs
from conftest import TINY_RUN
from streamlit.testing.v1 import AppTest

from pages import runs_store
from sae_core.store import runs

RUN_TIMEOUT = 60
OWNER = "session:test session id"
"""Who an AppTest session is to pages/runs_store.owner(): no XSRF cookie, AppTest's fixed session id."""
TINY = TINY_RUN  # the settings conftest.trained_run trains


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv(runs.ENV_DIR, str(tmp_path / "runs"))
    runs_store.store.clear()
    yield runs_store.store()
    runs_store.store.clear()


@pytest.fixture
def apps(monkeypatch, store):
    pin_navigation_mode(monkeypatch)
    made: list[AppTest] = []

    def make(page: str, query: dict[str, str] | None = None) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT)
        at.query_params.update(query or {})
        made.append(at)
        at.run()
        at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    yield make
    for at in made:
        stop_jobs(at)


@pytest.fixture
def trained(trained_run):
    """make(**changes) -> (model, snapshot) of a finished tiny run (conftest.trained_run)."""
    return trained_run


def _keep(store, model_snap, owner: str = OWNER, status: str = "finished") -> runs.RunInfo:
    model, snap = model_snap
    return store.save_run(model, snap, owner=owner, status=status).run


def _texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


def test_without_kept_runs_the_page_says_how_runs_get_here(apps, store, trained):
    _keep(store, trained(), owner="browser:someone-else")
    at = apps("pages/runs.py")
    assert "Runs" in _texts(at.title)
    assert "No kept runs yet" in _texts(at.info) and "Stop" in _texts(at.info)
    assert not [b for b in at.button if b.key and b.key.startswith("open_")]


def test_the_page_lists_this_browsers_runs_and_compares_two_with_the_differing_settings_marked(
    apps, store, trained
):
    a = _keep(store, trained())
    b = _keep(store, trained(rho=0.1, beta=1.0), status="stopped")
    hidden = _keep(store, trained(), owner="browser:someone-else")
    at = apps("pages/runs.py")
    keys = {button.key for button in at.button}
    assert {f"open_{a.id}", f"delete_{a.id}", f"open_{b.id}", f"delete_{b.id}"} <= keys
    assert f"open_{hidden.id}" not in keys
    listed = _texts(at.markdown)
    assert a.title in listed and "digits · 4 units · ρ 0.1 · β 1 · step 30" in listed
    assert "stopped" in _texts(at.caption)

    assert at.multiselect(key="compare_runs").value == [b.id, a.id]  # the two newest, newest first
    settings = at.dataframe[0].value
    marked = set(settings.index[settings["differs"] == "≠"])
    assert marked == {"rho", "beta"}
    assert list(settings.index[:2]) == ["rho", "beta"]  # the differing ones first
    assert list(settings.loc["rho"])[1:] == ["0.1", "0.05"]
    assert list(settings.columns) == ["differs", "1. ρ 0.1 · β 1", "2. ρ 0.05 · β 3"]
    numbers = at.table[0].value
    assert list(numbers.loc["Steps"]) == ["30", "30"]
    assert "Highlighted: the 2 settings that differ (rho, beta)" in _texts(at.caption)
    assert not at.exception


def test_open_on_train_makes_the_kept_run_this_sessions_run(apps, store, trained):
    model, snap = trained(rho=0.1, beta=1.0)
    info = _keep(store, (model, snap))
    at = apps("pages/runs.py")
    at.button(key=f"open_{info.id}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    job = at.session_state["job"]
    assert job.step_count == 30 and job.config == snap.config
    weights = job.model_copy()[0].state_dict()
    assert all((weights[k] == v).all() for k, v in model.state_dict().items())
    assert at.session_state["settings"]["rho"] == 0.1
    assert "Train a sparse autoencoder" in _texts(at.title)  # the Train page is shown
    assert f"This is your kept run “{info.title}”, paused at step 30" in _texts(at.info)


def test_delete_removes_the_run_from_the_list_and_the_folder(apps, store, trained):
    info = _keep(store, trained())
    other = _keep(store, trained(beta=1.0))
    at = apps("pages/runs.py")
    at.button(key=f"delete_{info.id}").click().run()
    assert not info.path.exists() and [r.id for r in store.list_runs(OWNER)] == [other.id]
    assert f"open_{info.id}" not in {button.key for button in at.button}
    assert "Deleted" in _texts(at.info)


def test_a_finished_run_is_kept_once_and_pruning_is_told(apps, store, trained, monkeypatch):
    monkeypatch.setenv(runs.ENV_MAX_COUNT, "1")
    runs_store.store.clear()  # the store reads its bounds when made
    old = _keep(runs_store.store(), trained(), owner="browser:someone-else")
    at = apps("pages/train.py", {k: str(v) for k, v in TINY.items()})
    job = at.session_state["job"]
    at.button(key="train").click().run()
    notices = [_texts(at.info)]  # a notice is shown once, by the page run that kept the run

    def kept_yet() -> bool:
        notices.append(_texts(at.info))
        return bool(runs_store.store().list_runs(OWNER))

    if not kept_yet():
        poll(at, kept_yet, "the finished run to be kept", RUN_TIMEOUT)
    assert job.status == "done"
    at.run()  # one more run of the page keeps nothing new: the same run, the same step
    notices = " ".join(notices)
    (kept,) = runs_store.store().list_runs(OWNER)
    assert (kept.status, kept.steps) == ("finished", 30)
    assert not old.path.exists() and len(runs_store.store().list_runs(None)) == 1
    assert f"Kept in your runs (finished): {kept.title}" in notices
    assert "Deleted the 1 oldest kept run of this server to stay under 200 MB and 1 runs" in notices
    assert "Kept in your runs" not in _texts(at.info)


def test_a_stopped_run_is_kept_and_trained_on_it_is_rewritten_in_place(apps, store):
    at = apps("pages/train.py", {**{k: str(v) for k, v in TINY.items()}, "steps": "100000"})
    job = at.session_state["job"]
    at.button(key="train").click().run()
    poll(at, lambda: job.step_count > 0, "the first steps", RUN_TIMEOUT)
    at.button(key="stop").click().run()
    (first,) = store.list_runs(OWNER)
    assert (first.status, first.steps) == ("stopped", job.step_count)
    assert "Kept in your runs (stopped)" in _texts(at.info)
    at.button(key="step").click().run()  # a stopped run stepped on: the same entry, rewritten
    (again,) = store.list_runs(OWNER)
    assert (again.id, again.steps, again.created) == (first.id, first.steps + 1, first.created)
    assert f"Your kept run is now at step {again.steps:,}" in _texts(at.info)


def test_a_live_change_of_beta_makes_the_next_keep_a_new_entry_and_reset_keeps_the_run(apps, store):
    at = apps("pages/train.py", {**{k: str(v) for k, v in TINY.items()}, "steps": "100000"})
    job = at.session_state["job"]
    at.button(key="train").click().run()
    poll(at, lambda: job.step_count > 0, "the first steps", RUN_TIMEOUT)
    at.button(key="stop").click().run()
    (first,) = store.list_runs(OWNER)
    n = first.steps
    at.slider(key="beta").set_value(1.0).run()  # live: the same model goes on under another β
    at.button(key="step").click().run()
    second, again = store.list_runs(OWNER)
    assert again.id == first.id and again.steps == n and "β 3" in again.title
    assert second.steps == n + 1 and "β 1" in second.title

    at.button(key="step").click().run()  # same settings as the last keep: its entry is rewritten
    assert [r.steps for r in store.list_runs(OWNER)] == [n + 2, n]
    at.button(key="reset").click().run()  # a fresh model: the old one, already kept at this step, stays
    assert [r.steps for r in store.list_runs(OWNER)] == [n + 2, n]
    at.button(key="step").click().run()
    at.button(key="reset").click().run()  # the fresh model took a step and was not kept: Reset keeps it
    runs_now = store.list_runs(OWNER)
    assert [(r.steps, r.status) for r in runs_now][:1] == [(1, "stopped")] and len(runs_now) == 3


def test_a_browser_whose_kept_run_another_browser_pruned_is_told_once_on_runs_and_train(
    apps, store, trained, monkeypatch
):
    monkeypatch.setattr(store, "max_runs", 2)
    mine = _keep(store, trained())  # this browser's only run, the oldest
    _keep(store, trained(), owner="browser:B")
    _keep(store, trained(), owner="browser:C")  # three runs, three browsers over a share of 2/3: the oldest
    assert store.list_runs(OWNER) == []
    at = apps("pages/runs.py")
    told = _texts(at.info)
    assert f"Your kept run **{mine.title}**" in told and "was deleted at" in told, told
    assert "another browser kept a run while yours took more than your share" in told, told
    assert "2 runs" in told and "3 browsers" in told, told
    at.run()
    assert "Your kept run" not in _texts(at.info)  # once
    for info in store.list_runs(None):
        store.delete_run(info.id)
    _keep(store, trained())
    monkeypatch.setattr(store, "max_runs", 1)
    _keep(store, trained(), owner="browser:B")
    train = apps("pages/train.py", TINY)  # told on Train too, where the page's notices show
    told = _texts(train.info)
    assert "Your kept run" in told and "took more than your share" in told, told
