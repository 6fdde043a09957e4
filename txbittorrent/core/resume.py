"""Resume records: what a torrent knew at its last save, and how far to trust it.

Theory of operation
-------------------
A ``ResumeRecord`` is a snapshot written while a torrent runs (periodically,
with ``clean=False``) and once more when it stops (``clean=True``).  It holds
the pieces we had (a BEP 3 bitfield), where pieces kept in the part file live
(``piece_cache``: piece index -> slot offset), and the ``(size, st_mtime_ns)``
of every file and of the part file at the moment it was written.

``encode_record`` / ``decode_record`` turn a record into bencoding and back.
Decoding treats the bytes as untrusted: any malformation, an unknown version or
another torrent's info hash raises ``ResumeDataError``, which loading code
treats as "no resume data" (a full check), never as a fatal error.

``plan_resume`` decides, from a record (or none) and a fresh stat of the files,
which pieces to take as present without reading them (``have``) and which to
hash (``recheck``).  Its one invariant:

    resume data may claim less than is on disk, never more.

So a piece is trusted only when the record was written at a clean shutdown,
the record claims it, every file it touches has the size and mtime the record
saw, its part-file slot (if it has one) is in a part file whose stat is
unchanged, and its bytes can still be located.  Everything else that could be
on disk is rechecked; nothing is ever deleted or truncated because of a record.

This module is sans-I/O: the caller stats the files and reads the bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from txbittorrent.core.bencoding import decode, encode
from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.layout import Layout
from txbittorrent.errors import BencodeError, BitfieldError, ResumeDataError

__all__ = [
    "RESUME_VERSION",
    "FileStat",
    "ResumeRecord",
    "ResumePlan",
    "encode_record",
    "decode_record",
    "make_record",
    "plan_resume",
]

RESUME_VERSION = 1
"""The record format written by ``encode_record``; the only one ``decode_record`` reads."""

FileStat = tuple[int, int]
"""``(size, st_mtime_ns)`` of a file on disk."""


@dataclass(frozen=True, slots=True)
class ResumeRecord:
    """One saved snapshot of a torrent's progress (see the module docstring)."""

    version: int
    info_hash: bytes
    have: bytes
    """BEP 3 bitfield bytes: piece 0 is the high bit of byte 0."""
    piece_cache: dict[int, int] = field(hash=False)
    """Piece index -> slot offset in the part file."""
    files: tuple[FileStat | None, ...]
    """One entry per file of the torrent; ``None`` for a missing or pad file."""
    part: FileStat | None
    clean: bool
    """True only for the record written when the torrent stopped cleanly."""
    priorities: tuple[int, ...] = ()
    """File priorities, one per file, or empty when not recorded."""


@dataclass(frozen=True, slots=True)
class ResumePlan:
    """What to believe on start-up: ``have`` is trusted, ``recheck`` must be hashed.

    The two never overlap."""

    have: Bitfield
    recheck: frozenset[int]


def make_record(
    info_hash: bytes,
    have: Bitfield,
    piece_cache: Mapping[int, int],
    files: Sequence[FileStat | None],
    part: FileStat | None,
    clean: bool,
    priorities: Sequence[int] = (),
) -> ResumeRecord:
    """Build a current-version record from live state."""
    return ResumeRecord(
        version=RESUME_VERSION,
        info_hash=bytes(info_hash),
        have=have.to_bytes(),
        piece_cache=dict(piece_cache),
        files=tuple(None if s is None else (s[0], s[1]) for s in files),
        part=None if part is None else (part[0], part[1]),
        clean=clean,
        priorities=tuple(priorities),
    )


# -- encoding ------------------------------------------------------------------
#
# d
#   7:version     i1e
#   9:info-hash   20:<raw SHA-1 of the info dictionary>
#   4:have        <bitfield bytes>
#   11:piece-cache l l<index> <slot>e ... e   sorted by index
#   5:files       l l<size> <mtime_ns>e or le (missing/pad) ... e
#   4:part        l<size> <mtime_ns>e         absent when there is no part file
#   5:clean       i0e or i1e
#   10:priorities l<int>...e                  absent when not recorded
# e


def _stat_value(stat: FileStat | None) -> list[int]:
    return [] if stat is None else [stat[0], stat[1]]


def encode_record(record: ResumeRecord) -> bytes:
    """The canonical bencoding of ``record``."""
    out: dict[bytes, Any] = {
        b"version": record.version,
        b"info-hash": record.info_hash,
        b"have": record.have,
        b"piece-cache": [[i, record.piece_cache[i]] for i in sorted(record.piece_cache)],
        b"files": [_stat_value(s) for s in record.files],
        b"clean": 1 if record.clean else 0,
    }
    if record.part is not None:
        out[b"part"] = _stat_value(record.part)
    if record.priorities:
        out[b"priorities"] = list(record.priorities)
    return encode(out)


def _fail(reason: str) -> ResumeDataError:
    return ResumeDataError(f"resume data: {reason}")


def _int(value: Any, name: str, minimum: int | None = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(f"{name} is not an integer")
    if minimum is not None and value < minimum:
        raise _fail(f"{name} is {value}, below {minimum}")
    return value


def _list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(f"{name} is not a list")
    return value


def _stat(value: Any, name: str) -> FileStat | None:
    items = _list(value, name)
    if not items:
        return None
    if len(items) != 2:
        raise _fail(f"{name} has {len(items)} items, not 2")
    # mtimes may legitimately be negative (before 1970); sizes may not.
    return _int(items[0], f"{name}.size"), _int(items[1], f"{name}.mtime", minimum=None)


def decode_record(
    raw: bytes, info_hash: bytes, piece_count: int, file_count: int
) -> ResumeRecord:
    """Parse and validate a record for the torrent described by the arguments.

    Raises ``ResumeDataError`` for anything but a well-formed current-version
    record of this torrent with the right number of pieces and files."""
    try:
        top = decode(raw)
    except BencodeError as e:
        raise _fail(str(e)) from None
    if not isinstance(top, dict):
        raise _fail("top level is not a dictionary")
    version = _int(top.get(b"version"), "version")
    if version != RESUME_VERSION:
        raise _fail(f"unknown version {version}")
    got_hash = top.get(b"info-hash")
    if not isinstance(got_hash, bytes) or len(got_hash) != 20:
        raise _fail("info-hash is not 20 bytes")
    if got_hash != info_hash:
        raise _fail(f"record is for torrent {got_hash.hex()}, not {info_hash.hex()}")
    have = top.get(b"have")
    if not isinstance(have, bytes):
        raise _fail("have is not a string")
    try:
        Bitfield.from_bytes(have, piece_count)
    except BitfieldError as e:
        raise _fail(str(e)) from None

    piece_cache: dict[int, int] = {}
    slots: set[int] = set()
    for n, pair in enumerate(_list(top.get(b"piece-cache", []), "piece-cache")):
        name = f"piece-cache[{n}]"
        items = _list(pair, name)
        if len(items) != 2:
            raise _fail(f"{name} has {len(items)} items, not 2")
        index, slot = _int(items[0], f"{name}.index"), _int(items[1], f"{name}.slot")
        if index >= piece_count:
            raise _fail(f"{name}: piece {index} out of range 0..{piece_count - 1}")
        if index in piece_cache or slot in slots:
            raise _fail(f"{name}: piece {index} or slot {slot} appears twice")
        piece_cache[index] = slot
        slots.add(slot)

    files_raw = _list(top.get(b"files"), "files")
    if len(files_raw) != file_count:
        raise _fail(f"{len(files_raw)} file entries for {file_count} files")
    files = tuple(_stat(v, f"files[{n}]") for n, v in enumerate(files_raw))
    part = _stat(top[b"part"], "part") if b"part" in top else None

    clean = _int(top.get(b"clean"), "clean")
    if clean > 1:
        raise _fail(f"clean is {clean}, not 0 or 1")
    priorities_raw = _list(top.get(b"priorities", []), "priorities")
    if priorities_raw and len(priorities_raw) != file_count:
        raise _fail(f"{len(priorities_raw)} priorities for {file_count} files")
    priorities = tuple(_int(p, f"priorities[{n}]") for n, p in enumerate(priorities_raw))

    return ResumeRecord(
        version=version,
        info_hash=got_hash,
        have=have,
        piece_cache=piece_cache,
        files=files,
        part=part,
        clean=bool(clean),
        priorities=priorities,
    )


# -- planning ------------------------------------------------------------------


def _locatable(
    layout: Layout,
    index: int,
    disk_files: Sequence[FileStat | None],
    in_part: bool,
) -> bool:
    """Whether every byte of piece ``index`` may be on disk now.

    True if it has a part-file slot and the part file exists (``in_part``), or
    if every non-pad file it touches exists and is long enough to hold its
    share of the piece.  Only a hint: the hash decides."""
    if in_part:
        return True
    for span in layout.spans(index):
        if layout.pad[span.file_index]:
            continue
        stat = disk_files[span.file_index]
        if stat is None or stat[0] < span.file_offset + span.length:
            return False
    return True


def plan_resume(
    record: ResumeRecord | None,
    layout: Layout,
    disk_files: Sequence[FileStat | None],
    disk_part: FileStat | None,
) -> ResumePlan:
    """Decide which pieces to trust and which to hash (see the module docstring).

    ``disk_files`` holds the current ``(size, st_mtime_ns)`` of each file, or
    ``None`` for a missing or pad file; ``disk_part`` the part file's.

    * No record: trust nothing; recheck every piece whose bytes may be on disk.
    * An unclean record (a crash, or a periodic save): trust nothing; recheck
      every piece whose bytes may be on disk, looking in the part file for the
      pieces the record gives a slot.  That covers every piece the record
      claims and can still be found; a claimed piece whose bytes are gone
      cannot pass a check, so it is not queued.
    * A clean record: trust each piece it claims unless a file the piece
      touches has changed (size, mtime, appeared, vanished), or the piece has a
      part-file slot and the part file has changed or vanished, or its bytes
      can no longer be located.  Recheck the pieces touching a changed file or
      a changed part file, claimed or not, when their bytes may be on disk."""
    piece_count = layout.piece_count
    if len(disk_files) != layout.file_count:
        raise ValueError(f"{len(disk_files)} file stats for {layout.file_count} files")
    if record is not None and len(record.files) != layout.file_count:
        raise ResumeDataError(f"record has {len(record.files)} files, not {layout.file_count}")
    slots: Mapping[int, int] = record.piece_cache if record is not None else {}
    part_exists = disk_part is not None
    # Only pieces touching a missing or short file can be unlocatable: look
    # at those one by one, not at every piece (a session starts thousands
    # of torrents from their records).
    lost = _unlocatable(layout, disk_files, slots if part_exists else {})

    if record is None or not record.clean:
        if record is not None:
            # Validate the record's shape even though its claims go unused.
            Bitfield.from_bytes(record.have, piece_count)
        recheck = frozenset(range(piece_count))
        return ResumePlan(Bitfield(piece_count), recheck - lost if lost else recheck)

    try:
        claimed = Bitfield.from_bytes(record.have, piece_count)
    except BitfieldError as e:
        raise ResumeDataError(str(e)) from None

    suspect: set[int] = set()
    for f, saw in enumerate(record.files):
        if disk_files[f] != saw:
            suspect.update(layout.pieces_of_file(f))
    if record.part is None or disk_part != record.part:
        suspect.update(i for i in slots if i < piece_count)

    have = claimed  # (a new Bitfield: ours to change)
    for index in suspect | lost if suspect or lost else ():
        if index in have:
            have.discard(index)
    recheck = frozenset(suspect - lost)
    return ResumePlan(have, recheck)


def _unlocatable(
    layout: Layout, disk_files: Sequence[FileStat | None], slots: Mapping[int, int]
) -> set[int]:
    """The pieces whose bytes cannot all be on disk now (see ``_locatable``):
    only pieces of a non-pad file that is missing or shorter than its length
    can be; a piece with a part-file slot (``slots``, given only when the
    part file exists) is locatable there."""
    out: set[int] = set()
    for f, stat in enumerate(disk_files):
        if layout.pad[f]:
            continue
        if stat is not None and stat[0] >= layout.file_length(f):
            continue
        for index in layout.pieces_of_file(f):
            if index not in out and not _locatable(layout, index, disk_files, index in slots):
                out.add(index)
    return out
