"""The peer manager of one torrent: whom to talk to, what to ask, what to serve.

Theory of operation
-------------------
A ``Swarm`` is the ``PeerHost`` of ``interfaces``: the peer protocol adapter
owns each TCP connection and its ``PeerSession`` and reports to the swarm;
the swarm answers with policy and writes what the session methods return
through the ``PeerLink``.  It owns no socket and no file: it dials through a
``Dialer``, reads and writes through a ``Store``, and takes time from an
injected clock and chance from an injected ``random.Random``.

The work is split by concept; the swarm wires the parts and keeps the
connections:

* ``downloader.Downloader``: interest, requests (``core.transfer.picker``),
  blocks into piece buffers, hash-and-write, HAVEs;
* ``uploader.Uploader``: serving requests from ``storage.uploadcache``
  under backpressure;
* ``choking.Choking``: whom to unchoke (``core.transfer.choker``), every
  ``rechoke_interval``, with the optimistic unchoke;
* ``connections.Connections``: whom to dial, whom to admit, whom to ban,
  over the ``addressbook.AddressBook`` (backoff, bans).

The downloader, the uploader and its cache, and the table of event
handlers are made with the first peer (or the first deadline), not at
``attach``: most torrents of a big session never see a peer, and each of
these reads the data's state as it is when made.

Each event from ``peer_event`` goes to one handler, found by its type in the
table of ``peerevents.PeerEvents`` (the downloader's events, REQUESTs for
the uploader, extension events, and INTERESTED for the choking); a
``BlockReceived``, the hot path, goes straight to the downloader.

Timers, from ``start`` to ``stop``: the tick (rates, queue depths, idle
pipelines, and ``Uploader.retry_stalled``), the request check (timeouts,
snubbing), the rechoke and the connection top-up.  Each is a
``timers.PhasedTimer``: it keeps the phase a ``LoopingCall`` started with the
swarm would have, but sleeps (nothing scheduled) while it has nothing to do:
the tick, the request check and the rechoke while no peer is connected (the
tick goes on for the rates' history after the last peer left), the top-up
while the address book is empty.  A peer or an address wakes them, so a
session of thousands of torrents without peers leaves the reactor idle.
No timer waits for a backed-up link: uploads held back resume when ``PeerProtocol`` says the link
drained (``peer_writable``); the retry on the tick (``tick_interval``, 1 s)
is only a safety net for ``PeerLink``s that never say so.  The adapter keeps
the idle and keep-alive timers (``LinkConfig.keepalive_interval``).

Invariants:

* Every block in a session's ``outstanding_requests`` is one the picker has
  as requested from that peer: requests leave both books together (block,
  REJECT, choke, timeout, pause).
* The Torrent's ``have`` only grows through ``on_piece_passed``, once the
  piece's data is verified and on disk.
* While paused every peer is choked and not interesting, and no request of
  ours is outstanding.
* A peer whose session died (it broke the protocol; the adapter is closing
  it) is never written to again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from ipaddress import ip_address
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from txbittorrent import __version__
from txbittorrent.swarm.addressbook import AddressBook
from txbittorrent.core.transfer.completion import BitfieldView, Completion
from txbittorrent.core.wire.events import BlockReceived, PeerInterested
from txbittorrent.core.wire.messages import make_reserved
from txbittorrent.core.layout import Layout
from txbittorrent.core.metainfo import Metainfo
from txbittorrent.core.wire.session import PeerSession
from txbittorrent.core.transfer.picker import RandomSource
from txbittorrent.swarm.choking import Choking
from txbittorrent.swarm.connections import Connections
from txbittorrent.swarm.downloader import Downloader
from txbittorrent.errors import LocalProtocolError, RemoteProtocolError
from txbittorrent.swarm.extensions import Extensions
from txbittorrent.swarm.peerevents import PeerEvents
from txbittorrent.swarm.peerstate import PeerInfo, PeerState, RateMeter
from txbittorrent.storage.store import Store
from txbittorrent.swarm.config import SwarmConfig, SwarmObserver
from txbittorrent.storage.uploadcache import UploadCache
from txbittorrent.swarm.timers import PhasedTimer
from txbittorrent.swarm.uploader import Uploader

if TYPE_CHECKING:
    from txbittorrent.interfaces import Address, Dialer, PeerLink

__all__ = ["Swarm", "SwarmConfig", "SwarmObserver", "PeerInfo", "CLIENT_VERSION"]

class _Timers:
    """A running swarm's timers (made on first need) and their phase."""

    __slots__ = ("origin", "quiet_since", "all")

    def __init__(self, origin: float) -> None:
        self.origin = origin
        """When the swarm started: the timers run on this phase."""
        self.quiet_since: float | None = None
        """When the tick last found no peer (None: it found some)."""
        self.all: tuple[PhasedTimer, ...] = ()
        """tick, request check, rechoke, top-up."""


_Attached = tuple[
    Metainfo, Store, Completion, Callable[[int], object], Callable[[int], object],
    "Callable[[], Deferred[None] | None] | None",
]
"""metainfo, store, completion, on_piece_passed, on_piece_failed, before_write
(``attach``)."""

CLIENT_VERSION = f"txbittorrent {__version__}"
"""Our BEP 10 ``v``."""

_log = Logger()

_NEW, _RUNNING, _STOPPED = "new", "running", "stopped"


class Swarm:
    """The ``PeerHost`` of one torrent; see the module docstring.

    The completion model ``attach`` is given holds the verified pieces: the
    swarm reads it and leaves adding to ``on_piece_passed``."""

    def __init__(
        self,
        info_hash: bytes,
        peer_id: bytes,
        dialer: Dialer,
        clock: Any,
        rng: RandomSource,
        *,
        config: SwarmConfig | None = None,
        upload_throttle: Any = None,
        download_throttle: Any = None,
        observer: SwarmObserver | None = None,
    ) -> None:
        """A swarm for the torrent ``info_hash``: it connects, handshakes and
        exchanges extension messages, and transfers no piece until ``attach``
        gives it the metadata and data (at once for a .torrent; later for a
        magnet link)."""
        self.config = cfg = config if config is not None else SwarmConfig()
        self.info_hash = info_hash
        self.peer_id = peer_id
        self.upload_throttle = upload_throttle
        self.download_throttle = download_throttle
        self.listen_port: int | None = None
        """Our listening port, for the ``p`` of our extension handshake (set by the Torrent)."""
        self.dht_port: int | None = None
        """Our DHT node's UDP port (BEP 5), set by the torrent when the session
        runs a node: our handshake then says so, and peers that run one too
        hear a PORT message after our bitfield."""
        self.on_dht_port: Callable[[Address], object] | None = None
        """Hears ``(peer host, port)`` for each PORT message a peer sends."""
        self.layout: Layout | None = None
        self.extensions = Extensions()
        """The BEP 10 plug-ins (``ut_metadata``, ``ut_pex``...): register before ``start``."""
        self._rng = rng
        self._clock = clock
        self._observer = observer if observer is not None else SwarmObserver()
        now = clock.seconds()
        self._down = RateMeter(now, self._keep)
        self._up = RateMeter(now, self._keep)
        self._attached: _Attached | None = None
        """What ``attach`` gave; the parts that use it are made with the first peer."""
        self._downloader: Downloader | None = None
        self._uploader: Uploader | None = None
        self._cache: UploadCache | None = None
        self._book = AddressBook(cfg.max_candidates, cfg.reconnect_backoff, cfg.connect_timeout)
        self._choking = Choking(cfg, clock, rng)
        self._peers: dict[PeerLink, PeerState] = {}
        self._by_id: dict[bytes, PeerState] = {}
        self._connections = Connections(self._book, dialer, peer_id, cfg, self._peers, self._by_id)
        self._timers: _Timers | None = None
        self._state = _NEW
        self._paused = False
        self._events: PeerEvents | None = None
        """The handlers of peers' events, made with the first peer."""
        # (Fewer than 30 attributes: CPython shares the keys of smaller
        # instance dicts; past that each swarm's dict costs 1.3 KB more.)

    @property
    def _keep(self) -> float:
        """Seconds of rate history kept."""
        cfg = self.config
        return max(cfg.choke_rate_window, cfg.rate_window) + 2 * cfg.tick_interval

    @property
    def _have(self) -> BitfieldView | None:
        attached = self._attached
        return attached[2].have if attached is not None else None

    @property
    def has_metadata(self) -> bool:
        """Whether ``attach`` has given the swarm the torrent's metadata."""
        return self._attached is not None

    def _peer_parts(self) -> None:
        """Make what only peers need, once: the event table, and (with the
        metadata) the downloader, the upload cache and the uploader.  A
        swarm that never sees a peer (most of a big session's) never makes
        them; each reads the data's state as it is when made."""
        events = self._events
        if events is None:
            events = self._events = PeerEvents(
                self.config, self.extensions, self._connections, self._close,
                self._on_interested,
            )
            events.dht_port = self._on_dht_port
        attached = self._attached
        if attached is None or self._downloader is not None:
            return
        metainfo, store, completion, _, _, _ = attached
        cfg, have, layout = self.config, self._have, self.layout
        assert have is not None and layout is not None
        self._downloader = d = Downloader(
            metainfo, layout, store, completion, self._rng, cfg, self._clock, self._down, self
        )
        d.follow()
        self._cache = UploadCache(store.read_piece, cfg.upload_cache_bytes)
        self._uploader = Uploader(self._cache, have, cfg, self._up, self.disk_error)
        d.paused = self._uploader.paused = self._paused
        if self._state == _STOPPED:
            d.stopped = self._uploader.stopped = True
            d.unfollow()
        events.attach(d)

    def attach(
        self,
        metainfo: Metainfo,
        layout: Layout,
        store: Store,
        completion: Completion,
        *,
        on_piece_passed: Callable[[int], object],
        on_piece_failed: Callable[[int], object],
        before_write: Callable[[], Deferred[None] | None] | None = None,
    ) -> None:
        """Take the torrent's metadata and data: from now on pieces move.
        Connected peers learn our pieces, and what they said of theirs
        before is checked against the piece count now known.
        ``before_write`` is called before each piece is written: the write
        waits for the Deferred it returns (if any)."""
        if self._attached is not None:
            raise LocalProtocolError("the swarm has its metadata already")
        if metainfo.info_hash != self.info_hash:
            raise LocalProtocolError("the metadata is of another torrent")
        self.layout = layout
        self._attached = (
            metainfo, store, completion, on_piece_passed, on_piece_failed, before_write
        )
        if self._peers:
            self._peer_parts()
        for peer in self.live_peers():
            self._peer_learns_metadata(peer)

    def _peer_learns_metadata(self, peer: PeerState) -> None:
        """A peer connected before the metadata: its session checks what the
        peer said of its pieces, then our pieces go out."""
        assert self._downloader is not None and self._have is not None and self.layout is not None
        session = peer.session
        try:
            events = session.set_piece_count(self.layout.piece_count, self.layout.piece_size)
        except RemoteProtocolError as e:
            self._close(peer, f"protocol error: {e}")
            return
        self._downloader.set_depth(peer, peer.depth)
        data = session.send_bitfield(self._have) + self._port_message(session)
        if session.extended:  # the plug-ins' fields may have changed (metadata_size)
            session.extension_handshake.update(
                {k.encode() if isinstance(k, str) else k: v
                 for k, v in self.extensions.handshake().items()}
            )
            data += session.send_extension_handshake()
        if data:
            peer.link.send(data)
        for event in events:
            self.peer_event(peer.link, event)
        if peer.connected and not session.dead:
            self._downloader.send_interest(peer)

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> None:
        """Start the timers (and a first connection top-up)."""
        if self._state != _NEW:
            raise LocalProtocolError(f"Swarm.start() called when {self._state}")
        self._state = _RUNNING
        self._timers = _Timers(self._clock.seconds())
        if len(self._book):
            self._made_timers()[3].run_now()
        self._wake()

    def _made_timers(self) -> tuple[PhasedTimer, ...]:
        """The four timers, made when first needed (an idle swarm never does)."""
        timers = self._timers
        assert timers is not None
        if not timers.all:
            cfg, clock, origin = self.config, self._clock, timers.origin
            timers.all = (
                PhasedTimer(clock, cfg.tick_interval, origin, self._tick, self._tick_needed),
                PhasedTimer(clock, cfg.request_check_interval, origin, self._check_requests,
                            self._has_peers),
                PhasedTimer(clock, cfg.rechoke_interval, origin, self._rechoke,
                            self._has_peers),
                PhasedTimer(clock, cfg.connect_interval, origin, self._top_up,
                            self._has_candidates),
            )
        return timers.all

    def _wake(self) -> None:
        """Something arrived (a peer, an address): the timers that have work
        now follow their phase again."""
        timers = self._timers
        if self._state != _RUNNING or timers is None:
            return
        peers = bool(self._peers)
        candidates = len(self._book) > 0
        if not peers and not candidates:
            return
        if peers:
            timers.quiet_since = None
        tick, check, rechoke, top_up = self._made_timers()
        if peers:
            tick.wake()
            check.wake()
            rechoke.wake()
        if candidates:
            top_up.wake()

    def _has_peers(self) -> bool:
        return bool(self._peers)

    def _has_candidates(self) -> bool:
        return len(self._book) > 0

    def _tick_needed(self) -> bool:
        """Peers, or not long since the last one left (the rates' history
        runs out ``_keep`` seconds later)."""
        timers = self._timers
        assert timers is not None
        if self._peers:
            timers.quiet_since = None
            return True
        now: float = self._clock.seconds()
        if timers.quiet_since is None:
            timers.quiet_since = now
        return now - timers.quiet_since < self._keep

    def stop(self) -> Deferred[None]:
        """Stop the timers, close every connection, and fire once the disk
        work in flight (hash-and-write jobs, piece reads) is done."""
        if self._state == _STOPPED:
            return succeed(None)
        self._state = _STOPPED
        downloader, uploader, cache = self._downloader, self._uploader, self._cache
        if downloader is not None and uploader is not None:
            downloader.stopped = uploader.stopped = True
            downloader.unfollow()
        if self._timers is not None:
            for timer in self._timers.all:
                timer.stop()
        for peer in list(self._peers.values()):
            self._close(peer, "the torrent is stopping")
        self.extensions.stop()
        if downloader is None or uploader is None or cache is None:
            return succeed(None)
        uploader.clear()
        waits = [downloader.when_idle(), cache.when_idle()]
        return DeferredList(waits, consumeErrors=True).addCallback(lambda _: None)

    @property
    def running(self) -> bool:
        return self._state == _RUNNING

    @property
    def peer_count(self) -> int:
        """Connections accepted and not lost yet."""
        return len(self._peers)

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        """Keep the connections but exchange no data: choke everyone, cancel
        our requests, withdraw our interest."""
        if self._paused:
            return
        self._paused = True
        downloader, uploader = self._downloader, self._uploader
        if downloader is None or uploader is None:
            return  # nothing moves before the metadata anyway
        downloader.paused = uploader.paused = True
        for peer in self.live_peers():
            session = peer.session
            data = session.choke() + downloader.withdraw(peer) + session.not_interested()
            peer.optimistic = False
            if data:
                peer.link.send(data)
        uploader.clear()

    def resume(self) -> None:
        """Undo ``pause``: interest and requests again, and a rechoke at once."""
        if not self._paused:
            return
        self._paused = False
        downloader, uploader = self._downloader, self._uploader
        if downloader is None or uploader is None:
            return
        downloader.paused = uploader.paused = False
        for peer in self.live_peers():
            downloader.send_interest(peer)
            downloader.fill(peer)
        self._rechoke()

    # -- for the Torrent and the application ---------------------------------------------

    @property
    def downloaded(self) -> int:
        """Payload bytes received from peers (``wasted`` included)."""
        return self._down.total

    @property
    def uploaded(self) -> int:
        """Payload bytes sent to peers."""
        return self._up.total

    @property
    def wasted(self) -> int:
        """Payload bytes received that we no longer needed (endgame duplicates)."""
        return self._downloader.wasted if self._downloader is not None else 0

    @property
    def download_rate(self) -> float:
        return self._down.rate(self._clock.seconds(), self.config.rate_window)

    @property
    def upload_rate(self) -> float:
        return self._up.rate(self._clock.seconds(), self.config.rate_window)

    def is_banned(self, host: str, peer_id: bytes | None = None) -> bool:
        """Whether ``host`` (an IP, or ``ip:port`` on loopback: see
        ``addressbook.ban_key``) or ``peer_id`` is banned."""
        return self._book.is_banned(host, peer_id)

    def add_peers(self, addresses: Iterable[Address], source: str = "tracker") -> int:
        """Remember candidate peers (the book is bounded); the number new.
        While running, a connection top-up follows at once."""
        added = self._book.add(addresses, source)
        if added and self.running:
            self._top_up()
            self._wake()
        return added

    def peers(self) -> list[PeerInfo]:
        """A snapshot of every connection."""
        now, window = self._clock.seconds(), self.config.rate_window
        return [peer.info(now, window) for peer in self._peers.values()]

    def set_deadline(self, index: int, when: float) -> None:
        """Fetch piece ``index`` before other pieces, by clock time ``when``."""
        self._peer_parts()
        if self._downloader is not None:
            self._downloader.set_deadline(index, when)

    def clear_deadline(self, index: int) -> None:
        if self._downloader is not None:
            self._downloader.clear_deadline(index)

    def priorities_changed(self) -> None:
        """The completion model's priorities changed: interest and requests
        follow.  Before ``attach`` there is nothing to follow: the downloader
        ``attach`` makes reads the model as it is then."""
        if self._downloader is not None:
            self._downloader.priorities_changed()

    # -- PeerHost ------------------------------------------------------------------------

    def accepting(self) -> bool:
        return self._state == _RUNNING and len(self._peers) < self.config.max_connections

    def new_peer_session(self, outgoing: bool) -> PeerSession:
        handshake: dict[str | bytes, Any] = dict(self.extensions.handshake())
        handshake.update({"v": CLIENT_VERSION, "reqq": self.config.max_peer_requests})
        if self.listen_port:
            handshake["p"] = self.listen_port
        layout = self.layout
        return PeerSession(
            self.info_hash,
            self.peer_id,
            layout.piece_count if layout is not None else None,
            outgoing,
            piece_length_of=layout.piece_size if layout is not None else None,
            max_peer_requests=self.config.max_peer_requests,
            extension_handshake=handshake,
            reserved=make_reserved(dht=bool(self.dht_port)),
        )

    def peer_connected(self, link: PeerLink) -> bool:
        session = link.session
        now = self._clock.seconds()
        if self._state != _RUNNING:
            refusal: str | None = "stopped"
        else:
            refusal = self._connections.refusal(link, session.peer_id)
        if refusal is not None:
            self._connections.refused(link, refusal, now)
            return False
        twin = self._by_id.get(session.peer_id) if session.peer_id is not None else None
        if twin is not None:
            # peer_lost (now or later, from the adapter) forgets the twin's link.
            self._close(twin, "duplicate: the connection both sides keep is another")
            if self._by_id.get(twin.peer_id) is twin:
                del self._by_id[twin.peer_id]
        self._peer_parts()
        peer = PeerState(link, now, self._keep, self.config.min_queue_depth)
        peer.source = (self._book.source(link.address) or "") if link.outgoing else "incoming"
        if self._downloader is not None:
            self._downloader.set_depth(peer, self.config.min_queue_depth)
        self._peers[link] = peer
        self._by_id[peer.peer_id] = peer
        self._connections.connected(link)
        self._wake()
        data = b""
        if self._have is not None:  # (PORT after the bitfield: BEP 6 wants that first)
            data = session.send_bitfield(self._have) + self._port_message(session)
        if session.extended:
            try:  # BEP 10: tell the peer the address we see it at
                session.extension_handshake[b"yourip"] = ip_address(link.address[0]).packed
            except ValueError:
                pass
            data += session.send_extension_handshake()
        if self._have is not None:
            data += self._choking.unchoke_on_connect(peer, self._peers.values(), self._paused)
        if data:
            link.send(data)
        self._observer.peer_connected(peer.info(now, self.config.rate_window))
        return True

    def peer_event(self, link: PeerLink, event: object) -> None:
        peer = self._peers.get(link)
        if peer is None or self._state != _RUNNING:
            return
        if type(event) is BlockReceived:  # the hot path: no handler lookup
            downloader = self._downloader
            if downloader is not None:  # (a block comes only once we asked)
                downloader.block(peer, event.piece_index, event.begin, event.block)
            return
        events = self._events
        handler = events.handlers.get(type(event)) if events is not None else None
        if handler is not None:
            handler(peer, event)

    def peer_events_done(self, link: PeerLink) -> None:
        peer = self._peers.get(link)
        if peer is not None and peer.serve_due and self._uploader is not None:
            peer.serve_due = False
            self._uploader.serve(peer)

    def _port_message(self, session: PeerSession) -> bytes:
        """PORT with our DHT node's port, if we run one and so does the peer."""
        return session.send_port(self.dht_port) if self.dht_port and session.dht else b""

    def _on_dht_port(self, peer: PeerState) -> None:
        port = peer.dht_port
        if self.on_dht_port is not None and port:
            self.on_dht_port((peer.address[0], port))

    def _on_interested(self, peer: PeerState, event: PeerInterested) -> None:
        """A free upload slot goes to a newly interested peer at once."""
        self._choking.interested(peer, self._peers.values(), self._paused)

    def peer_lost(self, link: PeerLink, reason: str) -> None:
        peer = self._peers.pop(link, None)
        if peer is None:
            return
        peer.connected = False
        if self._by_id.get(peer.peer_id) is peer:
            del self._by_id[peer.peer_id]
        self._forget(peer)
        self.extensions.peer_lost(peer)
        now = self._clock.seconds()
        self._connections.lost(peer, now)
        self._observer.peer_lost(peer.info(now, self.config.rate_window), reason)
        if not peer.session.am_choking:
            self._rechoke()  # its upload slot is free now

    def connect_failed(self, address: Address, reason: str) -> None:
        if self._connections.failed(address, reason, self._clock.seconds()):
            # Redial with the other MSE method now, once the link is gone.
            self._clock.callLater(0, self._top_up)

    def peer_writable(self, link: PeerLink) -> None:
        """Optional, beyond ``PeerHost``: the link's unwritten bytes went down
        (its transport drained); serve what the peer is waiting for now
        rather than at the next retry."""
        peer = self._peers.get(link)
        if peer is not None and self.running and self._uploader is not None:
            self._uploader.serve(peer)

    # -- DownloadHost ----------------------------------------------------------------------

    def before_write(self) -> Deferred[None] | None:
        hook = self._attached[5] if self._attached is not None else None
        return hook() if hook is not None else None

    def live_peers(self) -> list[PeerState]:
        """The peers neither closing nor with a dead session (the adapter is
        closing those; their ``peer_lost`` may come later)."""
        return [p for p in self._peers.values() if p.connected and not p.session.dead]

    def piece_passed(self, index: int, data: bytearray) -> None:
        assert self._attached is not None
        self._attached[3](index)
        if self.config.cache_downloaded and self._cache is not None:
            self._cache.put(index, data)
        self._observer.piece_verified(index, True)

    def piece_failed(self, index: int, contributors: set[PeerState]) -> None:
        """Charge the senders of a bad piece: a sole sender is banned at once,
        others once their host reaches ``ban_threshold`` failed pieces."""
        assert self._attached is not None
        self._attached[4](index)
        self._observer.piece_verified(index, False)
        for peer, reason in self._connections.charge(index, contributors):
            self._ban(peer, reason)

    def disk_error(self, index: int, failure: Failure) -> None:
        self._observer.disk_error(index, failure)

    def ban(self, peer: PeerState, reason: str) -> None:
        """Ban a peer (a plug-in caught it lying): see ``_ban``."""
        self._ban(peer, reason)

    def _ban(self, peer: PeerState, reason: str) -> None:
        """Ban the peer's host and peer id, and close every connection to either."""
        if not self._connections.ban(peer):
            return
        self._observer.peer_banned(peer.address, peer.peer_id, reason)
        for other in self._connections.sharing_ban(peer):
            self._close(other, f"banned: {reason}")

    def _close(self, peer: PeerState, reason: str) -> None:
        """Close a link and stop counting on the peer now, not at ``peer_lost``."""
        peer.close(reason)
        self._forget(peer)

    def _forget(self, peer: PeerState) -> None:
        """Stop counting on a peer's requests and blocks."""
        if self._downloader is not None and self._uploader is not None:
            self._downloader.peer_gone(peer)
            self._uploader.forget(peer)

    # -- timers -----------------------------------------------------------------------------

    def _tick(self) -> None:
        """Rates, queue depths, idle pipelines and stalled uploads."""
        now = self._clock.seconds()
        self._down.sample(now)
        self._up.sample(now)
        downloader, uploader = self._downloader, self._uploader
        for peer in self.live_peers():
            peer.down.sample(now)
            peer.up.sample(now)
            if downloader is not None:
                downloader.tick(peer, now)
        if uploader is not None:
            uploader.retry_stalled()
        self.extensions.tick(now)

    def _check_requests(self) -> None:
        if self._downloader is not None:
            self._downloader.check_requests(self._clock.seconds())

    def _rechoke(self) -> None:
        """Give the upload slots to the best peers (``choking``)."""
        if not self.running:
            return
        downloader = self._downloader
        self._choking.rechoke(
            self.live_peers(),
            paused=self._paused,
            seeding=downloader.seeding if downloader is not None else False,
            uploader=self._uploader,
        )

    def _top_up(self) -> None:
        """Dial known peers while there is room for more connections."""
        if not self.running or self._paused:
            return
        self._connections.top_up(self, self._clock.seconds())
