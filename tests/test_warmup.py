"""The server's start-up warm-up: it runs the real training and figure path, once per process."""

from __future__ import annotations

from sae_core.serve import warmup


def test_warm_up_trains_a_tiny_model_and_draws_the_figures(monkeypatch):
    drawn = []
    import sae_core.figures.training as figures

    real = figures.filters_figure
    monkeypatch.setattr(figures, "filters_figure", lambda snap, *a, **k: drawn.append(snap) or real(snap))
    warmup.warm_up()
    (snap,) = drawn
    assert snap.step == 3 and snap.status == "done" and snap.encoder_weight.shape == (4, 16)


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
