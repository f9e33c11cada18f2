"""Find any of very many known strings inside a text, by set lookups.

Both halves of flowmap hide raw tenant ids wherever they appear: the analyzer masks the
values it flagged in every output, the runtime scrubs ids it has bound from spans that
ran outside their binding. There can be one id per tenant, so one regular expression of
all of them does not scale: building it grows with their number (rebuilt per new id,
quadratic), and so does matching it. Here a text is read once, with one set lookup per
position (the first :data:`HEAD` characters of some known string start here?) and, only
where one does, one per length the known strings come in.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import compress, count

__all__ = ["HEAD", "SubstringIndex"]

HEAD = 4  # known strings are at least this long (shorter ones match only as whole tokens)


class SubstringIndex:
    """Known strings of :data:`HEAD` characters or more, found anywhere in a text.

    ``shortest``: every known string has at least this many characters (default
    :data:`HEAD`). Then each of the ``shortest - HEAD + 1`` windows of :data:`HEAD`
    characters at the start of a string is indexed (with a bit for its offset), and a
    text is read only at every ``stride``-th position (``stride = shortest - HEAD + 1``):
    an occurrence of any known string covers one of those positions with one of its
    indexed windows. Tenant ids such as UUIDs or slugs are long, so a long text (a
    prompt) costs a fraction of one lookup per character.

    With ``removable=True`` strings can also be removed (redaction keeps the most recently
    bound tenant ids, so one comes in as another goes): a removed string's windows stay
    indexed — harmless, a text holding one is only looked at more closely — until as many
    are stale as there are live strings, when the windows are indexed afresh (amortised
    O(1) a removal). Reading (``matches``) takes no lock and tolerates a concurrent
    ``add``/``remove`` from a writer that holds its own lock: it only tests membership,
    and what a re-index replaces is swapped in whole.
    """

    __slots__ = ("_heads", "_masks", "_by_length", "_lengths", "_shortest", "_stride", "_size", "_stale")

    def __init__(self, removable: bool = False, shortest: int = HEAD) -> None:
        if shortest < HEAD:
            raise ValueError(f"known strings have at least {HEAD} characters")
        self._shortest = shortest
        self._stride = shortest - HEAD + 1
        self._heads: set[tuple[str, ...]] = set()  # the indexed windows
        # window -> bit o set when some known string has it at offset o (sampled only)
        self._masks: dict[tuple[str, ...], int] | None = {} if self._stride > 1 else None
        self._by_length: dict[int, set[str]] = {}
        self._lengths: list[int] = []  # longest first (replaced, never changed in place)
        self._size = 0
        self._stale: int | None = 0 if removable else None  # strings removed since indexed

    def __bool__(self) -> bool:
        return bool(self._by_length)

    def __len__(self) -> int:
        return self._size

    def __contains__(self, s: object) -> bool:
        return isinstance(s, str) and s in self._by_length.get(len(s), ())

    def add(self, s: str) -> None:
        """Know ``s`` (at least ``shortest`` characters) from now on."""
        if len(s) < self._shortest:
            raise ValueError("shorter than this index's shortest known string")
        by_length = self._by_length.get(len(s))
        if by_length is None:
            by_length = self._by_length[len(s)] = set()
            self._lengths = sorted(self._by_length, reverse=True)
        elif s in by_length:
            return
        by_length.add(s)
        self._size += 1
        self._index(s, self._heads, self._masks)

    def _index(self, s: str, heads: set[tuple[str, ...]], masks: dict[tuple[str, ...], int] | None) -> None:
        if masks is None:
            heads.add(tuple(s[:HEAD]))
            return
        for o in range(self._stride):
            window = tuple(s[o : o + HEAD])
            masks[window] = masks.get(window, 0) | (1 << o)
            heads.add(window)

    def remove(self, s: str) -> None:
        """Forget ``s`` (a no-op when it is not known)."""
        by_length = self._by_length.get(len(s))
        if by_length is None or s not in by_length:
            return
        by_length.discard(s)
        self._size -= 1
        if not by_length:
            del self._by_length[len(s)]
            self._lengths = sorted(self._by_length, reverse=True)
        if self._stale is not None:
            self._stale += 1
            if self._stale > max(64, self._size):
                self._reindex()

    def _reindex(self) -> None:
        heads: set[tuple[str, ...]] = set()
        masks: dict[tuple[str, ...], int] | None = {} if self._masks is not None else None
        for strings in list(self._by_length.values()):
            for s in strings:
                self._index(s, heads, masks)
        self._heads, self._masks, self._stale = heads, masks, 0

    def matches(self, text: str) -> Iterator[tuple[int, int]]:
        """``(start, end)`` of known strings in ``text``, left to right, the longest at each
        place, not overlapping (as a regular expression of them all, longest first, would)."""
        heads, masks, stride = self._heads, self._masks, self._stride
        if heads.isdisjoint(_heads_of(text, stride)):  # the usual answer, in C
            return
        # where some known string may start: found in C, then (when sampled) moved back
        # by each offset its window is indexed at
        hits = compress(count(0, stride), map(heads.__contains__, _heads_of(text, stride)))
        if masks is None:
            starts: Iterable[int] = hits
        else:
            found: set[int] = set()
            for at in hits:
                mask = masks.get(tuple(text[at : at + HEAD]), 0)
                for o in range(min(stride, at + 1)):
                    if mask >> o & 1:
                        found.add(at - o)
            starts = sorted(found)
        by_length, lengths, n = self._by_length, self._lengths, len(text)
        empty: frozenset[str] = frozenset()
        i = 0
        for at in starts:
            if at < i:
                continue
            for length in lengths:
                if at + length <= n and text[at : at + length] in by_length.get(length, empty):
                    yield at, at + length
                    i = at + length
                    break


def _heads_of(text: str, stride: int = 1) -> Iterator[tuple[str, ...]]:
    """The :data:`HEAD` characters starting at every ``stride``-th position of ``text``."""
    if stride == 1:
        return zip(*(text[k:] for k in range(HEAD)))
    return zip(*(text[k::stride] for k in range(HEAD)))
