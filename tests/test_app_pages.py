"""The pages, driven as a user would with streamlit.testing.v1.AppTest.

Each test starts its own session; jobs are stopped at the end so no thread or training slot leaks.
The job lives in st.session_state["job"] (pages/session_job.py: JOB). Configs are tiny: 8×8 digits, 4 units.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from apptest_helpers import pictures, pin_navigation_mode, poll, stop_jobs
from picture_helpers import picture_pixels
from streamlit.testing.v1 import AppTest

from sae_core import presets
from sae_core.data import datasets as data
from sae_core.models import build

APP = Path(__file__).resolve().parent.parent / "app.py"
RUN_TIMEOUT = 60  # seconds per script run: the first run imports torch and loads data on 2 shared cores
POLL_DEADLINE = 60
DEFAULT_RHO = presets.get(presets.DEFAULT_PRESET).config.model.rho
"""ρ of the preset a new session starts with (what a refused URL value leaves in place)."""
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
    assert at.select_slider(key="rho").value == pytest.approx(DEFAULT_RHO)
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

    at.select_slider(key="rho").set_value(0.2).run()
    at.slider(key="beta").set_value(5.0).run()
    _poll(at, lambda: job.config.model.rho == 0.2 and job.config.model.beta == 5.0, "live ρ and β")
    assert at.session_state["job"] is job, "a live change must not rebuild the model"
    assert job.step_count >= before
    assert at.query_params.get("rho") == ["0.2"] or at.query_params.get("rho") == "0.2"
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


def _progress_text(at: AppTest) -> str:
    return at.get("progress")[0].proto.text


def test_a_finished_run_trains_on_with_the_same_model(apps):
    at = apps({**TINY, "steps": "30"})
    job = at.session_state["job"]
    at.button(key="train").click().run()
    _poll(at, lambda: job.status == "done" and not job.running, "the run to reach its length")
    at.run()  # the buttons as they are drawn once the run has ended
    train = at.button(key="train")
    assert (train.label, train.disabled, at.button(key="step").disabled) == ("Train on", False, False)
    caption = " ".join(c.value for c in at.main.caption)
    assert "Training length reached (30 steps)" in caption and "Nothing is rebuilt" in caption
    assert "new model" not in caption

    at.button(key="step").click().run()  # a step past the end
    assert job.step_count == 31
    at.button(key="train").click().run()  # Train on: the same length again, live
    assert at.session_state["job"] is job and job.config.train.steps == 61
    assert at.session_state["settings"]["steps"] == 61 and at.number_input(key="steps").value == 61
    _poll(at, lambda: job.status == "done" and job.step_count == 61, "the longer run to reach its end")
    assert at.query_params.get("steps") in (["61"], "61")  # the link opens the longer run
    assert list(job.trainer.history_steps) == list(range(1, 62))  # one run, trained on
    _no_exceptions(at)


def test_run_until_paused_switches_a_running_job_without_a_rebuild(apps):
    at = apps(TINY)
    job = at.session_state["job"]
    at.button(key="train").click().run()
    _poll(at, lambda: job.step_count > 0, "the first training steps")
    assert "/ 100,000" in _progress_text(at) and "ETA" in _progress_text(at)

    at.checkbox(key="until_paused").check().run()
    assert at.session_state["job"] is job and job.running
    assert at.session_state["settings"]["steps"] == 0 and at.query_params.get("steps") in (["0"], "0")
    _poll(at, lambda: "until paused" in _progress_text(at), "the page to show the new length")
    text = _progress_text(at)
    assert "until paused" in text and "ETA" not in text and " / " not in text
    length = at.number_input(key="steps")
    assert length.disabled and length.value == 100_000  # the kept length, for unticking
    _poll(at, lambda: job.step_count > 100 and job.running, "training to go on")

    at.checkbox(key="until_paused").uncheck().run()
    assert at.session_state["settings"]["steps"] == 100_000 and at.session_state["job"] is job
    _poll(at, lambda: job.latest().total_steps == 100_000, "the job to take its length back")
    assert not at.number_input(key="steps").disabled and job.running
    _no_exceptions(at)


def test_a_link_with_steps_0_opens_a_run_until_paused(apps):
    at = apps({**TINY, "steps": "0"})
    _no_exceptions(at)
    assert at.checkbox(key="until_paused").value
    assert at.number_input(key="steps").disabled and at.number_input(key="steps").value >= 1
    assert at.session_state["job"].config.train.steps == 0
    assert "step 0 · until paused" in _progress_text(at)


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
    assert any("ρ must be between 0 and 1, both excluded (you asked for `2.0`)" in e.value for e in at.error)
    assert at.session_state["job"].config.model.rho == pytest.approx(DEFAULT_RHO)


def test_bad_number_is_refused_and_the_job_is_kept(apps):
    at = apps(TINY)
    job = at.session_state["job"]
    at.number_input(key="weight_decay").set_value(-1.0).run()
    _no_exceptions(at)
    assert any("The weight decay λ must be at least 0" in e.value for e in at.error)
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


def test_a_full_server_queues_the_run_and_starts_it_in_turn(apps):
    from pages import server

    at = apps(TINY)
    queue = server.training_queue()
    others = [object() for _ in range(queue.slots)]  # other students' runs hold every slot
    for i, other in enumerate(others):
        assert queue.acquire(other, f"other-{i}", lambda: None) == 0
    try:
        at.button(key="train").click().run()
        job = at.session_state["job"]
        assert job.status == "queued" and job.queue_place() == 1 and not job.running
        assert "place 1 in the queue" in _progress_text(at)
        assert any("starts by itself" in i.value for i in at.info)
        queue.release(others.pop())  # a slot frees: the queued run starts by itself
        _poll(at, lambda: job.running and job.step_count > 0, "the queued run to start")
        assert "queue" not in _progress_text(at)
    finally:
        for other in others:
            queue.release(other)
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


# ----- what a teacher expects to see: test error, the data, the bars found, a picked unit -------------------
def _charts(at: AppTest) -> dict[str, list]:
    """The plotly figures drawn, by chart key: a live chart has two slots, `key` and `key__back`
    (pages/live_charts.py), the newest figure in one of them. Element ids end in '-<key>'."""
    import plotly.io as pio

    out: dict[str, list] = {}
    for chart in at.get("plotly_chart"):
        key = chart.proto.id.split("-", 2)[-1].removesuffix("__back")
        out.setdefault(key, []).append(pio.from_json(chart.proto.spec))
    return out


def test_bars_page_shows_test_error_data_strip_and_bars_found(apps):

    import numpy as np

    from sae_core.train import metrics

    at = apps({**TINY, "dataset": "bars", "hidden": "16"})
    _no_exceptions(at)
    snap = at.session_state["job"].latest()
    shown = {m.label: m.value for m in at.metric}
    labels = list(shown)
    assert labels.index("Test error") == labels.index("Reconstruction error") + 1
    assert shown["Test error"] == f"{snap.test_metrics['recon_error']:.4g}"
    found = metrics.features_found(torch.from_numpy(snap.truth_match))
    assert shown["Bars found"] == f"{found} / 16" and found <= 2  # an untrained model finds (almost) none
    # Before the first step the Training data tab is open: the first 20 training images in one montage,
    # drawn (like the filters and the ρ̂ histogram) as a plain picture, no plot (figures.static).
    shown = pictures(at)
    assert {"filters_chart", "rho_hat_chart", "data_chart"} <= set(shown) and "loss_chart" not in shown
    assert _charts(at) == {}
    first = at.session_state["job"].trainer.dataset.train[0].numpy().reshape(8, 8)
    lo, hi = min(0.0, float(first.min())), max(1.0, float(first.max()))  # bars are 0/1: black and white
    grey = np.round(np.clip((first - lo) / (hi - lo), 0, 1) * 255)
    np.testing.assert_array_equal(picture_pixels(shown["data_chart"])[1:9, 1:9, 0], grey)

    at.button(key="step").click().run()  # the first step opens the loss curves, test points included
    charts = _charts(at)
    assert "loss_chart" in charts and "data_chart" not in charts
    for fig in charts["loss_chart"]:
        names = [t.name for t in fig.data]
        assert "test reconstruction" in names and "test total" in names
    _no_exceptions(at)


def test_a_picked_unit_is_marked_on_its_tile_and_in_the_rho_hat_histogram(apps):
    at = apps(TINY)
    snap = at.session_state["job"].latest()
    at.session_state["highlight_unit"] = 2  # what a click on tile 2 stores (train_views.on_filter_select)
    at.run()
    _no_exceptions(at)
    charts = _charts(at)
    label = f"unit 2: ρ̂ = {snap.rho_hat[2]:.3f}"
    assert any(label in [a.text for a in fig.layout.annotations] for fig in charts["rho_hat_chart"])
    assert any([s.type for s in fig.layout.shapes] == ["rect"] for fig in charts["filters_chart"])
    assert all(fig.data[1].type == "scatter" for fig in charts["filters_chart"])  # the click targets
