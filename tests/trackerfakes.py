"""What the tracker server's tests share: info hashes, peer ids, and an
``Announce`` builder for the sans-I/O registry."""

from __future__ import annotations

from typing import Any

from txbittorrent.core.tracker.swarms import Announce

__all__ = ["INFO_HASH", "OTHER_HASH", "PEER_A", "PEER_B", "PEER_C", "SECRET", "announce",
           "addresses"]

INFO_HASH = bytes.fromhex("c12fe1c06bba254a9dc9f519b335aa7c1367a88a")
OTHER_HASH = bytes(range(20))
PEER_A = b"-TX0010-aaaaaaaaaaaa"
PEER_B = b"-TX0010-bbbbbbbbbbbb"
PEER_C = b"-TX0010-cccccccccccc"
SECRET = b"0123456789abcdef"


def announce(peer_id: bytes = PEER_A, port: int = 6881, **changes: Any) -> Announce:
    """An Announce for INFO_HASH from 127.0.0.1 with ``changes`` applied."""
    fields: dict[str, Any] = dict(
        info_hash=INFO_HASH, peer_id=peer_id, ip="127.0.0.1", port=port, left=100
    )
    fields.update(changes)
    return Announce(**fields)


def addresses(result: Any) -> set[tuple[str, int]]:
    """The (ip, port) of each peer in an AnnounceResult."""
    return {(p.ip, p.port) for p in result.peers}
