"""Feature learning: a linear probe on the hidden codes, beside the same probe on raw pixels and on PCA.

The probe is scikit-learn's multinomial logistic regression on standardised features, fitted on the
training split and scored on the held-out test split. Raw pixels are the baseline a feature must beat;
PCA with as many dimensions as the code is the linear, unsupervised baseline of the same size. Accuracy
against the number of labelled examples shows where unsupervised features help most: with few labels.
The UFLDL self-taught setting learns the features without labels on some classes (digits 5-9) and
probes on the others (0-4), so the features never saw the classes they are judged on.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sae_core.analysis.applications.common import (
    NotApplicable,
    check_fits,
    code_width,
    encode_all,
    flat_dimensions,
    one_blas_thread,
    require_labels,
    subset,
    train_model,
)
from sae_core.config.run import RunConfig
from sae_core.data.datasets import Dataset

MAX_TRAIN = 10_000
"""The probe fits on at most this many training samples (a seeded random subset): it answers in seconds."""
MAX_TEST = 10_000
"""It scores on at most this many test samples."""
LABEL_COUNTS = (50, 100, 500)
"""Numbers of labelled examples on the learning curve, besides "all"."""
MAX_ITER = 100
"""L-BFGS iterations of the logistic regression. On standardised Fashion-MNIST codes (196 units, 10k
samples) 50, 100 and 200 iterations score within 0.5 points of each other; 100 take about 2 s."""
TOL = 1e-3
MAX_CODE_DIMS = 4096
"""A code wider than this (a convolutional model's feature maps on 28×28 images: 9216) is not probed: its
features for 10k samples alone would take over 300 MB, and the regression minutes."""
EXACT_PCA_PIXELS = 1024
"""Inputs up to this many pixels get the PCA baseline from the exact covariance eigendecomposition."""
UNLABELLED_CLASSES = (5, 6, 7, 8, 9)
"""The self-taught split: features are learned on these classes, the probe is trained on the others."""
FEATURE_TITLES = {"codes": "Hidden codes", "pixels": "Raw pixels", "pca": "PCA"}


@dataclass(frozen=True)
class ProbeResult:
    """A probe's held-out score on one kind of features."""

    features: str
    """codes | pixels | pca."""
    n_features: int
    n_train: int
    n_test: int
    accuracy: float
    """Fraction of the test samples classified right."""
    classes: np.ndarray
    """[C] the class labels, in the order of the confusion matrix's rows and columns."""
    confusion: np.ndarray
    """[C, C] counts: row = true class, column = predicted class."""
    flat_features: int = 0
    """Features that do not vary over the training samples (common.flat_dimensions): dead units, collapsed
    latents, or pixels that are always blank; all of them flat leaves the probe at chance."""

    @property
    def title(self) -> str:
        return FEATURE_TITLES.get(self.features, self.features)

    def to_dict(self) -> dict:
        return {
            "features": self.features,
            "n_features": self.n_features,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "accuracy": self.accuracy,
            "classes": self.classes.tolist(),
            "confusion": self.confusion.tolist(),
            "flat_features": self.flat_features,
        }


Features = tuple[np.ndarray, np.ndarray]
"""(train [N, F], test [M, F]) features of the probe's samples."""


def labelled_split(
    dataset: Dataset, what: str = "the linear probe"
) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """(dataset capped at MAX_TRAIN / MAX_TEST samples by a seeded subset, train labels, test labels)."""
    y_train, y_test = require_labels(dataset, what)
    keep_train = _first(len(dataset.train), MAX_TRAIN)
    keep_test = _first(len(dataset.test), MAX_TEST)
    capped = subset(dataset, keep_train, keep_test, dataset.name)
    return capped, y_train[keep_train].numpy(), y_test[keep_test].numpy()


def _first(n: int, cap: int) -> torch.Tensor:
    """A boolean mask of a seeded random `cap` of n rows (all rows when n <= cap)."""
    mask = torch.zeros(n, dtype=torch.bool)
    if n <= cap:
        mask[:] = True
    else:
        mask[torch.randperm(n, generator=torch.Generator().manual_seed(0))[:cap]] = True
    return mask


def code_features(model: nn.Module, dataset: Dataset) -> Features:
    """The hidden codes of the (capped) train and test splits; NotApplicable for a code over MAX_CODE_DIMS."""
    width = code_width(model, dataset.train)
    if width > MAX_CODE_DIMS:
        raise NotApplicable(
            f"This model's code has {width:,} dimensions, more than the probe takes ({MAX_CODE_DIMS:,})."
        )
    return encode_all(model, dataset.train), encode_all(model, dataset.test)


def baseline_features(dataset: Dataset, n_components: int) -> dict[str, Features]:
    """Raw pixels and PCA with n_components (at most the pixels and the training samples), fitted on train."""
    from sklearn.decomposition import PCA

    train, test = dataset.train.numpy(), dataset.test.numpy()
    k = max(1, min(n_components, train.shape[1], train.shape[0]))
    # Up to EXACT_PCA_PIXELS pixels the exact eigendecomposition of the D×D covariance is the fast way.
    # scikit-learn's "auto" takes it only for N >= 10·D and otherwise a randomized SVD (the self-taught
    # split's 4 900 Fashion-MNIST images), which took 0.84 CPU s against 0.29 s on 10 000 of them.
    solver = "covariance_eigh" if train.shape[1] <= EXACT_PCA_PIXELS else "auto"
    with one_blas_thread():
        pca = PCA(n_components=k, random_state=0, svd_solver=solver).fit(train)
        return {"pixels": (train, test), "pca": (pca.transform(train), pca.transform(test))}


def fit_probe(
    name: str, features: Features, y_train: np.ndarray, y_test: np.ndarray, classes: np.ndarray | None = None
) -> ProbeResult:
    """Fit the logistic-regression probe on the training features and score it on the test features."""
    from sklearn.metrics import confusion_matrix

    train, test = features
    classes = np.unique(np.concatenate([y_train, y_test])) if classes is None else classes
    predicted = fit_predict(train, y_train, test)
    return ProbeResult(
        features=name,
        n_features=int(train.shape[1]),
        n_train=int(len(train)),
        n_test=int(len(test)),
        accuracy=float(np.mean(predicted == y_test)),
        classes=classes,
        confusion=confusion_matrix(y_test, predicted, labels=classes),
        flat_features=flat_dimensions(train),
    )


def fit_predict(train: np.ndarray, y_train: np.ndarray, test: np.ndarray) -> np.ndarray:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(y_train)) < 2:  # one class seen: the only sensible guess is that class
        return np.full(len(test), y_train[0])
    scaler = StandardScaler().fit(train)
    clf = LogisticRegression(max_iter=MAX_ITER, tol=TOL)
    with warnings.catch_warnings(), one_blas_thread():  # a probe short of iterations is still a fair probe
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(scaler.transform(train), y_train)
    return clf.predict(scaler.transform(test))


def learning_curve(
    features: Features, y_train: np.ndarray, y_test: np.ndarray, counts: tuple[int, ...] = LABEL_COUNTS
) -> list[tuple[int, float]]:
    """[(labelled examples, test accuracy)] for each count below the training size (a seeded subset of
    the training samples each; the probe on all of them is `fit_probe`'s, not repeated here)."""
    train, test = features
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0)).numpy()
    out = []
    for n in counts:
        if n >= len(train):
            break
        pick = order[:n]
        out.append((n, float(np.mean(fit_predict(train[pick], y_train[pick], test) == y_test))))
    return out


def probe(model: nn.Module, dataset: Dataset, image_shape: tuple[int, int] | None = None) -> dict:
    """Everything the page's feature-learning section shows: {"results": {codes|pixels|pca: ProbeResult},
    "curves": {codes|pixels|pca: [(n, accuracy), ...] ending with all}}. Raises NotApplicable."""
    if image_shape is not None:
        check_fits(image_shape, dataset)
    capped, y_train, y_test = labelled_split(dataset)
    codes = code_features(model, capped)
    sets = {"codes": codes, **baseline_features(capped, codes[0].shape[1])}
    return probe_sets(sets, y_train, y_test)


def probe_sets(sets: dict[str, Features], y_train: np.ndarray, y_test: np.ndarray) -> dict:
    """probe()'s answer for feature sets computed elsewhere (the page caches the baselines per dataset)."""
    classes = np.unique(np.concatenate([y_train, y_test]))
    results = {name: fit_probe(name, f, y_train, y_test, classes) for name, f in sets.items()}
    curves = {
        name: [*learning_curve(f, y_train, y_test), (results[name].n_train, results[name].accuracy)]
        for name, f in sets.items()
    }
    return {"results": results, "curves": curves}


def summary(answer: dict) -> dict:
    """probe()'s answer as plain JSON-ready numbers (what `sae probe --json` writes)."""
    return {
        "accuracy": {name: r.accuracy for name, r in answer["results"].items()},
        "results": {name: r.to_dict() for name, r in answer["results"].items()},
        "curves": {name: [list(p) for p in c] for name, c in answer["curves"].items()},
    }


# ----- self-taught learning (UFLDL) -------------------------------------------------------------------------


def self_taught_split(
    dataset: Dataset, unlabelled: tuple[int, ...] = UNLABELLED_CLASSES
) -> tuple[Dataset, Dataset]:
    """(the classes in `unlabelled`, for learning features; the other classes, for the probe)."""
    y_train, y_test = require_labels(dataset, "the self-taught split")
    classes = set(torch.unique(y_train).tolist())
    chosen = torch.tensor(sorted(unlabelled))
    if not classes & set(unlabelled) or not classes - set(unlabelled):
        raise NotApplicable(
            f"The self-taught split needs both classes {sorted(unlabelled)} and others; "
            f"the {dataset.name} data has {sorted(classes)}."
        )
    out_train, out_test = torch.isin(y_train, chosen), torch.isin(y_test, chosen)
    features = subset(dataset, out_train, out_test, f"{dataset.name} (classes {_names(unlabelled)})")
    rest = tuple(sorted(classes - set(unlabelled)))
    labelled = subset(dataset, ~out_train, ~out_test, f"{dataset.name} (classes {_names(rest)})")
    return features, labelled


def _names(classes: tuple[int, ...]) -> str:
    return (
        f"{classes[0]}-{classes[-1]}"
        if list(classes) == list(range(classes[0], classes[-1] + 1))
        else (", ".join(map(str, classes)))
    )


def self_taught(
    config: RunConfig,
    dataset: Dataset,
    steps: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> dict:
    """Train a fresh model of `config` on the unlabelled classes only, then probe() on the other classes."""
    features, labelled = self_taught_split(dataset)
    model = train_model(config, features, steps, progress)
    return probe(model, labelled)


__all__ = [
    "LABEL_COUNTS",
    "NotApplicable",
    "ProbeResult",
    "baseline_features",
    "code_features",
    "fit_probe",
    "labelled_split",
    "learning_curve",
    "probe",
    "probe_sets",
    "self_taught",
    "self_taught_split",
    "summary",
]
