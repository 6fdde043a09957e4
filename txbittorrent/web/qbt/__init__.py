"""qBittorrent's Web API v2 on the daemon (``QbtResource``, mounted at
``/api/v2``): a translation layer over the Session and the shared
``TorrentManager``; see ``resource`` for the request flow and ``fields``
for the names and units."""

from txbittorrent.web.qbt.resource import SID_COOKIE, QbtResource

__all__ = ["QbtResource", "SID_COOKIE"]
