"""Applications page: what the learned features are good for, on the model trained on the Train page or a
model zip downloaded from it.

Four sections (feature learning, dimensionality reduction, denoising, anomaly detection) are drawn by
pages/applications_sections.py and pages/applications_anomaly.py from the pure functions of
sae_core.analysis.applications; only the chosen one runs. Nothing here retrains the model; the two experiments
that need a model trained on part of the data (the self-taught split, a class held out) train a copy
behind a button, with a progress bar.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
from torch import nn

from pages import applications_anomaly, datasets, navigation_guard, session_job
from pages import applications_sections as sections
from sae_core.analysis.applications import NotApplicable, check_fits
from sae_core.analysis.applications.common import code_width, load_model_zip, weights_key
from sae_core.config.run import RunConfig
from sae_core.data import datasets as data

navigation_guard.leave_old_multipage_mode()

IMPORTED = "app_imported"
"""st.session_state key: the Loaded model imported from a zip (kept across reruns of this session)."""
SOURCE = "app_source"
SESSION, UPLOAD = "The model trained on the Train page", "A model zip downloaded from Train"
SECTIONS = {
    "Feature learning": sections.feature_learning,
    "Dimensionality reduction": sections.dimensionality_reduction,
    "Denoising": sections.denoising,
    "Anomaly detection": applications_anomaly.anomaly_detection,
}


@dataclass(frozen=True)
class Loaded:
    """A model on the CPU with what the sections need to know about it."""

    model: nn.Module
    config: RunConfig
    image_shape: tuple[int, int]
    key: str
    """Hash of the weights and config: the cache key of everything computed from this model."""
    title: str


def session_model() -> Loaded | None:
    """A CPU copy of the session's trained model (it may still be training), or None before any step."""
    job = session_job.current_job()
    if job is None or job.step_count == 0:
        return None
    shape = tuple(job.trainer.dataset.image_shape)
    model, step = job.model_copy()  # between two steps of a run that may still be training
    title = f"the Train page's model at step {step:,}"
    if job.running:
        title += " (still training: these numbers are of its weights now; pause it to hold them)"
    return Loaded(model, job.config, shape, weights_key(model, job.config), title)


def load_zip(raw: bytes, name: str) -> Loaded:
    model, config, shape = load_model_zip(raw, name)
    return Loaded(model, config, shape, weights_key(model, config), f"the imported model {name}")


def on_upload() -> None:
    upload = st.session_state.get("app_upload")
    st.session_state.pop(IMPORTED, None)
    st.session_state.pop("app_upload_error", None)
    if upload is None:
        return
    try:
        st.session_state[IMPORTED] = load_zip(upload.getvalue(), upload.name)
    except (ValueError, OSError) as err:
        st.session_state["app_upload_error"] = str(err)


def choose_model() -> Loaded | None:
    """The source picker and the uploader; the chosen model, or None (with a message why)."""
    source = st.radio("Model", (SESSION, UPLOAD), key=SOURCE, horizontal=True)
    if source == UPLOAD:
        st.file_uploader(
            "Model zip (the **Download** button of the Train page)",
            type=["zip"],
            key="app_upload",
            on_change=on_upload,
        )
        if "app_upload_error" in st.session_state:
            st.error(f"Cannot use this file: {st.session_state['app_upload_error']}", icon=":material/error:")
            return None
        imported = st.session_state.get(IMPORTED)
        if imported is None:
            st.info("Upload a model zip downloaded from the Train page.", icon=":material/upload:")
        return imported
    trained = session_model()
    if trained is None:
        st.info(
            "Train a model on the **Train** page first (a few seconds is enough), or import a model zip.",
            icon=":material/model_training:",
        )
        st.page_link("pages/train.py", label="Go to Train", icon=":material/model_training:")
    return trained


def dataset_of(loaded: Loaded) -> data.Dataset | None:
    """The dataset the model was trained on (the session's own, or loaded from the model's config)."""
    job = session_job.current_job()
    if job is not None and loaded.config == job.config and st.session_state.get(SOURCE) != UPLOAD:
        return job.trainer.dataset
    try:
        return datasets.load_dataset(loaded.config.data)
    except (data.DataUnavailableError, data.UploadError, ValueError, OSError) as err:
        st.error(f"Cannot load the data this model was trained on: {err}", icon=":material/cloud_off:")
        return None


def main() -> None:
    st.title("What sparse features are for")
    st.caption(
        "Four classic uses of an autoencoder, on a model you trained: its codes as features for a linear "
        "classifier, as a 2-D map, and its reconstructions for removing noise and spotting the unusual."
    )
    loaded = choose_model()
    if loaded is None:
        return
    dataset = dataset_of(loaded)
    if dataset is None:
        return
    h, w = loaded.image_shape
    st.caption(
        f"Using {loaded.title}: {loaded.config.model.variant} variant, {h}×{w} inputs, "
        f"data **{dataset.name}** ({len(dataset.train):,} training samples)."
    )
    try:
        check_fits(loaded.image_shape, dataset)
    except NotApplicable as err:
        st.error(str(err), icon=":material/error:")
        return
    model = loaded.config.model
    units = model.spec.code_units(model, code_width(loaded.model, dataset.train))
    st.caption(f"Its code, the features every section works on: {units}.")
    section = st.segmented_control("Section", list(SECTIONS), default="Feature learning", key="app_section")
    SECTIONS[section or "Feature learning"](loaded, dataset)


main()
