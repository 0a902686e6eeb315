"""The page `streamlit run app.py` sends names KaTeX's files early (sae_core/serve/preload.py)."""

from __future__ import annotations

import gzip
import urllib.request

from browser_helpers import streamlit_app

from sae_core.serve import preload


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
