"""A sweep block's Adam: torch's fused Adam kernel, called without torch.optim's Optimizer around it.

Why not `torch.optim.Adam(fused=True)`, which the Trainer uses (`train.trainer.make_optimizer`)? Its
constructor and every `step()` go through torch's dynamo-disabling wrappers, and the first of them imports
torch._dynamo (and sympy with it): 1.4 s of a 9 s `sae sweep` on digits (benchmarks/README.md,
sweep_cli.py). Its Python around the kernel (hooks, parameter groups, grouping by device) also costs about
0.2 ms a step, which a 64 → 25 block of 16 cells (about 2.5 ms a step) feels.

The update itself is not written here: `step()` makes the two calls `torch.optim.adam._fused_adam` makes
(the step counters' `_foreach_add_`, then `torch._fused_adam_`), with the hyperparameters read from
`torch.optim.Adam`'s own defaults, and state laid out as torch lays it out (moments `zeros_like` the
parameter, the step a float32 0-dim tensor on its device). So a cell's weights are bit for bit those of
torch.optim.Adam(fused=True) (tests/test_sweep_optimizer.py), and so those of its own run.
SGD and every device the fused kernel does not cover keep torch.optim (`make_optimizer`).
"""

from __future__ import annotations

import inspect

import torch

from sae_core.config.run import RunConfig
from sae_core.train.trainer import FUSED_ADAM_DEVICES, make_optimizer


def _adam_defaults() -> dict:
    """torch.optim.Adam's default betas, eps, weight decay and amsgrad (read, not restated)."""
    params = inspect.signature(torch.optim.Adam).parameters
    return {name: params[name].default for name in ("betas", "eps", "weight_decay", "amsgrad", "maximize")}


class FusedAdam:
    """Adam over a fixed list of tensors (a block's stacked parameters), stepped from their `.grad`.

    The same contract as the part of torch.optim.Optimizer a block uses: `zero_grad()` then `step()`."""

    def __init__(self, params: list[torch.Tensor], lr: float) -> None:
        defaults = _adam_defaults()
        if defaults["amsgrad"] or defaults["maximize"] or defaults["weight_decay"]:
            raise ValueError("torch.optim.Adam's defaults changed; FusedAdam follows only the plain update")
        self.params, self.lr = params, lr
        self.beta1, self.beta2 = defaults["betas"]
        self.eps = defaults["eps"]
        self.exp_avgs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]
        self.exp_avg_sqs = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update of every tensor that has a gradient (a block's have all or none)."""
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        steps = [self.steps[i] for i in live]
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(
            [self.params[i] for i in live],
            [self.params[i].grad for i in live],
            [self.exp_avgs[i] for i in live],
            [self.exp_avg_sqs[i] for i in live],
            [],
            steps,
            amsgrad=False,
            lr=self.lr,
            beta1=self.beta1,
            beta2=self.beta2,
            weight_decay=0.0,
            eps=self.eps,
            maximize=False,
            grad_scale=None,
            found_inf=None,
        )


def block_optimizer(params: list[torch.Tensor], cfg: RunConfig, device: torch.device):
    """The optimizer of a block's stacked tensors: FusedAdam where the Trainer's Adam is the fused one,
    else the Trainer's own (`make_optimizer`)."""
    if cfg.train.optimizer == "adam" and device.type in FUSED_ADAM_DEVICES:
        return FusedAdam(params, cfg.train.lr)
    return make_optimizer(params, cfg, device)
