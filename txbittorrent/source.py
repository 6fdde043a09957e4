"""What a torrent may be made from: a .torrent (path, bytes or ``Metainfo``),
a magnet URI, or a bare info hash.

``load_source`` turns any of them into a ``TorrentSource``: the info hash,
the metainfo when it is known (None for a magnet or an info hash: the
torrent then starts in the ``metadata`` state), a display name, trackers as
BEP 12 tiers, and peers to dial (a magnet's ``x.pe``).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from txbittorrent.core.magnet import Magnet, magnet_from_metainfo, parse_magnet
from txbittorrent.core.metainfo import Metainfo, MetainfoLimits, parse
from txbittorrent.errors import MetainfoError
from txbittorrent.interfaces import Address

__all__ = ["TorrentSource", "load_source", "Source"]

Source = str | bytes | bytearray | memoryview | Metainfo | Magnet
"""What ``Torrent`` and ``Session.add`` accept."""

_HEX = re.compile(r"[0-9a-fA-F]{40}")
_BASE32 = re.compile(r"[A-Za-z2-7]{32}")


@dataclass(frozen=True)
class TorrentSource:
    """A torrent as far as its source tells."""

    info_hash: bytes
    metainfo: Metainfo | None
    display_name: str | None
    trackers: tuple[tuple[str, ...], ...]
    peers: tuple[Address, ...] = ()

    @classmethod
    def from_metainfo(cls, metainfo: Metainfo) -> TorrentSource:
        return cls(metainfo.info_hash, metainfo, metainfo.name, metainfo.trackers)

    @classmethod
    def from_magnet(cls, magnet: Magnet) -> TorrentSource:
        """A magnet's trackers each make a tier of their own (as BEP 9 lists
        them: ``tr``, ``tr.1``... without tiers)."""
        return cls(
            magnet.info_hash,
            None,
            magnet.display_name,
            tuple((url,) for url in magnet.trackers),
            magnet.peers,
        )

    def magnet(self) -> Magnet:
        """The magnet link of this torrent."""
        if self.metainfo is not None:
            return magnet_from_metainfo(self.metainfo)
        return Magnet(
            self.info_hash,
            display_name=self.display_name,
            trackers=tuple(url for tier in self.trackers for url in tier),
            peers=self.peers,
        )


def bare_info_hash(text: str) -> bytes | None:
    """The 20 bytes of a bare info hash (40 hex digits or 32 base32
    characters), or None if ``text`` is not one."""
    if _HEX.fullmatch(text):
        return bytes.fromhex(text)
    if _BASE32.fullmatch(text):
        try:
            return base64.b32decode(text.upper())
        except binascii.Error:  # pragma: no cover - the pattern rules it out
            return None
    return None


def load_source(source: Source, limits: MetainfoLimits) -> TorrentSource:
    """Parse what a torrent is made from (see the module docstring).

    Raises ``MetainfoError`` (a bad or missing .torrent) or ``MagnetError``."""
    if isinstance(source, Metainfo):
        return TorrentSource.from_metainfo(source)
    if isinstance(source, Magnet):
        return TorrentSource.from_magnet(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw = bytes(source)
        if len(raw) == 20:  # no .torrent is that short
            return TorrentSource(raw, None, None, ())
        return TorrentSource.from_metainfo(parse(raw, limits))
    if source.strip()[:7].lower() == "magnet:":
        return TorrentSource.from_magnet(parse_magnet(source.strip()))
    try:
        with open(source, "rb") as f:
            data = f.read(limits.max_torrent_size + 1)
    except FileNotFoundError:
        info_hash = bare_info_hash(source)  # a file of that name would win
        if info_hash is not None:
            return TorrentSource(info_hash, None, None, ())
        raise MetainfoError(str(source), "no such file") from None
    except OSError as e:
        raise MetainfoError(str(source), e.strerror or str(e)) from None
    return TorrentSource.from_metainfo(parse(data, limits))
