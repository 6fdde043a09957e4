"""The native API's routes about the whole session: global rate limits and
totals.  Thin over the Session: its throttles and its torrents' figures;
the global limits are recorded in the store's settings (``download_limit``
and ``upload_limit``: an int of bytes/s, absent for unlimited, so
``get_setting(key, None, int)`` reads them) for the daemon to apply at its
next start."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from txbittorrent.web.apitorrent import limits_body, read_limits

if TYPE_CHECKING:
    from txbittorrent.daemon.store import StateStore
    from txbittorrent.session import Session

__all__ = ["global_limits", "set_global_limits", "stats"]


def global_limits(session: Session) -> dict[str, Any]:
    """``{"download_limit", "upload_limit"}`` of the session (bytes/s or null)."""
    return limits_body(session.download_throttle.rate, session.upload_throttle.rate)


def set_global_limits(
    session: Session, store: StateStore | None, body: Mapping[str, Any]
) -> dict[str, Any]:
    """Change the session's limits now (a key left out keeps its value) and
    record them in the store's settings."""
    down, up = session.download_throttle, session.upload_throttle
    new_down, new_up = read_limits(body, down.rate, up.rate)
    down.set_rate(new_down)
    up.set_rate(new_up)
    if store is not None:
        for key, value in (("download_limit", new_down), ("upload_limit", new_up)):
            if value is None:
                store.delete_setting(key)
            else:
                store.set_setting(key, value)
    return global_limits(session)


def stats(session: Session) -> dict[str, Any]:
    """Totals over the session's torrents, its DHT node and its port."""
    torrents = session.torrents()
    dht = session.dht
    return {
        "torrents": len(torrents),
        "download_rate": int(sum(t.download_rate for t in torrents)),
        "upload_rate": int(sum(t.upload_rate for t in torrents)),
        "downloaded": sum(t.downloaded for t in torrents),
        "uploaded": sum(t.uploaded for t in torrents),
        "peers": sum(len(t.peers()) for t in torrents),
        "dht_nodes": dht.node_count() if dht is not None else None,
        "listen_port": session.port,
    }
