"""The batched sweep: the same weights as one Trainer per cell, its grouping, metrics, CLI and errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from sae_core.cli.main import main
from sae_core.config.run import RunConfig
from sae_core.data import datasets as data
from sae_core.models.registry import VARIANTS
from sae_core.penalties.registry import PENALTY_NAMES
from sae_core.store import export
from sae_core.sweep import traced
from sae_core.sweep.block import model_from_state
from sae_core.sweep.trainer import SweepSpec, SweepTrainer
from sae_core.train import budget
from sae_core.train.trainer import PROBE_SIZE, Trainer

TINY = {"hidden": 6, "batch_size": 64, "steps": 50, "device": "cpu"}

# (name, base changes, rhos, betas, axis, axis values): every variant, penalty and optimizer the sweep takes.
CASES = [
    ("kl-adam", {}, (0.05, 0.2), (0.0, 3.0), None, ()),
    ("kl-sgd", {"optimizer": "sgd", "lr": 0.1}, (0.05, 0.2), (1.0, 3.0), None, ()),
    ("l1-adam-linear-output", {"penalty": "l1", "output": "linear"}, (0.05,), (0.0, 0.01), None, ()),
    ("topk-adam-seeds", {"penalty": "topk", "k": 3}, (0.05,), (3.0,), "seed", (0, 1, 2)),
    (
        "none-sgd-weight-decay",
        {"penalty": "none", "optimizer": "sgd"},
        (0.05,),
        (3.0,),
        "weight_decay",
        (0, 0.01),
    ),
    ("kl-adam-hidden", {}, (0.1,), (0.5, 3.0), "hidden", (4, 6)),
    ("kl-full-batch-epochs", {"batch_size": 0, "epochs": 30.0}, (0.1,), (0.0, 3.0), None, ()),
    ("denoising-gaussian-seeds", {"variant": "denoising"}, (0.1,), (3.0,), "seed", (3, 5)),
    ("denoising-mask", {"variant": "denoising", "corruption": "mask"}, (0.05, 0.2), (3.0,), None, ()),
    (
        "denoising-salt-pepper-l1-sgd",
        {"variant": "denoising", "corruption": "salt_pepper", "penalty": "l1", "optimizer": "sgd", "lr": 0.1},
        (0.05,),
        (0.0, 0.01),
        None,
        (),
    ),
    ("ksparse-schedule-seeds", {"variant": "ksparse", "k": 2, "k_start": 5}, (0.05,), (3.0,), "seed", (0, 1)),
    (
        "ksparse-tied-alpha",
        {"variant": "ksparse", "k": 2, "tied": True, "alpha": 2.0},
        (0.05,),
        (3.0,),
        "weight_decay",
        (0, 0.01),
    ),
    ("ksparse-k-axis", {"variant": "ksparse", "k": 2}, (0.05,), (3.0,), "k", (2, 4)),
    ("jumprelu-sgd", {"penalty": "jumprelu", "optimizer": "sgd", "lr": 0.1}, (0.05,), (0.01, 0.1), None, ()),
    (
        "jumprelu-denoising-seeds",
        {"penalty": "jumprelu", "variant": "denoising"},
        (0.05,),
        (0.05,),
        "seed",
        (0, 1),
    ),
    ("deep-kl", {"variant": "deep", "layers": (10,), "lr": 0.01}, (0.05, 0.2), (0.0, 3.0), None, ()),
    (
        "deep-topk-hidden",
        {"variant": "deep", "penalty": "topk", "layers": (10,), "k": 2, "lr": 0.01},
        (0.05,),
        (3.0,),
        "hidden",
        (4, 6),
    ),
    (
        "conv-l1-kernels",
        {"variant": "conv", "penalty": "l1", "kernels": 3},
        (0.05,),
        (0.0, 0.01),
        "kernels",
        (2, 3),
    ),
    ("vae-latent-seeds", {"variant": "vae", "lr": 0.01}, (0.05,), (3.0,), "latent", (2, 3)),
    (
        "vae-seeds-full-batch",
        {"variant": "vae", "lr": 0.01, "batch_size": 0},
        (0.05,),
        (3.0,),
        "seed",
        (0, 1),
    ),
    ("contractive-kl", {"variant": "contractive", "contraction": 0.5}, (0.05, 0.2), (0.0, 3.0), None, ()),
]
TOLERANCE = {"deep-kl": 5e-5, "deep-topk-hidden": 5e-5}
"""Weights agree to 1e-5 (float rounding of a batched matmul against one matmul); the deep model's four
layers compound it a little more."""


@pytest.fixture(autouse=True)
def trace_short_runs(monkeypatch):
    """These runs are far shorter than traced.MIN_STEPS: trace them anyway, so that every check here goes
    through the traced step (tests/test_sweep_traced.py holds it against the eager step)."""
    monkeypatch.setattr(traced, "MIN_STEPS", 0)
    monkeypatch.setattr(traced, "MIN_STEPS_COLD", 0)


def spec_of(changes, rhos, betas, axis=None, values=()) -> SweepSpec:
    return SweepSpec(RunConfig().replace(**{**TINY, **changes}), rhos, betas, axis, values)


@pytest.mark.parametrize(
    ("name", "changes", "rhos", "betas", "axis", "values"), CASES, ids=[c[0] for c in CASES]
)
def test_every_cell_ends_with_the_weights_and_numbers_of_its_own_trainer(
    tiny_digits, name, changes, rhos, betas, axis, values
):
    spec = spec_of(changes, rhos, betas, axis, values)
    sweeper = SweepTrainer(spec, tiny_digits)
    assert sweeper.advance() == "done"
    snap = sweeper.snapshot()
    for i, cfg in enumerate(spec.cells()):
        trainer = Trainer(cfg, tiny_digits, device="cpu")
        trainer.advance()
        expected = trainer.model.state_dict()
        got = sweeper.cell_state(i)
        assert set(got) == set(expected)
        for key, value in expected.items():
            atol = TOLERANCE.get(name, 1e-5)
            torch.testing.assert_close(got[key], value, atol=atol, rtol=0, msg=f"cell {i} {key}")
        reference = trainer.snapshot()
        cell = snap.cells[i]
        assert cell.losses == pytest.approx(reference.losses, abs=1e-5, rel=1e-5)
        for key, value in reference.metrics.items():
            assert cell.metrics[key] == pytest.approx(value, abs=atol, rel=1e-5), (i, key)
        np.testing.assert_array_equal(cell.history_steps, reference.history_steps)
        for term, values_ in reference.history.items():
            np.testing.assert_allclose(cell.history[term], values_, atol=1e-5)


def test_cells_are_grouped_into_one_block_per_hidden_size():
    spec = spec_of({}, (0.05, 0.1), (1.0, 3.0), "hidden", (4, 6, 5))
    assert [spec.cells()[i].model.hidden for i in range(spec.n_cells)] == [4] * 4 + [6] * 4 + [5] * 4
    assert spec.blocks() == ((0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11))
    same_shape = spec_of({}, (0.05, 0.1), (1.0,), "seed", (1, 2))
    assert same_shape.blocks() == ((0, 1, 2, 3),)


def test_cell_order_puts_beta_fastest_and_the_grid_follows_it(tiny_digits):
    spec = spec_of({"steps": 5}, (0.05, 0.1, 0.2), (0.0, 3.0), "weight_decay", (0.0, 1e-3))
    for i in range(spec.n_cells):
        a, r, b = spec.coords(i)
        assert i == (a * 3 + r) * 2 + b == spec.index(r, b, a)
        cfg = spec.cells()[i]
        assert (cfg.model.rho, cfg.model.beta, cfg.model.weight_decay) == (
            spec.rhos[r],
            spec.betas[b],
            spec.axis_values[a],
        )
    sweeper = SweepTrainer(spec, tiny_digits)
    sweeper.advance()
    snap = sweeper.snapshot()
    grid = snap.grid("fve")
    assert grid.shape == (2, 3, 2)
    for cell in snap.cells:
        assert grid[spec.coords(cell.index)] == cell.metrics["fve"]
    assert snap.grid("loss")[0, 0, 0] == snap.cells[0].losses["total"]


def test_metrics_match_formulas_written_out_on_the_cell_model(tiny_digits):
    spec = spec_of({"steps": 80, "hidden": 8}, (0.05, 0.3), (3.0,))
    sweeper = SweepTrainer(spec, tiny_digits)
    sweeper.advance()
    snap = sweeper.snapshot()
    x = tiny_digits.train  # 300 samples < PROBE_SIZE: the probe is all of them
    assert len(x) < PROBE_SIZE
    shape = tiny_digits.image_shape
    for i in range(spec.n_cells):
        cfg = spec.cells()[i]  # as the Explore page opens a cell
        model = model_from_state(cfg, sweeper.cell_state(i), shape, sweeper.step_count, sweeper.total_steps)
        with torch.no_grad():
            h = torch.sigmoid(x @ model.encoder.weight.T + model.encoder.bias)
            recon = torch.sigmoid(h @ model.decoder.weight.T + model.decoder.bias)
        err = ((recon - x) ** 2).sum()
        fve = 1 - err / ((x - x.mean(0)) ** 2).sum()
        active = h > 0.1  # sigmoid units: active above 0.1
        m = snap.cells[i].metrics
        assert m["fve"] == pytest.approx(float(fve), abs=1e-5)
        assert m["recon_error"] == pytest.approx(float(0.5 * err / len(x)), abs=1e-5)
        assert m["l0"] == pytest.approx(float(active.sum(1).float().mean()), abs=1e-6)
        assert m["dead_units"] == int((~active.any(0)).sum())
        assert m["mean_activation"] == pytest.approx(float(h.mean()), abs=1e-6)
        np.testing.assert_allclose(snap.cells[i].rho_hat, h.mean(0).numpy(), atol=1e-6)
        assert snap.cells[i].thumbnail.shape == (3 * 9 + 1, 3 * 9 + 1)  # 8 filters: 3 × 3 tiles of 8×8 + gaps


def test_a_diverging_cell_is_restored_and_frozen_while_the_others_go_on(tiny_digits):
    spec = spec_of({"steps": 30}, (0.05,), (3.0, 1e39))  # β = 1e39 overflows float32: the KL term is inf
    sweeper = SweepTrainer(spec, tiny_digits)
    sweeper.advance(max_steps=10)
    before = sweeper.cell_state(1)
    assert sweeper.advance() == "done"
    snap = sweeper.snapshot()
    assert snap.cells[1].status == "diverged" and "sparsity term" in snap.cells[1].message
    assert snap.cells[0].status == "done"
    assert [g is not None for g in sweeper.blocks[0].traced.graphs.values()] == [True]  # the traced step
    torch.testing.assert_close(sweeper.cell_state(1), before)  # frozen where it was restored
    trainer = Trainer(spec.cells()[0], tiny_digits, device="cpu")
    trainer.advance()
    torch.testing.assert_close(sweeper.cell_state(0), trainer.model.state_dict(), atol=1e-5, rtol=0)


def test_advance_stops_at_max_steps_and_leaves_the_global_rng_alone(tiny_digits):
    state = torch.get_rng_state()
    sweeper = SweepTrainer(spec_of({"steps": 20, "variant": "denoising"}, (0.05,), (1.0, 3.0)), tiny_digits)
    assert sweeper.advance(max_steps=7) == "running" and sweeper.step_count == 7
    first = sweeper.snapshot()
    thumb = first.cells[0].thumbnail.copy()
    assert (
        sweeper.advance() == "done" and sweeper.finished and sweeper.step_count == sweeper.total_steps == 20
    )
    np.testing.assert_array_equal(first.cells[0].thumbnail, thumb)  # a snapshot keeps its own copies
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize(
    ("changes", "kwargs", "message"),
    [
        ({}, {"rhos": (0.05, 1.0)}, "rhos: cell rho=1.0, beta=3.0: rho must be in (0, 1)"),
        ({}, {"rhos": (0.05, 0.05)}, "rhos holds a value twice"),
        ({}, {"betas": ()}, "betas must hold at least one value"),
        ({}, {"betas": tuple(range(13))}, "betas may hold at most 12 values"),
        ({}, {"axis": "hidden", "axis_values": (4, 5.5)}, "axis_values must hold whole numbers"),
        ({}, {"axis": "lr", "axis_values": (1,)}, "axis must be one of hidden, weight_decay, seed"),
        ({}, {"axis_values": (4,)}, "axis_values needs an axis"),
        ({"optimizer": "lbfgs"}, {}, "the sweep supports the optimizers adam, sgd"),
        (
            {"variant": "conv"},
            {"axis": "hidden", "axis_values": (4, 6)},
            "axis: hidden does not apply to the conv",
        ),
        ({}, {"axis": "latent", "axis_values": (2, 3)}, "axis: latent does not apply to the sparse variant"),
        (
            {"variant": "vae"},
            {"axis": "k", "axis_values": (2, 3)},
            "its axes are hidden, weight_decay, seed, latent",
        ),
        ({"variant": "vae"}, {"betas": (1.0, 3.0)}, "betas: the vae variant does not use β"),
        ({"penalty": "l1"}, {"rhos": (0.05, 0.1)}, "rhos: the l1 penalty does not use ρ"),
        (
            {"variant": "ksparse", "k": 2},
            {"rhos": (0.05,), "betas": (1.0, 3.0)},
            "betas: the ksparse variant",
        ),
        ({"penalty": "none"}, {"rhos": (0.05, 0.1)}, "rhos: the none penalty does not use ρ"),
        ({"penalty": "none"}, {"betas": (1.0, 3.0)}, "betas: the none penalty does not use β"),
        ({"penalty": "topk", "k": 5}, {"axis": "hidden", "axis_values": (4, 8)}, "axis_values: cell"),
    ],
)
def test_bad_specs_raise_a_value_error_naming_the_field(changes, kwargs, message):
    args = {"rhos": (0.05,), "betas": (3.0,), **kwargs}
    with pytest.raises(ValueError) as err:
        SweepSpec(RunConfig().replace(**{**TINY, **changes}), **args)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_every_registered_variant_and_penalty_is_checked_against_the_trainer():
    configs = [RunConfig().replace(**{**TINY, **changes}).model for _, changes, *_ in CASES]
    assert {m.variant for m in configs} == set(VARIANTS)
    assert {m.effective_penalty for m in configs} == set(PENALTY_NAMES)


def test_a_sweep_over_the_memory_budget_says_how_many_cells_fit():
    base = RunConfig().replace(hidden=2000, steps=10)
    with pytest.raises(budget.BudgetError, match=r"at most \d+ cells of the largest size fit"):
        SweepSpec(base, (0.01, 0.05, 0.1), (1.0, 3.0), "seed", (0, 1, 2), memory_mb=20)
    SweepSpec(base, (0.05,), (3.0,), memory_mb=20)  # one cell fits


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    flags = ["--rho", "0.05,0.2", "--beta", "0,3", "--axis", "hidden", "--values", "4,6", "--steps", "40"]
    assert main(["sweep", *flags, "--batch-size", "64", "--device", "cpu", "--quiet", "--out", str(out)]) == 0
    return out


def test_the_cli_writes_one_table_row_and_one_loadable_model_per_cell(sweep_dir, capsys):
    rows = list(csv.DictReader((sweep_dir / "sweep.csv").open()))
    assert len(rows) == 8
    assert list(rows[0])[:6] == ["cell", "name", "rho", "beta", "hidden", "recon_error"]
    assert {"mean_activation", "l0", "dead_units", "fve", "loss", "seconds", "path"} <= set(rows[0])
    doc = json.loads((sweep_dir / "sweep.json").read_text())
    assert SweepSpec.from_dict(doc["spec"]).n_cells == len(doc["cells"]) == 8
    train = data.load(RunConfig().data).train
    probe = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(1234))[:PROBE_SIZE]]
    for row in rows:
        model, cfg, shape = export.load(sweep_dir / row["path"])
        assert (cfg.model.rho, cfg.model.beta, cfg.model.hidden, shape) == (
            float(row["rho"]),
            float(row["beta"]),
            int(row["hidden"]),
            (8, 8),
        )
        with torch.no_grad():
            recon = model(probe).recon
        fve = 1 - ((recon - probe) ** 2).sum() / ((probe - probe.mean(0)) ** 2).sum()
        assert float(row["fve"]) == pytest.approx(float(fve), abs=1e-5)
    # One cell against its own Trainer: the saved model gives the Trainer's codes.
    row = rows[3]
    model, cfg, _ = export.load(sweep_dir / row["path"])
    trainer = Trainer(cfg, data.load(cfg.data), device="cpu")
    trainer.advance()
    with torch.no_grad():
        torch.testing.assert_close(model.encode(probe), trainer.model.encode(probe), atol=1e-5, rtol=0)
    assert {p.name for p in (sweep_dir / row["path"]).iterdir()} >= {"filters.png", "loss_history.csv"}


def test_the_cli_refuses_to_overwrite_a_sweep_without_force(sweep_dir, capsys):
    args = ["sweep", "--rho", "0.05", "--beta", "3", "--steps", "2", "--hidden", "3", "--out", str(sweep_dir)]
    assert main(args) == 2
    assert "already holds a sweep" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--rho", "abc", "--beta", "3"], "--rho must be comma-separated numbers"),
        (["--rho", "0.05,1.5", "--beta", "3"], "--rho: cell rho=1.5"),
        (["--rho", "0.05", "--beta", "3", "--axis", "hidden"], "--axis and --values go together"),
        (["--rho", "0.05", "--beta", "3", "--axis", "hidden", "--values", "4,x"], "--values must be"),
        (["--rho", "0.05", "--beta", "3", "--optimizer", "lbfgs"], "supports the optimizers adam, sgd"),
        (
            ["--rho", "0.05", "--beta", "3", "--variant", "vae", "--axis", "k", "--values", "2,3"],
            "axis: k does",
        ),
        (["--rho", "0.05", "--beta", "3", "--steps", "0"], "--steps 0 means 'until paused'"),
        (["--rho", "0.05", "--beta", "3", "--backend", "nope"], "backend must be one of local"),
        (["--beta", "3"], "the following arguments are required: --rho"),
    ],
)
def test_bad_cli_input_is_one_line_of_error(tmp_path, capsys, flags, message):
    out = str(tmp_path / "o")
    rc = main(["sweep", "--hidden", "3", "--steps", "2", *flags, "--device", "cpu", "--out", out])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("sae: error: ") and err.count("\n") == 1 and message in err


def test_a_beta_zero_column_is_one_run_trained_once_and_reported_per_cell(tiny_digits):
    """At β = 0, ρ changes nothing (the penalty's term is β·(…)): the β = 0 cells that differ only in ρ are
    twins, trained once; each is reported as itself, with the weights its own run gives (the CASES above
    check that for every variant with a β = 0 column)."""
    spec = spec_of({"steps": 30}, (0.05, 0.1, 0.2), (0.0, 3.0), "seed", (0, 1))
    twins = spec.twins()
    # cells: seed × ρ × β with β fastest; the β = 0 cells are 0, 2, 4 (seed 0) and 6, 8, 10 (seed 1)
    assert twins == (0, 1, 0, 3, 0, 5, 6, 7, 6, 9, 6, 11)
    sweeper = SweepTrainer(spec, tiny_digits)
    assert [b.size for b in sweeper.blocks] == [8]  # 12 cells, 4 of them twins
    sweeper.advance()
    snap = sweeper.snapshot()
    assert [c.index for c in snap.cells] == list(range(12))
    assert [c.rho for c in snap.cells[:6]] == [0.05, 0.05, 0.1, 0.1, 0.2, 0.2]
    for i in (2, 4):
        assert snap.cells[i].metrics == snap.cells[0].metrics
        assert snap.cells[i].metrics is not snap.cells[0].metrics
        for key, value in sweeper.cell_state(0).items():
            assert torch.equal(sweeper.cell_state(i)[key], value)
    assert snap.cells[1].metrics != snap.cells[3].metrics  # β = 3: ρ matters
    twin = Trainer(spec.cells()[10], tiny_digits, device="cpu")
    twin.advance()
    for key, value in twin.model.state_dict().items():
        torch.testing.assert_close(sweeper.cell_state(10)[key], value, atol=1e-5, rtol=0)


def test_twins_need_everything_but_rho_equal():
    assert spec_of({}, (0.05, 0.1), (1.0, 3.0)).twins() == (0, 1, 2, 3)  # no β = 0: no twins
    with_decay = spec_of({}, (0.05, 0.1), (0.0,), "weight_decay", (0.0, 0.01))
    assert with_decay.twins() == (0, 0, 2, 2)  # the λ values are runs apart
