"""The pages' side of the data: datasets loaded once per server, and this session's uploaded file.

Not a page itself. `load_dataset` is sae_core.data.datasets.load through st.cache_data; an upload is
named in a config by a server-issued id, which only the session that uploaded the file can resolve.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import streamlit as st

from sae_core.config.run import DataConfig
from sae_core.data import datasets as data
from sae_core.serve import upload_store

UPLOADS = "uploads"
"""st.session_state: this session's `upload_store.SessionUploads`: its accepted file, by its id."""


@st.cache_data(max_entries=4, show_spinner="Loading data…")
def _load_dataset(**fields: Any) -> data.Dataset:
    return data.load(DataConfig(**fields))


def load_dataset(cfg: DataConfig) -> data.Dataset:
    """data.load through st.cache_data, keyed on the DataConfig's fields; an upload id becomes the path of
    this session's file (UploadError for an id that is not this session's)."""
    if cfg.dataset == "upload" and cfg.upload:
        cfg = dataclasses.replace(cfg, upload=str(session_uploads().path(cfg.upload)))
    return _load_dataset(**dataclasses.asdict(cfg))


def session_uploads() -> upload_store.SessionUploads:
    if UPLOADS not in st.session_state:
        st.session_state[UPLOADS] = upload_store.SessionUploads()
    return st.session_state[UPLOADS]
