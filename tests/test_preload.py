"""The page's HTML names KaTeX's files for the browser to fetch early (sae_core/serve/preload.py)."""

from __future__ import annotations

import asyncio
import gzip
import re

from sae_core.serve import preload

PAGE = b"<html><head><title>t</title></head><body>hi</body></html>"
LINKS = '<link rel="modulepreload" href="./static/js/a.js">'


def _serve(
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    method: str = "GET",
    chunks: int = 1,
    path: str = "/",
    base_url: str = "",
):
    """What the middleware sends for an app that answers `body` (in `chunks` parts) with `headers`, for a
    request of `path` to a server under `base_url`."""

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        size = -(-len(body) // chunks)
        for i in range(chunks):
            part = body[i * size : (i + 1) * size]
            await send({"type": "http.response.body", "body": part, "more_body": i < chunks - 1})

    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request"}

    middleware = preload.PreloadMiddleware(app, links=LINKS, base_url=base_url)
    asyncio.run(middleware({"type": "http", "method": method, "path": path}, receive, send))
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return {k.lower(): v for k, v in start["headers"]}, body


def test_an_html_page_gets_the_links_before_its_head_ends_with_a_true_length():
    html = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", b"58"), (b"etag", b'"x"')]
    headers, body = _serve(PAGE, html, chunks=3)
    assert body == PAGE.replace(b"</head>", LINKS.encode() + b"</head>")
    assert int(headers[b"content-length"]) == len(body) and b"etag" not in headers


def test_a_gzipped_page_is_sent_plain_with_the_links():
    zipped = gzip.compress(PAGE)
    html = [(b"content-type", b"text/html"), (b"content-encoding", b"gzip"), (b"content-length", b"1")]
    headers, body = _serve(zipped, html)
    assert body == PAGE.replace(b"</head>", LINKS.encode() + b"</head>")
    assert b"content-encoding" not in headers and int(headers[b"content-length"]) == len(body)


def test_other_answers_pass_untouched():
    script = [(b"content-type", b"text/javascript"), (b"content-length", b"58")]
    assert _serve(PAGE, script) == ({b"content-type": b"text/javascript", b"content-length": b"58"}, PAGE)
    html = [(b"content-type", b"text/html"), (b"content-length", b"58")]
    assert _serve(PAGE, html, method="HEAD")[1] == PAGE  # a HEAD's length must stay the file's
    brotli = [(b"content-type", b"text/html"), (b"content-encoding", b"br")]
    assert _serve(b"\x8b\x02", brotli)[1] == b"\x8b\x02"  # an encoding it cannot read: as it came


def test_every_file_to_preload_is_found_in_the_installed_streamlit():
    """Fails when a Streamlit release renames KaTeX's files: then PRELOADS needs new prefixes."""
    static = preload.streamlit_static()
    assert static is not None
    links = preload.preload_links(static)
    hrefs = re.findall(r'href="\./static/(js|media)/([^"]+)"', links)
    assert len(hrefs) == len(preload.PRELOADS["js"]) + len(preload.PRELOADS["media"])
    for folder, name in hrefs:
        assert (static / folder / name).is_file()
    assert preload.preload_links(static / "nowhere") == ""


def test_a_page_at_its_own_address_also_gets_the_servers_address():
    html = [(b"content-type", b"text/html")]
    for path, base_url in (("/train", ""), ("/train/", ""), ("/sae/train", "sae"), ("/sae/train", "/sae/")):
        body = _serve(PAGE, html, path=path, base_url=base_url)[1]
        extra = LINKS + preload.base_script("train")
        assert body == PAGE.replace(b"</head>", extra.encode() + b"</head>"), (path, base_url)
    script = preload.base_script("train")
    assert script.startswith("<script>") and "s='/train'" in script and "BACKEND_BASE_URL" in script
    for root, base_url in (("/", ""), ("/sae", "sae"), ("/sae/", "sae")):  # the app's root: links alone
        assert _serve(PAGE, html, path=root, base_url=base_url)[1] == PAGE.replace(
            b"</head>", LINKS.encode() + b"</head>"
        )


def test_no_address_puts_anything_but_a_page_name_into_the_script():
    assert preload.base_script("") == preload.base_script("/") == ""
    for hostile in ("a/b", "x'+alert(1)+'", "</script><script>alert(1)", "train?x=1", "tr ain", "é"):
        assert preload.base_script(hostile) == "", hostile
    assert preload.base_script("/explore/") == preload.base_script("explore") != ""
