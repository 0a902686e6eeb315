"""A config field that a variant or a penalty declares for itself: its name, type, default, help and bounds.

`sae_core.config` builds the model section of a run's configuration from the core fields plus every
`Setting` the registered variants and penalties declare, so a new variant or penalty brings its own
settings (flags, URL keys, widgets) without editing the config.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Setting:
    """One declared field of the model section."""

    name: str
    """Field name: also the URL key, the widget key and the CLI flag (--name-with-dashes)."""
    type: str
    """Its annotation as a string, as the config's own fields have them: "int", "float", "bool",
    "tuple[int, ...]", or the name of a Literal alias given in `choices`."""
    default: Any
    doc: str
    """One line of help (CLI --help, page tooltips)."""
    label: str = ""
    """The page control's label (the name when empty)."""
    step: float | None = None
    """The page control's step for a number (1 for an int, 0.01 for a float when None)."""
    minimum: float | None = None
    """Smallest allowed value (None: no lower bound)."""
    maximum: float | None = None
    """Largest allowed value; for a tuple, the bound on each entry."""
    above_minimum: bool = False
    """The bound is strict: the value must be > minimum."""
    odd: bool = False
    """An integer that must be odd (a kernel side)."""
    choices: tuple[Any, ...] | None = None
    """The allowed values of a choice field."""
    size_limit: bool = False
    """`maximum` is a size limit (a count of units, layers...): listed with the config's SIZE_LIMITS."""
    max_items: int | None = None
    """For a tuple: the most entries it may have."""
    finite: bool = True
    """A number must be finite."""
    rule: Callable[[Any], None] | None = None
    """A rule on the whole model config that involves this field (raise ValueError naming it); it runs for
    every config, whatever its variant or penalty."""
    live: bool = False
    """A running trainer picks a change up at its next step (a weight of the objective), no rebuild."""

    def check(self, value: Any) -> None:
        """Raise ValueError naming the field and the allowed range when value is outside it."""
        if self.choices is not None:
            if value not in self.choices:
                raise ValueError(
                    f"{self.name} must be one of {', '.join(map(str, self.choices))}, got {value!r}"
                )
            return
        if self.type == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{self.name} must be true or false, got {value!r}")
            return
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ValueError(f"{self.name} must be a number, got {value!r}")
            if math.isnan(v) or (self.finite and math.isinf(v)):
                raise ValueError(f"{self.name} must be {self.allowed()}, got {value!r}")
            low_ok = self.minimum is None or (v > self.minimum if self.above_minimum else v >= self.minimum)
            # a size limit is the config's own check, with its own message
            high_ok = self.maximum is None or self.size_limit or v <= self.maximum
            if not (low_ok and high_ok) or (self.odd and int(v) % 2 == 0):
                raise ValueError(f"{self.name} must be {self.allowed()}, got {value!r}")

    def allowed(self) -> str:
        """The allowed range in words: "odd and in [1, 15]", ">= 1", "> 0"."""
        low = None if self.minimum is None else f"{self.minimum:g}"
        high = None if self.maximum is None or self.size_limit else f"{self.maximum:g}"
        if low is not None and high is not None:
            text = f"in {'(' if self.above_minimum else '['}{low}, {high}]"
        elif low is not None:
            text = f"{'>' if self.above_minimum else '>='} {low}"
        elif high is not None:
            text = f"<= {high}"
        else:
            text = "a value"
        finite = " and finite" if self.finite and high is None else ""
        return ("odd and " if self.odd else "") + text + finite
