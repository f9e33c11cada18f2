"""Finding many known strings in a text: the same matches as one regular expression of
them all (longest first), with the work bounded whatever the strings."""

import random
import re

import pytest

import flowmap.substrings as substrings
from flowmap.substrings import HEAD, SubstringIndex


def _expected(strings, text):
    """What one pattern of every string, longest first, finds (the reference)."""
    if not strings:
        return []
    pattern = re.compile("|".join(map(re.escape, sorted(strings, key=len, reverse=True))))
    return [m.span() for m in pattern.finditer(text)]


def _index(strings):
    index = SubstringIndex()
    for s in strings:
        index.add(s)
    return index


@pytest.mark.parametrize("reader", ["lookups", "automaton", "switch midway", "built later"])
def test_matches_are_those_of_one_pattern_longest_first(monkeypatch, reader):
    """Random strings over a few letters (so they share heads, overlap and nest), in
    random texts: every way of reading a text gives the reference's matches (the
    allowances set so that the automaton reads every text from its first head on, or
    takes over midway, or is built only after a few texts went past theirs)."""
    allowances = {"automaton": (0, 0, 0), "switch midway": (0, 20, 0), "built later": (0, 10, 1)}.get(reader)
    if allowances is not None:
        for name, value in zip(("_PER_CHAR", "_PER_TEXT", "_PER_KNOWN_CHAR"), allowances):
            monkeypatch.setattr(substrings, name, value)
    rng = random.Random(17)
    for _ in range(600):
        letters = "ab-é"[: rng.randint(2, 4)]
        strings = {"".join(rng.choice(letters) for _ in range(rng.randint(HEAD, HEAD + 6)))
                   for _ in range(rng.randint(1, 12))}
        index = _index(strings)
        for _ in range(4):
            text = "".join(rng.choice(letters + "x") for _ in range(rng.randint(0, 60)))
            assert list(index.matches(text)) == _expected(strings, text), (strings, text)
        more = "".join(rng.choice(letters) for _ in range(HEAD + 2))  # added after a use
        index.add(more)
        strings.add(more)
        text = "".join(rng.choice(letters) for _ in range(40)) + more
        assert list(index.matches(text)) == _expected(strings, text)


class _CountingText(str):
    """A text that counts the characters its slices copy (what a lookup by length costs)."""

    copied = 0

    def __getitem__(self, key):
        part = str.__getitem__(self, key)
        if isinstance(key, slice):
            _CountingText.copied += len(part)
        return part


def test_one_head_in_many_lengths_costs_a_bounded_number_of_lookups():
    """The audit's strings: ids sharing their first four characters, each of another
    length, in texts that are that head over and over: every place tried every length
    (1,000 lengths: 39 s for 8 such names of 4,000 characters). Now the lookups stop
    once they cost as much as building the automaton, which reads the rest of that text
    and the texts after it: the same (here: no) matches."""
    strings = ["aaaa" + "x" * k for k in range(1, 301)]
    index = _index(strings)
    known = sum(map(len, strings))
    texts = [_CountingText("a" * 4000 + f"-{k}") for k in range(5)]
    _CountingText.copied = 0
    assert [list(index.matches(t)) for t in texts] == [[]] * 5
    # the lookups' allowance (128 a character, and 4,096), the heads and the automaton
    # reading each text a few times, and once 1,024 a character of the known strings;
    # every place trying every length was 900,000,000
    assert _CountingText.copied <= sum(140 * len(t) + 4096 for t in texts) + 1024 * known
    assert index._automaton is not None
    hit = "a" * 2000 + "x" * 250 + "a" * 2000
    assert list(index.matches(hit)) == [(1996, 2250)]  # the longest, where it starts


def test_usual_texts_do_not_build_the_automaton():
    index = _index(["acme-corp-7731", "acme-corp", "globex-42"])
    text = "GET /tenants/ACME-CORP-7731/docs acme-corp globex-42 acme"
    assert list(index.matches(text.lower())) == [(13, 27), (33, 42), (43, 52)]
    assert index._automaton is None
