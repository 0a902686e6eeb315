"""The pages' side of a class (sae_core.serve.classes): the server's class store, the links, and which
class this browser session has joined.

Not a page itself. A student's place (class code, member id, nickname) lives in st.session_state; after a
reload it is found again from the browser's key (the same cookie across tabs and reloads), so a student
does not join twice.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

import streamlit as st

from pages import server
from sae_core.serve import classes

CODE = "code"
"""URL parameter of the Class page: the class's join code (the students' link has only this)."""
TEACHER = "teacher"
"""URL parameter of the Class page: the teacher's secret token (the dashboard opens only with it)."""
PARAMS = (CODE, TEACHER)
PAGE = "pages/class.py"
URL_PATH = "class"
MEMBER = "class_member"
"""st.session_state: (code, member id, nickname) of the class this session has joined."""
LOOKED_UP = "class_member_looked_up"
"""st.session_state: the store was asked once whether this browser had joined a class before a reload."""


@st.cache_resource
def store() -> classes.ClassStore:
    """The classes of this server's data folder ($SAE_CLASSES_DB, else <data dir>/classes.sqlite3): the same
    file for every app server of the machine, so a class spread over servers is one class."""
    return classes.ClassStore()


def page_url() -> str:
    """The Class page's address as the browser sees it (no query), else a relative one."""
    url = st.context.url
    if url:
        return re.sub(r"/[^/]*$", f"/{URL_PATH}", url) if not url.rstrip("/").endswith(URL_PATH) else url
    prefix = str(st.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{prefix}/{URL_PATH}" if prefix else f"/{URL_PATH}"


def student_link(code: str) -> str:
    return f"{page_url()}?{urlencode({CODE: code})}"


def teacher_link(code: str, token: str) -> str:
    return f"{page_url()}?{urlencode({CODE: code, TEACHER: token})}"


def membership() -> tuple[str, str, str] | None:
    """This session's (code, member id, nickname), looked up once from the browser's key after a reload;
    None when it has not joined a class (or its class ended, or it left)."""
    if MEMBER not in st.session_state and not st.session_state.get(LOOKED_UP):
        st.session_state[LOOKED_UP] = True
        found = store().membership(server.browser_owner())
        if found is not None:
            st.session_state[MEMBER] = found
    return st.session_state.get(MEMBER)


def join(code: str, nickname: str) -> tuple[str, str, str]:
    """Join the class (classes.ClassError when refused) and remember it for this session."""
    member = store().join(code, nickname, server.browser_owner())
    place = (classes.normal_code(code), member, classes.check_nickname(nickname))
    st.session_state[MEMBER] = place
    return place


def leave() -> None:
    place = st.session_state.pop(MEMBER, None)
    if place is not None:
        store().leave(place[1])


def escape(text: str) -> str:
    """A nickname or title inside Markdown, shown as typed (no emphasis, links or HTML)."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|~<>:$])", r"\\\1", str(text))
