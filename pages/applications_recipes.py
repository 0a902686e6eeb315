"""The Applications page's "train the model this shows best on": one click to a recipe that demonstrates a
section, and the sentence that says when the current model is not that kind.

Not a page itself. A recipe is a preset (the probe's: a 28×28 recipe whose codes a linear classifier reads
better than the pixels; the map's: quick digits, whose codes' 2-D map keeps the classes apart better than
the pixels'; anomaly detection's: the bars, whose errors on noisy images stand far above those on clean
ones) or a change of the current model's settings (denoising: the same data and sizes, the denoising
variant). The click replaces the Train page's settings and opens it; the current run stays there as the
previous run once the new one is built. tests/test_applications_recipes.py measures each recipe's claim.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from pages import classroom, server, settings_state
from sae_core import presets
from sae_core.data import datasets as data

TRAIN_PAGE = "pages/train.py"
PROBE_PRESETS = ("mnist-seconds", "fashion-fast")
"""The probe's recipes, in order of preference: the first whose data (or its stand-in) is installed."""
MAP_PRESET = "quick-digits"
"""The 2-D map's recipe: on the labelled 8×8 digits, its codes' PCA map keeps the ten classes apart better
than the pixels' PCA map (a test sample's 10 nearest neighbours mostly share its class 70% of the time,
against 66%), and its data is always installed."""
ANOMALY_PRESET = "bars"
"""Anomaly detection's recipe: it reconstructs its own clean bars closely (FVE 0.98), so its error on test
images with Gaussian noise 0.2 separates them from the clean ones at AUC 1.00."""
GOOD_AUC = 0.9
"""An anomaly AUC from which the section shows its point without a word; below it the recipe is offered."""


def probe_preset() -> Any | None:
    """The probe's recipe on this machine: a preset whose dataset (or the one its card falls back to) is
    installed; None when neither is."""
    every = server.presets()
    for name in PROBE_PRESETS:
        preset = every.get(name)
        if preset is not None and data.availability(presets.dataset_to_open(preset))[0]:
            return preset
    return None


def open_preset(name: str) -> None:
    classroom.leave()
    settings_state.apply_preset(name)
    preset = server.presets()[name]
    settings_state.settings()["dataset"] = presets.dataset_to_open(preset)
    st.switch_page(TRAIN_PAGE)


def open_variant(config: Any, variant: str) -> None:
    """The current model's settings with another variant (its own settings at their defaults)."""
    classroom.leave()
    flat = {k: v for k, v in config.flat().items() if k not in settings_state.SERVER_ONLY}
    settings_state.replace_settings({**settings_state.base_settings(), **flat, "variant": variant})
    st.switch_page(TRAIN_PAGE)


def probe_recipe(codes_accuracy: float, pixels_accuracy: float) -> None:
    """Under the probe: when the codes read worse than the pixels, say why that is expected of this model
    and offer the recipe whose codes read better."""
    if codes_accuracy >= pixels_accuracy:
        return
    preset = probe_preset()
    where = f" **{preset.title}** is a recipe whose codes read better than its pixels." if preset else ""
    st.info(
        f"These codes are read {codes_accuracy:.1%} right against {pixels_accuracy:.1%} from the raw "
        "pixels: a small or briefly trained model keeps less of what tells the classes apart than the "
        f"pixels hold.{where}",
        icon=":material/lightbulb:",
    )
    if preset is not None:
        offer(preset, "app_recipe_probe")


def denoising_recipe(config: Any) -> None:
    """Under a model that is not the denoising variant: one click to that variant on the same data."""
    if config.model.variant == "denoising":
        return
    if st.button("Train the denoising variant on this data", key="app_recipe_denoising", type="primary"):
        open_variant(config, "denoising")


def offer(preset: Any, key: str) -> None:
    if st.button("Train the model this shows best on", key=key, type="primary"):
        open_preset(preset.name)


def map_recipe(separation: dict[str, float] | None) -> None:
    """Under the 2-D maps: on data without classes, or when the codes' map keeps the classes apart less well
    than the pixels' map of the same size, say so and offer the recipe whose codes' map does better.
    separation: the maps' `Embedding.separation` (None: the data has no labels)."""
    if separation is not None and separation["codes"] >= separation["pixels"]:
        return
    preset = server.presets()[MAP_PRESET]
    if separation is None:
        why = (
            "This data has no classes, so its maps show the data's shape but not whether a code keeps kinds "
            "of input apart."
        )
    else:
        why = (
            "On the codes' map a sample's nearest neighbours mostly share its class "
            f"{separation['codes']:.0%} of the time, against {separation['pixels']:.0%} on the pixels': this "
            "code keeps less of what tells the classes apart than two pixel directions do (too few units, or "
            "too short a run)."
        )
    st.info(
        f"{why} **{preset.title}** trains on labelled digits, and its codes' map keeps the ten digits apart "
        "better than the pixels' map.",
        icon=":material/lightbulb:",
    )
    offer(preset, "app_recipe_map")


def anomaly_recipe(auc: float, description: str, config: Any) -> None:
    """Under the anomaly numbers: when the AUC is below GOOD_AUC and the model is not the recipe's, say why
    and offer a model whose reconstruction error separates anomalies clearly."""
    preset = server.presets()[ANOMALY_PRESET]
    recipe = preset.config
    if auc >= GOOD_AUC or (config.model == recipe.model and config.data.dataset == recipe.data.dataset):
        return
    why = (  # below 0.5 the section's own caption has said why
        ""
        if auc < 0.5
        else f"AUC {auc:.2f}: this model's errors on {description} overlap its errors on its own clean "
        "test images, so no threshold separates them well. "
    )
    st.info(
        f"{why}A model that reconstructs its own data closely, and little else, separates them: "
        f"**{preset.title}** reaches AUC 1.00 on its test images with Gaussian noise 0.2.",
        icon=":material/lightbulb:",
    )
    offer(preset, "app_recipe_anomaly")
