"""`sae presets` and `sae train --preset NAME`: the app's presets on the command line, and `bars_found`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.torch import load_file

from sae_core import presets
from sae_core.cli.main import main
from sae_core.config.run import RunConfig
from sae_core.data import datasets as data
from sae_core.store import export


def bars_matched(decoder: np.ndarray, threshold: float = 0.9) -> int:
    """How many of the 16 true bars some unit's decoder column correlates with above threshold (Pearson
    over the 64 pixels), written out here rather than taken from the library."""
    units = decoder.T - decoder.T.mean(axis=1, keepdims=True)
    units /= np.linalg.norm(units, axis=1, keepdims=True)
    bars = data.bar_basis(8).double().numpy()
    bars -= bars.mean(axis=1, keepdims=True)
    bars /= np.linalg.norm(bars, axis=1, keepdims=True)
    return int(((bars @ units.T).max(axis=1) > threshold).sum())


def test_presets_table_names_every_preset_with_its_title_dataset_settings_and_time(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for preset in presets.load_presets().values():
        row = next(line for line in lines if line.startswith(preset.name + " "))
        assert preset.title in row and f" {preset.dataset} " in row
        assert presets.duration_text(preset.seconds) in row
        settings = lines[lines.index(row) + 1]  # the settings line under the row
        assert f"hidden {preset.config.model.hidden}," in settings
        assert f"optimizer {preset.config.train.optimizer}," in settings
        assert f"{preset.config.train.steps} steps" in settings


def test_presets_json_lists_each_presets_settings_and_time(capsys):
    assert main(["presets", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    known = presets.load_presets()
    assert [row["name"] for row in listing] == list(known)
    for row in listing:
        preset = known[row["name"]]
        assert row["title"] == preset.title and row["dataset"] == preset.dataset
        assert row["seconds"] == preset.seconds and row["extrapolated"] == preset.extrapolated
        assert RunConfig.from_flat(row["settings"]) == preset.config


@pytest.mark.slow
@pytest.mark.parametrize("steps, all_found", [(60, False), (1200, True)])
def test_train_from_the_bars_preset_takes_its_settings_and_counts_the_bars_it_found(
    tmp_path, capsys, steps, all_found
):
    """The preset's settings with --steps overridden; at 1 200 steps (the card: all found by step 1 100)
    every bar is found, after 60 not yet, and metrics.json's count is the independent one either way."""
    out = tmp_path / "bars"
    argv = ["train", "--preset", "bars", "--steps", str(steps), "--device", "cpu", "--quiet"]
    argv += ["--out", str(out)]
    assert main(argv) == 0
    saved = export.load(out)[1]
    expected = presets.get("bars").config.replace(steps=steps, device="cpu")
    assert saved == expected
    summary = json.loads((out / "metrics.json").read_text())
    decoder = load_file(out / "model.safetensors")["decoder.weight"].double().numpy()
    assert summary["bars_total"] == 16
    assert summary["bars_found"] == bars_matched(decoder)
    assert (summary["bars_found"] == 16) is all_found
    assert f"bars_found={summary['bars_found']}" in capsys.readouterr().out


def test_runs_without_a_known_answer_have_no_bars_count(tmp_path):
    out = tmp_path / "digits"
    argv = ["train", "--preset", "quick-digits", "--steps", "5", "--device", "cpu", "--quiet"]
    argv += ["--out", str(out)]
    assert main(argv) == 0
    assert "bars_found" not in json.loads((out / "metrics.json").read_text())
    assert json.loads((out / "config.json").read_text())["train"]["optimizer"] == "lbfgs"


def test_an_unknown_preset_is_one_error_line_listing_the_presets_and_exit_2(capsys):
    assert main(["train", "--preset", "nope", "--steps", "1"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sae: error: unknown preset 'nope'")
    assert all(name in lines[0] for name in presets.load_presets())


@pytest.mark.slow
def test_a_preset_whose_dataset_is_missing_runs_on_its_stand_in_as_the_card_does(tmp_path, capsys):
    if not data.availability("fashion-mnist", str(tmp_path))[0]:
        pytest.skip("Fashion-MNIST is not installed here")
    out = tmp_path / "run"
    argv = ["train", "--preset", "mnist-fast", "--data-dir", str(tmp_path), "--steps", "2"]
    argv += ["--max-samples", "300", "--device", "cpu", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    assert json.loads((out / "config.json").read_text())["data"]["dataset"] == "fashion-mnist"
    assert "mnist is not on this machine; preset mnist-fast runs on fashion-mnist" in capsys.readouterr().err
