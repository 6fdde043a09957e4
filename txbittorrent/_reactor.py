"""The one place that looks up Twisted's global reactor.

Every part of txbittorrent takes its reactor (or clock) as an argument;
``resolve_reactor(given)`` is what a part calls, once, when it starts and
was given none (Twisted's "Using the Global Reactor" standard: never at
import time)."""

from __future__ import annotations

from typing import Any

__all__ = ["resolve_reactor"]


def resolve_reactor(given: Any = None) -> Any:
    """``given`` if it is not None, else the global reactor."""
    if given is not None:
        return given
    from twisted.internet import reactor

    return reactor
