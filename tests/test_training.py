"""The trainer: known answers (bars, sparsity target), determinism, live changes, divergence, snapshots."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from sae_core.config.run import DataConfig, ModelConfig, RunConfig, TrainConfig
from sae_core.data import datasets as data
from sae_core.models import build
from sae_core.train import metrics
from sae_core.train.objective import loss_terms
from sae_core.train.trainer import PROBE_SIZE, SHOW_SIZE, Snapshot, Trainer


def run_config(**flat) -> RunConfig:
    """A tiny CPU run: 8 hidden units, 20 steps, unless the caller says otherwise."""
    base = {"hidden": 8, "steps": 20, "batch_size": 32, "device": "cpu", "snapshot_every": 10}
    return RunConfig.from_flat({**base, **flat})


def finish(trainer: Trainer, steps: int | None = None) -> list[Snapshot]:
    return list(trainer.run(steps))


def np_kl(rho: float, rho_hat: np.ndarray) -> np.ndarray:
    return rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))


# ----- known answers ------------------------------------------------------------------------------


@pytest.mark.slow
def test_kl_autoencoder_recovers_the_sixteen_bars():
    """Földiák's bars: every image is an OR of independent bars, so the 16 bars are the true features.

    ρ = 0.125 equals the probability that a bar is present, so a unit that codes one bar meets its target.
    Why raw cosine works: with a sigmoid output the "all pixels off" level is carried by the decoder bias
    (large and negative), and a unit that codes a bar only has to push its 8 pixels up; weight decay pulls
    the column's other 56 entries to about 0. So column j ≈ c·bar and cos(column, bar) ≈ 1 (0.99+ seen).
    Full-batch Adam at lr 0.1 finds all 16 bars for each of 12 seeds tried within 1500-2000 steps;
    minibatches and smaller steps leave some units coding two bars for much longer.
    """
    data_cfg = DataConfig(dataset="bars", n_bars=1000)
    dataset = data.load(data_cfg)
    cfg = RunConfig(
        data=data_cfg,
        model=ModelConfig(hidden=16, penalty="kl", rho=0.125, beta=3.0, weight_decay=1e-4, output="sigmoid"),
        train=TrainConfig(
            optimizer="adam", lr=0.1, batch_size=0, steps=2000, seed=0, device="cpu", snapshot_every=2000
        ),
    )
    trainer = Trainer(cfg, dataset, device="cpu")
    finish(trainer)
    columns = trainer.model.decoder.weight.detach().numpy()  # [64, 16], column j = feature of unit j
    bars = dataset.ground_truth.numpy()  # [16, 64]
    cosine = (bars / np.linalg.norm(bars, axis=1, keepdims=True)) @ (
        columns / np.linalg.norm(columns, axis=0, keepdims=True)
    )
    matched = int((cosine.max(axis=1) >= 0.9).sum())
    assert matched >= 14, np.round(cosine.max(axis=1), 3)


def test_kl_penalty_pulls_mean_activation_to_rho(digits_full_train):
    rho = 0.05
    cfg = run_config(
        hidden=25,
        rho=rho,
        beta=3.0,
        weight_decay=1e-4,
        lr=0.02,
        steps=300,
        batch_size=128,
        snapshot_every=300,
    )
    trainer = Trainer(cfg, digits_full_train, device="cpu")
    _, before = metrics.forward_all(trainer.model, digits_full_train.train)
    assert before.mean().item() > 0.3  # sigmoid units start near 0.5: the target is not met by accident
    finish(trainer)
    _, codes = metrics.forward_all(trainer.model, digits_full_train.train)
    rho_hat = codes.mean(dim=0).numpy()
    assert abs(rho_hat.mean() - rho) < 0.25 * rho, rho_hat.mean()
    assert (np.abs(rho_hat - rho) < 0.5 * rho).all(), rho_hat


def test_lbfgs_full_batch_halves_the_objective_in_fifty_iterations(tiny_digits):
    cfg = run_config(hidden=16, optimizer="lbfgs", lr=1.0, steps=50, snapshot_every=50, weight_decay=1e-4)
    trainer = Trainer(cfg, tiny_digits, device="cpu")
    assert trainer.batch_size == len(tiny_digits.train)  # lbfgs always uses the whole training set

    def objective() -> float:
        with torch.no_grad():
            return loss_terms(trainer.model, trainer.x, trainer.model(trainer.x), cfg.model)["total"].item()

    initial = objective()
    finish(trainer)
    final = objective()
    assert final < initial / 2, (initial, final)
    history = np.asarray(trainer.history["total"])
    # An L-BFGS step records the objective at the weights after it (its line search evaluated them).
    assert history[-1] == pytest.approx(final, rel=1e-5)
    assert history[0] < initial
    # Line search: an L-BFGS iteration never accepts a worse objective on the same (full) batch.
    assert (np.diff(history) <= 1e-6 * history[:-1]).all()


def count_forward_passes(model: torch.nn.Module) -> list[int]:
    """A one-element counter that a forward hook increments at every forward pass of `model`."""
    calls = [0]
    model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_lbfgs_steps_evaluate_as_one_long_lbfgs_call_does_and_end_where_it_ends(tiny_digits):
    """N trainer steps of one L-BFGS iteration each against one torch.optim.LBFGS call of max_iter=N
    from the same weights: same number of objective evaluations (not ~2N, as when every step() call
    re-evaluates its starting point) and the same final objective."""
    steps = 60
    cfg = run_config(hidden=16, optimizer="lbfgs", lr=1.0, steps=steps, snapshot_every=steps)
    trainer = Trainer(cfg, tiny_digits, device="cpu")
    reference = build(cfg.model, 64, (8, 8))
    reference.load_state_dict(trainer.model.state_dict())
    ours, theirs = count_forward_passes(trainer.model), count_forward_passes(reference)
    x = tiny_digits.train

    def objective(model: torch.nn.Module) -> torch.Tensor:
        return loss_terms(model, x, model(x), cfg.model)["total"]

    optimizer = torch.optim.LBFGS(
        reference.parameters(), lr=1.0, max_iter=steps, max_eval=25 * steps, history_size=20,
        line_search_fn="strong_wolfe",
    )  # fmt: skip

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = objective(reference)
        loss.backward()
        return loss

    optimizer.step(closure)
    assert optimizer.state[optimizer.param_groups[0]["params"][0]]["n_iter"] == steps  # no early stop
    assert trainer.advance() == "done"
    assert ours[0] == theirs[0] == trainer.evaluations
    snap = trainer.snapshot()
    assert snap.evaluations == trainer.evaluations
    assert steps < ours[0] < 1.25 * steps
    with torch.no_grad():
        final, expected = objective(trainer.model).item(), objective(reference).item()
    assert final == pytest.approx(expected, rel=1e-6)
    assert trainer.history["total"][-1] == pytest.approx(final, rel=1e-6)  # the loss after the last step
    # samples/s counts every evaluation of the line searches, not one batch per step
    assert snap.samples_per_second == pytest.approx(snap.evaluations * len(x) / trainer.seconds)


def test_after_a_live_change_lbfgs_steps_from_the_new_objective(tiny_digits):
    """Five steps at ρ = 0.05, then one at ρ = 0.2, against torch's L-BFGS driven the plain way (one
    step() call per iteration, each evaluating its starting point afresh): the same weights. Had the
    trainer answered the sixth step's opening evaluation from its ρ = 0.05 cache, they would differ."""
    cfg = run_config(hidden=8, optimizer="lbfgs", lr=1.0, steps=10, rho=0.05)
    trainer = Trainer(cfg, tiny_digits, device="cpu")
    reference = build(cfg.model, 64, (8, 8))
    reference.load_state_dict(trainer.model.state_dict())
    optimizer = torch.optim.LBFGS(
        reference.parameters(),
        lr=1.0,
        max_iter=1,
        max_eval=25,
        history_size=20,
        line_search_fn="strong_wolfe",
    )
    x = tiny_digits.train
    for rho in [0.05] * 5 + [0.2]:
        model_cfg = dataclasses.replace(cfg.model, rho=rho)

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = loss_terms(reference, x, reference(x), model_cfg)["total"]  # noqa: B023 (called at once)
            loss.backward()
            return loss

        optimizer.step(closure)
    trainer.advance(max_steps=5)
    trainer.set_config(trainer.config.replace(rho=0.2))
    trainer.advance(max_steps=1)
    for ours, theirs in zip(trainer.model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


def test_lbfgs_follows_a_scheduled_change_of_the_objective(tiny_digits):
    """k-sparse with k falling from 6 to 2 over the first 4 of 8 L-BFGS steps, against torch's L-BFGS
    driven the plain way with the model's k set the same way before each step: the same weights."""
    cfg = run_config(variant="ksparse", hidden=8, k=2, k_start=6, steps=8, optimizer="lbfgs", lr=1.0)
    trainer = Trainer(cfg, tiny_digits, device="cpu")
    reference = build(cfg.model, 64, (8, 8))
    reference.load_state_dict(trainer.model.state_dict())
    optimizer = torch.optim.LBFGS(
        reference.parameters(), lr=1.0, max_iter=1, max_eval=25, line_search_fn="strong_wolfe"
    )  # its default history (100) and the trainer's (20) are both longer than these 8 steps
    x = tiny_digits.train

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_terms(reference, x, reference(x), cfg.model)["total"]
        loss.backward()
        return loss

    for step in range(8):
        reference.set_step_(step, 8)
        optimizer.step(closure)
    trainer.advance()
    assert trainer.model.k == 2
    for ours, theirs in zip(trainer.model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("epochs", "batch_size"), [(2.5, 64), (1.0, 300), (0.1, 7), (3.0, 0), (1.0, 10_000)])
def test_epochs_set_total_steps_to_ceil_of_epochs_times_n_over_batch(tiny_digits, epochs, batch_size):
    n = len(tiny_digits.train)
    trainer = Trainer(run_config(epochs=epochs, batch_size=batch_size), tiny_digits, device="cpu")
    batch = n if batch_size in (0, 10_000) else batch_size  # 0 = full batch; larger than N = full batch
    assert trainer.total_steps == math.ceil(epochs * n / batch)


def test_run_stops_at_total_steps_with_a_done_snapshot(tiny_digits):
    trainer = Trainer(run_config(epochs=0.5, batch_size=50, snapshot_every=2), tiny_digits, device="cpu")
    snaps = finish(trainer)
    assert trainer.step_count == trainer.total_steps == 3
    assert [s.step for s in snaps] == [2, 3]
    assert [s.status for s in snaps] == ["running", "done"]
    assert snaps[-1].progress == 1.0
    assert list(snaps[-1].history_steps) == [1, 2, 3]


# ----- determinism --------------------------------------------------------------------------------


def trained_weights(dataset, seed: int) -> dict[str, torch.Tensor]:
    trainer = Trainer(run_config(seed=seed, steps=15), dataset, device="cpu")
    finish(trainer)
    return trainer.model.state_dict()


def test_same_seed_gives_identical_weights_and_another_seed_does_not(tiny_digits):
    a, b, c = (trained_weights(tiny_digits, s) for s in (3, 3, 4))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["encoder.weight"], c["encoder.weight"])


def test_a_trainer_started_from_saved_weights_has_them_and_goes_on_from_their_step(tiny_digits):
    saved = trained_weights(tiny_digits, 3)
    trainer = Trainer(
        run_config(seed=9, steps=25), tiny_digits, device="cpu", initial_state=saved, start_step=15
    )
    assert all(torch.equal(trainer.model.state_dict()[k], saved[k]) for k in saved)
    snaps = finish(trainer)
    assert trainer.step_count == 25 and snaps[-1].step == 25 and snaps[-1].status == "done"
    assert list(snaps[-1].history_steps) == list(range(16, 26))
    fresh = Trainer(run_config(seed=9, steps=25), tiny_digits, device="cpu")
    # Started from trained weights, its first loss is the trained model's: below a fresh start's.
    first = next(iter(finish(fresh, 1))).losses["reconstruction"]
    assert snaps[-1].history["reconstruction"][0] < 0.9 * first


def test_weights_that_do_not_fit_the_model_are_refused_naming_the_key(tiny_digits):
    saved = trained_weights(tiny_digits, 3)
    with pytest.raises(RuntimeError, match="encoder.weight"):
        Trainer(run_config(hidden=9), tiny_digits, device="cpu", initial_state=saved)
    with pytest.raises(ValueError, match="start_step"):
        Trainer(run_config(), tiny_digits, device="cpu", initial_state=saved, start_step=-1)


# ----- live changes -------------------------------------------------------------------------------


def test_set_config_applies_at_the_next_step_and_the_loss_uses_the_new_values(tiny_digits):
    cfg = run_config(rho=0.05, beta=3.0, batch_size=0, lr=0.01)  # full batch: the step's batch is known
    trainer = Trainer(cfg, tiny_digits, device="cpu")
    finish(trainer, steps=2)
    trainer.set_config(trainer.config.replace(rho=0.2, beta=0.5, lr=0.003))
    assert trainer.config.model.rho == 0.05  # not before the next step
    with torch.no_grad():
        h = trainer.model.encode(trainer.x).double().numpy()
    trainer.step()
    trainer.sync()
    assert (trainer.config.model.rho, trainer.config.model.beta, trainer.config.train.lr) == (0.2, 0.5, 0.003)
    assert all(group["lr"] == 0.003 for group in trainer.optimizer.param_groups)
    expected = 0.5 * np_kl(0.2, h.mean(axis=0)).sum()
    assert trainer.history["sparsity"][-1] == pytest.approx(expected, rel=1e-4)


def test_moving_weight_decay_to_zero_and_back_mid_run_keeps_the_history_aligned(tiny_digits):
    trainer = Trainer(run_config(weight_decay=1e-3, steps=30), tiny_digits, device="cpu")
    finish(trainer, steps=10)
    trainer.set_config(trainer.config.replace(weight_decay=0.0))
    finish(trainer, steps=10)
    trainer.set_config(trainer.config.replace(weight_decay=1e-3))
    snap = list(trainer.run())[-1]
    assert snap.step == 30
    assert all(len(values) == 30 for values in snap.history.values())
    decay = snap.history["weight_decay"]
    assert np.all(decay[10:20] == 0.0) and np.all(decay[:10] > 0) and np.all(decay[20:] > 0)


def test_a_finished_run_goes_on_when_its_length_is_raised(tiny_digits):
    trainer = Trainer(run_config(steps=20), tiny_digits, device="cpu")
    first = finish(trainer)[-1]
    weights = trainer.model.encoder.weight.detach().clone()
    assert (first.step, first.status) == (20, "done")
    trainer.set_config(trainer.config.replace(steps=35))
    snaps = finish(trainer)
    assert snaps[-1].step == 35 and snaps[-1].total_steps == 35 and snaps[-1].status == "done"
    assert len(snaps[-1].history_steps) == 35  # went on from step 20, not from a fresh model
    assert not torch.equal(weights, trainer.model.encoder.weight)


def test_a_run_until_paused_has_no_end_of_its_own(tiny_digits):
    trainer = Trainer(run_config(steps=0, snapshot_every=5), tiny_digits, device="cpu")
    assert trainer.total_steps == 0 and not trainer.finished
    assert trainer.advance(max_steps=40) == "running" and trainer.step_count == 40  # no end at step 0
    snaps = []
    for snap in trainer.run():  # yields until the consumer stops iterating
        snaps.append(snap)
        if len(snaps) == 3:
            break
    assert [s.step for s in snaps] == [45, 50, 55] and {s.status for s in snaps} == {"running"}
    assert snaps[-1].until_paused and snaps[-1].progress == 0.0
    trainer.set_config(trainer.config.replace(steps=60))  # a length again: the run ends there
    assert finish(trainer)[-1].status == "done" and trainer.step_count == 60 and trainer.finished


def test_a_length_lowered_while_a_section_runs_ends_it_there(tiny_digits):
    trainer = Trainer(run_config(steps=1000), tiny_digits, device="cpu")

    def keep_going() -> bool:  # the page lowers the length at step 10, in the middle of the section
        if trainer.step_count == 10:
            trainer.set_config(trainer.config.replace(steps=15))
        return True

    assert trainer.advance(keep_going=keep_going) == "done" and trainer.step_count == 15


def test_set_config_of_a_structural_field_raises(tiny_digits):
    trainer = Trainer(run_config(), tiny_digits, device="cpu")
    for change in ({"hidden": 10}, {"penalty": "l1"}, {"dataset": "bars"}, {"optimizer": "sgd"}):
        with pytest.raises(ValueError, match="cannot change while training"):
            trainer.set_config(trainer.config.replace(**change))
    trainer.step()
    assert trainer.config == run_config()


@pytest.mark.parametrize("change", [{"rho": 1.5}, {"beta": -1.0}, {"lr": 0.0}, {"weight_decay": -0.1}])
def test_set_config_with_a_bad_value_raises_and_leaves_the_config_unchanged(tiny_digits, change):
    trainer = Trainer(run_config(), tiny_digits, device="cpu")
    trainer.set_config(trainer.config.replace(beta=2.0))  # a good pending change survives a later bad one
    (name,) = change
    with pytest.raises(ValueError, match=f"{name} must be"):
        trainer.set_config(trainer.config.replace(**change))
    trainer.step()
    assert trainer.config == run_config(beta=2.0)


# ----- divergence ---------------------------------------------------------------------------------


def diverging_config(**flat) -> RunConfig:
    """Linear output and a huge SGD step: the reconstruction overflows within a few steps."""
    return run_config(optimizer="sgd", lr=1e4, output="linear", steps=200, snapshot_every=1, **flat)


@pytest.mark.parametrize("lr", [1e4, 1e20])  # overflows after a few steps / at the second step
def test_divergence_ends_the_run_with_a_diverged_snapshot_and_last_good_weights(tiny_digits, lr):
    trainer = Trainer(diverging_config().replace(lr=lr), tiny_digits, device="cpu")
    initial = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    snaps = finish(trainer)
    last = snaps[-1]
    assert last.status == "diverged" and len(snaps) < 200
    assert all(s.status == "running" for s in snaps[:-1])
    assert "Training diverged at step" in last.message
    assert "reconstruction" in last.message
    assert "smaller learning rate" in last.message
    state = trainer.model.state_dict()
    assert all(torch.isfinite(v).all() for v in state.values())
    # The restored weights are those of the snapshot taken at the step they go back to (or the initial ones).
    restored = trainer.step_count
    diverged_at = int(last.message.split("step ")[1].split(":")[0])
    assert last.step == restored < diverged_at
    assert f"restored to step {restored}" in last.message
    good = {s.step: s.encoder_weight for s in snaps[:-1]}.get(restored, initial["encoder.weight"].numpy())
    np.testing.assert_array_equal(state["encoder.weight"].numpy(), good)
    assert list(trainer.history_steps) == list(last.history_steps) == list(range(1, restored + 1))


def test_after_divergence_a_smaller_learning_rate_lets_training_go_on(tiny_digits):
    """What the divergence message advises must work: the restored weights have a finite objective."""
    # Reconstruction overflow after a few steps, at the second step; weight decay overflow.
    for output, lr in (("linear", 1e4), ("linear", 1e20), ("sigmoid", 1e6)):
        cfg = run_config(optimizer="sgd", lr=lr, output=output, steps=200, snapshot_every=1)
        trainer = Trainer(cfg, tiny_digits, device="cpu")
        assert finish(trainer)[-1].status == "diverged"
        restored = trainer.step_count
        trainer.set_config(trainer.config.replace(lr=1e-3))
        snaps = finish(trainer, steps=5)
        assert [s.status for s in snaps] == ["running"] * 4 + ["done"], (output, snaps[-1].message)
        assert trainer.step_count == restored + 5
        assert np.isfinite(trainer.history["total"]).all()


# ----- snapshots ----------------------------------------------------------------------------------


def test_snapshot_is_frozen_and_its_arrays_are_copies(tiny_digits):
    trainer = Trainer(run_config(steps=3, snapshot_every=3), tiny_digits, device="cpu")
    snap = finish(trainer)[-1]
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.step = 7  # type: ignore[misc]
    arrays = {f.name: getattr(snap, f.name) for f in dataclasses.fields(snap)}
    arrays = {k: v.copy() for k, v in arrays.items() if isinstance(v, np.ndarray)}
    with torch.no_grad():  # change the model and the trainer's inputs in place
        for p in trainer.model.parameters():
            p.add_(1.0)
        trainer.show.add_(1.0)
        trainer.probe.add_(1.0)
    for name, before in arrays.items():
        np.testing.assert_array_equal(getattr(snap, name), before, err_msg=name)
    # ...and the other way round: drawing code that edits a snapshot's array leaves the trainer alone.
    show = trainer.show.clone()
    snap.show_inputs[:] = -5.0
    assert torch.equal(trainer.show, show)


def test_snapshot_shapes_are_the_documented_ones(tiny_digits):
    n, d, hidden = len(tiny_digits.train), 64, 8
    trainer = Trainer(run_config(steps=4, snapshot_every=2), tiny_digits, device="cpu")
    snap = finish(trainer)[-1]
    assert snap.encoder_weight.shape == (hidden, d)
    assert snap.decoder_weight.shape == (d, hidden)
    assert snap.rho_hat.shape == snap.density.shape == (hidden,)
    assert snap.activations.shape == (min(n, PROBE_SIZE), hidden)
    assert snap.show_inputs.shape == snap.show_recon.shape == (SHOW_SIZE, d)
    assert snap.history_steps.shape == (4,)
    assert set(snap.history) == {"reconstruction", "sparsity", "weight_decay", "total"}
    assert all(v.shape == (4,) for v in snap.history.values())
    assert snap.losses == {k: v[-1] for k, v in snap.history.items()}
    assert snap.image_shape == (8, 8) and snap.config == trainer.config
    np.testing.assert_allclose(snap.rho_hat, snap.activations.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(snap.density, (snap.activations > 0.1).mean(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(snap.encoder_weight, trainer.model.encoder.weight.detach().numpy())


# ----- held-out probe, data strip, true features ------------------------------------------------------------
def _half_squared_error(model: torch.nn.Module, x: torch.Tensor) -> float:
    """½ · mean ‖x̂ − x‖², the sparse model's sigmoid layers written out in float64."""
    w1, b1 = model.encoder.weight.detach().double(), model.encoder.bias.detach().double()
    w2, b2 = model.decoder.weight.detach().double(), model.decoder.bias.detach().double()
    recon = torch.sigmoid(torch.sigmoid(x.double() @ w1.T + b1) @ w2.T + b2)
    return 0.5 * ((recon - x.double()) ** 2).sum(dim=1).mean().item()


def test_snapshots_record_the_test_error_once_per_snapshot_step(tiny_digits):
    trainer = Trainer(run_config(steps=20, snapshot_every=5), tiny_digits, device="cpu")
    trainer.snapshot("ready")
    snaps = finish(trainer)
    again = trainer.snapshot("done")  # a second snapshot at step 20 replaces, not adds, its point
    test = tiny_digits.test  # 60 samples: all of them are the held-out probe
    assert list(again.test_history_steps) == [0, 5, 10, 15, 20]
    assert set(again.test_history) == {"reconstruction", "total"}
    expected = _half_squared_error(trainer.model, test)
    assert again.test_metrics["recon_error"] == pytest.approx(expected, rel=1e-5)
    assert again.test_history["reconstruction"][-1] == pytest.approx(expected, rel=1e-5)
    assert again.test_metrics["samples"] == len(test)
    with torch.no_grad():
        total = loss_terms(trainer.model.eval(), test, trainer.model(test), trainer.config.model)["total"]
    trainer.model.train()
    assert again.test_history["total"][-1] == pytest.approx(total.item(), rel=1e-5)
    # The test point of each snapshot is the test error at that snapshot's step, not the latest one.
    assert [s.test_history_steps[-1] for s in snaps] == [5, 10, 15, 20]
    assert snaps[0].test_history["reconstruction"][-1] > snaps[-1].test_history["reconstruction"][-1]
    # The training-side probe error is a different number: 1000 training samples, not test ones.
    assert again.metrics["recon_error"] != again.test_metrics["recon_error"]


def test_the_held_out_probe_of_large_images_is_capped_in_pixels():
    g = torch.Generator().manual_seed(0)
    big = data.Dataset(
        "random", torch.rand(50, 784, generator=g), torch.rand(500, 784, generator=g), None, None, (28, 28)
    )
    snap = Trainer(run_config(hidden=3), big, device="cpu").snapshot("ready")
    assert snap.test_metrics["samples"] == 2**18 // 784 == 334  # not 500: it runs at every snapshot


def test_a_dataset_without_a_test_split_has_no_test_metrics(tiny_digits):
    no_test = data.Dataset("digits", tiny_digits.train, None, None, None, (8, 8))
    snap = finish(Trainer(run_config(steps=4, snapshot_every=2), no_test, device="cpu"))[-1]
    assert snap.test_metrics is None and snap.test_history_steps is None and snap.test_history == {}


def test_divergence_forgets_the_test_points_of_the_undone_steps(tiny_digits):
    trainer = Trainer(diverging_config(), tiny_digits, device="cpu")
    last = finish(trainer)[-1]
    assert last.status == "diverged"
    assert list(last.test_history_steps) == sorted(set(last.test_history_steps))
    assert last.test_history_steps.max() <= trainer.step_count
    assert all(len(v) == len(last.test_history_steps) for v in last.test_history.values())


def test_snapshot_carries_the_first_training_inputs_read_only(tiny_digits):
    snap = finish(Trainer(run_config(steps=2, snapshot_every=2), tiny_digits, device="cpu"))[-1]
    np.testing.assert_array_equal(snap.data_examples, tiny_digits.train[:20].numpy())
    assert not snap.data_examples.flags.writeable
    assert snap.truth_match is None  # digits has no known generating features


@pytest.mark.slow
def test_bars_snapshot_counts_the_bars_a_good_run_finds_and_an_untrained_one_does_not():
    """The recipe of test_kl_autoencoder_recovers_the_sixteen_bars (all 16 bars for 12 seeds)."""
    data_cfg = DataConfig(dataset="bars", n_bars=1000)
    dataset = data.load(data_cfg)
    cfg = RunConfig(
        data=data_cfg,
        model=ModelConfig(hidden=16, penalty="kl", rho=0.125, beta=3.0, weight_decay=1e-4, output="sigmoid"),
        train=TrainConfig(
            optimizer="adam", lr=0.1, batch_size=0, steps=2000, seed=0, device="cpu", snapshot_every=2000
        ),
    )
    trainer = Trainer(cfg, dataset, device="cpu")
    untrained = trainer.snapshot("ready")
    trained = finish(trainer)[-1]
    for snap in (untrained, trained):  # numpy's Pearson r of each bar with each decoder column
        r = np.corrcoef(np.concatenate([dataset.ground_truth.numpy(), snap.decoder_weight.T]))[:16, 16:]
        np.testing.assert_allclose(snap.truth_match, r.max(axis=1), rtol=1e-6)
    assert (untrained.truth_match < 0.5).all()
    assert metrics.features_found(torch.from_numpy(trained.truth_match)) >= 14
