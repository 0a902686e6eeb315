"""The Explore page driven through AppTest: a 2 × 2 sweep trains in the background, its heatmaps and
numbers are the cells', a bad grid gets a message, the probe fills its heatmap, and opening a cell makes
it the Train page's run with the cell's weights and step."""

from __future__ import annotations

import base64
import json
import math
import threading

import numpy as np
import pytest
import torch
from apptest_helpers import APP, pin_navigation_mode, poll
from streamlit.testing.v1 import AppTest

from sae_core.images import normalize_filters
from sae_core.sweep.trainer import SweepTrainer

TIMEOUT_S = 60
STEPS = 150


@pytest.fixture
def explore(monkeypatch):
    pin_navigation_mode(monkeypatch)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
    at.run()
    at.switch_page("pages/explore.py").run()
    assert not at.exception, [e.value for e in at.exception]
    yield at
    for key in ("sweep_job", "job", "previous_job"):
        job = at.session_state[key] if key in at.session_state else None
        if job is not None:
            job.stop()


def set_grid(at: AppTest, rhos: str, betas: str, steps: int = STEPS, hidden: int = 9) -> None:
    at.text_input(key="sweep_rhos").input(rhos)
    at.text_input(key="sweep_betas").input(betas)
    at.selectbox(key="sweep_dataset").select("digits")
    at.number_input(key="sweep_steps").set_value(steps)
    at.number_input(key="sweep_hidden").set_value(hidden)
    at.number_input(key="sweep_batch_size").set_value(64)


def train_to_the_end(at: AppTest):
    at.button(key="sweep_train").click().run()
    assert not at.exception, [e.value for e in at.exception]
    job = at.session_state["sweep_job"]
    poll(at, lambda: not job.active, "the sweep to finish", 120)
    at.run()  # the page as it is once the sweep has ended (the last poll may have drawn it training)
    return job


def test_an_empty_page_says_what_to_do_and_the_page_is_in_the_navigation(explore):
    assert any("Train sweep" in i.value for i in explore.info)
    assert explore.text_input(key="sweep_rhos").value  # a grid is proposed


def test_a_two_by_two_sweep_trains_and_its_heatmap_shows_each_cells_numbers(explore):
    set_grid(explore, "0.05, 0.2", "0, 3")
    job = train_to_the_end(explore)
    snap = job.latest()
    assert snap.status == "done" and snap.step == STEPS and len(snap.cells) == 4
    assert [(c.rho, c.beta) for c in snap.cells] == [(0.05, 0.0), (0.05, 3.0), (0.2, 0.0), (0.2, 3.0)]
    # The same grid stepped by hand (the sweep is deterministic): the page trained that grid, no other.
    by_hand = SweepTrainer(job.spec, job.trainer.sweeper.dataset, "cpu")
    by_hand.advance()
    for c, h in zip(snap.cells, by_hand.snapshot().cells, strict=True):
        assert c.metrics["recon_error"] == pytest.approx(h.metrics["recon_error"], rel=1e-5)
    # β = 3 pulls the mean activation towards ρ; β = 0 leaves it where reconstruction puts it.
    for rho in (0.05, 0.2):
        free, held = (snap.cell(i) for i in range(4) if snap.cell(i).rho == rho)
        assert abs(held.metrics["mean_activation"] - rho) < abs(free.metrics["mean_activation"] - rho)
    progress = explore.get("progress")[0].proto.text
    assert "step 150 / 150" in progress and "4 cells" in progress
    charts = explore.get("plotly_chart")
    assert len(charts) >= 3  # heatmap, filters, trade-off (each double-buffered)
    assert not explore.exception


def test_a_bad_grid_is_a_message_naming_the_field_and_nothing_is_built(explore):
    set_grid(explore, "0.05, 1.5", "0, 3")
    explore.button(key="sweep_train").click().run()
    errors = [e.value for e in explore.error]
    assert errors and "rho" in errors[0] and "1.5" in errors[0], errors
    assert explore.session_state["sweep_job"] is None if "sweep_job" in explore.session_state else True
    set_grid(explore, "0.05", "zero")
    explore.button(key="sweep_train").click().run()
    assert any("β values" in e.value for e in explore.error), [e.value for e in explore.error]
    assert not explore.exception


def test_the_probe_fills_a_heatmap_of_accuracy_and_beats_chance(explore):
    set_grid(explore, "0.05, 0.2", "0, 3", steps=300, hidden=16)
    train_to_the_end(explore)
    explore.button(key="sweep_probe_button").click().run()
    assert not explore.exception, [e.value for e in explore.exception]
    found = explore.session_state["sweep_probe"]
    assert set(found["cells"]) == {0, 1, 2, 3}
    assert all(0.5 < acc <= 1.0 for acc in found["cells"].values()), found  # ten digit classes: chance 0.1
    assert 0.5 < found["pixels"] <= 1.0
    assert explore.radio(key="sweep_metric").value == "probe_accuracy"
    assert any("Probe accuracy" in c.value and "raw pixels" in c.value for c in explore.caption)


def test_opening_a_cell_makes_it_the_train_pages_run_with_its_weights_and_step(explore):
    set_grid(explore, "0.05, 0.2", "0, 3")
    job = train_to_the_end(explore)
    explore.selectbox(key="sweep_cell_pick").select(3).run()
    explore.button(key="sweep_open").click().run()
    assert not explore.exception, [e.value for e in explore.exception]
    run = explore.session_state["job"]
    state, cfg, step = job.cell_state(3)
    assert run.step_count == step == STEPS
    assert run.config.model.rho == 0.2 and run.config.model.beta == 3.0
    for name, value in run.trainer.model.state_dict().items():
        torch.testing.assert_close(value.cpu(), state[name])
    assert math.isclose(explore.select_slider(key="rho").value, 0.2)  # the Train page's widgets follow
    assert any("Opened the sweep's cell" in i.value for i in explore.info)


def charts(at: AppTest, key: str) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart") if key in (c.proto.id or "")]


def packed(z: dict) -> np.ndarray:
    """A 2-D array as plotly's JSON packs it: base64 {"dtype", "bdata", "shape": "H, W"}."""
    shape = [int(n) for n in str(z["shape"]).split(",")]
    return np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(shape).astype(np.float64)


def test_the_large_switch_draws_the_picked_cells_most_active_filters_numbered(explore):
    set_grid(explore, "0.05, 0.2", "0, 3")
    job = train_to_the_end(explore)
    explore.selectbox(key="sweep_cell_pick").select(2).run()
    assert charts(explore, "sweep_thumbnails") and not charts(explore, "sweep_large_filters")
    explore.toggle(key="sweep_large").set_value(True).run()
    assert not explore.exception, [e.value for e in explore.exception]
    assert not charts(explore, "sweep_thumbnails")  # the large tiles take the thumbnails' place
    (spec,) = {json.dumps(s) for s in charts(explore, "sweep_large_filters")}  # both buffers: one figure
    layout, (tiles,) = json.loads(spec)["layout"], json.loads(spec)["data"]
    assert layout["title"]["text"] == "Cell ρ 0.2, β 0: the 9 most active of 9 units"
    # Cell 2's units by its mean activation on the probe, most active first, each tile numbered.
    units = np.argsort(-job.latest().cell(2).rho_hat, kind="stable")
    assert [a["text"] for a in layout["annotations"]] == [f"<b>{u}</b>" for u in units]
    # The first tile is that unit's filter from the cell's own weights (normalised as every filter view).
    state, _, _ = job.cell_state(2)
    first = normalize_filters(state["encoder.weight"].numpy())[units[0]]
    z = packed(tiles["z"])
    assert z.shape == (3 * 9 + 1, 3 * 9 + 1)  # 3 × 3 tiles of 8×8, 1-pixel gaps
    np.testing.assert_allclose(z[1:9, 1:9], (first / np.abs(first).max()).reshape(8, 8), atol=1e-5)
    explore.toggle(key="sweep_large").set_value(False).run()
    assert charts(explore, "sweep_thumbnails") and not charts(explore, "sweep_large_filters")


@pytest.mark.parametrize(
    ("variant", "penalty", "axis", "values", "cells"),
    [
        ("vae", "kl", "latent", "2, 3", 2),  # no ρ or β: the grid is one cell per latent size
        ("conv", "jumprelu", "kernels", "2, 3", 4),  # β × kernels, with JumpReLU's learned thresholds
    ],
)
def test_every_variant_sweeps_from_the_page_and_a_cell_opens_on_train(
    explore, variant, penalty, axis, values, cells
):
    set_grid(explore, "0.05, 0.2", "0.01, 0.1", steps=40, hidden=6)
    explore.selectbox(key="sweep_variant").select(variant)
    explore.selectbox(key="sweep_penalty").select(penalty)
    explore.selectbox(key="sweep_axis").select(axis)
    explore.text_input(key="sweep_axis_values").input(values)
    job = train_to_the_end(explore)
    snap = job.latest()
    assert snap.status == "done" and len(snap.cells) == cells, snap.status
    assert {c.config.model.variant for c in snap.cells} == {variant}
    assert sorted({getattr(c.config.model, axis) for c in snap.cells}) == [int(v) for v in values.split(",")]
    assert all(math.isfinite(c.metrics["recon_error"]) for c in snap.cells)
    last = len(snap.cells) - 1
    explore.selectbox(key="sweep_cell_pick").select(last).run()
    explore.button(key="sweep_open").click().run()
    assert not explore.exception, [e.value for e in explore.exception]
    run = explore.session_state["job"]
    state, cfg, _ = job.cell_state(last)
    assert run.config.model.variant == variant and getattr(run.config.model, axis) == getattr(cfg.model, axis)
    for name, value in run.trainer.model.state_dict().items():
        torch.testing.assert_close(value.cpu(), state[name])


def test_without_a_ray_cluster_the_page_says_how_to_get_one(explore):
    captions = " ".join(c.value for c in explore.caption)
    assert "Ray cluster: not in use" in captions and ("RAY_ADDRESS" in captions or "pip install" in captions)
    assert not explore.get("radio") or all(r.key != "sweep_backend" for r in explore.radio)


def test_with_a_reachable_cluster_the_grid_can_train_there(monkeypatch):
    """Ray is offered when ray_status says a cluster answers; the "ray" backend is replaced by the local
    one here (tests/test_sweep_ray.py runs the real one on a local Ray)."""
    from pages import explore_settings
    from sae_core.serve.sweep_job import RemoteSweepJob
    from sae_core.sweep import ray_backend as sweep_ray
    from sae_core.sweep import run as sweep_run

    monkeypatch.setattr(sweep_ray, "ray_status", lambda: (True, "Ray cluster reachable at RAY_ADDRESS=auto"))
    back = threading.Event()  # the cluster answers once the page has been drawn with nothing back yet

    def slow_cluster(*args, **kwargs):
        assert back.wait(60), "the test never let the cluster answer"
        return sweep_run.run_local(*args, **kwargs)

    monkeypatch.setitem(sweep_run.BACKENDS, "ray", slow_cluster)
    explore_settings.ray_status.clear()
    pin_navigation_mode(monkeypatch)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
    at.run()
    at.switch_page("pages/explore.py").run()
    try:
        at.radio(key="sweep_backend").set_value("ray")
        set_grid(at, "0.05, 0.2", "0, 3")
        at.button(key="sweep_train").click().run()
        job = at.session_state["sweep_job"]
        assert isinstance(job, RemoteSweepJob)
        at.run()  # no block is back: the page says so (it used to fail choosing a number to colour by)
        assert not at.exception, [e.value for e in at.exception]
        assert any("first block of cells" in c.value for c in at.caption)
        back.set()
        poll(at, lambda: not job.active, "the sweep to come back", 120)
        assert job.status == "done" and len(job.latest().cells) == 4
        assert at.button(key="sweep_pause").disabled and at.button(key="sweep_resume").disabled
        assert any("ray backend" in c.value for c in at.caption)
        assert not at.exception, [e.value for e in at.exception]
    finally:
        explore_settings.ray_status.clear()
        if "sweep_job" in at.session_state and at.session_state["sweep_job"] is not None:
            at.session_state["sweep_job"].stop()
