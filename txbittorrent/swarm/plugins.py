"""Which BEP 10 plug-ins a torrent's swarm runs, and what they may reach.

Theory of operation
-------------------
When a torrent starts, ``RunningTorrent`` builds a ``PluginContext`` and
asks the torrent (``Torrent.make_extensions``, by default
``builtin_extensions``) for its plug-ins, and registers each with the
swarm's ``Extensions`` dispatcher before the swarm accepts any connection.

The context is a plug-in's whole view of the torrent: its info hash, the
clock and randomness, the dispatcher (to send), the live peers, where
learned peers go (``add_peers``, a ``PeerSource``), the raw info dictionary
once known, where a fetched and verified one goes (``metadata_received``),
and whether the torrent is private (BEP 27: no PEX, no DHT, no metadata to
or from strangers).  Plug-ins never hold the torrent, the swarm or a link.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from txbittorrent.swarm.metadata import MetadataExchange
from txbittorrent.swarm.pex import PexExtension

if TYPE_CHECKING:
    from txbittorrent.config import TorrentConfig
    from txbittorrent.interfaces import Address
    from txbittorrent.swarm.extensions import Extensions, PeerExtension
    from txbittorrent.swarm.peerstate import PeerState

__all__ = ["PluginContext", "builtin_extensions"]


@dataclass
class PluginContext:
    """What a torrent's plug-ins may use (see the module docstring)."""

    info_hash: bytes
    config: TorrentConfig
    clock: Any
    rng: random.Random
    extensions: Extensions
    """The swarm's dispatcher: ``send(peer, name, payload)``."""
    live_peers: Callable[[], list[PeerState]]
    """The connected peers whose session is alive."""
    add_peers: Callable[[Iterable[Address], str], int]
    """Candidate peers learned (``source``: "pex", ...)."""
    info_bytes: Callable[[], bytes | None]
    """The raw info dictionary, exactly as hashed (None before the metadata)."""
    metadata_received: Callable[[bytes], None]
    """Hand over a fetched info dictionary whose SHA-1 is the info hash."""
    private: Callable[[], bool]
    """BEP 27: the torrent is private (known once the metadata is)."""
    ban: Callable[[Any, str], None] = lambda peer, reason: None
    """Ban a peer (its host and peer id) for ``reason``: it lied."""


def builtin_extensions(context: PluginContext) -> list[PeerExtension]:
    """The plug-ins every torrent runs unless ``Torrent.make_extensions`` says
    otherwise (each decides for itself whether private torrents use it)."""
    out: list[PeerExtension] = [MetadataExchange(context)]  # BEP 9 (serves nobody if private)
    if context.config.pex and not context.private():  # BEP 11 (never private: BEP 27)
        out.append(PexExtension(context))
    return out
