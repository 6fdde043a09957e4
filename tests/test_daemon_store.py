"""Tests for txbittorrent.daemon.store: the daemon's SQLite state."""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.crashchild import kill_mid_stream
from txbittorrent.daemon.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    DuplicateTorrentError,
    StateStore,
    StateStoreError,
    TorrentRecord,
    UnknownTorrentError,
)

H1, H2, H3 = "11" * 20, "22" * 20, "ab" * 32
MAGNET = "magnet:?xt=urn:btih:" + H2
TORRENT = b"d8:announce3:url4:infod4:name1:xee"


def counter_bytes() -> Iterator[bytes]:
    """Deterministic 'random' bytes for salts and tokens."""
    n = 0
    while True:
        n += 1
        yield hashlib.sha256(str(n).encode()).digest()


class StoreCase(SynchronousTestCase):
    def open(self, path: str | None = None) -> StateStore:
        path = path or self.path
        stream = counter_bytes()
        store = StateStore(path, token_bytes=lambda n: (next(stream) * 2)[:n])
        self.addCleanup(store.close)
        return store

    def setUp(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        self.path = os.path.join(directory, "state.sqlite")

    def add(self, store: StateStore, info_hash: str = H1, **kw: Any) -> TorrentRecord:
        args: dict[str, Any] = dict(name="x", save_path="/data", added_at=100.0)
        args.update(kw)
        source = args.pop("source", TORRENT)
        return store.add_torrent(info_hash, source, **args)


class OpenTests(StoreCase):
    """Opening, schema versions and bad files."""

    def test_pragmas_and_version(self) -> None:
        """A new file is in WAL mode at the current schema version."""
        store = self.open()
        self.assertEqual(store.schema_version(), SCHEMA_VERSION)
        self.assertEqual(SCHEMA_VERSION, 3)
        store.close()
        db = sqlite3.connect(self.path)
        self.assertEqual(db.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        self.assertEqual(db.execute("SELECT version FROM schema_version").fetchall(), [(3,)])
        db.close()

    def test_migrates_version_1(self) -> None:
        """A version 1 file (no trackers column) opens migrated, its torrents
        kept with trackers None."""
        db = sqlite3.connect(self.path)
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version VALUES (1)")
        for statement in MIGRATIONS[0].split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(
            "INSERT INTO torrents (info_hash, source, name, save_path, priorities, labels,"
            " wanted, added_at, position) VALUES (?, ?, 'x', '/d', '[]', '[]', 'active', 1, 0)",
            (H1, "magnet:?xt=urn:btih:" + H1),
        )
        db.commit()
        db.close()
        store = self.open()
        self.assertEqual(store.schema_version(), 3)
        record = store.get(H1)
        assert record is not None
        self.assertIsNone(record.trackers)
        new = store.update(H1, trackers=[["http://a/announce"], ["udp://b:1"]])
        self.assertEqual(new.trackers, (("http://a/announce",), ("udp://b:1",)))

    def test_reopen_keeps_data(self) -> None:
        """Closing and reopening keeps every torrent and the version."""
        store = self.open()
        self.add(store)
        store.close()
        again = self.open()
        self.assertEqual([r.info_hash for r in again.torrents()], [H1])
        self.assertEqual(again.schema_version(), SCHEMA_VERSION)

    def test_newer_version_refused(self) -> None:
        """A file from a newer schema version raises StateStoreError and is left alone."""
        self.open().close()
        db = sqlite3.connect(self.path)
        db.execute("UPDATE schema_version SET version = 99")
        db.commit()
        db.close()
        with self.assertRaises(StateStoreError) as cm:
            StateStore(self.path)
        self.assertIn("99", str(cm.exception))
        db = sqlite3.connect(self.path)
        self.assertEqual(db.execute("SELECT version FROM schema_version").fetchall(), [(99,)])
        db.close()

    def test_corrupt_file(self) -> None:
        """A file that is not a database raises StateStoreError."""
        with open(self.path, "wb") as f:
            f.write(b"this is not an SQLite database, just some bytes" * 100)
        self.assertRaises(StateStoreError, StateStore, self.path)

    def test_truncated_database(self) -> None:
        """A database cut short raises StateStoreError, not sqlite3's errors."""
        store = self.open()
        for i in range(50):
            self.add(store, hashlib.sha1(b"%d" % i).hexdigest(), name="n" * 500)
        store.close()
        with open(self.path, "r+b") as f:
            f.seek(1024)
            f.write(b"\xff" * 8192)
        try:
            bad = StateStore(self.path)
        except StateStoreError:
            return
        self.addCleanup(bad.close)
        self.assertRaises(StateStoreError, bad.torrents)

    def test_foreign_database(self) -> None:
        """Another program's SQLite file raises StateStoreError and is left as it was."""
        db = sqlite3.connect(self.path)
        db.execute("CREATE TABLE torrents (x)")
        db.commit()
        db.close()
        self.assertRaises(StateStoreError, StateStore, self.path)
        db = sqlite3.connect(self.path)
        self.addCleanup(db.close)
        tables = db.execute("SELECT name FROM sqlite_master ORDER BY name").fetchall()
        self.assertEqual(tables, [("torrents",)])

    def test_unopenable_path(self) -> None:
        """A path in a missing directory raises StateStoreError."""
        self.assertRaises(StateStoreError, StateStore, os.path.join(self.path, "no", "x.db"))

    def test_closed_store(self) -> None:
        """Using a closed store raises StateStoreError."""
        store = self.open()
        store.close()
        self.assertRaises(StateStoreError, store.torrents)
        self.assertRaises(StateStoreError, self.add, store)


class TorrentTests(StoreCase):
    """Adding, reading, changing and removing torrents."""

    def test_round_trip_every_field(self) -> None:
        """Every field added comes back the same, after a reopen too."""
        store = self.open()
        added = self.add(
            store, H1.upper(), name="Ubuntu ISO", save_path="/srv/dl", added_at=1700000000.5,
            priorities=[1, 0, 7], labels=["linux", "iso"], upload_limit=1000,
            download_limit=2000, wanted="paused",
        )
        expected = TorrentRecord(
            info_hash=H1, source=TORRENT, metainfo=TORRENT, name="Ubuntu ISO",
            save_path="/srv/dl", priorities=(1, 0, 7), labels=("linux", "iso"),
            upload_limit=1000, download_limit=2000, wanted="paused",
            added_at=1700000000.5, completed_at=None, position=0, seq=1,
        )
        self.assertEqual(added, expected)
        self.assertEqual(store.get(H1), expected)
        store.close()
        self.assertEqual(self.open().get(H1), expected)

    def test_seq_never_reused(self) -> None:
        """seq numbers torrents 1, 2, 3... and a removed torrent's is not
        given again (AUTOINCREMENT)."""
        store = self.open()
        self.assertEqual(self.add(store, H1).seq, 1)
        self.assertEqual(self.add(store, H2).seq, 2)
        store.remove_torrent(H2)
        self.assertEqual(self.add(store, H2).seq, 3)

    def test_categories_and_tags(self) -> None:
        """Categories with save paths; a torrent's category; removing one
        clears it from torrents.  Tags apart from torrents; removing one
        takes it off every torrent's labels too."""
        store = self.open()
        store.set_category("tv", "/srv/tv")
        store.set_category("films", "")
        store.set_category("tv", "/srv/shows")
        self.assertEqual(store.categories(), {"films": "", "tv": "/srv/shows"})
        self.add(store, H1, labels=["hd", "new"], category="tv")
        self.assertEqual(store.get(H1).category, "tv")  # type: ignore[union-attr]
        store.remove_categories(["tv"])
        self.assertEqual(store.categories(), {"films": ""})
        self.assertIsNone(store.get(H1).category)  # type: ignore[union-attr]
        self.assertEqual(store.update(H1, category="films").category, "films")
        store.add_tags(["hd", "old"])
        store.add_tags(["hd"])
        self.assertEqual(store.tags(), ["hd", "old"])
        store.remove_tags(["hd"])
        self.assertEqual(store.tags(), ["old"])
        self.assertEqual(store.get(H1).labels, ("new",))  # type: ignore[union-attr]
        self.assertRaises(StateStoreError, store.set_category, "", "/x")
        self.assertRaises(StateStoreError, store.add_tags, [""])
        self.assertRaises(StateStoreError, store.update, H1, category="")

    def test_magnet_then_metainfo(self) -> None:
        """A magnet is stored as text with no metainfo until set_metainfo."""
        store = self.open()
        record = self.add(store, H2, source=MAGNET)
        self.assertEqual((record.source, record.metainfo), (MAGNET, None))
        self.assertEqual(record.upload_limit, None)
        self.assertRaises(StateStoreError, store.set_metainfo, H2, b"")
        store.set_metainfo(H2, TORRENT)
        fetched = store.get(H2)
        assert fetched is not None
        self.assertEqual((fetched.source, fetched.metainfo), (MAGNET, TORRENT))

    def test_v2_info_hash(self) -> None:
        """A 64-digit (v2) info hash is accepted."""
        store = self.open()
        self.assertEqual(self.add(store, H3).info_hash, H3)

    def test_duplicate_add(self) -> None:
        """A second add of one info hash raises DuplicateTorrentError and changes nothing."""
        store = self.open()
        self.add(store, name="first")
        with self.assertRaises(DuplicateTorrentError) as cm:
            self.add(store, H1.upper(), name="second")
        self.assertEqual(cm.exception.info_hash, H1)
        self.assertEqual([r.name for r in store.torrents()], ["first"])

    def test_remove(self) -> None:
        """A removed torrent is gone; removing it again raises UnknownTorrentError."""
        store = self.open()
        self.add(store, H1)
        self.add(store, H2)
        store.remove_torrent(H1)
        self.assertIsNone(store.get(H1))
        self.assertEqual([r.info_hash for r in store.torrents()], [H2])
        self.assertRaises(UnknownTorrentError, store.remove_torrent, H1)
        self.add(store, H1)
        self.assertEqual([r.info_hash for r in store.torrents()], [H2, H1])

    def test_order_and_position(self) -> None:
        """torrents() is in added order; positions count up from the queue's end."""
        store = self.open()
        hashes = [hashlib.sha1(b"%d" % i).hexdigest() for i in range(5)]
        for i, h in enumerate(hashes):
            self.add(store, h, added_at=1000.0 - i)
        self.assertEqual([r.info_hash for r in store.torrents()], hashes)
        self.assertEqual([r.position for r in store.torrents()], [0, 1, 2, 3, 4])
        store.update(hashes[4], position=-1)
        self.assertEqual(store.get(hashes[4]).position, -1)  # type: ignore[union-attr]
        self.assertEqual([r.info_hash for r in store.torrents()], hashes)

    def test_update(self) -> None:
        """update changes the named mutable fields and returns the new record."""
        store = self.open()
        self.add(store)
        new = store.update(
            H1, name="y", save_path="/b", priorities=[2], labels=["a"], upload_limit=5,
            download_limit=None, wanted="stopped",
        )
        self.assertEqual(
            (new.name, new.save_path, new.priorities, new.labels, new.upload_limit, new.wanted),
            ("y", "/b", (2,), ("a",), 5, "stopped"),
        )
        self.assertEqual(store.get(H1), new)
        self.assertEqual(store.update(H1), new)

    def test_update_validation(self) -> None:
        """Bad fields or values raise StateStoreError and change nothing at all."""
        store = self.open()
        before = self.add(store)
        bad: list[dict[str, Any]] = [
            {"wanted": "running"}, {"upload_limit": 0}, {"download_limit": -1},
            {"upload_limit": 1.5}, {"priorities": [1, -1]}, {"priorities": "12"},
            {"priorities": [True]}, {"labels": "abc"}, {"labels": [1]}, {"name": None},
            {"info_hash": H2}, {"added_at": 5.0}, {"source": "x"}, {"position": "1"},
            {"name": "ok", "wanted": "bad"}, {"trackers": "http://a"},
            {"trackers": ["http://a"]}, {"trackers": [[1]]},
        ]
        for changes in bad:
            self.assertRaises(StateStoreError, store.update, H1, **changes)
        self.assertEqual(store.get(H1), before)
        self.assertRaises(UnknownTorrentError, store.update, H2, name="z")

    def test_add_validation(self) -> None:
        """Bad info hashes, sources and times are refused."""
        store = self.open()
        self.assertRaises(StateStoreError, self.add, store, "xyz")
        self.assertRaises(StateStoreError, self.add, store, "g" * 40)
        self.assertRaises(StateStoreError, self.add, store, source=b"")
        self.assertRaises(StateStoreError, self.add, store, source=None)
        self.assertRaises(StateStoreError, self.add, store, added_at="now")
        self.assertRaises(StateStoreError, self.add, store, wanted="x")
        self.assertEqual(store.torrents(), [])

    def test_mark_completed(self) -> None:
        """mark_completed records the time given; None clears it."""
        store = self.open()
        self.add(store)
        self.assertEqual(store.mark_completed(H1, 1234.0).completed_at, 1234.0)
        self.assertEqual(store.get(H1).completed_at, 1234.0)  # type: ignore[union-attr]
        self.assertIsNone(store.mark_completed(H1, None).completed_at)
        self.assertRaises(UnknownTorrentError, store.mark_completed, H2, 1.0)
        self.assertRaises(StateStoreError, store.mark_completed, H1, "soon")
        self.assertRaises(UnknownTorrentError, store.set_metainfo, H2, TORRENT)


class SettingsTests(StoreCase):
    """Settings as typed JSON values."""

    def test_round_trip(self) -> None:
        """Settings of every JSON type come back, after a reopen too."""
        store = self.open()
        values: dict[str, Any] = {
            "port": 6881, "dht": True, "ratio": 1.5, "name": "x", "list": [1, "a"],
            "map": {"a": None},
        }
        for k, v in values.items():
            store.set_setting(k, v)
        store.close()
        again = self.open()
        self.assertEqual(again.settings(), values)
        self.assertEqual(again.get_setting("port", 0), 6881)
        self.assertEqual(again.get_setting("dht", False), True)
        self.assertEqual(again.get_setting("map", None), {"a": None})
        self.assertEqual(again.get_setting("missing", 42), 42)

    def test_typed_get(self) -> None:
        """A stored value of the wrong type raises; an int reads as a float."""
        store = self.open()
        store.set_setting("port", "6881")
        self.assertRaises(StateStoreError, store.get_setting, "port", 0)
        self.assertEqual(store.get_setting("port", None, kind=str), "6881")
        store.set_setting("rate", 3)
        self.assertEqual(store.get_setting("rate", 0.0), 3.0)
        store.set_setting("flag", 1)
        self.assertRaises(StateStoreError, store.get_setting, "flag", False)

    def test_replace_delete_and_bad_values(self) -> None:
        """Setting twice replaces; delete forgets; non-JSON values are refused."""
        store = self.open()
        store.set_setting("a", 1)
        store.set_setting("a", 2)
        self.assertEqual(store.get_setting("a", 0), 2)
        store.delete_setting("a")
        store.delete_setting("a")
        self.assertEqual(store.settings(), {})
        self.assertRaises(StateStoreError, store.set_setting, "b", object())
        self.assertRaises(StateStoreError, store.set_setting, "b", float("nan"))
        self.assertRaises(StateStoreError, store.set_setting, "", 1)


class CredentialTests(StoreCase):
    """The password and the API tokens."""

    def test_password(self) -> None:
        """The right name and password verify; anything else does not."""
        store = self.open()
        self.assertIsNone(store.username())
        self.assertFalse(store.verify_password("admin", "secret"))
        store.set_password("admin", "correct horse")
        self.assertEqual(store.username(), "admin")
        self.assertTrue(store.verify_password("admin", "correct horse"))
        self.assertFalse(store.verify_password("admin", "correct horsE"))
        self.assertFalse(store.verify_password("root", "correct horse"))
        self.assertFalse(store.verify_password("admin", ""))
        store.set_password("admin", "new")
        self.assertFalse(store.verify_password("admin", "correct horse"))
        self.assertTrue(self.open().verify_password("admin", "new"))

    def test_password_stored_hashed(self) -> None:
        """The table holds a salted scrypt hash and its parameters, not the password."""
        store = self.open()
        store.set_password("admin", "hunter22")
        db = sqlite3.connect(self.path)
        self.addCleanup(db.close)
        row = db.execute("SELECT algorithm, parameters, salt, digest FROM credentials").fetchone()
        self.assertEqual(row[0], "scrypt")
        self.assertIn('"n": 16384', row[1])
        self.assertEqual(len(row[2]), 16)
        self.assertNotIn("hunter22", repr(row))
        with open(self.path, "rb") as f, open(self.path + "-wal", "rb") as w:
            self.assertNotIn(b"hunter22", f.read() + w.read())

    def test_tokens(self) -> None:
        """A created token checks; another string or a revoked token does not."""
        store = self.open()
        token = store.create_token("cli", 50.0)
        other = store.create_token("phone", 60.0)
        self.assertNotEqual(token, other)
        self.assertTrue(store.check_token(token))
        self.assertFalse(store.check_token(token[:-1]))
        self.assertFalse(store.check_token(""))
        self.assertEqual(
            [(t.label, t.created_at) for t in store.tokens()], [("cli", 50.0), ("phone", 60.0)]
        )
        self.assertTrue(store.revoke_token(store.tokens()[0].token_id))
        self.assertFalse(store.revoke_token(12345))
        self.assertFalse(store.check_token(token))
        self.assertTrue(self.open().check_token(other))

    def test_tokens_stored_hashed(self) -> None:
        """Only each token's SHA-256 is in the table; its plaintext is nowhere in the file."""
        store = self.open()
        token = store.create_token("cli", 1.0)
        db = sqlite3.connect(self.path)
        self.addCleanup(db.close)
        rows = db.execute("SELECT * FROM api_tokens").fetchall()
        self.assertEqual(rows[0][1], hashlib.sha256(token.encode()).digest())
        self.assertNotIn(token, repr(rows))
        with open(self.path, "rb") as f, open(self.path + "-wal", "rb") as w:
            self.assertNotIn(token.encode(), f.read() + w.read())


CHILD = """
import hashlib, sys
from txbittorrent.daemon.store import StateStore
store = StateStore(sys.argv[1])
for i in range(100000):
    h = hashlib.sha1(b"%d" % i).hexdigest()
    store.add_torrent(h, b"torrent %d" % i, name="t%d" % i, save_path="/d",
                      added_at=float(i), priorities=[1] * (i % 7), labels=["l%d" % i])
    sys.stdout.write("%d\\n" % i)
    sys.stdout.flush()
"""


class CrashTests(StoreCase):
    """SIGKILL in the middle of a stream of adds."""

    def test_sigkill_leaves_a_consistent_prefix(self) -> None:
        """After SIGKILL at a random moment, the file holds exactly the first k adds
        (k at least every acknowledged add), each whole, none twice."""
        rng = random.Random()
        deadline = time.monotonic() + 9.0
        for attempt in range(5):
            path = os.path.join(os.path.dirname(self.path), f"crash{attempt}.sqlite")
            acknowledged = kill_mid_stream(self, CHILD, path, rng, deadline, 40)
            store = self.open(path)
            records = store.torrents()
            self.assertGreaterEqual(len(records), acknowledged)
            for i, r in enumerate(records):
                self.assertEqual(r.info_hash, hashlib.sha1(b"%d" % i).hexdigest())
                self.assertEqual(
                    (r.source, r.name, r.priorities, r.labels, r.added_at, r.position),
                    (b"torrent %d" % i, "t%d" % i, (1,) * (i % 7), ("l%d" % i,), float(i), i),
                )
            self.assertLess(time.monotonic(), deadline + 1.0)
