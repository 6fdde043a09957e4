"""Observers: how a program hears what a torrent does.

Subclass ``TorrentObserver``, override the methods you care about (each is a
no-op here) and pass an instance to ``Torrent.add_observer``.  Every method
is called on the reactor thread.  An exception raised by an observer is
logged and swallowed: a bug in a program's callback never stops the engine.

An observer is a view of the torrent's event stream (``events.EventBus``,
``Torrent.subscribe``), which carries the same news as typed events.
"""

from __future__ import annotations

from typing import Any


__all__ = ["TorrentObserver"]



class TorrentObserver:
    """Override what you need; ``torrent`` is the ``Torrent`` concerned."""

    def piece_verified(self, torrent: Any, index: int, passed: bool) -> None:
        """A piece was hashed: downloaded and checked, or rechecked from disk."""

    def peer_connected(self, torrent: Any, peer: Any) -> None:
        """A peer finished its handshake and was accepted (``peer``: a PeerInfo)."""

    def peer_lost(self, torrent: Any, peer: Any, reason: str) -> None:
        """An accepted peer's connection ended."""

    def tracker_reply(self, torrent: Any, url: str, response: Any) -> None:
        """A tracker answered an announce (``response``: an AnnounceResponse)."""

    def tracker_error(self, torrent: Any, url: str, error: str) -> None:
        """An announce failed (unreachable, timed out, refused, garbage)."""

    def state_changed(self, torrent: Any, old: str, new: str) -> None:
        """``Torrent.state`` changed (``old`` and ``new`` are ``TorrentState``
        values, equal to their Perl names "stopped", "paused", "active")."""

    def completed(self, torrent: Any) -> None:
        """Every wanted piece is verified (fires once per completion)."""

    def disk_error(self, torrent: Any, index: int, failure: Any) -> None:
        """Reading or writing piece ``index`` failed (a ``Failure``)."""
