"""The exception types txbittorrent raises.

Every error caused by bad input (a file, a peer, a tracker, a user) is one of
these, so callers can catch ``TxBitTorrentError`` and know they have seen every
failure the library anticipates.  This module imports nothing else of ours.
"""

from __future__ import annotations


class TxBitTorrentError(Exception):
    """Base class of every error txbittorrent raises on purpose."""


class BencodeError(TxBitTorrentError, ValueError):
    """Bytes that are not valid bencoding, or that exceed a decoding limit.

    ``offset`` is the byte position where the problem was found (or ``None``).
    """

    def __init__(self, reason: str, offset: int | None = None) -> None:
        self.reason = reason
        self.offset = offset
        where = "" if offset is None else f" at byte {offset}"
        super().__init__(f"invalid bencoding{where}: {reason}")


class MetainfoError(TxBitTorrentError, ValueError):
    """A torrent file (or its ``info`` dictionary) that we refuse to load.

    ``field`` names the offending key path (for example ``info.files[3].path``)
    and ``reason`` says what is wrong with it.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class UnsupportedTorrentError(MetainfoError):
    """A well-formed torrent of a kind we do not support yet (BitTorrent v2 only)."""


class MagnetError(TxBitTorrentError, ValueError):
    """A magnet URI we cannot parse; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid magnet link: {reason}")


class StorageError(TxBitTorrentError, OSError):
    """Disk I/O for a torrent failed: a short write, a full or read-only disk,
    a file removed under us, or a path that would leave the download directory.

    ``path`` is the file concerned (or ``None``)."""

    def __init__(self, reason: str, path: str | None = None) -> None:
        self.reason = reason
        self.path = path
        where = "" if path is None else f"{path}: "
        super().__init__(f"{where}{reason}")


class UnsafePathError(StorageError):
    """A path that would resolve outside the download directory (for example
    through a symbolic link already on disk)."""


class ResumeDataError(TxBitTorrentError, ValueError):
    """A resume record that is corrupt, of an unknown version, or for another
    torrent.  Loading code treats it as "no resume data", never as a fatal error."""


class LocalProtocolError(TxBitTorrentError, RuntimeError):
    """The library was used wrongly (an API called in the wrong state)."""


class RemoteProtocolError(TxBitTorrentError):
    """A peer or tracker sent something that breaks the protocol."""


class BitfieldError(TxBitTorrentError, ValueError):
    """A bitfield of the wrong length, or with spare bits set (BEP 3)."""


class MissingDataError(StorageError):
    """Bytes asked for that are not on disk (the file is missing or too short).
    Not a failure of the disk: the hash checker counts such a piece as absent."""


class SelfConnectionError(RemoteProtocolError):
    """The peer's handshake carries our own peer id: we reached ourselves."""


class MSEHandshakeError(RemoteProtocolError):
    """An encrypted (MSE/PE) handshake that breaks the protocol: a bad
    Diffie-Hellman key, a sync hash or verification constant not found where
    it must be, an unknown torrent, padding over its limit, or no crypto
    method both sides accept."""
