"""Autoencoder modules. Every model has `encode`, `decode` and a `forward` that returns `AEOutput`.

Variants register a builder in `BUILDERS`; `build(config, n_inputs, image_shape)` picks one.
The protocol the trainer and the views rely on:
- `forward(x [batch, n_inputs]) -> AEOutput`; `encode`, `decode`;
- `filters() -> [units, h·w]` first-layer weights drawn as tiles;
  `filter_shape` (h, w) when a tile is not the image shape;
- optional `dictionary() -> [n_inputs, units]`, `decayed_weights() -> list`, `activation` (str),
  `extra_terms(x, out, cfg) -> dict` (more loss terms), `snapshot_extras(x_show) -> dict` (more pictures),
  `sparsity_codes(out)` (the tensor the sparsity penalty acts on; None for no penalty),
  `reconstruction_term(recon, x) -> scalar` (replaces ½·mean‖x̂ − x‖², e.g. a Bernoulli likelihood).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from .config import ModelConfig

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "linear": lambda t: t,
}


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


def keep_topk(h: torch.Tensor, k: int) -> torch.Tensor:
    """Zero all but the k largest entries of each row (Makhzani & Frey, k-sparse autoencoders).

    h: [batch, hidden] -> [batch, hidden] with exactly k entries per row left as they were.
    Gradients flow only through the kept entries.
    """
    if k >= h.shape[1]:
        return h
    idx = h.topk(k, dim=1).indices
    return torch.zeros_like(h).scatter(1, idx, h.gather(1, idx))


class SparseAutoencoder(nn.Module):
    """One hidden layer: h = f(W₁x + b₁), x̂ = g(W₂h + b₂).

    Parameters are named as saved: encoder.weight [hidden, n_inputs], encoder.bias [hidden],
    decoder.weight [n_inputs, hidden], decoder.bias [n_inputs].
    """

    def __init__(
        self,
        n_inputs: int,
        hidden: int,
        activation: str = "sigmoid",
        output: str = "sigmoid",
        k: int | None = None,
    ) -> None:
        super().__init__()
        self.encoder = nn.Linear(n_inputs, hidden)
        self.decoder = nn.Linear(hidden, n_inputs)
        self.activation, self.output, self.k = activation, output, k
        self._act = ACTIVATIONS[activation]
        self.reset_parameters_ufldl_()

    @torch.no_grad()
    def reset_parameters_ufldl_(self) -> None:
        """UFLDL initialisation: W ~ U(-r, r), r = √6 / √(n_in + n_hidden + 1); biases zero.

        This keeps sigmoid units out of saturation at the start (UFLDL `initializeParameters.m`).
        """
        hidden, n_inputs = self.encoder.weight.shape
        r = math.sqrt(6.0) / math.sqrt(hidden + n_inputs + 1)
        for layer in (self.encoder, self.decoder):
            layer.weight.uniform_(-r, r)
            layer.bias.zero_()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: [batch, n_inputs] -> h: [batch, hidden]."""
        h = self._act(self.encoder(x))
        return keep_topk(h, self.k) if self.k is not None else h

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """h: [batch, hidden] -> x̂: [batch, n_inputs]."""
        out = self.decoder(h)
        return torch.sigmoid(out) if self.output == "sigmoid" else out

    def forward(self, x: torch.Tensor) -> AEOutput:
        h = self.encode(x)
        return AEOutput(recon=self.decode(h), hidden=h)

    def decayed_weights(self) -> list[torch.Tensor]:
        """The matrices that weight decay acts on (biases are not decayed, as in UFLDL)."""
        return [self.encoder.weight, self.decoder.weight]

    def filters(self) -> torch.Tensor:
        """[hidden, n_inputs] the encoder weights, one row per unit, drawn as filter images."""
        return self.encoder.weight

    def dictionary(self) -> torch.Tensor:
        """[n_inputs, hidden] the decoder weights; column j is what unit j adds to the output."""
        return self.decoder.weight


def _build_sparse(cfg: ModelConfig, n_inputs: int, image_shape: tuple[int, int]) -> nn.Module:
    k = cfg.k if cfg.penalty == "topk" else None
    return SparseAutoencoder(n_inputs, cfg.hidden, cfg.hidden_activation, cfg.output, k)


BUILDERS: dict[str, Callable[[ModelConfig, int, tuple[int, int]], nn.Module]] = {
    "sparse": _build_sparse,
}


def build(cfg: ModelConfig, n_inputs: int, image_shape: tuple[int, int]) -> nn.Module:
    """The model named by cfg.variant, sized for inputs of n_inputs = H·W pixels."""
    if cfg.variant not in BUILDERS:
        raise ValueError(f"variant {cfg.variant!r} is not available yet; choose one of {', '.join(BUILDERS)}")
    return BUILDERS[cfg.variant](cfg, n_inputs, image_shape)


# The other variants live in sae_core.variants, which adds its builders to BUILDERS on import. The import
# sits at the end because those modules import AEOutput, keep_topk and BUILDERS from this one.
from . import variants as _variants  # noqa: E402, F401
