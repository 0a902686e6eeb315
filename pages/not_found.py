"""An address that names no page (/nonexistent): say so and link to the pages, rather than show Home.

Not a page of the navigation. Left to itself, Streamlit runs the default page (Home) for an unknown path
and pops up a generic error box over it. app.py asks `unknown_page` first; for such a path it adds a
hidden page *at that path* whose script is `render`, so st.navigation runs it, the address stays as typed,
and the visitor reads which pages there are, each a link.

One gap is left: the very first visit after the server starts, if it is to an unknown path, still gets
Streamlit's box as well (Streamlit 1.67 sends it before app.py runs, while the process is still in its
old pages/ mode: pages/navigation_guard.py); later visits, from any browser, get this page alone.

The path the browser asked for is read from Streamlit's private `PagesManager.intended_page_name` (the
name it matches against the pages' url paths). If a Streamlit version drops it, `unknown_page` answers
None and Streamlit's own behaviour comes back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import streamlit as st
from streamlit.errors import StreamlitAPIException

TITLE = "No such page"


def unknown_page(pages: Sequence[st.Page]) -> str | None:
    """The path this run was asked for when it names none of `pages`; None for a known page, the root,
    a click in the navigation, or a Streamlit without the private attributes read here."""
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        manager = get_script_run_ctx().pages_manager
        name = manager.intended_page_name
        by_hash = manager.intended_page_script_hash
    except (ImportError, AttributeError):
        return None
    if by_hash or not isinstance(name, str) or not name.strip("/"):
        return None
    known = {page.url_path for page in pages}
    return None if name in known else name


def page_for(path: str, pages: Sequence[st.Page]) -> st.Page | None:
    """A hidden page at `path` that says there is no such page and links to `pages`; None when Streamlit
    will not take the path as a page's url path (then its own "page not found" box stays)."""
    try:
        return st.Page(render(path, pages), title=TITLE, url_path=path, visibility="hidden")
    except StreamlitAPIException:
        return None


def render(path: str, pages: Sequence[st.Page]) -> Callable[[], None]:
    def no_such_page() -> None:
        st.title(TITLE)
        st.write(f"This app has no page at **/{path}**. Its pages are:")
        for page in pages:
            st.page_link(page, label=page.title, icon=page.icon or None)

    return no_such_page
