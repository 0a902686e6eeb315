"""Datasets shared between sessions (sae_core.data.shared) and counted once in the server's budget.

Before, every session got a copy of its own (Streamlit's data cache unpickles one per call): opening
`?dataset=bars&n_bars=1000000&hidden=16384` took a session from 921 to 1943 MB, and the server's ledger
counted each session's data again.
"""

from __future__ import annotations

import gc
import threading
from pathlib import Path

import pytest

from sae_core.config.run import DataConfig
from sae_core.data import datasets as data
from sae_core.data.shared import SharedDatasets, dataset_bytes
from sae_core.serve.memory import ServerMemory
from sae_core.train.budget import MemoryEstimate

MB = 2**20
BIG = DataConfig(dataset="bars", n_bars=400_000)  # 97.7 MB of float32: train and test
SMALL = DataConfig(dataset="bars", n_bars=200)


def resident_mb() -> float:
    """This process's resident memory (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_sessions_asking_for_the_same_dataset_get_one_copy_loaded_once():
    calls = []

    def load(cfg):
        calls.append(cfg)
        return data.load(cfg)

    shared = SharedDatasets(load)
    got: list = [None] * 8
    barrier = threading.Barrier(len(got))

    def session(i: int) -> None:
        barrier.wait()  # all ask at once
        got[i] = shared.get(DataConfig(dataset="bars", n_bars=5000))

    threads = [threading.Thread(target=session, args=(i,)) for i in range(len(got))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and shared.loads == 1
    assert all(ds is got[0] for ds in got)
    other = shared.get(DataConfig(dataset="bars", n_bars=5000, data_seed=1))
    assert other is not got[0] and not other.train.equal(got[0].train) and shared.loads == 2


def test_a_big_dataset_is_freed_when_no_run_holds_it_and_loaded_again_after():
    shared = SharedDatasets(data.load)
    ds = shared.get(BIG)
    assert dataset_bytes(ds) > shared.keep_bytes  # too big to be kept idle
    assert shared.get(BIG) is ds and BIG in shared.live()
    del ds
    gc.collect()
    assert shared.live() == []  # nobody holds it: its memory is back
    again = shared.get(BIG)
    assert shared.loads == 2 and again.train.shape == (360_000, 64)


def test_small_datasets_stay_for_the_next_caller_within_the_bounds():
    shared = SharedDatasets(data.load, keep_entries=2)
    first = id(shared.get(SMALL))
    assert shared.get(SMALL) is not None and id(shared.get(SMALL)) == first and shared.loads == 1
    for seed in (1, 2):  # two more small ones push the first out of the two kept
        shared.get(DataConfig(dataset="bars", n_bars=200, data_seed=seed))
    gc.collect()
    assert len(shared.live()) == 2 and SMALL not in shared.live()
    tight = SharedDatasets(data.load, keep_bytes=dataset_bytes(shared.get(SMALL)) + 1)
    tight.get(SMALL)
    tight.get(DataConfig(dataset="bars", n_bars=200, data_seed=1))  # both together pass keep_bytes
    gc.collect()
    assert len(tight.live()) == 1


def test_a_failed_load_is_not_kept_and_the_next_caller_tries_again():
    attempts = []

    def flaky(cfg):
        attempts.append(cfg)
        if len(attempts) == 1:
            raise data.DataUnavailableError("no files yet")
        return data.load(cfg)

    shared = SharedDatasets(flaky)
    with pytest.raises(data.DataUnavailableError, match="no files yet"):
        shared.get(SMALL)
    assert shared.get(SMALL).train.shape[0] == 180 and len(attempts) == 2


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_three_sessions_on_one_big_dataset_hold_one_copy_of_its_memory():
    shared = SharedDatasets(data.load)
    gc.collect()
    before = resident_mb()
    sessions = [shared.get(BIG) for _ in range(3)]
    grown = resident_mb() - before
    copy_mb = dataset_bytes(sessions[0]) / MB
    # One copy (97.7 MB) plus what loading leaves in the allocator; three would be 293 MB.
    assert grown < 2 * copy_mb, f"{grown:.0f} MB for three sessions, one copy is {copy_mb:.0f} MB"


class Job:
    released = False


def test_the_server_budget_counts_a_shared_dataset_once():
    ledger = ServerMemory(budget_mb=1000)
    run = MemoryEstimate(data=400 * MB, model=100 * MB, optimizer=50 * MB, activations=50 * MB)
    first, second = Job(), Job()
    ledger.check_run(run, BIG)
    ledger.add_run(first, run, BIG)
    assert ledger.held() == 600 * MB
    ledger.check_run(run, BIG)  # another session on the same data: 200 MB more, not 600
    ledger.add_run(second, run, BIG)
    assert ledger.held() == 800 * MB
    with pytest.raises(ValueError, match="this server is full"):  # other data: its 400 MB count
        ledger.check_run(run, SMALL)
    first.released = True  # one session ended: the data stays counted for the other
    assert ledger.held() == 600 * MB
    second.released = True
    assert ledger.held() == 0
