"""MSE/PE against libtorrent on 127.0.0.1: its default (encrypted-first)
leecher reaches our seeder at once, and transfers complete both ways with
encryption forced on each side.

libtorrent runs in-process (its own threads); ours on the real reactor.
Everything listens on loopback only and is bounded in time.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks

from tests.integration import ltutil
from tests.integration.temproot import TempRootCase
from txbittorrent.core.wire.mse import CRYPTO_PLAINTEXT, CRYPTO_RC4
from txbittorrent.observers import TorrentObserver
from txbittorrent.session import Session, SessionConfig
from txbittorrent.storage.create import create_torrent
from txbittorrent.testing import make_files, same_files, wait_until
from txbittorrent.torrent import Torrent

LOOPBACK = "127.0.0.1"
MiB = 1024 * 1024
SIZES = {"data.bin": 3 * MiB + 1234, "small.txt": 777}

FORCED_RC4: dict[str, Any] = {}
"""libtorrent settings: encryption forced, RC4 only (filled once lt is known)."""
if ltutil.lt is not None:
    FORCED_RC4 = {
        "out_enc_policy": int(ltutil.lt.enc_policy.pe_forced),
        "in_enc_policy": int(ltutil.lt.enc_policy.pe_forced),
        "allowed_enc_level": int(ltutil.lt.enc_level.pe_rc4),
    }


class FirstPeer(TorrentObserver):
    """When the torrent accepted its first peer (reactor seconds), and how
    the links of the peers it accepted carry their streams (read as each
    is accepted: a link may be gone by the time a test looks, a twin
    closed or the transfer over)."""

    def __init__(self, session: Session | None = None) -> None:
        self.at: float | None = None
        self.session = session
        self.cryptos: set[Any] = set()
        self.encrypted: set[Any] = set()
        self.infos: list[Any] = []

    def peer_connected(self, torrent: Any, peer: Any) -> None:
        if self.at is None:
            self.at = reactor.seconds()
        self.infos.append(peer)
        if self.session is not None:
            for link in self.session.links():
                if link.address == peer.address:
                    self.cryptos.add(getattr(link, "crypto", None))
                    self.encrypted.add(getattr(link, "encrypted_handshake", False))


class MSELibtorrentTests(TempRootCase):
    """Our Session with each encryption mode against libtorrent."""

    timeout = 60
    make_dirs = True

    def setUp(self) -> None:
        ltutil.skip_without_libtorrent()
        self.make_root(remove=True)
        source = os.path.join(self.path("seed"), "mse")
        make_files(source, SIZES, seed=13)
        self.raw = create_torrent(source, piece_length=256 * 1024, trackers=[])

    def session(self, mode: str) -> Session:
        s = Session(reactor=reactor, listen_interfaces=(LOOPBACK,),
                    config=SessionConfig(encryption=mode))
        self.addCleanup(s.stop)
        return s

    def torrent(self, session: Session, basedir: str) -> Torrent:
        t = Torrent(self.raw, basedir=basedir, reactor=reactor, session=session)
        self.addCleanup(t.close)
        return t

    def assert_same(self, basedir: str) -> None:
        bad = same_files(os.path.join(self.root, "seed", "mse"),
                         os.path.join(basedir, "mse"), list(SIZES))
        self.assertEqual(bad, [])

    @inlineCallbacks
    def seed_to_libtorrent(self, mode: str, **lt_settings: Any) -> Any:
        """Our seeder (``mode``) and a libtorrent leecher that dials it;
        fires with (seconds from dial to our first accepted peer, our
        links' crypto methods, our links' encrypted_handshake flags)."""
        session = self.session(mode)
        yield session.start()
        seeder = self.torrent(session, self.path("seed"))
        first = FirstPeer(session)
        seeder.add_observer(first)
        yield seeder.start()
        lt = ltutil.make_session(self, enable_outgoing_utp=False, enable_incoming_utp=False,
                                 **lt_settings)
        handle = ltutil.add_torrent(lt, self.raw, self.path("lt"))
        dialled = reactor.seconds()
        handle.connect_peer((LOOPBACK, session.port))
        yield wait_until(lambda: first.at is not None, 20, "libtorrent's connection",
                         lambda: ltutil.describe(handle))
        cryptos, encrypted = first.cryptos, first.encrypted
        self.assertEqual({info.encrypted for info in first.infos}, encrypted)
        yield wait_until(lambda: handle.status().is_seeding, 40, "libtorrent to finish",
                         lambda: ltutil.describe(handle))
        yield ltutil.files_landed(os.path.join(self.root, "seed", "mse"),
                                  os.path.join(self.path("lt"), "mse"), SIZES, 10)
        self.assert_same(self.path("lt"))
        yield seeder.stop()
        assert first.at is not None
        return first.at - dialled, cryptos, encrypted

    @inlineCallbacks
    def test_default_leecher_connects_encrypted_at_once(self) -> Any:
        """A default libtorrent leecher (encrypted first, plaintext offered)
        gets through on its first, encrypted, attempt: the link it made went
        through MSE, so it is not libtorrent's plaintext retry (which comes a
        second after a failed encrypted attempt: 1.5 s from the dial here
        with our encryption disabled, against 0.5-0.55 s now; the timing is
        not asserted, libtorrent's own tick sets it)."""
        _, cryptos, encrypted = yield self.seed_to_libtorrent("enabled")
        self.assertEqual(encrypted, {True})
        self.assertEqual(cryptos, {CRYPTO_PLAINTEXT})

    @inlineCallbacks
    def test_default_leecher_to_forced_seeder(self) -> Any:
        """Our forced seeder selects RC4 from a default libtorrent's offer."""
        _, cryptos, encrypted = yield self.seed_to_libtorrent("forced")
        self.assertEqual(encrypted, {True})
        self.assertEqual(cryptos, {CRYPTO_RC4})

    @inlineCallbacks
    def test_forced_leecher_to_forced_seeder(self) -> Any:
        """libtorrent forced to RC4 downloads from our forced seeder."""
        _, cryptos, _ = yield self.seed_to_libtorrent("forced", **FORCED_RC4)
        self.assertEqual(cryptos, {CRYPTO_RC4})

    @inlineCallbacks
    def test_forced_leecher_to_enabled_seeder(self) -> Any:
        """libtorrent forced to RC4 downloads from our default seeder (RC4)."""
        _, cryptos, _ = yield self.seed_to_libtorrent("enabled", **FORCED_RC4)
        self.assertEqual(cryptos, {CRYPTO_RC4})

    @inlineCallbacks
    def leech_from_libtorrent(self, mode: str, **lt_settings: Any) -> Any:
        """A libtorrent seeder and our leecher (``mode``) dialling it; fires
        with our links' crypto methods once the download is complete
        (``connect_seconds``: from add_peers to the first accepted peer)."""
        lt = ltutil.make_session(self, enable_outgoing_utp=False, enable_incoming_utp=False,
                                 **lt_settings)
        handle = ltutil.add_torrent(lt, self.raw, self.path("seed"))
        yield wait_until(lambda: handle.status().is_seeding, 20, "libtorrent to check its data",
                         lambda: ltutil.describe(handle))
        session = self.session(mode)
        yield session.start()
        leecher = self.torrent(session, self.path("leech"))
        first = FirstPeer(session)
        leecher.add_observer(first)
        yield leecher.start()
        added = reactor.seconds()
        leecher.add_peers([ltutil.endpoint(lt)])
        yield wait_until(lambda: leecher.complete, 40, "our download",
                         lambda: f"left={leecher.left}")
        assert first.at is not None
        self.connect_seconds = first.at - added
        yield leecher.stop()
        self.assert_same(self.path("leech"))
        self.assertEqual({info.encrypted for info in first.infos},
                         {crypto is not None for crypto in first.cryptos})
        return first.cryptos

    @inlineCallbacks
    def test_forced_leecher_from_forced_seeder(self) -> Any:
        """Our forced leecher downloads from libtorrent forced to RC4."""
        cryptos = yield self.leech_from_libtorrent("forced", **FORCED_RC4)
        self.assertEqual(cryptos, {CRYPTO_RC4})

    @inlineCallbacks
    def test_forced_leecher_from_default_seeder(self) -> Any:
        """Our forced leecher downloads from a default libtorrent (RC4 chosen:
        we offer nothing else)."""
        cryptos = yield self.leech_from_libtorrent("forced")
        self.assertEqual(cryptos, {CRYPTO_RC4})

    @inlineCallbacks
    def test_default_leecher_from_forced_seeder(self) -> Any:
        """Our default leecher downloads from libtorrent forced to RC4: its
        plain dial is dropped, and the swarm redials encrypted at once (not
        after its backoff: well within a second here, ~3 ms measured)."""
        cryptos = yield self.leech_from_libtorrent("enabled", **FORCED_RC4)
        self.assertEqual(cryptos, {CRYPTO_RC4})
        # Under the swarm's connection round (3 s) and backoff (10 s), with room
        # for a loaded machine.
        self.assertLess(self.connect_seconds, 2.0)

    @inlineCallbacks
    def test_default_leecher_from_default_seeder(self) -> Any:
        """Our default leecher dials plain and libtorrent accepts it."""
        cryptos = yield self.leech_from_libtorrent("enabled")
        self.assertEqual(cryptos, {None})


