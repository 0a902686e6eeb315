"""A class as one experiment: the classes, their students and each student's latest run, in SQLite.

One file in the data folder (`$SAE_CLASSES_DB`, else `<data dir>/classes.sqlite3`, the data dir being
$SAE_DATA_DIR or ~/.cache/sae-playground) holds every class, so every app server of
scripts/class_servers.py on that machine sees the same classes: a class spread over several servers
behind the proxy is one class. SQLite in WAL mode lets many readers and one writer work at once across
processes; each write is one short transaction (BEGIN IMMEDIATE where a bound is checked, so two servers
cannot both admit the last student).

A teacher creates a class and gets a join code (for the students) and a secret token (for the
dashboard); only a SHA-256 of the token is stored, and it is compared with `secrets.compare_digest`.
Students join with a nickname; their pages publish a `RunSummary` every few seconds. Bounds: students
per class, open classes per server folder, a class's lifetime; each refusal says why in students' words.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sae_core.data.datasets import default_data_dir
from sae_core.serve.class_summary import RunSummary

ENV_DB = "SAE_CLASSES_DB"
DB_NAME = "classes.sqlite3"
MAX_STUDENTS = int(os.environ.get("SAE_CLASS_MAX_STUDENTS", "60"))
"""Students one class admits at once (a student who leaves frees a place)."""
MAX_OPEN_CLASSES = int(os.environ.get("SAE_CLASS_MAX_OPEN", "20"))
"""Classes open at once in one store (ended and expired ones do not count)."""
DEFAULT_MINUTES = 120
MIN_MINUTES, MAX_MINUTES = 10, 8 * 60
"""A class ends by itself after its lifetime (a lecture's length by default)."""
AWAY_S = 45.0
"""A student whose page has not been heard from for this long is shown as away, and the nickname may be
taken by whoever joins with it (the same student after closing the tab, most likely)."""
NICKNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,19}$")
NICKNAME_RULE = (
    "1 to 20 letters, digits, spaces, dots, dashes or underscores, starting with a letter or digit"
)
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
"""Join codes avoid 0/O and 1/I, which students misread from a projector."""
CODE_LENGTH = 6
TITLE_MAX = 60

_SCHEMA = """
CREATE TABLE IF NOT EXISTS classes (
    code TEXT PRIMARY KEY, title TEXT NOT NULL, token_hash TEXT NOT NULL, created REAL NOT NULL,
    expires REAL NOT NULL, ended REAL, pushed TEXT, pushed_at REAL, spotlight TEXT);
CREATE TABLE IF NOT EXISTS members (
    id TEXT PRIMARY KEY, code TEXT NOT NULL, nickname TEXT NOT NULL, owner TEXT NOT NULL,
    joined REAL NOT NULL, last_seen REAL NOT NULL, left_at REAL);
CREATE INDEX IF NOT EXISTS members_code ON members(code);
CREATE INDEX IF NOT EXISTS members_owner ON members(owner);
CREATE TABLE IF NOT EXISTS runs (
    member TEXT PRIMARY KEY, updated REAL NOT NULL, summary TEXT NOT NULL, montage BLOB);
"""


class ClassError(ValueError):
    """A refusal with a message for the page: unknown code, class full or ended, nickname taken..."""


@dataclass(frozen=True)
class ClassInfo:
    code: str
    title: str
    created: float
    expires: float
    ended: float | None
    pushed: dict | None
    """The setting the teacher sent: {"label": ..., "query": {URL parameters}}; None before any."""
    pushed_at: float | None
    spotlight: str | None
    """The member id the teacher put on the projector, or None."""

    def is_open(self, now: float | None = None) -> bool:
        return self.ended is None and (now or time.time()) < self.expires


@dataclass(frozen=True)
class Student:
    """One joined student and their latest run (None before their first published snapshot)."""

    member: str
    nickname: str
    joined: float
    last_seen: float
    run: RunSummary | None
    montage: bytes | None
    updated: float | None

    def away(self, now: float | None = None) -> bool:
        return (now or time.time()) - self.last_seen > AWAY_S


def default_path() -> Path:
    env = os.environ.get(ENV_DB)
    return Path(env).expanduser() if env else default_data_dir() / DB_NAME


def token_hash(token: str) -> str:
    return hashlib.sha256(b"sae-class\0" + token.encode("utf-8")).hexdigest()


def owner_hash(owner: str) -> str:
    """What the store keeps of a browser's key: a hash, never the cookie itself."""
    return hashlib.sha256(b"sae-class-owner\0" + owner.encode("utf-8")).hexdigest()[:20]


def check_nickname(nickname: str) -> str:
    name = " ".join(str(nickname).split())
    if not NICKNAME.fullmatch(name):
        raise ClassError(f"A nickname has {NICKNAME_RULE}.")
    return name


class ClassStore:
    """The classes of one SQLite file; thread-safe (one connection per thread) and shared by processes."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._db().executescript(_SCHEMA)  # its own transaction (executescript commits first)

    # ----- connections ----------------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction; BEGIN IMMEDIATE takes the write lock before the first read, so a
        bound checked inside holds against other servers until the commit."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # ----- classes --------------------------------------------------------------------------------------
    def create_class(self, title: str, minutes: float = DEFAULT_MINUTES, now: float | None = None):
        """A new class: (ClassInfo, teacher token). Refused when MAX_OPEN_CLASSES are open."""
        now = time.time() if now is None else now
        if not MIN_MINUTES <= minutes <= MAX_MINUTES:
            raise ClassError(f"A class lasts {MIN_MINUTES} to {MAX_MINUTES} minutes, not {minutes:g}.")
        title = " ".join(str(title).split())[:TITLE_MAX] or "Sparse autoencoders"
        token = secrets.token_urlsafe(24)
        with self._write() as db:
            (open_now,) = db.execute(
                "SELECT COUNT(*) FROM classes WHERE ended IS NULL AND expires > ?", (now,)
            ).fetchone()
            if open_now >= MAX_OPEN_CLASSES:
                raise ClassError(
                    f"This server already runs {open_now} classes, its most at once; "
                    "try again when one of them ends."
                )
            code = self._new_code(db)
            db.execute(
                "INSERT INTO classes (code, title, token_hash, created, expires) VALUES (?, ?, ?, ?, ?)",
                (code, title, token_hash(token), now, now + 60.0 * minutes),
            )
        return self.info(code), token

    @staticmethod
    def _new_code(db: sqlite3.Connection) -> str:
        while True:
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
            if db.execute("SELECT 1 FROM classes WHERE code = ?", (code,)).fetchone() is None:
                return code

    def info(self, code: str) -> ClassInfo | None:
        row = (
            self._db()
            .execute(
                "SELECT code, title, created, expires, ended, pushed, pushed_at, spotlight FROM classes "
                "WHERE code = ?",
                (normal_code(code),),
            )
            .fetchone()
        )
        if row is None:
            return None
        pushed = json.loads(row[5]) if row[5] else None
        return ClassInfo(*row[:5], pushed, *row[6:])

    def is_teacher(self, code: str, token: str | None) -> bool:
        """Whether `token` is the teacher's token of the class (False for no token or no such class)."""
        if not token:
            return False
        row = (
            self._db()
            .execute("SELECT token_hash FROM classes WHERE code = ?", (normal_code(code),))
            .fetchone()
        )
        return row is not None and secrets.compare_digest(row[0], token_hash(str(token)))

    def _teacher(self, code: str, token: str | None) -> str:
        if not self.is_teacher(code, token):
            raise ClassError("Only the teacher's link can change the class.")
        return normal_code(code)

    def end_class(self, code: str, token: str | None, now: float | None = None) -> None:
        code = self._teacher(code, token)
        with self._write() as db:
            db.execute(
                "UPDATE classes SET ended = ? WHERE code = ? AND ended IS NULL", (now or time.time(), code)
            )

    def push_setting(self, code: str, token: str | None, label: str, query: dict[str, str]) -> None:
        """Offer every student of the class the setting `query` (URL parameters of the Train page)."""
        code = self._teacher(code, token)
        pushed = json.dumps({"label": label, "query": {str(k): str(v) for k, v in query.items()}})
        with self._write() as db:
            db.execute(
                "UPDATE classes SET pushed = ?, pushed_at = ? WHERE code = ?", (pushed, time.time(), code)
            )

    def set_spotlight(self, code: str, token: str | None, member: str | None) -> None:
        code = self._teacher(code, token)
        with self._write() as db:
            db.execute("UPDATE classes SET spotlight = ? WHERE code = ?", (member, code))

    # ----- students ---------------------------------------------------------------------------------------
    def join(self, code: str, nickname: str, owner: str, now: float | None = None) -> str:
        """The member id of `nickname` in the class: a new place, or the same one again for the same
        browser (a reload) or for a nickname whose student has been away for AWAY_S."""
        now = time.time() if now is None else now
        name = check_nickname(nickname)
        who = owner_hash(owner)
        with self._write() as db:
            self._check_open(db, code, now)
            row = db.execute(
                "SELECT id, owner, last_seen FROM members WHERE code = ? AND nickname = ? COLLATE NOCASE "
                "AND left_at IS NULL",
                (normal_code(code), name),
            ).fetchone()
            if row is not None:
                if row[1] != who and now - row[2] <= AWAY_S:
                    raise ClassError(
                        f"Someone in this class is already called “{name}”; pick another nickname."
                    )
                db.execute("UPDATE members SET owner = ?, last_seen = ? WHERE id = ?", (who, now, row[0]))
                return row[0]
            (present,) = db.execute(
                "SELECT COUNT(*) FROM members WHERE code = ? AND left_at IS NULL", (normal_code(code),)
            ).fetchone()
            if present >= MAX_STUDENTS:
                raise ClassError(f"This class is full ({MAX_STUDENTS} students); ask your teacher.")
            member = secrets.token_hex(8)
            db.execute(
                "INSERT INTO members (id, code, nickname, owner, joined, last_seen) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (member, normal_code(code), name, who, now, now),
            )
        return member

    @staticmethod
    def _check_open(db: sqlite3.Connection, code: str, now: float) -> None:
        row = db.execute("SELECT ended, expires FROM classes WHERE code = ?", (normal_code(code),)).fetchone()
        if row is None:
            raise ClassError(
                f"There is no class with the code “{normal_code(code)}”; check it with your teacher."
            )
        if row[0] is not None or row[1] <= now:
            raise ClassError("This class has ended.")

    def leave(self, member: str, now: float | None = None) -> None:
        with self._write() as db:
            db.execute("UPDATE members SET left_at = ? WHERE id = ?", (now or time.time(), member))
            db.execute("DELETE FROM runs WHERE member = ?", (member,))

    def membership(self, owner: str, now: float | None = None) -> tuple[str, str, str] | None:
        """(class code, member id, nickname) of this browser's latest place in an open class, or None."""
        row = (
            self._db()
            .execute(
                "SELECT m.code, m.id, m.nickname FROM members m JOIN classes c ON c.code = m.code "
                "WHERE m.owner = ? AND m.left_at IS NULL AND c.ended IS NULL AND c.expires > ? "
                "ORDER BY m.joined DESC LIMIT 1",
                (owner_hash(owner), time.time() if now is None else now),
            )
            .fetchone()
        )
        return None if row is None else tuple(row)

    def is_member(self, member: str) -> bool:
        row = self._db().execute("SELECT left_at FROM members WHERE id = ?", (member,)).fetchone()
        return row is not None and row[0] is None

    def publish(self, member: str, run: RunSummary | None, montage: bytes | None, now: float | None = None):
        """The student's page is there (last seen now) and, given a run, its latest summary."""
        now = time.time() if now is None else now
        with self._write() as db:
            db.execute("UPDATE members SET last_seen = ? WHERE id = ? AND left_at IS NULL", (now, member))
            if run is not None:
                db.execute(
                    "INSERT OR REPLACE INTO runs (member, updated, summary, montage) VALUES (?, ?, ?, ?)",
                    (member, now, run.to_json(), montage),
                )

    def student(self, member: str) -> Student | None:
        """One student still in their class, with their latest run, or None."""
        rows = self._students("m.id = ?", member)
        return rows[0] if rows else None

    def students(self, code: str) -> list[Student]:
        """Every student in the class now (joined, not left), in the order they joined."""
        return self._students("m.code = ?", normal_code(code))

    def _students(self, where: str, value: str) -> list[Student]:
        """The students (joined, not left) that `where` picks, in the order they joined. `where` is one of
        the two fixed conditions above, never text from a page."""
        rows = self._db().execute(
            "SELECT m.id, m.nickname, m.joined, m.last_seen, r.summary, r.montage, r.updated "
            "FROM members m LEFT JOIN runs r ON r.member = m.id "
            f"WHERE {where} AND m.left_at IS NULL ORDER BY m.joined",
            (value,),
        )
        return [
            Student(r[0], r[1], r[2], r[3], RunSummary.from_json(r[4]) if r[4] else None, r[5], r[6])
            for r in rows.fetchall()
        ]


def normal_code(code: str) -> str:
    """A join code as typed ("ab c-12x") as stored ("ABC12X")."""
    return re.sub(r"[^A-Za-z0-9]", "", str(code)).upper()
