"""The superposition dataset (known features, more of them than dimensions) and what a model is scored by
on it: features found by cosine similarity and the mean max cosine similarity (MMCS) of its decoder
columns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sae_core import presets
from sae_core.config.run import DataConfig, RunConfig
from sae_core.data import datasets as data
from sae_core.data.superposition import random_directions, strip_shape, superposition_vectors
from sae_core.train import budget, metrics

SMALL = {"dataset": "superposition", "n_features": 24, "n_dims": 12, "feature_prob": 0.1, "n_vectors": 2000}
PENALTY = presets.get("superposition").flat["penalty"]
"""The preset's penalty (ReLU codes with a β), used by the small runs here too."""


# ---- the data ----------------------------------------------------------------------------------------------


def test_samples_are_sparse_nonnegative_combinations_of_the_unit_features():
    made = superposition_vectors(3000, 40, 16, 0.05, torch.Generator().manual_seed(3))
    x, f, c = made.vectors, made.features, made.coefficients
    assert x.shape == (3000, 16) and f.shape == (40, 16) and c.shape == (3000, 40)
    torch.testing.assert_close(f.norm(dim=1), torch.ones(40))
    # Each sample is exactly Σᵢ cᵢ·fᵢ, written out as a loop over the present features.
    for i in range(0, 3000, 250):
        expected = sum((c[i, j] * f[j] for j in c[i].nonzero().flatten().tolist()), torch.zeros(16))
        torch.testing.assert_close(x[i], expected)
    assert (c >= 0).all() and (c <= 1).all()
    present = c > 0
    assert abs(present.float().mean().item() - 0.05) < 0.005  # each feature present with probability 0.05
    magnitudes = c[present]
    assert abs(magnitudes.mean().item() - 0.5) < 0.03  # uniform in (0, 1]
    assert present.sum(dim=1).float().mean().item() == pytest.approx(40 * 0.05, abs=0.15)  # a few per sample


def test_random_directions_are_unit_vectors_and_not_orthogonal_when_more_than_dimensions():
    f = random_directions(64, 32, torch.Generator().manual_seed(0))
    torch.testing.assert_close(f.norm(dim=1), torch.ones(64))
    overlap = (f @ f.T - torch.eye(64)).abs()
    assert overlap.max() > 0.3  # 64 directions in 32 dimensions cannot all be orthogonal
    assert torch.linalg.matrix_rank(f) == 32


def test_strip_shape_is_the_most_nearly_square_rectangle():
    assert strip_shape(32) == (4, 8)
    assert strip_shape(30) == (5, 6)
    assert strip_shape(36) == (6, 6)
    assert strip_shape(31) == (1, 31)  # a prime: one row


def test_superposition_dataset_carries_the_features_as_ground_truth_compared_by_cosine():
    cfg = DataConfig(**SMALL)
    d = data.load(cfg)
    assert d.image_shape == (3, 4) and d.n_inputs == 12
    assert d.train.shape == (1800, 12) and d.test.shape == (200, 12)
    assert d.ground_truth.shape == (24, 12) and d.truth_similarity == "cosine"
    made = superposition_vectors(2000, 24, 12, 0.1, torch.Generator().manual_seed(cfg.data_seed))
    torch.testing.assert_close(d.ground_truth, made.features)
    torch.testing.assert_close(torch.cat([d.train, d.test]), made.vectors)
    assert d.train.min() < 0  # signed: not an image in [0, 1]
    assert torch.equal(data.load(cfg).train, d.train)  # deterministic
    assert not torch.equal(data.load(DataConfig(**SMALL, data_seed=1)).ground_truth, d.ground_truth)
    assert data.load(DataConfig(dataset="bars", n_bars=50)).truth_similarity == "correlation"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_dims": 24}, "n_dims must be in \\[2, n_features\\)"),
        ({"n_dims": 1}, "n_dims must be in"),
        ({"feature_prob": 0.0}, "feature_prob must be in \\(0, 1\\]"),
        ({"feature_prob": 1.5}, "feature_prob must be in"),
        ({"n_vectors": 0}, "n_vectors must be >= 1"),
        ({"n_vectors": 2_000_000}, "n_vectors must be <= 1000000"),
        ({"n_features": 5000, "n_dims": 10}, "n_features must be <= 4096"),
    ],
)
def test_superposition_settings_are_validated(changes, message):
    with pytest.raises(ValueError, match=message):
        DataConfig(**{**SMALL, **changes})


def test_superposition_settings_travel_as_flat_fields_and_flags():
    cfg = RunConfig.from_flat({**SMALL, "feature_prob": "0.2", "n_features": "30"})
    assert (cfg.data.n_features, cfg.data.n_dims, cfg.data.feature_prob) == (30, 12, 0.2)
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


def test_budget_knows_the_size_of_superposition_data_without_making_it():
    cfg = RunConfig.from_flat(SMALL)
    made, train, shape = budget.data_shape(cfg)
    assert (made, train, shape) == (2000, 1800, (3, 4))
    small = budget.estimate(cfg).data
    more_features = budget.estimate(cfg.replace(n_features=240)).data
    assert more_features - small == 2000 * (240 - 24) * budget.SUPERPOSITION_BYTES_PER_COEFFICIENT
    huge = cfg.replace(n_vectors=1_000_000, n_features=4096, n_dims=64)
    with pytest.raises(budget.BudgetError, match="n_vectors ≤"):
        budget.check(huge, 2048)


# ---- scoring a dictionary against the known features -------------------------------------------------------


def _snapshot_with_decoder(decoder_columns: torch.Tensor, **changes):
    """A snapshot of a model on SMALL whose decoder columns are the given [D, H] directions (untrained)."""
    from sae_core.train.trainer import Trainer

    hidden = decoder_columns.shape[1]
    cfg = RunConfig.from_flat({**SMALL, "penalty": PENALTY, "output": "linear", "hidden": hidden, **changes})
    dataset = data.load(cfg.data)
    trainer = Trainer(cfg, dataset, device="cpu")
    state = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    state["decoder.weight"] = decoder_columns.float()
    trainer.model.load_state_dict(state)
    return trainer.snapshot(), dataset


def test_a_decoder_given_the_true_features_scores_n_of_n_and_mmcs_1():
    truth = data.load(DataConfig(**SMALL)).ground_truth  # [24, 12]
    # Shuffled, each column scaled differently, and with spare random units: none of it matters.
    order = torch.randperm(24, generator=torch.Generator().manual_seed(0))
    scales = torch.linspace(0.2, 3.0, 24)[:, None]
    spare = torch.randn(8, 12, generator=torch.Generator().manual_seed(1))
    columns = torch.cat([truth[order] * scales, spare]).T  # [12, 32]
    snap, _ = _snapshot_with_decoder(columns)
    assert snap.truth_similarity == "cosine"
    assert metrics.truth_summary(snap.truth_match, snap.truth_similarity) == {
        "features_found": 24,
        "features_total": 24,
        "mmcs": pytest.approx(1.0, abs=1e-6),
    }
    # truth_units points at the unit holding each feature.
    assert snap.truth_units.tolist() == torch.argsort(order).tolist()
    np.testing.assert_allclose(snap.ground_truth, truth.numpy())


def test_a_random_decoder_scores_low():
    columns = torch.randn(12, 32, generator=torch.Generator().manual_seed(2))
    snap, dataset = _snapshot_with_decoder(columns)
    summary = metrics.truth_summary(snap.truth_match, "cosine")
    assert summary["features_found"] <= 1 and summary["mmcs"] < 0.7
    # The same number written out: each true feature's best cosine with any column, averaged.
    f = dataset.ground_truth.double()
    d = columns.double() / columns.double().norm(dim=0)
    best = [max(float(f[i] @ d[:, j]) for j in range(32)) for i in range(24)]
    assert summary["mmcs"] == pytest.approx(sum(best) / 24, abs=1e-6)  # the weights are float32


def test_cosine_counts_the_sign_and_the_offset_that_correlation_ignores():
    truth = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    flipped = -truth  # a unit drawing −fᵢ does not draw fᵢ
    assert metrics.feature_match(flipped, truth, "cosine").max() <= 0.0
    shifted = truth + 0.5  # an offset: the same picture for correlation, another direction for cosine
    assert metrics.feature_match(shifted, truth, "correlation").min() == pytest.approx(1.0)
    assert metrics.feature_match(shifted, truth, "cosine").max() < 0.9
    with pytest.raises(ValueError, match="similarity must be correlation or cosine"):
        metrics.feature_similarity(truth, truth, "euclid")


def test_metrics_json_of_a_download_has_the_three_superposition_keys_and_bars_has_no_mmcs():
    from sae_core.store.export import snapshot_metrics

    truth = data.load(DataConfig(**SMALL)).ground_truth
    snap, _ = _snapshot_with_decoder(truth.T)
    out = snapshot_metrics(snap)
    assert (out["features_found"], out["features_total"]) == (24, 24)
    assert out["mmcs"] == pytest.approx(1.0)
    bars = _bars_snapshot()
    assert bars.truth_similarity == "correlation"
    assert "mmcs" not in snapshot_metrics(bars) and snapshot_metrics(bars)["features_total"] == 16


def _bars_snapshot():
    from sae_core.train.trainer import Trainer

    cfg = RunConfig.from_flat({"dataset": "bars", "n_bars": 200, "hidden": 4, "steps": 1})
    return Trainer(cfg, data.load(cfg.data), device="cpu").snapshot()


def test_sae_train_writes_features_found_total_and_mmcs_to_metrics_json(tmp_path, capsys):
    import json

    from sae_core.cli.main import main

    flags = ["--dataset", "superposition", "--n-features", "24", "--n-dims", "12", "--n-vectors", "2000"]
    flags += ["--hidden", "48", "--penalty", PENALTY, "--beta", "0.1", "--weight-decay", "0.001"]
    flags += ["--output", "linear", "--batch-size", "256", "--steps", "300", "--device", "cpu"]
    assert main(["train", *flags, "--quiet", "--out", str(tmp_path / "run")]) == 0
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["features_total"] == 24 and 0 <= saved["features_found"] <= 24
    assert 0.0 < saved["mmcs"] <= 1.0
    assert "features_found=" in capsys.readouterr().out
    # The saved numbers are the saved model's: recompute them from its decoder.
    from sae_core.store import export

    model, _, _ = export.load(tmp_path / "run")
    truth = data.load(RunConfig.from_flat(SMALL).data).ground_truth
    match = metrics.feature_match(model.dictionary().detach().T, truth, "cosine")
    assert saved["mmcs"] == pytest.approx(metrics.mmcs(match), abs=1e-6)
    assert saved["features_found"] == metrics.features_found(match)


# ---- what the page shows ---------------------------------------------------------------------------------


def test_pairs_view_draws_each_true_feature_beside_its_best_unit_and_their_cosine():
    from sae_core.figures.activity import metrics_row
    from sae_core.figures.truth import truth_pairs_figure

    truth = data.load(DataConfig(**SMALL)).ground_truth
    noise = 0.3 * torch.randn(24, 12, generator=torch.Generator().manual_seed(4))
    columns = torch.cat([2.0 * truth[:12], truth[12:] + noise[12:]]).T  # half exact, half blurred
    snap, _ = _snapshot_with_decoder(columns)
    fig = truth_pairs_figure(snap)
    true_map, learned_map, cosines = fig.data
    np.testing.assert_allclose(np.asarray(true_map.z), truth.numpy(), atol=1e-6)
    assert snap.truth_units[:12].tolist() == list(range(12))  # the exact ones are their own units
    best = columns.T[torch.as_tensor(snap.truth_units)]
    expected = best / best.norm(dim=1, keepdim=True)
    np.testing.assert_allclose(np.asarray(learned_map.z), expected.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.asarray(cosines.x), snap.truth_match)
    found = metrics.features_found(snap.truth_match)
    assert 12 <= found < 24 and f"{found} of 24 found" in fig.layout.title.text
    assert fig.layout.xaxis.title.text and fig.layout.xaxis2.title.text and fig.layout.xaxis3.title.text
    assert fig.layout.yaxis.title.text == "true feature i"
    rows = {label: value for label, value, _ in metrics_row(snap)}
    assert rows["Features found"] == f"{found} / 24"
    assert rows["MMCS"] == f"{metrics.mmcs(snap.truth_match):.3f}"


def test_pairs_view_is_empty_without_known_directions():
    from sae_core.figures.truth import has_truth_pairs, truth_pairs_figure

    bars = _bars_snapshot()
    assert not has_truth_pairs(bars)
    assert truth_pairs_figure(bars).data == ()


def test_a_sigmoid_output_on_signed_data_is_warned_about_and_spare_dead_units_are_not():
    from dataclasses import replace

    from sae_core.analysis.diagnostics import run_warnings

    truth = data.load(DataConfig(**SMALL)).ground_truth
    snap, _ = _snapshot_with_decoder(truth.T, output="sigmoid")
    snap = replace(snap, step=10)
    (warning,) = run_warnings(snap)
    assert "sigmoid output only reaches (0, 1)" in warning and "linear output" in warning
    # 48 units, 24 true features, 24 dead: the live ones are enough, so no dead-unit warning.
    columns = torch.cat([truth, truth]).T
    snap, _ = _snapshot_with_decoder(columns)
    density = np.r_[np.full(24, 0.1), np.zeros(24)]
    assert run_warnings(replace(snap, step=10, density=density)) == []
    # 20 live units for 24 features: starved, unless they have found nine in ten of them anyway.
    few = replace(snap, step=10, density=np.r_[np.full(20, 0.1), np.zeros(28)])
    assert run_warnings(few) == []  # this decoder holds every true feature
    lost = replace(few, truth_match=np.r_[np.ones(20), np.full(4, 0.5)])  # 20 of 24 found: under 90 %
    assert "dead" in run_warnings(lost)[0]


# ---- the preset --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_superposition_preset_recovers_nine_in_ten_features_with_mmcs_above_0_9():
    """The numbers only, no clock: its time is benchmarks/preset_times.py's (benchmarks/README.md)."""
    from sae_core.train.trainer import Trainer

    preset = presets.get("superposition")
    cfg = preset.config
    assert cfg.data.n_features > cfg.data.n_dims and cfg.model.output == "linear"
    trainer = Trainer(cfg, data.load(cfg.data), device="cpu")
    assert trainer.advance() == "done"
    snap = trainer.snapshot("done")
    summary = metrics.truth_summary(snap.truth_match, snap.truth_similarity)
    assert summary["features_total"] == cfg.data.n_features
    assert summary["features_found"] >= 0.9 * cfg.data.n_features
    assert summary["mmcs"] >= 0.9
    assert f"{summary['features_found']} of the {cfg.data.n_features}" in preset.blurb


# ---- the Train page, driven as a user would ----------------------------------------------------------------


@pytest.fixture
def train_page(monkeypatch):
    from tests.apptest_helpers import open_train_page, pin_navigation_mode, stop_jobs

    pin_navigation_mode(monkeypatch)
    made = []
    yield lambda query: open_train_page(query, 60, made)
    for at in made:
        stop_jobs(at)


@pytest.mark.slow
def test_train_page_on_the_preset_shows_the_count_mmcs_and_the_pairs_view_while_training(train_page):
    from tests.apptest_helpers import poll

    at = train_page({"preset": "superposition", "steps": "100000"})
    assert at.selectbox(key="dataset").value == "superposition"
    assert at.selectbox(key="output").value == "linear"
    at.button(key="train").click().run()
    job = at.session_state["job"]
    poll(at, lambda: job.step_count > 0, "the first steps", 60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    labels = {m.label: m.value for m in at.metric}
    assert labels["Features found"].endswith("/ 64") and "MMCS" in labels
    charts = {c.proto.id.split("-", 2)[-1] for c in at.get("plotly_chart")}
    assert "truth_chart" in charts  # the first tab once training has started
    job.pause()
    # The output is a control of its own: switched to sigmoid, the page builds that model and, once it has
    # trained a step, says a sigmoid cannot draw these signed vectors.
    at.selectbox(key="output").set_value("sigmoid").run()
    job = at.session_state["job"]
    assert job.config.model.output == "sigmoid"
    at.button(key="step").click().run()
    poll(at, lambda: job.step_count > 0, "one step", 60)
    at.run()
    assert any("sigmoid output only reaches" in w.value for w in at.warning)


# ---- Explore: a sweep on superposition, L0 against MMCS ----------------------------------------------------


def test_a_sweep_on_superposition_scores_each_cell_as_its_own_model_would():
    from sae_core.figures import sweep as figures_sweep
    from sae_core.sweep.block import model_from_state
    from sae_core.sweep.spec import SweepSpec
    from sae_core.sweep.trainer import SweepTrainer

    base = RunConfig.from_flat(
        {**SMALL, "penalty": PENALTY, "output": "linear", "hidden": 32, "weight_decay": 0.001, "lr": 0.01}
    ).replace(batch_size=256, steps=150, device="cpu")
    spec = SweepSpec(base, (0.05,), (0.01, 0.3))
    dataset = data.load(base.data)
    sweeper = SweepTrainer(spec, dataset, "cpu")
    sweeper.advance()
    snap = sweeper.snapshot()
    assert snap.has("mmcs") and snap.has("features_found")
    for cell in snap.cells:
        model = model_from_state(cell.config, sweeper.cell_state(cell.index), dataset.image_shape, 150, 150)
        match = metrics.feature_match(model.dictionary().detach().T, dataset.ground_truth, "cosine")
        assert cell.metrics["mmcs"] == pytest.approx(metrics.mmcs(match), abs=1e-6)
        assert cell.metrics["features_found"] == metrics.features_found(match)
        assert cell.metrics["features_total"] == 24
    rows = snap.rows()
    assert {"features_found", "features_total", "mmcs"} <= set(rows[0])
    heat = figures_sweep.heatmap_figure(snap, "mmcs")
    assert heat.data[0].colorscale and figures_sweep.metric_label("mmcs").startswith("MMCS")
    trade = figures_sweep.tradeoff_figure(snap, "mmcs", x_metric="l0")
    assert trade.layout.xaxis.title.text.startswith("L0") and trade.layout.yaxis.title.text.startswith("MMCS")
    points = [t for t in trade.data if t.mode == "markers"]
    assert sorted(float(y) for t in points for y in t.y) == sorted(c.metrics["mmcs"] for c in snap.cells)
    # More MMCS is better: with two cells, the front holds whichever are not beaten on both L0 and MMCS.
    l0 = np.array([c.metrics["l0"] for c in snap.cells])
    score = np.array([c.metrics["mmcs"] for c in snap.cells])
    expected = figures_sweep.pareto_mask(l0, -score).sum()
    assert f"{expected} of 2 cells on the Pareto front" in trade.layout.title.text


def test_a_sweep_without_known_features_offers_no_mmcs():
    from sae_core.sweep.spec import SweepSpec
    from sae_core.sweep.trainer import SweepTrainer

    base = RunConfig.from_flat({"dataset": "digits", "max_samples": 200, "hidden": 4, "steps": 5})
    sweeper = SweepTrainer(
        SweepSpec(base.replace(device="cpu"), (0.05,), (3.0,)), data.load(base.data), "cpu"
    )
    sweeper.advance()
    snap = sweeper.snapshot()
    assert not snap.has("mmcs") and not snap.has("features_found")
    assert np.isnan(snap.grid("mmcs")).all()
    assert "mmcs" not in snap.rows()[0]


@pytest.mark.slow
def test_explore_sweeps_the_superposition_preset_and_plots_mmcs_against_l0(monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.apptest_helpers import APP, pin_navigation_mode, poll

    pin_navigation_mode(monkeypatch)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params.update(
        {"preset": "superposition", "n_features": "24", "n_dims": "12", "n_vectors": "2000"}
    )
    at.run()
    at.switch_page("pages/explore.py").run()
    try:
        assert at.selectbox(key="sweep_dataset").value == "superposition"  # the Train page's run
        at.text_input(key="sweep_rhos").input("0.05")
        at.text_input(key="sweep_betas").input("0.01, 0.1")
        at.number_input(key="sweep_steps").set_value(150)
        at.number_input(key="sweep_hidden").set_value(32)
        at.number_input(key="sweep_batch_size").set_value(256)
        at.button(key="sweep_train").click().run()
        job = at.session_state["sweep_job"]
        poll(at, lambda: not job.active, "the sweep to finish", 120)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert {"MMCS", "Features found"} <= set(at.radio(key="sweep_metric").options)
        assert "MMCS against L0" in at.radio(key="sweep_tradeoff_y").options
        at.radio(key="sweep_metric").set_value("mmcs").run()
        at.radio(key="sweep_tradeoff_y").set_value("mmcs").run()
        assert not at.exception, [e.value for e in at.exception]
        labels = [m.label for m in at.metric]
        assert "MMCS" in labels and "Features found" in labels  # the picked cell's numbers
    finally:
        for key in ("sweep_job", "job", "previous_job"):
            job = at.session_state[key] if key in at.session_state else None
            if job is not None:
                job.stop()
