"""``app/*``: versions, build information and the preferences.

The preferences shown are the few that mean something here plus the ones
managers such as Sonarr read (share-limit and queueing switches, all
off).  ``app/setPreferences`` (form field ``json``, a JSON object) acts
on: ``dl_limit``/``up_limit`` (bytes/s; 0 or less: unlimited), the
session's global throttles, recorded in the store's ``download_limit``/
``upload_limit`` settings as the native API records them; ``save_path``
(relative: under the download directory), the default save path of adds,
kept in the setting ``qbt_save_path``.  Every other key is accepted and
ignored (``listen_port`` is read-only: the daemon's command line sets it).
"""

from __future__ import annotations

import json
import platform
import sys
from typing import Any

import twisted

from txbittorrent.daemon.config import ENCRYPTION_SETTING
from txbittorrent.web import apisession
from txbittorrent.web.apibody import save_path as checked_save_path
from txbittorrent.web.qbt.base import Call, Context, QbtError, endpoint

__all__ = ["APP_VERSION", "WEBAPI_VERSION", "default_save_path", "SAVE_PATH_SETTING"]

APP_VERSION = "v5.0.4"
"""The qBittorrent release whose Web API this server speaks."""
WEBAPI_VERSION = "2.11.2"
SAVE_PATH_SETTING = "qbt_save_path"


def default_save_path(ctx: Context) -> str:
    value = ctx.store.get_setting(SAVE_PATH_SETTING, None)
    return value if isinstance(value, str) and value else ctx.download_dir


@endpoint("app", "version")
def version(call: Call) -> str:
    return APP_VERSION


@endpoint("app", "webapiVersion")
def webapi_version(call: Call) -> str:
    return WEBAPI_VERSION


@endpoint("app", "buildInfo")
def build_info(call: Call) -> dict[str, Any]:
    from txbittorrent import __version__

    return {"qt": "", "libtorrent": f"txbittorrent {__version__}", "boost": "",
            "openssl": "", "zlib": "", "bitness": 64 if sys.maxsize > 2**32 else 32,
            "platform": platform.system().lower(), "twisted": twisted.__version__}


@endpoint("app", "defaultSavePath")
def default_save_path_endpoint(call: Call) -> str:
    return default_save_path(call.ctx)


def _limit(value: float | None) -> int:
    return 0 if value is None else int(value)


@endpoint("app", "preferences")
def preferences(call: Call) -> dict[str, Any]:
    ctx = call.ctx
    session = ctx.session
    return {
        "locale": "en",
        "save_path": default_save_path(ctx),
        "temp_path_enabled": False,
        "temp_path": "",
        "create_subfolder_enabled": True,
        "torrent_content_layout": "Original",
        "add_stopped_enabled": False,
        "start_paused_enabled": False,
        "auto_tmm_enabled": False,
        "preallocate_all": False,
        "incomplete_files_ext": False,
        "listen_port": session.port or 0,
        "random_port": False,
        "upnp": False,
        "dl_limit": _limit(session.download_throttle.rate),
        "up_limit": _limit(session.upload_throttle.rate),
        "alt_dl_limit": 0,
        "alt_up_limit": 0,
        "scheduler_enabled": False,
        "dht": session.dht is not None,
        "pex": True,
        "lsd": False,
        "encryption": _ENCRYPTION_CODES.get(session.encryption, 0),
        "anonymous_mode": False,
        "queueing_enabled": False,
        "max_active_downloads": -1,
        "max_active_torrents": -1,
        "max_active_uploads": -1,
        "max_ratio_enabled": False,
        "max_ratio": -1,
        "max_ratio_act": 0,
        "max_seeding_time_enabled": False,
        "max_seeding_time": -1,
        "max_inactive_seeding_time_enabled": False,
        "max_inactive_seeding_time": -1,
        "web_ui_username": ctx.store.username() or "",
        "bypass_local_auth": False,
        "web_ui_csrf_protection_enabled": True,
        "web_ui_host_header_validation_enabled": True,
    }


@endpoint("log", "main", "peers")
def log_entries(call: Call) -> list[Any]:
    """The daemon keeps no log for clients: always empty."""
    return []


@endpoint("app", "networkInterfaceList", "networkInterfaceAddressList")
def network_interfaces(call: Call) -> list[Any]:
    return []


_ENCRYPTION_CODES = {"enabled": 0, "forced": 1, "disabled": 2}
"""qBittorrent's ``encryption`` preference: 0 prefer encryption (our
"enabled": plain and encrypted peers both accepted), 1 force it on, 2 force
it off.  A change applies to the connections made from then on."""
_ENCRYPTION_MODES = {code: mode for mode, code in _ENCRYPTION_CODES.items()}


@endpoint("app", "setPreferences", changes=True)
def set_preferences(call: Call) -> str:
    text = call.need("json")
    try:
        prefs = json.loads(text)
    except ValueError:
        raise QbtError(400, "'json' is not JSON") from None
    if not isinstance(prefs, dict):
        raise QbtError(400, "'json' must be a JSON object")
    ctx = call.ctx
    limits: dict[str, Any] = {}
    for key, name in (("dl_limit", "download_limit"), ("up_limit", "upload_limit")):
        if key in prefs:
            value = prefs[key]
            if type(value) is not int:
                raise QbtError(400, f"'{key}' must be an integer (bytes/s)")
            limits[name] = value if value > 0 else None
    encryption = None
    if "encryption" in prefs:
        code = prefs["encryption"]
        encryption = _ENCRYPTION_MODES.get(code) if type(code) is int else None
        if encryption is None:
            raise QbtError(400, "'encryption' must be 0 (prefer), 1 (force on) or 2 (force off)")
    if "save_path" in prefs:
        path = checked_save_path(prefs["save_path"], ctx.download_dir)
        ctx.store.set_setting(SAVE_PATH_SETTING, path)
    if limits:
        apisession.set_global_limits(ctx.session, ctx.store, limits)
    if encryption is not None:
        ctx.session.set_encryption(encryption)
        ctx.store.set_setting(ENCRYPTION_SETTING, encryption)
    return ""
