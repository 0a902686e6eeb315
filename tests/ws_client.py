"""A browserless Streamlit client: one student as the server sees them, without a Chromium to feed.

It speaks the app's websocket (`/_stcore/stream`, protobuf `BackMsg`/`ForwardMsg` from `streamlit.proto`)
the way the browser does for what the load benchmark needs: open a page with a query string, press a
button by its widget key, and rerun every `st.fragment(run_every=...)` the server asks for (the Train
page's live views) at the interval it asks for. Widget values are left to the server (it keeps the last
ones), which is what a student who only presses buttons sends anyway.

Each rerun it triggers is timed from the request to the server's `script_finished` for it, and every text
element the server sends is kept, so a caller can read the Train page's progress line
(`tests.browser_helpers.parse_progress`).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field

import websockets
from browser_helpers import parse_progress
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

_MARKUP = re.compile(r"[*_`]")
KEEP_TEXTS = 200
"""Text elements kept (fragment reruns add theirs without a new session)."""
_FULL_RUN_ENDS = (ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_WITH_COMPILE_ERROR)
KEEP_FINISHES = 8


@dataclass
class Student:
    """One websocket session on the app. Use `async with Student(url) as s:`."""

    url: str
    """http://host:port of the app."""
    page: str = "train"
    query: str = ""
    buttons: dict[str, str] = field(default_factory=dict)
    """widget key -> widget id of every button drawn so far."""
    texts: list[str] = field(default_factory=list)
    """Text of the markdown/text/progress elements since the last full run, in arrival order."""
    run_seconds: list[float] = field(default_factory=list)
    """Seconds from each full rerun request (page load or button) to its script_finished."""
    fragment_runs: int = 0
    """Fragment reruns this client asked for (the run_every timers)."""
    scripts_finished: int = 0
    """Full runs of the page the server finished, whoever started them (a server-side wake included)."""
    ticking: bool = True
    """Rerun the page's run_every fragments as a browser does; False leaves them to `rerun_fragment`."""
    fragment_ids: list[str] = field(default_factory=list)
    """Every fragment the server asked to rerun on a timer, in the order asked."""
    finishes: list[str] = field(default_factory=list)
    """The last script_finished statuses the server sent (full and fragment runs), newest last."""

    async def __aenter__(self) -> Student:
        ws_url = self.url.replace("http://", "ws://").rstrip("/") + "/_stcore/stream"
        self._ws = await websockets.connect(ws_url, subprotocols=["streamlit"], max_size=None)
        self._fragments: dict[str, asyncio.Task] = {}
        self._finished = asyncio.Event()
        self._fragment_finished = asyncio.Event()
        self._reader = asyncio.create_task(self._read())
        self._send_lock = asyncio.Lock()
        await self.rerun()
        return self

    async def __aexit__(self, *exc) -> None:
        for task in self._fragments.values():
            task.cancel()
        self._reader.cancel()
        await self._ws.close()

    # ----- requests -------------------------------------------------------------------------------------
    async def rerun(self, trigger: str | None = None, timeout_s: float = 120.0) -> float:
        """A full rerun (pressing the button with widget key `trigger` when given); returns its seconds."""
        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = self.query
        state.page_name = self.page
        if trigger is not None:
            widget = state.widget_states.widgets.add()
            widget.id = self.buttons[trigger]
            widget.trigger_value = True
        self._finished.clear()
        start = time.perf_counter()
        await self._send(msg)
        await self._until_set(self._finished, timeout_s, f"the {trigger or 'page'} rerun")
        seconds = time.perf_counter() - start
        self.run_seconds.append(seconds)
        return seconds

    async def rerun_fragment(self, fragment_id: str, timeout_s: float = 120.0) -> float:
        """One rerun of a fragment, as its timer asks for it; returns the seconds to its end."""
        msg = BackMsg()
        msg.rerun_script.query_string = self.query
        msg.rerun_script.page_name = self.page
        msg.rerun_script.fragment_id = fragment_id
        msg.rerun_script.is_auto_rerun = True
        self._fragment_finished.clear()
        start = time.perf_counter()
        await self._send(msg)
        await self._until_set(self._fragment_finished, timeout_s, "the fragment's rerun")
        return time.perf_counter() - start

    async def _send(self, msg: BackMsg) -> None:
        async with self._send_lock:
            await self._ws.send(msg.SerializeToString())

    async def _tick(self, fragment_id: str, interval: float) -> None:
        """What the browser does for a fragment with run_every: ask for its rerun every `interval`."""
        while True:
            await asyncio.sleep(interval)
            msg = BackMsg()
            msg.rerun_script.query_string = self.query
            msg.rerun_script.page_name = self.page
            msg.rerun_script.fragment_id = fragment_id
            msg.rerun_script.is_auto_rerun = True
            await self._send(msg)
            self.fragment_runs += 1

    # ----- what the server sends ------------------------------------------------------------------------
    async def _read(self) -> None:
        async for raw in self._ws:
            msg = ForwardMsg()
            msg.ParseFromString(raw)
            kind = msg.WhichOneof("type")
            if kind == "script_finished":
                self.finishes.append(ForwardMsg.ScriptFinishedStatus.Name(msg.script_finished))
                del self.finishes[:-KEEP_FINISHES]
            if kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                self._element(msg.delta.new_element)
            elif kind == "auto_rerun":
                self._start_ticking(msg.auto_rerun.fragment_id, msg.auto_rerun.interval)
            elif kind == "stop_auto_rerun":
                for task in self._fragments.values():
                    task.cancel()
                self._fragments.clear()
            elif kind == "script_finished" and msg.script_finished in _FULL_RUN_ENDS:
                self.scripts_finished += 1
                self._finished.set()
            elif (
                kind == "script_finished"
                and msg.script_finished == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY
            ):
                self._fragment_finished.set()

    async def _until_set(self, event: asyncio.Event, timeout_s: float, what: str) -> None:
        """Wait for `event` (a run's end); a TimeoutError naming `what` and what this client last saw (is
        its reader alive, the last runs' ends, the last progress line) after `timeout_s` seconds."""
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
        except TimeoutError:
            if self._reader.done():
                error = None if self._reader.cancelled() else self._reader.exception()
                reader = f"the reader ended ({error!r})" if error else "the reader ended (socket closed)"
            else:
                reader = "the reader is alive"
            seen = f"{reader}; last run ends {self.finishes}; last progress {self.read(parse_progress)}"
            raise TimeoutError(f"no end of {what} in {timeout_s:.0f} s; {seen}") from None

    def _start_ticking(self, fragment_id: str, interval: float) -> None:
        if fragment_id not in self.fragment_ids:
            self.fragment_ids.append(fragment_id)
        if not self.ticking:
            return
        old = self._fragments.pop(fragment_id, None)
        if old is not None:
            old.cancel()
        self._fragments[fragment_id] = asyncio.create_task(self._tick(fragment_id, interval))

    def _element(self, element) -> None:
        kind = element.WhichOneof("type")
        if kind == "button":
            key = element.button.id.rsplit("-", 1)[-1]
            self.buttons[key] = element.button.id
        elif kind in ("markdown", "text", "progress"):
            body = element.progress.text if kind == "progress" else getattr(element, kind).body
            self.texts.append(_MARKUP.sub("", body))
            del self.texts[:-KEEP_TEXTS]

    def read(self, parse):
        """The last text element that `parse` accepts (e.g. parse_progress), parsed; None if none does."""
        for text in reversed(self.texts):
            parsed = parse(text)
            if parsed is not None:
                return parsed
        return None


async def until(read, timeout_s: float, what: str):
    """Poll `read()` every 0.1 s until it gives a truthy value, which is returned; TimeoutError naming
    `what` after `timeout_s` seconds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = read()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
