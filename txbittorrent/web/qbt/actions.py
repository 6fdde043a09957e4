"""The actions of ``torrents/*`` (POST only): life cycle, deletion,
priorities, queue order, limits, trackers and the settings the engine
only stores (``extras``).

Every change goes through the shared ``TorrentManager`` (and so into the
``StateStore``).  ``hashes`` is "all" or "|"-joined; unknown hashes are
skipped, as qBittorrent does; a torrent being rechecked is skipped by the
multi-torrent actions (the manager refuses changes during a recheck).

qBittorrent's ``stop`` and ``pause`` (its older name) stop the torrent
(trackers told, connections closed: the engine's ``stop``; qBittorrent
disconnects its peers too); ``start``/``resume`` start it.  The answer
comes once every torrent has done it; ``recheck`` answers at once (a
recheck takes long) and ``delete`` once the files are gone.

Not acted on (stored and shown back only, see ``extras``): sequential
download, first/last piece priority, super seeding, the share limits,
and the queue order (the engine runs every torrent at once: no queueing);
``setForceStart`` starts a stopped torrent whatever its value (qBittorrent
starts it forced or auto-managed).
``setLocation`` is refused (409) unless the location is the torrent's
own: the engine cannot move data.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from txbittorrent.state import TorrentState
from txbittorrent.web.apibody import ApiError, tracker_url
from txbittorrent.web.qbt.base import Call, QbtError, endpoint, find
from txbittorrent.web.qbt.fields import FILE_PRIORITIES, split_list

if TYPE_CHECKING:
    from txbittorrent.torrent import Torrent

__all__: list[str] = []

_log = Logger()


def _each(call: Call, act: Callable[[Torrent], Any]) -> Deferred[str]:
    """Do ``act`` to every torrent named by ``hashes``; fires with "" once
    every Deferred it returned has fired (failures logged)."""
    waits: list[Deferred[Any]] = []
    for torrent in call.torrents():
        try:
            result = act(torrent)
        except ApiError as e:
            if e.code != 409:
                raise
            _log.info("qbt: {hash} skipped: {why}", hash=torrent.info_hash.hex(), why=e.message)
            continue
        if isinstance(result, Deferred):
            waits.append(result.addErrback(_logged, torrent.info_hash.hex()))
    if not waits:
        return succeed("")
    return DeferredList(waits).addCallback(lambda _: "")


def _logged(failure: Failure, info_hash: str) -> None:
    _log.failure("qbt: an action on {hash} failed", failure, hash=info_hash)


def _done(_: object) -> str:
    return ""


@endpoint("torrents", "stop", "pause", changes=True)
def stop(call: Call) -> Deferred[str]:
    return _each(call, lambda t: call.ctx.manager.set_state(t, "stop"))


@endpoint("torrents", "start", "resume", changes=True)
def start(call: Call) -> Deferred[str]:
    return _each(call, lambda t: call.ctx.manager.set_state(t, "start"))


@endpoint("torrents", "recheck", changes=True)
def recheck(call: Call) -> str:
    manager = call.ctx.manager

    def one(torrent: Torrent) -> None:
        if not torrent.has_metadata:
            return
        manager.recheck(torrent).addErrback(
            lambda f: _log.failure("qbt: recheck of {name} failed", f, name=torrent.name))

    _each(call, one)
    return ""


@endpoint("torrents", "reannounce", changes=True)
def reannounce(call: Call) -> str:
    for torrent in call.torrents():
        call.ctx.manager.reannounce(torrent)
    return ""


@endpoint("torrents", "delete", changes=True)
def delete(call: Call) -> Deferred[str]:
    ctx = call.ctx
    delete_files = call.flag("deleteFiles")

    def one(torrent: Torrent) -> Deferred[Any]:
        ih = torrent.info_hash.hex()
        d = ctx.manager.remove(torrent, delete_files)
        ctx.extras.forget(ih)
        return d

    return _each(call, one)


@endpoint("torrents", "setLocation", changes=True)
def set_location(call: Call) -> str:
    location = call.need("location").strip()
    if not location:
        raise QbtError(400, "Save path cannot be empty")
    for torrent in call.torrents():
        if os.path.normpath(location) != os.path.normpath(torrent.basedir):
            raise QbtError(409, "Cannot move torrents: this server does not move data")
    return ""


@endpoint("torrents", "filePrio", changes=True)
def file_prio(call: Call) -> Deferred[str]:
    torrent = call.torrent()
    try:
        priority = int(call.need("priority").strip())
    except ValueError:
        raise QbtError(400, "Priority must be an integer") from None
    if priority not in FILE_PRIORITIES:
        raise QbtError(400, "Priority is not valid")
    if not torrent.has_metadata:
        raise QbtError(409, "Torrent's metadata has not yet downloaded")
    listed = torrent.files()
    try:
        ids = [int(i) for i in call.need("id").split("|")]
    except ValueError:
        raise QbtError(400, "File IDs must be integers") from None
    if any(not 0 <= i < len(listed) for i in ids):
        raise QbtError(409, "File ID is not valid")
    priorities = list(torrent.priorities)
    for i in ids:
        priorities[listed[i].index] = priority
    return call.ctx.manager.set_priorities(torrent, priorities).addCallback(_done)


def _reorder(call: Call, move: Callable[[list[str], set[str]], list[str]]) -> str:
    """Change the queue order (the store's ``position``) of the torrents."""
    ctx = call.ctx
    chosen = {t.info_hash.hex() for t in call.torrents()}
    order = [r.info_hash for r in sorted(ctx.store.torrents(), key=lambda r: r.position)]
    new = move(order, chosen & set(order))
    for position, ih in enumerate(new):
        if ih != (order[position] if position < len(order) else None):
            ctx.store.update(ih, position=position)
    return ""


@endpoint("torrents", "topPrio", changes=True)
def top_prio(call: Call) -> str:
    return _reorder(call, lambda o, c: [h for h in o if h in c] + [h for h in o if h not in c])


@endpoint("torrents", "bottomPrio", changes=True)
def bottom_prio(call: Call) -> str:
    return _reorder(call, lambda o, c: [h for h in o if h not in c] + [h for h in o if h in c])


def _step(order: list[str], chosen: set[str], up: bool) -> list[str]:
    out = list(order)
    indexes = range(1, len(out)) if up else range(len(out) - 2, -1, -1)
    for i in indexes:
        j = i - 1 if up else i + 1
        if out[i] in chosen and out[j] not in chosen:
            out[i], out[j] = out[j], out[i]
    return out


@endpoint("torrents", "increasePrio", changes=True)
def increase_prio(call: Call) -> str:
    return _reorder(call, lambda o, c: _step(o, c, True))


@endpoint("torrents", "decreasePrio", changes=True)
def decrease_prio(call: Call) -> str:
    return _reorder(call, lambda o, c: _step(o, c, False))


@endpoint("torrents", "setForceStart", changes=True)
def set_force_start(call: Call) -> Deferred[str]:
    value = call.flag("value")
    ctx = call.ctx

    def one(torrent: Torrent) -> Deferred[None] | None:
        ctx.extras.update(torrent.info_hash.hex(), force_start=value)
        if torrent.state in (TorrentState.STOPPED, TorrentState.PAUSED,
                                       TorrentState.ERROR):
            return ctx.manager.set_state(torrent, "start")
        return None

    return _each(call, one)


@endpoint("torrents", "setSuperSeeding", changes=True)
def set_super_seeding(call: Call) -> str:
    value = call.flag("value")
    for torrent in call.torrents():
        call.ctx.extras.update(torrent.info_hash.hex(), super_seeding=value)
    return ""


def _toggle(call: Call, key: str) -> str:
    for torrent in call.torrents():
        ih = torrent.info_hash.hex()
        call.ctx.extras.update(ih, **{key: not call.ctx.extras.get(ih)[key]})
    return ""


@endpoint("torrents", "toggleSequentialDownload", changes=True)
def toggle_sequential(call: Call) -> str:
    return _toggle(call, "seq_dl")


@endpoint("torrents", "toggleFirstLastPiecePrio", changes=True)
def toggle_first_last(call: Call) -> str:
    return _toggle(call, "f_l_piece_prio")


@endpoint("torrents", "setShareLimits", changes=True)
def set_share_limits(call: Call) -> str:
    ratio = call.number("ratioLimit")
    seeding = call.integer("seedingTimeLimit")
    inactive = call.integer("inactiveSeedingTimeLimit")
    if ratio is None and seeding is None and inactive is None:
        raise QbtError(400, "Missing required parameters")
    changes: dict[str, Any] = {}
    if ratio is not None:
        changes["ratio_limit"] = ratio
    if seeding is not None:
        changes["seeding_time_limit"] = seeding
    if inactive is not None:
        changes["inactive_seeding_time_limit"] = inactive
    for torrent in call.torrents():
        call.ctx.extras.update(torrent.info_hash.hex(), **changes)
    return ""


def _set_limit(call: Call, which: str) -> str:
    value = call.integer("limit")
    if value is None:
        raise QbtError(400, "Missing required parameters")
    new = value if value > 0 else None
    for torrent in call.torrents():
        config = torrent.config
        down = new if which == "download" else config.download_limit
        up = new if which == "upload" else config.upload_limit
        call.ctx.manager.set_limits(torrent, None if down is None else int(down),
                                    None if up is None else int(up))
    return ""


@endpoint("torrents", "setDownloadLimit", changes=True)
def set_download_limit(call: Call) -> str:
    return _set_limit(call, "download")


@endpoint("torrents", "setUploadLimit", changes=True)
def set_upload_limit(call: Call) -> str:
    return _set_limit(call, "upload")


def _urls(torrent: Torrent) -> list[str]:
    return [s.url for tier in torrent.trackers() for s in tier]


def _tracker_targets(call: Call) -> list[Torrent]:
    """``hash``: one hash, several joined by "|", or "*" (every torrent);
    404 for an unknown one."""
    text = call.need("hash").strip()
    if text == "*":
        return call.ctx.session.torrents()
    out = []
    for part in text.split("|"):
        if part.strip() and part.strip() != "*":
            torrent = find(call.ctx.session, part.strip().lower())
            if torrent is None:
                raise QbtError(404, "Torrent hash was not found")
            out.append(torrent)
    return out


@endpoint("torrents", "addTrackers", changes=True)
def add_trackers(call: Call) -> str:
    urls = split_list(call.need("urls"), "\n")
    for torrent in _tracker_targets(call):
        for url in urls:
            try:
                tracker_url(url)
            except ApiError:
                continue  # qBittorrent skips what it cannot parse
            if url not in _urls(torrent):
                torrent.add_tracker(url)
        call.ctx.manager.trackers_changed(torrent)
    return ""


@endpoint("torrents", "removeTrackers", changes=True)
def remove_trackers(call: Call) -> str:
    urls = [unquote(u) for u in split_list(call.need("urls"), "|")]
    for torrent in _tracker_targets(call):
        present = _urls(torrent)
        for url in urls:
            if url in present:
                torrent.remove_tracker(url)
        call.ctx.manager.trackers_changed(torrent)
    return ""


@endpoint("torrents", "addPeers", changes=True)
def add_peers(call: Call) -> dict[str, Any]:
    texts = [p.strip() for p in call.need("peers").split("|")]
    peers = [peer for peer in (_peer(t) for t in texts) if peer is not None]
    if not peers:
        raise QbtError(400, "No valid peers were specified")
    out: dict[str, Any] = {}
    for torrent in call.torrents():
        added = torrent.add_peers(peers, source="user")
        out[torrent.info_hash.hex()] = {"added": added, "failed": len(texts) - added}
    return out


def _peer(text: str) -> tuple[str, int] | None:
    """"host:port" or "[v6]:port" with a literal IP address, or None."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return host, int(port)


@endpoint("torrents", "editTracker", changes=True)
def edit_tracker(call: Call) -> str:
    torrent = call.torrent()
    old, new = call.need("origUrl"), call.need("newUrl")
    try:
        tracker_url(new)
    except ApiError:
        raise QbtError(400, "New tracker URL is invalid") from None
    tiers = {s.url: s.tier for tier in torrent.trackers() for s in tier}
    if old not in tiers:
        raise QbtError(409, "Tracker not found")
    if new in tiers:
        raise QbtError(409, "New tracker URL already exists")
    torrent.remove_tracker(old)
    torrent.add_tracker(new, tiers[old])
    call.ctx.manager.trackers_changed(torrent)
    return ""
