"""The daemon's settings: ``DaemonConfig``, and ``config_from`` turning the
command line's choices (``txbittorrent serve``, ``twist txbittorrent``)
into one, with the parsers both front ends share."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from txbittorrent.daemon.store import read_setting

__all__ = [
    "DEFAULT_HOSTS", "DEFAULT_LISTEN", "DEFAULT_READAHEAD", "DaemonConfig", "ENCRYPTION_SETTING",
    "LIMIT_SETTINGS", "config_from", "normalize_host", "parse_size",
]

DEFAULT_LISTEN = ("tcp:8080:interface=127.0.0.1",)
DEFAULT_HOSTS = ("127.0.0.1", "localhost", "[::1]")
DEFAULT_READAHEAD = 32 * 1024 * 1024
"""Bytes of a streamed file given piece deadlines ahead of the read position."""

LIMIT_SETTINGS = ("download_limit", "upload_limit")
"""The StateStore settings holding the global limits set through the API
(bytes/s; null or absent: unlimited)."""
ENCRYPTION_SETTING = "encryption"
"""The StateStore setting holding the encryption mode set through an API
("disabled", "enabled" or "forced"; absent: "enabled")."""
STATE_FILE = "state.sqlite"
"""The StateStore's file in the state directory."""
DOWNLOAD_DIR_SETTING = "download_dir"
"""The setting in which each start records its download directory, the
default of the next start and of the command line's in-process runs."""


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """What ``txbittorrent serve`` runs with."""

    state_dir: str
    download_dir: str
    listen: tuple[str, ...] = DEFAULT_LISTEN
    """Twisted server endpoint strings for the HTTP API."""
    peer_port: int = 0
    """The BitTorrent listening port (0: the kernel picks)."""
    peer_interfaces: tuple[str, ...] = ("127.0.0.1",)
    """Where the BitTorrent side listens (loopback only unless given)."""
    dht: bool = False
    """Run a DHT node (BEP 5) on the BitTorrent port."""
    download_limit: int | None = None
    """Global bytes/s.  None: the stored ``download_limit`` setting (what the
    API last set), else unlimited; 0: unlimited whatever is stored."""
    upload_limit: int | None = None
    """Global bytes/s, as ``download_limit``."""
    readahead: int = DEFAULT_READAHEAD
    """Bytes of a streamed file given piece deadlines ahead of the read
    position (``reader.ReaderConfig.readahead``)."""
    grace: float = 600.0
    """Seconds a torrent started on demand (by ``/data``) may go untouched
    before it may be stopped."""
    event_history: int = 1000
    allowed_hosts: tuple[str, ...] = DEFAULT_HOSTS
    """``Host`` header values accepted (DNS rebinding), without ports."""
    encryption: str | None = None
    """MSE/PE (``SessionConfig.encryption``): "disabled", "enabled" or
    "forced".  None: the stored ``encryption`` setting (what an API last
    set), else "enabled"."""
    write_api_file: bool = True
    """Write ``state_dir/api.json`` (url + token) for the CLI; False (the
    CLI's in-process mode) never writes it, and the token made for this run
    is revoked by ``stopService``."""


_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def parse_size(text: str) -> int:
    """'32M', '512KiB', '1.5G', '1000', '2MB/s' -> bytes (or bytes/s), not
    negative; 'unlimited' or 'none' -> 0.  ``ValueError`` otherwise."""
    t = text.strip().upper()
    if t in ("UNLIMITED", "NONE"):
        return 0
    t = t.removesuffix("/S").removesuffix("B").removesuffix("I")
    unit = t[-1:] if t[-1:] in _UNITS else ""
    number = t[: len(t) - len(unit)].strip()
    try:
        value = float(number) * _UNITS[unit]
    except ValueError:
        raise ValueError(f"not a size: {text!r}") from None
    if not 0 <= value < 2**63:
        raise ValueError(f"not a size: {text!r}")
    return int(value)


def normalize_host(text: str) -> str:
    """A ``Host`` allowlist entry: lowercased, an IPv6 address in brackets;
    ``ValueError`` for an empty one or one with a port or path."""
    host = text.strip().lower()
    if host.count(":") > 1 and not host.startswith("["):
        host = f"[{host}]"
    if not host or "/" in host or (":" in host and not host.startswith("[")) or (
        host.startswith("[") and not host.endswith("]")
    ):
        raise ValueError(f"not a host name or address (no port): {text!r}")
    return host


def config_from(
    state_dir: str,
    download_dir: str | None = None,
    listen: Sequence[str] = (),
    *,
    peer_interfaces: Sequence[str] = (),
    allow_hosts: Sequence[str] = (),
    **options: Any,
) -> DaemonConfig:
    """A ``DaemonConfig`` from the command line's choices: absolute paths
    (downloads where the last daemon on ``state_dir`` put them, else under
    ``state_dir/downloads``), the default
    listen endpoint and peer interfaces unless some are given, the default
    Host allowlist plus ``allow_hosts``; ``options`` are other fields
    (``peer_port``, ``dht``, ``download_limit``, ``readahead``...)."""
    state_dir = os.path.abspath(state_dir)
    download = download_dir
    if download is None:
        remembered = read_setting(os.path.join(state_dir, STATE_FILE), DOWNLOAD_DIR_SETTING)
        download = remembered if isinstance(remembered, str) and remembered else \
            os.path.join(state_dir, "downloads")
    kwargs: dict[str, Any] = dict(options)
    if listen:
        kwargs["listen"] = tuple(listen)
    if peer_interfaces:
        kwargs["peer_interfaces"] = tuple(peer_interfaces)
    hosts = list(DEFAULT_HOSTS)
    for host in allow_hosts:
        host = normalize_host(host)
        if host not in hosts:
            hosts.append(host)
    kwargs["allowed_hosts"] = tuple(hosts)
    return DaemonConfig(state_dir=state_dir, download_dir=os.path.abspath(download), **kwargs)
