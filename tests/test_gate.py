"""Gate: shared holders together, one exclusive holder alone, gates independent."""

from __future__ import annotations

import threading

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.storage.gate import Gate

GUARD = 10.0
"""Seconds a thread waits for what should happen at once (a guard only)."""


class GateTests(SynchronousTestCase):
    """Real threads, each step signalled with events."""

    def run_thread(self, target: object) -> threading.Thread:
        thread = threading.Thread(target=target, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self.addCleanup(thread.join, GUARD)
        return thread

    def test_exclusive_waits_for_shared(self) -> None:
        """An exclusive holder enters only once the shared holders left."""
        gate = Gate()
        entered = threading.Event()
        with gate.shared():
            def exclusive() -> None:
                with gate.exclusive():
                    entered.set()

            self.run_thread(exclusive)
            self.assertFalse(entered.wait(0.05))
        self.assertTrue(entered.wait(GUARD))

    def test_waiting_exclusive_keeps_new_shared_out(self) -> None:
        """While an exclusive holder waits, a new shared holder waits too."""
        gate = Gate()
        order: list[str] = []
        first = gate.shared()
        first.__enter__()

        def exclusive() -> None:
            with gate.exclusive():
                order.append("exclusive")

        def shared() -> None:
            with gate.shared():
                order.append("shared")

        self.run_thread(exclusive)
        for _ in range(1000):  # until the exclusive holder is waiting
            if gate._waiting:
                break
            threading.Event().wait(0.001)
        later = self.run_thread(shared)
        first.__exit__(None, None, None)
        later.join(GUARD)
        self.assertEqual(order, ["exclusive", "shared"])

    def test_gates_are_independent(self) -> None:
        """An exclusive holder of one gate does not hold up another gate."""
        one, other = Gate(), Gate()
        with one.exclusive():
            done = threading.Event()

            def shared() -> None:
                with other.shared():
                    done.set()

            self.run_thread(shared)
            self.assertTrue(done.wait(GUARD))
