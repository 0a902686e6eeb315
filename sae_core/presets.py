"""Named starting points (the UFLDL exercises, quick demos) read from `presets.json` next to this module.

Each preset is a title, a one-paragraph blurb (plus, where the card may open the recipe on another
dataset, one blurb per such dataset), how long it takes on a 2-core CPU (measured by
benchmarks/preset_times.py) and a flat config mapping (`RunConfig.from_flat`), so the app's preset cards,
the CLI, the benchmark and tests all share one file. It is package data (pyproject.toml), so an installed
wheel has it too. No Streamlit here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sae_core.config.run import RunConfig
from sae_core.data import datasets as data

PRESETS_FILE = Path(__file__).resolve().with_name("presets.json")
DEFAULT_PRESET = "bars"
"""Where a visitor lands: offline, and its units find the 16 true bars within seconds on a CPU."""
ALTERNATIVE = {"mnist": "fashion-mnist"}
"""When a preset's dataset is missing, its card offers the same recipe on this dataset instead."""


@dataclass(frozen=True)
class Preset:
    """One preset card."""

    name: str
    title: str
    blurb: str
    flat: dict[str, Any]
    """Flat config fields; anything not given takes the RunConfig default."""
    seconds: float | None = None
    """Wall seconds from loading the data to the last step, 1 torch thread (benchmarks/preset_times.py)."""
    extrapolated: bool = False
    """seconds comes from a shorter run scaled to the preset's length, not from a full run."""
    blurbs: dict[str, str] = field(default_factory=dict)
    """dataset -> the blurb for this recipe run on that dataset (see ALTERNATIVE)."""

    def blurb_for(self, dataset: str) -> str:
        """The text that fits the data the recipe runs on."""
        return self.blurbs.get(dataset, self.blurb)

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
        preset = Preset(
            name,
            entry["title"],
            entry["blurb"],
            dict(entry["config"]),
            entry.get("seconds"),
            bool(entry.get("extrapolated", False)),
            dict(entry.get("blurbs", {})),
        )
        try:
            preset.config  # noqa: B018 - validate now, not when a user clicks the card
            unknown = sorted(set(preset.blurbs) - set(data.DATASETS))
            if unknown:
                raise ValueError(f"blurbs for unknown datasets {', '.join(unknown)}")
            if preset.seconds is not None and not preset.seconds > 0:
                raise ValueError(f"seconds must be > 0, got {preset.seconds}")
        except ValueError as err:
            raise ValueError(f"preset {name!r} in {path}: {err}") from None
        presets[name] = preset
    return presets


def dataset_to_open(preset: Preset, data_dir: str | None = None) -> str:
    """The dataset a preset's card opens: its own, or its ALTERNATIVE when only that one is on disk."""
    own = preset.dataset
    alternative = ALTERNATIVE.get(own)
    if (
        alternative
        and not data.availability(own, data_dir)[0]
        and data.availability(alternative, data_dir)[0]
    ):
        return alternative
    return own


def duration_text(seconds: float) -> str:
    """'6 s', '105 s', '6 min': how a card says a measured duration (seconds under two minutes)."""
    if seconds < 120:
        return f"{max(1, round(seconds))} s"
    return f"{round(seconds / 60)} min"


def get(name: str, path: str | Path = PRESETS_FILE) -> Preset:
    presets = load_presets(path)
    if name not in presets:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(presets)}")
    return presets[name]
