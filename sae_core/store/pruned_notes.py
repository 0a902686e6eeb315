"""Notes for a browser whose kept runs were pruned while it was not looking.

Pruning (sae_core.store.runs.RunStore._prune) may delete the runs of a browser other than the one that
kept a run: a browser over its fair share of the folder, or, once no one is, the oldest runs of anyone.
The keeper is told at once on its page; the others learn it from a note the store leaves for them, one
JSON-lines file per owner (named by the owner's hash, as in run.json) in the folder's hidden `.pruned`
subfolder. `take(root, owner_key)` reads and deletes the owner's notes, so each is shown once, also after a
server restart.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

FOLDER = ".pruned"
MAX_NOTES = 50
"""Notes kept per owner (the newest): a browser away for long hears of its last MAX_NOTES deletions."""


@dataclass(frozen=True)
class PrunedNote:
    """One kept run deleted to bring the folder back under its bounds, as told to its owner."""

    run_id: str
    title: str
    saved: float
    """Unix time the run was last kept."""
    pruned: float
    """Unix time it was deleted."""
    reason: str
    """Why, in the page's words (sae_core.store.runs.prune_reason)."""


def _file(root: Path, owner_key: str) -> Path:
    return root / FOLDER / f"{owner_key}.jsonl"


def leave(root: Path, owner_key: str, notes: list[PrunedNote]) -> None:
    """Append notes for `owner_key` (the caller holds the folder's lock); the newest MAX_NOTES stay."""
    if not notes:
        return
    path = _file(root, owner_key)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = path.read_text().splitlines() if path.exists() else []
    lines += [json.dumps(asdict(n)) for n in notes]
    path.write_text("\n".join(lines[-MAX_NOTES:]) + "\n")


def take(root: Path, owner_key: str) -> list[PrunedNote]:
    """The owner's notes, oldest first, deleted as they are read (the caller holds the folder's lock).
    A line that does not parse is skipped."""
    path = _file(root, owner_key)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    notes = []
    for line in lines:
        try:
            doc = json.loads(line)
            notes.append(PrunedNote(**{k: doc[k] for k in PrunedNote.__dataclass_fields__}))
        except (ValueError, KeyError, TypeError):
            continue
    return notes
