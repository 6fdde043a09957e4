"""PhasedTimer: periodic work on a fixed phase that sleeps while not needed."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.swarm.timers import PhasedTimer


class PhasedTimerTests(SynchronousTestCase):
    """Runs, sleeps, wakes on its phase, stops."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.runs: list[float] = []
        self.needed = True

    def timer(self, interval: float = 2.0, origin: float = 0.0) -> PhasedTimer:
        return PhasedTimer(self.clock, interval, origin,
                           lambda: self.runs.append(self.clock.seconds()), lambda: self.needed)

    def test_nothing_until_woken(self) -> None:
        """A new timer schedules nothing."""
        self.timer()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_runs_on_its_phase_while_needed(self) -> None:
        """Woken, it runs on every slot of its phase while needed() is true."""
        t = self.timer()
        t.wake()
        self.clock.pump([1.0] * 7)
        self.assertEqual(self.runs, [2.0, 4.0, 6.0])
        self.assertTrue(t.scheduled)

    def test_sleeps_and_wakes_on_the_same_phase(self) -> None:
        """When not needed it schedules nothing; woken later it runs on the
        next slot of the original phase, as a LoopingCall would."""
        t = self.timer(origin=0.5)
        t.wake()
        self.needed = False
        self.clock.advance(2.5)
        self.assertEqual(self.runs, [2.5])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(5.7)
        self.needed = True
        t.wake()
        t.wake()  # (once is enough: one pending call at most)
        self.assertEqual([c.getTime() for c in self.clock.getDelayedCalls()], [8.5])
        self.clock.advance(0.3)
        self.assertEqual(self.runs, [2.5, 8.5])

    def test_run_now(self) -> None:
        """run_now runs at once and then follows the phase."""
        t = self.timer()
        t.run_now()
        self.assertEqual(self.runs, [0.0])
        self.clock.advance(2.0)
        self.assertEqual(self.runs, [0.0, 2.0])

    def test_error_logged_and_goes_on(self) -> None:
        """An exception from the work is logged; the timer keeps its phase."""
        def boom() -> None:
            self.runs.append(self.clock.seconds())
            raise RuntimeError("boom")

        t = PhasedTimer(self.clock, 1.0, 0.0, boom, lambda: True)
        t.wake()
        self.clock.pump([1.0, 1.0])
        self.assertEqual(self.runs, [1.0, 2.0])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)

    def test_stop(self) -> None:
        """stop() cancels the pending run and later wakes do nothing."""
        t = self.timer()
        t.wake()
        t.stop()
        t.wake()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(10)
        self.assertEqual(self.runs, [])

    def test_interval_must_be_positive(self) -> None:
        """A zero interval is refused."""
        self.assertRaises(ValueError, PhasedTimer, self.clock, 0, 0.0, lambda: None,
                          lambda: True)

    def test_idle_heartbeat(self) -> None:
        """With idle_slots, a timer not needed runs again that many slots
        later; wake() brings the run forward to the next slot."""
        t = PhasedTimer(self.clock, 1.0, 0.0, lambda: self.runs.append(self.clock.seconds()),
                        lambda: self.needed, idle_slots=5)
        self.needed = False
        t.wake()
        self.clock.pump([1.0] * 11)
        self.assertEqual(self.runs, [1.0, 6.0, 11.0])
        self.clock.advance(1.5)
        t.wake()
        self.assertEqual([c.getTime() for c in self.clock.getDelayedCalls()], [13.0])
        self.needed = True
        self.clock.pump([0.5, 1.0])
        self.assertEqual(self.runs, [1.0, 6.0, 11.0, 13.0, 14.0])
