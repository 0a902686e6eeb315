"""Linear-probe accuracy of every cell of a sweep: which ρ and β give codes a classifier reads best.

    split = probe_split(dataset)            seeded labelled subsets, shared by every cell and the pixels
    cell_accuracy(model, split) -> float    logistic regression on the cell's codes, held-out accuracy
    pixel_accuracy(split) -> float          the same probe on raw pixels: the bar to clear
    probe_grid(spec, {cell: accuracy}) -> [axis, ρ, β] array, NaN where a cell has no number yet

The probe is applications.probe's (standardised features, scikit-learn logistic regression, one BLAS
thread), on fewer samples (PROBE_TRAIN / PROBE_TEST) because a grid has up to hundreds of cells: the
numbers rank the cells; the Applications page gives one model the full probe.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sae_core.analysis.applications.common import encode_all, require_labels
from sae_core.analysis.applications.probe import fit_predict
from sae_core.data.datasets import Dataset
from sae_core.sweep.spec import SweepSpec

PROBE_TRAIN = 2000
PROBE_TEST = 1000


@dataclass(frozen=True)
class ProbeSplit:
    x_train: torch.Tensor
    """[N, D] inputs the probe is fitted on."""
    y_train: np.ndarray
    x_test: torch.Tensor
    """[M, D] held-out inputs it is scored on."""
    y_test: np.ndarray


def _seeded_first(n: int, cap: int, seed: int) -> torch.Tensor:
    if n <= cap:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:cap].sort().values


def probe_split(dataset: Dataset, n_train: int = PROBE_TRAIN, n_test: int = PROBE_TEST) -> ProbeSplit:
    """Seeded subsets of the labelled train and test splits; applications.NotApplicable without labels."""
    y_train, y_test = require_labels(dataset, "the probe accuracy")
    keep_train = _seeded_first(len(dataset.train), n_train, seed=0)
    keep_test = _seeded_first(len(dataset.test), n_test, seed=1)
    return ProbeSplit(
        dataset.train[keep_train],
        y_train[keep_train].numpy(),
        dataset.test[keep_test],
        y_test[keep_test].numpy(),
    )


def cell_accuracy(model: nn.Module, split: ProbeSplit) -> float:
    """Held-out accuracy of the probe on the model's codes."""
    train, test = encode_all(model, split.x_train), encode_all(model, split.x_test)
    return float(np.mean(fit_predict(train, split.y_train, test) == split.y_test))


def pixel_accuracy(split: ProbeSplit) -> float:
    train, test = split.x_train.numpy(), split.x_test.numpy()
    return float(np.mean(fit_predict(train, split.y_train, test) == split.y_test))


def probe_grid(spec: SweepSpec, accuracies: dict[int, float]) -> np.ndarray:
    out = np.full(spec.shape, np.nan)
    for i, acc in accuracies.items():
        out[spec.coords(i)] = acc
    return out
