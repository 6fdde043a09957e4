"""One running torrent's use of the session's DHT node: announce and look up.

Theory of operation
-------------------
A ``TorrentDHT`` lives while its torrent runs (``running.RunningTorrent``
makes one when the torrent may use the DHT: ``TorrentConfig.dht``, not
private, and the session runs a node).  It does rounds, one at a time:

* a round is ``DHTNode.announce`` (a get_peers walk, then announce_peer
  with our listening port to the nearest nodes that gave a token), or a
  bare ``get_peers`` when we do not listen; the peers it finds go to
  ``add_peers(peers, "dht")`` as they come;
* the first round starts once the node has joined, or after
  ``START_WAIT`` seconds, whichever is first;
* after a round that found peers the next is ``interval`` seconds later
  (15 minutes, libtorrent's ``dht_announce_interval``); after one that
  found none, sooner: ``retry[n]`` seconds for the n-th such round in a
  row (1, 2, 5 minutes, then ``interval``), so a torrent at start or in
  a small swarm does not wait a quarter of an hour;
* ``private()`` is asked before each round (a magnet's privacy is known only
  once its metadata arrives): a private torrent stops its rounds (BEP 27).

``stop`` cancels the timer; a round under way finishes in the node, its
peers no longer handed on.  ``rounds``, ``last`` and ``history`` tell what
happened.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from txbittorrent.core.dht.krpc import Address

if TYPE_CHECKING:
    from txbittorrent.dht.node import DHTNode
    from txbittorrent.dht.search import LookupResult

__all__ = ["TorrentDHT", "ANNOUNCE_INTERVAL", "RETRY", "START_WAIT", "SOURCE"]

_log = Logger()

ANNOUNCE_INTERVAL = 15 * 60.0
"""Seconds between rounds that find peers."""
RETRY = (60.0, 120.0, 300.0)
"""Seconds before the next round after the 1st, 2nd, 3rd... round in a row without peers."""
START_WAIT = 10.0
"""Seconds the first round waits for the node to join, at most."""
SOURCE = "dht"
"""The address book's name for peers found here."""
HISTORY = 16
"""Results kept in ``history``."""


class TorrentDHT:
    """The DHT rounds of one running torrent (see the module docstring)."""

    def __init__(
        self,
        node: DHTNode,
        info_hash: bytes,
        clock: Any,
        *,
        add_peers: Callable[[Iterable[Address], str], object],
        listen_port: Callable[[], int | None],
        private: Callable[[], bool] = lambda: False,
        interval: float = ANNOUNCE_INTERVAL,
        retry: tuple[float, ...] = RETRY,
        start_wait: float = START_WAIT,
    ) -> None:
        self.node = node
        self.info_hash = info_hash
        self._clock = clock
        self._add_peers = add_peers
        self._listen_port = listen_port
        self._private = private
        self.interval = interval
        self.retry = retry
        self.start_wait = start_wait
        self.rounds = 0
        """Rounds finished."""
        self.peers_found = 0
        """Peers handed to ``add_peers`` (with repeats across rounds)."""
        self.last: LookupResult | None = None
        self.history: deque[LookupResult] = deque(maxlen=HISTORY)
        self._empty_rounds = 0
        self._timer: Any = None
        self._waiting: Any = None
        self._in_round = False
        self._running = False

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        """The first round once the node has joined (or after ``start_wait``)."""
        if self._running:
            return
        self._running = True
        if self.node.ready:
            self._schedule(0.0)
            return
        self._schedule(self.start_wait)
        self._waiting = self.node.when_ready()
        self._waiting.addCallbacks(lambda _: self._ready(), lambda _: None)

    def _ready(self) -> None:
        self._waiting = None
        # At once, unless a round under way or done already found peers.
        if self._running and not self._in_round and (self.last is None or not self.last.peers):
            self._schedule(0.0)

    def stop(self) -> None:
        """No more rounds; peers of the round under way are not handed on."""
        self._running = False
        self._cancel()
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.cancel()

    def _cancel(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _schedule(self, delay: float) -> None:
        self._cancel()
        self._timer = self._clock.callLater(delay, self._round)

    def _round(self) -> None:
        self._timer = None
        if not self._running or self._in_round:
            return
        if self._private():
            _log.info("{info_hash} is private: no DHT (BEP 27)", info_hash=self.info_hash.hex())
            self.stop()
            return
        port = self._listen_port()
        self._in_round = True
        if port:
            d = self.node.announce(self.info_hash, port, on_peers=self._found)
        else:
            d = self.node.get_peers(self.info_hash, on_peers=self._found)
        d.addCallbacks(self._done, self._failed)

    def _found(self, peers: list[Address]) -> None:
        if self._running and peers:
            self.peers_found += len(peers)
            self._add_peers(peers, SOURCE)

    def _done(self, result: LookupResult) -> None:
        self._in_round = False
        self.rounds += 1
        self.last = result
        self.history.append(result)
        _log.debug(
            "DHT round for {info_hash}: {peers} peers, {queries} queries, {elapsed:.2f} s, "
            "{announced} announces", info_hash=self.info_hash.hex(), peers=len(result.peers),
            queries=result.queries, elapsed=result.elapsed, announced=result.announced,
        )
        if not self._running:
            return
        if result.peers:
            self._empty_rounds = 0
            self._schedule(self.interval)
        else:
            delay = self.retry[self._empty_rounds] if self._empty_rounds < len(self.retry) \
                else self.interval
            self._empty_rounds += 1
            self._schedule(delay)

    def _failed(self, failure: Any) -> None:
        self._in_round = False
        if self._running:
            _log.info("DHT round for {info_hash} failed: {error}",
                      info_hash=self.info_hash.hex(), error=failure.getErrorMessage())
            self._schedule(self.retry[0] if self.retry else self.interval)
