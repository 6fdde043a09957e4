"""Metainfo (.torrent files, BEP 3, 12, 27, 47, 19): parse and validate.

``parse(raw)`` turns the bytes of a .torrent file into a frozen ``Metainfo``.
Everything in the file is untrusted; every rejection is a ``MetainfoError``
naming the field and the reason.

Decisions
---------
* The info hash is SHA-1 over the ``info`` value's bytes exactly as they stand
  in the file (found by ``decode_spans``), never over a re-encoding, so a
  torrent with unsorted keys has the info hash libtorrent reports.
* A hybrid v1/v2 torrent loads as v1 (its v2 keys are ignored); a v2-only
  torrent raises ``UnsupportedTorrentError``.
* Trackers: ``announce-list`` (BEP 12) when present and non-empty, otherwise
  ``announce`` as a single tier.  Malformed tracker, url-list and comment
  entries are skipped: they are advisory and the torrent is usable without them.
* File paths go through ``sanitize_path`` (see its docstring for the policy per
  case); pad files (BEP 47 ``attr`` "p", or a legacy BitComet ``_____padding_file_`` name) are never
  created on disk and take no part in name checks.
* Limits (``MetainfoLimits``) bound the file size, the piece count, the piece
  length, the file count, the path depth and each path component's length.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from txbittorrent.core.bencoding import decode_prefix, decode_spans, encode
from txbittorrent.errors import BencodeError, MetainfoError, UnsupportedTorrentError

__all__ = [
    "MetainfoLimits", "FileEntry", "Metainfo", "parse", "parse_info", "piece_size", "sanitize_path",
    "torrent_bytes",
]


@dataclass(frozen=True, slots=True)
class MetainfoLimits:
    """What ``parse`` accepts at most.  Each is a setting; raise them with care."""

    max_torrent_size: int = 64 * 1024 * 1024
    max_pieces: int = 4 * 1024 * 1024
    max_piece_length: int = 256 * 1024 * 1024
    max_files: int = 1_000_000
    max_path_depth: int = 64
    """Components of a file's path on disk, counting a multi-file torrent's
    own directory (its name)."""
    max_component_length: int = 255
    """In bytes of UTF-8, as most file systems count."""


DEFAULT_LIMITS = MetainfoLimits()


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a torrent.

    ``path`` is relative to the download directory and already sanitised: for
    a multi-file torrent it starts with the torrent's name.  ``offset`` is where
    the file starts in the torrent's concatenated byte stream."""

    path: tuple[str, ...]
    length: int
    offset: int
    pad: bool = False
    executable: bool = False
    hidden: bool = False
    renamed: bool = False
    """True when sanitising changed the path the torrent gave."""


@dataclass(frozen=True, slots=True)
class Metainfo:
    """A parsed, validated v1 torrent."""

    info_hash: bytes
    info_bytes: bytes = field(repr=False)
    name: str
    piece_length: int
    pieces: bytes = field(repr=False)
    files: tuple[FileEntry, ...]
    total_length: int
    multi_file: bool
    private: bool = False
    trackers: tuple[tuple[str, ...], ...] = ()
    url_list: tuple[str, ...] = ()
    comment: str | None = None
    created_by: str | None = None
    creation_date: int | None = None
    hybrid: bool = False

    @property
    def info_hash_hex(self) -> str:
        return self.info_hash.hex()

    @property
    def piece_count(self) -> int:
        return len(self.pieces) // 20

    def piece_hash(self, index: int) -> bytes:
        if not 0 <= index < self.piece_count:
            raise IndexError(f"piece index {index} out of range")
        return self.pieces[index * 20 : index * 20 + 20]

    def piece_size(self, index: int) -> int:
        """The length of piece ``index`` (the last one may be shorter)."""
        return piece_size(index, self.piece_length, self.total_length)


def piece_size(index: int, piece_length: int, total_length: int) -> int:
    """The length of piece ``index`` of a torrent of ``total_length`` bytes
    in pieces of ``piece_length`` (the last one may be shorter): the one
    definition ``Metainfo``, ``Layout`` and the picker share."""
    start = index * piece_length
    if index < 0 or start >= total_length:
        raise IndexError(f"piece index {index} out of range")
    return min(piece_length, total_length - start)


# -- paths ---------------------------------------------------------------------

_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x01-\x1f\x7f-\x9f]")


def _component(raw: Any, field_name: str, limits: MetainfoLimits) -> tuple[str | None, bool]:
    """Sanitise one path component; return (text or None to drop it, renamed)."""
    if not isinstance(raw, bytes):
        raise MetainfoError(field_name, "path component is not a string")
    if b"\x00" in raw:
        raise MetainfoError(field_name, "path component contains a NUL byte")
    renamed = False
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "replace")
        renamed = True
    if text in ("", "."):
        return None, True
    if text == "..":
        raise MetainfoError(field_name, "path component '..' would leave the download directory")
    if "/" in text or "\\" in text:
        raise MetainfoError(field_name, f"path component {text!r} contains a path separator")
    if _DRIVE.match(text):
        text = text[0] + "_" + text[2:]
        renamed = True
    if _CONTROL.search(text):
        text = _CONTROL.sub("_", text)
        renamed = True
    if len(text.encode("utf-8")) > limits.max_component_length:
        raise MetainfoError(
            field_name,
            f"path component longer than {limits.max_component_length} bytes",
        )
    return text, renamed


def sanitize_path(
    raw: list[Any], field_name: str, limits: MetainfoLimits = DEFAULT_LIMITS
) -> tuple[tuple[str, ...], bool]:
    """Turn a torrent's list of path components into a safe relative path.

    Policy, per case:

    * ``..``, a component holding ``/`` or ``\\`` (so also an absolute path)
      or a NUL byte: the torrent is rejected (``MetainfoError``): no honest
      torrent needs them.
    * a component that starts like a drive letter (``C:``): its colon becomes
      ``_`` (a safe rename; harmless on POSIX, dangerous on Windows).
    * Unicode is not normalised: names are kept as the torrent spells them, so
      data another client wrote (NFD or NFC) is found on disk.
    * empty and ``.`` components: dropped (a safe rename); if nothing is left
      the torrent is rejected.
    * other control characters: replaced by ``_`` (a safe rename).
    * bytes that are not UTF-8: decoded with U+FFFD replacement (a rename).
    * a component longer than ``max_component_length`` bytes or a path deeper
      than ``max_path_depth``: rejected.

    Returns the path and whether it differs from what the torrent said."""
    if not isinstance(raw, list):
        raise MetainfoError(field_name, "path is not a list")
    if len(raw) > limits.max_path_depth:
        raise MetainfoError(field_name, f"path deeper than {limits.max_path_depth} components")
    out: list[str] = []
    renamed = False
    for part in raw:
        text, changed = _component(part, field_name, limits)
        renamed = renamed or changed
        if text is not None:
            out.append(text)
    if not out:
        raise MetainfoError(field_name, "path is empty")
    return tuple(out), renamed


def _dedupe(paths: list[tuple[str, ...]], skip: list[bool]) -> list[tuple[tuple[str, ...], bool]]:
    """Resolve paths that collide after sanitising.

    A path equal to an earlier file's or directory's gets a ``.N`` suffix
    before its extension (a safe rename); a path that needs an earlier file to
    be a directory is rejected, since renaming a directory would move others."""
    files: set[tuple[str, ...]] = set()
    dirs: set[tuple[str, ...]] = set()
    out: list[tuple[tuple[str, ...], bool]] = []
    for index, path in enumerate(paths):
        if skip[index]:
            out.append((path, False))
            continue
        for depth in range(1, len(path)):
            if path[:depth] in files:
                raise MetainfoError(
                    f"info.files[{index}].path",
                    f"{'/'.join(path)!r} needs {'/'.join(path[:depth])!r}, a file, to be a directory",
                )
        final = path
        n = 0
        while final in files or final in dirs:
            n += 1
            stem, dot, ext = path[-1].rpartition(".")
            last = f"{stem}.{n}.{ext}" if dot and stem else f"{path[-1]}.{n}"
            final = path[:-1] + (last,)
        files.add(final)
        for depth in range(1, len(final)):
            dirs.add(final[:depth])
        out.append((final, final != path))
    return out


# -- parsing -------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return None


def _url(value: Any) -> str | None:
    text = _text(value)
    if text is None:
        return None
    text = text.strip()
    return text or None


def _trackers(meta: dict[bytes, Any]) -> tuple[tuple[str, ...], ...]:
    tiers: list[tuple[str, ...]] = []
    seen: set[str] = set()
    announce_list = meta.get(b"announce-list")
    if isinstance(announce_list, list):
        for tier in announce_list:
            if not isinstance(tier, list):
                continue
            urls = []
            for entry in tier:
                url = _url(entry)
                if url is not None and url not in seen:
                    seen.add(url)
                    urls.append(url)
            if urls:
                tiers.append(tuple(urls))
    if not tiers:
        url = _url(meta.get(b"announce"))
        if url is not None:
            tiers.append((url,))
    return tuple(tiers)


def _url_list(meta: dict[bytes, Any]) -> tuple[str, ...]:
    value = meta.get(b"url-list")
    entries = value if isinstance(value, list) else [value]
    return tuple(u for u in (_url(e) for e in entries) if u is not None)


def _int(info: dict[bytes, Any], key: bytes, field_name: str, minimum: int = 0) -> int:
    value = info.get(key)
    if value is None:
        raise MetainfoError(field_name, "missing")
    if not isinstance(value, int):
        raise MetainfoError(field_name, "not an integer")
    if value < minimum:
        raise MetainfoError(field_name, f"must be at least {minimum}, not {value}")
    return value


def _attrs(entry: dict[bytes, Any]) -> bytes:
    attr = entry.get(b"attr", b"")
    return attr if isinstance(attr, bytes) else b""


def _is_legacy_pad(raw_path: Any) -> bool:
    """BitComet's pad files from before BEP 47 carry no attr, only this name."""
    return (
        isinstance(raw_path, list)
        and bool(raw_path)
        and isinstance(raw_path[-1], bytes)
        and raw_path[-1].startswith(b"_____padding_file_")
    )


def _name(info: dict[bytes, Any], limits: MetainfoLimits) -> tuple[str, bool]:
    raw = info.get(b"name.utf-8", info.get(b"name"))
    if raw is None:
        raise MetainfoError("info.name", "missing")
    if not isinstance(raw, bytes):
        raise MetainfoError("info.name", "not a string")
    text, renamed = _component(raw, "info.name", limits)
    if text is None:
        raise MetainfoError("info.name", "empty")
    return text, renamed


def _files(
    info: dict[bytes, Any], name: str, name_renamed: bool, limits: MetainfoLimits
) -> tuple[list[FileEntry], bool]:
    if b"files" not in info:
        length = _int(info, b"length", "info.length")
        attr = _attrs(info)
        return [
            FileEntry((name,), length, 0, executable=b"x" in attr, hidden=b"h" in attr,
                      renamed=name_renamed)
        ], False
    if b"length" in info:
        raise MetainfoError("info", "has both 'length' and 'files'")
    raw_files = info[b"files"]
    if not isinstance(raw_files, list):
        raise MetainfoError("info.files", "not a list")
    if not raw_files:
        raise MetainfoError("info.files", "empty")
    if len(raw_files) > limits.max_files:
        raise MetainfoError("info.files", f"more than {limits.max_files} files")
    paths: list[tuple[str, ...]] = []
    pads: list[bool] = []
    lengths: list[int] = []
    attrs: list[bytes] = []
    renamed: list[bool] = []
    for index, entry in enumerate(raw_files):
        field_name = f"info.files[{index}]"
        if not isinstance(entry, dict):
            raise MetainfoError(field_name, "not a dictionary")
        lengths.append(_int(entry, b"length", f"{field_name}.length"))
        attr = _attrs(entry)
        raw_path = entry.get(b"path.utf-8", entry.get(b"path"))
        if raw_path is None:
            raise MetainfoError(f"{field_name}.path", "missing")
        pad = b"p" in attr or _is_legacy_pad(raw_path)
        path, changed = sanitize_path(raw_path, f"{field_name}.path", limits)
        if len(path) + 1 > limits.max_path_depth:
            raise MetainfoError(
                f"{field_name}.path", f"path deeper than {limits.max_path_depth} components"
            )
        paths.append((name,) + path)
        pads.append(pad)
        attrs.append(attr)
        renamed.append(changed or name_renamed)
    deduped = _dedupe(paths, pads)
    files: list[FileEntry] = []
    offset = 0
    for index, (path, changed) in enumerate(deduped):
        files.append(
            FileEntry(
                path,
                lengths[index],
                offset,
                pad=pads[index],
                executable=b"x" in attrs[index],
                hidden=b"h" in attrs[index],
                renamed=renamed[index] or changed,
            )
        )
        offset += lengths[index]
    return files, True


def parse(raw: bytes | bytearray | memoryview, limits: MetainfoLimits = DEFAULT_LIMITS) -> Metainfo:
    """Parse the bytes of a .torrent file."""
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise TypeError("metainfo must be bytes")
    raw = bytes(raw)
    if len(raw) > limits.max_torrent_size:
        raise MetainfoError(
            "torrent", f"file of {len(raw)} bytes exceeds the limit of {limits.max_torrent_size}"
        )
    try:
        meta, spans = decode_spans(raw)
    except BencodeError as e:
        raise MetainfoError("torrent", str(e)) from None
    info = meta.get(b"info")
    if info is None:
        raise MetainfoError("info", "missing")
    if not isinstance(info, dict):
        raise MetainfoError("info", "not a dictionary")
    start, end = spans[b"info"]
    return _from_info(meta, info, raw[start:end], limits)


def _from_info(
    meta: dict[bytes, Any], info: dict[bytes, Any], info_bytes: bytes, limits: MetainfoLimits
) -> Metainfo:
    """The ``Metainfo`` of a decoded info dictionary (whose raw bytes are
    ``info_bytes``) inside the decoded top level ``meta`` (``{}`` for a bare
    info dictionary fetched from peers)."""
    has_v1 = b"pieces" in info
    has_v2 = info.get(b"meta version") == 2 or b"file tree" in info
    if not has_v1:
        if has_v2:
            raise UnsupportedTorrentError(
                "info", "BitTorrent v2-only torrents are not supported yet"
            )
        raise MetainfoError("info.pieces", "missing")

    piece_length = _int(info, b"piece length", "info.piece length", minimum=1)
    if piece_length > limits.max_piece_length:
        raise MetainfoError(
            "info.piece length",
            f"{piece_length} exceeds the limit of {limits.max_piece_length}",
        )
    pieces = info[b"pieces"]
    if not isinstance(pieces, bytes):
        raise MetainfoError("info.pieces", "not a string")
    if len(pieces) % 20:
        raise MetainfoError("info.pieces", f"length {len(pieces)} is not a multiple of 20")
    if len(pieces) // 20 > limits.max_pieces:
        raise MetainfoError(
            "info.pieces", f"{len(pieces) // 20} pieces exceed the limit of {limits.max_pieces}"
        )

    name, name_renamed = _name(info, limits)
    files, multi = _files(info, name, name_renamed, limits)
    total = sum(f.length for f in files)
    if total == 0:
        raise MetainfoError("info", "the torrent holds no data")
    expected = (total + piece_length - 1) // piece_length
    if len(pieces) // 20 != expected:
        raise MetainfoError(
            "info.pieces",
            f"{len(pieces) // 20} hashes for {total} bytes in pieces of {piece_length} "
            f"(expected {expected})",
        )

    private = info.get(b"private") == 1
    creation_date = meta.get(b"creation date")
    return Metainfo(
        info_hash=hashlib.sha1(info_bytes).digest(),
        info_bytes=info_bytes,
        name=name,
        piece_length=piece_length,
        pieces=pieces,
        files=tuple(files),
        total_length=total,
        multi_file=multi,
        private=private,
        trackers=_trackers(meta),
        url_list=_url_list(meta),
        comment=_text(meta.get(b"comment.utf-8", meta.get(b"comment"))),
        created_by=_text(meta.get(b"created by")),
        creation_date=creation_date if isinstance(creation_date, int) else None,
        hybrid=has_v2,
    )


def parse_info(
    info_bytes: bytes | bytearray | memoryview, limits: MetainfoLimits = DEFAULT_LIMITS
) -> Metainfo:
    """Parse a bare ``info`` dictionary (as fetched by BEP 9 from peers).

    The bytes must be exactly one dictionary: the info hash is theirs."""
    raw = bytes(info_bytes)
    if len(raw) > limits.max_torrent_size:
        raise MetainfoError(
            "info", f"{len(raw)} bytes exceed the limit of {limits.max_torrent_size}"
        )
    if not raw or raw[0] != 0x64:
        raise MetainfoError("info", "not a dictionary")
    try:
        info, end = decode_prefix(raw)
    except BencodeError as e:
        raise MetainfoError("info", str(e)) from None
    if end != len(raw):
        raise MetainfoError("info", f"{len(raw) - end} trailing bytes after the dictionary")
    return _from_info({}, info, raw, limits)


def torrent_bytes(info_bytes: bytes, trackers: Sequence[Sequence[str]]) -> bytes:
    """A .torrent file for an info dictionary (fetched by BEP 9, say) and the
    tracker tiers (a magnet's ``tr``): ``announce`` is the first tracker,
    ``announce-list`` the tiers when there is more than one tracker, and
    ``info`` the raw bytes spliced in verbatim, so the info hash is theirs
    even if they are not canonical bencoding.  ``MetainfoError`` if
    ``info_bytes`` is not exactly one bencoded dictionary."""
    raw = bytes(info_bytes)
    try:
        _, end = decode_prefix(raw)
    except BencodeError as e:
        raise MetainfoError("info", str(e)) from None
    if raw[:1] != b"d":
        raise MetainfoError("info", "not a dictionary")
    if end != len(raw):
        raise MetainfoError("info", f"{len(raw) - end} trailing bytes after the dictionary")
    tiers = [[url for url in tier if url] for tier in trackers]
    tiers = [tier for tier in tiers if tier]
    meta: dict[bytes, Any] = {}
    if tiers:
        meta[b"announce"] = tiers[0][0]
        if sum(len(tier) for tier in tiers) > 1:
            meta[b"announce-list"] = tiers
    # Every other key sorts before "info": the canonical encoding of the rest,
    # less its closing "e", then the info bytes as they are.
    return encode(meta)[:-1] + b"4:info" + raw + b"e"
