"""Convolutional autoencoder: one strided convolution, sparse feature maps, a transposed-conv decoder.

x [batch, H·W] is seen as one grey channel [batch, 1, H, W]. The encoder convolves it with `kernels`
kernels of side ks (padding ks // 2, stride 2), giving maps [batch, kernels, h', w'] with h' = ⌈H/2⌉,
w' = ⌈W/2⌉. The decoder is the transposed convolution back to [batch, 1, H, W]: every code unit paints
its decoder kernel at its place. Stride 2 keeps the code (kernels·h'·w' units) four times smaller than a
same-size map, which matters because the views copy the codes of the whole probe set.

Sparsity acts per kernel: ρ̂ₖ is the mean of map k over the batch *and* over positions, since a kernel
is one feature detector shared by every position (see `sparsity_codes`). The L1 penalty is then
β · mean over (sample, position) of Σₖ |hₖ|.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..models import ACTIVATIONS, AEOutput, keep_topk


class ConvAutoencoder(nn.Module):
    """Parameters: encoder (Conv2d 1 -> kernels) and decoder (ConvTranspose2d kernels -> 1)."""

    def __init__(
        self,
        image_shape: tuple[int, int],
        kernels: int,
        kernel_size: int,
        activation: str = "sigmoid",
        output: str = "sigmoid",
        k: int | None = None,
    ) -> None:
        super().__init__()
        h, w = image_shape
        pad = kernel_size // 2
        self.image_shape = (h, w)
        self.map_shape = ((h + 1) // 2, (w + 1) // 2)
        self.filter_shape = (kernel_size, kernel_size)
        self.encoder = nn.Conv2d(1, kernels, kernel_size, stride=2, padding=pad)
        # With an odd kernel and padding ks // 2, (h' − 1)·2 + 1 = H for odd H and H − 1 for even H.
        extra = tuple(1 - size % 2 for size in (h, w))
        self.decoder = nn.ConvTranspose2d(
            kernels, 1, kernel_size, stride=2, padding=pad, output_padding=extra
        )
        self.activation, self.output, self.k = activation, output, k
        self._act = ACTIVATIONS[activation]

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        """x: [batch, H·W] -> maps: [batch, kernels, h', w'] (top-k, if set, keeps k per sample)."""
        maps = self._act(self.encoder(x.view(-1, 1, *self.image_shape)))
        if self.k is not None:
            maps = keep_topk(maps.flatten(1), self.k).view_as(maps)
        return maps

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: [batch, H·W] -> h: [batch, kernels·h'·w'], kernel-major (map k is h[:, k·h'w' : (k+1)·h'w'])."""
        return self.feature_maps(x).flatten(1)

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """h: [batch, kernels·h'·w'] -> x̂: [batch, H·W]."""
        out = self.decoder(h.view(h.shape[0], -1, *self.map_shape)).flatten(1)
        return torch.sigmoid(out) if self.output == "sigmoid" else out

    def forward(self, x: torch.Tensor) -> AEOutput:
        h = self.encode(x)
        return AEOutput(recon=self.decode(h), hidden=h)

    def sparsity_codes(self, out: AEOutput) -> torch.Tensor:
        """[batch·h'·w', kernels]: one row per (sample, position), so ρ̂ (a column mean) is per kernel."""
        kernels = self.encoder.out_channels
        return out.hidden.view(out.hidden.shape[0], kernels, -1).transpose(1, 2).reshape(-1, kernels)

    def decayed_weights(self) -> list[torch.Tensor]:
        return [self.encoder.weight, self.decoder.weight]

    def filters(self) -> torch.Tensor:
        """[kernels, ks·ks] the encoder kernels, drawn as tiles of filter_shape (ks, ks)."""
        return self.encoder.weight.flatten(1)

    @torch.no_grad()
    def snapshot_extras(self, x_show: torch.Tensor) -> dict[str, torch.Tensor]:
        """ "feature_maps": [batch, kernels, h', w'] of each shown input;
        "decoder_kernels": [kernels, ks·ks] what one code unit paints into the output."""
        return {"feature_maps": self.feature_maps(x_show), "decoder_kernels": self.decoder.weight.flatten(1)}


def kernel_rho_hat(codes: np.ndarray, kernels: int) -> np.ndarray:
    """Mean activation of each kernel over samples and positions (e.g. of `Snapshot.activations`).

    codes: [N, kernels·h'·w'] -> [kernels]; the ρ̂ that the per-kernel sparsity penalty pulls towards ρ.
    """
    codes = np.asarray(codes)
    return codes.reshape(codes.shape[0], kernels, -1).mean(axis=(0, 2))
