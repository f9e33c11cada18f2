"""SubstringIndex with removal (redaction keeps only the most recently bound tenant ids)."""

from flowmap.substrings import SubstringIndex


def _found(index, text):
    return [text[i:j] for i, j in index.matches(text)]


def test_removed_strings_are_no_longer_found_and_shared_heads_survive():
    index = SubstringIndex(removable=True)
    for s in ("acme-corp", "acme-labs", "globex"):
        index.add(s)
    index.add("acme-corp")  # twice: still one string
    index.remove("acme-corp")
    assert "acme-corp" not in index and "acme-labs" in index
    assert _found(index, "acme-corp acme-labs globex") == ["acme-labs", "globex"]
    index.remove("acme-labs")
    index.remove("never-added")  # a no-op
    index.remove("globex")
    assert not index and _found(index, "acme-corp globex") == []


def test_many_hits_in_a_long_text_are_found_left_to_right():
    index = SubstringIndex()
    ids = [f"org-{i:05d}" for i in range(500)]
    for s in ids:
        index.add(s)
    text = " | ".join(f"x{ids[i]}y" for i in range(0, 500, 7)) + " org-99999"
    assert _found(index, text) == ids[0:500:7]


def test_sampled_index_finds_every_occurrence_at_every_alignment():
    """With ``shortest=8`` a text is read at every 5th position only: each known string
    must still be found wherever it starts, and removal must forget its windows."""
    import random

    rng = random.Random(5)
    alphabet = "abcdef0123456789-"
    known = sorted({"".join(rng.choice(alphabet) for _ in range(rng.randint(8, 20))) for _ in range(200)})
    sampled = SubstringIndex(removable=True, shortest=8)
    plain = SubstringIndex()
    for s in known:
        sampled.add(s)
        plain.add(s)
    for _ in range(300):
        parts = [rng.choice("xyz .,/") * rng.randint(0, 6) for _ in range(4)]
        text = parts[0] + rng.choice(known) + parts[1] + rng.choice(known) + parts[2]
        assert set(_found(sampled, text)) == set(_found(plain, text))
        assert _found(sampled, text)
    kept = SubstringIndex()
    for s in known[::2]:
        sampled.remove(s)
    for s in known[1::2]:
        kept.add(s)
    for s in known:
        text = f"..{s}.."
        assert _found(sampled, text) == _found(kept, text)
        assert (s in _found(sampled, text)) == (s in known[1::2])


def test_removed_windows_are_reindexed_once_as_many_are_stale_as_live():
    index = SubstringIndex(removable=True, shortest=8)
    for i in range(200):
        index.add(f"tenant-{i:04d}-x")
    for i in range(150):
        index.remove(f"tenant-{i:04d}-x")
    assert len(index) == 50 and len(index._heads) <= 50 * 5  # re-indexed: only the live
    assert not list(index.matches("..tenant-0000-x..")) and not list(index.matches("..tenant-0149-x.."))
    assert list(index.matches("..tenant-0199-x..")) == [(2, 15)]
