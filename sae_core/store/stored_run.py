"""A kept run: its listing (`RunInfo`, run.json), and the run read back from its folder (`StoredRun`, with a
Snapshot rebuilt from it). `sae_core.store.runs` keeps the folder of such runs.

The rebuilt snapshot lets the comparison draw a kept run with the very figure functions the Train page
uses (filters, ρ̂ and density histograms, loss curves, the metric row). What it cannot hold is what was
not kept: the probe's activations and reconstructions, the variant's extras. Unit statistics (ρ̂ and
density per unit, units.json) are the ones the run had when it was kept; a folder without them (a model
folder from elsewhere) gives a snapshot without histograms (`rho_hat` and `density` are None).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sae_core.config.run import RunConfig
from sae_core.store import export
from sae_core.train.snapshot import Snapshot

UNITS_FILE = "units.json"


@dataclass(frozen=True)
class RunInfo:
    """One kept run as listed (run.json): no weights are read to list runs."""

    id: str
    owner: str
    """owner_key() of the owner."""
    title: str
    status: str
    """finished | stopped | downloaded | imported: why it was kept."""
    created: float
    """Unix time it was first kept."""
    saved: float
    """Unix time it was last written (a run kept again at a later step is rewritten in place)."""
    steps: int
    dataset: str
    variant: str
    penalty: str
    hidden: int
    rho: float
    beta: float
    recon_error: float | None
    path: Path
    size_bytes: int = 0

    def to_json(self) -> str:
        doc = dataclasses.asdict(self)
        doc.pop("path")
        doc.pop("size_bytes")
        return json.dumps(doc, indent=2) + "\n"


@dataclass(frozen=True, eq=False)
class StoredRun:
    """A kept run as loaded: the model on the CPU in eval mode and what was written with it."""

    info: RunInfo
    model: nn.Module
    config: RunConfig
    image_shape: tuple[int, int]
    metrics: dict[str, Any]
    history_steps: np.ndarray
    """[T] steps of the loss history."""
    history: dict[str, np.ndarray]
    """term -> [T] training loss values."""
    test_history_steps: np.ndarray | None
    test_history: dict[str, np.ndarray]
    rho_hat: np.ndarray | None
    """[hidden] mean activation of each unit when the run was kept; None when not kept."""
    density: np.ndarray | None
    n_probe: int

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def snapshot(self) -> Snapshot:
        """A Snapshot of the kept state for the figure functions (see the module doc for what it lacks)."""
        model = self.model
        with torch.no_grad():
            encoder = model.filters().detach().cpu().numpy()
            decoder = model.dictionary()
        hidden = encoder.shape[0]
        numbers = {k: float(v) for k, v in self.metrics.items() if _is_number(v)}
        metrics = {k: v for k, v in numbers.items() if not k.startswith("test_")}
        test = {k.removeprefix("test_"): v for k, v in numbers.items() if k.startswith("test_")}
        last = {k: float(v[-1]) for k, v in self.history.items() if len(v)}
        empty = np.zeros((0, int(np.prod(self.image_shape))), dtype=np.float32)
        return Snapshot(
            step=int(self.metrics.get("steps", self.info.steps)),
            total_steps=int(self.metrics.get("total_steps", self.config.train.steps)),
            epoch=float(self.metrics.get("epoch", 0.0)),
            seconds=float(self.metrics.get("seconds", 0.0)),
            samples_per_second=float(self.metrics.get("samples_per_second", 0.0)),
            losses=last,
            history_steps=self.history_steps,
            history=self.history,
            encoder_weight=encoder,
            decoder_weight=None if decoder is None else decoder.detach().cpu().numpy(),
            filter_shape=tuple(model.filter_shape(self.image_shape)),
            rho_hat=self.rho_hat if self.rho_hat is not None else np.zeros(hidden, dtype=np.float32),
            density=self.density if self.density is not None else np.zeros(hidden, dtype=np.float32),
            activations=np.zeros((self.n_probe, 0), dtype=np.float32),  # only its length is kept
            show_inputs=empty,
            show_recon=empty,
            metrics=metrics,
            config=self.config,
            image_shape=self.image_shape,
            status=self.info.status,
            code_activation=getattr(model, "activation", "sigmoid"),
            active_threshold=float(model.active_threshold),
            test_metrics=test or None,
            test_history_steps=self.test_history_steps,
            test_history=self.test_history,
        )


def read_stored_run(info: RunInfo, folder: Path) -> StoredRun:
    """Load a run folder (export.load's checks on the weights); FileNotFoundError when files are gone."""
    model, config, image_shape = export.load(folder)
    metrics = export.load_metrics(folder) if (folder / export.METRICS_FILE).is_file() else {}
    steps, history = read_history_csv(folder / export.LOSS_CSV)
    test_path = folder / export.TEST_LOSS_CSV
    test_steps, test_history = read_history_csv(test_path) if test_path.is_file() else (None, {})
    rho_hat, density, n_probe = _read_units(folder / UNITS_FILE)
    return StoredRun(
        info=info,
        model=model,
        config=config,
        image_shape=image_shape,
        metrics=metrics,
        history_steps=steps,
        history=history,
        test_history_steps=test_steps,
        test_history=test_history,
        rho_hat=rho_hat,
        density=density,
        n_probe=n_probe,
    )


def read_history_csv(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Inverse of export.write_history_csv: ([T] steps, term -> [T] values); empty when the file is missing.
    ValueError for a file that is not such a table."""
    if not path.is_file():
        return np.zeros(0, dtype=np.int64), {}
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0][:1] != ["step"]:
        raise ValueError(f"{path} does not start with a 'step,...' header")
    header, body = rows[0], rows[1:]
    try:
        table = np.array([[float(v) for v in row] for row in body], dtype=np.float64).reshape(-1, len(header))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return table[:, 0].astype(np.int64), {name: table[:, i] for i, name in enumerate(header[1:], start=1)}


def _read_units(path: Path) -> tuple[np.ndarray | None, np.ndarray | None, int]:
    """(ρ̂ [units], density [units], probe size) from units.json; (None, None, 0) when it is missing or
    malformed. (A code unit is not always a filter: a convolutional model has one per kernel and place.)"""
    try:
        doc = json.loads(path.read_text())
        rho_hat = np.asarray(doc["rho_hat"], dtype=np.float64)
        density = np.asarray(doc["density"], dtype=np.float64)
        n_probe = int(doc.get("n_probe", 0))
    except (OSError, ValueError, KeyError, TypeError):
        return None, None, 0
    if rho_hat.ndim != 1 or rho_hat.shape != density.shape:
        return None, None, 0
    return rho_hat, density, n_probe


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
