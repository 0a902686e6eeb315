"""Driving the real app in headless Chromium: start the server, read the Train page, move its controls.

Shared by tests/test_browser.py and the live benchmarks (benchmarks/live_latency.py,
benchmarks/live_throughput.py). Selectors rely on what Streamlit puts in the DOM: the CSS class
`st-key-<key>` on every keyed element, and `data-testid` attributes (`stProgress`, `stException`,
`stSliderThumbValue`). The Train page's progress line reads "<status> · step 1,234 / 3,000 · …"
(or "<status> · step 1,234 · until paused · …").
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1400, "height": 1000}
BROWSER_TESTS = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"needs Debian's Chromium at {CHROMIUM} (apt install chromium)"
    ),
]
"""A browser test module's `pytestmark`: marked `browser`, skipped where Debian's Chromium is missing."""

PROGRESS = '[data-testid="stProgress"]'
EXCEPTION = '[data-testid="stException"]'
# A live chart is two stacked slots (pages/live_charts.py); the marker in the live views names the front one.
FILTERS_PLOT = (
    ".st-key-live_views:has(.st-key-live_views__front0) .st-key-filters_chart .js-plotly-plot, "
    ".st-key-live_views:has(.st-key-live_views__front1) .st-key-filters_chart__back .js-plotly-plot"
)
FILTERS_PICTURE = f'{FILTERS_PLOT}, .st-key-filters_chart__stack [data-testid="stHtml"] img'
"""The filters as drawn: the plot, or before the first step its plain picture (sae_core/figures/static.py)."""
RHO_INPUT = '.st-key-rho input[type="range"]'
RHO_VALUE = '.st-key-rho [data-testid="stSliderThumbValue"]'
_TWO_FRAMES = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
_PROGRESS_RE = re.compile(
    r"^\s*(\w+)\s*·\s*(?:place \d+ in the queue\s*·\s*)?step\s*([\d,]+)\s*(?:/\s*([\d,]+)|·\s*until paused)"
)

T = TypeVar("T")
TRAINING_THREAD = "sae-training"
"""sae_core.serve.jobs.TRAINING_THREAD (not imported: these helpers run without the package's torch)."""
REAPER_PERIOD_S = 6.0
"""sae_core.serve.scheduler.Reaper's period (5 s), with a margin."""


def playwright_sync_api() -> Any:
    """playwright.sync_api; called at a test module's top, it skips the whole module where the package is
    missing (the tests extra)."""
    return pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")


# ----- the server ---------------------------------------------------------------------------------------
def free_port() -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def streamlit_app(
    deadline_s: float = 90.0,
    port: int | None = None,
    env: dict[str, str] | None = None,
    base_path: str = "",
    root: Path = ROOT,
) -> Iterator[str]:
    """Run `streamlit run app.py` offline on a free port; yield its URL once /_stcore/health answers.
    `env`: extra environment variables for the server (e.g. SAE_IDLE_TIMEOUT_S); `base_path`: the path the
    app is served under (Streamlit's server.baseUrlPath; the URL then ends with it); `root`: the checkout
    whose app.py is served (this one by default; a benchmark may compare another revision's)."""
    with streamlit_server(deadline_s, port, env, base_path, root) as (url, _):
        yield url


@contextmanager
def streamlit_server(
    deadline_s: float = 90.0,
    port: int | None = None,
    env: dict[str, str] | None = None,
    base_path: str = "",
    root: Path = ROOT,
) -> Iterator[tuple[str, subprocess.Popen]]:
    """streamlit_app that also yields the server's process (to read its memory and threads).

    The server runs in its own process group and is terminated (then killed, if it lingers) on exit,
    whatever happened inside the `with`. Its output goes to a temporary log quoted in startup errors.
    """
    port = port or free_port()
    url = f"http://127.0.0.1:{port}" + (f"/{base_path.strip('/')}" if base_path.strip("/") else "")
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
    cmd += ["--server.port", str(port), "--browser.gatherUsageStats", "false"]
    cmd += ["--server.baseUrlPath", base_path] if base_path else []
    env = {**os.environ, "SAE_OFFLINE": "1", "PYTHONPATH": str(root), **(env or {})}
    log = tempfile.NamedTemporaryFile("w+", prefix="streamlit-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(
        cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + deadline_s
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                tail = log.read()[-3000:]
                why = (
                    f"exited with {proc.returncode}"
                    if proc.poll() is not None
                    else f"no health in {deadline_s}s"
                )
                raise RuntimeError(f"streamlit server {why}; log {log.name}:\n{tail}")
            time.sleep(0.2)  # polling interval of the health check, not synchronisation
        yield url, proc
    finally:
        _terminate(proc)
        log.close()


def _terminate(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)
    except ProcessLookupError:
        pass


# ----- the browser --------------------------------------------------------------------------------------
def launch_chromium(playwright: Any):
    """Debian's Chromium through Playwright (never a downloaded browser)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def wait_until(read: Callable[[], T | None], timeout_s: float, what: str, interval_s: float = 0.1) -> T:
    """Call read() until it returns something truthy; return it, or raise TimeoutError after timeout_s."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = read()
        if last:
            return last
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what} (last reading: {last!r})")


@dataclass(frozen=True)
class Progress:
    """The Train page's progress line, parsed."""

    status: str
    """ready | training | paused | finished | stopped | diverged"""
    step: int
    total: int
    """0 for a run until paused."""


def parse_progress(text: str) -> Progress | None:
    match = _PROGRESS_RE.match(text)
    if match is None:
        return None
    status, step, total = match.groups()
    return Progress(status, int(step.replace(",", "")), int((total or "0").replace(",", "")))


def progress(page) -> Progress | None:
    """The progress line now on the page, or None while it is not drawn."""
    text = page.evaluate(f"() => document.querySelector('{PROGRESS}')?.innerText ?? null")
    return parse_progress(text) if text else None


FILTERS_SIGNATURE_JS = f"""() => {{
    const gd = document.querySelector('{FILTERS_PLOT}');
    if (gd && gd.data && gd.data.length) return JSON.stringify(gd.data[0].z);
    const slot = document.querySelector('.st-key-live_views:has(.st-key-live_views__front0)')
        ? 1 : 2;  // the slot in front, as pages/live_charts.py's STYLE raises it
    const front = `.st-key-filters_chart__stack > .stElementContainer:nth-child(${{slot}})`;
    const img = document.querySelector(`${{front}} [data-testid="stHtml"] img`);
    return img ? img.getAttribute('src') : null;
}}"""
"""The filters in front as a string that changes iff the picture does: the plot's heatmap values, or the
plain picture's PNG (before the first step and while training)."""


def filters_signature(page) -> str | None:
    """The filter montage shown now (FILTERS_SIGNATURE_JS; None before it is drawn)."""
    return page.evaluate(FILTERS_SIGNATURE_JS)


def exception_texts(page) -> list[str]:
    """Texts of Streamlit exception boxes, plus any element that shows a Python traceback."""
    boxes = page.locator(EXCEPTION).all_inner_texts()
    body = page.evaluate("() => document.body.innerText")
    if "Traceback (most recent call last)" in body and not boxes:
        boxes.append(body[body.index("Traceback") :][:2000])
    return boxes


def click_button(page, key: str) -> None:
    """Click the button with widget key `key` (st-key-<key>)."""
    # A button with a tooltip is drawn twice (a 0×0 copy sits beside the visible one): pick the visible one.
    page.locator(f".st-key-{key} button:visible").click()


def open_home(page, url: str, timeout_s: float = 90.0) -> None:
    """Open the Home page and wait until its preset cards are drawn."""
    page.goto(url)
    page.locator("h1", has_text="Sparse Autoencoder Playground").wait_for(timeout=timeout_s * 1000)
    page.locator(".st-key-preset_quick-digits button:visible").wait_for(timeout=timeout_s * 1000)


def warm_up(browser, url: str, timeout_s: float = 90.0) -> None:
    """Load Home once in a throwaway page: the server's first script run imports torch and fills its
    caches, which would otherwise land inside whatever a test or a benchmark times first."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        open_home(context.new_page(), url, timeout_s)
    finally:
        context.close()


def open_train(page, url: str, query: str = "", timeout_s: float = 90.0) -> Progress:
    """Open the Train page and wait for its progress line; returns it."""
    page.goto(f"{url}/train{('?' + query) if query else ''}")
    page.locator(".st-key-train button:visible").wait_for(timeout=timeout_s * 1000)
    return wait_until(lambda: progress(page), timeout_s, "the progress line")


def rho_shown(page) -> str:
    return page.locator(RHO_VALUE).inner_text().strip()


def move_rho(page, presses: int = 1) -> None:
    """Move the ρ select_slider by `presses` options with the keyboard (negative: to the left)."""
    thumb = page.locator(RHO_INPUT)
    thumb.focus()
    key = "ArrowRight" if presses > 0 else "ArrowLeft"
    for _ in range(abs(presses)):
        page.keyboard.press(key)


def select_option(page, key: str, option: str, timeout_s: float = 30.0) -> None:
    """Pick `option` in the selectbox keyed `key` and wait until the box shows it."""
    box = page.locator(f".st-key-{key} input")
    box.click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_until(lambda: box.input_value() == option, timeout_s, f"{key} to show {option!r}")


def selectbox_options(page, key: str) -> list[str]:
    """The options a selectbox offers (opens its list, reads it, closes it again)."""
    page.locator(f".st-key-{key} input").click()
    options = page.get_by_role("option")
    options.first.wait_for(timeout=15_000)
    texts = [t.strip() for t in options.all_inner_texts()]
    page.keyboard.press("Escape")
    options.first.wait_for(state="hidden", timeout=15_000)
    return texts


def screenshot(page, name: str, max_height: int = 4000) -> Path:
    """Save a PNG of the whole page under artifacts/ (gitignored) and return its path.

    Streamlit scrolls inside its main section, so a "full page" screenshot stops at the viewport: the
    viewport is stretched to the content's height for the picture, then put back.
    """
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    size = page.viewport_size or VIEWPORT
    height = page.evaluate(
        "() => Math.max(document.body.scrollHeight,"
        " ...[...document.querySelectorAll('[data-testid=\"stMain\"]')].map(e => e.scrollHeight))"
    )
    page.set_viewport_size(
        {"width": size["width"], "height": int(min(max(height, size["height"]), max_height))}
    )
    try:
        page.evaluate(_TWO_FRAMES)  # let the charts lay themselves out at the new size
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(size)
    return path


def process_usage(pid: int) -> tuple[float, int]:
    """(resident memory in MB, thread count) of a process, from /proc (Linux)."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["Threads"])


def named_threads(pid: int, name: str) -> int:
    """How many threads of a process carry `name` in the operating system (/proc/PID/task/*/comm; the
    app names its training threads so: sae_core.serve.scheduler.name_os_thread)."""
    count = 0
    for comm in Path(f"/proc/{pid}/task").glob("*/comm"):
        try:
            count += comm.read_text().strip() == name
        except OSError:  # the thread ended while we looked
            pass
    return count


def start_training_sessions(
    browser, url: str, sessions: int, query: str | Callable[[int], str]
) -> tuple[list, list]:
    """Open `sessions` browser sessions on Train (`query`, or `query(i)` for session i), press Train in
    each, and wait until every one has taken a step; (their contexts, their pages)."""
    contexts, pages = [], []
    for i in range(sessions):
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        open_train(page, url, query(i) if callable(query) else query)
        click_button(page, "train")
        contexts.append(context)
        pages.append(page)
    for page in pages:
        wait_until(lambda page=page: (p := progress(page)) and p.step > 0 and p, 90, "every run to train")
    return contexts, pages


def session_soak(
    browser,
    url: str,
    pid: int,
    sessions: int,
    query,
    train_s: float,
    settle_s: float,
    start: Callable = start_training_sessions,
    step_of: Callable = lambda page: progress(page).step,
):
    """One round of a soak: open `sessions` browser sessions on Train (`query`: one for all, or session
    i's from `query(i)`), press Train in each (or whatever `start` does: benchmarks/soak.py starts sweeps),
    keep them training for `train_s`, close them all, and wait up to `settle_s` for the server's training
    threads to end, then watch it for one more reaper period (it frees the runs after their threads end).

    Returns {"during": peak (RSS MB, threads, training threads) while all train, "after": the lowest of
    each after they ended, "steps": each run's step count when its tab closed} of the server process.
    """
    contexts, pages = start(browser, url, sessions, query)
    during = _watch(pid, train_s, max)
    steps = [step_of(page) for page in pages]
    for context in contexts:
        context.close()
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline and named_threads(pid, TRAINING_THREAD) > 0:
        time.sleep(0.5)  # a polling period
    return {"during": during, "after": _watch(pid, REAPER_PERIOD_S, min), "steps": steps}


def _watch(pid: int, seconds: float, pick) -> tuple[float, int, int]:
    """(RSS MB, threads, training threads) of a process sampled every 0.5 s for `seconds`, each reduced
    with `pick`."""

    def usage() -> tuple[float, int, int]:
        return (*process_usage(pid), named_threads(pid, TRAINING_THREAD))

    end, reading = time.monotonic() + seconds, usage()
    while time.monotonic() < end:
        time.sleep(0.5)  # a sampling period, not synchronisation
        reading = tuple(pick(a, b) for a, b in zip(reading, usage(), strict=True))
    return reading
