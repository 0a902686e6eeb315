"""What the whole server shares (st.cache_resource), and who a browser is to it.

Not a page itself. Once per server process: torch's thread count, the training slots and their queue,
the reaper of dropped sessions, the presets. Per call: which browser a run belongs to (its XSRF token)
and whether its tab is still connected, which is what the server needs to hand out and take back slots.
"""

from __future__ import annotations

import binascii
import os
from collections.abc import Callable

import streamlit as st
from streamlit.proto.ClientState_pb2 import ClientState

from sae_core.presets import load_presets
from sae_core.serve import scheduler
from sae_core.serve.memory import ServerMemory
from sae_core.serve.scheduler import TrainingQueue
from sae_core.train.threads import configure_threads

PER_BROWSER = 2
"""Runs one browser may have training or queued at once (two tabs comparing runs; a reload's old run
holds its place for the few seconds until it notices its tab is gone,
sae_core.serve.jobs.DISCONNECT_GRACE_S)."""
IDLE_TIMEOUT_S = 30.0
"""A job pauses itself when for this long no page has drawn it and no tab of its browser session has
been open (see `session_watcher`); $SAE_IDLE_TIMEOUT_S overrides it (tests use a short one)."""


@st.cache_resource
def configure_torch() -> int:
    """Once per server: how many CPU threads each training step may use ($SAE_TORCH_THREADS, default 1).

    One thread per job is the right policy for a shared server: several jobs may train at once, and
    the reasons of sae_core.train.threads hold for each of them.
    """
    threads = configure_threads()
    from sae_core.serve.warmup import warm_up_in_background

    warm_up_in_background()  # the first Train click of this server should not pay torch's start-up
    return threads


@st.cache_resource
def training_queue() -> TrainingQueue:
    """The server's training slots (one per core, $SAE_MAX_JOBS) and the queue of runs waiting for one."""
    return TrainingQueue(scheduler.default_slots(), per_owner=PER_BROWSER)


@st.cache_resource
def reaper() -> scheduler.Reaper:
    """Releases the runs of browser sessions the server has dropped (after server.disconnectedSessionTTL)."""
    return scheduler.Reaper(ttl_s=float(st.get_option("server.disconnectedSessionTTL")))


@st.cache_resource
def server_memory() -> ServerMemory:
    """The live sessions' runs against the server's memory budget ($SAE_SERVER_MEMORY_MB)."""
    return ServerMemory()


@st.cache_resource
def presets() -> dict:
    return load_presets()


def browser_owner() -> str:
    """Who a run belongs to (the queue's per-browser limit, the kept runs): the browser, by the token in
    Streamlit's XSRF cookie (the same in every tab, across reloads and server restarts), else this session.

    The cookie's value changes at every page load (Tornado re-masks the token: "2|mask|masked|time"), so
    the token is unmasked first: keyed on the raw value, a reload made a new owner, who could take more
    places in the queue. AppTest's mocked client answers with a MagicMock: that is no cookie.
    """
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    cookie = st.context.cookies.get("_streamlit_xsrf")
    if isinstance(cookie, str) and cookie:
        return "browser:" + xsrf_token(cookie)
    ctx = get_script_run_ctx()
    return "session:" + (ctx.session_id if ctx is not None else "")


def xsrf_token(cookie: str) -> str:
    """The token inside an XSRF cookie value: version 2 ("2|mask|masked|time") unmasked, as hex; any other
    value as it is."""
    parts = cookie.strip("\"'").split("|")
    if len(parts) != 4 or parts[0] != "2":
        return cookie
    try:
        mask, masked = binascii.a2b_hex(parts[1]), binascii.a2b_hex(parts[2])
    except (binascii.Error, ValueError):
        return cookie
    if not mask:
        return cookie
    return bytes(b ^ mask[i % len(mask)] for i, b in enumerate(masked)).hex()


def idle_timeout_s() -> float:
    return float(os.environ.get("SAE_IDLE_TIMEOUT_S", IDLE_TIMEOUT_S))


def session_waker() -> Callable[[], None] | None:
    """A callable that redraws this browser session's page from any thread (a queued run whose turn came
    wakes its page), or None where there is no real server (AppTest) or this Streamlit has no way in.

    A waiting page then asks the server nothing until it is woken or its student acts: a class of 100
    whose pages asked every 5 s whether their turn had come took the cores from the two who trained
    (issue 26). It reruns the session with the state its browser last sent (the page, the widgets, the
    query string), as Streamlit does for a changed source file, on the session's own event loop.
    """
    from streamlit import runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is None or not runtime.exists():
        return None
    server, session_id = runtime.get_instance(), ctx.session_id
    manager = getattr(server, "_session_mgr", None)
    if manager is None or server.is_active_session(session_id) is not True:
        return None

    def wake() -> None:
        info = manager.get_active_session_info(session_id)
        if info is None:  # the tab is gone: nothing to redraw
            return
        session = info.session
        state = ClientState()
        state.CopyFrom(session._client_state)
        state.fragment_id = ""  # the whole page: its buttons change with the run's status
        state.is_auto_rerun = False
        try:
            session._event_loop.call_soon_threadsafe(session.request_rerun, state)
        except RuntimeError:  # the server is shutting down (its loop closed)
            pass

    return wake


def session_watcher() -> Callable[[], bool] | None:
    """A callable that says whether this browser session still has a tab connected to the server, or
    None where there is no real server (AppTest mocks the runtime): the job then goes by page reads.

    Streamlit drops a session from its active ones when its websocket closes (the tab was closed or
    lost its connection), so a user on another page of the app keeps the run going.
    """
    from streamlit import runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is None or not runtime.exists():
        return None
    server, session_id = runtime.get_instance(), ctx.session_id
    if server.is_active_session(session_id) is not True:  # this very script runs for it: not a real one
        return None
    return lambda: server.is_active_session(session_id)
