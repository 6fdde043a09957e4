"""The mainline DHT node (BEP 5, 32, 42, 43) over the session's UDP sockets.

* ``config``: ``DHTConfig``, the node's settings (``SessionConfig.dht``);
* ``node``: ``DHTNode``, the Twisted adapter over ``core.dht``;
* ``search``: one lookup over both families, its ``LookupResult``;
* ``family``: the per-family table, store and responder; the counters;
* ``bootstrap``: the routers' addresses, resolved and filtered;
* ``state``: the node id and tables saved across restarts;
* ``torrent``: ``TorrentDHT``, a running torrent's periodic get_peers and
  announce_peer.

The names below are imported when first asked for (PEP 562), so that a
``SessionConfig`` (which imports ``dht.config``) does not load the node
and its protocol code into a process that never runs one.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from txbittorrent.dht.config import DHTConfig
    from txbittorrent.dht.node import DHTNode
    from txbittorrent.dht.search import DHTError, LookupResult

__all__ = ["DHTConfig", "DHTNode", "DHTError", "LookupResult"]

_HOMES = {
    "DHTConfig": "txbittorrent.dht.config",
    "DHTNode": "txbittorrent.dht.node",
    "DHTError": "txbittorrent.dht.search",
    "LookupResult": "txbittorrent.dht.search",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
