"""Collecting plugins: every module of a package that ends with `SPEC = <spec>(...)`.

The variants (`sae_core.models`) and the penalties (`sae_core.penalties`) are found this way, so adding
one is adding its module; nothing else lists them.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, TypeVar

Spec = TypeVar("Spec")


def collect_specs(package: str, kind: type[Spec], skip: frozenset[str]) -> dict[str, Spec]:
    """name -> spec of every module of `package` (except `skip` and names starting with _), in menu order
    (the spec's `order`, then its name). A module without a `SPEC` of `kind` is a TypeError."""
    specs: list[Any] = []
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if info.name in skip or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        spec = getattr(module, "SPEC", None)
        if not isinstance(spec, kind):
            raise TypeError(f"{module.__name__} has no SPEC = {kind.__name__}(...)")
        specs.append(spec)
    specs.sort(key=lambda s: (s.order, s.name))
    return {s.name: s for s in specs}
