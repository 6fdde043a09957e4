"""Which pieces we have, which we want, and how far along we are.

Theory of operation
-------------------
``Completion`` is the one model of a torrent's piece progress.  It owns two
facts: the set of verified pieces (``have``) and each file's priority
(0 = skip, higher = sooner).  Everything else is derived from them and kept
up to date as they change:

each piece's priority (the highest of the non-pad files it touches, as in
``Layout.piece_priorities``), the *wanted* set (priority > 0, not verified),
and the counts and byte totals the tracker, picker and user ask for.

It knows nothing of disks, hashes, peers or clocks.  The caller says what
happened: a piece passed its hash (``passed``), a verified piece turned out
bad or missing (``failed``), a resume record or a full recheck settled the
whole set (``replace_have``), the user changed priorities
(``set_file_priorities``).  Each call that changes a fact is then told to
every listener as one frozen event (``PiecePassed``, ``PieceFailed``,
``HaveReplaced``, ``PrioritiesChanged``), after the model is updated so a
listener may query it; a call that changes nothing tells nobody.  Listeners
must not change the model while they are told (``LocalProtocolError``), so
every listener sees the events in the same order.

Invariants (the tests check them against a recomputation from scratch):
``wanted == {i: piece_priorities[i] > 0 and i not in have}``,
``missing_wanted == len(wanted)``, ``left_wanted`` the bytes of ``wanted``,
``have_bytes`` the bytes of ``have``, ``left == total_length - have_bytes``,
``wanted_size`` the bytes of the pieces of priority > 0.

Complexity: ``passed``, ``failed``, ``is_wanted`` and the properties are
O(1); ``replace_have`` and ``set_file_priorities`` O(pieces + files), done
as operations on big integers (one bit per piece, BEP 3 order) rather than
piece by piece, so that a session can load thousands of torrents quickly;
``count_wanted_in`` one AND of big integers (the wanted mask is cached).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.layout import Layout
from txbittorrent.errors import LocalProtocolError

__all__ = [
    "BitfieldView", "Completion", "CompletionEvent", "CompletionListener",
    "HaveReplaced", "PieceFailed", "PiecePassed", "PrioritiesChanged",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class PiecePassed:
    """Piece ``piece_index`` is now verified.  ``wanted``: its priority is > 0,
    so it has just left the wanted set."""

    piece_index: int
    wanted: bool


@dataclass(frozen=True, slots=True)
class PieceFailed:
    """Piece ``piece_index``, verified before, is not any more (a failed
    recheck, data gone).  ``wanted``: its priority is > 0, so it has just
    joined the wanted set."""

    piece_index: int
    wanted: bool


@dataclass(frozen=True, slots=True)
class HaveReplaced:
    """The have set was replaced wholesale: these pieces were added and these
    removed (a removed piece of priority > 0 is wanted again)."""

    added: frozenset[int]
    removed: frozenset[int]


@dataclass(frozen=True, slots=True)
class PrioritiesChanged:
    """File priorities are now ``file_priorities``.  ``reprioritised``: the
    pieces whose priority changed (verified or not); ``wanted_changed``: the
    pieces that joined or left the wanted set (ask ``is_wanted`` which)."""

    file_priorities: tuple[int, ...]
    reprioritised: frozenset[int]
    wanted_changed: frozenset[int]


CompletionEvent = PiecePassed | PieceFailed | HaveReplaced | PrioritiesChanged
CompletionListener = Callable[[CompletionEvent], None]


class BitfieldView:
    """A live, read-only view of a ``Bitfield``: cheap membership tests and
    counts that follow the model; ``copy()`` for a snapshot to hand out."""

    __slots__ = ("_field",)

    def __init__(self, field: Bitfield) -> None:
        self._field = field

    def __contains__(self, index: object) -> bool:
        return index in self._field

    def __iter__(self) -> Iterator[int]:
        return iter(self._field)  # (do not change the model while iterating)

    def __len__(self) -> int:
        return len(self._field)

    @property
    def count(self) -> int:
        return self._field.count

    @property
    def complete(self) -> bool:
        return self._field.complete

    @property
    def piece_count(self) -> int:
        return self._field.piece_count

    def to_bytes(self) -> bytes:
        return self._field.to_bytes()

    def to_string(self) -> str:
        return self._field.to_string()

    def copy(self) -> Bitfield:
        return self._field.copy()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, BitfieldView):
            other = other._field
        if not isinstance(other, Bitfield):
            return NotImplemented
        return self._field == other

    def __repr__(self) -> str:
        return f"<BitfieldView {self._field.count}/{self._field.piece_count}>"


def _width(piece_count: int) -> int:
    """Bits in a piece set's integer: whole bytes, as BEP 3 sends them."""
    return (piece_count + 7) // 8 * 8


def _range_mask(start: int, stop: int, width: int) -> int:
    """Pieces ``start`` to ``stop - 1`` as an integer (piece 0 the highest bit)."""
    return ((1 << (stop - start)) - 1) << (width - stop)


def _to_int(field: Bitfield) -> int:
    return int.from_bytes(field.to_bytes(), "big")


def _to_field(value: int, piece_count: int) -> Bitfield:
    return Bitfield.from_bytes(value.to_bytes((piece_count + 7) // 8, "big"), piece_count)


def _piece_priorities(layout: Layout, files: Sequence[int]) -> list[int]:
    """``Layout.piece_priorities`` by slices: files in rising priority, each
    over its pieces, so a piece keeps the highest of its files'."""
    out = [0] * layout.piece_count
    order = sorted(
        (priority, f) for f, priority in enumerate(files) if priority > 0 and not layout.pad[f]
    )
    for priority, f in order:
        pieces = layout.pieces_of_file(f)
        out[pieces.start:pieces.stop] = [priority] * len(pieces)
    return out


class Completion:
    """Verified pieces and file priorities, and everything derived from them
    (see the module docstring)."""

    __slots__ = (
        "layout", "_have", "_view", "_file_priorities", "_piece_priorities", "_wanted",
        "_wanted_int", "_missing", "_left_wanted", "_wanted_size", "_have_bytes",
        "_listeners", "_notifying", "_positive",
    )  # fmt: skip

    def __init__(
        self,
        layout: Layout,
        file_priorities: Sequence[int] | None = None,
        have: Bitfield | BitfieldView | None = None,
    ) -> None:
        """File priorities default to 1 each; ``have`` (copied) to no piece."""
        self.layout = layout
        n = layout.piece_count
        if have is not None and have.piece_count != n:
            raise ValueError(f"have has {have.piece_count} pieces, expected {n}")
        self._have = Bitfield(n)
        self._view = BitfieldView(self._have)
        self._file_priorities = (0,) * layout.file_count
        self._piece_priorities = (0,) * n
        self._wanted = Bitfield(n)
        self._wanted_int: int | None = None  # the wanted set as one integer, until a change
        self._missing = self._left_wanted = self._wanted_size = self._have_bytes = 0
        self._positive = 0
        """The pieces of priority > 0, as an integer (``_mask`` order)."""
        self._listeners: list[CompletionListener] = []
        self._notifying = False
        files = file_priorities if file_priorities is not None else (1,) * layout.file_count
        self._reprioritise(self._checked(files))
        if have is not None:
            self._set_have(_to_int(have.copy()))

    # -- validation ------------------------------------------------------------------

    def _checked(self, priorities: Sequence[int]) -> tuple[int, ...]:
        return self.layout.checked_priorities(priorities)

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.layout.piece_count:
            raise ValueError(f"piece index {index} out of range")

    def _check_changeable(self) -> None:
        if self._notifying:
            raise LocalProtocolError("the completion model changed from inside a listener")

    # -- the facts -------------------------------------------------------------------

    @property
    def piece_count(self) -> int:
        return self.layout.piece_count

    @property
    def have(self) -> BitfieldView:
        """The verified pieces: a live read-only view (``index in have`` is
        O(1)); ``have.copy()`` is a snapshot ``Bitfield`` to hand out."""
        return self._view

    @property
    def file_priorities(self) -> tuple[int, ...]:
        return self._file_priorities

    @property
    def piece_priorities(self) -> tuple[int, ...]:
        """Each piece's priority: the highest of the non-pad files it touches."""
        return self._piece_priorities

    # -- derived ---------------------------------------------------------------------

    def is_wanted(self, index: int) -> bool:
        """Piece ``index`` has priority > 0 and is not verified yet."""
        self._check_index(index)
        return index in self._wanted

    def wanted(self) -> Bitfield:
        """A copy of the wanted set (priority > 0, not verified)."""
        return self._wanted.copy()

    def count_wanted_in(self, pieces: Bitfield | BitfieldView) -> int:
        """How many wanted pieces ``pieces`` (a peer's) holds: we are interested
        in the peer exactly while this is above zero."""
        if pieces.piece_count != self.layout.piece_count:
            raise ValueError(f"{pieces.piece_count} pieces, expected {self.layout.piece_count}")
        if not pieces.count or not self._missing:
            return 0
        mask = self._wanted_int
        if mask is None:
            mask = self._wanted_int = int.from_bytes(self._wanted.to_bytes(), "big")
        return (int.from_bytes(pieces.to_bytes(), "big") & mask).bit_count()

    @property
    def missing_wanted(self) -> int:
        """How many wanted pieces are not verified yet."""
        return self._missing

    @property
    def complete(self) -> bool:
        """Every wanted piece is verified (true of a torrent with nothing wanted)."""
        return self._missing == 0

    @property
    def seed(self) -> bool:
        """Every piece is verified."""
        return self._have.complete

    @property
    def have_bytes(self) -> int:
        """Bytes in verified pieces."""
        return self._have_bytes

    @property
    def left(self) -> int:
        """Bytes of the whole torrent not verified yet (BEP 3's ``left``)."""
        return self.layout.total_length - self._have_bytes

    @property
    def wanted_size(self) -> int:
        """Bytes in pieces of priority > 0, verified or not (the download's size)."""
        return self._wanted_size

    @property
    def left_wanted(self) -> int:
        """Bytes in wanted pieces not verified yet."""
        return self._left_wanted

    # -- changes ---------------------------------------------------------------------

    def passed(self, index: int) -> bool:
        """Piece ``index`` passed its hash.  True if it was not verified before."""
        self._check_index(index)
        self._check_changeable()
        if index in self._have:
            return False
        self._notify(PiecePassed(index, self._flip(index, True)))
        return True

    def failed(self, index: int) -> bool:
        """Piece ``index`` is not (or no longer) verified.  True if it was before."""
        self._check_index(index)
        self._check_changeable()
        if index not in self._have:
            return False
        self._notify(PieceFailed(index, self._flip(index, False)))
        return True

    def replace_have(self, have: Bitfield | BitfieldView) -> HaveReplaced:
        """Make ``have`` (copied) the verified set, as a resume record or a full
        recheck says.  Returns what was added and removed (listeners are told
        only if something was)."""
        self._check_changeable()
        if have.piece_count != self.layout.piece_count:
            raise ValueError(f"have has {have.piece_count} pieces, expected {self.piece_count}")
        old = _to_int(self._have)
        new = _to_int(have.copy())
        added, removed = new & ~old, old & ~new
        change = HaveReplaced(self._indexes(added), self._indexes(removed))
        if added or removed:
            self._set_have(new)
            self._notify(change)
        return change

    def set_file_priorities(self, priorities: Sequence[int]) -> frozenset[int]:
        """Set every file's priority (0 = skip).  Returns the pieces that joined
        or left the wanted set (``is_wanted`` says which)."""
        self._check_changeable()
        new_files = self._checked(priorities)
        if new_files == self._file_priorities:
            return frozenset()
        reprioritised, changed = self._reprioritise(new_files)
        self._notify(PrioritiesChanged(new_files, reprioritised, changed))
        return changed

    def set_file_priority(self, file_index: int, priority: int) -> frozenset[int]:
        """Set one file's priority; as ``set_file_priorities``."""
        if not 0 <= file_index < self.layout.file_count:
            raise ValueError(f"file index {file_index} out of range")
        priorities = list(self._file_priorities)
        priorities[file_index] = priority
        return self.set_file_priorities(priorities)

    def _reprioritise(self, files: tuple[int, ...]) -> tuple[frozenset[int], frozenset[int]]:
        """Apply checked file priorities: the pieces whose priority changed,
        and those that joined or left the wanted set."""
        layout = self.layout
        old = self._piece_priorities
        new = tuple(_piece_priorities(layout, files))
        reprioritised = frozenset(
            [index for index, before, after in zip(range(len(new)), old, new) if before != after]
        )
        positive = 0
        width = _width(layout.piece_count)
        for f, priority in enumerate(files):
            if priority > 0 and not layout.pad[f]:
                pieces = layout.pieces_of_file(f)
                if pieces:
                    positive |= _range_mask(pieces.start, pieces.stop, width)
        have = _to_int(self._have)
        changed = (self._positive ^ positive) & ~have
        self._file_priorities = files
        self._piece_priorities = new
        self._positive = positive
        self._wanted_size = self._bytes_of(positive)
        if changed or self._wanted_int is None:
            self._set_wanted(positive & ~have)
        return reprioritised, self._indexes(changed)

    # -- the sets as integers --------------------------------------------------------

    def _set_have(self, have: int) -> None:
        """Make the integer ``have`` the verified set, and update what follows."""
        n = self.layout.piece_count
        self._have = _to_field(have, n)
        self._view._field = self._have  # (handed-out views follow the model)
        self._have_bytes = self._bytes_of(have)
        self._set_wanted(self._positive & ~have)

    def _set_wanted(self, wanted: int) -> None:
        self._wanted = _to_field(wanted, self.layout.piece_count)
        self._wanted_int = wanted
        self._missing = wanted.bit_count()
        self._left_wanted = self._bytes_of(wanted)

    def _bytes_of(self, pieces: int) -> int:
        """The bytes in the pieces of the integer ``pieces``."""
        layout = self.layout
        n = layout.piece_count
        if not n:
            return 0
        total = pieces.bit_count() * layout.piece_length
        if pieces & 1 << (_width(n) - n):  # the last piece, maybe short
            total -= layout.piece_length - layout.piece_size(n - 1)
        return total

    def _indexes(self, pieces: int) -> frozenset[int]:
        if not pieces:
            return frozenset()
        n = self.layout.piece_count
        if pieces == _range_mask(0, n, _width(n)):
            return frozenset(range(n))
        return frozenset(_to_field(pieces, n))

    def _flip(self, index: int, gain: bool) -> bool:
        """Add a piece not in ``have`` (or remove one in it); True if its
        priority is > 0, so it left (or joined) the wanted set."""
        size = self.layout.piece_size(index)
        sign = 1 if gain else -1
        (self._have.add if gain else self._have.discard)(index)
        self._have_bytes += sign * size
        if self._piece_priorities[index] <= 0:
            return False
        (self._wanted.discard if gain else self._wanted.add)(index)
        self._wanted_int = None
        self._missing -= sign
        self._left_wanted -= sign * size
        return True

    # -- listeners -------------------------------------------------------------------

    def add_listener(self, listener: CompletionListener) -> None:
        """Call ``listener`` with every change from now on, after it is made."""
        self._listeners.append(listener)

    def remove_listener(self, listener: CompletionListener) -> None:
        """Stop telling ``listener`` (ValueError if it was never added)."""
        self._listeners.remove(listener)

    def _notify(self, event: CompletionEvent) -> None:
        """Tell every listener, in the order they were added.  An exception from
        one propagates to the caller (the later ones miss the event)."""
        if not self._listeners:
            return
        self._notifying = True
        try:
            for listener in tuple(self._listeners):
                listener(event)
        finally:
            self._notifying = False

    def __repr__(self) -> str:
        return f"<Completion {self._have.count}/{self.piece_count}, {self._missing} wanted left>"
