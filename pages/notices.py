"""One-off messages for the page's next run, and how text from outside is quoted in them.

Not a page itself. A callback or a link says what it did ("model rebuilt", "ignored the unknown preset
`x`") with `add_notice`; the page that runs next pops st.session_state[NOTICE] and shows it once.
"""

from __future__ import annotations

import re

import streamlit as st

NOTICE = "notice"
"""st.session_state: a one-off message for the next run of the page (e.g. "model rebuilt")."""


def add_notice(text: str) -> None:
    """Add a line to the one-off message the page shows on its next run (several may pile up)."""
    earlier = st.session_state.get(NOTICE)
    st.session_state[NOTICE] = f"{earlier} {text}" if earlier else text


def literal(text: object) -> str:
    """Text from outside (a URL, a file name, a message quoting them) as a Markdown code span, which
    CommonMark and Streamlit show character for character: no link, image, emphasis, directive or
    formula can form inside it. The fence is longer than any run of backticks in the text."""
    body = " ".join(str(text).split())  # one line: a blank line would end the span
    fence = "`" * (max((len(run) for run in re.findall(r"`+", body)), default=0) + 1)
    pad = " " if body.startswith("`") or body.endswith("`") else ""
    return f"{fence}{pad}{body}{pad}{fence}"
