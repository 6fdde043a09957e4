"""The parts of a torrent that live from ``start`` to ``stop``.

Theory of operation
-------------------
``RunningTorrent`` is the composition the ``Torrent`` facade keeps while it
runs, and nothing else: the ``Session`` (shared, or one of its own that it
starts and stops), the ``Swarm`` (made for the info hash alone, and given
the data with ``attach_data`` as soon as the metadata is known, which may be
at once), the ``Announcer`` (always made, so trackers can be added to a
torrent that had none), the ``TorrentDHT`` (when the session runs a DHT
node, ``TorrentConfig.dht`` is on and the torrent is not private: its
rounds of get_peers and announce_peer, and the swarm's PORT messages), and
its timers (resume saves, progress events: ``swarm.timers.PhasedTimer``s,
which schedule nothing while they have nothing to do).

The HTTP announces of a session's torrents share one HTTP tracker client
and one ``tracker.pacing.AnnouncePacer`` (a few dozen in flight, the rest
queued), so a session starting thousands of torrents does not make
thousands of web clients, nor thousands of HTTP requests in one reactor
turn.

It decides nothing about pieces, peers or trackers: the swarm, the
announcer and the torrent's data do.  ``launch`` builds and starts
everything; ``stop`` stops it in the reverse order and fires once every
connection, timer and socket it made is gone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from weakref import WeakKeyDictionary
from typing import TYPE_CHECKING, Any, Protocol

from twisted.internet.defer import Deferred, fail, inlineCallbacks

from txbittorrent.interfaces import Address
from txbittorrent.peer.throttle import Throttle
from txbittorrent.session import Session
from txbittorrent.swarm.config import SwarmObserver
from txbittorrent.swarm.plugins import PluginContext
from txbittorrent.swarm.swarm import Swarm
from txbittorrent.swarm.timers import PhasedTimer
from txbittorrent.tracker.announcer import Announcer
from txbittorrent.tracker.pacing import AnnouncePacer, PacedTracker
from txbittorrent.core.tracker.announce import AnnounceRequest, AnnounceResponse
from txbittorrent.tracker.client import HTTPTrackerClient, TrackerConnectionError

if TYPE_CHECKING:
    from txbittorrent.dht.torrent import TorrentDHT
    from txbittorrent.config import TorrentConfig
    from txbittorrent.storage.data import TorrentData
    from txbittorrent.swarm.extensions import PeerExtension

__all__ = ["RunningTorrent", "TorrentRunHost"]



class TorrentRunHost(Protocol):
    """What the running parts need of their torrent (the facade provides it)."""

    @property
    def info_hash(self) -> bytes: ...

    @property
    def peer_id(self) -> bytes: ...

    @property
    def config(self) -> TorrentConfig: ...

    @property
    def rng(self) -> Any: ...

    def transfer_stats(self) -> tuple[int, int, int]:
        """(uploaded, downloaded, left) for announces."""

    def piece_downloaded(self, index: int) -> None:
        """The swarm verified and wrote a piece."""

    def piece_failed(self, index: int) -> None:
        """A downloaded piece failed its hash check."""

    def tracker_reply(self, url: str, response: Any) -> None: ...

    def tracker_error(self, url: str, message: str) -> None: ...

    def make_extensions(self, context: PluginContext) -> list[PeerExtension]:
        """The BEP 10 plug-ins of the swarm."""

    def info_bytes(self) -> bytes | None:
        """The raw info dictionary, when known."""

    def metadata_received(self, info_bytes: bytes) -> None:
        """A fetched info dictionary whose SHA-1 is the info hash."""

    @property
    def private(self) -> bool: ...


class RunningTorrent:
    """The session, swarm, announcer and saver of a started torrent."""

    def __init__(
        self,
        host: TorrentRunHost,
        session: Session,
        own_session: bool,
        clock: Any,
        trackers: Iterable[Iterable[str]],
        observer: SwarmObserver,
    ) -> None:
        cfg = host.config
        self.host = host
        self.clock = clock
        self.session = session
        self.own_session = own_session
        self.swarm = Swarm(
            host.info_hash,
            host.peer_id,
            session,
            clock,
            host.rng,
            config=cfg.swarm_config(),
            upload_throttle=Throttle(cfg.upload_limit, clock),
            download_throttle=Throttle(cfg.download_limit, clock),
            observer=observer,
        )
        tracker_cfg = cfg.tracker
        self.announcer = Announcer(
            [list(tier) for tier in trackers],
            host.info_hash,
            host.peer_id,
            self,
            clock,
            host.rng,
            _http_tracker(session, clock, tracker_cfg.http_timeout),
            _SessionUDPTracker(session, tracker_cfg.udp_max_n),
            tracker_cfg,
        )
        self.timers: list[PhasedTimer] = []
        self.save_timer: PhasedTimer | None = None
        """The torrent's periodic resume save, if it has one (see ``every``)."""
        self.progress_timer: PhasedTimer | None = None
        """The torrent's ``Progress`` timer, if it has one."""
        self.completed_sent = False
        self.dht: TorrentDHT | None = None
        """The torrent's DHT rounds, if it uses the session's DHT node."""

    @classmethod
    @inlineCallbacks
    def launch(
        cls,
        host: TorrentRunHost,
        session: Session,
        own_session: bool,
        clock: Any,
        trackers: Iterable[Iterable[str]],
        observer: SwarmObserver,
        data: TorrentData | None,
    ) -> Any:
        """Start the session (if it is ours) and the swarm; fires with the
        ``RunningTorrent``.  The torrent starts the announcer when ready."""
        if own_session:
            yield session.start()
        run = cls(host, session, own_session, clock, trackers, observer)
        swarm = run.swarm
        swarm.listen_port = session.port

        def plug_ins() -> None:
            context = PluginContext(
                info_hash=host.info_hash,
                config=host.config,
                clock=clock,
                rng=host.rng,
                extensions=swarm.extensions,
                live_peers=swarm.live_peers,
                add_peers=swarm.add_peers,
                info_bytes=host.info_bytes,
                metadata_received=host.metadata_received,
                private=lambda: host.private,
                ban=swarm.ban,
            )
            for extension in host.make_extensions(context):
                swarm.extensions.register(extension)

        swarm.extensions.defer(plug_ins)  # made with the first peer
        if data is not None:
            run.attach_data(data)
        run.use_dht()
        session.add_host(swarm)
        swarm.start()
        if run.dht is not None:
            run.dht.start()
        return run

    def use_dht(self) -> None:
        """Join the session's DHT node, if it runs one and the torrent may
        (``TorrentConfig.dht``, not private: BEP 27): PORT messages both ways
        and a ``TorrentDHT``."""
        node, host = self.session.dht, self.host
        if node is None or not node.running or not host.config.dht or host.private:
            return
        from txbittorrent.dht.torrent import TorrentDHT  # (only with a DHT node)

        swarm, session = self.swarm, self.session
        swarm.dht_port = node.port
        swarm.on_dht_port = node.add_node
        self.dht = TorrentDHT(
            node, host.info_hash, self.clock, add_peers=swarm.add_peers,
            listen_port=lambda: session.port, private=lambda: host.private,
        )

    def set_rate_limits(self, download: float | None, upload: float | None) -> None:
        """Change the torrent's own throttles (bytes/s, None: unlimited);
        every connection charges them, so the change applies at once."""
        self.swarm.download_throttle.set_rate(download)
        self.swarm.upload_throttle.set_rate(upload)

    def attach_data(self, data: TorrentData) -> None:
        """The metadata is known: pieces move from now on, and connected
        peers hear our extension handshake again (``metadata_size``...)."""
        host = self.host
        self.swarm.attach(
            data.metainfo,
            data.layout,
            data.ensure_store(),
            data.completion,
            on_piece_passed=host.piece_downloaded,
            on_piece_failed=host.piece_failed,
            before_write=data.before_write,
        )

    # -- AnnounceHost -------------------------------------------------------------

    def listen_port(self) -> int:
        return self.session.port or 0

    def transfer_stats(self) -> tuple[int, int, int]:
        return self.host.transfer_stats()

    def add_peers(self, peers: Iterable[Address], source: str) -> int:
        return self.swarm.add_peers(peers, source)

    def tracker_reply(self, url: str, response: AnnounceResponse) -> None:
        self.host.tracker_reply(url, response)

    def tracker_error(self, url: str, message: str) -> None:
        self.host.tracker_error(url, message)

    def every(
        self,
        interval: float,
        f: Callable[[], Any],
        needed: Callable[[], bool] | None = None,
        idle_slots: int | None = None,
    ) -> PhasedTimer:
        """Call ``f`` every ``interval`` seconds from now until ``stop``
        (resume saves, progress events), while ``needed()`` (default: always;
        see ``PhasedTimer`` for ``idle_slots`` and ``wake``).  The first
        call is one interval from now, if needed then."""
        timer = PhasedTimer(
            self.clock, interval, self.clock.seconds(), f,
            needed if needed is not None else _always, idle_slots,
        )
        self.timers.append(timer)
        if idle_slots is not None or needed is None or needed():
            timer.wake()
        return timer

    @inlineCallbacks
    def stop(self) -> Any:
        """Stop announcing (``stopped`` to the trackers), close every
        connection, stop the session if it is ours."""
        for timer in self.timers:
            timer.stop()
        self.timers = []
        if self.dht is not None:
            self.dht.stop()
        waits = [self.swarm.stop(), self.announcer.stop()]
        yield _all_done(waits)
        self.session.remove_host(self.swarm)
        if self.own_session:
            yield self.session.stop()
        return None


_HTTP: WeakKeyDictionary[Session, dict[float, PacedTracker]] = WeakKeyDictionary()
"""Each session's HTTP tracker clients, by time-out, behind its pacer."""


def _http_tracker(session: Session, clock: Any, timeout: float) -> PacedTracker:
    """The HTTP tracker client (one web client, not one per torrent) and
    the announce pacer (``tracker.pacing``) that ``session``'s torrents
    with this time-out share."""
    clients = _HTTP.get(session)
    if clients is None:
        clients = _HTTP[session] = {}
    client = clients.get(timeout)
    if client is None:
        pacer = next(iter(clients.values())).pacer if clients else AnnouncePacer(clock)
        client = clients[timeout] = PacedTracker(
            HTTPTrackerClient(reactor=clock, timeout=timeout), pacer
        )
    return client


def _always() -> bool:
    return True


def _all_done(waits: list[Deferred[Any]]) -> Deferred[None]:
    """Fires (with None) once each of ``waits`` has fired; their failures
    are consumed.  (``DeferredList`` would do, at several times the cost:
    a session stops thousands of torrents at once.)"""
    done: Deferred[None] = Deferred()
    left = len(waits)

    def one(_: object) -> None:
        nonlocal left
        left -= 1
        if not left:
            done.callback(None)

    for d in waits:
        d.addBoth(one)
    if not waits:
        done.callback(None)
    return done


class _SessionUDPTracker:
    """The session's shared UDP tracker client, reached on the first udp://
    announce (so a torrent without UDP trackers binds no UDP socket)."""

    def __init__(self, session: Session, max_n: int) -> None:
        self._session = session
        self._max_n = max_n

    def announce(self, url: str, request: AnnounceRequest) -> Deferred[AnnounceResponse]:
        try:
            client = self._session.udp_tracker(self._max_n)
        except Exception as e:
            return fail(TrackerConnectionError(f"{url}: no UDP socket: {e}"))
        return client.announce(url, request)
