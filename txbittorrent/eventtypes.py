"""The typed events of ``txbittorrent.events``: what a torrent reports.

Each event is a frozen, slotted dataclass.  Every one has

* ``kind``: a class constant, a short stable name (``"piece_passed"``) that
  the daemon's SSE/WebSocket streams and the CLI's ``--json`` put on the wire
  and that ``EventBus.subscribe(kinds=...)`` filters on;
* ``info_hash``: the torrent concerned (20 bytes for v1), first field;
* ``event_id``: 0 until an ``EventBus`` publishes it; the bus hands its
  subscribers a copy numbered 1, 2, 3... (see ``events.EventBus``).  It is
  keyword-only and left out of ``==``, so two events say the same thing
  whatever their numbers.

``to_json()`` returns a dict that ``json.dumps`` accepts as it is:

* ``"kind"`` first, then every field by its attribute name;
* bytes (``info_hash``, ``peer_id``) as lowercase hex strings;
* a peer address as a two-item list ``[host, port]``, not ``"host:port"``:
  an IPv6 host holds colons of its own, so the joined form needs brackets and
  a parser on the other side, while the list needs neither and maps back to
  the ``(host, port)`` tuple the engine uses;
* ``None`` as ``null``; numbers and strings as they are.

Some events can carry the engine's rich object for programs that want it
and for the legacy ``TorrentObserver`` (``PeerConnected.info`` and
``PeerLost.info``: a ``PeerInfo``; ``TrackerReply.response``: an
``AnnounceResponse``; ``DiskError.failure``: a ``Failure``).  Those fields
are keyword-only, optional, and left out of ``to_json()``, ``==`` and
``repr()``; the ``from_*`` constructors fill them in.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from twisted.python.failure import Failure

    from txbittorrent.core.tracker.announce import AnnounceResponse
    from txbittorrent.interfaces import Address
    from txbittorrent.swarm.peerstate import PeerInfo

__all__ = [
    "TorrentEvent", "TorrentAdded", "TorrentRemoved", "StateChanged", "Progress",
    "PiecePassed", "PieceFailed", "PeerConnected", "PeerLost", "PeerBanned",
    "TrackerReply", "TrackerError", "DiskError", "MetadataReceived", "Complete",
    "DHTReady", "EVENT_TYPES", "PIECE_FAILURE_REASONS",
]

PIECE_FAILURE_REASONS = frozenset({"hash", "missing"})
"""Why a piece failed: its data did not match its hash, or could not be read."""


def _rich() -> Any:
    """A field for an engine object: optional, keyword-only, not in JSON,
    equality or repr."""
    return field(default=None, kw_only=True, compare=False, repr=False,
                 metadata={"json": False})


def _jsonable(value: object) -> object:
    if value is None or isinstance(value, (str, int, float)):
        return value  # bool is an int
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (tuple, list)):
        return [_jsonable(item) for item in value]
    raise TypeError(f"no JSON form for {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class TorrentEvent:
    """What every event has; not published itself."""

    kind: ClassVar[str] = ""
    info_hash: bytes
    event_id: int = field(default=0, kw_only=True, compare=False)

    def to_json(self) -> dict[str, Any]:
        """A dict of JSON types (see the module docstring for the mapping)."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in fields(self):
            if f.metadata.get("json", True):
                out[f.name] = _jsonable(getattr(self, f.name))
        return out


@dataclass(frozen=True, slots=True)
class TorrentAdded(TorrentEvent):
    """A session took a torrent on.  ``name`` is None when unknown (a
    magnet link without ``dn`` whose metadata has not arrived yet)."""

    kind: ClassVar[str] = "torrent_added"
    name: str | None


@dataclass(frozen=True, slots=True)
class TorrentRemoved(TorrentEvent):
    """A session let a torrent go; no more events follow for it."""

    kind: ClassVar[str] = "torrent_removed"


@dataclass(frozen=True, slots=True)
class StateChanged(TorrentEvent):
    """``Torrent.state`` moved (``"stopped"``, ``"paused"``, ``"active"``)."""

    kind: ClassVar[str] = "state_changed"
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class Progress(TorrentEvent):
    """A periodic summary, published by whoever owns the timer.

    ``bytes_done`` counts verified wanted bytes, ``left`` the wanted bytes
    still missing; the rates are payload bytes per second; ``peers`` counts
    connected peers; ``downloaded``/``uploaded`` are the payload bytes moved
    since the torrent started."""

    kind: ClassVar[str] = "progress"
    have_pieces: int
    piece_count: int
    bytes_done: int
    left: int
    download_rate: float
    upload_rate: float
    peers: int
    downloaded: int = 0
    uploaded: int = 0


@dataclass(frozen=True, slots=True)
class PiecePassed(TorrentEvent):
    """A piece was hashed and matched: downloaded, or rechecked from disk."""

    kind: ClassVar[str] = "piece_passed"
    piece_index: int


@dataclass(frozen=True, slots=True)
class PieceFailed(TorrentEvent):
    """A piece did not verify: ``reason`` is ``"hash"`` (wrong data) or
    ``"missing"`` (its data could not be read)."""

    kind: ClassVar[str] = "piece_failed"
    piece_index: int
    reason: Literal["hash", "missing"]

    def __post_init__(self) -> None:
        if self.reason not in PIECE_FAILURE_REASONS:
            raise ValueError(f"reason must be 'hash' or 'missing', not {self.reason!r}")


@dataclass(frozen=True, slots=True)
class PeerConnected(TorrentEvent):
    """A peer finished its handshake and was accepted."""

    kind: ClassVar[str] = "peer_connected"
    address: Address
    peer_id: bytes
    client: str
    source: str = ""
    """Who named the peer: a tracker's URL, "user", "magnet", "pex", "dht",
    or "incoming" (peers learned, by source)."""
    info: PeerInfo | None = _rich()

    @classmethod
    def from_info(cls, info_hash: bytes, info: PeerInfo) -> PeerConnected:
        return cls(info_hash, info.address, info.peer_id, info.client, info.source, info=info)


@dataclass(frozen=True, slots=True)
class PeerLost(TorrentEvent):
    """An accepted peer's connection ended, for ``reason``."""

    kind: ClassVar[str] = "peer_lost"
    address: Address
    reason: str
    info: PeerInfo | None = _rich()

    @classmethod
    def from_info(cls, info_hash: bytes, info: PeerInfo, reason: str) -> PeerLost:
        return cls(info_hash, info.address, reason, info=info)


@dataclass(frozen=True, slots=True)
class PeerBanned(TorrentEvent):
    """A peer's host and id are banned (``peer_id`` None if it never sent one)."""

    kind: ClassVar[str] = "peer_banned"
    address: Address
    peer_id: bytes | None
    reason: str


@dataclass(frozen=True, slots=True)
class TrackerReply(TorrentEvent):
    """A tracker answered an announce.  ``peers`` counts the addresses it
    gave (IPv4 and IPv6); ``complete``/``incomplete`` are its seeder and
    leecher counts when it sent them; ``interval`` is in seconds."""

    kind: ClassVar[str] = "tracker_reply"
    url: str
    peers: int
    complete: int | None
    incomplete: int | None
    interval: int
    warning: str | None = None
    response: AnnounceResponse | None = _rich()

    @classmethod
    def from_response(cls, info_hash: bytes, url: str,
                      response: AnnounceResponse) -> TrackerReply:
        return cls(
            info_hash, url, len(response.peers) + len(response.peers6),
            response.complete, response.incomplete, response.interval,
            response.warning_message, response=response,
        )


@dataclass(frozen=True, slots=True)
class TrackerError(TorrentEvent):
    """An announce failed (unreachable, timed out, refused, garbage)."""

    kind: ClassVar[str] = "tracker_error"
    url: str
    message: str


@dataclass(frozen=True, slots=True)
class DiskError(TorrentEvent):
    """Reading or writing failed, for piece ``piece_index`` or (None) for
    the torrent as a whole."""

    kind: ClassVar[str] = "disk_error"
    piece_index: int | None
    message: str
    failure: Failure | None = _rich()

    @classmethod
    def from_failure(cls, info_hash: bytes, piece_index: int | None,
                     failure: Failure) -> DiskError:
        name = getattr(failure.type, "__name__", "Error")
        text = failure.getErrorMessage()
        message = f"{name}: {text}" if text else name
        return cls(info_hash, piece_index, message, failure=failure)


@dataclass(frozen=True, slots=True)
class MetadataReceived(TorrentEvent):
    """The info dictionary arrived (BEP 9) and matched the info hash."""

    kind: ClassVar[str] = "metadata_received"
    name: str
    piece_count: int
    size: int


@dataclass(frozen=True, slots=True)
class Complete(TorrentEvent):
    """Every wanted piece is verified (once per completion)."""

    kind: ClassVar[str] = "complete"


@dataclass(frozen=True, slots=True)
class DHTReady(TorrentEvent):
    """The session's DHT node joined the DHT (BEP 5): its first lookup of its
    own id got answers and ``node_count`` nodes are in its routing tables.
    A session-wide event: ``info_hash`` is ``b""``."""

    kind: ClassVar[str] = "dht_ready"
    node_count: int


EVENT_TYPES: dict[str, type[TorrentEvent]] = {
    cls.kind: cls
    for cls in (
        TorrentAdded, TorrentRemoved, StateChanged, Progress, PiecePassed, PieceFailed,
        PeerConnected, PeerLost, PeerBanned, TrackerReply, TrackerError, DiskError,
        MetadataReceived, Complete, DHTReady,
    )
}
"""Every event type by its ``kind``."""
