"""The cosine learning-rate schedule (TrainConfig.lr_schedule): the rate of every step against torch's own
CosineAnnealingLR, the settings it refuses, and the sweep that does not take it."""

from __future__ import annotations

import pytest
import torch

from sae_core.cli.main import main
from sae_core.config.run import RunConfig
from sae_core.data import datasets as data
from sae_core.sweep.trainer import SweepSpec
from sae_core.train.trainer import Trainer

TINY = {"dataset": "bars", "n_bars": 300, "hidden": 6, "batch_size": 50, "device": "cpu", "lr": 0.05}


def rates(trainer: Trainer, steps: int) -> list[float]:
    """The learning rate each step used: Adam's param group as the step left it."""
    out = []
    for _ in range(steps):
        trainer.step()
        out.append(trainer.optimizer.param_groups[0]["lr"])
    return out


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_cosine_rates_are_torchs_cosine_annealing_step_by_step(optimizer):
    cfg = RunConfig.from_flat({**TINY, "steps": 40, "optimizer": optimizer, "lr_schedule": "cosine"})
    trainer = Trainer(cfg, data.load(cfg.data))
    reference = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.05)
    annealing = torch.optim.lr_scheduler.CosineAnnealingLR(reference, T_max=40, eta_min=0.0)
    expected = []
    for _ in range(40):
        expected.append(reference.param_groups[0]["lr"])
        reference.step()
        annealing.step()
    assert rates(trainer, 40) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert expected[0] == 0.05 and expected[20] == pytest.approx(0.025)


def test_constant_schedule_keeps_the_rate_and_a_live_change_rescales_the_cosine():
    cfg = RunConfig.from_flat({**TINY, "steps": 20})
    assert rates(Trainer(cfg, data.load(cfg.data)), 5) == [0.05] * 5
    cosine = cfg.replace(lr_schedule="cosine")
    trainer = Trainer(cosine, data.load(cfg.data))
    rates(trainer, 10)
    trainer.set_config(cosine.replace(lr=0.1))  # halfway: the new rate's cosine, not the old one's
    assert rates(trainer, 1)[0] == pytest.approx(
        0.1 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi / 2)).item())
    )


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"lr_schedule": "cosine", "steps": 0}, "lr_schedule must be constant for a run until paused"),
        ({"lr_schedule": "cosine", "optimizer": "lbfgs"}, "lr_schedule must be constant with lbfgs"),
        ({"lr_schedule": "step"}, "lr_schedule must be one of constant, cosine"),
    ],
)
def test_schedules_that_cannot_apply_are_refused_naming_the_field(changes, message):
    with pytest.raises(ValueError, match=message):
        RunConfig.from_flat({**TINY, **changes})


def test_an_epoch_length_run_may_decay():
    assert RunConfig.from_flat({**TINY, "steps": 0, "epochs": 2, "lr_schedule": "cosine"}).train.epochs == 2


def test_the_sweep_refuses_a_schedule():
    with pytest.raises(ValueError, match="lr_schedule 'cosine' cannot be swept"):
        SweepSpec(RunConfig.from_flat({**TINY, "steps": 10, "lr_schedule": "cosine"}), (0.05,), (1.0, 3.0))


def test_the_cli_takes_the_schedule_as_a_flag(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--dataset", "bars", "--hidden", "4", "--steps", "3", "--lr-schedule", "cosine"]
    assert main([*argv, "--device", "cpu", "--quiet", "--out", str(out)]) == 0
    assert '"lr_schedule": "cosine"' in (out / "config.json").read_text()
