"""qBittorrent's names and units, as pure functions: the one table of the
translation (no Twisted, no Session, no clock: every input is a value).

* ``qbt_state``: a torrent's qBittorrent state name from what the engine
  says (its ``TorrentState`` value, completeness, rates, a recheck);
* ``STATE_FILTERS`` / ``matches_filter``: ``torrents/info?filter=``;
* ``eta``: seconds left, ``INFINITE_ETA`` (8640000) when unknown;
* ``sort_and_slice``: ``sort``, ``reverse``, ``limit``, ``offset``;
* ``FILE_PRIORITIES``: the priorities ``filePrio`` accepts (0 skip,
  1 normal, 6 high, 7 maximal; the engine takes them as they are: 0 is
  skip, any other value is wanted);
* ``TRACKER_*``: the tracker status codes;
* ``parse_bool``, ``split_hashes``, ``split_list``: parameter forms.

qBittorrent 5 (Web API 2.11) names its stopped states ``stoppedDL`` and
``stoppedUP``; 4.x said ``pausedDL``/``pausedUP``.  This server reports the
2.11 names (it says it is Web API 2.11) and accepts both spellings in
filters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "INFINITE_ETA", "STATE_FILTERS", "FILE_PRIORITIES", "TRACKER_DISABLED",
    "TRACKER_NOT_CONTACTED", "TRACKER_WORKING", "TRACKER_UPDATING", "TRACKER_NOT_WORKING",
    "qbt_state", "matches_filter", "eta", "sort_and_slice", "parse_bool", "split_hashes",
    "split_list", "tracker_status", "ratio",
]

INFINITE_ETA = 8640000
"""qBittorrent's "infinite" ETA (100 days, in seconds)."""
MAX_RATIO = 9999.0

FILE_PRIORITIES = frozenset({0, 1, 6, 7})

TRACKER_DISABLED = 0
TRACKER_NOT_CONTACTED = 1
TRACKER_WORKING = 2
TRACKER_UPDATING = 3
TRACKER_NOT_WORKING = 4

_DL_STATES = frozenset({"downloading", "metaDL", "forcedMetaDL", "stalledDL", "checkingDL",
                        "stoppedDL", "pausedDL", "queuedDL", "forcedDL"})
_UP_STATES = frozenset({"uploading", "stalledUP", "checkingUP", "stoppedUP", "pausedUP",
                        "queuedUP", "forcedUP"})
_STOPPED = frozenset({"stoppedDL", "stoppedUP", "pausedDL", "pausedUP"})
_CHECKING = frozenset({"checkingDL", "checkingUP", "checkingResumeData"})
_ERRORED = frozenset({"error", "missingFiles"})

STATE_FILTERS = ("all", "downloading", "seeding", "completed", "stopped", "paused", "running",
                 "resumed", "active", "inactive", "stalled", "stalled_uploading",
                 "stalled_downloading", "checking", "moving", "errored")


def qbt_state(
    state: str,
    *,
    complete: bool,
    download_rate: float = 0.0,
    upload_rate: float = 0.0,
    rechecking: bool = False,
    forced: bool = False,
) -> str:
    """qBittorrent's state name for a torrent whose ``TorrentState`` value is
    ``state`` ("stopped", "checking", "metadata", "downloading", "seeding",
    "paused", "error"); ``complete``: every wanted piece verified."""
    side = "UP" if complete else "DL"
    if rechecking or state == "checking":
        return "checking" + side
    if state == "error":
        return "error"
    if state in ("stopped", "paused"):
        return "stopped" + side
    if state == "metadata":
        return "forcedMetaDL" if forced else "metaDL"
    if state == "seeding" or (state == "downloading" and complete):
        if forced:
            return "forcedUP"
        return "uploading" if upload_rate > 0 else "stalledUP"
    if forced:
        return "forcedDL"
    return "downloading" if download_rate > 0 else "stalledDL"


def matches_filter(name: str, info: Mapping[str, Any]) -> bool:
    """Whether a torrent's info (``state``, ``dlspeed``, ``upspeed``,
    ``progress``) passes ``filter=name``; an unknown name passes all."""
    state: str = info["state"]
    active = bool(info.get("dlspeed", 0) > 0 or info.get("upspeed", 0) > 0)
    if name == "downloading":
        return state in _DL_STATES
    if name == "seeding":
        return state in _UP_STATES
    if name == "completed":
        return state in _UP_STATES
    if name in ("stopped", "paused"):
        return state in _STOPPED
    if name in ("running", "resumed"):
        return state not in _STOPPED
    if name == "active":
        return active
    if name == "inactive":
        return not active
    if name == "stalled":
        return state in ("stalledDL", "stalledUP")
    if name == "stalled_uploading":
        return state == "stalledUP"
    if name == "stalled_downloading":
        return state == "stalledDL"
    if name == "checking":
        return state in _CHECKING
    if name == "moving":
        return state == "moving"
    if name == "errored":
        return state in _ERRORED
    return True


def eta(complete: bool, left: int, download_rate: float) -> int:
    """Seconds until the wanted pieces are in; ``INFINITE_ETA`` when
    complete or not downloading."""
    if complete or download_rate <= 0:
        return INFINITE_ETA
    return min(INFINITE_ETA, int(left / download_rate + 0.5))


def ratio(uploaded: int, downloaded: int, size: int) -> float:
    """Uploaded over downloaded (over the size when nothing was downloaded
    here: a seed from its own data), capped as qBittorrent does."""
    base = downloaded if downloaded > 0 else size
    if base <= 0:
        return 0.0
    return min(MAX_RATIO, uploaded / base)


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, (int, float)):
        return (0, value)
    if isinstance(value, str):
        return (1, value.casefold())
    return (2, str(value))


def sort_and_slice(
    items: Sequence[Mapping[str, Any]],
    sort: str | None,
    reverse: bool,
    limit: int | None,
    offset: int | None,
) -> list[Mapping[str, Any]]:
    """The list ordered by the field ``sort`` (unknown field: as given),
    reversed, then ``offset`` (negative: from the end) and ``limit``
    (<= 0: all)."""
    out = list(items)
    if sort:
        out.sort(key=lambda item: _sort_key(item.get(sort)))
    if reverse:
        out.reverse()
    if offset:
        if offset < 0:
            offset = max(0, len(out) + offset)
        out = out[offset:]
    if limit is not None and limit > 0:
        out = out[:limit]
    return out


def parse_bool(value: str | None, default: bool = False) -> bool:
    """qBittorrent's booleans: "true"/"false" in any case (Python clients
    send "True"); anything else is ``default``."""
    if value is None:
        return default
    text = value.strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    return default


def split_hashes(value: str | None) -> list[str] | None:
    """``hashes``: "all" (None: every torrent) or hashes joined by "|"
    (lowercase, empty ones dropped)."""
    if value is None:
        return []
    if value.strip().lower() == "all":
        return None
    return [h.strip().lower() for h in value.split("|") if h.strip()]


def split_list(value: str | None, separator: str) -> list[str]:
    """A list parameter (tags by ",", URLs by newlines, categories by
    newlines), stripped, empty items dropped, order kept, no repeats."""
    if not value:
        return []
    out: list[str] = []
    for item in value.split(separator):
        item = item.strip()
        if item and item not in out:
            out.append(item)
    return out


def tracker_status(updating: bool, failures: int, announced: bool) -> int:
    """The status code of a tracker: updating, not working (its last try
    failed), working (it answered), or not contacted yet."""
    if updating:
        return TRACKER_UPDATING
    if failures > 0:
        return TRACKER_NOT_WORKING
    if announced:
        return TRACKER_WORKING
    return TRACKER_NOT_CONTACTED


def joined(values: Iterable[str]) -> str:
    """Tags as qBittorrent shows them: joined by ", "."""
    return ", ".join(values)
