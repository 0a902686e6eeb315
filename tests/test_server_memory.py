"""The server-wide memory budget: the live sessions' runs against one limit (sae_core.serve.memory)."""

from __future__ import annotations

import gc

import pytest

from sae_core.serve import memory
from sae_core.serve.memory import ServerFullError, ServerMemory

MB = 2**20


class Job:
    """What the ledger reads of a job: that it is alive, and whether it was released."""

    released = False


def test_the_budget_comes_from_the_environment_or_the_machines_memory(monkeypatch):
    monkeypatch.setenv(memory.ENV_VAR, "1500")
    assert memory.server_budget_mb() == 1500.0
    monkeypatch.delenv(memory.ENV_VAR)
    machine = memory.machine_bytes()
    assert machine is not None and memory.server_budget_mb() == pytest.approx(0.75 * machine / MB)
    for bad in ("lots", "0", "-5", "nan", "inf"):
        with pytest.raises(ValueError, match=f"{memory.ENV_VAR} must be a positive number of MB"):
            memory.server_budget_mb(bad)


def test_a_full_server_refuses_a_run_until_a_session_ends_or_a_run_is_dropped():
    ledger = ServerMemory(budget_mb=1000)
    first, second = Job(), Job()
    ledger.check(600 * MB)
    ledger.add(first, 600 * MB)
    ledger.add(second, 300 * MB)
    assert ledger.held() == 900 * MB
    with pytest.raises(ServerFullError, match=r"hold about 900 MB of its 1000 MB .* needs about 200 MB"):
        ledger.check(200 * MB)
    second.released = True  # the reaper released an ended session's run: its share is back at once
    ledger.check(200 * MB)
    assert ledger.held() == 600 * MB
    del first  # a run replaced and dropped: its share is back when it is collected
    gc.collect()
    assert ledger.held() == 0
    ledger.check(1000 * MB)
