"""The Train page's sidebar: every control of the run, its callback, and the upload.

Not a page itself (pages/train.py draws it). Each control's key is its config field's name and its
tooltip the field's docstring; a change goes through `settings_state.change_setting` (a refused value gets its
message under the control). The chosen variant's own controls are generated from its spec
(`sae_core.models.spec.Control`): the widget kind follows the field's type, as the CLI's flags do.
"""

from __future__ import annotations

from typing import Any, get_args

import streamlit as st

from pages import classroom, datasets, notices, settings_state
from sae_core.config.run import FIELD_DOCS, Optimizer, Output, TrainConfig, field_type
from sae_core.config.sections import SIZE_LIMITS
from sae_core.data import datasets as data
from sae_core.fields import Setting
from sae_core.models import REGISTRY, get_spec
from sae_core.models.spec import Control, VariantSpec
from sae_core.penalties.registry import get_penalty

RHO_GRID = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
UNTIL_PAUSED = "until_paused"
"""Key of the "Run until paused" box: the setting steps = 0 (the box is set from the settings each run)."""
KEPT_LENGTH = "kept_length"
"""The run's length before "Run until paused" was ticked: the length input shows it, unticking restores it."""


# ----- callbacks ------------------------------------------------------------------------------------------
def on_setting(key: str) -> None:
    """A control changed: see settings_state.change_setting."""
    settings_state.change_setting(key)


def on_until_paused() -> None:
    """Run until paused (steps 0) or go back to the kept length; live, so a running job switches at once."""
    if st.session_state[UNTIL_PAUSED]:
        st.session_state[KEPT_LENGTH] = settings_state.settings()["steps"] or TrainConfig().steps
        if settings_state.settings().get("epochs") is not None:  # a length in epochs (from a link) ends too
            settings_state.set_setting("epochs", None)
        settings_state.set_setting("steps", 0)
    else:
        length = st.session_state.get(KEPT_LENGTH) or TrainConfig().steps
        settings_state.set_setting("steps", length)
        st.session_state["steps"] = length


def on_upload() -> None:
    """Check the uploaded file now, so a bad file gets a message next to the uploader, then keep it under a
    server-issued id for this session (the file it replaces is deleted)."""
    upload = st.session_state.get("upload_file")
    settings_state.errors().pop("upload", None)
    if upload is None:
        return
    raw = upload.getvalue()
    try:
        x, shape = data.load_upload_bytes(raw, upload.name)
    except data.UploadError as err:
        settings_state.errors()["upload"] = notices.literal(err)
        return
    settings_state.apply_setting("upload", datasets.session_uploads().put(raw, upload.name, len(x), shape))
    st.session_state[notices.NOTICE] = (
        f"Loaded {notices.literal(upload.name)}: {len(x)} samples of {shape[0]}×{shape[1]} pixels."
    )


# ----- widgets --------------------------------------------------------------------------------------------
def error_under(key: str) -> None:
    message = settings_state.errors().get(key)
    if message:
        st.error(f"Not applied: {message}", icon=":material/block:")


def widget(kind, label: str, key: str, **kwargs) -> None:
    if not classroom.allows(key):  # a classroom link hides it: the setting keeps the link's value
        return
    if kind is st.number_input and key in SIZE_LIMITS and "format" not in kwargs:  # the config's bound
        kwargs.setdefault("max_value", int(SIZE_LIMITS[key]))
    kind(label, key=key, help=FIELD_DOCS.get(key), on_change=on_setting, args=(key,), **kwargs)
    error_under(key)


def widget_value(key: str, value: Any) -> Any:
    """A setting as its widget holds it: a tuple (layer sizes) as the text "128,64", the rest unchanged."""
    if str(field_type(key)).startswith("tuple"):
        return ",".join(str(v) for v in value)
    if key == "steps" and value == 0:  # until paused: the (disabled) length input shows the kept length
        return st.session_state.get(KEPT_LENGTH) or TrainConfig().steps
    return value


def spec_control(control: Control) -> None:
    """One variant control; its kind follows the config field's type (choices, bool, tuple, number)."""
    key, hint = control.field, str(field_type(control.field))
    choices = control.choices
    if choices is None:
        from sae_core.config import run as config

        alias = getattr(config, hint, None)
        choices = get_args(alias) or None
    if choices is not None:
        names = control.choice_names or {}
        widget(st.selectbox, control.label, key, options=list(choices), format_func=lambda v: names.get(v, v))
    elif hint.startswith("bool"):
        widget(st.checkbox, control.label, key)
    elif hint.startswith("tuple"):
        widget(st.text_input, control.label, key)
    else:
        numbers: dict[str, Any] = {"step": control.step if control.step is not None else 1}
        if control.minimum is not None:
            numbers["min_value"] = control.minimum
        if hint.startswith("float"):
            numbers = {k: float(v) for k, v in numbers.items()}
            numbers["format"] = control.number_format or "%.3f"
        else:
            numbers = {k: int(v) for k, v in numbers.items()}
        widget(st.number_input, control.label, key, **numbers)


def setting_control(setting: Setting) -> None:
    """A control for a setting a penalty declares (its kind follows the setting's type)."""
    label, key = setting.label or setting.name, setting.name
    if setting.choices is not None:
        widget(st.selectbox, label, key, options=list(setting.choices))
    elif setting.type == "bool":
        widget(st.checkbox, label, key)
    elif setting.type == "int":
        low = int(setting.minimum) if setting.minimum is not None else None
        widget(st.number_input, label, key, min_value=low, step=int(setting.step or 1))
    else:
        low = float(setting.minimum) if setting.minimum is not None and not setting.above_minimum else None
        widget(st.number_input, label, key, min_value=low, step=float(setting.step or 0.01), format="%.3f")


def init_widgets(keys, flat: dict[str, Any]) -> None:
    """Give each widget its value from the settings the first time it is drawn."""
    for key in keys:
        if key not in st.session_state:
            st.session_state[key] = widget_value(key, flat[key])


def _dataset_label(name: str) -> str:
    info = data.DATASETS[name]
    ok, _ = data.availability(name)
    return info.title if ok else f"{info.title} (not installed)"


def _valid_float(value) -> set[float]:
    return {float(value)} if isinstance(value, int | float) else set()


# ----- the sidebar ----------------------------------------------------------------------------------------
def draw_controls() -> None:
    """The sidebar: data, model (with the chosen variant's own controls), objective, optimisation."""
    flat = settings_state.current_config().flat()
    init_widgets(settings_state.WIDGET_KEYS, flat)
    with st.sidebar:
        _data_section()
        spec = _chosen_spec()
        own = [s.name for s in get_penalty(settings_state.current_config().model.penalty).settings]
        if _shown("variant", "hidden", "output", "penalty", *own, *spec.fields):
            st.subheader("Model")
        widget(
            st.selectbox,
            "Variant",
            "variant",
            options=list(REGISTRY),
            format_func=lambda name: REGISTRY[name].title,
        )
        if _shown("variant"):
            st.caption(spec.note)
        init_widgets(spec.fields, flat)
        for control in spec.controls:
            spec_control(control)
        _model_section(spec)
        _objective_section(spec, flat)
        if _shown("optimizer", "lr", "batch_size", "steps", "seed"):
            st.subheader("Optimisation")
        widget(st.selectbox, "Optimizer", "optimizer", options=list(get_args(Optimizer)))
        widget(st.number_input, "Learning rate (live)", "lr", step=1e-3, format="%.4f")
        widget(st.number_input, "Batch size (0 = all data)", "batch_size", min_value=0, step=32)
        _length_section(flat)
        widget(st.number_input, "Seed", "seed", step=1)
        if classroom.structural_shown():
            st.caption(
                "Changing anything but the live settings (ρ, β, λ, the learning rate and the length) "
                "builds a new model; the current one is kept as the previous run."
            )


def _shown(*keys: str) -> bool:
    """Whether any of these controls is drawn (a classroom link hides the others, and their headings)."""
    return any(classroom.allows(key) for key in keys)


def _length_section(flat: dict[str, Any]) -> None:
    until_paused = flat["steps"] == 0 and flat["epochs"] is None
    st.session_state[UNTIL_PAUSED] = until_paused
    widget(
        st.number_input,
        "Training length (steps, live)",
        "steps",
        min_value=1,
        step=100,
        disabled=until_paused,
    )
    if not classroom.allows("steps"):
        return
    st.checkbox(
        "Run until paused (live)",
        key=UNTIL_PAUSED,
        on_change=on_until_paused,
        help="No set length: train until you press Pause, as TensorFlow Playground does. A running model "
        "switches at once; unticking goes back to the length above.",
    )


def _chosen_spec() -> VariantSpec:
    try:
        return get_spec(st.session_state["variant"])
    except ValueError:  # a refused URL value: the settings still hold a valid one
        return settings_state.current_config().model.spec


def _data_section() -> None:
    if _shown("dataset"):
        st.subheader("Data")
    widget(st.selectbox, "Dataset", "dataset", options=list(data.DATASETS), format_func=_dataset_label)
    if st.session_state["dataset"] == "upload":  # also on a classroom link: it cannot carry the file
        st.file_uploader(
            "Your data (.npy, .npz or .zip of images)",
            type=["npy", "npz", "zip"],
            key="upload_file",
            on_change=on_upload,
            help=FIELD_DOCS.get("upload"),
        )
        error_under("upload")


OUTPUT_NAMES = {"sigmoid": "sigmoid (data in [0, 1])", "linear": "linear (any values)"}


def _model_section(spec: VariantSpec) -> None:
    if spec.hidden_label is not None:
        widget(st.number_input, spec.hidden_label, "hidden", min_value=1, step=1)
    outputs = list(get_args(Output))
    widget(st.selectbox, "Decoder output", "output", options=outputs, format_func=OUTPUT_NAMES.get)
    if spec.fixed_penalty is not None:
        # Said once: beside the greyed ρ and β when they are drawn (the objective's section), else here.
        if _shown("variant", "hidden", *spec.fields) and not _shown("rho", "beta"):
            st.caption(spec.penalty_reason)
        return
    widget(
        st.selectbox,
        "Sparsity penalty",
        "penalty",
        options=list(spec.penalties),
        format_func=lambda name: get_penalty(name).title,
    )
    penalty = get_penalty(st.session_state["penalty"])
    init_widgets([s.name for s in penalty.settings], settings_state.current_config().flat())
    for setting in penalty.settings:
        setting_control(setting)


def _objective_section(spec: VariantSpec, flat: dict[str, Any]) -> None:
    if not _shown("rho", "beta", "weight_decay"):
        return
    st.subheader("Objective (changes apply live)")
    penalty = get_penalty(spec.effective_penalty(flat["penalty"]))
    no_rho = spec.fixed_penalty is not None or not penalty.uses_rho
    no_beta = spec.fixed_penalty is not None or not penalty.uses_beta
    rho_options = sorted(set(RHO_GRID) | {flat["rho"]} | _valid_float(st.session_state["rho"]))
    widget(st.select_slider, "Target activation ρ", "rho", options=rho_options, disabled=no_rho)
    if penalty.beta_stops and not no_beta:  # its good values span decades: a log-spaced slider
        beta_options = sorted(set(penalty.beta_stops) | _valid_float(st.session_state["beta"]))
        widget(st.select_slider, "Sparsity weight β (log scale)", "beta", options=beta_options)
    else:
        _, top = settings_state.beta_range(penalty.name)
        widget(
            st.slider, "Sparsity weight β", "beta", min_value=0.0, max_value=top, step=0.1, disabled=no_beta
        )
    reason = penalty.hidden_reason if spec.fixed_penalty is None else spec.penalty_reason
    if reason and _shown("rho", "beta"):
        st.caption(reason)
    widget(st.number_input, "Weight decay λ", "weight_decay", step=1e-4, format="%.5f")
