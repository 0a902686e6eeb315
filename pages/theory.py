"""Theory page: the objective term by term, the KL penalty's gradient and the sparsity delta, a live
gradient check, the exercise of writing the penalty yourself (pages/theory_exercise.py), and why each
choice matters, drawn on the session's current model where there is one; last, why the model matters
today (features in superposition).

The numbers come from sae_core.analysis.theory, the pictures from sae_core.figures.theory, the objective's
LaTeX
from sae_core.analysis.formulas. The model is read from the current job's latest snapshot, never run here.
"""

from __future__ import annotations

import streamlit as st

from pages import navigation_guard, session_job, settings_state, theory_exercise
from sae_core.analysis import formulas, theory
from sae_core.figures import theory as figures_theory
from sae_core.penalties import kl as kl_penalty
from sae_core.penalties.registry import PENALTIES
from sae_core.train import gradcheck

navigation_guard.leave_old_multipage_mode()

GRADCHECK = "theory_gradcheck"
"""Session key of the last gradient check: (config it ran on, {parameter: relative error})."""

KL_GRADIENT = (
    r"\frac{\partial}{\partial \hat\rho_j}\,\mathrm{KL}(\rho\,\|\,\hat\rho_j)"
    r" = -\frac{\rho}{\hat\rho_j} + \frac{1-\rho}{1-\hat\rho_j}"
)
OUTPUT_DELTA = r"\delta^{(3)} = -\bigl(x - \hat x\bigr) \odot f'\bigl(z^{(3)}\bigr)"
HIDDEN_DELTA = (
    r"\delta^{(2)}_j = \Bigl(\sum_{i} W^{(2)}_{ij}\,\delta^{(3)}_i"
    r" + \beta\Bigl(-\frac{\rho}{\hat\rho_j} + \frac{1-\rho}{1-\hat\rho_j}\Bigr)\Bigr)"
    r"\, f'\bigl(z^{(2)}_j\bigr),"
    r"\qquad f'(z) = \sigma(z)\bigl(1-\sigma(z)\bigr)"
)
WEIGHT_GRADIENTS = (
    r"\nabla_{W^{(1)}} J = \frac{1}{m}\sum_{i=1}^{m} \delta^{(2,i)}\, x^{(i)\top} + \lambda W^{(1)},"
    r"\qquad \nabla_{b^{(1)}} J = \frac{1}{m}\sum_{i=1}^{m} \delta^{(2,i)}"
)


def current_snapshot():
    """The latest snapshot of the session's run when it has trained, else None."""
    job = session_job.current_job()
    if job is None or job.step_count == 0:
        return None
    return job.latest()


@st.cache_data(show_spinner="Training a small model per penalty (once per server)…")
def penalty_runs(steps: int = theory.PENALTY_RUN_STEPS) -> list[theory.PenaltyRun]:
    return [theory.penalty_run(name, steps) for name, spec in PENALTIES.items() if spec.demo is not None]


def on_gradcheck() -> None:
    model = settings_state.current_config().model
    try:
        st.session_state[GRADCHECK] = (model, theory.gradient_check(model))
    except (ValueError, RuntimeError) as err:  # a setting the tiny copy cannot take
        st.session_state[GRADCHECK] = (model, f"The check could not run on these settings: {err}")


# ----- sections ---------------------------------------------------------------------------------------------
def draw_objective(cfg) -> None:
    st.header("The objective")
    st.write(
        "Training minimises one number, J. Here it is for the settings now on the Train page, with their "
        "values written in:"
    )
    st.latex(formulas.objective_latex(cfg))
    model = cfg.model
    if model.spec.reconstruction_tex(model) is None:
        reconstruction = "half the squared distance between each input and its reconstruction"
    else:
        reconstruction = "the negative log-likelihood of each input under the decoder's output"
    instead = theory.sparsity_instead(model)
    kl = "each unit j's mean activation ρ̂ⱼ over the batch is compared with the target ρ"
    sparsity = (
        f" (β): under the KL penalty, {kl}"
        if instead is None
        else f": {instead} The sparse autoencoder's classic, this page's subject, is the KL penalty: {kl}"
    )
    st.markdown(
        f"- **Reconstruction**: {reconstruction}, averaged over the m inputs of a batch. Alone it would let "
        "every unit fire on everything.\n"
        "- **Weight decay** (λ): keeps the weights small, so no unit can grow huge weights to cheat the "
        "other terms. Biases are not decayed.\n"
        f"- **Sparsity**{sparsity}, as if both were the probability of a coin coming up heads:"
    )
    st.latex(kl_penalty.kl_latex(model.rho))


def draw_gradient() -> None:
    st.header("The gradient of the sparsity term")
    st.write("Differentiate the KL term of one unit with respect to its mean activation:")
    st.latex(KL_GRADIENT)
    st.write(
        "Below the target (ρ̂ⱼ < ρ) the slope is negative, so gradient descent raises ρ̂ⱼ; above it the "
        "slope is positive and ρ̂ⱼ is pushed down; at ρ̂ⱼ = ρ it is zero. Near 0 and 1 the slope grows "
        "without bound: a unit that fires on every input is pushed back hard."
    )
    st.write(
        "In back-propagation (UFLDL's notation: layer 2 is the hidden layer, layer 3 the output, f the "
        "sigmoid) the output layer's error is the usual one. The hidden layer's error gets one extra term "
        "per unit, the *sparsity delta*: β times that slope, added to the error flowing back from the "
        "output before it is multiplied by the unit's own f'(z)."
    )
    st.latex(OUTPUT_DELTA)
    st.latex(HIDDEN_DELTA)
    st.latex(WEIGHT_GRADIENTS)
    st.caption(
        "ρ̂ⱼ is a mean over the batch, so each sample's hⱼ moves it by 1/m; that 1/m is the same one that "
        "averages the per-sample gradients, which is why the sparsity delta appears once per sample, "
        "unchanged. The app lets autograd compute all of this; the gradient check below shows it agrees."
    )


def draw_kl_curve(cfg, snap) -> None:
    st.header("The KL penalty, interactively")
    # β is the KL penalty's only under KL; an L1 β (0.01) would make the sparsity delta meaningless.
    under_kl = cfg.model.penalty_spec is kl_penalty.SPEC
    beta = cfg.model.beta if under_kl else kl_penalty.SPEC.beta_default
    left, right = st.columns([1, 2.2], gap="large")
    with left:
        rho = st.slider(
            "Target ρ", 0.01, 0.5, float(min(max(cfg.model.rho, 0.01), 0.5)), 0.01, key="theory_rho"
        )
        at = st.slider("Look at ρ̂ =", 0.005, 0.995, 0.3, 0.005, key="theory_rho_hat", format="%.3f")
        value, slope = float(theory.kl(rho, at)), float(theory.kl_slope(rho, at))
        st.metric("KL(ρ‖ρ̂)", f"{value:.4g}")
        st.metric("Slope ∂KL/∂ρ̂", f"{slope:.4g}", help="−ρ/ρ̂ + (1−ρ)/(1−ρ̂)")
        usual = None if under_kl else f"The current settings have no KL β; {beta:g} is a usual one."
        st.metric(f"Sparsity delta β·slope (β = {beta:g})", f"{beta * slope:.4g}", help=usual)
    units = None if snap is None else theory.kl_units(snap)
    with right:
        fig = figures_theory.kl_curve_figure(rho, at, units, beta)
        st.plotly_chart(fig, key="theory_kl_chart")
    if snap is None:
        st.caption("Train a model on the Train page to see its units as dots on the curve.")
    elif units is None:
        st.info(theory.not_kl_note(snap.config.model), icon=":material/info:")
    else:
        st.caption(theory.kl_units_caption(snap))


def draw_gradcheck(cfg) -> None:
    st.header("Gradient check")
    st.write(
        "As in the UFLDL exercise: compute the gradient by back-propagation (here autograd) and by central "
        "differences, (J(θ + ε) − J(θ − ε)) / 2ε for every single weight, on a tiny float64 copy of the "
        f"current settings (same variant, penalty, ρ, β, λ; {theory.tiny_sizes(cfg.model)}). The relative "
        "error ‖g − g̃‖ / ‖g + g̃‖ of a correct gradient is around 10⁻⁹."
    )
    st.button("Run the gradient check", key="gradcheck_button", on_click=on_gradcheck, type="primary")
    result = st.session_state.get(GRADCHECK)
    if result is None:
        return
    model, errors = result
    if isinstance(errors, str):
        st.warning(errors)
        return
    rows = [{"parameter": name, "relative error": f"{err:.2e}"} for name, err in errors.items()]
    st.dataframe(rows, hide_index=True)
    worst = max(errors.values())
    verdict = "passes" if worst <= gradcheck.TOLERANCE else "FAILS"
    text = f"Largest relative error {worst:.2e}: the check {verdict} (tolerance {gradcheck.TOLERANCE:g})."
    if model != cfg.model:
        text += " (Run on earlier settings; press the button again for the current ones.)"
    (st.success if worst <= gradcheck.TOLERANCE else st.error)(text)


def draw_range(cfg) -> None:
    st.header("Why KL needs activations in (0, 1)")
    st.write(
        "KL(ρ‖ρ̂) compares two coin probabilities; it takes log ρ̂ and log(1 − ρ̂), which exist only for "
        "0 < ρ̂ < 1. A sigmoid unit's output is always strictly between 0 and 1, so its mean is too. A ReLU "
        "unit's mean can be 0 (a dead unit: log 0) or above 1 (no probability at all), so L1 goes with "
        "ReLU codes; top-k uses no mean and takes any units (sigmoids on images here, linear units on "
        "signed data). The app also clamps ρ̂ to [10⁻⁶, 1 − 10⁻⁶] so that a unit that has gone "
        "fully silent still gets a finite pull back."
    )
    st.plotly_chart(figures_theory.activation_range_figure(cfg.model.rho), key="theory_range_chart")


def draw_penalties() -> None:
    st.header("KL vs L1 vs top-k")
    st.write(
        "Three ways to make a code sparse. KL fixes each unit's *average* activity; L1 charges for every "
        "bit of activity of every unit on every input; top-k keeps exactly k units per input and zeroes the "
        "rest. "
        "The same data (bars, 16 units), each trained for a few hundred steps here, on the spot; top-k on "
        "linear units, as Makhzani & Frey had it (the Train page gives it sigmoid units on images, and with "
        "them it finds the bars):"
    )
    runs = penalty_runs()
    st.plotly_chart(figures_theory.penalty_filters_figure(runs), key="theory_penalties_chart")
    st.caption("L0: mean units active per input. Bars found: true bars some unit's feature matches (of 16).")


def draw_sparsity_kinds(snap) -> None:
    st.header("Lifetime vs population sparsity")
    st.write(
        "**Lifetime sparsity** looks at one unit over many inputs: a good unit is silent on most of them and "
        "strongly on for a few. **Population sparsity** looks at one input across all units: only a few "
        "units should respond to it. The KL penalty constrains the first (each unit's mean); top-k enforces "
        "the second exactly; L1 pushes on both."
    )
    if snap is None:
        st.info("Train a model on the Train page to see both on it.", icon=":material/model_training:")
        return
    model = snap.config.model
    if "activations" not in model.spec.standard_views:
        units = model.spec.code_units(model, snap.activations.shape[1])
        st.info(
            f"The current model's code is {units}: numbers with no off state, not unit activations, so "
            "lifetime and population sparsity do not apply to it.",
            icon=":material/block:",
        )
        return
    left, right = st.columns(2, gap="large")
    with left:
        st.plotly_chart(
            figures_theory.lifetime_figure(snap.activations, snap.active_threshold),
            key="theory_lifetime_chart",
        )
    with right:
        st.plotly_chart(
            figures_theory.population_figure(snap.activations, snap.active_threshold),
            key="theory_population_chart",
        )
    units = model.spec.code_units(model, snap.activations.shape[1])
    st.caption(
        f"The current model at step {snap.step:,}, on its {snap.activations.shape[0]:,} probe inputs; "
        f"its units: {units}."
    )


def draw_superposition() -> None:
    """Why the classic model matters today: features in superposition (self-contained; no run needed)."""
    st.header("From UFLDL to language models: features in superposition")
    st.write(
        "The same model is how researchers now read a language model's activations. A layer of m neurons is "
        "thought to hold many more than m features, each a direction, with any one input using only a few "
        "of them: the features are in *superposition* (Elhage et al. 2022, *Toy Models of Superposition*). "
        "Because they are sparse, a sparse autoencoder with more units than the layer has dimensions can "
        "take them apart: each unit's decoder column dⱼ settles on one feature's direction (Sharkey, Braun & "
        "Millidge 2022). On a real transformer, Bricken et al. (2023, *Towards Monosemanticity*) split a "
        "512-neuron layer into thousands of features, most far easier to name than any neuron."
    )
    st.latex(theory.SUPERPOSITION_TEX)
    st.latex(theory.MMCS_TEX)
    st.caption(
        "The superposition preset (Home) makes such data with the answer known, 64 features in 32 "
        "dimensions, and scores the decoder by the mean max cosine similarity above: 1 when every true "
        "feature fᵢ is some unit's direction."
    )


def main() -> None:
    st.title("The maths of a sparse autoencoder")
    cfg = settings_state.current_config()
    snap = current_snapshot()
    draw_objective(cfg)
    draw_gradient()
    draw_kl_curve(cfg, snap)
    draw_gradcheck(cfg)
    theory_exercise.draw_exercise()
    draw_range(cfg)
    draw_sparsity_kinds(snap)
    draw_penalties()
    draw_superposition()


main()
