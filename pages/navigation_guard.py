"""Keep a fresh server from treating pages/ as an old-style multipage app.

Why this exists: Streamlit treats a folder named pages/ next to the main script as an old-style
(v1) multipage app until the first st.navigation call in the server process. On that first visit it
would run a page file straight from the URL (/train) without app.py, or list every file of pages/ in
the sidebar. The design keeps the folder name pages/, so the guard switches the process to
st.navigation mode and reruns, which sends the first visit through app.py like every later one.

Streamlit has no public switch for this: the guard flips the private class flag
`streamlit.runtime.pages_manager.PagesManager.uses_pages_directory` (the flag st.navigation itself
clears). If a Streamlit version drops the flag or the class, the guard does nothing and warns once per
server process; the app still works, only a fresh server's very first visit may take the old path.
"""

from __future__ import annotations

import threading
import warnings

import streamlit as st

FLAG = "uses_pages_directory"
"""The private PagesManager class attribute: True while Streamlit is in the old pages/ mode."""

_warned = False
_warned_lock = threading.Lock()  # sessions run their scripts in threads of the same process


def leave_old_multipage_mode(rerun: bool = True) -> None:
    """Make sure app.py's st.navigation runs, even on the first visit after the server started.

    rerun=False only clears the flag (app.py's own call: its st.navigation follows at once);
    the pages rerun, so that a visit that started at a page file goes through app.py.
    """
    manager = _pages_manager()
    if manager is None or not hasattr(manager, FLAG):
        _warn_once("the PagesManager class is gone" if manager is None else f"PagesManager.{FLAG} is gone")
        return
    if getattr(manager, FLAG):
        setattr(manager, FLAG, False)
        if rerun:
            st.rerun()


def _pages_manager() -> type | None:
    """Streamlit's PagesManager class (private API), or None where this Streamlit has none."""
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:
        return None
    return PagesManager


def _warn_once(why: str) -> None:
    global _warned
    with _warned_lock:
        if _warned:
            return
        _warned = True
    warnings.warn(
        f"pages/ navigation guard unavailable in Streamlit {st.__version__} ({why}): the first visit "
        "after a server start may run a page of pages/ without app.py.",
        RuntimeWarning,
        stacklevel=3,
    )
