"""The server's start-up warm-up: it runs the real training and figure path, once per process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.web.server.app_discovery import discover_asgi_app

from sae_core.config.run import RunConfig
from sae_core.serve import startup, warmup

ROOT = Path(__file__).resolve().parent.parent


def test_warm_up_trains_a_tiny_model_and_draws_the_figures(monkeypatch):
    drawn = []
    import sae_core.figures.training as figures

    real = figures.filters_figure
    monkeypatch.setattr(figures, "filters_figure", lambda snap, *a, **k: drawn.append(snap) or real(snap))
    warmup.warm_up()
    (snap,) = drawn
    assert snap.step == 3 and snap.status == "done" and snap.encoder_weight.shape == (4, 16)


def test_after_the_warm_up_the_default_presets_memory_estimate_needs_no_model(monkeypatch):
    """The first visitor's Train page asks for its run's memory estimate: the warm-up has measured it."""
    import sae_core.models
    from sae_core import presets
    from sae_core.train import budget

    budget._measure_model.cache_clear()
    warmup.warm_up()

    def no_build(*args, **kwargs):
        raise AssertionError("the estimate built a model again")

    monkeypatch.setattr(sae_core.models, "build", no_build)
    monkeypatch.setattr(sae_core.models, "build_seeded", no_build)
    config = presets.get(presets.DEFAULT_PRESET).config
    assert budget.estimate(config).total > 0
    with pytest.raises(AssertionError, match="built a model again"):  # another model is measured anew
        budget.estimate(RunConfig.from_flat({**config.flat(), "hidden": config.model.hidden + 1}))


def test_warm_up_in_background_starts_one_thread_per_process(monkeypatch):
    monkeypatch.setattr(warmup, "_started", type(warmup._started)())
    calls = []
    monkeypatch.setattr(warmup, "warm_up", lambda: calls.append(1))
    thread = warmup.warm_up_in_background()
    assert thread is not None and thread.daemon
    thread.join(timeout=10)
    assert warmup.warm_up_in_background() is None and calls == [1]


def test_the_warm_up_module_knows_nothing_of_streamlit():
    source = open(warmup.__file__, encoding="utf-8").read()
    assert "import streamlit" not in source and "from streamlit" not in source


def test_warm_up_now_runs_once_per_process(monkeypatch):
    monkeypatch.setattr(warmup, "_started", type(warmup._started)())
    calls = []
    monkeypatch.setattr(warmup, "warm_up", lambda: calls.append(1))
    warmup.warm_up_now()
    warmup.warm_up_now()
    assert calls == [1] and warmup.warm_up_in_background() is None  # a page visit does not start another


def test_the_servers_lifespan_warms_up_before_it_serves(monkeypatch):
    events = []
    monkeypatch.setattr(startup, "warm_up_now", lambda: events.append("warm-up"))

    async def serve() -> None:
        async with startup.lifespan(None):
            events.append("serving")

    asyncio.run(serve())
    assert events == ["warm-up", "serving"]


def test_streamlit_run_app_py_serves_the_app_with_that_lifespan():
    """`streamlit run app.py` finds `app` by reading app.py (no execution), then serves it; importing app.py
    as a module gives that st.App, whose lifespan is the warm-up."""
    found = discover_asgi_app(ROOT / "app.py")
    assert found.is_asgi_app and found.app_name == "app"
    script = (
        "import app, streamlit as st\n"
        "from sae_core.serve import startup\n"
        "print(isinstance(app.app, st.App), app.app._user_lifespan is startup.lifespan)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert out.stdout.split()[-2:] == ["True", "True"], out.stdout + out.stderr
