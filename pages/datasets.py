"""The pages' side of the data: datasets loaded once per server, and this session's uploaded file.

Not a page itself. `load_dataset` is sae_core.data.datasets.load through the server's
sae_core.data.shared.SharedDatasets: every session asking for the same dataset gets the same read-only copy,
and its memory returns once no session's run or page holds it. An upload is named in a config by a
server-issued id, which only the session that uploaded the file can resolve.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import streamlit as st

from pages import server
from sae_core.config.run import DataConfig
from sae_core.data import datasets as data
from sae_core.data.shared import SharedDatasets
from sae_core.serve import upload_store

UPLOAD_WIDGET = "upload_file"
"""The Train page's uploader's key (pages/train_controls.py)."""
UPLOADS = "uploads"
"""st.session_state: this session's `upload_store.SessionUploads`: its accepted file, by its id."""


@st.cache_resource
def shared_datasets() -> SharedDatasets:
    """The server's datasets, one copy of each shared by every session (thread-safe)."""
    return SharedDatasets(lambda cfg: data.load(cfg))  # looked up at each load: tests may watch it


def load_dataset(cfg: DataConfig) -> data.Dataset:
    """cfg's dataset, shared read-only with every session that uses the same one. An upload id becomes the
    path of this session's file (UploadError for an id that is not this session's), and its dataset is
    kept by the session's store, not by the server's: it goes when the session ends."""
    if cfg.dataset == "upload" and cfg.upload:
        uploads = session_uploads()
        cfg = dataclasses.replace(cfg, upload=str(uploads.path(cfg.upload)))
        return uploads.dataset(cfg, data.load)
    with st.spinner("Loading data…"):
        return shared_datasets().get(cfg)


def session_uploads() -> upload_store.SessionUploads:
    """This session's uploads, in this server's own folder; the server's reaper lets go of them (file,
    data and Streamlit's copy of the bytes) once the session has ended."""
    if UPLOADS not in st.session_state:
        watcher = server.session_watcher()
        on_release = None
        if watcher is not None:  # a real server (not AppTest)
            from streamlit.runtime.scriptrunner import get_script_run_ctx

            ctx = get_script_run_ctx()
            if ctx is not None:
                on_release = forget_streamlit_copy(ctx)
        store = upload_store.SessionUploads(is_watched=watcher, on_release=on_release)
        server.reaper().watch(store)
        st.session_state[UPLOADS] = store
    return st.session_state[UPLOADS]


def forget_streamlit_copy(ctx: Any) -> Callable[[], None]:
    """What the session's store calls on release to drop Streamlit's copy of its upload (see below).

    It holds the script run's session state itself, not a weak reference to it: Streamlit wraps the
    session's state in a new object for every script run, so a weak reference to the wrapper died with
    the run, and the widget's copy of an ended session's upload (146 MB in the soak benchmark) stayed
    for as long as Streamlit kept the session. The store lets go of this callable once it has run."""
    return functools.partial(_forget_streamlit_copy, ctx.session_id, ctx.session_state)


def _forget_streamlit_copy(session_id: str, session_state: Any) -> None:
    """Drop what Streamlit keeps of an ended session's upload: its uploaded-file manager's copy of the
    bytes and the uploader widget's value. Streamlit drops them itself only when it shuts a session down,
    which a session that expires from its store of disconnected sessions never is: three closed sessions
    that had each uploaded 146 MB left about 600 MB in the server for good."""
    from streamlit import runtime

    if runtime.exists():
        runtime.get_instance().uploaded_file_mgr.remove_session_files(session_id)
    with contextlib.suppress(KeyError, AttributeError, RuntimeError):
        del session_state[UPLOAD_WIDGET]
