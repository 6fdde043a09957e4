"""The APIs other programs already speak, mounted beside the native one.

Theory of operation
-------------------
``mount_apps(root, api_root, context)`` puts the other APIs into the
daemon's resource tree and returns an ``AppMounts``: what the Guard must
know of them (the path prefixes whose resources authenticate requests
themselves, the paths served to anyone) and who needs the Guard once it
exists (their logins check the daemon's password through it).  Every API
shares the native API's ``TorrentManager``, so a change made through one is
seen and recorded the same way by all:

* qBittorrent's Web API v2 at ``/api/v2`` (its own login and SID cookie:
  ``web.qbt``);
* Transmission's RPC at ``/transmission/rpc`` (Basic auth, the session-id
  handshake: ``web.transmission``).

The Guard is made after the tree (it wraps it): ``AppMounts.guard_ready``
hands it to the resources that wait for it.
"""
# twisted.web's Resource is untyped.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.web.resource import Resource

from txbittorrent.web.qbt import QbtResource
from txbittorrent.web.transmission import TransmissionResource

if TYPE_CHECKING:
    from txbittorrent.daemon.config import DaemonConfig
    from txbittorrent.daemon.store import StateStore
    from txbittorrent.session import Session
    from txbittorrent.web.auth import Guard
    from txbittorrent.web.manager import TorrentManager

__all__ = ["AppContext", "AppMounts", "mount_apps"]


@dataclass(frozen=True, slots=True)
class AppContext:
    """What the APIs are built over."""

    session: Session
    store: StateStore
    manager: TorrentManager
    config: DaemonConfig
    clock: Any


@dataclass(slots=True)
class AppMounts:
    """What the Guard must know of the mounted APIs."""

    delegated: list[bytes] = field(default_factory=list)
    """Path prefixes whose resources authenticate requests themselves."""
    public: list[bytes] = field(default_factory=list)
    """Paths served without authentication (the page)."""
    waiting: list[Callable[[Guard], None]] = field(default_factory=list)

    def guard_ready(self, guard: Guard) -> None:
        """Give the Guard to the resources that check passwords through it."""
        for give in self.waiting:
            give(guard)


def mount_apps(root: Resource, api_root: Resource, context: AppContext) -> AppMounts:
    """Mount the other APIs under ``root`` (``api_root`` is ``/api``)."""
    mounts = AppMounts()
    transmission = TransmissionResource(
        context.session, context.manager, store=context.store,
        download_dir=context.config.download_dir, config_dir=context.config.state_dir,
        clock=context.clock,
    )
    root.putChild(b"transmission", transmission)  # type: ignore[arg-type]
    mounts.delegated.append(b"/transmission")
    mounts.waiting.append(lambda guard: setattr(transmission, "guard", guard))

    qbt = QbtResource(context.session, store=context.store,
                      download_dir=context.config.download_dir, manager=context.manager)
    api_root.apps[b"v2"] = qbt  # type: ignore[attr-defined]
    mounts.delegated.append(b"/api/v2")
    mounts.waiting.append(lambda guard: setattr(qbt, "guard", guard))
    return mounts
