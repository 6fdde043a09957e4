"""Tests for txbittorrent.swarm.addressbook: candidates, backoff and bans."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.swarm.addressbook import AddressBook, ban_key

A, B, C = ("10.0.0.1", 1), ("10.0.0.2", 2), ("10.0.0.3", 3)


def book(max_size: int = 10) -> AddressBook:
    return AddressBook(max_size, backoff=(10.0, 60.0), connect_timeout=30.0)


class AddressBookTests(SynchronousTestCase):
    """What to dial and when."""

    def test_add_bounded(self) -> None:
        """New addresses are kept up to max_size; duplicates and port 0 are not."""
        b = book(max_size=2)
        self.assertEqual(b.add([A, A, ("10.0.0.9", 0), B, C], "tracker"), 2)
        self.assertEqual(list(b.due(0)), [A, B])
        self.assertEqual(b.source(A), "tracker")

    def test_full_book_keeps_room_for_trusted_sources(self) -> None:
        """Full of never-tried PEX addresses, the book takes a tracker's peer in
        place of one of them, but not another PEX address."""
        b = book(max_size=3)
        self.assertEqual(b.add([("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 1)], "pex"), 3)
        self.assertEqual(b.add([("10.0.0.4", 1)], "pex"), 0)
        self.assertEqual(b.add([("10.0.0.9", 1)], "http://tracker/announce"), 1)
        self.assertIn(("10.0.0.9", 1), b)
        self.assertEqual(len(b), 3)
        self.assertEqual(b.add([("10.0.0.8", 1)], "dht"), 1, "the DHT outranks PEX")
        self.assertEqual(b.add([("10.0.0.7", 1)], "dht"), 1)
        self.assertEqual(b.add([("10.0.0.6", 1)], "dht"), 0, "only its own rank and better left")

    def test_full_book_drops_failed_first(self) -> None:
        """A failed address gives way to a newcomer of its rank or better; a
        connected one never."""
        b = book(max_size=2)
        b.add([("10.0.0.1", 1), ("10.0.0.2", 1)], "user")
        b.connecting(("10.0.0.1", 1), 0.0)
        b.failed(("10.0.0.1", 1), 0.0)
        b.connecting(("10.0.0.2", 1), 0.0)
        b.connected(("10.0.0.2", 1))
        self.assertEqual(b.add([("10.0.0.3", 1)], "pex"), 0, "PEX never evicts a user's address")
        self.assertEqual(b.add([("10.0.0.3", 1)], "user"), 1)
        self.assertNotIn(("10.0.0.1", 1), b)
        self.assertEqual(b.add([("10.0.0.4", 1)], "user"), 0, "none failed, none weaker")

    def test_due_order(self) -> None:
        """Trusted sources before the DHT before PEX, then never-failed before
        failed, then oldest."""
        b = AddressBook(10, backoff=(1.0, 2.0, 4.0), connect_timeout=30.0)
        b.add([("10.0.0.1", 1), ("10.0.0.2", 1)], "pex")
        b.add([("10.0.0.3", 1)], "dht")
        for address in [("10.0.0.1", 1), ("10.0.0.2", 1)]:
            b.connecting(address, 0.0)
            b.failed(address, 0.0)
        b.add([("10.0.0.9", 1)], "tracker")
        b.add([("10.0.0.4", 1)], "pex")
        self.assertEqual(list(b.due(5.0)), [
            ("10.0.0.9", 1), ("10.0.0.3", 1), ("10.0.0.4", 1), ("10.0.0.1", 1), ("10.0.0.2", 1),
        ])
        b.connecting(("10.0.0.9", 1), 5.0)
        b.failed(("10.0.0.9", 1), 5.0)
        self.assertEqual(next(b.due(10.0)), ("10.0.0.9", 1), "a tracker's, even failed, first")

    def test_backoff_then_forget(self) -> None:
        """Each failure waits the next backoff step; one more and it is forgotten."""
        b = book()
        b.add([A], "tracker")
        b.connecting(A, 0)
        self.assertEqual((list(b.due(0)), b.attempts), ([], 1))
        b.failed(A, 0)
        self.assertEqual((list(b.due(9)), list(b.due(10)), b.attempts), ([], [A], 0))
        b.failed(A, 10)
        self.assertEqual((list(b.due(69)), list(b.due(70))), ([], [A]))
        b.failed(A, 70)
        self.assertNotIn(A, b)

    def test_connected_and_lost(self) -> None:
        """A connected address is not due; after it closes, the first backoff step."""
        b = book()
        b.add([A], "tracker")
        b.connecting(A, 0)
        b.connected(A)
        self.assertEqual(list(b.due(100)), [])
        b.lost(A, 100)
        self.assertEqual((list(b.due(109)), list(b.due(110))), ([], [A]))

    def test_connect_timeout(self) -> None:
        """An attempt nobody reported on counts as failed after connect_timeout."""
        b = book()
        b.add([A], "tracker")
        b.connecting(A, 0)
        self.assertEqual(list(b.due(29)), [])
        self.assertEqual(list(b.due(30)), [])  # failed now; due after 10 s
        self.assertEqual(b.attempts, 0)
        self.assertEqual(list(b.due(40)), [A])

    def test_not_started(self) -> None:
        """An attempt that did not start leaves no trace."""
        b = book()
        b.add([A], "tracker")
        b.connecting(A, 0)
        b.not_started(A)
        self.assertEqual((list(b.due(0)), b.attempts), ([A], 0))

    def test_bans(self) -> None:
        """Bans are by host and by peer id; a banned host's addresses go."""
        b = book()
        b.add([A, ("10.0.0.1", 99), B], "tracker")
        b.ban("10.0.0.1", b"x" * 20)
        self.assertEqual(list(b.due(0)), [B])
        self.assertTrue(b.is_banned("10.0.0.1"))
        self.assertTrue(b.is_banned("10.0.0.7", b"x" * 20))
        self.assertFalse(b.is_banned("10.0.0.7", b"y" * 20))
        self.assertEqual(b.add([A], "tracker"), 0)

    def test_own_address(self) -> None:
        """Our own address is forgotten and never added again."""
        b = book()
        b.add([A], "tracker")
        b.forget_own(A)
        self.assertEqual(b.add([A], "tracker"), 0)

    def test_hash_failures(self) -> None:
        """Hash failures count per host."""
        b = book()
        self.assertEqual([b.hash_failure("h"), b.hash_failure("h"), b.hash_failure("g")],
                         [1, 2, 1])


class LoopbackBanTests(SynchronousTestCase):
    """On loopback a ban covers one endpoint, not every local program."""

    def test_ban_key(self) -> None:
        """ban_key is the IP, except host:port for loopback addresses."""
        self.assertEqual(ban_key(("10.0.0.1", 5)), "10.0.0.1")
        self.assertEqual(ban_key(("127.0.0.1", 5)), "127.0.0.1:5")
        self.assertEqual(ban_key(("127.3.0.1", 5)), "127.3.0.1:5")
        self.assertEqual(ban_key(("::1", 5)), "::1:5")

    def test_loopback_neighbours_survive(self) -> None:
        """Banning one loopback endpoint leaves other local ports as candidates."""
        b = AddressBook(100, (10.0,), 60.0)
        b.add([("127.0.0.1", 1000), ("127.0.0.1", 2000)], "tracker")
        b.ban(ban_key(("127.0.0.1", 1000)), None)
        self.assertNotIn(("127.0.0.1", 1000), b)
        self.assertIn(("127.0.0.1", 2000), b)
        self.assertEqual(b.add([("127.0.0.1", 1000)], "tracker"), 0)
