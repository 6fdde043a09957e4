"""The native API's work on one torrent beyond its life cycle: files and
priorities, trackers, its own limits, its .torrent, and a recheck.

Each function takes the ``Torrent`` (and what the client sent, already a
JSON object or query arguments) and returns the answer's body, or a
Deferred of it; bad input raises ``ApiError``.  The store is the caller's
(``web.api``): these functions only drive the torrent.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from txbittorrent.core.layout import Layout
from txbittorrent.core.metainfo import torrent_bytes
from txbittorrent.state import TorrentState
from txbittorrent.storage.remove import RemovedFiles, delete_torrent_files, torrent_paths
from txbittorrent.web.apiadd import listed_files, priorities_for
from txbittorrent.web.apibody import ApiError, int_list, limit, tracker_url
from txbittorrent.web.apiviews import file_view, files_done, tracker_view

if TYPE_CHECKING:
    from txbittorrent.session import Session
    from txbittorrent.torrent import Torrent

__all__ = ["Download", "files_body", "new_priorities", "add_tracker", "remove_tracker",
           "trackers_body", "limits_body", "read_limits", "torrent_file", "remove", "recheck",
           "content_disposition"]

_log = Logger()


@dataclass(frozen=True, slots=True)
class Download:
    """A body that is not JSON: bytes with their type and disposition."""

    content: bytes
    content_type: str
    filename: str


def _require_metadata(torrent: Torrent) -> None:
    if not torrent.has_metadata or torrent.metainfo is None:
        raise ApiError(409, f"the metadata of {torrent.info_hash.hex()} is not known yet")


# -- files ---------------------------------------------------------------------------


def files_body(torrent: Torrent) -> dict[str, Any]:
    """``{"files": [...]}`` with each file's verified bytes and progress."""
    if torrent.metainfo is None:
        return {"files": []}
    done = files_done(Layout.from_metainfo(torrent.metainfo), torrent.bitfield)
    return {"files": [file_view(f, done[f.index]) for f in torrent.files()]}


def new_priorities(torrent: Torrent, body: Mapping[str, Any]) -> tuple[int, ...]:
    """Every file's priority from ``{"priorities": [one per listed file]}``
    or ``{"files": {"<index>": priority}}`` (the others unchanged)."""
    _require_metadata(torrent)
    assert torrent.metainfo is not None
    current = list(torrent.priorities)
    if ("priorities" in body) == ("files" in body):
        raise ApiError(400, "give either 'priorities' (a list) or 'files' (an object)")
    if "priorities" in body:
        result = priorities_for(torrent.metainfo, int_list(body["priorities"], "priorities"),
                                None, current)
        assert result is not None
        return result
    changes = body["files"]
    if not isinstance(changes, dict) or not changes:
        raise ApiError(400, "'files' must be an object {\"<index>\": priority}")
    listed = set(listed_files(torrent.metainfo))
    for key, priority in changes.items():
        if not re.fullmatch(r"[0-9]{1,9}", key) or int(key) not in listed:
            raise ApiError(400, f"no file {key!r} in this torrent")
        if type(priority) is not int or priority < 0:
            raise ApiError(400, f"the priority of file {key} must be a non-negative integer")
        current[int(key)] = priority
    return tuple(current)


# -- trackers ------------------------------------------------------------------------


def trackers_body(torrent: Torrent) -> dict[str, Any]:
    return {"trackers": [tracker_view(s) for tier in torrent.trackers() for s in tier]}


def _urls(torrent: Torrent) -> list[str]:
    return [s.url for tier in torrent.trackers() for s in tier]


def add_tracker(torrent: Torrent, body: Mapping[str, Any]) -> dict[str, Any]:
    """``{"url", "tier"?}``: add a tracker (409 if it is there already)."""
    url = tracker_url(body.get("url"))
    tier = body.get("tier")
    if tier is not None and (type(tier) is not int or not 0 <= tier < 1000):
        raise ApiError(400, "'tier' must be an integer from 0")
    if url in _urls(torrent):
        raise ApiError(409, f"the torrent has tracker {url} already")
    torrent.add_tracker(url, tier)
    return trackers_body(torrent)


def remove_tracker(torrent: Torrent, url: str | None) -> dict[str, Any]:
    """Remove a tracker named by ``?url=`` (404 if the torrent has none such)."""
    if not url:
        raise ApiError(400, "say which tracker: ?url=")
    if url not in _urls(torrent):
        raise ApiError(404, f"the torrent has no tracker {url}")
    torrent.remove_tracker(url)
    return trackers_body(torrent)


# -- limits --------------------------------------------------------------------------


def limits_body(download: float | None, upload: float | None) -> dict[str, Any]:
    return {
        "download_limit": None if download is None else int(download),
        "upload_limit": None if upload is None else int(upload),
    }


def read_limits(
    body: Mapping[str, Any], download: float | None, upload: float | None
) -> tuple[int | None, int | None]:
    """The new (download, upload) limits: a key left out keeps its value."""
    if not {"download_limit", "upload_limit"} & set(body):
        raise ApiError(400, "give 'download_limit' and/or 'upload_limit'")
    new_down = limit(body["download_limit"], "download_limit") if "download_limit" in body \
        else _int(download)
    new_up = limit(body["upload_limit"], "upload_limit") if "upload_limit" in body \
        else _int(upload)
    return new_down, new_up


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


# -- the .torrent ---------------------------------------------------------------------


def torrent_file(torrent: Torrent, source: bytes | None) -> Download:
    """The .torrent: ``source`` (the bytes it was added from) when given,
    else one made from the info dictionary and the current trackers."""
    _require_metadata(torrent)
    info = torrent.info_bytes()
    assert info is not None
    if source is None:
        source = torrent_bytes(info, [[s.url for s in tier] for tier in torrent.trackers()])
    return Download(source, "application/x-bittorrent", torrent.name + ".torrent")


# -- removal -------------------------------------------------------------------------


def remove(session: Session, torrent: Torrent, delete_data: bool) -> Deferred[dict[str, Any]]:
    """Stop and forget the torrent and its resume record; with
    ``delete_data``, then delete its own
    files (``storage.remove``, in the session's thread pool).  Fires with
    ``{"info_hash", "removed", "data_deleted"}`` (and ``kept``: what the
    deletion left, with why, when it left anything)."""
    ih = torrent.info_hash.hex()
    metainfo, save_path = torrent.metainfo, torrent.basedir
    d: Deferred[Any] = session.remove(torrent.info_hash)

    def delete(_: object) -> Any:
        _forget_resume(torrent.resume_path)
        if not delete_data or metainfo is None:
            return None
        return deferToThreadPool(
            session.resolve_reactor(), session.threadpool,
            delete_torrent_files, save_path, torrent_paths(metainfo),
        )

    def answer(removed: RemovedFiles | None) -> dict[str, Any]:
        body: dict[str, Any] = {"info_hash": ih, "removed": True,
                                "data_deleted": removed is not None and removed.ok}
        if removed is not None and not removed.ok:
            body["kept"] = [{"path": p, "reason": r} for p, r in removed.skipped]
        return body

    return d.addCallback(delete).addCallback(answer)


def _forget_resume(path: str | None) -> None:
    """A removed torrent's resume record goes too (stopping wrote it)."""
    if path is None:
        return
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        _log.warn("could not delete resume record {path}: {error}", path=path, error=e)


# -- recheck -------------------------------------------------------------------------


def recheck(torrent: Torrent) -> Deferred[None]:
    """Verify every piece again, then go back to the state it was in.

    ``Torrent.hashcheck`` alone, on a running torrent, would race the swarm:
    a piece written while it is read fails, and the failure would undo the
    write's pass.  So the torrent is stopped (its writes finish, its resume
    record is saved), checked, then started again (paused if it was paused);
    one that was stopped is stopped again, which saves the new record."""
    _require_metadata(torrent)
    return _recheck(torrent, torrent.state)


@inlineCallbacks
def _recheck(torrent: Torrent, before: TorrentState) -> Any:
    yield torrent.stop()
    try:
        yield torrent.hashcheck()
    finally:
        if before in (TorrentState.STOPPED, TorrentState.ERROR):
            yield torrent.stop()
        else:
            if before is TorrentState.PAUSED:
                yield torrent.pause()
            yield torrent.start()
    return None


def content_disposition(filename: str) -> bytes:
    """``attachment`` with an ASCII fallback name and RFC 8187 ``filename*``."""
    from urllib.parse import quote

    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    return (f'attachment; filename="{fallback}"; filename*=UTF-8\'\'{quote(filename, safe="")}'
            ).encode("ascii")

