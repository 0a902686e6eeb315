"""The Ray backend of sweeps, on a local Ray this module starts: the local backend's table and weights, the
CLI path, and what is said when Ray is missing or RAY_ADDRESS does not answer."""

from __future__ import annotations

import csv
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sae_core.cli.main import main
from sae_core.config.run import RunConfig
from sae_core.sweep import ray_backend as sweep_ray
from sae_core.sweep.run import run_sweep
from sae_core.sweep.trainer import SweepSpec

ray = pytest.importorskip("ray")  # a guard only: scripts/test.sh installs the ray extra

STEPS = 40
GRID = ["--rho", "0.05,0.2", "--beta", "0,3", "--axis", "hidden", "--values", "4,6"]
"""2 × 2 × 2 cells; two hidden sizes make two blocks, so two Ray tasks."""


@pytest.fixture(scope="module")
def local_ray():
    """A new private two-CPU Ray for this module (address "local": never a cluster `ray start` left here)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("RAY_ADDRESS", raising=False)
        env = sweep_ray.worker_runtime_env()
        ray.init(address="local", num_cpus=2, include_dashboard=False, runtime_env=env)
        yield ray
        ray.shutdown()


def read_table(folder: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((folder / "sweep.csv").open()))


def assert_same_sweep(a: Path, b: Path) -> None:
    """Same rows (numbers within float tolerance; wall-clock seconds aside) and the same weights per cell."""
    rows_a, rows_b = read_table(a), read_table(b)
    assert len(rows_a) == len(rows_b) > 0
    for ra, rb in zip(rows_a, rows_b, strict=True):
        assert list(ra) == list(rb)
        for key in ra:
            if key == "seconds":
                continue
            try:
                assert float(ra[key]) == pytest.approx(float(rb[key]), abs=1e-6), (ra["name"], key)
            except ValueError:  # text columns: name, path, status
                assert ra[key] == rb[key], (ra["name"], key)
        wa = load_file(a / ra["path"] / "model.safetensors")
        wb = load_file(b / rb["path"] / "model.safetensors")
        assert set(wa) == set(wb)
        for key in wa:
            assert torch.allclose(wa[key], wb[key], atol=1e-6, rtol=0), (ra["name"], key)


@pytest.mark.slow
def test_ray_backend_writes_the_local_backends_table_and_weights(local_ray, tiny_digits, tmp_path):
    base = RunConfig().replace(hidden=6, batch_size=64, steps=STEPS, device="cpu")
    spec = SweepSpec(base, (0.05, 0.2), (0.0, 3.0), "hidden", (4, 6))
    assert len(spec.blocks()) == 2
    calls = []
    run_sweep(spec, tiny_digits, tmp_path / "ray", backend="ray", progress=lambda *a: calls.append(a))
    run_sweep(spec, tiny_digits, tmp_path / "local", backend="local")
    # One call per block, as each task finishes (the local backend reports ten times per block).
    assert sorted(calls) == [(0, 2, STEPS, STEPS), (1, 2, STEPS, STEPS)]
    assert_same_sweep(tmp_path / "ray", tmp_path / "local")
    assert len(read_table(tmp_path / "ray")) == spec.n_cells == 8


@pytest.mark.slow
def test_a_vae_and_a_jumprelu_conv_sweep_on_ray_match_the_local_backend(local_ray, tiny_digits, tmp_path):
    """Every variant sweeps on Ray too: the tasks run the models' own code, as the local backend does."""
    for name, changes, axis, values in (
        ("vae", {"variant": "vae", "lr": 0.01}, "latent", (2, 3)),
        ("conv", {"variant": "conv", "penalty": "jumprelu", "kernels": 3}, "kernels", (2, 3)),
    ):
        base = RunConfig().replace(
            **{"hidden": 6, "batch_size": 64, "steps": STEPS, "device": "cpu", **changes}
        )
        spec = SweepSpec(base, (0.05,), (0.05,), axis, values)
        run_sweep(spec, tiny_digits, tmp_path / f"{name}-ray", backend="ray")
        run_sweep(spec, tiny_digits, tmp_path / f"{name}-local", backend="local")
        assert_same_sweep(tmp_path / f"{name}-ray", tmp_path / f"{name}-local")


@pytest.mark.slow
def test_the_explore_pages_ray_job_gives_the_local_sweeps_cells(local_ray, tiny_digits):
    """RemoteSweepJob (the Explore page's job when Ray is chosen): every cell's weights equal a sweep
    trained here, and the grid is whole once every block is back."""
    import time

    from sae_core.serve.sweep_job import RemoteSweepJob
    from sae_core.sweep.trainer import SweepTrainer

    spec = SweepSpec(
        RunConfig().replace(hidden=6, steps=STEPS, device="cpu"), (0.05, 0.2), (0.0, 3.0), "hidden", (4, 6)
    )
    job = RemoteSweepJob(spec, tiny_digits, backend="ray")
    job.start()
    deadline = time.monotonic() + 120
    while job.active and time.monotonic() < deadline:
        time.sleep(0.1)  # polling with a deadline
    assert job.status == "done", job.latest().message
    snap = job.latest()
    assert snap.step == STEPS and len(snap.cells) == spec.n_cells
    here = SweepTrainer(spec, tiny_digits, "cpu")
    here.advance()
    for i in range(spec.n_cells):
        state, cfg, step = job.cell_state(i)
        assert cfg == spec.cells()[i] and step == STEPS
        for name, value in here.cell_state(i).items():
            assert torch.allclose(state[name], value, atol=1e-6), (i, name)


@pytest.mark.slow
def test_sae_sweep_backend_ray_matches_backend_local(local_ray, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    flags = [*GRID, "--steps", str(STEPS), "--batch-size", "64", "--device", "cpu"]
    assert main(["sweep", *flags, "--backend", "ray", "--out", str(tmp_path / "ray")]) == 0
    captured = capsys.readouterr()
    assert "block 1/2 (4 cells, hidden 4): step 40/40" in captured.err
    assert "block 2/2 (4 cells, hidden 6): step 40/40" in captured.err
    assert "wrote" in captured.out and "8 models" in captured.out
    assert main(["sweep", *flags, "--quiet", "--out", str(tmp_path / "local")]) == 0
    assert_same_sweep(tmp_path / "ray", tmp_path / "local")


def test_without_ray_the_backend_says_how_to_install_it(tmp_path, capsys, monkeypatch, tiny_digits):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    out = tmp_path / "o"
    flags = ["--rho", "0.05", "--beta", "3", "--steps", "2", "--backend", "ray"]
    rc = main(["sweep", *flags, "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("sae: error: the ray backend needs Ray") and err.count("\n") == 1
    assert 'pip install -e ".[ray]"' in err
    assert not out.exists()  # refused before anything was loaded or trained
    spec = SweepSpec(RunConfig().replace(hidden=3, steps=2, device="cpu"), (0.05,), (3.0,))
    with pytest.raises(ValueError, match=r'not installed here: pip install -e "\.\[ray\]"'):
        run_sweep(spec, tiny_digits, out, backend="ray")
    available, message = sweep_ray.ray_status()
    assert not available and 'pip install -e ".[ray]"' in message


@pytest.mark.slow
def test_ray_status_offers_ray_only_when_ray_address_answers(local_ray, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    available, message = sweep_ray.ray_status()
    assert not available and "set RAY_ADDRESS" in message
    monkeypatch.setenv("RAY_ADDRESS", "not an address")
    assert sweep_ray.ray_status() == (
        False,
        "RAY_ADDRESS=not an address is not ray://HOST:PORT, HOST:PORT or auto",
    )
    with socket.socket() as closed:  # bound but not listening: connections to it are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
            monkeypatch.setenv("RAY_ADDRESS", address)
            available, message = sweep_ray.ray_status()
            assert not available and message.startswith(f"no Ray cluster answers at RAY_ADDRESS={address}")
    gcs = ray.get_runtime_context().gcs_address  # the module's Ray: its GCS port answers
    monkeypatch.setenv("RAY_ADDRESS", gcs)
    assert sweep_ray.ray_status() == (True, f"Ray cluster reachable at RAY_ADDRESS={gcs}")


class StubRay:
    """Records ray.init calls; stands for a process not yet connected to any Ray."""

    def __init__(self):
        self.inits = []

    def is_initialized(self):
        return bool(self.inits)

    def init(self, **kwargs):
        self.inits.append(kwargs)


def test_connect_starts_a_private_ray_that_ships_sae_core_or_refuses_a_dead_address(monkeypatch):
    stub = StubRay()
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    sweep_ray.connect(stub)
    sweep_ray.connect(stub)  # already connected: no second init
    [kwargs] = stub.inits
    assert kwargs["address"] == "local" and kwargs["include_dashboard"] is False
    [shipped] = kwargs["runtime_env"]["py_modules"]
    assert Path(shipped) == Path(sweep_ray.__file__).resolve().parent.parent
    assert (Path(shipped) / "sweep" / "run.py").exists()
    stub = StubRay()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        monkeypatch.setenv("RAY_ADDRESS", f"ray://127.0.0.1:{closed.getsockname()[1]}")
        with pytest.raises(ConnectionError, match="^no Ray cluster answers at RAY_ADDRESS=ray://127.0.0.1:"):
            sweep_ray.connect(stub)
    assert stub.inits == []  # refused at once, without handing Ray a dead address to retry for minutes


@pytest.mark.slow
def test_importing_the_sweep_modules_does_not_import_ray():
    modules = "sae_core.cli.main, sae_core.sweep.run, sae_core.sweep.ray_backend"
    code = f"import sys, {modules}; print('ray' in sys.modules)"
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
