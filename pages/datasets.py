"""The pages' side of the data: datasets loaded once per server, and this session's uploaded file.

Not a page itself. `load_dataset` is sae_core.data.datasets.load through st.cache_data; an upload is
named in a config by a server-issued id, which only the session that uploaded the file can resolve.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import weakref
from typing import Any

import streamlit as st

from pages import server
from sae_core.config.run import DataConfig
from sae_core.data import datasets as data
from sae_core.serve import upload_store

UPLOAD_WIDGET = "upload_file"
"""The Train page's uploader's key (pages/train_controls.py)."""
UPLOADS = "uploads"
"""st.session_state: this session's `upload_store.SessionUploads`: its accepted file, by its id."""


@st.cache_data(max_entries=4, show_spinner="Loading data…")
def _load_dataset(**fields: Any) -> data.Dataset:
    return data.load(DataConfig(**fields))


def load_dataset(cfg: DataConfig) -> data.Dataset:
    """data.load through st.cache_data, keyed on the DataConfig's fields. An upload id becomes the path of
    this session's file (UploadError for an id that is not this session's), and its dataset is kept by the
    session's store, not by the server's cache: it goes when the session ends."""
    if cfg.dataset == "upload" and cfg.upload:
        uploads = session_uploads()
        cfg = dataclasses.replace(cfg, upload=str(uploads.path(cfg.upload)))
        return uploads.dataset(cfg, data.load)
    return _load_dataset(**dataclasses.asdict(cfg))


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
