"""Classroom links: a Train-page link that shows students only the controls the teacher named.

Not a page itself. `?classroom=rho,beta` (read once per session with the other URL settings, see
`url_state.read_query_params`) hides every setting control of the Train page except ρ and β; the buttons
and the views stay. The hidden settings keep the link's values: the settings dict, not a widget, is the
source of truth (pages/settings_state.py), and a control that is not drawn cannot change it. `?classroom=none`
hides every setting. The teacher gets such a link from the "Share with the class" popover, which
writes every setting of the current run into it. Opening a preset from Home leaves classroom mode.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlencode

import streamlit as st

from pages import notices, settings_state
from sae_core.config.run import LIVE_FIELDS, RunConfig
from sae_core.models import get_spec
from sae_core.penalties.registry import get_penalty

PARAM = "classroom"
"""The URL parameter: comma-separated control names (config field names), or NONE."""
NONE = "none"
KEY = "classroom_fields"
"""st.session_state: the tuple of control names students may change; absent outside classroom mode."""
SHARE_KEY = "share_fields"
"""The teacher's multiselect of the controls students may touch."""
SHARE_DEFAULT = ("rho", "beta")
NAMES = {
    "dataset": "dataset",
    "variant": "variant",
    "penalty": "penalty",
    "rho": "ρ",
    "beta": "β",
    "weight_decay": "λ",
    "hidden": "hidden units",
    "lr": "learning rate",
    "batch_size": "batch size",
    "optimizer": "optimizer",
    "steps": "training length",
    "seed": "seed",
}
"""Short names of the page's own controls, for the one line that says what a student can change."""


# ----- the mode -------------------------------------------------------------------------------------------
def nameable() -> tuple[str, ...]:
    """Every name a classroom link may give: the Train page's controls, variant controls included."""
    return settings_state.WIDGET_KEYS + settings_state.VARIANT_WIDGET_KEYS


def parse(value: str) -> tuple[tuple[str, ...], list[str]]:
    """The known names of "rho, beta,x" in order, once each, and the others: (("rho", "beta"), ["x"])."""
    names = [n.strip().lower() for n in value.split(",") if n.strip()]
    if names == [NONE]:
        return (), []
    known = tuple(dict.fromkeys(n for n in names if n in nameable()))
    return known, [n for n in names if n not in nameable()]


def read_link(value: str | None) -> None:
    """The classroom parameter of a link (None: not a classroom link); unknown names get a notice."""
    if value is None:
        return
    known, unknown = parse(value)
    st.session_state[KEY] = known
    if unknown:
        names = ", ".join(notices.literal(n) for n in unknown)
        notices.add_notice(
            f"Classroom link: ignored {names}, not the name of a control on the Train page. "
            f"The names are: {', '.join(nameable())}."
        )


def is_on() -> bool:
    return KEY in st.session_state


def allows(key: str) -> bool:
    """Whether the Train page draws the control of `key`: always, except on a classroom link."""
    return key in st.session_state.get(KEY, (key,))


def leave() -> None:
    """Back to every control (a preset opened from Home replaces the link's settings)."""
    st.session_state.pop(KEY, None)


def query() -> dict[str, str]:
    """The classroom parameter for the page's URL, so a reload stays a classroom link."""
    if not is_on():
        return {}
    return {PARAM: ",".join(st.session_state[KEY]) or NONE}


# ----- what the page shows --------------------------------------------------------------------------------
def page_controls(cfg: RunConfig) -> dict[str, str]:
    """The setting controls the Train page draws for cfg (as pages/train_controls.py does): name -> label."""
    spec = get_spec(cfg.model.variant)
    labels = {"dataset": NAMES["dataset"], "variant": NAMES["variant"]}
    labels.update({c.field: _short(c.label) for c in spec.controls})
    if spec.hidden_label is not None:
        labels["hidden"] = NAMES["hidden"]
    if spec.fixed_penalty is None:
        labels["penalty"] = NAMES["penalty"]
        for setting in get_penalty(cfg.model.penalty).settings:  # top-k's k, JumpReLU's θ₀ and ε
            labels[setting.name] = _short(setting.label or setting.name)
    for key in ("rho", "beta", "weight_decay", "optimizer", "lr", "batch_size", "steps", "seed"):
        labels[key] = NAMES[key]
    return labels


def _short(label: str) -> str:
    """A control's label as a name inside a sentence: "Noise level" -> "noise level"."""
    text = label.split(" (")[0]
    return text[:1].lower() + text[1:]


def draw_note() -> None:
    """One line at the top of the sidebar: this is a classroom link, and what can be changed."""
    if not is_on():
        return
    labels = page_controls(settings_state.current_config())
    free = [labels[k] for k in st.session_state[KEY] if k in labels]
    what = f"you can change {_and(free)}" if free else "the settings are fixed"
    with st.sidebar:
        st.info(f"Classroom link: {what}; the link sets the rest.", icon=":material/school:")


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def structural_shown() -> bool:
    """Whether a shown control needs a new model when changed (the page then says so)."""
    return any(allows(k) for k in nameable() if k not in LIVE_FIELDS)


# ----- the teacher's link ---------------------------------------------------------------------------------
def link_query(cfg: RunConfig, base: RunConfig, fields: Iterable[str]) -> dict[str, str]:
    """The URL parameters of a classroom link to cfg: every setting that differs from `base` (what a new
    session starts with), no server path, and the controls students may change."""
    return {**settings_state.url_query(cfg, base), PARAM: ",".join(fields) or NONE}


def share_link(cfg: RunConfig, base: RunConfig, fields: Iterable[str], page_url: str) -> str:
    """The whole link: the Train page's address and link_query (commas left readable)."""
    return f"{page_url}?{urlencode(link_query(cfg, base, fields), safe=',')}"


def page_url() -> str:
    """The Train page's address as the browser sees it (proxy prefix included), else a relative one."""
    url = st.context.url
    if url:
        return url
    prefix = str(st.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{prefix}/train" if prefix else "/train"


def draw_share() -> None:
    """The sidebar's "Share with the class": pick what students may touch, copy the link."""
    if is_on():  # a student's page: the teacher's link is theirs to make
        return
    cfg = settings_state.current_config()
    labels = page_controls(cfg)
    kept = st.session_state.get(SHARE_KEY)
    if kept is not None:  # a control of another variant is no longer offered
        st.session_state[SHARE_KEY] = [k for k in kept if k in labels]
    # A popover, not an expander: its widgets are drawn when the teacher opens it, so a fresh Train page does
    # not load the browser code of the multiselect and the code box (an expander's content is drawn, hidden).
    with st.sidebar.popover("Share with the class", icon=":material/school:", width="stretch"):
        fields = st.multiselect(
            "Controls students may change",
            list(labels),
            default=[k for k in SHARE_DEFAULT if k in labels] if kept is None else None,
            format_func=lambda k: k if labels[k] == k else f"{labels[k]} ({k})",
            key=SHARE_KEY,
            help="The link opens the Train page with these settings; every other control is hidden and "
            "keeps this run's value.",
        )
        link = share_link(cfg, RunConfig.from_flat(settings_state.base_settings()), fields, page_url())
        st.code(link, language=None, wrap_lines=True)
        st.caption("Copy it with the button at the top right of the box.")
        if cfg.data.dataset == "upload":
            st.caption("A link cannot carry your file: each student uploads their own.")
