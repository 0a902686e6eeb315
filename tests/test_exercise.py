"""Theory's exercise (sae_core.analysis.exercise) and `sae exercise`: the safe parser, the check against the
KL penalty and its derivative written out here, the hint for each common mistake, and training with a typed
formula against the built-in penalty."""

from __future__ import annotations

import math
import time
from unittest import mock

import numpy as np
import pytest
import torch

from sae_core.analysis.exercise import check, formula, runs
from sae_core.cli.main import main
from sae_core.figures import exercise as figures_exercise
from sae_core.penalties import kl as kl_penalty

KL = "rho*log(rho/rho_hat) + (1-rho)*log((1-rho)/(1-rho_hat))"
SLOPE = "-rho/rho_hat + (1-rho)/(1-rho_hat)"


def _kl(rho: float, q: float) -> float:
    return rho * math.log(rho / q) + (1 - rho) * math.log((1 - rho) / (1 - q))


# ----- the parser ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        KL,
        "ρ*log(ρ/ρ̂) + (1−ρ)*log((1−ρ)/(1−ρ̂))",  # ρ̂ typed as ρ + combining circumflex U+0302
        "ρ·ln(ρ/ρ̂) + (1 − ρ)·ln((1 − ρ)/(1 − ρ̂))",
        "rho*(log(rho) - log(rho_hat)) + (1-rho)*(log(1-rho) - log(1-rho_hat))",
        "-rho*log(rho_hat/rho) - (1-rho)*log((1-rho_hat)/(1-rho))",
        "(1-rho)*log((1-rho)/(1-rho_hat)) + rho*log(rho/rho_hat)",
    ],
)
def test_equivalent_spellings_of_the_kl_penalty_are_accepted(text):
    result = check.check_text(text, "penalty")
    assert result.correct, result.hint
    assert result.verdict.startswith("Right") and result.hint == ""


@pytest.mark.parametrize("text", [SLOPE, "(1-ρ)/(1-ρ̂) - ρ/ρ̂", "(rho_hat - rho)/(rho_hat*(1 - rho_hat))"])
def test_equivalent_spellings_of_the_derivative_are_accepted(text):
    assert check.check_text(text, "derivative").correct


def test_the_formula_evaluates_like_the_written_out_kl_in_numpy_and_torch():
    f = formula.parse(KL)
    q = np.array([0.01, 0.3, 0.9])
    np.testing.assert_allclose(f.numpy(0.1, q), [_kl(0.1, x) for x in q], rtol=1e-12)
    t = torch.tensor(q, requires_grad=True)
    value = f.torch(0.1, t)
    np.testing.assert_allclose(value.detach().numpy(), [_kl(0.1, x) for x in q], rtol=1e-12)
    (grad,) = torch.autograd.grad(value.sum(), t)  # autograd of the typed formula is the true slope
    np.testing.assert_allclose(grad.numpy(), -0.1 / q + 0.9 / (1 - q), rtol=1e-10)


def test_a_formula_without_rho_hat_broadcasts_over_the_grid():
    assert formula.parse("2").numpy(np.ones((2, 1)), np.ones(3)).shape == (2, 3)
    assert formula.parse("rho").torch(0.1, torch.zeros(4)).shape == (4,)


ATTEMPTS = {
    "attribute": ("rho.__class__", "attribute access"),
    "dunder attribute chain": ("rho.__class__.__mro__", "attribute access"),
    "import": ("__import__('os')", "__import__() is not allowed"),
    "other call": ("open('x')", "open() is not allowed"),
    "call of a call": ("log(rho)(1)", "by name"),
    "eval": ("eval('1')", "eval() is not allowed"),
    "other name": ("x + rho", "unknown name 'x'"),
    "builtins": ("__builtins__", "unknown name"),
    "lambda": ("(lambda: 1)()", "by name"),
    "bare lambda": ("lambda: 1", "a lambda"),
    "list comprehension": ("[x for x in (1, 2)]", "a comprehension"),
    "generator": ("sum(x for x in (1, 2))", "sum() is not allowed"),
    "subscript": ("rho[0]", "indexing"),
    "string": ("'rho'", "only numbers"),
    "f-string": ("f'{rho}'", "text"),
    "walrus": ("(y := 1)", "assignment"),
    "comparison": ("rho < 1", "comparison"),
    "keyword argument": ("log(x=rho)", "exactly one argument"),
    "two arguments": ("log(rho, 10)", "exactly one argument"),
    "huge tower": ("9**9**9", "exponents are limited"),
    "huge exponent": ("rho**1e308", "too large"),
    "huge exponent of a sum": ("rho**(400*400)", "exponents are limited"),
    "huge literal": ("1" * 250, "too large"),
    "infinite literal": ("1e999", "too large"),
    "xor": ("rho^2", "write **"),
    "statement": ("import os", "not a valid expression"),
    "two statements": ("rho; rho", "not a valid expression"),
    "deep parentheses": ("(" * 10_000 + "rho" + ")" * 10_000, "too long"),
    "nested parentheses": ("(" * 100 + "rho" + ")" * 100, "nested too deeply"),
    "deep unary minus": ("-" * 250 + "rho", "nested too deeply"),
    "deep calls": ("exp(" * 40 + "rho" + ")" * 40, "nested too deeply"),
    "long input": ("rho+" * 2000 + "rho", "too long"),
    "many parts": ("*".join(["(1+1+1+1+1+1+1+1)"] * 16), "too big"),  # 288 characters, shallow
    "empty": ("   ", "empty"),
}


@pytest.mark.parametrize(("text", "message"), ATTEMPTS.values(), ids=ATTEMPTS.keys())
def test_anything_beyond_arithmetic_on_rho_and_rho_hat_is_refused_fast_and_nothing_runs(text, message):
    with (
        mock.patch("builtins.eval", side_effect=AssertionError("eval ran")),
        mock.patch("builtins.exec", side_effect=AssertionError("exec ran")),
        mock.patch("os.system", side_effect=AssertionError("a shell ran")),
        mock.patch("subprocess.Popen", side_effect=AssertionError("a process ran")),
        mock.patch("builtins.open", side_effect=AssertionError("open ran")),
    ):
        start = time.perf_counter()
        with pytest.raises(formula.FormulaError) as refused:
            check.check_text(text, "penalty")
        assert time.perf_counter() - start < 0.5
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)  # one line for the student
    assert isinstance(refused.value, ValueError)


def test_an_overflowing_formula_is_evaluated_to_inf_and_reported_not_finite():
    start = time.perf_counter()
    result = check.check_text("exp(exp(exp(1/rho_hat)))", "penalty")
    assert time.perf_counter() - start < 0.5
    assert not result.correct and "not finite for some ρ̂ in (0, 1)" in result.hint


# ----- the hints -------------------------------------------------------------------------------------------
MISTAKES = {
    "sign flip": ("penalty", f"-({KL})", "wrong sign everywhere"),
    "swapped": ("penalty", "rho_hat*log(rho_hat/rho) + (1-rho_hat)*log((1-rho_hat)/(1-rho))", "swapped"),
    "factor 2": ("penalty", f"2*({KL})", "constant factor of 2"),
    "beta included": ("penalty", f"3*({KL})", "leave it out"),
    "log base 10": ("penalty", KL.replace("log", "log10"), "1/ln 10"),
    "one log base 10": ("penalty", "rho*log10(rho/rho_hat) + (1-rho)*log((1-rho)/(1-rho_hat))", "log10"),
    "second term missing": ("penalty", "rho*log(rho/rho_hat)", "(1−ρ) log((1−ρ)/(1−ρ̂)) term is missing"),
    "first term missing": ("penalty", "(1-rho)*log((1-rho)/(1-rho_hat))", "ρ log(ρ/ρ̂) term is missing"),
    "second term sign": ("penalty", "rho*log(rho/rho_hat) - (1-rho)*log((1-rho)/(1-rho_hat))", "wrong sign"),
    "cross-entropy": ("penalty", "-rho*log(rho_hat) - (1-rho)*log(1-rho_hat)", "cross-entropy"),
    "the derivative for the penalty": ("penalty", SLOPE, "This is the derivative"),
    "not finite": ("penalty", "rho*log(rho/rho_hat) + (1-rho)*log((1-rho)/(rho_hat-1))", "not finite"),
    "constant": ("penalty", "rho", "does not change with ρ̂"),
    "quadratic": ("penalty", "(rho_hat-rho)**2", "Right at ρ̂ = ρ only"),
    "derivative sign": ("derivative", f"-({SLOPE})", "push ρ̂ away from ρ"),
    "derivative swapped": ("derivative", "-rho_hat/rho + (1-rho_hat)/(1-rho)", "swapped"),
    "derivative half": ("derivative", f"0.5*({SLOPE})", "constant factor of 0.5"),
    "derivative missing term": ("derivative", "-rho/rho_hat", "(1−ρ)/(1−ρ̂) term is missing"),
    "derivative second sign": ("derivative", "-rho/rho_hat - (1-rho)/(1-rho_hat)", "wrong sign"),
    "penalty for the derivative": ("derivative", KL, "This is the penalty"),
    "derivative shifted": ("derivative", f"{SLOPE} + 1", "off by a constant"),
    "wrong sign above": (
        "derivative",
        f"-abs({SLOPE})",
        "right for ρ̂ < ρ, right at ρ̂ = ρ, wrong sign for ρ̂ > ρ",
    ),
}


@pytest.mark.parametrize(("step", "text", "hint"), MISTAKES.values(), ids=MISTAKES.keys())
def test_each_common_mistake_gets_its_own_hint(step, text, hint):
    result = check.check_text(text, step)
    assert not result.correct
    assert result.verdict.startswith("Not yet")
    assert hint.lower() in result.hint.lower(), result.hint


def test_the_check_compares_with_the_written_out_kl_on_a_grid_of_rho_and_rho_hat():
    result = check.check_text(KL, "penalty")
    assert result.truth.shape == (check.RHOS.size, check.RHO_HATS.size) and result.truth.size >= 400
    i, j = 2, 40
    assert result.truth[i, j] == pytest.approx(_kl(result.rhos[i], result.rho_hats[j]), rel=1e-12)
    assert set(check.RHOS) <= set(result.rho_hats)  # ρ̂ = ρ itself is checked
    assert 0 < result.rho_hats.min() and result.rho_hats.max() < 1


def test_a_formula_just_outside_the_tolerance_is_refused():
    assert not check.check_text(f"({KL}) * (1 + 1e-4)", "penalty").correct
    assert check.check_text(f"({KL}) * (1 + 1e-9)", "penalty").correct


# ----- the figures -----------------------------------------------------------------------------------------
def test_attempt_figure_draws_the_students_curve_over_the_true_one_with_labelled_axes():
    result = check.check_text(f"2*({KL})", "penalty")
    fig = figures_exercise.attempt_figure(result)
    true, mine = fig.data
    np.testing.assert_allclose(true.y, [_kl(0.1, q) for q in true.x], rtol=1e-12)
    np.testing.assert_allclose(mine.y, 2 * np.asarray(true.y), rtol=1e-12)
    assert fig.layout.xaxis.title.text == "mean activation ρ̂"
    assert fig.layout.yaxis.title.text == "KL(ρ ‖ ρ̂)"
    assert "not yet right" in fig.layout.title.text


# ----- training with the typed formula ---------------------------------------------------------------------
def test_the_formula_term_is_the_kl_penalty_term_with_its_gradient():
    codes = torch.rand(50, 6, dtype=torch.float64, requires_grad=True)
    cfg = runs.run_config(steps=1).model
    mine = runs.formula_term(formula.parse("ρ*log(ρ/ρ̂) + (1−ρ)*log((1−ρ)/(1−ρ̂))"))(codes, cfg, None)
    builtin = kl_penalty.term(codes, cfg, None)
    assert mine.item() == pytest.approx(builtin.item(), rel=1e-12)
    (g_mine,) = torch.autograd.grad(mine, codes)
    (g_builtin,) = torch.autograd.grad(builtin, codes)
    torch.testing.assert_close(g_mine, g_builtin, rtol=1e-10, atol=1e-12)


def test_training_with_a_right_formula_gives_the_built_in_kl_runs_weights():
    steps = 40
    mine = runs.train(formula.parse("-rho*log(rho_hat/rho) - (1-rho)*log((1-rho_hat)/(1-rho))"), steps)
    builtin = runs.train(None, steps)
    assert runs.weight_difference(mine, builtin) < 1e-4  # float32 rounding of another spelling
    assert mine.losses["sparsity"] == pytest.approx(builtin.losses["sparsity"], rel=1e-4)
    wrong = runs.train(formula.parse(f"2*({KL})"), steps)  # twice the penalty: other weights
    assert runs.weight_difference(wrong, builtin) > 1e-2
    fig = figures_exercise.runs_figure(mine, builtin)
    assert [t.type for t in fig.data] == ["heatmap", "bar", "heatmap", "bar"]
    assert sum(fig.data[1].y) == 16 and "ρ̂" in fig.layout.xaxis3.title.text


# ----- sae exercise ----------------------------------------------------------------------------------------
def test_cli_exits_0_with_the_verdict_when_both_formulas_are_right(capsys):
    assert (
        main(["exercise", "--penalty", "ρ*log(ρ/ρ̂) + (1−ρ)*log((1−ρ)/(1−ρ̂))", f"--derivative={SLOPE}"]) == 0
    )
    out = capsys.readouterr().out
    assert "step 1, the penalty: Right" in out and "step 2, its derivative: Right" in out


def test_cli_exits_1_with_the_pages_hint_when_a_formula_is_wrong(capsys):
    text = "rho*log(rho/rho_hat)"
    assert main(["exercise", "--penalty", text]) == 1
    out = capsys.readouterr().out
    assert check.check_text(text, "penalty").hint in out and "Not yet" in out


@pytest.mark.parametrize("text", ["rho.__class__", "__import__('os').system('true')", "9**9**9"])
def test_cli_exits_2_with_one_line_when_the_parser_refuses(capsys, text):
    assert main(["exercise", "--penalty", text]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sae: error: --penalty: ")


def test_cli_asks_for_a_formula(capsys):
    assert main(["exercise"]) == 2
    assert "--penalty" in capsys.readouterr().err
