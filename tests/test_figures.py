"""Figures and formulas on a real tiny snapshot, checked against numbers computed here."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from sae_core.analysis import diagnostics, formulas
from sae_core.config.run import DataConfig, ModelConfig, RunConfig, TrainConfig
from sae_core.data.datasets import Dataset, load
from sae_core.figures import training as figures
from sae_core.figures.activity import BAR_COLOUR
from sae_core.models import REGISTRY
from sae_core.penalties import kl
from sae_core.penalties.registry import PENALTY_NAMES, get_penalty
from sae_core.train.trainer import Trainer

HIDDEN = 7  # a 3×3 grid with two empty tiles, so montage gaps are exercised
RHO = 0.05


@pytest.fixture(scope="module")
def trainer() -> Trainer:
    torch.manual_seed(0)
    cfg = RunConfig(
        data=DataConfig(dataset="digits", max_samples=400),
        model=ModelConfig(hidden=HIDDEN, rho=RHO, beta=3.0, weight_decay=1e-4),
        train=TrainConfig(steps=120, batch_size=64, snapshot_every=120, device="cpu"),
    )
    return Trainer(cfg, load(cfg.data))


@pytest.fixture(scope="module")
def ready(trainer: Trainer):
    return trainer.snapshot("ready")


@pytest.fixture(scope="module")
def snap(trainer: Trainer, ready):
    return list(trainer.run())[-1]


def _all_figures(s) -> list[go.Figure]:
    return [
        figures.loss_figure(s),
        figures.loss_figure(s, log_y=True),
        figures.filters_figure(s),
        figures.filters_figure(s, "decoder"),
        figures.rho_hat_histogram(s),
        figures.activation_histogram(s),
        figures.density_histogram(s),
        figures.reconstructions_figure(s),
        figures.kl_curve_figure(s),
        figures.filters_figure(s, highlight=2),
        figures.rho_hat_histogram(s, highlight=2),
        figures.density_histogram(s, highlight=2),
        figures.kl_curve_figure(s, highlight=2),
        figures.data_figure(s),
    ]


def _tile(z: np.ndarray, i: int, shape: tuple[int, int], cols: int) -> np.ndarray:
    """Tile i of a montage with 1-pixel gaps, located by hand."""
    h, w = shape
    r, c = divmod(i, cols)
    return z[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w]


# ----- every figure ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["ready", "snap"])
def test_every_figure_is_titled_white_sized_and_valid_plotly(which, request):
    s = request.getfixturevalue(which)
    for fig in _all_figures(s):
        assert fig.layout.title.text
        assert fig.layout.template.layout.paper_bgcolor == "white"
        assert 250 <= fig.layout.height <= 650
        # The figures are built with validation off for speed; plotly must still accept every key.
        go.Figure(fig.to_dict())
        assert len(fig.data) > 0 or fig.layout.annotations


def test_axes_are_labelled_on_charts(snap):
    for fig in [figures.loss_figure(snap), figures.rho_hat_histogram(snap), figures.kl_curve_figure(snap)]:
        assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    assert figures.rho_hat_histogram(snap).layout.xaxis.title.text == "mean activation ρ̂ⱼ"
    assert figures.rho_hat_histogram(snap).layout.yaxis.title.text == "units"
    assert figures.loss_figure(snap).layout.xaxis.title.text == "step"


# ----- loss -----------------------------------------------------------------------------------------------
def test_loss_figure_before_training_says_press_train(ready):
    fig = figures.loss_figure(ready)
    assert len(fig.data) == 0
    assert [a.text for a in fig.layout.annotations] == ["Press Train to start"]
    assert fig.layout.xaxis.title.text == "step" and fig.layout.yaxis.title.text == "loss"


def test_loss_figure_draws_each_term_with_human_names(snap):
    fig = figures.loss_figure(snap)
    training = ["reconstruction", "sparsity (β·ΣKL)", "weight decay", "total"]
    assert [t.name for t in fig.data] == [*training, "test reconstruction", "test total"]
    total = fig.data[3]
    np.testing.assert_array_equal(total.x, snap.history_steps)
    np.testing.assert_allclose(total.y, snap.history["total"])
    l1 = dataclasses.replace(snap, config=snap.config.replace(penalty="l1"))
    assert figures.loss_figure(l1).data[1].name == "sparsity (β·L1)"
    assert figures.loss_figure(snap, log_y=True).layout.yaxis.type == "log"


def test_loss_figure_title_names_the_length_or_says_until_paused(snap):
    assert figures.loss_figure(snap).layout.title.text == f"Loss terms (step {snap.step:,} of 120)"
    endless = dataclasses.replace(snap, total_steps=0)
    assert figures.loss_figure(endless).layout.title.text == f"Loss terms (step {snap.step:,} until paused)"


def test_log_loss_axis_labels_only_decades_over_a_wide_range(snap):
    values = np.concatenate([np.asarray(v, dtype=np.float64) for v in snap.history.values()])
    assert np.log10(values.max() / values[values > 0].min()) >= 2  # weight decay sits decades below the rest
    y = figures.loss_figure(snap, log_y=True).layout.yaxis
    # dtick 1 on a log axis: one tick per power of ten, written 0.01, 0.1, 1, 10; the 2..9 ticks are minor
    # and unlabelled (Plotly's default labels the 2s and 5s too, crowding the axis).
    assert (y.type, y.dtick, y.tickformat) == ("log", 1, "~g")
    assert y.minor.dtick == "D1" and y.minor.ticks == "outside" and y.minor.showgrid is False
    assert figures.loss_figure(snap).layout.yaxis.dtick is None


def test_log_loss_axis_keeps_plotly_ticks_within_one_decade(snap):
    recon = np.asarray(snap.history["reconstruction"])[20:]
    assert np.log10(recon.max() / recon.min()) < 2
    narrow = dataclasses.replace(
        snap, history={"reconstruction": recon}, history_steps=snap.history_steps[20:]
    )
    y = figures.loss_figure(narrow, log_y=True).layout.yaxis
    assert y.type == "log" and y.dtick is None and y.minor.dtick is None


def test_loss_downsampling_keeps_ends_and_extremes_within_budget(snap):
    fig = figures.loss_figure(snap, max_points=20)
    for trace, term in zip(
        fig.data[:4], ["reconstruction", "sparsity", "weight_decay", "total"], strict=True
    ):
        values, steps = snap.history[term], snap.history_steps
        assert len(trace.x) <= 20
        assert trace.x[0] == steps[0] and trace.x[-1] == steps[-1]
        assert np.all(np.diff(trace.x) > 0)
        np.testing.assert_allclose(trace.y, values[np.searchsorted(steps, trace.x)])
        assert max(trace.y) == values.max() and min(trace.y) == values.min()


def test_downsample_indices_keeps_a_spike():
    values = np.linspace(1.0, 0.0, 10_001)
    values[4321] = 50.0
    keep = figures.downsample_indices(values, 100)
    assert len(keep) <= 100 and keep[0] == 0 and keep[-1] == 10_000 and 4321 in keep
    np.testing.assert_array_equal(figures.downsample_indices(values[:50], 100), np.arange(50))


# ----- filters --------------------------------------------------------------------------------------------
def test_encoder_filters_are_one_heatmap_of_normalised_tiles(snap):
    fig = figures.filters_figure(snap)
    assert [t.type for t in fig.data] == ["heatmap", "scatter"]  # the montage, then its click targets
    heat = fig.data[0]
    z = np.asarray(heat.z, dtype=np.float64)
    w = snap.encoder_weight
    for i in range(HIDDEN):
        expected = w[i] / np.linalg.norm(w[i])
        expected = expected / np.abs(expected).max()
        np.testing.assert_allclose(_tile(z, i, (8, 8), cols=3), expected.reshape(8, 8), atol=1e-6)
    assert np.isnan(_tile(z, 7, (8, 8), cols=3)).all() and np.isnan(_tile(z, 8, (8, 8), cols=3)).all()
    assert np.isnan(z[0]).all() and np.isnan(z[:, 0]).all()
    assert (heat.zmin, heat.zmax) == (-1.0, 1.0)
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.xaxis.showticklabels is False
    assert "Encoder filters W₁" in fig.layout.title.text


def test_filter_hover_maps_each_pixel_to_its_unit_and_rho_hat(snap):
    heat = figures.filters_figure(snap).data[0]
    custom = np.asarray(heat.customdata, dtype=np.float64)
    z = np.asarray(heat.z)
    assert custom.shape == (*z.shape, 2)
    for i in range(HIDDEN):
        np.testing.assert_array_equal(_tile(custom[..., 0], i, (8, 8), 3), i)
        np.testing.assert_allclose(_tile(custom[..., 1], i, (8, 8), 3), snap.rho_hat[i], rtol=1e-6)
    np.testing.assert_array_equal(np.isnan(custom[..., 0]), np.isnan(z))
    assert "unit %{customdata[0]}" in heat.hovertemplate and "ρ̂" in heat.hovertemplate


def test_decoder_filters_draw_decoder_columns_and_fall_back_without_a_decoder(snap):
    heat = figures.filters_figure(snap, "decoder").data[0]
    column = snap.decoder_weight[:, 4]
    expected = column / np.linalg.norm(column)
    expected = expected / np.abs(expected).max()
    np.testing.assert_allclose(_tile(np.asarray(heat.z), 4, (8, 8), 3), expected.reshape(8, 8), atol=1e-6)
    no_decoder = dataclasses.replace(snap, decoder_weight=None)
    fig = figures.filters_figure(no_decoder, "decoder")
    assert "no linear decoder" in fig.layout.title.text
    np.testing.assert_array_equal(fig.data[0].z, figures.filters_figure(snap).data[0].z)
    with pytest.raises(ValueError, match="which"):
        figures.filters_figure(snap, "middle")


def test_filters_of_196_units_28x28_build_one_montage_heatmap():
    w = np.random.default_rng(0).normal(size=(196, 784)).astype(np.float32)
    cfg = RunConfig(model=ModelConfig(hidden=196))
    x = torch.rand(20, 784, generator=torch.Generator().manual_seed(0))
    s = Trainer(cfg, Dataset("random", x, None, None, None, (28, 28)), device="cpu").snapshot("ready")
    fig = figures.filters_figure(dataclasses.replace(s, encoder_weight=w))
    assert [t.type for t in fig.data] == ["heatmap", "scatter"]
    # A few click targets per tile, not one per pixel (196·784): at most (2·CLICK_TARGETS)² in all.
    assert len(fig.data[1].x) == 196 * 2 * 2 <= (2 * figures.CLICK_TARGETS) ** 2
    assert np.asarray(fig.data[0].z).shape == (14 * 29 + 1, 14 * 29 + 1)


# ----- histograms -----------------------------------------------------------------------------------------
def test_rho_hat_histogram_counts_every_unit_and_marks_the_target(snap):
    fig = figures.rho_hat_histogram(snap)
    bars = fig.data[0]
    assert bars.type == "bar" and sum(bars.y) == HIDDEN
    for x, width, count in zip(bars.x, bars.width, bars.y, strict=True):
        inside = (snap.rho_hat >= x - width / 2 - 1e-12) & (snap.rho_hat < x + width / 2 - 1e-12)
        assert count == inside.sum()
    (line,) = fig.layout.shapes
    assert line.x0 == line.x1 == RHO and line.line.dash == "dash"
    assert any(a.text == f"target ρ = {RHO:g}" for a in fig.layout.annotations)
    l1 = dataclasses.replace(snap, config=snap.config.replace(penalty="l1"))
    assert not figures.rho_hat_histogram(l1).layout.shapes


def test_activation_histogram_counts_every_activation_on_a_log_axis(snap):
    fig = figures.activation_histogram(snap)
    assert sum(fig.data[0].y) == snap.activations.size
    assert fig.layout.yaxis.type == "log"
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text


def test_density_histogram_counts_dead_units_in_their_own_bar(snap):
    n_probe = snap.activations.shape[0]
    density = np.array([0.0, 0.0, 1.0 / n_probe, 0.01, 0.1, 0.5, 1.0])
    fig = figures.density_histogram(dataclasses.replace(snap, density=density))
    live, dead = fig.data
    assert list(dead.y) == [2] and sum(live.y) == 5
    # Each live unit sits in the bar whose log10 range holds it.
    for d in density[2:]:
        k = np.flatnonzero(
            (live.x - live.width / 2 <= np.log10(d) + 1e-9) & (np.log10(d) <= live.x + live.width / 2)
        )
        assert live.y[k].sum() >= 1
    ticks = dict(zip(fig.layout.xaxis.ticktext, fig.layout.xaxis.tickvals, strict=True))
    assert ticks["dead"] == dead.x[0] and ticks["1"] == 0.0
    assert "2 of 7 units dead" in fig.layout.title.text


# ----- reconstructions ------------------------------------------------------------------------------------
def test_reconstructions_show_inputs_above_reconstructions_with_errors(snap):
    fig = figures.reconstructions_figure(snap)
    z = np.asarray(fig.data[0].z)
    n = snap.show_inputs.shape[0]
    assert z.shape == (2 * 9 + 1, n * 9 + 1)
    for i in range(n):
        np.testing.assert_allclose(_tile(z, i, (8, 8), n), snap.show_inputs[i].reshape(8, 8), atol=1e-6)
        np.testing.assert_allclose(_tile(z, n + i, (8, 8), n), snap.show_recon[i].reshape(8, 8), atol=1e-6)
    errors = 0.5 * ((snap.show_recon.astype(np.float64) - snap.show_inputs) ** 2).sum(axis=1)
    assert [float(t) for t in fig.layout.xaxis.ticktext] == pytest.approx(errors.tolist(), rel=2e-3)
    assert list(fig.layout.yaxis.ticktext) == ["input", "reconstruction"]
    assert (fig.data[0].zmin, fig.data[0].zmax) == (0.0, 1.0)


# ----- KL curve -------------------------------------------------------------------------------------------
def test_kl_curve_dots_sit_on_the_formula_and_the_line_marks_rho(snap):
    fig = figures.kl_curve_figure(snap)
    curve, dots = fig.data
    q = np.clip(snap.rho_hat.astype(np.float64), 1e-6, 1 - 1e-6)
    expected = RHO * np.log(RHO / q) + (1 - RHO) * np.log((1 - RHO) / (1 - q))
    np.testing.assert_allclose(dots.x, q)
    np.testing.assert_allclose(dots.y, expected, rtol=1e-10)
    grid = np.asarray(curve.x)
    assert grid.min() <= 1e-4 and grid.max() >= 0.999 and len(grid) >= 200
    assert abs(grid[np.argmin(curve.y)] - RHO) / RHO < 0.05  # KL(ρ‖ρ̂) is smallest (zero) at ρ̂ = ρ
    assert fig.layout.shapes[0].x0 == RHO and fig.layout.xaxis.type == "log"
    assert "β·ΣKL" in fig.layout.title.text


def test_snapshot_kl_curve_is_the_loss_formula_finite_at_the_ends(snap):
    grid, values = snap.kl_curve
    q = np.clip(grid, 1e-6, 1 - 1e-6)
    expected = RHO * np.log(RHO / q) + (1 - RHO) * np.log((1 - RHO) / (1 - q))
    np.testing.assert_allclose(values, expected, rtol=1e-10, atol=1e-15)  # KL → 0 near ρ̂ = ρ
    assert np.isfinite(values).all() and grid[0] > 0 and grid[-1] < 1


# ----- metrics --------------------------------------------------------------------------------------------
def test_metrics_row_reports_the_snapshot_numbers(snap):
    row = figures.metrics_row(snap)
    labels = [label for label, _, _ in row]
    mean_label = f"Mean ρ̂ (target ρ = {RHO:g})"
    test = "Test error"
    assert labels == ["Reconstruction error", test, "Variance explained", mean_label, "L0", "Dead units"]
    values = {label: value for label, value, _ in row}
    assert values["Variance explained"] == f"{snap.metrics['fve'] * 100:.1f} %"
    assert values["Reconstruction error"] == f"{snap.metrics['recon_error']:.4g}"
    # The value is the bare number: st.metric's large font clipped "0.104 (ρ = 0.1)" in a fifth of the page.
    assert values[mean_label] == f"{snap.rho_hat.mean():.3f}"
    assert max(len(v) for v in values.values()) <= 10
    l1 = dataclasses.replace(snap, config=snap.config.replace(penalty="l1"))
    assert figures.metrics_row(l1)[3][:2] == ("Mean ρ̂", f"{snap.rho_hat.mean():.3f}")
    assert values["L0"] == f"{snap.metrics['l0']:.1f} / {HIDDEN}"
    dead = dataclasses.replace(snap, density=np.array([0, 0, 0, 0.2, 0.3, 0.1, 1.0]))
    assert dict((lab, v) for lab, v, _ in figures.metrics_row(dead))["Dead units"] == f"3 / {HIDDEN}"
    assert all(isinstance(h, str) and h for _, _, h in row)


# ----- formulas -------------------------------------------------------------------------------------------
def _balanced(tex: str) -> bool:
    depth = 0
    for ch in re.sub(r"\\[{}]", "", tex):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


MAX_NOTE = 34
"""Characters of \\text a line may hold: "keep the 4 largest, zero the rest" renders about 345 px wide in
Chromium, inside the ~430 px column where the Train page shows the formulas."""


def _lines(tex: str) -> list[str]:
    assert tex.startswith(r"\begin{aligned}") and tex.endswith(r"\end{aligned}")
    return tex.removeprefix(r"\begin{aligned}").removesuffix(r"\end{aligned}").split(r" \\ ")


def _fits_a_column(tex: str) -> bool:
    """A line is a formula or a short note, never both: the long mixed lines are the ones KaTeX clipped."""
    for line in _lines(tex):
        notes = re.findall(r"\\text\{([^}]*)\}", line)
        rest = re.sub(r"\\text\{[^}]*\}|\\hat\{x\}|\\tilde\{x\}|\\quad|&|\s", "", line)
        if notes and (len("".join(notes)) > MAX_NOTE or len(re.sub(r"\[[^]]*\]", "", rest)) > 0):
            return False
    return True


def test_objective_latex_substitutes_the_current_numbers():
    cfg = RunConfig(model=ModelConfig(hidden=25, rho=0.01, beta=3.0, weight_decay=1e-4))
    tex = formulas.objective_latex(cfg)
    assert r"\mathrm{KL}\bigl(0.01" in tex and "3\\sum_{j=1}^{25}" in tex
    assert r"\frac{10^{-4}}{2}" in tex and r"\lVert W_1" in tex
    assert _balanced(tex)
    l1 = formulas.objective_latex(cfg.replace(penalty="l1", beta=0.5))
    assert "KL" not in l1 and "0.5\\cdot" in l1 and "|h_j" in l1 and _balanced(l1)
    topk = formulas.objective_latex(cfg.replace(penalty="topk", k=4))  # sigmoid codes under a sigmoid output
    assert _lines(topk)[-2:] == [
        r"h &= \mathrm{top}_{4}\bigl(\sigma(W_1 x + b_1)\bigr)",
        r"&\quad \text{keep the 4 largest, zero the rest}",
    ]
    assert _balanced(topk)
    signed = formulas.objective_latex(cfg.replace(penalty="topk", k=4, output="linear"))
    assert _lines(signed)[-2] == r"h &= \mathrm{top}_{4}\bigl(W_1 x + b_1\bigr)" and _balanced(signed)
    plain = formulas.objective_latex(cfg.replace(penalty="none", weight_decay=0.0))
    assert "KL" not in plain and "W_1" not in plain and _balanced(plain)
    assert formulas.objective_latex(cfg.model) == tex


@pytest.mark.parametrize("variant", list(REGISTRY))
@pytest.mark.parametrize("penalty", PENALTY_NAMES)
def test_every_objective_line_fits_the_page_column(variant, penalty):
    spec = REGISTRY[variant]
    if spec.fixed_penalty is None and penalty not in spec.penalties:  # refused when the config is built
        with pytest.raises(ValueError, match=f"penalty must be one of .* for the {variant} variant"):
            ModelConfig(variant=variant, penalty=penalty)
        return
    model = ModelConfig(
        hidden=196, rho=0.1, beta=3.0, weight_decay=3e-3, k=25, variant=variant, penalty=penalty
    )
    tex = formulas.objective_latex(model)
    assert _fits_a_column(tex) and _balanced(tex)
    if variant == "denoising":
        assert _lines(tex)[-2:] == [
            r"&\text{where } \hat{x} \text{ is decoded}",
            r"&\text{from a corrupted copy } \tilde{x}",
        ]


def test_objective_latex_writes_what_each_variant_trains():
    base = ModelConfig(hidden=25, rho=0.05, beta=3.0, weight_decay=1e-4, kernels=8, k=5)
    tex = {
        v: formulas.objective_latex(dataclasses.replace(base, variant=v))
        for v in ["vae", "ksparse", "conv", "deep"]
    }
    # VAE and k-sparse have no β·ΣKL(ρ‖ρ̂) term: their models skip the penalty.
    assert "hat\\rho" not in tex["vae"] and "hat\\rho" not in tex["ksparse"]
    assert r"\log p\bigl(x^{(i)} \mid z^{(i)}\bigr)" in tex["vae"] and r"\mathcal{N}(0, I)" in tex["vae"]
    assert r"\mathrm{top}_{5}" in tex["ksparse"]  # top-k even though the penalty field says kl
    assert r"\sum_{k=1}^{8} \mathrm{KL}" in tex["conv"]  # one ρ̂ per kernel map, not per hidden unit
    assert r"\sum_{l} \lVert W_l \rVert_F^2" in tex["deep"]  # every layer is decayed


def test_kl_latex_and_number_formatting():
    tex = kl.kl_latex(0.05)
    assert r"0.05\log\frac{0.05}{\hat\rho_j}" in tex and r"0.95\log\frac{0.95}" in tex and _balanced(tex)
    # The clamp note has a line of its own, with EPS = 1e-6 written in.
    assert _lines(tex)[-1] == r"&\quad \text{clamped to } [10^{-6},\, 1 - 10^{-6}]" and _fits_a_column(tex)
    assert formulas.tex_number(3e-3) == "0.003"
    assert formulas.tex_number(2.5e-5) == r"2.5 \cdot 10^{-5}"
    assert formulas.tex_number(1e-4) == "10^{-4}"
    assert formulas.tex_number(0.05) == "0.05"


# ----- held-out test error, unit highlight, data strip, true features -------------------------------------
def test_loss_figure_draws_the_test_terms_dotted_beside_the_training_ones(snap):
    fig = figures.loss_figure(snap)
    test = {t.name: t for t in fig.data if t.name.startswith("test ")}
    assert set(test) == {"test reconstruction", "test total"}
    for name, term in (("test reconstruction", "reconstruction"), ("test total", "total")):
        np.testing.assert_array_equal(test[name].x, snap.test_history_steps)
        np.testing.assert_allclose(test[name].y, snap.test_history[term])
        assert test[name].line.dash == "dot"
        assert test[name].line.color == figures.TERM_COLOURS[term]  # the colour of its training curve
        assert test[name].mode == "lines+markers" and test[name].marker.symbol == "circle-open"
    assert list(snap.test_history_steps) == [0, 120]  # the ready snapshot and the end of the run
    steps = np.arange(500)
    values = np.linspace(2.0, 1.0, 500)
    values[123] = 9.0
    long = dataclasses.replace(snap, test_history_steps=steps, test_history={"reconstruction": values})
    (ring,) = [t for t in figures.loss_figure(long).data if t.name.startswith("test ")]
    assert len(ring.x) <= figures.TEST_POINTS and 123 in ring.x and ring.x[-1] == 499  # thinned, spike kept
    no_test = dataclasses.replace(snap, test_metrics=None, test_history_steps=None, test_history={})
    fig = figures.loss_figure(no_test)
    assert not [t for t in fig.data if t.name.startswith("test ")]
    assert fig.layout.title.text.endswith("· no test split")


def test_metrics_row_shows_the_test_error_next_to_the_training_error(snap, trainer):
    row = figures.metrics_row(snap)
    (first, _), (second, value) = [(lab, v) for lab, v, _ in row[:2]]
    assert (first, second) == ("Reconstruction error", "Test error")
    assert value == f"{snap.test_metrics['recon_error']:.4g}"
    assert f"on {len(trainer.dataset.test)} held-out test inputs" in row[1][2]  # all 359 test digits
    no_test = dataclasses.replace(snap, test_metrics=None)
    label, value, help_text = figures.metrics_row(no_test)[1]
    assert (label, value) == (
        "Test error",
        "no split",
    ) and "no held-out test split" in help_text


def test_filter_click_targets_lie_on_their_tiles_and_carry_the_unit_numbers(snap):
    targets = figures.filters_figure(snap).data[1]
    custom = np.asarray(targets.customdata, dtype=np.float64)
    x, y = np.asarray(targets.x), np.asarray(targets.y)
    units = custom[:, 0].astype(int)
    assert np.bincount(units).tolist() == [len(x) // HIDDEN] * HIDDEN  # as many on every tile
    r, c = np.divmod(units, 3)  # 7 units on a 3×3 grid; a tile's pixels are 1 + 9·c .. 8 + 9·c
    assert ((x > 9 * c + 0.5) & (x < 9 * c + 8.5) & (y > 9 * r + 0.5) & (y < 9 * r + 8.5)).all()
    np.testing.assert_allclose(custom[:, 1], snap.rho_hat[units], rtol=1e-6)
    np.testing.assert_allclose(custom[:, 2], snap.kl_per_unit[units], rtol=1e-12)
    np.testing.assert_allclose(custom[:, 3], snap.density[units], rtol=1e-6)
    for text in ("unit %{customdata[0]}", "ρ̂", "KL(ρ‖ρ̂ⱼ)", "active on %{customdata[3]:.1%}"):
        assert text in targets.hovertemplate
    assert targets.marker.opacity == 0 and targets.selected.marker.opacity == 0
    l1 = dataclasses.replace(snap, config=snap.config.replace(penalty="l1"))
    assert "KL" not in figures.filters_figure(l1).data[1].hovertemplate  # no KL term in that objective


def test_selected_unit_reads_a_streamlit_selection_event():
    # What a click on tile 5 of a 16-unit montage sent in Chromium (Streamlit 1.67): customdata as an object.
    point = {"curve_number": 1, "point_number": 137, "point_index": 137, "x": 13.5, "y": 13.5}
    custom = {"0": 5, "1": 0.4788, "2": 0.4573, "3": 1}
    event = {"selection": {"points": [{**point, "customdata": custom}], "point_indices": [137], "box": []}}
    assert figures.selected_unit(event) == 5
    assert figures.selected_unit(event["selection"]) == 5
    assert figures.selected_unit({"selection": {"points": [{**point, "customdata": [4, 0.05]}]}}) == 4
    assert figures.selected_unit({"selection": {"points": [{**point, "customdata": 6}]}}) == 6
    assert figures.selected_unit({"selection": {"points": [], "point_indices": []}}) is None
    assert figures.selected_unit(None) is None


def test_highlight_outlines_the_units_tile(snap):
    (rect,) = figures.filters_figure(snap, highlight=4).layout.shapes
    # Unit 4 is row 1, column 1 of the 3×3 grid: pixels 10..17 both ways, the outline on the gaps 9 and 18.
    assert (rect.x0, rect.x1, rect.y0, rect.y1) == (9, 18, 9, 18)
    assert not figures.filters_figure(snap, highlight=None).layout.shapes
    assert not figures.filters_figure(snap, highlight=HIDDEN).layout.shapes  # a stale unit: no mark


def test_highlight_colours_the_units_bar_in_the_rho_hat_histogram(snap):
    unit = 3
    fig = figures.rho_hat_histogram(snap, highlight=unit)
    bars = fig.data[0]
    colours = list(bars.marker.color)
    (i,) = [k for k, col in enumerate(colours) if col == figures.HIGHLIGHT_COLOUR]
    assert bars.x[i] - bars.width[i] / 2 <= snap.rho_hat[unit] <= bars.x[i] + bars.width[i] / 2
    assert bars.y[i] >= 1
    note = [a for a in fig.layout.annotations if a.text.startswith("unit")]
    assert [a.text for a in note] == [f"unit {unit}: ρ̂ = {snap.rho_hat[unit]:.3f}"] and note[0].x == bars.x[i]
    plain = figures.rho_hat_histogram(snap)
    assert plain.data[0].marker.color == BAR_COLOUR
    assert figures.rho_hat_histogram(snap, highlight=99).to_dict() == plain.to_dict()


def test_highlight_marks_the_units_density_bar_live_or_dead(snap):
    n_probe = snap.activations.shape[0]
    density = np.array([0.0, 0.0, 1.0 / n_probe, 0.01, 0.1, 0.5, 1.0])
    s = dataclasses.replace(snap, density=density)
    live, dead = figures.density_histogram(s, highlight=4).data
    (i,) = [k for k, col in enumerate(live.marker.color) if col == figures.HIGHLIGHT_COLOUR]
    assert live.x[i] - live.width[i] / 2 <= np.log10(0.1) <= live.x[i] + live.width[i] / 2
    fig = figures.density_histogram(s, highlight=1)
    assert list(fig.data[1].marker.color) == [figures.HIGHLIGHT_COLOUR]
    assert [a.text for a in fig.layout.annotations] == ["unit 1: dead"]


def test_highlight_enlarges_the_units_dot_on_the_kl_curve(snap):
    fig = figures.kl_curve_figure(snap, highlight=5)
    dots = fig.data[1]
    assert [j for j, col in enumerate(dots.marker.color) if col == figures.HIGHLIGHT_COLOUR] == [5]
    assert dots.marker.size[5] > max(dots.marker.size[:5])
    (note,) = [a for a in fig.layout.annotations if a.text.startswith("unit 5")]
    q = max(snap.rho_hat[5], snap.kl_curve[0][0])
    assert note.x == pytest.approx(np.log10(q)) and note.y == pytest.approx(snap.kl_per_unit[5])  # log axis


def test_data_figure_is_one_montage_of_the_first_training_inputs(snap):
    fig = figures.data_figure(snap)
    (heat,) = fig.data
    z = np.asarray(heat.z, dtype=np.float64)
    assert z.shape == (2 * 9 + 1, 10 * 9 + 1)  # 20 inputs, 10 to a row
    for i in (0, 9, 10, 19):
        np.testing.assert_allclose(_tile(z, i, (8, 8), 10), snap.data_examples[i].reshape(8, 8), atol=1e-6)
    assert (heat.zmin, heat.zmax) == (0.0, 1.0)
    assert "first 20 inputs" in fig.layout.title.text
    empty = figures.data_figure(dataclasses.replace(snap, data_examples=None))
    assert not empty.data and empty.layout.annotations


def test_metrics_row_reports_the_bars_found_above_the_threshold(snap):
    match = np.array([0.99, 0.95, 0.91, 0.89, 0.5, *[0.2] * 11])
    bars = dataclasses.replace(snap, truth_match=match, config=snap.config.replace(dataset="bars"))
    rows = {label: (value, help_text) for label, value, help_text in figures.metrics_row(bars)}
    value, help_text = rows["Bars found"]
    assert value == "3 / 16" and "0.9" in help_text
    assert "Bars found" not in {label for label, _, _ in figures.metrics_row(snap)}  # digits: unknown


def test_a_picked_tile_is_a_unit_of_the_histograms_only_when_tiles_are_code_units(snap):
    assert figures.unit_of_tile(snap, 3) == 3 and figures.unit_of_tile(snap, None) is None
    assert figures.unit_of_tile(snap, HIDDEN) is None  # a stale pick from a bigger model
    kernels = dataclasses.replace(snap, encoder_weight=snap.encoder_weight[:4, :9])  # conv: 4 kernels, 7 ρ̂
    assert figures.unit_of_tile(kernels, 3) is None


def test_l0_help_states_the_sigmoid_threshold_and_warns_when_rho_reaches_it():
    from sae_core.figures.activity import l0_help

    signed = l0_help(0.0, None)
    assert "h ≠ 0" in signed and "negative" in signed
    sigmoid = l0_help(0.1, 0.05)
    assert "h > 0.1" in sigmoid and "does not follow ρ" in sigmoid and "loosely" not in sigmoid
    assert "ρ = 0.1" in l0_help(0.1, 0.1) and "loosely" in l0_help(0.1, 0.1)  # UFLDL's MNIST ρ
    assert "loosely" not in l0_help(0.1, None)  # no target ρ (L1 on sigmoid units): nothing to warn about


# ----- every penalty ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("penalty", PENALTY_NAMES)
def test_the_per_unit_penalty_curve_is_kept_and_drawn_only_under_a_penalty_that_has_one(penalty):
    spec = get_penalty(penalty)
    torch.manual_seed(0)
    cfg = RunConfig(
        data=DataConfig(dataset="digits", max_samples=200),
        model=ModelConfig(hidden=HIDDEN, penalty=penalty, beta=spec.beta_default or 0.0, k=3),
        train=TrainConfig(steps=20, batch_size=64, snapshot_every=20, device="cpu"),
    )
    snap = list(Trainer(cfg, load(cfg.data)).run())[-1]
    fig = figures.kl_curve_figure(snap)
    hover = figures.filters_figure(snap).data[1].hovertemplate
    if spec.unit_curve is None:
        assert snap.kl_per_unit is None and snap.kl_curve is None
        assert "has no per-unit penalty" in fig.layout.annotations[0].text and not fig.data
        assert "KL" not in hover
    else:
        rho_hat = torch.from_numpy(np.asarray(snap.rho_hat, dtype=np.float64))
        np.testing.assert_allclose(snap.kl_per_unit, spec.unit_curve(cfg.model.rho, rho_hat).numpy())
        assert fig.data[1].y.tolist() == snap.kl_per_unit.tolist()
        assert fig.layout.yaxis.title.text == spec.unit_curve_label and spec.unit_curve_label in hover
    # Every other view and the diagnostics draw under it too (JumpReLU's included).
    for view in (figures.rho_hat_histogram, figures.density_histogram, figures.loss_figure):
        assert view(snap).layout.title.text
    assert all(label and value for label, value, _ in figures.metrics_row(snap))
    assert isinstance(diagnostics.run_warnings(snap), list)


def test_dead_units_are_blamed_on_what_the_penalty_says_causes_them(snap):
    dead = dataclasses.replace(snap, density=np.zeros_like(snap.density))
    for penalty in PENALTY_NAMES:
        model = dataclasses.replace(snap.config.model, penalty=penalty, k=3)
        under = dataclasses.replace(dead, config=dataclasses.replace(snap.config, model=model))
        (warning,) = diagnostics.run_warnings(under)
        cause = get_penalty(penalty).dead_units_cause(model, snap.config.train.lr)
        assert warning == f"{HIDDEN} of {HIDDEN} units are dead (never active on the probe set): {cause}."
    jumprelu = dataclasses.replace(snap.config.model, penalty="jumprelu", beta=0.05)
    under = dataclasses.replace(dead, config=dataclasses.replace(snap.config, model=jumprelu))
    assert "L0 weight β = 0.05" in diagnostics.run_warnings(under)[0]
