"""The tracker's persistent state: ``TrackerDB``, one SQLite file of its own.

Theory of operation
-------------------
Swarms live in memory (``TrackerState``); what must survive a restart lives
here: the torrents (info hash, when first seen, completed count, whether
whitelisted), the users of private mode (scrypt password hash, admin flag,
per-user torrent limit), their passkeys, the API keys, and each user's
uploaded/downloaded totals per torrent.  The module knows nothing of
Twisted or HTTP, reads no clock (callers pass ``now``) and takes its
randomness from an injected ``token_bytes``.

Two paths, so that an announce never waits for the disk:

* The hot path is memory only.  ``whitelisted``, ``user_for_passkey`` and
  ``user`` answer from caches loaded at open and kept up to date by every
  change.  ``seen``, ``add_completed`` and ``account`` only add to a
  pending batch.
* ``take_batch()`` (on the caller's thread) detaches the pending batch;
  ``write_batch(batch)`` writes it as ONE transaction and may run in a
  worker thread.  ``flush()`` does both.  The service calls, once a second
  from a ``LoopingCall``, ``deferToThread(db.write_batch, db.take_batch())``
  (a write failure gives the batch back with ``restore``), so the fsync of
  a batch never runs on the reactor thread; a crash loses at most the last
  second of counters, never a change an admin was told had happened.
* Admin changes (whitelist, users, passkeys, API keys) are rare: each is
  one transaction, committed before the method returns.  ``hash_password``
  and ``verify_password`` cost one scrypt (~50 ms): call them in a thread,
  then ``create_user`` with the hash on the reactor thread (the caches are
  changed only on the thread that owns them).

Invariants (as ``daemon.store``): WAL journal with ``synchronous=FULL``;
every change one ``BEGIN IMMEDIATE`` transaction, rolled back whole on
error; a versioned schema (``MIGRATIONS[i]`` takes version ``i`` to
``i+1``; a newer file is refused untouched); one connection behind a lock.

Secrets: passwords as salted scrypt; passkeys (which travel in announce
URLs and are looked up on every announce) as HMAC-SHA256 under a
``pepper`` (pass one kept outside the database for defence in depth; by
default one is generated and stored in the file, which still hides the
128-bit random passkeys); API keys as SHA-256, which is also the key of
their HMAC-signed requests (a signature needs the server to hold the
secret; it holds the digest, never the bearer key).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from ..core.tracker.registry import TransferDelta
from ..core.tracker.swarms import UserId
from ..errors import TxBitTorrentError
from ..storage.sqlitefile import SQLiteFile

__all__ = [
    "Account", "ApiKey", "Batch", "PasswordHash", "IssuedKey", "MIGRATIONS", "SCHEMA_VERSION", "TorrentRow",
    "TrackerDB", "TrackerDBError", "User",
]

MIGRATIONS: list[str] = [
    # 0 -> 1
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
    CREATE TABLE torrents (
        info_hash BLOB PRIMARY KEY CHECK (length(info_hash) = 20),
        first_seen REAL,
        completed INTEGER NOT NULL DEFAULT 0,
        whitelisted INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE users (
        user_id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        password TEXT NOT NULL,
        admin INTEGER NOT NULL DEFAULT 0,
        torrent_limit INTEGER,
        created_at REAL NOT NULL
    );
    CREATE TABLE passkeys (
        user_id INTEGER PRIMARY KEY REFERENCES users ON DELETE CASCADE,
        digest BLOB NOT NULL UNIQUE,
        created_at REAL NOT NULL
    );
    CREATE TABLE api_keys (
        key_id TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users ON DELETE CASCADE,
        digest BLOB NOT NULL UNIQUE,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE TABLE accounting (
        user_id INTEGER NOT NULL REFERENCES users ON DELETE CASCADE,
        info_hash BLOB NOT NULL,
        uploaded INTEGER NOT NULL DEFAULT 0,
        downloaded INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (user_id, info_hash)
    )
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

SCRYPT_PARAMETERS = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
MAX_KEYS_PER_USER = 20
"""A user's API keys beyond this many are revoked, oldest first."""


class TrackerDBError(TxBitTorrentError):
    """The tracker database cannot be used, or a change is invalid."""


@dataclass(frozen=True, slots=True)
class User:
    user_id: int
    name: str
    admin: bool
    torrent_limit: int | None
    created_at: float


@dataclass(frozen=True, slots=True)
class PasswordHash:
    """A password as stored (salted scrypt, with its parameters)."""

    stored: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    user_id: int
    created_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new API key; ``key`` is shown once and never stored."""

    key_id: str
    key: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class TorrentRow:
    info_hash: bytes
    first_seen: float | None
    completed: int
    whitelisted: bool


@dataclass(frozen=True, slots=True)
class Account:
    user_id: int
    info_hash: bytes
    uploaded: int
    downloaded: int


@dataclass(slots=True)
class Batch:
    """Counters waiting to be written (see the module docstring)."""

    seen: dict[bytes, float] = field(default_factory=dict)
    completed: dict[bytes, int] = field(default_factory=dict)
    accounting: dict[tuple[int, bytes], list[int]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.seen or self.completed or self.accounting)


def _info_hash(value: bytes) -> bytes:
    if not isinstance(value, bytes) or len(value) != 20:
        raise TrackerDBError("an info hash is 20 bytes")
    return value


def _hash_password(password: str, salt: bytes) -> str:
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, **SCRYPT_PARAMETERS)
    return json.dumps({"scrypt": SCRYPT_PARAMETERS, "salt": salt.hex(), "digest": digest.hex()})


def _check_password(password: str, stored: str) -> bool:
    record = json.loads(stored)
    parameters = record["scrypt"]
    candidate = hashlib.scrypt(
        password.encode("utf-8"), salt=bytes.fromhex(record["salt"]), **parameters
    )
    return hmac.compare_digest(candidate, bytes.fromhex(record["digest"]))


class TrackerDB(SQLiteFile):
    """The tracker's SQLite file (see the module docstring)."""

    error = TrackerDBError
    kind = "tracker database"
    migrations = MIGRATIONS

    def __init__(
        self,
        path: str,
        *,
        token_bytes: Callable[[int], bytes] = secrets.token_bytes,
        pepper: bytes | None = None,
        max_torrents: int = 1_000_000,
    ) -> None:
        self.max_torrents = max_torrents
        self._token_bytes = token_bytes
        self._given_pepper = pepper
        self._pending = Batch()
        super().__init__(path)

    def _opened(self) -> None:
        given = self._given_pepper
        self._pepper = given if given is not None else self._stored_pepper()
        self._load_caches()

    def _stored_pepper(self) -> bytes:
        with self._transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'passkey_pepper'").fetchone()
            if row is not None:
                return bytes(row[0])
            pepper = self._token_bytes(32)
            db.execute("INSERT INTO meta (key, value) VALUES ('passkey_pepper', ?)", (pepper,))
            return pepper

    def _load_caches(self) -> None:
        self._whitelist = {
            bytes(r[0]) for r in self._query("SELECT info_hash FROM torrents WHERE whitelisted")
        }
        self._users = {
            r[0]: User(r[0], r[1], bool(r[2]), r[3], r[4])
            for r in self._query(
                "SELECT user_id, name, admin, torrent_limit, created_at FROM users"
            )
        }
        self._passkeys = {bytes(r[0]): r[1] for r in self._query(
            "SELECT digest, user_id FROM passkeys")}
        self._keys: dict[str, tuple[bytes, ApiKey]] = {}
        for key_id, user_id, digest, created, expires in self._query(
            "SELECT key_id, user_id, digest, created_at, expires_at FROM api_keys"
        ):
            self._keys[key_id] = (bytes(digest), ApiKey(key_id, user_id, created, expires))
        self._key_digests = {digest: key_id for key_id, (digest, _) in self._keys.items()}
        self._torrent_rows = int(self._query("SELECT count(*) FROM torrents")[0][0])

    def close(self) -> None:
        """Close the file (pending counters not flushed are lost: ``flush`` first)."""
        super().close()

    # -- hot path: memory only --------------------------------------------

    def whitelisted(self, info_hash: bytes) -> bool:
        return info_hash in self._whitelist

    def whitelist(self) -> frozenset[bytes]:
        """Every whitelisted info hash, as it stands now."""
        return frozenset(self._whitelist)

    def live_whitelist(self) -> AbstractSet[bytes]:
        """The whitelist as a live set that every add/remove changes in place:
        give it to ``TrackerService(allowed=...)`` / ``TrackerState(allowed=...)``
        so admin changes apply at once.  Read it only."""
        return self._whitelist

    def on_transfer(self, delta: TransferDelta) -> None:
        """``TrackerService(on_transfer=...)``: a private user's transfer goes
        to their accounting (batched).  Completions are counted per torrent
        by ``TrackerRecorder`` from the swarms, not here (they would count
        twice)."""
        if isinstance(delta.user, int) and delta.user in self._users:
            self.account(delta.user, delta.info_hash, delta.uploaded, delta.downloaded)

    def passkey_digest(self, passkey: str) -> bytes:
        return hmac.new(self._pepper, passkey.encode("ascii"), hashlib.sha256).digest()

    def user_for_passkey(self, passkey: str | bytes) -> int | None:
        """The id of the user whose passkey this is (32 hex digits), or None."""
        if isinstance(passkey, bytes):
            try:
                passkey = passkey.decode("ascii")
            except UnicodeDecodeError:
                return None
        if len(passkey) != 32 or not all(c in "0123456789abcdef" for c in passkey):
            return None
        return self._passkeys.get(self.passkey_digest(passkey))

    def user(self, user_id: int) -> User | None:
        return self._users.get(user_id)

    def torrent_limit(self, user_id: UserId) -> int | None:
        """How many torrents the user may be in at once (None: no limit of its own)."""
        user = self._users.get(user_id) if isinstance(user_id, int) else None
        return None if user is None else user.torrent_limit

    def user_named(self, name: str) -> User | None:
        return next((u for u in self._users.values() if u.name == name), None)

    def users(self) -> list[User]:
        return sorted(self._users.values(), key=lambda u: u.user_id)

    def seen(self, info_hash: bytes, now: float) -> None:
        """Note that ``info_hash`` was announced (its first time is kept)."""
        self._pending.seen.setdefault(_info_hash(info_hash), now)

    def add_completed(self, info_hash: bytes, n: int = 1) -> None:
        """Add ``n`` completed downloads to the torrent's count."""
        if n < 0:
            raise TrackerDBError("a completed count only grows")
        key = _info_hash(info_hash)
        self._pending.completed[key] = self._pending.completed.get(key, 0) + n

    def account(self, user_id: int, info_hash: bytes, up_delta: int, down_delta: int) -> None:
        """Add to the user's uploaded/downloaded totals for the torrent."""
        if up_delta < 0 or down_delta < 0:
            raise TrackerDBError("accounting deltas are never negative")
        entry = self._pending.accounting.setdefault((user_id, _info_hash(info_hash)), [0, 0])
        entry[0] += up_delta
        entry[1] += down_delta

    # -- batches ----------------------------------------------------------

    def take_batch(self) -> Batch:
        """Detach the pending counters (the caller writes or restores them)."""
        batch, self._pending = self._pending, Batch()
        return batch

    def restore(self, batch: Batch) -> None:
        """Give back a batch whose write failed, to go out with the next one."""
        for info_hash, when in batch.seen.items():
            self._pending.seen[info_hash] = min(when, self._pending.seen.get(info_hash, when))
        for info_hash, n in batch.completed.items():
            self._pending.completed[info_hash] = self._pending.completed.get(info_hash, 0) + n
        for key, (up, down) in batch.accounting.items():
            entry = self._pending.accounting.setdefault(key, [0, 0])
            entry[0] += up
            entry[1] += down

    def write_batch(self, batch: Batch) -> None:
        """Write ``batch`` in one transaction (callable from a worker thread)."""
        if not batch:
            return
        with self._transaction() as db:
            rows = self._torrent_rows
            for info_hash in sorted(set(batch.seen) | set(batch.completed)):
                if rows < self.max_torrents:
                    rows += db.execute(
                        "INSERT OR IGNORE INTO torrents (info_hash) VALUES (?)", (info_hash,)
                    ).rowcount
            db.executemany(
                "UPDATE torrents SET first_seen = ? WHERE info_hash = ? AND first_seen IS NULL",
                [(when, ih) for ih, when in batch.seen.items()],
            )
            db.executemany(
                "UPDATE torrents SET completed = completed + ? WHERE info_hash = ?",
                [(n, ih) for ih, n in batch.completed.items()],
            )
            db.executemany(
                "INSERT INTO accounting (user_id, info_hash, uploaded, downloaded)"
                " SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM users WHERE user_id = ?1)"
                " ON CONFLICT (user_id, info_hash) DO UPDATE SET"
                " uploaded = uploaded + excluded.uploaded,"
                " downloaded = downloaded + excluded.downloaded",
                [(uid, ih, up, down) for (uid, ih), (up, down) in batch.accounting.items()],
            )
        self._torrent_rows = rows

    def flush(self) -> None:
        """Write the pending counters now, on this thread."""
        batch = self.take_batch()
        try:
            self.write_batch(batch)
        except BaseException:
            self.restore(batch)
            raise

    # -- reads --------------------------------------------------------------

    def torrent(self, info_hash: bytes) -> TorrentRow | None:
        """The stored torrent, counters still pending included."""
        rows = self._query(
            "SELECT info_hash, first_seen, completed, whitelisted FROM torrents"
            " WHERE info_hash = ?", (_info_hash(info_hash),))
        pending_seen = self._pending.seen.get(info_hash)
        pending_done = self._pending.completed.get(info_hash, 0)
        if not rows:
            if pending_seen is None and not pending_done:
                return None
            return TorrentRow(info_hash, pending_seen, pending_done, False)
        ih, first, done, white = rows[0]
        return TorrentRow(bytes(ih), first if first is not None else pending_seen,
                          done + pending_done, bool(white))

    def torrent_count(self) -> int:
        return int(self._query("SELECT count(*) FROM torrents")[0][0])

    def torrents(self, offset: int = 0, limit: int = 100) -> list[TorrentRow]:
        """Stored torrents by info hash (pending counters not included)."""
        return [
            TorrentRow(bytes(r[0]), r[1], r[2], bool(r[3]))
            for r in self._query(
                "SELECT info_hash, first_seen, completed, whitelisted FROM torrents"
                " ORDER BY info_hash LIMIT ? OFFSET ?", (limit, offset))
        ]

    def accounting(self, user_id: int) -> list[Account]:
        """The user's stored totals per torrent (pending deltas not included)."""
        return [
            Account(user_id, bytes(r[0]), r[1], r[2])
            for r in self._query(
                "SELECT info_hash, uploaded, downloaded FROM accounting WHERE user_id = ?"
                " ORDER BY info_hash", (user_id,))
        ]

    # -- admin: whitelist ---------------------------------------------------

    def add_whitelist(self, info_hash: bytes) -> None:
        key = _info_hash(info_hash)
        with self._transaction() as db:
            inserted = db.execute(
                "INSERT INTO torrents (info_hash, whitelisted) VALUES (?, 1)"
                " ON CONFLICT (info_hash) DO UPDATE SET whitelisted = 1", (key,)).rowcount
            if not db.execute("SELECT 1 FROM torrents WHERE info_hash = ?", (key,)).fetchone():
                raise TrackerDBError("whitelisting failed")
        self._torrent_rows = self.torrent_count() if inserted else self._torrent_rows
        self._whitelist.add(key)

    def remove_whitelist(self, info_hash: bytes) -> bool:
        """Take a torrent off the whitelist; whether it was on it."""
        key = _info_hash(info_hash)
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE torrents SET whitelisted = 0 WHERE info_hash = ? AND whitelisted",
                (key,)).rowcount
        self._whitelist.discard(key)
        return bool(changed)

    # -- admin: users, passwords, passkeys ------------------------------------

    def hash_password(self, password: str) -> PasswordHash:
        """``password`` hashed for ``create_user`` (one scrypt; touches no
        state, so it is safe in a worker thread)."""
        if not isinstance(password, str) or len(password) < 8:
            raise TrackerDBError("a password has at least 8 characters")
        return PasswordHash(_hash_password(password, self._token_bytes(16)))

    def create_user(
        self, name: str, password: str | PasswordHash, now: float, *, admin: bool = False,
        torrent_limit: int | None = None,
    ) -> tuple[User, str]:
        """A new user and their passkey (its plaintext is returned only here).
        Given a plain password it costs one scrypt; a server hashes it first
        in a thread (``hash_password``) and calls this on its own thread,
        where the caches are read."""
        if not isinstance(name, str) or not 1 <= len(name) <= 64 or not name.isprintable():
            raise TrackerDBError("a user name is 1 to 64 printable characters")
        if torrent_limit is not None and (type(torrent_limit) is not int or torrent_limit < 0):
            raise TrackerDBError("a torrent limit is a non-negative int or None")
        if not isinstance(password, PasswordHash):
            password = self.hash_password(password)
        stored = password.stored
        passkey = self._token_bytes(16).hex()
        digest = self.passkey_digest(passkey)
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise TrackerDBError(f"user {name!r} exists")
            user_id = db.execute(
                "INSERT INTO users (name, password, admin, torrent_limit, created_at)"
                " VALUES (?, ?, ?, ?, ?)", (name, stored, int(admin), torrent_limit, now)
            ).lastrowid
            assert user_id is not None
            db.execute("INSERT INTO passkeys (user_id, digest, created_at) VALUES (?, ?, ?)",
                       (user_id, digest, now))
        user = User(user_id, name, bool(admin), torrent_limit, now)
        self._users[user_id] = user
        self._passkeys[digest] = user_id
        return user, passkey

    def verify_password(self, name: str, password: str) -> User | None:
        """The user if ``password`` is theirs (one scrypt: call it in a thread)."""
        rows = self._query("SELECT user_id, password FROM users WHERE name = ?", (name,))
        if not rows:
            _check_password(password, _dummy())  # the same cost for unknown names
            return None
        user_id, stored = rows[0]
        return self._users.get(user_id) if _check_password(password, stored) else None

    def reset_passkey(self, user_id: int, now: float) -> str:
        """Replace the user's passkey; returns the new one (the old stops working)."""
        if user_id not in self._users:
            raise TrackerDBError(f"no user {user_id}")
        passkey = self._token_bytes(16).hex()
        digest = self.passkey_digest(passkey)
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO passkeys (user_id, digest, created_at)"
                       " VALUES (?, ?, ?)", (user_id, digest, now))
        for old in [d for d, uid in self._passkeys.items() if uid == user_id]:
            del self._passkeys[old]
        self._passkeys[digest] = user_id
        return passkey

    # -- API keys ------------------------------------------------------------

    def issue_api_key(self, user_id: int, now: float, lifetime: float) -> IssuedKey:
        """A new API key for the user, valid until ``now + lifetime``; the
        user's expired keys and those beyond MAX_KEYS_PER_USER are removed."""
        if user_id not in self._users:
            raise TrackerDBError(f"no user {user_id}")
        key_id = self._token_bytes(8).hex()
        key = self._token_bytes(32).hex()
        digest = hashlib.sha256(key.encode("ascii")).digest()
        record = ApiKey(key_id, user_id, now, now + lifetime)
        mine = sorted((k for _, k in self._keys.values() if k.user_id == user_id),
                      key=lambda k: k.created_at)
        dropped = [k.key_id for k in mine if k.expires_at <= now]
        live = [k for k in mine if k.expires_at > now]
        dropped += [k.key_id for k in live[: max(0, len(live) - MAX_KEYS_PER_USER + 1)]]
        with self._transaction() as db:
            db.executemany("DELETE FROM api_keys WHERE key_id = ?", [(k,) for k in dropped])
            db.execute("INSERT INTO api_keys (key_id, user_id, digest, created_at, expires_at)"
                       " VALUES (?, ?, ?, ?, ?)", (key_id, user_id, digest, now, now + lifetime))
        for old in dropped:
            self._forget_key(old)
        self._keys[key_id] = (digest, record)
        self._key_digests[digest] = key_id
        return IssuedKey(key_id, key, record.expires_at)

    def bearer(self, key: str, now: float) -> ApiKey | None:
        """The live API key whose plaintext is ``key``, or None."""
        digest = hashlib.sha256(key.encode("utf-8")).digest()
        key_id = self._key_digests.get(digest)
        found = self._keys.get(key_id) if key_id is not None else None
        if found is None or not hmac.compare_digest(found[0], digest):
            return None
        return found[1] if found[1].expires_at > now else None

    def signing_key(self, key_id: str, now: float) -> tuple[bytes, ApiKey] | None:
        """(the HMAC secret, the key) for a live ``key_id``, or None."""
        found = self._keys.get(key_id)
        if found is None or found[1].expires_at <= now:
            return None
        return found

    def api_keys(self, user_id: int | None = None) -> list[ApiKey]:
        keys = [k for _, k in self._keys.values() if user_id is None or k.user_id == user_id]
        return sorted(keys, key=lambda k: (k.user_id, k.created_at, k.key_id))

    def revoke_api_key(self, key_id: str) -> bool:
        with self._transaction() as db:
            gone = db.execute("DELETE FROM api_keys WHERE key_id = ?", (key_id,)).rowcount
        self._forget_key(key_id)
        return bool(gone)

    def _forget_key(self, key_id: str) -> None:
        found = self._keys.pop(key_id, None)
        if found is not None:
            self._key_digests.pop(found[0], None)


@functools.cache
def _dummy() -> str:
    """A stored password to check unknown names against (made on first use)."""
    return _hash_password("not a password", b"\0" * 16)
