"""Datasets as in-memory tensors: `load(cfg) -> Dataset`.

Five datasets work with no network at all: scikit-learn's bundled 8×8 `digits`, `natural-patches`
cut from scikit-learn's bundled photographs (sampled and normalised as UFLDL's sampleIMAGES and
normalizeData do; UFLDL's photographs were whitened too, which `whiten` does here with ZCA),
Földiák's `bars` and `superposition` (`sae_core.data.superposition`), both with known ground-truth
features, and the user's `upload`.
MNIST, Fashion-MNIST, KMNIST and CIFAR-10 go through torchvision's own dataset classes: finding
their files on disk (Debian's `dataset-fashion-mnist` package too) and downloading them only when
missing and a host answers within seconds is `sae_core.data.torchvision_sets`'s job.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from sae_core.config.datasets import DATASETS, DatasetInfo
from sae_core.config.run import DataConfig
from sae_core.data import torchvision_sets as torchvision_data
from sae_core.data.superposition import strip_shape, superposition_vectors
from sae_core.data.torchvision_sets import DataUnavailableError
from sae_core.data.uploads import LUMINANCE, UploadError, load_upload_bytes, load_upload_path

TEST_FRACTION = 0.1
TruthSimilarity = Literal["correlation", "cosine"]


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors with == is elementwise, not a bool
class Dataset:
    """A dataset in memory. train: [N, D], test: [M, D], float32 on the CPU (in [0, 1] for images;
    superposition's vectors are signed); labels int64."""

    name: str
    train: torch.Tensor
    test: torch.Tensor | None
    train_labels: torch.Tensor | None
    test_labels: torch.Tensor | None
    image_shape: tuple[int, int]
    """(H, W) of one grey image, H * W == D."""
    ground_truth: torch.Tensor | None = None
    """The true generating features when known (bars: [16, D]; superposition: [n_features, D])."""
    truth_similarity: TruthSimilarity = "correlation"
    """How a learned feature is compared with a true one (`sae_core.train.metrics.feature_match`):
    Pearson correlation for pictures (bars: an offset the decoder's bias carries does not matter), cosine
    similarity for directions (superposition, as in the sparse-dictionary literature's MMCS)."""

    def __post_init__(self) -> None:
        h, w = self.image_shape
        if self.train.ndim != 2 or self.train.shape[1] != h * w:
            raise ValueError(f"train must be [N, {h * w}] for image_shape {self.image_shape}")
        if self.test is not None and self.test.shape[1:] != self.train.shape[1:]:
            raise ValueError(f"test must be [M, {h * w}], got {tuple(self.test.shape)}")
        for x, y in ((self.train, self.train_labels), (self.test, self.test_labels)):
            if y is not None and (x is None or len(y) != len(x)):
                raise ValueError("labels must have one entry per sample")

    @property
    def n_inputs(self) -> int:
        return self.train.shape[1]


def default_data_dir() -> Path:
    """$SAE_DATA_DIR, else ~/.cache/sae-playground."""
    env = os.environ.get("SAE_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sae-playground"


def load(cfg: DataConfig) -> Dataset:
    """Load the dataset `cfg` names; deterministic for a given cfg (all sampling seeded by data_seed)."""
    loaders = {
        "digits": _load_digits,
        "natural-patches": _load_natural_patches,
        "bars": _load_bars,
        "superposition": _load_superposition,
        "upload": _load_upload,
    }
    if cfg.dataset not in DATASETS:
        raise ValueError(f"unknown dataset {cfg.dataset!r}; choose one of {', '.join(DATASETS)}")
    return loaders.get(cfg.dataset, _load_torchvision)(cfg)


# ---- offline datasets ------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8×8 digits: (pixel counts 0..16 [1797, 64] float64, labels [1797] int), read from
    the file scikit-learn ships (sklearn/datasets/data/digits.csv.gz, one row per image, the label last)
    without importing sklearn.datasets, which takes about a second (most of a sweep's start on digits).
    Falls back to sklearn's load_digits where that file is not found."""
    package = importlib.util.find_spec("sklearn")  # finds the package without importing it
    roots = [] if package is None else list(package.submodule_search_locations or [])
    path = next((Path(r) / "datasets" / "data" / "digits.csv.gz" for r in roots), None)
    if path is not None and path.is_file():
        with gzip.open(path, mode="rt", encoding="utf-8") as f:
            table = np.loadtxt(f, delimiter=",")
        pixels, labels = table[:, :-1], table[:, -1].astype(int)
    else:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        pixels, labels = bunch.data, bunch.target
    for a in (pixels, labels):
        a.setflags(write=False)  # shared by every caller through the cache
    return pixels, labels


def _load_digits(cfg: DataConfig) -> Dataset:
    pixels, labels = digits_arrays()
    x = torch.from_numpy(pixels / 16.0).float()  # pixel counts 0..16 -> [0, 1]
    y = torch.from_numpy(labels.copy()).long()
    order = torch.randperm(len(x), generator=_rng(cfg.data_seed))
    n_test = round(0.2 * len(x))
    train, test = order[n_test:], order[:n_test]
    x_train, y_train = _truncate(x[train], y[train], cfg)
    return Dataset("digits", x_train, x[test], y_train, y[test], (8, 8))


def _load_natural_patches(cfg: DataConfig) -> Dataset:
    size = cfg.patch_size
    patches = sample_patches(_sample_photos(), cfg.n_patches, size, _rng(cfg.data_seed))
    if cfg.whiten:
        patches = zca_whiten(patches - patches.mean(dim=1, keepdim=True), cfg.zca_epsilon)
    patches = normalize_patches(patches)
    train, test = _split(patches)
    train, _ = _truncate(train, None, cfg)
    return Dataset("natural-patches", train, test, None, None, (size, size))


@functools.lru_cache(maxsize=1)
def _sample_photos() -> tuple[np.ndarray, ...]:
    """scikit-learn's bundled photographs (china.jpg, flower.jpg) as grey [H, W] float64 in [0, 1]."""
    from sklearn.datasets import load_sample_images

    greys = tuple((image @ LUMINANCE) / 255.0 for image in load_sample_images().images)
    for g in greys:
        g.setflags(write=False)  # shared by every caller through the cache
    return greys


def sample_patches(
    images: tuple[np.ndarray, ...], n: int, size: int, generator: torch.Generator
) -> torch.Tensor:
    """n random size×size patches from random images ([H, W] each) -> [n, size*size] (UFLDL sampleIMAGES)."""
    which = torch.randint(len(images), (n,), generator=generator).numpy()
    out = np.empty((n, size, size))
    for i, image in enumerate(images):
        picked = np.flatnonzero(which == i)
        rows = torch.randint(image.shape[0] - size + 1, (len(picked),), generator=generator).numpy()
        cols = torch.randint(image.shape[1] - size + 1, (len(picked),), generator=generator).numpy()
        windows = np.lib.stride_tricks.sliding_window_view(image, (size, size))
        out[picked] = windows[rows, cols]
    return torch.from_numpy(out.reshape(n, size * size))


def zca_whiten(patches: torch.Tensor, epsilon: float) -> torch.Tensor:
    """ZCA whitening: [N, D] -> [N, D] float64, (x − x̄)·W with x̄ the mean patch and W = U·diag(λ + ε')^-½·Uᵀ,
    where C = U·diag(λ)·Uᵀ is the covariance of the centred patches (normaliser N − 1) and ε' = ε · mean λ.

    The result has covariance U·diag(λ / (λ + ε'))·Uᵀ: the identity where λ ≫ ε', less in the weakest
    directions, whose noise ε keeps from being blown up (a direction with λ = 0, such as the patch mean
    once each patch's own mean is removed, stays 0). ZCA rather than PCA whitening: W is symmetric, so
    the whitened patches stay in pixel space and still look like (edge-enhanced) images. Fitted on all
    the patches given, as `normalize_patches` sets its scale from all of them.

    What it does to the UFLDL recipe here (25 units, ρ 0.01, β 3, λ 1e-4, 400 L-BFGS iterations, 4000
    patches of the two bundled JPEG photographs, one run each): with ε = 0.01 (the default), 0.1, 1 or 3
    every unit settles at ρ and the output at the mean patch (FVE ≈ 0), since whitening spreads the
    variance evenly over all 63 directions and no single unit pays for its KL cost any more; with ε = 10
    (whitening only the strongest directions) it learns oriented gratings and edges as without
    whitening (FVE 0.32 against 0.41). UFLDL's own images were whitened with a low-pass roll-off
    (Olshausen & Field's filter), which full ZCA does not have.
    """
    x = patches.double()
    x = x - x.mean(dim=0)
    cov = x.T @ x / max(len(x) - 1, 1)
    lam, u = torch.linalg.eigh(cov)
    lam = lam.clamp_min(0.0)  # round-off can make a zero eigenvalue slightly negative
    scale = (lam + epsilon * lam.mean()).rsqrt()
    return x @ (u * scale) @ u.T


def normalize_patches(patches: torch.Tensor) -> torch.Tensor:
    """UFLDL normalizeData: [N, D] -> [N, D] float32 in [0.1, 0.9].

    Subtract each patch's own mean (brightness carries no edge information), clip at ±3σ with σ
    the (n-1) std of all mean-removed values, then map [-3σ, 3σ] linearly onto [0.1, 0.9] so that
    a sigmoid decoder can reach every target.
    """
    x = patches.double()
    x = x - x.mean(dim=1, keepdim=True)
    limit = 3 * x.std()
    if limit == 0:  # all patches flat: nothing to scale, sit in the middle of the range
        return torch.full_like(x, 0.5).float()
    x = x.clamp(-limit, limit) / limit
    return ((x + 1) * 0.4 + 0.1).float()


def _load_bars(cfg: DataConfig) -> Dataset:
    images, ground_truth, _ = bars_images(cfg.n_bars, cfg.bar_prob, _rng(cfg.data_seed))
    train, test = _split(images)
    train, _ = _truncate(train, None, cfg)
    return Dataset("bars", train, test, None, None, (8, 8), ground_truth)


def _load_superposition(cfg: DataConfig) -> Dataset:
    made = superposition_vectors(
        cfg.n_vectors, cfg.n_features, cfg.n_dims, cfg.feature_prob, _rng(cfg.data_seed)
    )
    train, test = _split(made.vectors)
    train, _ = _truncate(train, None, cfg)
    shape = strip_shape(cfg.n_dims)
    return Dataset("superposition", train, test, None, None, shape, made.features, "cosine")


def bar_basis(size: int = 8) -> torch.Tensor:
    """The 2·size single-bar images [2*size, size*size]: rows 0..size-1 horizontal, then vertical."""
    eye = torch.eye(size)
    horizontal = eye[:, :, None].expand(size, size, size)  # bar i fills row i
    vertical = eye[:, None, :].expand(size, size, size)  # bar j fills column j
    return torch.cat([horizontal, vertical]).reshape(2 * size, size * size).contiguous()


def bars_images(
    n: int, prob: float, generator: torch.Generator, size: int = 8
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Földiák's bars: (images [n, size²] in {0, 1}, ground_truth [2·size, size²], present [n, 2·size] bool).

    Each bar is present independently with probability `prob`; a pixel is 1 where any present bar covers it.
    """
    basis = bar_basis(size)
    present = torch.rand(n, len(basis), generator=generator) < prob
    images = (present.float() @ basis).clamp(max=1.0)
    return images, basis, present


def _load_upload(cfg: DataConfig) -> Dataset:
    """The user's file; all of it is training data (uploads are often small), so test is None."""
    if not cfg.upload:
        raise UploadError("dataset 'upload' needs a file: set upload to a .npy, .npz or .zip path")
    x, shape = load_upload_path(cfg.upload)
    x, _ = _truncate(x, None, cfg)
    return Dataset("upload", x, None, None, None, shape)


# ---- torchvision datasets (files and downloads: sae_core.data.torchvision_sets) ----------------------


def _load_torchvision(cfg: DataConfig) -> Dataset:
    x_train, y_train, x_test, y_test = torchvision_data.read(cfg.dataset, _data_root(cfg.data_dir))
    shape = (x_train.shape[1], x_train.shape[2])

    def flat(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), -1).float().div_(255.0)  # .float() copies: the uint8 cache stays untouched

    x_train, y_train = _truncate(flat(x_train), y_train, cfg)
    return Dataset(cfg.dataset, x_train, flat(x_test), y_train, y_test.clone(), shape)


def availability(name: str, data_dir: str | None = None) -> tuple[bool, str]:
    """(usable now?, why / where found). Looks at the disk only; never downloads."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    offline = {
        "digits": "bundled with scikit-learn",
        "natural-patches": "cut from photographs bundled with scikit-learn",
        "bars": "generated on the fly",
        "superposition": "generated on the fly",
        "upload": "needs an uploaded .npy, .npz or .zip file",
    }
    if name in offline:
        return True, offline[name]
    return torchvision_data.on_disk(name, _data_root(data_dir))


# ---- helpers ---------------------------------------------------------------------------------


def _data_root(data_dir: str | None) -> Path:
    return Path(data_dir).expanduser() if data_dir else default_data_dir()


def _rng(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Hold out the last 10% (x is already in random order) as test; None when too few samples."""
    n_test = math.floor(TEST_FRACTION * len(x))
    if n_test == 0:
        return x, None
    return x[:-n_test], x[-n_test:]


def _truncate(
    x: torch.Tensor, y: torch.Tensor | None, cfg: DataConfig
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Keep a seeded random subset of cfg.max_samples training samples, in their original order."""
    if cfg.max_samples is None or cfg.max_samples >= len(x):
        return x, y
    keep = torch.randperm(len(x), generator=_rng(cfg.data_seed))[: cfg.max_samples].sort().values
    return x[keep], None if y is None else y[keep]


__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetInfo",
    "DataUnavailableError",
    "UploadError",
    "availability",
    "bar_basis",
    "bars_images",
    "default_data_dir",
    "load",
    "load_upload_bytes",
    "normalize_patches",
    "sample_patches",
    "zca_whiten",
]
