"""TrainingJob: the background thread behind the page's buttons. Every wait polls with a deadline."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Callable
from functools import partial

import pytest

from sae_core.config.run import RunConfig
from sae_core.serve.jobs import BusyError, TrainingJob
from sae_core.serve.scheduler import Reaper, TrainingQueue

DEADLINE_S = 20.0


def wait_until(condition: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S) -> None:
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.005)


def job_config(**flat) -> RunConfig:
    """Tiny and long: the thread never reaches the end of the run by itself during a test."""
    base = {"hidden": 4, "steps": 1_000_000, "batch_size": 16, "device": "cpu"}
    return RunConfig.from_flat({**base, **flat})


@pytest.fixture
def make_job(tiny_digits):
    jobs: list[TrainingJob] = []

    def make(**kwargs) -> TrainingJob:
        flat = kwargs.pop("flat", {})
        job = TrainingJob(
            job_config(**flat), tiny_digits, device="cpu", **{"snapshot_interval": 0.02, **kwargs}
        )
        jobs.append(job)
        return job

    yield make
    for job in jobs:  # no thread outlives its test
        job.stop()
        assert job._thread is None or not job._thread.is_alive()


def test_start_trains_in_the_background(make_job):
    job = make_job()
    assert job.status == "ready" and job.step_count == 0 and job.latest().status == "ready"
    job.start()
    assert job.running and job.status == "running"
    wait_until(lambda: job.latest().step > 0, "a snapshot with steps is published")
    assert job.latest().status == "running"


def test_each_start_publishes_a_snapshot_after_a_short_first_section(make_job):
    # A minute-long snapshot interval: a trained snapshot while running can only come from the short
    # first section that start() asks for (what lets a Train click show a changed picture at once).
    job = make_job(snapshot_interval=60.0, first_snapshot_s=0.01)
    job.start()
    snap = job.wait_for_step(0, timeout=DEADLINE_S)
    assert snap.step > 0 and snap.status == "running" and job.running
    job.pause()
    held = job.step_count
    job.resume()
    snap = job.wait_for_step(held, timeout=DEADLINE_S)
    assert snap.step > held and snap.status == "running" and job.running


def test_pause_holds_the_step_count_and_resume_continues_from_it(make_job):
    job = make_job()
    job.start()
    wait_until(lambda: job.step_count >= 5, "five steps are taken")
    job.pause()
    assert not job.running and job.status == "paused"
    held = job.step_count
    assert job.latest().step == held and job.latest().status == "paused"
    # Not a synchronisation: a window in which an unpaused thread would take hundreds of steps.
    time.sleep(0.3)
    assert job.step_count == held
    job.resume()
    wait_until(lambda: job.step_count > held + 3, "training goes on after resume")
    job.pause()
    history = list(job.trainer.history_steps)
    assert history == list(range(1, job.step_count + 1))  # one run, not restarted from 0


def test_step_once_adds_exactly_one_step(make_job):
    job = make_job()
    snap = job.step_once()
    assert job.step_count == 1 and snap.step == 1
    job.start()
    wait_until(lambda: job.step_count >= 3, "three steps are taken")
    snap = job.step_once()  # pauses the thread first
    assert not job.running
    assert snap.step == job.step_count
    before = job.step_count
    assert job.step_once().step == before + 1 == job.step_count


def test_stop_ends_the_thread_and_keeps_the_model(make_job):
    job = make_job()
    job.start()
    wait_until(lambda: job.step_count >= 2, "two steps are taken")
    model = job.trainer.model
    job.stop()
    assert job._thread is None  # the thread has ended and forgotten itself
    assert job.status == "stopped" and job.latest().status == "stopped"
    steps = job.step_count
    job.step_once()  # a stopped job's model can still be stepped
    assert job.trainer.model is model and job.step_count == steps + 1


def test_set_config_while_running_applies_without_losing_steps(make_job):
    job = make_job(flat={"rho": 0.05})
    job.start()
    wait_until(lambda: job.step_count >= 3, "three steps are taken")
    before = job.step_count
    job.set_config(job.config.replace(rho=0.2, lr=0.003))
    wait_until(lambda: job.latest().config.model.rho == 0.2, "the new ρ reaches a snapshot")
    assert job.config.model.rho == 0.2 and job.config.train.lr == 0.003
    assert job.running and job.step_count >= before
    with pytest.raises(ValueError, match="rho must be"):
        job.set_config(job.config.replace(rho=0.0))
    job.pause()
    assert job.config.model.rho == 0.2


def test_set_config_while_paused_is_visible_at_once(make_job):
    job = make_job()
    job.set_config(job.config.replace(beta=0.5))
    assert job.config.model.beta == 0.5 and job.latest().config.model.beta == 0.5


def test_idle_job_pauses_itself_with_a_message(make_job):
    queue = TrainingQueue(1)
    job = make_job(idle_timeout=0.2, queue=queue)
    job.start()
    # Poll `status`, not latest(): reading a snapshot is what counts as someone watching.
    wait_until(lambda: job.status == "paused", "the unwatched job pauses itself")
    wait_until(lambda: not job.running, "the thread stops stepping")
    # Once paused, reading snapshots no longer matters; the paused snapshot follows the status change.
    wait_until(lambda: job.latest().status == "paused", "the paused snapshot is published")
    assert "Paused" in job.latest().message
    held = job.step_count
    time.sleep(0.3)  # not a synchronisation: a window in which a running job would take many steps
    assert job.step_count == held
    wait_until(lambda: queue.counts() == (0, 0), "the job gives its slot back")


def test_a_job_whose_tab_is_gone_pauses_after_the_grace_even_if_read(make_job):
    connected = threading.Event()
    connected.set()
    job = make_job(is_watched=connected.is_set, disconnect_grace_s=0.2, idle_timeout=1e9)
    job.start()
    wait_until(lambda: job.latest().step > 0, "training")
    connected.clear()  # the tab closed (or reloaded: a new session); the old run must give its slot back
    wait_until(lambda: job.latest().status == "paused", "the job of a closed tab pauses")
    assert "no tab" in job.latest().message


def test_a_second_job_waits_in_the_queue_and_starts_when_the_slot_frees(make_job):
    queue = TrainingQueue(1, per_owner=1)
    first, second = make_job(queue=queue, owner="a"), make_job(queue=queue, owner="b")
    first.start()
    second.start()
    assert second.status == "queued" and second.queue_place() == 1 and not second.running
    assert second.latest().status == "queued" and second.active
    time.sleep(0.2)  # not a synchronisation: a window in which a job that trained would take steps
    assert second.step_count == 0
    first.pause()
    wait_until(lambda: second.running and second.step_count > 0, "the queued job starts in its turn")
    assert second.status == "running" and second.queue_place() is None
    first.resume()  # now the first one waits for the second
    assert first.status == "queued" and first.queue_place() == 1
    second.stop()
    wait_until(lambda: first.running, "the first job gets the slot back")
    assert queue.counts() == (1, 0)


def test_a_queued_job_wakes_its_page_once_when_its_turn_comes_and_not_when_it_left(make_job):
    queue = TrainingQueue(1)
    woken = {"b": [], "c": []}
    first = make_job(queue=queue, owner="a")
    second = make_job(queue=queue, owner="b", wake=lambda: woken["b"].append(second.status))
    third = make_job(queue=queue, owner="c", wake=lambda: woken["c"].append(third.status))
    assert second.wakes_its_page and not first.wakes_its_page
    first.start()
    second.start()
    third.start()
    third.pause()  # left the queue before its turn: nothing to wake
    assert woken == {"b": [], "c": []}  # joining the queue wakes nobody: the page that joined is drawing
    first.pause()
    wait_until(lambda: second.running, "the next in line starts")
    assert woken == {"b": ["running"], "c": []}  # once, with the job already training
    second.stop()
    assert woken["c"] == []


def test_pausing_a_queued_job_leaves_the_queue_and_keeps_its_status(make_job):
    queue = TrainingQueue(1)
    first, second, third = (make_job(queue=queue, owner=o) for o in "abc")
    first.start()
    second.start()
    third.start()
    assert (second.queue_place(), third.queue_place()) == (1, 2)
    second.pause()
    assert second.status == "ready" and second.queue_place() is None and not second.active
    assert third.queue_place() == 1
    first.pause()
    wait_until(lambda: third.running, "the next in line starts")
    assert second.status == "ready" and second.step_count == 0


def test_a_queued_job_whose_tab_is_gone_passes_its_turn_to_the_next_in_line(make_job):
    queue = TrainingQueue(1)
    gone = threading.Event()  # never set: the second student's tab was closed while they waited
    first = make_job(queue=queue, owner="a")
    second = make_job(queue=queue, owner="b", is_watched=gone.is_set, idle_timeout=1e9)
    third = make_job(queue=queue, owner="c")
    first.start()
    second.start()
    third.start()
    assert (second.queue_place(), third.queue_place()) == (1, 2)
    first.pause()
    wait_until(lambda: third.running, "the next student in the room starts")
    assert second.status == "paused" and second.step_count == 0 and not second.active
    assert "Left the queue" in second.latest().message
    assert queue.counts() == (1, 0)
    third.stop()


def test_one_owner_cannot_hold_more_places_than_allowed(make_job):
    queue = TrainingQueue(1, per_owner=2)
    jobs = [make_job(queue=queue, owner="student") for _ in range(3)]
    jobs[0].start()
    jobs[1].start()
    assert jobs[1].status == "queued"
    with pytest.raises(BusyError, match="at most 2"):
        jobs[2].start()
    assert jobs[2].status == "ready" and queue.counts() == (1, 1)
    other = make_job(queue=queue, owner="another student")
    other.start()  # another browser still gets a place in the line
    assert other.queue_place() == 2


def test_a_paused_job_holds_no_thread(make_job):
    def training_threads() -> int:
        return sum(t.name == "sae-training" and t.is_alive() for t in threading.enumerate())

    before = training_threads()
    jobs = [make_job() for _ in range(3)]
    for job in jobs:
        job.start()
    wait_until(lambda: all(j.step_count > 0 for j in jobs), "every job trains")
    assert training_threads() == before + 3
    for job in jobs:
        job.pause()
    wait_until(lambda: training_threads() == before, "the paused jobs' threads end")
    jobs[0].resume()  # a new thread, the same model
    wait_until(lambda: jobs[0].running and training_threads() == before + 1, "the job trains again")


@pytest.mark.slow
def test_the_reaper_releases_runs_of_sessions_that_are_gone(tiny_digits):
    connected = threading.Event()
    connected.set()
    # Not through make_job: its list would keep the job alive.
    job = TrainingJob(
        job_config(), tiny_digits, device="cpu", snapshot_interval=0.02, is_watched=connected.is_set
    )
    model = weakref.ref(job.trainer.model)
    job.start()
    wait_until(partial(lambda j: j.step_count > 0, job), "training")
    reaper = Reaper(ttl_s=0.2, interval_s=3600)  # reap() by hand
    reaper.watch(job)
    assert reaper.reap() == 0  # connected: kept
    connected.clear()
    wait_until(partial(lambda j: j.abandoned_for() > 0.2, job), "the session to be gone for the ttl")
    assert reaper.reap() == 1
    assert job.status == "stopped" and not job.active and job._thread is None
    gc.collect()
    assert model() is None  # the model (and with it the optimizer's state) is gone
    job.start()  # a released job cannot train again; it says why
    assert job.status == "stopped" and "Released" in job.latest().message
    collected = weakref.ref(job)
    del job
    gc.collect()
    assert collected() is None  # nothing else (thread, queue, reaper) keeps it alive


def test_a_diverging_job_ends_with_status_diverged(make_job):
    job = make_job(flat={"optimizer": "sgd", "lr": 1e4, "output": "linear"})
    job.start()
    wait_until(lambda: job.status == "diverged", "the job diverges")
    wait_until(lambda: job.latest().status == "diverged", "the diverged snapshot is published")
    assert "smaller learning rate" in job.latest().message
    wait_until(lambda: not job.running, "the thread stops stepping")


def test_a_job_that_reaches_its_step_limit_is_done(make_job):
    job = make_job(flat={"steps": 30})
    job.start()
    wait_until(lambda: job.status == "done", "the run reaches its last step")
    assert job.step_count == 30
    wait_until(lambda: job.latest().status == "done", "the final snapshot is published")
    job.start()  # starting a finished run does nothing
    assert job.status == "done" and job.step_count == 30


def test_a_run_of_length_zero_trains_until_paused(make_job):
    job = make_job(flat={"steps": 0})
    assert job.trainer.total_steps == 0 and not job.trainer.finished
    job.start()
    # Past any length a short run could have had (the fixture's sections are 20 ms long).
    wait_until(lambda: job.step_count > 200, "the run goes on with no end of its own")
    assert job.running and job.status == "running"
    snap = job.latest()
    assert snap.until_paused and snap.total_steps == 0 and snap.progress == 0.0
    job.pause()
    assert job.status == "paused" and job.latest().status == "paused"
    job.resume()
    assert job.running


def test_a_finished_run_goes_on_when_its_length_is_raised(make_job):
    job = make_job(flat={"steps": 30})
    job.start()
    wait_until(lambda: job.status == "done", "the run reaches its length")
    model = job.trainer.model
    job.set_config(job.config.replace(steps=60))  # the page's "Train on": the same length again
    assert job.status == "paused" and job.latest().total_steps == 60 and not job.trainer.finished
    job.start()
    wait_until(lambda: job.status == "done", "the longer run reaches its new length")
    assert job.step_count == 60 and job.trainer.model is model  # the same model, trained on
    assert list(job.trainer.history_steps) == list(range(1, 61))
    assert job.step_once().step == 61  # a step past the end works too


def test_a_finished_run_switched_to_until_paused_trains_on(make_job):
    job = make_job(flat={"steps": 20})
    job.start()
    wait_until(lambda: job.status == "done", "the run reaches its length")
    job.set_config(job.config.replace(steps=0))
    job.start()
    wait_until(lambda: job.step_count > 100, "the run goes on past its old length")
    assert job.running and job.status == "running"


@pytest.mark.slow
def test_a_running_job_switches_to_until_paused_without_stopping(make_job):
    # Long enough that the switch lands before the old end; never idle (nobody reads it for seconds).
    job = make_job(flat={"steps": 3000}, idle_timeout=1e9)
    job.start()
    wait_until(lambda: job.step_count >= 5, "five steps are taken")
    assert job.running and job.step_count < 3000
    job.set_config(job.config.replace(steps=0))
    wait_until(lambda: job.step_count > 3200, "training goes past the old length of 3000", deadline_s=120)
    assert job.running and job.status == "running" and job.latest().until_paused


@pytest.mark.slow
def test_a_job_that_is_watched_keeps_training_while_nobody_reads_it(make_job):
    watched = threading.Event()
    watched.set()  # a tab of the session is open (on another page: it reads no snapshots)
    job = make_job(idle_timeout=0.1, is_watched=watched.is_set, disconnect_grace_s=0.1)
    job.start()
    started = time.monotonic()
    # Read status and step_count only: latest() would count as a read. Ten idle timeouts go by.
    wait_until(lambda: time.monotonic() - started > 1.0 or job.status != "running", "a second passes")
    assert job.status == "running" and job.running and job.message is None
    watched.clear()  # the tab was closed
    wait_until(lambda: job.status == "paused", "the job pauses once nobody is watching")
    wait_until(lambda: not job.running, "the thread stops stepping")
    assert "Paused" in job.message


@pytest.mark.slow
def test_a_job_read_recently_keeps_training_even_if_no_tab_is_reported(make_job):
    job = make_job(idle_timeout=0.3, is_watched=lambda: False)
    job.start()
    started = time.monotonic()
    wait_until(
        lambda: job.latest() is not None and (time.monotonic() - started > 1.0 or job.status != "running"),
        "a second of reads passes",
    )
    assert job.status == "running" and job.running
