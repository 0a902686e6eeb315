"""Save and load a trained model: `model.safetensors` + `config.json` (+ `metrics.json`) in one folder.

Weights are stored with safetensors, never pickled, so loading a folder someone sent you cannot run
code. `config.json` is `RunConfig.to_json()` plus a top-level "shape" entry (n_inputs, image_shape)
so the model can be rebuilt without loading its dataset.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import RunConfig
from .models import build

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
SHAPE_KEY = "shape"
"""Top-level key of config.json that is not part of RunConfig: {"n_inputs": D, "image_shape": [H, W]}."""


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
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    image_shape = tuple(image_shape) if image_shape is not None else guess_image_shape(_n_inputs(model))
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
    save_file(tensors, str(out / MODEL_FILE))
    doc = config.to_dict()
    doc[SHAPE_KEY] = {"n_inputs": image_shape[0] * image_shape[1], "image_shape": list(image_shape)}
    (out / CONFIG_FILE).write_text(json.dumps(doc, indent=2) + "\n")
    if metrics is not None:
        (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    return out


def load(model_dir: str | Path) -> tuple[nn.Module, RunConfig, tuple[int, int]]:
    """Rebuild the model saved in model_dir on the CPU: (model in eval mode, config, image_shape).

    Raises FileNotFoundError when a file is missing and ValueError when a file is unreadable or the
    weights do not fit the architecture that config.json describes.
    """
    folder = Path(model_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder {folder} does not exist")
    config, image_shape = load_config(folder)
    model = build(config.model, image_shape[0] * image_shape[1], image_shape)
    tensors = _read_safetensors(folder / MODEL_FILE)
    _check_tensors(model, tensors, folder / MODEL_FILE)
    model.load_state_dict(tensors)
    return model.eval(), config, image_shape


def load_config(model_dir: str | Path) -> tuple[RunConfig, tuple[int, int]]:
    """(RunConfig, image_shape) from model_dir/config.json."""
    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; is {model_dir} a folder written by `sae train --out`?")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path} must hold a JSON object")
    shape = doc.pop(SHAPE_KEY, None)
    try:
        config = RunConfig.from_dict(doc)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from None
    return config, _image_shape_from(shape, path)


def load_metrics(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing")
    return json.loads(path.read_text())


def _image_shape_from(shape: Any, path: Path) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in shape["image_shape"])
    except (TypeError, KeyError, ValueError):
        raise ValueError(
            f'{path} needs "{SHAPE_KEY}": {{"image_shape": [H, W]}} to rebuild the model'
        ) from None
    if h < 1 or w < 1:
        raise ValueError(f"{path}: image_shape must be positive, got {[h, w]}")
    if "n_inputs" in shape and int(shape["n_inputs"]) != h * w:
        raise ValueError(f"{path}: n_inputs {shape['n_inputs']} does not equal H·W = {h * w}")
    return h, w


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing")
    try:
        return load_file(str(path), device="cpu")
    except Exception as e:  # safetensors raises its own SafetensorError (and OSError) on bad headers
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"{path} is not a valid safetensors file ({reason})") from None


def _check_tensors(model: nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """One readable line for missing / unexpected names and shape mismatches (load_state_dict's are long)."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{path} does not match the config's model: missing {missing or 'nothing'}, "
            f"unexpected {unexpected or 'nothing'}"
        )
    for name, shape in expected.items():
        if tuple(tensors[name].shape) != shape:
            raise ValueError(
                f"{path}: {name} has shape {list(tensors[name].shape)}; the config needs {list(shape)}"
            )


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


def zip_bytes(
    model: nn.Module, config: RunConfig, metrics: dict[str, Any] | None, *, image_shape: tuple[int, int]
) -> bytes:
    """The folder `save` writes, as the bytes of one zip file (the app's download)."""
    import io
    import tempfile
    import zipfile

    buf = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        out = save(model, config, tmp, metrics, image_shape=image_shape)
        for path in sorted(Path(out).iterdir()):
            zf.write(path, path.name)
    return buf.getvalue()
