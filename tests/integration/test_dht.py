"""The DHT (BEP 5) with libtorrent on 127.0.0.1: peers found through it, both ways.

A small DHT of libtorrent nodes runs on loopback, each session on an explicit
``127.0.0.1:PORT`` (on ``0.0.0.0`` no libtorrent DHT node answers on
loopback), with no bootstrap routers, routing and search IP restrictions off
and a high ``dht_block_ratelimit`` (every node is 127.0.0.1, which
libtorrent would otherwise ban after 50 packets in 10 s).  The nodes are
introduced to each other with ``add_dht_node``.  Our node joins through one
of them (``DHTConfig.bootstrap_nodes``).  No tracker, no ``x.pe``: peers are
found only through the DHT.

* We leech: a libtorrent seeder announces the torrent in the DHT; our
  torrent, made from the bare info hash, finds it with get_peers, fetches
  the metadata (BEP 9) and every byte.
* We seed: our seeder announces (announce_peer with its port); a libtorrent
  leecher given only the info hash finds us through its own DHT lookups and
  completes.
* A restart: our node saves its id and table, and a new node started from
  that file (with no bootstrap router at all) joins through the saved nodes.
* The command line: ``download INFO_HASH --dht-bootstrap 127.0.0.1:PORT``
  finds the libtorrent seeder through the DHT, completes, and keeps the
  node's state in ``DIR/.txbittorrent/dht.state``.

Each test is bounded well under a minute; the seconds each step took and
the lookups' queries are logged (trial's test.log) and printed.
"""

from __future__ import annotations

import json
import os
import socket
import time
import warnings
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.logger import Logger
from twisted.trial.unittest import TestCase

from tests.integration import ltutil
from tests.integration.clibase import TREE, CLITestBase
from tests.integration.temproot import TempRootCase
from txbittorrent import Torrent
from txbittorrent.core.metainfo import parse
from txbittorrent.dht.config import DHTConfig
from txbittorrent.dht.node import DHTNode
from txbittorrent.net.udp import DatagramMux
from txbittorrent.session import SessionConfig
from txbittorrent.storage.create import create_torrent
from txbittorrent.testing import make_files, same_files, wait_until

LOOPBACK = "127.0.0.1"
LT_NODES = 3
"""libtorrent DHT nodes besides the peers."""
DEADLINE = 45.0
POLL = 0.01
SLOW = 256 * 1024
"""Bytes per second our seeder sends libtorrent: about 3 s for the torrent."""
"""Seconds between polls of what is awaited (the figures are this precise)."""

_log = Logger()


def free_port() -> int:
    """A port number free now on 127.0.0.1 (TCP and UDP)."""
    while True:
        with socket.socket() as tcp:
            tcp.bind((LOOPBACK, 0))
            port = tcp.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind((LOOPBACK, port))
            except OSError:
                continue
        return int(port)


def lt_dht_session(case: TestCase, **settings: Any) -> tuple[Any, int]:
    """A libtorrent session with a DHT node on 127.0.0.1 (see the module docstring)."""
    ltutil.skip_without_libtorrent()
    lt = ltutil.lt
    port = free_port()
    pack: dict[str, Any] = {
        "listen_interfaces": f"{LOOPBACK}:{port}",
        "enable_dht": True,
        "dht_bootstrap_nodes": "",
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_block_ratelimit": 1_000_000,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "allow_multiple_connections_per_ip": True,
        # TCP and a plain handshake at once (no uTP or MSE attempts first).
        "out_enc_policy": int(lt.enc_policy.pe_disabled),
        "enable_outgoing_utp": False,
        "alert_mask": lt.alert.category_t.dht_notification
        | lt.alert.category_t.status_notification,
    }
    pack.update(settings)
    session = lt.session(pack)
    holder = [session]
    case.addCleanup(lambda: ltutil.close_session(holder.pop()) if holder else None)
    ltutil.wait_for(lambda: session.listen_port() == port, 10, "libtorrent to listen")
    return session, port


def lt_dht_nodes(session: Any) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return int(session.status().dht_nodes)


def introduce(sessions: list[tuple[Any, int]]) -> float:
    """Every libtorrent session learns every other's DHT node; the seconds
    until each knows them all."""
    for session, port in sessions:
        for _, other in sessions:
            if other != port:
                session.add_dht_node((LOOPBACK, other))
    need = len(sessions) - 1
    return ltutil.wait_for(lambda: all(lt_dht_nodes(s) >= need for s, _ in sessions),
                           20, "the libtorrent DHT nodes to know each other",
                           lambda: repr([lt_dht_nodes(s) for s, _ in sessions]))


def wait_announced(sessions: list[tuple[Any, int]], info_hash: bytes) -> float:
    """Wait until some libtorrent node stored an announce of ``info_hash``."""
    lt = ltutil.lt
    seen: list[Any] = []

    def announced() -> bool:
        for session, _ in sessions:
            for alert in session.pop_alerts():
                if isinstance(alert, lt.dht_announce_alert) and \
                        bytes(alert.info_hash.to_bytes()) == info_hash:
                    seen.append(alert)
        return bool(seen)

    return ltutil.wait_for(announced, 20, "an announce stored in the libtorrent DHT")


def ours_config(bootstrap: list[tuple[str, int]], **fields: Any) -> SessionConfig:
    """Our session's settings: a DHT node joining through ``bootstrap``,
    generous rate limits (every libtorrent node is 127.0.0.1)."""
    dht = DHTConfig(enabled=True, bootstrap_nodes=tuple(bootstrap), query_rate=1000.0,
                    query_burst=1000.0, **fields)
    return SessionConfig(dht=dht)


class DHTTests(TempRootCase):
    """Peers found through the DHT, with libtorrent on 127.0.0.1."""

    timeout = 90

    def setUp(self) -> None:
        ltutil.skip_without_libtorrent()
        self.make_root()
        self.files = make_files(os.path.join(self.root, "seed", "tree"),
                                {"a.bin": 700_000, "sub/b.bin": 300_001})
        self.raw = create_torrent(os.path.join(self.root, "seed", "tree"),
                                  piece_length=64 * 1024)
        self.metainfo = parse(self.raw)
        self.nodes = [lt_dht_session(self) for _ in range(LT_NODES)]

    def ours(self, source: Any, basedir: str, bootstrap_port: int,
             upload_limit: float | None = None, **fields: Any) -> Torrent:
        t = Torrent(source, basedir=basedir, reactor=reactor, listen_interfaces=[LOOPBACK],
                    upload_limit=upload_limit,
                    session_config=ours_config([(LOOPBACK, bootstrap_port)], **fields))
        self.addCleanup(t.close)
        return t

    def report(self, what: str, t: Torrent, **figures: float) -> None:
        run = t._run
        dht = run.dht if run is not None else None
        node = run.session.dht if run is not None else None
        rounds = list(dht.history) if dht is not None else []
        lookups = "; ".join(
            f"{len(r.peers)} peers, {r.queries} queries, {r.responses} replies, "
            f"{r.elapsed:.3f} s, {r.announced} announces" for r in rounds)
        timing = ", ".join(f"{k} {v:.2f} s" for k, v in figures.items())
        stats = node.stats if node is not None else None
        line = f"{what}: {timing}; lookups: {lookups}; node: {stats}"
        _log.info("{line}", line=line)
        print(f"\n  {line}")

    @inlineCallbacks
    def test_we_find_libtorrent_seeder(self) -> Any:
        """DHT only: our leecher, given the bare info hash, finds the
        libtorrent seeder with get_peers, fetches the metadata and every byte."""
        seeder, seeder_port = lt_dht_session(self)
        dht = self.nodes + [(seeder, seeder_port)]
        introduce(dht)
        handle = ltutil.add_torrent(seeder, self.raw, self.path("seed"))
        ltutil.wait_until_seeding(handle, 20)
        handle.force_dht_announce()
        announced_in = wait_announced(self.nodes, self.metainfo.info_hash)
        t = self.ours(self.metainfo.info_hash.hex(), self.path("leech"), self.nodes[0][1],
                      state_path=self.path("leech", "dht.state"))
        started = time.monotonic()
        yield t.start()
        yield wait_until(lambda: t.has_metadata, DEADLINE, "the metadata, from a DHT peer",
                         lambda: f"peers={t.peers()!r}", interval=POLL)
        to_metadata = time.monotonic() - started
        yield wait_until(lambda: t.complete, DEADLINE, "the download",
                         lambda: f"left={t.left} peers={t.peers()!r}", interval=POLL)
        to_complete = time.monotonic() - started
        self.assertEqual([p.address for p in t.peers()], [(LOOPBACK, seeder_port)])
        run = t._run
        assert run is not None and run.dht is not None and run.dht.last is not None
        self.assertIn((LOOPBACK, seeder_port), run.dht.last.peers)
        self.report("our leecher found libtorrent's seeder", t, announce=announced_in,
                    metadata=to_metadata, complete=to_complete)
        yield t.stop()
        self.assertTrue(os.path.exists(self.path("leech", "dht.state")))
        self.assertEqual(same_files(self.path("seed", "tree"), self.path("leech", "tree"),
                                    self.files), [])

    @inlineCallbacks
    def test_libtorrent_finds_our_seeder(self) -> Any:
        """DHT only: our seeder announces itself; a libtorrent leecher given only
        the info hash finds it through its DHT and completes."""
        lt = ltutil.lt
        introduce(self.nodes)
        # Rate limited, so that libtorrent is still connected to us when we look
        # at how it found us (it drops a seed once it seeds itself).
        t = self.ours(self.raw, self.path("seed"), self.nodes[0][1], upload_limit=SLOW)
        started = time.monotonic()
        yield t.start()
        self.assertTrue(t.complete)
        yield wait_until(
            lambda: t._run is not None and t._run.dht is not None
            and t._run.dht.last is not None and t._run.dht.last.announced > 0,
            DEADLINE, "our announce", lambda: repr(t._run.session.dht.stats if t._run else None),
            interval=POLL)
        announced = time.monotonic() - started
        leecher, _ = lt_dht_session(self)
        leecher.add_dht_node((LOOPBACK, self.nodes[0][1]))
        params = lt.add_torrent_params()
        params.info_hashes = lt.info_hash_t(lt.sha1_hash(self.metainfo.info_hash))
        params.save_path = self.path("lt")
        params.flags &= ~lt.torrent_flags.auto_managed
        params.flags &= ~lt.torrent_flags.paused
        leech_started = time.monotonic()
        handle = leecher.add_torrent(params)
        ltutil.wait_for(lambda: lt_dht_nodes(leecher) > 0, 20, "the leecher to join the DHT")
        handle.force_dht_announce()
        sources: dict[tuple[str, int], int] = {}
        connected: list[float] = []

        def done() -> bool:
            for peer in handle.get_peer_info():
                address = tuple(peer.ip)
                sources[address] = sources.get(address, 0) | peer.source
            if sources and not connected:
                connected.append(time.monotonic() - leech_started)
            return ltutil.is_seeding(handle)

        yield wait_until(done, DEADLINE, "libtorrent's download from our seeder",
                         lambda: ltutil.describe(handle), interval=POLL)
        found_and_done = time.monotonic() - leech_started
        # Its only peer was us, found through the DHT.
        self.assertEqual(list(sources), [(LOOPBACK, t.port)])
        self.assertTrue(sources[(LOOPBACK, t.port)] & lt.peer_info.dht, sources)
        self.report("libtorrent's leecher found our seeder", t, announce=announced,
                    leecher_connected=connected[0], leecher_complete=found_and_done)
        yield ltutil.files_landed(self.path("seed", "tree"), self.path("lt", "tree"), self.files,
                                  DEADLINE)
        self.assertEqual(same_files(self.path("seed", "tree"), self.path("lt", "tree"),
                                    self.files), [])
        yield t.stop()

    @inlineCallbacks
    def test_restart_uses_saved_table(self) -> Any:
        """A node saved on stop restarts with its id and nodes and joins
        through them, with no bootstrap router at all."""
        introduce(self.nodes)
        state = self.path("dht.state")

        def node(bootstrap: tuple[tuple[str, int], ...]) -> tuple[DHTNode, DatagramMux]:
            mux = DatagramMux(reactor, port=0, interface4=LOOPBACK, interface6=None)
            mux.start()
            self.addCleanup(mux.stop)
            dht = DHTNode(mux, DHTConfig(enabled=True, bootstrap_nodes=bootstrap,
                                         state_path=state, query_rate=1000.0,
                                         query_burst=1000.0), reactor=reactor)
            self.addCleanup(dht.stop)
            return dht, mux

        first, _ = node(((LOOPBACK, self.nodes[0][1]),))
        first.start()
        joined = yield first.when_ready()
        self.assertGreaterEqual(joined, 1)
        yield wait_until(lambda: first.node_count() >= LT_NODES, 20, "every libtorrent node")
        yield first.stop()
        second, mux = node(())
        started = time.monotonic()
        second.start()
        self.assertEqual(second.node_id, first.node_id)
        self.assertEqual(second.node_count(), first.node_count())
        count = yield second.when_ready()
        elapsed = time.monotonic() - started
        self.assertGreaterEqual(count, LT_NODES)
        line = (f"restart from the saved table: ready in {elapsed:.3f} s with {count} nodes, "
                f"{second.stats.queries_sent} queries")
        _log.info("{line}", line=line)
        print(f"\n  {line}")


class CommandLineDHTTests(CLITestBase):
    """``download`` finds its peers through the DHT."""

    async def test_download_bare_hash_through_dht(self) -> None:
        """A bare info hash, no peer given: the seeder comes from the DHT
        (joined through --dht-bootstrap), every byte arrives, and the node's
        state is kept for the next run."""
        raw = self.make_torrent()
        metainfo = parse(raw)
        nodes = [lt_dht_session(self) for _ in range(LT_NODES)]
        seeder, seeder_port = lt_dht_session(self)
        dht = nodes + [(seeder, seeder_port)]
        introduce(dht)
        handle = ltutil.add_torrent(seeder, raw, self.path("seed"))
        ltutil.wait_until_seeding(handle, 20)
        handle.force_dht_announce()
        wait_announced(nodes, metainfo.info_hash)
        out = self.path("out")
        started = time.monotonic()
        child = await self.txbt("download", metainfo.info_hash_hex, "-o", out,
                                "--interface", LOOPBACK, "--json",
                                "--dht-bootstrap", f"{LOOPBACK}:{nodes[0][1]}", timeout=DEADLINE)
        elapsed = time.monotonic() - started
        self.assert_exit(child, 0)
        self.assert_same(out, list(TREE))
        connected = [e["address"] for e in child.events() if e["kind"] == "peer_connected"]
        self.assertEqual(connected, [[LOOPBACK, seeder_port]])
        with open(os.path.join(out, ".txbittorrent", "dht.state"), "rb") as f:
            state = json.load(f)
        self.assertGreaterEqual(len(state["tables"]["4"]["nodes"]), LT_NODES)
        line = f"CLI download through the DHT: {elapsed:.2f} s including the process start"
        _log.info("{line}", line=line)
        print(f"\n  {line}")
