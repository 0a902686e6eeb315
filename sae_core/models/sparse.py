"""The sparse autoencoder of the UFLDL exercise: one hidden layer, h = f(W₁x + b₁), x̂ = g(W₂h + b₂)."""

from __future__ import annotations

import torch
from torch import nn

from sae_core.models.base import ACTIVATIONS, Autoencoder, ModelSettings, keep_topk, ufldl_range
from sae_core.models.spec import VariantSpec


class SparseAutoencoder(Autoencoder):
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
        """UFLDL initialisation: W ~ U(-r, r), r = √6 / √(n_in + n_hidden + 1); biases zero."""
        hidden, n_inputs = self.encoder.weight.shape
        r = ufldl_range(n_inputs, hidden)
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

    def filters(self) -> torch.Tensor:
        """[hidden, n_inputs] the encoder weights, one row per unit, drawn as filter images."""
        return self.encoder.weight

    def dictionary(self) -> torch.Tensor:
        """[n_inputs, hidden] the decoder weights; column j is what unit j adds to the output."""
        return self.decoder.weight


def topk_of(cfg: ModelSettings) -> int | None:
    """k when the top-k penalty is chosen, else None (for variants that take any penalty on their code)."""
    return cfg.k if cfg.penalty == "topk" else None


def build(cfg: ModelSettings, n_inputs: int, image_shape: tuple[int, int]) -> SparseAutoencoder:
    return SparseAutoencoder(n_inputs, cfg.hidden, cfg.hidden_activation, cfg.output, topk_of(cfg))


SPEC = VariantSpec(
    name="sparse",
    title="Sparse (one hidden layer)",
    note="The UFLDL sparse autoencoder: one hidden layer whose units the penalty keeps mostly silent.",
    build=build,
    order=0,
)
