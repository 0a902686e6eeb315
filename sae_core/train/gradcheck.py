"""Gradient checking, as in the UFLDL exercise: autograd against central differences, for every variant.

The measure is UFLDL's: ‖g_analytic − g_numeric‖ / ‖g_analytic + g_numeric‖ per parameter tensor;
in float64 with eps = 1e-6 a correct gradient scores around 1e-8 or below (the deep and VAE models, with
more layers for round-off to pass through, come closest to TOLERANCE: up to ~3e-8 over seeds 0-5).
Every variant is checked with every penalty it takes, on a tiny model (`tiny_problem`) drawn away from
the objective's kinks, in training mode with its noise (denoising, VAE) fixed by a seed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from sae_core.config.run import ModelConfig
from sae_core.models import VARIANTS, AEOutput, build, get_spec
from sae_core.train.objective import loss_terms

TOLERANCE = 1e-7


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
        return loss_terms(model, x, seeded_forward(model, x, seed), cfg)["total"]

    names, params = zip(*checked_parameters(model), strict=True)
    analytic = torch.autograd.grad(objective(), params)
    numeric = numeric_grad(objective, list(params), eps)
    errors = {n: relative_error(a, g) for n, a, g in zip(names, analytic, numeric, strict=True)}
    estimated = [n for n, p in model.named_parameters() if p.requires_grad and n not in errors]
    if estimated:  # straight-through: the penalty's own check, against the smoothed step it differentiates
        error = cfg.penalty_spec.straight_through_check()
        errors.update({n: error for n in estimated})
    return {n: errors[n] for n, p in model.named_parameters() if p.requires_grad}


def checked_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The parameters whose gradient finite differences can check: all that train, except those of a code
    layer whose gradient is a straight-through estimate (JumpReLU's thresholds: the true derivative of a
    step is 0, the estimate is not)."""
    code = model.code_layer if isinstance(getattr(model, "code_layer", None), nn.Module) else None
    skipped = {id(p) for p in code.parameters()} if getattr(code, "straight_through", False) else set()
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad and id(p) not in skipped]


TINY_SETTINGS = dict(
    hidden=4, layers=(5, 3), kernels=2, kernel_size=3, latent=2, k=2, rho=0.1, beta=3.0, weight_decay=1e-2
)
"""The tiny model every variant is checked on (with its own fields where it has them)."""
TINY_IMAGE = (2, 3)
"""Inputs are 2×3 images (6 pixels): small enough for a finite difference per weight, 2-D for conv."""
KINK_MARGIN = 1e-3
MIN_GRADIENT = 1e-2


def penalties_of(variant: str) -> tuple[str, ...]:
    """The penalties a variant is checked with: all it takes, or the one it has instead of a choice."""
    spec = get_spec(variant)
    return (spec.fixed_penalty,) if spec.fixed_penalty is not None else spec.penalties


def seeded_forward(model: nn.Module, x: torch.Tensor, seed: int) -> AEOutput:
    """model(x) with its training noise (denoising's corruption, the VAE's ε) drawn from a generator seeded
    with `seed`: the same draws at every call, so finite differences compare one function."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    return model(x, noise=model.draw_noise(x, generator))


def kink_margin(model: nn.Module, x: torch.Tensor, cfg: ModelConfig, seed: int = 0) -> float:
    """How far the objective at inputs x sits from a point where it is not differentiable.

    Conservative and variant-blind: the smallest |output| of every linear and convolutional layer (any of
    them may feed a ReLU), and with top-k the smallest gap between the k-th and (k+1)-th largest output of
    a layer per sample (a finite-difference step must not swap which units are kept). Evaluated on the
    forward pass the check differentiates (same seed, so the same noise). Smooth everywhere: inf.
    """
    outputs: list[torch.Tensor] = []
    layers = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: outputs.append(out.detach().flatten(1)))
        for m in model.modules()
        if isinstance(m, layers)
    ]
    code = getattr(model, "code_layer", None)
    if hasattr(code, "kink_distance"):  # a code layer with jumps of its own (JumpReLU at its thresholds)
        hooks.append(
            code.register_forward_pre_hook(
                lambda m, inputs: outputs.append(m.kink_distance(inputs[0]).detach().flatten(1))
            )
        )
    try:
        with torch.no_grad():
            seeded_forward(model, x, seed)
    finally:
        for hook in hooks:
            hook.remove()
    margin = float("inf")
    for z in outputs:
        margin = min(margin, float(z.abs().min()))
        if cfg.uses_topk and z.shape[1] > cfg.k:
            top = z.topk(cfg.k + 1, dim=1).values
            margin = min(margin, float((top[:, cfg.k - 1] - top[:, cfg.k]).min()))
    return margin


def tiny_problem(
    penalty: str, seed: int = 0, n_samples: int = 5, variant: str = "sparse", **changes: object
) -> tuple[nn.Module, torch.Tensor, ModelConfig]:
    """A float64 model of `variant` with `penalty` on 2×3 images, inputs uniform in [0, 1], weight decay on.

    Every weight and bias is drawn from U(−1, 1), so biases are exercised in general position and the
    gradients are large enough for a relative error to mean something; weights and inputs are redrawn
    until the inputs are at least KINK_MARGIN away from a kink (a top-k tie, a ReLU at zero) and every
    tensor's gradient has a norm above MIN_GRADIENT.
    `changes`: further ModelConfig fields (e.g. corruption="mask").
    """
    cfg = ModelConfig(**{**TINY_SETTINGS, "variant": variant, "penalty": penalty, **changes})
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    n_inputs = TINY_IMAGE[0] * TINY_IMAGE[1]
    model = build(cfg, n_inputs, TINY_IMAGE).double()
    model.train()  # the corrupted / sampled path is the one trained, so the one checked
    for _ in range(1000):
        with torch.no_grad():
            for p in model.parameters():
                p.uniform_(-1.0, 1.0, generator=generator)
        x = torch.rand(n_samples, n_inputs, generator=generator, dtype=torch.float64)
        if (
            kink_margin(model, x, cfg, seed) > KINK_MARGIN
            and smallest_gradient(model, x, cfg, seed) > MIN_GRADIENT
        ):
            return model, x, cfg
    raise RuntimeError("could not draw a model and inputs away from the kinks")  # pragma: no cover


def smallest_gradient(model: nn.Module, x: torch.Tensor, cfg: ModelConfig, seed: int = 0) -> float:
    """The smallest norm of any parameter tensor's gradient: a check of a zero gradient (every ReLU of a
    layer off) passes whatever the backward does, so tiny_problem redraws such points."""
    params = [p for _, p in checked_parameters(model)]
    total = loss_terms(model, x, seeded_forward(model, x, seed), cfg)["total"]
    return min(float(g.norm()) for g in torch.autograd.grad(total, params))


def check_all(
    seed: int = 0, eps: float = 1e-6, variants: Iterable[str] | None = None
) -> dict[tuple[str, str], dict[str, float]]:
    """(variant, penalty) -> {parameter name -> relative error} on tiny_problem, for every penalty each
    variant takes; variants: names (default: every registered variant)."""
    results = {}
    for variant in VARIANTS if variants is None else variants:
        for penalty in penalties_of(variant):
            model, x, cfg = tiny_problem(penalty, seed, variant=variant)
            results[variant, penalty] = check_gradients(model, x, cfg, eps, seed)
    return results
