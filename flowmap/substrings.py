"""Find any of very many known strings inside a text, by set lookups.

Both halves of flowmap hide raw tenant ids wherever they appear: the analyzer masks the
values it flagged in every output, the runtime scrubs ids it has bound from spans that
ran outside their binding. There can be one id per tenant, so one regular expression of
all of them does not scale: building it grows with their number (rebuilt per new id,
quadratic), and so does matching it. Here a text is read once, with one set lookup per
position (the first :data:`HEAD` characters of some known string start here?) and, only
where one does, one per length the known strings that start so come in.

That last part is bounded too: many known strings that share their first characters but
not their lengths (``aaaa-1``, ``aaaa-12``, … one head, a thousand lengths) would make
every place the head appears cost a lookup per length, each as long as that length. A
text may compare :data:`_PER_CHAR` characters a character of it (and
:data:`_PER_TEXT`), counting at each place the head is found the sum of its strings'
lengths; past that, the rest of it is read by an Aho-Corasick automaton of
all the known strings (:class:`_Automaton`): one step a character, whatever the strings.
Building it costs about as much as comparing :data:`_PER_KNOWN_CHAR` characters for
each character of the known strings (and holds ~100 bytes for each), so it is built only
once the texts have compared that much more than their allowance (a text may go on by
lookups until then), and kept until a string is added. Both ways find the same matches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = ["HEAD", "SubstringIndex"]

HEAD = 4  # known strings are at least this long (shorter ones match only as whole tokens)
_PER_CHAR = 128  # characters a text may compare by lookups, a character of it (the usual: 1 or 2)
_PER_TEXT = 4096  # and a text
_PER_KNOWN_CHAR = 1024  # compared past those, a character of the known strings, before the automaton is built


class SubstringIndex:
    """Known strings of :data:`HEAD` characters or more, found anywhere in a text."""

    __slots__ = ("_heads", "_lengths", "_by_length", "_chars", "_excess", "_automaton")

    def __init__(self) -> None:
        self._heads: set[tuple[str, ...]] = set()  # the first HEAD characters of each
        #: head -> (the lengths of the known strings that start so, longest first, their sum:
        #: what looking them all up at a place compares at most)
        self._lengths: dict[tuple[str, ...], tuple[list[int], int]] = {}
        self._by_length: dict[int, set[str]] = {}
        self._chars = 0  # characters of the known strings
        self._excess = 0  # characters texts compared past their allowance since the automaton was built
        self._automaton: _Automaton | None = None

    def __bool__(self) -> bool:
        return bool(self._by_length)

    def add(self, s: str) -> None:
        """Know ``s`` (at least :data:`HEAD` characters) from now on."""
        by_length = self._by_length.get(len(s))
        if by_length is None:
            by_length = self._by_length[len(s)] = set()
        if s in by_length:
            return
        by_length.add(s)
        head = tuple(s[:HEAD])
        have = self._lengths.get(head)
        if have is None:
            self._lengths[head] = ([len(s)], len(s))
            self._heads.add(head)
        elif len(s) not in have[0]:
            lengths = sorted((*have[0], len(s)), reverse=True)
            self._lengths[head] = (lengths, sum(lengths))
        self._chars += len(s)
        self._automaton = None

    def matches(self, text: str) -> Iterator[tuple[int, int]]:
        """``(start, end)`` of known strings in ``text``, left to right, the longest at each
        place, not overlapping (as a regular expression of them all, longest first, would)."""
        heads = self._heads
        if heads.isdisjoint(_heads_of(text)):  # the usual answer, in C
            return
        by_head, by_length, n = self._lengths, self._by_length, len(text)
        # until the automaton is worth building, lookups go on past the allowance
        credit = 0 if self._automaton is not None else max(0, _PER_KNOWN_CHAR * self._chars - self._excess)
        left = _PER_CHAR * n + _PER_TEXT + credit
        i = 0
        for at, head in enumerate(_heads_of(text)):
            if at < i or head not in heads:
                continue
            lengths, most = by_head[head]
            left -= most
            if left < 0:  # many lengths at many places: the automaton reads the rest
                if self._automaton is None:
                    self._automaton = _Automaton(s for strings in by_length.values() for s in strings)
                    self._excess = 0
                yield from self._automaton.matches(text, at)
                return
            for length in lengths:
                if at + length <= n and text[at : at + length] in by_length[length]:
                    yield at, at + length
                    i = at + length
                    break
        if left < credit:  # compared past the allowance
            self._excess += credit - left


def _heads_of(text: str) -> Iterator[tuple[str, ...]]:
    """The :data:`HEAD` characters starting at each position of ``text``."""
    return zip(*(text[k:] for k in range(HEAD)))


_CHARS = 0x110000  # code points: an edge's key is node * _CHARS + the character's


class _Automaton:
    """Aho-Corasick over the known strings *reversed*: reading a text from its end, the
    state at each position gives the longest known string that starts there (the longest
    one among those the state's string ends with). One step a character, amortised, and
    one node per distinct suffix of the known strings (they share their ends)."""

    __slots__ = ("_edges", "_fail", "_longest")

    def __init__(self, strings: Iterable[str]) -> None:
        edges: dict[int, int] = {}
        parent: list[int] = [0]
        char: list[int] = [0]
        depth: list[int] = [0]
        ends: set[int] = set()  # nodes that are a whole known string
        for s in strings:
            node = 0
            for c in reversed(s):
                key = node * _CHARS + ord(c)
                nxt = edges.get(key)
                if nxt is None:
                    nxt = edges[key] = len(parent)
                    parent.append(node)
                    char.append(ord(c))
                    depth.append(depth[node] + 1)
                node = nxt
            ends.add(node)
        count = len(parent)
        fail = [0] * count
        longest = [0] * count  # length of the longest known string the node's string ends with
        by_depth = sorted(range(1, count), key=depth.__getitem__)  # parents before children
        for node in by_depth:
            up = parent[node]
            if up:
                f, c = fail[up], char[node]
                while True:
                    nxt = edges.get(f * _CHARS + c)
                    if nxt is not None:
                        fail[node] = nxt
                        break
                    if not f:
                        break
                    f = fail[f]
            longest[node] = depth[node] if node in ends else longest[fail[node]]
        self._edges, self._fail, self._longest = edges, fail, longest

    def matches(self, text: str, start: int) -> Iterator[tuple[int, int]]:
        """:meth:`SubstringIndex.matches` from ``start`` on."""
        edges, fail, longest = self._edges, self._fail, self._longest
        state = 0
        found: list[int] = []  # from the text's end: the longest known string starting there
        for c in reversed(text[start:]):
            o = ord(c)
            while True:
                nxt = edges.get(state * _CHARS + o)
                if nxt is not None:
                    state = nxt
                    break
                if not state:
                    break
                state = fail[state]
            found.append(longest[state])
        found.reverse()
        k, n = 0, len(found)
        while k < n:
            length = found[k]
            if length:
                yield start + k, start + k + length
                k += length
            else:
                k += 1
