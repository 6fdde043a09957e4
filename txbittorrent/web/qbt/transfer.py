"""``transfer/*``: the session's totals and global rate limits.

The global limits are the session's throttles (bytes/s, 0: unlimited),
changed and recorded as the native API does (``apisession``).
``connection_status`` is "connected" while the session listens.
"""

from __future__ import annotations

import shutil
from typing import Any

from txbittorrent.web import apisession
from txbittorrent.web.qbt.base import Call, Context, QbtError, endpoint

__all__ = ["server_state", "transfer_info"]


def _rate(value: float | None) -> int:
    return 0 if value is None else int(value)


def transfer_info(ctx: Context) -> dict[str, Any]:
    session = ctx.session
    torrents = session.torrents()
    dht = session.dht
    return {
        "dl_info_speed": int(sum(t.download_rate for t in torrents)),
        "dl_info_data": sum(t.downloaded for t in torrents),
        "up_info_speed": int(sum(t.upload_rate for t in torrents)),
        "up_info_data": sum(t.uploaded for t in torrents),
        "dl_rate_limit": _rate(session.download_throttle.rate),
        "up_rate_limit": _rate(session.upload_throttle.rate),
        "dht_nodes": dht.node_count() if dht is not None else 0,
        "connection_status": "connected" if session.port else "disconnected",
    }


def server_state(ctx: Context) -> dict[str, Any]:
    """``sync/maindata``'s ``server_state``."""
    state = transfer_info(ctx)
    try:
        free = shutil.disk_usage(ctx.download_dir).free
    except OSError:
        free = 0
    state.update({
        "alltime_dl": state["dl_info_data"],
        "alltime_ul": state["up_info_data"],
        "free_space_on_disk": free,
        "queueing": False,
        "use_alt_speed_limits": False,
        "refresh_interval": 1500,
        "total_peer_connections": sum(len(t.peers()) for t in ctx.session.torrents()),
    })
    return state


@endpoint("transfer", "info")
def info(call: Call) -> dict[str, Any]:
    return transfer_info(call.ctx)


@endpoint("transfer", "downloadLimit")
def download_limit(call: Call) -> str:
    return str(_rate(call.ctx.session.download_throttle.rate))


@endpoint("transfer", "uploadLimit")
def upload_limit(call: Call) -> str:
    return str(_rate(call.ctx.session.upload_throttle.rate))


def _set(call: Call, key: str) -> str:
    value = call.integer("limit")
    if value is None:
        raise QbtError(400, "Missing required parameters")
    apisession.set_global_limits(call.ctx.session, call.ctx.store,
                                 {key: value if value > 0 else None})
    return ""


@endpoint("transfer", "setDownloadLimit", changes=True)
def set_download_limit(call: Call) -> str:
    return _set(call, "download_limit")


@endpoint("transfer", "setUploadLimit", changes=True)
def set_upload_limit(call: Call) -> str:
    return _set(call, "upload_limit")


@endpoint("transfer", "speedLimitsMode")
def speed_limits_mode(call: Call) -> str:
    return "0"
