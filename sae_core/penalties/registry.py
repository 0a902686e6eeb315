"""The penalties, collected from the `SPEC` of every module in this package.

A new penalty is a new module here that ends with `SPEC = PenaltySpec(...)`; nothing else lists it.
"""

from __future__ import annotations

import importlib
import pkgutil

from sae_core.penalties.spec import PenaltySpec

_NOT_PENALTIES = frozenset({"spec", "registry", "code"})


def _discover() -> dict[str, PenaltySpec]:
    specs = []
    for info in pkgutil.iter_modules(importlib.import_module(__package__).__path__):
        if info.name in _NOT_PENALTIES or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__package__}.{info.name}")
        spec = getattr(module, "SPEC", None)
        if not isinstance(spec, PenaltySpec):
            raise TypeError(f"{module.__name__} has no SPEC = PenaltySpec(...)")
        specs.append(spec)
    specs.sort(key=lambda s: (s.order, s.name))
    return {s.name: s for s in specs}


PENALTIES: dict[str, PenaltySpec] = _discover()
"""penalty name -> its spec, in menu order."""
PENALTY_NAMES: tuple[str, ...] = tuple(PENALTIES)
DEFAULT_PENALTY: str = PENALTY_NAMES[0]
"""The first penalty by order: UFLDL's KL, the app's first lesson."""


def get_penalty(name: str) -> PenaltySpec:
    """The spec of a penalty; ValueError naming the choices for an unknown one."""
    try:
        return PENALTIES[name]
    except KeyError:
        raise ValueError(f"penalty must be one of {', '.join(PENALTIES)}, got {name!r}") from None
