"""Classroom links (pages/classroom.py): ?classroom=rho,beta shows students only the named controls,
keeps every other setting at the link's value, and the teacher's "Share with the class" link opens the
same run. The link builder is checked by parsing its output back; the page with AppTest."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

import pytest
from apptest_helpers import open_train_page, pin_navigation_mode, poll, stop_jobs
from streamlit.testing.v1 import AppTest

from pages import classroom
from sae_core.config.run import RunConfig
from sae_core.presets import DEFAULT_PRESET, load_presets

RUN_TIMEOUT = 60
TINY = {"dataset": "digits", "hidden": "4", "steps": "100000", "batch_size": "32"}
SETTING_WIDGETS = (
    "selectbox",
    "slider",
    "select_slider",
    "number_input",
    "checkbox",
    "text_input",
    "multiselect",
)
"""AppTest's names of the widget kinds the sidebar uses for settings (the presentation toggle is a view)."""
BASE = RunConfig.from_flat(load_presets()[DEFAULT_PRESET].flat)
"""What a new session starts with (settings_state.base_settings)."""


@pytest.fixture
def apps(monkeypatch):
    pin_navigation_mode(monkeypatch)
    made: list[AppTest] = []

    def make(query: dict[str, str]) -> AppTest:
        return open_train_page(query, RUN_TIMEOUT, made)

    yield make
    for at in made:
        stop_jobs(at)


def _setting_keys(at: AppTest) -> set[str]:
    return {w.key for kind in SETTING_WIDGETS for w in getattr(at.sidebar, kind)}


def _outside_code_spans(text: str) -> str:
    return re.sub(r"`[^`]*`", "", text)


# ----- the link builder: its output parsed back gives the same run ---------------------------------------
def _parsed(link: str) -> tuple[RunConfig, str]:
    params = dict(parse_qsl(urlsplit(link).query, keep_blank_values=True))
    fields = params.pop(classroom.PARAM)
    return RunConfig.from_flat({**BASE.flat(), **params}), fields


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"dataset": "digits", "hidden": 7, "rho": 0.013, "beta": 0.7, "lr": 0.0031, "seed": 5},
        {"variant": "deep", "layers": "32,16", "penalty": "l1", "beta": 0.002, "optimizer": "sgd"},
        {"variant": "ksparse", "k": 3, "tied": True, "k_start": 9, "alpha": 2.0, "epochs": 3},
        {"variant": "denoising", "corruption": "gaussian", "noise_level": 0.25, "weight_decay": 1e-5},
        {"variant": "vae", "latent": 3, "batch_size": 0, "steps": 0, "n_bars": 12},
    ],
)
def test_a_share_link_parsed_back_gives_the_same_config(changes):
    cfg = BASE.replace(**changes)
    link = classroom.share_link(cfg, BASE, ["rho", "beta"], "http://class.example:8501/train")
    assert link.startswith("http://class.example:8501/train?")
    back, fields = _parsed(link)
    assert back == cfg
    assert classroom.parse(fields) == (("rho", "beta"), [])
    assert set(classroom.link_query(cfg, BASE, [])) - {classroom.PARAM} == {
        k for k, v in cfg.flat().items() if v != BASE.flat()[k]
    }


def test_a_share_link_with_no_control_names_none_and_never_a_server_path():
    cfg = BASE.replace(dataset="upload", upload="abc123", data_dir="/srv/data")
    query = classroom.link_query(cfg, BASE, [])
    assert query[classroom.PARAM] == classroom.NONE and classroom.parse(classroom.NONE) == ((), [])
    assert "upload" not in query and "data_dir" not in query and query["dataset"] == "upload"


def test_parse_keeps_known_names_once_in_order_and_returns_the_others():
    known, unknown = classroom.parse(" Beta,rho,beta,,n_bars,[x](http://evil)")
    assert known == ("beta", "rho") and unknown == ["n_bars", "[x](http://evil)"]


# ----- the page -------------------------------------------------------------------------------------------
def test_a_classroom_link_shows_only_the_named_controls_with_the_links_values(apps):
    at = apps({**TINY, "rho": "0.05", "beta": "2", "lr": "0.02", "seed": "3", "classroom": "rho, Beta,rho"})
    assert _setting_keys(at) == {"rho", "beta"}
    assert at.select_slider(key="rho").value == pytest.approx(0.05)
    assert at.slider(key="beta").value == pytest.approx(2.0)
    assert {"train", "pause", "step", "stop", "reset"} <= {b.key for b in at.button}
    assert any(i.value.startswith("Classroom link: you can change ρ and β") for i in at.sidebar.info)
    assert not at.sidebar.expander  # no share box on a student's page
    locked = {"dataset": "digits", "hidden": 4, "lr": 0.02, "seed": 3, "batch_size": 32, "steps": 100000}
    flat = at.session_state["job"].config.flat()
    assert {k: flat[k] for k in locked} == locked
    at.select_slider(key="rho").set_value(0.1).run()  # a named control still works, live
    flat = at.session_state["job"].config.flat()
    assert flat["rho"] == pytest.approx(0.1) and {k: flat[k] for k in locked} == locked
    assert at.query_params["classroom"] == "rho,beta"  # the page's URL: a reload stays a classroom link


def test_unknown_control_names_get_a_notice_shown_literally(apps):
    evil = "[x](http://evil)"
    at = apps({**TINY, "classroom": f"rho,{evil},n_bars"})
    (notice,) = [i.value for i in at.info if "Classroom link: ignored" in i.value]
    assert f"`{evil}`" in notice and "`n_bars`" in notice
    assert "](" not in _outside_code_spans(notice) and "http" not in _outside_code_spans(notice)
    assert _setting_keys(at) == {"rho"}


def test_a_refused_value_of_a_hidden_control_is_said_in_a_notice(apps):
    at = apps({**TINY, "beta": "50", "classroom": "rho"})
    assert any(
        "Not applied from the link" in i.value and "β can be at most 10 for the KL penalty" in i.value
        for i in at.info
    )
    assert at.session_state["job"].config.model.beta == 3.0  # the KL penalty's default stands in


def test_a_preset_link_with_every_setting_locked(apps):
    at = apps({"preset": "quick-digits", "classroom": "none"})
    assert _setting_keys(at) == set()
    assert any("the settings are fixed" in i.value for i in at.sidebar.info)
    assert at.session_state["job"].config == RunConfig.from_flat(load_presets()["quick-digits"].flat)
    at = apps({"preset": "[no](http://evil)", **TINY})
    (notice,) = [i.value for i in at.info if "unknown preset" in i.value]
    assert "`[no](http://evil)`" in notice and "](" not in _outside_code_spans(notice)


def test_the_teachers_link_opens_the_same_run_for_the_students(apps):
    teacher = apps(TINY)
    teacher.number_input(key="hidden").set_value(6).run()
    teacher.select_slider(key="rho").set_value(0.02).run()
    teacher.number_input(key="lr").set_value(0.004).run()
    assert teacher.multiselect(key=classroom.SHARE_KEY).value == ["rho", "beta"]  # the default
    teacher.multiselect(key=classroom.SHARE_KEY).set_value(["rho", "lr"]).run()
    (link,) = [c.value for c in teacher.sidebar.code]
    assert link.startswith("/train?")  # AppTest has no browser URL: a relative link
    student = apps(dict(parse_qsl(urlsplit(link).query)))
    assert student.session_state["job"].config == teacher.session_state["job"].config
    assert _setting_keys(student) == {"rho", "lr"}
    assert student.number_input(key="lr").value == pytest.approx(0.004)


def test_training_works_from_a_classroom_page_and_home_leaves_classroom_mode(apps):
    at = apps({**TINY, "classroom": "beta"})
    job = at.session_state["job"]
    at.button(key="train").click().run()
    poll(at, lambda: job.step_count >= 1, "a training step", 60)
    at.button(key="pause").click().run()
    assert not at.exception and job.config.model.hidden == 4
    at.switch_page("pages/home.py").run()
    assert not at.exception
    at.button(key="preset_quick-digits").click().run()  # opens Train with the preset: every control is back
    assert not at.exception
    assert {"dataset", "variant", "rho", "beta", "hidden", "lr"} <= _setting_keys(at)
    assert not any("Classroom link" in i.value for i in at.sidebar.info)
