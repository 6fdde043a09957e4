"""The RPC's session methods: ``session-get``, ``session-set``,
``session-stats``, ``free-space``, ``port-test``, ``blocklist-update`` and
the ones the daemon refuses.

The daemon reports itself as Transmission 4.0 (``rpc-version`` 17,
``rpc-version-minimum`` 14, as 4.0 does): clients pick their field names
from the version.  Speeds are in kB/s of 1000 bytes (``units``
``speed-bytes``).  The global limits are the session's throttles, changed
and recorded through ``apisession.set_global_limits`` as the native API
does.  Settings the daemon does not have (alt speeds, queues, scripts,
blocklists) are reported with their disabled values, and accepted and
ignored by ``session-set``.  ``encryption`` is the session's MSE/PE mode
(see ``_ENCRYPTION_NAMES``), recorded in the store's settings as the
daemon's next start reads it.
"""

from __future__ import annotations

import os
from typing import Any

from txbittorrent import __version__
from txbittorrent.daemon.config import ENCRYPTION_SETTING
from txbittorrent.state import TorrentState
from txbittorrent.web import apisession
from txbittorrent.web.apibody import ApiError, save_path
from txbittorrent.web.transmission.fields import KB
from txbittorrent.web.transmission.rpc import RpcContext, RpcError, flag, integer, method

__all__ = ["RPC_VERSION", "RPC_VERSION_MINIMUM", "RPC_VERSION_SEMVER", "VERSION",
           "session_arguments", "under"]

RPC_VERSION = 17
RPC_VERSION_MINIMUM = 14
RPC_VERSION_SEMVER = "5.3.0"
VERSION = f"4.0.6 (txbittorrent {__version__})"
"""Transmission's release whose RPC this speaks, and what speaks it."""

_UNITS = {
    "speed-units": ["kB/s", "MB/s", "GB/s", "TB/s"], "speed-bytes": KB,
    "size-units": ["kB", "MB", "GB", "TB"], "size-bytes": KB,
    "memory-units": ["KiB", "MiB", "GiB", "TiB"], "memory-bytes": 1024,
}


def under(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or inside it (symbolic links resolved)."""
    real, base = os.path.realpath(path), os.path.realpath(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def _free(path: str) -> tuple[int, int]:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize, stat.f_blocks * stat.f_frsize


def _limit_kb(rate: float | None, remembered: int) -> tuple[int, bool]:
    if rate is None:
        return remembered, False
    return max(1, int(round(rate / KB))), True


_ENCRYPTION_NAMES = {"forced": "required", "enabled": "preferred", "disabled": "tolerated"}
"""Transmission's ``encryption`` for our modes: "required" is RC4 only,
"preferred" accepts both (our "enabled"), and "tolerated", plaintext
preferred, is the nearest to "disabled" (plain only): set, each gives the
mode it is read from.  A change applies to the connections made from then on."""
_ENCRYPTION_MODES = {name: mode for mode, name in _ENCRYPTION_NAMES.items()}


def session_arguments(ctx: RpcContext) -> dict[str, Any]:
    """Every ``session-get`` field."""
    session = ctx.session
    down, down_on = _limit_kb(session.download_throttle.rate, ctx.speed_kb["down"])
    up, up_on = _limit_kb(session.upload_throttle.rate, ctx.speed_kb["up"])
    try:
        free, _ = _free(ctx.add_dir)
    except OSError:
        free = -1
    return {
        "alt-speed-down": 50, "alt-speed-enabled": False, "alt-speed-time-begin": 540,
        "alt-speed-time-day": 127, "alt-speed-time-enabled": False, "alt-speed-time-end": 1020,
        "alt-speed-up": 50,
        "blocklist-enabled": False, "blocklist-size": 0, "blocklist-url": "",
        "cache-size-mb": 4,
        "config-dir": ctx.config_dir,
        "default-trackers": "",
        "dht-enabled": session.dht is not None,
        "download-dir": ctx.add_dir,
        "download-dir-free-space": free,
        "download-queue-enabled": False, "download-queue-size": 5,
        "encryption": _ENCRYPTION_NAMES.get(session.encryption, "preferred"),
        "idle-seeding-limit": 30, "idle-seeding-limit-enabled": False,
        "incomplete-dir": ctx.add_dir, "incomplete-dir-enabled": False,
        "lpd-enabled": False,
        "peer-limit-global": 200, "peer-limit-per-torrent": 50,
        "peer-port": int(session.port or 0), "peer-port-random-on-start": False,
        "pex-enabled": True,
        "port-forwarding-enabled": False,
        "queue-stalled-enabled": False, "queue-stalled-minutes": 30,
        "rename-partial-files": False,
        "rpc-version": RPC_VERSION, "rpc-version-minimum": RPC_VERSION_MINIMUM,
        "rpc-version-semver": RPC_VERSION_SEMVER,
        "script-torrent-added-enabled": False, "script-torrent-added-filename": "",
        "script-torrent-done-enabled": False, "script-torrent-done-filename": "",
        "script-torrent-done-seeding-enabled": False, "script-torrent-done-seeding-filename": "",
        "seed-queue-enabled": False, "seed-queue-size": 10,
        "seedRatioLimit": 2.0, "seedRatioLimited": False,
        "session-id": ctx.session_id,
        "speed-limit-down": down, "speed-limit-down-enabled": down_on,
        "speed-limit-up": up, "speed-limit-up-enabled": up_on,
        "start-added-torrents": True,
        "trash-original-torrent-files": False,
        "units": dict(_UNITS),
        "utp-enabled": False,
        "version": VERSION,
    }


@method("session-get")
def session_get(ctx: RpcContext, arguments: dict[str, Any]) -> dict[str, Any]:
    everything = session_arguments(ctx)
    fields = arguments.get("fields")
    if fields is None:
        return everything
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise RpcError("'fields' must be a list of names")
    return {name: everything[name] for name in fields if name in everything}


def _new_limit(arguments: dict[str, Any], key: str, current: float | None,
               remembered: dict[str, int], which: str) -> tuple[bool, int | None]:
    """(changed, bytes/s or None) from ``speed-limit-*`` and ``*-enabled``."""
    value = integer(arguments, key)
    enabled_key = key + "-enabled"
    if value is not None:
        remembered[which] = value
    if enabled_key in arguments:
        enabled = flag(arguments, enabled_key)
    elif value is not None:
        enabled = current is not None  # a new value for a limit in force applies at once
    else:
        return False, None
    if not enabled:
        return True, None
    kb = remembered[which]
    if kb <= 0:
        raise RpcError(f"'{key}' must be at least 1 kB/s to be enabled")
    return True, kb * KB


@method("session-set")
def session_set(ctx: RpcContext, arguments: dict[str, Any]) -> dict[str, Any]:
    session = ctx.session
    new_dir = None
    if "download-dir" in arguments:
        try:
            new_dir = save_path(arguments["download-dir"], ctx.download_dir)
        except ApiError as e:
            raise RpcError(e.message.replace("'save_path'", "'download-dir'")) from None
        if not under(new_dir, ctx.download_dir):
            raise RpcError(f"'download-dir' must be under {ctx.download_dir}")
    encryption = None
    if "encryption" in arguments:
        name = arguments["encryption"]
        encryption = _ENCRYPTION_MODES.get(name) if isinstance(name, str) else None
        if encryption is None:
            raise RpcError("'encryption' must be 'required', 'preferred' or 'tolerated'")
    down_changed, down = _new_limit(arguments, "speed-limit-down",
                                    session.download_throttle.rate, ctx.speed_kb, "down")
    up_changed, up = _new_limit(arguments, "speed-limit-up",
                                session.upload_throttle.rate, ctx.speed_kb, "up")
    body: dict[str, Any] = {}
    if down_changed:
        body["download_limit"] = down
    if up_changed:
        body["upload_limit"] = up
    if body:
        apisession.set_global_limits(session, ctx.store, body)
    if encryption is not None:
        session.set_encryption(encryption)
        if ctx.store is not None:
            ctx.store.set_setting(ENCRYPTION_SETTING, encryption)
    if new_dir is not None:
        os.makedirs(new_dir, exist_ok=True)
        ctx.default_dir = "" if os.path.realpath(new_dir) == os.path.realpath(
            ctx.download_dir) else new_dir
    return {}


@method("session-stats")
def session_stats(ctx: RpcContext, arguments: dict[str, Any]) -> dict[str, Any]:
    torrents = ctx.session.torrents()
    idle = (TorrentState.STOPPED, TorrentState.PAUSED, TorrentState.ERROR)
    paused = sum(1 for t in torrents if t.state in idle)
    stats = {
        "uploadedBytes": sum(t.uploaded for t in torrents),
        "downloadedBytes": sum(t.downloaded for t in torrents),
        "filesAdded": sum(len(t.files()) for t in torrents),
        "sessionCount": 1,
        "secondsActive": max(0, int(ctx.now() - ctx.started_at)),
    }
    return {
        "activeTorrentCount": len(torrents) - paused,
        "pausedTorrentCount": paused,
        "torrentCount": len(torrents),
        "downloadSpeed": int(sum(t.download_rate for t in torrents)),
        "uploadSpeed": int(sum(t.upload_rate for t in torrents)),
        "cumulative-stats": dict(stats),
        "current-stats": dict(stats),
    }


@method("free-space")
def free_space(ctx: RpcContext, arguments: dict[str, Any]) -> dict[str, Any]:
    path = arguments.get("path")
    if not isinstance(path, str) or not path or "\0" in path:
        raise RpcError("'path' must be a directory")
    if not os.path.isabs(path) or not under(path, ctx.download_dir):
        raise RpcError(f"free-space answers only for directories under {ctx.download_dir}")
    try:
        free, total = _free(path)
    except OSError as e:
        raise RpcError(f"free-space: {e.strerror or e}") from None
    return {"path": path, "size-bytes": free, "total_size": total}


@method("port-test")
def port_test(ctx: RpcContext, arguments: dict[str, Any]) -> dict[str, Any]:
    """Whether the session listens for peers: nothing leaves the machine
    (Transmission asks a web service outside)."""
    session = ctx.session
    return {"port-is-open": bool(session.running and session.port)}


@method("blocklist-update")
def blocklist_update(ctx: RpcContext, arguments: dict[str, Any]) -> dict[str, Any]:
    raise RpcError("blocklists are not supported")


@method("session-close")
def session_close(ctx: RpcContext, arguments: dict[str, Any]) -> dict[str, Any]:
    raise RpcError("session-close is not supported: stop the daemon itself")


@method("group-get")
def group_get(ctx: RpcContext, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"group": []}


def _unsupported(name: str, why: str) -> None:
    def refuse(ctx: RpcContext, arguments: dict[str, Any]) -> dict[str, Any]:
        raise RpcError(why)

    method(name)(refuse)


for _name in ("queue-move-top", "queue-move-up", "queue-move-down", "queue-move-bottom"):
    _unsupported(_name, "the daemon has no queue")
_unsupported("group-set", "bandwidth groups are not supported")
_unsupported("torrent-rename-path", "renaming a torrent's files is not supported")
