"""Gradient checking, as in the UFLDL exercise: autograd against central differences.

The measure is UFLDL's: ‖g_analytic − g_numeric‖ / ‖g_analytic + g_numeric‖ per parameter tensor;
in float64 with eps = 1e-6 a correct gradient scores around 1e-9 or below.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .config import ModelConfig
from .losses import loss_terms
from .models import build

TOLERANCE = 1e-7
PENALTIES = ("kl", "l1", "topk", "none")


@torch.no_grad()
def numeric_grad(
    f: Callable[[], torch.Tensor], params: list[torch.Tensor], eps: float = 1e-6
) -> list[torch.Tensor]:
    """Central differences (f(θ + eps) − f(θ − eps)) / 2·eps for every element of every tensor in params.

    f: no-argument function returning a scalar; params are perturbed in place and restored.
    """
    grads = []
    for p in params:
        g = torch.zeros_like(p)
        flat, gflat = p.view(-1), g.view(-1)
        for i in range(flat.numel()):
            original = flat[i].item()
            flat[i] = original + eps
            plus = float(f())
            flat[i] = original - eps
            minus = float(f())
            flat[i] = original
            gflat[i] = (plus - minus) / (2 * eps)
        grads.append(g)
    return grads


def relative_error(analytic: torch.Tensor, numeric: torch.Tensor) -> float:
    """‖a − n‖ / ‖a + n‖; 0 when both are exactly zero."""
    denominator = float((analytic + numeric).norm())
    difference = float((analytic - numeric).norm())
    return 0.0 if denominator == 0.0 and difference == 0.0 else difference / max(denominator, 1e-300)


def check_gradients(
    model: nn.Module, x: torch.Tensor, cfg: ModelConfig, eps: float = 1e-6, seed: int = 0
) -> dict[str, float]:
    """Relative error of the autograd gradient of loss_terms(...)["total"] for each named parameter.

    x: [batch, n_inputs]. Use float64 for both model and x. The objective is re-seeded before each
    evaluation so that models with randomness in forward (denoising, variational) stay deterministic.
    """

    def objective() -> torch.Tensor:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return loss_terms(model, x, model(x), cfg)["total"]

    names, params = zip(*[(n, p) for n, p in model.named_parameters() if p.requires_grad], strict=True)
    analytic = torch.autograd.grad(objective(), params)
    numeric = numeric_grad(objective, list(params), eps)
    return {n: relative_error(a, g) for n, a, g in zip(names, analytic, numeric, strict=True)}


def kink_margin(model: nn.Module, x: torch.Tensor, cfg: ModelConfig) -> float:
    """How far the inputs x sit from a point where the objective is not differentiable.

    Top-k: smallest gap between the k-th and (k+1)-th pre-activation of a row (a finite-difference
    step must not swap which units are kept). ReLU: smallest |pre-activation|. Smooth models: inf.
    """
    with torch.no_grad():
        z = model.encoder(x)
    if cfg.penalty == "topk":
        top = z.topk(cfg.k + 1, dim=1).values
        return float((top[:, cfg.k - 1] - top[:, cfg.k]).min())
    if cfg.hidden_activation == "relu":
        return float(z.abs().min())
    return float("inf")


def tiny_problem(
    penalty: str, seed: int = 0, n_inputs: int = 6, hidden: int = 4, n_samples: int = 5
) -> tuple[nn.Module, torch.Tensor, ModelConfig]:
    """A float64 sparse autoencoder, inputs uniform in [0, 1] and a config with weight decay on.

    Inputs are redrawn until they are at least 1e-3 away from a kink (a top-k tie, a ReLU at zero).
    """
    cfg = ModelConfig(hidden=hidden, penalty=penalty, rho=0.1, beta=3.0, weight_decay=1e-2, k=2)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = build(cfg, n_inputs, (1, n_inputs)).double()
    with torch.no_grad():  # non-zero biases, so their gradients are exercised in general position
        for p in model.parameters():
            if p.ndim == 1:
                p.uniform_(-0.5, 0.5, generator=generator)
    for _ in range(1000):
        x = torch.rand(n_samples, n_inputs, generator=generator, dtype=torch.float64)
        if kink_margin(model, x, cfg) > 1e-3:
            return model, x, cfg
    raise RuntimeError("could not draw inputs away from the kinks")  # pragma: no cover


def check_all(seed: int = 0, eps: float = 1e-6) -> dict[str, dict[str, float]]:
    """penalty -> {parameter name -> relative error} on tiny_problem(penalty, seed)."""
    results = {}
    for penalty in PENALTIES:
        model, x, cfg = tiny_problem(penalty, seed)
        results[penalty] = check_gradients(model, x, cfg, eps)
    return results
