"""A block's step traced once: the cells' objective terms and their gradients as one recorded graph.

`BlockTrainer.step`'s eager path runs the vmapped objective (`functional_call` under `vmap`) and
autograd's `.backward()` every step. On small models most of that step is Python and dispatch: vmap's
batching rules, building the autograd graph, walking it back. Here the same function, "the vmapped
objective terms and `torch.autograd.grad` of the summed totals with respect to the stacked parameters",
is recorded once with `make_fx` (torch.fx.experimental.proxy_tensor) into a GraphModule of the aten
operations it ran, forward and backward both; each step then replays that graph under `torch.no_grad()`.
The trace is of the model's and the objective's own code, so there is no second copy of any maths.

What a trace bakes in, and so what its key holds:
- the batching of its inputs (whether the batch and the noise are per cell or shared) and whether λ is
  a tensor (a block where no cell decays its weights passes a plain 0);
- every plain Python value the model's modules hold (`model_state`): k-sparse's scheduled k, the
  corruption kind, `training`. A schedule's state changes during a run, and a trace costs 0.1-0.3 s
  against a saving of about half a millisecond a step (64 → 25), so a state is traced only when it is
  the one the schedule ends in; while the schedule still moves, the step stays eager.
  Tracing every k instead was no faster: 8 cells of 64 → 25, k 25 → 5 over the first 1,000 of 2,000
  steps (21 values of k) trained in 8.7-9.9 s with a trace per k, 9.0 s with one trace of the final k
  and 10.1-10.7 s eagerly throughout (two rounds, 2026-12-07, a loaded 2-core machine).

Tracing runs on fake tensors (`tracing_mode="fake"`: shapes only, no arithmetic, so a trace of a large
block costs no real step). Reading a tensor's value while tracing (`if x.max() > 0`, `.item()`) raises
rather than baking in the branch the first batch took. Whatever raises, and a model whose `traceable` is
False, keeps the eager path for that key.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.fx.experimental.proxy_tensor import make_fx

MAX_TRACES = 4
"""Traces kept per block at most (one per key); a block that would need more steps eagerly for the rest."""
MIN_STEPS = 500
"""A trace is made only when at least this many steps remain (or the run has no length): on 64 → 25 × 16
cells a trace took 0.13-0.3 s and saved 0.3-0.9 ms a step (2026-12-07); a shorter rest does not repay it."""
MIN_STEPS_COLD = 3000
"""The same, in a process that has not loaded torch's compiler yet (a fresh `sae sweep`): make_fx imports
torch._inductor's config, and with it torch._dynamo and sympy, 1.4-2.1 s on a 2-core machine. A 64 → 25
block of 16 cells saved 0.5-0.6 ms a step traced (2.87 → 2.37 ms at one thread, 2.58 → 1.98 at two,
2026-12-07), so that import and the trace are repaid after about 3,000 steps; a 2,000-step sweep of it
ended sooner eagerly. The app's server has the compiler loaded already (its first optimizer brings it)."""
COMPILER_MODULE = "torch._dynamo"

_PLAIN = (bool, int, float, str, type(None))
_TRACING = threading.Lock()
"""make_fx keeps its tracer in a module global: the Explore page's sweeps (one thread each) trace in turn."""


def min_steps() -> int:
    """Steps that must remain for a trace to repay itself here: MIN_STEPS once torch's compiler is loaded
    in this process, else MIN_STEPS_COLD."""
    return MIN_STEPS if COMPILER_MODULE in sys.modules else MIN_STEPS_COLD


def model_state(model: nn.Module) -> tuple:
    """The plain Python values held by the model and its submodules (name, attribute, value), sorted: what a
    trace of its forward pass may have read as a constant."""
    found = []
    for prefix, module in model.named_modules():
        for name, value in vars(module).items():
            if isinstance(value, _PLAIN) or (
                isinstance(value, tuple) and all(isinstance(v, _PLAIN) for v in value)
            ):
                found.append((prefix, name, value))
    return tuple(sorted(found, key=lambda item: (item[0], item[1])))


class TracedStep:
    """The traced joint step of one block, one GraphModule per key.

    objective(x_dim, noise_dim) -> the block's vmapped objective (params, buffers, x, noise, rho, beta, lam)
    -> [G, T] terms, as `BlockTrainer._objective` gives it."""

    def __init__(self, model: nn.Module, objective: Callable[[Any, Any], Callable]) -> None:
        self.model, self.objective = model, objective
        self.graphs: dict[tuple, Callable | None] = {}
        """Per key: the traced step, or None where tracing failed (that key steps eagerly)."""
        self.failures: dict[tuple, str] = {}
        """Per key that failed: why (the exception's type and message), for tests and for whoever asks."""
        self._settled: dict[int, tuple] = {}
        self._state: tuple | None = None

    def set_step_(self, step: int, total_steps: int) -> tuple:
        """Set the model's schedule for `step` of `total_steps` (as the Trainer sets its model's) and return
        its `model_state`. The first call for a run length also records the state the schedule ends in.
        The state is read again only when the model's `set_step_` says that something changed."""
        if total_steps not in self._settled:
            self.model.set_step_(max(total_steps - 1, 0), total_steps)
            self._settled[total_steps] = model_state(self.model)
            self._state = None
        if self.model.set_step_(step, total_steps) or self._state is None:
            self._state = model_state(self.model)
        return self._state

    def graph(self, key: tuple, state: tuple, step: int, total_steps: int, inputs: tuple) -> Callable | None:
        """The traced step for key (batching) and state (what `set_step_` returned), traced on first use;
        None: step eagerly (not traceable, still scheduling, too few steps left, over MAX_TRACES, or
        tracing failed)."""
        if not self.model.traceable:
            return None
        full = (*key, state)
        if full not in self.graphs:
            short = 0 < total_steps - step < min_steps()
            if short or state != self._settled[total_steps] or len(self.graphs) >= MAX_TRACES:
                return None
            self.graphs[full] = self._trace(full, key, inputs)
        return self.graphs[full]

    def _trace(self, full: tuple, key: tuple, inputs: tuple) -> Callable | None:
        x_dim, noise_dim, _ = key
        objective = self.objective(x_dim, noise_dim)

        def joint(params, buffers, x, noise, rho, beta, lam):
            terms = objective(params, buffers, x, noise, rho, beta, lam)
            grads = torch.autograd.grad(terms[:, -1].sum(), list(params.values()))
            return terms.detach(), grads

        try:
            with _TRACING:
                return make_fx(joint, tracing_mode="fake")(*inputs)
        except Exception as err:  # noqa: BLE001 - any failure to trace keeps the eager path, the reference
            self.failures[full] = f"{type(err).__name__}: {err}"
            return None
