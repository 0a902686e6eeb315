"""MNIST, Fashion-MNIST, KMNIST and CIFAR-10 from disk, in torchvision's folder layout.

The three MNIST-format sets are IDX files of bytes, read here with numpy (`read_idx`); CIFAR-10's pickled
batches are read by torchvision's own class. Importing torchvision costs 2.4 s on a 2-core machine (its
models import torch._dynamo), most of a `sae sweep` on Fashion-MNIST besides its training, so it is
imported only for CIFAR-10 and for downloads.

`read(name, root)` finds torchvision's folder layout under `root` (plain or .gz files, as torchvision
downloads them), or Debian's `dataset-fashion-mnist` package, and only when the files are missing tries
a download, after checking that a host answers within seconds. `on_disk(name, root)` looks without
touching anything. `sae_core.data.datasets` builds its `Dataset` from what `read` returns.
"""

from __future__ import annotations

import functools
import gzip
import math
import os
import shutil
import socket
import struct
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch

from sae_core.data.uploads import LUMINANCE

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's dataset-fashion-mnist package puts the four IDX .gz files."""
OFFLINE_DATASETS = ("digits", "natural-patches", "bars", "superposition", "upload")
"""Suggested when a dataset is missing; the same names sae_core.data.datasets.DATASETS marks offline."""
CONNECT_TIMEOUT_S = 3.0
"""Longest wait for a download host before declaring ourselves offline."""


class DataUnavailableError(RuntimeError):
    """The dataset's files are not on disk and could not be downloaded."""


def read(name: str, root: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train images [N, H, W] uint8 grey, train labels [N] int64, test images [M, H, W], test labels [M]).

    Unpacks or downloads into `root` first if needed. The tensors are cached per process and shared
    by every caller: copy before changing them.
    """
    root = _ensure_files(name, root)
    x_train, y_train = _read_split(name, str(root), train=True)
    x_test, y_test = _read_split(name, str(root), train=False)
    return x_train, y_train, x_test, y_test


def on_disk(name: str, root: Path) -> tuple[bool, str]:
    """(usable without a download?, where found / where it is missing). Looks at the disk only."""
    folder, files = _tv_folder(name, root)
    if all((folder / f).is_file() or (folder / f"{f}.gz").is_file() for f in files):
        return True, f"found in {folder}"
    if name == "fashion-mnist" and all((DEBIAN_FASHION_MNIST / f"{f}.gz").is_file() for f in files):
        return True, f"found Debian's dataset-fashion-mnist in {DEBIAN_FASHION_MNIST}"
    return False, f"not in {folder}; needs a download (internet) or the files placed there"


def _tv_class(name: str) -> type:
    from torchvision import datasets

    classes = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST", "cifar10": "CIFAR10"}
    return getattr(datasets, classes[name])


_MNIST_FILES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]
TV_FILES: dict[str, tuple[str, list[str]]] = {
    "mnist": ("MNIST/raw", _MNIST_FILES),
    "fashion-mnist": ("FashionMNIST/raw", _MNIST_FILES),
    "kmnist": ("KMNIST/raw", _MNIST_FILES),
    "cifar10": (
        "cifar-10-batches-py",
        [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"],
    ),
}
"""The folder torchvision reads each dataset from (under the data root) and the files it needs there, as
torchvision's classes declare them (tests/test_data.py checks they agree). Written out because importing
torchvision.datasets to ask costs seconds, and the Train page's dataset menu asks on its first drawing."""


def _tv_folder(name: str, root: Path) -> tuple[Path, list[str]]:
    """The folder torchvision reads under `root` and the file names it needs there."""
    folder, files = TV_FILES[name]
    return root / folder, list(files)


IDX_UBYTE = 0x08
"""The IDX type code of unsigned bytes, the only type the MNIST-format sets use."""


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (LeCun's MNIST format, shared by Fashion-MNIST and KMNIST) as a
    writable uint8 array: a 4-byte magic number (0, 0, the type 0x08, the number of dimensions), each
    dimension as a big-endian 32-bit integer, then the values in C order. DataUnavailableError when the
    file is not one, or is cut short."""
    raw = np.fromfile(path, dtype=np.uint8)
    head = raw[:4].tolist()
    if len(head) < 4 or head[:3] != [0, 0, IDX_UBYTE] or not 1 <= head[3] <= 4:
        raise DataUnavailableError(f"{path} is not an IDX file of bytes (MNIST's format)")
    start = 4 + 4 * head[3]
    dims = struct.unpack(f">{head[3]}i", raw[4:start].tobytes())
    if raw.size - start != math.prod(dims):
        raise DataUnavailableError(
            f"{path} holds {raw.size - start} values where its header says {math.prod(dims)}: a damaged or "
            "partial download; delete it and fetch it again"
        )
    return raw[start:].reshape(dims)


@functools.lru_cache(maxsize=8)
def _read_split(name: str, root: str, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode once per process: (images [N, H, W] uint8 grey, labels [N] int64); the MNIST-format sets
    from their IDX files, CIFAR-10 by torchvision's class."""
    if name != "cifar10":
        folder, files = _tv_folder(name, Path(root))  # train images, train labels, test images, test labels
        images, labels = files[:2] if train else files[2:]
        x, y = read_idx(folder / images), read_idx(folder / labels)
        return torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    ds = _tv_class(name)(root, train=train, download=False)  # [N, 32, 32, 3] RGB -> grey as PIL's "L"
    labels = torch.as_tensor(ds.targets, dtype=torch.long)
    return torch.from_numpy(np.rint(ds.data @ LUMINANCE).astype(np.uint8)), labels


def _ensure_files(name: str, root: Path) -> Path:
    """Return a root from which torchvision can read `name`, unpacking or downloading if needed."""
    folder, files = _tv_folder(name, root)
    if all((folder / f).is_file() for f in files):
        return root
    if name != "cifar10" and all((folder / f"{f}.gz").is_file() for f in files):
        return _gunzip_into(folder, files, name, root)  # a user copied the .gz files torchvision downloads
    if name == "fashion-mnist" and all((DEBIAN_FASHION_MNIST / f"{f}.gz").is_file() for f in files):
        return _gunzip_into(DEBIAN_FASHION_MNIST, files, name, root)
    _try_download(name, root)
    return root


def _gunzip_into(source: Path, files: list[str], name: str, root: Path) -> Path:
    """Unpack source/<f>.gz into torchvision's layout under root (or a temp root if root is read-only)."""
    for target_root in (root, Path(tempfile.gettempdir()) / "sae-playground"):
        folder, _ = _tv_folder(name, target_root)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for f in files:
                if not (folder / f).is_file():
                    # Write then rename, so a concurrent reader never sees half a file.
                    partial = folder / f"{f}.{os.getpid()}.{threading.get_ident()}.part"
                    with gzip.open(source / f"{f}.gz", "rb") as src, open(partial, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    partial.replace(folder / f)
            return target_root
        except PermissionError:
            continue
        except (OSError, EOFError) as e:
            raise DataUnavailableError(f"cannot unpack {source}: {e}") from None
    raise DataUnavailableError(_missing_message(name, root, "no writable folder to unpack into"))


def _try_download(name: str, root: Path) -> None:
    """Let torchvision download, but only if a host answers quickly: offline, fail in seconds, not minutes.

    A quick TCP connect (DNS included, in a thread so a hanging resolver cannot stall us) decides;
    $SAE_OFFLINE=1 skips even that. A global socket timeout would be simpler but would also
    shorten timeouts in every other thread of the web server.
    """
    cls = _tv_class(name)
    url = cls.url if name == "cifar10" else cls.mirrors[0]
    if os.environ.get("SAE_OFFLINE") == "1" or not _host_answers(urlparse(url).hostname or "", 443):
        raise DataUnavailableError(_missing_message(name, root, "offline"))
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except Exception as e:  # urllib, tarfile and torchvision raise many kinds
        raise DataUnavailableError(_missing_message(name, root, f"download failed: {e}")) from None


def _host_answers(host: str, port: int, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    answered = threading.Event()

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            answered.set()
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return answered.is_set()


def _missing_message(name: str, root: Path, why: str) -> str:
    folder, files = _tv_folder(name, root)
    apt = " or run `apt-get install dataset-fashion-mnist`" if name == "fashion-mnist" else ""
    return (
        f"{name} is not available ({why}): put torchvision's files ({', '.join(files)}; .gz accepted) "
        f"in {folder}{apt}, or point data_dir / $SAE_DATA_DIR at a folder holding them. "
        f"Datasets that work offline: {', '.join(OFFLINE_DATASETS)}."
    )
