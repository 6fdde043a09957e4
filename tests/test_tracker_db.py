"""Tests for txbittorrent.tracker.db: the tracker's SQLite state."""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
import time
from collections.abc import Iterator

from twisted.trial.unittest import SynchronousTestCase

from tests.crashchild import kill_mid_stream
from txbittorrent.core.tracker.registry import TransferDelta
from txbittorrent.tracker.db import (
    MAX_KEYS_PER_USER,
    SCHEMA_VERSION,
    Account,
    TorrentRow,
    TrackerDB,
    TrackerDBError,
)

A, B, C = b"a" * 20, b"b" * 20, b"c" * 20


def counter_bytes() -> Iterator[bytes]:
    """Deterministic 'random' bytes."""
    n = 0
    while True:
        n += 1
        yield hashlib.sha256(str(n).encode()).digest()


class DBCase(SynchronousTestCase):
    """A fresh database path; ``open`` opens (and closes in cleanup) a TrackerDB."""

    def setUp(self) -> None:
        self.path = os.path.join(self.mktemp(), "tracker.sqlite")
        os.makedirs(os.path.dirname(self.path))

    def open(self, path: str | None = None, **kwargs: object) -> TrackerDB:
        source = counter_bytes()
        db = TrackerDB(path or self.path, token_bytes=lambda n: next(source)[:n], **kwargs)  # type: ignore[arg-type]
        self.addCleanup(db.close)
        return db


class SchemaTests(DBCase):
    """Opening, journal mode, versions."""

    def test_wal_full_and_version(self) -> None:
        """A new file is in WAL mode with synchronous=FULL at the current schema version."""
        db = self.open()
        self.assertEqual(db.schema_version(), SCHEMA_VERSION)
        self.assertEqual(db._db.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        self.assertEqual(db._db.execute("PRAGMA synchronous").fetchone()[0], 2)

    def test_newer_file_refused_untouched(self) -> None:
        """A file from a newer schema raises TrackerDBError and keeps its version."""
        self.open().close()
        raw = sqlite3.connect(self.path)
        raw.execute("UPDATE schema_version SET version = 99")
        raw.commit()
        raw.close()
        self.assertRaises(TrackerDBError, TrackerDB, self.path)
        raw = sqlite3.connect(self.path)
        self.addCleanup(raw.close)
        self.assertEqual(raw.execute("SELECT version FROM schema_version").fetchone()[0], 99)

    def test_not_a_database(self) -> None:
        """A file that is not SQLite raises TrackerDBError."""
        with open(self.path, "wb") as f:
            f.write(b"not sqlite at all" * 100)
        self.assertRaises(TrackerDBError, TrackerDB, self.path)


class CounterTests(DBCase):
    """The batched counters: first seen, completed, accounting."""

    def test_batched_until_flush(self) -> None:
        """Counters wait in memory (visible through torrent()) and reach the file at flush."""
        db = self.open()
        db.seen(A, 10.0)
        db.seen(A, 20.0)
        db.add_completed(A, 2)
        db.add_completed(A)
        self.assertEqual(db.torrent(A), TorrentRow(A, 10.0, 3, False))
        self.assertEqual(db.torrent_count(), 0)
        db.flush()
        self.assertEqual(db.torrents(), [TorrentRow(A, 10.0, 3, False)])
        db.add_completed(A, 4)
        db.flush()
        db.close()
        self.assertEqual(self.open().torrent(A), TorrentRow(A, 10.0, 7, False))

    def test_accounting_adds_up(self) -> None:
        """Deltas for a user and torrent add up across batches; unknown users are dropped."""
        db = self.open()
        user, _ = db.create_user("alice", "password1", 1.0)
        db.account(user.user_id, A, 100, 5)
        db.account(user.user_id, A, 1, 1)
        db.account(999, A, 7, 7)
        db.flush()
        db.account(user.user_id, A, 10, 0)
        db.account(user.user_id, B, 0, 3)
        db.flush()
        self.assertEqual(db.accounting(user.user_id),
                         [Account(user.user_id, A, 111, 6), Account(user.user_id, B, 0, 3)])
        self.assertEqual(db.accounting(999), [])

    def test_negative_and_bad_values_refused(self) -> None:
        """Negative deltas and info hashes that are not 20 bytes raise TrackerDBError."""
        db = self.open()
        self.assertRaises(TrackerDBError, db.account, 1, A, -1, 0)
        self.assertRaises(TrackerDBError, db.add_completed, A, -1)
        self.assertRaises(TrackerDBError, db.seen, b"short", 1.0)

    def test_failed_write_restores_batch(self) -> None:
        """A batch whose write fails goes back to the pending counters."""
        db = self.open()
        db.add_completed(A, 2)
        batch = db.take_batch()
        db.add_completed(A, 1)
        db.restore(batch)
        db.flush()
        self.assertEqual(db.torrent(A), TorrentRow(A, None, 3, False))

    def test_max_torrents(self) -> None:
        """Beyond max_torrents rows, new info hashes are not stored."""
        db = self.open(max_torrents=2)
        for ih in (A, B, C):
            db.seen(ih, 1.0)
        db.flush()
        self.assertEqual(db.torrent_count(), 2)
        db.add_completed(A)
        db.flush()
        self.assertEqual(db.torrent(A), TorrentRow(A, 1.0, 1, False))


class WhitelistTests(DBCase):
    """The whitelist."""

    def test_add_remove_survives_restart(self) -> None:
        """Whitelisted info hashes are answered from memory and kept across a restart."""
        db = self.open()
        db.add_whitelist(A)
        db.add_whitelist(B)
        self.assertTrue(db.remove_whitelist(B))
        self.assertFalse(db.remove_whitelist(C))
        self.assertTrue(db.whitelisted(A))
        self.assertFalse(db.whitelisted(B))
        db.close()
        again = self.open()
        self.assertEqual(again.whitelist(), frozenset({A}))
        self.assertEqual(again.torrent(A), TorrentRow(A, None, 0, True))


class UserTests(DBCase):
    """Users, passwords, passkeys."""

    def test_create_and_verify(self) -> None:
        """A created user verifies with their password only; names are unique."""
        db = self.open()
        user, passkey = db.create_user("alice", "correct horse", 5.0, admin=True,
                                       torrent_limit=3)
        self.assertEqual((user.name, user.admin, user.torrent_limit), ("alice", True, 3))
        self.assertEqual(db.verify_password("alice", "correct horse"), user)
        self.assertIsNone(db.verify_password("alice", "wrong horse"))
        self.assertIsNone(db.verify_password("bob", "correct horse"))
        self.assertRaises(TrackerDBError, db.create_user, "alice", "another one", 6.0)
        self.assertRaises(TrackerDBError, db.create_user, "", "password1", 6.0)
        self.assertRaises(TrackerDBError, db.create_user, "bob", "short", 6.0)
        self.assertEqual(db.user_for_passkey(passkey), user.user_id)
        self.assertEqual(db.user_for_passkey(passkey.encode()), user.user_id)

    def test_create_with_prepared_hash(self) -> None:
        """create_user takes a hash_password result (hashed elsewhere) as well as a password."""
        db = self.open()
        hashed = db.hash_password("prepared password")
        self.assertNotIn("prepared", repr(hashed))
        user, _ = db.create_user("carol", hashed, 1.0)
        self.assertEqual(db.verify_password("carol", "prepared password"), user)
        self.assertRaises(TrackerDBError, db.hash_password, "short")

    def test_passkey_lookup_and_reset(self) -> None:
        """A reset passkey replaces the old one, also after a restart; junk is None."""
        db = self.open()
        user, old = db.create_user("alice", "password1", 1.0)
        new = db.reset_passkey(user.user_id, 2.0)
        self.assertNotEqual(old, new)
        self.assertIsNone(db.user_for_passkey(old))
        self.assertEqual(db.user_for_passkey(new), user.user_id)
        self.assertIsNone(db.user_for_passkey("zz" * 16))
        self.assertIsNone(db.user_for_passkey(b"\xff" * 32))
        db.close()
        self.assertEqual(self.open().user_for_passkey(new), user.user_id)

    def test_secrets_not_stored_in_plaintext(self) -> None:
        """Neither the password, the passkey nor an API key appears in the file."""
        db = self.open()
        user, passkey = db.create_user("alice", "hunter2hunter2", 1.0)
        issued = db.issue_api_key(user.user_id, 1.0, 60.0)
        with open(self.path, "rb") as f, open(self.path + "-wal", "rb") as w:
            content = f.read() + w.read()
        for secret in ("hunter2hunter2", passkey, issued.key):
            self.assertNotIn(secret.encode(), content)


class ApiKeyTests(DBCase):
    """API keys."""

    def test_bearer_and_signing(self) -> None:
        """An issued key is found by its plaintext, its id gives SHA-256(key) as HMAC secret."""
        db = self.open()
        user, _ = db.create_user("alice", "password1", 1.0)
        issued = db.issue_api_key(user.user_id, 100.0, 60.0)
        found = db.bearer(issued.key, 120.0)
        assert found is not None
        self.assertEqual((found.key_id, found.user_id), (issued.key_id, user.user_id))
        signing = db.signing_key(issued.key_id, 120.0)
        assert signing is not None
        self.assertEqual(signing[0], hashlib.sha256(issued.key.encode()).digest())
        self.assertIsNone(db.bearer(issued.key, 160.0))
        self.assertIsNone(db.signing_key(issued.key_id, 160.0))
        self.assertIsNone(db.bearer("nope", 120.0))
        db.close()
        self.assertIsNotNone(self.open().bearer(issued.key, 120.0))

    def test_revoke_and_cap(self) -> None:
        """Revoked keys stop working; a user keeps at most MAX_KEYS_PER_USER live keys."""
        db = self.open()
        user, _ = db.create_user("alice", "password1", 1.0)
        keys = [db.issue_api_key(user.user_id, float(i), 1000.0)
                for i in range(MAX_KEYS_PER_USER + 2)]
        self.assertEqual(len(db.api_keys(user.user_id)), MAX_KEYS_PER_USER)
        self.assertIsNone(db.bearer(keys[0].key, 50.0))
        self.assertTrue(db.revoke_api_key(keys[-1].key_id))
        self.assertIsNone(db.bearer(keys[-1].key, 50.0))
        self.assertFalse(db.revoke_api_key(keys[-1].key_id))


CHILD = """
import sys
from txbittorrent.tracker.db import TrackerDB
db = TrackerDB(sys.argv[1])
for i in range(100000):
    db.add_completed(b"a" * 20, 1)
    db.add_completed((b"%020d" % i), 1)
    db.flush()
    sys.stdout.write("%d\\n" % i)
    sys.stdout.flush()
"""


class CrashTests(DBCase):
    """SIGKILL in the middle of a stream of flushes."""

    def test_sigkill_keeps_whole_batches(self) -> None:
        """After SIGKILL, the file holds the first k batches whole (k at least the
        acknowledged ones): A's count equals the number of per-batch rows."""
        rng = random.Random()
        deadline = time.monotonic() + 9.0
        for attempt in range(3):
            path = os.path.join(os.path.dirname(self.path), f"crash{attempt}.sqlite")
            acknowledged = kill_mid_stream(self, CHILD, path, rng, deadline, 30)
            db = self.open(path)
            rows = db.torrents(0, 1_000_000)
            counted = db.torrent(b"a" * 20)
            assert counted is not None
            self.assertGreaterEqual(counted.completed, acknowledged)
            self.assertEqual(len(rows), counted.completed + 1)
            self.assertTrue(all(r.completed == 1 for r in rows if r.info_hash != b"a" * 20))


class SeamTests(DBCase):
    """What TrackerService plugs in: passkeys, on_transfer, allowed."""

    def test_on_transfer_accounts(self) -> None:
        """A private user's TransferDelta goes to their accounting; unknown users are ignored."""
        db = self.open()
        user, _ = db.create_user("alice", "password1", 1.0)
        db.on_transfer(TransferDelta(user.user_id, A, 10, 20, False))
        db.on_transfer(TransferDelta(user.user_id, A, 1, 2, True))
        db.on_transfer(TransferDelta("someone", A, 1, 2, True))
        db.on_transfer(TransferDelta(999, A, 1, 2, True))
        db.flush()
        self.assertEqual(db.accounting(user.user_id), [Account(user.user_id, A, 11, 22)])

    def test_live_whitelist(self) -> None:
        """live_whitelist() is changed in place by add/remove (a TrackerState sees it at once)."""
        db = self.open()
        live = db.live_whitelist()
        db.add_whitelist(A)
        self.assertIn(A, live)
        db.remove_whitelist(A)
        self.assertNotIn(A, live)
