"""A class bigger than one server: several app servers behind one address, each browser kept on one.

Starts N `streamlit run app.py` servers on free local ports (each with its share of the machine's cores as
$SAE_MAX_JOBS, one torch thread per run), waits until each answers /_stcore/health, writes an nginx.conf
under a prefix folder (deploy/class_nginx.py: a cookie keeps each browser on the server that first answered
it), runs nginx in the foreground as the current user, and prints the one address to hand out. Ctrl-C or
SIGTERM stops nginx, then the servers.

    python scripts/class_servers.py --servers 3 --port 8500
    python scripts/class_servers.py --print-config --port 80 --backends 10.0.0.2:8501,10.0.0.3:8501

The second form prints only the site configuration, for a machine whose own nginx should do the proxying
(deploy/nginx-class.conf is its output for three local servers). Everything a student has (session, run,
upload) lives in the one server that holds their browser; on one machine the servers share only the disk
(uploads go to the temp folder under random names) and the cores. README: "A class bigger than one server".
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # deploy/ is tooling next to the app, not part of the installed package
    sys.path.insert(0, str(ROOT))

from deploy.class_nginx import site_config, standalone_config  # noqa: E402

NGINX_FALLBACK = Path("/usr/sbin/nginx")
"""Debian's nginx, which is not on an ordinary user's PATH."""
STOP_WAIT_S = 15.0
"""How long a process gets to exit after SIGTERM before it is killed."""


@dataclass(frozen=True)
class ClassServers:
    """A running class: the address nginx answers on and the processes behind it."""

    url: str
    """Where nginx answers on this machine, e.g. http://127.0.0.1:8500."""
    backends: list[str]
    """The app servers as "127.0.0.1:port", numbered 1..N in this order (the cookie's values)."""
    servers: list[subprocess.Popen]
    """The app server processes, in the order of `backends`."""
    nginx: subprocess.Popen
    prefix: Path
    """nginx.conf, nginx's logs and one log per app server (server-<i>.log)."""


def find_nginx() -> str | None:
    """The nginx binary: on PATH, else Debian's /usr/sbin/nginx; None if neither."""
    return shutil.which("nginx") or (str(NGINX_FALLBACK) if NGINX_FALLBACK.exists() else None)


def free_port() -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def jobs_per_server(servers: int, cores: int | None = None) -> list[int]:
    """Each server's $SAE_MAX_JOBS: the cores shared out as evenly as they go, at least one each (a server
    trains with one thread per run, so more runs than cores in total only slows every student down)."""
    cores = cores or os.cpu_count() or 1
    return [max(1, cores // servers + (i < cores % servers)) for i in range(servers)]


def answers(url: str) -> bool:
    """Whether `url`/_stcore/health answers 200 now."""
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _log_tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, what: str, deadline: float) -> None:
    while not answers(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            why = f"exited with {proc.returncode}" if proc.poll() is not None else "did not answer in time"
            raise RuntimeError(f"{what} {why}; {log}:\n{_log_tail(log)}")
        time.sleep(0.2)  # the health check's polling interval


def stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each process's group, give them STOP_WAIT_S together, then SIGKILL what is left."""
    alive = [p for p in procs if p.poll() is None]
    for p in alive:
        _signal_group(p, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT_S
    for p in alive:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(p, signal.SIGKILL)
            p.wait(timeout=STOP_WAIT_S)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _spawn(cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    """`cmd` in its own process group (Ctrl-C reaches only this script, which then stops it in order)."""
    with log.open("w") as out:
        return subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def start_app_server(port: int, max_jobs: int, log: Path, env: dict[str, str] | None = None):
    """One `streamlit run app.py` on 127.0.0.1:`port` (reached only through nginx)."""
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)]
    cmd += ["--server.headless", "true", "--server.address", "127.0.0.1"]
    full_env = {**os.environ, "SAE_MAX_JOBS": str(max_jobs), "SAE_TORCH_THREADS": "1", **(env or {})}
    return _spawn(cmd, log, full_env)


def start_nginx(nginx: str, prefix: Path, backends: list[str], listen: str) -> subprocess.Popen:
    """Write PREFIX/nginx.conf for `backends` and run nginx on it in the foreground, as the current user."""
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    # As root, nginx would hand its workers to `nobody`; they stay with whoever owns the prefix.
    user = pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() == 0 else None
    conf.write_text(standalone_config(backends, listen, str(prefix), user))
    cmd = [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    return _spawn(cmd, prefix / "nginx.log", dict(os.environ))


def local_url(listen: str) -> str:
    """How this machine reaches nginx's `listen` ("8500" or "address:8500")."""
    host, _, port = listen.rpartition(":")
    return f"http://{host if host not in ('', '0.0.0.0', '*') else '127.0.0.1'}:{port}"


@contextmanager
def class_servers(
    servers: int,
    listen: str,
    prefix: Path,
    nginx: str | None = None,
    max_jobs: int | None = None,
    env: dict[str, str] | None = None,
    deadline_s: float = 120.0,
) -> Iterator[ClassServers]:
    """Run `servers` app servers and nginx on `listen` in front of them; yield once all answer. Every
    process is stopped on exit (nginx first, so no browser reaches a server that is going away), whatever
    happened inside the `with`. `max_jobs`: each server's $SAE_MAX_JOBS (default: `jobs_per_server`);
    `env`: extra environment for the app servers."""
    nginx = nginx or find_nginx()
    if nginx is None:
        raise RuntimeError("nginx not found (Debian: apt-get install nginx)")
    prefix.mkdir(parents=True, exist_ok=True)
    ports = [free_port() for _ in range(servers)]
    jobs = [max_jobs] * servers if max_jobs else jobs_per_server(servers)
    with ExitStack() as cleanup:
        procs: list[subprocess.Popen] = []
        cleanup.callback(stop, procs)  # runs last: the app servers
        for i, (port, n) in enumerate(zip(ports, jobs, strict=True), 1):
            procs.append(start_app_server(port, n, prefix / f"server-{i}.log", env))
        deadline = time.monotonic() + deadline_s
        for i, (port, proc) in enumerate(zip(ports, procs, strict=True), 1):
            log = prefix / f"server-{i}.log"
            _wait_healthy(f"http://127.0.0.1:{port}", proc, log, f"app server {i}", deadline)
        backends = [f"127.0.0.1:{port}" for port in ports]
        proxy = start_nginx(nginx, prefix, backends, listen)
        cleanup.callback(stop, [proxy])  # runs first
        url = local_url(listen)
        _wait_healthy(url, proxy, prefix / "error.log", "nginx", time.monotonic() + 30)
        yield ClassServers(url, backends, procs, proxy, prefix)


def address_to_hand_out(listen: str) -> str:
    """The address students type for nginx's `listen`: its own address if it names one, else this
    machine's address on its network, or its host name when it has no route out (a UDP socket's connect
    sends nothing; it only asks the kernel which address it would use)."""
    host, _, port = listen.rpartition(":")
    if host not in ("", "0.0.0.0", "*"):
        return f"http://{host}:{port}"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))
            host = s.getsockname()[0]
    except OSError:
        host = socket.gethostname()
    return f"http://{host}:{port}"


def serve(running: ClassServers) -> int:
    """Wait for Ctrl-C or SIGTERM (0), or for nginx to exit (1); say when an app server dies."""
    reported: set[int] = set()
    try:
        while running.nginx.poll() is None:
            for i, proc in enumerate(running.servers, 1):
                if proc.poll() is not None and i not in reported:
                    reported.add(i)
                    print(f"app server {i} exited ({proc.returncode}); its students move to the others")
            time.sleep(1)  # a watch loop's period, nothing waits on it
    except KeyboardInterrupt:
        return 0
    print(f"nginx exited ({running.nginx.returncode}); {running.prefix / 'error.log'}:")
    print(_log_tail(running.prefix / "error.log"))
    return 1


def _interrupt(signum, frame) -> None:
    """Ctrl-C or SIGTERM: stop, once; a second signal must not cut the shutdown short."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=3, help="app servers to start (default 3)")
    parser.add_argument("--port", default="8500", help="nginx's port, or address:port (default 8500)")
    parser.add_argument("--max-jobs", type=int, help="$SAE_MAX_JOBS of each server (default: cores / N)")
    parser.add_argument("--prefix", type=Path, help="folder for nginx.conf and the logs (kept)")
    parser.add_argument("--nginx", help="the nginx binary (default: on PATH, else /usr/sbin/nginx)")
    parser.add_argument("--print-config", action="store_true", help="print the site config and exit")
    parser.add_argument(
        "--backends",
        help="with --print-config: app servers as IP:port,IP:port (default 127.0.0.1:8501.. for --servers)",
    )
    args = parser.parse_args(argv)
    if args.servers < 1:
        parser.error("--servers must be at least 1")
    if args.print_config:
        backends = args.backends.split(",") if args.backends else None
        backends = backends or [f"127.0.0.1:{8501 + i}" for i in range(args.servers)]
        try:
            print(site_config(backends, args.port), end="")
        except ValueError as err:
            parser.error(str(err))
        return 0
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    sys.stdout.reconfigure(line_buffering=True)  # the address shows at once also when output goes to a file
    prefix = args.prefix or Path(tempfile.mkdtemp(prefix="sae-class-"))
    print(f"starting {args.servers} app servers and nginx (configuration and logs in {prefix}) ...")
    try:
        with class_servers(args.servers, args.port, prefix, args.nginx, args.max_jobs) as running:
            for i, backend in enumerate(running.backends, 1):
                print(f"  app server {i}: {backend} (log {prefix / f'server-{i}.log'})")
            print(f"Students open {address_to_hand_out(args.port)} (on this machine: {running.url}).")
            print("Ctrl-C stops nginx and every app server.")
            status = serve(running)
            print("stopping ...")
    except KeyboardInterrupt:  # during start-up
        status = 0
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        status = 1
    if args.prefix is None and status == 0:
        shutil.rmtree(prefix, ignore_errors=True)
    elif status != 0:
        print(f"logs kept in {prefix}", file=sys.stderr)
    print("stopped")
    return status


if __name__ == "__main__":
    sys.exit(main())
