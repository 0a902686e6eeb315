"""Anomaly detection: an autoencoder reconstructs what looks like its training data and fails on the rest,
so the reconstruction error of a sample is an anomaly score.

Normal samples are the test split; anomalies come from one of three sources:
- "noise": corrupted test images (the split's second half; the first half stays normal);
- "dataset": another dataset of the same image shape (digits vs bars vs natural patches, all 8×8);
- "class": one class of the test split, the rest normal. This measures something only for a model trained
  without that class: `train_without_class` trains such a copy of a configuration.
The score is the mean squared pixel error; ROC and AUC come from scikit-learn; a sample is flagged when
its score is above the threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sae_core.analysis.applications.common import (
    NotApplicable,
    check_fits,
    reconstruct_all,
    require_labels,
    require_test,
    subset,
    train_model,
)
from sae_core.analysis.applications.denoise import add_noise
from sae_core.config.run import RunConfig
from sae_core.data.datasets import Dataset

MAX_SAMPLES = 2000
"""Samples per group (normal, anomalous) at most."""
SOURCES = {
    "noise": "corrupted test images",
    "dataset": "another dataset of the same shape",
    "class": "a class held out of training",
}
NORMAL_QUANTILE = 0.95
"""The default threshold: 95% of the normal samples score below it (a 5% false-alarm rate)."""


@dataclass(frozen=True)
class Anomalies:
    """Reconstruction errors of normal and anomalous samples, and the ROC curve that separates them."""

    source: str
    description: str
    normal: np.ndarray
    """[n] scores of the normal samples."""
    anomalous: np.ndarray
    """[m] scores of the anomalies."""
    auc: float
    fpr: np.ndarray
    tpr: np.ndarray

    @property
    def default_threshold(self) -> float:
        return float(np.quantile(self.normal, NORMAL_QUANTILE))

    def at(self, threshold: float) -> dict[str, float]:
        """Precision, recall and false-positive rate when scores above `threshold` are flagged."""
        tp = int(np.sum(self.anomalous > threshold))
        fp = int(np.sum(self.normal > threshold))
        precision = tp / (tp + fp) if tp + fp else 1.0  # nothing flagged: no false alarm either
        return {
            "threshold": float(threshold),
            "precision": precision,
            "recall": tp / len(self.anomalous),
            "false_positive_rate": fp / len(self.normal),
        }

    def to_dict(self, threshold: float | None = None) -> dict:
        t = self.default_threshold if threshold is None else threshold
        return {
            "source": self.source,
            "description": self.description,
            "auc": self.auc,
            "normal": len(self.normal),
            "anomalous": len(self.anomalous),
            "normal_mean_error": float(self.normal.mean()),
            "anomalous_mean_error": float(self.anomalous.mean()),
            **self.at(t),
        }


def scores(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Per-sample reconstruction error: mean over pixels of (x̂ − x)². x: [N, D] -> [N]."""
    recon = reconstruct_all(model, x)
    return ((recon.double() - x.double()) ** 2).mean(dim=1).numpy()


def compare(model: nn.Module, normal: torch.Tensor, anomalous: torch.Tensor, source: str, description: str):
    """Anomalies of the two groups of inputs (each [N, D]) under the model."""
    from sklearn.metrics import roc_auc_score, roc_curve

    if len(normal) == 0 or len(anomalous) == 0:
        raise NotApplicable("Anomaly detection needs both normal samples and anomalies; one group is empty.")
    a, b = scores(model, normal[:MAX_SAMPLES]), scores(model, anomalous[:MAX_SAMPLES])
    truth = np.concatenate([np.zeros(len(a)), np.ones(len(b))])
    both = np.concatenate([a, b])
    fpr, tpr, _ = roc_curve(truth, both)
    return Anomalies(source, description, a, b, float(roc_auc_score(truth, both)), fpr, tpr)


def noise_groups(dataset: Dataset, kind: str, level: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(normal: the test split's first half, anomalies: its second half corrupted)."""
    test = require_test(dataset, "anomaly detection on held-out images")[: 2 * MAX_SAMPLES]
    if len(test) < 2:
        raise NotApplicable("Anomaly detection needs at least two test images.")
    half = len(test) // 2
    return test[:half], add_noise(test[half:], kind, level)


def class_groups(dataset: Dataset, held_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(normal: test samples of the other classes, anomalies: test samples of class `held_out`)."""
    _, y_test = require_labels(dataset, "a held-out class")
    if not bool((y_test == held_out).any()):
        raise NotApplicable(f"The {dataset.name} test split has no samples of class {held_out}.")
    return dataset.test[y_test != held_out], dataset.test[y_test == held_out]


def dataset_groups(dataset: Dataset, other: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """(normal: the test split, anomalies: the other dataset's test split, else its training split)."""
    if other.n_inputs != dataset.n_inputs:
        raise NotApplicable(
            f"The {other.name} data has {other.image_shape[0]}×{other.image_shape[1]} images and the "
            f"{dataset.name} data {dataset.image_shape[0]}×{dataset.image_shape[1]}: they must match."
        )
    normal = require_test(dataset, "anomaly detection on held-out images")
    anomalous = other.test if other.test is not None and len(other.test) else other.train
    return normal, anomalous


def detect(
    model: nn.Module,
    dataset: Dataset,
    source: str = "noise",
    *,
    kind: str = "gaussian",
    level: float = 0.3,
    held_out: int = 0,
    other: Dataset | None = None,
    image_shape: tuple[int, int] | None = None,
) -> Anomalies:
    """Anomalies of `source` (see the module docstring) under the model. Raises NotApplicable."""
    if image_shape is not None:
        check_fits(image_shape, dataset)
    if source == "noise":
        groups = noise_groups(dataset, kind, level)
        description = f"{len(groups[1])} test images with {kind.replace('_', ' ')} noise {level:g}"
    elif source == "class":
        groups = class_groups(dataset, held_out)
        description = f"class {held_out} of the {dataset.name} test split"
    elif source == "dataset":
        if other is None:
            raise ValueError("source 'dataset' needs the other dataset")
        groups = dataset_groups(dataset, other)
        description = f"{other.name} images"
    else:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    return compare(model, *groups, source, description)


def without_class(dataset: Dataset, held_out: int) -> Dataset:
    """The dataset with every sample of class `held_out` removed (train and test)."""
    y_train, y_test = require_labels(dataset, "a held-out class")
    return subset(dataset, y_train != held_out, y_test != held_out, f"{dataset.name} without {held_out}")


def train_without_class(
    config: RunConfig,
    dataset: Dataset,
    held_out: int,
    steps: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> nn.Module:
    """A fresh model of `config` trained on the dataset without class `held_out` (for source "class")."""
    class_groups(dataset, held_out)  # fail before training when the class is not there
    return train_model(config, without_class(dataset, held_out), steps, progress)
