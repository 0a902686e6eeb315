"""k-sparse autoencoder (Makhzani & Frey 2013): linear codes, of which only the k largest per sample survive.

h = topk(Wx + b), x̂ = g(W_d h + b_d). Sparsity is enforced by construction, so there is no penalty
term, whatever cfg.penalty says. With tied weights W_d = Wᵀ (the decoder keeps its own bias b_d).
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from .base import AEOutput, Autoencoder, keep_topk, ufldl_range
from .spec import Control, VariantSpec, View


class KSparseAutoencoder(Autoencoder):
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
            r = ufldl_range(n_inputs, hidden)
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

    def sparsity_codes(self, out: AEOutput) -> None:
        """No penalty: top-k already keeps the code sparse (None tells losses.loss_terms to skip it)."""
        return None

    def filters(self) -> torch.Tensor:
        """[hidden, n_inputs] the encoder weights."""
        return self.encoder.weight

    def dictionary(self) -> torch.Tensor:
        """[n_inputs, hidden] the decoder weights (Wᵀ when tied)."""
        return self.encoder.weight.T if self.tied else self.decoder.weight


def build(cfg: ModelConfig, n_inputs: int, image_shape: tuple[int, int]) -> KSparseAutoencoder:
    return KSparseAutoencoder(n_inputs, cfg.hidden, cfg.k, cfg.tied, cfg.output)


SPEC = VariantSpec(
    name="ksparse",
    title="k-sparse (top-k)",
    note="Linear codes of which only the k largest per input survive (Makhzani & Frey 2013).",
    build=build,
    order=6,
    controls=(
        Control("k", "k (active units per sample)", minimum=1, step=1),
        Control("tied", "Tied weights (decoder = encoderᵀ)"),
    ),
    fixed_penalty="topk",
    penalty_reason="Top-k is this model's regulariser, so the sparsity penalty, ρ and β are not used.",
    views=(View("active_per_sample_chart", "ksparse:active_per_sample_figure"),),
    metrics="ksparse:ksparse_metrics",
)
