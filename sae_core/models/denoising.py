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


def corruption_draws(x: torch.Tensor, kind: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """The random numbers one corruption of x [batch, n_inputs] takes, from `generator` (None: torch's
    global RNG), drawn on x's device: gaussian: ε ~ N(0, 1) [batch, n_inputs]; mask: u ~ U(0, 1)
    [batch, n_inputs]; salt_pepper: [2, batch, n_inputs], which pixels and which of 0 or 1."""
    if kind not in ("gaussian", "mask", "salt_pepper"):
        raise ValueError(f"corruption must be one of gaussian, mask, salt_pepper, got {kind!r}")
    shape = (2, *x.shape) if kind == "salt_pepper" else x.shape
    draw = torch.randn if kind == "gaussian" else torch.rand
    if generator is not None and generator.device != x.device:  # a CPU generator: the same noise anywhere
        return draw(shape, generator=generator, dtype=x.dtype).to(x.device)
    return draw(shape, generator=generator, device=x.device, dtype=x.dtype)


def apply_corruption(x: torch.Tensor, kind: str, level: float, draws: torch.Tensor) -> torch.Tensor:
    """x corrupted with the given draws (`corruption_draws`): a pure function of its arguments."""
    if kind == "gaussian":
        return x + level * draws
    if kind == "mask":
        return x.masked_fill(draws < level, 0.0)
    salt = (draws[1] < 0.5).to(x.dtype)
    return torch.where(draws[0] < level, salt, x)


def corrupt(
    x: torch.Tensor, kind: str, level: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A corrupted copy of x [batch, n_inputs], drawn from `generator` or torch's global RNG."""
    return apply_corruption(x, kind, level, corruption_draws(x, kind, generator))


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

    def draw_noise(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return corruption_draws(x, self.corruption, generator)

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> AEOutput:
        """In training mode the encoder sees x corrupted with `noise` (`draw_noise`; drawn from the global
        RNG when not given); in eval mode it sees x itself."""
        if not self.training:
            return super().forward(x)
        draws = self.draw_noise(x, None) if noise is None else noise
        noisy = apply_corruption(x, self.corruption, self.noise_level, draws)
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
