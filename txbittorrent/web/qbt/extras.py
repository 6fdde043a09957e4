"""What qBittorrent clients set on a torrent that the engine does not act on:
``QbtExtras``.

Theory of operation
-------------------
Sequential download, first/last piece priority, force start, super
seeding, and the share limits (ratio, seeding time, inactive seeding time)
are stored and shown back, never enforced: the engine has no such modes
(a forced start does start the torrent: see ``actions``).  They live in
the ``StateStore``'s settings, one JSON object per torrent under
``qbt_torrent:<info hash>`` (so they survive a restart), read through a
small cache; ``forget`` drops them when the torrent is deleted.  Only
values that differ from the defaults are stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from txbittorrent.daemon.store import StateStore

__all__ = ["QbtExtras", "DEFAULTS"]

DEFAULTS: dict[str, Any] = {
    "seq_dl": False,
    "f_l_piece_prio": False,
    "force_start": False,
    "super_seeding": False,
    "ratio_limit": -2.0,
    "seeding_time_limit": -2,
    "inactive_seeding_time_limit": -2,
}
"""-2: the global limit applies; -1: no limit (qBittorrent's values)."""

_PREFIX = "qbt_torrent:"


class QbtExtras:
    """Per-torrent qBittorrent settings in the store's settings table."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._cache: dict[str, dict[str, Any]] = {}
        self.active: dict[str, int] = {}
        """When each torrent last moved data (Unix seconds; memory only)."""

    def get(self, info_hash: str) -> dict[str, Any]:
        """Every setting of the torrent (defaults filled in)."""
        stored = self._cache.get(info_hash)
        if stored is None:
            value = self.store.get_setting(_PREFIX + info_hash, None)
            stored = value if isinstance(value, dict) else {}
            self._cache[info_hash] = stored
        return {**DEFAULTS, **{k: v for k, v in stored.items() if k in DEFAULTS}}

    def update(self, info_hash: str, **changes: Any) -> None:
        """Change some settings (unknown names are a bug: KeyError)."""
        for key in changes:
            if key not in DEFAULTS:
                raise KeyError(key)
        merged = {**self.get(info_hash), **changes}
        kept = {k: v for k, v in merged.items() if v != DEFAULTS[k]}
        self._cache[info_hash] = kept
        if kept:
            self.store.set_setting(_PREFIX + info_hash, kept)
        else:
            self.store.delete_setting(_PREFIX + info_hash)

    def forget(self, info_hash: str) -> None:
        """Drop a deleted torrent's settings."""
        self._cache.pop(info_hash, None)
        self.active.pop(info_hash, None)
        self.store.delete_setting(_PREFIX + info_hash)
