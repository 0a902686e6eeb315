"""The settings in the page's URL: read once per session from a link, written back as they change.

Not a page itself. `?rho=0.01&beta=5` sets those fields, `?preset=NAME` starts from a preset, and
`?classroom=rho,beta` makes the page a classroom link (pages/classroom.py); a value that is refused is
said in a notice or under its control. The URL never names a file on the server (SERVER_ONLY).
"""

from __future__ import annotations

import streamlit as st

from pages import class_state, classroom
from pages.notices import add_notice, literal
from pages.server import presets
from pages.settings_state import (
    SERVER_ONLY,
    WIDGET_KEYS,
    apply_preset,
    apply_setting,
    current_config,
    errors,
    fit_beta_to_penalty,
    fit_lr_to_model,
    forget_widgets,
    out_of_range,
    settings,
    url_query,
)
from sae_core.config.run import FIELD_SECTION, RunConfig

URL_READ = "url_read"
"""st.session_state: the URL of this session has been read (it is read once)."""


def read_query_params() -> None:
    """Once per session: settings from the URL (?rho=0.01&beta=5); bad values are refused with a message."""
    if st.session_state.get(URL_READ):
        return
    st.session_state[URL_READ] = True
    params = st.query_params.to_dict()
    for key in class_state.PARAMS:  # the Class page's own (a join code, the teacher's token)
        params.pop(key, None)
    if params:
        apply_query(params)


def apply_query(params: dict[str, str]) -> None:
    """A link's settings on top of the session's: a preset first when named, then the other values, each
    refused one said in a notice or under its control (also the teacher's setting sent to a class)."""
    params = dict(params)
    preset = params.pop("preset", None)  # ?preset=NAME: the link's other settings go on top of it
    if preset in presets():
        apply_preset(preset)
    elif preset is not None:
        add_notice(f"Ignored the unknown preset {literal(preset)}; the presets are: {', '.join(presets())}.")
    classroom.read_link(params.pop(classroom.PARAM, None))
    settings()
    unknown = sorted(k for k in params if k not in FIELD_SECTION)
    server_only = sorted(k for k in params if k in SERVER_ONLY)
    known = {k: v for k, v in params.items() if k in FIELD_SECTION and k not in SERVER_ONLY}
    try:  # all at once first: ?penalty=topk&k=2 is valid together but not in the order k comes last
        cfg = RunConfig.from_flat({**settings(), **known})
        before = dict(settings())
        settings().update({k: cfg.flat()[k] for k in known})
        for key in known:  # what the configuration takes but the page does not (?lr=1e9); β: just below
            problem = out_of_range(key, cfg) if key != "beta" else None
            if problem is not None:
                if key in before:
                    settings()[key] = before[key]
                else:  # the settings held no value of it: the configuration's default stands
                    settings().pop(key)
                errors()[key] = problem
    except ValueError:  # then one by one, so each refused value gets its own message
        for key, value in known.items():
            apply_setting(key, value)
    # ?penalty=l1 alone must not leave the KL default β = 3 on the L1 control.
    fit_beta_to_penalty(explicit="beta" in known)
    if ("variant" in known or "penalty" in known) and "lr" not in known:  # ?variant=deep, ?penalty=l1 alone
        fit_lr_to_model(current_config())  # must not start at a collapsing lr
    forget_widgets()
    if unknown:
        add_notice(f"Ignored unknown URL parameter(s): {', '.join(literal(k) for k in unknown)}.")
    if server_only:
        add_notice(f"Ignored {', '.join(server_only)}: a link cannot name files on the server.")
    # A refused value whose field has no control on the page (n_bars, n_patches...) is said here.
    drawn = {k for k in set(WIDGET_KEYS) | set(current_config().model.spec.fields) if classroom.allows(k)}
    for key in known:
        if key in errors() and key not in drawn:
            add_notice(f"Not applied from the link: {errors().pop(key)}")


def write_query_params(cfg: RunConfig) -> None:
    """Put cfg's URL parameters into the URL, so a link reopens this run (a classroom link stays one)."""
    wanted = {**url_query(cfg), **classroom.query()}
    if st.query_params.to_dict() != wanted:
        st.query_params.from_dict(wanted)
