"""`sae unit`: one unit's card (sae_core.analysis.unit_card) of a saved model, as a PNG and as numbers.

    sae unit --model runs/edges --unit 3 --out card.png [--json] [--samples 1000]

J is a code unit, or for a convolutional model a kernel: one card per kernel, as a click on its tile in
the Train page's filter grid opens (see sae_core.analysis.unit_card). The inputs are the model's own dataset
(read
from its config.json): the test split when it has one, else the training split, at most --samples of them,
so the numbers match what the page shows for a model trained there. Registered by sae_core.cli.main; errors
are ValueError / OSError, printed as one line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from sae_core.analysis import unit_card
from sae_core.data import datasets as data
from sae_core.figures import unit_card as unit_card_draw
from sae_core.store import model_import

DEFAULT_SAMPLES = 1000
"""Inputs the card is computed on (the page uses its probe set of the same size)."""


def add_parser(commands) -> argparse.ArgumentParser:
    """Add `unit` to the `sae` subcommands."""
    unit = commands.add_parser("unit", help="one unit's (or conv kernel's) card (PNG) and its numbers")
    unit.add_argument("--model", required=True, metavar="DIR|ZIP", help=model_import.MODEL_FLAG_HELP)
    unit.add_argument(
        "--unit",
        required=True,
        type=int,
        metavar="J",
        help="the code unit, from 0; for a convolutional model a kernel, from 0 (its card pools the kernel's "
        "feature map: activation = max over positions, rho_hat = mean over inputs and positions)",
    )
    unit.add_argument("--out", metavar="card.png", help="where to write the card as PNG")
    unit.add_argument("--json", action="store_true", help="print the numbers as one JSON object")
    unit.add_argument(
        "--samples",
        type=int,
        default=DEFAULT_SAMPLES,
        metavar="N",
        help=f"inputs used (default {DEFAULT_SAMPLES})",
    )
    unit.add_argument("--data-dir", metavar="DIR", help="folder with torchvision-layout datasets")
    unit.set_defaults(run=cmd_unit)
    return unit


def card_inputs(config, image_shape: tuple[int, int], samples: int, data_dir: str | None) -> torch.Tensor:
    """[≤ samples, H·W] inputs from the model's dataset: its test split, else its training split."""
    if samples < 1:
        raise ValueError(f"--samples must be >= 1, got {samples}")
    cfg = config.data if data_dir is None else config.replace(data_dir=data_dir).data
    dataset = data.load(cfg)
    if tuple(dataset.image_shape) != tuple(image_shape):
        raise ValueError(
            f"the model expects {image_shape[0]}×{image_shape[1]} inputs but its dataset {cfg.dataset} now "
            f"gives {dataset.image_shape[0]}×{dataset.image_shape[1]}"
        )
    x = dataset.test if dataset.test is not None and len(dataset.test) > 0 else dataset.train
    return x[:samples]


def cmd_unit(args: argparse.Namespace) -> int:
    out = None if args.out is None else Path(args.out)
    if out is not None and (out.is_dir() or not out.parent.is_dir()):
        raise ValueError(f"--out {args.out}: give a file name in an existing folder, e.g. card.png")
    saved = model_import.load_model_path(args.model)
    model, config, image_shape = saved.model, saved.config, saved.image_shape
    x = card_inputs(config, image_shape, args.samples, args.data_dir)
    card = unit_card.build_card(model, x, args.unit, image_shape)
    numbers = card.numbers()
    if out is not None:
        unit_card_draw.save_card_png(card, out)
        numbers["png"] = str(out)
    if args.json:
        print(json.dumps(numbers, indent=2))
    else:
        print(unit_card.summary_line(card))
        print(
            "  ".join(
                f"{k}={numbers[k]:.6g}" for k in ("rho_hat", "density", "ablation_increase", "recon_error")
            )
        )
        if out is not None:
            print(f"wrote {out}")
    return 0
