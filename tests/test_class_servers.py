"""Several app servers behind one nginx (deploy/class_nginx.py, scripts/class_servers.py).

Three layers: the generated configuration read as text (and its routing regexes run against the strings
nginx would give them); a real nginx in front of stand-in HTTP servers that answer with their own name,
for the routing rules one by one (new browsers in turn, a bad cookie replaced, a dead server's browsers
moved, never an empty cookie); and two real app servers behind nginx with two students in Chromium.
nginx runs as the current user on a free port; without it (Debian: apt-get install nginx) those skip.
"""

from __future__ import annotations

import http.client
import http.server
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import pytest
from browser_helpers import CHROMIUM, VIEWPORT, click_button, progress, wait_until

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # deploy/ and scripts/ sit next to the app; neither is an installed package
    sys.path.insert(0, str(ROOT))

from deploy import class_nginx  # noqa: E402
from scripts import class_servers  # noqa: E402

NGINX = class_servers.find_nginx()
needs_nginx = pytest.mark.skipif(NGINX is None, reason="needs nginx (Debian: apt-get install nginx)")
THREE = ["127.0.0.1:8501", "127.0.0.1:8502", "10.0.0.7:8501"]


# ----- the configuration as text ------------------------------------------------------------------------
def _map_entries(config: str, source: str) -> dict[str, str]:
    """The `map <source> $var { key value; ... }` block of `config` as {key: value} (quotes removed)."""
    block = re.search(rf"map {re.escape(source)} \$\w+ \{{\n(.*?)\n\}}", config, re.S)
    assert block, f"no map on {source}"
    entries = [re.fullmatch(r'\s*("[^"]*"|\S+) (.*);', line) for line in block.group(1).splitlines()]
    return {m.group(1).strip('"'): m.group(2).strip('"') for m in entries}


def test_every_backend_is_in_the_round_robin_and_first_in_its_own_upstream():
    config = class_nginx.site_config(THREE, "8500")
    new = re.search(r"upstream sae_new \{\n(.*?)\n\}", config, re.S).group(1)
    assert re.findall(r"server (\S+);", new) == THREE
    for i, address in enumerate(THREE, 1):
        own = re.search(rf"upstream sae_server_{i} \{{(.*?)\}}", config).group(1)
        servers = re.findall(r"server (\S+?)( backup)?;", own)
        assert servers[0] == (address, "")  # its own server first, the others only as backups
        assert sorted(s for s, backup in servers[1:] if backup) == sorted(set(THREE) - {address})
    assert "listen 8500;" in config and f"client_max_body_size {class_nginx.UPLOAD_LIMIT_MB}m;" in config


def test_the_cookie_routes_only_known_server_numbers_and_anything_else_counts_as_new():
    routes = _map_entries(class_nginx.site_config(THREE), f"$cookie_{class_nginx.COOKIE}")
    assert routes == {"default": "sae_new", "1": "sae_server_1", "2": "sae_server_2", "3": "sae_server_3"}


@pytest.mark.parametrize(
    ("status_and_addr", "served_by"),
    [
        ("200 127.0.0.1:8501", "1"),
        ("101 10.0.0.7:8501", "3"),  # the websocket's upgrade
        ("502, 200 127.0.0.1:8501, 127.0.0.1:8502", "2"),  # its server was down; the next one answered
        ("502, 502 127.0.0.1:8502, 127.0.0.1:8501", None),  # nobody answered: no cookie
        ("502 127.0.0.1:8502, sae_server_2", None),  # every server of the group marked down
        ("200 110.0.0.7:8501", None),  # ends like a backend's address, is another machine
        ("200 127.0.0.1:85011", None),
    ],
)
def test_the_cookie_names_the_server_that_answered_and_only_if_one_did(status_and_addr, served_by):
    # nginx's map tries the regexes in order, first match wins; PCRE and Python agree on these patterns.
    entries = _map_entries(class_nginx.site_config(THREE), '"$upstream_status $upstream_addr"')
    assert entries.pop("default") == ""
    matched = [i for pattern, i in entries.items() if re.search(pattern.removeprefix("~"), status_and_addr)]
    assert matched == ([served_by] if served_by else [])


@pytest.mark.parametrize(
    ("backend", "why"),
    [
        ("lab-2:8501", "must be an IP address"),
        ("localhost:8501", "must be an IP address"),
        ("::1:8501", "in brackets"),
        ("[10.0.0.1]:8501", "in brackets"),
        ("10.0.0.1:0", "port"),
        ("10.0.0.1", "must be an IP address"),
    ],
)
def test_backends_must_be_addresses_nginx_reports_back(backend, why):
    with pytest.raises(ValueError, match=why):
        class_nginx.site_config([backend])


def test_backends_are_written_as_nginx_writes_them_and_none_twice():
    assert class_nginx.check_backends(["[0:0::1]:8501", " 10.0.0.1:08501"]) == ["[::1]:8501", "10.0.0.1:8501"]
    with pytest.raises(ValueError, match="differ"):
        class_nginx.check_backends(["10.0.0.1:8501", "10.0.0.1:8501"])
    with pytest.raises(ValueError, match="at least one"):
        class_nginx.check_backends([])


def test_cores_are_shared_out_between_servers_at_least_one_job_each():
    assert class_servers.jobs_per_server(3, cores=8) == [3, 3, 2]
    assert class_servers.jobs_per_server(3, cores=2) == [1, 1, 1]
    assert class_servers.jobs_per_server(1, cores=16) == [16]


def test_the_committed_site_config_is_what_print_config_writes(capsys):
    assert class_servers.main(["--print-config", "--servers", "3", "--port", "80"]) == 0
    assert capsys.readouterr().out == (ROOT / "deploy" / "nginx-class.conf").read_text()


@needs_nginx
def test_nginx_accepts_the_standalone_config(tmp_path):
    prefix = tmp_path / "prefix with space"
    (prefix / "tmp").mkdir(parents=True)
    conf = prefix / "nginx.conf"
    conf.write_text(class_nginx.standalone_config(THREE, "127.0.0.1:8500", str(prefix)))
    check = subprocess.run(
        [NGINX, "-t", "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert check.returncode == 0, check.stderr
    assert "test is successful" in check.stderr


# ----- nginx in front of stand-in servers ---------------------------------------------------------------
class _StandIn(http.server.BaseHTTPRequestHandler):
    """Answers every GET with its server's name and the headers it was sent; a POST with the body's size."""

    def _reply(self, **extra) -> None:
        seen = {h: self.headers.get(h) for h in ("Host", "Upgrade", "Connection")}
        body = json.dumps({"name": self.server.name, **seen, **extra}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path != "/big":
            return self._reply()
        self.send_response(200)
        self.send_header("Content-Length", str(BIG))
        self.end_headers()
        self.wfile.write(b"x" * BIG)

    def do_POST(self) -> None:
        self._reply(received=len(self.rfile.read(int(self.headers["Content-Length"]))))

    def log_message(self, *args) -> None:
        pass


BIG = 4 * 2**20
"""An answer bigger than nginx's buffers: a slow reader makes nginx keep the rest in a temporary file."""


def _slow_download(port: int, path: str) -> int:
    """Bytes of `path`'s answer (headers included) read through a small socket buffer, a little at a time,
    as a browser on a slow network would."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        s.connect(("127.0.0.1", port))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        total = 0
        while chunk := s.recv(65536):
            total += len(chunk)
            time.sleep(0.002)  # a slow reader, not synchronisation
        return total


@contextmanager
def _stand_in(name: str) -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StandIn)
    server.name = name
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _ask(port: int, cookie: str | None = None, method="GET", body=None, headers=None):
    """(status, {header: [values]} lowercased, JSON body or None) of one request to nginx."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        sent = {**({"Cookie": cookie} if cookie is not None else {}), **(headers or {})}
        conn.request(method, "/anything", body=body, headers=sent)
        response = conn.getresponse()
        got: dict[str, list[str]] = {}
        for key, value in response.getheaders():
            got.setdefault(key.lower(), []).append(value)
        raw = response.read()
        return response.status, got, json.loads(raw) if response.status == 200 else None
    finally:
        conn.close()


def _cookie_of(headers: dict[str, list[str]]) -> str | None:
    values = [v for v in headers.get("set-cookie", []) if v.startswith(f"{class_nginx.COOKIE}=")]
    assert len(values) <= 1, values
    return values[0].split(";")[0].split("=", 1)[1] if values else None


@pytest.mark.slow
@needs_nginx
def test_nginx_keeps_each_browser_on_the_server_that_answered_it_first(tmp_path):
    with ExitStack() as stack:
        servers = [stack.enter_context(_stand_in(f"s{i}")) for i in (1, 2, 3)]
        backends = [f"127.0.0.1:{s.server_address[1]}" for s in servers]
        port = class_servers.free_port()
        proxy = class_servers.start_nginx(NGINX, tmp_path, backends, f"127.0.0.1:{port}")
        stack.callback(class_servers.stop, [proxy])
        wait_until(lambda: _ask_or_none(port), 30, "nginx to answer")

        # New browsers, one after another: the servers in turn, each told its number in the cookie.
        firsts = [_ask(port) for _ in range(3)]
        numbers = [_cookie_of(h) for _, h, _ in firsts]
        assert sorted(numbers) == ["1", "2", "3"]
        for (_, headers, body), number in zip(firsts, numbers, strict=True):
            assert body["name"] == f"s{number}" and headers["x-backend"] == [number]
        # With the cookie: always that server.
        for number in ("1", "2", "3", "2"):
            status, headers, body = _ask(port, f"other=x; {class_nginx.COOKIE}={number}")
            assert (status, body["name"], _cookie_of(headers)) == (200, f"s{number}", number)
        # A cookie naming no server (stale, forged): treated as new, and given a valid one.
        for bad in ("0", "4", "abc", "1.5", "", "127.0.0.1:8501"):
            _, headers, body = _ask(port, f"{class_nginx.COOKIE}={bad}")
            assert _cookie_of(headers) in ("1", "2", "3") and body["name"] == f"s{_cookie_of(headers)}"
        # The browser's Host reaches the server, and a websocket's upgrade is passed on.
        _, _, body = _ask(port, headers={"Host": "class.example:8500", "Upgrade": "websocket"})
        assert (body["Host"], body["Upgrade"], body["Connection"]) == (
            "class.example:8500",
            "websocket",
            "upgrade",
        )
        assert _ask(port)[2]["Connection"] == "close"
        # An upload bigger than nginx's default limit (1 MB) goes through.
        status, _, body = _ask(port, "sae_server=1", "POST", b"x" * (5 * 2**20))
        assert (status, body["received"]) == (200, 5 * 2**20)
        # A big answer to a slow reader arrives whole (nginx's workers can write their temporary files).
        assert _slow_download(port, "/big") > BIG

        # Server 2 goes away: its browsers land on another server, and their cookie follows them there.
        servers[1].shutdown()
        servers[1].server_close()
        for _ in range(3):
            _, headers, body = _ask(port, f"{class_nginx.COOKIE}=2")
            assert _cookie_of(headers) in ("1", "3") and body["name"] == f"s{_cookie_of(headers)}"
        # Nobody answers: a 502 with no cookie at all (not an empty one), so the browser keeps its own.
        for server in (servers[0], servers[2]):
            server.shutdown()
            server.server_close()
        for cookie in (f"{class_nginx.COOKIE}=1", None):
            status, headers, _ = _ask(port, cookie)
            assert status == 502 and "set-cookie" not in headers and "x-backend" not in headers, headers


def _ask_or_none(port: int):
    try:
        return _ask(port)
    except OSError:
        return None


# ----- two students, two app servers, one address -------------------------------------------------------
TRAIN_QUERY = "dataset=bars&steps=300"
DEADLINE_S = 60


def _server_of(context) -> str:
    return {c["name"]: c["value"] for c in context.cookies()}[class_nginx.COOKIE]


TRAIN_BUTTON = ".st-key-train button:visible"
UPLOADER = ".st-key-upload_file input[type=file]"


def _open_train(page, url: str, query: str, ready: str = TRAIN_BUTTON) -> str:
    """Open Train through nginx and wait for `ready` to be drawn (the page's websocket works); the number
    of the server that answered (its X-Backend header)."""
    response = page.goto(f"{url}/train?{query}")
    assert response is not None and response.ok, response
    page.locator(ready).first.wait_for(state="attached")
    return response.headers["x-backend"]


@pytest.mark.browser
@needs_nginx
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Debian's Chromium at {CHROMIUM}")
def test_two_students_train_on_two_servers_behind_one_address(browser, tmp_path):
    listen = f"127.0.0.1:{class_servers.free_port()}"
    env = {"SAE_OFFLINE": "1"}
    with ExitStack() as stack:
        running = stack.enter_context(class_servers.class_servers(2, listen, tmp_path, max_jobs=1, env=env))
        students = [stack.enter_context(_closing(browser.new_context(viewport=VIEWPORT))) for _ in (1, 2)]
        pages = [context.new_page() for context in students]
        for page in pages:
            page.set_default_timeout(DEADLINE_S * 1000)

        # Each student's first page names a server in its cookie; new students go to the servers in turn.
        served = [_open_train(page, running.url, TRAIN_QUERY) for page in pages]
        assert [_server_of(c) for c in students] == served
        assert sorted(served) == ["1", "2"]
        for page in pages:  # the websocket went to the same server: the page runs, and training works
            click_button(page, "train")
        for page in pages:
            wait_until(lambda page=page: (p := progress(page)) and p.step > 0, DEADLINE_S, "training to run")

        # A reload stays on the student's server.
        assert _open_train(pages[0], running.url, TRAIN_QUERY) == served[0] == _server_of(students[0])

        # An upload goes through nginx to the server that holds the student's session.
        data = tmp_path / "students.npy"
        np.save(data, np.random.default_rng(0).random((40, 8, 8), dtype=np.float32))
        assert _open_train(pages[1], running.url, "dataset=upload&hidden=4", UPLOADER) == served[1]
        with pages[1].expect_response(lambda r: "/_stcore/upload_file" in r.url) as upload:
            pages[1].locator(UPLOADER).set_input_files(data)
        assert upload.value.ok and upload.value.headers["x-backend"] == served[1]
        # The notice is shown twice for a moment (the page's info box and a toast): wait for the box.
        loaded = pages[1].get_by_test_id("stAlertContentInfo").get_by_text("Loaded students.npy: 40 samples")
        loaded.wait_for()

        # The first student's server dies: a reload puts the student on the other one, starting over.
        class_servers.stop([running.servers[int(served[0]) - 1]])
        assert _open_train(pages[0], running.url, TRAIN_QUERY) == served[1] == _server_of(students[0])
        assert wait_until(lambda: progress(pages[0]), DEADLINE_S, "the progress line").step == 0


@contextmanager
def _closing(context):
    try:
        yield context
    finally:
        context.close()
