"""Theory page's exercise: the student types the KL penalty and its derivative, the app checks them and,
once the penalty is right, trains the small bars run with it beside the built-in KL.

The parsing, checking and training live in sae_core.analysis.exercise, the pictures in
sae_core.figures.exercise; this module reads the widgets and renders.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from sae_core.analysis.exercise import check, formula, runs
from sae_core.figures import exercise as figures_exercise

ATTEMPTS = "exercise_attempts"
"""Session key: step -> the last checked attempt (a check.Result) or the parser's refusal (a str)."""
RUN = "exercise_run"
"""Session key: (the formula trained with, its run, the built-in run)."""
PROMPTS = {
    "penalty": (
        "Step 1: the penalty KL(ρ‖ρ̂)",
        "One unit's sparsity penalty as a function of the target ρ and its mean activation ρ̂.",
    ),
    "derivative": (
        "Step 2: its derivative ∂KL/∂ρ̂",
        "The slope of the penalty with respect to ρ̂: β times it is the sparsity term UFLDL's "
        "back-propagation adds to each hidden unit's delta.",
    ),
}


@st.cache_data(show_spinner=False)
def builtin_run(steps: int) -> runs.ExerciseRun:
    """The built-in KL run the student's is compared with (deterministic: once per server)."""
    return runs.train(None, steps)


def attempts() -> dict:
    return st.session_state.setdefault(ATTEMPTS, {})


def draw_exercise() -> None:
    st.header("Write the penalty yourself")
    st.write(
        "The UFLDL exercise, live: type the sparsity penalty and then its derivative as formulas in "
        "`rho` and `rho_hat` (or ρ and ρ̂), with numbers, `+ - * / **` and "
        f"{', '.join(f'`{name}`' for name in formula.FUNCTIONS)} (`log` is the natural logarithm). "
        "The app compares yours with the true function at "
        f"{check.RHOS.size} values of ρ and {check.RHO_HATS.size} of ρ̂ in (0, 1) and says where they differ. "
        "Try it before scrolling back up to the formulas."
    )
    draw_step("penalty")
    draw_training()
    draw_step("derivative")


def draw_step(step: check.Step) -> None:
    title, what = PROMPTS[step]
    st.subheader(title)
    left, right = st.columns([1, 1.3], gap="large")
    with left:
        result = draw_attempt(step, what)
    if isinstance(result, check.Result):
        with right:
            st.plotly_chart(figures_exercise.attempt_figure(result), key=f"exercise_{step}_chart")
            rhos = ", ".join(f"{r:g}" for r in check.RHOS)
            st.caption(
                f"Checked at ρ = {rhos} and ρ̂ = {check.RHO_HATS.min():g} … {check.RHO_HATS.max():g}; "
                f"drawn at ρ = {check.PLOT_RHO:g}. Yours is dashed, the true one solid grey."
            )


def draw_attempt(step: check.Step, what: str) -> check.Result | str | None:
    """The formula box, its Check button and the verdict; returns the step's last attempt."""
    with st.form(key=f"exercise_{step}_form", border=False):
        text = st.text_input(
            what,
            key=f"exercise_{step}",
            max_chars=formula.MAX_LENGTH,
            placeholder="a formula in rho and rho_hat",
        )
        submitted = st.form_submit_button("Check", key=f"exercise_{step}_check", type="primary")
    if submitted:
        try:
            attempts()[step] = check.check_text(text, step)
        except formula.FormulaError as refused:
            attempts()[step] = str(refused)
    result = attempts().get(step)
    if isinstance(result, str):
        st.warning(f"Refused: {result}. Nothing of it was run.", icon=":material/block:")
    elif result is not None and result.correct:
        st.success(result.verdict, icon=":material/check_circle:")
    elif result is not None:
        st.error(f"{result.verdict}\n\n**Hint:** {result.hint}", icon=":material/lightbulb:")
    return result


def draw_training() -> None:
    result = attempts().get("penalty")
    if not isinstance(result, check.Result) or not result.correct:
        st.caption("Once your penalty is right, you can train a model with it here.")
        return
    st.write(
        f"Your penalty is right, so a model trained with it should learn what the built-in KL's does. Train "
        f"the bars run (16 units, ρ = {runs.run_config().model.rho:g}, β = {runs.run_config().model.beta:g}, "
        f"{runs.STEPS} steps, same seed) with your formula as the sparsity term, beside the built-in one."
    )
    if st.button("Train with my formula", key="exercise_train", type="primary"):
        with st.spinner("Training with your formula and with the built-in KL…"):
            mine = runs.train(result.formula, runs.STEPS)
            st.session_state[RUN] = (result.formula.normalised, mine, builtin_run(runs.STEPS))
    trained = st.session_state.get(RUN)
    if trained is None:
        return
    text, mine, builtin = trained
    theirs = builtin.numbers()
    rows = {
        name: {"your formula": f"{v:.5g}", "built-in KL": f"{theirs[name]:.5g}"}
        for name, v in mine.numbers().items()
    }
    left, right = st.columns([1.6, 1], gap="large")
    with left:
        st.plotly_chart(figures_exercise.runs_figure(mine, builtin), key="exercise_runs_chart")
    with right:
        st.table(pd.DataFrame.from_dict(rows, orient="index"))
    difference = runs.weight_difference(mine, builtin)
    st.caption(
        f"Trained with `{text}`. The largest difference between the two runs' filters is {difference:.1e} "
        "of the largest weight: float32 rounding of another way to write the same function."
        + (f" Your run stopped early: {mine.diverged}" if mine.diverged else "")
    )
