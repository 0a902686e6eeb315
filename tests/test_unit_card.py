"""One hidden unit's card (sae_core.analysis.unit_card), its page section on Train, and `sae unit`.

The numbers are checked against numpy written out here from the model's weights: the sigmoid encoder and
decoder of the one-hidden-layer sparse autoencoder, h = σ(W₁x + b₁), x̂ = σ(W₂h + b₂); the deep and VAE
layers; a conv model's maps and decoder with F.conv2d / F.conv_transpose2d. Every variant gets a card.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from apptest_helpers import pin_navigation_mode, poll, stop_jobs
from PIL import Image
from streamlit.testing.v1 import AppTest

from sae_core.analysis import unit_card
from sae_core.cli.main import main
from sae_core.config.run import DataConfig, ModelConfig, RunConfig, TrainConfig
from sae_core.figures import unit_card as unit_card_draw
from sae_core.models import registry
from sae_core.train.trainer import Trainer

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
    fig = unit_card_draw.card_figure(card)
    kinds = [t.type for t in fig.data]
    assert kinds.count("heatmap") == 4 and kinds.count("bar") == 1  # filter, feature, two input strips
    assert "unit 1 of 6" in fig.layout.title.text
    assert fig.layout.xaxis3.title.text == f"activation hⱼ on {len(x):,} inputs"
    assert fig.layout.yaxis3.title.text == "inputs (log)"
    assert fig.layout.xaxis.title.text.startswith("encoder filter")
    path = unit_card_draw.save_card_png(card, tmp_path / "card.png")
    with Image.open(path) as img:
        assert img.format == "PNG" and img.width > 200 and img.height > 150
        png = np.asarray(img.convert("L"))
    # every row of pictures is in the PNG as drawn, below the header's lines of text
    scale = unit_card_draw._scale(card)
    top_strip = unit_card_draw._picture_rows(card, scale)[1]
    margin = unit_card_draw.PNG_MARGIN
    found = [
        y
        for y in range(png.shape[0] - top_strip.shape[0] + 1)
        if np.array_equal(png[y : y + top_strip.shape[0], margin : margin + top_strip.shape[1]], top_strip)
    ]
    assert len(found) == 1 and found[0] > 3 * unit_card_draw.PNG_FONT_SIZE
    assert (png[:margin] == 255).all() and (png[:, :margin] == 255).all()  # a white margin: nothing clipped


# ----- every variant: a card, its pictures, and what they are ----------------------------------------------
def _model(variant: str, seed: int = 0, **changes):
    """A seeded, untrained 64-input model of `variant`; fields other variants ignore are set for all."""
    fields = {"hidden": 6, "layers": (8,), "kernels": 3, "kernel_size": 3, "latent": 3, "k": 2, **changes}
    torch.manual_seed(seed)
    return registry.build(ModelConfig(variant=variant, **fields), 64, (8, 8)).eval()


@pytest.mark.parametrize("variant", registry.VARIANTS)
def test_every_variant_has_a_card_with_a_filter_and_a_feature_picture_of_the_right_shape(
    variant, tiny_digits, tmp_path
):
    model = _model(variant)
    x = tiny_digits.train[:120]
    layout = unit_card.card_layout(model, x, (8, 8))
    code_units = model.encode(x[:1]).shape[1]
    assert layout.units * layout.positions == code_units
    for unit in (0, layout.units - 1):
        card = unit_card.build_card(model, x, unit, (8, 8), layout=layout)
        assert card.units == layout.units and card.positions == layout.positions
        for picture, shape in (
            (card.encoder_filter, card.filter_shape),
            (card.decoder_feature, card.feature_shape),
        ):
            assert picture.shape == (shape[0] * shape[1],) and np.all(np.isfinite(picture))
        own = card.encoder_kind in ("row", "kernel")
        expected = tuple(model.filter_shape((8, 8))) if own else (8, 8)
        assert card.filter_shape == expected
        if own:  # the tile of this unit in the Train page's filter grid is this very picture
            np.testing.assert_allclose(card.encoder_filter, model.filters()[unit].detach().double().numpy())
            assert layout.unit_of_tile(unit) == unit
        fig = unit_card_draw.card_figure(card)
        assert fig.data[0].z.shape == (card.filter_shape[0] + 2, card.filter_shape[1] + 2)  # 1-pixel frame
        png = unit_card_draw.save_card_png(card, tmp_path / f"{variant}-{unit}.png")
        assert Image.open(png).mode == "L"


@pytest.mark.parametrize(
    ("variant", "kinds"),
    [
        ("sparse", ("row", "column")),
        ("denoising", ("row", "column")),
        ("contractive", ("row", "column")),
        ("ksparse", ("row", "column")),
        ("deep", ("gradient", "step")),
        ("vae", ("gradient", "step")),
        ("conv", ("kernel", "kernel")),
    ],
)
def test_the_card_draws_a_units_own_weights_only_where_they_are_its_own(variant, kinds, tiny_digits):
    # deep: a first layer as wide as the code, VAE: hidden == latent; the shapes match, the weights are
    # still not the code units' (checked on the Jacobians), so the card draws effective pictures.
    model = _model(variant, hidden=6, layers=(6,), latent=6)
    card = unit_card.build_card(model, tiny_digits.train[:60], 1, (8, 8))
    assert (card.encoder_kind, card.decoder_kind) == kinds
    layout = unit_card.card_layout(model, tiny_digits.train[:60], (8, 8))
    assert (layout.unit_of_tile(1) == 1) == (kinds[0] != "gradient")


def test_effective_filter_of_a_sigmoid_unit_is_the_mean_of_its_slope_times_its_w1_row(trained):
    model, x = trained
    w1, b1, _, _ = _weights(model)
    xs = x[:20]
    for unit in range(6):
        h = _sigmoid(xs.double().numpy() @ w1.T + b1)[:, unit]
        expected = (h * (1 - h)).mean() * w1[unit]  # mean σ'(aⱼ)·W₁[j]
        got = unit_card.effective_filter(model, xs, [unit])
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7)
        cosine = got @ w1[unit] / (np.linalg.norm(got) * np.linalg.norm(w1[unit]))
        assert cosine > 0.99


@pytest.mark.parametrize("variant", ["sparse", "ksparse"])
def test_decoder_step_of_a_linear_output_decoder_is_a_times_its_w2_column(variant):
    model = _model(variant, output="linear")
    w2 = model.dictionary().detach().double().numpy()
    for unit, a in ((0, 0.7), (4, -1.3)):
        step = unit_card.decoder_step(model, 6, unit, a)
        np.testing.assert_allclose(step, a * w2[:, unit], rtol=1e-5, atol=1e-6)


def _relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0.0)


def _numpy_layers(layers) -> list[tuple[np.ndarray, np.ndarray]]:
    return [
        (layer.weight.detach().double().numpy(), layer.bias.detach().double().numpy()) for layer in layers
    ]


def test_deep_card_pictures_are_the_finite_difference_gradient_and_the_decoded_step(tiny_digits):
    model = _model("deep", layers=(10, 8)).double()
    x = tiny_digits.train[:80].double()
    unit = 2
    card = unit_card.build_card(model, x, unit, (8, 8))
    assert (card.encoder_kind, card.decoder_kind) == ("gradient", "step")
    enc, dec = _numpy_layers(model.encoder), _numpy_layers(model.decoder)

    def h(v: np.ndarray) -> np.ndarray:  # [n, 64] -> [n] the code unit, written out
        for i, (w, b) in enumerate(enc):
            v = v @ w.T + b
            v = _sigmoid(v) if i == len(enc) - 1 else _relu(v)
        return v[:, unit]

    top = x.numpy()[card.top_indices]
    eps = 1e-6
    grad = np.stack(
        [(h(top + eps * e) - h(top - eps * e)) / (2 * eps) for e in np.eye(64)], axis=1
    )  # [top, 64]
    np.testing.assert_allclose(card.encoder_filter, grad.mean(axis=0), rtol=1e-5, atol=1e-8)

    a = h(top).mean()
    assert card.step_size == pytest.approx(a, rel=1e-9)

    def decode(z: np.ndarray) -> np.ndarray:
        for i, (w, b) in enumerate(dec):
            z = z @ w.T + b
            z = _sigmoid(z) if i == len(dec) - 1 else _relu(z)
        return z

    code = np.zeros((1, 6))
    code[0, unit] = a
    np.testing.assert_allclose(card.decoder_feature, (decode(code) - decode(np.zeros((1, 6))))[0], atol=1e-10)


def test_vae_card_draws_the_latent_traversal_from_zero_to_its_top_inputs_mean(tiny_digits):
    model = _model("vae", hidden=10, latent=3).double()
    x = tiny_digits.train[:80].double()
    unit = 1
    card = unit_card.build_card(model, x, unit, (8, 8))
    e, m = _numpy_layers([model.encoder, model.mu])
    mu = _relu(x.numpy() @ e[0].T + e[1]) @ m[0].T + m[1]
    top = np.argsort(-mu[:, unit])[:9]
    np.testing.assert_array_equal(np.sort(card.top_indices), np.sort(top))
    a = mu[top, unit].mean()
    (dh, bh), (do, bo) = _numpy_layers([model.decoder_hidden, model.decoder])
    z = np.zeros((2, 3))
    z[0, unit] = a
    out = _sigmoid(_relu(z @ dh.T + bh) @ do.T + bo)
    assert card.step_size == pytest.approx(a, rel=1e-9)
    np.testing.assert_allclose(card.decoder_feature, out[0] - out[1], atol=1e-10)
    # μⱼ is linear in the ReLU layer: ∂μⱼ/∂x = Σ_h m[j, h]·[a_h > 0]·e[h, :]
    pre = x.numpy()[top] @ e[0].T + e[1]
    grads = ((pre > 0) * m[0][unit]) @ e[0]
    np.testing.assert_allclose(card.encoder_filter, grads.mean(axis=0), rtol=1e-6, atol=1e-10)


# ----- a convolutional model: one card per kernel -----------------------------------------------------------
@pytest.fixture(scope="module")
def trained_conv(tiny_digits):
    """A conv autoencoder with 3 kernels of 3×3 after 40 Adam steps on 300 digits, and its probe inputs."""
    cfg = RunConfig(
        data=DataConfig(dataset="digits"),
        model=ModelConfig(variant="conv", kernels=3, kernel_size=3, rho=0.1),
        train=TrainConfig(steps=40, batch_size=64, lr=0.03, device="cpu", snapshot_every=40),
    )
    trainer = Trainer(cfg, tiny_digits, device="cpu")
    for _ in trainer.run():
        pass
    return trainer.model.eval(), trainer.probe


def _conv_maps(model, x: torch.Tensor) -> np.ndarray:
    """[N, kernels, 4, 4] sigmoid(conv(x, kernels, stride 2, padding 1)), written out with F.conv2d."""
    conv = model.encoder
    with torch.no_grad():
        a = F.conv2d(
            x.view(-1, 1, 8, 8).double(), conv.weight.double(), conv.bias.double(), stride=2, padding=1
        )
    return torch.sigmoid(a).numpy()


def _conv_recon_error(model, x: torch.Tensor, maps: np.ndarray) -> float:
    de = model.decoder
    with torch.no_grad():
        out = F.conv_transpose2d(
            torch.from_numpy(maps),
            de.weight.double(),
            de.bias.double(),
            stride=2,
            padding=1,
            output_padding=1,
        )
    recon = torch.sigmoid(out).flatten(1).numpy()
    return float(0.5 * ((recon - x.double().numpy()) ** 2).sum(axis=1).mean())


@pytest.mark.parametrize("kernel", [0, 2])
def test_conv_card_is_one_kernel_its_map_pooled_over_positions(trained_conv, kernel):
    model, x = trained_conv
    card = unit_card.build_card(model, x, kernel, (8, 8))
    maps = _conv_maps(model, x)  # [N, 3, 4, 4]
    own = maps[:, kernel]
    assert (card.units, card.positions) == (3, 16)
    np.testing.assert_allclose(card.activations, own.max(axis=(1, 2)), rtol=1e-5)  # max over positions
    assert card.rho_hat == pytest.approx(own.mean(), rel=1e-5)  # the map's mean over inputs and positions
    penalty_rho = model.sparsity_codes(model(x)).mean(dim=0)[kernel].detach()  # what the KL penalty uses
    assert card.rho_hat == pytest.approx(float(penalty_rho), rel=1e-5)
    assert card.density == pytest.approx((own > 0.1).mean())
    top = np.argsort(-own.max(axis=(1, 2)), kind="stable")[:9]
    assert np.sort(own.max(axis=(1, 2))[card.top_indices]) == pytest.approx(
        np.sort(own.max(axis=(1, 2))[top])
    )
    np.testing.assert_allclose(
        card.encoder_filter, model.encoder.weight[kernel, 0].detach().flatten().numpy()
    )
    np.testing.assert_allclose(
        card.decoder_feature, model.decoder.weight[kernel, 0].detach().flatten().numpy()
    )
    assert card.filter_shape == card.feature_shape == (3, 3)
    assert card.recon_error == pytest.approx(_conv_recon_error(model, x, maps), rel=1e-5)
    off = maps.copy()
    off[:, kernel] = 0.0
    assert card.ablated_recon_error == pytest.approx(_conv_recon_error(model, x, off), rel=1e-5)
    assert f"kernel {kernel} of 3" in unit_card.summary_line(card)


def test_conv_card_refuses_a_kernel_the_model_does_not_have_and_maps_tiles_to_kernels(trained_conv):
    model, x = trained_conv
    with pytest.raises(ValueError, match=r"unit must be in \[0, 2\] \(the model's 3 kernels\), got 3"):
        unit_card.build_card(model, x, 3, (8, 8))
    layout = unit_card.card_layout(model, x, (8, 8))
    assert [layout.unit_of_tile(t) for t in (0, 2, 3, None)] == [0, 2, None, None]
    np.testing.assert_array_equal(layout.columns[1], np.arange(16, 32))  # map 1 of the kernel-major code


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


def test_sae_unit_on_a_conv_model_shows_one_kernel(tmp_path, capsys):
    args = ["train", "--dataset", "digits", "--variant", "conv", "--kernels", "3", "--kernel-size", "3"]
    assert (
        main(
            [
                *args,
                "--steps",
                "30",
                "--batch-size",
                "64",
                "--device",
                "cpu",
                "--quiet",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    png = tmp_path / "kernel.png"
    assert main(["unit", "--model", str(tmp_path), "--unit", "2", "--out", str(png), "--samples", "200"]) == 0
    assert "kernel 2 of 3" in capsys.readouterr().out
    with Image.open(png) as img:
        assert img.format == "PNG"
    assert main(["unit", "--model", str(tmp_path), "--unit", "2", "--json", "--samples", "200"]) == 0
    numbers = json.loads(capsys.readouterr().out)
    assert (numbers["unit"], numbers["units"], numbers["positions"]) == (2, 3, 16)
    assert main(["unit", "--model", str(tmp_path), "--unit", "3"]) == 2
    assert "the model's 3 kernels" in capsys.readouterr().err


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


def test_a_conv_models_card_opens_for_the_clicked_kernel(monkeypatch):
    pin_navigation_mode(monkeypatch)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params.update(
        {**TINY_PAGE, "variant": "conv", "kernels": "3", "kernel_size": "3", "steps": "30"}
    )
    at.run()
    at.switch_page("pages/train.py").run()
    try:
        assert not at.exception, [e.value for e in at.exception]
        job = at.session_state["job"]
        at.button(key="train").click().run()
        poll(at, lambda: not job.running and job.step_count == 30, "the 30-step run to end", 60)
        unit_box = at.number_input(key="card_unit")
        assert unit_box.label == "Kernel (0–2)" and unit_box.max == 2
        at.session_state["highlight_unit"] = 2  # what a click on kernel 2's tile stores
        at.run()
        assert at.number_input(key="card_unit").value == 2
        card = at.session_state["card_cache"][1]
        assert (card.unit, card.units, card.positions) == (2, 3, 16)
        np.testing.assert_allclose(card.encoder_filter, job.latest().encoder_weight[2], rtol=1e-6)
        assert "ρ̂ₖ (mean of its map)" in _card_texts(at)
        assert not at.exception, [e.value for e in at.exception]
    finally:
        stop_jobs(at)
