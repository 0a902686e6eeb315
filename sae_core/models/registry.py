"""The variants, collected from the `SPEC` of every module in this package.

A new variant is a new module here that ends with `SPEC = VariantSpec(...)`; nothing else lists it.
"""

from __future__ import annotations

import threading

import torch
from torch import nn

from sae_core.models.base import ModelSettings
from sae_core.models.spec import VariantSpec
from sae_core.plugins import collect_specs

_NOT_VARIANTS = frozenset({"base", "spec", "registry"})


REGISTRY: dict[str, VariantSpec] = collect_specs(__package__, VariantSpec, _NOT_VARIANTS)
"""variant name -> its spec, in menu order."""
VARIANTS: tuple[str, ...] = tuple(REGISTRY)


def get_spec(variant: str) -> VariantSpec:
    """The spec of a variant; ValueError naming the choices for an unknown one."""
    try:
        return REGISTRY[variant]
    except KeyError:
        raise ValueError(f"variant must be one of {', '.join(REGISTRY)}, got {variant!r}") from None


def build(cfg: ModelSettings, n_inputs: int, image_shape: tuple[int, int]) -> nn.Module:
    """The model named by cfg.variant, sized for inputs of n_inputs = H·W pixels."""
    return get_spec(cfg.variant).build(cfg, n_inputs, tuple(image_shape))


_SEEDED_BUILD = threading.Lock()


def build_seeded(cfg: ModelSettings, n_inputs: int, image_shape: tuple[int, int], seed: int) -> nn.Module:
    """`build` with the initial weights a seed fixes, whatever other threads draw meanwhile.

    The layers draw their initial weights from torch's global RNG (on the CPU). Here it is seeded, used and
    put back as it was, under a lock, so a run's weights depend on its seed alone and the caller's global
    RNG is untouched. Training noise does not come from the global RNG (`Autoencoder.draw_noise`)."""
    with _SEEDED_BUILD, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build(cfg, n_inputs, image_shape)
