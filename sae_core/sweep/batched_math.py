"""The batched maths of a sweep block: G one-hidden-layer autoencoders of one shape, trained as one.

A block's weights are stacked along a leading cell axis (`BlockParams`, names as below):

    W1 [G, H, D] encoder weights      b1 [G, H] encoder biases
    W2 [G, D, H] decoder weights      b2 [G, D] decoder biases       (no W2 when tied: the decoder is W1ᵀ)

Forward and backward are written out with batched matmuls (`torch.baddbmm` / `bmm`; one broadcast matmul
when the cells share their batch) instead of autograd: every cell's gradient is that of its own objective
(`sae_core.train.objective.loss_terms` of sae_core.models.sparse / denoising / ksparse, term by term), and the
hand-written backward skips what autograd would spend on a stack of 16 models of 784 → 196 (the weight
decay's graph alone cost more than all the matmuls). The sparsity term is the exception: it is the
penalty's own `term`, vmapped over the cells, and its gradient with respect to the codes comes from
torch.func, so no penalty's maths is written twice. tests/test_sweep.py checks the weights this gives
against sae_core.train.trainer.Trainer, variant by variant, so a change here that drifts from the models
fails.

Per-cell hyperparameters (ρ, β, λ) are [G] tensors; everything else (activation, penalty, k, corruption,
learning rate) is shared by the block (`Arch`). The penalty's code layer must be a fixed activation or
top-k (`sae_core.sweep.spec.sweepable`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.func import grad_and_value, vmap

from sae_core.penalties.registry import get_penalty
from sae_core.penalties.spec import ModelSettings, PenaltySpec

BlockParams = dict[str, torch.Tensor]
"""name ("W1", "b1", "W2", "b2") -> the stacked tensor of that parameter."""

TERM_ORDER = ("reconstruction", "sparsity", "weight_decay", "total")
"""The objective's terms in the order losses.loss_terms names them (sparsity only with a penalty term)."""


@dataclass(frozen=True)
class Arch:
    """What the cells of a block share beyond their shapes."""

    activation: str
    """The code's activation before top-k: sigmoid, relu or linear."""
    output: str
    """Decoder output: sigmoid or linear."""
    penalty: str
    """The objective's penalty (the config's `effective_penalty`): its spec's `term` is the sparsity term,
    if it has one."""
    topk: bool
    """Keep only the k largest units per sample (the top-k penalty, or the k-sparse variant)."""
    tied: bool = False
    """k-sparse with tied weights: the decoder is W1ᵀ."""
    corruption: str | None = None
    """Denoising: how the encoder's input is corrupted in training (None: not denoising)."""
    noise_level: float = 0.0
    model: ModelSettings | None = None
    """The block's model config: the fields a penalty's term reads besides ρ and β (those are per cell)."""

    @property
    def penalty_spec(self) -> PenaltySpec:
        return get_penalty(self.penalty)

    @property
    def terms(self) -> tuple[str, ...]:
        return tuple(t for t in TERM_ORDER if t != "sparsity" or self.penalty_spec.has_term)


@dataclass(frozen=True)
class Hyper:
    """Per-cell weights of the objective, each [G] float32 on the block's device."""

    rho: torch.Tensor
    beta: torch.Tensor
    lam: torch.Tensor


def _activate(z: torch.Tensor, activation: str) -> torch.Tensor:
    """In place: z is a fresh matmul output nobody else holds."""
    if activation == "sigmoid":
        return z.sigmoid_()
    if activation == "relu":
        return z.relu_()
    return z


def _encode(p: BlockParams, x: torch.Tensor, arch: Arch, k: int | None):
    """x: [B, D] shared by the cells or [G, B, D] -> (a: the activation [G, B, H], h: the code, mask:
    the kept units [G, B, H] bool, or None without top-k)."""
    w1, b1 = p["W1"], p["b1"]
    if x.ndim == 2:  # one batch for every cell: a broadcast matmul, no [G, B, D] copy of the batch
        z = torch.matmul(x, w1.transpose(1, 2)).add_(b1.unsqueeze(1))
    else:
        z = torch.baddbmm(b1.unsqueeze(1), x, w1.transpose(1, 2))
    a = _activate(z, arch.activation)
    if not arch.topk or k is None or k >= a.shape[2]:
        return a, a, None
    mask = torch.zeros_like(a, dtype=torch.bool).scatter_(2, a.topk(k, dim=2).indices, True)
    return a, torch.where(mask, a, 0.0), mask


def _decoder_t(p: BlockParams) -> torch.Tensor:
    """[G, H, D] the decoder's weights transposed (W1 itself when tied)."""
    return p["W1"] if "W2" not in p else p["W2"].transpose(1, 2)


def _decode(p: BlockParams, h: torch.Tensor, arch: Arch) -> torch.Tensor:
    """h: [G, B, H] -> x̂: [G, B, D]."""
    out = torch.baddbmm(p["b2"].unsqueeze(1), h, _decoder_t(p))
    return out.sigmoid_() if arch.output == "sigmoid" else out


@torch.no_grad()
def forward(p: BlockParams, x: torch.Tensor, arch: Arch, k: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Evaluation forward pass (clean inputs): x [B, D] -> (x̂ [G, B, D], codes [G, B, H])."""
    _, h, _ = _encode(p, x, arch, k)
    return _decode(p, h, arch), h


def _weight_norms(p: BlockParams) -> torch.Tensor:
    """[G] Σ‖W‖²_F over the decayed matrices (never a bias), as Autoencoder.decayed_weights."""
    norms = [torch.linalg.vector_norm(p[name], dim=(1, 2)) for name in ("W1", "W2") if name in p]
    return _add_all([n.square() for n in norms])  # one read of the weights, no [G, ...] temporary


class CellSettings:
    """One cell's model settings as its penalty's term reads them: ρ and β the cell's own (0-dim tensors
    under vmap), every other field the block's."""

    def __init__(self, model: ModelSettings | None, rho: torch.Tensor, beta: torch.Tensor) -> None:
        self._model, self.rho, self.beta = model, rho, beta

    def __getattr__(self, name: str) -> Any:
        if self._model is None:
            raise AttributeError(name)
        return getattr(self._model, name)


def _sparsity(h: torch.Tensor, arch: Arch, hp: Hyper) -> tuple[torch.Tensor, torch.Tensor]:
    """The penalty term [G] of each cell and its gradient with respect to the codes h [G, B, H]: the
    penalty's own `term` on each cell's codes, differentiated by torch.func."""
    penalty = arch.penalty_spec
    layer = penalty.code_layer(arch.model, h.shape[2])

    def cell_term(codes: torch.Tensor, rho: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return penalty.term(codes, CellSettings(arch.model, rho, beta), layer)

    slope, term = vmap(grad_and_value(cell_term))(h, hp.rho, hp.beta)
    return term, slope


@torch.no_grad()
def objective_and_grads(
    p: BlockParams, x_in: torch.Tensor, x: torch.Tensor, arch: Arch, hp: Hyper, k: int | None
) -> tuple[torch.Tensor, BlockParams]:
    """One step's objective and gradients for every cell.

    x_in: what the encoder sees (the corrupted batch for denoising), x: the clean batch it must rebuild;
    each [B, D] (shared by the cells) or [G, B, D]. Returns (terms [T, G] in `arch.terms` order, the
    gradient of each cell's total with respect to its own parameters, stacked like p).
    """
    a, h, mask = _encode(p, x_in, arch, k)
    recon = _decode(p, h, arch)
    batch = recon.shape[1]
    diff = recon - x
    terms = [0.5 * torch.linalg.vector_norm(diff, dim=2).square().mean(dim=1)]  # no [G, B, D] temporary
    # d/dx̂ of ½·mean_b Σ(x̂ − x)², then through the output sigmoid with autograd's own one-pass kernel.
    dz2 = diff.div_(batch)
    if arch.output == "sigmoid":
        dz2 = torch.ops.aten.sigmoid_backward(dz2, recon)
    dh = torch.bmm(dz2, _decoder_t(p).transpose(1, 2))
    if arch.penalty_spec.has_term:
        term, slope = _sparsity(h, arch, hp)
        terms.append(term)
        dh = dh.add_(slope)
    if mask is not None:  # only the kept units pass a gradient (keep_topk's gather / scatter)
        dh = dh.masked_fill_(~mask, 0.0)
    if arch.activation == "sigmoid":
        dh = torch.ops.aten.sigmoid_backward(dh, a)
    elif arch.activation == "relu":
        dh = dh.masked_fill_(a <= 0, 0.0)
    lam = hp.lam.view(-1, 1, 1)
    terms.append(0.5 * hp.lam * _weight_norms(p) if bool((hp.lam > 0).any()) else hp.lam * 0.0)
    grads = {"b1": dh.sum(dim=1), "b2": dz2.sum(dim=1)}
    x_cells = x_in.expand(len(dh), -1, -1) if x_in.ndim == 2 else x_in  # a view: no copy of the batch
    grads["W1"] = torch.bmm(dh.transpose(1, 2), x_cells)
    decoder = torch.bmm(dz2.transpose(1, 2), h)  # [G, D, H]: d/dW2
    if "W2" in p:
        grads["W2"] = decoder.addcmul_(p["W2"], lam)
    else:  # tied: W1 is the decoder too, so d/dW1 gets the decoder's (dz2ᵀh)ᵀ besides
        grads["W1"] = grads["W1"].add_(decoder.transpose(1, 2))
    grads["W1"] = grads["W1"].addcmul_(p["W1"], lam)  # weight decay: d/dW (λ/2)‖W‖² = λW
    terms.append(_add_all(terms))
    return torch.stack(terms), grads


def _add_all(terms: list[torch.Tensor]) -> torch.Tensor:
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def draw_corruption(x: torch.Tensor, arch: Arch, generator: torch.Generator) -> torch.Tensor:
    """The denoising variant's corrupted copy of x [B, D], drawn as models.denoising.corrupt draws it from
    the global RNG (same calls in the same order), here from a cell's own generator on x's device."""

    def draw(fn):
        return fn(x.shape, generator=generator, device=x.device, dtype=x.dtype)

    level = arch.noise_level
    if arch.corruption == "gaussian":
        return x + level * draw(torch.randn)
    hit = draw(torch.rand) < level
    if arch.corruption == "mask":
        return x.masked_fill(hit, 0.0)
    salt = (draw(torch.rand) < 0.5).to(x.dtype)
    return torch.where(hit, salt, x)
