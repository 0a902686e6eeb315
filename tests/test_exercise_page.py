"""The Theory page's exercise section (pages/theory_exercise.py), driven through AppTest: a wrong attempt
gets the library's hint and a curve over the true one, a refused one a message, a right one the Train
action, which trains beside the built-in KL."""

from __future__ import annotations

from pathlib import Path

import pytest
from apptest_helpers import pin_navigation_mode, stop_jobs
from streamlit.testing.v1 import AppTest

from pages import theory_exercise
from sae_core.analysis import theory
from sae_core.analysis.exercise import check, runs

APP = Path(__file__).resolve().parent.parent / "app.py"
KL = "ρ*log(ρ/ρ̂) + (1−ρ)*log((1−ρ)/(1−ρ̂))"
STEPS = 20


@pytest.fixture
def theory_page(monkeypatch):
    pin_navigation_mode(monkeypatch)
    # The page's other sections train small runs; a few steps each keep this test about the exercise.
    monkeypatch.setattr(theory, "PENALTY_RUN_STEPS", STEPS)
    monkeypatch.setattr(runs, "STEPS", STEPS)
    theory_exercise.builtin_run.clear()
    at = AppTest.from_file(str(APP), default_timeout=240)
    at.query_params.update({"dataset": "digits", "hidden": "4"})
    at.run()
    at.switch_page("pages/theory.py").run()
    assert not at.exception, [e.value for e in at.exception]
    yield at
    stop_jobs(at)


def _attempt(at: AppTest, step: str, text: str) -> None:
    at.text_input(key=f"exercise_{step}").input(text)
    at.button(key=f"exercise_{step}_check").click().run()
    assert not at.exception, [e.value for e in at.exception]


def _chart_keys(at: AppTest) -> list[str]:
    return [c.proto.id for c in at.get("plotly_chart")]


def test_a_wrong_attempt_gets_the_hint_and_a_curve_and_no_train_button(theory_page):
    at = theory_page
    assert "Write the penalty yourself" in [h.value for h in at.header]
    wrong = "rho*log(rho/rho_hat)"
    _attempt(at, "penalty", wrong)
    errors = [e.value for e in at.error]
    assert any(check.check_text(wrong, "penalty").hint in e for e in errors), errors
    assert any("exercise_penalty_chart" in k for k in _chart_keys(at))
    assert not [b for b in at.button if b.key == "exercise_train"]


def test_a_refused_attempt_says_what_is_not_allowed(theory_page):
    at = theory_page
    _attempt(at, "penalty", "__import__('os')")
    assert any("Refused: __import__() is not allowed" in w.value for w in at.warning)
    assert not any("exercise_penalty_chart" in k for k in _chart_keys(at))


def test_a_right_attempt_trains_with_the_formula_beside_the_built_in_kl(theory_page):
    at = theory_page
    _attempt(at, "penalty", KL)
    assert any(s.value.startswith("Right: it is KL") for s in at.success)
    at.button(key="exercise_train").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("exercise_runs_chart" in k for k in _chart_keys(at))
    table = at.table[-1].value
    assert list(table.columns) == ["your formula", "built-in KL"] and "mean ρ̂" in table.index
    assert (table["your formula"] == table["built-in KL"]).sum() >= 3  # the same model, to 5 digits
    _attempt(at, "derivative", "-ρ/ρ̂ + (1−ρ)/(1−ρ̂)")
    assert any(s.value.startswith("Right: it is ∂KL/∂ρ̂") for s in at.success)
