"""The Explore page's figures: numbers in the right cells, thumbnails in the right places, click targets
that name their cells, and a Pareto front checked against its definition."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sae_core.analysis.sweep_probe import probe_grid
from sae_core.config.run import RunConfig
from sae_core.figures import sweep as figures_sweep
from sae_core.sweep.trainer import SweepSpec, SweepTrainer

SPEC = SweepSpec(
    RunConfig().replace(hidden=9, batch_size=64, steps=40, device="cpu"),
    rhos=(0.05, 0.1, 0.2),
    betas=(0.0, 3.0),
    axis="seed",
    axis_values=(0, 1),
)


@pytest.fixture(scope="module")
def snap(tiny_digits):
    sweeper = SweepTrainer(SPEC, tiny_digits, "cpu")
    sweeper.advance()
    return sweeper.snapshot()


def test_the_heatmap_shows_each_cells_number_at_its_rho_and_beta(snap):
    fig = figures_sweep.heatmap_figure(snap, "l0", layer=1)
    z = np.asarray(fig.data[0].z)
    for c in snap.cells:
        a, r, b = SPEC.coords(c.index)
        if a == 1:
            assert z[r, b] == pytest.approx(c.metrics["l0"])
    assert list(fig.data[0].y) == ["0.05", "0.1", "0.2"] and list(fig.data[0].x) == ["0", "3"]
    assert "seed = 1" in fig.layout.title.text
    assert fig.layout.xaxis.title.text.startswith("β") and fig.layout.yaxis.title.text.startswith("ρ")


def test_click_targets_carry_their_cells_index_and_sit_on_their_cell(snap):
    fig = figures_sweep.heatmap_figure(snap, "recon_error", layer=1)
    targets = fig.data[1]
    for (x, y), (cell,) in zip(zip(targets.x, targets.y, strict=True), targets.customdata, strict=True):
        a, r, b = SPEC.coords(cell)
        assert a == 1 and x == f"{SPEC.betas[b]:g}" and y == f"{SPEC.rhos[r]:g}"
        assert figures_sweep.selected_cell({"selection": {"points": [{"customdata": {"0": cell}}]}}) == cell
    assert len(targets.x) == 6 and targets.hoverinfo != "skip"  # plotly selects only a hovered point


def test_each_cells_thumbnail_is_drawn_where_its_cell_is(snap):
    fig = figures_sweep.thumbnails_figure(snap, layer=0)
    z = np.asarray(fig.data[0].z, dtype=np.float32)
    targets = fig.data[1]
    th, tw = snap.cells[0].thumbnail.shape
    for x, y, (cell,) in zip(targets.x, targets.y, targets.customdata, strict=True):
        top, left = round(y - (th - 1) / 2), round(x - (tw - 1) / 2)
        np.testing.assert_array_equal(z[top : top + th, left : left + tw], snap.cell(cell).thumbnail)


def test_the_pareto_front_is_exactly_the_points_nobody_beats_on_both():
    rng = np.random.default_rng(0)
    x, y = rng.random(40), rng.random(40)
    x[5], y[5] = x[6], y[6]  # a tie: neither beats the other
    y[7] = np.nan  # no number: never on the front
    front = figures_sweep.pareto_mask(x, y)
    for i in range(40):
        beaten = any(
            x[j] <= x[i] and y[j] <= y[i] and (x[j] < x[i] or y[j] < y[i]) for j in range(40) if j != 7
        )
        assert front[i] == (not beaten and i != 7), i
    assert front[5] == front[6]


def test_the_tradeoff_draws_every_cell_once_and_the_front_through_the_best(snap):
    fig = figures_sweep.tradeoff_figure(snap, "l0", selected=3)
    line, *points = fig.data
    assert sum(len(p.x) for p in points) == SPEC.n_cells
    assert [p.name for p in points] == ["0", "3"]
    x = np.array([c.metrics["recon_error"] for c in snap.cells])
    y = np.array([c.metrics["l0"] for c in snap.cells])
    expected = figures_sweep.pareto_mask(x, y)
    assert sorted(line.x) == pytest.approx(sorted(x[expected]))
    widths = list(itertools.chain.from_iterable(p.marker.line.width for p in points))
    assert widths.count(3) == 1  # the selected cell is outlined


def test_probe_numbers_fill_the_grid_where_they_exist(snap):
    grid = probe_grid(SPEC, {0: 0.9, 7: 0.8})
    assert grid[SPEC.coords(0)] == 0.9 and grid[SPEC.coords(7)] == 0.8
    assert np.isnan(grid).sum() == SPEC.n_cells - 2
    fig = figures_sweep.heatmap_figure(snap, "probe_accuracy", layer=0, values=grid)
    assert "90.0%" in [t for row in fig.data[0].text for t in row]
