"""The page `streamlit run app.py` sends names KaTeX's files early (sae_core/serve/preload.py), and its
files come from memory (sae_core/serve/static_memory.py)."""

from __future__ import annotations

import gzip
import hashlib
import re
import urllib.error
import urllib.request

import pytest
from browser_helpers import streamlit_app, streamlit_server

from sae_core.serve import preload, static_memory

pytestmark = pytest.mark.slow  # each test starts a real server


def test_the_served_train_page_preloads_katex_whatever_encoding_the_browser_accepts():
    with streamlit_app() as url:
        for encoding in ("gzip, deflate, br", "identity"):
            request = urllib.request.Request(f"{url}/train", headers={"Accept-Encoding": encoding})
            with urllib.request.urlopen(request, timeout=30) as answer:
                body = answer.read()
                if answer.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
            page = body.decode()
            assert preload.preload_links() in page and page.index("rehype-katex") < page.index("</head>")
            assert '<div id="root">' in page  # still Streamlit's page


def test_the_served_page_s_files_come_with_streamlit_s_bytes_and_headers_and_304_when_kept():
    """The middleware in app.py answers every file the page names, byte for byte the installed files."""
    with streamlit_app() as url:
        with urllib.request.urlopen(f"{url}/train", timeout=30) as answer:
            page = answer.read().decode()
        names = re.findall(r'(?:href|src)="\./(static/(?:js|css|media)/[^"]+)"', page)
        assert len(names) > 20
        static = preload.streamlit_static()
        for name in names:
            with urllib.request.urlopen(f"{url}/{name}", timeout=30) as answer:
                assert answer.read() == (static.parent / name).read_bytes()
                assert answer.headers["Cache-Control"] == "public, immutable, max-age=31536000"
                etag = answer.headers["ETag"]
                assert etag == f'"{hashlib.md5((static.parent / name).read_bytes()).hexdigest()}"'  # ours
        kept = urllib.request.Request(f"{url}/{names[-1]}", headers={"If-None-Match": etag})
        try:
            urllib.request.urlopen(kept, timeout=30)
            raise AssertionError("expected 304 Not Modified")
        except urllib.error.HTTPError as answer:
            assert answer.code == 304


def test_with_sae_static_memory_0_streamlit_serves_its_files_itself():
    with streamlit_server(env={static_memory.ENV_VAR: "0"}) as (url, _):
        name = (
            "static/"
            + next(a for a in static_memory.index_files(preload.streamlit_static()) if "/js/index." in a)[8:]
        )
        with urllib.request.urlopen(f"{url}/{name}", timeout=30) as answer:
            body, etag = answer.read(), answer.headers["ETag"]
        assert body == (preload.streamlit_static().parent / name).read_bytes()
        assert etag != f'"{hashlib.md5(body).hexdigest()}"'  # Streamlit's own tag: not the middleware's
