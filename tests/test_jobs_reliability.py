"""TrainingJob under failure and concurrency: a training thread that raises, and every control at once.

A job whose thread raises must say "failed" with the error, give its slot back at once and start again;
pause, stop, a slot's grant and a crash racing each other must never leave a job training without a slot,
a slot held by a job that does not train, or a thread nobody can stop.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import pytest

from sae_core.config.run import RunConfig
from sae_core.serve.jobs import BusyError, TrainingJob
from sae_core.serve.scheduler import TrainingQueue
from sae_core.train.trainer import Trainer

DEADLINE_S = 20.0


def wait_until(condition: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S) -> None:
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.002)


def job_config(**flat) -> RunConfig:
    base = {"hidden": 4, "steps": 1_000_000, "batch_size": 16, "device": "cpu"}
    return RunConfig.from_flat({**base, **flat})


class FaultyTrainer(Trainer):
    """A Trainer whose step raises while `fail` is set, and that records any step taken by a job that
    holds no training slot (`queue.place(job) != 0`): the invariant the queue exists for."""

    def __init__(self, *args, queue: TrainingQueue | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fail = threading.Event()
        self.queue = queue
        self.job: TrainingJob | None = None
        self.unslotted: list[int] = []
        self.slotted_steps = True  # False while the test calls step_once (a step on the caller's thread)

    def step(self) -> None:
        if self.queue is not None and self.job is not None and self.slotted_steps:
            if self.queue.place(self.job) != 0:
                self.unslotted.append((self.step_count, self.queue.place(self.job), self.job.status))
        if self.fail.is_set():
            raise RuntimeError("simulated fault in the training step")
        super().step()


def make_faulty_job(dataset, queue: TrainingQueue | None = None, owner: str = "", **kwargs) -> TrainingJob:
    trainer = FaultyTrainer(job_config(), dataset, device="cpu", queue=queue)
    job = TrainingJob(
        trainer.config,
        dataset,
        trainer=trainer,
        queue=queue,
        owner=owner,
        **{"snapshot_interval": 0.005, "first_snapshot_s": 0.002, "idle_timeout": 1e9, **kwargs},
    )
    trainer.job = job
    return job


def training_threads() -> int:
    return sum(t.name == "sae-training" and t.is_alive() for t in threading.enumerate())


@pytest.fixture
def jobs():
    made: list[TrainingJob] = []
    yield made
    for job in made:
        job.stop()
        assert job._thread is None or not job._thread.is_alive()


def test_a_job_whose_thread_raises_fails_loudly_and_gives_its_slot_back(tiny_digits, jobs):
    queue = TrainingQueue(1, per_owner=1)
    crashing = make_faulty_job(tiny_digits, queue, owner="a")
    waiting = make_faulty_job(tiny_digits, queue, owner="b")
    jobs += [crashing, waiting]
    crashing.start()
    wait_until(lambda: crashing.step_count > 0, "the first job trains")
    waiting.start()
    assert waiting.status == "queued" and waiting.queue_place() == 1
    crashing.trainer.fail.set()
    # The failure is said at once, with the error, and the slot goes to the next in line.
    wait_until(lambda: crashing.latest().status == "failed", "the crashed job says it failed")
    snap = crashing.latest()
    assert snap.status == "failed" and "simulated fault" in snap.message and "RuntimeError" in snap.message
    assert not crashing.running and not crashing.active
    wait_until(lambda: waiting.running, "the waiting job gets the slot")
    assert queue.place(crashing) is None and queue.counts() == (1, 0)
    waiting.stop()
    assert queue.counts() == (0, 0)
    # Startable again: a new thread trains on from the same model once the fault is gone.
    held = crashing.step_count
    crashing.trainer.fail.clear()
    crashing.start()
    assert crashing.status == "running" and crashing.latest().message is None
    wait_until(lambda: crashing.step_count > held + 3, "the failed job trains again")
    crashing.pause()
    assert crashing.status == "paused" and queue.counts() == (0, 0)
    assert crashing.trainer.unslotted == []


def test_a_crash_in_step_once_fails_the_job_instead_of_raising(tiny_digits, jobs):
    job = make_faulty_job(tiny_digits)
    jobs.append(job)
    job.trainer.fail.set()
    snap = job.step_once()
    assert job.status == snap.status == "failed" and "simulated fault" in snap.message
    job.trainer.fail.clear()
    assert job.step_once().step == 1 and job.status == "paused"


def test_a_crash_while_publishing_still_fails_the_job(tiny_digits, jobs):
    queue = TrainingQueue(1)
    job = make_faulty_job(tiny_digits, queue, owner="a")
    jobs.append(job)
    job.start()
    wait_until(lambda: job.step_count > 0, "training")

    def broken(*args, **kwargs):
        raise MemoryError("no room for the snapshot")

    job.trainer.snapshot = broken
    wait_until(lambda: job.latest().status == "failed", "the job fails")
    assert "MemoryError" in job.latest().message and queue.counts() == (0, 0)
    wait_until(lambda: job._thread is None, "the thread ends")


def test_pause_stop_grant_and_crash_from_several_threads_keep_the_queue_consistent(tiny_digits, jobs):
    """Four jobs of three browsers on two slots; threads press Train, Pause and Stop at random while faults
    come and go. Throughout, no job steps without a slot; at the end every slot is free and no thread is
    left. Before every state change was under the job's lock, a queued job paused while it was being
    granted a slot trained on without one (and kept the thread after its slot was given away)."""
    queue = TrainingQueue(2, per_owner=2)
    owners = ["a", "a", "b", "c"]
    made = [make_faulty_job(tiny_digits, queue, owner=o) for o in owners]
    jobs += made
    before = training_threads()
    stop_at = time.monotonic() + 3.0
    errors: list[BaseException] = []

    def press(seed: int) -> None:
        rng = random.Random(seed)
        try:
            while time.monotonic() < stop_at:
                job = rng.choice(made)
                action = rng.random()
                if action < 0.45:
                    try:
                        job.start()
                    except BusyError:
                        pass
                elif action < 0.8:
                    job.pause()
                elif action < 0.9:
                    job.stop()
                else:  # a fault that comes and goes: the job crashes if it steps meanwhile
                    job.trainer.fail.set()
                    time.sleep(rng.random() * 0.003)
                    job.trainer.fail.clear()
                time.sleep(rng.random() * 0.002)
        except BaseException as err:  # noqa: BLE001 - reported below, with the thread's failure
            errors.append(err)

    threads = [threading.Thread(target=press, args=(seed,)) for seed in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    # (step, place in the queue, status) of each step taken without a slot
    assert [j.trainer.unslotted for j in made] == [[]] * len(made), "a job stepped without a slot"
    for job in made:
        assert job.status in ("ready", "running", "paused", "stopped", "queued", "failed", "diverged")
        # A job that says it trains holds a slot (or waits for one); one that does not, holds nothing.
        place = queue.place(job)
        if job.status == "running":
            assert place == 0 and job.running
        elif job.status == "queued":
            assert place and place > 0, (job.status, place)
        else:
            assert place is None and not job.running, (job.status, place)
    for job in made:
        job.stop()
    assert queue.counts() == (0, 0)
    wait_until(lambda: training_threads() == before, "every training thread ends")
    for job in made:  # and each can train again
        job.trainer.fail.clear()
    made[0].start()
    wait_until(lambda: made[0].running and made[0].step_count > 0, "a job trains again")
    made[0].stop()


# ----- wall-clock rate and ETA ------------------------------------------------------------------------------


class FakeClock:
    """A monotonic clock that moves only when the (synthetic) work moves it."""

    def __init__(self) -> None:
        self.t = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.t

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.t += seconds


STEP_S = 0.001
"""Synthetic time of one step inside the trainer's section."""
STALL_S = 0.25
"""Synthetic time of each snapshot: the part of a loaded server's running time outside the sections
(waiting for a core, drawing the snapshot), which the section timer never saw."""


class LoadedTrainer(Trainer):
    def __init__(self, *args, clock: FakeClock, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.clock = clock

    def step(self) -> None:
        self.clock.advance(STEP_S)
        super().step()

    def snapshot(self, *args, **kwargs):
        self.clock.advance(STALL_S)
        return super().snapshot(*args, **kwargs)


def test_samples_per_second_and_eta_follow_the_wall_clock_of_the_running_job(tiny_digits, jobs):
    clock = FakeClock()
    trainer = LoadedTrainer(job_config(steps=100_000), tiny_digits, device="cpu", clock=clock)
    job = TrainingJob(
        trainer.config, tiny_digits, trainer=trainer, clock=clock, snapshot_interval=0.005, idle_timeout=1e9
    )
    jobs.append(job)
    start = clock()  # the job's own first snapshot (before any start) is not running time
    job.start()
    wait_until(lambda: job.step_count >= 40, "forty steps")
    job.pause()
    snap = job.latest()
    # Running time: from start to the pause, every synthetic second of it (steps and stalls); the paused
    # snapshot's own stall comes after the clock stopped.
    running = clock() - STALL_S - start
    assert snap.seconds == pytest.approx(running)
    assert snap.seconds > snap.step * STEP_S + STALL_S  # more than the sections alone
    assert snap.samples_per_second == pytest.approx(trainer.samples / running)
    eta = job.eta_seconds()
    assert eta == pytest.approx((100_000 - snap.step) * running / snap.step)
    # A long pause counts for nothing.
    clock.advance(1000.0)
    held, before = snap.step, clock()
    job.resume()
    wait_until(lambda: job.step_count >= held + 40, "forty more steps")
    job.pause()
    snap = job.latest()
    running += clock() - STALL_S - before
    assert snap.seconds == pytest.approx(running) and snap.seconds < 1000.0
    assert snap.samples_per_second == pytest.approx(trainer.samples / running)
    assert job.eta_seconds() == pytest.approx((100_000 - snap.step) * running / snap.step)


def test_a_run_until_paused_has_no_eta(tiny_digits, jobs):
    clock = FakeClock()
    trainer = LoadedTrainer(job_config(steps=0), tiny_digits, device="cpu", clock=clock)
    job = TrainingJob(trainer.config, tiny_digits, trainer=trainer, clock=clock, idle_timeout=1e9)
    jobs.append(job)
    assert job.eta_seconds() is None
    job.step_once()
    assert job.eta_seconds() is None


# ----- a browser's fair share of the training slots -------------------------------------------------------


def test_one_browser_trains_on_at_most_half_the_slots_and_others_pass_its_waiting_run():
    queue = TrainingQueue(2, per_owner=2)  # a 2-core server: two slots, a share of one
    granted: list[str] = []
    a1, a2, b1 = object(), object(), object()
    assert queue.acquire(a1, "A", lambda: granted.append("a1")) == 0
    assert queue.acquire(a2, "A", lambda: granted.append("a2")) == 1  # a slot is free, but A has its share
    assert queue.training("A") == 1 and queue.counts() == (1, 1)
    assert queue.acquire(b1, "B", lambda: granted.append("b1")) == 0  # B passes A's waiting run
    queue.release(b1)  # B's slot frees: A's second run still may not take it
    assert granted == [] and queue.place(a2) == 1
    queue.release(a1)  # A's first run pauses: its second takes A's share
    assert granted == ["a2"] and queue.training("A") == 1 and queue.counts() == (1, 0)


def test_a_sweep_counts_by_its_cells_against_its_browsers_share(tiny_digits, jobs):
    from sae_core.serve.sweep_job import SweepJob
    from sae_core.sweep.trainer import SweepSpec

    queue = TrainingQueue(4, per_owner=2)  # a share of two slots' worth
    spec = SweepSpec(job_config(steps=0), (0.05, 0.1), (1.0, 3.0))  # four cells
    sweep = SweepJob(spec, tiny_digits, queue=queue, owner="A", device="cpu", idle_timeout=1e9)
    single = make_faulty_job(tiny_digits, queue, owner="A")
    other = make_faulty_job(tiny_digits, queue, owner="B")
    jobs += [sweep, single, other]
    sweep.start()
    assert sweep.status == "running" and queue.training("A") == 2  # four cells: the whole share of 2
    single.start()
    assert single.status == "queued"  # two slots free, but the browser's share is taken by its sweep
    other.start()
    assert other.status == "running"
    sweep.pause()
    wait_until(lambda: single.running, "the browser's single run takes its share")
    assert queue.training("A") == 1


# ----- shutting down ---------------------------------------------------------------------------------------

SHUTDOWN_SCRIPT = r"""
import os, signal, sys, time
from sae_core.config.run import RunConfig
from sae_core.data import datasets as data
from sae_core.serve.jobs import TrainingJob

if sys.argv[1] == "sigterm":  # as Streamlit does: its handler stops the server, then the interpreter exits
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
cfg = RunConfig.from_flat({"dataset": "bars", "hidden": 64, "steps": 0, "device": "cpu"})
jobs = [TrainingJob(cfg, data.load(cfg.data), idle_timeout=1e9) for _ in range(2)]
for job in jobs:
    job.start()
while min(job.step_count for job in jobs) < 20:
    time.sleep(0.01)
print("training", flush=True)
if sys.argv[1] == "sigterm":
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
"""


@pytest.mark.slow
@pytest.mark.parametrize("how", ["exit", "sigterm"])
def test_a_process_that_exits_while_jobs_train_shuts_their_threads_down_cleanly(how):
    # Before: the interpreter finalized with daemon threads inside torch, and the C++ runtime aborted with
    # "terminate called without an active exception" (three exits out of three).
    import subprocess
    import sys
    from pathlib import Path

    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", SHUTDOWN_SCRIPT, how], capture_output=True, text=True, env=env, timeout=120
    )
    assert "training" in done.stdout, done.stderr[-2000:]
    assert "terminate called" not in done.stderr and done.returncode == 0, (done.returncode, done.stderr)


# ----- a tab whose connection drops for a while ----------------------------------------------------------


def test_a_run_paused_while_its_tab_was_disconnected_trains_again_when_the_same_session_is_back(
    tiny_digits, jobs
):
    """Three tabs training 4,096 units on a loaded 2-core server: their websockets dropped for longer than
    the disconnect grace and came back to the same sessions; the runs had paused themselves for good, and
    the pages, not redrawn, still said "training" (reproduced with three Chromium tabs, the server's log
    saying "Paused: no tab of this browser session was open" while every tab was open)."""
    from sae_core.serve.scheduler import Reaper

    connected = threading.Event()
    connected.set()
    queue = TrainingQueue(2, per_owner=2)
    job = make_faulty_job(tiny_digits, queue, owner="A", is_watched=connected.is_set, disconnect_grace_s=0.05)
    jobs.append(job)
    reaper = Reaper(ttl_s=1e9, interval_s=3600)  # its rounds by hand
    reaper.watch(job)
    job.start()
    wait_until(lambda: job.step_count > 0, "the run to train")
    connected.clear()  # the websocket drops; the tab is still open
    wait_until(lambda: job.latest().status == "paused" and not job.running, "the run to pause itself")
    assert "no tab of this browser session was open" in job.latest().message
    assert queue.place(job) is None  # its slot is back for the others meanwhile
    assert reaper.revive() == 0  # still no connection: it stays paused
    connected.set()  # the same session reconnects
    assert reaper.revive() == 1
    wait_until(lambda: job.running and job.status == "running", "the run to train again")
    steps = job.step_count
    wait_until(lambda: job.latest().step > steps, "a snapshot after the revival")
    assert job.latest().status == "running" and job.latest().message is None


def test_a_run_its_user_paused_or_stopped_is_never_revived(tiny_digits, jobs):
    from sae_core.serve.scheduler import Reaper

    connected = threading.Event()
    connected.set()
    paused, stopped = (make_faulty_job(tiny_digits, is_watched=connected.is_set) for _ in range(2))
    jobs += [paused, stopped]
    reaper = Reaper(ttl_s=1e9, interval_s=3600)
    for job in (paused, stopped):
        reaper.watch(job)
        job.start()
    wait_until(lambda: paused.step_count > 0 and stopped.step_count > 0, "both to train")
    paused.pause()
    stopped.stop()
    assert reaper.revive() == 0
    assert paused.status == "paused" and stopped.status == "stopped" and not paused.running
