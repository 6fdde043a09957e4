"""Peer exchange (BEP 11) with libtorrent on 127.0.0.1, both ways.

* We learn: our leecher knows only libtorrent peer A; A is connected to
  libtorrent seeder B; A's PEX names B and we connect to B.
* libtorrent learns: a libtorrent leecher L knows only our leecher S; S is
  connected to libtorrent seeder P; our PEX names P and L connects to P,
  with libtorrent marking P as found through PEX (so libtorrent read our
  ``added`` and ``added.f``).

libtorrent sends its first PEX message to a peer at its first tick after
that peer's extension handshake, once it has two peers or more (then a
diff a minute); we send ours at our first tick (1 s) after it.  So both
tests take a few seconds; they are bounded well under a minute.

Leechers are rate limited so that no one completes (libtorrent closes
connections between two seeds, which would take the peer to be exchanged
away); libtorrent leaves loopback peers unlimited unless the limit is put
on its local peer class.
"""

from __future__ import annotations

import os
import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks

from tests.integration import ltutil
from tests.integration.temproot import TempRootCase
from txbittorrent import Torrent
from txbittorrent.storage.create import create_torrent
from txbittorrent.testing import make_files, wait_until

LOOPBACK = "127.0.0.1"
SIZES = {"big.bin": 4 * 1024 * 1024}
SLOW = 16 * 1024
"""Bytes per second for the leechers: the transfer lasts minutes, the tests seconds."""

PEX_DEADLINE = 45.0
"""How long a peer may take to be learned through PEX and dialled."""


def lt_peers(handle: Any) -> list[Any]:
    return list(handle.get_peer_info())


def lt_has_peer(handle: Any, address: tuple[str, int], source: int | None = None) -> bool:
    """Whether libtorrent's torrent is connected to ``address`` (found through ``source``)."""
    for p in lt_peers(handle):
        if tuple(p.ip) == address and (source is None or p.source & source):
            return True
    return False


def lt_describe(handle: Any) -> str:
    return "; ".join(f"{p.ip} source={p.source} flags={p.flags}" for p in lt_peers(handle))


class PexTests(TempRootCase):
    """PEX between our engine and libtorrent."""

    timeout = 120

    def setUp(self) -> None:
        ltutil.skip_without_libtorrent()
        self.make_root()
        seed_dir = os.path.join(self.root, "seed")
        self.data = make_files(os.path.join(seed_dir, "tree"), SIZES)
        self.raw = create_torrent(os.path.join(seed_dir, "tree"), piece_length=16384)
        self.torrent_path = os.path.join(self.root, "tree.torrent")
        with open(self.torrent_path, "wb") as f:
            f.write(self.raw)
        self.seed_dir = seed_dir

    def lt_seeder(self, pex: bool = True) -> tuple[Any, Any]:
        session = ltutil.make_session(self)
        handle = ltutil.add_torrent(session, self.raw, self.seed_dir)
        if not pex:
            handle.set_flags(ltutil.lt.torrent_flags.disable_pex)
        ltutil.wait_until_seeding(handle, 30)
        return session, handle

    def lt_leecher(self, name: str) -> tuple[Any, Any]:
        # TCP and a plain handshake at once: libtorrent otherwise tries uTP
        # (and MSE) first and waits about 3 s for them to fail.
        plain = int(ltutil.lt.enc_policy.pe_disabled)
        session = ltutil.make_session(self, out_enc_policy=plain, enable_outgoing_utp=False)
        # Rate limits spare loopback peers unless their peer class has them.
        local = ltutil.lt.session.local_peer_class_id
        limits = session.get_peer_class(local)
        limits["download_limit"] = SLOW
        session.set_peer_class(local, limits)
        handle = ltutil.add_torrent(session, self.raw, os.path.join(self.root, name))
        return session, handle

    def ours(self, name: str) -> Torrent:
        t = Torrent(self.torrent_path, basedir=os.path.join(self.root, name), reactor=reactor,
                    listen_interfaces=[LOOPBACK], download_limit=SLOW, dht=False)
        self.addCleanup(t.close)
        return t

    @inlineCallbacks
    def test_we_learn_from_libtorrent(self) -> Any:
        """Knowing only libtorrent peer A, our leecher learns seeder B from A's
        PEX and connects to it.  (B's own PEX is off: otherwise B learns us
        from A and dials us first.)"""
        b_session, _ = self.lt_seeder(pex=False)
        a_session, a = self.lt_leecher("a")
        b_address = ltutil.endpoint(b_session)
        a.connect_peer(b_address)
        yield wait_until(lambda: lt_has_peer(a, b_address), 20, "A connected to B",
                         lambda: lt_describe(a))
        t = self.ours("ours")
        yield t.start()
        a_address = ltutil.endpoint(a_session)
        start = time.monotonic()
        t.add_peers([a_address])
        yield wait_until(lambda: any(p.address == b_address and p.outgoing for p in t.peers()),
                         PEX_DEADLINE, "our connection to B, learned from A",
                         lambda: repr([(p.address, p.outgoing) for p in t.peers()]))
        elapsed = time.monotonic() - start
        sources = {p.address: p.source for p in t.peers()}
        self.assertEqual((sources[a_address], sources[b_address]), ("user", "pex"),
                         "each peer says who named it")
        print(f"\n  learned B from libtorrent's PEX and connected in {elapsed:.1f} s")
        yield t.stop()

    @inlineCallbacks
    def test_libtorrent_learns_from_us(self) -> Any:
        """libtorrent leecher L, knowing only our leecher S, learns seeder P from
        S's PEX (as a PEX peer) and connects to it."""
        p_session, _ = self.lt_seeder()
        p_address = ltutil.endpoint(p_session)
        s = self.ours("s")
        yield s.start()
        s.add_peers([p_address])
        yield wait_until(lambda: any(p.address == p_address for p in s.peers()), 20,
                         "our leecher connected to P")
        _, leecher = self.lt_leecher("l")
        start = time.monotonic()
        leecher.connect_peer((LOOPBACK, s.port))
        pex = ltutil.lt.peer_info.pex
        yield wait_until(lambda: lt_has_peer(leecher, p_address, pex), PEX_DEADLINE,
                         "libtorrent's connection to P, learned from our PEX",
                         lambda: lt_describe(leecher))
        elapsed = time.monotonic() - start
        print(f"\n  libtorrent learned P from our PEX and connected in {elapsed:.1f} s")
        yield s.stop()
