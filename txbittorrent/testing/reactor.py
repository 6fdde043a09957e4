"""A fake reactor for code that uses thread pools, two fake thread pools, and
``wait_until`` for tests on the real reactor.

Theory of operation
-------------------
Code such as ``Store`` and ``HashChecker`` hands blocking work to a thread
pool with ``callInThreadWithCallback`` and gets the result back on the
reactor thread with ``reactor.callFromThread`` (``deferToThreadPool`` does
both).  In a test, both halves can run on the test's own thread:

* ``SyncPool`` runs each job at once, inside the call that submits it;
* ``ManualPool`` keeps each job in ``queue`` until the test calls
  ``run_one()`` or ``run_all()``, so the test sees the state while the work
  is "in flight", and decides the order in which jobs finish;
* ``FakeReactor`` is a ``twisted.internet.task.Clock`` (``callLater``,
  ``seconds``, ``advance``) whose ``callFromThread`` runs the call at once,
  or, with ``hold_thread_calls=True``, keeps it in ``thread_calls`` until
  ``run_thread_calls()``, so results can be made to arrive later than the
  pool job that produced them, as they do with real threads.  It records
  system event triggers (``fire_system_event`` runs them), counts ``stop()``
  calls, runs ``callWhenRunning`` calls at once (it is always running) and
  hands out a ``SyncPool`` as its ``getThreadPool()`` unless given a pool.

Both pools mirror ``twisted.python.threadpool.ThreadPool``: the same
constructor, ``min``/``max``/``name``, ``start()``/``stop()``, ``started``
and ``joined``; work submitted after ``stop()`` is dropped, as a real pool
drops it.  An exception from a job without ``on_result``, or from
``on_result`` itself, is logged (trial then fails the test), as a real pool
logs it; it never reaches the code that submitted the job.

Nothing here starts a thread or touches the global reactor, except
``wait_until``, which polls on a real reactor (the global one unless a
``clock`` is given) for tests that run real connections on loopback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer  # type: ignore[import-untyped]

from txbittorrent._reactor import resolve_reactor

__all__ = ["FakeReactor", "ManualPool", "PoolJob", "SyncPool", "wait_until"]

_log = Logger()


@dataclass(frozen=True, slots=True)
class PoolJob:
    """One piece of work submitted to a fake pool."""

    function: Callable[..., object]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    on_result: Callable[[bool, Any], object] | None = None
    """Called with ``(True, result)`` or ``(False, Failure)``, as by ``ThreadPool``."""

    def run(self) -> None:
        """Run the work here and now and report its outcome."""
        try:
            result: Any = self.function(*self.args, **self.kwargs)
            ok = True
        except BaseException:
            result = Failure()  # type: ignore[no-untyped-call]
            ok = False
        if self.on_result is None:
            if not ok:
                _log.failure("Unhandled error in a fake thread pool job", result)
            return
        try:
            self.on_result(ok, result)
        except BaseException:
            _log.failure("Unhandled error in a fake thread pool's on_result")


class _FakeThreadPool:
    """What ``SyncPool`` and ``ManualPool`` share: the ``ThreadPool`` surface."""

    def __init__(self, minthreads: int = 5, maxthreads: int = 20, name: str | None = None) -> None:
        self.min = minthreads
        self.max = maxthreads
        self.name = name
        self.started = False
        self.joined = False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False
        self.joined = True

    def callInThread(self, f: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        self.callInThreadWithCallback(None, f, *args, **kwargs)

    def callInThreadWithCallback(
        self,
        on_result: Callable[[bool, Any], object] | None,
        f: Callable[..., object],
        *args: Any,
        **kwargs: Any,
    ) -> None:
        if self.joined:  # as ThreadPool: a stopped pool drops new work
            return
        self._submit(PoolJob(f, args, kwargs, on_result))

    def _submit(self, job: PoolJob) -> None:
        raise NotImplementedError


class SyncPool(_FakeThreadPool):
    """A thread pool stand-in that runs every job at once, in the calling thread."""

    def _submit(self, job: PoolJob) -> None:
        job.run()


class ManualPool(_FakeThreadPool):
    """A thread pool stand-in that holds every job in ``queue`` until the test
    runs it (in the test's thread).  ``stop()`` runs what is queued first, as
    a real pool finishes its queued work before its threads exit."""

    def __init__(self, minthreads: int = 5, maxthreads: int = 20, name: str | None = None) -> None:
        super().__init__(minthreads, maxthreads, name)
        self.queue: list[PoolJob] = []

    def _submit(self, job: PoolJob) -> None:
        self.queue.append(job)

    def run_one(self, index: int = 0) -> None:
        """Run the job at ``index`` of the queue (the oldest by default)."""
        self.queue.pop(index).run()

    def run_all(self) -> int:
        """Run jobs, oldest first, until none is queued (including jobs the
        ones run submit); return how many ran."""
        count = 0
        while self.queue:
            self.run_one()
            count += 1
        return count

    def stop(self) -> None:
        super().stop()  # joined first: work the queued jobs submit is dropped
        self.run_all()


ThreadCall = tuple[Callable[..., object], tuple[Any, ...], dict[str, Any]]
Trigger = tuple[str, str, Callable[[], object]]


@implementer(IReactorThreads)
class FakeReactor(Clock):
    """A ``Clock`` with the thread and life-cycle parts of a reactor that
    thread-pool-using code needs (see the module docstring)."""

    def __init__(self, threadpool: Any = None, *, hold_thread_calls: bool = False) -> None:
        super().__init__()
        self.hold_thread_calls = hold_thread_calls
        self.thread_calls: list[ThreadCall] = []
        """Calls held by ``callFromThread`` (with ``hold_thread_calls``), oldest first."""
        self.triggers: dict[int, Trigger] = {}
        """System event triggers by id: ``(phase, event, callable)``."""
        self.stops = 0
        """How many times ``stop()`` was called."""
        self._threadpool = threadpool
        self._next_trigger = 1

    # -- IReactorFromThreads / IReactorThreads -------------------------------------

    def callFromThread(self, f: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        if self.hold_thread_calls:
            self.thread_calls.append((f, args, kwargs))
        else:
            f(*args, **kwargs)

    def run_thread_calls(self) -> int:
        """Run the held ``callFromThread`` calls in order (including any they
        add); return how many ran."""
        count = 0
        while self.thread_calls:
            f, args, kwargs = self.thread_calls.pop(0)
            f(*args, **kwargs)
            count += 1
        return count

    def getThreadPool(self) -> Any:
        """The pool given to the constructor, else a ``SyncPool`` made on first use."""
        if self._threadpool is None:
            self._threadpool = SyncPool()
        return self._threadpool

    def callInThread(self, f: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        self.getThreadPool().callInThread(f, *args, **kwargs)

    def suggestThreadPoolSize(self, size: int) -> None:
        self.getThreadPool().max = size

    # -- the parts of IReactorCore such code uses ------------------------------------

    def callWhenRunning(self, f: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """Call ``f`` at once: the fake reactor is always running."""
        f(*args, **kwargs)

    def addSystemEventTrigger(
        self, phase: str, event: str, f: Callable[..., object], *args: Any, **kwargs: Any
    ) -> int:
        def call() -> object:
            return f(*args, **kwargs)

        trigger_id = self._next_trigger
        self._next_trigger += 1
        self.triggers[trigger_id] = (phase, event, call if args or kwargs else f)
        return trigger_id

    def removeSystemEventTrigger(self, trigger_id: int) -> None:
        del self.triggers[trigger_id]

    def fire_system_event(self, event: str, phase: str = "before") -> list[object]:
        """Call the triggers added for ``phase`` of ``event``, in the order
        added, and return what they returned (Deferreds are not waited for).
        The triggers stay registered."""
        return [f() for p, e, f in list(self.triggers.values()) if (p, e) == (phase, event)]

    def stop(self) -> None:
        """Count the call (see ``stops``); nothing else happens."""
        self.stops += 1


def wait_until(
    predicate: Callable[[], object],
    timeout: float,
    what: str,
    describe: Callable[[], str] | None = None,
    *,
    clock: Any = None,
    interval: float = 0.05,
) -> Deferred[None]:
    """Fire once ``predicate()`` is true, polled every ``interval`` seconds
    on ``clock`` (an ``IReactorTime``, the global reactor by default);
    errback with ``FailTest`` naming ``what`` (and ``describe()``) after
    ``timeout`` seconds, or with the exception ``predicate`` raised.

    For tests that need a real reactor turning (real connections on
    loopback); with a ``Clock``, advance it instead of polling."""
    from twisted.trial.unittest import FailTest

    if clock is None:
        clock = resolve_reactor()
    done: Deferred[None] = Deferred()
    deadline = clock.seconds() + timeout

    def poll() -> None:
        try:
            ok = predicate()
        except Exception as e:  # a predicate that raises ends the wait
            done.errback(e)
            return
        if ok:
            done.callback(None)
        elif clock.seconds() >= deadline:
            detail = f": {describe()}" if describe is not None else ""
            done.errback(FailTest(f"timed out after {timeout} s waiting for {what}{detail}"))
        else:
            clock.callLater(interval, poll)

    clock.callLater(0, poll)
    return done
