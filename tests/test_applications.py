"""The applications (sae_core.analysis.applications), their figures and `sae probe | denoise | anomaly`.

Known answers: a probe on the codes of a trained digits model classifies held-out digits (> 90%); the
pixel probe equals scikit-learn's pipeline written out here; PSNR matches its formula; a model trained
without digit 0 flags the 0s by reconstruction error (AUC > 0.9); the denoising variant gains more than
2 dB over its noisy input; what does not apply says so in one line. Models train once per module on the
1797 bundled digits (a few seconds each).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from sae_core import presets
from sae_core.analysis.applications import NotApplicable, anomaly, bars_probe, denoise, embedding, probe
from sae_core.analysis.applications.common import load_model_zip, train_model
from sae_core.cli import main as cli
from sae_core.config.run import DataConfig, RunConfig
from sae_core.data import datasets as data
from sae_core.figures import applications as figs
from sae_core.store import export

QUICK = {"dataset": "digits", "hidden": 32, "steps": 300, "batch_size": 64, "lr": 0.02}
"""A sparse (KL) digits run that trains in seconds; its codes probe at about 95%."""


@pytest.fixture(scope="module")
def digits() -> data.Dataset:
    return data.load(DataConfig(dataset="digits"))


@pytest.fixture(scope="module")
def trained(digits):
    cfg = RunConfig.from_flat(QUICK)
    return train_model(cfg, digits), cfg


@pytest.fixture(scope="module")
def saved(trained, tmp_path_factory):
    model, cfg = trained
    return export.save(model, cfg, tmp_path_factory.mktemp("model"), image_shape=(8, 8))


# ----- feature learning ---------------------------------------------------------------------------------


def test_probe_on_codes_of_a_trained_digits_model_classifies_held_out_digits(trained, digits):
    model, _ = trained
    answer = probe.probe(model, digits, (8, 8))
    codes = answer["results"]["codes"]
    assert codes.accuracy > 0.9
    assert (codes.n_features, codes.n_train, codes.n_test) == (32, len(digits.train), len(digits.test))
    assert codes.confusion.sum() == len(digits.test)
    assert np.trace(codes.confusion) / codes.confusion.sum() == pytest.approx(codes.accuracy)
    assert answer["results"]["pca"].n_features == 32  # as many dimensions as hidden units
    # The curve: 50, 100, 500 labels, then all of them (the probe's own accuracy).
    counts = [n for n, _ in answer["curves"]["codes"]]
    assert counts == [50, 100, 500, len(digits.train)]
    assert answer["curves"]["codes"][-1][1] == codes.accuracy


def test_pixel_probe_equals_scikit_learns_pipeline(digits):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, y_train = digits.train.numpy(), digits.train_labels.numpy()
    x_test, y_test = digits.test.numpy(), digits.test_labels.numpy()
    reference = make_pipeline(StandardScaler(), LogisticRegression(max_iter=probe.MAX_ITER, tol=probe.TOL))
    expected = np.mean(reference.fit(x_train, y_train).predict(x_test) == y_test)
    result = probe.fit_probe("pixels", (x_train, x_test), y_train, y_test)
    assert result.accuracy == pytest.approx(expected)
    assert result.accuracy > 0.9  # raw digits are linearly separable to about 97%


def test_probe_on_data_without_labels_does_not_apply(trained):
    model, _ = trained
    bars = data.load(DataConfig(dataset="bars", n_bars=200))
    with pytest.raises(NotApplicable, match="no class labels"):
        probe.probe(model, bars)


def test_a_model_whose_input_size_is_not_the_datasets_does_not_apply(trained, digits):
    model, _ = trained
    with pytest.raises(NotApplicable, match="takes 28×28 inputs .* has 8×8"):
        probe.probe(model, digits, (28, 28))


def test_self_taught_split_learns_on_5_to_9_and_probes_on_0_to_4(digits):
    features, labelled = probe.self_taught_split(digits)
    assert set(features.train_labels.tolist()) == {5, 6, 7, 8, 9}
    assert set(labelled.train_labels.tolist()) == set(labelled.test_labels.tolist()) == {0, 1, 2, 3, 4}
    assert len(features.train) + len(labelled.train) == len(digits.train)
    answer = probe.self_taught(RunConfig.from_flat(QUICK), digits, steps=100)
    assert answer["results"]["codes"].classes.tolist() == [0, 1, 2, 3, 4]
    assert answer["results"]["codes"].accuracy > 0.5  # well above chance (0.2) after 100 steps


def test_bar_presence_labels_rebuild_the_bars_images():
    cfg = DataConfig(dataset="bars", n_bars=300, max_samples=200)
    bars = data.load(cfg)
    present_train, present_test = bars_probe.bar_presence(cfg, bars)
    basis = data.bar_basis()
    for present, images in ((present_train, bars.train), (present_test, bars.test)):
        rebuilt = (torch.from_numpy(present).float() @ basis).clamp(max=1.0)
        assert torch.equal(rebuilt, images)


@pytest.mark.slow
def test_probe_on_codes_of_a_trained_bars_model_tells_every_bar_near_100_percent(tmp_path):
    cfg = presets.get("bars").config.replace(steps=1200)  # the preset finds all 16 bars by step 1,100
    bars = data.load(cfg.data)
    model = train_model(cfg, bars)
    result = bars_probe.presence_probe(model, bars, cfg.data, (8, 8))
    assert result.accuracy["codes"] > 0.99 and result.per_bar["codes"].min() > 0.97
    assert result.base_rate == pytest.approx(1 - cfg.data.bar_prob, abs=0.03)  # 1 bar in 8 is present
    # `sae probe` on the saved model prints the same numbers.
    folder = export.save(model, cfg, tmp_path / "bars", image_shape=(8, 8))
    assert cli.main(["probe", "--model", str(folder), "--json", str(tmp_path / "p.json")]) == 0
    doc = json.loads((tmp_path / "p.json").read_text())["bar_presence"]
    assert doc["accuracy"] == pytest.approx(result.accuracy)


# ----- dimensionality reduction ---------------------------------------------------------------------------


def test_pca_map_of_codes_has_two_axes_per_test_sample(trained, digits):
    model, _ = trained
    result = embedding.embed_2d(model, digits, "pca")
    assert result.codes.shape == result.pixels.shape == (len(digits.test), 2)
    assert sorted(set(result.labels.tolist())) == list(range(10))
    assert 0 < result.explained["codes"] <= 1
    # PCA's first axis carries at least as much variance as its second.
    assert result.codes[:, 0].var() >= result.codes[:, 1].var()
    for which in ("codes", "pixels"):  # each map's class separation, on that map's points
        points = getattr(result, which)
        assert result.separation[which] == embedding.neighbour_accuracy(points, result.labels)
    assert 0.1 < result.separation["pixels"] < 1  # ten classes: chance is about 0.1


def test_neighbour_accuracy_is_a_leave_one_out_vote_of_the_nearest_points():
    rng = np.random.default_rng(0)
    points, labels = rng.normal(size=(60, 2)), rng.integers(0, 3, size=60)
    right = []
    for i in range(60):  # written out: the 10 nearest other points vote, a tie goes to the smallest label
        distance = np.linalg.norm(points - points[i], axis=1)
        distance[i] = np.inf
        votes = np.bincount(labels[np.argsort(distance)[:10]], minlength=3)
        right.append(np.argmax(votes) == labels[i])
    assert embedding.neighbour_accuracy(points, labels, 10) == pytest.approx(np.mean(right))
    apart = np.concatenate([rng.normal(size=(20, 2)), rng.normal(size=(20, 2)) + 100.0])
    assert embedding.neighbour_accuracy(apart, np.repeat([0, 1], 20)) == 1.0  # two far clusters


def test_a_map_of_unlabelled_data_has_no_class_separation():
    from conftest import make_digits

    from sae_core.models import build

    small = make_digits(n_train=100, n_test=60)
    unlabelled = data.Dataset("upload", small.train, small.test, None, None, small.image_shape)
    cfg = RunConfig.from_flat({"dataset": "digits", "hidden": 6})
    result = embedding.embed_2d(build(cfg.model, 64, (8, 8)), unlabelled, "pca")
    assert result.labels is None and result.separation is None


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_a_dead_code_is_counted_flat_and_its_map_keeps_no_variance_instead_of_nan():
    from conftest import make_digits

    from sae_core.models import build

    small = make_digits(n_train=100, n_test=60)
    cfg = RunConfig.from_flat({"dataset": "digits", "hidden": 6, "penalty": "l1"})
    model = build(cfg.model, 64, (8, 8))
    with torch.no_grad():  # every ReLU unit off on every input: the code is all zeros
        model.encoder.weight.zero_()
        model.encoder.bias.fill_(-1.0)
        model.encoder.bias[0] = 0.5  # but one unit on, at a constant: still flat
    result = embedding.embed_2d(model, small, "pca")
    assert (result.flat_codes, result.code_width) == (6, 6)
    assert math.isnan(result.explained["codes"]) and np.all(result.codes == 0)
    assert "nan" not in figs.embedding_figure(result, "codes").layout.title.text
    assert 0 < result.explained["pixels"] <= 1
    codes = probe.probe(model, small)["results"]["codes"]
    assert codes.flat_features == 6 and codes.to_dict()["flat_features"] == 6


def test_tsne_map_has_two_axes_per_sample_and_no_variance_figure():
    from conftest import make_digits

    from sae_core.models import build

    small = make_digits(n_train=100, n_test=60)
    cfg = RunConfig.from_flat({"dataset": "digits", "hidden": 6})
    result = embedding.embed_2d(build(cfg.model, 64, (8, 8)), small, "tsne")
    assert result.codes.shape == result.pixels.shape == (60, 2) and result.explained is None
    assert np.isfinite(result.codes).all() and np.isfinite(result.pixels).all()
    assert "t-SNE" in figs.embedding_figure(result, "pixels").layout.title.text


# ----- denoising ------------------------------------------------------------------------------------------


def test_psnr_matches_its_formula():
    clean = torch.zeros(4, 16)
    noisy = torch.full((4, 16), 0.1)  # MSE 0.01 -> 10·log10(1 / 0.01) = 20 dB
    assert denoise.psnr(noisy, clean) == pytest.approx(20.0)
    assert denoise.psnr(clean, clean) == math.inf


def test_noise_is_seeded_and_stays_in_the_unit_interval():
    x = torch.rand(50, 64)
    for kind in denoise.NOISE_KINDS:
        a, b = denoise.add_noise(x, kind, 0.3), denoise.add_noise(x, kind, 0.3)
        assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 1 and not torch.equal(a, x)
    with pytest.raises(ValueError, match="noise level must be in"):
        denoise.add_noise(x, "mask", 1.5)


def test_denoising_variant_raises_psnr_over_its_noisy_input_by_more_than_2_db(digits):
    cfg = RunConfig.from_flat(
        {**QUICK, "variant": "denoising", "corruption": "salt_pepper", "noise_level": 0.3, "penalty": "none"}
    )
    model = train_model(cfg, digits)
    result = denoise.denoise(model, denoise.held_out_images(digits), "salt_pepper", 0.3)
    assert result.psnr_recon - result.psnr_noisy > 2.0
    curve = denoise.psnr_curve(model, denoise.held_out_images(digits), "salt_pepper", (0.1, 0.3))
    assert curve["recon"][1] == pytest.approx(result.psnr_recon)
    assert curve["noisy"][0] > curve["noisy"][1]  # more noise, lower PSNR of the noisy input


# ----- anomaly detection ----------------------------------------------------------------------------------


def test_a_digit_class_held_out_of_training_is_detected_with_auc_above_0_9(digits):
    cfg = RunConfig.from_flat({**QUICK, "penalty": "l1", "beta": 0.01, "activation": "relu"})
    model = anomaly.train_without_class(cfg, digits, held_out=0)
    result = anomaly.detect(model, digits, "class", held_out=0)
    assert len(result.anomalous) == int((digits.test_labels == 0).sum())
    assert result.auc > 0.9


def test_precision_and_recall_at_a_threshold_count_the_flagged_samples():
    result = anomaly.Anomalies(
        "noise", "", np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.35, 0.5]), 0.0, np.zeros(1), np.zeros(1)
    )
    point = result.at(0.32)  # flagged: 0.4 (normal), 0.35 and 0.5 (anomalies)
    assert point["precision"] == pytest.approx(2 / 3)
    assert point["recall"] == 1.0 and point["false_positive_rate"] == 0.25


def test_auc_is_scikit_learns_and_another_dataset_stands_out(trained, digits):
    from sklearn.metrics import roc_auc_score

    model, _ = trained
    bars = data.load(DataConfig(dataset="bars", n_bars=400))
    result = anomaly.detect(model, digits, "dataset", other=bars)
    truth = np.r_[np.zeros(len(result.normal)), np.ones(len(result.anomalous))]
    assert result.auc == pytest.approx(roc_auc_score(truth, np.r_[result.normal, result.anomalous]))
    assert result.auc > 0.9


# ----- figures --------------------------------------------------------------------------------------------


def test_every_application_figure_has_a_title_and_labelled_axes(trained, digits):
    model, _ = trained
    answer = probe.probe(model, digits)
    x = denoise.held_out_images(digits)
    result = anomaly.detect(model, digits, "noise")
    made = [
        figs.probe_accuracy_figure(answer["results"]),
        figs.confusion_figure(answer["results"]["codes"]),
        figs.learning_curve_figure(answer["curves"]),
        figs.embedding_figure(embedding.embed_2d(model, digits), "codes"),
        figs.psnr_curve_figure(denoise.psnr_curve(model, x, "mask", (0.1, 0.2)), "mask", 0.1),
        figs.error_histogram_figure(result, result.default_threshold),
        figs.roc_figure(result, result.at(result.default_threshold)),
    ]
    for fig in made:
        assert fig.layout.title.text
        assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text, fig.layout.title.text
    strip = figs.denoise_figure(denoise.denoise(model, x, "mask", 0.2), (8, 8))
    assert list(strip.layout.yaxis.ticktext) == ["clean", "noisy", "reconstructed"]


# ----- the model zip and the CLI --------------------------------------------------------------------------


def test_a_model_zip_from_train_loads_and_a_bad_one_says_why(trained):
    model, cfg = trained
    raw = export.zip_bytes(model, cfg, None, image_shape=(8, 8))
    loaded, config, shape = load_model_zip(raw, "m.zip")
    assert config == cfg and shape == (8, 8)
    assert all(
        torch.equal(a, b)
        for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True)
    )
    with pytest.raises(ValueError, match="not a zip file"):
        load_model_zip(b"hello", "notes.txt")


def test_cli_probe_prints_and_writes_the_librarys_numbers(saved, trained, digits, tmp_path, capsys):
    out = tmp_path / "probe.json"
    assert cli.main(["probe", "--model", str(saved), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    expected = probe.summary(probe.probe(trained[0], digits))
    assert doc["accuracy"] == pytest.approx(expected["accuracy"])
    printed = capsys.readouterr().out
    assert f"{doc['accuracy']['codes']:.1%}" in printed and "Raw pixels" in printed


def test_cli_denoise_and_anomaly_write_their_numbers(saved, digits, tmp_path):
    out = tmp_path / "d.json"
    assert (
        cli.main(
            ["denoise", "--model", str(saved), "--noise", "mask", "--levels", "0.1,0.3", "--json", str(out)]
        )
        == 0
    )
    doc = json.loads(out.read_text())
    assert doc["kind"] == "mask" and doc["curve"]["level"] == [0.1, 0.3]
    assert doc["gain"] == pytest.approx(doc["psnr_recon"] - doc["psnr_noisy"])
    out = tmp_path / "a.json"
    argv = ["anomaly", "--model", str(saved), "--anomalies", "dataset", "--other", "bars", "--json", str(out)]
    assert cli.main(argv) == 0
    doc = json.loads(out.read_text())
    assert (
        doc["auc"] > 0.9
        and 0 <= doc["precision"] <= 1
        and doc["false_positive_rate"] == pytest.approx(0.05, abs=0.01)
    )
    out = tmp_path / "c.json"
    argv = ["anomaly", "--model", str(saved), "--anomalies", "class", "--held-out", "0", "--retrain"]
    assert cli.main([*argv, "--steps", "100", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["source"] == "class" and doc["anomalous"] == int((digits.test_labels == 0).sum())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["probe", "--dataset", "natural-patches"], "no class labels"),
        (["anomaly", "--anomalies", "dataset"], "needs --other"),
        (["denoise", "--level", "7", "--noise", "mask"], "noise level must be in"),
    ],
)
def test_cli_says_in_one_line_what_does_not_apply(saved, capsys, argv, message):
    assert cli.main([argv[0], "--model", str(saved), *argv[1:]]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err.startswith("sae: error: ") and "\n" not in err and message in err


def test_cli_refuses_a_model_folder_whose_input_size_is_not_its_datasets(tmp_path, capsys):
    from sae_core.models import build

    cfg = RunConfig.from_flat({"dataset": "digits", "hidden": 4})
    folder = export.save(build(cfg.model, 784, (28, 28)), cfg, tmp_path / "m", image_shape=(28, 28))
    assert cli.main(["probe", "--model", str(folder)]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err == (
        "sae: error: The model takes 28×28 inputs (784 pixels) but the digits data has 8×8 (64 pixels): "
        "pick the dataset the model was trained on."
    )
