"""Autoencoder variants: one module each (model + `SPEC`), the shared protocol in `base`, the registry.

base.py       AEOutput, the Autoencoder protocol with its defaults (ACTIVATIONS and keep_topk are
              the penalties' code layers', re-exported here)
spec.py       VariantSpec / Control / View: what the page, formulas, views and CLI read
registry.py   REGISTRY (name -> spec, collected from the modules), get_spec, build, build_seeded
sparse.py     the one-hidden-layer sparse autoencoder (UFLDL)
deep.py, conv.py, denoising.py, vae.py, contractive.py, ksparse.py   the other variants
"""

from __future__ import annotations

from sae_core.models.base import AEOutput, Autoencoder
from sae_core.models.registry import REGISTRY, VARIANTS, build, build_seeded, get_spec
from sae_core.models.sparse import SparseAutoencoder
from sae_core.penalties.code import ACTIVATIONS, keep_topk

__all__ = [
    "ACTIVATIONS",
    "AEOutput",
    "Autoencoder",
    "REGISTRY",
    "SparseAutoencoder",
    "VARIANTS",
    "build",
    "build_seeded",
    "get_spec",
    "keep_topk",
]
