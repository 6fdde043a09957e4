"""Tests for the registry of torrents of txbittorrent.session.Session: add,
adopt, get, torrents, remove and the TorrentAdded/TorrentRemoved events.

Torrents are constructed (and closed) but never started; the session runs on
a ``FakeReactor`` and never listens, except where ``Session.udp`` is checked
around ``start``/``stop`` on a ``MemoryReactorClock``.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.magnet import Magnet
from txbittorrent.core.metainfo import parse
from txbittorrent.errors import LocalProtocolError
from txbittorrent.events import TorrentAdded, TorrentEvent, TorrentRemoved
from txbittorrent.session import Session
from txbittorrent.state import TorrentState
from txbittorrent.testing import FakeReactor, make_torrent
from txbittorrent.torrent import Torrent

RAW = make_torrent(b"x" * 40, 16, name="film.mkv", announce="http://t.test/announce")
OTHER = make_torrent(b"y" * 40, 16, name="other")
MAGNET_HASH = bytes(range(20))
MAGNET = Magnet(MAGNET_HASH, display_name="Big Buck Bunny", trackers=("http://t.test/a",))


class SlowClose(Torrent):
    """A Torrent whose close() fires when the test says."""

    closing: Deferred[None]

    def close(self) -> Deferred[None]:
        self.closing = Deferred()
        return self.closing


class RegistryTests(SynchronousTestCase):
    """Session.add, adopt, get, torrents and remove."""

    def setUp(self) -> None:
        self.basedir = self.mktemp()
        os.makedirs(self.basedir)
        self.reactor = FakeReactor()
        self.session = Session(self.reactor)
        self.events: list[TorrentEvent] = []
        self.session.events.subscribe(self.events.append, kinds=(TorrentAdded, TorrentRemoved))

    def test_add(self) -> None:
        """add() returns a stopped Torrent of that session, registered under its info hash."""
        torrent = self.session.add(RAW, self.basedir)
        self.assertIsInstance(torrent, Torrent)
        self.assertEqual(torrent.info_hash, parse(RAW).info_hash)
        self.assertIs(torrent.events, self.session.events)
        self.assertEqual(torrent.basedir, os.path.abspath(self.basedir))
        self.assertIs(torrent.state, TorrentState.STOPPED)
        self.assertIs(self.session.get(torrent.info_hash), torrent)
        self.assertEqual(self.session.torrents(), [torrent])
        self.assertEqual(os.listdir(self.basedir), [])

    def test_add_options(self) -> None:
        """add() passes the Torrent's keywords on."""
        torrent = self.session.add(RAW, self.basedir, max_peers=3, state="paused")
        self.assertEqual(torrent.config.max_peers, 3)
        self.assertRaises(TypeError, self.session.add, OTHER, self.basedir, bogus=1)
        self.assertIsNone(self.session.get(parse(OTHER).info_hash))

    def test_torrents_in_order(self) -> None:
        """torrents() lists the torrents in the order they were added; get() finds each."""
        first = self.session.add(RAW, self.basedir)
        second = self.session.add(OTHER, self.basedir)
        third = self.session.add(MAGNET.to_uri(), self.basedir)
        self.assertEqual(self.session.torrents(), [first, second, third])
        for torrent in (first, second, third):
            self.assertIs(self.session.get(torrent.info_hash), torrent)
        self.assertIsNone(self.session.get(b"\0" * 20))

    def test_torrents_is_a_copy(self) -> None:
        """Changing the list torrents() returned leaves the registry alone."""
        torrent = self.session.add(RAW, self.basedir)
        self.session.torrents().clear()
        self.assertEqual(self.session.torrents(), [torrent])

    def test_same_info_hash_twice(self) -> None:
        """A second torrent with the same info hash is a LocalProtocolError; the first stays."""
        torrent = self.session.add(RAW, self.basedir)
        self.assertRaises(LocalProtocolError, self.session.add, RAW, self.basedir)
        self.assertRaises(LocalProtocolError, self.session.add, torrent.info_hash.hex(),
                          self.basedir)
        self.assertEqual(self.session.torrents(), [torrent])
        self.assertEqual([type(e) for e in self.events], [TorrentAdded])

    def test_adopt(self) -> None:
        """A Torrent made with session= is registered by adopt(); adopting it again is harmless."""
        torrent = Torrent(RAW, self.basedir, reactor=self.reactor, session=self.session)
        self.assertIsNone(self.session.get(torrent.info_hash))
        self.assertIs(torrent.events, self.session.events)
        self.session.adopt(torrent)
        self.session.adopt(torrent)
        self.assertEqual(self.session.torrents(), [torrent])
        self.assertEqual(len(self.events), 1)

    def test_adopt_another_with_same_hash(self) -> None:
        """Adopting a different Torrent with a registered info hash is a LocalProtocolError."""
        torrent = self.session.add(RAW, self.basedir)
        twin = Torrent(RAW, self.basedir, reactor=self.reactor, session=self.session)
        self.assertRaises(LocalProtocolError, self.session.adopt, twin)
        self.assertIs(self.session.get(torrent.info_hash), torrent)

    def test_added_event(self) -> None:
        """Adding publishes TorrentAdded with the info hash and name, numbered on the bus."""
        torrent = self.session.add(RAW, self.basedir)
        [event] = self.events
        self.assertIsInstance(event, TorrentAdded)
        assert isinstance(event, TorrentAdded)
        self.assertEqual((event.info_hash, event.name), (torrent.info_hash, "film.mkv"))
        self.assertEqual(event.event_id, self.session.events.last_event_id)

    def test_remove(self) -> None:
        """remove() closes the torrent, forgets it and publishes TorrentRemoved."""
        torrent = self.session.add(RAW, self.basedir)
        keep = self.session.add(OTHER, self.basedir)
        self.assertIsNone(self.successResultOf(self.session.remove(torrent.info_hash)))
        self.assertIsNone(self.session.get(torrent.info_hash))
        self.assertEqual(self.session.torrents(), [keep])
        self.failureResultOf(torrent.start(), LocalProtocolError)  # closed
        self.assertEqual([(type(e), e.info_hash) for e in self.events], [
            (TorrentAdded, torrent.info_hash), (TorrentAdded, keep.info_hash),
            (TorrentRemoved, torrent.info_hash),
        ])

    def test_remove_unknown(self) -> None:
        """remove() of a hash the session does not have fails with LocalProtocolError."""
        self.failureResultOf(self.session.remove(b"\1" * 20), LocalProtocolError)
        torrent = self.session.add(RAW, self.basedir)
        self.successResultOf(self.session.remove(torrent.info_hash))
        self.failureResultOf(self.session.remove(torrent.info_hash), LocalProtocolError)
        self.assertEqual([type(e) for e in self.events], [TorrentAdded, TorrentRemoved])

    def test_add_again_after_remove(self) -> None:
        """Once removed, a torrent with the same info hash may be added again."""
        torrent = self.session.add(RAW, self.basedir)
        self.successResultOf(self.session.remove(torrent.info_hash))
        again = self.session.add(RAW, self.basedir)
        self.assertIsNot(again, torrent)
        self.assertEqual(self.session.torrents(), [again])

    def test_remove_waits_for_close(self) -> None:
        """The torrent stays registered until its close() fires; TorrentRemoved comes then."""
        torrent = SlowClose(RAW, self.basedir, reactor=self.reactor, session=self.session)
        self.session.adopt(torrent)
        d = self.session.remove(torrent.info_hash)
        self.assertNoResult(d)
        self.assertIs(self.session.get(torrent.info_hash), torrent)
        self.assertEqual(len(self.events), 1)
        torrent.closing.callback(None)
        self.successResultOf(d)
        self.assertIsNone(self.session.get(torrent.info_hash))
        self.assertIsInstance(self.events[-1], TorrentRemoved)

    def test_remove_when_close_fails(self) -> None:
        """A close() that fails is reported by remove(), and the torrent is forgotten anyway."""
        torrent = SlowClose(RAW, self.basedir, reactor=self.reactor, session=self.session)
        self.session.adopt(torrent)
        d = self.session.remove(torrent.info_hash)
        torrent.closing.errback(OSError("disk gone"))
        self.failureResultOf(d, OSError)
        self.assertEqual(self.session.torrents(), [])
        self.assertIsInstance(self.events[-1], TorrentRemoved)


class MagnetAddTests(SynchronousTestCase):
    """A torrent added from a magnet URI, before its metadata."""

    def setUp(self) -> None:
        self.basedir = self.mktemp()
        os.makedirs(self.basedir)
        self.session = Session(FakeReactor())
        self.events: list[Any] = []
        self.session.events.subscribe(self.events.append, kinds=TorrentAdded)

    def test_from_magnet_uri(self) -> None:
        """Its name is the magnet's dn; no metadata, size 0, stopped."""
        torrent = self.session.add(MAGNET.to_uri(), self.basedir)
        self.assertEqual(torrent.info_hash, MAGNET_HASH)
        self.assertEqual(torrent.name, "Big Buck Bunny")
        self.assertIs(torrent.has_metadata, False)
        self.assertIsNone(torrent.metainfo)
        self.assertEqual(torrent.size, 0)
        self.assertEqual(torrent.state, "stopped")
        self.assertIs(torrent.state, TorrentState.STOPPED)
        self.assertEqual(torrent.magnet, MAGNET)
        self.assertIs(self.session.get(MAGNET_HASH), torrent)
        self.assertEqual(os.listdir(self.basedir), [])

    def test_from_bare_info_hash(self) -> None:
        """A bare info hash makes a torrent named by its hex form."""
        torrent = self.session.add(MAGNET_HASH.hex(), self.basedir)
        self.assertEqual((torrent.name, torrent.has_metadata, torrent.size),
                         (MAGNET_HASH.hex(), False, 0))

    def test_same_hash_as_magnet(self) -> None:
        """A magnet and a bare hash of one torrent cannot both be added."""
        self.session.add(MAGNET, self.basedir)
        self.assertRaises(LocalProtocolError, self.session.add, MAGNET_HASH, self.basedir)

    def test_added_event_name(self) -> None:
        """TorrentAdded for a magnet carries the dn as its name."""
        self.session.add(MAGNET.to_uri(), self.basedir)
        [event] = self.events
        self.assertEqual((event.info_hash, event.name), (MAGNET_HASH, "Big Buck Bunny"))

    def test_added_event_without_metadata(self) -> None:
        """TorrentAdded for a magnet without dn has name None, as eventtypes documents."""
        self.session.add(Magnet(MAGNET_HASH), self.basedir)
        [event] = self.events
        self.assertIsNone(event.name)



class SessionUDPTests(SynchronousTestCase):
    """Session.udp exists only while the session runs."""

    def test_not_started(self) -> None:
        """Before start(), udp and udp_tracker are a LocalProtocolError."""
        session = Session(MemoryReactorClock())
        self.assertRaises(LocalProtocolError, lambda: session.udp)
        self.assertRaises(LocalProtocolError, session.udp_tracker, 2)

    def test_stopped(self) -> None:
        """After stop(), udp is a LocalProtocolError again."""
        reactor = MemoryReactorClock()
        session = Session(reactor, listen_interfaces=("127.0.0.1",))
        self.successResultOf(session.start())
        self.assertEqual(len(reactor.tcpServers), 1)
        self.successResultOf(session.stop())
        self.assertRaises(LocalProtocolError, lambda: session.udp)
        self.assertRaises(LocalProtocolError, session.udp_tracker, 2)

    def test_stopped_before_start(self) -> None:
        """A session stopped without starting has no UDP sockets either."""
        session = Session(MemoryReactorClock())
        self.successResultOf(session.stop())
        self.assertRaises(LocalProtocolError, lambda: session.udp)


class ResumeDirTests(SynchronousTestCase):
    """``SessionConfig.resume_dir`` names each added torrent's resume record."""

    def test_resume_path_from_the_info_hash(self) -> None:
        """A torrent added without resume_path keeps its record in resume_dir
        under its info hash; one given a resume_path keeps that."""
        from txbittorrent.session import SessionConfig

        root = self.mktemp()
        session = Session(FakeReactor(), config=SessionConfig(resume_dir=root))
        raw = make_torrent({"a.bin": b"x" * 40}, 16)
        t = session.add(raw, basedir=root)
        self.assertEqual(t.resume_path, os.path.join(root, parse(raw).info_hash.hex() + ".resume"))
        magnet = session.add("ab" * 20, basedir=root)
        self.assertEqual(magnet.resume_path, os.path.join(root, "ab" * 20 + ".resume"))
        given = session.add("cd" * 20, basedir=root, resume_path="/elsewhere/x.resume")
        self.assertEqual(given.resume_path, "/elsewhere/x.resume")
