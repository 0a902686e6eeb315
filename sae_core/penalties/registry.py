"""The penalties, collected from the `SPEC` of every module in this package.

A new penalty is a new module here that ends with `SPEC = PenaltySpec(...)`; nothing else lists it.
"""

from __future__ import annotations

from sae_core.penalties.spec import PenaltySpec
from sae_core.plugins import collect_specs

_NOT_PENALTIES = frozenset({"spec", "registry", "code"})


PENALTIES: dict[str, PenaltySpec] = collect_specs(__package__, PenaltySpec, _NOT_PENALTIES)
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
