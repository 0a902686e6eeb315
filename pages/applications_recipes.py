"""The Applications page's "train the model this shows best on": one click to a recipe that demonstrates a
section, and the sentence that says when the current model is not that kind.

Not a page itself. A recipe is a preset (the probe's: a 28×28 recipe whose codes a linear classifier reads
better than the pixels) or a change of the current model's settings (denoising: the same data and sizes,
the denoising variant). The click replaces the Train page's settings and opens it; the current run stays
there as the previous run once the new one is built.
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
    if preset is not None and st.button(
        "Train the model this shows best on", key="app_recipe_probe", type="primary"
    ):
        open_preset(preset.name)


def denoising_recipe(config: Any) -> None:
    """Under a model that is not the denoising variant: one click to that variant on the same data."""
    if config.model.variant == "denoising":
        return
    if st.button("Train the denoising variant on this data", key="app_recipe_denoising", type="primary"):
        open_variant(config, "denoising")
