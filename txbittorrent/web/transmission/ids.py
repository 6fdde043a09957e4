"""Transmission's torrent ids and the ``ids`` argument: ``TorrentIds``.

Theory of operation
-------------------
Transmission names torrents by small integers as well as by info hash.  A
torrent the daemon's ``StateStore`` holds has its record's ``seq`` (stable
across restarts, never reused); one the store lacks gets a number from a
per-run counter starting at ``RUN_BASE``, far above any ``seq``, so the two
never meet.  The counter's numbers are remembered by info hash for the run.

``select(session, ids)`` resolves the ``ids`` argument: absent (every
torrent), an int, a list of ints and hash strings, a single hash string,
or ``"recently-active"``.  Unknown ids and hashes are skipped, as
Transmission skips them.

``recently-active`` is the torrents that moved data, were added or were
checked in the last ``RECENT`` seconds; ``removed`` lists the ids of the
torrents gone from the session in that time.  Removals are noticed by
comparing the session's torrents with the ones seen before, at each call,
so a removal through any API counts.  Nothing here schedules timers.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from txbittorrent.session import Session
    from txbittorrent.torrent import Torrent
    from txbittorrent.web.manager import TorrentManager

__all__ = ["RECENT", "RUN_BASE", "TorrentIds", "BadIds"]

RUN_BASE = 1 << 20
RECENT = 60.0
_HASH = re.compile(r"\A[0-9a-fA-F]{40}\Z")


class BadIds(ValueError):
    """The ``ids`` argument has the wrong shape."""


class TorrentIds:
    """Ids of the session's torrents (see the module docstring)."""

    def __init__(self, manager: TorrentManager) -> None:
        self.manager = manager
        self._run_ids: dict[str, int] = {}
        self._next = RUN_BASE
        self._seen: dict[str, int] = {}  # hex info hash -> id, of the torrents last seen
        self._removed: dict[int, float] = {}  # id -> when it was noticed gone

    def id_of(self, torrent: Torrent) -> int:
        ih = torrent.info_hash.hex()
        record = self.manager.record(ih)
        if record is not None and record.seq:
            return record.seq
        known = self._run_ids.get(ih)
        if known is None:
            known = self._run_ids[ih] = self._next
            self._next += 1
        return known

    def refresh(self, session: Session, now: float) -> list[Torrent]:
        """The session's torrents; those gone since the last call are
        recorded as removed at ``now``."""
        torrents = session.torrents()
        current = {t.info_hash.hex(): self.id_of(t) for t in torrents}
        for ih, number in self._seen.items():
            if ih not in current:
                self._removed[number] = now
                self._run_ids.pop(ih, None)
        self._seen = current
        for number, when in list(self._removed.items()):
            if when < now - RECENT:
                del self._removed[number]
        return torrents

    def removed(self, now: float) -> list[int]:
        return sorted(n for n, when in self._removed.items() if when >= now - RECENT)

    def select(self, session: Session, ids: Any, now: float) -> list[Torrent]:
        """The torrents ``ids`` names, in the session's order."""
        torrents = self.refresh(session, now)
        if ids is None:
            return torrents
        if ids == "recently-active":
            return [t for t in torrents if self._recent(t, now)]
        if isinstance(ids, (int, str)) and not isinstance(ids, bool):
            ids = [ids]
        if not isinstance(ids, list):
            raise BadIds("'ids' must be an id, a hash string, a list of them or 'recently-active'")
        numbers: set[int] = set()
        hashes: set[str] = set()
        for item in ids:
            if isinstance(item, bool):
                raise BadIds(f"not a torrent id: {item!r}")
            if isinstance(item, int):
                numbers.add(item)
            elif isinstance(item, str) and _HASH.match(item):
                hashes.add(item.lower())
            elif isinstance(item, str) and item.isdigit():
                numbers.add(int(item))
            else:
                raise BadIds(f"not a torrent id or hash: {str(item)[:60]!r}")
        return [t for t in torrents
                if t.info_hash.hex() in hashes or self.id_of(t) in numbers]

    def _recent(self, torrent: Torrent, now: float) -> bool:
        if torrent.download_rate >= 1 or torrent.upload_rate >= 1:
            return True
        ih = torrent.info_hash.hex()
        if ih in self.manager.rechecking or str(torrent.state) in ("checking", "metadata"):
            return True
        added = self.manager.added_at(ih)
        return added is not None and added >= now - RECENT
