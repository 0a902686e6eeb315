"""The Ray backend of sweeps: each batched block of a grid trains as one Ray task on the cluster Ray finds.

    results = run_ray(spec, dataset, progress=None)   the backend "ray" of sae_core.sweep.run.run_sweep
    available, message = ray_status()                  for a page: is Ray installed and RAY_ADDRESS reachable?

Ray is an optional extra (`pip install -e ".[ray]"`); this module imports it only inside its functions, so
`sae_core` works without it and asking for the backend without it is a ValueError that says how to get it.

Where the tasks run: if this process has not called `ray.init()` yet, run_ray calls it with RAY_ADDRESS
(`ray://host:10001`, `host:6379` or `auto`) or, when that is unset, starts a new private Ray on this machine
(address "local": one task per core, gone when the process exits).
The job ships this process's `sae_core` to the workers (runtime_env py_modules, see worker_runtime_env), so
they run the same code as the driver; torch, numpy and the other dependencies must be installed there.
Results come back to the driver, which writes the output folder: workers need no shared disk.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sae_core.data.datasets import Dataset
from sae_core.sweep.block_work import BlockResult, Progress, Stopped, train_block
from sae_core.sweep.spec import SweepSpec

INSTALL_HINT = 'pip install -e ".[ray]"'
ADDRESS_VAR = "RAY_ADDRESS"
AUTH_HINT = " (a cluster with Ray's token authentication also needs RAY_AUTH_MODE=token and its token here)"
STOP_POLL_S = 0.5
"""How often run_ray asks should_stop() while it waits for its tasks."""
CONNECT_TIMEOUT_S = 2.0
"""How long ray_status waits for the cluster's port to answer."""


def import_ray() -> Any:
    """The `ray` module, or a one-line ValueError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ValueError(
            f"the ray backend needs Ray, which is not installed here: {INSTALL_HINT} "
            "(or pip install 'ray[client]>=2.9,<3')"
        ) from None
    return ray


def worker_runtime_env() -> dict[str, Any]:
    """The runtime_env that ships this process's sae_core package to every worker of the job."""
    return {"py_modules": [str(Path(__file__).resolve().parent.parent)], "excludes": ["__pycache__", "*.pyc"]}


def connect(ray: Any) -> None:
    """ray.init() unless this process is already connected: RAY_ADDRESS when set, else a new private Ray.
    An address that does not answer, or a connection that fails, is a one-line ConnectionError naming it
    (checked first because Ray itself retries a dead address for minutes)."""
    if ray.is_initialized():
        return
    address = os.environ.get(ADDRESS_VAR, "").strip() or None
    if address:
        problem = address_problem(address)
        if problem is not None:
            raise ConnectionError(problem)
    # "local": a new private Ray, even where `ray start` ran (or crashed) on this machine; RAY_ADDRESS=auto
    # is how to join that one.
    extra = {"address": address} if address else {"address": "local", "include_dashboard": False}
    try:
        ray.init(ignore_reinit_error=True, runtime_env=worker_runtime_env(), **extra)
    except Exception as e:  # Ray raises ConnectionError, RuntimeError or its own types
        where = f"{ADDRESS_VAR}={address}" if address else "a local Ray"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = AUTH_HINT if address and address != "auto" and not os.environ.get("RAY_AUTH_MODE") else ""
        raise ConnectionError(f"could not start or reach {where}: {first}{hint}") from None


def task_device(spec: SweepSpec) -> tuple[str | None, float]:
    """(device for train_block, GPUs each task reserves). A task takes a GPU only when the sweep asks for
    cuda; "auto" trains on the task's CPU core rather than on a GPU that Ray did not reserve for it."""
    device = spec.base.train.device
    if device == "cuda":
        return "cuda", 1.0
    if device == "mps":
        return "mps", 0.0
    return "cpu", 0.0


def _train_block_task(spec: SweepSpec, block: int, dataset: Dataset, device: str | None) -> BlockResult:
    """One Ray task: one block, one thread (the task holds one CPU; more threads only fight the others)."""
    import torch

    torch.set_num_threads(1)
    return train_block(spec, block, dataset, device=device)


def run_ray(
    spec: SweepSpec,
    dataset: Dataset,
    progress: Progress | None = None,
    on_result: Callable[[BlockResult], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[BlockResult]:
    """Train every block of spec.blocks() as a Ray task; results in the order they finish.

    The dataset goes into the object store once and every task reads it from there. progress(block,
    number of blocks, steps, total steps) and on_result(result) are called once per block, when it
    finishes; should_stop() is polled every STOP_POLL_S and, when true, ends the sweep with
    sweep_run.Stopped. If a task fails (or the caller is interrupted or stops) the tasks still pending
    are cancelled and the error is raised.
    """
    ray = import_ray()
    connect(ray)
    device, gpus = task_device(spec)
    task = ray.remote(num_cpus=1, num_gpus=gpus)(_train_block_task)
    data_ref = ray.put(dataset)
    n_blocks = len(spec.blocks())
    pending = {task.remote(spec, b, data_ref, device): b for b in range(n_blocks)}
    results: list[BlockResult] = []
    try:
        while pending:
            if should_stop is not None and should_stop():
                raise Stopped(f"stopped after {len(results)} of {n_blocks} blocks")
            done, _ = ray.wait(list(pending), num_returns=1, timeout=STOP_POLL_S)
            for ref in done:
                del pending[ref]
                result = _owned(ray.get(ref))
                results.append(result)
                if progress is not None:
                    progress(result.block, n_blocks, result.snapshot.step, result.snapshot.total_steps)
                if on_result is not None:
                    on_result(result)
    except BaseException:
        for ref in pending:
            ray.cancel(ref)
        raise
    return results


def _owned(result: BlockResult) -> BlockResult:
    """The result with its weights copied out of Ray's object store: ray.get hands numpy arrays back as
    read-only views of shared memory, which torch warns about and which pin that memory while they live."""
    states = tuple({k: np.array(v) for k, v in state.items()} for state in result.states)
    return dataclasses.replace(result, states=states)


def ray_status() -> tuple[bool, str]:
    """(available, message) for offering Ray on a page: Ray installed, RAY_ADDRESS set and its port
    answering within CONNECT_TIMEOUT_S. Never starts a Ray and never calls ray.init()."""
    if importlib.util.find_spec("ray") is None:
        return False, f"Ray is not installed; install it with {INSTALL_HINT}"
    address = os.environ.get(ADDRESS_VAR, "").strip()
    if not address:
        return False, f"set {ADDRESS_VAR} to a Ray cluster (ray://HOST:10001, HOST:6379 or auto) to use it"
    problem = address_problem(address)
    if problem is not None:
        return False, problem
    return True, f"Ray cluster reachable at {ADDRESS_VAR}={address}"


def address_problem(address: str) -> str | None:
    """Why RAY_ADDRESS=address cannot be used (a sentence), or None when its port answers a TCP connect."""
    if address == "auto":
        found = _local_cluster_address()
        if found is None:
            return f"{ADDRESS_VAR}=auto, but no Ray runs on this machine (start one: ray start --head)"
        target = _host_port(found)
    else:
        target = _host_port(address)
    if target is None:
        return f"{ADDRESS_VAR}={address} is not ray://HOST:PORT, HOST:PORT or auto"
    try:
        with socket.create_connection(target, timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as e:
        return f"no Ray cluster answers at {ADDRESS_VAR}={address} ({e.strerror or e})"
    return None


def _host_port(address: str) -> tuple[str, int] | None:
    """`ray://h:p` or `h:p` -> (h, p); None when it is not of that form."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def _local_cluster_address() -> str | None:
    """The address of a Ray running on this machine, if any (read from files and ps; nothing is started)."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        return canonicalize_bootstrap_address("auto")
    except Exception:  # a private helper of Ray's: any failure means "none found"
        return None
