"""Words that agree with the screen (issue 21), driven through AppTest as a teacher would meet them: after
opening a sweep's cell on Train the notice names the button the page shows and the status line agrees."""

from __future__ import annotations

import pytest
from apptest_helpers import APP, pin_navigation_mode, poll, stop_jobs
from streamlit.testing.v1 import AppTest

TIMEOUT_S = 60
STEPS = 150


@pytest.fixture
def app(monkeypatch):
    pin_navigation_mode(monkeypatch)
    made: list[AppTest] = []

    def make(page: str = "pages/train.py", query: dict[str, str] | None = None) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
        at.query_params.update(query or {})
        made.append(at)
        at.run()
        at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    yield make
    for at in made:
        stop_jobs(at)
        job = at.session_state["sweep_job"] if "sweep_job" in at.session_state else None
        if job is not None:
            job.stop()


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def test_a_cell_opened_from_explore_names_the_button_the_train_page_shows(app):
    at = app("pages/explore.py")
    at.text_input(key="sweep_rhos").input("0.05")
    at.text_input(key="sweep_betas").input("3")
    at.selectbox(key="sweep_dataset").select("digits")
    at.number_input(key="sweep_steps").set_value(STEPS)
    at.number_input(key="sweep_hidden").set_value(9)
    at.button(key="sweep_train").click().run()
    job = at.session_state["sweep_job"]
    poll(at, lambda: not job.active, "the sweep to finish", 120)
    at.run()
    at.button(key="sweep_open").click().run()
    assert not at.exception, [e.value for e in at.exception]

    label = at.button(key="train").label
    (notice,) = [i for i in texts(at.info) if "Opened the sweep's cell" in i]
    progress = at.get("progress")[0].proto.text
    assert label == "Train on"
    assert f"press **{label}**" in notice, notice
    assert progress.startswith("**finished**"), progress  # not "ready" beside a full progress bar
    assert any("Training length reached" in c for c in texts(at.caption))


def test_a_huge_learning_rate_in_a_link_is_refused_with_a_message_under_its_control(app):
    at = app(query={"lr": "1e9"})
    errors = texts(at.error)
    assert any("The learning rate can be at most 100 (you asked for `1e+09`)" in e for e in errors), errors
    assert at.session_state["job"].config.train.lr == pytest.approx(0.1)  # the preset's rate stands


def test_link_refusals_speak_of_the_controls_not_of_field_names(app):
    at = app(query={"beta": "50", "rho": "2"})
    errors = texts(at.error)
    assert any("β can be at most 10 for the KL penalty (you asked for `50`)" in e for e in errors), errors
    assert any("ρ must be between 0 and 1, both excluded (you asked for `2.0`)" in e for e in errors), errors
    assert not any("beta must" in e or "rho must" in e for e in errors), errors


def test_the_vae_says_once_why_rho_and_beta_are_greyed(app):
    from sae_core.models import get_spec

    at = app(query={"variant": "vae"})
    reason = get_spec("vae").penalty_reason
    assert reason
    assert [c for c in texts(at.caption) if reason in c] == [reason]


@pytest.mark.parametrize("has_mnist", [False, True])
def test_the_home_intro_promises_pen_strokes_only_where_mnist_is_installed(app, monkeypatch, has_mnist):
    from sae_core.data import datasets as data

    real = data.availability
    monkeypatch.setattr(
        data,
        "availability",
        lambda name, *rest: (has_mnist, "test") if name == "mnist" else real(name, *rest),
    )
    at = app("pages/home.py")
    (intro,) = [m.value for m in at.markdown if "Forced to explain" in m.value]
    assert ("pen strokes" in intro) == has_mnist, intro
    assert "single bars" in intro  # the offline default always shows its bars
    assert at.button(key="preset_bars").label == "Open in Train"


def test_picking_l1_on_the_bars_preset_lowers_the_learning_rate_and_says_why(app):
    at = app()
    assert at.number_input(key="lr").value == pytest.approx(0.1)
    at.selectbox(key="penalty").set_value("l1").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.number_input(key="lr").value == pytest.approx(0.03)
    assert at.session_state["job"].config.train.lr == pytest.approx(0.03)
    assert any("Learning rate set to 0.03" in i.value for i in at.info), texts(at.info)
    linked = app(query={"penalty": "l1"})
    assert linked.session_state["job"].config.train.lr == pytest.approx(0.03)
    own = app(query={"penalty": "l1", "lr": "0.05"})  # a rate the link sets itself stands
    assert own.session_state["job"].config.train.lr == pytest.approx(0.05)


def test_picking_top_k_on_the_bars_keeps_the_presets_rate_and_gives_sigmoid_units(app):
    at = app()
    at.selectbox(key="penalty").select("topk").run()
    assert not at.exception, [e.value for e in at.exception]
    cfg = at.session_state["job"].config  # what the next Train press trains (tests/test_lecture_defaults)
    assert (cfg.model.penalty, cfg.model.k, cfg.train.lr) == ("topk", 5, 0.1)
    assert cfg.model.hidden_activation == "sigmoid"
    assert not any("Learning rate set" in i.value for i in at.info)


def test_the_large_switch_draws_the_most_active_units_in_the_filter_chart(app):
    at = app(query={"steps": "60"})
    at.button(key="train").click().run()
    job = at.session_state["job"]
    poll(at, lambda: job.trainer.finished, "the run to finish", 60)
    at.toggle(key="filters_large").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    titles = [c.proto.spec for c in at.get("plotly_chart") if "filters_chart" in (c.proto.id or "")]
    assert any("the 16 most active of 16 units" in spec for spec in titles), titles[:1]


def test_explore_estimates_the_grid_from_the_speed_a_sweep_showed_on_this_server(app):
    from types import SimpleNamespace

    from pages import explore_estimate

    at = app("pages/explore.py")
    (before,) = [i for i in texts(at.info) if "Train sweep" in i]
    assert "takes seconds" not in before and "the first sweep with these settings measures it" in before
    at.text_input(key="sweep_rhos").input("0.05, 0.2")
    at.text_input(key="sweep_betas").input("0, 3")
    at.selectbox(key="sweep_dataset").select("digits")
    at.number_input(key="sweep_steps").set_value(600)
    at.number_input(key="sweep_hidden").set_value(9)
    at.button(key="sweep_train").click().run()
    job = at.session_state["sweep_job"]
    poll(at, lambda: not job.active, "the sweep to finish", 120)
    at.run()
    snap = job.latest()
    assert snap.seconds >= explore_estimate.MIN_SECONDS  # long enough to be kept
    rate = 4 * 600 / snap.seconds  # cell-steps a second, from the sweep's own clock

    # The same grid at three times the length, asked of the estimate as the page asks it.
    spec = SimpleNamespace(base=snap.spec.base.replace(steps=1800), n_cells=4)
    sentence = explore_estimate.estimate(spec)
    assert f"at the {rate:,.0f} cell-steps a second" in sentence, sentence
    seconds = 4 * 1800 / rate
    assert f"takes about {explore_estimate.duration_text(seconds)}" in sentence, sentence
