# twisted.web's Request is untyped: its calls are all over here.
# mypy: disable-error-code="no-untyped-call"
"""confluence's ``/metainfo`` (both ways) and ``/status`` text.

``POST /metainfo?ih=`` reads a bencoded metainfo body (at most
``MAX_METAINFO_BODY`` bytes; txbittorrent's strict, bounded decoder):
``announce`` and ``announce-list`` give trackers (http, https and udp URLs;
at most ``MAX_TRACKERS``), each added to the torrent (as a tier of its
own: ``Torrent.add_tracker``); ``info``, when present, must hash to the
torrent's info hash (400 otherwise) and is handed to
``Torrent.metadata_received`` when the torrent lacks its metadata (a
malformed one is 400).  Without ``ih`` (or ``magnet``) the info's SHA-1
names the torrent, as confluence takes it.  A torrent recorded in the
store without metainfo (added by magnet) gets its .torrent stored once the
metadata is known.  The answer is the info hash in hex and a newline,
like confluence's.

``GET /metainfo`` answers the .torrent (``application/x-bittorrent``:
the info bytes spliced verbatim, the trackers as ``announce``/
``announce-list``), or with ``Accept: application/json`` confluence's JSON
(``info`` base64, ``announce``, ``announceList``).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from twisted.web.server import Request

from txbittorrent.core.bencoding import decode_spans
from txbittorrent.core.metainfo import torrent_bytes
from txbittorrent.errors import BencodeError, MetainfoError
from txbittorrent.web.confluence import Confluence, RouteError, query

if TYPE_CHECKING:
    from txbittorrent.torrent import Torrent

__all__ = ["MAX_METAINFO_BODY", "MAX_TRACKERS", "parse_metainfo_body", "apply_metainfo",
           "metainfo_answer", "status_text"]

MAX_METAINFO_BODY = 8 * 1024 * 1024
"""The largest metainfo body accepted (bytes)."""
MAX_TRACKERS = 200
"""The most tracker URLs taken from one body."""
_SCHEMES = ("http", "https", "udp")


def _tracker(value: Any) -> str | None:
    if not isinstance(value, bytes):
        return None
    try:
        url = value.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in _SCHEMES or not parts.netloc or any(c <= " " for c in url):
        return None
    return url


def parse_metainfo_body(raw: bytes) -> tuple[list[str], bytes | None]:
    """The tracker URLs (``announce`` first, then ``announce-list`` in
    order, each once; unusable ones skipped) and the raw ``info`` bytes
    (None if absent) of a bencoded metainfo; RouteError 400 if it is not a
    dictionary or ``info`` is not one."""
    try:
        meta, spans = decode_spans(raw)
    except BencodeError as e:
        raise RouteError(400, f"the body is not a bencoded dictionary: {e}") from None
    candidates: list[Any] = [meta.get(b"announce")]
    announce_list = meta.get(b"announce-list")
    if isinstance(announce_list, list):
        for tier in announce_list:
            if isinstance(tier, list):
                candidates.extend(tier)
    urls: list[str] = []
    for candidate in candidates:
        url = _tracker(candidate)
        if url is not None and url not in urls:
            urls.append(url)
            if len(urls) == MAX_TRACKERS:
                break
    info: bytes | None = None
    if b"info" in meta:
        if not isinstance(meta[b"info"], dict):
            raise RouteError(400, "info is not a dictionary")
        start, end = spans[b"info"]
        info = raw[start:end]
    return urls, info


def apply_metainfo(confluence: Confluence, request: Request) -> bytes:
    """``POST /metainfo`` (see the module docstring)."""
    content = request.content
    raw = content.read(MAX_METAINFO_BODY + 1) if content is not None else b""
    if len(raw) > MAX_METAINFO_BODY:
        raise RouteError(413, f"the body is over {MAX_METAINFO_BODY} bytes")
    urls, info = parse_metainfo_body(raw)
    info_hash = hashlib.sha1(info).digest() if info is not None else None
    named = query(request, "ih") is not None or query(request, "magnet") is not None
    if named:
        torrent = confluence.torrent_for(request)
    elif info_hash is not None:
        torrent = confluence.torrent_for(request, info_hash.hex())
    else:
        raise RouteError(400, "expected a query parameter ih or magnet, or an info in the body")
    if info_hash is not None and info_hash != torrent.info_hash:
        raise RouteError(400, "the info's SHA-1 is not the torrent's info hash")
    for url in urls:
        torrent.add_tracker(url)
    if info is not None and not torrent.has_metadata:
        try:
            torrent.metadata_received(info)
        except MetainfoError as e:
            raise RouteError(400, f"bad info: {e}") from None
    _store_metainfo(confluence, torrent)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return torrent.info_hash.hex().encode("ascii") + b"\n"


def _tiers(torrent: Torrent) -> list[list[str]]:
    return [[status.url for status in tier] for tier in torrent.trackers()]


def _store_metainfo(confluence: Confluence, torrent: Torrent) -> None:
    store = confluence.store
    info = torrent.info_bytes()
    if store is None or info is None:
        return
    ih = torrent.info_hash.hex()
    record = store.get(ih)
    if record is not None and record.metainfo is None:
        store.set_metainfo(ih, torrent_bytes(info, _tiers(torrent)))


def metainfo_answer(torrent: Torrent, request: Request) -> bytes:
    """``GET /metainfo``: the .torrent, or confluence's JSON."""
    info = torrent.info_bytes()
    assert info is not None
    tiers = _tiers(torrent)
    request.setHeader(b"cache-control", b"no-store")
    accept = (request.getHeader(b"accept") or b"").decode("latin-1")
    if accept.split(";")[0].strip().lower() == "application/json":
        body: dict[str, Any] = {"info": base64.b64encode(info).decode("ascii")}
        urls = [url for tier in tiers for url in tier]
        if urls:
            body["announce"] = urls[0]
            body["announceList"] = tiers
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(body).encode("utf-8")
    request.setHeader(b"content-type", b"application/x-bittorrent")
    request.setHeader(b"content-disposition",
                      f'attachment; filename="{torrent.info_hash.hex()}.torrent"'.encode("ascii"))
    return torrent_bytes(info, tiers)


def _rate(value: float) -> str:
    return f"{value / 1024:.1f} KiB/s"


def status_text(confluence: Confluence) -> str:
    """``/status``: the session, then each torrent (state, progress, peers,
    rates, trackers and their last errors)."""
    session = confluence.session
    torrents = session.torrents()
    on_demand = confluence.on_demand
    addresses = ", ".join(f"{host}:{port}" for host, port in session.listening_addresses)
    dht = session.dht
    lines = [
        f"txbittorrent: {len(torrents)} torrent{'' if len(torrents) == 1 else 's'}",
        f"listening on: {addresses or 'nothing'}",
        f"DHT: {'on' if dht is not None else 'off'}",
        "",
    ]
    for torrent in torrents:
        name = torrent.name.replace("\n", " ").replace("\r", " ")
        lines.append(f"{torrent.info_hash.hex()}  {name}")
        if torrent.has_metadata:
            have = torrent.bitfield.count
            done = 100.0 * (1 - torrent.left / torrent.size) if torrent.size else 100.0
            lines.append(f"  progress: {done:.1f}% ({have}/{torrent.piece_count} pieces),"
                         f" {torrent.size} bytes, {torrent.left} left")
        else:
            lines.append("  progress: waiting for the metadata")
        owned = on_demand is not None and on_demand.owns(torrent)
        lines.append(f"  state: {torrent.state}{' (on demand)' if owned else ''};"
                     f" peers: {len(torrent.peers())};"
                     f" down {_rate(torrent.download_rate)}, up {_rate(torrent.upload_rate)}")
        for tier in torrent.trackers():
            for status in tier:
                error = f" (error: {status.last_error})" if status.last_error else ""
                lines.append(f"  tracker: {status.url}{error}")
        lines.append("")
    return "\n".join(lines)
