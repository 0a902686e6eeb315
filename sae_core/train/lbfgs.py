"""One L-BFGS iteration per trainer step, without evaluating the objective twice at the same point.

`torch.optim.LBFGS.step(closure)` starts every call by evaluating the closure at the current weights,
to get the loss and gradient its direction needs. Called with `max_iter=1` once per trainer step, that
evaluation repeats the last one of the previous call's line search, which ended at these very weights:
400 iterations cost about 800 evaluations instead of the ~416 of one `max_iter=400` call.

`LBFGSStepper` keeps the last evaluation (its weights, gradients and loss terms) and, at the next call,
answers the opening evaluation from it when its weights equal the current ones bit for bit (the line
search moves the weights to x + t·d with the same operation it evaluated them with). So a run of N steps
follows the trajectory of one `max_iter=N` call and does the evaluations that call does, and each step
hands back the loss terms at the weights *after* it. Memory: one copy of the weights and gradients.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

Objective = Callable[[], dict[str, torch.Tensor]]
"""No-argument function returning the objective's named terms, "total" among them, with their graph."""


@dataclass(frozen=True)
class Evaluation:
    """The objective at one point: flat weights [P], the gradient of each parameter, detached terms."""

    weights: torch.Tensor
    grads: tuple[torch.Tensor | None, ...]
    terms: dict[str, torch.Tensor]

    def at(self, weights: torch.Tensor) -> bool:
        """Whether this evaluation was made at exactly these flat weights."""
        return torch.equal(self.weights, weights)


class LBFGSStepper:
    """Drives a `torch.optim.LBFGS` one iteration per `step`, reusing the previous step's last evaluation.

    Call `forget()` when the objective changes without the weights changing (a live change of ρ, β, λ):
    the next step then evaluates afresh, as a first step does.
    """

    def __init__(self, optimizer: torch.optim.LBFGS) -> None:
        self.optimizer = optimizer
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.evaluations = 0
        """Objective evaluations (forward and backward passes) done so far, line searches included."""
        self._last: Evaluation | None = None

    def forget(self) -> None:
        """Drop the cached evaluation: the objective has changed."""
        self._last = None

    def _flat_weights(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.params])

    def _evaluate(self, objective: Objective) -> Evaluation:
        self.optimizer.zero_grad(set_to_none=True)
        terms = objective()
        terms["total"].backward()
        self.evaluations += 1
        grads = tuple(None if p.grad is None else p.grad.detach().clone() for p in self.params)
        detached = {name: value.detach() for name, value in terms.items()}
        return Evaluation(self._flat_weights(), grads, detached)

    def _reuse(self, evaluation: Evaluation) -> None:
        """Put an evaluation's gradients back where L-BFGS reads them (p.grad)."""
        for p, g in zip(self.params, evaluation.grads, strict=True):
            p.grad = None if g is None else g.clone()

    def step(self, objective: Objective) -> dict[str, torch.Tensor]:
        """One L-BFGS iteration (direction, strong-Wolfe line search). Returns the detached loss terms
        at the weights after the step."""
        opening = True

        def closure() -> torch.Tensor:
            nonlocal opening
            cached = self._last if opening else None
            opening = False
            if cached is not None and cached.at(self._flat_weights()):
                self._reuse(cached)
                return cached.terms["total"]
            self._last = self._evaluate(objective)
            return self._last.terms["total"]

        try:
            self.optimizer.step(closure)
        except RuntimeError as err:
            # The line search's step t·lr is past float32's range (torch: "value cannot be converted to
            # type float without overflow"): the objective there is infinite. Said as such, the trainer
            # calls it a divergence and restores the last good weights, as for any other blow-up.
            if "overflow" not in str(err) or self._last is None:
                raise
            terms = self._last.terms
            self._last = None
            return {**terms, "total": torch.full_like(terms["total"], math.inf)}
        # The line search returns the best point of its bracket, which is nearly always the last one it
        # evaluated (every step of 400-iteration runs on patches and digits); when it is not, evaluate
        # there once more rather than keep every evaluation of the search.
        if self._last is None or not self._last.at(self._flat_weights()):
            self._last = self._evaluate(objective)
        return self._last.terms
