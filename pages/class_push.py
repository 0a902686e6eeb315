"""The teacher sends the class its next setting: a preset, or a classroom link of the Train page.

Not a page itself. What is sent is the link's URL parameters (a preset is `{"preset": NAME}`), checked
here as the Train page would read them; each student's Train page offers it with one button
(pages/class_student.py), which applies it as if the student had opened the link.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import streamlit as st

from pages import class_state, classroom, refusals, settings_state
from pages.server import presets
from sae_core.config.run import FIELD_SECTION, RunConfig
from sae_core.serve.classes import ClassError, ClassInfo

PRESET, LINK = "A preset", "A classroom link"
KIND, PRESET_KEY, LINK_KEY = "class_push_kind", "class_push_preset", "class_push_link"
SENT = "class_push_sent"


def parse_link(link: str) -> tuple[str, dict[str, str]]:
    """(label, URL parameters) of a Train-page link (or its query alone); ValueError in the teacher's words
    when it holds no settings, names a setting the page does not know, or makes no valid run."""
    text = link.strip()
    query = urlsplit(text).query if "?" in text or "/" in text else text  # a whole link, or its query
    params = dict(parse_qsl(query, keep_blank_values=True))
    if not params:
        raise ValueError(
            "Paste a link of the Train page: its settings come after a “?”, as in …/train?rho=0.05&beta=3."
        )
    preset = params.get("preset")
    if preset is not None and preset not in presets():
        raise ValueError(f"The link names the preset “{preset}”; the presets are {', '.join(presets())}.")
    known = ("preset", classroom.PARAM)
    unknown = [k for k in params if k not in FIELD_SECTION and k not in known]
    server_only = [k for k in params if k in settings_state.SERVER_ONLY]
    if unknown or server_only:
        names = ", ".join(unknown + server_only)
        raise ValueError(f"The link has settings a Train page link cannot carry: {names}.")
    fields = {k: v for k, v in params.items() if k in FIELD_SECTION}
    start = {**settings_state.base_settings(), **(presets()[preset].flat if preset else {})}
    try:
        RunConfig.from_flat({**start, **fields})
    except ValueError as err:
        raise ValueError(f"The link's settings do not make a run: {refusals.in_words(str(err))}") from err
    shown = [f"preset {preset}"] if preset else []
    shown += [f"{k} = {v}" for k, v in fields.items()]
    return "a classroom link (" + (", ".join(shown) or "the default settings") + ")", params


def preset_setting(name: str) -> tuple[str, dict[str, str]]:
    return f"the preset “{presets()[name].title}”", {"preset": name}


def draw(info: ClassInfo, token: str) -> None:
    """The dashboard's "Send the class the next setting" box."""
    with st.expander("Send the class the next setting", icon=":material/send:"):
        kind = st.segmented_control("What", [PRESET, LINK], default=PRESET, required=True, key=KIND)
        try:
            if kind == LINK:
                link = st.text_input(
                    "Classroom link",
                    key=LINK_KEY,
                    placeholder="http://…/train?rho=0.05&beta=3&classroom=rho,beta",
                    help="Make one with Train's “Share with the class” box.",
                )
                setting = parse_link(link) if link.strip() else None
            else:
                name = st.selectbox(
                    "Preset", list(presets()), key=PRESET_KEY, format_func=lambda n: presets()[n].title
                )
                setting = preset_setting(name)
        except ValueError as err:
            st.error(str(err), icon=":material/link_off:")
            setting = None
        if st.button("Send to the class", key="class_push_send", type="primary", disabled=setting is None):
            try:
                class_state.store().push_setting(info.code, token, *setting)
                st.session_state[SENT] = setting[0]
            except ClassError as err:
                st.error(str(err))
        pushed = (class_state.store().info(info.code) or info).pushed
        if pushed:
            st.caption(
                f"Offered to every student now: {class_state.escape(pushed['label'])}. "
                "Each applies it with one click."
            )
