"""Convolutional autoencoder: one strided convolution, sparse feature maps, a transposed-conv decoder.

x [batch, H·W] is seen as one grey channel [batch, 1, H, W]. The encoder convolves it with `kernels`
kernels of side ks (padding ks // 2, stride 2), giving maps [batch, kernels, h', w'] with h' = ⌈H/2⌉,
w' = ⌈W/2⌉. The decoder is the transposed convolution back to [batch, 1, H, W]: every code unit paints
its decoder kernel at its place. Stride 2 keeps the code (kernels·h'·w' units) four times smaller than a
same-size map, which matters because the views copy the codes of the whole probe set.

Sparsity acts per kernel: ρ̂ₖ is the mean of map k over the batch *and* over positions, since a kernel
is one feature detector shared by every position (see `sparsity_codes`). The penalty is weighted by the
number of positions P = h'·w' (`sparsity_scale`): β·P·Σₖ KL(ρ‖ρ̂ₖ), and for L1 β·P·mean over (sample,
position) of Σₖ |hₖ| = β·mean over samples of Σ over all code units |h|. Why P: a kernel stands for P
code units, and ρ̂ₖ moves by 1/P when one of them does, so without the factor the push towards ρ on each
unit is P times weaker than the sparse autoencoder's under the same β, while the reconstruction term,
a sum over pixels, is not diluted. It showed: on 28×28 images (P = 196) ρ̂ stayed at 0.15-0.27 against
ρ = 0.05; with the factor it reaches ρ within a few hundred steps.
"""

from __future__ import annotations

import torch
from torch import nn

from sae_core.fields import Setting
from sae_core.models.base import AEOutput, CodedAutoencoder, ModelSettings, make_code_layer
from sae_core.models.sparse import code_of
from sae_core.models.spec import Control, VariantSpec, View

KERNEL_SIZES = tuple(range(1, 16, 2))
"""Every kernel side the config accepts (odd, 1..15), so the select cannot offer a refused value."""


class ConvAutoencoder(CodedAutoencoder):
    """Parameters: encoder (Conv2d 1 -> kernels) and decoder (ConvTranspose2d kernels -> 1)."""

    def __init__(
        self,
        image_shape: tuple[int, int],
        kernels: int,
        kernel_size: int,
        activation: str = "sigmoid",
        output: str = "sigmoid",
        k: int | None = None,
        code: nn.Module | None = None,
    ) -> None:
        super().__init__()
        h, w = image_shape
        pad = kernel_size // 2
        self.image_shape = (h, w)
        self.map_shape = ((h + 1) // 2, (w + 1) // 2)
        self.kernel_shape = (kernel_size, kernel_size)
        self.encoder = nn.Conv2d(1, kernels, kernel_size, stride=2, padding=pad)
        # With an odd kernel and padding ks // 2, (h' − 1)·2 + 1 = H for odd H and H − 1 for even H.
        extra = tuple(1 - size % 2 for size in (h, w))
        self.decoder = nn.ConvTranspose2d(
            kernels, 1, kernel_size, stride=2, padding=pad, output_padding=extra
        )
        self.code_layer = make_code_layer(activation, k, code)
        self.output = output

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        """x: [batch, H·W] -> maps: [batch, kernels, h', w'] (top-k, if set, keeps k per sample)."""
        return self.code_layer(self.encoder(x.view(-1, 1, *self.image_shape)))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: [batch, H·W] -> h: [batch, kernels·h'·w'], kernel-major (map k is h[:, k·h'w' : (k+1)·h'w'])."""
        return self.feature_maps(x).flatten(1)

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """h: [batch, kernels·h'·w'] -> x̂: [batch, H·W]."""
        out = self.decoder(h.view(h.shape[0], -1, *self.map_shape)).flatten(1)
        return torch.sigmoid(out) if self.output == "sigmoid" else out

    def sparsity_codes(self, out: AEOutput) -> torch.Tensor:
        """[batch·h'·w', kernels]: one row per (sample, position), so ρ̂ (a column mean) is per kernel."""
        kernels = self.encoder.out_channels
        return out.hidden.view(out.hidden.shape[0], kernels, -1).transpose(1, 2).reshape(-1, kernels)

    @property
    def sparsity_scale(self) -> float:
        """P = h'·w', the positions of a feature map: each kernel's ρ̂ stands for P code units."""
        return float(self.map_shape[0] * self.map_shape[1])

    def filters(self) -> torch.Tensor:
        """[kernels, ks·ks] the encoder kernels, drawn as tiles of filter_shape (ks, ks)."""
        return self.encoder.weight.flatten(1)

    def filter_shape(self, image_shape: tuple[int, int]) -> tuple[int, int]:
        return self.kernel_shape

    @torch.no_grad()
    def snapshot_extras(self, show: torch.Tensor, probe: torch.Tensor) -> dict[str, torch.Tensor]:
        """ "feature_maps": [batch, kernels, h', w'] of each shown input;
        "decoder_kernels": [kernels, ks·ks] what one code unit paints into the output."""
        return {"feature_maps": self.feature_maps(show), "decoder_kernels": self.decoder.weight.flatten(1)}


def build(cfg: ModelSettings, n_inputs: int, image_shape: tuple[int, int]) -> ConvAutoencoder:
    if image_shape[0] * image_shape[1] != n_inputs:
        raise ValueError(f"image_shape {image_shape} does not match {n_inputs} inputs")
    return ConvAutoencoder(
        image_shape,
        cfg.kernels,
        cfg.kernel_size,
        output=cfg.output,
        code=code_of(cfg, cfg.kernels, trailing=2),
    )


SPEC = VariantSpec(
    name="conv",
    title="Convolutional",
    note="One strided convolution: each kernel is a feature detector shared by every image position.",
    build=build,
    order=2,
    settings=(
        Setting(
            "kernels",
            "int",
            16,
            "Convolutional variant: number of kernels.",
            minimum=1,
            maximum=1_024,
            size_limit=True,
        ),
        Setting(
            "kernel_size",
            "int",
            5,
            "Convolutional variant: side of each square kernel.",
            minimum=1,
            maximum=15,
            odd=True,
        ),
    ),
    controls=(
        Control("kernels", "Kernels", minimum=1, step=1),
        Control(
            "kernel_size",
            "Kernel size",
            choices=KERNEL_SIZES,
            choice_names={side: f"{side}×{side}" for side in KERNEL_SIZES},
        ),
    ),
    hidden_label=None,
    views=(
        View("feature_maps_chart", "conv:feature_maps_figure", column=0, pick_input=True),
        View("decoder_kernels_chart", "conv:decoder_kernels_figure", column=1),
        View("kernel_rho_chart", "conv:kernel_rho_figure", column=1),
    ),
    views_caption=(
        "The filters above are the encoder's kernels. Each kernel slides over the image; its feature map "
        "is where it fires. The sparsity penalty acts per kernel (ρ̂ over samples and positions), weighted "
        "by the number of positions P so that each code unit feels it as in the one-layer model."
    ),
    # The penalty acts per kernel map (ρ̂ₖ averages over samples and positions), weighted by positions P.
    penalty_units=lambda cfg: (cfg.kernels, "k"),
    code_units=lambda cfg, width: (
        f"{width} kernel·position units ({cfg.kernels} kernels × {width // cfg.kernels} positions)"
    ),
    penalty_factor_tex=r"\,P",
    notes_tex=lambda cfg: [r"&\text{P: positions of a feature map}"] if cfg.penalty_spec.has_term else [],
)
