"""The memory estimate measures a small model's forward pass on the CPU and a large one's on the meta device;
both give the same figures, and the CPU path neither imports torch._dynamo (1.8 s, which the meta
device's linear layers pull in) nor moves torch's global RNG."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from sae_core.config.run import RunConfig
from sae_core.train import budget

CONFIGS = [
    {},
    {"dataset": "digits", "hidden": 25},
    {"variant": "denoising", "corruption": "salt_pepper"},
    {"variant": "vae"},
    {"variant": "conv"},
    {"variant": "deep"},
    {"variant": "contractive"},
    {"variant": "ksparse", "k": 3},
    {"penalty": "jumprelu"},
    {"penalty": "topk", "k": 3},
]


@pytest.mark.parametrize("changes", CONFIGS, ids=lambda c: "-".join(map(str, c.values())) or "default")
def test_the_cpu_measurement_equals_the_meta_devices(monkeypatch, changes):
    cfg = RunConfig().replace(**changes)
    on_cpu = budget.estimate(cfg)
    monkeypatch.setattr(budget, "MEASURE_ON_CPU_BYTES", -1)  # every model measured on the meta device
    assert budget.estimate(cfg) == on_cpu


def test_the_estimate_leaves_the_global_rng_alone():
    torch.manual_seed(5)
    state = torch.get_rng_state()
    budget.estimate(RunConfig().replace(variant="denoising"))
    assert torch.equal(torch.get_rng_state(), state)


def test_estimating_the_default_run_does_not_import_dynamo():
    code = (
        "import sys; from sae_core.config.run import RunConfig; from sae_core.train import budget; "
        "budget.estimate(RunConfig()); budget.estimate(RunConfig().replace(dataset='digits')); "
        "print('torch._dynamo' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
