"""A sweep block's Adam (sae_core.sweep.optimizer): torch.optim.Adam(fused=True)'s weights, bit for bit."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from sae_core.config.run import RunConfig
from sae_core.sweep.optimizer import FusedAdam, block_optimizer


def _tensors(seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(4, 7, 5), (4, 7), (4, 5, 7), (4, 5)]
    return [torch.randn(*s, generator=g).requires_grad_() for s in shapes]


def _train(optimizer_of, steps: int = 25) -> list[torch.Tensor]:
    """A least-squares fit of the tensors towards fixed targets, with gradients that differ every step;
    step 7 leaves one tensor without a gradient (skipped that step, as torch.optim skips it)."""
    params = _tensors(0)
    targets = [t.detach() * 0.3 + 1.0 for t in _tensors(1)]
    opt = optimizer_of(params)
    g = torch.Generator().manual_seed(2)
    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        pairs = zip(params, targets, strict=True)
        loss = sum(((p - t) ** 2 * torch.rand(p.shape, generator=g)).sum() for p, t in pairs)
        loss.backward()
        if step == 7:
            params[1].grad = None
        opt.step()
    return [p.detach().clone() for p in params]


def test_fused_adam_is_torch_fused_adam_bit_for_bit():
    ours = _train(lambda ps: FusedAdam(ps, lr=0.05))
    torchs = _train(lambda ps: torch.optim.Adam(ps, lr=0.05, fused=True))
    unfused = _train(lambda ps: torch.optim.Adam(ps, lr=0.05))
    for a, b, c in zip(ours, torchs, unfused, strict=True):
        assert torch.equal(a, b)
        torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-6)  # and so the textbook update, to rounding
    assert not torch.equal(ours[0], _tensors(0)[0])  # it moved


def test_fused_adam_moves_against_the_gradient_by_lr_on_the_first_step():
    """Adam's first step is lr·sign(g) (the bias-corrected m̂/√v̂ is g/|g|), up to eps."""
    p = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    opt = FusedAdam([p], lr=0.1)
    p.grad = torch.tensor([0.5, -4.0, 0.0])
    opt.step()
    torch.testing.assert_close(p.detach(), torch.tensor([0.9, -1.9, 3.0]))


def test_block_optimizer_keeps_torch_optim_for_sgd():
    params = [torch.zeros(3, requires_grad=True)]
    adam = block_optimizer(params, RunConfig(), torch.device("cpu"))
    sgd = block_optimizer(params, RunConfig().replace(optimizer="sgd"), torch.device("cpu"))
    assert isinstance(adam, FusedAdam)
    assert isinstance(sgd, torch.optim.SGD)


@pytest.mark.slow
def test_a_sweep_step_does_not_import_torch_dynamo():
    """torch._dynamo (with sympy, about 1.4 s) came in with torch.optim's first optimizer; an Adam sweep
    on the CPU no longer pays it."""
    code = (
        "import sys, torch\n"
        "from sae_core.config.run import RunConfig\n"
        "from sae_core.data import datasets as data\n"
        "from sae_core.sweep.trainer import SweepSpec, SweepTrainer\n"
        "cfg = RunConfig().replace(hidden=4, steps=3, batch_size=16, device='cpu')\n"
        "sweeper = SweepTrainer(SweepSpec(cfg, (0.05, 0.1), (1.0,)), data.load(cfg.data), device='cpu')\n"
        "assert sweeper.advance() == 'done'\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
