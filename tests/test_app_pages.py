"""The pages, driven as a user would with streamlit.testing.v1.AppTest.

Each test starts its own session; jobs are stopped at the end so no thread or training slot leaks.
The job lives in st.session_state["job"] (pages/common.py: JOB). Configs are tiny: 8×8 digits, 4 units.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from apptest_helpers import pin_navigation_mode, poll, stop_jobs
from streamlit.testing.v1 import AppTest

from sae_core import data
from sae_core.models import build

APP = Path(__file__).resolve().parent.parent / "app.py"
RUN_TIMEOUT = 60  # seconds per script run: the first run imports torch and loads data on 2 shared cores
POLL_DEADLINE = 60
TINY = {"dataset": "digits", "hidden": "4", "steps": "100000", "batch_size": "32"}


@pytest.fixture
def past_first_navigation(monkeypatch):
    """See apptest_helpers.pin_navigation_mode; test_first_visit_of_a_fresh_server_goes_through_app_py
    covers the first-visit path itself."""
    pin_navigation_mode(monkeypatch)


@pytest.fixture
def apps(past_first_navigation):
    """Make AppTests and stop their jobs afterwards, whatever the test did."""
    made: list[AppTest] = []

    def make(query: dict[str, str] | None = None, page: str | None = "pages/train.py") -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT)
        at.query_params.update(query or {})
        made.append(at)
        at.run()
        if page is not None:
            at.switch_page(page).run()
        return at

    yield make
    for at in made:
        stop_jobs(at)


def _poll(at: AppTest, done, what: str) -> None:
    poll(at, done, what, POLL_DEADLINE)


def _no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def test_home_page_loads_with_text_and_preset_cards(apps):
    at = apps(page=None)
    _no_exceptions(at)
    assert "Sparse Autoencoder Playground" in [t.value for t in at.title]
    keys = {b.key for b in at.button}
    assert {"preset_quick-digits", "preset_ufldl-natural", "preset_bars"} <= keys


def test_train_page_loads_with_every_control_keyed(apps):
    at = apps(TINY)
    _no_exceptions(at)
    for key in ("dataset", "variant", "penalty", "optimizer"):
        assert at.selectbox(key=key).value is not None
    assert at.select_slider(key="rho").value == pytest.approx(0.05)
    assert at.slider(key="beta").value == pytest.approx(3.0)
    for key in ("weight_decay", "hidden", "lr", "batch_size", "steps", "seed"):
        assert at.number_input(key=key).value is not None
    for key in ("train", "pause", "step", "stop", "reset"):
        assert at.button(key=key) is not None
    assert at.session_state["job"].step_count == 0
    assert at.session_state["job"].config.model.hidden == 4


def test_train_runs_and_live_settings_reach_the_trainer_without_a_restart(apps):
    at = apps(TINY)
    job = at.session_state["job"]
    at.button(key="train").click().run()
    _poll(at, lambda: job.step_count > 0, "the first training steps")
    assert job.running
    before = job.step_count

    at.select_slider(key="rho").set_value(0.1).run()
    at.slider(key="beta").set_value(5.0).run()
    _poll(at, lambda: job.config.model.rho == 0.1 and job.config.model.beta == 5.0, "live ρ and β")
    assert at.session_state["job"] is job, "a live change must not rebuild the model"
    assert job.step_count >= before
    assert at.query_params.get("rho") == ["0.1"] or at.query_params.get("rho") == "0.1"
    _no_exceptions(at)


def test_pause_holds_the_step_count(apps):
    at = apps(TINY)
    job = at.session_state["job"]
    at.button(key="train").click().run()
    _poll(at, lambda: job.step_count > 0, "the first training steps")
    at.button(key="pause").click().run()
    held = job.step_count
    assert not job.running
    for _ in range(3):
        at.run()
    assert job.step_count == held
    at.button(key="step").click().run()
    assert job.step_count == held + 1
    _no_exceptions(at)


def test_reset_gives_a_fresh_model_and_keeps_the_old_one_as_previous(apps):
    at = apps(TINY)
    job = at.session_state["job"]
    at.button(key="train").click().run()
    _poll(at, lambda: job.step_count >= 20, "twenty training steps")
    at.button(key="pause").click().run()
    trained = job.trainer.model.encoder.weight.detach().clone()

    at.button(key="reset").click().run()
    fresh = at.session_state["job"]
    assert fresh is not job and fresh.step_count == 0
    assert at.session_state["previous_job"] is job
    weights = fresh.trainer.model.encoder.weight.detach()
    assert not torch.allclose(weights, trained)
    # Independent check: the same seed through models.build gives the same initial weights.
    cfg = fresh.config
    torch.manual_seed(cfg.train.seed)
    reference = build(cfg.model, 64, (8, 8)).encoder.weight.detach()
    torch.testing.assert_close(weights.cpu(), reference)
    _no_exceptions(at)


def test_bad_url_value_is_refused_with_a_message_next_to_the_control(apps):
    at = apps({**TINY, "rho": "2"})
    _no_exceptions(at)
    assert any("rho must be in (0, 1)" in e.value for e in at.error)
    assert at.session_state["job"].config.model.rho == pytest.approx(0.05)


def test_bad_number_is_refused_and_the_job_is_kept(apps):
    at = apps(TINY)
    job = at.session_state["job"]
    at.number_input(key="weight_decay").set_value(-1.0).run()
    _no_exceptions(at)
    assert any("weight_decay must be >= 0" in e.value for e in at.error)
    assert at.session_state["job"] is job
    assert job.config.model.weight_decay == pytest.approx(1e-4)


def test_structural_change_rebuilds_and_says_so(apps):
    at = apps(TINY)
    job = at.session_state["job"]
    at.button(key="step").click().run()
    at.number_input(key="hidden").set_value(6).run()
    _no_exceptions(at)
    new = at.session_state["job"]
    assert new is not job and new.config.model.hidden == 6
    assert at.session_state["previous_job"] is job
    assert any("hidden" in i.value and "new model" in i.value for i in at.info)


def test_busy_server_shows_a_message_instead_of_training(apps):
    from pages import common

    at = apps(TINY)
    slots = common.training_slots()
    taken = 0
    while slots.acquire(blocking=False):
        taken += 1
    try:
        at.button(key="train").click().run()
        assert any("busy" in w.value.lower() for w in at.warning)
        assert not at.session_state["job"].running
    finally:
        for _ in range(taken):
            slots.release()
    _no_exceptions(at)


@pytest.mark.parametrize("preset, dataset, hidden", [("bars", "bars", 16), ("quick-digits", "digits", 25)])
def test_preset_card_opens_train_configured(apps, preset, dataset, hidden):
    at = apps(page=None)
    at.button(key=f"preset_{preset}").click().run()
    _no_exceptions(at)
    assert at.selectbox(key="dataset").value == dataset
    job = at.session_state["job"]
    assert job.config.data.dataset == dataset and job.config.model.hidden == hidden


def test_unavailable_dataset_says_how_to_get_it(apps):
    ok, _ = data.availability("kmnist")
    if ok:
        pytest.skip("kmnist is installed here")
    at = apps({"dataset": "kmnist"})
    _no_exceptions(at)
    assert any("kmnist" in e.value for e in at.error)


def test_first_visit_of_a_fresh_server_goes_through_app_py():
    """No shim: every run starts in Streamlit's old pages/ mode, as a fresh server's first visit does.
    The Train page must still come up inside app.py's navigation (wide layout, sidebar device line)."""
    at = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT)
    at.query_params.update({**TINY, "rho": "0.2"})
    at.run()
    at.switch_page("pages/train.py").run()
    try:
        _no_exceptions(at)
        assert any("Training on" in c.value for c in at.sidebar.caption)
        assert at.session_state["settings"]["rho"] == pytest.approx(0.2)
        assert at.selectbox(key="dataset").value == "digits"
    finally:
        stop_jobs(at)
