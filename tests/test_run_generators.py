"""Each run draws from random generators of its own: runs trained at the same time, on threads as the app
trains its jobs, end with the weights each gives alone, and training leaves torch's global RNG alone.

Before, the Trainer reseeded torch's global generator and the denoising and VAE variants drew their
noise from it, so two students' runs (or a run and anything else drawing from the global RNG) changed
each other's noise and the seed no longer fixed the weights.
"""

from __future__ import annotations

import threading

import pytest
import torch

from sae_core.config.run import RunConfig
from sae_core.train.trainer import Trainer

RUNS = {
    "denoising": {"variant": "denoising", "corruption": "salt_pepper", "seed": 3},
    "vae": {"variant": "vae", "lr": 0.01, "seed": 4},
    "denoising-mask": {"variant": "denoising", "corruption": "mask", "seed": 5},
}
STEPS = 150


def _config(changes: dict) -> RunConfig:
    return RunConfig().replace(**{"hidden": 6, "batch_size": 32, "steps": STEPS, "device": "cpu", **changes})


def _alone(changes: dict, dataset) -> dict[str, torch.Tensor]:
    trainer = Trainer(_config(changes), dataset, device="cpu")
    trainer.advance()
    return trainer.model.state_dict()


def test_runs_trained_at_the_same_time_end_with_the_weights_each_gives_alone(tiny_digits):
    alone = {name: _alone(changes, tiny_digits) for name, changes in RUNS.items()}
    together: dict[str, dict[str, torch.Tensor]] = {}
    start = threading.Barrier(len(RUNS) + 1)
    done = threading.Event()

    def train(name: str) -> None:
        trainer = Trainer(_config(RUNS[name]), tiny_digits, device="cpu")
        start.wait()
        while trainer.advance(max_steps=7) == "running":  # short sections, so the threads interleave
            pass
        together[name] = trainer.model.state_dict()

    def draw_from_the_global_rng() -> None:  # anything else in the process that draws random numbers
        start.wait()
        while not done.is_set():
            torch.rand(64)

    threads = [threading.Thread(target=train, args=(name,)) for name in RUNS]
    noise = threading.Thread(target=draw_from_the_global_rng)
    for t in [*threads, noise]:
        t.start()
    for t in threads:
        t.join(timeout=300)
    done.set()
    noise.join(timeout=30)
    assert set(together) == set(RUNS)
    for name in RUNS:
        for key, value in alone[name].items():
            assert torch.equal(together[name][key], value), (name, key)


@pytest.mark.parametrize("name", list(RUNS))
def test_a_run_leaves_the_global_rng_as_it_found_it(tiny_digits, name):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    trainer = Trainer(_config(RUNS[name]), tiny_digits, device="cpu")
    trainer.advance(max_steps=20)
    trainer.snapshot()
    assert torch.equal(torch.get_rng_state(), state)


def test_the_seed_fixes_the_noise_and_another_seed_changes_it(tiny_digits):
    changes = RUNS["denoising"]
    first, again = _alone(changes, tiny_digits), _alone(changes, tiny_digits)
    other = _alone({**changes, "seed": 9}, tiny_digits)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["encoder.weight"], other["encoder.weight"])
