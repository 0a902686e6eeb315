"""The Applications page's long computations, driven with AppTest: the copies trained behind a button (the
self-taught split, a held-out class) leave the user's model alone and are kept per configuration; the PCA
maps are on the page before t-SNE starts, and t-SNE replaces them when it is done."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from apptest_helpers import pin_navigation_mode
from streamlit.testing.v1 import AppTest

from sae_core.analysis.applications import embedding
from sae_core.analysis.applications.common import weights_key
from sae_core.config.run import RunConfig
from sae_core.models import build
from sae_core.store import export

APP = Path(__file__).resolve().parent.parent / "app.py"
PAGE = "pages/applications.py"
UPLOAD = "A model zip downloaded from Train"


@pytest.fixture
def page(monkeypatch):
    pin_navigation_mode(monkeypatch)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    at.switch_page(PAGE).run()
    return at


def upload(at: AppTest, config: RunConfig, seed: int) -> torch.nn.Module:
    """Import a freshly initialised model of `config` (weights from `seed`) as a model zip; return it."""
    torch.manual_seed(seed)
    model = build(config.model, 64, (8, 8))
    raw = export.zip_bytes(model, config, None, image_shape=(8, 8))
    at.radio(key="app_source").set_value(UPLOAD).run()
    at.file_uploader(key="app_upload").set_value((f"m{seed}.zip", raw, "application/zip")).run()
    assert not at.exception, [e.value for e in at.exception]
    return model


def imported_key(at: AppTest) -> str:
    loaded = at.session_state["app_imported"]
    return weights_key(loaded.model, loaded.config)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_copies_for_the_self_taught_split_and_a_held_out_class_leave_the_users_model_alone(page):
    cfg = RunConfig.from_flat({"dataset": "digits", "hidden": 6, "steps": 150, "batch_size": 64})
    upload(page, cfg, seed=1)
    before = imported_key(page)
    page.toggle(key="app_st").set_value(True).run()
    assert "your model is not touched" in " ".join(c.value for c in page.caption)
    page.button(key="app_st_run").click().run()
    answer = metrics(page)["Self-taught, hidden codes"]
    assert imported_key(page) == before == page.session_state["app_imported"].key
    # The copy depends on the configuration only: other weights of the same configuration keep the answer.
    upload(page, cfg, seed=2)
    assert imported_key(page) != before
    assert metrics(page)["Self-taught, hidden codes"] == answer  # shown without pressing the button again
    page.segmented_control(key="app_section").set_value("Anomaly detection").run()
    page.radio(key="app_source_kind").set_value("class").run()
    assert "your model is not touched" in " ".join(c.value for c in page.caption)
    after_upload = imported_key(page)
    page.button(key="app_held_run").click().run()
    assert not page.exception, [e.value for e in page.exception]
    assert "AUC" in metrics(page) and imported_key(page) == after_upload


def test_the_pca_maps_are_on_the_page_before_tsne_starts(page, monkeypatch):
    real = embedding.embed_2d

    def tsne_fails(model, dataset, method="pca", image_shape=None):
        if method == "tsne":
            raise RuntimeError("t-SNE started")
        return real(model, dataset, method, image_shape)

    monkeypatch.setattr(embedding, "embed_2d", tsne_fails)
    upload(page, RunConfig.from_flat({"dataset": "digits", "hidden": 5}), seed=3)
    page.segmented_control(key="app_section").set_value("Dimensionality reduction").run()
    page.radio(key="app_map").set_value("tsne").run()
    assert ["t-SNE started"] == [e.value for e in page.exception]
    keys = {c.key for c in page.get("plotly_chart")}
    assert {"app_map_codes", "app_map_pixels"} <= keys  # drawn before the t-SNE call, still there


def test_tsne_replaces_the_pca_maps_and_the_choice_says_how_long_it_takes(page):
    upload(page, RunConfig.from_flat({"dataset": "digits", "hidden": 4}), seed=4)
    page.segmented_control(key="app_section").set_value("Dimensionality reduction").run()
    assert {"app_map_codes", "app_map_pixels"} <= {c.key for c in page.get("plotly_chart")}
    assert "Variance kept, codes' PCA map" in metrics(page)
    assert "t-SNE (7-35 s, once per model)" in page.radio(key="app_map").options
    page.radio(key="app_map").set_value("tsne").run()
    assert not page.exception, [e.value for e in page.exception]
    charts = {c.key: c for c in page.get("plotly_chart")}
    assert {"app_tsne_codes", "app_tsne_pixels"} <= set(charts)
    assert not {"app_map_codes", "app_map_pixels"} & set(charts)  # in the same places, not below
    assert "near neighbours" in " ".join(c.value for c in page.caption)
