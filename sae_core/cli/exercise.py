"""`sae exercise`: the UFLDL exercise from the command line, the same check as the Theory page's.

    sae exercise --penalty "rho*log(rho/rho_hat) + (1-rho)*log((1-rho)/(1-rho_hat))"
    sae exercise --derivative "-rho/rho_hat + (1-rho)/(1-rho_hat)"
    sae exercise --penalty "..." --train      # then train with it beside the built-in KL

Exit status 0 when every formula given is right, 1 when one is not (with the page's hint), 2 when the
parser refuses one (one line saying what is not allowed; nothing of it runs). Registered by
sae_core.cli.main.
"""

from __future__ import annotations

import argparse

from sae_core.analysis.exercise import check, formula, runs
from sae_core.cli.flags import UsageError

EXIT_WRONG = 1
NAMES = {"rho": "rho (ρ)", "rho_hat": "rho_hat (ρ̂)"}


def add_parser(commands) -> argparse.ArgumentParser:
    """Add `exercise` to the `sae` subcommands."""
    names = " and ".join(NAMES.values())
    exercise = commands.add_parser(
        "exercise",
        help="check your own KL penalty and its derivative, as in the UFLDL exercise",
        description=(
            f"Type the sparsity penalty KL(ρ‖ρ̂) and its derivative ∂KL/∂ρ̂ as formulas in {names}, "
            f"with numbers, + - * / ** and {', '.join(formula.FUNCTIONS)}. Each is compared with the true "
            f"function at {check.RHOS.size} values of ρ and {check.RHO_HATS.size} of ρ̂ in (0, 1), "
            f"within {check.RTOL:g} relative + {check.ATOL:g} absolute."
        ),
        epilog="A formula that starts with a minus sign goes after =: --derivative=-rho/rho_hat+...",
    )
    exercise.add_argument("--penalty", metavar="FORMULA", help="step 1: KL(ρ‖ρ̂) in rho and rho_hat")
    exercise.add_argument("--derivative", metavar="FORMULA", help="step 2: ∂KL/∂ρ̂ in rho and rho_hat")
    exercise.add_argument(
        "--train",
        action="store_true",
        help=f"once the penalty is right, train the small bars run ({runs.STEPS} steps) with it and with "
        "the built-in KL, and print both runs' numbers",
    )
    exercise.set_defaults(run=cmd_exercise)
    return exercise


def cmd_exercise(args: argparse.Namespace) -> int:
    attempts = {"penalty": args.penalty, "derivative": args.derivative}
    if all(text is None for text in attempts.values()):
        raise UsageError("give --penalty FORMULA, --derivative FORMULA or both")
    parsed = {step: parse(step, text) for step, text in attempts.items() if text is not None}
    results = {step: check.check(f, step) for step, f in parsed.items()}  # all refused before any check
    for step, result in results.items():
        print(f"{check.STEP_LABELS[step]}: {result.verdict}")
        if result.hint:
            print(f"  hint: {result.hint}")
    penalty = results.get("penalty")
    if args.train:
        if penalty is None or not penalty.correct:
            print("--train: the penalty must be right first")
        else:
            print_runs(runs.train(penalty.formula), runs.train(None))
    return 0 if all(r.correct for r in results.values()) else EXIT_WRONG


def parse(step: str, text: str) -> formula.Formula:
    """The formula of --penalty or --derivative; a refusal names the flag."""
    try:
        return formula.parse(text)
    except formula.FormulaError as e:
        raise formula.FormulaError(f"--{step}: {e}") from None


def print_runs(mine: runs.ExerciseRun, builtin: runs.ExerciseRun) -> None:
    """Both runs' final numbers in two columns, and how far apart their filters ended."""
    print(f"\nthe bars run, {runs.STEPS} steps, ρ = {builtin.rho:g}, β = {builtin.beta:g}, same seed:")
    print(f"{'':<30} {'your formula':>14} {'built-in KL':>14}")
    theirs = builtin.numbers()
    for name, value in mine.numbers().items():
        print(f"{name:<30} {value:>14.6g} {theirs[name]:>14.6g}")
    print(f"largest filter difference: {runs.weight_difference(mine, builtin):.2e} of the largest weight")
    if mine.diverged:
        print(f"your run stopped early: {mine.diverged}")
