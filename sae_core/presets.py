"""Named starting points (the UFLDL exercises, quick demos) read from `presets.json` next to this module.

Each preset is a title, a one-paragraph blurb and a flat config mapping (`RunConfig.from_flat`), so the
app's preset cards, the CLI and tests all share one file. It is package data (pyproject.toml), so an
installed wheel has it too. No Streamlit here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import RunConfig

PRESETS_FILE = Path(__file__).resolve().with_name("presets.json")
DEFAULT_PRESET = "quick-digits"
"""The offline default: small, trains in seconds on a CPU."""


@dataclass(frozen=True)
class Preset:
    """One preset card."""

    name: str
    title: str
    blurb: str
    flat: dict[str, Any]
    """Flat config fields; anything not given takes the RunConfig default."""

    @property
    def config(self) -> RunConfig:
        return RunConfig.from_flat(self.flat)

    @property
    def dataset(self) -> str:
        return self.config.data.dataset


def load_presets(path: str | Path = PRESETS_FILE) -> dict[str, Preset]:
    """name -> Preset, in file order. Raises ValueError if a preset's config is invalid."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    presets = {}
    for name, entry in raw.items():
        preset = Preset(name, entry["title"], entry["blurb"], dict(entry["config"]))
        try:
            preset.config  # noqa: B018 - validate now, not when a user clicks the card
        except ValueError as err:
            raise ValueError(f"preset {name!r} in {path}: {err}") from None
        presets[name] = preset
    return presets


def get(name: str, path: str | Path = PRESETS_FILE) -> Preset:
    presets = load_presets(path)
    if name not in presets:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(presets)}")
    return presets[name]
