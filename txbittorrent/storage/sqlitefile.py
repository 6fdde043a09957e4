"""One SQLite file holding a service's state: ``SQLiteFile``.

Theory of operation
-------------------
The daemon's ``StateStore`` and the tracker's ``TrackerDB`` keep their
state the same way; this base class is that way, once:

* the file is opened with the standard library's ``sqlite3`` in autocommit
  mode (transactions are explicit), usable from any thread, with foreign
  keys on, the WAL journal and ``synchronous=FULL`` (a change that returned
  is on disk, across a power cut too);
* one lock serialises every caller (one writer); ``_transaction()`` is one
  ``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error;
* the schema is versioned: ``migrations[i]`` takes version ``i`` to
  ``i + 1`` (statements split on ``;``, run in one transaction); a file
  from a newer version is refused and left untouched;
* every ``sqlite3.Error`` becomes the subclass's ``error`` type, with the
  file's name, and a file that is not a database is refused at open.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

from txbittorrent.errors import TxBitTorrentError

__all__ = ["SQLiteFile"]


class SQLiteFile:
    """A state file (see the module docstring); subclasses set ``error``,
    ``kind`` and ``migrations``."""

    error: ClassVar[type[TxBitTorrentError]] = TxBitTorrentError
    """Raised for anything wrong with the file."""
    kind: ClassVar[str] = "database"
    """What the file is, in messages ("state database")."""
    migrations: ClassVar[Sequence[str]] = ()

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:
            raise self.error(f"cannot open {self.kind} {path}: {e}") from e
        try:
            self._db.execute("PRAGMA foreign_keys = ON")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise self.error(f"{path}: cannot use WAL journal mode (got {mode})")
            self._db.execute("PRAGMA synchronous = FULL")
            self._migrate()
            self._opened()
        except BaseException as e:
            self._db.close()
            if isinstance(e, sqlite3.Error):
                raise self.error(f"{path} is not a usable {self.kind}: {e}") from e
            raise

    def _opened(self) -> None:
        """Called once the schema is current (load caches here); an error
        closes the file."""

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; rolled back on any error."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as e:
                raise self.error(f"{self.path}: {e}") from e
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as e:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if isinstance(e, sqlite3.Error):
                    raise self.error(f"{self.path}: {e}") from e
                raise

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as e:
                raise self.error(f"{self.path}: {e}") from e

    def _migrate(self) -> None:
        latest = len(self.migrations)
        with self._transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT version FROM schema_version").fetchone()
            version = 0 if row is None else row[0]
            if row is None:
                db.execute("INSERT INTO schema_version (version) VALUES (0)")
            if version > latest:
                raise self.error(
                    f"{self.path} has schema version {version}; this txbittorrent"
                    f" knows versions up to {latest}"
                )
            for script in self.migrations[version:]:
                # executescript would COMMIT; run the statements one by one.
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
            db.execute("UPDATE schema_version SET version = ?", (latest,))

    def schema_version(self) -> int:
        """The schema version of the open file."""
        return int(self._query("SELECT version FROM schema_version")[0][0])

    def close(self) -> None:
        """Close the file (idempotent)."""
        with self._lock:
            self._db.close()
