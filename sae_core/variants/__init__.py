"""The autoencoder variants beyond the one-hidden-layer sparse autoencoder, registered in models.BUILDERS.

deep (stacked layers), conv (strided convolution), denoising (corrupted inputs), vae (variational),
contractive (Jacobian penalty), ksparse (top-k linear codes). Every model follows the protocol in
`sae_core.models`; a model may also define `sparsity_codes(out)`, the tensor the sparsity penalty acts
on (None: no sparsity penalty), used by `losses.loss_terms`.

How cfg.penalty applies: deep, conv and denoising take kl / l1 / topk / none on their code; contractive
takes kl / l1 / none (top-k would break the smooth sigmoid encoder its closed form needs); vae and
ksparse ignore it (the prior KL, resp. top-k, is their regulariser).
"""

from __future__ import annotations

from torch import nn

from ..config import ModelConfig
from ..models import BUILDERS
from .contractive import ContractiveAutoencoder, contractive_penalty
from .conv import ConvAutoencoder, kernel_rho_hat
from .deep import DeepAutoencoder
from .denoising import DenoisingAutoencoder, corrupt
from .ksparse import KSparseAutoencoder
from .vae import VariationalAutoencoder, grid_axis, kl_prior, latent_grid, reparameterize, vae_codes


def _topk(cfg: ModelConfig) -> int | None:
    return cfg.k if cfg.penalty == "topk" else None


def build_deep(cfg: ModelConfig, n_inputs: int, image_shape: tuple[int, int]) -> nn.Module:
    return DeepAutoencoder(n_inputs, cfg.layers, cfg.hidden, cfg.hidden_activation, cfg.output, _topk(cfg))


def build_conv(cfg: ModelConfig, n_inputs: int, image_shape: tuple[int, int]) -> nn.Module:
    if image_shape[0] * image_shape[1] != n_inputs:
        raise ValueError(f"image_shape {image_shape} does not match {n_inputs} inputs")
    return ConvAutoencoder(
        image_shape, cfg.kernels, cfg.kernel_size, cfg.hidden_activation, cfg.output, _topk(cfg)
    )


def build_denoising(cfg: ModelConfig, n_inputs: int, image_shape: tuple[int, int]) -> nn.Module:
    return DenoisingAutoencoder(
        n_inputs, cfg.hidden, cfg.corruption, cfg.noise_level, cfg.hidden_activation, cfg.output, _topk(cfg)
    )


def build_vae(cfg: ModelConfig, n_inputs: int, image_shape: tuple[int, int]) -> nn.Module:
    return VariationalAutoencoder(n_inputs, cfg.hidden, cfg.latent, cfg.output)


def build_contractive(cfg: ModelConfig, n_inputs: int, image_shape: tuple[int, int]) -> nn.Module:
    if cfg.penalty == "topk":
        raise ValueError("penalty must be kl, l1 or none for the contractive variant, got 'topk'")
    if cfg.activation not in ("auto", "sigmoid"):
        raise ValueError(
            f"activation must be sigmoid (or auto) for the contractive variant, got {cfg.activation!r}"
        )
    return ContractiveAutoencoder(n_inputs, cfg.hidden, cfg.contraction, cfg.output)


def build_ksparse(cfg: ModelConfig, n_inputs: int, image_shape: tuple[int, int]) -> nn.Module:
    return KSparseAutoencoder(n_inputs, cfg.hidden, cfg.k, cfg.tied, cfg.output)


BUILDERS.update(
    deep=build_deep,
    conv=build_conv,
    denoising=build_denoising,
    vae=build_vae,
    contractive=build_contractive,
    ksparse=build_ksparse,
)

__all__ = [
    "ContractiveAutoencoder",
    "ConvAutoencoder",
    "DeepAutoencoder",
    "DenoisingAutoencoder",
    "KSparseAutoencoder",
    "VariationalAutoencoder",
    "contractive_penalty",
    "corrupt",
    "grid_axis",
    "kernel_rho_hat",
    "kl_prior",
    "latent_grid",
    "reparameterize",
    "vae_codes",
]
