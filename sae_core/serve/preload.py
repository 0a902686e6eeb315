"""Tell the browser at once about the last files a fresh Train page waits for: KaTeX's script and fonts.

The Train page shows the objective's formulas (st.latex). Streamlit's frontend fetches KaTeX only when
the first formula mounts: a 265 kB script and then four fonts, the tail of a fresh page's waterfall of
files. `PreloadMiddleware` lists them as preloads in the page's HTML (Streamlit's index.html, which it
serves for every page's address), so the browser fetches them while it loads Streamlit's own bundles.
A new session's Train page on a quiet 2-core machine: 2.0-2.5 s against 2.4-3.0 s without (benchmarks/
README.md). Preloading every widget's file as well was measured no faster: those compete with the bundles.

The files' names carry content hashes that change with each Streamlit release, so they are looked up by
their stable prefix in Streamlit's static folder when the server starts; one not found is left out (the
page then loads it as before). Nothing here imports Streamlit.

The same middleware also tells the frontend where its server is. Opened at a page's address (/train),
Streamlit's frontend does not know whether "train" is a page or the path the server is served under, so it
asks /train/_stcore/health first, gets a 404, waits 100 ms and only then asks /_stcore/health (its
`getPossibleBaseUris`, Streamlit 1.67): about 0.13 s of every page opened at its address. `base_script`
names the server's address in `window.__streamlit.BACKEND_BASE_URL`, which the frontend reads first: the
page's address less the page's own path, so it holds behind a proxy that serves the app under a prefix.
"""

from __future__ import annotations

import gzip
import importlib.util
import re
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

PRELOADS = {
    "js": ("rehype-katex.", "hastscript.", "web-namespaces."),
    "media": ("KaTeX_Main-Regular.", "KaTeX_Math-Italic.", "KaTeX_Size1-Regular.", "KaTeX_Size2-Regular."),
}
"""Prefixes of the files to preload, by folder of Streamlit's static/static/: KaTeX's script with the two
modules it imports, and the fonts the Train page's formulas use (the .woff2 of each)."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def streamlit_static() -> Path | None:
    """Streamlit's folder of built frontend files (static/static), or None where it is not found."""
    spec = importlib.util.find_spec("streamlit")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "static" / "static"
    return folder if folder.is_dir() else None


def preload_links(static: Path | None = None) -> str:
    """The <link> tags for the PRELOADS found under `static` (Streamlit's, by default)."""
    static = static if static is not None else streamlit_static()
    if static is None:
        return ""
    links = []
    for prefix in PRELOADS["js"]:
        for found in sorted((static / "js").glob(prefix + "*.js"))[:1]:
            links.append(f'<link rel="modulepreload" crossorigin href="./static/js/{found.name}">')
    for prefix in PRELOADS["media"]:
        for found in sorted((static / "media").glob(prefix + "*.woff2"))[:1]:
            font = f'rel="preload" as="font" type="font/woff2" crossorigin href="./static/media/{found.name}"'
            links.append(f"<link {font}>")
    return "".join(links)


PAGE_PATH = re.compile(r"[A-Za-z0-9_-]+")
"""A page's path as base_script writes it into a script: one segment of letters, digits, - and _ (a
Streamlit page's url_path), so no address can put code in the page."""


def base_script(page: str) -> str:
    """A <script> that sets the frontend's BACKEND_BASE_URL to the page's address less `page` (the page's
    path under the server's, as the server saw it: "train", "" at the app's root).

    Run in the browser it does nothing at the root, or where the address does not end with the page (the
    frontend then looks for its server as it always does)."""
    page = page.strip("/")
    if not page or not PAGE_PATH.fullmatch(page):
        return ""
    return (
        "<script>(function(){var p=location.pathname.replace(/\\/+$/,''),s='/" + page + "';"
        "if(p.slice(-s.length)===s){window.__streamlit=Object.assign({},window.__streamlit,"
        "{BACKEND_BASE_URL:location.origin+p.slice(0,-s.length)+'/'});}})();</script>"
    )


class PreloadMiddleware:
    """ASGI middleware: adds `links` and `base_script` before </head> of every HTML page the app sends (GET).

    A gzip-encoded page is decoded and sent plain (8 kB); one in another encoding is sent as it is. The
    page's ETag goes, since its body is no longer the file's."""

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        links: str | None = None,
        base_url: str = "",
    ):
        """base_url: the server's `server.baseUrlPath` ("" at the root): a page's path is what follows it."""
        self.app = app
        self.links = (preload_links() if links is None else links).encode()
        base_url = base_url.strip("/")
        self.base = f"/{base_url}" if base_url else ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def send_with_links(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = {k.lower(): v for k, v in message.get("headers", [])}
                if headers.get(b"content-type", b"").startswith(b"text/html"):
                    start = message  # held until the whole body is here
                    return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            await self._send_page(start, b"".join(chunks), send, self._page_of(scope.get("path", "")))

        await self.app(scope, receive, send_with_links)

    def _page_of(self, path: str) -> str:
        """The page's path in a request's path: what follows the server's base path ("" if nothing)."""
        if self.base and (path == self.base or path.startswith(self.base + "/")):
            path = path[len(self.base) :]
        return path.strip("/")

    async def _send_page(self, start: Message, body: bytes, send: Send, page_path: str) -> None:
        headers = list(start.get("headers", []))
        encoding = next((v for k, v in headers if k.lower() == b"content-encoding"), b"identity")
        if encoding in (b"identity", b"gzip"):
            html = gzip.decompress(body) if encoding == b"gzip" else body
            if b"</head>" in html:
                extra = self.links + base_script(page_path).encode()
                body = html.replace(b"</head>", extra + b"</head>", 1)
                dropped = (b"content-length", b"content-encoding", b"etag")
                headers = [(k, v) for k, v in headers if k.lower() not in dropped]
                headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})
