"""What a `sae` command sets up for its process: torch's threads (a sweep: every core) and the heap."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest
import torch

from sae_core.cli.main import build_parser, main
from sae_core.train import heap
from sae_core.train.threads import ENV_VAR, all_cores, configure_threads


def test_a_default_applies_only_when_the_environment_is_silent(threads_restored):
    assert configure_threads({}, default=2) == 2 and torch.get_num_threads() == 2
    assert configure_threads({ENV_VAR: "1"}, default=2) == 1 and torch.get_num_threads() == 1


def test_all_cores_counts_the_cores_this_process_may_use():
    cores = all_cores()
    assert 1 <= cores <= (os.cpu_count() or 1)


def test_sweep_defaults_to_every_core_and_train_to_one():
    parser = build_parser()
    sweep = parser.parse_args(["sweep", "--rho", "0.1", "--beta", "1", "--out", "x"])
    train = parser.parse_args(["train", "--out", "x"])
    assert sweep.default_threads == all_cores()
    assert not hasattr(train, "default_threads")


def test_a_sweep_command_runs_on_every_core_unless_told(tmp_path, threads_restored, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    args = ["sweep", "--rho", "0.05,0.1", "--beta", "1", "--hidden", "4", "--steps", "3", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert torch.get_num_threads() == all_cores()
    monkeypatch.setenv(ENV_VAR, "1")
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert torch.get_num_threads() == 1


def test_keep_freed_memory_sets_glibcs_thresholds_where_there_is_glibc(monkeypatch):
    calls = []

    class FakeLibc:
        def __init__(self, name):
            self.mallopt = self

        def __call__(self, param, value):
            calls.append((param, value))
            return 1

    monkeypatch.setattr(ctypes, "CDLL", FakeLibc)
    assert heap.keep_freed_memory() is True
    assert calls == [(heap.M_MMAP_THRESHOLD, heap.KEEP_BYTES), (heap.M_TRIM_THRESHOLD, heap.KEEP_BYTES)]


def test_keep_freed_memory_changes_nothing_without_mallopt(monkeypatch):
    class NoMallopt:
        def __init__(self, name):
            pass

    monkeypatch.setattr(ctypes, "CDLL", NoMallopt)
    assert heap.keep_freed_memory() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_memory_is_accepted_by_this_machines_c_library():
    code = "from sae_core.train.heap import keep_freed_memory; print(keep_freed_memory())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
