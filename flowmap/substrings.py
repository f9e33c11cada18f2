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

from collections.abc import Iterator

__all__ = ["HEAD", "SubstringIndex"]

HEAD = 4  # known strings are at least this long (shorter ones match only as whole tokens)


class SubstringIndex:
    """Known strings of :data:`HEAD` characters or more, found anywhere in a text."""

    __slots__ = ("_heads", "_by_length", "_lengths")

    def __init__(self) -> None:
        self._heads: set[tuple[str, ...]] = set()  # the first HEAD characters of each
        self._by_length: dict[int, set[str]] = {}
        self._lengths: list[int] = []  # longest first

    def __bool__(self) -> bool:
        return bool(self._by_length)

    def add(self, s: str) -> None:
        """Know ``s`` (at least :data:`HEAD` characters) from now on."""
        by_length = self._by_length.get(len(s))
        if by_length is None:
            by_length = self._by_length[len(s)] = set()
            self._lengths = sorted(self._by_length, reverse=True)
        by_length.add(s)
        self._heads.add(tuple(s[:HEAD]))

    def matches(self, text: str) -> Iterator[tuple[int, int]]:
        """``(start, end)`` of known strings in ``text``, left to right, the longest at each
        place, not overlapping (as a regular expression of them all, longest first, would)."""
        heads = self._heads
        if heads.isdisjoint(_heads_of(text)):  # the usual answer, in C
            return
        by_length, lengths, n = self._by_length, self._lengths, len(text)
        i = 0
        for at, head in enumerate(_heads_of(text)):
            if at < i or head not in heads:
                continue
            for length in lengths:
                if at + length <= n and text[at : at + length] in by_length[length]:
                    yield at, at + length
                    i = at + length
                    break


def _heads_of(text: str) -> Iterator[tuple[str, ...]]:
    """The :data:`HEAD` characters starting at each position of ``text``."""
    return zip(*(text[k:] for k in range(HEAD)))
