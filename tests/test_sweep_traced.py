"""The traced sweep step (sae_core.sweep.traced): the eager step's weights, and when a block steps eagerly."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from sae_core.config.run import RunConfig
from sae_core.models.registry import VARIANTS
from sae_core.sweep import traced
from sae_core.sweep.trainer import SweepSpec, SweepTrainer
from sae_core.train.trainer import Trainer

TINY = {"hidden": 6, "batch_size": 64, "steps": 40, "device": "cpu"}

BATCHINGS = {
    "shared-batch": ({}, None, ()),
    "seeds-and-decay": ({"weight_decay": 0.01}, "seed", (0, 1)),
}
"""One seed (the batch and the noise shared by the cells, λ a plain 0) and two seeds with weight decay
(a batch and a noise draw per cell, λ a tensor): the two batchings a trace bakes in."""


@pytest.fixture(autouse=True)
def trace_short_runs(monkeypatch):
    """These runs are far shorter than traced.MIN_STEPS; trace them anyway."""
    monkeypatch.setattr(traced, "MIN_STEPS", 0)
    monkeypatch.setattr(traced, "MIN_STEPS_COLD", 0)


def spec_of(changes: dict, axis=None, values=()) -> SweepSpec:
    """A grid over ρ and β where the objective uses them (several cells in one block either way)."""
    base = RunConfig().replace(**{**TINY, **changes})
    penalty = base.model.penalty_spec
    rhos = (0.05, 0.2) if penalty.uses_rho else (0.05,)
    betas = (0.5, 3.0) if penalty.uses_beta else (3.0,)
    return SweepSpec(base, rhos, betas, axis, values)


def trained(spec: SweepSpec, dataset, trace: bool) -> SweepTrainer:
    sweeper = SweepTrainer(spec, dataset)
    for block in sweeper.blocks:
        block.trace = trace
    assert sweeper.advance() == "done"
    return sweeper


def graphs(sweeper: SweepTrainer) -> list:
    return [g for block in sweeper.blocks for g in block.traced.graphs.values() if g is not None]


def assert_same_cells(a: SweepTrainer, b: SweepTrainer) -> None:
    """Bit for bit: the trace replays the eager step's own operations in the same order."""
    for i in range(len(a.spec.cells())):
        got, expected = a.cell_state(i), b.cell_state(i)
        assert set(got) == set(expected)
        for key, value in expected.items():
            assert torch.equal(got[key], value), (i, key)
    for x, y in zip(a.snapshot().cells, b.snapshot().cells, strict=True):
        for term, values in y.history.items():
            np.testing.assert_array_equal(x.history[term], values)


@pytest.mark.parametrize("batching", list(BATCHINGS))
@pytest.mark.parametrize("variant", VARIANTS)
def test_the_traced_step_gives_every_variant_the_weights_of_the_eager_step(tiny_digits, variant, batching):
    changes, axis, values = BATCHINGS[batching]
    spec = spec_of({"variant": variant, **changes}, axis, values)
    fast, reference = trained(spec, tiny_digits, True), trained(spec, tiny_digits, False)
    assert [b.traced.failures for b in fast.blocks] == [{}] * len(fast.blocks)
    assert len(graphs(fast)) == len(fast.blocks) and graphs(reference) == []
    assert_same_cells(fast, reference)


def test_a_ksparse_block_steps_eagerly_while_k_moves_then_traces_the_final_k(tiny_digits, monkeypatch):
    spec = spec_of({"variant": "ksparse", "k": 2, "k_start": 5, "k_anneal": 0.5}, "seed", (0, 1))
    calls, make_fx = [], traced.make_fx
    monkeypatch.setattr(traced, "make_fx", lambda f, **kw: calls.append(kw) or make_fx(f, **kw))
    sweeper = trained(spec, tiny_digits, True)
    (block,) = sweeper.blocks
    (key,) = block.traced.graphs
    assert ("", "k", 2) in key[-1] and len(calls) == 1  # one trace, of k = 2, after the schedule ended
    for i, cfg in enumerate(spec.cells()):
        trainer = Trainer(cfg, tiny_digits, device="cpu")
        trainer.advance()
        for name, value in trainer.model.state_dict().items():
            torch.testing.assert_close(
                sweeper.cell_state(i)[name], value, atol=1e-5, rtol=0, msg=f"{i} {name}"
            )
    assert_same_cells(sweeper, trained(spec, tiny_digits, False))


def test_a_run_shorter_than_min_steps_is_not_traced(tiny_digits, monkeypatch):
    monkeypatch.setattr(traced, "MIN_STEPS", TINY["steps"] + 1)
    monkeypatch.setattr(traced, "MIN_STEPS_COLD", TINY["steps"] + 1)
    assert graphs(trained(spec_of({}), tiny_digits, True)) == []


def test_a_model_that_declares_itself_untraceable_steps_eagerly(tiny_digits):
    spec = spec_of({})
    sweeper = SweepTrainer(spec, tiny_digits)
    sweeper.blocks[0].model.traceable = False
    sweeper.advance()
    assert graphs(sweeper) == []
    assert_same_cells(sweeper, trained(spec, tiny_digits, False))


def test_a_branch_on_tensor_values_is_not_baked_into_a_trace(tiny_digits):
    """A forward pass that branches on its (shared) batch's values: the trace must refuse it, not record the
    branch the first batch took; the block then steps eagerly and ends where the eager step ends."""
    spec = spec_of({})
    results = []
    for trace in (True, False):
        sweeper = SweepTrainer(spec, tiny_digits)
        block = sweeper.blocks[0]
        block.trace = trace
        encode = block.model.encode
        block.model.encode = lambda x, encode=encode: encode(x) if bool(x.mean() > 0.3) else 0.5 * encode(x)
        assert sweeper.advance() == "done"
        results.append(sweeper)
    fast, reference = results
    (why,) = fast.blocks[0].traced.failures.values()
    assert graphs(fast) == [] and "data" in why.lower()
    assert_same_cells(fast, reference)


def test_a_diverging_cell_is_frozen_through_the_traced_step(tiny_digits):
    spec = SweepSpec(RunConfig().replace(**{**TINY, "steps": 30}), (0.05,), (3.0, 1e39))  # KL term inf
    fast, reference = trained(spec, tiny_digits, True), trained(spec, tiny_digits, False)
    assert len(graphs(fast)) == 1
    assert fast.snapshot().cells[1].status == "diverged" and fast.snapshot().cells[0].status == "done"
    assert_same_cells(fast, reference)


def test_a_process_without_torchs_compiler_asks_a_longer_rest_to_trace(monkeypatch):
    """Tracing loads torch's compiler (torch._dynamo) the first time in a process: there a trace must repay
    that too, so it waits for MIN_STEPS_COLD remaining steps; once it is loaded, MIN_STEPS."""
    monkeypatch.setattr(traced, "MIN_STEPS", 500)  # the autouse fixture set both to 0
    monkeypatch.setattr(traced, "MIN_STEPS_COLD", 3000)
    monkeypatch.delitem(sys.modules, traced.COMPILER_MODULE, raising=False)
    assert traced.min_steps() == traced.MIN_STEPS_COLD
    monkeypatch.setitem(sys.modules, traced.COMPILER_MODULE, types.ModuleType(traced.COMPILER_MODULE))
    assert traced.min_steps() == traced.MIN_STEPS
