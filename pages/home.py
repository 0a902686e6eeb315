"""Home page: what a sparse autoencoder is, and preset cards that open the Train page configured."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from pages import classroom, navigation_guard, server, settings_state
from sae_core import presets
from sae_core.data import datasets as data

navigation_guard.leave_old_multipage_mode()

PICTURE = Path(__file__).resolve().parent.parent / "assets" / "home-picture.png"
TRAIN_PAGE = "pages/train.py"
ALTERNATIVE = presets.ALTERNATIVE  # a missing dataset -> the one its card offers the same recipe on


def open_preset(name: str, dataset: str | None = None) -> None:
    classroom.leave()  # the preset replaces a classroom link's settings: every control is back
    settings_state.apply_preset(name)
    if dataset is not None:
        settings_state.settings()["dataset"] = dataset
    st.switch_page(TRAIN_PAGE)


def preset_card(preset) -> None:
    ok, where = data.availability(preset.dataset)
    with st.container(border=True, height="stretch"):
        st.markdown(f"#### {preset.title}")
        st.write(preset.blurb_for(presets.dataset_to_open(preset)))  # garments, not strokes, on Fashion-MNIST
        if preset.seconds is not None:
            st.caption(_time_caption(preset))
        if preset.name == settings_state.presets_default():
            st.caption("The offline default.")
        if ok:
            if st.button("Open in Train", key=f"preset_{preset.name}", type="primary", width="stretch"):
                open_preset(preset.name)
            return
        title = data.DATASETS[preset.dataset].title
        st.warning(f"{title} is not installed here ({where}).", icon=":material/inventory_2:")
        st.caption(_how_to_get(preset.dataset))
        alternative = ALTERNATIVE.get(preset.dataset)
        if alternative and data.availability(alternative)[0]:
            label = f"Same recipe on {data.DATASETS[alternative].title}"
            if st.button(label, key=f"preset_{preset.name}_{alternative}", width="stretch"):
                open_preset(preset.name, alternative)
        elif st.button("Open in Train anyway", key=f"preset_{preset.name}", width="stretch"):
            open_preset(preset.name)


def _time_caption(preset) -> str:
    how = "extrapolated from a shorter run" if preset.extrapolated else "measured"
    return (
        f":material/timer: About {presets.duration_text(preset.seconds)} on a 2-core CPU "
        f"({how} with `benchmarks/preset_times.py`)."
    )


def _how_to_get(dataset: str) -> str:
    folder = data.default_data_dir()
    if dataset == "fashion-mnist":
        return (
            "Install it with `sudo apt-get install dataset-fashion-mnist`, or go online once to download it."
        )
    return (
        f"It downloads itself the first time the app runs with internet access. Offline, copy torchvision's "
        f"{dataset} files into `{folder}` (or set `$SAE_DATA_DIR`)."
    )


PARTS = (
    ("natural-patches", "edge detectors on photographs"),
    ("mnist", "pen strokes on handwritten digits"),
    ("digits", "whole-digit templates on tiny 8×8 digits"),
    ("fashion-mnist", "garment shapes and parts on photos of clothes"),
)
"""What the units learn on each dataset, for the intro: it names only what this machine can show."""


def learned_parts() -> str:
    """The intro's last sentence: the reusable parts units learn, on the datasets installed here."""
    parts = ["the single bars that Földiák's bar pictures are made of"]
    parts += [text for name, text in PARTS if data.availability(name)[0]]
    listed = ", ".join(parts[:-1]) + f" and {parts[-1]}" if len(parts) > 1 else parts[0]
    return (
        "Forced to explain each input with a few active units, the units learn reusable parts of the data: "
        f"{listed}."
    )


def main() -> None:
    st.title("Sparse Autoencoder Playground")
    every = server.presets()
    first = every[settings_state.presets_default()]
    text, start = st.columns([1.4, 1], gap="large")
    with text:
        st.markdown(
            "An **autoencoder** is a small neural network trained to copy its input to its output through a "
            "layer of hidden units, so it must find a compact code for the data.\n\n"
            "A **sparse** autoencoder adds a penalty that keeps each hidden unit silent most of the time: "
            "the KL term pushes every unit's mean activation ρ̂ⱼ towards a small target ρ, weighted by β.\n\n"
            + learned_parts()
        )
        st.markdown("Pick a preset, press **Train**, and move ρ and β while it learns.")
    with start:  # on the first screen: one click from here to a lecture's first run
        preset_card(first)
    st.subheader("More presets")
    others = [preset for name, preset in every.items() if name != first.name]
    for begin in range(0, len(others), 3):
        for col, preset in zip(st.columns(3), others[begin : begin + 3], strict=False):
            with col:
                preset_card(preset)
    if PICTURE.exists():
        st.image(
            str(PICTURE),
            caption="A real run (UFLDL recipe, 400 L-BFGS steps): each tile on the right is the input "
            "pattern that most excites one hidden unit.",
        )


main()
