"""Magnet links (BEP 9): parse them, build them, and make one from a torrent.

Theory of operation
-------------------
A magnet link names a torrent by its info hash and may add hints: a display
name, trackers, peers and web seeds.  ``parse_magnet`` turns the text a user
pasted into a frozen ``Magnet``; ``Magnet.to_uri`` writes one back in a
canonical form; ``magnet_from_metainfo`` makes one from a parsed torrent.
Nothing here does I/O: fetching the metadata (BEP 9's ``ut_metadata``) is
someone else's job.

Invariant: every ``Magnet`` that can be constructed survives the round trip,
``parse_magnet(m.to_uri()) == m``.  ``Magnet.__post_init__`` enforces it by
refusing (``ValueError``, as misuse of the API) the values ``parse_magnet``
would never produce: a hash that is not 20 bytes, an empty display name,
repeated or unusable URLs, peers that are not in canonical form.

Decisions
---------
* Strict where a typing or copying mistake makes the link useless, lenient
  for optional hints.  A missing, malformed or contradictory info hash is a
  ``MagnetError`` with the reason; so is a text that is not a magnet link or
  is absurdly long (``MAX_URI_LENGTH`` characters, ``MAX_PARAMETERS``
  parameters).  A tracker, web seed, peer or exact length that cannot be used
  is skipped, as libtorrent and Transmission do: the link still works without
  it, and the rest of it is worth having.
* The scheme is case-insensitive (RFC 3986, 3.1) and must be followed by
  ``?``.  Leading and trailing whitespace is ignored (it comes with pasting).
  A fragment (``#`` onwards) is dropped, as RFC 3986 says it is not part of
  the query; a literal ``#`` in a value must be written ``%23``.
* Parameter names are matched case-insensitively.  ``xt``, ``tr``, ``ws`` and
  ``x.pe`` may repeat and may carry an index (``tr.1``, ``tr.2``); values are
  kept in the order they appear and repeats are dropped.  For ``dn`` and
  ``xl`` the first usable value wins.  Other parameters (``xs``, ``as``,
  ``kt``, ``so``, ...) are ignored.
* Percent-escapes are decoded as UTF-8; bytes that are not UTF-8 become
  U+FFFD.  RFC 3986 gives ``+`` no meaning in a query, but web pages and
  libtorrent write the display name in form encoding (``dn=Big+Buck+Bunny``),
  so in ``dn`` a ``+`` is a space; in URLs and peer addresses it stays a
  ``+`` (a URL cannot hold a space).  ``to_uri`` writes ``%20`` and ``%2B``, so
  its output means the same under either reading.
* ``xt=urn:btih:`` takes 40 hexadecimal digits or 32 base32 characters
  (RFC 4648 alphabet, no padding), in any case.  Several ``xt`` may name the
  same torrent (a hex and a base32 spelling, or a v2 ``urn:btmh:`` beside the
  v1 hash of a hybrid torrent); two different v1 hashes are an error.  A link
  with only a v2 (``urn:btmh:``) hash is refused until v2 is supported.
* A tracker or web seed must look like an absolute URL (``scheme://...``)
  with no whitespace or control characters; anything more is for the tracker
  client to judge.  A peer (``x.pe``) is ``host:port``: an IPv4 address, a
  bracketed IPv6 address (``[::1]:6881``) or a DNS name, with a port in
  1..65535.  Addresses are stored canonical (``ipaddress``'s spelling, names
  in lower case) without brackets.
* ``magnet_from_metainfo`` leaves out ``xl``, as libtorrent and most clients
  do: the metadata, once fetched, says the length with authority.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, unquote_plus

from txbittorrent.core.metainfo import Metainfo
from txbittorrent.errors import MagnetError

__all__ = [
    "MAX_PARAMETERS",
    "MAX_URI_LENGTH",
    "Magnet",
    "magnet_from_metainfo",
    "parse_magnet",
]

MAX_URI_LENGTH = 64 * 1024
"""The longest magnet link accepted, in characters."""

MAX_PARAMETERS = 1024
"""The most ``&``-separated parameters accepted in one link."""

_MAX_XL_DIGITS = 20
"""Enough for any length a 64-bit client can hold."""

_SCHEME = "magnet:"
_HEX_HASH = re.compile(r"[0-9A-Fa-f]{40}")
_BASE32_HASH = re.compile(r"[A-Za-z2-7]{32}")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\x00-\x20\x7f]+")
_DNS_NAME = re.compile(
    r"(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
)
_INDEXED = re.compile(r"(xt|tr|ws|x\.pe)\.[0-9]+")


# -- field rules, shared by the parser and the constructor ---------------------


def _usable_url(value: str) -> bool:
    """Whether ``value`` can be a tracker or web seed URL (see the decisions)."""
    return _URL.fullmatch(value) is not None


def _canonical_host(host: str) -> str | None:
    """The canonical spelling of a peer's host, or ``None`` if it is not one.

    ``host`` is an IP address (IPv6 without brackets, and without a zone
    index, which means nothing to a remote peer) or a DNS name."""
    if "%" in host:
        return None
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    name = host.lower()
    if name.isascii() and _DNS_NAME.fullmatch(name) and not name.replace(".", "").isdigit():
        return name
    return None


def _parse_peer(text: str) -> tuple[str, int] | None:
    """``host:port`` (IPv6 in brackets) as a canonical ``(host, port)``, or ``None``."""
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or text[close + 1 : close + 2] != ":":
            return None
        host, port_text = text[1:close], text[close + 2 :]
        if ":" not in host:
            return None
    else:
        host, colon, port_text = text.rpartition(":")
        if not colon or ":" in host:
            return None
    if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5):
        return None
    port = int(port_text)
    canonical = _canonical_host(host)
    if canonical is None or not 1 <= port <= 65535:
        return None
    if (":" in canonical) != text.startswith("["):
        return None
    return canonical, port


def _format_peer(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _parse_info_hash(text: str) -> bytes:
    """The 20 bytes named by the part of ``xt`` after ``urn:btih:``."""
    if _HEX_HASH.fullmatch(text):
        return bytes.fromhex(text)
    if _BASE32_HASH.fullmatch(text):
        try:
            return base64.b32decode(text, casefold=True)
        except binascii.Error:  # pragma: no cover - the pattern rules it out
            pass
    raise MagnetError(
        f"the info hash {text[:64]!r} is neither 40 hexadecimal digits nor 32 base32 characters"
    )


# -- the value -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Magnet:
    """A parsed magnet link: a v1 info hash and the optional hints that came with it."""

    info_hash: bytes
    display_name: str | None = None
    trackers: tuple[str, ...] = ()
    peers: tuple[tuple[str, int], ...] = ()
    """``(host, port)``; an IPv6 host is written without brackets."""
    web_seeds: tuple[str, ...] = ()
    exact_length: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.info_hash, bytes) or len(self.info_hash) != 20:
            raise ValueError("info_hash must be 20 bytes")
        if self.display_name is not None:
            if not self.display_name:
                raise ValueError("display_name must be None rather than empty")
            _check_unicode(self.display_name, "display_name")
        for label, urls in (("trackers", self.trackers), ("web_seeds", self.web_seeds)):
            if len(set(urls)) != len(urls):
                raise ValueError(f"{label} holds a URL twice")
            for url in urls:
                if not _usable_url(url):
                    raise ValueError(f"{label} holds {url!r}, which is not a usable URL")
                _check_unicode(url, label)
        if len(set(self.peers)) != len(self.peers):
            raise ValueError("peers holds an address twice")
        for host, port in self.peers:
            if not (isinstance(port, int) and 1 <= port <= 65535):
                raise ValueError(f"peer port {port!r} is not in 1..65535")
            if _canonical_host(host) != host:
                raise ValueError(f"peer host {host!r} is not a canonical address or name")
        if self.exact_length is not None and not (
            isinstance(self.exact_length, int) and self.exact_length >= 0
        ):
            raise ValueError("exact_length must be a non-negative integer")

    @property
    def info_hash_hex(self) -> str:
        """The info hash in lower-case hexadecimal, as ``to_uri`` writes it."""
        return self.info_hash.hex()

    def to_uri(self) -> str:
        """This link in canonical form: ``xt``, ``dn``, ``xl``, then each ``tr``,
        ``ws`` and ``x.pe``, escaped so that ``parse_magnet`` reads it back."""
        parts = [f"xt=urn:btih:{self.info_hash.hex()}"]
        if self.display_name is not None:
            parts.append("dn=" + quote(self.display_name, safe=""))
        if self.exact_length is not None:
            parts.append(f"xl={self.exact_length}")
        parts.extend("tr=" + quote(url, safe=":/@") for url in self.trackers)
        parts.extend("ws=" + quote(url, safe=":/@") for url in self.web_seeds)
        parts.extend("x.pe=" + quote(_format_peer(h, p), safe=":") for h, p in self.peers)
        return "magnet:?" + "&".join(parts)


def _check_unicode(text: str, label: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{label} is not valid Unicode text") from None


# -- parsing -------------------------------------------------------------------


def _split(uri: str) -> list[tuple[str, str]]:
    """Check the frame of ``uri``; return its (lower-case name, raw value) pairs."""
    if not isinstance(uri, str):
        raise TypeError(f"a magnet link is text, not {type(uri).__name__}")
    if len(uri) > MAX_URI_LENGTH:
        raise MagnetError(f"longer than {MAX_URI_LENGTH} characters")
    uri = uri.strip()
    if uri[: len(_SCHEME)].lower() != _SCHEME:
        raise MagnetError("it does not start with 'magnet:'")
    rest = uri[len(_SCHEME) :]
    if not rest.startswith("?"):
        raise MagnetError("'magnet:' must be followed by '?' and the parameters")
    query = rest[1:].partition("#")[0]
    try:
        query.encode("utf-8")
    except UnicodeEncodeError:
        raise MagnetError("it is not valid Unicode text") from None
    if query.count("&") >= MAX_PARAMETERS:
        raise MagnetError(f"more than {MAX_PARAMETERS} parameters")
    pairs = []
    for item in query.split("&"):
        name, _, value = item.partition("=")
        name = unquote(name).lower()
        if _INDEXED.fullmatch(name):
            name = name.rpartition(".")[0]
        pairs.append((name, value))
    return pairs


def _exact_length(value: str) -> int | None:
    text = unquote(value)
    if text.isascii() and text.isdigit() and len(text) <= _MAX_XL_DIGITS:
        return int(text)
    return None


def parse_magnet(uri: str) -> Magnet:
    """Parse a magnet link; raise ``MagnetError`` saying why if it is unusable."""
    info_hash: bytes | None = None
    saw_v2 = False
    display_name: str | None = None
    exact_length: int | None = None
    trackers: dict[str, None] = {}
    web_seeds: dict[str, None] = {}
    peers: dict[tuple[str, int], None] = {}
    for name, value in _split(uri):
        if name == "xt":
            urn = unquote(value)
            kind = urn[:9].lower()
            if kind == "urn:btih:":
                found = _parse_info_hash(urn[9:])
                if info_hash is not None and found != info_hash:
                    raise MagnetError(
                        f"two different info hashes: {info_hash.hex()} and {found.hex()}"
                    )
                info_hash = found
            elif kind == "urn:btmh:":
                saw_v2 = True
        elif name == "dn":
            if display_name is None:
                display_name = unquote_plus(value) or None
        elif name == "xl":
            if exact_length is None:
                exact_length = _exact_length(value)
        elif name == "tr":
            url = unquote(value)
            if _usable_url(url):
                trackers[url] = None
        elif name == "ws":
            url = unquote(value)
            if _usable_url(url):
                web_seeds[url] = None
        elif name == "x.pe":
            peer = _parse_peer(unquote(value))
            if peer is not None:
                peers[peer] = None
    if info_hash is None:
        if saw_v2:
            raise MagnetError("BitTorrent v2 magnet links are not supported yet")
        raise MagnetError("no BitTorrent info hash (xt=urn:btih:...)")
    return Magnet(
        info_hash=info_hash,
        display_name=display_name,
        trackers=tuple(trackers),
        peers=tuple(peers),
        web_seeds=tuple(web_seeds),
        exact_length=exact_length,
    )


def magnet_from_metainfo(metainfo: Metainfo) -> Magnet:
    """The magnet link of a torrent: its hash, name, trackers (tier by tier)
    and web seeds.  URLs a magnet link cannot carry are left out."""
    trackers = dict.fromkeys(
        url for tier in metainfo.trackers for url in tier if _usable_url(url)
    )
    web_seeds = dict.fromkeys(url for url in metainfo.url_list if _usable_url(url))
    return Magnet(
        info_hash=metainfo.info_hash,
        display_name=metainfo.name or None,
        trackers=tuple(trackers),
        web_seeds=tuple(web_seeds),
    )
