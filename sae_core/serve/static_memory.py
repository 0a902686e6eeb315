"""Answer requests for Streamlit's built frontend files from memory instead of from its file handler.

A browser opening the app for the first time fetches about 120 of Streamlit's script, style and font
files for the Train page (its bundles, then one file or more per kind of widget as the page first draws
it). Streamlit answers each one through its static-file handler: routing, a `stat` and a read on a worker
thread. On a 2-core machine that is about 3 ms of the server's one Python process per file, some 0.4 s
per new browser, spent while the same process runs every student's page. When a class opens the link
together, the last student waits for all of them: 20 browsers' files took 7.0-7.5 s from Streamlit's
handler and 1.5-2.0 s from here (benchmarks/class_pageload.py, benchmarks/README.md).

`StaticMemoryMiddleware` answers GET and HEAD for exactly the files in Streamlit's `static/static` folder,
by name, with the headers Streamlit gives them: their type, a year of immutable caching (their names
carry a hash of their content, so a file never changes under its name), an ETag, and 304 to a browser
that already holds the file. A file is read the first time it is asked for and kept (the folder holds
25 MB; a Train page asks for about 3 MB of it). Every other request, and any name not in the folder, goes
on to Streamlit untouched. `SAE_STATIC_MEMORY=0` leaves Streamlit to serve them (app.py).

Nothing here imports Streamlit.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from sae_core.serve.preload import Receive, Scope, Send, streamlit_static

ENV_VAR = "SAE_STATIC_MEMORY"
"""Set to 0 to leave Streamlit's files to Streamlit (app.py reads it)."""
CACHE_CONTROL = b"public, immutable, max-age=31536000"
"""What Streamlit sends with its content-hashed files: keep for a year, never ask again."""
FOLDERS = ("js", "css", "media")
"""The sub-folders of Streamlit's static/static served here, at /static/<folder>/<name>."""
_ADDRESS = re.compile(r"/static/(?:js|css|media)/[A-Za-z0-9_][A-Za-z0-9._-]*")

mimetypes.add_type("font/woff2", ".woff2")


def content_type(name: str) -> bytes:
    """The Content-Type Starlette's FileResponse would send for this file name."""
    kind = mimetypes.guess_type(name)[0] or "text/plain"
    return (kind + "; charset=utf-8" if kind.startswith("text/") else kind).encode()


class StaticFile:
    """One file's bytes (read on first use, then kept) and the headers it is sent with."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.body: bytes | None = None
        self.etag = b""
        self.headers: list[tuple[bytes, bytes]] = []

    def load(self) -> bytes:
        if self.body is None:
            body = self.path.read_bytes()
            self.etag = b'"' + hashlib.md5(body, usedforsecurity=False).hexdigest().encode() + b'"'
            self.headers = [
                (b"content-type", content_type(self.path.name)),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", CACHE_CONTROL),
                (b"etag", self.etag),
            ]
            self.body = body
        return self.body

    def matches(self, if_none_match: bytes) -> bool:
        """Whether a request's If-None-Match names this file's content (or is "*")."""
        tags = [tag.strip().removeprefix(b"W/") for tag in if_none_match.split(b",")]
        return b"*" in tags or self.etag in tags


def index_files(static: Path | None) -> dict[str, StaticFile]:
    """The files of a static folder (Streamlit's static/static) by their address: "/static/js/x.js"."""
    files: dict[str, StaticFile] = {}
    if static is None:
        return files
    for folder in FOLDERS:
        where = static / folder
        if not where.is_dir():
            continue
        for path in where.iterdir():
            address = f"/static/{folder}/{path.name}"
            if _ADDRESS.fullmatch(address) and path.is_file():
                files[address] = StaticFile(path)
    return files


class StaticMemoryMiddleware:
    """ASGI middleware: Streamlit's own frontend files answered from memory; everything else passed on.

    base_url: the server's `server.baseUrlPath` ("" at the root); files are served at
    /<base_url>/static/..., where Streamlit serves them. static: the folder (Streamlit's, by default)."""

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        base_url: str = "",
        static: Path | None = None,
    ) -> None:
        self.app = app
        base = base_url.strip("/")
        self.prefix = f"/{base}" if base else ""
        self.files = index_files(static if static is not None else streamlit_static())

    def find(self, path: str) -> StaticFile | None:
        """The file a request path names, or None (then Streamlit answers it)."""
        if not path.startswith(self.prefix + "/static/"):
            return None
        return self.files.get(path[len(self.prefix) :])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = None
        if scope["type"] == "http" and scope.get("method") in ("GET", "HEAD"):
            found = self.find(scope.get("path", ""))
        if found is None:
            await self.app(scope, receive, send)
            return
        body = found.load()
        if_none_match = next((v for k, v in scope.get("headers", []) if k.lower() == b"if-none-match"), None)
        if if_none_match is not None and found.matches(if_none_match):
            kept = [(k, v) for k, v in found.headers if k in (b"cache-control", b"etag")]
            await send({"type": "http.response.start", "status": 304, "headers": kept})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": 200, "headers": found.headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
