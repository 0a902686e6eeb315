"""Parse a user's own data: a .npy / .npz array or a .zip of PNG/JPEG images.

Every failure (wrong type, corrupt or truncated file, bad values, too big) becomes an
`UploadError` with a one-line message naming the file, never a traceback from numpy or PIL.

Accepted shapes: [N, D], [N, H, W] or channel-last [N, H, W, C] with C in {1, 3, 4}
(colour becomes grey by ITU-R 601 luminance; alpha is dropped). A .npz uses the array
named 'x', 'X' or 'data' if present, else its first array. A .zip must hold images of one
size: mixed sizes are rejected (rather than resized) so that pixels are never silently
resampled. Values are scaled to [0, 1]: uint8 by /255, data already in [0, 1] is kept,
anything else is min-max scaled over the whole array.
"""

from __future__ import annotations

import hashlib
import io
import math
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

MAX_FILE_BYTES = 200 * 1024 * 1024
"""Largest accepted upload (the file as sent, and the uncompressed contents of a zip)."""
MAX_ELEMENTS = 50_000_000
"""Largest samples × features: 200 MB as float32, enough for 60000 MNIST-sized images."""
MAX_FEATURES = 256 * 256
"""Largest image (or feature vector): an autoencoder's input layer beyond this is impractical on a CPU."""
MIN_SAMPLES = 2
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ARRAY_KEYS = ("x", "X", "data")
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
LUMINANCE = np.array([0.299, 0.587, 0.114])


UPLOAD_DIR = Path(tempfile.gettempdir()) / "sae-playground-uploads"
"""Where the app keeps the uploaded files it accepted (named by content hash)."""


def store(raw: bytes, filename: str, folder: Path = UPLOAD_DIR) -> Path:
    """Keep an accepted upload's bytes under a name made of their hash (the same file is stored once)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (hashlib.sha256(raw).hexdigest()[:20] + Path(filename).suffix.lower())
    if not path.exists():
        path.write_bytes(raw)
    return path


class UploadError(ValueError):
    """An uploaded file cannot be used; the message says why in one line."""


def load_upload_path(path: str | Path) -> tuple[torch.Tensor, tuple[int, int]]:
    """Read an upload from disk; see `load_upload_bytes`."""
    path = Path(path)
    if not path.is_file():
        raise UploadError(f"{path}: no such file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise UploadError(f"{path.name}: file is larger than {MAX_FILE_BYTES // 2**20} MB")
    return load_upload_bytes(path.read_bytes(), path.name)


def load_upload_bytes(data: bytes, filename: str) -> tuple[torch.Tensor, tuple[int, int]]:
    """Parse an uploaded file's bytes. Returns (x: [N, H*W] float32 in [0, 1], (H, W))."""
    name = Path(filename).name or "upload"
    if not data:
        raise UploadError(f"{name}: the file is empty")
    if len(data) > MAX_FILE_BYTES:
        raise UploadError(f"{name}: file is larger than {MAX_FILE_BYTES // 2**20} MB")
    suffix = Path(name).suffix.lower()
    if suffix == ".npy":
        array = _read_npy(data, name)
    elif suffix == ".npz":
        array = _read_npz(data, name)
    elif suffix == ".zip":
        array = _read_image_zip(data, name)
    else:
        raise UploadError(f"{name}: unsupported file type {suffix or '(none)'}; use .npy, .npz or .zip")
    return _to_samples(array, name)


def _read_npy(data: bytes, name: str) -> np.ndarray:
    # Without this check numpy would try to unpickle anything that lacks the .npy magic.
    if not data.startswith(NPY_MAGIC):
        raise UploadError(f"{name}: not a valid .npy file (no .npy header)")
    try:
        # allow_pickle=False: an uploaded pickle could run arbitrary code; object arrays fail here.
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise UploadError(f"{name}: object arrays are not supported; save a numeric array") from None
        raise UploadError(f"{name}: not a valid .npy file ({_short(e)})") from None
    except (OSError, EOFError) as e:
        raise UploadError(f"{name}: not a valid .npy file ({_short(e)})") from None


def _read_npz(data: bytes, name: str) -> np.ndarray:
    if not data.startswith(ZIP_MAGIC):
        raise UploadError(f"{name}: not a valid .npz archive (no zip header)")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise UploadError(f"{name}: not a valid .npz archive")
            keys = list(npz.files)
            if not keys:
                raise UploadError(f"{name}: the .npz archive holds no arrays")
            key = next((k for k in ARRAY_KEYS if k in keys), keys[0])
            return npz[key]
    except UploadError:
        raise
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise UploadError(f"{name}: object arrays are not supported; save a numeric array") from None
        raise UploadError(f"{name}: not a valid .npz archive ({_short(e)})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise UploadError(f"{name}: not a valid .npz archive ({_short(e)})") from None


def _read_image_zip(data: bytes, name: str) -> np.ndarray:
    """A zip of images -> [N, H, W] uint8 grey (sorted by entry name)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError) as e:
        raise UploadError(f"{name}: not a valid .zip archive ({_short(e)})") from None
    with archive:
        entries = sorted((i for i in archive.infolist() if _is_image_entry(i)), key=lambda i: i.filename)
        if not entries:
            raise UploadError(f"{name}: the zip holds no .png or .jpg images")
        # Sizes in the zip directory are checked before decompressing anything (zip bombs).
        if sum(i.file_size for i in entries) > MAX_FILE_BYTES:
            raise UploadError(f"{name}: the images unpack to more than {MAX_FILE_BYTES // 2**20} MB")
        images = [_read_image(archive, info, name) for info in entries]
    first = images[0].shape
    for info, image in zip(entries, images, strict=True):
        if image.shape != first:
            raise UploadError(
                f"{name}: all images must have the same size; {entries[0].filename} is "
                f"{first[1]}×{first[0]} but {info.filename} is {image.shape[1]}×{image.shape[0]}"
            )
    return np.stack(images)


def _is_image_entry(info: zipfile.ZipInfo) -> bool:
    base = Path(info.filename).name
    # macOS archives carry "__MACOSX/._x.png" resource forks that are not images.
    hidden = base.startswith(".") or info.filename.startswith("__MACOSX/")
    return not info.is_dir() and not hidden and Path(base).suffix.lower() in IMAGE_SUFFIXES


def _read_image(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> np.ndarray:
    """One zip entry -> [H, W] uint8 grey."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(archive.read(info))) as image:
            if image.width * image.height > MAX_FEATURES:
                raise UploadError(
                    f"{name}: {info.filename} is {image.width}×{image.height}; "
                    f"images may have at most {MAX_FEATURES} pixels"
                )
            # "L" applies the same ITU-R 601 luminance as the array path; alpha is dropped.
            return np.asarray(image.convert("L"))
    except UploadError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, zipfile.BadZipFile) as e:
        raise UploadError(f"{name}: cannot read image {info.filename} ({_short(e)})") from None


def _to_samples(array: np.ndarray, name: str) -> tuple[torch.Tensor, tuple[int, int]]:
    """Validate any accepted array and flatten it to ([N, H*W] float32 in [0, 1], (H, W))."""
    _check_values(array, name)
    was_uint8 = array.dtype == np.uint8
    grey, shape = _to_grey(array, name)
    if grey.shape[0] < MIN_SAMPLES:
        raise UploadError(f"{name}: need at least {MIN_SAMPLES} samples, got {grey.shape[0]}")
    if grey.shape[1] > MAX_FEATURES:
        raise UploadError(f"{name}: {grey.shape[1]} features per sample; at most {MAX_FEATURES} allowed")
    if grey.size > MAX_ELEMENTS:
        raise UploadError(f"{name}: {grey.size} values in all; at most {MAX_ELEMENTS} allowed")
    return torch.from_numpy(_to_unit_range(grey, was_uint8)).float(), shape


def _check_values(array: np.ndarray, name: str) -> None:
    kind = array.dtype.kind
    if kind not in "biuf":  # bool, signed, unsigned, float: complex, strings, dates are rejected
        raise UploadError(f"{name}: array has dtype {array.dtype}; a numeric array is needed")
    if array.size == 0:
        raise UploadError(f"{name}: the array is empty (shape {array.shape})")
    if kind == "f" and not np.isfinite(array).all():
        raise UploadError(f"{name}: the array contains NaN or infinite values")


def _to_grey(array: np.ndarray, name: str) -> tuple[np.ndarray, tuple[int, int]]:
    """[N, D] | [N, H, W] | [N, H, W, C] -> ([N, D] float64, (H, W))."""
    x = array.astype(np.float64, copy=False)
    if x.ndim == 2:
        side = math.isqrt(x.shape[1])
        shape = (side, side) if side * side == x.shape[1] else (1, x.shape[1])
        return x, shape
    if x.ndim == 4:
        channels = x.shape[3]
        if channels not in (1, 3, 4):
            raise UploadError(
                f"{name}: shape {array.shape}: the last axis must be 1, 3 or 4 channels (channel-last)"
            )
        x = x[..., 0] if channels == 1 else x[..., :3] @ LUMINANCE
    if x.ndim != 3:
        raise UploadError(f"{name}: shape {array.shape}; expected [N, D], [N, H, W] or [N, H, W, C]")
    n, h, w = x.shape
    return x.reshape(n, h * w), (h, w)


def _to_unit_range(x: np.ndarray, was_uint8: bool) -> np.ndarray:
    """Scale to [0, 1]: uint8 by /255, [0, 1] data unchanged, anything else min-max over the array."""
    if was_uint8:
        return x / 255.0
    low, high = float(x.min()), float(x.max())
    if low >= 0.0 and high <= 1.0:
        return x
    if high == low:  # a constant array has no range to stretch
        return np.zeros_like(x)
    return (x - low) / (high - low)


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:120] if text else type(error).__name__
