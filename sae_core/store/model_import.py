"""Open a saved model that may come from anyone: a folder `export.save` wrote, or that folder as a .zip.

A model zip is the Train page's download, or a `sae train --out` folder zipped: its files at the top of
the zip or all inside one folder (what zipping a folder gives). Folders and zips go through one checking
path, `read_model`, which `export.load` uses as well; `load_archive` and `load_model_path` add what the
Train page needs to go on training (metrics, the step count, the loss history).

What is refused, each with a one-line `ModelImportError` that names the file:
- anything that is not a zip, or a zip cut short;
- a zip over MAX_ARCHIVE_BYTES as sent, declaring more than that unpacked, or listing more than
  MAX_MEMBERS entries (checked from its end record before the directory is parsed);
- member names that are absolute, climb out with "..", hold a backslash or a drive letter, sit in a
  sub-folder, or appear twice;
- pickles: a file starting with pickle's opcode, a torch.save archive, .pt/.pth/.pkl/.bin/.ckpt members,
  a model.safetensors that is really a pickle or a torch.save zip;
- a missing model.safetensors or config.json; weights that do not parse, lack or add tensors, have other
  shapes or a non-float dtype than the config's model, or hold NaN / infinite values; a config.json that
  does not validate (RunConfig's message names the field); a model over the per-run memory budget.

Members the format does not name (filters.png, reconstructions.png, a README) are ignored and never read.
Nothing is unpickled and nothing from a zip touches the disk: members are inflated in memory a chunk at a
time with a cap each and for the whole archive (sizes the zip declares are checked first, not trusted).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
from torch import nn

from sae_core.config.run import RunConfig
from sae_core.data import uploads
from sae_core.models import build
from sae_core.store.folder import CONFIG_FILE, LOSS_CSV, MAX_INPUTS, METRICS_FILE, MODEL_FILE, SHAPE_KEY
from sae_core.train import budget

MAX_ARCHIVE_BYTES = uploads.MAX_FILE_BYTES
"""Largest model zip, as sent and as unpacked (the data uploads' limit; Streamlit's own default too)."""
MAX_MEMBERS = 64
"""Most entries a model zip may list (the download holds 7 files)."""
MAX_JSON_BYTES = 2**20
"""Largest config.json or metrics.json."""
MAX_CSV_BYTES = 8 * 2**20
"""Largest loss_history.csv read (history.HISTORY_CAP rows of a few terms are far less)."""
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt")
PICKLE_OPCODE = b"\x80"
"""First byte of every pickle of protocol 2 or later (and of torch.save's legacy format)."""
ZIP_MAGIC = b"PK"
PICKLE_ADVICE = (
    "it looks like a pickled PyTorch file (torch.save). The playground reads weights only from "
    "safetensors and never unpickles, because unpickling can run code; export the model with "
    "`sae train --out` or the Train page's Download model button"
)
MODEL_FLAG_HELP = "folder written by `sae train --out`, or that folder as a .zip (the Train page's download)"
"""Help of the CLI's --model flags (sae encode, unit, probe, denoise, anomaly): all read load_model_path."""
FORMAT_HINT = "a model zip is the Train page's download, or a folder from `sae train --out` zipped"


class ModelImportError(ValueError):
    """A saved model cannot be used; the message says why in one line."""


class LossTable(NamedTuple):
    """loss_history.csv: steps [T] and one [T] column per loss term."""

    steps: np.ndarray
    terms: dict[str, np.ndarray]


@dataclass(frozen=True)
class Imported:
    """A checked saved model, ready to train on or to explore."""

    model: nn.Module
    """On the CPU, in eval mode."""
    config: RunConfig
    image_shape: tuple[int, int]
    metrics: dict[str, Any]
    """metrics.json ({} when the model came without one)."""
    start_step: int
    """The step the weights were saved at (metrics' "steps"; 0 when unknown)."""
    history: LossTable | None
    """loss_history.csv, or None when it is absent or unreadable (it is only a picture of the past)."""
    name: str
    """The file or folder it came from, for messages."""


# ----- public entry points ----------------------------------------------------------------------------------
def load_archive(data: bytes, name: str) -> Imported:
    """Check and open a model zip held in memory (an upload); `name` is only used in messages."""
    with _zip_source(data, name) as source:
        return _imported(source, name)


def load_model_path(path: str | Path) -> Imported:
    """Check and open a model folder or a model .zip on disk (the CLI's --model)."""
    path = Path(path)
    if path.is_dir():
        return _imported(_Folder(path), str(path))
    if not path.is_file():
        raise ModelImportError(f"{path} does not exist; give a model folder or a model .zip")
    if path.stat().st_size > MAX_ARCHIVE_BYTES:
        raise ModelImportError(f"{path} is larger than {_mb(MAX_ARCHIVE_BYTES)}; {FORMAT_HINT}")
    return load_archive(path.read_bytes(), str(path))


def read_folder(folder: str | Path) -> tuple[nn.Module, RunConfig, tuple[int, int]]:
    """`read_model` of a folder, with FileNotFoundError for a missing folder or file (export.load's API)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder {folder} does not exist")
    return read_model(_Folder(folder, not_found=FileNotFoundError))


# ----- the one checking path --------------------------------------------------------------------------------
class Source(Protocol):
    """The files of a saved model, by their names in the format (a folder, or a checked zip)."""

    def where(self, member: str) -> str: ...
    def has(self, member: str) -> bool: ...
    def size(self, member: str) -> int: ...
    def read(self, member: str, limit: int) -> bytes: ...
    def missing(self, member: str) -> Exception: ...


def read_model(source: Source) -> tuple[nn.Module, RunConfig, tuple[int, int]]:
    """(model in eval mode on the CPU, config, image_shape), every file checked before it is used.

    The config is read first, so the model's size is known (and checked against the per-run budget, on
    the meta device) before the weights are read, and the weights are read with a cap of about twice it.
    """
    config, image_shape = read_config(source)
    need = budget.model_bytes(config.model, image_shape)
    limit = budget.budget_mb() * budget.MB
    if need > limit:
        raise ModelImportError(
            f"{source.where(CONFIG_FILE)}: its model's weights take {need / budget.MB:.0f} MB, more "
            f"than the memory budget of {limit / budget.MB:g} MB (set by {budget.ENV_VAR})"
        )
    if not source.has(MODEL_FILE):
        raise source.missing(MODEL_FILE)
    where, cap = source.where(MODEL_FILE), 2 * need + 2**20
    if source.size(MODEL_FILE) > cap:
        raise ModelImportError(f"{where} is far larger than the model config.json describes ({need} bytes)")
    tensors = parse_safetensors(source.read(MODEL_FILE, cap), where)
    model = build(config.model, image_shape[0] * image_shape[1], image_shape)
    check_tensors(model, tensors, where)
    model.load_state_dict(tensors)
    return model.eval(), config, image_shape


def read_config(source: Source) -> tuple[RunConfig, tuple[int, int]]:
    if not source.has(CONFIG_FILE):
        raise source.missing(CONFIG_FILE)
    where = source.where(CONFIG_FILE)
    doc = _json(source.read(CONFIG_FILE, MAX_JSON_BYTES), where)
    if not isinstance(doc, dict):
        raise ModelImportError(f"{where} must hold a JSON object")
    shape = doc.pop(SHAPE_KEY, None)
    try:
        config = RunConfig.from_dict(doc)
    except (TypeError, ValueError) as e:
        raise ModelImportError(f"{where}: {e}") from None
    return config, image_shape_from(shape, where)


def image_shape_from(shape: Any, where: str) -> tuple[int, int]:
    """config.json's {"image_shape": [H, W], "n_inputs": H·W}, checked."""
    try:
        h, w = (int(v) for v in shape["image_shape"])
    except (TypeError, KeyError, ValueError):
        raise ModelImportError(
            f'{where} needs "{SHAPE_KEY}": {{"image_shape": [H, W]}} to rebuild the model'
        ) from None
    if h < 1 or w < 1:
        raise ModelImportError(f"{where}: image_shape must be positive, got {[h, w]}")
    if h * w > MAX_INPUTS:
        raise ModelImportError(
            f"{where}: image_shape {[h, w]} has {h * w} pixels; at most {MAX_INPUTS} allowed"
        )
    if "n_inputs" in shape and _as_int(shape["n_inputs"]) != h * w:
        raise ModelImportError(f"{where}: n_inputs {shape['n_inputs']} does not equal H·W = {h * w}")
    return h, w


def parse_safetensors(raw: bytes, where: str) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file's bytes; a pickle or torch.save zip is named as such, unread."""
    from safetensors.torch import load

    if raw.startswith(PICKLE_OPCODE) or raw.startswith(ZIP_MAGIC):
        raise ModelImportError(f"{where} is not a valid safetensors file: {PICKLE_ADVICE}")
    try:
        return load(raw)
    except Exception as e:  # safetensors raises its own SafetensorError on bad headers and short files
        raise ModelImportError(f"{where} is not a valid safetensors file ({_short(e)})") from None


def check_tensors(model: nn.Module, tensors: dict[str, torch.Tensor], where: str) -> None:
    """One readable line for missing / unexpected names, shape or dtype mismatches and non-finite values
    (load_state_dict's own messages are long, and it would cast integers to floats silently)."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ModelImportError(
            f"{where} does not match the config's model: missing {missing or 'nothing'}, "
            f"unexpected {unexpected or 'nothing'}"
        )
    for name, shape in expected.items():
        tensor = tensors[name]
        if tuple(tensor.shape) != shape:
            raise ModelImportError(
                f"{where}: {name} has shape {list(tensor.shape)}; the config needs {list(shape)}"
            )
        if not tensor.is_floating_point():
            raise ModelImportError(f"{where}: {name} has dtype {tensor.dtype}; weights must be floats")
        if not bool(torch.isfinite(tensor).all()):
            raise ModelImportError(f"{where}: {name} holds NaN or infinite values; this model cannot be used")


def _imported(source: Source, name: str) -> Imported:
    model, config, image_shape = read_model(source)
    metrics = _read_metrics(source)
    step = _start_step(metrics, source.where(METRICS_FILE))
    return Imported(model, config, image_shape, metrics, step, _read_history(source), name)


def _read_metrics(source: Source) -> dict[str, Any]:
    if not source.has(METRICS_FILE):
        return {}
    where = source.where(METRICS_FILE)
    doc = _json(source.read(METRICS_FILE, MAX_JSON_BYTES), where)
    if not isinstance(doc, dict):
        raise ModelImportError(f"{where} must hold a JSON object")
    return doc


def _start_step(metrics: dict[str, Any], where: str) -> int:
    steps = metrics.get("steps", 0)
    if isinstance(steps, float) and steps.is_integer():
        steps = int(steps)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ModelImportError(f'{where}: "steps" must be a whole number >= 0, got {steps!r}')
    return steps


def _read_history(source: Source) -> LossTable | None:
    """loss_history.csv ("step,<term>,..." then one row per step), or None when absent or malformed."""
    if not source.has(LOSS_CSV):
        return None
    try:
        rows = list(csv.reader(io.StringIO(source.read(LOSS_CSV, MAX_CSV_BYTES).decode("utf-8"))))
        header, body = rows[0], rows[1:]
        if header[0] != "step" or len(header) < 2 or len(set(header)) != len(header):
            return None
        if not body or any(len(row) != len(header) for row in body):
            return None
        steps = np.array([int(row[0]) for row in body], dtype=np.int64)
        columns = np.array([[float(v) for v in row[1:]] for row in body], dtype=np.float64)
    except (ModelImportError, UnicodeDecodeError, csv.Error, ValueError, IndexError):
        return None
    if steps[0] < 0 or np.any(np.diff(steps) <= 0):
        return None
    return LossTable(steps, {term: columns[:, j] for j, term in enumerate(header[1:])})


# ----- a folder ---------------------------------------------------------------------------------------------
class _Folder:
    """A model folder; a missing file raises `not_found` (export.load keeps FileNotFoundError)."""

    def __init__(self, folder: Path, not_found: type[Exception] = ModelImportError) -> None:
        self.folder, self.not_found = folder, not_found

    def where(self, member: str) -> str:
        return str(self.folder / member)

    def has(self, member: str) -> bool:
        return (self.folder / member).is_file()

    def size(self, member: str) -> int:
        return (self.folder / member).stat().st_size

    def read(self, member: str, limit: int) -> bytes:
        with (self.folder / member).open("rb") as f:
            raw = f.read(limit + 1)  # never more than the cap, whatever the file's size
        if len(raw) > limit:
            raise ModelImportError(f"{self.where(member)} is larger than {_mb(limit)}")
        return raw

    def missing(self, member: str) -> Exception:
        hint = f"; is {self.folder} a folder written by `sae train --out`?" if member == CONFIG_FILE else ""
        return self.not_found(f"{self.where(member)} is missing{hint}")


# ----- a zip ------------------------------------------------------------------------------------------------
class _Zip:
    """A checked model zip: its members by their names in the format, inflated with caps when read."""

    def __init__(self, archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], name: str) -> None:
        self.archive, self.members, self.name = archive, members, name
        self.inflated = [0]  # bytes inflated so far, over every member read

    def where(self, member: str) -> str:
        return f"{self.name}: {member}"

    def has(self, member: str) -> bool:
        return member in self.members

    def size(self, member: str) -> int:
        return self.members[member].file_size

    def read(self, member: str, limit: int) -> bytes:
        try:
            return uploads.inflate_member(
                self.archive,
                self.members[member],
                self.name,
                self.inflated,
                limit=limit,
                total=MAX_ARCHIVE_BYTES,
                what="file",
            )
        except uploads.UploadError as e:
            raise ModelImportError(str(e)) from None

    def missing(self, member: str) -> Exception:
        return ModelImportError(f"{self.name} holds no {member}; {FORMAT_HINT}")


@contextmanager
def _zip_source(data: bytes, name: str) -> Iterator[_Zip]:
    """Open `data` as a model zip after the checks on its size, its entries and their names."""
    if len(data) > MAX_ARCHIVE_BYTES:
        raise ModelImportError(f"{name} is larger than {_mb(MAX_ARCHIVE_BYTES)}; {FORMAT_HINT}")
    if data.startswith(PICKLE_OPCODE):
        raise ModelImportError(f"{name}: {PICKLE_ADVICE}")
    if not data.startswith(ZIP_MAGIC):
        raise ModelImportError(f"{name} is not a zip file; {FORMAT_HINT}")
    try:
        uploads.check_zip_directory(data, name, "zip", max_entries=MAX_MEMBERS)
    except uploads.UploadError as e:
        raise ModelImportError(f"{e}; {FORMAT_HINT}") from None
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise ModelImportError(f"{name} is not a zip file, or it is cut short ({_short(e)})") from None
    with archive:
        yield _Zip(archive, _members(archive.infolist(), name), name)


def _members(infos: list[zipfile.ZipInfo], name: str) -> dict[str, zipfile.ZipInfo]:
    """The zip's files by their names in the format: every name checked, one top folder taken off."""
    if len(infos) > MAX_MEMBERS:
        raise ModelImportError(f"{name} lists {len(infos)} entries; a model zip has at most {MAX_MEMBERS}")
    declared = sum(i.file_size for i in infos)
    if declared > MAX_ARCHIVE_BYTES:
        raise ModelImportError(
            f"{name} declares {_mb(declared)} of unpacked files; at most {_mb(MAX_ARCHIVE_BYTES)} allowed "
            "(refused before anything was unpacked)"
        )
    for info in infos:
        _check_name(info.filename, name)
    files = [i for i in infos if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
    folders = {i.filename.split("/")[0] for i in files}
    strip = len(folders) == 1 and all("/" in i.filename for i in files)
    members: dict[str, zipfile.ZipInfo] = {}
    for info in files:
        short = info.filename.split("/", 1)[1] if strip else info.filename
        if "/" in short:
            raise ModelImportError(
                f"{name}: {info.filename} is inside a sub-folder; the model files must be at the top of "
                "the zip or all in one folder"
            )
        if short in members:
            raise ModelImportError(f"{name} holds {short} twice; which one is meant cannot be told")
        members[short] = info
    return members


DRIVE = re.compile(r"^[A-Za-z]:")


def _check_name(member: str, name: str) -> None:
    """Refuse names that unzip tools could write outside their folder, and pickles by their names."""
    parts = member.split("/")
    if member.startswith("/") or "\\" in member or "\0" in member or ".." in parts or DRIVE.match(member):
        raise ModelImportError(
            f"{name}: refused the entry {member!r}: an absolute name, '..', a backslash or a drive letter "
            "could write outside its folder when unzipped"
        )
    base = parts[-1]
    if base.lower().endswith(PICKLE_SUFFIXES) or base == "data.pkl":
        raise ModelImportError(f"{name}: {member}: {PICKLE_ADVICE}")


# ----- small helpers ----------------------------------------------------------------------------------------
def _json(raw: bytes, where: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelImportError(f"{where} is not valid JSON: {_short(e)}") from None


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _mb(n: int) -> str:
    return f"{n / 2**20:.3g} MB" if n < 10 * 2**20 else f"{math.ceil(n / 2**20)} MB"


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:160] if text else type(error).__name__
