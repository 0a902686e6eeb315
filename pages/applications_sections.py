"""Three sections of the Applications page (the fourth, anomaly detection, is pages/applications_anomaly.py);
each draws from sae_core.analysis.applications and its figures.

Each says in one sentence what it shows, draws a picture and a number, and says plainly when it does not
apply. Expensive results go through st.cache_data keyed by the model's weights hash (`Loaded.key`) and
the dataset's config; the model and the dataset themselves are passed unhashed (leading underscore).
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import streamlit as st

from pages import applications_recipes
from sae_core.analysis.applications import NotApplicable, bars_probe, denoise, embedding, probe
from sae_core.analysis.applications.common import COPY_STEPS, copy_steps
from sae_core.config.run import DataConfig
from sae_core.data import datasets as data
from sae_core.figures import applications as figs

SELF_TAUGHT = "app_self_taught"
"""session_state: {(config JSON, steps): self-taught probe answer}. Keyed by the configuration, not the
weights: the copy is trained from the configuration alone, so a model that keeps training keeps its answer."""


def data_key(loaded: Any) -> str:
    return json.dumps(dataclasses.asdict(loaded.config.data), sort_keys=True)


def not_applicable(err: Exception) -> None:
    st.info(f"Does not apply here: {err}", icon=":material/block:")


def flat_code_note(flat: int, width: int, consequence: str) -> None:
    """Say plainly when some or all of the code's numbers are the same for every sample."""
    if flat == 0:
        return
    why = (
        "dead units under too strong a penalty, or a VAE's latents collapsed onto its prior, often from "
        "too high a learning rate"
    )
    if flat == width:
        st.warning(
            f"All {width} numbers of this model's code are the same for every sample ({why}): {consequence}",
            icon=":material/warning:",
        )
    else:
        st.caption(f"{flat} of the {width} numbers of the code are the same for every sample ({why}).")


# ----- feature learning ---------------------------------------------------------------------------------


@st.cache_data(max_entries=8, show_spinner=False)
def codes_probe(key: str, dkey: str, _model: Any, _dataset: data.Dataset) -> dict:
    capped, y_train, y_test = probe.labelled_split(_dataset)
    return probe.probe_sets({"codes": probe.code_features(_model, capped)}, y_train, y_test)


@st.cache_data(max_entries=4, show_spinner=False)
def baseline_probe(dkey: str, n_components: int, _dataset: data.Dataset) -> dict:
    capped, y_train, y_test = probe.labelled_split(_dataset)
    return probe.probe_sets(probe.baseline_features(capped, n_components), y_train, y_test)


def full_probe(loaded: Any, dataset: data.Dataset) -> dict:
    """probe.probe()'s answer, its halves cached apart: the pixel and PCA probes depend on the data only."""
    dkey = data_key(loaded)
    with st.spinner("Fitting the probe on the hidden codes…"):
        codes = codes_probe(loaded.key, dkey, loaded.model, dataset)
    units = codes["results"]["codes"].n_features
    with st.spinner("Fitting the probes on raw pixels and PCA (once per dataset)…"):
        base = baseline_probe(dkey, units, dataset)
    return {key: {**codes[key], **base[key]} for key in ("results", "curves")}


def feature_learning(loaded: Any, dataset: data.Dataset) -> None:
    st.caption(
        "A linear classifier (logistic regression) trained on the hidden codes, on raw pixels and on PCA "
        "with as many dimensions: held-out accuracy says how much class information the features keep "
        "in a linearly readable form."
    )
    if dataset.ground_truth is not None and loaded.config.data.dataset == "bars":
        return bar_presence(loaded, dataset)
    try:
        answer = full_probe(loaded, dataset)
    except NotApplicable as err:
        return not_applicable(err)
    results = answer["results"]
    codes = results["codes"]
    flat_code_note(
        codes.flat_features, codes.n_features, "the codes hold nothing to read, so their probe is at chance."
    )
    cols = st.columns(3)
    for col, name in zip(cols, ("codes", "pixels", "pca"), strict=True):
        r = results[name]
        col.metric(
            f"{r.title} ({r.n_features} dims)", f"{r.accuracy:.1%}", help=f"on {r.n_test:,} test samples"
        )
    applications_recipes.probe_recipe(codes.accuracy, results["pixels"].accuracy)
    left, right = st.columns(2)
    left.plotly_chart(figs.probe_accuracy_figure(results), key="app_probe_bars")
    right.plotly_chart(figs.learning_curve_figure(answer["curves"]), key="app_probe_curve")
    which = st.radio(
        "Confusion matrix of",
        ("codes", "pixels", "pca"),
        format_func=probe.FEATURE_TITLES.get,
        horizontal=True,
        key="app_confusion_of",
    )
    st.plotly_chart(figs.confusion_figure(results[which]), key="app_confusion")
    self_taught(loaded, dataset)


@st.cache_data(max_entries=8, show_spinner=False)
def cached_presence(key: str, dkey: str, _model: Any, _dataset: data.Dataset, _cfg: DataConfig):
    return bars_probe.presence_probe(_model, _dataset, _cfg)


def bar_presence(loaded: Any, dataset: data.Dataset) -> None:
    """The bars data has no classes but a known answer: which bars each image holds."""
    st.caption(
        "The bars have no classes, but a known answer: for each of the 16 bars, a probe asks whether it is "
        "in the image. A model whose units found the bars answers near 100%."
    )
    try:
        with st.spinner("Fitting one probe per bar…"):
            result = cached_presence(loaded.key, data_key(loaded), loaded.model, dataset, loaded.config.data)
    except NotApplicable as err:
        return not_applicable(err)
    cols = st.columns(3)
    cols[0].metric(
        "Hidden codes: bars told right", f"{result.accuracy['codes']:.1%}", help="mean over the 16 bars"
    )
    cols[1].metric("Raw pixels: bars told right", f"{result.accuracy['pixels']:.1%}")
    cols[2].metric("Always “absent”", f"{result.base_rate:.1%}", help="what a probe must beat")
    st.plotly_chart(figs.bar_presence_figure(result), key="app_bar_presence")


def self_taught(loaded: Any, dataset: data.Dataset) -> None:
    if not st.toggle("UFLDL self-taught split: features learned on classes 5-9, probe on 0-4", key="app_st"):
        return
    st.caption(
        "The button trains a separate copy of this configuration on classes 5-9 only (no labels used; your "
        "model is not touched), then probes on classes 0-4, which the copy's features never saw."
    )
    try:
        probe.self_taught_split(dataset)
    except NotApplicable as err:
        return not_applicable(err)
    steps = st.number_input(
        "Training steps", 10, 5 * COPY_STEPS, copy_steps(loaded.config), step=100, key="app_st_steps"
    )
    answers = st.session_state.setdefault(SELF_TAUGHT, {})
    if st.button("Learn the features and probe", key="app_st_run"):
        bar = st.progress(0.0, text="Training on classes 5-9…")
        answers[(loaded.config.to_json(), steps)] = probe.self_taught(
            loaded.config, dataset, int(steps), lambda f: bar.progress(f, text="Training on classes 5-9…")
        )
        bar.empty()
    answer = answers.get((loaded.config.to_json(), steps))
    if answer is None:
        return
    cols = st.columns(3)
    for col, r in zip(cols, answer["results"].values(), strict=True):
        col.metric(
            f"Self-taught, {r.title.lower()}", f"{r.accuracy:.1%}", help=f"classes 0-4, {r.n_test} tests"
        )
    st.plotly_chart(figs.learning_curve_figure(answer["curves"]), key="app_st_curve")


# ----- dimensionality reduction ---------------------------------------------------------------------------


@st.cache_data(max_entries=8, show_spinner=False)
def cached_embedding(key: str, dkey: str, method: str, _model: Any, _dataset: data.Dataset):
    return embedding.embed_2d(_model, _dataset, method)


TSNE_WAIT = (
    "Computing the t-SNE maps of {n:,} test samples (codes and pixels): 7 s on a quiet 2-core server, up "
    "to 35 s on a busy one, once per model. The PCA maps stay until then."
)


def dimensionality_reduction(loaded: Any, dataset: data.Dataset) -> None:
    st.caption(
        "The same test samples mapped to two dimensions from the hidden codes (left) and from the raw pixels "
        "(right); coloured by class, the better map keeps the classes apart."
    )
    method = st.radio(
        "Map",
        ("pca", "tsne"),
        format_func={"pca": "PCA (instant)", "tsne": "t-SNE (7-35 s, once per model)"}.get,
        horizontal=True,
        key="app_map",
    )
    try:  # PCA first, always: it answers at once and stays on screen while t-SNE computes
        with st.spinner("Computing the PCA maps…"):
            pca = cached_embedding(loaded.key, data_key(loaded), "pca", loaded.model, dataset)
    except NotApplicable as err:
        return not_applicable(err)
    if pca.labels is None:
        st.caption("This data has no labels, so the points are not coloured by class.")
    flat_code_note(pca.flat_codes, pca.code_width, "their map is a single point.")
    if pca.code_width <= 2:
        st.caption(f"The code has only {pca.code_width} numbers: its map is the code itself, turned by PCA.")
    note, *separation = (col.empty() for col in st.columns(3))
    kept = pca.explained["codes"]
    note.metric(
        "Variance kept, codes' PCA map",
        f"{kept:.0%}" if math.isfinite(kept) else "none to keep",
        help="The fraction of the codes' variance along the map's two axes.",
    )
    show_separation(pca, separation)
    applications_recipes.map_recipe(pca.separation)
    left, right = st.columns(2)
    slots = {"codes": left.empty(), "pixels": right.empty()}
    for which, slot in slots.items():
        slot.plotly_chart(figs.embedding_figure(pca, which), key=f"app_map_{which}")
    if method != "tsne":
        return
    wait = TSNE_WAIT.format(n=min(embedding.MAX_POINTS["tsne"], len(pca.codes)))
    with note.container(), st.spinner(wait, show_time=True):  # the clock shows it is still working
        tsne = cached_embedding(loaded.key, data_key(loaded), "tsne", loaded.model, dataset)
    note.caption("t-SNE keeps each sample's near neighbours close; distances between clusters mean little.")
    show_separation(tsne, separation)
    for which, slot in slots.items():
        slot.plotly_chart(figs.embedding_figure(tsne, which), key=f"app_tsne_{which}")


def show_separation(maps: embedding.Embedding, slots: list) -> None:
    """Each map's class separation (`Embedding.separation`) in its slot; nothing without labels."""
    if maps.separation is None:
        return
    method = "PCA" if maps.method == "pca" else "t-SNE"
    for slot, which in zip(slots, ("codes", "pixels"), strict=True):
        slot.metric(
            f"Classes kept apart, {which}' {method} map",
            f"{maps.separation[which]:.0%}",
            help=f"How often a sample's {embedding.NEIGHBOURS} nearest neighbours on the map are mostly of "
            "its own class: the higher, the further apart the map keeps the classes.",
        )


# ----- denoising ------------------------------------------------------------------------------------------


@st.cache_data(max_entries=16, show_spinner=False)
def cached_denoise(key: str, dkey: str, kind: str, level: float, _model: Any, _dataset: data.Dataset):
    x = denoise.held_out_images(_dataset)
    return denoise.denoise(_model, x, kind, level), denoise.psnr_curve(_model, x, kind)


def denoising(loaded: Any, dataset: data.Dataset) -> None:
    st.caption(
        "Test images with noise added, and the model's reconstruction of them: PSNR against the clean "
        "images says whether reconstructing removes noise (higher is better)."
    )
    if loaded.config.model.variant != "denoising":
        st.caption(
            "This model was not trained on noisy inputs; the **denoising** variant is, and gains more on "
            "masking and salt-and-pepper noise (0.6–2 dB more than a plain model at level 0.3, measured on "
            "digits and Fashion-MNIST), hardly on Gaussian noise, which any autoencoder partly averages away."
        )
        applications_recipes.denoising_recipe(loaded.config)
    left, right = st.columns(2)
    kind = left.selectbox(
        "Noise", list(denoise.NOISE_KINDS), format_func=denoise.NOISE_KINDS.get, key="app_noise"
    )
    level = right.slider("Noise level (σ or probability)", 0.05, 0.5, 0.3, 0.05, key="app_noise_level")
    try:
        with st.spinner("Reconstructing the noisy test images…"):
            result, curve = cached_denoise(loaded.key, data_key(loaded), kind, level, loaded.model, dataset)
    except NotApplicable as err:
        return not_applicable(err)
    cols = st.columns(3)
    cols[0].metric(
        "PSNR of the noisy input", f"{result.psnr_noisy:.2f} dB", help=f"over {result.n:,} test images"
    )
    cols[1].metric("PSNR of the reconstruction", f"{result.psnr_recon:.2f} dB", f"{result.gain:+.2f} dB")
    cols[2].metric(
        "PSNR without noise", f"{result.psnr_clean_recon:.2f} dB", help="the model's best, on clean inputs"
    )
    left, right = st.columns(2)
    left.plotly_chart(figs.denoise_figure(result, loaded.image_shape), key="app_denoise_images")
    right.plotly_chart(figs.psnr_curve_figure(curve, kind, level), key="app_psnr_curve")
