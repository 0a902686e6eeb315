"""The variants, collected from the `SPEC` of every module in this package.

A new variant is a new module here that ends with `SPEC = VariantSpec(...)`; nothing else lists it.
"""

from __future__ import annotations

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
