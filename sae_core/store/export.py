"""Save and load a trained model: `model.safetensors` + `config.json` (+ `metrics.json`) in one folder.

`save_snapshot_files` adds what a snapshot shows (filters.png, reconstructions.png, the loss history as
CSV): `sae train --out` and the app's download both write them with it.

Weights are stored with safetensors, never pickled, so loading a folder someone sent you cannot run
code. `config.json` is `RunConfig.to_json()` plus a top-level "shape" entry (n_inputs, image_shape)
so the model can be rebuilt without loading its dataset.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from sae_core import images
from sae_core.config.run import RunConfig
from sae_core.store.folder import (
    CONFIG_FILE,
    FILTERS_PNG,
    LOSS_CSV,
    METRICS_FILE,
    MODEL_FILE,
    RECONSTRUCTIONS_PNG,
    SHAPE_KEY,
    TEST_LOSS_CSV,
)
from sae_core.store.model_import import read_folder
from sae_core.train.metrics import truth_summary

if TYPE_CHECKING:
    from sae_core.train.snapshot import Snapshot


def save(
    model: nn.Module,
    config: RunConfig,
    out_dir: str | Path,
    metrics: dict[str, Any] | None = None,
    *,
    image_shape: tuple[int, int] | None = None,
) -> Path:
    """Write the model's weights, its config and (optionally) metrics into out_dir; return the folder.

    image_shape: (H, W) of one input image; when None it is taken as square if n_inputs is a square,
    else (1, n_inputs). n_inputs is read from the model's first layer when image_shape is not given.
    """
    from safetensors.torch import save

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    image_shape = tuple(image_shape) if image_shape is not None else guess_image_shape(_n_inputs(model))
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
    # Serialised in memory and written as the other files are: safetensors' own save_file creates the file
    # with mode 0600 whatever the umask, so the weights alone would be unreadable to the group and others.
    (out / MODEL_FILE).write_bytes(save(tensors))
    doc = config.to_dict()
    doc[SHAPE_KEY] = {"n_inputs": image_shape[0] * image_shape[1], "image_shape": list(image_shape)}
    (out / CONFIG_FILE).write_text(json.dumps(doc, indent=2) + "\n")
    if metrics is not None:
        (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    return out


def load(model_dir: str | Path) -> tuple[nn.Module, RunConfig, tuple[int, int]]:
    """Rebuild the model saved in model_dir on the CPU: (model in eval mode, config, image_shape).

    Raises FileNotFoundError when the folder or a file is missing and ValueError when a file is
    unreadable, the weights do not fit the architecture that config.json describes or are not finite, or
    that model is over the per-run memory budget (checked on the meta device, before anything is
    allocated). The checks are sae_core.store.model_import's, which reads model zips the same way.
    """
    return read_folder(model_dir)


def load_metrics(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing")
    return json.loads(path.read_text())


def _n_inputs(model: nn.Module) -> int:
    encoder = getattr(model, "encoder", None)
    if isinstance(encoder, nn.Linear):
        return encoder.in_features
    first = next((m for m in model.modules() if isinstance(m, nn.Linear)), None)
    if first is None:
        raise ValueError("cannot tell this model's input size; pass image_shape to save()")
    return first.in_features


def guess_image_shape(n_inputs: int) -> tuple[int, int]:
    """(s, s) when n_inputs = s², else one row (1, n_inputs)."""
    side = math.isqrt(n_inputs)
    return (side, side) if side * side == n_inputs else (1, n_inputs)


def save_snapshot_files(snap: Snapshot, out_dir: str | Path) -> None:
    """filters.png (UFLDL grid of the encoder filters), reconstructions.png (the shown inputs above their
    reconstructions), loss_history.csv (step, one column per term) and, with a test split,
    test_loss_history.csv (the held-out terms at each snapshot's step) into out_dir."""
    out = Path(out_dir)
    shape = snap.image_shape
    filters = snap.encoder_weight
    tile = shape if filters.shape[1] == shape[0] * shape[1] else guess_image_shape(filters.shape[1])
    images.save_png(images.filter_montage(filters, tile), out / FILTERS_PNG, lo=-1, hi=1)
    pairs = np.concatenate([snap.show_inputs, snap.show_recon])
    grid = images.montage(pairs, shape, cols=len(snap.show_inputs))
    images.save_png(grid, out / RECONSTRUCTIONS_PNG, lo=0, hi=1)
    write_history_csv(out / LOSS_CSV, snap.history_steps, snap.history)
    if snap.test_history_steps is not None and snap.test_history:
        write_history_csv(out / TEST_LOSS_CSV, snap.test_history_steps, snap.test_history)


def write_history_csv(path: Path, steps: np.ndarray, history: dict[str, np.ndarray]) -> None:
    """A header "step,<term>,..." and one row per step; values as Python writes floats (exact)."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", *history])
        columns = [np.asarray(v, dtype=np.float64).tolist() for v in history.values()]
        for i, step in enumerate(np.asarray(steps).tolist()):
            writer.writerow([step, *(repr(c[i]) for c in columns)])


def snapshot_metrics(snap: Snapshot) -> dict[str, Any]:
    """metrics.json of the app's download: the probe metrics, the held-out ones as test_*, the step count
    and the run's facts (the keys `sae train` writes for the same facts), and with ground truth how many
    true features the units found (features_found, features_total; mmcs for superposition)."""
    out: dict[str, Any] = dict(snap.metrics)
    out.update({f"test_{k}": v for k, v in (snap.test_metrics or {}).items()})
    out.update(steps=snap.step, total_steps=snap.total_steps, epoch=snap.epoch, seconds=snap.seconds)
    out.update(status=snap.status, samples_per_second=snap.samples_per_second)
    out.update({f"loss_{k}": v for k, v in snap.losses.items()})
    out.update(truth_summary(snap.truth_match, snap.truth_similarity))
    return out


def zip_bytes(
    model: nn.Module,
    config: RunConfig,
    metrics: dict[str, Any] | None,
    *,
    image_shape: tuple[int, int],
    snapshot: Snapshot | None = None,
) -> bytes:
    """The folder `save` writes, plus `save_snapshot_files(snapshot)` when given, as the bytes of one zip
    file (the app's download)."""
    import io
    import tempfile
    import zipfile

    buf = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        out = save(model, config, tmp, metrics, image_shape=image_shape)
        if snapshot is not None:
            save_snapshot_files(snapshot, out)
        for path in sorted(Path(out).iterdir()):
            zf.write(path, path.name)
    return buf.getvalue()
