"""Where the app keeps the uploads it accepted: `SessionUploads`, one per browser session.

A link or a widget can never name a file on the server. An accepted upload is written under a random id
the server issued (`UPLOAD_ID`), the session's settings hold only that id, and only the session that
uploaded the file can turn the id back into a path. Each server process keeps its uploads in a folder of
its own (`server_folder`), removed when it exits, so that servers side by side (a class's servers on one
machine) never see or delete each other's files.

The file, and the dataset loaded from it (`SessionUploads.dataset`: the session's own, never in a cache
shared by sessions), are let go of when the session replaces the upload, closes its store, or ends: the
server's reaper (scheduler.Reaper) calls `release()` once the session has been gone for as long as the
server keeps a disconnected session, as it does for the session's training run, not whenever the garbage
collector gets to the session's state. A weakref finalizer still deletes the file of a store that is
dropped without that (scripts, tests).
"""

from __future__ import annotations

import atexit
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sae_core.data.uploads import UploadError

UPLOAD_DIR = Path(tempfile.gettempdir()) / "sae-playground-uploads"
"""Where the app keeps the uploaded files it accepted: one folder per server process (`server_folder`)."""
UPLOAD_ID = re.compile(r"[0-9a-f]{32}\.(npy|npz|zip)")

_server_folder: Path | None = None
_server_folder_lock = threading.Lock()


def server_folder(root: Path = UPLOAD_DIR) -> Path:
    """This server process's own folder of uploads under `root` (made on first use, private to its user,
    named by the process id and a random suffix), removed with its files when the process exits."""
    global _server_folder
    with _server_folder_lock:
        if _server_folder is None or not _server_folder.is_dir():
            root.mkdir(parents=True, exist_ok=True)
            _server_folder = Path(tempfile.mkdtemp(prefix=f"server-{os.getpid()}-", dir=root))
            atexit.register(shutil.rmtree, _server_folder, ignore_errors=True)
        return _server_folder


class SessionUploads:
    """One browser session's accepted upload on the server's disk, referenced by an id the server issued.

    The session holds one upload at a time: `put` deletes the one it replaces. `close()` (also through
    `release()`, the reaper's call for a session that has ended) and the garbage collection of the store
    delete the file and drop the dataset loaded from it. is_watched: says whether the session still has a
    tab connected (as for a TrainingJob); without one the store is never released by the reaper.
    """

    def __init__(
        self,
        folder: Path | None = None,
        is_watched: Callable[[], bool] | None = None,
        on_release: Callable[[], None] | None = None,
    ) -> None:
        """on_release: called by release(), after the file and data are gone, to let go of what the web
        framework keeps of the session's upload (pages/datasets.py: Streamlit's copy of the bytes)."""
        self.folder = folder if folder is not None else server_folder()
        self._on_release = on_release
        self._files: dict[str, tuple[Path, int, tuple[int, int]]] = {}
        self._datasets: dict[Any, Any] = {}  # the loaded upload, by its DataConfig: this session's only
        self._lock = threading.Lock()
        self._is_watched = is_watched
        self._last_seen = time.monotonic()
        # The finalizer holds the dict, not self, so that dropping the store runs it.
        self._finalizer = weakref.finalize(self, _delete_files, self._files)

    def dataset(self, cfg: Any, load: Callable[[Any], Any]) -> Any:
        """The dataset `load(cfg)` makes from this session's upload, made once and kept by this store only
        (a cache shared by the server would keep every session's upload after the session ended)."""
        with self._lock:
            if cfg not in self._datasets:
                self._datasets.clear()  # one upload at a time: a new config replaces the old dataset
                self._datasets[cfg] = load(cfg)
            return self._datasets[cfg]

    def put(self, raw: bytes, filename: str, samples: int, image_shape: tuple[int, int]) -> str:
        """Keep an accepted upload's bytes (already parsed: samples, image shape); return its new id."""
        suffix = Path(filename).suffix.lower()
        if suffix not in (".npy", ".npz", ".zip"):
            raise UploadError(f"{Path(filename).name}: unsupported file type {suffix or '(none)'}")
        self.folder.mkdir(parents=True, exist_ok=True)
        upload_id = secrets.token_hex(16) + suffix
        path = self.folder / upload_id
        path.write_bytes(raw)
        with self._lock:
            _delete_files(self._files)
            self._datasets.clear()
            self._files[upload_id] = (path, samples, tuple(image_shape))
        return upload_id

    def path(self, upload_id: str) -> Path:
        """The file of one of this session's uploads; UploadError for any other text."""
        return self._entry(upload_id)[0]

    def shape(self, upload_id: str) -> tuple[int, tuple[int, int]]:
        """(samples, image shape) of one of this session's uploads."""
        _, samples, image_shape = self._entry(upload_id)
        return samples, image_shape

    def _entry(self, upload_id: str) -> tuple[Path, int, tuple[int, int]]:
        entry = self._files.get(upload_id) if UPLOAD_ID.fullmatch(str(upload_id)) else None
        if entry is None or not entry[0].is_file():
            raise UploadError("the uploaded file is no longer on the server; upload it again")
        return entry

    def close(self) -> None:
        """Delete this session's files and drop the dataset loaded from them, now."""
        with self._lock:
            _delete_files(self._files)
            self._datasets.clear()

    # ----- what the reaper asks (scheduler.Reapable) --------------------------------------------------------
    def abandoned_for(self) -> float:
        """Seconds since the session was last seen connected; 0 while it is, or without is_watched."""
        if self._is_watched is None:
            return 0.0
        if self._is_watched():
            self._last_seen = time.monotonic()
            return 0.0
        return time.monotonic() - self._last_seen

    def release(self) -> None:
        """The session has ended: its upload goes, from the disk and from memory."""
        self.close()
        on_release, self._on_release = self._on_release, None
        if on_release is not None:
            on_release()


def _delete_files(files: dict[str, tuple[Path, int, tuple[int, int]]]) -> None:
    for path, _, _ in files.values():
        path.unlink(missing_ok=True)
    files.clear()
