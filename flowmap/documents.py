"""Where JSON documents written one after another begin and end, and what to keep of a broken one.

Why a module of its own: OTLP JSON Lines put one ``TracesData`` on each line, so a line
is a unit the loader (:mod:`flowmap.loading`) reads, or skips, on its own. Pretty-printed
documents (``jq . a.jsonl`` writes one per record, and a document may be cut short or
followed by garbage) have no such unit: where each one ends, where reading can go on
after damage, and which complete spans a truncated one still holds are found here,
on the bytes, before anything is decoded. The loader decodes what this returns, for a
file of documents and for a pretty-printed one among JSON Lines, which it reads on from
the line that failed to where the value's brackets close (_continues, _bracket_depth).

On the bytes too: the line each span of a document is on (span_lines), which its
warnings and origins name.

Also here, because both sides read them: the generic decoder, the repair of unpaired
surrogate escapes, and the wording of msgspec's decode errors (never the input's values).
"""

from __future__ import annotations

import contextlib
import itertools
import re
from typing import Any, NamedTuple

import msgspec

from . import otlp


# Bytes of non-ASCII characters, for finding where documents end: ASCII letters instead
# (same length, always valid UTF-8), which only ever appear inside strings in valid JSON.
_ASCII_PROBE = bytes(range(128)) + b"x" * 128


def _trailing_at(exc: Exception) -> int | None:
    """msgspec's offset (one past the first extra byte) when the error is that a JSON value
    was followed by more data; else None."""
    text = str(exc)
    if "trailing characters" not in text:
        return None
    m = _BYTE_RE.search(text)
    return int(m.group(1)) if m else None


class _LineOf:
    """The line of an offset into ``data`` (which begins on line ``line``), counted on from
    the offset asked before: a document's offsets, asked in about increasing order, cost
    one pass in all."""

    def __init__(self, data: bytes, line: int = 1) -> None:
        self.data = data
        self.at, self.line = 0, line

    def __call__(self, offset: int) -> int:
        if offset >= self.at:
            self.line += self.data.count(b"\n", self.at, offset)
        else:
            self.line -= self.data.count(b"\n", offset, self.at)
        self.at = offset
        return self.line


class _Damage(NamedTuple):
    """Where a stream of documents stops being JSON (see _split_documents): what is wrong
    (``what``) at offset ``at``; ``kept``, where the complete spans read before it end
    (where the broken part begins when there are none), and how many they are; and
    ``resume``, where reading goes on (the end of the data when nothing follows)."""

    at: int
    what: str
    kept: int
    spans: int
    resume: int


def _split_documents(data: bytes, deep: bool = True) -> list[tuple[int, int, bytes] | _Damage]:
    """The JSON documents written one after another (``jq . a.jsonl``), in order: each
    ``(start, end, closing)``, read as ``data[start:end] + closing``, and where the data
    stops being JSON, a :class:`_Damage`.

    The complete spans before damage are read (a truncated document keeps them): the
    valid JSON before the error, cut after its last complete span and closed
    (``closing``, see _salvage). Then reading resumes at the next line that starts with
    ``{`` at its first column (where ``jq`` and pretty-printers begin each document, and
    no line inside one; with ``indent=0``, one whose first key is ``resourceSpans`` or
    that follows a ``}`` line: _INDENT0_START), so
    one bad byte costs its own document, not the rest of the
    file; a document cut short where the next one begins costs only its rest. Invalid
    UTF-8 and unpaired surrogate escapes do not end a document (pass 2 repairs them):
    they are replaced by text of the same length before looking for the ends, as are
    values nested too deeply to decode (``deep``: _too_deep), so that a document cut short
    after one keeps its complete spans too. A document that is valid JSON but cannot be
    decoded (nesting, and it keeps no span; a number out of range) runs to where the
    next one begins.
    """
    probe = _probe(data)
    # written with indent=0 (a line begins with a string: in JSON a newline is never inside
    # one), nested objects start at the first column too: a document begins where its
    # first key is resourceSpans, or after the "}" line that ended the one before
    starts = _INDENT0_START if b'\n"' in probe else None
    view = memoryview(probe)
    units: list[tuple[int, int, bytes] | _Damage] = []
    pos, n = 0, len(probe)
    nxt = -2  # not looked for yet
    while True:
        while pos < n and probe[pos] in b" \t\r\n":
            pos += 1
        if pos >= n:
            return units
        # where the next document begins (a line starting with "{"): no document reads past
        # it. Looked for again only once passed (-1: there is none): documents written
        # without newlines between them (}{) rescanned the rest of the data for each one
        if nxt == -2 or 0 <= nxt < pos:
            nxt = probe.find(b"\n{", pos) if starts is None else _next_start(starts, probe, pos)
        try:
            _GENERIC.decode(view[pos:])
        except (msgspec.ValidationError, RecursionError) as exc:  # before DecodeError: its subclass
            stop, resume = (nxt, nxt + 1) if nxt >= 0 else (n, n)
            parts = _too_deep(probe, pos, stop, resume) if deep and isinstance(exc, RecursionError) else None
            # else valid JSON that cannot be decoded (nesting, a number out of range): to the
            # next document, decoded (and warned about) alone, so that the documents after
            # it are still read
            units.extend(parts if parts is not None else [(pos, stop, b"")])
            pos = resume
            continue
        except msgspec.DecodeError as exc:
            end = _trailing_at(exc)
            if end is not None and end > 1:
                end -= 1  # msgspec's offset is one past the first trailing character
                units.append((pos, pos + end, b""))
                pos += end
                continue
            m = _BYTE_RE.search(str(exc))
            at = pos + int(m.group(1)) if m else n  # (no offset: truncated, at the end)
            what = _decode_error(exc)
            if 0 <= nxt < at:  # a document begins before the error: this one was cut short there
                at, what = nxt, "truncated"
            # (salvaged only up to the error, or to where the next document begins: a cut
            # document's spans never run on into the next one's)
            salvaged = _salvage(probe, pos, at, what == "truncated")
            if salvaged is not None:
                kept, closing, spans = salvaged
                units.append((pos, kept, closing))
            else:
                kept, spans = pos, 0
            resume = nxt + 1 if nxt >= 0 else n
            units.append(_Damage(at, what, kept, spans, resume))
            pos = resume
        else:
            units.append((pos, n, b""))
            return units


def _too_deep(probe: bytes, start: int, stop: int, resume: int) -> list[tuple[int, int, bytes] | _Damage] | None:
    """The parts (see _split_documents) of the document ``probe[start:stop]``, nested too
    deeply for the decoder, which stopped there: read with its deep values blanked (same
    offsets: emptied_below), so that one also cut short or broken after such a value
    keeps its complete spans as any other (pass 2 empties the values: _repair). None
    when it keeps none: decoded (and warned about) whole, as before. ``resume``: where
    reading goes on after damage that runs to ``stop``."""
    shallow = emptied_below(probe[start:stop], _DEPTH_MAX, blank=True)
    if shallow is None:
        return None
    parts = _split_documents(shallow, deep=False)
    if all(isinstance(part, _Damage) for part in parts):
        return None
    end = len(shallow)
    return [
        part._replace(at=part.at + start, kept=part.kept + start,
                      resume=resume if part.resume >= end else part.resume + start)
        if isinstance(part, _Damage) else (part[0] + start, part[1] + start, part[2])
        for part in parts
    ]


# The newline before a "{" line that begins a document among documents written with
# indent=0: its first key is resourceSpans, or the line before it is "}" (where the
# document before ended, a blank line between them or not; inside one, a "{" at the first
# column follows a line ending with "[" or ","), so that a document with another first
# key (an unknown field) is found too. The lookbehinds are tried only at a newline before
# a "{" (a free-form one before each newline made the search about ten times slower).
_INDENT0_START = re.compile(
    rb'\n(?=\{)(?:(?=\{\s*"resourceSpans")|(?<=\n\}\n)|(?<=\n\}\r\n)|(?<=\n\}\n\n)|(?<=\n\}\r\n\r\n))'
)


def _next_start(starts: re.Pattern[bytes], probe: bytes, pos: int) -> int:
    m = starts.search(probe, pos)
    return m.start() if m is not None else -1


def _probe(data: bytes) -> bytes:
    """``data`` with non-ASCII bytes and unpaired surrogate escapes replaced by text of the
    same length (see _split_documents): where values end, with offsets into ``data``."""
    probe = data if data.isascii() else data.translate(_ASCII_PROBE)
    if b"\\u" in probe:
        probe = _SURROGATE_RE.sub(_fix_surrogate, probe)  # same length
    return probe


class _SkimScope(msgspec.Struct, gc=False):
    spans: list[msgspec.Raw] = []


class _SkimResource(msgspec.Struct, rename="camel", gc=False):
    resource: msgspec.Raw = msgspec.Raw(b"null")
    scope_spans: list[_SkimScope] = []
    instrumentation_library_spans: list[_SkimScope] = []


class _SkimDocument(msgspec.Struct, rename="camel", gc=False):
    resource_spans: list[_SkimResource] = []


_skim = msgspec.json.Decoder(_SkimDocument).decode


class Piece(NamedTuple):
    """Spans of one scope, as written, with their resource as written; ``at``: where the
    first of them is in the document (resourceSpans index, the scope spans' field name,
    its index, the span's index), so that a warning about one of them names its place
    in the document, not in the chunk's own document (chunk_document)."""

    resource: msgspec.Raw
    spans: list[msgspec.Raw]
    at: tuple[int, str, int, int]


#: a chunk of a document's spans
Chunk = list[Piece]


def span_chunks(data: bytes, size: int) -> list[Chunk] | None:
    """The spans of one TracesData document in document order, in chunks of ``size``
    (each span with its resource), without decoding them; None when ``data`` is not such
    a document (it is then read whole, as before).

    Why: a document is one JSON value, and decoding it whole held every span of it at
    once (200,000 spans in one document peaked at 1 GB); its chunks are read one after
    another, and a trace is analysed and dropped after the chunk that mentions it last.
    A skim (msgspec.Raw) only finds where each span is, at the speed of a syntax check.
    """
    try:
        doc = _skim(data)
    except (msgspec.DecodeError, RecursionError):
        return None
    chunks: list[Chunk] = []
    chunk: Chunk = []
    n = 0
    for r, rs in enumerate(doc.resource_spans):
        name = otlp.scopes_name(rs)
        for j, ss in enumerate(otlp.scopes(rs)):
            spans = ss.spans
            i = 0
            while i < len(spans):
                take = spans[i : i + size - n]
                chunk.append(Piece(rs.resource, take, (r, name, j, i)))
                n += len(take)
                i += len(take)
                if n >= size:
                    chunks.append(chunk)
                    chunk, n = [], 0
    if chunk:
        chunks.append(chunk)
    return chunks


def chunk_document(chunk: Chunk) -> bytes:
    """A chunk of spans (:func:`span_chunks`) as a TracesData document of its own."""
    return b'{"resourceSpans":[' + b",".join(
        b'{"resource":' + bytes(resource) + b',"scopeSpans":[{"spans":[' + b",".join(spans) + b"]}]}"
        for resource, spans, _ in chunk
    ) + b"]}"


def salvage_line(data: bytes, exc: Exception) -> tuple[bytes, int] | None:
    """The complete spans of a line of JSON Lines that is not JSON (``exc``: where it
    stops being JSON), as one closed document, and how many they are; None when it holds
    none. Why: a writer killed mid-line (the Collector's file exporter writes a batch of
    hundreds of spans a line), or one bad byte, would otherwise cost every span of the
    line; the spans before the damage are kept as a cut document's are (_salvage)."""
    m = _BYTE_RE.search(str(exc))
    stop = min(int(m.group(1)), len(data)) if m else len(data)
    got = _salvage(_probe(data), 0, stop, "truncated" in str(exc))
    if got is None:
        return None
    kept, closing, spans = got
    return data[:kept] + closing, spans


# A JSON string (an unterminated one too, where valid JSON is cut), with the colon that
# makes it a key; or a bracket.
_TOKEN_RE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?(?:\s*:)?|[\[\]{}]', re.DOTALL)


#: a JSON string (skipped whole), or a run of opening or of closing brackets
_BRACKET_RUN_RE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[{]+|[\]}]+', re.DOTALL)


#: how deep arrays and objects may nest before the deep repair empties them: OTLP's own
#: structure is ~10 levels and each nested AnyValue adds 3; msgspec and the attribute
#: readers stop near Python's recursion limit (~1,000 levels less the caller's frames)
_DEPTH_MAX = 256

#: every byte a space but newlines (see emptied_below)
_BLANK = bytes(b if b == 10 else 32 for b in range(256))


def emptied_below(data: bytes, limit: int, blank: bool = False) -> bytes | None:
    """``data`` with every array and object nested deeper than ``limit`` emptied (``[]``,
    ``{}``), or None when a bracket closes one never opened. Data cut short stays cut
    short (after the last bracket kept when the cut is in an emptied one), so that the
    complete spans before the cut are still found (salvage_line), as without the depth.
    ``blank``: what is dropped is replaced by spaces (its newlines kept), so that offsets
    into the result are offsets into ``data`` (a stream of documents: _split_documents),
    and from a bracket that closes one never opened on, ``data`` is kept as it is (not
    None), so that the damage there costs only what it would without the depth.

    One span's hostile attribute nested thousands deep stops the decoders for its whole
    line; emptied, only that value is lost, not the line's other spans. Brackets are
    found a run at a time by a regex that steps over strings: a bracket bomb of megabytes
    is a few matches (one bracket a match cost ~0.3 µs a byte of it).
    """
    kept: list[bytes] = []
    depth = 0
    deep = limit + 1  # the level emptied: its brackets kept, what they hold dropped
    start = 0  # where the next kept piece begins
    dropped = 0  # where the piece dropped (or blanked) begins
    for m in _BRACKET_RUN_RE.finditer(data):
        at = m.start()
        c = data[at]
        if c == 0x22:  # '"'
            continue
        n = m.end() - at
        if c == 0x5B or c == 0x7B:  # '[' '{': the run opens levels depth+1 .. depth+n
            if depth < deep <= depth + n:  # kept up to the bracket that opens level deep
                dropped = at + deep - depth
                kept.append(data[start:dropped])
            depth += n
        else:  # the run closes levels depth .. depth-n+1, the one of level k at at+depth-k
            if depth - n < deep <= depth:
                start = at + depth - deep  # the bracket that closes level deep is kept
                if blank:
                    kept.append(data[dropped:start].translate(_BLANK))
            depth -= n
            if depth < 0:  # a bracket that closes one never opened
                if not blank:
                    return None
                break  # (the rest as it is: the decoder finds the error where it is)
    if depth <= limit:  # (else the cut is inside an emptied one: its opening bracket ends it)
        kept.append(data[start:])
    elif blank:
        kept.append(data[dropped:].translate(_BLANK))
    return b"".join(kept)


# What a container is, from its parent's role, its opening bracket and its key: a
# TracesData object (at the top, or in a top-level array), its resourceSpans, ... spans.
_TD_LIST, _TD, _RS_LIST, _RS, _SS_LIST, _SS, _SPANS, _SPAN = range(1, 9)
_OBJ, _ARR = ord("{"), ord("[")
_ROLE = {
    (0, _OBJ, None): _TD,
    (0, _ARR, None): _TD_LIST,
    (_TD_LIST, _OBJ, None): _TD,
    (_TD, _ARR, b"resourceSpans"): _RS_LIST,
    (_RS_LIST, _OBJ, None): _RS,
    **{(_RS, _ARR, key.encode()): _SS_LIST for key in otlp.SCOPE_SPANS_NAMES},
    (_SS_LIST, _OBJ, None): _SS,
    (_SS, _ARR, b"spans"): _SPANS,
    (_SPANS, _OBJ, None): _SPAN,
}
_CLOSER = {_OBJ: ord("}"), _ARR: ord("]")}
_ITEMS = frozenset({_TD, _RS, _SS, _SPAN})  # the items of OTLP's arrays
_SKIP = msgspec.json.Decoder(msgspec.Raw)  # checks a JSON value and skips it: builds nothing


def _salvage(probe: bytes, start: int, stop: int, cut: bool = True) -> tuple[int, bytes, int] | None:
    """Where the complete spans of the valid JSON ``probe[start:stop]`` (a document cut
    short, or followed by an error) end, the brackets that close it there, and how many
    spans they are; None when there are none.

    A small scanner follows the brackets and keys (strings skipped) down to
    ``resourceSpans[i].scopeSpans[j].spans[k]``, and msgspec reads past each span (where
    it ends, or that it does not: the cut is in it). The cut is after the last complete
    span, or the last ``resourceSpans`` item, but a span is only kept once its resource
    was seen (a resource written after its spans would be lost with the cut). The
    closed JSON is decoded once to make sure.

    ``cut`` False: the JSON stops at an error (a stray byte), not cut short. A stray
    closing bracket or quote inside a span closes it early, and the error shows only
    after it (at the span's next key): so a span, or ``resourceSpans`` item, is kept
    only once the next item of an OTLP array begins after it, or the error is where one
    begins (a line glued to the next one's start).
    """
    view = memoryview(probe)
    search = _TOKEN_RE.search
    roles: list[int] = [0]  # the open containers' roles, 0 at the bottom
    openers = bytearray()
    key: bytes | None = None
    has_resource = False
    spans = 0
    best: tuple[int, bytes, int] | None = None
    unsure: tuple[int, bytes, int] | None = None  # (cut False) a cut not confirmed yet
    pos = start
    while (m := search(probe, pos, stop)) is not None:
        pos = m.end()
        token = m.group()
        c = token[0]
        if c == 34:  # '"': a key, or a string value
            key = token[1 : token.rindex(b'"')] if token[-1] == 58 else None  # ':'
            if key == b"resource" and roles[-1] == _RS:
                has_resource = True
            continue
        if c == _OBJ or c == _ARR:
            role = _ROLE.get((roles[-1], c, key), -1)
            if unsure is not None and role in _ITEMS:
                best, unsure = unsure, None  # the next item began where one should
            if role == _SPAN:  # read past by msgspec
                end = _value_end(view, m.start(), stop)
                if end is None:
                    break  # the span is cut: nothing after it is complete
                pos, spans = end, spans + 1
                if has_resource:
                    unsure = (pos, bytes(openers), spans)
            else:
                roles.append(role)
                openers.append(c)
                if role == _RS:
                    has_resource = False
        elif openers:
            openers.pop()
            if roles.pop() == _RS and spans:
                unsure = (pos, bytes(openers), spans)
        else:
            return None  # not valid JSON after all
        if cut and unsure is not None:
            best, unsure = unsure, None
        key = None
    if unsure is not None and probe[stop : stop + 1] == b"{":
        best = unsure  # the error is where an object begins: the next one's start, glued on
    if best is None:
        return None
    cut, still_open, spans = best
    closing = bytes(_CLOSER[o] for o in reversed(still_open))
    try:
        _SKIP.decode(probe[start:cut] + closing)
    except (msgspec.DecodeError, RecursionError):
        return None
    return cut, closing, spans


def _value_end(view: memoryview, start: int, stop: int) -> int | None:
    """Where the JSON value at ``start`` ends, None when it does not before ``stop``."""
    try:
        _SKIP.decode(view[start:stop])
    except (msgspec.DecodeError, RecursionError) as exc:
        end = _trailing_at(exc)
        return None if end is None else start + end - 1
    return stop


def _pretty_end(data: bytes, at: int) -> int | None:
    """Where the array at ``at`` ends if written as ``json.dumps(indent=…)`` and ``jq .``
    write one that is not empty (its first item on the next line, indented deeper than
    the line it opens on): its closing bracket on a line of its own, indented as the
    line it opens on, within _PRETTY_BYTES; None when it is not so written.

    Why: msgspec tells where a value ends only by raising, and a document of one span
    paid that for its spans array. A guess, right when the array up to it decodes (a JSON
    array ends where it ends); bounded, so that a wrong one costs no more than a small
    array's decoding, and a big array (where raising costs little beside it) is not
    guessed."""
    if data[at + 1 : at + 2] != b"\n":
        return None
    line = data.rfind(b"\n", 0, at) + 1
    indent = data[line : _INDENT_RE.match(data, line).end()]
    if _INDENT_RE.match(data, at + 2).end() <= at + 2 + len(indent) or not data.startswith(indent, at + 2):
        return None  # (its first item is not indented deeper: not so written)
    close = data.find(b"\n" + indent + b"]", at, at + _PRETTY_BYTES)
    return None if close < 0 else close + len(indent) + 2


_PRETTY_BYTES = 1 << 13
_INDENT_RE = re.compile(rb"[ \t]*")


#: where a scope's spans are in a decoded unit: (the TracesData's index in a top-level
#: array, 0 for an object; its resourceSpans index; the scope spans' field name; its index)
Scope = tuple[int, int, str, int]


def span_lines(data: bytes, first: int = 1) -> dict[Scope, list[int]]:
    """The line of each item of the spans arrays of the TracesData in ``data`` (one, or
    an array of them), which begins on line ``first``, by scope (:data:`Scope`) and
    index: a span's is its own ``spanId`` key's line, that of an item without one (a
    number, a span without an id) where it begins.

    Why by place and not by id: a warning about a span of a document (of the wrong
    type, with an invalid or a duplicate id) names that span's line; looked up by its
    id, a duplicate was named at the first copy's line, and an item without an id at the
    document's first. msgspec reads past each value (at the speed of a syntax check);
    Python only steps over the keys around the spans, a regex a level for a document
    written as nearly all are (_Walk.regular), else a member at a time. What cannot be
    placed (damage) is left out: its warnings name the document's line.
    """
    walk = _Walk(data, first)
    start = _SEPARATOR_RE.match(data).end()
    with contextlib.suppress(_Lost, IndexError):
        if walk.regular(start):
            return walk.found
        walk = _Walk(data, first)  # (written otherwise: from the start, a member at a time)
        role = _ROLE.get((0, data[start], None), -1)
        walk.value(start, role, (0,) if role == _TD else ())
    return walk.found


# Stepping over the members that are not on the path to the spans (``resource``,
# ``scope``, unknown keys) by a regex, not one at a time: a Python step a member, and
# msgspec telling where a value ends only by raising (its "trailing characters" error,
# read back from the message), cost most of span_lines' time on a document of a few
# spans. The regex passes over a member whose key is plain (no escapes) and none of
# _ROLE's, and whose value it reads to where _Walk.skip would: an array or object by
# its brackets, as _bracket_end (strings stepped over, any closing bracket closes any
# opening one; msgspec's end for valid JSON is where its brackets close), nested at most
# _PASSED_DEPTH deep; a string of printable ASCII without escapes, a number, true, false
# or null; each followed by a comma, or by the closing brace (left unread). What it does
# not pass (deep values, escaped keys, missing commas) the walk reads as before. (All
# possessive: giving back a space or a comma never lets a key or bracket match, and
# backtracking over an indent's spaces cost a failed match more than the walk.)
_PASSED_DEPTH = 12
_JSON_STRING = rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"'
_NESTED = rb'(?:%s|[^"\[\]{}]++)*+' % _JSON_STRING
for _ in range(_PASSED_DEPTH - 1):
    _NESTED = rb'(?:%s|[^"\[\]{}]++|[\[{]%s[\]}])*+' % (_JSON_STRING, _NESTED)
_PASSED = rb'\s*+"(?!(?:%s)")[^"\\]*+"\s*+:\s*+(?s:[\[{]%s[\]}]|"[ !#-\[\]-~]*+"|true|false|null|%s)\s*+(?:,\s*+|(?=\}))' % (
    b"|".join(re.escape(key) for (_, _, key) in _ROLE if key is not None),
    _NESTED,
    rb"-?(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?+(?:[eE][+-]?[0-9]++)?+",
)
#: what the walk reads from where an object's next member may begin (after its ``{``, or
#: a member's value) to its next member of OTLP's: the separator, and the members passed
_PASSED_ALL = rb"\s*+,?+\s*+(?:%s)*+" % _PASSED
#: from where an object's next member may begin: _PASSED_ALL, then the next member's key
#: as written (group 1, None when none follows) and where its value begins (the match's end)
_MEMBER_RE = re.compile(
    _PASSED_ALL + rb'(?:"([^"\\]*(?:\\.[^"\\]*)*)"\s*:\s*)?'  # (unrolled: a character a step was 30x slower)
)
# A TracesData object as nearly all are written, for _Walk.regular: its resourceSpans
# array, then in each item a scope spans array (its name, group 1), then in each item its
# spans array (the match's end), each with its separators and the members passed around
# it; after a spans array, the rest of each object up to its closing brace (_CLOSE), and
# the separator after it.
_OPEN_TD = re.compile(rb'\{%s"resourceSpans"\s*+:\s*+\[\s*+,?+\s*+' % _PASSED_ALL).match
_OPEN_RS = re.compile(
    rb'\{%s"(%s)"\s*+:\s*+\[\s*+,?+\s*+' % (_PASSED_ALL, b"|".join(name.encode() for name in otlp.SCOPE_SPANS_NAMES))
).match
_OPEN_SS = re.compile(rb'\{%s"spans"\s*+:\s*+(?=\[)' % _PASSED_ALL).match
_CLOSE = re.compile(rb"%s\}\s*+,?+\s*+" % _PASSED_ALL).match
#: what follows a value before the next item or member, or the closing bracket
_SEPARATOR_RE = re.compile(rb"\s*,?\s*")
_SPAN_ID_KEY_RE = re.compile(rb'"spanId"\s*:')
#: OTLP's arrays and the role of their items
_ITEM_ROLE = {_TD_LIST: _TD, _RS_LIST: _RS, _SS_LIST: _SS, _SPANS: _SPAN}
_LIST_OF_SPANS = msgspec.json.Decoder(list[msgspec.Raw])


class _Lost(Exception):
    """The walk of span_lines met what it cannot follow: it keeps what it placed."""


class _Walk:
    """span_lines' walk down to the spans: ``place`` is where a value is (its Scope's
    first numbers and name as far as known), its lines noted in ``found``."""

    def __init__(self, data: bytes, first: int) -> None:
        self.data, self.view = data, memoryview(data)
        self.line_of = _LineOf(data, first)
        self.found: dict[Scope, list[int]] = {}

    def regular(self, at: int) -> bool:
        """Places the spans of a TracesData object at ``at`` written as nearly all are
        (see _OPEN_TD): a regex a level down to each spans array and back up, where the
        walk by members and items takes a Python step a member and a separator (which
        cost most of a small document's time). Each regex matches exactly what that walk
        reads there, so what is placed is the same; False where the document is written
        otherwise (a key with escapes, a value _PASSED does not pass, an array item of
        the wrong type, a path key twice...), to be walked again from the start."""
        data = self.data
        if (m := _OPEN_TD(data, at)) is None:
            return False
        pos, r = m.end(), 0
        while (m := _OPEN_RS(data, pos)) is not None:  # a resourceSpans item
            name, pos, j = m.group(1).decode(), m.end(), 0
            while (m := _OPEN_SS(data, pos)) is not None:  # a scope's spans
                if (m := _CLOSE(data, self.spans(m.end(), (0, r, name, j)))) is None:
                    return False
                pos, j = m.end(), j + 1
                if data.startswith(b"]", pos):
                    break
            else:
                return False
            if (m := _CLOSE(data, pos + 1)) is None:  # (the rest of the resourceSpans item)
                return False
            pos, r = m.end(), r + 1
            if data.startswith(b"]", pos):
                return _CLOSE(data, pos + 1) is not None  # (the rest of the TracesData)
        return False

    def value(self, at: int, role: int, place: tuple[Any, ...]) -> int:
        """Where the value at ``at`` (of ``role``, -1: none of OTLP's) ends."""
        if role in _ITEM_ROLE:
            return self.items(at, role, place)
        if role == _TD or role == _RS or role == _SS:
            return self.members(at, role, place)
        return self.skip(at)

    def members(self, at: int, role: int, place: tuple[Any, ...]) -> int:
        data = self.data
        m = _MEMBER_RE.match(data, at + 1)
        while (key := m.group(1)) is not None:
            start = m.end()
            if b"\\" in key:  # (escapes: the key as the decoders read it)
                key = _unescaped(key)
            inner = _ROLE.get((role, data[start], key), -1)
            end = self.value(start, inner, (*place, key.decode()) if inner == _SS_LIST else place)
            m = _MEMBER_RE.match(data, end)
        pos = m.end()
        if data[pos] != 0x7D:  # '}'
            raise _Lost
        return pos + 1

    def items(self, at: int, role: int, place: tuple[Any, ...]) -> int:
        data = self.data
        if role == _SPANS:
            return self.spans(at, place)
        item = _ITEM_ROLE[role]
        pos, i = _SEPARATOR_RE.match(data, at + 1).end(), 0
        while data[pos] != 0x5D:  # ']'
            end = self.members(pos, item, (*place, i)) if data[pos] == _OBJ else self.skip(pos)
            pos, i = _SEPARATOR_RE.match(data, end).end(), i + 1
        return pos + 1

    def spans(self, at: int, place: tuple[Any, ...]) -> int:
        """A spans array: each item's line, noted under its scope (``place``)."""
        data, line_of = self.data, self.line_of
        lines: list[int] = []
        self.found[place] = lines  # (a key written twice: its last value, as decoded)
        sizes, end = self.sizes(at)
        separator, own_id, count = _SEPARATOR_RE.match, _own_id, data.count
        pos = separator(data, at + 1).end()
        # (counted here, not by line_of: a call less a span; line_of goes on from here)
        line, counted = line_of(pos), pos
        for size in sizes if sizes is not None else itertools.repeat(None):
            if sizes is None and data[pos] == 0x5D:  # ']'
                break
            stop = pos + size if size is not None else self.skip(pos)
            here = own_id(data, pos, stop) if data[pos] == _OBJ else pos
            line += count(b"\n", counted, here)
            lines.append(line)
            counted, pos = here, separator(data, stop).end()
        line_of(counted)
        return end if end is not None else pos + 1

    def sizes(self, at: int) -> tuple[list[int] | None, int | None]:
        """The sizes of the items of the spans array at ``at`` and where it ends; None
        when it is no valid JSON, or nested too deeply for msgspec (its items are then
        read past one at a time), and its end too when msgspec does not find one."""
        view = self.view
        end = _pretty_end(self.data, at)  # (a guess: right when the array alone decodes)
        sizes = None if end is None else _item_sizes(view[at:end])
        if sizes is None:
            end = _value_end(view, at, len(view))
            sizes = None if end is None else _item_sizes(view[at:end])
        return sizes, end

    def skip(self, at: int) -> int:
        """Where the value at ``at`` ends, read past by msgspec (by its brackets, when
        nested too deeply for msgspec)."""
        end = _value_end(self.view, at, len(self.data))
        if end is None:
            end = _bracket_end(self.data, at)
            if end is None:
                raise _Lost
        return end


def _item_sizes(array: memoryview) -> list[int] | None:
    """The sizes of the items of ``array`` as written; None when it is not one JSON array
    that msgspec decodes."""
    try:
        return list(map(len, _LIST_OF_SPANS.decode(array)))
    except (msgspec.DecodeError, RecursionError):
        return None


def _unescaped(key: bytes) -> bytes:
    """A key written with escapes (``"sp\\u0061ns"``) as it reads; as written when it does not."""
    try:
        return _GENERIC.decode(b'"' + key + b'"').encode()
    except (msgspec.DecodeError, UnicodeEncodeError):
        return key


def _own_id(data: bytes, start: int, end: int) -> int:
    """Where the span object ``data[start:end]`` has its own ``spanId`` key (the first at
    its top level, not a link's), its start when none."""
    depth, at = 0, start + 1
    while (m := _SPAN_ID_KEY_RE.search(data, at, end)) is not None:
        key = m.start()
        if depth or data.find(b"{", at, key) >= 0 or data.find(b"[", at, key) >= 0:
            depth += _bracket_depth(data[at:key])  # (from outside strings: after a brace or a key)
        if depth == 0:
            return key
        at = m.end()
    return start


def _bracket_end(data: bytes, at: int) -> int | None:
    """Where the array or object at ``at`` ends, by its brackets (strings stepped over),
    whatever its depth; None when it does not, or none begins there."""
    if data[at] != _ARR and data[at] != _OBJ:
        return None  # (a closing bracket where a value should be: none ends after it)
    depth = 0
    for m in _BRACKET_RUN_RE.finditer(data, at):
        c, n = data[m.start()], m.end() - m.start()
        if c == 0x22:  # '"'
            continue
        if c == 0x5B or c == 0x7B:
            depth += n
        elif depth <= n:
            return m.start() + depth
        else:
            depth -= n
    return None


# A JSON string on one line, closed (what _bracket_depth leaves out), and a line's start
# that opens a value.
_STRING_RE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_OPENS = re.compile(rb"\s*[\[{]").match


def _continues(line: bytes, exc: Exception) -> bool:
    """Whether a line that is not JSON on its own (``exc``) may begin a value that the
    lines after it continue (a pretty-printed document among JSON Lines), or hold more
    than one (``}{``): it begins with a bracket, and its JSON is cut short or followed
    by more. (Asked only of lines that failed to decode.)"""
    return (
        type(exc) is msgspec.DecodeError  # (a syntax error: not a ValidationError, its subclass)
        and ("truncated" in str(exc) or _trailing_at(exc) is not None)
        and _OPENS(line) is not None
    )


def _begins_value(before: bytes, line: bytes) -> bool:
    """Whether a line that starts with ``{``, met while reading on a value not closed yet
    (see _continues), begins a value of its own (a JSON line, a pretty-printed document)
    rather than continuing it: it does unless the line before it ends with ``[`` or ``,``
    (where an array's element begins: written with ``indent=0``, a document's nested
    objects start at the first column too) and it is not JSON on its own. (Asked only
    of lines read on from a line that failed to decode.)"""
    if not before.rstrip().endswith((b"[", b",")):
        return True
    try:
        _SKIP.decode(line)
    except (msgspec.DecodeError, RecursionError):
        return False
    return True


def _bracket_depth(line: bytes) -> int:
    """How many more brackets a line of JSON opens than it closes, strings left out."""
    bare = _STRING_RE.sub(b"", line) if b'"' in line else line
    return bare.count(b"{") + bare.count(b"[") - bare.count(b"}") - bare.count(b"]")


def _leading_newlines(data: bytes, start: int, end: int) -> int:
    """Blank lines at the start of data[start:end] (the line a document begins on)."""
    i = start
    lines = 0
    while i < end and data[i] in b" \t\r\n":
        lines += data[i] == 10
        i += 1
    return lines


# -- read by the loader too ------------------------------------------------------------


# Generic decoding for the slow path: a float beyond double range (1e999) becomes inf
# instead of failing the whole line, so only the span that holds it is judged.
_GENERIC = msgspec.json.Decoder(float_hook=float)

# An escaped backslash, a valid surrogate pair, or an unpaired surrogate (group 1), left
# to right, so that JSON "\\ud800" (a backslash, then text) is never taken for an escape.
_SURROGATE_RE = re.compile(
    rb"\\\\|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|(\\u[dD][89a-fA-F][0-9a-fA-F]{2})"
)


def _fix_surrogate(m: re.Match[bytes]) -> bytes:
    return b"\\ufffd" if m.group(1) else m.group(0)


def _bad_utf8(exc: BaseException) -> bool:
    """Whether a decode failed on invalid UTF-8: msgspec raised UnicodeDecodeError for it
    before 0.23, a plain DecodeError since."""
    return isinstance(exc, UnicodeDecodeError) or (type(exc) is msgspec.DecodeError and "UTF-8" in str(exc))


_BYTE_RE = re.compile(r"\(byte (\d+)\)")


def _decode_error(exc: Exception) -> str:
    if _bad_utf8(exc):
        return "invalid UTF-8"
    text = str(exc)
    if "truncated" in text:
        return "truncated"
    return _clip(_BYTE_RE.sub("", text).replace("JSON is malformed: ", "").strip())


def _clip(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
