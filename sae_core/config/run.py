"""Run configuration: one `RunConfig` of three validated sections (sae_core.config.sections), and its
serialisation.

One source of truth for the CLI flags, the app's widgets, URL query parameters and the `config.json`
saved next to a model: a run can be written as nested dicts (JSON) or as one flat mapping
(`RunConfig.flat()`), and strings from flags or URLs are coerced to each field's type.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field, fields
from typing import Any

from sae_core.config import sections as config_sections
from sae_core.config.sections import (
    BETA_DEFAULTS,
    Activation,
    DataConfig,
    DeviceName,
    ModelConfig,
    Optimizer,
    Output,
    Penalty,
    Schedule,
    TrainConfig,
    Variant,
)

_SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
LIVE_FIELDS = frozenset(
    {"rho", "beta", "weight_decay", "lr", "steps", "epochs"}
    | {s.name for s in config_sections.DECLARED.values() if s.live}
)
"""Fields that a running trainer picks up at its next step without a rebuild: the objective's weights
(with those a variant declares live, such as the contractive λ_c), the learning rate, and the run's
length (so a finished run can be trained further)."""


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Nested plain dict, JSON-ready (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """Inverse of `to_dict`; also accepts a flat mapping. Unknown keys raise ValueError."""
        if d and all(key in _SECTIONS for key in d):
            return cls(**{name: _build(_SECTIONS[name], d.get(name, {})) for name in _SECTIONS})
        return cls.from_flat(d)

    def flat(self) -> dict[str, Any]:
        """All fields in one mapping: {'dataset': ..., 'rho': ..., 'lr': ...}."""
        out: dict[str, Any] = {}
        for section in self.to_dict().values():
            out.update(section)
        return out

    @classmethod
    def from_flat(cls, d: dict[str, Any]) -> RunConfig:
        """Build from a flat mapping; missing fields take their defaults."""
        unknown = set(d) - set(FIELD_SECTION)
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(sorted(unknown))}")
        parts: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
        for key, value in d.items():
            parts[FIELD_SECTION[key]][key] = value
        return cls(**{name: _build(_SECTIONS[name], parts[name]) for name in _SECTIONS})

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with flat field changes applied, validated again."""
        return RunConfig.from_flat({**self.flat(), **changes})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _build(klass: type, values: dict[str, Any]) -> Any:
    known = {f.name for f in fields(klass)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown {klass.__name__} field(s): {', '.join(sorted(unknown))}")
    coerced = {k: coerce(klass, k, v) for k, v in values.items()}
    return klass(**coerced)


FIELD_SECTION: dict[str, str] = {f.name: s for s, k in _SECTIONS.items() for f in fields(k)}
FIELD_DOCS: dict[str, str] = {}
"""One-line help per field, read from the attribute docstrings in sae_core/config/sections.py."""


def field_type(name: str) -> Any:
    """The annotation of a flat field name, as a string (annotations are postponed)."""
    klass = _SECTIONS[FIELD_SECTION[name]]
    return next(f.type for f in fields(klass) if f.name == name)


def coerce(klass: type, name: str, value: Any) -> Any:
    """Turn strings (CLI flags, URL parameters) and JSON lists into the field's type."""
    hint = str(next(f.type for f in fields(klass) if f.name == name))
    if value is None or (isinstance(value, str) and value.lower() == "none" and "None" in hint):
        return None
    try:
        if hint.startswith("tuple"):
            if isinstance(value, str):
                value = [v for v in value.replace(" ", "").split(",") if v]
            return tuple(int(v) for v in value)
        if hint.startswith("bool"):
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if hint.startswith("int"):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if hint.startswith("float"):
            return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be of type {hint}, got {value!r}") from None
    return value


def _read_field_docs() -> None:
    """Collect the docstring under each field so CLI help and tooltips share it."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(config_sections))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in {"DataConfig", "_ModelCore", "TrainConfig"}:
            body = node.body
            for a, b in zip(body, body[1:], strict=False):
                is_doc = isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant)
                if isinstance(a, ast.AnnAssign) and is_doc:
                    FIELD_DOCS[a.target.id] = str(b.value.value).strip()


try:
    _read_field_docs()
except (OSError, TypeError):  # source not available (frozen app): help texts stay empty
    pass
FIELD_DOCS.update({s.name: s.doc for s in config_sections.DECLARED.values()})


def field_choices(name: str) -> tuple[Any, ...]:
    """The allowed values of a choice field (a Literal, the registered variants or penalties, or a declared
    setting's choices); () for any other field."""
    if name == "variant":
        return tuple(config_sections.REGISTRY)
    if name == "penalty":
        return tuple(config_sections.PENALTIES)
    if name in config_sections.DECLARED:
        return tuple(config_sections.DECLARED[name].choices or ())
    alias = getattr(config_sections, str(field_type(name)), None)
    return typing.get_args(alias) if typing.get_origin(alias) is typing.Literal else ()


__all__ = [
    "BETA_DEFAULTS",
    "Activation",
    "DeviceName",
    "Optimizer",
    "Output",
    "Penalty",
    "Schedule",
    "Variant",
    "DataConfig",
    "ModelConfig",
    "TrainConfig",
    "RunConfig",
    "FIELD_DOCS",
    "FIELD_SECTION",
    "LIVE_FIELDS",
]
