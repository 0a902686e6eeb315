"""The `sae` command line: train, encode, gradcheck, datasets, presets (and unit, sweep, the applications,
exercise).

`sae train` has one flag per config field (kebab-case, generated from sae_core.config.run, so a new
field gets a flag with no change here); `--preset NAME` starts from one of the app's presets instead of the
config's defaults, and the flags given override its settings. Errors the user can fix print one line,
`sae: error: ...`, and exit with status 2; a diverged run still saves its restored weights and
exits with status 3. Training uses one torch thread, as each of the app's jobs does (a sweep: every
core), unless $SAE_TORCH_THREADS says otherwise (sae_core.train.threads). Set SAE_DEBUG=1 to get the
traceback instead of the one line. A run is checked against the per-run memory budget
(sae_core.train.budget) before its data or model is built.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch

from sae_core.cli import applications as cli_applications
from sae_core.cli import exercise as cli_exercise
from sae_core.cli import presets as cli_presets
from sae_core.cli import sweep as cli_sweep
from sae_core.cli import unit as cli_unit
from sae_core.cli.flags import Parser, UsageError, add_config_flags, config_from_args, given_fields
from sae_core.data import datasets as data
from sae_core.models import VARIANTS
from sae_core.penalties.registry import get_penalty
from sae_core.store import export, model_import
from sae_core.train import budget, gradcheck, metrics
from sae_core.train.heap import keep_freed_memory
from sae_core.train.threads import DEFAULT_THREADS, configure_threads

EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_GRADCHECK_FAILED = 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        # One torch thread unless $SAE_TORCH_THREADS says otherwise, as in the app (a sweep: every core).
        configure_threads(default=getattr(args, "default_threads", DEFAULT_THREADS))
        keep_freed_memory()  # a command is one short-lived process (sae_core.train.heap)
        return args.run(args)
    except SystemExit as e:  # --help and --version
        return e.code if isinstance(e.code, int) else 0
    except KeyboardInterrupt:
        print("\nsae: interrupted", file=sys.stderr)
        return 130
    except (UsageError, ValueError, OverflowError, OSError, data.DataUnavailableError) as e:
        # UploadError is a ValueError; config validation raises ValueError naming the field.
        if os.environ.get("SAE_DEBUG") == "1":  # developers: see where it came from
            raise
        print(f"sae: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="sae", description="Sparse Autoencoder Playground from the command line.")
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser, required=True)

    train = commands.add_parser("train", help="train an autoencoder and save model, metrics and figures")
    cli_presets.add_preset_flag(train)
    add_config_flags(train)
    train.add_argument("--out", metavar="DIR", help="folder for model, config, metrics and PNG figures")
    train.add_argument("--force", action="store_true", help="overwrite a run already saved in --out")
    train.add_argument(
        "--memory-mb",
        type=float,
        metavar="MB",
        help=f"per-run memory budget (default: ${budget.ENV_VAR} or {budget.DEFAULT_RUN_MEMORY_MB})",
    )
    train.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    train.set_defaults(run=cmd_train)

    encode = commands.add_parser("encode", help="hidden codes of inputs under a saved model")
    encode.add_argument("--model", required=True, metavar="DIR|ZIP", help=model_import.MODEL_FLAG_HELP)
    encode.add_argument(
        "--input", required=True, metavar="X.npy", help="[N, D] or [N, H, W]; floats in [0, 1] or uint8"
    )
    encode.add_argument(
        "--output", required=True, metavar="H.npy", help="where to write the [N, hidden] codes"
    )
    encode.set_defaults(run=cmd_encode)

    check = commands.add_parser("gradcheck", help="compare autograd gradients with finite differences")
    check.add_argument("--eps", type=float, default=1e-6, help="finite-difference step (default: 1e-6)")
    check.add_argument(
        "--tol", type=float, default=gradcheck.TOLERANCE, help="largest relative error allowed"
    )
    check.add_argument("--seed", type=int, default=0, help="seed of the tiny model and inputs")
    check.add_argument(
        "--variant",
        choices=("all", *VARIANTS),
        default="all",
        help="the variant to check, with every penalty it takes (default: all of them)",
    )
    check.set_defaults(run=cmd_gradcheck)

    listing = commands.add_parser("datasets", help="list datasets and whether they are available here")
    listing.add_argument("--data-dir", metavar="DIR", help="folder with torchvision-layout datasets")
    listing.set_defaults(run=cmd_datasets)
    cli_presets.add_parser(commands)  # sae presets: the app's preset cards (sae_core/cli/presets.py)
    cli_unit.add_parser(commands)  # sae unit: one hidden unit's card (sae_core/cli/unit.py)
    cli_sweep.add_parser(commands)  # sae sweep: a ρ × β grid trained batched (sae_core/cli/sweep.py)
    cli_applications.add_parsers(commands)  # sae probe / denoise / anomaly (sae_core/cli/applications.py)
    cli_exercise.add_parser(commands)  # sae exercise: check a typed KL penalty (sae_core/cli/exercise.py)
    return parser


# ----- train ------------------------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    from sae_core.train.trainer import Trainer

    data_dir = getattr(args, "data_dir", None)
    cfg = config_from_args(args, cli_presets.preset_settings(args.preset, given_fields(args), data_dir))
    if cfg.train.steps == 0 and cfg.train.epochs is None:
        # The app's "until paused" has a Pause button to end it; a command line has none.
        raise UsageError(
            "--steps 0 means 'until paused', which only the app can do; give --steps N or --epochs E"
        )
    if args.out:
        check_out_dir(args.out, args.force)
    if cfg.data.dataset == "upload":  # its size is the file's: read it (within the upload limits) first
        dataset = data.load(cfg.data)
        budget.check(cfg, args.memory_mb, samples=len(dataset.train), image_shape=dataset.image_shape)
    else:
        budget.check(cfg, args.memory_mb)
        dataset = data.load(cfg.data)
    trainer = Trainer(cfg, dataset)
    progress = Progress(enabled=not args.quiet)
    last = None
    for last in trainer.run():
        progress.update(last)
    progress.close()
    summary = final_metrics(trainer, last, dataset)
    if args.out:
        write_run(args.out, trainer, last, summary)
    print(_format_metrics(summary))
    if last.status == "diverged":
        print(f"sae: {last.message}", file=sys.stderr)
        return EXIT_DIVERGED
    return 0


def check_out_dir(out: str | Path, force: bool) -> None:
    """Refuse, before training, to write into a file or over a run saved earlier (unless --force)."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    saved = [f for f in (export.MODEL_FILE, export.CONFIG_FILE) if (path / f).exists()]
    if saved and not force:
        raise UsageError(f"--out {out} already holds a run ({', '.join(saved)}); add --force to overwrite it")


def final_metrics(trainer: Any, snap: Any, dataset: data.Dataset) -> dict[str, Any]:
    """metrics.evaluate on the whole training set plus run facts, the last step's loss terms and, with
    ground truth, how many true features the final weights found (metrics.truth_summary; for the bars also
    as bars_found, the Train page's "Bars found")."""
    out: dict[str, Any] = metrics.evaluate(trainer.model, trainer.x)
    if dataset.test is not None:
        test = metrics.evaluate(trainer.model, dataset.test.to(trainer.device))
        out.update({f"test_{k}": v for k, v in test.items()})
    out.update(
        steps=snap.step,
        seconds=snap.seconds,
        samples_per_second=snap.samples_per_second,
        evaluations=snap.evaluations,
        device=str(trainer.device),
        status=snap.status,
    )
    out.update({f"loss_{k}": v for k, v in snap.losses.items()})
    out.update(metrics.truth_summary(snap.truth_match, snap.truth_similarity))
    if snap.truth_match is not None and snap.truth_similarity == "correlation":  # the bars' measure
        out.update(bars_found=metrics.features_found(snap.truth_match), bars_total=len(snap.truth_match))
    return out


def write_run(out_dir: str | Path, trainer: Any, snap: Any, summary: dict[str, Any]) -> Path:
    """model.safetensors, config.json, metrics.json and the snapshot's files (filters.png,
    reconstructions.png, the loss history as CSV: export.save_snapshot_files) in out_dir."""
    shape = trainer.dataset.image_shape
    out = export.save(trainer.model, trainer.config, out_dir, summary, image_shape=shape)
    export.save_snapshot_files(snap, out)
    return out


class Progress:
    """A one-line progress bar on stderr: redrawn in place on a terminal, every 10% otherwise."""

    def __init__(self, stream: TextIO | None = None, enabled: bool = True, width: int = 24) -> None:
        self.stream = stream or sys.stderr
        self.enabled, self.width = enabled, width
        self.tty = self.stream.isatty()
        self._next_tenth = 0
        self._drawn = False

    def update(self, snap: Any) -> None:
        if not self.enabled:
            return
        filled = round(self.width * snap.progress)
        loss = snap.losses.get("total", float("nan"))
        line = (
            f"step {snap.step}/{snap.total_steps} [{'#' * filled}{'.' * (self.width - filled)}] "
            f"loss {loss:.4g}  {snap.samples_per_second:,.0f} samples/s"
        )
        if self.tty:
            self.stream.write("\r" + line.ljust(79))
            self._drawn = True
        elif snap.progress * 10 >= self._next_tenth or snap.status != "running":
            self.stream.write(line + "\n")
            self._next_tenth = int(snap.progress * 10) + 1
        self.stream.flush()

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()


def _format_metrics(summary: dict[str, Any]) -> str:
    keys = (
        "recon_error",
        "fve",
        "mean_activation",
        "l0",
        "dead_fraction",
        "bars_found",
        "features_found",
        "mmcs",
        "loss_total",
        "samples_per_second",
    )
    shown = [k for k in keys if k in summary and not (k == "features_found" and "bars_found" in summary)]
    return "  ".join(f"{k}={summary[k]:.4g}" for k in shown)


# ----- encode -----------------------------------------------------------------------------------------------


def cmd_encode(args: argparse.Namespace) -> int:
    output = encode_output(args.output)
    saved = model_import.load_model_path(args.model)
    model, image_shape = saved.model, saved.image_shape
    x = read_inputs(args.input, image_shape)
    with torch.no_grad():
        codes = torch.cat([model.encode(chunk) for chunk in x.split(4096)])
    np.save(output, codes.numpy().astype(np.float32))
    print(f"wrote {output}: {len(codes)} codes of {codes.shape[1]} units")
    return 0


def encode_output(output: str | Path) -> Path:
    """The file `np.save` will write for --output: a folder is refused, a missing .npy is added (and said)."""
    path = Path(output)
    if path.is_dir():
        raise UsageError(f"--output {output} is a folder; give a file name such as {path / 'codes.npy'}")
    if path.suffix != ".npy":  # np.save would add it silently
        path = path.with_name(path.name + ".npy")
    if not path.parent.is_dir():
        raise UsageError(f"--output {output}: folder {path.parent} does not exist")
    return path


def read_inputs(path: str | Path, image_shape: tuple[int, int]) -> torch.Tensor:
    """[N, D] float32 from an .npy of [N, D] or [N, H, W] (uint8 scaled by 1/255); D must be H·W.

    The file is memory-mapped, so a header that claims more than the file holds fails without allocating.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"input file {path} does not exist")
    with open(path, "rb") as f:
        head = f.read(6)
        if head.startswith(b"PK"):
            raise ValueError(f"{path} is a .npz archive; encode reads one .npy array (save it with np.save)")
        if head != b"\x93NUMPY":
            raise ValueError(f"{path} is not a .npy file (no .npy header)")
        f.seek(0)
        try:
            fmt = np.lib.format
            version = fmt.read_magic(f)
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, _ = read_header(f)
        except (ValueError, OSError, EOFError, SyntaxError) as e:
            raise ValueError(f"{path} is not a readable .npy array ({_one_line(e)})") from None
    if len(shape) in (2, 3) and math.prod(shape) == 0:
        raise ValueError(f"{path} holds no samples (shape {list(shape)}); nothing to encode")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"{path} is not a readable .npy array ({_one_line(e)})") from None
    d = image_shape[0] * image_shape[1]
    if array.ndim == 3 and tuple(array.shape[1:]) != tuple(image_shape):
        raise ValueError(
            f"{path} holds {array.shape[1]}×{array.shape[2]} images; the model expects {image_shape}"
        )
    if array.ndim not in (2, 3) or math.prod(array.shape[1:]) != d:
        raise ValueError(
            f"{path} has shape {list(array.shape)}; the model expects [N, {d}] or [N, *{image_shape}]"
        )
    if array.dtype != np.uint8 and not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{path} has dtype {array.dtype}; use floats in [0, 1] or uint8")
    x = np.array(array, dtype=np.float32).reshape(len(array), d)  # one float32 copy, read from the map
    if array.dtype == np.uint8:
        x /= np.float32(255.0)
    elif not (np.isfinite(x.min()) and np.isfinite(x.max())):
        raise ValueError(f"{path} contains NaN or infinite values")
    return torch.from_numpy(x)


# ----- gradcheck and datasets -------------------------------------------------------------------------------


def cmd_gradcheck(args: argparse.Namespace) -> int:
    variants = None if args.variant == "all" else [args.variant]
    results = gradcheck.check_all(seed=args.seed, eps=args.eps, variants=variants)
    print("relative error ‖g_analytic − g_numeric‖ / ‖g_analytic + g_numeric‖, float64, eps", f"{args.eps:g}")
    print(f"{'variant':<12} {'penalty':<8} {'parameter':<24} {'rel. error':>10}")
    worst = 0.0
    for (variant, penalty), errors in results.items():
        for name, err in errors.items():
            flag = "" if err <= args.tol else "  FAIL"
            print(f"{variant:<12} {penalty:<8} {name:<24} {err:>10.2e}{flag}")
            worst = max(worst, err)
    estimated = sorted({p for _, p in results if get_penalty(p).straight_through_check is not None})
    for penalty in estimated:
        print(
            f"{penalty}: its code layer's parameters get a straight-through estimate, which finite "
            "differences of the step cannot check; their rows compare it with the derivative of the "
            "smoothed step."
        )
    verdict = "ok" if worst <= args.tol else "FAILED"
    print(f"largest {worst:.2e}, tolerance {args.tol:g}: {verdict}")
    return 0 if worst <= args.tol else EXIT_GRADCHECK_FAILED


def cmd_datasets(args: argparse.Namespace) -> int:
    rows = [("name", "shape", "available", "description", "where / why")]
    for name, info in data.DATASETS.items():
        ok, why = data.availability(name, args.data_dir)
        shape = "any" if info.image_shape == (0, 0) else "×".join(map(str, info.image_shape))
        rows.append((name, shape, "yes" if ok else "no", info.description, why))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True)) + "  " + row[4])
    return 0


def _one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    if isinstance(e, OSError) and e.filename:
        text = f"{e.strerror}: {e.filename}"
    return " ".join(text.split())


def _version() -> str:
    from sae_core import __version__

    return f"sae {__version__}"
