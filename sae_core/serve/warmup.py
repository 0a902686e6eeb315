"""Pay a fresh process's one-off costs before the first visitor does.

The first Train click on a fresh server took 1.3-2.4 s to show a trained picture against 0.4-0.5 s for
later clicks: the first backward pass, the first fused Adam step and the first snapshot load kernels and
lazy modules, and the first figures import plotly's validators and JSON encoder. `warm_up()` runs a tiny
model through the same path (train a few steps, snapshot, build and serialise every figure, draw the
plain pictures) and measures the default preset's memory estimate, so that a server does it at start-up.
No Streamlit here.
"""

from __future__ import annotations

import threading

import torch

from sae_core.config.run import RunConfig
from sae_core.data.datasets import Dataset

_started = threading.Event()


def warm_up() -> None:
    """Train a 16 → 4 autoencoder for a few steps on random data and draw every main figure once."""
    from sae_core import presets
    from sae_core.figures import static
    from sae_core.figures import training as figures
    from sae_core.train import budget
    from sae_core.train.trainer import Trainer

    generator = torch.Generator().manual_seed(0)
    x = torch.rand(64, 16, generator=generator)
    dataset = Dataset("warm-up", x, x[:16], None, None, (4, 4))
    config = RunConfig.from_flat({"hidden": 4, "batch_size": 16, "steps": 3, "snapshot_every": 3})
    trainer = Trainer(config.replace(device="cpu"), dataset)
    snap = list(trainer.run())[-1]
    for make in (
        figures.filters_figure,
        figures.rho_hat_histogram,
        figures.loss_figure,
        figures.activation_histogram,
        figures.density_histogram,
        figures.reconstructions_figure,
        figures.kl_curve_figure,
    ):
        figure = make(snap)
        static.to_html(figure)  # a fresh Train page draws its pictures plainly (PIL's PNG writer)
        figure.to_json()
    figures.metrics_row(snap)
    # The default preset's memory estimate, kept by budget: the first visitor's Train page asks for it.
    budget.estimate(presets.get(presets.DEFAULT_PRESET).config)


def warm_up_now() -> None:
    """Run warm_up() here, once per process: a server's start-up (sae_core.serve.startup)."""
    if _started.is_set():
        return
    _started.set()
    warm_up()


def warm_up_in_background() -> threading.Thread | None:
    """Start warm_up() in a daemon thread once per process (later calls do nothing and return None): for
    a server started some other way than `streamlit run app.py`, e.g. AppTest."""
    if _started.is_set():
        return None
    _started.set()
    thread = threading.Thread(target=warm_up, name="sae-warm-up", daemon=True)
    thread.start()
    return thread
