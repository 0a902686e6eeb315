"""The probe's speed-ups change no number: the copy trained without snapshots, the exact PCA baseline, and
the one-thread policy the command line now shares with the app (benchmarks/probe_report.py times them)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from sae_core.analysis.applications import probe
from sae_core.analysis.applications.common import train_model
from sae_core.cli.main import main
from sae_core.config.run import DataConfig, RunConfig
from sae_core.data import datasets as data
from sae_core.train.threads import ENV_VAR, configure_threads
from sae_core.train.trainer import Trainer

QUICK = {"dataset": "digits", "hidden": 12, "steps": 130, "batch_size": 64, "snapshot_every": 40}


@pytest.fixture(scope="module")
def digits() -> data.Dataset:
    return data.load(DataConfig(dataset="digits"))


def test_the_copy_trains_to_the_weights_a_run_with_snapshots_reaches(digits):
    cfg = RunConfig.from_flat(QUICK)
    seen: list[float] = []
    quick = train_model(cfg, digits, progress=seen.append)
    trainer = Trainer(cfg, digits, device="cpu")
    for _ in trainer.run():
        pass
    for name, weights in trainer.model.state_dict().items():
        assert torch.equal(quick.state_dict()[name], weights), name
    assert seen == pytest.approx([40 / 130, 80 / 130, 120 / 130, 1.0])
    assert not quick.training


def test_a_diverging_copy_is_reported_as_not_applicable(digits):
    cfg = RunConfig.from_flat({**QUICK, "lr": 1e30, "optimizer": "sgd"})
    with pytest.raises(probe.NotApplicable, match="diverged"):
        train_model(cfg, digits)


def test_the_exact_pca_baseline_scores_as_the_randomized_one_did(digits):
    """The randomized SVD is what scikit-learn's "auto" picked for the 4 900 Fashion-MNIST images of the
    self-taught split. On the digits' split the exact PCA's probe accuracy is the randomized one's within
    noise at every label count, and its components span the same subspace."""
    _, labelled = probe.self_taught_split(digits)
    capped, y_train, y_test = probe.labelled_split(labelled)
    train, test = capped.train.numpy(), capped.test.numpy()
    exact = probe.baseline_features(capped, 20)["pca"]
    randomized = PCA(n_components=20, random_state=0, svd_solver="randomized").fit(train)
    old = (randomized.transform(train), randomized.transform(test))
    answer = probe.probe_sets({"new": exact, "old": old}, y_train, y_test)
    for (n_new, new), (n_old, was) in zip(answer["curves"]["new"], answer["curves"]["old"], strict=True):
        assert n_new == n_old and abs(new - was) <= 0.02, (n_new, new, was)
    # Same subspace: projecting one basis onto the other keeps its norm (cosines of principal angles ~1).
    basis_new = np.linalg.lstsq(train - train.mean(0), exact[0], rcond=None)[0]
    q_new, _ = np.linalg.qr(basis_new)
    q_old, _ = np.linalg.qr(randomized.components_.T)
    assert np.linalg.svd(q_new.T @ q_old, compute_uv=False).min() > 0.99


def test_threads_come_from_the_environment_one_by_default(threads_restored):
    assert configure_threads({}) == 1 and torch.get_num_threads() == 1
    assert configure_threads({ENV_VAR: "2"}) == 2 and torch.get_num_threads() == 2
    assert configure_threads({ENV_VAR: "0"}) == 1
    with pytest.raises(ValueError, match=ENV_VAR):
        configure_threads({ENV_VAR: "many"})


def test_every_cli_command_trains_on_one_thread_unless_told(threads_restored, monkeypatch, capsys):
    monkeypatch.delenv(ENV_VAR, raising=False)
    torch.set_num_threads(2)
    assert main(["presets", "--json"]) == 0
    assert torch.get_num_threads() == 1
    monkeypatch.setenv(ENV_VAR, "lots")
    assert main(["presets"]) == 2
    assert f"${ENV_VAR} must be a whole number" in capsys.readouterr().err
