"""The mainline DHT node (BEP 5, 32, 42, 43) over the session's UDP sockets.

* ``config``: ``DHTConfig``, the node's settings (``SessionConfig.dht``);
* ``node``: ``DHTNode``, the Twisted adapter over ``core.dht``;
* ``search``: one lookup over both families, its ``LookupResult``;
* ``family``: the per-family table, store and responder; the counters;
* ``bootstrap``: the routers' addresses, resolved and filtered;
* ``state``: the node id and tables saved across restarts;
* ``torrent``: ``TorrentDHT``, a running torrent's periodic get_peers and
  announce_peer.
"""

from txbittorrent.dht.config import DHTConfig
from txbittorrent.dht.node import DHTNode
from txbittorrent.dht.search import DHTError, LookupResult

__all__ = ["DHTConfig", "DHTNode", "DHTError", "LookupResult"]
