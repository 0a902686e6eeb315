"""The Applications page on a model that is not the kind a section shows best (issue 21): a sentence says
so and one click opens the recipe that demonstrates it on the Train page."""

from __future__ import annotations

from pathlib import Path

import pytest
from apptest_helpers import pin_navigation_mode, poll, stop_jobs
from streamlit.testing.v1 import AppTest

from pages import applications_recipes

APP = Path(__file__).resolve().parent.parent / "app.py"
PAGE = "pages/applications.py"
TINY = {"dataset": "digits", "hidden": "4", "steps": "100000", "batch_size": "32"}
"""Four units on digits: their codes read worse than the 64 pixels."""


@pytest.fixture
def trained(monkeypatch):
    pin_navigation_mode(monkeypatch)
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.query_params.update(TINY)
    at.run()
    at.switch_page("pages/train.py").run()
    job = at.session_state["job"]
    at.button(key="train").click().run()
    poll(at, lambda: job.step_count >= 200, "200 training steps", 60)
    at.button(key="pause").click().run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    yield at
    stop_jobs(at)


def test_codes_weaker_than_pixels_are_explained_and_the_probe_recipe_is_one_click_away(trained):
    at = trained
    shown = {m.label: m.value for m in at.metric}
    codes, pixels = (float(shown[k].rstrip("%")) for k in ("Hidden codes (4 dims)", "Raw pixels (64 dims)"))
    assert codes < pixels, shown
    (note,) = [i.value for i in at.info if "from the raw pixels" in i.value]
    assert f"read {shown['Hidden codes (4 dims)']} right against {shown['Raw pixels (64 dims)']}" in note
    preset = applications_recipes.probe_preset()
    if preset is None:
        pytest.skip("neither MNIST nor Fashion-MNIST is installed: no probe recipe to open")
    at.button(key="app_recipe_probe").click().run()
    assert not at.exception, [e.value for e in at.exception]
    settings = at.session_state["settings"]
    assert settings["hidden"] == preset.flat["hidden"] and settings["dataset"] in ("mnist", "fashion-mnist")
    assert at.session_state["job"].config.model.hidden == preset.flat["hidden"]  # the Train page built it


def test_a_plain_model_offers_the_denoising_variant_on_the_same_data(trained):
    at = trained
    at.segmented_control(key="app_section").set_value("Denoising").run()
    at.button(key="app_recipe_denoising").click().run()
    assert not at.exception, [e.value for e in at.exception]
    cfg = at.session_state["job"].config
    assert (cfg.model.variant, cfg.data.dataset, cfg.model.hidden) == ("denoising", "digits", 4)
