"""JumpReLU codes with an L0 penalty: a learned threshold θⱼ per unit, trained through a straight-through
estimator (Rajamanoharan et al. 2024, "Jumping Ahead: Improving Reconstruction Fidelity with JumpReLU
Sparse Autoencoders"; the SAE used by Gemma Scope and SAELens' "jumprelu" architecture).

    hⱼ = zⱼ · H(zⱼ − θⱼ)                       (H the Heaviside step: a unit is on only above its threshold)
    sparsity term = β · mean over samples of Σⱼ H(zⱼ − θⱼ)       (L0: how many units are on)

Neither H nor the jump has a useful derivative with respect to θ (zero almost everywhere), so the backward
pass replaces it with that of the same function smoothed by a rectangle of width ε (the bandwidth):

    ∂/∂θ H(z − θ)     := −(1/ε) · K((z − θ)/ε)
    ∂/∂θ [z·H(z − θ)] := −(z/ε) · K((z − θ)/ε),       K(u) = 1 for |u| < ½, else 0

The paper writes θ where this writes z in the second line; inside the window z is within ε/2 of θ, and
with z the estimate is exactly the derivative of the smoothed z·ramp((z − θ)/ε), which the gradient check
uses. The gradient with respect to z is the ordinary one: H(z − θ) through the jump, 0 through the L0 step.
θ = exp(log θ) keeps the thresholds positive.
"""

from __future__ import annotations

import torch
from torch import nn

from sae_core.fields import Setting
from sae_core.penalties.spec import ModelSettings, PenaltySpec


def _window(z: torch.Tensor, theta: torch.Tensor, eps: float) -> torch.Tensor:
    """K((z − θ)/ε): 1 where z is within ε/2 of θ."""
    return ((z - theta).abs() < eps / 2).to(z.dtype)


def _sum_to(grad: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum a broadcast gradient back to a parameter's shape."""
    while grad.dim() > len(shape):
        grad = grad.sum(dim=0)
    for i, n in enumerate(shape):
        if n == 1 and grad.shape[i] != 1:
            grad = grad.sum(dim=i, keepdim=True)
    return grad


class JumpFunction(torch.autograd.Function):
    """z·H(z − θ) forward; the straight-through θ-derivative above backward. Written with `setup_context`
    so that torch.func can vmap it (a sweep trains its cells' code layers as one)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(z: torch.Tensor, theta: torch.Tensor, eps: float) -> torch.Tensor:
        return z * (z > theta).to(z.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        z, theta, eps = inputs
        ctx.save_for_backward(z, theta)
        ctx.eps = eps

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        z, theta = ctx.saved_tensors
        grad_z = grad * (z > theta).to(z.dtype)
        grad_theta = _sum_to(-grad * (z / ctx.eps) * _window(z, theta, ctx.eps), theta.shape)
        return grad_z, grad_theta, None


class StepFunction(torch.autograd.Function):
    """H(z − θ) forward; −(1/ε)·K((z − θ)/ε) towards θ and nothing towards z backward."""

    generate_vmap_rule = True

    @staticmethod
    def forward(z: torch.Tensor, theta: torch.Tensor, eps: float) -> torch.Tensor:
        return (z > theta).to(z.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        z, theta, eps = inputs
        ctx.save_for_backward(z, theta)
        ctx.eps = eps

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        z, theta = ctx.saved_tensors
        grad_theta = _sum_to(-grad * _window(z, theta, ctx.eps) / ctx.eps, theta.shape)
        return None, grad_theta, None


def ramp(z: torch.Tensor, theta: torch.Tensor, eps: float) -> torch.Tensor:
    """H(z − θ) smoothed by the rectangle of width ε: clamp((z − θ)/ε + ½, 0, 1)."""
    return ((z - theta) / eps + 0.5).clamp(0.0, 1.0)


class JumpReLU(nn.Module):
    """The code layer: hⱼ = zⱼ·H(zⱼ − θⱼ) with a learned θⱼ per unit (per kernel for feature maps).

    It keeps the step H(z − θ) of its last forward pass (`gate`) for the L0 term, which is computed from
    the same pass right after it. Parameter: log_threshold [units, 1, ...] (the trailing 1s broadcast
    over a conv model's positions).
    """

    activation = "jumprelu"
    active_threshold = 0.0
    """Off units are exactly 0, so active means non-zero."""
    straight_through = True
    """Its parameters' gradient is an estimate: a finite difference cannot check it (`straight_through_check`
    does, against the smoothed function)."""

    def __init__(self, units: int, threshold: float, bandwidth: float, trailing: int = 0) -> None:
        super().__init__()
        self.bandwidth = bandwidth
        self.log_threshold = nn.Parameter(torch.full((units, *([1] * trailing)), float(threshold)).log())
        self.gate: torch.Tensor | None = None

    @property
    def threshold(self) -> torch.Tensor:
        return self.log_threshold.exp()

    def kink_distance(self, z: torch.Tensor) -> torch.Tensor:
        """|z − θ|: how far each pre-activation is from its unit's jump (a gradient check keeps off it)."""
        return (z - self.threshold).abs()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        theta = self.threshold
        self.gate = StepFunction.apply(z, theta, self.bandwidth)
        return JumpFunction.apply(z, theta, self.bandwidth)


def l0_term(codes: torch.Tensor, cfg: ModelSettings, code_layer: nn.Module) -> torch.Tensor:
    """β · mean over the code's rows of Σ H(z − θ): the L0 of the last forward pass. The gate has one entry
    per code entry (a conv model's rows are its positions, and the variant's `sparsity_scale` weighs them)."""
    gate = code_layer.gate
    if gate is None or gate.numel() != codes.numel():
        raise RuntimeError("the JumpReLU L0 term needs the gate of the forward pass that made these codes")
    return cfg.beta * gate.sum() / codes.shape[0]


def code_layer(cfg: ModelSettings, units: int, trailing: int = 0) -> nn.Module:
    return JumpReLU(units, cfg.jump_threshold, cfg.jump_bandwidth, trailing)


def straight_through_check(seed: int = 0) -> float:
    """The estimate's θ-gradient against central differences of the smoothed function it stands for.

    S(θ) = Σ g ⊙ z·H(z − θ) + Σ H(z − θ) on random z, g: the autograd gradient (straight-through) is
    compared with the numerical derivative of g ⊙ z·ramp + ramp, in float64. Returns the relative error.
    """
    gen = torch.Generator().manual_seed(seed)
    eps = 0.1
    z = torch.rand(64, 5, generator=gen, dtype=torch.float64)
    g = torch.randn(64, 5, generator=gen, dtype=torch.float64)
    theta = torch.full((5,), 0.5, dtype=torch.float64, requires_grad=True)
    (JumpFunction.apply(z, theta, eps) * g + StepFunction.apply(z, theta, eps)).sum().backward()
    analytic = theta.grad.clone()

    def smooth(t: torch.Tensor) -> torch.Tensor:
        r = ramp(z, t, eps)
        return (z * r * g + r).sum()

    h = 1e-6
    numeric = torch.zeros_like(analytic)
    for j in range(theta.numel()):
        step = torch.zeros_like(analytic)
        step[j] = h
        numeric[j] = (smooth(theta.detach() + step) - smooth(theta.detach() - step)) / (2 * h)
    return float((analytic - numeric).norm() / (analytic + numeric).norm().clamp_min(1e-12))


def term_tex(cfg: ModelSettings, beta: str, units: int, j: str) -> str:
    per_sample = rf"\sum_{{{j}=1}}^{{{units}}} H\bigl(z_{j}^{{(i)}} - \theta_{j}\bigr)"
    return rf"{beta}\cdot\frac{{1}}{{m}}\sum_{{i=1}}^{{m}}" + per_sample


def code_tex(cfg: ModelSettings) -> list[str]:
    # The note is a line of text alone: a line mixing text and symbols is what KaTeX clips in a column.
    return [r"h_j &= z_j\,H(z_j - \theta_j)", r"&\quad \text{a threshold learned per unit}"]


SPEC = PenaltySpec(
    name="jumprelu",
    title="JumpReLU + L0 (learned θ)",
    short="JumpReLU",
    order=4,
    activation="jumprelu",
    required_activation="jumprelu",
    term=l0_term,
    uses_beta=True,
    hidden_reason="ρ is not used by JumpReLU: its L0 term counts active units, with no target.",
    beta_default=0.05,
    beta_max=1.0,
    beta_stops=(0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
    explore_betas="0, 0.01, 0.05, 0.2",
    term_label="sparsity (β·L0)",
    term_tex=term_tex,
    code_tex=code_tex,
    describe=lambda cfg: [f"JumpReLU β {cfg.beta:g}"],
    dead_units_cause=lambda cfg, lr: (
        f"the L0 weight β = {cfg.beta:g} raises the thresholds above every input's pre-activation; try a "
        "smaller β or a smaller initial threshold"
    ),
    demo=({"penalty": "jumprelu", "beta": 0.05}, {"lr": 0.05, "batch_size": 256}),
    demo_title="L0 on JumpReLU units",
    settings_note=lambda cfg: f"β = {cfg.beta:g}, θ₀ = {cfg.jump_threshold:g}",
    code_layer=code_layer,
    plain_code=False,
    straight_through_check=straight_through_check,
    settings=(
        Setting(
            "jump_threshold",
            "float",
            0.3,
            "JumpReLU: each unit's threshold θ at the start.",
            label="Initial threshold θ₀",
            step=0.01,
            minimum=0.0,
            maximum=10.0,
            above_minimum=True,
        ),
        Setting(
            "jump_bandwidth",
            "float",
            0.2,
            "JumpReLU: width ε of the window in which the straight-through estimate moves θ.",
            label="Bandwidth ε (straight-through window)",
            step=0.01,
            minimum=0.0,
            maximum=10.0,
            above_minimum=True,
        ),
    ),
    summary=(
        "**JumpReLU + L0**: a unit passes its input z only above a threshold θ it learns, and the penalty "
        "counts the units that are on (L0), the sparsity measure itself rather than a stand-in for it. A "
        "count has no slope, so θ learns through a straight-through estimate: the step is treated as a "
        "ramp of width ε when gradients flow back. Today's language-model SAEs (Gemma Scope) use it."
    ),
    instead_of_kl=(
        "Its penalty is L0 on JumpReLU units: β times the number of units above their learned thresholds; "
        "there is no target ρ."
    ),
)
