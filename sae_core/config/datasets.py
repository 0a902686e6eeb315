"""The catalogue of datasets: what the app, the CLI and the config's checks know about each before loading it.

Loading lives in `sae_core.data`; this is only the list of names, titles and image shapes, so that a
`DataConfig` can check its dataset name without importing the loaders.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    """What the app and the CLI show about a dataset before loading it."""

    name: str
    title: str
    description: str
    image_shape: tuple[int, int]
    """(H, W); (0, 0) when it depends on the uploaded file or on the settings (superposition: n_dims)."""
    offline: bool
    """True when it never needs the network."""


_INFOS = (
    ("digits", "Digits 8×8", "1797 handwritten digits bundled with scikit-learn.", (8, 8), True),
    (
        "natural-patches",
        "Natural image patches",
        "Patches of scikit-learn's sample photos, normalised as in UFLDL (whiten: ZCA); learns edges.",
        (8, 8),
        True,
    ),
    ("bars", "Bars (Földiák)", "Random horizontal and vertical bars: 16 known true features.", (8, 8), True),
    (
        "superposition",
        "Features in superposition",
        "More known features than dimensions: sparse sums of random directions (Elhage et al. 2022).",
        (0, 0),
        True,
    ),
    ("fashion-mnist", "Fashion-MNIST", "70000 28×28 clothing images (Zalando).", (28, 28), False),
    ("mnist", "MNIST", "70000 28×28 handwritten digits.", (28, 28), False),
    ("kmnist", "Kuzushiji-MNIST", "70000 28×28 cursive Japanese characters.", (28, 28), False),
    ("cifar10", "CIFAR-10 (grey)", "60000 32×32 photos of 10 classes, made grey.", (32, 32), False),
    ("upload", "Your own data", "A .npy/.npz array or a .zip of PNG/JPEG images.", (0, 0), True),
)
DATASETS: dict[str, DatasetInfo] = {row[0]: DatasetInfo(*row) for row in _INFOS}
