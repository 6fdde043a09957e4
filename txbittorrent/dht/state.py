"""The DHT node's state across restarts: its id and routing tables, in one file.

Theory of operation
-------------------
A node that restarts with its old id and the nodes it knew needs no
bootstrap router: it pings and asks what it knew.  ``save_state`` writes

    {"format": 1, "node_id": "<40 hex>",
     "tables": {"4": RoutingTable.to_state(), "6": ...}}

as JSON, atomically (a temporary file, fsync, rename: ``write_atomic``),
so a crash mid-write leaves the old file.  ``load_state`` reads it back
and refuses anything malformed with ``ResumeDataError`` (the node then
starts afresh, with a log line); ``tables_from_state`` rebuilds the tables
(every node questionable until it answers again).  The file is small (a
table of a few hundred nodes is some tens of KiB), so it is written on
the reactor thread.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from txbittorrent.core.dht.krpc import ID_LENGTH
from txbittorrent.core.dht.routing import RoutingTable
from txbittorrent.errors import ResumeDataError
from txbittorrent.storage.resumefile import write_atomic

__all__ = ["NodeState", "load_state", "save_state", "MAX_STATE_SIZE", "FORMAT"]

FORMAT = 1
"""The version of the file's layout."""
MAX_STATE_SIZE = 4 * 1024 * 1024
"""A larger file is refused unread (a full table is far smaller)."""


@dataclass(slots=True)
class NodeState:
    """What a node keeps: its id, and each family's table as plain data."""

    node_id: bytes
    tables: dict[int, dict[str, Any]] = field(default_factory=dict)
    """By family (4, 6): ``RoutingTable.to_state()``."""

    def table(self, family: int, **options: Any) -> RoutingTable | None:
        """The table of ``family`` rebuilt with our id, or None if none was saved."""
        saved = self.tables.get(family)
        if saved is None:
            return None
        return RoutingTable.from_state(saved, own_id=self.node_id, **options)


def save_state(path: str, state: NodeState) -> None:
    """Write ``state`` to ``path`` atomically; ``StorageError`` on failure."""
    document = {
        "format": FORMAT,
        "node_id": state.node_id.hex(),
        "tables": {str(family): table for family, table in sorted(state.tables.items())},
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_atomic(path, json.dumps(document, separators=(",", ":")).encode())


def load_state(path: str) -> NodeState | None:
    """The state saved at ``path``; None if there is no file there.

    ``ResumeDataError`` if the file is unreadable, too large or malformed
    (its tables are checked by rebuilding them)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_STATE_SIZE + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ResumeDataError(f"DHT state {path}: {e}") from None
    if len(data) > MAX_STATE_SIZE:
        raise ResumeDataError(f"DHT state {path}: larger than {MAX_STATE_SIZE} bytes")
    try:
        document = json.loads(data)
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ValueError("not a DHT state of a known format")
        node_id = bytes.fromhex(document["node_id"])
        if len(node_id) != ID_LENGTH:
            raise ValueError("bad node id")
        tables = {int(family): table for family, table in dict(document["tables"]).items()}
        if not set(tables) <= {4, 6}:
            raise ValueError("unknown address family")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ResumeDataError(f"DHT state {path}: {e}") from None
    state = NodeState(node_id, tables)
    for family in tables:
        table = state.table(family)  # raises ResumeDataError if malformed
        if table is not None and table.ipv6 != (family == 6):
            raise ResumeDataError(f"DHT state {path}: table {family} of the wrong family")
    return state
