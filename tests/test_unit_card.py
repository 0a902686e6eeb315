"""One hidden unit's card (sae_core.unit_card), its page section on Train, and `sae unit`.

The numbers are checked against numpy written out here from the model's weights: the sigmoid encoder and
decoder of the one-hidden-layer sparse autoencoder, h = σ(W₁x + b₁), x̂ = σ(W₂h + b₂).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from apptest_helpers import pin_navigation_mode, poll, stop_jobs
from PIL import Image
from streamlit.testing.v1 import AppTest

from sae_core import unit_card
from sae_core.cli import main
from sae_core.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from sae_core.training import Trainer

APP = Path(__file__).resolve().parent.parent / "app.py"
TINY_PAGE = {"dataset": "digits", "hidden": "4", "steps": "100000", "batch_size": "32"}


@pytest.fixture(scope="module")
def trained(tiny_digits):
    """A 64 → 6 sparse autoencoder after 150 Adam steps on 300 digits, and its probe inputs."""
    cfg = RunConfig(
        data=DataConfig(dataset="digits"),
        model=ModelConfig(hidden=6, rho=0.1),
        train=TrainConfig(steps=150, batch_size=64, lr=0.03, device="cpu", snapshot_every=150),
    )
    trainer = Trainer(cfg, tiny_digits, device="cpu")
    for _ in trainer.run():
        pass
    return trainer.model.eval(), trainer.probe


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _weights(model) -> tuple[np.ndarray, ...]:
    return tuple(
        p.detach().double().numpy()
        for p in (model.encoder.weight, model.encoder.bias, model.decoder.weight, model.decoder.bias)
    )


def _recon_error(x: np.ndarray, h: np.ndarray, w2: np.ndarray, b2: np.ndarray) -> float:
    recon = _sigmoid(h @ w2.T + b2)
    return float(0.5 * ((recon - x) ** 2).sum(axis=1).mean())


@pytest.mark.parametrize("unit", [0, 3, 5])
def test_ablation_increase_is_the_recon_error_with_the_unit_zeroed_minus_the_recon_error(trained, unit):
    model, x = trained
    card = unit_card.build_card(model, x, unit, (8, 8))
    w1, b1, w2, b2 = _weights(model)
    xs = x.double().numpy()
    h = _sigmoid(xs @ w1.T + b1)
    base = _recon_error(xs, h, w2, b2)
    off = h.copy()
    off[:, unit] = 0.0
    ablated = _recon_error(xs, off, w2, b2)
    assert card.recon_error == pytest.approx(base, rel=1e-5)
    assert card.ablated_recon_error == pytest.approx(ablated, rel=1e-5)
    assert card.ablation_increase == pytest.approx(ablated - base, rel=1e-4, abs=1e-6)
    assert card.numbers()["ablation_increase"] == pytest.approx(ablated - base, rel=1e-4, abs=1e-6)


def test_top_activating_inputs_really_have_the_highest_activations(trained):
    model, x = trained
    unit = 2
    card = unit_card.build_card(model, x, unit, (8, 8), top=9)
    w1, b1, _, _ = _weights(model)
    h = _sigmoid(x.double().numpy() @ w1.T + b1)[:, unit]
    top = card.top_indices
    assert len(top) == 9 == len(set(top.tolist()))
    rest = np.setdiff1d(np.arange(len(h)), top)
    assert h[top].min() >= h[rest].max() - 1e-6  # no input outside the nine drives the unit harder
    assert np.all(np.diff(h[top]) <= 1e-6)  # highest first
    np.testing.assert_allclose(card.top_inputs, x.numpy()[top])


def test_card_numbers_filter_and_feature_are_the_units_own(trained):
    model, x = trained
    unit = 4
    card = unit_card.build_card(model, x, unit, (8, 8), typical=5, seed=3)
    w1, b1, w2, _ = _weights(model)
    h = _sigmoid(x.double().numpy() @ w1.T + b1)[:, unit]
    assert card.rho_hat == pytest.approx(h.mean(), rel=1e-5)
    assert card.density == pytest.approx((h > 0.1).mean())  # sigmoid units: active above 0.1
    np.testing.assert_allclose(card.encoder_filter, w1[unit], rtol=1e-6)
    np.testing.assert_allclose(card.decoder_feature, w2[:, unit], rtol=1e-6)
    assert len(card.typical_indices) == 5 == len(set(card.typical_indices.tolist()))
    counts, edges = unit_card.histogram(card)
    assert counts.sum() == len(x) and edges[0] == pytest.approx(h.min(), abs=1e-6)


def test_a_unit_outside_the_code_is_refused(trained):
    model, x = trained
    with pytest.raises(ValueError, match=r"unit must be in \[0, 5\]"):
        unit_card.build_card(model, x, 6, (8, 8))


def test_card_figure_and_png_show_filter_feature_histogram_and_inputs(trained, tmp_path):
    model, x = trained
    card = unit_card.build_card(model, x, 1, (8, 8))
    fig = unit_card.card_figure(card)
    kinds = [t.type for t in fig.data]
    assert kinds.count("heatmap") == 4 and kinds.count("bar") == 1  # filter, feature, two input strips
    assert "unit 1 of 6" in fig.layout.title.text
    assert fig.layout.xaxis3.title.text == f"activation hⱼ on {len(x):,} inputs"
    assert fig.layout.yaxis3.title.text == "inputs (log)"
    assert fig.layout.xaxis.title.text.startswith("encoder filter")
    path = unit_card.save_card_png(card, tmp_path / "card.png")
    with Image.open(path) as img:
        assert img.format == "PNG" and img.width > 200 and img.height > 150


# ----- sae unit ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("unit_run")
    args = ["train", "--dataset", "digits", "--hidden", "5", "--steps", "60", "--batch-size", "64"]
    assert main([*args, "--device", "cpu", "--quiet", "--out", str(out)]) == 0
    return out


def test_sae_unit_writes_a_png_and_prints_the_units_numbers(saved_run, capsys):
    png = saved_run / "card.png"
    assert main(["unit", "--model", str(saved_run), "--unit", "3", "--out", str(png)]) == 0
    printed = capsys.readouterr().out
    assert "unit 3 of 5" in printed and f"wrote {png}" in printed
    assert "rho_hat=" in printed and "density=" in printed and "ablation_increase=" in printed
    with Image.open(png) as img:
        assert img.format == "PNG"

    assert main(["unit", "--model", str(saved_run), "--unit", "3", "--json", "--samples", "50"]) == 0
    numbers = json.loads(capsys.readouterr().out)
    assert numbers["unit"] == 3 and numbers["samples"] == 50
    assert numbers["ablation_increase"] == pytest.approx(
        numbers["ablated_recon_error"] - numbers["recon_error"]
    )
    assert 0.0 < numbers["rho_hat"] < 1.0 and 0.0 <= numbers["density"] <= 1.0


def test_sae_unit_refuses_a_unit_the_model_does_not_have(saved_run, capsys):
    assert main(["unit", "--model", str(saved_run), "--unit", "9"]) == 2
    assert "unit must be in [0, 4], got 9" in capsys.readouterr().err


# ----- the card on the Train page ---------------------------------------------------------------------------
@pytest.fixture
def train_page(monkeypatch):
    pin_navigation_mode(monkeypatch)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params.update(TINY_PAGE)
    at.run()
    at.switch_page("pages/train.py").run()
    yield at
    stop_jobs(at)


def _card_texts(at: AppTest) -> str:
    return " ".join(str(m.label) + " " + str(m.value) for m in at.metric)


def test_the_card_waits_for_a_pause_then_shows_the_clicked_or_typed_unit(train_page):
    at = train_page
    assert not at.exception, [e.value for e in at.exception]
    job = at.session_state["job"]
    at.button(key="train").click().run()
    poll(at, lambda: job.step_count > 20, "some training steps", 60)
    assert job.running
    assert any("Pause to open a unit's card" in c.value for c in at.caption)
    assert not any(n.key == "card_unit" for n in at.number_input)  # nothing that runs the model

    at.button(key="pause").click().run()
    assert not job.running
    assert "One unit's card" in [s.value for s in at.subheader]
    assert at.number_input(key="card_unit").value == 0
    assert "Rise when switched off" in _card_texts(at)
    card = at.session_state["card_cache"][1]
    assert card.unit == 0 and card.units == 4

    at.number_input(key="card_unit").set_value(2).run()
    assert at.session_state["card_cache"][1].unit == 2
    at.session_state["highlight_unit"] = 3  # what a click on tile 3 stores (train_views.on_filter_select)
    at.run()
    assert at.number_input(key="card_unit").value == 3
    card = at.session_state["card_cache"][1]
    assert card.unit == 3 and card.numbers()["samples"] == min(1000, len(job.trainer.probe))
    assert not at.exception, [e.value for e in at.exception]
