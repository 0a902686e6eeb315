"""Where the app keeps the uploads it accepted: `SessionUploads`, one per browser session.

A link or a widget can never name a file on the server. An accepted upload is written under a random id
the server issued (`UPLOAD_ID`), the session's settings hold only that id, and only the session that
uploaded the file can turn the id back into a path. The file is deleted when the session replaces it
with another upload, closes its store, or is dropped (its state is garbage collected when Streamlit ends
the session; a weakref finalizer does the deleting, also when the server exits).
"""

from __future__ import annotations

import re
import secrets
import tempfile
import weakref
from pathlib import Path

from sae_core.data.uploads import UploadError

UPLOAD_DIR = Path(tempfile.gettempdir()) / "sae-playground-uploads"
"""Where the app keeps the uploaded files it accepted (named by random ids, see `SessionUploads`)."""
UPLOAD_ID = re.compile(r"[0-9a-f]{32}\.(npy|npz|zip)")


class SessionUploads:
    """One browser session's accepted upload on the server's disk, referenced by an id the server issued.

    The session holds one upload at a time: `put` deletes the one it replaces. `close()` and the garbage
    collection of the store (Streamlit drops a session's state when the session ends) delete the file.
    """

    def __init__(self, folder: Path = UPLOAD_DIR) -> None:
        self.folder = folder
        self._files: dict[str, tuple[Path, int, tuple[int, int]]] = {}
        # The finalizer holds the dict, not self, so that dropping the store runs it.
        self._finalizer = weakref.finalize(self, _delete_files, self._files)

    def put(self, raw: bytes, filename: str, samples: int, image_shape: tuple[int, int]) -> str:
        """Keep an accepted upload's bytes (already parsed: samples, image shape); return its new id."""
        suffix = Path(filename).suffix.lower()
        if suffix not in (".npy", ".npz", ".zip"):
            raise UploadError(f"{Path(filename).name}: unsupported file type {suffix or '(none)'}")
        self.folder.mkdir(parents=True, exist_ok=True)
        upload_id = secrets.token_hex(16) + suffix
        path = self.folder / upload_id
        path.write_bytes(raw)
        _delete_files(self._files)
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
        """Delete this session's files now."""
        _delete_files(self._files)


def _delete_files(files: dict[str, tuple[Path, int, tuple[int, int]]]) -> None:
    for path, _, _ in files.values():
        path.unlink(missing_ok=True)
    files.clear()
