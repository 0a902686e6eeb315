"""A sweep trained in the background (SweepJob): the same weights as the sweep stepped by hand, pause and
resume that change nothing, one queue slot for the whole grid, and a release that lets go."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from sae_core.config.run import RunConfig
from sae_core.serve.jobs import TrainingJob
from sae_core.serve.scheduler import TrainingQueue
from sae_core.serve.sweep_job import RemoteSweepJob, SweepJob
from sae_core.sweep.trainer import SweepSpec, SweepTrainer
from sae_core.train.trainer import Trainer

BASE = RunConfig().replace(hidden=6, batch_size=64, steps=120, device="cpu", seed=3)
SPEC = SweepSpec(BASE, rhos=(0.05, 0.2), betas=(0.0, 3.0), axis="hidden", axis_values=(4, 6))


def wait_for(condition, timeout_s: float = 60.0, what: str = "the sweep") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)  # polling with a deadline


@pytest.mark.slow
def test_a_background_sweep_ends_with_the_weights_of_the_sweep_stepped_by_hand(tiny_digits):
    job = SweepJob(SPEC, tiny_digits, snapshot_interval=0.05)
    job.start()
    wait_for(lambda: not job.active)
    snap = job.latest()
    assert snap.status == "done" and snap.step == BASE.train.steps == job.step_count
    by_hand = SweepTrainer(SPEC, tiny_digits, "cpu")
    by_hand.advance()
    for i in range(len(SPEC.cells())):
        state, cfg, step = job.cell_state(i)
        assert cfg == SPEC.cells()[i] and step == BASE.train.steps
        for name, value in by_hand.cell_state(i).items():
            torch.testing.assert_close(state[name], value, rtol=0, atol=0)
    assert [c.metrics["recon_error"] for c in snap.cells] == pytest.approx(
        [c.metrics["recon_error"] for c in by_hand.snapshot().cells]
    )


@pytest.mark.slow
def test_pausing_and_resuming_changes_nothing_and_a_cell_opens_as_its_own_trainer(tiny_digits):
    job = SweepJob(SPEC, tiny_digits, snapshot_interval=0.01)
    job.start()
    wait_for(lambda: job.latest().step > 0, what="a first snapshot")
    job.pause()
    paused_at = job.step_count
    assert job.latest().status == "paused" and 0 < paused_at < BASE.train.steps
    assert job.step_count == paused_at  # nothing trains while paused
    job.start()
    wait_for(lambda: not job.active)
    cell = 3  # hidden 4, rho 0.2, beta 3
    state, cfg, step = job.cell_state(cell)
    alone = Trainer(cfg, tiny_digits, device="cpu")
    alone.advance()
    for name, value in alone.model.state_dict().items():
        torch.testing.assert_close(state[name], value, rtol=1e-5, atol=1e-6)
    # Opened on Train: a Trainer started from the cell's weights at its step goes on from there.
    opened = Trainer(
        cfg.replace(steps=step + 10), tiny_digits, device="cpu", initial_state=state, start_step=step
    )
    assert opened.step_count == step
    opened.advance()
    assert opened.step_count == step + 10


def test_the_whole_grid_holds_one_training_slot(tiny_digits):
    queue = TrainingQueue(slots=1, per_owner=2)
    sweep = SweepJob(
        SPEC.__class__(BASE.replace(steps=0), (0.1,), (1.0, 3.0)), tiny_digits, queue=queue, owner="a"
    )
    sweep.start()
    assert sweep.status == "running"
    single = TrainingJob(BASE, tiny_digits, queue=queue, owner="b")
    single.start()
    assert single.status == "queued" and single.queue_place() == 1
    sweep.stop()  # the slot passes to the waiting run
    wait_for(lambda: single.running, what="the queued run to start")
    single.stop()
    assert sweep.latest().status == "stopped"


def test_a_released_sweep_keeps_its_last_picture_and_refuses_its_weights(tiny_digits):
    job = SweepJob(SPEC, tiny_digits)
    job.step_once()
    job.release()
    snap = job.latest()
    assert snap.status == "stopped" and "Released" in snap.message and snap.step == 1
    assert len(snap.cells) == len(SPEC.cells())
    with pytest.raises(RuntimeError, match="released"):
        job.cell_state(0)
    with pytest.raises(ValueError, match="fixed once it is built"):
        job.set_config(BASE)


@pytest.mark.slow
def test_a_remote_sweep_fills_in_block_by_block_with_the_cells_of_the_local_sweep(tiny_digits):
    """RemoteSweepJob over the "local" backend (the Ray one is in tests/test_sweep_ray.py)."""
    job = RemoteSweepJob(SPEC, tiny_digits, backend="local")
    assert job.latest().cells == () and job.latest().step == 0
    job.start()
    wait_for(lambda: not job.active)
    snap = job.latest()
    assert job.status == snap.status == "done" and snap.step == BASE.train.steps
    by_hand = SweepTrainer(SPEC, tiny_digits, "cpu")
    by_hand.advance()
    for i in range(len(SPEC.cells())):
        state, cfg, step = job.cell_state(i)
        assert cfg == SPEC.cells()[i] and step == BASE.train.steps
        for name, value in by_hand.cell_state(i).items():
            torch.testing.assert_close(state[name], value, rtol=0, atol=0)


def test_a_stopped_remote_sweep_keeps_the_blocks_that_finished(tiny_digits, monkeypatch):
    from sae_core.sweep import run as sweep_run

    first_done = threading.Event()
    go_on = threading.Event()
    real = sweep_run.train_block

    def slow_second_block(spec, block, dataset, **kwargs):
        if block == 1:
            first_done.set()
            go_on.wait(30)  # held until the test has pressed Stop
        return real(spec, block, dataset, **kwargs)

    monkeypatch.setattr(sweep_run, "train_block", slow_second_block)
    job = RemoteSweepJob(SPEC, tiny_digits, backend="local")
    job.start()
    assert first_done.wait(30)
    job.stop()
    assert job.status == "stopped"
    go_on.set()  # the block that was training comes back after the Stop: it is not taken
    wait_for(lambda: not job.running, what="the sweep's thread to end")
    snap = job.latest()
    assert job.status == "stopped" and "kept" in snap.message
    assert sorted(c.index for c in snap.cells) == list(SPEC.blocks()[0])
    job.cell_state(SPEC.blocks()[0][0])
    with pytest.raises(RuntimeError, match="not finished"):
        job.cell_state(SPEC.blocks()[1][0])


def test_a_failing_backend_is_a_one_line_message(tiny_digits, monkeypatch):
    from sae_core.sweep import run as sweep_run

    def broken(*args, **kwargs):
        raise ConnectionError("could not reach RAY_ADDRESS=10.0.0.9:6379\nlong trace")

    monkeypatch.setitem(sweep_run.BACKENDS, "local", broken)
    job = RemoteSweepJob(SPEC, tiny_digits, backend="local")
    job._run = broken
    job.start()
    wait_for(lambda: not job.active)
    assert job.status == "failed"
    assert job.latest().message == "The local backend failed: could not reach RAY_ADDRESS=10.0.0.9:6379"
