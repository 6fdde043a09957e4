"""Tests for txbittorrent.testing: the fakes and builders shipped for tests."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from typing import Any

from twisted.internet.task import Clock
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.trial.unittest import FailTest, SynchronousTestCase

from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.layout import Layout
from txbittorrent.core.wire.events import (
    BlockReceived,
    PeerBitfield,
    PeerInterested,
    PeerUnchoked,
)
from txbittorrent.testing import (
    DEFAULT_LAYOUT,
    FakePeerHost,
    FakePeerLink,
    FakeReactor,
    ManualPool,
    SyncPool,
    make_files,
    make_metainfo,
    make_torrent,
    nonzero_bytes,
    same_files,
    wait_until,
)

INFO_HASH = b"\x44" * 20
OUR_ID = b"-TX0001-ourselves000"
THEIR_ID = b"-TX0001-theirs000000"


class ImportTests(SynchronousTestCase):
    """txbittorrent.testing is safe to import from any test suite."""

    def test_no_test_dependencies_or_reactor(self) -> None:
        """Importing it loads neither hypothesis nor libtorrent nor the global reactor."""
        code = ("import json, sys, txbittorrent.testing; "
                "print(json.dumps(sorted(m for m in ('hypothesis', 'libtorrent', "
                "'twisted.internet.reactor') if m in sys.modules)))")
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                             text=True, timeout=60, check=True).stdout
        self.assertEqual(json.loads(out), [])


class FakeReactorTests(SynchronousTestCase):
    """FakeReactor: a Clock with thread calls, triggers and a thread pool."""

    def test_call_from_thread_at_once(self) -> None:
        """By default callFromThread runs the call before returning."""
        reactor = FakeReactor()
        seen: list[Any] = []
        reactor.callFromThread(lambda *a, **k: seen.append((a, k)), 1, x=2)
        self.assertEqual(seen, [((1,), {"x": 2})])
        self.assertEqual(reactor.thread_calls, [])

    def test_held_thread_calls(self) -> None:
        """With hold_thread_calls, calls wait for run_thread_calls, which runs
        them in order, including calls they make."""
        reactor = FakeReactor(hold_thread_calls=True)
        seen: list[int] = []

        def first() -> None:
            seen.append(1)
            reactor.callFromThread(seen.append, 3)

        reactor.callFromThread(first)
        reactor.callFromThread(seen.append, 2)
        self.assertEqual(seen, [])
        self.assertEqual(reactor.run_thread_calls(), 3)
        self.assertEqual(seen, [1, 2, 3])

    def test_clock(self) -> None:
        """It is a Clock: callLater runs on advance."""
        reactor = FakeReactor()
        seen: list[str] = []
        reactor.callLater(5, seen.append, "late")
        reactor.advance(4)
        self.assertEqual(seen, [])
        reactor.advance(1)
        self.assertEqual((seen, reactor.seconds()), (["late"], 5))

    def test_triggers(self) -> None:
        """Triggers get distinct ids, can be removed, and fire_system_event
        calls those of one phase and event in order, returning their results."""
        reactor = FakeReactor()
        a = reactor.addSystemEventTrigger("before", "shutdown", lambda: "a")
        reactor.addSystemEventTrigger("during", "shutdown", lambda: "during")
        b = reactor.addSystemEventTrigger("before", "shutdown", lambda x: x, "b")
        gone = reactor.addSystemEventTrigger("before", "shutdown", lambda: "gone")
        self.assertEqual(len({a, b, gone}), 3)
        reactor.removeSystemEventTrigger(gone)
        self.assertEqual(reactor.fire_system_event("shutdown"), ["a", "b"])
        self.assertEqual(reactor.fire_system_event("shutdown", "during"), ["during"])
        self.assertEqual(len(reactor.triggers), 3)

    def test_thread_pool(self) -> None:
        """getThreadPool gives the pool passed in, else one SyncPool; callInThread uses it."""
        self.assertIsInstance(FakeReactor().getThreadPool(), SyncPool)
        reactor = FakeReactor()
        self.assertIs(reactor.getThreadPool(), reactor.getThreadPool())
        pool = ManualPool()
        reactor = FakeReactor(pool)
        reactor.callInThread(int, "1")
        self.assertIs(reactor.getThreadPool(), pool)
        self.assertEqual(len(pool.queue), 1)

    def test_defer_to_thread_pool(self) -> None:
        """deferToThreadPool over a FakeReactor and a SyncPool fires at once."""
        reactor = FakeReactor()
        d = deferToThreadPool(reactor, reactor.getThreadPool(), int, "12")
        self.assertEqual(self.successResultOf(d), 12)

    def test_running_and_stop(self) -> None:
        """callWhenRunning calls at once; stop() is only counted."""
        reactor = FakeReactor()
        seen: list[int] = []
        reactor.callWhenRunning(seen.append, 1)
        reactor.stop()
        reactor.stop()
        self.assertEqual((seen, reactor.stops), ([1], 2))


class SyncPoolTests(SynchronousTestCase):
    """SyncPool: every job runs inside the call that submits it."""

    def test_result_and_failure(self) -> None:
        """on_result gets (True, result) or (False, Failure), at once."""
        pool = SyncPool()
        results: list[tuple[bool, Any]] = []
        pool.callInThreadWithCallback(lambda ok, r: results.append((ok, r)), divmod, 7, 2)
        pool.callInThreadWithCallback(lambda ok, r: results.append((ok, r)), divmod, 7, 0)
        self.assertEqual(results[0], (True, (3, 1)))
        self.assertFalse(results[1][0])
        self.assertIsInstance(results[1][1], Failure)
        results[1][1].trap(ZeroDivisionError)

    def test_errors_logged(self) -> None:
        """A failing job without on_result, or a failing on_result, is logged,
        not raised to the caller."""
        pool = SyncPool()
        pool.callInThread(divmod, 1, 0)

        def on_result(ok: bool, result: object) -> None:
            raise KeyError("on_result")

        pool.callInThreadWithCallback(on_result, int, "1")
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    def test_thread_pool_surface(self) -> None:
        """It takes ThreadPool's arguments and tracks start/stop; work after stop is dropped."""
        pool = SyncPool(0, 3, name="disk")
        self.assertEqual((pool.min, pool.max, pool.name), (0, 3, "disk"))
        self.assertEqual((pool.started, pool.joined), (False, False))
        pool.start()
        self.assertTrue(pool.started)
        pool.stop()
        self.assertEqual((pool.started, pool.joined), (False, True))
        seen: list[int] = []
        pool.callInThread(seen.append, 1)
        self.assertEqual(seen, [])


class ManualPoolTests(SynchronousTestCase):
    """ManualPool: jobs wait in ``queue`` for the test."""

    def test_held_until_run(self) -> None:
        """Nothing runs until run_one, which takes the oldest job (or the one at an index)."""
        pool = ManualPool()
        seen: list[str] = []
        for name in "abc":
            pool.callInThread(seen.append, name)
        self.assertEqual((seen, len(pool.queue)), ([], 3))
        pool.run_one()
        pool.run_one(1)
        self.assertEqual(seen, ["a", "c"])
        self.assertEqual(pool.queue[0].args, ("b",))

    def test_run_all(self) -> None:
        """run_all runs the queue, including jobs submitted by jobs, and counts them."""
        pool = ManualPool()
        seen: list[int] = []
        pool.callInThread(lambda: pool.callInThread(seen.append, 2))
        pool.callInThread(seen.append, 1)
        self.assertEqual(pool.run_all(), 3)
        self.assertEqual((seen, pool.queue), ([1, 2], []))

    def test_results_through_deferred(self) -> None:
        """deferToThreadPool's Deferred fires when the test runs the job."""
        pool = ManualPool()
        d = deferToThreadPool(FakeReactor(), pool, int, "x")
        self.assertNoResult(d)
        pool.run_one()
        self.failureResultOf(d, ValueError)

    def test_stop_finishes_queue(self) -> None:
        """stop() runs what is queued, then the pool is joined and drops new work."""
        pool = ManualPool()
        seen: list[int] = []
        pool.callInThread(seen.append, 1)
        pool.stop()
        pool.callInThread(seen.append, 2)
        self.assertEqual((seen, pool.queue, pool.joined), ([1], [], True))


class FakePeerHostTests(SynchronousTestCase):
    """FakePeerHost records what a connection tells it."""

    def test_records_calls(self) -> None:
        """Each call is recorded in order; names() and events() summarise them."""
        host = FakePeerHost(Clock(), INFO_HASH, OUR_ID)
        connected: list[object] = []
        host.on_connected = connected.append
        link: Any = object()
        self.assertTrue(host.peer_connected(link))
        host.peer_event(link, "e1")
        host.peer_events_done(link)
        host.peer_lost(link, "gone")
        host.connect_failed(("10.0.0.1", 1), "refused")
        self.assertEqual(host.names(), ["peer_connected", "peer_event", "peer_events_done",
                                        "peer_lost", "connect_failed"])
        self.assertEqual(host.events(), ["e1"])
        self.assertEqual(connected, [link])

    def test_refusing(self) -> None:
        """welcome and is_accepting say what peer_connected and accepting answer."""
        host = FakePeerHost(Clock(), INFO_HASH, OUR_ID)
        host.welcome = False
        host.is_accepting = False
        self.assertFalse(host.peer_connected(object()))  # type: ignore[arg-type]
        self.assertFalse(host.accepting())

    def test_sessions(self) -> None:
        """new_peer_session makes sessions for the host's torrent and keeps them."""
        layout = Layout([40], 16)
        host = FakePeerHost(Clock(), INFO_HASH, OUR_ID, layout=layout)
        session = host.new_peer_session(outgoing=True)
        self.assertEqual(host.sessions, [session])
        self.assertEqual(FakePeerHost(Clock(), INFO_HASH, OUR_ID).layout, DEFAULT_LAYOUT)
        self.assertEqual((session.info_hash, session.our_peer_id, session.piece_count,
                          session.outgoing), (INFO_HASH, OUR_ID, 3, True))


class FakePeerLinkTests(SynchronousTestCase):
    """FakePeerLink joins a host to a real remote PeerSession in memory."""

    def setUp(self) -> None:
        self.layout = Layout([40], 16)
        self.host = FakePeerHost(Clock(), INFO_HASH, OUR_ID, layout=self.layout)
        self.link = FakePeerLink(self.host, self.layout, ("10.0.0.1", 6881), True, THEIR_ID)

    def test_handshake(self) -> None:
        """handshake() tells the host, and returns what it answered."""
        self.assertTrue(self.link.handshake())
        self.assertEqual(self.host.calls[0], ("peer_connected", self.link))
        self.assertEqual(self.link.session.peer_id, THEIR_ID)
        refusing = FakePeerHost(Clock(), INFO_HASH, OUR_ID, layout=self.layout)
        refusing.welcome = False
        link = FakePeerLink(refusing, self.layout, ("10.0.0.2", 6881), False, THEIR_ID)
        self.assertFalse(link.handshake())

    def test_remote_to_host(self) -> None:
        """What the remote says reaches the host as events, then peer_events_done."""
        self.link.handshake()
        self.link.has(Bitfield.full(3))
        self.link.want()
        kinds = [type(e) for e in self.host.events()]
        self.assertIn(PeerBitfield, kinds)
        self.assertEqual(kinds[-1], PeerInterested)
        self.assertEqual(self.host.names()[-1], "peer_events_done")

    def test_host_to_remote(self) -> None:
        """What the host sends is decoded by the remote; held while it is not reading."""
        self.link.handshake()
        self.link.send(self.link.session.send_bitfield(Bitfield(3)))
        self.link.reading = False
        self.link.send(self.link.session.unchoke())
        self.assertEqual(self.link.of(PeerUnchoked), [])
        self.assertEqual(self.link.pending_write_bytes, 5)
        self.link.drain()
        self.assertEqual(len(self.link.of(PeerUnchoked)), 1)
        self.assertEqual((self.link.pending_write_bytes, self.link.sends), (0, 2))

    def test_serve(self) -> None:
        """serve() answers the host's requests with blocks of the data, or zeros."""
        data = nonzero_bytes(40)
        self.link.handshake()
        self.link.send(self.link.session.send_bitfield(Bitfield(3)))
        self.link.has(Bitfield.full(3))
        self.link.unchoke_us()
        self.link.send(self.link.session.request(1, 0, 16) + self.link.session.request(2, 0, 8))
        self.assertEqual(self.link.asked, [(1, 0, 16), (2, 0, 8)])
        self.assertEqual(self.link.serve(data, corrupt=[2]), 2)
        blocks = [e for e in self.host.events() if isinstance(e, BlockReceived)]
        self.assertEqual([b.block for b in blocks], [data[16:32], bytes(8)])
        self.assertEqual(self.link.asked, [])

    def test_close(self) -> None:
        """close() reports peer_lost at once, or at lost() without sync_close."""
        self.link.handshake()
        self.link.close("bye")
        self.assertEqual(self.host.calls[-1], ("peer_lost", "bye"))
        other = FakePeerLink(self.host, self.layout, ("10.0.0.3", 6881), True, THEIR_ID)
        other.handshake()
        other.sync_close = False
        other.close()
        self.assertEqual(self.host.names()[-1], "peer_connected")
        other.lost()
        self.assertEqual(self.host.calls[-1], ("peer_lost", "closed"))


class MakeTorrentTests(SynchronousTestCase):
    """make_torrent and make_metainfo build torrents from bytes."""

    def test_single_file(self) -> None:
        """Bytes make a single-file torrent with the true hash of every piece."""
        data = b"0123456789" * 4
        meta = make_metainfo(data, 16, name="one.bin")
        self.assertEqual((meta.name, meta.multi_file, meta.total_length), ("one.bin", False, 40))
        self.assertEqual([meta.piece_hash(i) for i in range(3)],
                         [hashlib.sha1(data[i : i + 16]).digest() for i in (0, 16, 32)])

    def test_multi_file(self) -> None:
        """A mapping makes a multi-file torrent; an int is that many zeros; attrs mark pads."""
        meta = make_metainfo({"a.bin": b"x" * 10, ".pad/6": 6, "d/b.bin": 20}, 16,
                             attrs={".pad/6": b"p"})
        self.assertEqual([(f.path, f.length, f.pad) for f in meta.files],
                         [(("t", "a.bin"), 10, False), (("t", ".pad", "6"), 6, True),
                          (("t", "d", "b.bin"), 20, False)])
        stream = b"x" * 10 + bytes(26)
        self.assertEqual(meta.piece_hash(1), hashlib.sha1(stream[16:32]).digest())

    def test_top_level(self) -> None:
        """announce and private are written when asked for."""
        plain = make_metainfo(5, 16)
        self.assertEqual((plain.trackers, plain.private), ((), False))
        meta = make_metainfo(5, 16, announce="http://t.example/announce", private=True)
        self.assertEqual((meta.trackers, meta.private), ((("http://t.example/announce",),), True))
        self.assertEqual(make_torrent(b"abc", 16), make_torrent(b"abc", 16))

    def test_bad_piece_length(self) -> None:
        """A piece length below one is refused."""
        self.assertRaises(ValueError, make_torrent, b"abc", 0)


class FilesTests(SynchronousTestCase):
    """nonzero_bytes, make_files and same_files."""

    def test_nonzero_bytes(self) -> None:
        """The bytes have no zero, are the same for a seed and differ between seeds."""
        data = nonzero_bytes(1000)
        self.assertNotIn(0, data)
        self.assertEqual(data, nonzero_bytes(1000))
        self.assertNotEqual(data, nonzero_bytes(1000, seed=2))

    def test_make_files(self) -> None:
        """Sizes are filled from the seed, bytes written as given, directories made."""
        root = self.mktemp()
        files = make_files(root, {"a.bin": 100, "d/e/b.bin": b"hello"}, seed=3)
        self.assertEqual(files["d/e/b.bin"], b"hello")
        self.assertEqual(len(files["a.bin"]), 100)
        with open(os.path.join(root, "d", "e", "b.bin"), "rb") as f:
            self.assertEqual(f.read(), b"hello")
        self.assertEqual(make_files(self.mktemp(), {"a.bin": 100}, seed=3)["a.bin"], files["a.bin"])

    def test_same_files(self) -> None:
        """same_files names the files that differ or are missing."""
        a, b = self.mktemp(), self.mktemp()
        make_files(a, {"x": b"1", "y/z": b"2", "w": b"3"})
        make_files(b, {"x": b"1", "y/z": b"changed"})
        self.assertEqual(same_files(a, b, ["x", "y/z", "w"]), ["y/z", "w"])
        self.assertEqual(same_files(a, b, ["x"]), [])


class WaitUntilTests(SynchronousTestCase):
    """wait_until polls a predicate on a clock."""

    def test_fires_when_true(self) -> None:
        """The Deferred fires at the first poll that finds the predicate true."""
        clock = Clock()
        state = {"ready": False}
        d = wait_until(lambda: state["ready"], 10, "readiness", clock=clock, interval=1)
        clock.advance(0)
        clock.advance(1)
        self.assertNoResult(d)
        state["ready"] = True
        clock.advance(1)
        self.successResultOf(d)

    def test_times_out(self) -> None:
        """Past the timeout it fails with FailTest naming what it waited for."""
        clock = Clock()
        d = wait_until(lambda: False, 2, "the peer", lambda: "no luck", clock=clock, interval=0.5)
        clock.pump([0] + [0.5] * 4)
        failure = self.failureResultOf(d, FailTest)
        self.assertEqual(str(failure.value), "timed out after 2 s waiting for the peer: no luck")

    def test_predicate_raises(self) -> None:
        """An exception from the predicate ends the wait with it."""
        clock = Clock()
        d = wait_until(lambda: 1 / 0, 2, "nothing", clock=clock)
        clock.advance(0)
        self.failureResultOf(d, ZeroDivisionError)
