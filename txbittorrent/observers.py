"""Observers: how a program hears what a torrent does.

Subclass ``TorrentObserver``, override the methods you care about (each is a
no-op here) and pass an instance to ``Torrent.add_observer``.  Every method
is called on the reactor thread.  An exception raised by an observer is
logged and swallowed: a bug in a program's callback never stops the engine.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

__all__ = ["TorrentObserver", "ObserverList"]

_log = Logger()


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
        """``Torrent.state`` moved between "stopped", "paused" and "active"."""

    def completed(self, torrent: Any) -> None:
        """Every wanted piece is verified (fires once per completion)."""


class ObserverList:
    """The observers of one torrent, notified in the order they were added."""

    def __init__(self) -> None:
        self._observers: list[Any] = []

    def add(self, observer: Any) -> None:
        self._observers.append(observer)

    def remove(self, observer: Any) -> None:
        self._observers.remove(observer)

    def notify(self, method: str, *args: Any) -> None:
        for observer in list(self._observers):
            callback = getattr(observer, method, None)
            if callback is None:
                continue
            try:
                callback(*args)
            except Exception:
                _log.failure("observer {observer!r}.{method} raised", observer=observer,
                             method=method)
