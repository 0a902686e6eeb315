"""The Applications page, driven with AppTest as a user would: train on the Train page, then open it; or
import a model zip. Its probe numbers must be `sae probe`'s for the same weights, and what does not apply
(a model that does not fit its data, an upload without labels) gets a message, never a traceback."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from apptest_helpers import pin_navigation_mode, poll, stop_jobs
from streamlit.testing.v1 import AppTest

from sae_core.cli import main as cli
from sae_core.config.run import RunConfig
from sae_core.models import build
from sae_core.store import export

APP = Path(__file__).resolve().parent.parent / "app.py"
PAGE = "pages/applications.py"
RUN_TIMEOUT = 60  # the first run imports torch and scikit-learn on 2 shared cores
TINY = {"dataset": "digits", "hidden": "8", "steps": "100000", "batch_size": "32"}
UPLOAD = "A model zip downloaded from Train"


@pytest.fixture
def apps(monkeypatch):
    pin_navigation_mode(monkeypatch)
    made: list[AppTest] = []

    def make(query: dict[str, str] | None = None, page: str = PAGE) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT)
        at.query_params.update(query or {})
        made.append(at)
        at.run()
        at.switch_page(page).run()
        return at

    yield make
    for at in made:
        stop_jobs(at)


def _no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _texts(elements) -> str:
    return " ".join(e.value for e in elements)


def _upload(at: AppTest, name: str, raw: bytes) -> None:
    at.radio(key="app_source").set_value(UPLOAD).run()
    at.file_uploader(key="app_upload").set_value((name, raw, "application/zip")).run()
    _no_exceptions(at)


def _zip(config: RunConfig, image_shape: tuple[int, int]) -> bytes:
    h, w = image_shape
    return export.zip_bytes(build(config.model, h * w, image_shape), config, None, image_shape=image_shape)


def test_without_a_model_the_page_says_to_train_one_first(apps):
    at = apps()
    _no_exceptions(at)
    assert "Train a model on the **Train** page first" in _texts(at.info)


def test_a_model_trained_on_train_is_picked_up_and_its_probe_numbers_are_the_clis(apps, tmp_path):
    at = apps(TINY, page="pages/train.py")
    job = at.session_state["job"]
    at.button(key="train").click().run()
    poll(at, lambda: job.step_count >= 300, "300 training steps", 60)
    at.button(key="pause").click().run()
    at.switch_page(PAGE).run()
    _no_exceptions(at)
    assert f"step {job.step_count:,}" in _texts(at.caption)
    shown = {m.label: m.value for m in at.metric}
    # The Train page's download, unpacked, through `sae probe`.
    with zipfile.ZipFile(io.BytesIO(_train_download(job))) as z:
        z.extractall(tmp_path / "model")
    out = tmp_path / "probe.json"
    assert cli.main(["probe", "--model", str(tmp_path / "model"), "--json", str(out)]) == 0
    accuracy = json.loads(out.read_text())["accuracy"]
    assert shown["Hidden codes (8 dims)"] == f"{accuracy['codes']:.1%}"
    assert shown["Raw pixels (64 dims)"] == f"{accuracy['pixels']:.1%}"
    assert shown["PCA (8 dims)"] == f"{accuracy['pca']:.1%}"
    assert accuracy["codes"] > 0.5  # eight units after 300 steps, far above chance (0.1)
    keys = {c.key for c in at.get("plotly_chart")}
    assert {"app_probe_bars", "app_probe_curve", "app_confusion"} <= keys
    # The other sections draw too, each with its number.
    for section, chart in (
        ("Dimensionality reduction", "app_map_codes"),
        ("Denoising", "app_psnr_curve"),
        ("Anomaly detection", "app_roc"),
    ):
        at.segmented_control(key="app_section").set_value(section).run()
        _no_exceptions(at)
        assert chart in {c.key for c in at.get("plotly_chart")}, section
        assert at.metric, section


def _train_download(job) -> bytes:
    snap = job.latest()
    return export.zip_bytes(
        job.trainer.model, job.config, export.snapshot_metrics(snap), image_shape=snap.image_shape
    )


def test_an_imported_model_zip_is_used_and_a_bad_file_gets_a_message(apps):
    at = apps()
    _upload(at, "digits.zip", _zip(RunConfig.from_flat({"dataset": "digits", "hidden": 4}), (8, 8)))
    assert "the imported model digits.zip" in _texts(at.caption)
    assert "Hidden codes (4 dims)" in {m.label for m in at.metric}
    _upload(at, "notes.zip", b"not a zip at all")
    assert "not a zip file" in _texts(at.error)


def test_a_model_whose_input_size_is_not_its_datasets_gets_a_message(apps):
    at = apps()
    _upload(at, "big.zip", _zip(RunConfig.from_flat({"dataset": "digits", "hidden": 4}), (28, 28)))
    assert "The model takes 28×28 inputs (784 pixels) but the digits data has 8×8" in _texts(at.error)
    assert not at.metric


def test_an_upload_without_labels_says_the_probe_does_not_apply(apps):
    buf = io.BytesIO()
    np.save(buf, np.random.default_rng(0).random((120, 64), dtype=np.float32))
    at = apps({"dataset": "upload", "hidden": "4"}, page="pages/train.py")
    at.file_uploader(key="upload_file").set_value(
        ("mine.npy", buf.getvalue(), "application/octet-stream")
    ).run()
    at.button(key="step").click().run()
    assert at.session_state["job"].config.data.dataset == "upload"
    at.switch_page(PAGE).run()
    _no_exceptions(at)
    assert "Does not apply here: The upload data has no class labels" in _texts(at.info)
    at.segmented_control(key="app_section").set_value("Denoising").run()
    _no_exceptions(at)
    assert "no test split" in _texts(at.info)
    at.segmented_control(key="app_section").set_value("Dimensionality reduction").run()
    _no_exceptions(at)
    assert "app_map_codes" in {c.key for c in at.get("plotly_chart")}  # a map needs no labels


def test_an_imported_model_of_an_upload_says_its_data_is_not_here(apps, tmp_path):
    cfg = RunConfig.from_flat({"dataset": "upload", "upload": "0" * 32 + ".npy", "hidden": 4})
    at = apps()
    _upload(at, "mine.zip", _zip(cfg, (8, 8)))
    assert "Cannot load the data this model was trained on" in _texts(at.error)


def test_the_self_taught_split_and_a_held_out_class_train_a_copy_behind_a_button(apps):
    at = apps()
    cfg = RunConfig.from_flat({"dataset": "digits", "hidden": 8, "steps": 200, "batch_size": 64})
    _upload(at, "digits.zip", _zip(cfg, (8, 8)))
    at.toggle(key="app_st").set_value(True).run()
    assert at.number_input(key="app_st_steps").value == 200  # the run's own length
    at.button(key="app_st_run").click().run()
    _no_exceptions(at)
    shown = {m.label: m.value for m in at.metric}
    assert float(shown["Self-taught, hidden codes"].rstrip("%")) > 40  # 5 classes: chance is 20%
    assert "app_st_curve" in {c.key for c in at.get("plotly_chart")}
    at.segmented_control(key="app_section").set_value("Anomaly detection").run()
    at.radio(key="app_source_kind").set_value("class").run()
    assert "AUC" not in {m.label for m in at.metric}  # nothing until the copy is trained
    at.button(key="app_held_run").click().run()
    _no_exceptions(at)
    assert {"AUC", "Precision at the threshold", "Recall at the threshold"} <= {m.label for m in at.metric}
    assert "app_roc" in {c.key for c in at.get("plotly_chart")}


def test_a_bars_model_is_probed_on_which_bars_each_image_holds(apps):
    from sae_core import presets
    from sae_core.analysis.applications.common import train_model
    from sae_core.data import datasets as data

    cfg = presets.get("bars").config.replace(steps=1200)
    model = train_model(cfg, data.load(cfg.data))
    at = apps()
    _upload(at, "bars.zip", export.zip_bytes(model, cfg, None, image_shape=(8, 8)))
    shown = {m.label: m.value for m in at.metric}
    assert float(shown["Hidden codes: bars told right"].rstrip("%")) > 99
    assert "app_bar_presence" in {c.key for c in at.get("plotly_chart")}
