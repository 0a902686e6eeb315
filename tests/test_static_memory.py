"""Streamlit's frontend files answered from memory (sae_core/serve/static_memory.py): the same bytes and
headers as from disk, 304 for a browser that has the file, and nothing else taken from Streamlit."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from sae_core.serve import static_memory
from sae_core.serve.preload import streamlit_static

SCRIPT = b"export const x = 1;\n" * 50
FONT = bytes(range(256)) * 4


@pytest.fixture
def static(tmp_path):
    (tmp_path / "js").mkdir()
    (tmp_path / "media").mkdir()
    (tmp_path / "js" / "index.Ab1_-x.js").write_bytes(SCRIPT)
    (tmp_path / "media" / "Font.Zz9.woff2").write_bytes(FONT)
    (tmp_path / "js" / "_baseEach.Q1.js").write_bytes(b"lodash's helpers start with _")
    (tmp_path / "js" / ".hidden.js").write_bytes(b"not served")
    (tmp_path / "secret.txt").write_bytes(b"outside the served folders")
    return tmp_path


def call(static, path, method="GET", headers=(), base_url=""):
    """(status, headers, body, whether Streamlit was asked) for one request through the middleware."""
    asked = []

    async def streamlit(scope, receive, send):
        asked.append(scope["path"])
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"from streamlit"})

    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request"}

    middleware = static_memory.StaticMemoryMiddleware(streamlit, base_url=base_url, static=static)
    scope = {"type": "http", "method": method, "path": path, "headers": list(headers)}
    asyncio.run(middleware(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return sent[0]["status"], dict(sent[0]["headers"]), body, bool(asked)


def test_a_script_comes_from_memory_with_its_type_length_caching_and_etag(static):
    status, headers, body, asked = call(static, "/static/js/index.Ab1_-x.js")
    assert (status, body, asked) == (200, SCRIPT, False)
    assert headers[b"content-length"] == str(len(SCRIPT)).encode()
    assert headers[b"content-type"] in (b"text/javascript; charset=utf-8", b"application/javascript")
    assert headers[b"cache-control"] == b"public, immutable, max-age=31536000"
    assert headers[b"etag"] == b'"' + hashlib.md5(SCRIPT).hexdigest().encode() + b'"'
    assert call(static, "/static/js/_baseEach.Q1.js")[2] == b"lodash's helpers start with _"
    status, headers, body, _ = call(static, "/static/media/Font.Zz9.woff2")
    assert (status, body, headers[b"content-type"]) == (200, FONT, b"font/woff2")


def test_the_file_is_read_once_and_kept(static):
    middleware = static_memory.StaticMemoryMiddleware(None, static=static)
    found = middleware.find("/static/js/index.Ab1_-x.js")
    assert found.load() == SCRIPT
    (static / "js" / "index.Ab1_-x.js").write_bytes(b"changed on disk")  # names carry a content hash
    assert middleware.find("/static/js/index.Ab1_-x.js").load() == SCRIPT


def test_head_sends_the_headers_and_no_body(static):
    status, headers, body, asked = call(static, "/static/js/index.Ab1_-x.js", method="HEAD")
    assert (status, body, asked) == (200, b"", False)
    assert headers[b"content-length"] == str(len(SCRIPT)).encode()


def test_a_browser_that_has_the_file_gets_304_without_a_body(static):
    etag = call(static, "/static/js/index.Ab1_-x.js")[1][b"etag"]
    for asked_for in (etag, b'"other", ' + etag, b"W/" + etag, b"*"):
        status, headers, body, _ = call(
            static, "/static/js/index.Ab1_-x.js", headers=[(b"if-none-match", asked_for)]
        )
        assert (status, body, headers[b"etag"]) == (304, b"", etag)
        assert b"content-length" not in headers
    assert call(static, "/static/js/index.Ab1_-x.js", headers=[(b"if-none-match", b'"stale"')])[0] == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/static/js/index.Ab1_-x.js"),  # only GET and HEAD
        ("GET", "/static/js/missing.js"),  # a name not in the folder: Streamlit's 404 or page
        ("GET", "/static/js/.hidden.js"),  # names start with a letter, digit or underscore
        ("GET", "/static/secret.txt"),  # only js, css and media
        ("GET", "/static/js/../secret.txt"),
        ("GET", "/static/js/%2e%2e/secret.txt"),
        ("GET", "/static/js/index.Ab1_-x.js/"),
        ("GET", "/train"),
        ("GET", "/_stcore/health"),
        ("GET", "/app/static/js/index.Ab1_-x.js"),  # another base path than the server's
    ],
)
def test_anything_else_goes_to_streamlit(static, method, path):
    status, _, body, asked = call(static, path, method=method)
    assert (status, body, asked) == (404, b"from streamlit", True)


def test_websockets_and_lifespan_go_to_streamlit(static):
    asked = []

    async def streamlit(scope, receive, send):
        asked.append(scope["type"])

    middleware = static_memory.StaticMemoryMiddleware(streamlit, static=static)
    for kind in ("websocket", "lifespan"):
        asyncio.run(middleware({"type": kind, "path": "/static/js/index.Ab1_-x.js"}, None, None))
    assert asked == ["websocket", "lifespan"]


def test_under_a_base_url_only_that_path_is_served(static):
    assert call(static, "/course/static/js/index.Ab1_-x.js", base_url="/course/")[2] == SCRIPT
    assert call(static, "/static/js/index.Ab1_-x.js", base_url="course")[3]  # to Streamlit


def test_no_folder_serves_nothing():
    assert static_memory.index_files(None) == {}


def test_the_installed_streamlit_has_its_bundle_and_fonts_in_the_served_folders():
    """Fails on a Streamlit release that moves its files (then this middleware would serve none)."""
    files = static_memory.index_files(streamlit_static())
    assert any(a.startswith("/static/js/index.") for a in files)
    assert any(a.startswith("/static/css/index.") for a in files)
    assert any(a.endswith(".woff2") for a in files)
