"""`sae probe`, `sae denoise`, `sae anomaly`: the Applications page's numbers for a saved model, headless.

    sae probe   --model runs/digits [--self-taught] [--json probe.json]
    sae denoise --model runs/digits --noise gaussian --level 0.3 [--json denoise.json]
    sae anomaly --model runs/digits --anomalies noise|dataset|class [--other bars] [--held-out 0 --retrain]

--model is a folder from `sae train --out` or a model .zip (sae_core.store.model_import checks either). The
data is the model's own (its config.json), unless --dataset names another of the same shape; the
computations are sae_core.analysis.applications', so the numbers are the page's for the same weights.
Registered
by sae_core.cli.main; errors (NotApplicable among them) are ValueError / OSError, printed as one line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from torch import nn

from sae_core.analysis.applications import anomaly, bars_probe, check_fits, denoise, probe
from sae_core.analysis.applications.common import COPY_STEPS
from sae_core.analysis.applications.common import copy_steps as default_steps
from sae_core.config.run import DataConfig, RunConfig
from sae_core.data import datasets as data
from sae_core.store import model_import


def add_parsers(commands: Any) -> None:
    """Add `probe`, `denoise` and `anomaly` to the `sae` subcommands."""
    p = _common(commands.add_parser("probe", help="linear probe on the codes vs raw pixels vs PCA"))
    p.add_argument(
        "--self-taught",
        action="store_true",
        help="also train a copy on classes 5-9 only (no labels) and probe it on 0-4 (UFLDL)",
    )
    p.add_argument("--steps", type=int, metavar="N", help=f"steps of that copy (default: ≤ {COPY_STEPS})")
    p.set_defaults(run=cmd_probe)

    d = _common(commands.add_parser("denoise", help="PSNR of noisy test images and their reconstructions"))
    _noise_flags(d, default_level=0.3)
    d.add_argument("--levels", metavar="L,L,...", help="levels of the PSNR curve (default: 0.05,...,0.5)")
    d.set_defaults(run=cmd_denoise)

    a = _common(commands.add_parser("anomaly", help="reconstruction error as anomaly score: ROC AUC, P/R"))
    a.add_argument(
        "--anomalies",
        choices=tuple(anomaly.SOURCES),
        default="noise",
        help="noise: corrupted test images (--noise, --level); dataset: another dataset (--other); "
        "class: one class of the test split (--held-out, --retrain)",
    )
    _noise_flags(a, default_level=0.2)
    a.add_argument(
        "--other", metavar="NAME", help="--anomalies dataset: the other dataset (same image shape)"
    )
    a.add_argument("--held-out", type=int, default=0, metavar="C", help="--anomalies class: the class")
    a.add_argument(
        "--retrain",
        action="store_true",
        help="--anomalies class: train a copy of the model's config without the class first (as the page)",
    )
    a.add_argument("--steps", type=int, metavar="N", help=f"steps of that copy (default: ≤ {COPY_STEPS})")
    a.add_argument("--threshold", type=float, help="flag errors above this (default: 95%% of normal below)")
    a.set_defaults(run=cmd_anomaly)


def _common(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--model", required=True, metavar="DIR|ZIP", help=model_import.MODEL_FLAG_HELP)
    parser.add_argument("--dataset", metavar="NAME", help="data to use (default: the model's own)")
    parser.add_argument("--data-dir", metavar="DIR", help="folder with torchvision-layout datasets")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers to FILE as JSON")
    return parser


def _noise_flags(parser: argparse.ArgumentParser, default_level: float) -> None:
    parser.add_argument("--noise", choices=tuple(denoise.NOISE_KINDS), default="gaussian", help="noise kind")
    parser.add_argument(
        "--level", type=float, default=default_level, help=f"σ or probability (default: {default_level:g})"
    )


def load_model_and_data(args: argparse.Namespace) -> tuple[nn.Module, RunConfig, data.Dataset]:
    """The saved model and its dataset (or --dataset); NotApplicable when they do not fit each other."""
    saved = model_import.load_model_path(args.model)
    model, config, shape = saved.model, saved.config, saved.image_shape
    dataset = data.load(data_config(args, config))
    check_fits(shape, dataset)
    return model, config, dataset


def data_config(args: argparse.Namespace, config: RunConfig) -> DataConfig:
    """The model's own data config, or --dataset NAME with its defaults; --data-dir replaces the folder."""
    cfg = config.data
    if args.dataset is not None and args.dataset != cfg.dataset:
        cfg = DataConfig(dataset=args.dataset, data_dir=cfg.data_dir)
    if args.data_dir is not None:
        cfg = dataclasses.replace(cfg, data_dir=args.data_dir)
    return cfg


def copy_steps(config: RunConfig, steps: int | None) -> int:
    if steps is not None:
        if steps < 1:
            raise ValueError(f"--steps must be >= 1, got {steps}")
        return steps
    return default_steps(config)


def write_json(path: str | None, doc: dict) -> None:
    if path is None:
        return
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"--json {path} is a folder; give a file name")
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")


# ----- probe ----------------------------------------------------------------------------------------------


def cmd_probe(args: argparse.Namespace) -> int:
    model, config, dataset = load_model_and_data(args)
    if dataset.ground_truth is not None and data_config(args, config).dataset == "bars":
        return probe_bars(args, model, data_config(args, config), dataset)
    answer = probe.probe(model, dataset)
    doc = {"dataset": dataset.name, **probe.summary(answer)}
    print_probe(answer, f"linear probe (logistic regression) on {dataset.name}")
    if args.self_taught:
        taught = probe.self_taught(config, dataset, copy_steps(config, args.steps))
        doc["self_taught"] = probe.summary(taught)
        print_probe(taught, "self-taught: features learned on classes 5-9, probe on 0-4")
    write_json(args.json, doc)
    return 0


def probe_bars(args: argparse.Namespace, model: nn.Module, cfg: DataConfig, dataset: data.Dataset) -> int:
    """The bars have no classes but a known answer: one presence probe per bar (as the page shows)."""
    result = bars_probe.presence_probe(model, dataset, cfg)
    print(
        f"bar-presence probe on bars: {result.n_train} training / {result.n_test} test images, 16 bars\n"
        f"hidden codes {result.accuracy['codes']:.1%}, raw pixels {result.accuracy['pixels']:.1%} "
        f"(always 'absent': {result.base_rate:.1%})"
    )
    write_json(args.json, {"dataset": dataset.name, "bar_presence": result.to_dict()})
    return 0


def print_probe(answer: dict, title: str) -> None:
    results = answer["results"]
    first = next(iter(results.values()))
    print(f"{title}: {first.n_train} training / {first.n_test} test samples")
    print(f"{'features':<14} {'dims':>5} {'accuracy':>9}   accuracy with 50 / 100 / 500 / all labels")
    for name, r in results.items():
        curve = "  ".join(f"{n}: {acc:.1%}" for n, acc in answer["curves"][name])
        print(f"{r.title:<14} {r.n_features:>5} {r.accuracy:>9.1%}   {curve}")


# ----- denoise --------------------------------------------------------------------------------------------


def cmd_denoise(args: argparse.Namespace) -> int:
    model, _, dataset = load_model_and_data(args)
    x = denoise.held_out_images(dataset)
    result = denoise.denoise(model, x, args.noise, args.level)
    levels = _levels(args.levels)
    curve = denoise.psnr_curve(model, x, args.noise, levels)
    print(
        f"{denoise.NOISE_KINDS[args.noise]} noise {args.level:g} on {result.n} {dataset.name} test images: "
        f"PSNR noisy {result.psnr_noisy:.2f} dB, reconstructed {result.psnr_recon:.2f} dB "
        f"({result.gain:+.2f} dB), without noise {result.psnr_clean_recon:.2f} dB"
    )
    print("level   noisy dB   reconstructed dB")
    for level, noisy, recon in zip(curve["level"], curve["noisy"], curve["recon"], strict=True):
        print(f"{level:<7g} {noisy:>8.2f}   {recon:>16.2f}")
    write_json(args.json, {"dataset": dataset.name, **result.to_dict(), "curve": curve})
    return 0


def _levels(text: str | None) -> tuple[float, ...]:
    if text is None:
        return denoise.LEVELS
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"--levels must be numbers separated by commas, got {text!r}") from None


# ----- anomaly --------------------------------------------------------------------------------------------


def cmd_anomaly(args: argparse.Namespace) -> int:
    model, config, dataset = load_model_and_data(args)
    other = None
    if args.anomalies == "dataset":
        if args.other is None:
            raise ValueError("--anomalies dataset needs --other NAME (a dataset of the same image shape)")
        other = data.load(DataConfig(dataset=args.other, data_dir=dataset_dir(args, config)))
    if args.anomalies == "class" and args.retrain:
        steps = copy_steps(config, args.steps)
        model = anomaly.train_without_class(config, dataset, args.held_out, steps)
    elif args.anomalies == "class":
        print(
            f"sae: note: this scores the saved model, which saw class {args.held_out} unless it was trained "
            "without it; --retrain trains a copy without it first (as the page does)",
            file=sys.stderr,
        )
    result = anomaly.detect(
        model,
        dataset,
        args.anomalies,
        kind=args.noise,
        level=args.level,
        held_out=args.held_out,
        other=other,
    )
    doc = {"dataset": dataset.name, **result.to_dict(args.threshold)}
    print(
        f"anomalies: {result.description}; normal: {len(result.normal)} {dataset.name} test samples\n"
        f"AUC {result.auc:.3f}; threshold {doc['threshold']:.4g}: precision {doc['precision']:.1%}, "
        f"recall {doc['recall']:.1%}, false positives {doc['false_positive_rate']:.1%}"
    )
    write_json(args.json, doc)
    return 0


def dataset_dir(args: argparse.Namespace, config: RunConfig) -> str | None:
    return args.data_dir if args.data_dir is not None else config.data.data_dir
