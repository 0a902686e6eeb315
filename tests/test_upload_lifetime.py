"""Uploads live as long as their browser session, and each server keeps them in a folder of its own.

Seen before: three sessions each uploading a 146 MB .npy and closing left +737 MB in the server and 440 MB
on disk 70 s later (the datasets sat in a cache shared by every session, the files waited for the garbage
collector), and every server on a machine shared one folder.
"""

from __future__ import annotations

import gc
import io
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import numpy as np
import pytest

from sae_core.data import datasets as data
from sae_core.data.datasets import DataConfig
from sae_core.data.uploads import UploadError
from sae_core.serve import upload_store
from sae_core.serve.scheduler import Reaper
from sae_core.serve.upload_store import SessionUploads

REPO = Path(__file__).resolve().parents[1]


def _npy(rows: int = 50, side: int = 4) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(0).random((rows, side, side), dtype=np.float32))
    return buffer.getvalue()


def _wait_until(condition, what: str, deadline_s: float = 10.0) -> None:
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.01)


def test_a_session_that_ends_gives_back_its_upload_file_and_data_at_the_reapers_next_round(tmp_path):
    connected = threading.Event()
    connected.set()
    released: list[str] = []  # what the web framework kept of the upload (Streamlit's copy) is let go too
    store = SessionUploads(tmp_path, is_watched=connected.is_set, on_release=lambda: released.append("x"))
    upload_id = store.put(_npy(), "x.npy", 50, (4, 4))
    cfg = DataConfig(dataset="upload", upload=str(store.path(upload_id)))
    dataset = store.dataset(cfg, data.load)
    assert store.dataset(cfg, data.load) is dataset  # loaded once for the session
    assert dataset.train.shape[1] == 16
    loaded = weakref.ref(dataset.train)
    del dataset
    reaper = Reaper(ttl_s=0.1, interval_s=3600)  # reap() by hand
    reaper.watch(store)
    assert reaper.reap() == 0 and store.path(upload_id).is_file()  # connected: kept
    connected.clear()  # the tab closed; the server drops the session after its TTL
    _wait_until(lambda: store.abandoned_for() > 0.1, "the session has been gone for the TTL")
    # The store itself is still referenced (here, as Streamlit's session state may be for a while): the
    # reaper's release does not wait for the garbage collector.
    assert reaper.reap() == 1
    assert list(tmp_path.iterdir()) == [] and released == ["x"]
    gc.collect()
    assert loaded() is None  # the data loaded from the upload is gone with it
    with pytest.raises(UploadError, match="upload it again"):
        store.path(upload_id)


class _Bytes:
    """What Streamlit keeps of an upload (its UploadedFile's bytes): weakly referenceable, for the test."""

    def __init__(self, n: int) -> None:
        self.data = bytearray(n)


def test_an_ended_sessions_cycle_is_collected_at_the_reapers_next_round_on_an_idle_server(tmp_path):
    """Streamlit drops an ended session after the reaper's release; its state (the store, the bytes of
    the upload) is a reference cycle that only a full garbage collection frees, and an idle server makes
    too few objects for one to run. Seen: two of three closed sessions' 146 MB uploads stayed."""
    connected = threading.Event()
    store = SessionUploads(tmp_path, is_watched=connected.is_set)
    session = {"uploads": store, "widget": _Bytes(2**20)}
    session["self"] = session  # Streamlit's session objects refer to each other
    upload_bytes = weakref.ref(session["widget"])
    reaper = Reaper(ttl_s=-1.0, interval_s=3600)  # reap() by hand; its tab is closed: any time is over
    reaper.watch(store)
    del store
    was_enabled = gc.isenabled()
    gc.disable()  # an idle server: no automatic collection between the reaper's rounds
    try:
        assert reaper.reap() == 1  # released while Streamlit still holds the session
        assert upload_bytes() is not None
        del session  # Streamlit forgets the session: its state is garbage, in a cycle
        assert upload_bytes() is not None
        assert reaper.reap() == 0  # the next round collects it
        assert upload_bytes() is None
    finally:
        if was_enabled:
            gc.enable()


def test_a_new_upload_replaces_the_sessions_dataset(tmp_path):
    store = SessionUploads(tmp_path)
    first = store.put(_npy(rows=30), "a.npy", 30, (4, 4))
    old = store.dataset(DataConfig(dataset="upload", upload=str(store.path(first))), data.load)
    old_train, old_rows = weakref.ref(old.train), len(old.train)
    del old
    second = store.put(_npy(rows=40), "b.npy", 40, (4, 4))
    gc.collect()
    assert old_train() is None
    new = store.dataset(DataConfig(dataset="upload", upload=str(store.path(second))), data.load)
    assert len(new.train) > old_rows  # the second file's 40 rows, not the first's 30


def test_each_server_process_keeps_its_uploads_in_its_own_folder_and_removes_it_on_exit():
    ours = upload_store.server_folder()
    assert ours.parent == upload_store.UPLOAD_DIR and ours.is_dir()
    assert SessionUploads().folder == ours == upload_store.server_folder()  # one per process
    script = (
        "from sae_core.serve.upload_store import SessionUploads\n"
        "store = SessionUploads()\n"
        "print(store.path(store.put(b'x', 'a.npy', 1, (1, 1))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    theirs = Path(done.stdout.strip())
    assert theirs.parent.parent == upload_store.UPLOAD_DIR and theirs.parent != ours
    assert not theirs.parent.exists()  # the other server exited: its folder went with it
    assert ours.is_dir()


def test_the_release_drops_the_uploaders_value_after_the_script_runs_state_wrapper_is_gone():
    """Streamlit wraps a session's state in a new SafeSessionState at every script run; the release held a
    weak reference to the wrapper of the run that made the store, which was gone by the time the session
    ended, so the uploader's 146 MB value stayed with the session."""
    from types import SimpleNamespace

    from streamlit.runtime.state.safe_session_state import SafeSessionState
    from streamlit.runtime.state.session_state import SessionState

    from pages import datasets as page_data

    state = SessionState()
    widget_id = f"$$ID-0123-{page_data.UPLOAD_WIDGET}"
    state._set_key_widget_mapping(widget_id, page_data.UPLOAD_WIDGET)
    state._new_widget_state.set_from_value(widget_id, _Bytes(2**20))
    upload_bytes = weakref.ref(state[page_data.UPLOAD_WIDGET])
    run = SimpleNamespace(session_id="s", session_state=SafeSessionState(state, lambda: None))
    release = page_data.forget_streamlit_copy(run)
    del run  # the script run ended; the session's state lives on in Streamlit
    gc.collect()
    release()
    assert page_data.UPLOAD_WIDGET not in state
    gc.collect()
    assert upload_bytes() is None
