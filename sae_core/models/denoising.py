"""Denoising autoencoder: corrupt the input, encode the corrupted version, reconstruct the clean one.

The corruption happens inside `forward` and only in training mode, so evaluation, metrics and the
reconstruction view see the clean input; the loss compares x̂ with the clean x (losses.loss_terms is
handed the clean batch). Corruption kinds, with level = cfg.noise_level:
- gaussian: x̃ = x + σ·ε, ε ~ N(0, 1), σ = level. Not clipped to [0, 1], so the noise has exactly
  standard deviation σ; the encoder copes with values outside [0, 1].
- mask: each pixel is set to 0 with probability level (masking noise).
- salt_pepper: each pixel is, with probability level, replaced by 0 or 1 with equal chance.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn

from sae_core.fields import Setting
from sae_core.models.base import AEOutput, ModelSettings
from sae_core.models.sparse import SparseAutoencoder, code_of
from sae_core.models.spec import Control, VariantSpec, View

Corruption = Literal["gaussian", "mask", "salt_pepper"]
"""How the denoising variant corrupts its inputs (the config's `corruption` field)."""

SHOW_SEED = 0
"""Seed of the corruption in the snapshot's noisy pictures, so they do not change between snapshots."""


def corrupt(
    x: torch.Tensor, kind: str, level: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A corrupted copy of x [batch, n_inputs], drawn from `generator` (on the CPU) or torch's global RNG."""

    def draw(fn):  # draw on the CPU when a generator is given, so a seed means the same noise on any device
        if generator is None:
            return fn(x.shape, device=x.device, dtype=x.dtype)
        return fn(x.shape, generator=generator, dtype=x.dtype).to(x.device)

    if kind == "gaussian":
        return x + level * draw(torch.randn)
    hit = draw(torch.rand) < level
    if kind == "mask":
        return x.masked_fill(hit, 0.0)
    if kind == "salt_pepper":
        salt = (draw(torch.rand) < 0.5).to(x.dtype)
        return torch.where(hit, salt, x)
    raise ValueError(f"corruption must be one of gaussian, mask, salt_pepper, got {kind!r}")


class DenoisingAutoencoder(SparseAutoencoder):
    """The one-hidden-layer sparse autoencoder, trained on corrupted inputs. Same parameters as it."""

    def __init__(
        self,
        n_inputs: int,
        hidden: int,
        corruption: str,
        noise_level: float,
        activation: str = "sigmoid",
        output: str = "sigmoid",
        k: int | None = None,
        code: nn.Module | None = None,
    ) -> None:
        super().__init__(n_inputs, hidden, activation, output, k, code)
        self.corruption, self.noise_level = corruption, noise_level

    def forward(self, x: torch.Tensor) -> AEOutput:
        if not self.training:
            return super().forward(x)
        noisy = corrupt(x, self.corruption, self.noise_level)
        h = self.encode(noisy)
        return AEOutput(recon=self.decode(h), hidden=h, corrupted=noisy)

    @torch.no_grad()
    def snapshot_extras(self, show: torch.Tensor, probe: torch.Tensor) -> dict[str, torch.Tensor]:
        """ "noisy_inputs": [batch, n_inputs] the shown inputs, corrupted (seeded);
        "denoised": [batch, n_inputs] their reconstructions.
        With Snapshot.show_inputs they make the noisy / clean / reconstruction triplets."""
        generator = torch.Generator().manual_seed(SHOW_SEED)
        noisy = corrupt(show, self.corruption, self.noise_level, generator)
        return {"noisy_inputs": noisy, "denoised": self.decode(self.encode(noisy))}


def build(cfg: ModelSettings, n_inputs: int, image_shape: tuple[int, int]) -> DenoisingAutoencoder:
    return DenoisingAutoencoder(
        n_inputs,
        cfg.hidden,
        cfg.corruption,
        cfg.noise_level,
        output=cfg.output,
        code=code_of(cfg, cfg.hidden),
    )


CORRUPTION_NAMES = {
    "gaussian": "Gaussian noise (level = σ)",
    "mask": "Masking (level = fraction set to 0)",
    "salt_pepper": "Salt and pepper (level = fraction set to 0 or 1)",
}


def check(cfg: ModelSettings) -> None:
    """A fraction of pixels is at most 1; a Gaussian σ may go to 10."""
    if cfg.corruption != "gaussian" and cfg.noise_level > 1.0:
        raise ValueError(
            f"noise_level must be in [0, 1] (or [0, 10] for gaussian σ), got {cfg.noise_level!r}"
        )


SPEC = VariantSpec(
    name="denoising",
    title="Denoising",
    note="Trained to rebuild the clean input from a corrupted copy, so its features must be robust.",
    build=build,
    order=3,
    settings=(
        Setting(
            "corruption",
            "str",
            "gaussian",
            "Denoising variant: how inputs are corrupted.",
            choices=get_args(Corruption),
        ),
        Setting(
            "noise_level",
            "float",
            0.3,
            "Denoising variant: Gaussian σ, or the fraction of pixels masked / flipped.",
            minimum=0.0,
            maximum=10.0,
        ),
    ),
    check=check,
    controls=(
        Control("corruption", "Corruption", choices=get_args(Corruption), choice_names=CORRUPTION_NAMES),
        Control("noise_level", "Noise level", minimum=0.0, step=0.05, number_format="%.2f"),
    ),
    views=(View("denoising_chart", "denoising:denoising_figure"),),
    views_caption=(
        "The encoder only ever sees corrupted inputs during training; the loss compares its output with "
        "the clean input. The metrics and the Reconstructions tab use clean inputs."
    ),
    notes_tex=lambda cfg: [
        r"&\text{where } \hat{x} \text{ is decoded}",
        r"&\text{from a corrupted copy } \tilde{x}",
    ],
)
