"""This browser session's settings: the run configuration the controls, links and presets write to.

Not a page itself. The settings dict in `st.session_state[SETTINGS]` is the source of truth for the run
configuration: widgets are initialised from it and write back to it in their callbacks, because
Streamlit drops a widget's state when the page that draws it is not shown. A change goes through
`apply_setting` (the one place a value is checked); `change_setting` also hands a live field (ρ, β, λ,
lr...) to the running job at once.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from pages import refusals
from pages.notices import NOTICE, add_notice
from pages.server import presets
from pages.session_job import current_job, structural
from sae_core.config.run import LIVE_FIELDS, RunConfig
from sae_core.models import REGISTRY
from sae_core.penalties.registry import PENALTIES, get_penalty
from sae_core.presets import DEFAULT_PRESET

WIDGET_KEYS = (
    "dataset",
    "variant",
    "penalty",
    "rho",
    "beta",
    "weight_decay",
    "hidden",
    "output",
    "lr",
    "batch_size",
    "optimizer",
    "steps",
    "seed",
)
"""Config fields that the Train page has a widget for; the widget's key is the field name."""
VARIANT_WIDGET_KEYS = tuple(
    dict.fromkeys(
        key
        for spec in [*REGISTRY.values(), *PENALTIES.values()]
        for key in spec.fields
        if key not in WIDGET_KEYS
    )
)
"""Fields with a widget only while their variant or penalty is chosen: the settings each declares."""

# st.session_state keys
SETTINGS = "settings"
"""Flat config mapping (only the fields that differ from RunConfig defaults are needed)."""
ERRORS = "setting_errors"
"""field -> message (Markdown, outside text in code spans) for values that were refused; shown next to
the control."""

SERVER_ONLY = ("upload", "data_dir")
"""Fields that name files on the server: never taken from a URL (nor written to one) or a widget. The
app sets `upload` to the id of the session's own uploaded file; `data_dir` stays $SAE_DATA_DIR's."""


# ----- the settings ---------------------------------------------------------------------------------------
def presets_default() -> str:
    return DEFAULT_PRESET


def base_settings() -> dict[str, Any]:
    """What a new session starts with: the offline default preset."""
    return dict(presets()[DEFAULT_PRESET].flat)


def settings() -> dict[str, Any]:
    if SETTINGS not in st.session_state:
        st.session_state[SETTINGS] = base_settings()
    return st.session_state[SETTINGS]


def errors() -> dict[str, str]:
    if ERRORS not in st.session_state:
        st.session_state[ERRORS] = {}
    return st.session_state[ERRORS]


def current_config() -> RunConfig:
    return RunConfig.from_flat(settings())


def replace_settings(flat: dict[str, Any]) -> None:
    """Start over from `flat` (a preset, an opened model): no refused value is left, and every widget
    takes its value from the new settings when next drawn."""
    st.session_state[SETTINGS] = flat
    st.session_state[ERRORS] = {}
    forget_widgets()


def forget_widgets() -> None:
    """Drop the widgets' own state, so that each is drawn from the settings dict again."""
    for key in WIDGET_KEYS + VARIANT_WIDGET_KEYS:
        st.session_state.pop(key, None)


def beta_range(penalty: str) -> tuple[float, float]:
    """The β control's range under a penalty; a value outside it (from a link) is refused."""
    return 0.0, get_penalty(penalty).beta_max


LR_MAX = 100.0
"""The largest learning rate the page takes (a link's ?lr=1e9 is refused): far above any that trains (Adam
diverges above about 1), high enough to show what a much too large one does. The CLI and the library take
any finite rate, so that a test or a script can make a run diverge on purpose."""


def out_of_range(key: str, cfg: RunConfig) -> str | None:
    """Why the page refuses cfg's value of `key` though the configuration takes it (β beyond its slider,
    a learning rate beyond LR_MAX), in the page's words; None when it takes it."""
    if key == "lr" and cfg.train.lr > LR_MAX:
        return refusals.too_large("lr", LR_MAX, cfg.train.lr)
    if key != "beta":
        return None
    lo, hi = beta_range(cfg.model.penalty)
    beta = cfg.model.beta
    if lo <= beta <= hi:
        return None
    why = f" for the {cfg.model.penalty_spec.short} penalty"
    return refusals.too_large("beta", hi, beta, why)


def apply_setting(key: str, value: Any) -> RunConfig | None:
    """Validate and store one field; on a bad value remember the message, keep the old setting and
    return None. Returns the validated config otherwise (the one place a control's value is checked)."""
    try:
        cfg = RunConfig.from_flat({**settings(), key: value})
    except ValueError as err:
        errors()[key] = refusals.in_words(str(err))
        return None
    problem = out_of_range(key, cfg)
    if problem is not None:
        errors()[key] = problem
        return None
    errors().pop(key, None)
    settings()[key] = cfg.flat()[key]  # the coerced value ("0.1" -> 0.1)
    return cfg


def apply_preset(name: str) -> None:
    """Replace every setting by the preset's; widgets pick the new values up when next drawn."""
    replace_settings({**base_settings(), **presets()[name].flat})
    st.session_state[NOTICE] = f"Loaded the preset “{presets()[name].title}”."


def url_query(cfg: RunConfig, base: RunConfig | None = None) -> dict[str, str]:
    """cfg as URL parameters: every field that differs from `base` (default: what a new session starts
    with), never a server path."""
    start = (base or RunConfig.from_flat(base_settings())).flat()
    return {k: _url_value(v) for k, v in cfg.flat().items() if v != start[k] and k not in SERVER_ONLY}


def _url_value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


# ----- a change, and the running job ----------------------------------------------------------------------
def change_setting(key: str) -> None:
    """A control's on_change: validate and store its value, and hand a live field (LIVE_FIELDS: ρ, β,
    λ, lr, the run's length, λ_c) to the running job at once; other fields rebuild on the next run.
    A new penalty brings its own β (its spec's beta_default): 3 for KL would kill every unit under L1."""
    old_penalty, old_variant = settings().get("penalty"), settings().get("variant")
    cfg = set_setting(key, st.session_state[key])
    if key == "variant" and cfg is not None and cfg.model.variant != old_variant:
        fit_lr_to_model(cfg)
    if key == "penalty" and cfg is not None and cfg.model.penalty != old_penalty:
        fit_lr_to_model(cfg)
        beta = get_penalty(cfg.model.penalty).beta_default
        if beta is not None and beta != cfg.model.beta:
            set_setting("beta", beta)
            st.session_state["beta"] = beta
            add_notice(f"β set to {beta:g}, a good start for the {cfg.model.penalty} penalty.")


def set_setting(key: str, value: Any) -> RunConfig | None:
    """change_setting with a value from code (a button that extends the run, the until-paused box).
    Returns the validated config, or None when the value was refused."""
    cfg = apply_setting(key, value)
    job = current_job()
    # A live field reaches the running job at once, unless a structural change is already waiting:
    # then the page's next run builds a new model with every setting.
    if (
        cfg is not None
        and key in LIVE_FIELDS
        and job is not None
        and structural(cfg) == structural(job.config)
    ):
        job.set_config(cfg)
    return cfg


def fit_lr_to_model(cfg: RunConfig) -> None:
    """A newly picked variant or penalty that collapses at the current Adam learning rate gets the lower of
    their rates, with a notice (VariantSpec.adam_lr: deep and VAE models lose every unit at the bars
    preset's 0.1; PenaltySpec.adam_lr: L1's ReLU units die there)."""
    model = cfg.model
    limits = [lr for lr in (model.spec.adam_lr, model.penalty_spec.adam_lr) if lr is not None]
    if model.spec.fixed_penalty is not None:  # the variant's own regulariser: the penalty's limit is moot
        limits = [lr for lr in (model.spec.adam_lr,) if lr is not None]
    if cfg.train.optimizer != "adam" or not limits or cfg.train.lr <= min(limits):
        return
    limit = min(limits)
    if set_setting("lr", limit) is not None:
        st.session_state["lr"] = limit
        what = (
            f"a {model.spec.title.lower()} model loses every unit"
            if model.spec.adam_lr == limit
            else f"the {model.penalty_spec.short} penalty kills units and finds few features"
        )
        add_notice(
            f"Learning rate set to {limit:g}: at {cfg.train.lr:g} {what} within a few hundred Adam steps."
        )


def fit_beta_to_penalty(explicit: bool) -> None:
    """After settings came from outside (a link): a β outside its control's range for the penalty is
    replaced by the penalty's default β; when the link set β itself, it is refused with its message
    under the β control."""
    cfg = current_config()
    problem = out_of_range("beta", cfg)
    if problem is None:
        return
    default = get_penalty(cfg.model.penalty).beta_default
    apply_setting("beta", default if default is not None else beta_range(cfg.model.penalty)[1])
    if explicit:
        errors()["beta"] = problem
