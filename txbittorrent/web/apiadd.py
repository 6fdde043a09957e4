"""Adding a torrent through the native API: the three body forms, URL
sources, and the file selection.

Theory of operation
-------------------
``read_add_request`` turns ``POST /api/torrents`` into an ``AddRequest``,
whatever its form:

1. ``application/json``: ``{"source": magnet URI | info hash | http(s) URL
   of a .torrent, "save_path", "paused", "priorities", "files", "labels"}``;
2. ``multipart/form-data``: the .torrent in the file field ``torrent`` (or a
   ``source`` field), the options as fields (``labels`` comma-separated or
   repeated, ``files``/``priorities`` comma lists);
3. ``application/x-bittorrent``: the .torrent as the body, the options in
   the query string.

A .torrent is parsed at once with the library's strict metainfo code
(limits: ``MAX_TORRENT`` bytes); a client's string is never opened as a
path (``source.load_source`` would): it must be a magnet URI, a bare info
hash or an http(s) URL.

``TorrentFetcher`` fetches a URL source with treq (its ``HTTPClient`` is
injected), unbuffered, the body capped at ``MAX_TORRENT``, the whole fetch
under one timeout on the injected clock, redirects followed by hand (at
most ``MAX_REDIRECTS``; http and https only, or a ``magnet:`` Location,
which becomes the source).  Any failure is an ``ApiError`` 400.

``priorities_for`` gives the full per-file priority list (pad files
included, as the storage wants it) from the client's per-listed-file
``priorities`` or wanted ``files``.  A .torrent's selection is checked at
once (400) and given to the new torrent; a magnet's or info hash's waits
for the metadata (``select_on_metadata``: applied when the torrent has its
metadata and has left "checking", so the swarm has the data to
reprioritise; until the priorities are set, a few pieces of unwanted files
may be requested; a selection that does not fit the files is logged and
dropped).
"""
# twisted.web's Request and treq's responses are untyped.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from twisted.internet.defer import CancelledError, Deferred, TimeoutError, inlineCallbacks
from twisted.python.failure import Failure
from twisted.web.server import Request

import treq

from twisted.logger import Logger

from txbittorrent.core.metainfo import Metainfo, MetainfoLimits, parse
from txbittorrent.errors import MetainfoError
from txbittorrent.eventtypes import (
    MetadataReceived,
    StateChanged,
    TorrentEvent,
    TorrentRemoved,
)
from txbittorrent.state import TorrentState
from txbittorrent.net.urls import treq_url
from txbittorrent.source import bare_info_hash
from txbittorrent.web.apibody import (
    MAX_TORRENT,
    ApiError,
    content_type,
    first,
    flag,
    form_fields,
    form_file,
    int_list,
    json_body,
    labels,
    raw_body,
    save_path,
)

if TYPE_CHECKING:
    from txbittorrent.torrent import Torrent

__all__ = ["select_on_metadata", "AddRequest", "TorrentFetcher", "read_add_request", "priorities_for",
           "parse_torrent", "MAX_REDIRECTS", "FETCH_TIMEOUT"]

MAX_REDIRECTS = 5
FETCH_TIMEOUT = 30.0
"""Seconds a URL source may take, redirects and body included."""
_REDIRECTS = (301, 302, 303, 307, 308)
LIMITS = MetainfoLimits(max_torrent_size=MAX_TORRENT)
_log = Logger()


@dataclass(frozen=True, slots=True)
class AddRequest:
    """What to add and how.  ``source`` is a magnet URI (str), a 20-byte
    info hash, a parsed .torrent (``Metainfo``, its bytes in ``raw``), or
    None while ``url`` is still to fetch."""

    source: str | bytes | Metainfo | None
    save_path: str
    paused: bool = False
    priorities: tuple[int, ...] | None = None
    files: tuple[int, ...] | None = None
    labels: tuple[str, ...] = ()
    url: str | None = None
    raw: bytes | None = None


def parse_torrent(raw: bytes) -> Metainfo:
    """A .torrent's bytes, parsed strictly; 400 if malformed or too big."""
    if not raw:
        raise ApiError(400, "the .torrent is empty")
    try:
        return parse(raw, LIMITS)
    except MetainfoError as e:
        raise ApiError(400, f"bad .torrent: {e}") from None
    except Exception as e:  # an unsupported torrent (v2-only...) or a parser surprise
        raise ApiError(400, f"bad .torrent: {e}") from None


def _source_text(text: Any) -> tuple[str | bytes | None, str | None]:
    """(source, url) from a client's string (never a path)."""
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "'source' must be a magnet URI, an info hash or an http(s) URL")
    text = text.strip()
    scheme = text.split(":", 1)[0].lower()
    if scheme == "magnet":
        return text, None  # never a bare string to Session.add: it would open it as a path
    if scheme in ("http", "https") and text[len(scheme):].startswith("://"):
        return None, text
    info_hash = bare_info_hash(text)
    if info_hash is None:
        raise ApiError(400, "'source' is neither a magnet URI, an info hash nor an http(s) URL")
    return info_hash, None


def read_add_request(request: Request, download_dir: str) -> AddRequest:
    """The add, from any of the three body forms (see the module docstring)."""
    kind = content_type(request)
    text = kind in ("multipart/form-data", "application/x-www-form-urlencoded",
                    "application/x-bittorrent")
    if text:
        fields: dict[str, Any] = form_fields(request)
        if kind == "application/x-bittorrent":
            raw: bytes | None = raw_body(request, MAX_TORRENT, ".torrent")
        else:
            raw = form_file(request, "torrent")
            if raw is not None and len(raw) > MAX_TORRENT:
                raise ApiError(400, f"the .torrent is over {MAX_TORRENT} bytes")
        options = {name: first(fields, name) for name in
                   ("source", "save_path", "paused", "priorities", "files")}
        options["labels"] = fields.get("labels")
        if options["labels"] is not None:
            options["labels"] = ",".join(options["labels"])
    else:
        options = json_body(request)
        raw = None
    given = {k: v for k, v in options.items() if v is not None}
    if raw is not None:
        source: str | bytes | Metainfo | None = parse_torrent(raw)
        url = None
    elif "source" in given:
        source, url = _source_text(given["source"])
    else:
        raise ApiError(400, "no 'source' given (nor a .torrent)")
    add = AddRequest(
        source=source,
        raw=raw,
        url=url,
        save_path=save_path(given["save_path"], download_dir)
        if "save_path" in given else download_dir,
        paused=flag(given.get("paused", False), "paused", text),
        labels=labels(given.get("labels", []), text),
        priorities=tuple(int_list(given["priorities"], "priorities", text))
        if "priorities" in given else None,
        files=tuple(int_list(given["files"], "files", text)) if "files" in given else None,
    )
    if add.priorities is not None and add.files is not None:
        raise ApiError(400, "give 'priorities' or 'files', not both")
    if isinstance(add.source, Metainfo):
        priorities_for(add.source, add.priorities, add.files)  # 400 now, before any fetch
    return add


def listed_files(metainfo: Metainfo) -> list[int]:
    """The indexes of the files the API lists (pad files left out)."""
    return [i for i, f in enumerate(metainfo.files) if not f.pad]


def priorities_for(
    metainfo: Metainfo,
    priorities: Sequence[int] | None,
    files: Sequence[int] | None,
    current: Sequence[int] | None = None,
) -> tuple[int, ...] | None:
    """Every file's priority (pad files keep ``current``, default 1) from one
    priority per listed file, or from the indexes of the files wanted
    (the others 0); None when neither is given.  400 on a mismatch."""
    if priorities is None and files is None:
        return None
    listed = listed_files(metainfo)
    out = list(current) if current is not None else [1] * len(metainfo.files)
    if priorities is not None:
        if len(priorities) != len(listed):
            raise ApiError(400, f"{len(priorities)} priorities for {len(listed)} files")
        for index, priority in zip(listed, priorities):
            out[index] = priority
    else:
        assert files is not None
        unknown = sorted(set(files) - set(listed))
        if unknown:
            raise ApiError(400, f"no file {unknown[0]} in this torrent")
        for index in listed:
            out[index] = 1 if index in files else 0
    return tuple(out)


def select_on_metadata(
    torrent: Torrent, priorities: Sequence[int] | None, files: Sequence[int] | None
) -> Deferred[tuple[int, ...] | None]:
    """Apply a file selection once the torrent's metadata is there and its
    data attached (a running torrent checks its data first: the selection
    goes in when it leaves "checking"); fires with the priorities applied,
    or None (removed first, or the selection did not fit: logged)."""
    done: Deferred[tuple[int, ...] | None] = Deferred()

    def finish(result: tuple[int, ...] | None) -> None:
        subscription.cancel()
        if not done.called:
            done.callback(result)

    def failed(failure: Failure) -> None:
        _log.failure("applying the file selection of {name} failed", failure, name=torrent.name)
        finish(None)

    def heard(event: TorrentEvent) -> None:
        metainfo = torrent.metainfo
        if isinstance(event, TorrentRemoved):
            finish(None)
            return
        if metainfo is None or torrent.state in (TorrentState.METADATA, TorrentState.CHECKING):
            return  # not yet: the swarm has no data to reprioritise
        try:
            full = priorities_for(metainfo, priorities, files)
        except ApiError as e:
            _log.warn("file selection for {name} dropped: {why}", name=torrent.name,
                      why=e.message)
            finish(None)
            return
        assert full is not None
        subscription.cancel()
        torrent.set_priorities(full).addCallbacks(lambda _: finish(full), failed)

    subscription = torrent.subscribe(
        heard, kinds=(MetadataReceived, StateChanged, TorrentRemoved)
    )
    return done


class TorrentFetcher:
    """Fetches a .torrent (or a magnet redirect) from an http(s) URL."""

    def __init__(
        self,
        client: Any,
        clock: Any,
        timeout: float = FETCH_TIMEOUT,
        cap: int = MAX_TORRENT,
    ) -> None:
        """``client`` is a ``treq.HTTPClient`` (or one with its ``get``);
        ``clock`` an ``IReactorTime`` for the timeout."""
        self.client = client
        self.clock = clock
        self.timeout = timeout
        self.cap = cap

    def fetch(self, url: str) -> Deferred[bytes | str]:
        """The body of ``url`` (bytes), or the magnet URI it redirects to."""
        d: Deferred[bytes | str] = self._fetch(url)
        d.addTimeout(self.timeout, self.clock)

        def failed(failure: Failure) -> Failure:
            if failure.check(ApiError):
                return failure
            if failure.check(TimeoutError, CancelledError):
                raise ApiError(400, f"fetching {url} timed out after {self.timeout:g} s")
            raise ApiError(400, f"fetching {url} failed: {failure.getErrorMessage()}")

        return d.addErrback(failed)

    @inlineCallbacks
    def _fetch(self, url: str) -> Any:
        for _ in range(MAX_REDIRECTS + 1):
            if urlsplit(url).scheme.lower() not in ("http", "https"):
                raise ApiError(400, f"only http and https URLs are fetched, not {url[:80]!r}")
            response = yield self.client.get(treq_url(url), allow_redirects=False,
                                             unbuffered=True)
            if response.code in _REDIRECTS:
                locations = response.headers.getRawHeaders(b"location") or []
                response.deliverBody(_Discard())
                if not locations:
                    raise ApiError(400, f"{url}: a redirect without a Location")
                target = urljoin(url, locations[0].decode("latin-1").strip())
                if target[:7].lower() == "magnet:":
                    return target
                url = target
                continue
            if response.code != 200:
                response.deliverBody(_Discard())
                raise ApiError(400, f"fetching {url}: HTTP {response.code}")
            length = response.length
            if isinstance(length, int) and length > self.cap:
                response.deliverBody(_Discard())
                raise ApiError(400, f"{url}: the .torrent is over {self.cap} bytes")
            chunks: list[bytes] = []
            size = [0]

            def collect(data: bytes) -> None:
                size[0] += len(data)
                if size[0] > self.cap:
                    raise ApiError(400, f"{url}: the .torrent is over {self.cap} bytes")
                chunks.append(data)

            yield treq.collect(response, collect)
            return b"".join(chunks)
        raise ApiError(400, f"fetching {url}: more than {MAX_REDIRECTS} redirects")


class _Discard:
    """A body protocol that drops what it hears (the connection is closed)."""

    transport: Any = None

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport
        stop = getattr(transport, "stopProducing", None)
        if stop is not None:
            stop()

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Any) -> None:
        pass


def resolved(add: AddRequest, fetched: bytes | str) -> AddRequest:
    """The add with a URL's result as its source."""
    if isinstance(fetched, str):
        return dataclasses.replace(add, source=fetched, url=None)
    metainfo = parse_torrent(fetched)
    priorities_for(metainfo, add.priorities, add.files)
    return dataclasses.replace(add, source=metainfo, raw=fetched, url=None)
