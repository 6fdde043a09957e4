"""Tests for txbittorrent.state: TorrentState and the Perl API's names."""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.state import TorrentState

ACTIVE = (TorrentState.CHECKING, TorrentState.METADATA, TorrentState.DOWNLOADING,
          TorrentState.SEEDING)
PERL = {
    TorrentState.STOPPED: "stopped",
    TorrentState.CHECKING: "active",
    TorrentState.METADATA: "active",
    TorrentState.DOWNLOADING: "active",
    TorrentState.SEEDING: "active",
    TorrentState.PAUSED: "paused",
    TorrentState.ERROR: "stopped",
}


class TorrentStateTests(SynchronousTestCase):
    """A state equals its value and its Perl name, and nothing else."""

    def test_every_state_listed(self) -> None:
        """The table here covers every state, with the values the docstring gives."""
        self.assertEqual(set(PERL), set(TorrentState))
        self.assertEqual([s.value for s in TorrentState], [
            "stopped", "checking", "metadata", "downloading", "seeding", "paused", "error"])

    def test_equal_to_value(self) -> None:
        """Each state equals its own value, from either side, and is made from it."""
        for state in TorrentState:
            self.assertTrue(state == state.value)
            self.assertTrue(state.value == state)
            self.assertFalse(state != state.value)
            self.assertIs(TorrentState(state.value), state)

    def test_perl_names(self) -> None:
        """perl_name is active, paused or stopped, and each state equals it."""
        for state, name in PERL.items():
            self.assertEqual(state.perl_name, name)
            self.assertTrue(state == name)
            self.assertTrue(name == state)
            self.assertFalse(state != name)
            self.assertFalse(name != state)

    def test_active(self) -> None:
        """checking, metadata, downloading and seeding are 'active' and 'started'."""
        for state in ACTIVE:
            for name in ("active", "started"):
                self.assertEqual(state, name)
                self.assertIn(state, (name,))
        for state in (TorrentState.STOPPED, TorrentState.PAUSED, TorrentState.ERROR):
            self.assertNotEqual(state, "active")
            self.assertNotEqual(state, "started")
            self.assertTrue("active" != state)

    def test_paused(self) -> None:
        """Only PAUSED is 'paused'."""
        self.assertEqual([s for s in TorrentState if s == "paused"], [TorrentState.PAUSED])

    def test_stopped(self) -> None:
        """STOPPED and ERROR are 'stopped'; only ERROR is 'error'."""
        self.assertEqual([s for s in TorrentState if s == "stopped"],
                         [TorrentState.STOPPED, TorrentState.ERROR])
        self.assertEqual([s for s in TorrentState if s == "error"], [TorrentState.ERROR])

    def test_distinct_states_unequal(self) -> None:
        """Two different states are never equal, even with the same Perl name."""
        for a in TorrentState:
            for b in TorrentState:
                self.assertEqual(a == b, a is b)
                self.assertEqual(a != b, a is not b)
        self.assertNotEqual(TorrentState.DOWNLOADING, TorrentState.SEEDING)
        self.assertNotEqual(TorrentState.STOPPED, TorrentState.ERROR)

    def test_other_strings_and_types(self) -> None:
        """Other strings and non-strings are unequal."""
        for state in TorrentState:
            for other in ("", "Active", "STOPPED", "running", "start", 0, None, 1.0, b"paused"):
                self.assertFalse(state == other)
                self.assertTrue(state != other)

    def test_hashing(self) -> None:
        """A state hashes as its value: a dict key or set member found by itself or its value."""
        table = {state: state.perl_name for state in TorrentState}
        self.assertEqual(len(table), len(TorrentState))
        for state in TorrentState:
            self.assertEqual(hash(state), hash(state.value))
            self.assertEqual(table[state], state.perl_name)
            self.assertEqual(table[state.value], state.perl_name)  # type: ignore[index]
            self.assertIn(state, set(TorrentState))
            self.assertIn(state, {state})
            self.assertIn(state.value, {state})
        self.assertEqual(len({TorrentState.DOWNLOADING, TorrentState.SEEDING}), 2)

    def test_running(self) -> None:
        """Every state but STOPPED and ERROR is running (PAUSED included)."""
        self.assertEqual([s for s in TorrentState if not s.running],
                         [TorrentState.STOPPED, TorrentState.ERROR])
        self.assertTrue(TorrentState.PAUSED.running)

    def test_str(self) -> None:
        """str(), format() and JSON give the value."""
        for state in TorrentState:
            self.assertEqual(str(state), state.value)
            self.assertEqual(f"{state}", state.value)
            self.assertEqual("%s" % (state,), state.value)
            self.assertEqual(json.dumps(state), json.dumps(state.value))
