"""The `fashion-fast` preset: the UFLDL MNIST model on Fashion-MNIST with a faster optimiser. It validates, it
is exactly the setting benchmarks/fashion_probe.py picked and confirmed, and every number its card states
is that run's (the probe accuracies, the training times, the speed-up) or preset_times.py's (the time shown
under the card). One slow test trains it and probes it again here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sae_core import presets
from sae_core.analysis.applications import probe
from sae_core.analysis.applications.common import train_model
from sae_core.config.run import RunConfig
from sae_core.data import datasets as data

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
NAME = "fashion-fast"


@pytest.fixture(scope="module")
def measured() -> dict:
    return json.loads((RESULTS / "fashion-probe.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def preset() -> presets.Preset:
    return presets.get(NAME)


def percent(x: float) -> str:
    return f"{100 * x:.1f}%"


def test_it_is_the_ufldl_mnist_model_on_fashion_mnist_with_adam_on_minibatches(preset):
    exact = presets.get("ufldl-mnist").flat
    same = ("variant", "penalty", "hidden", "rho", "beta", "weight_decay", "max_samples", "seed")
    assert {k: preset.flat[k] for k in same} == {k: exact[k] for k in same}
    assert preset.dataset == "fashion-mnist" and data.DATASETS[preset.dataset].image_shape == (28, 28)
    assert preset.flat["optimizer"] == "adam" and 0 < preset.flat["batch_size"] < preset.flat["max_samples"]
    assert isinstance(preset.config, RunConfig)


def test_it_is_the_benchmarks_pick_with_margin_confirmed_with_two_seeds(preset, measured):
    pick = measured["with_margin"]
    assert [r["seed"] for r in pick["confirmed"]] == [0, 1]
    run = RunConfig.from_flat({**pick["confirmed"][0]["flat"], "device": preset.config.train.device})
    assert run == preset.config
    # Its accuracy is within the margin of the full recipe's (two seeds), seed by seed.
    for r in pick["confirmed"]:
        assert r["accuracy"] >= measured["target"]["accuracy"] - pick["tolerance"] - 1e-9


def test_the_card_states_the_measured_numbers_of_this_configuration(preset, measured):
    pick, target, base = measured["with_margin"], measured["target"], measured["baselines"]
    text = preset.blurb
    for x in (
        pick["mean_accuracy"],
        target["accuracy"],
        base["pixels"],
        base["pca"],
        base["untrained seed 0"],
    ):
        assert percent(x) in text, (percent(x), text)
    assert f"{pick['mean_cpu_s']:.0f} s" in text and f"{target['cpu_s']:.0f} s" in text
    assert f"{pick['speedup_cpu']:.0f}×" in text
    flat = preset.flat
    for said in (f"lr {flat['lr']}", f"batches of {flat['batch_size']}", f"{flat['steps']:,} steps"):
        assert said in text, said
    epochs = flat["steps"] * flat["batch_size"] / flat["max_samples"]
    assert re.search(rf"\b{epochs:.0f} passes\b", text), epochs
    assert "garment" in text or "clothes" in text


def test_the_time_under_the_card_is_preset_times_measurement(preset):
    timed = json.loads((RESULTS / "preset-times-fashion-fast.json").read_text(encoding="utf-8"))
    entry = timed["presets"][NAME]
    assert entry["steps"] == preset.flat["steps"] and entry["dataset"] == preset.dataset
    assert preset.seconds == (
        round(entry["seconds"], 1) if entry["seconds"] < 10 else round(entry["seconds"])
    )
    assert not preset.extrapolated


@pytest.mark.slow
@pytest.mark.skipif(not data.availability("fashion-mnist")[0], reason="Fashion-MNIST is not installed")
def test_trained_here_its_codes_score_what_the_card_says(preset, measured):
    """Training is seeded and the probe deterministic: the same accuracy to within BLAS rounding."""
    cfg = preset.config.replace(device="cpu")
    dataset = data.load(cfg.data)
    capped, y_train, y_test = probe.labelled_split(dataset)
    model = train_model(cfg, dataset)
    accuracy = probe.fit_probe("codes", probe.code_features(model, capped), y_train, y_test).accuracy
    assert accuracy == pytest.approx(measured["with_margin"]["confirmed"][0]["accuracy"], abs=0.003)
    assert accuracy > measured["baselines"]["pixels"]
