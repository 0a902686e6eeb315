"""A folder of kept runs that outlives the browser tab and the server: `RunStore`.

Each run is a subfolder named by its id (`20250101-120000-1a2b3c4d`: the time it was kept and 32 random
bits) holding what `export.save` and `export.save_snapshot_files` write (weights as safetensors, config,
metrics, filters.png, reconstructions.png, the loss history as CSV), `units.json` (each unit's ρ̂ and
density at that step, for the histograms) and `run.json` (who kept it, when, why, and a title).

Where the folder is: the `root` argument, else `--runs-dir DIR` on the app's command line
(`streamlit run app.py -- --runs-dir DIR`), else $SAE_RUNS_DIR, else `<data dir>/runs` (data dir:
$SAE_DATA_DIR or ~/.cache/sae-playground). The folder is bounded: $SAE_RUNS_MAX_MB (default 200) and
$SAE_RUNS_MAX_COUNT (default 200); keeping a run prunes runs until the folder is back under both, and says
which went. Each owner has a fair share of the folder (its bounds divided by the owners with runs in it):
keeping a run prunes the keeper's own oldest runs first, then those of owners over their share, and only
then, oldest first, anyone's, so one browser importing big models cannot wipe another's runs while it has
runs of its own to give up. The run just kept is never pruned, even when it alone is over.

A run belongs to an owner (the app passes the browser's key); only a hash of it is written, so the folder
never holds a browser's cookie. Writes go to a hidden temporary folder that is renamed into place, under
a lock that covers the threads of one server and (with fcntl) other processes on the same folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from torch import nn

from sae_core.data.datasets import default_data_dir
from sae_core.store import export, pruned_notes
from sae_core.store.stored_run import UNITS_FILE, RunInfo, StoredRun, read_stored_run
from sae_core.train.snapshot import Snapshot

ENV_DIR = "SAE_RUNS_DIR"
ENV_MAX_MB = "SAE_RUNS_MAX_MB"
ENV_MAX_COUNT = "SAE_RUNS_MAX_COUNT"
FLAG = "--runs-dir"
DEFAULT_MAX_MB = 200.0
DEFAULT_MAX_COUNT = 200
INFO_FILE = "run.json"
STALE_S = 3600.0
"""A temporary folder this old is the leftover of a crashed write and is removed at the next prune."""
MB = 2**20

Status = Literal["finished", "stopped", "downloaded", "imported"]
STATUSES = ("finished", "stopped", "downloaded", "imported")
_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{8}$")
_OWNER_KEY = re.compile(r"[0-9a-f]{16}")
_LOCKS: dict[Path, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def runs_dir_from_args(args: Sequence[str]) -> str | None:
    """DIR of `--runs-dir DIR` or `--runs-dir=DIR` in a command line's arguments, else None."""
    for i, arg in enumerate(args):
        if arg == FLAG and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(FLAG + "="):
            return arg[len(FLAG) + 1 :]
    return None


def resolve_root(root: str | Path | None = None, args: Sequence[str] = ()) -> Path:
    """The runs folder: `root`, else --runs-dir in args, else $SAE_RUNS_DIR, else <data dir>/runs."""
    chosen = root or runs_dir_from_args(args) or os.environ.get(ENV_DIR)
    return Path(chosen).expanduser() if chosen else default_data_dir() / "runs"


def owner_key(owner: str) -> str:
    """What run.json stores for an owner: 16 hex digits of its SHA-256, never the owner itself."""
    return hashlib.sha256(b"sae-runs\0" + owner.encode("utf-8")).hexdigest()[:16]


def valid_id(run_id: str) -> bool:
    return isinstance(run_id, str) and _ID.fullmatch(run_id) is not None


def new_id(now: float | None = None) -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + "-" + secrets.token_hex(4)


def run_title(snap: Snapshot) -> str:
    """ "digits · 25 units · ρ 0.05 · β 3 · step 2,000": what sets the run apart, in one line."""
    cfg = snap.config
    model = cfg.model
    parts = [cfg.data.dataset]
    if model.variant != "sparse":
        parts.append(model.spec.title.lower())
    parts.append(f"{model.hidden} units")
    parts += model.penalty_spec.describe(model)
    return " · ".join([*parts, f"step {snap.step:,}"])


@dataclass(frozen=True)
class SaveResult:
    run: RunInfo
    pruned: list[RunInfo]
    """Runs deleted to bring the folder back under its bounds, in the order they went (see `_prune`)."""


class RunStore:
    """The kept runs in one folder. Safe to share between the threads of a server (one lock per folder)."""

    def __init__(
        self, root: str | Path | None = None, max_mb: float | None = None, max_runs: int | None = None
    ) -> None:
        self.root = resolve_root(root)
        self.max_bytes = int(float(max_mb or os.environ.get(ENV_MAX_MB) or DEFAULT_MAX_MB) * MB)
        self.max_runs = int(max_runs or os.environ.get(ENV_MAX_COUNT) or DEFAULT_MAX_COUNT)
        with _LOCKS_GUARD:
            self._lock = _LOCKS.setdefault(self.root.resolve(), threading.RLock())

    # ----- reading ------------------------------------------------------------------------------------
    def list_runs(self, owner: str | None) -> list[RunInfo]:
        """The runs of `owner` (every owner's for None), newest first; unreadable folders are skipped."""
        key = None if owner is None else owner_key(owner)
        runs = [info for info in self._all() if key is None or info.owner == key]
        return sorted(runs, key=lambda r: (r.saved, r.id), reverse=True)

    def get(self, run_id: str, owner: str | None = None) -> RunInfo:
        """The run's RunInfo; KeyError when it does not exist (or is not `owner`'s), ValueError for an id
        that is not of this store's form (so nothing outside the folder can be named)."""
        folder = self._folder(run_id)
        info = _read_info(folder)
        if info is None or (owner is not None and info.owner != owner_key(owner)):
            raise KeyError(f"no kept run {run_id}")
        return info

    def load_run(self, run_id: str, owner: str | None = None) -> StoredRun:
        """The run's model (CPU, eval mode), config, image shape, metrics, loss history and unit statistics.
        KeyError / ValueError as get(); ValueError for files that do not load (export.load's checks)."""
        info = self.get(run_id, owner)
        try:
            return read_stored_run(info, info.path)
        except FileNotFoundError:
            raise KeyError(f"kept run {run_id} was deleted while it was read") from None

    # ----- writing ------------------------------------------------------------------------------------
    def save_run(
        self,
        model: nn.Module,
        snap: Snapshot,
        *,
        owner: str,
        status: Status,
        replace: str | None = None,
    ) -> SaveResult:
        """Keep `model` as it is at `snap` (the snapshot of the same weights: its config, image shape,
        metrics, history and pictures are written with them). replace: the id of an earlier keep of the
        same training run by the same owner, rewritten in place (its id and creation time stay); when it
        no longer exists the run is kept anew. Then prunes (see the module doc)."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        self.root.mkdir(parents=True, exist_ok=True)
        now = time.time()
        tmp = self.root / f".tmp-{secrets.token_hex(8)}"
        try:
            self._write(tmp, model, snap)
            with self._locked():
                old = self._replaceable(replace, owner)
                run_id = old.id if old is not None else self._unused_id(now)
                created = old.created if old is not None else now
                info = _info(run_id, owner_key(owner), status, created, now, snap, self.root / run_id)
                (tmp / INFO_FILE).write_text(info.to_json())
                self._move_into_place(tmp, run_id)
                pruned = self._prune(keep=run_id, keeper=owner_key(owner))
                kept = _read_info(self.root / run_id) or info
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return SaveResult(kept, pruned)

    def delete_run(self, run_id: str, owner: str | None = None) -> RunInfo:
        """Delete the run (only `owner`'s, when given); KeyError / ValueError as get()."""
        with self._locked():
            info = self.get(run_id, owner)
            self._remove(info.path)
        return info

    # ----- internals ----------------------------------------------------------------------------------
    def _folder(self, run_id: str) -> Path:
        if not valid_id(run_id):
            raise ValueError(f"{run_id!r} is not a run id (YYYYMMDD-HHMMSS-8 hex digits)")
        return self.root / run_id

    def _all(self) -> list[RunInfo]:
        if not self.root.is_dir():
            return []
        infos = (_read_info(entry) for entry in self.root.iterdir() if valid_id(entry.name))
        return [info for info in infos if info is not None]

    def _write(self, tmp: Path, model: nn.Module, snap: Snapshot) -> None:
        export.save(model, snap.config, tmp, export.snapshot_metrics(snap), image_shape=snap.image_shape)
        export.save_snapshot_files(snap, tmp)
        units = {
            "rho_hat": [float(v) for v in snap.rho_hat],
            "density": [float(v) for v in snap.density],
            "n_probe": int(snap.activations.shape[0]),
        }
        (tmp / UNITS_FILE).write_text(json.dumps(units) + "\n")

    def _replaceable(self, run_id: str | None, owner: str) -> RunInfo | None:
        if run_id is None:
            return None
        try:
            return self.get(run_id, owner)
        except (KeyError, ValueError):
            return None

    def _unused_id(self, now: float) -> str:
        run_id = new_id(now)
        while (self.root / run_id).exists():  # 32 random bits: a second try is all but impossible
            run_id = new_id(now)
        return run_id

    def _move_into_place(self, tmp: Path, run_id: str) -> None:
        target = self.root / run_id
        if target.exists():  # a rewrite: move the old folder aside first (a folder cannot be renamed over)
            trash = self.root / f".trash-{secrets.token_hex(8)}"
            os.rename(target, trash)
            os.rename(tmp, target)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.rename(tmp, target)

    def _prune(self, keep: str | None, keeper: str | None = None) -> list[RunInfo]:
        """Delete runs until the folder is under its bounds: the keeper's own first, then those of owners
        over their fair share (the bounds over the number of owners), then anyone's; oldest first within
        each; never `keep`."""
        self._remove_stale()
        every = self._all()
        owners = {r.owner for r in every}
        share_bytes = self.max_bytes / max(1, len(owners))
        share_runs = self.max_runs / max(1, len(owners))
        held: dict[str, tuple[int, int]] = {}
        for r in every:
            size, n = held.get(r.owner, (0, 0))
            held[r.owner] = (size + r.size_bytes, n + 1)
        over = {o for o, (size, n) in held.items() if size > share_bytes or n > share_runs}

        def order(r: RunInfo) -> tuple[int, float, str]:
            rank = 0 if r.owner == keeper else 1 if r.owner in over else 2
            return rank, r.saved, r.id

        total = sum(r.size_bytes for r in every)
        count = len(every)
        pruned = []
        for info in sorted(every, key=order):
            if total <= self.max_bytes and count <= self.max_runs:
                break
            if info.id == keep:
                continue
            self._remove(info.path)
            total -= info.size_bytes
            count -= 1
            pruned.append(info)
        self._tell_owners(pruned, keeper, over, len(owners))
        return pruned

    def _tell_owners(self, pruned: list[RunInfo], keeper: str | None, over: set[str], owners: int) -> None:
        """Leave a note for every owner but the keeper (told at once) of a pruned run: which and why."""
        now = time.time()
        notes: dict[str, list[pruned_notes.PrunedNote]] = {}
        for info in pruned:
            if info.owner == keeper or not _OWNER_KEY.fullmatch(info.owner):
                continue
            why = self.prune_reason(info.owner in over, owners)
            notes.setdefault(info.owner, []).append(
                pruned_notes.PrunedNote(info.id, info.title, info.saved, now, why)
            )
        for owner, entries in notes.items():
            with contextlib.suppress(OSError):
                pruned_notes.leave(self.root, owner, entries)

    def prune_reason(self, over_share: bool, owners: int) -> str:
        """Why a browser's run was deleted when another browser kept one, in the page's words."""
        runs = f"{self.max_runs} run{'s' if self.max_runs != 1 else ''}"
        bounds = f"the server keeps at most {self.max_bytes / MB:g} MB and {runs} in all"
        if over_share:
            return (
                f"{bounds}, shared fairly by the {owners} browsers with runs kept; another browser kept a "
                "run while yours took more than your share, so your oldest went first"
            )
        return (
            f"{bounds}; another browser kept a run when no browser was over its share, so the oldest runs "
            "on the server went"
        )

    def take_pruned_notes(self, owner: str) -> list[pruned_notes.PrunedNote]:
        """The notes of `owner`'s runs pruned since it last asked (each is returned once), oldest first."""
        with self._locked():
            return pruned_notes.take(self.root, owner_key(owner))

    def _remove_stale(self) -> None:
        now = time.time()
        for entry in self.root.iterdir():
            with contextlib.suppress(OSError):
                if entry.name.startswith((".tmp-", ".trash-")) and now - entry.stat().st_mtime > STALE_S:
                    shutil.rmtree(entry, ignore_errors=True)

    def _remove(self, folder: Path) -> None:
        trash = self.root / f".trash-{secrets.token_hex(8)}"
        with contextlib.suppress(FileNotFoundError):
            os.rename(folder, trash)  # gone from listings at once, even if the deletion below is slow
            shutil.rmtree(trash, ignore_errors=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """This folder's lock for the threads of this process and, where fcntl exists, a file lock for
        other processes (a second server, the CLI) on the same folder."""
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            with open(self.root / ".lock", "a+") as handle:
                try:
                    import fcntl
                except ImportError:  # Windows: threads of one process are still serialised
                    yield
                    return
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)


def _info(
    run_id: str, owner: str, status: str, created: float, saved: float, snap: Snapshot, folder: Path
) -> RunInfo:
    model = snap.config.model
    recon = snap.metrics.get("recon_error")
    return RunInfo(
        id=run_id,
        owner=owner,
        title=run_title(snap),
        status=status,
        created=created,
        saved=saved,
        steps=int(snap.step),
        dataset=snap.config.data.dataset,
        variant=model.variant,
        penalty=model.effective_penalty,
        hidden=int(model.hidden),
        rho=float(model.rho),
        beta=float(model.beta),
        recon_error=None if recon is None else float(recon),
        path=folder,
    )


def _read_info(folder: Path) -> RunInfo | None:
    """The RunInfo of a run folder, or None when run.json is missing or malformed (a half-deleted run)."""
    try:
        doc: dict[str, Any] = json.loads((folder / INFO_FILE).read_text())
        size = sum(entry.stat().st_size for entry in folder.iterdir() if entry.is_file())
        fields = {f.name for f in dataclasses.fields(RunInfo)} - {"path", "size_bytes"}
        info = RunInfo(**{k: doc[k] for k in fields}, path=folder, size_bytes=size)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if info.id == folder.name else None
