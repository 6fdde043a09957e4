"""``torrents/add``: magnets, info hashes and http(s) URLs in ``urls`` (one
a line), and .torrent files as multipart parts under any field name.

Options: ``savepath`` (relative: under the download directory; default:
the category's save path if it has one, else ``app/defaultSavePath``),
``category`` (created if new, as qBittorrent does), ``tags`` (comma-
separated), ``paused``/``stopped`` (added paused), ``dlLimit``/``upLimit``
(bytes/s), ``sequentialDownload``, ``firstLastPiecePrio``, ``ratioLimit``,
``seedingTimeLimit``, ``inactiveSeedingTimeLimit`` (stored: ``extras``);
``skip_checking``/``seedMode``, ``contentLayout``, ``autoTMM``, ``rename``
and the rest are accepted and ignored (the data is always checked; the
layout is always the torrent's own).  Booleans in any case.

Each source is added through the ``TorrentManager`` (URLs fetched first);
the answer waits for all of them: ``Ok.`` if any was added, ``Fails.``
(200) if none was (a bad source, a duplicate, a failed fetch).  A part
that looks like a .torrent but does not parse is 400 ("Error: '<field>'
is not a valid torrent file.", as qBittorrent says).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from txbittorrent.source import bare_info_hash
from txbittorrent.web.apiadd import AddRequest, parse_torrent
from txbittorrent.web.apibody import ApiError, labels, save_path
from txbittorrent.web.qbt.app import default_save_path
from txbittorrent.web.qbt.base import Call, QbtError, endpoint
from txbittorrent.web.qbt.fields import split_list

if TYPE_CHECKING:
    from txbittorrent.torrent import Torrent

__all__ = ["OPTION_FIELDS", "url_request"]

OPTION_FIELDS = frozenset({
    "urls", "savepath", "category", "tags", "paused", "stopped", "skip_checking", "seedMode",
    "sequentialDownload", "firstLastPiecePrio", "contentLayout", "root_folder", "ratioLimit",
    "seedingTimeLimit", "inactiveSeedingTimeLimit", "dlLimit", "upLimit", "autoTMM",
    "rename", "cookie", "useDownloadPath", "downloadPath", "addToTopOfQueue", "stopCondition",
    "forced", "filePriorities", "shareLimitAction", "shareLimitsMode", "ssl_certificate",
    "ssl_private_key", "ssl_dh_params", "downloader",
})
_log = Logger()


def url_request(text: str, save: str, paused: bool, tags: tuple[str, ...]) -> AddRequest:
    """An add of one line of ``urls`` (never opened as a path); 400 if it is
    no magnet, info hash or http(s) URL."""
    scheme = text.split(":", 1)[0].lower()
    if scheme == "magnet":
        return AddRequest(source=text, save_path=save, paused=paused, labels=tags)
    if scheme in ("http", "https") and text[len(scheme):].startswith("://"):
        return AddRequest(source=None, url=text, save_path=save, paused=paused, labels=tags)
    info_hash = bare_info_hash(text)
    if info_hash is None:
        raise ApiError(400, f"not a magnet URI, info hash or URL: {text[:80]!r}")
    return AddRequest(source=info_hash, save_path=save, paused=paused, labels=tags)


def _torrent_parts(call: Call) -> list[tuple[str, bytes]]:
    """(field name, bytes) of every field that looks bencoded with an info
    dictionary: the .torrent parts, whatever their field names."""
    parts = []
    for name, values in call.raw.items():
        if name in OPTION_FIELDS:
            continue
        for value in values:
            if value[:1] == b"d" and b"4:info" in value:
                parts.append((name, value))
    return parts


@endpoint("torrents", "add", changes=True)
def add(call: Call) -> Deferred[str]:
    ctx = call.ctx
    category = (call.get("category") or "").strip()
    if category and category not in ctx.store.categories():
        ctx.store.set_category(category, "")
    given = call.get("savepath")
    if given and given.strip():
        save = save_path(given.strip(), ctx.download_dir)
    else:
        save = (ctx.store.categories().get(category) if category else None) \
            or default_save_path(ctx)
    tags = labels(split_list(call.get("tags"), ","))
    paused = call.flag("paused") or call.flag("stopped")
    requests: list[AddRequest | ApiError] = []
    for text in split_list(call.get("urls"), "\n"):
        try:
            requests.append(url_request(text, save, paused, tags))
        except ApiError as e:
            requests.append(e)
    for name, raw in _torrent_parts(call):
        try:
            metainfo = parse_torrent(raw)
        except ApiError:
            raise QbtError(400, f"Error: '{name}' is not a valid torrent file.") from None
        requests.append(AddRequest(source=metainfo, raw=raw, save_path=save, paused=paused,
                                   labels=tags))
    if not requests:
        raise QbtError(400, "Missing required parameters")
    options = _options(call)
    waits: list[Deferred[Any]] = []
    for item in requests:
        if isinstance(item, ApiError):
            _log.info("qbt add: {why}", why=item.message)
            continue
        d: Deferred[Any] = maybeDeferred(ctx.manager.add, item)
        d.addCallback(_configure, call, category, options)
        waits.append(d.addErrback(_failed))
    if not waits:
        return succeed("Fails.")
    return DeferredList(waits).addCallback(
        lambda results: "Ok." if any(ok and value for ok, value in results) else "Fails.")


def _options(call: Call) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if call.get("sequentialDownload") is not None:
        out["seq_dl"] = call.flag("sequentialDownload")
    if call.get("firstLastPiecePrio") is not None:
        out["f_l_piece_prio"] = call.flag("firstLastPiecePrio")
    ratio = call.number("ratioLimit")
    if ratio is not None:
        out["ratio_limit"] = ratio
    for param, key in (("seedingTimeLimit", "seeding_time_limit"),
                       ("inactiveSeedingTimeLimit", "inactive_seeding_time_limit")):
        value = call.integer(param)
        if value is not None:
            out[key] = value
    limits = (call.integer("dlLimit"), call.integer("upLimit"))
    out["limits"] = tuple(v if v is not None and v > 0 else None for v in limits)
    return out


def _configure(torrent: Torrent, call: Call, category: str, options: dict[str, Any]) -> bool:
    """What the manager's add does not know: category, extras, limits."""
    ctx = call.ctx
    ih = torrent.info_hash.hex()
    if category:
        ctx.manager.store_update(ih, category=category)
    extras = {k: v for k, v in options.items() if k != "limits"}
    if extras:
        ctx.extras.update(ih, **extras)
    down, up = options["limits"]
    if down is not None or up is not None:
        ctx.manager.set_limits(torrent, down, up)
    return True


def _failed(failure: Failure) -> bool:
    if isinstance(failure.value, ApiError):
        _log.info("qbt add failed: {why}", why=failure.value.message)
    else:
        _log.failure("qbt add failed", failure)
    return False
