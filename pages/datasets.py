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
import weakref

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
                on_release = functools.partial(
                    _forget_streamlit_copy, ctx.session_id, weakref.ref(ctx.session_state)
                )
        store = upload_store.SessionUploads(is_watched=watcher, on_release=on_release)
        server.reaper().watch(store)
        st.session_state[UPLOADS] = store
    return st.session_state[UPLOADS]


def _forget_streamlit_copy(session_id: str, state: weakref.ref) -> None:
    """Drop what Streamlit keeps of an ended session's upload: its uploaded-file manager's copy of the
    bytes and the uploader widget's value. Streamlit drops them itself only when it shuts a session down,
    which a session that expires from its store of disconnected sessions never is: three closed sessions
    that had each uploaded 146 MB left about 600 MB in the server for good."""
    from streamlit import runtime

    if runtime.exists():
        runtime.get_instance().uploaded_file_mgr.remove_session_files(session_id)
    session_state = state()
    if session_state is not None:
        with contextlib.suppress(KeyError, AttributeError, RuntimeError):
            del session_state[UPLOAD_WIDGET]
