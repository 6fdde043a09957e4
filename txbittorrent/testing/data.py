"""Torrents built from bytes in memory, and trees of files to seed or compare.

``make_torrent`` bencodes a v1 torrent (BEP 3) of the contents given, with
the true SHA-1 of every piece and any piece length (tests like tiny ones:
16 bytes), which ``storage.create.create_torrent`` does not allow (it reads
files from disk and wants a power of two of at least 16 KiB).
``make_metainfo`` parses it.  ``make_files`` writes a tree of seeded random
files, ``same_files`` compares two trees.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterable, Mapping

from txbittorrent.core.bencoding import encode
from txbittorrent.core.metainfo import Metainfo, parse

__all__ = ["make_files", "make_metainfo", "make_torrent", "nonzero_bytes", "same_files"]

Contents = bytes | int
"""A file's bytes, or an int standing for that many zero bytes."""


def _bytes(contents: Contents) -> bytes:
    return bytes(contents) if isinstance(contents, int) else contents


def make_torrent(
    files: Contents | Mapping[str, Contents],
    piece_length: int,
    *,
    name: str = "t",
    attrs: Mapping[str, bytes] | None = None,
    announce: str | None = None,
    private: bool = False,
) -> bytes:
    """The .torrent bytes of ``files`` cut into ``piece_length`` pieces.

    ``files`` is either the contents of a single-file torrent named ``name``,
    or a mapping of ``/``-separated paths to contents, in the order the
    torrent lists them, for a multi-file torrent whose directory is ``name``.
    ``attrs`` gives BEP 47 attributes by path (``b"p"``: a pad file).
    """
    if piece_length <= 0:
        raise ValueError("piece_length must be positive")
    info: dict[bytes, object] = {b"name": name.encode(), b"piece length": piece_length}
    if isinstance(files, Mapping):
        entries = []
        for path, contents in files.items():
            entry: dict[bytes, object] = {
                b"length": len(_bytes(contents)),
                b"path": [part.encode() for part in path.split("/")],
            }
            if attrs and path in attrs:
                entry[b"attr"] = attrs[path]
            entries.append(entry)
        info[b"files"] = entries
        stream = b"".join(_bytes(contents) for contents in files.values())
    else:
        stream = _bytes(files)
        info[b"length"] = len(stream)
    info[b"pieces"] = b"".join(
        hashlib.sha1(stream[i : i + piece_length]).digest()
        for i in range(0, len(stream), piece_length)
    )
    if private:
        info[b"private"] = 1
    meta: dict[bytes, object] = {b"info": info}
    if announce is not None:
        meta[b"announce"] = announce.encode()
    return encode(meta)


def make_metainfo(
    files: Contents | Mapping[str, Contents],
    piece_length: int,
    *,
    name: str = "t",
    attrs: Mapping[str, bytes] | None = None,
    announce: str | None = None,
    private: bool = False,
) -> Metainfo:
    """``make_torrent``'s torrent, parsed."""
    return parse(make_torrent(files, piece_length, name=name, attrs=attrs,
                              announce=announce, private=private))


def nonzero_bytes(length: int, seed: int = 1) -> bytes:
    """``length`` patterned bytes with no zero byte, so that a range of a
    file that was never written (zeros) cannot pass for data."""
    return bytes((i * 7 + seed) % 251 + 1 for i in range(length))


def make_files(root: str, files: Mapping[str, Contents], seed: int = 1) -> dict[str, bytes]:
    """Write ``files`` under ``root`` (made if missing) and return their bytes.

    Keys are ``/``-separated paths; an int value is a size, filled from
    ``random.Random(seed)`` in the order given (the same seed and sizes give
    the same bytes on every machine); a bytes value is written as it is."""
    rng = random.Random(seed)
    out = {}
    for name, contents in files.items():
        path = os.path.join(root, *name.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = rng.randbytes(contents) if isinstance(contents, int) else contents
        with open(path, "wb") as f:
            f.write(data)
        out[name] = data
    return out


def same_files(a_root: str, b_root: str, names: Iterable[str]) -> list[str]:
    """The names (``/``-separated paths) whose bytes differ between the two
    trees or are missing from either: ``[]`` when the trees agree."""
    bad = []
    for name in names:
        a_path = os.path.join(a_root, *name.split("/"))
        b_path = os.path.join(b_root, *name.split("/"))
        try:
            with open(a_path, "rb") as a, open(b_path, "rb") as b:
                if a.read() != b.read():
                    bad.append(name)
        except FileNotFoundError:
            bad.append(name)
    return bad
