"""What every application shares: the "does not apply" exception, codes and reconstructions in chunks, the
check that a model fits a dataset, labels, and a small training helper for the experiments that need a
model trained on part of the data (the self-taught split, a class held out for anomaly detection)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from sae_core.config.run import RunConfig
from sae_core.data.datasets import Dataset

CHUNK = 4096
"""Rows per forward pass: bounds the memory of a pass over a large split."""
COPY_STEPS = 2000
"""A copy trained for an experiment (self-taught, a held-out class) takes the run's own length, at most this
many steps (the session's run may be "until paused", or long)."""


def one_blas_thread():
    """A context in which numpy / scikit-learn use one BLAS thread (threadpoolctl, a scikit-learn
    dependency). The policy of the app's torch threads, for the same reason: on the busy 2-core machine a
    logistic regression on 10k Fashion-MNIST codes took 41 s with OpenBLAS's 2 threads and 1.1 s with one."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


class NotApplicable(ValueError):
    """This application does not apply to this model or dataset; the message says why in one sentence."""


def check_fits(image_shape: tuple[int, int], dataset: Dataset) -> None:
    """Raise NotApplicable unless a model for `image_shape` (H, W) takes the dataset's inputs."""
    h, w = image_shape
    dh, dw = dataset.image_shape
    if h * w != dataset.n_inputs:
        raise NotApplicable(
            f"The model takes {h}×{w} inputs ({h * w} pixels) but the {dataset.name} data has {dh}×{dw} "
            f"({dataset.n_inputs} pixels): pick the dataset the model was trained on."
        )


def require_labels(dataset: Dataset, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(train_labels, test_labels), or NotApplicable naming `what` needs them."""
    if dataset.train_labels is None:
        raise NotApplicable(f"The {dataset.name} data has no class labels, so {what} does not apply.")
    if dataset.test is None or dataset.test_labels is None or len(dataset.test) == 0:
        raise NotApplicable(f"The {dataset.name} data has no labelled test split, so {what} does not apply.")
    return dataset.train_labels, dataset.test_labels


def require_test(dataset: Dataset, what: str) -> torch.Tensor:
    """The test split, or NotApplicable (an upload has none: all of it is training data)."""
    if dataset.test is None or len(dataset.test) == 0:
        raise NotApplicable(f"The {dataset.name} data has no test split, so {what} does not apply.")
    return dataset.test


def _device(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


@torch.no_grad()
def encode_all(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Codes of every row, model in eval mode. x: [N, D] -> [N, units] float32 numpy."""
    was_training = model.training
    model.eval()
    device = _device(model)
    try:
        parts = [model.encode(chunk.to(device)).float().cpu() for chunk in x.split(CHUNK)]
    finally:
        model.train(was_training)
    return torch.cat(parts).numpy()


@torch.no_grad()
def reconstruct_all(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Reconstructions of every row (the forward pass in eval mode: no training noise). [N, D] -> [N, D]."""
    was_training = model.training
    model.eval()
    device = _device(model)
    try:
        parts = [model(chunk.to(device)).recon.float().cpu() for chunk in x.split(CHUNK)]
    finally:
        model.train(was_training)
    return torch.cat(parts)


FLAT = 1e-6
"""A code dimension whose standard deviation over the samples is at most this carries nothing (a dead unit,
a VAE latent collapsed onto the prior: ~1e-8 after a collapse, where a working one is ~0.1 to 1)."""


def flat_dimensions(codes: np.ndarray) -> int:
    """How many columns of codes [N, F] do not vary over the samples (std <= FLAT)."""
    if len(codes) == 0:
        return 0
    return int(np.sum(np.asarray(codes, dtype=np.float64).std(axis=0) <= FLAT))


def code_width(model: nn.Module, x: torch.Tensor) -> int:
    """Numbers in the model's code of one input (x: [N, D], N >= 1)."""
    return int(encode_all(model, x[:1]).shape[1])


def weights_key(model: nn.Module, config: RunConfig | None = None) -> str:
    """A short hash of the weights (and the config): the cache key of everything computed from a model."""
    digest = hashlib.sha1()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    if config is not None:
        digest.update(config.to_json().encode())
    return digest.hexdigest()[:16]


def load_model_zip(raw: bytes, name: str) -> tuple[nn.Module, RunConfig, tuple[int, int]]:
    """A model zip (the Train page's download) checked by sae_core.store.model_import, the CLI's and the Train
    page's import: ValueError (ModelImportError) with one readable line for anything wrong with it."""
    from sae_core.store.model_import import load_archive

    saved = load_archive(raw, name)
    return saved.model, saved.config, saved.image_shape


def subset(dataset: Dataset, keep_train: torch.Tensor, keep_test: torch.Tensor | None, name: str) -> Dataset:
    """The dataset restricted to the rows where the boolean masks are True (labels follow)."""

    def pick(x: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor | None:
        return None if x is None or mask is None else x[mask]

    return Dataset(
        name,
        dataset.train[keep_train],
        pick(dataset.test, keep_test),
        pick(dataset.train_labels, keep_train),
        pick(dataset.test_labels, keep_test),
        dataset.image_shape,
    )


def copy_steps(config: RunConfig) -> int:
    """Steps of a copy of `config` trained for an experiment: its length, at most COPY_STEPS."""
    return min(config.train.steps or COPY_STEPS, COPY_STEPS)


def train_model(
    config: RunConfig,
    dataset: Dataset,
    steps: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> nn.Module:
    """Train a fresh model of `config` on `dataset` with the project's Trainer (on the CPU); return it in
    eval mode. steps: the run's length (default: the config's). progress(fraction) after each snapshot."""
    from sae_core.train.trainer import Trainer

    if steps is not None:
        config = config.replace(steps=steps, epochs=None)
    if config.train.steps == 0 and config.train.epochs is None:  # "until paused": give it an end
        config = config.replace(steps=2000)
    trainer = Trainer(config, dataset, device="cpu")
    # Sections of snapshot_every steps without the snapshots themselves: nothing here draws them (a few
    # per cent of the copy's time: benchmarks/probe_report.py). advance() syncs the losses at the end of
    # each section, so a divergence is caught there as in Trainer.run(), and the weights are the same.
    status = "running"
    while status == "running":
        status = trainer.advance(max_steps=config.train.snapshot_every)
        if status == "diverged":
            raise NotApplicable(trainer.message or "Training diverged.")
        if progress is not None:
            progress(min(1.0, trainer.step_count / trainer.total_steps))
    return trainer.model.eval()
