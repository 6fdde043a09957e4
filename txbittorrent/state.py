"""What a torrent is doing: ``TorrentState``.

The states, and the Perl API's names (AnyEvent::BitTorrent has ``active``,
``paused`` and ``stopped``; ``started`` is an alias of ``active``)::

    STOPPED      "stopped"   not started, or stopped
    CHECKING     "active"    verifying data already on disk
    METADATA     "active"    running, fetching the info dictionary (magnet)
    DOWNLOADING  "active"    running, some wanted piece missing
    SEEDING      "active"    running, every wanted piece verified
    PAUSED       "paused"    connections kept, nothing transferred
    ERROR        "stopped"   stopped by an error (``Torrent.error`` says which)

A state compares equal to its own value and to its Perl name, so code
written against the Perl names (``torrent.state == "active"``) keeps
working; ``perl_name`` gives the Perl name.
"""

from __future__ import annotations

import enum

__all__ = ["TorrentState"]


class TorrentState(str, enum.Enum):
    """The state of a ``Torrent`` (see the module docstring)."""

    STOPPED = "stopped"
    CHECKING = "checking"
    METADATA = "metadata"
    DOWNLOADING = "downloading"
    SEEDING = "seeding"
    PAUSED = "paused"
    ERROR = "error"

    @property
    def perl_name(self) -> str:
        """"active", "paused" or "stopped", as AnyEvent::BitTorrent says."""
        return _PERL[self]

    @property
    def running(self) -> bool:
        """Started and not stopped (paused counts as running)."""
        return self not in (TorrentState.STOPPED, TorrentState.ERROR)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TorrentState):
            return self is other
        if isinstance(other, str):
            return other == self.value or _ALIASES.get(other) == _PERL[self]
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    __hash__ = str.__hash__

    def __str__(self) -> str:
        return self.value


_PERL = {
    TorrentState.STOPPED: "stopped",
    TorrentState.CHECKING: "active",
    TorrentState.METADATA: "active",
    TorrentState.DOWNLOADING: "active",
    TorrentState.SEEDING: "active",
    TorrentState.PAUSED: "paused",
    TorrentState.ERROR: "stopped",
}

_ALIASES = {"active": "active", "started": "active", "paused": "paused", "stopped": "stopped"}
