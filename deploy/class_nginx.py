"""The nginx configuration that puts several app servers behind one address, each browser kept on one.

`site_config` is the part that goes into nginx's http context (a system nginx's conf.d/);
`standalone_config` wraps it into a whole nginx.conf that an ordinary user runs in the foreground
(scripts/class_servers.py does). deploy/nginx-class.conf is `site_config` for three servers.

Why a cookie of our own decides the server: a Streamlit session lives in one server process (its widgets,
its training job, its uploaded file), so the page, its websocket (/_stcore/stream) and its uploads
(/_stcore/upload_file) must all reach the server that holds it. A class behind one NAT shows one IP
address, so nginx's ip_hash would put everyone on one server, and Streamlit's own cookie is set too late
to route the first request. So: a browser without a valid `sae_server` cookie goes to the next server in
turn, and the answer carries `sae_server=<i>` naming the server that answered; later requests go to server
i. If server i does not answer, nginx tries the others, and the cookie moves to the one that answered.

nginx knows which server answered only by its address ($upstream_addr, the IP it connected to), so the
backends are given as IP addresses, not host names.
"""

from __future__ import annotations

import ipaddress
import re

COOKIE = "sae_server"
"""The sticky cookie: the number (1..N) of the app server that holds this browser's sessions."""
UPLOAD_LIMIT_MB = 201
"""nginx refuses bodies over this (its default is 1 MB): the app takes files up to 200 MB
(sae_core.data.uploads.MAX_FILE_BYTES, also Streamlit's server.maxUploadSize), plus the multipart envelope."""
LOG_FORMAT = (
    'log_format sae_class \'$remote_addr [$time_local] "$request" $status '
    'backend=$upstream_addr cookie=$cookie_sae_server "$http_user_agent"\';'
)


def check_backend(address: str) -> str:
    """`address` ("IPv4:port" or "[IPv6]:port") as nginx writes it in $upstream_addr; ValueError otherwise."""
    host, _, port = address.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    try:
        ip = ipaddress.ip_address(host[1:-1] if bracketed else host)
    except ValueError:
        raise ValueError(
            f"backend {address!r} must be an IP address and port, e.g. 10.0.0.2:8501 or [::1]:8501 "
            "(nginx names the server that answered by the address it connected to)"
        ) from None
    if (ip.version == 6) != bracketed:
        raise ValueError(f"backend {address!r}: an IPv6 address goes in brackets, an IPv4 one does not")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"backend {address!r}: the port must be in 1..65535")
    return f"[{ip.compressed}]:{int(port)}" if bracketed else f"{ip}:{int(port)}"


def check_backends(backends: list[str]) -> list[str]:
    """Every backend checked (`check_backend`), at least one, none twice."""
    if not backends:
        raise ValueError("backends must name at least one app server")
    checked = [check_backend(b.strip()) for b in backends]
    if len(set(checked)) != len(checked):
        raise ValueError(f"backends must all differ, got {backends}")
    return checked


def _answered_by(address: str) -> str:
    """A regex on "$upstream_status $upstream_addr" that matches when `address` was the last server tried
    and it answered (status below 500: 502 and 504 are nginx's own words for "it did not")."""
    return f"~^([0-9]{{3}}, )*[1-4][0-9][0-9] (.*, )?{re.escape(address)}$"


def site_config(backends: list[str], listen: str = "80") -> str:
    """The http-context part: upstreams, routing maps and the proxying server block.

    backends: app servers as "IP:port", numbered 1..N in this order; listen: nginx's `listen` value
    (a port, or "address:port")."""
    backends = check_backends(backends)
    numbered = list(enumerate(backends, 1))
    lines = [
        "# Several app servers of the Sparse Autoencoder Playground behind one address, each browser kept",
        f"# on one server by the cookie {COOKIE}=<i>. Written by scripts/class_servers.py; goes in nginx's",
        "# http context (e.g. /etc/nginx/conf.d/). README: 'A class bigger than one server'.",
        "",
        "# A browser without a valid cookie: the next server in turn.",
        "upstream sae_new {",
        *(f"    server {address};" for address in backends),
        "}",
        "",
        "# A browser with the cookie: its server, or the others if that one does not answer (the browser",
        "# then starts over on the one that does, and its cookie moves there).",
    ]
    for i, address in numbered:
        others = "".join(f" server {b} backup;" for b in backends if b != address)
        lines.append(f"upstream sae_server_{i} {{ server {address};{others} }}")
    lines += [
        "",
        "# Only the numbers 1..N route; any other cookie value counts as no cookie.",
        f"map $cookie_{COOKIE} $sae_upstream {{",
        "    default sae_new;",
        *(f"    {i} sae_server_{i};" for i, _ in numbered),
        "}",
        "",
        "# The number of the server that answered; empty if none did.",
        'map "$upstream_status $upstream_addr" $sae_served_by {',
        '    default "";',
        *(f'    "{_answered_by(address)}" {i};' for i, address in numbered),
        "}",
        "# An empty value sends no header at all: a failed answer leaves the browser's cookie as it was.",
        "map $sae_served_by $sae_cookie {",
        '    "" "";',
        f'    default "{COOKIE}=$sae_served_by; Path=/; HttpOnly; SameSite=Lax";',
        "}",
        "",
        "# Streamlit talks over a websocket (/_stcore/stream): pass the upgrade on.",
        "map $http_upgrade $sae_connection {",
        "    default upgrade;",
        '    "" close;',
        "}",
        "",
        "server {",
        f"    listen {listen};",
        f"    client_max_body_size {UPLOAD_LIMIT_MB}m;",
        "",
        "    location / {",
        "        proxy_pass http://$sae_upstream;",
        "        proxy_http_version 1.1;",
        "        proxy_set_header Upgrade $http_upgrade;",
        "        proxy_set_header Connection $sae_connection;",
        "        # The browser's own Host: Streamlit takes a websocket only from the origin it is served as.",
        "        proxy_set_header Host $http_host;",
        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "        proxy_set_header X-Forwarded-Proto $scheme;",
        "        # An open tab keeps its websocket for the whole lesson; uploads stream straight through.",
        "        proxy_read_timeout 3600s;",
        "        proxy_send_timeout 3600s;",
        "        proxy_connect_timeout 5s;",
        "        proxy_request_buffering off;",
        "        add_header Set-Cookie $sae_cookie always;",
        "        # Which server answered: for the teacher (the browser's network tab) and the tests.",
        "        add_header X-Backend $sae_served_by always;",
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _quoted(path: str) -> str:
    if '"' in path or "\\" in path:
        raise ValueError(f"nginx prefix {path!r} must not contain quotes or backslashes")
    return f'"{path}"'


def standalone_config(backends: list[str], listen: str, prefix: str, user: str | None = None) -> str:
    """A whole nginx.conf that an ordinary user runs in the foreground, keeping its pid, logs and temporary
    files under `prefix` (a folder with a `tmp/` in it): `nginx -p PREFIX -c PREFIX/nginx.conf -e
    PREFIX/error.log`. `user`: the workers' user, for nginx started as root (which would otherwise run
    them as `nobody`, who cannot write the temporary files of a large answer under a private prefix)."""
    temp = [
        f"{name}_temp_path {_quoted(f'{prefix}/tmp/{name}')};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    ]
    head = [
        "# Written by scripts/class_servers.py: nginx in the foreground, everything under its prefix.",
        "daemon off;",
        *([f"user {user};"] if user else []),
        # One worker: the proxy's load is small, and new browsers then follow one round robin.
        "worker_processes 1;",
        f"pid {_quoted(f'{prefix}/nginx.pid')};",
        f"error_log {_quoted(f'{prefix}/error.log')} warn;",
        # Two per open tab (browser side, server side): room for a few hundred students.
        "events { worker_connections 1024; }",
        "http {",
        f"    {LOG_FORMAT}",
        f"    access_log {_quoted(f'{prefix}/access.log')} sae_class;",
        *(f"    {line}" for line in temp),
    ]
    site = [f"    {line}" if line else "" for line in site_config(backends, listen).splitlines()]
    return "\n".join([*head, *site, "}"]) + "\n"
