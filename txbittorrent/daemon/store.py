"""The daemon's persistent state: ``StateStore``, one SQLite file.

Theory of operation
-------------------
The store owns one SQLite database (stdlib ``sqlite3``) holding what the
daemon must remember across restarts: the torrents (source metainfo or
magnet, save path, priorities, labels, limits, wanted state, times,
position), the settings (JSON values) and the credentials (one user's
password hash and the SHA-256 digests of the API tokens).  It knows nothing
of Twisted, the Session or HTTP; it reads no clock (callers pass every time)
and takes its randomness (salts, tokens) from an injected ``token_bytes``.

Invariants:

- Every public change is exactly one transaction (``BEGIN IMMEDIATE`` ...
  ``COMMIT``); a failed change rolls back and leaves nothing behind.
- The journal is WAL with ``synchronous=FULL``: a change that returned has
  been written to the WAL *and* fsynced.  SIGKILL alone would be survived by
  ``NORMAL`` too (the WAL is in the OS's page cache), but ``FULL`` also keeps
  an acknowledged add across a power cut or kernel crash, and the daemon
  changes its state rarely enough that one fsync per change costs nothing.
- The schema is versioned: ``MIGRATIONS[i]`` takes version ``i`` to ``i+1``;
  a file from a newer version, or that is not a database, raises
  ``StateStoreError`` and is never modified.
- Only one connection writes (one writer); a lock serialises callers, so the
  store may be used from the reactor thread or from a worker thread.

Every method blocks briefly (one small transaction).  Call it directly from
the reactor thread, except ``set_password``/``verify_password`` (scrypt takes
tens of milliseconds by design): run those in a thread (``deferToThread``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from ..errors import TxBitTorrentError
from ..storage.sqlitefile import SQLiteFile

__all__ = [
    "ApiToken",
    "DuplicateTorrentError",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "StateStore",
    "StateStoreError",
    "TorrentRecord",
    "UnknownTorrentError",
    "WANTED_STATES",
    "read_setting",
]

T = TypeVar("T")

WANTED_STATES = ("active", "paused", "stopped")

MIGRATIONS: list[str] = [
    # 0 -> 1
    """
    CREATE TABLE torrents (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        info_hash TEXT NOT NULL UNIQUE,
        source BLOB NOT NULL CHECK (typeof(source) IN ('blob', 'text')),
        metainfo BLOB,
        name TEXT NOT NULL,
        save_path TEXT NOT NULL,
        priorities TEXT NOT NULL,
        labels TEXT NOT NULL,
        upload_limit INTEGER,
        download_limit INTEGER,
        wanted TEXT NOT NULL CHECK (wanted IN ('active', 'paused', 'stopped')),
        added_at REAL NOT NULL,
        completed_at REAL,
        position INTEGER NOT NULL
    );
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE credentials (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        username TEXT NOT NULL,
        algorithm TEXT NOT NULL,
        parameters TEXT NOT NULL,
        salt BLOB NOT NULL,
        digest BLOB NOT NULL
    );
    CREATE TABLE api_tokens (
        token_id INTEGER PRIMARY KEY AUTOINCREMENT,
        token_sha256 BLOB NOT NULL UNIQUE,
        label TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    """,
    # 1 -> 2: the trackers as the user left them (JSON tiers of URLs); NULL
    # while they are still the source's own.
    """
    ALTER TABLE torrents ADD COLUMN trackers TEXT
    """,
    # 2 -> 3: qBittorrent's categories (a torrent's one category, each with
    # its save path) and tags known apart from any torrent.
    """
    ALTER TABLE torrents ADD COLUMN category TEXT;
    CREATE TABLE categories (name TEXT PRIMARY KEY, save_path TEXT NOT NULL);
    CREATE TABLE tags (name TEXT PRIMARY KEY)
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

# scrypt with n=2**14, r=8, p=1: 16 MiB of memory, tens of milliseconds.
SCRYPT_PARAMETERS = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}

_INFO_HASH = re.compile(r"\A(?:[0-9a-f]{40}|[0-9a-f]{64})\Z")
_MUTABLE = frozenset(
    {"name", "save_path", "priorities", "labels", "upload_limit", "download_limit",
     "wanted", "position", "trackers", "category"}
)
_COLUMNS = (
    "info_hash, source, metainfo, name, save_path, priorities, labels, upload_limit,"
    " download_limit, wanted, added_at, completed_at, position, trackers, category, seq"
)
_INSERT_COLUMNS = _COLUMNS.removesuffix(", seq")
_SELECT_ONE = f"SELECT {_COLUMNS} FROM torrents WHERE info_hash = ?"


class StateStoreError(TxBitTorrentError):
    """The state database cannot be used: corrupt, too new, or bad input."""


class DuplicateTorrentError(StateStoreError):
    """A torrent with this info hash is already in the store."""

    def __init__(self, info_hash: str) -> None:
        self.info_hash = info_hash
        super().__init__(f"torrent {info_hash} is already added")


class UnknownTorrentError(StateStoreError, KeyError):
    """No torrent with this info hash is in the store."""

    def __init__(self, info_hash: str) -> None:
        self.info_hash = info_hash
        super().__init__(f"no torrent {info_hash}")

    def __str__(self) -> str:
        return f"no torrent {self.info_hash}"


@dataclass(frozen=True, slots=True)
class TorrentRecord:
    """One stored torrent.  ``metainfo`` is the .torrent to load (the source
    when it was a .torrent, or what ``set_metainfo`` stored for a magnet)."""

    info_hash: str
    source: bytes | str
    metainfo: bytes | None
    name: str
    save_path: str
    priorities: tuple[int, ...]
    labels: tuple[str, ...]
    upload_limit: int | None
    download_limit: int | None
    wanted: str
    added_at: float
    completed_at: float | None
    position: int
    trackers: tuple[tuple[str, ...], ...] | None = None
    """The tiers of tracker URLs as the user left them; None while they
    are the source's own."""
    category: str | None = None
    """qBittorrent's category (one at most)."""
    seq: int = 0
    """A small integer never reused for another torrent of this store
    (Transmission's torrent ids)."""


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A stored API token (its plaintext is never stored)."""

    token_id: int
    label: str
    created_at: float


def _bad(reason: str) -> StateStoreError:
    return StateStoreError(f"invalid value: {reason}")


def _check_info_hash(info_hash: str) -> str:
    if not isinstance(info_hash, str) or not _INFO_HASH.match(info_hash.lower()):
        raise _bad(f"info_hash {info_hash!r} is not 40 or 64 hex digits")
    return info_hash.lower()


def _check_field(field: str, value: Any) -> Any:
    """Validate one mutable field and return its column value."""
    if field in ("name", "save_path"):
        if not isinstance(value, str):
            raise _bad(f"{field} must be a str")
        return value
    if field == "priorities":
        if isinstance(value, (str, bytes)) or not all(
            type(p) is int and p >= 0 for p in value
        ):
            raise _bad("priorities must be a list of non-negative ints")
        return json.dumps(list(value))
    if field == "labels":
        if isinstance(value, (str, bytes)) or not all(isinstance(s, str) for s in value):
            raise _bad("labels must be a list of str")
        return json.dumps(list(value))
    if field in ("upload_limit", "download_limit"):
        if value is not None and (type(value) is not int or value <= 0):
            raise _bad(f"{field} must be a positive int (bytes/s) or None")
        return value
    if field == "wanted":
        if value not in WANTED_STATES:
            raise _bad(f"wanted must be one of {WANTED_STATES}, not {value!r}")
        return value
    if field == "trackers":
        if value is None:
            return None
        if isinstance(value, (str, bytes)) or not all(
            not isinstance(tier, (str, bytes)) and all(isinstance(u, str) for u in tier)
            for tier in value
        ):
            raise _bad("trackers must be None or a list of tiers (lists of URL strs)")
        return json.dumps([list(tier) for tier in value])
    if field == "category":
        if value is not None and (not isinstance(value, str) or not value):
            raise _bad("category must be a non-empty str or None")
        return value
    if field == "position":
        if type(value) is not int:
            raise _bad("position must be an int")
        return value
    raise _bad(f"{field!r} is not a mutable field")


def _check_time(name: str, value: float | None, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if type(value) not in (int, float):
        raise _bad(f"{name} must be a Unix time")
    return float(value)  # type: ignore[arg-type]


def _record(row: Sequence[Any]) -> TorrentRecord:
    return TorrentRecord(
        info_hash=row[0], source=row[1], metainfo=row[2], name=row[3], save_path=row[4],
        priorities=tuple(json.loads(row[5])), labels=tuple(json.loads(row[6])),
        upload_limit=row[7], download_limit=row[8], wanted=row[9], added_at=row[10],
        completed_at=row[11], position=row[12],
        trackers=None if row[13] is None else tuple(tuple(t) for t in json.loads(row[13])),
        category=row[14], seq=row[15],
    )


def read_setting(path: str, key: str) -> Any:
    """One setting of the store at ``path``, read without opening it for
    writing (no lock taken, no migration): None when the file, its settings
    or the key are not there, or the file is not a readable store."""
    if not os.path.exists(path):
        return None
    try:
        db = sqlite3.connect(f"file:{quote(os.path.abspath(path))}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        finally:
            db.close()
        return None if row is None else json.loads(row[0])
    except (sqlite3.Error, ValueError):
        return None


class StateStore(SQLiteFile):
    """The daemon's state in one SQLite file (see the module docstring).

    Opening creates the file and migrates it to ``SCHEMA_VERSION``
    (``storage.sqlitefile.SQLiteFile``: WAL, one writer, a transaction per
    change).
    """

    error = StateStoreError
    kind = "state database"
    migrations = MIGRATIONS

    def __init__(
        self, path: str, token_bytes: Callable[[int], bytes] = secrets.token_bytes
    ) -> None:
        self._token_bytes = token_bytes
        super().__init__(path)

    # -- torrents ---------------------------------------------------------

    def add_torrent(
        self,
        info_hash: str,
        source: bytes | str,
        *,
        name: str,
        save_path: str,
        added_at: float,
        priorities: Sequence[int] = (),
        labels: Sequence[str] = (),
        upload_limit: int | None = None,
        download_limit: int | None = None,
        wanted: str = "active",
        category: str | None = None,
    ) -> TorrentRecord:
        """Store a new torrent at the end of the queue; ``source`` is the
        .torrent bytes or a magnet URI.  Raises DuplicateTorrentError."""
        info_hash = _check_info_hash(info_hash)
        if not isinstance(source, (bytes, str)) or not source:
            raise _bad("source must be non-empty .torrent bytes or a magnet URI str")
        values = {
            field: _check_field(field, value)
            for field, value in [
                ("name", name), ("save_path", save_path), ("priorities", priorities),
                ("labels", labels), ("upload_limit", upload_limit),
                ("download_limit", download_limit), ("wanted", wanted),
                ("category", category),
            ]
        }
        when = _check_time("added_at", added_at)
        metainfo = bytes(source) if isinstance(source, bytes) else None
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM torrents WHERE info_hash = ?", (info_hash,)).fetchall():
                raise DuplicateTorrentError(info_hash)
            (position,) = db.execute(
                "SELECT coalesce(max(position), -1) + 1 FROM torrents"
            ).fetchone()
            db.execute(
                f"INSERT INTO torrents ({_INSERT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (info_hash, source, metainfo, values["name"], values["save_path"],
                 values["priorities"], values["labels"], values["upload_limit"],
                 values["download_limit"], values["wanted"], when, None, position, None,
                 values["category"]),
            )
            row = db.execute(_SELECT_ONE, (info_hash,)).fetchone()
        return _record(row)

    def remove_torrent(self, info_hash: str) -> None:
        """Forget a torrent.  Raises UnknownTorrentError."""
        info_hash = _check_info_hash(info_hash)
        with self._transaction() as db:
            if db.execute("DELETE FROM torrents WHERE info_hash = ?", (info_hash,)).rowcount == 0:
                raise UnknownTorrentError(info_hash)

    def get(self, info_hash: str) -> TorrentRecord | None:
        """The stored torrent, or None."""
        info_hash = _check_info_hash(info_hash)
        rows = self._query(_SELECT_ONE, (info_hash,))
        return _record(rows[0]) if rows else None

    def torrents(self) -> list[TorrentRecord]:
        """Every stored torrent, in the order they were added."""
        return [_record(r) for r in self._query(f"SELECT {_COLUMNS} FROM torrents ORDER BY seq")]

    def _change(self, info_hash: str, assignments: dict[str, Any]) -> TorrentRecord:
        info_hash = _check_info_hash(info_hash)
        with self._transaction() as db:
            if assignments:
                sets = ", ".join(f"{column} = ?" for column in assignments)
                cursor = db.execute(
                    f"UPDATE torrents SET {sets} WHERE info_hash = ?",
                    (*assignments.values(), info_hash),
                )
                if cursor.rowcount == 0:
                    raise UnknownTorrentError(info_hash)
            row = db.execute(_SELECT_ONE, (info_hash,)).fetchone()
            if row is None:
                raise UnknownTorrentError(info_hash)
        return _record(row)

    def update(self, info_hash: str, /, **changes: Any) -> TorrentRecord:
        """Change mutable fields (name, save_path, priorities, labels,
        upload_limit, download_limit, wanted, position, trackers, category), all
        or none; returns
        the new record.  Raises StateStoreError on a bad field or value."""
        return self._change(info_hash, {f: _check_field(f, v) for f, v in changes.items()})

    def mark_completed(self, info_hash: str, when: float | None) -> TorrentRecord:
        """Record when the torrent completed (None: not complete any more)."""
        return self._change(info_hash, {"completed_at": _check_time("when", when, optional=True)})

    def set_metainfo(self, info_hash: str, torrent_bytes: bytes) -> TorrentRecord:
        """Store the .torrent (or info dictionary) fetched for a magnet; the
        magnet source is kept."""
        if not isinstance(torrent_bytes, bytes) or not torrent_bytes:
            raise _bad("torrent_bytes must be non-empty bytes")
        return self._change(info_hash, {"metainfo": torrent_bytes})

    # -- categories and tags (qBittorrent) ---------------------------------

    def categories(self) -> dict[str, str]:
        """Every category and its save path ("" for the default)."""
        return dict(self._query("SELECT name, save_path FROM categories ORDER BY name"))

    def set_category(self, name: str, save_path: str) -> None:
        """Create a category or change its save path."""
        if not isinstance(name, str) or not name or not isinstance(save_path, str):
            raise _bad("a category needs a non-empty name and a str save path")
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO categories (name, save_path) VALUES (?, ?)",
                       (name, save_path))

    def remove_categories(self, names: Sequence[str]) -> None:
        """Delete categories; their torrents are left without one."""
        with self._transaction() as db:
            for name in names:
                db.execute("DELETE FROM categories WHERE name = ?", (name,))
                db.execute("UPDATE torrents SET category = NULL WHERE category = ?", (name,))

    def tags(self) -> list[str]:
        """The tags created apart from any torrent, sorted."""
        return [row[0] for row in self._query("SELECT name FROM tags ORDER BY name")]

    def add_tags(self, names: Sequence[str]) -> None:
        """Create tags (those that exist stay)."""
        if any(not isinstance(n, str) or not n for n in names):
            raise _bad("a tag must be a non-empty str")
        with self._transaction() as db:
            db.executemany("INSERT OR IGNORE INTO tags (name) VALUES (?)", [(n,) for n in names])

    def remove_tags(self, names: Sequence[str]) -> None:
        """Delete tags, from the catalogue and from every torrent's labels."""
        gone = set(names)
        with self._transaction() as db:
            for name in gone:
                db.execute("DELETE FROM tags WHERE name = ?", (name,))
            for info_hash, text in db.execute("SELECT info_hash, labels FROM torrents").fetchall():
                labels = json.loads(text)
                kept = [label for label in labels if label not in gone]
                if kept != labels:
                    db.execute("UPDATE torrents SET labels = ? WHERE info_hash = ?",
                               (json.dumps(kept), info_hash))

    # -- settings ---------------------------------------------------------

    def set_setting(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value under ``key``."""
        if not isinstance(key, str) or not key:
            raise _bad("a setting key must be a non-empty str")
        try:
            text = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise _bad(f"setting {key!r} is not JSON: {e}") from e
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, text))

    def get_setting(self, key: str, default: T, kind: type[T] | None = None) -> T:
        """The value under ``key``, or ``default``.  If the stored value is
        not of ``kind`` (default: the type of ``default`` when it is not
        None), raises StateStoreError.  An int is accepted for a float."""
        rows = self._query("SELECT value FROM settings WHERE key = ?", (key,))
        if not rows:
            return default
        value = json.loads(rows[0][0])
        expected = kind if kind is not None else (None if default is None else type(default))
        if expected is float and type(value) is int:
            value = float(value)
        if expected is not None and type(value) is not expected:
            raise StateStoreError(
                f"setting {key!r} is {type(value).__name__}, expected {expected.__name__}"
            )
        return value  # type: ignore[no-any-return]

    def delete_setting(self, key: str) -> None:
        """Forget a setting (no error if absent)."""
        with self._transaction() as db:
            db.execute("DELETE FROM settings WHERE key = ?", (key,))

    def settings(self) -> dict[str, Any]:
        """Every setting, decoded."""
        rows = self._query("SELECT key, value FROM settings ORDER BY key")
        return {key: json.loads(value) for key, value in rows}

    # -- credentials ------------------------------------------------------

    def set_password(self, username: str, password: str) -> None:
        """Set the one user's name and password (stored as a salted scrypt
        hash with its parameters), replacing any previous one."""
        if not isinstance(username, str) or not username or not isinstance(password, str):
            raise _bad("username must be a non-empty str and password a str")
        salt = self._token_bytes(16)
        digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, **SCRYPT_PARAMETERS)
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO credentials"
                " (id, username, algorithm, parameters, salt, digest) VALUES (1, ?, ?, ?, ?, ?)",
                (username, "scrypt", json.dumps(SCRYPT_PARAMETERS), salt, digest),
            )

    def username(self) -> str | None:
        """The user's name, or None before ``set_password``."""
        rows = self._query("SELECT username FROM credentials WHERE id = 1")
        return rows[0][0] if rows else None

    def verify_password(self, username: str, password: str) -> bool:
        """Whether these are the stored user's name and password."""
        rows = self._query(
            "SELECT username, algorithm, parameters, salt, digest FROM credentials WHERE id = 1"
        )
        if not rows or not isinstance(password, str) or not isinstance(username, str):
            return False
        stored_user, algorithm, parameters, salt, digest = rows[0]
        if algorithm != "scrypt":
            raise StateStoreError(f"unknown password algorithm {algorithm!r}")
        candidate = hashlib.scrypt(password.encode("utf-8"), salt=salt, **json.loads(parameters))
        user_ok = hmac.compare_digest(username.encode("utf-8"), stored_user.encode("utf-8"))
        return hmac.compare_digest(candidate, digest) and user_ok

    def create_token(self, label: str, created_at: float) -> str:
        """Create an API token and return its plaintext (the only time it is
        available: only its SHA-256 is stored)."""
        if not isinstance(label, str):
            raise _bad("label must be a str")
        when = _check_time("created_at", created_at)
        token = self._token_bytes(32).hex()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO api_tokens (token_sha256, label, created_at) VALUES (?, ?, ?)",
                (hashlib.sha256(token.encode("ascii")).digest(), label, when),
            )
        return token

    def check_token(self, token: str) -> bool:
        """Whether ``token`` is a stored (unrevoked) API token."""
        if not isinstance(token, str):
            return False
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        rows = self._query("SELECT token_sha256 FROM api_tokens WHERE token_sha256 = ?", (digest,))
        return bool(rows) and hmac.compare_digest(rows[0][0], digest)

    def tokens(self) -> list[ApiToken]:
        """The stored tokens (without their plaintext), oldest first."""
        rows = self._query("SELECT token_id, label, created_at FROM api_tokens ORDER BY token_id")
        return [ApiToken(*row) for row in rows]

    def revoke_token(self, token_id: int) -> bool:
        """Delete a token; whether it existed."""
        with self._transaction() as db:
            cursor = db.execute("DELETE FROM api_tokens WHERE token_id = ?", (token_id,))
            return cursor.rowcount > 0
