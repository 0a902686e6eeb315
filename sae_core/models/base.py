"""What every autoencoder variant shares: the forward-output type, small helpers and the model protocol.

`Autoencoder` is the protocol as a base class with defaults: a variant overrides only what differs from
the one-hidden-layer sparse autoencoder. The trainer, the losses and the views call these methods and
never probe a model with `hasattr`.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from sae_core.penalties.code import ACTIVE_THRESHOLD, CodeLayer

ModelSettings = Any
"""A `sae_core.config.sections.ModelConfig`. The config is assembled from the variants' specs (sae_core.config
sits above this package), so the models read its fields without importing it."""


def reconstruction_loss(recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """½ · mean over samples of Σᵢ (x̂ᵢ − xᵢ)². recon, x: [batch, n_inputs] -> scalar.

    Written as one fused squared-error sum (forward and backward one kernel each) rather than a
    difference, a square and two reductions: a sweep step of 16 cells of 784 → 196 took 0.85 of the time
    (interleaved A/B in one process, 2026-12-07)."""
    return F.mse_loss(recon, x, reduction="sum") * (0.5 / recon.shape[0])


def is_active(codes: torch.Tensor, threshold: float) -> torch.Tensor:
    """[N, H] bool: |code| > threshold. With threshold 0 that is "non-zero", whatever the sign."""
    return codes.abs() > threshold


class AEOutput(NamedTuple):
    """What a forward pass hands to the losses and the views."""

    recon: torch.Tensor
    """[batch, n_inputs] reconstruction of the (clean) input."""
    hidden: torch.Tensor
    """[batch, n_hidden] the code the sparsity penalty acts on."""
    mu: torch.Tensor | None = None
    """Variational variant: [batch, latent] posterior mean."""
    logvar: torch.Tensor | None = None
    """Variational variant: [batch, latent] posterior log-variance."""
    corrupted: torch.Tensor | None = None
    """Denoising variant: [batch, n_inputs] the corrupted input actually encoded."""


def ufldl_range(n_in: int, n_out: int) -> float:
    """UFLDL's initialisation range r = √6 / √(n_in + n_out + 1) (`initializeParameters.m`): weights drawn
    from U(−r, r) keep sigmoid units out of saturation at the start."""
    return math.sqrt(6.0) / math.sqrt(n_in + n_out + 1)


class Autoencoder(nn.Module):
    """The protocol of every variant, with the defaults of the one-hidden-layer sparse autoencoder.

    Must be given: `encode`, `decode`, `filters`. `forward` returns `AEOutput`.
    `activation` names the code's activation (sigmoid, relu or linear); it sets the activity threshold.
    """

    activation: str = "sigmoid"
    traceable: bool = True
    """Whether a sweep may record this model's training step once and replay it (sae_core.sweep.traced).
    Set False for a forward pass that keeps Python state between calls: a replay would not see it change."""

    @property
    def code_layer(self) -> nn.Module | None:
        """The layer that makes the code from its pre-activations (`sae_core.penalties.code`): the
        activation and what the penalty does to the code (top-k, JumpReLU's learned thresholds). None: the
        variant makes its code itself (k-sparse, the VAE), with `activation` naming it. A variant sets it
        with `self.code_layer = ...` (a submodule, so its parameters train and are saved)."""
        return self._modules.get("code_layer")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: [batch, n_inputs] -> h: [batch, units]."""
        raise NotImplementedError

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """h: [batch, units] -> x̂: [batch, n_inputs]."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> AEOutput:
        """noise: the training-time random draws of a variant that has them (`draw_noise`); ignored here."""
        h = self.encode(x)
        return AEOutput(recon=self.decode(h), hidden=h)

    def draw_noise(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor | None:
        """The random draws one training forward pass on the batch x needs (the denoising variant's
        corruption, the VAE's ε), from `generator` (on x's device; None: torch's global RNG), or None for a
        variant without any. The trainer draws them from the run's own generator and hands them to
        `forward`, so a run's noise does not depend on what other runs draw at the same time, and a sweep
        gives each cell the draws its own run would make."""
        return None

    def filters(self) -> torch.Tensor:
        """[units, pixels] the first-layer weights in pixel space, one row per tile of `filter_shape`."""
        raise NotImplementedError

    def filter_shape(self, image_shape: tuple[int, int]) -> tuple[int, int]:
        """(h, w) of one filter tile: the image shape unless the filters are smaller (conv kernels)."""
        return tuple(image_shape)

    def dictionary(self) -> torch.Tensor | None:
        """[n_inputs, units] the last layer's weights (column j: what unit j adds to x̂); None if none."""
        return None

    def decayed_weights(self) -> list[torch.Tensor]:
        """The tensors weight decay acts on: every weight matrix or kernel, never a bias (as in UFLDL)."""
        own = {id(p) for p in self.code_layer.parameters()} if self.code_layer is not None else set()
        return [p for p in self.parameters() if p.ndim >= 2 and id(p) not in own]

    @property
    def active_threshold(self) -> float:
        """The |code| above which a unit counts as active (L0, dead units, density)."""
        if self.code_layer is not None:
            return self.code_layer.active_threshold
        return ACTIVE_THRESHOLD[self.activation]

    active_by_row = True
    """Whether `active` decides each row on its own (then a dataset can be evaluated in chunks of rows);
    the VAE's decides from the variance over all the rows it is given."""

    def active(self, codes: torch.Tensor) -> torch.Tensor:
        """codes: [N, units] -> [N, units] bool, which units are active on which samples (L0, dead
        units, density): |code| > active_threshold unless the code is not a unit activation (the VAE)."""
        return is_active(codes, self.active_threshold)

    def reconstruction_term(self, recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The objective's reconstruction term: ½·mean‖x̂ − x‖² unless a variant's likelihood replaces it."""
        return reconstruction_loss(recon, x)

    def sparsity_codes(self, out: AEOutput) -> torch.Tensor | None:
        """The tensor the sparsity penalty acts on, [rows, units] (ρ̂ is its column mean); None: no penalty."""
        return out.hidden

    def set_step_(self, step: int, total_steps: int) -> bool:
        """Called by the trainer before each step (`step` steps done of `total_steps`, 0: until paused)
        for what follows a schedule (k-sparse's k). Returns whether the objective changed."""
        return False

    @property
    def sparsity_scale(self) -> float:
        """The sparsity term's weight beyond β: how many code units of a sample each column of
        `sparsity_codes` stands for (1; a conv kernel stands for one unit per map position)."""
        return 1.0

    def extra_terms(self, x: torch.Tensor, out: AEOutput, cfg: ModelSettings) -> dict[str, torch.Tensor]:
        """Loss terms of the variant's own beyond reconstruction, sparsity and weight decay."""
        return {}

    def snapshot_extras(self, show: torch.Tensor, probe: torch.Tensor) -> dict[str, torch.Tensor]:
        """Extra arrays the variant's views draw, computed from the shown inputs [shown, n_inputs] and the
        probe set [n_probe, n_inputs] with the model in eval mode. The views must not recompute model maths,
        so anything they need beyond the codes belongs here."""
        return {}


class CodedAutoencoder(Autoencoder):
    """A variant whose code comes out of a code layer (`self.code_layer`, set in its __init__): its
    activation and top-k's k are the layer's."""

    @property
    def activation(self) -> str:
        """The code's activation (its code layer's)."""
        return self.code_layer.activation

    @property
    def k(self) -> int | None:
        """Units kept per sample when the code is top-k, else None."""
        return getattr(self.code_layer, "k", None)


def make_code_layer(activation: str, k: int | None, code: nn.Module | None) -> nn.Module:
    """`code` when a variant's build passed the penalty's code layer, else the plain one the arguments name
    (models built directly, as the tests and the sweep do)."""
    return code if code is not None else CodeLayer(activation, k)
