"""Run the reactor for a short command (``info`` with a URL or ``--fetch``).

``task.react`` prints an anticipated error as a traceback and never says
whether the reactor stopped because the work was done or because of
Ctrl-C.  ``react`` runs ``main(reactor)`` to its end and returns its result,
raises its anticipated failure again once the reactor has stopped (for
``cli.main`` to print as one line), and raises ``KeyboardInterrupt`` (exit
130) when the reactor stopped first.  ``download`` and ``seed`` have their
own loop (``download.run_engine``): they also stop a torrent cleanly.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from txbittorrent.commands._engine import start_logging

T = TypeVar("T")

_UNSET: Any = object()


def anticipated(failure: Any) -> BaseException | None:
    """The error ``cli.main`` prints as one line for ``failure``, or None for a bug."""
    from twisted.internet.error import CannotListenError

    from txbittorrent.errors import TxBitTorrentError

    if failure.check(TxBitTorrentError, OSError):
        return failure.value  # type: ignore[no-any-return]
    if failure.check(CannotListenError):
        return OSError(str(failure.value))  # not an OSError of its own
    return None


def react(main: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
    """Run the global reactor until ``main(reactor)`` ends; its result."""
    from twisted.internet import task
    from twisted.internet.defer import Deferred

    result: Any = _UNSET
    error: BaseException | None = None

    def run(reactor: Any) -> Any:
        d = Deferred.fromCoroutine(main(reactor))

        def done(value: Any) -> None:
            nonlocal result
            result = value

        def failed(failure: Any) -> Any:
            nonlocal error
            error = anticipated(failure)
            if error is None:
                return failure  # a bug: react logs it with its traceback
            raise SystemExit(1)

        return d.addCallbacks(done, failed)

    start_logging()
    try:
        task.react(run)
    except SystemExit as e:
        code = e.code
    else:  # pragma: no cover - react always exits
        code = 0
    if error is not None:
        raise error
    if result is not _UNSET:
        return result  # type: ignore[no-any-return]
    if code:
        raise SystemExit(code)
    raise KeyboardInterrupt()
