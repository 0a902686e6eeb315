"""The CUDA path: the same runs on the GPU as on the CPU. Skipped cleanly where no CUDA device exists
(CI never has one); run on a GPU box with `python -m pytest tests/test_cuda.py`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sae_core.config.run import RunConfig
from sae_core.models import VARIANTS
from sae_core.serve.jobs import TrainingJob
from sae_core.store import export
from sae_core.sweep import traced
from sae_core.sweep.optimizer import FusedAdam
from sae_core.sweep.trainer import SweepSpec, SweepTrainer
from sae_core.train import metrics
from sae_core.train.trainer import Trainer, resolve_device

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
pytestmark = pytest.mark.gpu


def config(**flat) -> RunConfig:
    base = {"hidden": 16, "steps": 60, "batch_size": 64, "snapshot_every": 20, "rho": 0.05}
    return RunConfig.from_flat({**base, **flat})


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_a_gpu_says_so_plainly():
    with pytest.raises(ValueError, match="no CUDA GPU"):
        resolve_device("cuda")


@needs_cuda
def test_auto_picks_the_gpu():
    assert resolve_device("auto").type == "cuda"


@needs_cuda
def test_gpu_run_follows_the_cpu_run(tiny_digits):
    """Same seed, same batches: float32 on the two devices agrees to rounding over a short run."""
    cpu = Trainer(config(device="cpu"), tiny_digits)
    gpu = Trainer(config(device="cuda"), tiny_digits)
    assert gpu.x.is_cuda and next(gpu.model.parameters()).is_cuda
    last_cpu, last_gpu = list(cpu.run())[-1], list(gpu.run())[-1]
    assert last_gpu.status == "done" and isinstance(last_gpu.encoder_weight, np.ndarray)
    np.testing.assert_allclose(last_gpu.history["total"], last_cpu.history["total"], rtol=2e-3)
    np.testing.assert_allclose(last_gpu.encoder_weight, last_cpu.encoder_weight, atol=2e-3)


@needs_cuda
@pytest.mark.parametrize("optimizer", ["adam", "sgd", "lbfgs"])
def test_each_optimizer_lowers_the_loss_on_the_gpu(tiny_digits, optimizer):
    lr = {"adam": 1e-2, "sgd": 0.1, "lbfgs": 1.0}[optimizer]
    snap = list(Trainer(config(device="cuda", optimizer=optimizer, lr=lr), tiny_digits).run())[-1]
    total = snap.history["total"]
    assert np.isfinite(total).all() and total[-1] < 0.8 * total[0]


@needs_cuda
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_trains_on_the_gpu(tiny_digits, variant):
    flat = {"device": "cuda", "variant": variant, "kernels": 4, "layers": "32", "steps": 80}
    if variant == "contractive" or variant == "vae":
        flat["penalty"] = "none"
    snap = list(Trainer(config(**flat), tiny_digits).run())[-1]
    total = snap.history["total"]
    assert snap.status == "done" and np.isfinite(total).all()
    assert total[-10:].mean() < total[:10].mean()


@needs_cuda
def test_gpu_model_saves_and_loads_on_the_cpu(tiny_digits, tmp_path):
    trainer = Trainer(config(device="cuda"), tiny_digits)
    list(trainer.run())
    export.save(trainer.model, trainer.config, tmp_path, image_shape=(8, 8))
    model, cfg, shape = export.load(tmp_path)
    x = tiny_digits.train
    with torch.no_grad():
        np.testing.assert_allclose(
            model.encode(x).numpy(), trainer.model.encode(x.cuda()).cpu().numpy(), atol=1e-5
        )
    assert metrics.evaluate(model, x)["recon_error"] == pytest.approx(
        metrics.evaluate(trainer.model, x.cuda())["recon_error"], rel=1e-4
    )


@needs_cuda
def test_training_job_runs_and_pauses_on_the_gpu(tiny_digits):
    import time

    job = TrainingJob(config(device="cuda", steps=100000), tiny_digits, snapshot_interval=0.1)
    job.start()
    deadline = time.monotonic() + 60
    while job.step_count < 50 and time.monotonic() < deadline:
        job.latest()
        time.sleep(0.05)  # polling with a deadline, not synchronisation
    job.pause()
    held = job.step_count
    assert held >= 50 and job.latest().step == held
    job.stop()


@needs_cuda
@pytest.mark.parametrize("trace", [False, True], ids=["eager", "traced"])
def test_a_gpu_sweep_gives_each_cell_its_own_gpu_runs_weights(tiny_digits, monkeypatch, trace):
    """A sweep on the GPU (its Adam the fused kernel called directly, sae_core.sweep.optimizer; its step eager
    or traced) ends each cell where that cell's own Trainer ends on the GPU, β = 0 twins included."""
    monkeypatch.setattr(traced, "MIN_STEPS", 0)
    monkeypatch.setattr(traced, "MIN_STEPS_COLD", 0)
    spec = SweepSpec(config(device="cuda", steps=40), (0.05, 0.2), (0.0, 3.0))
    sweeper = SweepTrainer(spec, tiny_digits)
    (block,) = sweeper.blocks
    block.trace = trace
    assert isinstance(block.optimizer, FusedAdam) and block.size == 3  # 4 cells, 2 of them twins
    assert sweeper.advance() == "done"
    assert [g is not None for g in block.traced.graphs.values()] == ([True] if trace else [])
    for i, cfg in enumerate(spec.cells()):
        run = Trainer(cfg, tiny_digits)
        run.advance()
        for key, value in run.model.state_dict().items():
            got = sweeper.cell_state(i)[key]  # on the CPU
            torch.testing.assert_close(got, value.cpu(), atol=1e-4, rtol=0, msg=f"cell {i} {key}")
