"""One unit's card (a feature dashboard): what it looks for and draws, how often it fires, the inputs
that drive it hardest and some typical ones, and what the reconstruction loses when it is switched off.

`build_card(model, x, unit)` computes it from a model and inputs x: [N, n_inputs]; `unit_card_draw` draws it
with plotly for the page and as a labelled PNG for `sae unit --out card.png`.

What a card's unit is (`card_layout`):
- a code unit j, for models whose penalty has one ρ̂ per code unit; its activation on an input is hⱼ;
- a kernel k, for a model whose penalty pools P code units into one ρ̂ (`sparsity_scale` P > 1: a conv
  kernel stands for one code unit per map position). Its activation on an input is the *max* of map k
  over positions (the kernel found its pattern somewhere; the top inputs are those it matches best
  anywhere), ρ̂ is the mean of map k over inputs and positions (the ρ̂ₖ the penalty pulls towards ρ),
  density the share of (input, position) pairs where it is active, and switching it off zeroes all of
  map k before decoding.

Its two pictures:
- the model's own weights where they belong to the card's units: the W₁ row and W₂ column of a model
  whose code is one layer away from the pixels (checked on its derivatives, not guessed from shapes: a
  deep net's first layer can have as many rows as the code by chance), or the encoder and decoder kernels;
- otherwise (deep, VAE) effective pictures computed from encode and decode alone: the *effective filter*,
  mean over the unit's top inputs of ∂hⱼ/∂x (what raises hⱼ; for a one-layer model the mean of
  f'(aⱼ)·W₁[j], parallel to the W₁ row), and the *decoder step* decode(a·eⱼ) − decode(0) with a the mean
  of hⱼ over its top inputs (a·W₂[:, j] for a linear one-layer decoder). For the VAE that step is a latent
  traversal from the prior's centre z = 0 along dimension j to a, the mean μⱼ of the inputs that push
  dimension j highest (a few prior standard units for a dimension in use).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sae_core.models.base import AEOutput
from sae_core.train import metrics

TOP = 9
"""Top-activating inputs shown."""
TYPICAL = 9
"""Random inputs shown, with the unit's activation on each."""
HISTOGRAM_BINS = 30
CHECK_INPUTS = 8
"""Inputs at which the model's derivatives are checked against its weights (`card_layout`)."""
PARALLEL_TOL = 1e-3
"""Relative mismatch below which `elementwise_of` holds (float32 rounding gives ~1e-6; a deeper map ~1)."""


@dataclass(frozen=True)
class CardLayout:
    """What the card's units are for one model, and which of its weights are pictures of them."""

    units: int
    """How many units a card can show: code units, or kernels."""
    columns: np.ndarray
    """[units, positions] int: the code columns each card unit stands for (one, or a kernel's map)."""
    filters: np.ndarray | None
    """[units, fh·fw] each unit's own first-layer weights (W₁ row, encoder kernel), or None: none are."""
    filter_shape: tuple[int, int]
    features: np.ndarray | None
    """[units, dh·dw] each unit's own last-layer weights (W₂ column, decoder kernel), or None."""
    feature_shape: tuple[int, int]

    @property
    def positions(self) -> int:
        """Code units per card unit: 1, or the positions of a kernel's map."""
        return int(self.columns.shape[1])

    @property
    def noun(self) -> str:
        return "kernel" if self.positions > 1 else "unit"

    def unit_of_tile(self, tile: int | None) -> int | None:
        """The card unit a filter-grid tile (a row of `model.filters()`) shows: the same number when the
        tiles are the units' own weights, else None (a deep net's or a VAE's first layer)."""
        if self.filters is None or isinstance(tile, bool) or not isinstance(tile, int):
            return None
        return tile if 0 <= tile < self.units else None


@dataclass(frozen=True)
class UnitCard:
    """Everything the card shows of unit `unit` (a code unit or a kernel, see `CardLayout`) on N inputs."""

    unit: int
    units: int
    """How many units (code units or kernels) a card can show for this model."""
    positions: int
    """Code units the card's unit stands for: 1, or the positions of a kernel's map."""
    image_shape: tuple[int, int]
    encoder_filter: np.ndarray
    """[fh·fw] what the unit looks for (see encoder_kind)."""
    encoder_kind: str
    """"row": its W₁ row; "kernel": its encoder kernel; "gradient": mean ∂(activation)/∂x, top inputs."""
    filter_shape: tuple[int, int]
    decoder_feature: np.ndarray
    """[dh·dw] what the unit draws (see decoder_kind)."""
    decoder_kind: str
    """"column": its W₂ column; "kernel": its decoder kernel; "step": decode(a·eⱼ) − decode(0)."""
    feature_shape: tuple[int, int]
    step_size: float
    """a: the mean activation over the top inputs (the code value of the "step" picture)."""
    activations: np.ndarray
    """[N] the unit's activation on every input: hⱼ, or the max of its map over positions."""
    active: np.ndarray
    """[N] bool, where the model counts the unit as active (`Autoencoder.active`), at any position."""
    rho_hat: float
    """Mean of hⱼ (of the whole map, over positions too) over the inputs: the penalty's ρ̂."""
    density: float
    """Share of the inputs (of (input, position) pairs) on which it is active."""
    threshold: float
    """The model's activity threshold (marked on the histogram)."""
    top_indices: np.ndarray
    """[TOP] inputs with the highest activation, highest first (metrics.top_activating)."""
    top_inputs: np.ndarray
    """[TOP, H·W]."""
    typical_indices: np.ndarray
    """[TYPICAL] random inputs (seeded)."""
    typical_inputs: np.ndarray
    recon_error: float
    """½·mean‖x̂ − x‖² of the model as it is."""
    ablated_recon_error: float
    """The same with the unit's code (all of its map) set to 0 before decoding."""

    @property
    def noun(self) -> str:
        return "kernel" if self.positions > 1 else "unit"

    @property
    def activation_name(self) -> str:
        """What `activations` holds, as the figure names it."""
        return f"max of map {self.unit}" if self.positions > 1 else "hⱼ"

    @property
    def ablation_increase(self) -> float:
        """How much the reconstruction error rises when the unit is switched off."""
        return self.ablated_recon_error - self.recon_error

    def numbers(self) -> dict[str, float | int]:
        """The card's numbers (what `sae unit` prints and --json writes)."""
        return {
            "unit": self.unit,
            "units": self.units,
            "positions": self.positions,
            "samples": int(self.activations.size),
            "rho_hat": self.rho_hat,
            "density": self.density,
            "max_activation": float(self.activations.max()),
            "recon_error": self.recon_error,
            "ablated_recon_error": self.ablated_recon_error,
            "ablation_increase": self.ablation_increase,
        }


# ----- what a card's unit is -------------------------------------------------------------------------------
def recon_error(recon: torch.Tensor, x: torch.Tensor) -> float:
    """½ · mean over samples of Σᵢ (x̂ᵢ − xᵢ)², as metrics.summary's recon_error."""
    return float(0.5 * (recon - x).pow(2).sum(dim=1).mean())


@torch.no_grad()
def ablate(model: nn.Module, codes: torch.Tensor, columns) -> torch.Tensor:
    """x̂ decoded from the codes [N, code units] with column(s) `columns` set to 0. -> [N, n_inputs]."""
    switched_off = codes.clone()
    switched_off[:, torch.as_tensor(columns, device=codes.device)] = 0.0
    return model.decode(switched_off)


@torch.no_grad()
def codes_of(model: nn.Module, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """The code of every row of x [N, D] with the model in eval mode (no corruption, the VAE's mean)."""
    was_training = model.training
    model.eval()
    codes = torch.cat([model.encode(part) for part in x.split(chunk)])
    model.train(was_training)
    return codes


def code_columns(model: nn.Module, code_units: int) -> np.ndarray:
    """[card units, positions]: column j alone per code unit, unless the penalty pools P = sparsity_scale
    code units into one ρ̂ (a conv kernel's map): then the columns `sparsity_codes` puts under each ρ̂."""
    positions = int(round(model.sparsity_scale))
    if positions > 1 and code_units % positions == 0:
        index = torch.arange(code_units).unsqueeze(0)
        pooled = model.sparsity_codes(AEOutput(recon=index, hidden=index))
        if pooled is not None and tuple(pooled.shape) == (positions, code_units // positions):
            return pooled.T.cpu().numpy()
    return np.arange(code_units)[:, None]


def elementwise_of(fn, points: torch.Tensor, weights: torch.Tensor, tol: float = PARALLEL_TOL) -> bool:
    """Whether the row-wise map fn: [n, a] -> [n, b] is φ(v·weightsᵀ + c) near `points` [n, a] for an
    elementwise φ and weights [b, a]: h = f(W₁x + b₁) with weights W₁, x̂ = g(W₂h + b₂) with W₂. Then every
    directional derivative is J·u = d ⊙ (W·u) with one d per point, so for two random directions u and v,
    (J·u) ⊙ (W·v) = (J·v) ⊙ (W·u); for a deeper map (a ReLU layer in between) it is not. A few passes,
    whatever the sizes; False when J·u is 0 everywhere (nothing to tell)."""
    generator = torch.Generator().manual_seed(0)
    u, v = (torch.randn(points.shape, generator=generator).to(points) for _ in range(2))
    ju, jv = (_jvp(fn, points, t) for t in (u, v))
    w = weights.detach().double()
    wu, wv = u.double() @ w.T, v.double() @ w.T
    left, right = ju * wv, jv * wu
    size = left.norm()
    return bool(size > 0) and bool((left - right).norm() <= tol * size)


def _jvp(fn, point: torch.Tensor, tangent: torch.Tensor) -> torch.Tensor:
    """J·tangent, the derivative of fn at `point` along `tangent`, in float64, by the double-backward trick:
    g(r) = Jᵀr is linear in r, and ∂(tangent·g)/∂r = J·tangent. (torch's forward-mode AD would do, but
    its first use loads TorchScript decompositions: seconds, and a deprecation warning.)"""
    with torch.enable_grad():
        x = point.detach().clone().requires_grad_(True)
        out = fn(x)
        r = torch.zeros_like(out, requires_grad=True)
        (g,) = torch.autograd.grad(out, x, r, create_graph=True, allow_unused=True)
        if g is None or not g.requires_grad:  # fn does not depend on its input here
            return torch.zeros_like(out, dtype=torch.float64)
        (derivative,) = torch.autograd.grad(g, r, tangent, allow_unused=True)
    return torch.zeros_like(out, dtype=torch.float64) if derivative is None else derivative.double()


def _own_rows(model: nn.Module, x: torch.Tensor, code_units: int) -> np.ndarray | None:
    """filters() [code units, D] when the code is one elementwise layer of them away (`elementwise_of`)."""
    w = model.filters().detach()
    if tuple(w.shape) != (code_units, x.shape[1]):
        return None
    return w.double().cpu().numpy() if elementwise_of(model.encode, x[:CHECK_INPUTS], w) else None


def _own_columns(model: nn.Module, codes: torch.Tensor, pixels: int) -> np.ndarray | None:
    """dictionary()ᵀ [code units, D] when x̂ is one elementwise layer of it away (`elementwise_of`)."""
    d = model.dictionary()
    if d is None or tuple(d.shape) != (pixels, codes.shape[1]):
        return None
    return d.T.double().cpu().numpy() if elementwise_of(model.decode, codes[:CHECK_INPUTS], d) else None


def _kernels(model: nn.Module, x: torch.Tensor, kernels: int, image_shape: tuple[int, int]):
    """(encoder kernels, their shape, decoder kernels, their shape) of a pooled code; None where absent."""
    shape = tuple(model.filter_shape(image_shape))
    w = model.filters().detach()
    filters = w.double().cpu().numpy() if tuple(w.shape) == (kernels, shape[0] * shape[1]) else None
    painted = model.snapshot_extras(x[:1], x[:1]).get("decoder_kernels")  # what one code unit paints
    ok = painted is not None and tuple(painted.shape) == (kernels, shape[0] * shape[1])
    features = painted.detach().double().cpu().numpy() if ok else None
    return filters, shape, features, shape if ok else tuple(image_shape)


@torch.no_grad()
def card_layout(model: nn.Module, x: torch.Tensor, image_shape: tuple[int, int]) -> CardLayout:
    """What a card's unit is for `model` (see the module's notes), from a few rows of x [N, H·W]."""
    image_shape = tuple(image_shape)
    was_training = model.training
    model.eval()
    try:
        codes = model.encode(x[:CHECK_INPUTS])
        columns = code_columns(model, codes.shape[1])
        if columns.shape[1] > 1:
            filters, filter_shape, features, feature_shape = _kernels(model, x, len(columns), image_shape)
            filter_shape = filter_shape if filters is not None else image_shape
        else:
            filters, features = _own_rows(model, x, codes.shape[1]), _own_columns(model, codes, x.shape[1])
            filter_shape = feature_shape = image_shape
    finally:
        model.train(was_training)
    return CardLayout(len(columns), columns, filters, filter_shape, features, feature_shape)


# ----- effective pictures ----------------------------------------------------------------------------------
def unit_activation(codes: torch.Tensor, columns) -> torch.Tensor:
    """codes [N, code units] -> [N] the card unit's activation: hⱼ, or the max of its map over positions."""
    return codes[:, torch.as_tensor(columns, device=codes.device)].amax(dim=1)


def effective_filter(model: nn.Module, x: torch.Tensor, columns) -> np.ndarray:
    """Mean over the rows of x [T, D] of ∂(unit activation)/∂x, the model in its current mode. -> [D].
    For h = f(W₁x + b₁) it is mean f'(aⱼ)·W₁[j]: what raises the unit, the W₁ row where it is one layer."""
    with torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        activation = unit_activation(model.encode(xg), columns)
        (grad,) = torch.autograd.grad(activation.sum(), xg, allow_unused=True)
    grad = torch.zeros_like(xg) if grad is None else grad
    return grad.mean(dim=0).detach().double().cpu().numpy()


@torch.no_grad()
def decoder_step(model: nn.Module, code_units: int, column: int, a: float) -> np.ndarray:
    """decode(a·e_column) − decode(0): what setting one code unit to a (all others 0) adds to x̂. -> [D].
    For x̂ = W₂h + b₂ it is a·W₂[:, column]; for the VAE a latent traversal from z = 0."""
    weight = next(model.parameters())
    z = torch.zeros(2, code_units, device=weight.device, dtype=weight.dtype)
    z[0, column] = a
    out = model.decode(z)
    return (out[0] - out[1]).double().cpu().numpy()


# ----- the card ---------------------------------------------------------------------------------------------
@torch.no_grad()  # effective_filter turns gradients on for itself
def build_card(
    model: nn.Module,
    x: torch.Tensor,
    unit: int,
    image_shape: tuple[int, int],
    top: int = TOP,
    typical: int = TYPICAL,
    seed: int = 0,
    layout: CardLayout | None = None,
) -> UnitCard:
    """The card of unit `unit` (a code unit or a kernel, see `card_layout`; pass `layout` when it is
    known) of `model` on inputs x: [N, H·W] (on the model's device).

    The model is put in eval mode for the card and back as it was; both reconstruction errors decode the
    eval-mode code, so the difference is the unit's alone.
    """
    layout = layout or card_layout(model, x, image_shape)
    if not 0 <= unit < layout.units:
        which = f" (the model's {layout.units} kernels)" if layout.positions > 1 else ""
        raise ValueError(f"unit must be in [0, {layout.units - 1}]{which}, got {unit}")
    codes = codes_of(model, x)
    columns = torch.as_tensor(layout.columns[unit], device=codes.device)
    acts = unit_activation(codes, columns)
    top_idx = metrics.top_activating(acts[:, None], top)[0]
    a = float(acts[top_idx].mean())
    active = model.active(codes)[:, columns]
    was_training = model.training
    model.eval()
    try:
        base = recon_error(model.decode(codes), x)
        ablated = recon_error(ablate(model, codes, columns), x)
        if layout.filters is not None:
            encoder, encoder_kind = layout.filters[unit], "kernel" if layout.positions > 1 else "row"
        else:
            encoder, encoder_kind = effective_filter(model, x[top_idx], columns), "gradient"
        if layout.features is not None:
            decoder, decoder_kind = layout.features[unit], "kernel" if layout.positions > 1 else "column"
        else:  # a kernel without its own decoder weights: one code unit of its map, the most used one
            busiest = int(columns[codes[:, columns].mean(dim=0).argmax()])
            decoder, decoder_kind = decoder_step(model, codes.shape[1], busiest, a), "step"
    finally:
        model.train(was_training)
    top_idx = top_idx.cpu().numpy()
    rng = np.random.default_rng(seed)
    typical_idx = np.sort(rng.choice(x.shape[0], size=min(typical, x.shape[0]), replace=False))
    inputs = x.detach().cpu().numpy()
    return UnitCard(
        unit=int(unit),
        units=layout.units,
        positions=layout.positions,
        image_shape=tuple(image_shape),
        encoder_filter=np.asarray(encoder, dtype=np.float64),
        encoder_kind=encoder_kind,
        filter_shape=layout.filter_shape if encoder_kind != "gradient" else tuple(image_shape),
        decoder_feature=np.asarray(decoder, dtype=np.float64),
        decoder_kind=decoder_kind,
        feature_shape=layout.feature_shape if decoder_kind != "step" else tuple(image_shape),
        step_size=a,
        activations=acts.detach().cpu().double().numpy(),
        active=active.any(dim=1).cpu().numpy(),
        rho_hat=float(codes[:, columns].double().mean()),
        density=float(active.double().mean()),
        threshold=float(model.active_threshold),
        top_indices=top_idx,
        top_inputs=inputs[top_idx],
        typical_indices=typical_idx,
        typical_inputs=inputs[typical_idx],
        recon_error=base,
        ablated_recon_error=ablated,
    )


def histogram(card: UnitCard, bins: int = HISTOGRAM_BINS) -> tuple[np.ndarray, np.ndarray]:
    """(counts [bins], edges [bins + 1]) of the unit's finite activations (a diverged model has NaNs)."""
    acts = card.activations[np.isfinite(card.activations)]
    lo, hi = (float(acts.min()), float(acts.max())) if acts.size else (0.0, 1.0)
    return np.histogram(acts, bins=bins, range=(lo, hi if hi > lo else lo + 1.0))


def summary_line(card: UnitCard, sep: str = ", ") -> str:
    """The card's numbers in words; `sep` goes before the ablation clause (the figure breaks the line)."""
    n = card.numbers()
    if card.positions > 1:
        head = f"kernel {n['unit']} of {n['units']} (its map: {card.positions} positions)"
        where = f"at {n['density']:.1%} of the positions of {n['samples']:,} inputs"
    else:
        head, where = f"unit {n['unit']} of {n['units']}", f"on {n['density']:.1%} of {n['samples']:,} inputs"
    return (
        f"{head}: ρ̂ = {n['rho_hat']:.4f}, active {where}{sep}switching it off raises the reconstruction "
        f"error by {n['ablation_increase']:.4g} ({n['recon_error']:.4g} → {n['ablated_recon_error']:.4g})"
    )
