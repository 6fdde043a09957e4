"""Private-tracker seams: who a passkey belongs to, and where transfer goes.

Theory of operation
-------------------
The tracker asks one callable ``passkey -> user id | None`` (``PasskeyCheck``)
about the passkey in ``/<passkey>/announce``, and hands each announce's
transfer since the peer's previous one to another (``on_transfer``, taking a
``TransferDelta``).  The SQLite users table and the accounting store plug in
there; ``Passkeys`` and ``TransferLedger`` are the in-memory versions, for
tests and a tracker without a database.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from txbittorrent.core.tracker.registry import TransferDelta, UserId

__all__ = ["PasskeyCheck", "Passkeys", "UserTotals", "TransferLedger"]

PasskeyCheck = Callable[[str], UserId | None]
"""Who a passkey belongs to, or ``None`` for an unknown one."""


class Passkeys:
    """An in-memory ``PasskeyCheck``: passkeys by user, changeable while running."""

    def __init__(self, users: Mapping[str, UserId] | None = None) -> None:
        self._users: dict[str, UserId] = dict(users or {})

    def __call__(self, passkey: str) -> UserId | None:
        return self._users.get(passkey)

    def add(self, passkey: str, user: UserId) -> None:
        self._users[passkey] = user

    def revoke(self, passkey: str) -> None:
        self._users.pop(passkey, None)


@dataclass(slots=True)
class UserTotals:
    """What one user has transferred, over every torrent."""

    uploaded: int = 0
    downloaded: int = 0
    completed: int = 0


class TransferLedger:
    """An in-memory ``on_transfer``: totals per user."""

    def __init__(self) -> None:
        self.totals: dict[UserId, UserTotals] = {}

    def __call__(self, delta: TransferDelta) -> None:
        totals = self.totals.setdefault(delta.user, UserTotals())
        totals.uploaded += delta.uploaded
        totals.downloaded += delta.downloaded
        totals.completed += delta.completed
