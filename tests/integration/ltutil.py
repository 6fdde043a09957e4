"""Helpers for integration tests that run libtorrent on 127.0.0.1.

``lt`` is the libtorrent module, or ``None`` when it is not installed: a test
module starts with ``skip_without_libtorrent()`` (or checks ``lt``) so it
skips cleanly.

Every session made here listens on 127.0.0.1 only, on a port the system picks,
with DHT, local service discovery, UPnP and NAT-PMP off, and with
``allow_multiple_connections_per_ip`` on (every peer of a loopback test shares
one address, which libtorrent otherwise merges into one peer).  Pass the test
case to ``make_session`` and the session is torn down in the test's cleanup:
its torrents removed, then the session object dropped, which makes
libtorrent close its sockets and threads.

Waiting is real time (these are integration tests): ``wait_for`` polls a
predicate until a deadline and fails with a description of what was seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twisted.trial.unittest import FailTest, SkipTest, TestCase

try:
    import libtorrent as _libtorrent
except ImportError:  # pragma: no cover - depends on the machine
    _libtorrent = None  # type: ignore[assignment]
lt: Any = _libtorrent

LOOPBACK = "127.0.0.1"
DEFAULT_TIMEOUT = 60.0
POLL_INTERVAL = 0.1

BASE_SETTINGS: dict[str, Any] = {
    "listen_interfaces": f"{LOOPBACK}:0",
    "enable_dht": False,
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    "allow_multiple_connections_per_ip": True,
}
"""Settings every session gets; ``make_session`` refuses to override the network ones."""

_NETWORK_KEYS = frozenset(BASE_SETTINGS) - {"allow_multiple_connections_per_ip"}


def skip_without_libtorrent() -> None:
    """Raise ``SkipTest`` (at import time, skipping the whole module) without libtorrent."""
    if lt is None:
        raise SkipTest("libtorrent (python bindings) is not installed")


def make_session(case: TestCase | None = None, **settings: Any) -> Any:
    """A started libtorrent session listening on 127.0.0.1.

    ``settings`` are extra libtorrent settings.  With ``case``, the session is
    closed by ``case``'s cleanup; otherwise call ``close_session`` yourself."""
    skip_without_libtorrent()
    clash = _NETWORK_KEYS & settings.keys()
    if clash:
        raise ValueError(f"tests may not change {sorted(clash)}: loopback only, no discovery")
    pack = dict(BASE_SETTINGS)
    pack.update(settings)
    session = lt.session(pack)
    holder = [session]
    if case is not None:
        case.addCleanup(lambda: close_session(holder.pop()) if holder else None)
    wait_for(lambda: session.listen_port() != 0, 10, "the session to listen")
    return session


def close_session(session: Any) -> None:
    """Remove every torrent (keeping their files) and stop listening.

    libtorrent finishes shutting down when the last reference to ``session``
    goes away; a cleanup registered by ``make_session`` holds the only one."""
    for handle in session.get_torrents():
        session.remove_torrent(handle)
    session.apply_settings({"listen_interfaces": ""})
    session.pause()


def endpoint(session: Any) -> tuple[str, int]:
    """The ``(host, port)`` a peer connects to."""
    return (LOOPBACK, session.listen_port())


def add_torrent(session: Any, torrent: bytes, save_path: str, **fields: Any) -> Any:
    """Add the .torrent ``torrent`` (raw bytes) to ``session``; return its handle.

    The torrent is not auto-managed (libtorrent's queue never pauses it) and
    starts at once; ``fields`` set other ``add_torrent_params`` attributes."""
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = save_path
    params.flags &= ~lt.torrent_flags.auto_managed
    params.flags &= ~lt.torrent_flags.paused
    for name, value in fields.items():
        setattr(params, name, value)
    return session.add_torrent(params)


def describe(handle: Any) -> str:
    """One line on a torrent's state, for failure messages."""
    s = handle.status()
    error = f" error={s.errc.message()!r}" if s.errc.value() else ""
    return (
        f"{s.name or '?'}: state={s.state} progress={s.progress:.3f} "
        f"seeding={s.is_seeding} peers={s.num_peers} pieces={s.num_pieces}{error}"
    )


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = DEFAULT_TIMEOUT,
    what: str = "a condition",
    describe_state: Callable[[], str] | None = None,
    interval: float = POLL_INTERVAL,
) -> float:
    """Poll ``predicate`` until it is true; return the seconds it took.

    Fails the test (``FailTest``) after ``timeout`` seconds, with
    ``describe_state()`` in the message when given."""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() >= deadline:
            state = f"; last seen: {describe_state()}" if describe_state is not None else ""
            raise FailTest(f"timed out after {timeout:.0f}s waiting for {what}{state}")
        time.sleep(interval)


def is_seeding(handle: Any) -> bool:
    """True once the torrent has every piece, checked."""
    return bool(handle.status().is_seeding)


def wait_until_seeding(handle: Any, timeout: float = DEFAULT_TIMEOUT) -> float:
    """Wait until ``handle`` is seeding; fail on a torrent error or the deadline."""

    def seeding() -> bool:
        status = handle.status()
        if status.errc.value():
            raise FailTest(f"libtorrent reports an error: {describe(handle)}")
        return bool(status.is_seeding)

    return wait_for(seeding, timeout, "the torrent to seed", lambda: describe(handle))


def wait_for_files(seed_root: str, lt_root: str, names: Any,
                   timeout: float = DEFAULT_TIMEOUT) -> None:
    """Wait until libtorrent's files under ``lt_root`` match ``seed_root``'s.

    libtorrent 2 can count a piece as passed (it hashes from its store buffer)
    before the write reaches the file, so ``is_seeding`` does not yet mean the
    bytes are on disk; fail, naming the files that differ, at the deadline.
    A test on the running reactor waits with ``files_landed`` instead."""
    wait_for(*_files_wait(seed_root, lt_root, names, timeout))


def files_landed(seed_root: str, lt_root: str, names: Any,
                 timeout: float = DEFAULT_TIMEOUT) -> Any:
    """``wait_for_files`` without blocking the reactor: a Deferred."""
    from txbittorrent.testing import wait_until

    return wait_until(*_files_wait(seed_root, lt_root, names, timeout))


def _files_wait(seed_root: str, lt_root: str, names: Any, timeout: float) -> tuple[Any, ...]:
    from txbittorrent.testing import same_files

    names = list(names)
    return (lambda: not same_files(seed_root, lt_root, names), timeout,
            "libtorrent's files to match the seed's",
            lambda: repr(same_files(seed_root, lt_root, names)))


def file_list(files: Any) -> list[tuple[str, int, bool]]:
    """``(path joined with '/', size, is pad file)`` for each file of a
    libtorrent ``file_storage`` (``torrent_info.layout()``)."""
    return [
        (
            files.file_path(i).replace("\\", "/"),
            files.file_size(i),
            bool(files.file_flags(i) & lt.file_storage.flag_pad_file),
        )
        for i in range(files.num_files())
    ]


def limit_local_peers(session: Any, upload: int | None = None, download: int | None = None) -> None:
    """Rate limits for peers on this machine: libtorrent spares loopback
    peers its session-wide limits unless their peer class has them."""
    local = lt.session.local_peer_class_id
    limits = session.get_peer_class(local)
    if upload is not None:
        limits["upload_limit"] = upload
    if download is not None:
        limits["download_limit"] = download
    session.set_peer_class(local, limits)

