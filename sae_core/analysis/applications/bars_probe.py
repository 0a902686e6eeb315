"""Feature learning on Földiák's bars, the dataset with a known answer: which bars are in each image.

The bars data has no class labels, but it has ground truth: each image is made of known bars. The probe
asks, for each of the 16 bars, "is this bar in the image?" (one logistic regression per bar, on the codes
or on the raw pixels) and reports the mean held-out accuracy over the bars. A model whose units found the
bars answers near 100%: unit j is "bar j is present".

The presence of each bar is regenerated from the data config with the generator `data.load` uses, and
checked against the loaded images, so the labels cannot silently drift from the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sae_core.analysis.applications.common import NotApplicable, check_fits, encode_all
from sae_core.analysis.applications.probe import fit_predict
from sae_core.config.run import DataConfig
from sae_core.data import datasets as data


@dataclass(frozen=True)
class PresenceProbe:
    """Mean held-out accuracy of the 16 per-bar presence probes, per kind of features."""

    accuracy: dict[str, float]
    """codes | pixels -> mean over bars of the test accuracy."""
    per_bar: dict[str, np.ndarray]
    """codes | pixels -> [bars] test accuracy of each bar's probe."""
    base_rate: float
    """Accuracy of always answering "absent" (a bar is in about 1 image of 8): what a probe must beat."""
    n_train: int
    n_test: int

    def to_dict(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "per_bar": {k: v.tolist() for k, v in self.per_bar.items()},
            "base_rate": self.base_rate,
            "n_train": self.n_train,
            "n_test": self.n_test,
        }


def bar_presence(cfg: DataConfig, dataset: data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """([N, bars], [M, bars]) bool: which bars make up each training and test image of `dataset`."""
    if cfg.dataset != "bars" or dataset.ground_truth is None or dataset.test is None:
        raise NotApplicable("The bar-presence probe needs the bars data.")
    images, _, present = data.bars_images(
        cfg.n_bars, cfg.bar_prob, torch.Generator().manual_seed(cfg.data_seed)
    )
    n_test = len(dataset.test)
    train_images, test_images = images[: len(images) - n_test], images[len(images) - n_test :]
    train_present, test_present = present[: len(images) - n_test], present[len(images) - n_test :]
    if cfg.max_samples is not None and cfg.max_samples < len(train_images):
        keep = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(cfg.data_seed))
        keep = keep[: cfg.max_samples].sort().values
        train_images, train_present = train_images[keep], train_present[keep]
    if not (torch.equal(train_images, dataset.train) and torch.equal(test_images, dataset.test)):
        raise NotApplicable("The bars images do not match their config, so which bars they hold is unknown.")
    return train_present.numpy(), test_present.numpy()


def presence_probe(
    model: nn.Module, dataset: data.Dataset, cfg: DataConfig, image_shape: tuple[int, int] | None = None
) -> PresenceProbe:
    """One presence probe per bar on the codes and on the raw pixels. Raises NotApplicable."""
    if image_shape is not None:
        check_fits(image_shape, dataset)
    y_train, y_test = bar_presence(cfg, dataset)
    sets = {
        "codes": (encode_all(model, dataset.train), encode_all(model, dataset.test)),
        "pixels": (dataset.train.numpy(), dataset.test.numpy()),
    }
    per_bar = {
        name: np.array(
            [
                np.mean(fit_predict(train, y_train[:, j], test) == y_test[:, j])
                for j in range(y_train.shape[1])
            ]
        )
        for name, (train, test) in sets.items()
    }
    return PresenceProbe(
        accuracy={name: float(acc.mean()) for name, acc in per_bar.items()},
        per_bar=per_bar,
        base_rate=float(1.0 - y_test.mean()),
        n_train=len(y_train),
        n_test=len(y_test),
    )
