"""Datasets shared read-only by everyone who asks for the same one: one copy per server, not per session.

A class server loads a dataset for every browser session that opens the Train page. Loaded once per
session, `?dataset=bars&n_bars=1000000&hidden=16384` cost each visit about 1 GB (a pickled copy in
Streamlit's data cache and one unpickled per session). `SharedDatasets.get(cfg)` instead loads a
`DataConfig`'s dataset once and hands every caller the same `Dataset` (no trainer, sweep or view writes
into its data: they index it, and copy what they show). It keeps weak references only, so a dataset's
memory returns as soon as no run or page holds it; small ones (at most `keep_bytes`, `keep_entries` of
them, least recently used first out) are also held for the next caller, so a page that loads the digits
at every rerun does not remake them each time. Thread-safe: concurrent callers for one config wait for
one load.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable

from sae_core.config.run import DataConfig
from sae_core.data.datasets import Dataset

KEEP_BYTES = 64 * 2**20
"""The most bytes of datasets held with no run using them (each at most this size): the bundled digits
and the default bars and patches are a few MB each; a million bars images (256 MB) are never kept idle."""
KEEP_ENTRIES = 4


def dataset_bytes(ds: Dataset) -> int:
    """Bytes of a dataset's tensors (train, test, labels, ground truth)."""
    parts = (ds.train, ds.test, ds.train_labels, ds.test_labels, ds.ground_truth)
    return sum(t.numel() * t.element_size() for t in parts if t is not None)


class _Loading:
    """One load in progress: its callers wait on the lock the loader holds."""

    def __init__(self) -> None:
        self.lock = threading.Lock()


class SharedDatasets:
    """`get(cfg)`: cfg's dataset, loaded once while anyone holds it (see the module's docstring)."""

    def __init__(
        self,
        load: Callable[[DataConfig], Dataset],
        keep_bytes: int = KEEP_BYTES,
        keep_entries: int = KEEP_ENTRIES,
    ) -> None:
        self._load = load
        self.keep_bytes, self.keep_entries = keep_bytes, keep_entries
        self._lock = threading.Lock()
        self._live: weakref.WeakValueDictionary[DataConfig, Dataset] = weakref.WeakValueDictionary()
        self._loading: dict[DataConfig, _Loading] = {}
        self._kept: OrderedDict[DataConfig, Dataset] = OrderedDict()
        self.loads = 0
        """How many times a dataset was really loaded (the rest were shared)."""

    def get(self, cfg: DataConfig) -> Dataset:
        """cfg's dataset: the copy someone holds, else a fresh load (raises what `load` raises)."""
        while True:
            with self._lock:
                found = self._find(cfg)
                if found is not None:
                    return found
                loading = self._loading.get(cfg)
                mine = loading is None
                if mine:
                    loading = self._loading[cfg] = _Loading()
                    loading.lock.acquire()
            if mine:
                break
            with loading.lock:  # another caller loads it: wait, then look again
                pass
        try:
            ds = self._load(cfg)
            with self._lock:
                self.loads += 1
                self._live[cfg] = ds
                self._keep(cfg, ds)
            return ds
        finally:
            with self._lock:
                del self._loading[cfg]
            loading.lock.release()

    def live(self) -> list[DataConfig]:
        """The configs whose dataset somebody (a run, a page, the small-dataset keep) holds now."""
        with self._lock:
            return list(self._live.keys())

    def _find(self, cfg: DataConfig) -> Dataset | None:
        ds = self._live.get(cfg)
        if ds is not None and cfg in self._kept:
            self._kept.move_to_end(cfg)
        return ds

    def _keep(self, cfg: DataConfig, ds: Dataset) -> None:
        """Hold a small dataset for the next caller, within keep_entries and keep_bytes (oldest out)."""
        if dataset_bytes(ds) > self.keep_bytes or self.keep_entries < 1:
            return
        self._kept[cfg] = ds
        while len(self._kept) > self.keep_entries or (
            sum(dataset_bytes(d) for d in self._kept.values()) > self.keep_bytes
        ):
            self._kept.popitem(last=False)
