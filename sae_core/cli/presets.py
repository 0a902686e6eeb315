"""`sae presets` and `sae train --preset NAME`: the app's preset cards on the command line.

    sae presets [--json]
    sae train --preset bars --out runs/bars            # the card's settings
    sae train --preset bars --steps 500 --out runs/b   # any other flag overrides one setting

The presets are sae_core/presets.json, the file the app's cards read, so both start from the same settings.
A preset whose dataset is not on this machine runs on its stand-in when that one is (`presets.ALTERNATIVE`:
Fashion-MNIST for the MNIST recipes), as the app's card does, and says so on stderr. Registered by
sae_core.cli.main; an unknown name is a ValueError, printed as one line that lists the names.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from sae_core import presets

KEY_SETTINGS = tuple(
    "variant penalty hidden rho beta weight_decay optimizer lr lr_schedule batch_size".split()
)
"""The settings the table shows besides the dataset and the length; --json gives all of them."""
SHORT = {"weight_decay": "λ", "batch_size": "batch", "rho": "ρ", "beta": "β", "lr_schedule": "schedule"}


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add `presets` to the `sae` subcommands."""
    listing = commands.add_parser("presets", help="list the presets `sae train --preset NAME` starts from")
    listing.add_argument(
        "--json", action="store_true", help="print a JSON list: name, title, dataset, settings, seconds"
    )
    listing.set_defaults(run=cmd_presets)
    return listing


def add_preset_flag(parser: argparse.ArgumentParser) -> None:
    """`--preset NAME` for a command that takes the config flags (they override the preset's settings)."""
    parser.add_argument(
        "--preset",
        metavar="NAME",
        help="start from a preset's settings (`sae presets` lists them); other flags override them",
    )


def preset_settings(name: str | None, explicit: set[str], data_dir: str | None = None) -> dict[str, Any]:
    """The flat settings of preset `name` ({} for None), to which the flags in `explicit` are then applied.

    When the preset's dataset is missing here and its stand-in is present, and no --dataset was given, the
    settings name the stand-in (a note on stderr says so). ValueError for an unknown name."""
    if name is None:
        return {}
    preset = presets.get(name)
    flat = dict(preset.flat)
    if "dataset" not in explicit:
        opened = presets.dataset_to_open(preset, data_dir)
        if opened != preset.dataset:
            print(
                f"sae: note: {preset.dataset} is not on this machine; preset {name} runs on {opened}, "
                "as the app's card does (--dataset to choose)",
                file=sys.stderr,
            )
            flat["dataset"] = opened
    return flat


def rows() -> list[dict[str, Any]]:
    """Every preset as {name, title, dataset, settings (flat, defaults filled in), seconds, extrapolated}."""
    out = []
    for preset in presets.load_presets().values():
        settings = preset.config.flat()
        out.append(
            {
                "name": preset.name,
                "title": preset.title,
                "dataset": preset.dataset,
                "settings": settings,
                "seconds": preset.seconds,
                "extrapolated": preset.extrapolated,
            }
        )
    return out


def _settings_text(settings: dict[str, Any]) -> str:
    parts = []
    for key in KEY_SETTINGS:
        value = settings[key]
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        parts.append(f"{SHORT.get(key, key)} {shown}")
    length = f"{settings['epochs']:g} epochs" if settings.get("epochs") else f"{settings['steps']} steps"
    return ", ".join([*parts, length])


def _time_text(row: dict[str, Any]) -> str:
    if row["seconds"] is None:
        return "?"
    return ("~" if row["extrapolated"] else "") + presets.duration_text(row["seconds"])


def cmd_presets(args: argparse.Namespace) -> int:
    listing = rows()
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    table = [("name", "time", "dataset", "title")]
    table += [(r["name"], _time_text(r), r["dataset"], r["title"]) for r in listing]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for i, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
        if i:  # the settings on their own indented line: too many for one table row
            print(" " * (widths[0] + 2) + _settings_text(listing[i - 1]["settings"]))
    print(
        "\ntime: training on a 2-core CPU, 1 torch thread (~ scaled from a shorter run). "
        "Start from one with `sae train --preset NAME --out DIR`; other flags override its settings."
    )
    return 0
