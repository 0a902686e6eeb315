"""Dimensionality reduction: a 2-D map of the hidden codes beside the same map of the raw pixels.

PCA is linear and answers at once; t-SNE (scikit-learn) keeps neighbourhoods and shows clusters better,
but takes seconds, so it maps fewer points. Points are coloured by class when the data has labels; the
map still applies without them (one colour). With labels, each map's class separation is measured as how
often a point's nearest neighbours on the map share its class (`neighbour_accuracy`), so the codes' map
and the pixels' PCA map of the same size (two axes) can be compared by a number as well as by eye.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from sae_core.analysis.applications.common import (
    NotApplicable,
    check_fits,
    encode_all,
    flat_dimensions,
    one_blas_thread,
)
from sae_core.data.datasets import Dataset

Method = Literal["pca", "tsne"]
MAX_POINTS = {"pca": 2000, "tsne": 1000}
"""Points on a map (a seeded random subset of the test split, else of the training split)."""
NEIGHBOURS = 10
"""Neighbours that vote in `neighbour_accuracy`."""


@dataclass(frozen=True)
class Embedding:
    """Two 2-D maps of the same samples."""

    method: str
    codes: np.ndarray
    """[n, 2] the map of the hidden codes."""
    pixels: np.ndarray
    """[n, 2] the map of the raw pixels."""
    labels: np.ndarray | None
    """[n] class labels, None when the data has none."""
    explained: dict[str, float] | None = None
    """PCA only: fraction of the variance the two axes keep, per map (NaN for features that do not vary)."""
    flat_codes: int = 0
    """Code dimensions that do not vary over these samples (common.flat_dimensions)."""
    code_width: int = 0
    """Numbers in each sample's code."""
    separation: dict[str, float] | None = None
    """With labels, per map: the fraction of points whose NEIGHBOURS nearest neighbours on it vote for
    their own class (`neighbour_accuracy`); None without labels."""


def sample_for_map(dataset: Dataset, n: int) -> tuple[torch.Tensor, np.ndarray | None]:
    """(x [≤n, D], labels or None): the test split when there is one (held-out), else the training split."""
    x, y = dataset.test, dataset.test_labels
    if x is None or len(x) == 0:
        x, y = dataset.train, dataset.train_labels
    if len(x) < 3:
        raise NotApplicable(f"The {dataset.name} data has {len(x)} samples; a map needs at least 3.")
    pick = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:n].sort().values
    return x[pick], None if y is None else y[pick].numpy()


def embed_2d(
    model: nn.Module, dataset: Dataset, method: Method = "pca", image_shape: tuple[int, int] | None = None
) -> Embedding:
    """2-D maps of codes and pixels by `method` on up to MAX_POINTS[method] samples. Raises NotApplicable."""
    if method not in MAX_POINTS:
        raise ValueError(f"method must be one of {', '.join(MAX_POINTS)}, got {method!r}")
    if image_shape is not None:
        check_fits(image_shape, dataset)
    x, labels = sample_for_map(dataset, MAX_POINTS[method])
    codes = encode_all(model, x)
    maps, explained = {}, {}
    with one_blas_thread():
        for name, values in (("codes", codes), ("pixels", x.numpy())):
            maps[name], explained[name] = _reduce(values.astype(np.float64), method)
    separation = None if labels is None else {k: neighbour_accuracy(v, labels) for k, v in maps.items()}
    return Embedding(
        method,
        maps["codes"],
        maps["pixels"],
        labels,
        explained if method == "pca" else None,
        flat_dimensions(codes),
        codes.shape[1],
        separation,
    )


def neighbour_accuracy(points: np.ndarray, labels: np.ndarray, k: int = NEIGHBOURS) -> float:
    """How well a map keeps the classes apart: the fraction of points whose k nearest other points (Euclidean,
    on the map) hold more of the point's own class than of any other (a tie counts as the smallest label
    among the tied, as a plain leave-one-out k-nearest-neighbour vote). points: [n, d], labels: [n] ints."""
    n = len(points)
    if n < 2:
        return float("nan")
    k = min(k, n - 1)
    x = np.asarray(points, dtype=np.float64)
    squared = (x * x).sum(axis=1)
    distances = squared[:, None] + squared[None, :] - 2.0 * (x @ x.T)
    np.fill_diagonal(distances, np.inf)  # a point is not its own neighbour
    nearest = np.argpartition(distances, k - 1, axis=1)[:, :k]
    labels = np.asarray(labels, dtype=np.int64)
    votes = np.zeros((n, int(labels.max()) + 1), dtype=np.int64)
    np.add.at(votes, (np.repeat(np.arange(n), k), labels[nearest].ravel()), 1)
    return float((votes.argmax(axis=1) == labels).mean())


def _reduce(values: np.ndarray, method: str) -> tuple[np.ndarray, float]:
    """[n, F] -> ([n, 2], fraction of variance kept: PCA only, NaN for t-SNE)."""
    if not values.var(axis=0).sum() > 0:  # every feature flat (dead units): one point, no variance to keep
        return np.zeros((len(values), 2)), float("nan")
    if values.shape[1] < 2:  # a one-unit code: its values on one axis, nothing on the other
        return np.column_stack([values[:, 0], np.zeros(len(values))]), 1.0
    if method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=0).fit(values)
        return pca.transform(values), float(pca.explained_variance_ratio_.sum())
    from sklearn.manifold import TSNE

    perplexity = min(30.0, (len(values) - 1) / 3)
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=0)
    return tsne.fit_transform(values), float("nan")


def summary(embedding: Embedding) -> dict:
    """The numbers the page shows (PCA: variance kept by the two axes of each map)."""
    return {
        "method": embedding.method,
        "points": len(embedding.codes),
        "explained": embedding.explained,
        "flat_codes": embedding.flat_codes,
        "separation": embedding.separation,
    }
