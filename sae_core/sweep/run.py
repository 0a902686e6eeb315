"""Running a sweep into a folder: per-block work as a pure function, backends that map it, the files.

    result = train_block(spec, block, dataset)       one block of spec.blocks(), trained to the end; pure
                                                     (no files, no globals), its result plain picklable data
    snap = run_sweep(spec, dataset, out_dir, backend="local", progress=None, force=False)

A backend is a function `(spec, dataset, progress, on_result=None, should_stop=None) -> list[BlockResult]`
(one result per block, any order; on_result(result) as each block ends, should_stop() polled to end early)
registered in BACKENDS; "local" trains the blocks one after another in this process, "ray"
(sae_core.sweep.ray_backend, an optional extra) maps `train_block` over `range(len(spec.blocks()))` as Ray
tasks
(the dataset travels once, as an object reference: it is only read) and gives the same folder and table.

The folder: DIR/sweep.csv and DIR/sweep.json (one row per cell: SweepSnapshot.rows(), plus its path) and
DIR/cells/<cell name>/ holding what `sae train --out` writes for a run (model.safetensors, config.json,
metrics.json, filters.png, loss_history.csv; export.load reads it back), without reconstructions.png.
The metrics are those of the final snapshot: on the Trainer's fixed probe of training samples.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sae_core import images
from sae_core.data.datasets import Dataset
from sae_core.store import export
from sae_core.sweep.block import model_from_state
from sae_core.sweep.block_work import BlockResult, Progress, Stopped, train_block
from sae_core.sweep.ray_backend import run_ray
from sae_core.sweep.trainer import SweepSnapshot, SweepSpec

TABLE_CSV = "sweep.csv"
TABLE_JSON = "sweep.json"
CELLS_DIR = "cells"


def run_local(
    spec: SweepSpec,
    dataset: Dataset,
    progress: Progress | None = None,
    on_result: Callable[[BlockResult], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[BlockResult]:
    """Every block in turn in this process. on_result(result) as each block ends; should_stop() between
    blocks ends the sweep early with a Stopped (the blocks done so far were handed to on_result)."""
    results = []
    for b in range(len(spec.blocks())):
        if should_stop is not None and should_stop():
            raise Stopped(f"stopped after {b} of {len(spec.blocks())} blocks")
        results.append(train_block(spec, b, dataset, progress=progress))
        if on_result is not None:
            on_result(results[-1])
    return results


BACKENDS: dict[str, Callable[..., list[BlockResult]]] = {"local": run_local, "ray": run_ray}


def check_backend(name: str) -> None:
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {name!r}")


def check_out_dir(out_dir: str | Path, force: bool) -> Path:
    """Refuse a file, or a folder that already holds a sweep (unless force)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out_dir} is a file, not a folder")
    if (out / TABLE_CSV).exists() and not force:
        raise ValueError(f"--out {out_dir} already holds a sweep ({TABLE_CSV}); add --force to overwrite it")
    return out


def run_sweep(
    spec: SweepSpec,
    dataset: Dataset,
    out_dir: str | Path,
    backend: str = "local",
    progress: Progress | None = None,
    force: bool = False,
) -> SweepSnapshot:
    """Train every cell with `backend`, write the folder described above and return the final snapshot."""
    check_backend(backend)
    out = check_out_dir(out_dir, force)
    results = sorted(BACKENDS[backend](spec, dataset, progress), key=lambda r: r.block)
    snap = SweepSnapshot.combine([r.snapshot for r in results])
    write_sweep(out, snap, results)
    return snap


def write_sweep(out: Path, snap: SweepSnapshot, results: list[BlockResult]) -> None:
    """Every cell's folder, then the table (CSV and JSON) that lists them."""
    spec = snap.spec
    rows = {row["cell"]: row for row in snap.rows()}
    for result in results:
        for i, state in zip(result.cells, result.states, strict=True):
            folder = out / CELLS_DIR / spec.cell_name(i)
            write_cell(folder, snap, i, state)
            rows[i]["path"] = f"{CELLS_DIR}/{spec.cell_name(i)}"
    table = [rows[i] for i in sorted(rows)]
    columns = list(table[0])
    with (out / TABLE_CSV).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(table)
    doc = {
        "spec": spec.to_dict(),
        "steps": snap.step,
        "total_steps": snap.total_steps,
        "seconds": snap.seconds,
        "image_shape": list(snap.image_shape),
        "metrics_on": "the Trainer's probe: up to 1000 training samples (seeded 1234)",
        "columns": columns,
        "cells": [{k: _json_value(v) for k, v in row.items()} for row in table],
    }
    (out / TABLE_JSON).write_text(json.dumps(doc, indent=2) + "\n")


def write_cell(folder: Path, snap: SweepSnapshot, i: int, state: dict[str, np.ndarray]) -> None:
    """What `sae train --out` writes for one run: model, config, metrics, filters.png, loss_history.csv."""
    cell = snap.cell(i)
    model = model_from_state(cell.config, state, snap.image_shape, snap.step, snap.total_steps)
    summary: dict[str, Any] = {**cell.metrics, "steps": snap.step, "seconds": cell.seconds}
    summary.update(status=cell.status, sweep_cell=i, rho=cell.rho, beta=cell.beta)
    summary.update({f"loss_{k}": v for k, v in cell.losses.items()})
    if cell.message:
        summary["message"] = cell.message
    export.save(model, cell.config, folder, summary, image_shape=snap.image_shape)
    filters = model.filters().detach().numpy().astype(np.float32)  # conv: its kernels, not the image size
    grid = images.filter_montage(filters, model.filter_shape(snap.image_shape))
    images.save_png(grid, folder / export.FILTERS_PNG, lo=-1, hi=1)
    export.write_history_csv(folder / export.LOSS_CSV, cell.history_steps, cell.history)


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
