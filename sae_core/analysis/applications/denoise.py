"""Denoising: corrupt the test split, reconstruct it, and compare both with the clean images by PSNR.

PSNR = 10·log₁₀(1 / MSE) in dB, with MSE the mean squared pixel error over the whole split and peak 1
(pixels are in [0, 1]). An autoencoder denoises when PSNR(reconstruction) > PSNR(noisy input); the
denoising variant is trained for exactly this. Noise kinds are the denoising variant's
(`models.denoising.corrupt`): gaussian (σ = level), mask (each pixel set to 0 with probability level),
salt_pepper (each pixel set to 0 or 1 with probability level). Gaussian noise is clipped to [0, 1] here
so that the noisy input is an image the data could hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sae_core.analysis.applications.common import check_fits, reconstruct_all, require_test
from sae_core.data.datasets import Dataset
from sae_core.models.denoising import corrupt

NOISE_KINDS = {"gaussian": "Gaussian", "mask": "Masking", "salt_pepper": "Salt and pepper"}
LEVELS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5)
"""Noise levels of the PSNR curve."""
MAX_SAMPLES = 2000
"""PSNR over at most this many test images (the split's first ones: it is in random order)."""
SHOWN = 8
"""Images in the noisy / reconstructed strip."""
SEED = 0


@dataclass(frozen=True)
class Denoised:
    """PSNR of the noisy inputs and of their reconstructions, with a few images of each."""

    kind: str
    level: float
    psnr_noisy: float
    """dB, noisy input vs clean."""
    psnr_recon: float
    """dB, reconstruction of the noisy input vs clean."""
    psnr_clean_recon: float
    """dB, reconstruction of the clean input vs clean: the best the model does without noise."""
    n: int
    clean: np.ndarray
    """[SHOWN, D]"""
    noisy: np.ndarray
    """[SHOWN, D]"""
    recon: np.ndarray
    """[SHOWN, D]"""

    @property
    def gain(self) -> float:
        """dB the reconstruction gains over the noisy input."""
        return self.psnr_recon - self.psnr_noisy

    def to_dict(self) -> dict:
        keys = ("kind", "level", "psnr_noisy", "psnr_recon", "psnr_clean_recon", "n")
        return {**{k: getattr(self, k) for k in keys}, "gain": self.gain}


def psnr(a: torch.Tensor, b: torch.Tensor, peak: float = 1.0) -> float:
    """10·log₁₀(peak² / mean((a − b)²)) in dB over all pixels of a and b ([N, D] each)."""
    mse = float(torch.mean((a.double() - b.double()) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(peak**2 / mse)


def add_noise(x: torch.Tensor, kind: str, level: float, seed: int = SEED) -> torch.Tensor:
    """A seeded noisy copy of x [N, D] in [0, 1] (gaussian clipped to [0, 1])."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"noise must be one of {', '.join(NOISE_KINDS)}, got {kind!r}")
    if not 0.0 <= level <= (5.0 if kind == "gaussian" else 1.0):
        top = 5 if kind == "gaussian" else 1
        raise ValueError(f"noise level must be in [0, {top}] for {kind} noise, got {level:g}")
    noisy = corrupt(x, kind, level, torch.Generator().manual_seed(seed))
    return noisy.clamp(0.0, 1.0)


def held_out_images(dataset: Dataset, image_shape: tuple[int, int] | None = None) -> torch.Tensor:
    """The first MAX_SAMPLES test images; NotApplicable without a test split or a model that fits."""
    if image_shape is not None:
        check_fits(image_shape, dataset)
    return require_test(dataset, "denoising on held-out images")[:MAX_SAMPLES]


def denoise(model: nn.Module, x: torch.Tensor, kind: str, level: float, seed: int = SEED) -> Denoised:
    """PSNR of noisy and reconstructed versions of the clean images x [N, D]."""
    noisy = add_noise(x, kind, level, seed)
    recon = reconstruct_all(model, noisy)
    clean_recon = reconstruct_all(model, x)

    def show(t: torch.Tensor) -> np.ndarray:
        return t[:SHOWN].numpy().copy()

    return Denoised(
        kind,
        float(level),
        psnr(noisy, x),
        psnr(recon, x),
        psnr(clean_recon, x),
        len(x),
        show(x),
        show(noisy),
        show(recon),
    )


def psnr_curve(
    model: nn.Module, x: torch.Tensor, kind: str, levels: tuple[float, ...] = LEVELS, seed: int = SEED
) -> dict[str, list[float]]:
    """{"level": [...], "noisy": [dB...], "recon": [dB...]}: PSNR against noise level for one kind."""
    out: dict[str, list[float]] = {"level": [], "noisy": [], "recon": []}
    for level in levels:
        noisy = add_noise(x, kind, level, seed)
        out["level"].append(float(level))
        out["noisy"].append(psnr(noisy, x))
        out["recon"].append(psnr(reconstruct_all(model, noisy), x))
    return out
