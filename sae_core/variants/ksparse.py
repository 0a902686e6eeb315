"""k-sparse autoencoder (Makhzani & Frey 2013): linear codes, of which only the k largest per sample survive.

h = topk(Wx + b), x̂ = g(W_d h + b_d). Sparsity is enforced by construction, so there is no penalty
term, whatever cfg.penalty says. With tied weights W_d = Wᵀ (the decoder keeps its own bias b_d).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..models import AEOutput, keep_topk


class KSparseAutoencoder(nn.Module):
    """Parameters: encoder.weight [hidden, n_inputs], encoder.bias [hidden], decoder_bias [n_inputs],
    and decoder.weight [n_inputs, hidden] unless tied."""

    activation = "linear"

    def __init__(
        self, n_inputs: int, hidden: int, k: int, tied: bool = False, output: str = "sigmoid"
    ) -> None:
        super().__init__()
        self.encoder = nn.Linear(n_inputs, hidden)
        self.decoder = None if tied else nn.Linear(hidden, n_inputs, bias=False)
        self.decoder_bias = nn.Parameter(torch.zeros(n_inputs))
        self.k, self.tied, self.output = k, tied, output
        with torch.no_grad():  # same scale as the sparse autoencoder's UFLDL initialisation
            r = math.sqrt(6.0) / math.sqrt(hidden + n_inputs + 1)
            for layer in (self.encoder, self.decoder):
                if layer is not None:
                    layer.weight.uniform_(-r, r)
            self.encoder.bias.zero_()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: [batch, n_inputs] -> h: [batch, hidden], k non-zeros per row (barring exact zeros)."""
        return keep_topk(self.encoder(x), self.k)

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """h: [batch, hidden] -> x̂: [batch, n_inputs]."""
        out = h @ self.dictionary().T + self.decoder_bias
        return torch.sigmoid(out) if self.output == "sigmoid" else out

    def forward(self, x: torch.Tensor) -> AEOutput:
        h = self.encode(x)
        return AEOutput(recon=self.decode(h), hidden=h)

    def sparsity_codes(self, out: AEOutput) -> None:
        """No penalty: top-k already keeps the code sparse (None tells losses.loss_terms to skip it)."""
        return None

    def decayed_weights(self) -> list[torch.Tensor]:
        return [self.encoder.weight] if self.tied else [self.encoder.weight, self.decoder.weight]

    def filters(self) -> torch.Tensor:
        """[hidden, n_inputs] the encoder weights."""
        return self.encoder.weight

    def dictionary(self) -> torch.Tensor:
        """[n_inputs, hidden] the decoder weights (Wᵀ when tied)."""
        return self.encoder.weight.T if self.tied else self.decoder.weight
