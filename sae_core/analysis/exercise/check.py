"""A student's formula checked against the KL penalty (step 1) or its derivative (step 2), with a hint
that says where it differs.

The true functions, for target ρ and a unit's mean activation ρ̂ (UFLDL, "Sparse autoencoder", Ng 2011):

    KL(ρ‖ρ̂)   = ρ log(ρ/ρ̂) + (1−ρ) log((1−ρ)/(1−ρ̂))
    ∂KL/∂ρ̂    = −ρ/ρ̂ + (1−ρ)/(1−ρ̂)          (β times this is the sparsity term of UFLDL's hidden delta)

Both are compared on a grid of several ρ and ρ̂ in (0, 1). A formula passes when every point is within
ATOL + RTOL·|true value|. When it does not, the diagnostics below are tried in order, each a test of one
common mistake on the whole grid (a sign flip, ρ and ρ̂ swapped, a constant factor such as a base-10 log,
one of the two terms missing or with the wrong sign, an extra term in ρ alone, the other step's function);
the first that fits gives the hint. Otherwise the hint says in words for which ρ̂ the formula is right,
wrong, or of the wrong sign.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sae_core.analysis.exercise.formula import Formula, parse

Step = Literal["penalty", "derivative"]
STEPS: tuple[Step, ...] = ("penalty", "derivative")
RHOS = np.array([0.01, 0.05, 0.1, 0.2, 0.4])
"""The targets ρ a formula is checked at (the app's ρ slider spans 0.01 to 0.5)."""
RHO_HATS = np.union1d(np.linspace(0.01, 0.99, 99), RHOS)
"""The ρ̂ it is checked at: (0, 1) in steps of 0.01, each ρ itself included."""
RTOL = 1e-6
ATOL = 1e-9
FIT_TOL = 1e-6
"""How closely a diagnostic's model must fit the student's values (relative, over the grid) to be named."""
PLOT_RHO = 0.1
"""The ρ the page draws the two curves at."""
TITLES = {"penalty": "KL(ρ ‖ ρ̂)", "derivative": "∂KL/∂ρ̂"}
STEP_LABELS = {"penalty": "step 1, the penalty", "derivative": "step 2, its derivative"}


def kl_terms(rho: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two terms of KL(ρ‖ρ̂): ρ log(ρ/ρ̂) and (1−ρ) log((1−ρ)/(1−ρ̂)), broadcast over ρ and ρ̂."""
    return rho * np.log(rho / q), (1 - rho) * np.log((1 - rho) / (1 - q))


def slope_terms(rho: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two terms of ∂KL/∂ρ̂: −ρ/ρ̂ and (1−ρ)/(1−ρ̂)."""
    return -rho / q, (1 - rho) / (1 - q)


TERMS: dict[Step, Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    "penalty": kl_terms,
    "derivative": slope_terms,
}
TERM_TEXT = {
    "penalty": ("ρ log(ρ/ρ̂)", "(1−ρ) log((1−ρ)/(1−ρ̂))"),
    "derivative": ("−ρ/ρ̂", "(1−ρ)/(1−ρ̂)"),
}
MISSING = {
    ("penalty", 0): "nothing stops ρ̂ from falling to 0, where it should grow without bound",
    ("penalty", 1): "nothing stops ρ̂ from rising to 1, where it should grow without bound",
    ("derivative", 0): "it never turns negative, so nothing pushes ρ̂ up when it is below ρ",
    ("derivative", 1): "it never turns positive, so nothing pushes ρ̂ down when it is above ρ",
}


@dataclass(frozen=True)
class Result:
    """The outcome of one attempt: the verdict, the hint, and the two functions on the grid."""

    step: Step
    formula: Formula
    correct: bool
    verdict: str
    """One line: right or not, and the largest error against the tolerance."""
    hint: str
    """Where it differs, in words (empty when it is right)."""
    rhos: np.ndarray
    """[R] the targets ρ checked."""
    rho_hats: np.ndarray
    """[Q] the ρ̂ checked."""
    student: np.ndarray
    """[R, Q] the formula's values."""
    truth: np.ndarray
    """[R, Q] the true function's values."""

    def curves(self, rho: float = PLOT_RHO) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ρ̂ [Q], student [Q], truth [Q]) at the checked ρ nearest `rho`, for a figure."""
        i = int(np.argmin(np.abs(self.rhos - rho)))
        return self.rho_hats, self.student[i], self.truth[i]


def truth(step: Step, rho: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(ρ‖ρ̂) or ∂KL/∂ρ̂ on the grid."""
    a, b = TERMS[step](rho, q)
    return a + b


def check_text(text: str, step: Step) -> Result:
    """Parse (FormulaError when refused) and check a formula for `step`."""
    return check(parse(text), step)


def check(formula: Formula, step: Step) -> Result:
    """Compare `formula` with the step's true function on the grid, and explain the difference."""
    if step not in STEPS:
        raise ValueError(f"step must be one of {', '.join(STEPS)}, got {step!r}")
    rho, q = RHOS[:, None], RHO_HATS[None, :]
    student, true = formula.numpy(rho, q), truth(step, rho, q)
    finite = np.isfinite(student)
    error = np.where(finite, np.abs(student - true), np.inf)
    correct = bool(np.all(error <= ATOL + RTOL * np.abs(true)))
    worst = float(np.max(error))
    name = TITLES[step]
    if correct:
        verdict = f"Right: it is {name} at all {true.size} points checked (largest difference {worst:.1e})."
        hint = ""
    else:
        verdict = f"Not yet: it differs from {name} (tolerance {RTOL:g} relative + {ATOL:g} absolute)."
        hint = diagnose(step, formula, student, true, rho, q)
    return Result(step, formula, correct, verdict, hint, RHOS.copy(), RHO_HATS.copy(), student, true)


# ----- diagnostics -----------------------------------------------------------------------------------------
def diagnose(
    step: Step, formula: Formula, s: np.ndarray, t: np.ndarray, rho: np.ndarray, q: np.ndarray
) -> str:
    """The hint for a wrong formula: the first diagnostic that fits, else where it differs in words."""
    if not np.all(np.isfinite(s)):
        return _not_finite(s, rho, q)
    other: Step = "derivative" if step == "penalty" else "penalty"
    for test in (
        lambda: _constant(s),
        lambda: _factor(step, s, t),
        lambda: _swapped(step, formula, t, rho, q),
        lambda: _other_step(step, other, s, rho, q),
        lambda: _terms(step, s, rho, q),
        lambda: _shift(step, s, t),
    ):
        hint = test()
        if hint:
            return hint
    return _regions(step, s, t, rho, q)


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    scale = max(float(np.max(np.abs(b))), 1e-12)
    return bool(np.max(np.abs(a - b)) <= FIT_TOL * scale)


def _at(rho: np.ndarray, q: np.ndarray, index: tuple[int, int]) -> str:
    return f"ρ = {rho[index[0], 0]:g}, ρ̂ = {q[0, index[1]]:g}"


def _not_finite(s: np.ndarray, rho: np.ndarray, q: np.ndarray) -> str:
    i, j = np.argwhere(~np.isfinite(s))[0]
    value = "nan" if np.isnan(s[i, j]) else "infinite"
    return (
        f"It is not finite for some ρ̂ in (0, 1): at {_at(rho, q, (i, j))} it is {value}. "
        "Check for a log of a negative number or a division by zero."
    )


def _constant(s: np.ndarray) -> str:
    if np.all(np.ptp(s, axis=1) <= ATOL):
        return "It does not change with ρ̂ at all: the formula must depend on rho_hat (ρ̂)."
    return ""


NAMED_FACTORS = (
    (1 / math.log(10), "1/ln 10", "log is the natural logarithm here, and log10 gives base 10"),
    (1 / math.log(2), "1/ln 2", "log is the natural logarithm here, and log2 gives base 2"),
    (math.log(10), "ln 10", "a natural log where the rest is in base 10?"),
)
"""Factors that come from a logarithm in another base: (value, its name, the likely mistake)."""


def _factor_words(c: float) -> tuple[str, str]:
    """A constant factor as (short text, a note naming the mistake it usually comes from, or "")."""
    for value, name, note in NAMED_FACTORS:
        if abs(c - value) <= 1e-6 * value:
            return f"{name} ≈ {value:.3f}", note
    return f"{c:.4g}", ""


def _factor(step: Step, s: np.ndarray, t: np.ndarray) -> str:
    c = float(np.sum(s * t) / np.sum(t * t))
    if not _close(s, c * t):
        return ""
    if abs(c + 1) <= 1e-6:
        why = (
            "the penalty must be ≥ 0, with its minimum 0 at ρ̂ = ρ"
            if step == "penalty"
            else "descent would push ρ̂ away from ρ instead of towards it"
        )
        return f"It has the wrong sign everywhere (it is −{TITLES[step]}): {why}."
    words, note = _factor_words(c)
    if not note and c > 1:
        note = "if you multiplied by β, leave it out: the app weighs the penalty by β itself"
    return f"Right shape, but off by a constant factor of {words}" + (f": {note}." if note else ".")


def _swapped(step: Step, formula: Formula, t: np.ndarray, rho: np.ndarray, q: np.ndarray) -> str:
    with np.errstate(all="ignore"):
        exchanged = formula.numpy(q, rho)  # the student's formula with ρ and ρ̂ exchanged
    if np.all(np.isfinite(exchanged)) and _close(exchanged, t):
        extra = " KL is not symmetric: the target ρ comes first, KL(ρ‖ρ̂)." if step == "penalty" else ""
        return f"ρ and ρ̂ are swapped: with them exchanged it would be right.{extra}"
    return ""


def _other_step(step: Step, other: Step, s: np.ndarray, rho: np.ndarray, q: np.ndarray) -> str:
    if not _close(s, truth(other, rho, q)):
        return ""
    if step == "penalty":
        return "This is the derivative ∂KL/∂ρ̂ (step 2); step 1 asks for the penalty KL(ρ‖ρ̂) itself."
    return "This is the penalty KL(ρ‖ρ̂) itself; step 2 asks for its derivative with respect to ρ̂."


def _terms(step: Step, s: np.ndarray, rho: np.ndarray, q: np.ndarray) -> str:
    """Fit s ≈ a·first term + b·second term; name a missing term or a term with the wrong sign."""
    a_term, b_term = (np.broadcast_to(t, s.shape).ravel() for t in TERMS[step](rho, q))
    basis = np.stack([a_term, b_term], axis=1)
    (a, b), *_ = np.linalg.lstsq(basis, s.ravel(), rcond=None)
    if not _close(basis @ np.array([a, b]), s.ravel()):
        return ""
    first, second = TERM_TEXT[step]
    a_r, b_r = round(a, 4), round(b, 4)
    if (a_r, b_r) == (1, 0):
        return f"The {second} term is missing: {MISSING[step, 1]}."
    if (a_r, b_r) == (0, 1):
        return f"The {first} term is missing: {MISSING[step, 0]}."
    if (a_r, b_r) == (1, -1):
        return f"The {second} term has the wrong sign."
    if (a_r, b_r) == (-1, 1):
        return f"The {first} term has the wrong sign."
    (a_words, a_note), (b_words, b_note) = _factor_words(a), _factor_words(b)
    note = a_note or b_note
    return f"It is {a_words} × {first} + {b_words} × {second}; both terms should have weight 1" + (
        f": {note}." if note else "."
    )


def _shift(step: Step, s: np.ndarray, t: np.ndarray) -> str:
    """s − t constant in ρ̂ for each ρ: the right slope, an extra term in ρ alone."""
    d = s - t
    if not np.all(np.ptp(d, axis=1) <= FIT_TOL * max(float(np.max(np.abs(t))), 1.0)):
        return ""
    if step == "penalty":
        return (
            "It has the right slope in ρ̂ but an extra term in ρ alone (it is not 0 at ρ̂ = ρ). Its gradient, "
            "and so training, would be the same, but the penalty itself must be 0 at ρ̂ = ρ. "
            "A formula that drops the ρ inside the logs, −ρ log ρ̂ − (1−ρ) log(1−ρ̂), is the cross-entropy: "
            "KL plus the entropy of ρ."
        )
    return "It is off by a constant (for each ρ): the derivative must be 0 at ρ̂ = ρ."


def _regions(step: Step, s: np.ndarray, t: np.ndarray, rho: np.ndarray, q: np.ndarray) -> str:
    """Where it is right, wrong, or of the wrong sign, below ρ, at ρ̂ = ρ and above ρ, in words."""
    ok = np.abs(s - t) <= ATOL + RTOL * np.abs(t)
    flipped = (np.sign(s) != np.sign(t)) & (np.abs(t) > ATOL)
    below, at, above = q < rho, np.isclose(q, rho), q > rho

    def state(mask: np.ndarray) -> str:
        mask = np.broadcast_to(mask, s.shape)
        wrong = mask & ~ok
        if not np.any(wrong):
            return "right"
        if np.all(flipped[wrong]):
            return "wrong sign"
        if np.all(s[wrong] > t[wrong]):
            return "too large"
        return "too small" if np.all(s[wrong] < t[wrong]) else "wrong"

    parts = {"for ρ̂ < ρ": state(below), "at ρ̂ = ρ": state(at), "for ρ̂ > ρ": state(above)}
    worst = np.unravel_index(np.argmax(np.abs(s - t) / (ATOL + np.abs(t))), s.shape)
    example = f"At {_at(rho, q, worst)} it gives {s[worst]:.4g}; {TITLES[step]} is {t[worst]:.4g}."
    states = set(parts.values())
    if parts["at ρ̂ = ρ"] == "right" and parts["for ρ̂ < ρ"] != "right" and parts["for ρ̂ > ρ"] != "right":
        return (
            f"Right at ρ̂ = ρ only: {parts['for ρ̂ < ρ']} for ρ̂ < ρ, {parts['for ρ̂ > ρ']} for ρ̂ > ρ. {example}"
        )
    if len(states) == 1:
        return f"{states.pop().capitalize()} everywhere. {example}"
    words = ", ".join(f"{v} {k}" for k, v in parts.items())
    return f"{words[0].upper()}{words[1:]}. {example}"
