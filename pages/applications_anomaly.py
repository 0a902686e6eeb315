"""The Applications page's anomaly-detection section: reconstruction error as an anomaly score.

Anomalies come from corrupted test images, another dataset of the same shape, or a class held out of
training (a copy of the configuration trained without it, behind a button). Drawn by pages/applications.py.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from pages import applications_recipes, datasets
from pages.applications_sections import not_applicable
from sae_core.analysis.applications import NotApplicable, anomaly, denoise
from sae_core.analysis.applications.common import copy_steps, require_labels
from sae_core.config.run import DataConfig
from sae_core.data import datasets as data
from sae_core.figures import applications as figs

HELD_OUT = "app_held_out_models"
"""session_state: {(config JSON, class): a copy of the configuration trained without that class}; keyed by
the configuration (the copy's only input), so a model that keeps training keeps its copy."""


def anomaly_detection(loaded: Any, dataset: data.Dataset) -> None:
    st.caption(
        "The reconstruction error of each test sample as an anomaly score: the model reconstructs what looks "
        "like its training data, so anomalies score higher; AUC 1 separates them perfectly, 0.5 is chance."
    )
    source = st.radio(
        "Anomalies",
        list(anomaly.SOURCES),
        format_func=anomaly.SOURCES.get,
        horizontal=True,
        key="app_source_kind",
    )
    try:
        result = anomaly_result(loaded, dataset, source)
    except NotApplicable as err:
        return not_applicable(err)
    if result is None:
        return
    lo, hi = (
        float(min(result.normal.min(), result.anomalous.min())),
        float(max(result.normal.max(), result.anomalous.max())),
    )
    threshold = st.slider(
        "Threshold: samples with a larger error are flagged",
        lo,
        max(hi, lo + 1e-9),
        min(max(result.default_threshold, lo), hi),
        (hi - lo) / 200 or 1e-9,
        format="%.4f",
        key=f"app_threshold_{result.source}_{result.description}_{loaded.key}",
    )
    point = result.at(threshold)
    cols = st.columns(3)
    cols[0].metric(
        "AUC", f"{result.auc:.3f}", help=f"{len(result.normal)} normal, {len(result.anomalous)} anomalies"
    )
    cols[1].metric(
        "Precision at the threshold", f"{point['precision']:.1%}", help="flagged samples that are anomalies"
    )
    cols[2].metric("Recall at the threshold", f"{point['recall']:.1%}", help="anomalies that are flagged")
    if result.auc < 0.5:
        st.caption(
            f"AUC below 0.5: this model reconstructs the anomalies ({result.description}) *better* than its "
            "own test samples, so a large error does not flag them: they are simpler for it, not stranger."
        )
    applications_recipes.anomaly_recipe(result.auc, result.description, loaded.config)
    left, right = st.columns(2)
    left.plotly_chart(figs.error_histogram_figure(result, threshold), key="app_error_hist")
    right.plotly_chart(figs.roc_figure(result, point), key="app_roc")


def anomaly_result(loaded: Any, dataset: data.Dataset, source: str) -> anomaly.Anomalies | None:
    if source == "noise":
        left, right = st.columns(2)
        kind = left.selectbox(
            "Noise", list(denoise.NOISE_KINDS), format_func=denoise.NOISE_KINDS.get, key="app_an_noise"
        )
        level = right.slider("Noise level", 0.05, 0.5, 0.2, 0.05, key="app_an_level")
        return anomaly.detect(loaded.model, dataset, "noise", kind=kind, level=level)
    if source == "dataset":
        return other_dataset(loaded, dataset)
    return held_out_class(loaded, dataset)


def other_dataset(loaded: Any, dataset: data.Dataset) -> anomaly.Anomalies | None:
    data_dir = loaded.config.data.data_dir
    same = [
        name
        for name, info in data.DATASETS.items()
        if tuple(info.image_shape) == tuple(dataset.image_shape)
        and name not in (dataset.name, "upload")
        and data.availability(name, data_dir)[0]
    ]
    if not same:
        h, w = dataset.image_shape
        raise NotApplicable(f"No other dataset here has {h}×{w} images.")
    name = st.selectbox("Other dataset", same, format_func=lambda n: data.DATASETS[n].title, key="app_other")
    with st.spinner(f"Loading {name}…"):
        other = datasets.load_dataset(DataConfig(dataset=name, data_dir=data_dir))
    return anomaly.detect(loaded.model, dataset, "dataset", other=other)


def held_out_class(loaded: Any, dataset: data.Dataset) -> anomaly.Anomalies | None:
    _, y_test = require_labels(dataset, "a held-out class")
    classes = sorted(set(y_test.tolist()))
    held = st.selectbox("Class held out of training", classes, key="app_held_class")
    st.caption(
        "Your model saw every class, so the button trains a separate copy of its configuration without the "
        "chosen class (a few seconds to a minute; your model is not touched); the copy's errors on that "
        "class are the anomalies."
    )
    models = st.session_state.setdefault(HELD_OUT, {})
    if st.button(f"Train a copy without class {held}", key="app_held_run"):
        bar = st.progress(0.0, text=f"Training without class {held}…")
        models[(loaded.config.to_json(), held)] = anomaly.train_without_class(
            loaded.config,
            dataset,
            held,
            copy_steps(loaded.config),
            progress=lambda f: bar.progress(f, text=f"Training without class {held}…"),
        )
        bar.empty()
    model = models.get((loaded.config.to_json(), held))
    if model is None:
        return None
    return anomaly.detect(model, dataset, "class", held_out=held)
