"""`sae sweep`: train a ρ × β grid (optionally × hidden, weight decay or seed) together, write every model.

    sae sweep --rho 0.01,0.05,0.1 --beta 0,1,3,10 [--axis hidden --values 16,25] [train flags] --out DIR
    sae sweep ... --backend ray        the same, each block of cells a Ray task (sae_core.sweep.ray_backend)

Every `sae train` flag sets the settings the cells share (dataset, hidden, steps or epochs, optimizer, lr,
batch size, seed...); --rho and --beta take lists here. The folder (sae_core.sweep.run): DIR/sweep.csv,
DIR/sweep.json and DIR/cells/<name>/ per cell. Registered by sae_core.cli.main; errors are ValueError (one
line).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from sae_core.cli.flags import UsageError, add_config_flags, config_from_args
from sae_core.data import datasets as data
from sae_core.sweep.ray_backend import INSTALL_HINT, import_ray
from sae_core.sweep.run import (
    BACKENDS,
    CELLS_DIR,
    TABLE_CSV,
    TABLE_JSON,
    check_backend,
    check_out_dir,
    run_sweep,
)
from sae_core.sweep.spec import AXES, MAX_AXIS_VALUES, MAX_VALUES, SweepSpec
from sae_core.sweep.trainer import SweepSnapshot
from sae_core.train import budget
from sae_core.train.threads import all_cores

FLAGS = {"rhos": "--rho", "betas": "--beta", "axis_values": "--values"}
"""SweepSpec field -> the flag that sets it (its error messages are rewritten to name the flag)."""
TABLE_COLUMNS = (
    ("rho", "ρ", "{:g}"),
    ("beta", "β", "{:g}"),
    ("recon_error", "recon", "{:.4f}"),
    ("mean_activation", "mean ρ̂", "{:.4f}"),
    ("l0", "L0", "{:.2f}"),
    ("dead_units", "dead", "{:d}"),
    ("fve", "FVE", "{:.3f}"),
    ("loss", "loss", "{:.4g}"),
    ("status", "status", "{}"),
)


def add_parser(commands) -> argparse.ArgumentParser:
    """Add `sweep` to the `sae` subcommands (every config flag, with --rho / --beta taking lists)."""
    sweep = commands.add_parser(
        "sweep",
        help="train a grid of ρ × β (× hidden, weight decay or seed) together and save every model",
        description=__doc__.split("\n\n")[0],
        conflict_handler="resolve",  # --rho and --beta below replace the single-valued config flags
    )
    add_config_flags(sweep)
    grid = sweep.add_argument_group("grid")
    grid.add_argument(
        "--rho", dest="rhos", required=True, metavar="R,R,...", help=f"ρ values (at most {MAX_VALUES})"
    )
    grid.add_argument(
        "--beta", dest="betas", required=True, metavar="B,B,...", help=f"β values (at most {MAX_VALUES})"
    )
    grid.add_argument("--axis", choices=AXES, help="an optional third axis")
    grid.add_argument(
        "--values", dest="axis_values", metavar="V,V,...", help=f"its values (at most {MAX_AXIS_VALUES})"
    )
    sweep.add_argument(
        "--out", required=True, metavar="DIR", help="folder for the table and every cell's model"
    )
    sweep.add_argument("--force", action="store_true", help="overwrite a sweep already saved in --out")
    sweep.add_argument(
        "--memory-mb",
        type=float,
        metavar="MB",
        help=f"per-run memory budget (default: ${budget.ENV_VAR} or {budget.DEFAULT_RUN_MEMORY_MB}); "
        "a sweep may use 4 times it",
    )
    sweep.add_argument(
        "--backend",
        default="local",
        metavar="{" + ",".join(BACKENDS) + "}",
        help="where the cells train: local (this process, the default) or ray (one Ray task per block of "
        "cells, on the cluster $RAY_ADDRESS names, else a Ray started on this machine; needs "
        f"{INSTALL_HINT})",
    )
    sweep.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    sweep.set_defaults(run=cmd_sweep, default_threads=all_cores())
    return sweep


def parse_list(text: str, flag: str) -> tuple[float, ...]:
    """ "0.01, 0.05,0.1" -> (0.01, 0.05, 0.1); ValueError naming the flag otherwise."""
    parts = [p for p in text.replace(" ", "").split(",") if p]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise ValueError(
            f"{flag} must be comma-separated numbers such as 0.01,0.05,0.1; got {text!r}"
        ) from None
    if not values:
        raise ValueError(f"{flag} needs at least one value")
    return values


def spec_from_args(args: argparse.Namespace) -> SweepSpec:
    """The SweepSpec the flags describe; its errors name the flag (--rho, --beta, --values)."""
    base = config_from_args(args)
    if base.train.steps == 0 and base.train.epochs is None:
        raise UsageError(
            "--steps 0 means 'until paused', which only the app can do; give --steps N or --epochs E"
        )
    if (args.axis is None) != (args.axis_values is None):
        raise UsageError("--axis and --values go together: e.g. --axis hidden --values 16,25")
    values = () if args.axis_values is None else parse_list(args.axis_values, "--values")
    rhos, betas = parse_list(args.rhos, "--rho"), parse_list(args.betas, "--beta")
    try:
        return SweepSpec(base, rhos, betas, args.axis, values, memory_mb=args.memory_mb)
    except ValueError as e:
        text = str(e)
        for name, flag in FLAGS.items():
            if text.startswith(f"{name}:") or text.startswith(f"{name} "):
                text = flag + text[len(name) :]
        raise ValueError(text) from None


def cmd_sweep(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    check_backend(args.backend)
    if args.backend == "ray":
        import_ray()  # without Ray: a one-line error that says how to install it, before any data loads
    out = check_out_dir(args.out, args.force)  # before any training
    dataset = data.load(spec.base.data)
    blocks = spec.blocks()
    if not args.quiet:
        print(f"sweep: {spec.n_cells} cells in {len(blocks)} batched block(s)", file=sys.stderr)

    def progress(block: int, n_blocks: int, step: int, total: int) -> None:
        if not args.quiet:
            hidden = spec.cells()[blocks[block][0]].model.hidden
            print(
                f"block {block + 1}/{n_blocks} ({len(blocks[block])} cells, hidden {hidden}): "
                f"step {step}/{total}",
                file=sys.stderr,
            )

    snap = run_sweep(spec, dataset, out, backend=args.backend, progress=progress, force=args.force)
    print(format_table(snap))
    diverged = [c.index for c in snap.cells if c.status == "diverged"]
    if diverged:
        print(
            f"sae: {len(diverged)} cell(s) diverged and kept their last good weights: {diverged}",
            file=sys.stderr,
        )
    where = Path(out)
    print(
        f"wrote {where / TABLE_CSV}, {where / TABLE_JSON} and {spec.n_cells} models under "
        f"{where / CELLS_DIR} ({snap.seconds:.1f} s of training)"
    )
    return 0


def format_table(snap: SweepSnapshot) -> str:
    """The short table printed at the end: one line per cell."""
    columns = list(TABLE_COLUMNS)
    if snap.spec.axis is not None:
        columns.insert(2, (snap.spec.axis, snap.spec.axis, "{:g}"))
    rows = snap.rows()
    cells = [[_format(fmt, row[key]) for key, _, fmt in columns] for row in rows]
    heads = [head for _, head, _ in columns]
    widths = [max(len(h), *(len(c[j]) for c in cells)) for j, h in enumerate(heads)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _format(fmt: str, value) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan"
    return fmt.format(value)
