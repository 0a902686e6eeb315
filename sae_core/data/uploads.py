"""Parse a user's own data: a .npy / .npz array or a .zip of PNG/JPEG images.

Every failure (wrong type, corrupt or truncated file, bad values, too big) becomes an
`UploadError` with a one-line message naming the file, never a traceback from numpy or PIL.

Accepted shapes: [N, D], [N, H, W] or channel-last [N, H, W, C] with C in {1, 3, 4}
(colour becomes grey by ITU-R 601 luminance; alpha is dropped). A .npz uses the array
named 'x', 'X' or 'data' if present, else its first array. A .zip must hold images of one
size: mixed sizes are rejected (rather than resized) so that pixels are never silently
resampled. Values are scaled to [0, 1]: uint8 by /255, data already in [0, 1] is kept,
anything else is min-max scaled over the whole array.

Sizes are checked before they cost memory: a .npy header's shape and dtype before its data is read
(MAX_ELEMENTS), an archive's own directory record before the directory is parsed, the number of images
before any is decoded, each image's pixel count from its header before it is decoded, and the bytes
actually inflated from a zip as they stream (declared sizes are not trusted). Values stay float32.

The app keeps the files it accepted with `sae_core.serve.upload_store.SessionUploads`.
"""

from __future__ import annotations

import io
import math
import struct
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

MAX_FILE_BYTES = 200 * 1024 * 1024
"""Largest accepted upload (the file as sent, and the uncompressed contents of a zip)."""
MAX_ELEMENTS = 50_000_000
"""Largest samples × features: 200 MB as float32, enough for 60000 MNIST-sized images."""
MAX_FEATURES = 256 * 256
"""Largest image (or feature vector): an autoencoder's input layer beyond this is impractical on a CPU."""
MAX_IMAGES = 60_000
"""Most images in a zip (counted from its directory, before any is decoded)."""
MAX_IMAGE_BYTES = 8 * 2**20
"""Largest single image file inside a zip, as inflated."""
MAX_ZIP_ENTRIES = 2 * MAX_IMAGES + 1000
MAX_ZIP_DIRECTORY_BYTES = 16 * 2**20
"""A zip's central directory is parsed whole by zipfile: a small file could list millions of entries."""
READ_CHUNK = 2**16
"""Bytes inflated per read from a zip member, so that no single read can inflate more than this."""
MIN_SAMPLES = 2
FLOAT32_MAX = float(np.finfo(np.float32).max)
"""Largest magnitude a float32 holds (about 3.4e38): a float64 upload past it would become ±inf."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ARRAY_KEYS = ("x", "X", "data")
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
LUMINANCE = np.array([0.299, 0.587, 0.114])


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
    f = io.BytesIO(data)
    count, dtype, shape, fortran = _npy_header(f, name, "not a valid .npy file")
    offset, need = f.tell(), count * dtype.itemsize
    if len(data) - offset < need:
        raise UploadError(
            f"{name}: not a valid .npy file (it ends before the {count} values its header declares)"
        )
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=offset)  # a view: no copy of the data
    return flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)


def _npy_header(f: BinaryIO, name: str, invalid: str) -> tuple[int, np.dtype, tuple[int, ...], bool]:
    """Read and check a .npy header from f (left at the data): numeric dtype, at most MAX_ELEMENTS values
    (grey values: a channel axis does not count) and MAX_FILE_BYTES of data. Returns (values, dtype,
    shape, fortran_order). Nothing of the data is read, so a header may claim any size safely."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = fmt.read_array_header_2_0(f)
        else:
            raise ValueError(f"unknown .npy version {version}")
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as e:
        raise UploadError(f"{name}: {invalid} ({_short(e)})") from None
    if dtype.hasobject:
        raise UploadError(f"{name}: object arrays are not supported; save a numeric array")
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.shape != ():
        raise UploadError(f"{name}: array has dtype {dtype}; a numeric array is needed")
    count = math.prod(shape)
    if count == 0:
        raise UploadError(f"{name}: the array is empty (shape {tuple(shape)})")
    grey = count // shape[3] if len(shape) == 4 and shape[3] in (1, 3, 4) else count
    if grey > MAX_ELEMENTS or count * dtype.itemsize > MAX_FILE_BYTES:
        raise UploadError(
            f"{name}: shape {list(shape)} of {dtype} holds {count} values; at most {MAX_ELEMENTS} values "
            f"and {MAX_FILE_BYTES // 2**20} MB are allowed"
        )
    return count, dtype, tuple(shape), fortran


def _read_npz(data: bytes, name: str) -> np.ndarray:
    """The array named x, X or data (else the first .npy member), its header checked before its data is
    inflated; members that are not .npy arrays are never read."""
    if not data.startswith(ZIP_MAGIC):
        raise UploadError(f"{name}: not a valid .npz archive (no zip header)")
    check_zip_directory(data, name, ".npz archive")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise UploadError(f"{name}: not a valid .npz archive ({_short(e)})") from None
    with archive:
        members = [i for i in archive.infolist() if not i.is_dir()]
        arrays = {i.filename.removesuffix(".npy"): i for i in members if i.filename.endswith(".npy")}
        if not arrays:
            found = ", ".join(i.filename for i in members[:3]) or "nothing"
            raise UploadError(f"{name}: the .npz archive holds no .npy arrays (found {found})")
        key = next((k for k in ARRAY_KEYS if k in arrays), next(iter(arrays)))
        info = arrays[key]
        invalid = f"member {info.filename} is not a valid .npy array"
        try:
            with archive.open(info) as f:
                if f.read(len(NPY_MAGIC)) != NPY_MAGIC:
                    raise UploadError(f"{name}: member {info.filename} is not a .npy array (no .npy header)")
                f = _Rewound(f, NPY_MAGIC)
                count, dtype, shape, fortran = _npy_header(f, name, invalid)
                flat = np.frombuffer(_read_exactly(f, count * dtype.itemsize, name, info), dtype=dtype)
        except UploadError:
            raise
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, RuntimeError, NotImplementedError) as e:
            raise UploadError(f"{name}: not a valid .npz archive ({info.filename}: {_short(e)})") from None
    return flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)


class _Rewound(io.RawIOBase):
    """A stream with bytes already read from it put back in front (numpy's header reader wants the magic)."""

    def __init__(self, f: BinaryIO, head: bytes) -> None:
        self._f, self._head = f, head

    def read(self, n: int = -1) -> bytes:
        head, self._head = (self._head, b"") if n < 0 else (self._head[:n], self._head[n:])
        rest = n - len(head) if n >= 0 else -1
        return head + (self._f.read(rest) if rest else b"")

    def readable(self) -> bool:
        return True


def _read_exactly(f: BinaryIO, need: int, name: str, info: zipfile.ZipInfo) -> bytearray:
    """`need` bytes from a zip member, inflated READ_CHUNK at a time (never more than the header promised)."""
    buf = bytearray(need)
    view, done = memoryview(buf), 0
    while done < need:
        chunk = f.read(min(READ_CHUNK, need - done))
        if not chunk:
            raise UploadError(f"{name}: member {info.filename} ends before the data its .npy header declares")
        view[done : done + len(chunk)] = chunk
        done += len(chunk)
    return buf


def check_zip_directory(data: bytes, name: str, kind: str, max_entries: int | None = None) -> None:
    """Read the archive's end record (entry count and directory size) before zipfile parses the whole
    directory into objects; refuse more than max_entries (default MAX_ZIP_ENTRIES) entries or
    MAX_ZIP_DIRECTORY_BYTES. sae_core.store.model_import reads model zips with it too."""
    max_entries = MAX_ZIP_ENTRIES if max_entries is None else max_entries
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 65535))
    if end < 0 or len(data) < end + 22:
        return  # no end record: zipfile will say it is not a zip
    entries, size = struct.unpack_from("<HI", data, end + 10)
    if (entries == 0xFFFF or size == 0xFFFFFFFF) and data[end - 20 : end - 16] == b"PK\x06\x07":
        (offset,) = struct.unpack_from("<Q", data, end - 12)  # the ZIP64 end record
        if data[offset : offset + 4] == b"PK\x06\x06" and offset + 56 <= len(data):
            entries, size = struct.unpack_from("<QQ", data, offset + 32)
    if entries > max_entries or size > MAX_ZIP_DIRECTORY_BYTES:
        raise UploadError(
            f"{name}: the {kind} lists {entries} entries in a {size}-byte directory; at most "
            f"{max_entries} entries and {MAX_ZIP_DIRECTORY_BYTES // 2**20} MB are allowed"
        )


def _read_image_zip(data: bytes, name: str) -> np.ndarray:
    """A zip of images -> [N, H, W] uint8 grey (sorted by entry name).

    The number of images is capped before any is decoded, every member is inflated READ_CHUNK bytes at a
    time with a cap on what it inflates to (MAX_IMAGE_BYTES each, MAX_FILE_BYTES in all: a directory
    that lies about sizes costs no more), and each image's pixel count is read from its header first.
    """
    check_zip_directory(data, name, ".zip archive")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise UploadError(f"{name}: not a valid .zip archive ({_short(e)})") from None
    with archive:
        entries = sorted((i for i in archive.infolist() if _is_image_entry(i)), key=lambda i: i.filename)
        if not entries:
            raise UploadError(f"{name}: the zip holds no .png or .jpg images")
        if len(entries) > MAX_IMAGES:
            raise UploadError(f"{name}: the zip holds {len(entries)} images; at most {MAX_IMAGES} allowed")
        inflated = [0]  # bytes inflated so far, over all members
        out: np.ndarray | None = None
        for i, info in enumerate(entries):
            raw = inflate_member(archive, info, name, inflated)
            image = _read_image(raw, info, name, None if out is None else (entries[0], out.shape[1:]))
            if out is None:
                h, w = image.shape
                if len(entries) * h * w > MAX_ELEMENTS:
                    raise UploadError(
                        f"{name}: {len(entries)} images of {w}×{h} are {len(entries) * h * w} values; "
                        f"at most {MAX_ELEMENTS} allowed"
                    )
                out = np.empty((len(entries), h, w), dtype=np.uint8)
            out[i] = image
    return out


def inflate_member(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    name: str,
    inflated: list[int],
    *,
    limit: int | None = None,
    total: int | None = None,
    what: str = "image",
) -> bytes:
    """One member's bytes, inflated in chunks and cut off at `limit` bytes (default MAX_IMAGE_BYTES) and
    the archive's running total `inflated[0]` at `total` (default MAX_FILE_BYTES), whatever sizes the zip
    directory declares. `what` names the members in messages ("image"; model_import says "file")."""
    limit = MAX_IMAGE_BYTES if limit is None else limit
    total = MAX_FILE_BYTES if total is None else total
    parts: list[bytes] = []
    size = 0
    try:
        with archive.open(info) as f:
            while chunk := f.read(READ_CHUNK):
                size += len(chunk)
                inflated[0] += len(chunk)
                if size > limit:
                    raise UploadError(f"{name}: {info.filename} inflates to more than {_megabytes(limit)}")
                if inflated[0] > total:
                    raise UploadError(f"{name}: the {what}s unpack to more than {_megabytes(total)}")
                parts.append(chunk)
    except UploadError:
        raise
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, RuntimeError, NotImplementedError) as e:
        raise UploadError(f"{name}: cannot read {what} {info.filename} ({_short(e)})") from None
    return b"".join(parts)


def _megabytes(n: int) -> str:
    return f"{n / 2**20:g} MB"


def _is_image_entry(info: zipfile.ZipInfo) -> bool:
    base = Path(info.filename).name
    # macOS archives carry "__MACOSX/._x.png" resource forks that are not images.
    hidden = base.startswith(".") or info.filename.startswith("__MACOSX/")
    return not info.is_dir() and not hidden and Path(base).suffix.lower() in IMAGE_SUFFIXES


def _read_image(
    raw: bytes, info: zipfile.ZipInfo, name: str, first: tuple[zipfile.ZipInfo, tuple[int, int]] | None
) -> np.ndarray:
    """One image file -> [H, W] uint8 grey; its size is checked from its header before it is decoded
    (at most MAX_FEATURES pixels; the size of the `first` image, if given)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw)) as image:  # reads the header only
            if image.width * image.height > MAX_FEATURES:
                raise UploadError(
                    f"{name}: {info.filename} is {image.width}×{image.height}; "
                    f"images may have at most {MAX_FEATURES} pixels"
                )
            if first is not None and (image.height, image.width) != tuple(first[1]):
                (h, w), entry = first[1], first[0]
                raise UploadError(
                    f"{name}: all images must have the same size; {entry.filename} is "
                    f"{w}×{h} but {info.filename} is {image.width}×{image.height}"
                )
            # "L" applies the same ITU-R 601 luminance as the array path; alpha is dropped.
            return np.asarray(image.convert("L"))
    except UploadError:
        raise
    except Image.DecompressionBombError:
        raise UploadError(
            f"{name}: {info.filename} is refused: its header claims more pixels than an image may have "
            f"(a decompression bomb); images may have at most {MAX_FEATURES} pixels"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, zlib.error) as e:
        raise UploadError(f"{name}: cannot read image {info.filename} ({_short(e)})") from None


def _to_samples(array: np.ndarray, name: str) -> tuple[torch.Tensor, tuple[int, int]]:
    """Validate any accepted array and flatten it to ([N, H*W] float32 in [0, 1], (H, W))."""
    _check_values(array, name)
    was_uint8 = array.dtype == np.uint8
    grey, shape = _to_grey(array, name)
    return torch.from_numpy(_to_unit_range(grey, was_uint8)), shape


def _check_values(array: np.ndarray, name: str) -> None:
    kind = array.dtype.kind
    if kind not in "biuf":  # bool, signed, unsigned, float: complex, strings, dates are rejected
        raise UploadError(f"{name}: array has dtype {array.dtype}; a numeric array is needed")
    if array.size == 0:
        raise UploadError(f"{name}: the array is empty (shape {array.shape})")
    _check_shape(array, name)
    # min and max propagate NaN and reach ±inf: no array-sized temporary, unlike np.isfinite(array).all()
    if kind == "f" and not (np.isfinite(array.min()) and np.isfinite(array.max())):
        raise UploadError(f"{name}: the array contains NaN or infinite values")
    if kind == "f" and array.dtype.itemsize > 4 and max(-array.min(), array.max()) > FLOAT32_MAX:
        raise UploadError(
            f"{name}: values beyond ±{FLOAT32_MAX:.3g}, which float32 (what training uses) cannot hold; "
            "rescale the data before saving it"
        )


def _check_shape(array: np.ndarray, name: str) -> None:
    """Sample count, features and values of the grey [N, D] array `array` becomes, before any conversion."""
    if array.ndim not in (2, 3, 4):
        raise UploadError(f"{name}: shape {array.shape}; expected [N, D], [N, H, W] or [N, H, W, C]")
    if array.ndim == 4 and array.shape[3] not in (1, 3, 4):
        raise UploadError(
            f"{name}: shape {array.shape}: the last axis must be 1, 3 or 4 channels (channel-last)"
        )
    n, features = array.shape[0], math.prod(array.shape[1:3])
    if n < MIN_SAMPLES:
        raise UploadError(f"{name}: need at least {MIN_SAMPLES} samples, got {n}")
    if features > MAX_FEATURES:
        raise UploadError(f"{name}: {features} features per sample; at most {MAX_FEATURES} allowed")
    if n * features > MAX_ELEMENTS:
        raise UploadError(f"{name}: {n * features} values in all; at most {MAX_ELEMENTS} allowed")


def _to_grey(array: np.ndarray, name: str) -> tuple[np.ndarray, tuple[int, int]]:
    """[N, D] | [N, H, W] | [N, H, W, C] -> ([N, D] float32, (H, W)); shapes already checked."""
    if array.ndim == 4:
        if array.shape[3] == 1:
            x = array[..., 0].astype(np.float32)
        else:  # one channel at a time: never a float copy of every channel
            x = array[..., 0].astype(np.float32) * np.float32(LUMINANCE[0])
            x += array[..., 1].astype(np.float32) * np.float32(LUMINANCE[1])
            x += array[..., 2].astype(np.float32) * np.float32(LUMINANCE[2])
    else:
        x = array.astype(np.float32)  # a copy: the data may be a read-only view of the uploaded bytes
    if x.ndim == 2:
        side = math.isqrt(x.shape[1])
        shape = (side, side) if side * side == x.shape[1] else (1, x.shape[1])
        return x, shape
    n, h, w = x.shape
    return x.reshape(n, h * w), (h, w)


def _to_unit_range(x: np.ndarray, was_uint8: bool) -> np.ndarray:
    """Scale float32 x to [0, 1] in place: uint8 by /255, [0, 1] data unchanged, anything else min-max."""
    if was_uint8:
        x /= np.float32(255.0)
        return x
    low, high = float(x.min()), float(x.max())
    if low >= 0.0 and high <= 1.0:
        return x
    if high == low:  # a constant array has no range to stretch
        return np.zeros_like(x)
    if high - low > FLOAT32_MAX:  # the range itself passes float32's: halve first, or x - low overflows
        x *= np.float32(0.5)
        low, high = low / 2, high / 2
    x -= np.float32(low)
    x /= np.float32(high - low)
    return x


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:120] if text else type(error).__name__
