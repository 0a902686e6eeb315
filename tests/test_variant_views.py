"""The variants' own figures (checked against the snapshot and independent formulas) and their Train page
controls and views (AppTest: open Train with the variant in the URL, train, see its charts).

Everything is tiny: 8×8 digits, a handful of units, conv with 4 kernels of 3×3.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from apptest_helpers import pictures, pin_navigation_mode, poll, stop_jobs
from streamlit.testing.v1 import AppTest

from sae_core.config.run import RunConfig
from sae_core.data.datasets import load
from sae_core.figures.variants import contractive, conv, deep, denoising, ksparse, vae
from sae_core.images import normalize_filters
from sae_core.models import REGISTRY
from sae_core.models.denoising import corrupt
from sae_core.train.trainer import Trainer

# Every variant's figure functions under one name, as the specs' views reach them.
fv = SimpleNamespace(
    **{
        name: getattr(module, name)
        for module in (contractive, conv, deep, denoising, ksparse, vae)
        for name in dir(module)
        if not name.startswith("_")
    }
)

APP = Path(__file__).resolve().parent.parent / "app.py"
RUN_TIMEOUT = 60  # seconds per script run: the first one imports torch and loads data on 2 shared cores
POLL_DEADLINE = 60
BASE = {"dataset": "digits", "max_samples": 300, "steps": 40, "snapshot_every": 40, "batch_size": 32}


def _trained(**model) -> tuple[Trainer, object]:
    torch.manual_seed(0)
    cfg = RunConfig.from_flat({**BASE, "device": "cpu", **model})
    trainer = Trainer(cfg, load(cfg.data))
    return trainer, list(trainer.run())[-1]


def _tile(z: np.ndarray, i: int, shape: tuple[int, int], cols: int) -> np.ndarray:
    """Tile i of a montage with 1-pixel gaps, located by hand."""
    h, w = shape
    r, c = divmod(i, cols)
    return z[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w]


# ----- figures ----------------------------------------------------------------------------------------------
def test_deep_histograms_have_one_panel_per_layer_counting_every_activation():
    _, snap = _trained(variant="deep", layers="12,8", hidden=5)
    fig = fv.layer_histograms_figure(snap)
    assert len(fig.data) == 3  # two hidden layers and the code
    for trace, size in zip(fig.data, (12, 8, 5), strict=True):
        assert int(np.sum(trace.y)) == 10 * size  # ten shown inputs × the layer's units
    assert [a.text.split(" (")[0] for a in fig.layout.annotations] == ["layer 1", "layer 2", "code"]
    # The code panel bins exactly the code layer: its range is the code's min..max.
    code = snap.extras["layer3_activations"]
    assert code.shape == (10, 5) and np.asarray(snap.activations).shape[1] == 5
    assert fig.data[2].x.min() > code.min() and fig.data[2].x.max() < code.max()


def test_conv_feature_maps_montage_holds_the_chosen_inputs_maps():
    trainer, snap = _trained(variant="conv", kernels=4, kernel_size=3)
    fig = fv.feature_maps_figure(snap, index=3)
    picture, maps = fig.data
    np.testing.assert_allclose(_tile(np.asarray(picture.z), 0, (8, 8), 1), snap.show_inputs[3].reshape(8, 8))
    # Independent: the encoder's convolution of input #3, computed here.
    model = trainer.model
    with torch.no_grad():
        x = torch.from_numpy(snap.show_inputs[3]).view(1, 1, 8, 8)
        expected = torch.sigmoid(model.encoder(x))[0].numpy()
    for k in range(4):
        np.testing.assert_allclose(_tile(np.asarray(maps.z), k, (4, 4), 2), expected[k], atol=1e-6)
    with pytest.raises(ValueError, match="index must be in"):
        fv.feature_maps_figure(snap, index=10)


def test_conv_decoder_kernels_and_per_kernel_rho_hat():
    trainer, snap = _trained(variant="conv", kernels=4, kernel_size=3)
    z = np.asarray(fv.decoder_kernels_figure(snap).data[0].z)
    weights = trainer.model.decoder.weight.detach().numpy().reshape(4, 9)  # [kernels, 1, 3, 3]
    unit = normalize_filters(weights)
    for k in range(4):
        np.testing.assert_allclose(_tile(z, k, (3, 3), 2), (unit[k] / np.abs(unit[k]).max()).reshape(3, 3))
    bars = fv.kernel_rho_figure(snap).data[0]
    acts = np.asarray(snap.activations)  # [probe, 4 kernels · 4 · 4], kernel-major
    expected = [acts[:, k * 16 : (k + 1) * 16].mean() for k in range(4)]
    np.testing.assert_allclose(bars.y, expected, rtol=1e-5)


def test_denoising_rows_are_corrupted_clean_and_reconstruction():
    trainer, snap = _trained(variant="denoising", hidden=6, corruption="mask", noise_level=0.5)
    z = np.asarray(fv.denoising_figure(snap).data[0].z)
    # Independent: the seeded corruption and the model's reconstruction of it, recomputed here.
    clean = torch.from_numpy(snap.show_inputs)
    noisy = corrupt(clean, "mask", 0.5, torch.Generator().manual_seed(0))
    with torch.no_grad():
        denoised = trainer.model.decode(trainer.model.encode(noisy))
    rows = [noisy.numpy(), snap.show_inputs, denoised.numpy()]
    for r, row in enumerate(rows):
        for i in range(10):
            np.testing.assert_allclose(_tile(z, r * 10 + i, (8, 8), 10), row[i].reshape(8, 8), atol=1e-6)
    assert not np.allclose(rows[0], rows[1])  # half the pixels are masked
    fig = fv.denoising_figure(snap)
    assert list(fig.layout.yaxis.ticktext) == ["corrupted input", "clean input", "reconstruction"]
    errors = 0.5 * ((rows[2] - rows[1]) ** 2).sum(axis=1)
    assert list(fig.layout.xaxis.ticktext) == [f"{e:.3g}" for e in errors]


def test_vae_prior_samples_latent_grid_and_scatter():
    trainer, snap = _trained(variant="vae", hidden=16, latent=2)
    samples = np.asarray(fv.prior_samples_figure(snap).data[0].z)
    for i in range(16):
        np.testing.assert_allclose(
            _tile(samples, i, (8, 8), 4), snap.extras["prior_samples"][i].reshape(8, 8)
        )
    fig = fv.latent_grid_figure(snap)
    z, axis = np.asarray(fig.data[0].z), snap.extras["latent_axis"]
    # Independent: top-left is (z₁, z₂) = (smallest, largest), bottom-right (largest, smallest).
    model = trainer.model
    with torch.no_grad():
        corners = model.decode(torch.tensor([[axis[0], axis[-1]], [axis[-1], axis[0]]], dtype=torch.float32))
    np.testing.assert_allclose(_tile(z, 0, (8, 8), 10), corners[0].numpy().reshape(8, 8), atol=1e-6)
    np.testing.assert_allclose(_tile(z, 99, (8, 8), 10), corners[1].numpy().reshape(8, 8), atol=1e-6)
    assert list(fig.layout.yaxis.ticktext) == [f"{v:.2f}" for v in axis[::-1]]

    x, labels = trainer.dataset.test[:200], trainer.dataset.test_labels[:200].numpy()
    with torch.no_grad():
        codes = model.eval().encode(x).numpy()
    scatter = fv.latent_scatter(codes, labels, snap.step)
    assert [t.name for t in scatter.data] == [str(v) for v in np.unique(labels)]
    assert sum(len(t.x) for t in scatter.data) == 200
    three = scatter.data[[t.name for t in scatter.data].index("3")]
    np.testing.assert_allclose(three.x, codes[labels == 3, 0])
    assert scatter.layout.legend.title.text == "digit"
    # The page's scatter is drawn from the snapshot alone: the probe set's μ, coloured by its labels.
    on_page = fv.latent_scatter_figure(snap)
    probe_labels = np.asarray(snap.probe_labels)
    assert sum(len(t.x) for t in on_page.data) == len(probe_labels) == len(trainer.probe)
    with torch.no_grad():
        probe_mu = model.encode(trainer.probe).numpy()
    three = on_page.data[[t.name for t in on_page.data].index("3")]
    np.testing.assert_allclose(three.x, probe_mu[probe_labels == 3, 0], atol=1e-6)


def test_vae_kl_per_dimension_matches_the_closed_form_on_the_probe_set():
    trainer, snap = _trained(variant="vae", hidden=16, latent=3)
    with torch.no_grad():
        a = torch.relu(trainer.model.encoder(trainer.probe))
        mu, logvar = trainer.model.mu(a), trainer.model.logvar(a)
    expected = (-0.5 * (1 + logvar - mu**2 - logvar.exp())).mean(dim=0).numpy()
    fig = fv.kl_per_dimension_figure(snap)
    bars, dots = fig.data
    np.testing.assert_allclose(bars.y, expected, rtol=1e-5)
    np.testing.assert_allclose(dots.y, logvar.exp().mean(dim=0).numpy(), rtol=1e-5)
    assert fig.layout.xaxis.title.text == "latent dimension j"


def test_contractive_jacobian_norms_match_autograd():
    trainer, snap = _trained(variant="contractive", hidden=6, contraction=0.5)
    norms = fv.jacobian_norms(snap)
    model = trainer.model
    assert norms.size == len(trainer.probe)
    for i in range(3):
        jac = torch.autograd.functional.jacobian(model.encode, trainer.probe[i : i + 1])  # [1, 6, 1, 64]
        assert norms[i] == pytest.approx(float(jac.pow(2).sum()), rel=1e-4)
    fig = fv.contraction_figure(snap)
    assert int(np.sum(fig.data[0].y)) == norms.size
    assert f"{0.5 * norms.mean():.3g}" in fig.layout.title.text


def test_ksparse_codes_have_exactly_k_active_units():
    _, snap = _trained(variant="ksparse", hidden=8, k=3)
    active = fv.active_per_sample(snap)
    assert active.size == np.asarray(snap.activations).shape[0]
    np.testing.assert_array_equal(active, 3)
    bars = fv.active_per_sample_figure(snap).data[0]
    assert list(bars.x) == [3] and list(bars.y) == [active.size]


def test_missing_extras_give_a_message_not_an_error():
    _, snap = _trained(hidden=4)  # the plain sparse autoencoder has no extras
    for make in (
        fv.denoising_figure,
        fv.prior_samples_figure,
        fv.latent_grid_figure,
        fv.decoder_kernels_figure,
    ):
        fig = make(snap)
        assert fig.layout.annotations and "no" in fig.layout.annotations[0].text
    assert fv.layer_histograms_figure(snap).layout.annotations


# ----- the Train page ---------------------------------------------------------------------------------------
@pytest.fixture
def apps(monkeypatch):
    """AppTests of the Train page that run as a live server does after its first visit (see
    test_app_pages.past_first_navigation); their jobs are stopped afterwards, whatever the test did."""
    pin_navigation_mode(monkeypatch)
    made: list[AppTest] = []

    def make(query: dict[str, str]) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT)
        at.query_params.update({"dataset": "digits", "steps": "100000", "batch_size": "32", **query})
        made.append(at)
        at.run()
        at.switch_page("pages/train.py").run()
        return at

    yield make
    for at in made:
        stop_jobs(at)


def _poll(at: AppTest, done, what: str) -> None:
    poll(at, done, what, POLL_DEADLINE)


def _chart_keys(at: AppTest) -> set[str]:
    """User keys of the charts drawn: the plotly charts (their element id ends in '-<key>') and the live
    charts drawn as plain pictures (before the first step and while training)."""
    return {c.proto.id.split("-", 2)[-1] for c in at.get("plotly_chart")} | set(pictures(at))


def _no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


TINY = {"hidden": "4", "layers": "8", "kernels": "4", "kernel_size": "3", "latent": "2", "k": "3"}
"""Small sizes every variant accepts (the URL of each page test)."""


def _control_kind(spec_control) -> str:
    """The widget kind the page should draw for a spec control (what train_controls derives)."""
    from typing import get_args

    from sae_core.config import run as config

    hint = str(config.field_type(spec_control.field))
    if spec_control.choices is not None or get_args(getattr(config, hint, None)):
        return "selectbox"
    if hint.startswith("bool"):
        return "checkbox"
    if hint.startswith("tuple"):
        return "text_input"
    return "number_input"


@pytest.mark.parametrize("variant", list(REGISTRY))
def test_each_variant_trains_from_the_page_with_its_controls_and_views(apps, variant):
    spec = REGISTRY[variant]
    at = apps({"variant": variant, **TINY})
    _no_exceptions(at)
    job = at.session_state["job"]
    assert job.config.model.variant == variant
    assert at.selectbox(key="variant").value == variant
    for control in spec.controls:
        assert getattr(at, _control_kind(control))(key=control.field).label == control.label
    assert spec.note in [c.value for c in at.sidebar.caption]
    at.button(key="train").click().run()
    _poll(at, lambda: job.step_count > 0, f"{variant} to take its first steps")
    at.run()  # the views of a snapshot taken after training started
    _no_exceptions(at)
    charts = _chart_keys(at)
    assert {view.key for view in spec.views} <= charts
    assert "filters_chart" in charts
    assert ("rho_hat_chart" in charts) == ("rho_hat" in spec.standard_views)
    labels = [m.label for m in at.metric]
    for label, _, _ in spec.metric_rows(job.latest()):
        assert label in labels


def test_every_variant_control_is_reset_with_the_other_widgets():
    from pages import settings_state
    from sae_core.models import REGISTRY
    from sae_core.penalties.registry import PENALTIES

    drawn = {key for spec in [*REGISTRY.values(), *PENALTIES.values()] for key in spec.fields}
    # URL reads and presets forget exactly these: the variants' and the penalties' own settings.
    assert drawn - set(settings_state.WIDGET_KEYS) == set(settings_state.VARIANT_WIDGET_KEYS)


def test_variant_select_shows_human_names_and_sparse_has_no_variant_views(apps):
    at = apps({"hidden": "4"})
    _no_exceptions(at)
    box = at.selectbox(key="variant")
    assert box.value == "sparse"
    assert "Variational (VAE)" in box.options and "Convolutional" in box.options
    every_variant_chart = {view.key for spec in REGISTRY.values() for view in spec.views}
    assert not every_variant_chart & _chart_keys(at)
    assert not [key for key in ("layers", "kernels", "latent", "contraction") if key in at.session_state]


def test_a_bad_variant_value_is_refused_next_to_its_control(apps):
    at = apps({"variant": "conv", "kernels": "4", "kernel_size": "4"})
    _no_exceptions(at)
    assert any("The kernel size must be odd" in e.value for e in at.error)
    assert at.session_state["job"].config.model.kernel_size == 5

    at = apps({"variant": "deep", "layers": "8", "hidden": "4"})
    job = at.session_state["job"]
    at.text_input(key="layers").set_value("8,zero").run()
    _no_exceptions(at)
    assert any("The layer sizes must be" in e.value for e in at.error)
    assert at.session_state["job"] is job and job.config.model.layers == (8,)


def test_changing_a_variant_control_rebuilds_the_model_and_updates_the_url(apps):
    at = apps({"variant": "conv", "kernels": "4", "kernel_size": "3"})
    job = at.session_state["job"]
    at.number_input(key="kernels").set_value(3).run()
    _no_exceptions(at)
    new = at.session_state["job"]
    assert new is not job and new.config.model.kernels == 3
    assert new.trainer.model.encoder.weight.shape == (3, 1, 3, 3)
    assert at.query_params["kernels"] in ("3", ["3"])

    at.selectbox(key="variant").set_value("deep").run()
    at.text_input(key="layers").set_value("6,5").run()
    _no_exceptions(at)
    assert at.session_state["job"].config.model.layers == (6, 5)
    assert at.query_params["layers"] in ("6,5", ["6,5"])
