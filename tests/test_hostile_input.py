"""Hostile trace files: nothing ever escapes the loader, one warning per bad line, the rest analysed.

An outside team feeds ``flowmap check`` / ``flowmap report`` files built to break it. Each
case writes a real file (JSON Lines, pretty document, gzip, UTF-16...) next to good
lines and checks three things a user relies on: no exception escapes (only
``InputError`` when nothing at all is readable), exactly the good spans are analysed,
and each bad line gives one warning naming ``file:line`` that never echoes input values.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import random
import re
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import pytest

from flowmap import otlp
from flowmap.analysis import analyze
from flowmap.loading import LoadStats, iter_traces

BAD = "5b8efff798038103d269b633813fc60c"  # the trace of the lines that get broken
GOOD = "0af7651916cd43dd8448eb211c80319c"  # the trace that must survive next to them
SECRET = "acme-secret-tenant"  # a raw tenant id inside bad lines: never in a warning
FLOWMAP_BIN = Path(sys.executable).parent / "flowmap"


def sid(n: int) -> str:
    return f"{n:016x}"


def span(trace_id: str, n: int, parent: int | None = None, **extra) -> dict:
    out = {"traceId": trace_id, "spanId": sid(n), "name": "op", "kind": 1,
           "startTimeUnixNano": "1000", "endTimeUnixNano": 2000}
    if parent:
        out["parentSpanId"] = sid(parent)
    out.update(extra)
    return out


def traces_data(*spans: dict) -> dict:
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "app"}}]}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {"name": "t"}, "spans": list(spans)}]}]}


def line(*spans: dict) -> bytes:
    return json.dumps(traces_data(*spans)).encode()


def good_line(first: int = 1) -> bytes:
    """Two good spans of the GOOD trace (ids first, first+1)."""
    return line(span(GOOD, first, kind=2), span(GOOD, first + 1, parent=first))


def write(path: Path, *lines: bytes, end: bytes = b"\n") -> Path:
    path.write_bytes(b"".join(item + end for item in lines))
    return path


def load(*paths: Path):
    """(spans of each trace by id, warnings) after loading, and check every warning's form."""
    stats = LoadStats()
    warnings: list[str] = []
    traces = {t.trace_id: set(t.spans) for t in iter_traces([str(p) for p in paths], on_warning=warnings.append,
                                                             stats=stats)}
    for w in warnings:
        assert "\n" not in w and SECRET not in w and len(w) < 400, w
    return traces, warnings


def at(path: Path, lineno: int) -> str:
    return f"{path}:{lineno}: "


# -- the mutation fuzz -----------------------------------------------------------------

_ATTRS = [
    {"key": "http.request.method", "value": {"stringValue": "POST"}},
    {"key": "tenant_id", "value": {"stringValue": SECRET}},
    {"key": "n", "value": {"intValue": "5"}},
    {"key": "d", "value": {"doubleValue": 1.5}},
    {"key": "a", "value": {"arrayValue": {"values": [{"boolValue": True}, {"intValue": 7}]}}},
    {"key": "kv", "value": {"kvlistValue": {"values": [{"key": "x", "value": {"bytesValue": "AAE="}}]}}},
]
_VICTIM = line(
    span(BAD, 1, kind=2, attributes=_ATTRS[:2]),
    span(BAD, 2, parent=1, attributes=_ATTRS[2:], events=[{"name": "e", "timeUnixNano": "5"}]),
    span(BAD, 3, parent=1, links=[{"traceId": GOOD, "spanId": sid(1)}], status={"code": 2}),
)
_TOKENS = [
    b'"', b"{", b"}", b"[", b"]", b",", b":", b"null", b"true", b"1e999", b"-1", b'"\\u0000"', b'"\\ud800"',
    b'"\\udc00\\ud800"', b"\xff", b"\xc3", b"\x00", b"9" * 30, b"9" * 5000, b'"traceId"', b'{"stringValue":1}',
    b'{"arrayValue":{}}', b'{"kvlistValue":null}', b'""', b"\xef\xbb\xbf", b"\r\n", b"\r", b"[" * 3000,
    b'{"a":' * 2000, b'"\\u', b"\\", b'"SPAN_KIND_SERVER"', b'"99999999999999999999"',
]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        pos = rng.randrange(len(out))
        op = rng.random()
        if op < 0.4:
            out[pos : pos + rng.randint(1, 10)] = rng.choice(_TOKENS)
        elif op < 0.7:
            del out[pos : pos + rng.randint(1, 20)]
        else:
            out[pos:pos] = rng.choice(_TOKENS)
    return bytes(out)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mutation_fuzz_never_raises_and_keeps_the_good_line(tmp_path, seed):
    """400 mutated lines per seed (fixed): only warnings, never the last-resort guard."""
    rng = random.Random(seed)
    path = tmp_path / "fuzz.jsonl"
    for _ in range(400):
        mutated = _mutate(rng, _VICTIM)
        # newlines inside the mutation make more lines: the good line is always the last
        write(path, mutated, good_line())
        traces, warnings = load(path)
        assert traces[GOOD] == {sid(1), sid(2)}, mutated
        for w in warnings:
            assert re.match(rf"{re.escape(str(path))}:\d+: ", w), w
            assert "could not read this line" not in w, (w, mutated)  # every cause handled
        assert analyze([path], on_warning=lambda w: None).spans >= 2


# -- encodings: byte order marks, CRLF, UTF-16 -----------------------------------------


def pretty(doc: dict, newline: str = "\r\n") -> bytes:
    return json.dumps(doc, indent=2).replace("\n", newline).encode()


def test_bom_and_crlf_pretty_document_just_works(tmp_path):
    doc = traces_data(span(GOOD, 1, kind=2), span(GOOD, 2, parent=1))
    f = tmp_path / "windows.json"
    f.write_bytes(b"\xef\xbb\xbf" + pretty(doc) + b"\r\n")
    traces, warnings = load(f)
    assert traces == {GOOD: {sid(1), sid(2)}} and warnings == []


def test_bom_and_crlf_pretty_document_gzipped(tmp_path):
    f = tmp_path / "windows.json.gz"
    f.write_bytes(gzip.compress(b"\xef\xbb\xbf" + pretty(traces_data(span(GOOD, 1)))))
    traces, warnings = load(f)
    assert traces == {GOOD: {sid(1)}} and warnings == []


def test_bom_on_json_lines_with_crlf(tmp_path):
    f = tmp_path / "a.jsonl"
    f.write_bytes(b"\xef\xbb\xbf" + good_line(1) + b"\r\n" + good_line(3) + b"\r\n")
    traces, warnings = load(f)
    assert traces == {GOOD: {sid(1), sid(2), sid(3), sid(4)}} and warnings == []


def test_bom_at_the_start_of_a_later_line_from_joined_files(tmp_path):
    f = write(tmp_path / "joined.jsonl", good_line(1), b"\xef\xbb\xbf" + good_line(3))
    traces, warnings = load(f)
    assert traces == {GOOD: {sid(1), sid(2), sid(3), sid(4)}} and warnings == []


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be-with-bom"])
def test_utf16_files_are_read(tmp_path, encoding):
    text = (good_line(1) + b"\r\n" + good_line(3) + b"\r\n").decode()
    data = b"\xfe\xff" + text.encode("utf-16-be") if encoding.endswith("bom") else text.encode("utf-16")
    f = tmp_path / "powershell.jsonl"
    f.write_bytes(data)
    traces, warnings = load(f)
    assert traces == {GOOD: {sid(1), sid(2), sid(3), sid(4)}} and warnings == []


# -- nesting -------------------------------------------------------------------------------

DEEP = b'{"resourceSpans":' + b"[" * 100_000 + b"]" * 100_000 + b"}"


def test_deep_nesting_as_the_first_line_scan_pass(tmp_path):
    f = write(tmp_path / "a.jsonl", DEEP, good_line())
    traces, warnings = load(f)
    assert traces == {GOOD: {sid(1), sid(2)}}
    # emptied below the depth cap, the line is lists, not resource spans: one warning
    assert len(warnings) == 1 and warnings[0].startswith(at(f, 1) + "resourceSpans[0] is not an object"), warnings


def test_deep_nesting_unclosed_in_a_later_line(tmp_path):
    f = write(tmp_path / "a.jsonl", good_line(1), b'{"resourceSpans":' + b"[" * 100_000, good_line(3))
    traces, warnings = load(f)
    assert traces == {GOOD: {sid(1), sid(2), sid(3), sid(4)}}
    # its brackets never close: cut short, once what nests too deep is emptied
    assert warnings == [at(f, 2) + "invalid JSON (truncated); line skipped (and 1 more problem on this line)"]


def test_deep_nesting_in_a_pretty_document(tmp_path):
    f = tmp_path / "deep.json"
    f.write_bytes(b"{\n" + DEEP[1:])
    good = write(tmp_path / "good.jsonl", good_line())
    traces, warnings = load(f, good)
    assert traces == {GOOD: {sid(1), sid(2)}}
    assert len(warnings) == 1 and warnings[0].startswith(at(f, 1) + "resourceSpans[0] is not an object"), warnings


def _nested_value(depth: int) -> str:
    return '{"arrayValue":{"values":[' * depth + '{"stringValue":"x"}' + "]}}" * depth


def _line_with_value(trace_id: str, value: str) -> bytes:
    head = json.dumps(traces_data(span(trace_id, 1, attributes=[{"key": "deep", "value": {"stringValue": "@"}}])))
    return head.replace('{"stringValue": "@"}', value).encode()


def test_deep_attribute_values_load_or_are_emptied_never_raise(tmp_path):
    shallow = _line_with_value(BAD, _nested_value(50))
    f = write(tmp_path / "a.jsonl", shallow, _line_with_value("1" * 32, _nested_value(5000)), good_line())
    traces, warnings = load(f)
    # the 5,000-deep value is emptied below the cap: its span (and its line's others) kept
    assert traces == {BAD: {sid(1)}, "1" * 32: {sid(1)}, GOOD: {sid(1), sid(2)}}
    assert warnings == [at(f, 2) + "arrays and objects nested more than 256 levels deep emptied"]
    analysis = analyze([f], on_warning=lambda w: None)  # the analysis walks the 50 and 85 levels too
    assert analysis.spans == 4


def _emptied_reference(data: bytes, limit: int) -> bytes | None:
    """emptied_below written a character at a time: what the real one must equal."""
    out = bytearray()
    depth, in_string, escaped = 0, False, False
    for byte in data:
        ch = bytes([byte])
        if in_string:
            in_string = not (ch == b'"' and not escaped)
            escaped = ch == b"\\" and not escaped
        elif ch in b"[{":
            depth += 1
            if depth <= limit + 1:
                out += ch
            continue
        elif ch in b"]}":
            depth -= 1
            if depth < 0:
                return None
            if depth <= limit:
                out += ch
            continue
        elif ch == b'"':
            in_string, escaped = True, False
        if depth <= limit:
            out += ch
    return bytes(out)


@pytest.mark.parametrize(("damaged", "placed"), [
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": "a"}, }]}]}', {(0, 0, "scopeSpans", 0): [1]}),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": "a"}, 1 }]}]}', {(0, 0, "scopeSpans", 0): [1, 1]}),
    (b'{"resourceSpans": [}', {}),
    (b'[{"resourceSpans": []}, }]', {}),
])
def test_span_lines_of_damaged_json_keeps_what_it_placed_and_returns(damaged, placed):
    """documents.span_lines leaves out what it cannot place (damage); a closing bracket
    where a value should be was taken for a value ending where it began, and the walk
    stood still there for ever. (Run apart: on failure it does not return.)"""
    code = "import sys; from flowmap.documents import span_lines; print(span_lines(sys.stdin.buffer.read()))"
    proc = subprocess.run([sys.executable, "-c", code], input=damaged, capture_output=True, timeout=20, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().strip() == repr(placed)


def test_span_lines_steps_over_a_long_key_around_the_spans():
    """A key of 16 MiB beside a document's resourceSpans (an unknown field): the spans
    after it are still placed. (Its time, a regex step a character before, a run of them
    now: benchmarks/hostile_scaling.py doc-key.)"""
    from flowmap.documents import span_lines

    data = b'{"' + b"k" * (16 << 20) + b'": 1,\n"resourceSpans": [{"scopeSpans": [{"spans": [\n{"spanId": "a"}]}]}]}'
    assert span_lines(data) == {(0, 0, "scopeSpans", 0): [3]}


class _Documents:
    """Random TracesData documents, each span with exactly one ``spanId`` key and no
    links, written in the layouts documents come in (json.dumps and jq indents, compact,
    tabs, CRLF, odd separators) with what surrounds the spans (resource, scope,
    schemaUrl, unknown members with values of any kind, size and depth, keys written
    with escapes, both names of the scope spans, empty arrays): what span_lines must
    place, found independently of it (see expected)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.spans = 0
        self.plain = False  # (a document as exporters write them: no escaped keys, no deep values)

    def value(self, depth: int = 0) -> object:
        rng = self.rng
        kind = rng.random()
        if kind < 0.35 or depth > 40 or (self.plain and depth > 4):
            return rng.choice([0, -7, 2.5e-3, 1e300, 10**30, True, False, None, "", "app", "é ü", 'q"uo\\te',
                               "[{", "}]", "tab\t", "\u2028", "https://opentelemetry.io/schemas/1.21.0"])
        if kind < 0.4:
            return "x" * rng.choice([10, 9000])  # (a value longer than a guess looks)
        if kind < 0.7:
            return [self.value(depth + 1) for _ in range(rng.randint(0, 3))]
        if kind < 0.75 and not self.plain:  # (deeper than a regex follows)
            return functools_reduce_nest(rng.randint(10, 30), self.value(depth + 30))
        return {rng.choice(["key", "value", "name", "attributes", "x y", "ü"]): self.value(depth + 1)
                for _ in range(rng.randint(0, 3))}

    def members(self, path: tuple[str, list]) -> list[tuple[str, object]]:
        rng = self.rng
        out = [(rng.choice(["resource", "scope", "schemaUrl", "droppedAttributesCount", "unknown"]), self.value())
               for _ in range(rng.choice([0, 1, 1, 2, 3]))]
        out.insert(rng.randint(0, len(out)), path)
        return out

    def span(self) -> list[tuple[str, object]]:
        self.spans += 1
        fields = [("traceId", "0af7651916cd43dd8448eb211c80319c"), ("name", "op"), ("kind", 1),
                  ("attributes", [{"key": "k", "value": {"stringValue": self.value()}}])]
        fields.insert(self.rng.randint(0, len(fields)), ("spanId", f"{self.spans:016x}"))
        return fields

    def document(self, t: int, places: dict) -> list:
        rng = self.rng
        items = []
        for r in range(rng.choice([1, 1, 1, 2, 3])):
            name = rng.choice(["scopeSpans", "scopeSpans", "instrumentationLibrarySpans"])
            scopes = []
            for j in range(rng.choice([0, 1, 1, 1, 2, 3])):
                spans = [self.span() for _ in range(rng.choice([0, 1, 1, 2, 3, 12]))]
                places[(t, r, name, j)] = len(spans)
                scopes.append(self.members(("spans", spans)))
            items.append(self.members((name, scopes)))
        return self.members(("resourceSpans", items))

    def write(self, value: object, indent: str | None, level: int = 0) -> str:
        rng = self.rng
        pretty = indent is not None
        newline, comma = ("\n", ",") if pretty else ("", rng.choice([",", ", "]))
        inner, outer = (indent * (level + 1), indent * level) if pretty else ("", "")
        if isinstance(value, list) and value and all(isinstance(m, tuple) for m in value):  # an object's members
            parts = [inner + self.key(k) + rng.choice([": ", ":", " : "]) + self.write(v, indent, level + 1)
                     for k, v in value]
            return "{" + newline + (comma + newline).join(parts) + newline + outer + "}"
        if isinstance(value, dict):
            return self.write(list(value.items()), indent, level) if value else "{}"
        if isinstance(value, list) and value:
            parts = [inner + self.write(v, indent, level + 1) for v in value]
            return "[" + newline + (comma + newline).join(parts) + newline + outer + "]"
        return json.dumps(value, ensure_ascii=rng.random() < 0.5)

    def key(self, key: str) -> str:
        if key != "spanId" and not self.plain and self.rng.random() < 0.05:  # (escapes: as the decoders read it)
            return '"' + "".join(f"\\u{ord(c):04x}" if c in "Sa" else c for c in key) + '"'
        return json.dumps(key)


def functools_reduce_nest(depth: int, inner: object) -> object:
    for _ in range(depth):
        inner = [inner]
    return inner


@pytest.mark.parametrize("seed", range(6))
def test_span_lines_places_each_span_at_its_own_id_in_documents_of_any_layout(seed):
    """span_lines reads the layout json.dumps and jq write by a regex a level, anything
    else a member at a time: either way each span is placed at its own spanId key's line,
    by scope and index, and nothing else is placed."""
    from flowmap.documents import span_lines

    docs = _Documents(seed)
    for _ in range(60):
        places: dict = {}
        docs.plain = docs.rng.random() < 0.5
        many = docs.rng.random() < 0.15  # (an array of TracesData)
        trees = [docs.document(t, places) for t in range(docs.rng.choice([0, 1, 2]) if many else 1)]
        indent = docs.rng.choice([None, "  ", "  ", "  ", "    ", "\t", ""])
        text = "[" + ",\n".join(docs.write(tree, indent) for tree in trees) + "]" if many else docs.write(trees[0], indent)
        data = (docs.rng.choice(["", "\n\n", "  "]) + text + "\n").encode()
        if docs.rng.random() < 0.1:
            data = data.replace(b"\n", b"\r\n")
        first = docs.rng.randint(1, 99)
        ids = iter(first + data.count(b"\n", 0, m.start()) for m in re.finditer(rb'"spanId"\s*:', data))
        expected = {place: [next(ids) for _ in range(n)] for place, n in places.items()}
        assert next(ids, None) is None
        assert span_lines(data, first) == expected, data[:2000]


def test_emptying_deep_values_keeps_exactly_what_is_not_too_deep():
    """Brackets in strings, escaped quotes, unterminated strings and cuts, at many depths."""
    from flowmap.documents import emptied_below

    rng = random.Random(24)
    pieces = [b"[", b"]", b"{", b"}", b'"', b"\\", b"a", b",", b":", b" ", "é".encode(), b"[[[[", b"]]]]", b'"[x]"']
    for _ in range(4000):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 60)))
        for limit in (0, 1, 2, 5):
            assert emptied_below(data, limit) == _emptied_reference(data, limit), (data, limit)


def test_a_bracket_bomb_beside_spans_costs_only_itself(tmp_path):
    bomb = "[" * 400_000 + "]" * 400_000  # (emptied a run of brackets at a time)
    batch = traces_data(*[span(GOOD, i, attributes=[{"key": "v", "value": {"stringValue": f"@{i}"}}]) for i in (1, 2)])
    data = json.dumps(batch).replace('{"stringValue": "@2"}', '{"arrayValue": {"values": [{"intValue": 1}]}, "x": %s}'
                                     % bomb).encode()
    f = write(tmp_path / "a.jsonl", data)
    traces, warnings = load(f)
    assert traces == {GOOD: {sid(1), sid(2)}}
    assert warnings == [at(f, 1) + "arrays and objects nested more than 256 levels deep emptied"]


def test_a_deep_value_costs_neither_its_span_nor_the_other_spans_of_its_batch(tmp_path):
    """An exporter's line holds hundreds of spans: one hostile attribute must not hide them."""
    batch = traces_data(*[span(GOOD, i, attributes=[{"key": "v", "value": {"stringValue": f"@{i}"}}]) for i in (1, 2, 3)])
    line = json.dumps(batch).replace('{"stringValue": "@2"}', _nested_value(3000)).encode()
    f = write(tmp_path / "a.jsonl", line)
    traces, warnings = load(f)
    assert traces == {GOOD: {sid(1), sid(2), sid(3)}}
    assert warnings == [at(f, 1) + "arrays and objects nested more than 256 levels deep emptied"]
    [trace] = iter_traces([f], on_warning=lambda w: None)
    assert trace.spans[sid(1)].attributes["v"] == "@1" and trace.spans[sid(3)].attributes["v"] == "@3"
    assert isinstance(trace.spans[sid(2)].attributes["v"], list)  # what is left of the deep value


@pytest.mark.parametrize("layout", ["json lines", "pretty documents"])
def test_a_deep_value_on_a_line_with_escaped_ids_does_not_close_its_trace_early(tmp_path, layout):
    """The scan decodes a line whose ids are written with \\u escapes to find them: with a
    value nested too deep it found none, so the trace closed before that line, whose spans
    (kept by the deep repair) came as a second part of it ("continues after it was complete")."""
    first = traces_data(span(GOOD, 1, kind=2))
    second = traces_data(span(GOOD, 2, parent=1, attributes=[{"key": "deep", "value": {"stringValue": "@"}}]))
    indent = None if layout == "json lines" else 2
    docs = [json.dumps(doc, indent=indent) for doc in (first, second)]
    docs[1] = re.sub(r'\{\s*"stringValue": "@"\s*\}', _nested_value(2000), docs[1])
    docs[1] = docs[1].replace(f'"traceId": "{GOOD}"', f'"traceId": "\\u0030{GOOD[1:]}"')
    assert "\\u0030" in docs[1] and _nested_value(2000) in docs[1]
    f = write(tmp_path / "a.json", *(d.encode() for d in docs))
    traces, warnings = load(f)
    assert traces == {GOOD: {sid(1), sid(2)}}
    second_at = 2 if layout == "json lines" else docs[0].count("\n") + 2
    assert warnings == [at(f, second_at) + "arrays and objects nested more than 256 levels deep emptied"]


def test_json_lines_with_deep_values_after_a_broken_first_line_are_read_as_lines(tmp_path):
    """A broken first line makes the scan look at the next lines for JSON Lines records; one
    with a value nested too deep did not count, so a file whose next lines all had one was
    taken for pretty documents: read into memory whole, a later broken line warned about
    as damage after a document."""
    deep = [_line_with_value(_trace_of(i), _nested_value(400)) for i in range(19)]
    rest = [line(span(_trace_of(i), 1)) for i in range(19, 40)]
    f = write(tmp_path / "a.jsonl", b'{"a": 1,', *deep, b'{"resourceSpans": [}', *rest)
    traces, warnings = load(f)
    assert traces == {_trace_of(i): {sid(1)} for i in range(40)}
    assert len(warnings) == 21 and warnings[0].startswith(at(f, 1))
    assert warnings[20] == at(f, 21) + "invalid JSON (invalid character); line skipped"


def _kvlist(**items) -> dict:
    return {"kvlistValue": {"values": [{"key": k, "value": v} for k, v in items.items()]}}


@pytest.mark.parametrize("document", [False, True])
def test_a_map_value_whose_key_is_written_with_escapes_is_looked_into(tmp_path, document):
    """Only data holding the key kvlistValue is looked at for map values, span by span:
    the key spelled with \\u escapes, which JSON allows, must not hide one."""
    message = _found_once_written_with_escapes(
        tmp_path, document, "request", _kvlist(tenant_id={"stringValue": SECRET}),
        ('"kvlistValue"', '"kvlist\\u0056alue"'))
    assert "'request.tenant_id'" in message


def _found_once_written_with_escapes(tmp_path, document, key, value, escape):
    """The tenant-in-telemetry message of a span whose attribute ``key`` holds ``value``, in
    a file (JSON Lines, or a pretty document) where ``escape`` (old, new) respells every
    ``old``; a trace before it has the same names, its value plain (names known plain
    must clear no value holding names)."""
    text = json.dumps(traces_data(
        span(BAD, 1, kind=2, attributes=[{"key": key, "value": {"stringValue": "GET /x"}}]),
        span(GOOD, 1, kind=2, attributes=[{"key": key, "value": value}]),
    ), indent=2 if document else None)
    old, new = escape
    escaped = text.replace(old, new)
    assert old not in escaped
    f = tmp_path / ("t.json" if document else "t.jsonl")
    f.write_text(escaped + "\n")
    [finding] = [x for x in analyze([f]).findings if x.rule == "tenant-in-telemetry"]
    return finding.message


def test_huge_and_deep_map_values_are_looked_into_boundedly(tmp_path):
    """A map of 20,000 keys and maps 100 levels deep (hostile input) are looked into to a
    bounded size and depth: the analysis ends, and a tenant key near the top is still found."""
    wide = _kvlist(**{f"k{i}": _kvlist(v={"stringValue": "x"}) for i in range(20_000)})
    deep = {"stringValue": "x"}
    for _ in range(100):
        deep = _kvlist(next=deep)
    attrs = [{"key": "wide", "value": wide}, {"key": "deep", "value": deep},
             {"key": "request", "value": _kvlist(user=_kvlist(org_id={"stringValue": SECRET}))}]
    f = write(tmp_path / "t.jsonl", line(span(GOOD, 1, kind=2, attributes=attrs)))
    [finding] = [x for x in analyze([f]).findings if x.rule == "tenant-in-telemetry"]
    assert "'request.user.org_id'" in finding.message


@pytest.mark.parametrize("document", [False, True])
def test_json_text_whose_quotes_are_written_with_escapes_is_looked_into(tmp_path, document):
    """Only data with a backslash is looked at for JSON text, span by span (a quote inside a
    JSON string is written \\" or \\u0022): the second form must not hide one either."""
    message = _found_once_written_with_escapes(
        tmp_path, document, "body", {"stringValue": json.dumps({"org_id": SECRET})}, ('\\"', "\\u0022"))
    assert "'body → org_id'" in message


def test_huge_and_deep_json_text_and_long_queries_are_looked_into_boundedly(tmp_path):
    """JSON text of 2,000 keys, nested 30,000 levels deep, encoded 10 times over, and a
    query of 20,000 parameters (hostile input) are looked into to a bounded size and depth:
    the analysis ends, and tenant keys near the top are still found."""
    wide = json.dumps({f"tenant_{i}": {"v": "x"} for i in range(2_000)})
    deep = "[" * 30_000 + "]" * 30_000
    twice = {"org_id": SECRET}
    for _ in range(10):
        twice = {"input": json.dumps(twice)}
    twice = json.dumps(twice)
    query = f"tenant_id={SECRET}&" + "&".join(f"org_id{i}=x" for i in range(20_000))
    attrs = [{"key": k, "value": {"stringValue": v}} for k, v in [
        ("wide", wide), ("deep", deep), ("twice", twice), ("url.query", query[:60_000]),
        ("body", json.dumps({"user": {"org_id": SECRET}, "rest": wide})),
    ]]
    f = write(tmp_path / "t.jsonl", line(span(GOOD, 1, kind=2, attributes=attrs)))
    [finding] = [x for x in analyze([f]).findings if x.rule == "tenant-in-telemetry"]
    assert "'body → user.org_id'" in finding.message and "'url.query → tenant_id'" in finding.message
    assert "twice" not in finding.message  # below the depth looked into


# -- lines that are JSON but not an object ----------------------------------------------


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        pytest.param(b"[1, 2, 3]", "3 of 3 array items are not OTLP TracesData objects", id="array-of-numbers"),
        pytest.param(b"[]", "not an OTLP TracesData object (an empty array)", id="empty-array"),
        pytest.param(b'"resourceSpans"', "not an OTLP TracesData object", id="string"),
        pytest.param(b"42", "not an OTLP TracesData object", id="number"),
        pytest.param(b"1e999", "not an OTLP TracesData object", id="number-out-of-range"),
        pytest.param(b"null", "not an OTLP TracesData object", id="null"),
        pytest.param(b"true", "not an OTLP TracesData object", id="bool"),
        pytest.param(b'{"resourceSpans": [1, "x"]}', "resourceSpans[0] is not an object", id="rs-items"),
    ],
)
def test_json_that_is_not_an_object_one_warning(tmp_path, bad, needle):
    f = write(tmp_path / "a.jsonl", good_line(1), bad, good_line(3))
    traces, warnings = load(f)
    assert traces == {GOOD: {sid(1), sid(2), sid(3), sid(4)}}
    assert len(warnings) == 1 and warnings[0].startswith(at(f, 2)) and needle in warnings[0], warnings


def test_array_of_traces_data_is_read_with_one_warning_for_the_rest(tmp_path):
    f = write(tmp_path / "a.jsonl", b"[" + good_line(1) + b', 7, "x"]')
    traces, warnings = load(f)
    assert traces == {GOOD: {sid(1), sid(2)}}
    assert warnings == [at(f, 1) + "2 of 3 array items are not OTLP TracesData objects; skipped"]


# -- bytes and escapes -----------------------------------------------------------------


def test_nul_bytes(tmp_path):
    raw_nul = line(span(BAD, 1)).replace(b'"op"', b'"o\x00p"')
    escaped = line(span(BAD, 2, name="o\u0000p", attributes=[{"key": "k", "value": {"stringValue": "\u0000"}}]))
    f = write(tmp_path / "a.jsonl", raw_nul, escaped, b"\x00" * 100, good_line())
    traces, warnings = load(f)
    assert traces == {BAD: {sid(2)}, GOOD: {sid(1), sid(2)}}  # an escaped NUL is valid JSON
    assert [w.split(": ")[0] for w in warnings] == [f"{f}:1", f"{f}:3"]
    assert all("invalid JSON" in w for w in warnings)


def test_unpaired_surrogates_replaced_with_one_warning(tmp_path):
    lone = line(span(BAD, 1, name="@")).replace(b'"@"', b'"a\\ud800b"')
    low_first = line(span(BAD, 2, name="@")).replace(b'"@"', b'"\\udc00\\ud800"')
    pair = line(span(BAD, 3, name="@")).replace(b'"@"', b'"\\ud83d\\ude00"')  # a valid pair: no warning
    text = line(span(BAD, 4, name="@")).replace(b'"@"', b'"\\\\ud800"')  # a backslash, then text
    # behind a validation error: the generic decode meets the surrogate, not the typed one
    late = line(span(BAD, 5, name=42), span(BAD, 6, name="@")).replace(b'"@"', b'"\\ud800"')
    f = write(tmp_path / "a.jsonl", lone, low_first, pair, text, late, good_line())
    names = {}
    warnings: list[str] = []
    for t in iter_traces([f], on_warning=warnings.append):
        if t.trace_id == BAD:
            names = {s.span_id: s.name for s in t.spans.values()}
    assert names[sid(1)] == "a\ufffdb" and names[sid(2)] == "\ufffd\ufffd"
    assert names[sid(3)] == "\U0001f600" and names[sid(4)] == "\\ud800" and names[sid(6)] == "\ufffd"
    assert sid(5) not in names
    assert warnings == [
        at(f, 1) + "invalid \\u escapes (unpaired UTF-16 surrogates) replaced",
        at(f, 2) + "invalid \\u escapes (unpaired UTF-16 surrogates) replaced",
        # one line, two problems: the one that lost a span is the warning, the other counted
        at(f, 5) + "resourceSpans[0].scopeSpans[0].spans[0] skipped: Expected `str`, got `int` - at `$.name` "
        "(and 1 more problem on this line)",
    ]
    for value in names.values():
        value.encode("utf-8")  # every name can be written out


def test_invalid_utf8_after_a_validation_error(tmp_path):
    bad = line(span(BAD, 1, name=42), span(BAD, 2, name="caf@")).replace(b"@", b"\xff")
    f = write(tmp_path / "a.jsonl", bad, good_line())
    traces, warnings = load(f)
    assert traces == {BAD: {sid(2)}, GOOD: {sid(1), sid(2)}}
    assert warnings == [at(f, 1) + "resourceSpans[0].scopeSpans[0].spans[0] skipped: Expected `str`, got `int` - at "
                        "`$.name` (and 1 more problem on this line)"]


def test_many_broken_spans_on_one_line_are_one_warning(tmp_path):
    bad = line(*[span(BAD, i, traceId="nope") for i in range(1, 501)], span(BAD, 501))
    f = write(tmp_path / "a.jsonl", bad, b"[" + b"1, " * 1000 + b"1]", good_line())
    traces, warnings = load(f)
    assert traces == {BAD: {sid(501)}, GOOD: {sid(1), sid(2)}}
    assert warnings == [
        at(f, 1) + "span skipped: missing or invalid trace id (need 32 hex digits, not all zero) "
        "(and 499 more problems on this line)",
        at(f, 2) + "1001 of 1001 array items are not OTLP TracesData objects; skipped",
    ]


# -- numbers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        pytest.param("traceId", 10**40, "got `int` - at `$.traceId`", id="trace-id-huge-number"),
        pytest.param("spanId", 10**40, "got `int` - at `$.spanId`", id="span-id-huge-number"),
        pytest.param("kind", 10**12, "kind", id="kind-huge"),
        pytest.param("kind", "9" * 5000, "kind or status code", id="kind-5000-digit-string"),
    ],
)
def test_huge_numbers_skip_their_span_only(tmp_path, field, value, needle):
    bad = line(span(BAD, 1), span(BAD, 2, **{field: value}))
    f = write(tmp_path / "a.jsonl", bad, good_line())
    traces, warnings = load(f)
    assert traces == {BAD: {sid(1)}, GOOD: {sid(1), sid(2)}}
    assert len(warnings) == 1 and warnings[0].startswith(at(f, 1)) and needle in warnings[0], warnings
    if len(str(value)) >= 10:
        assert str(value)[-10:] not in warnings[0]  # the value is never echoed


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(str(2**64), id="intvalue-string"),
        pytest.param(2**63, id="intvalue-number"),
        pytest.param("-" + str(2**63 + 1), id="intvalue-negative"),
    ],
)
def test_huge_int_attribute_drops_only_that_attribute(tmp_path, value):
    """An intValue beyond int64: the attribute is dropped, named by its key; the span stays."""
    attrs = [{"key": "tenant_id", "value": {"stringValue": SECRET}},
             {"key": "retry.count", "value": {"intValue": value}},
             {"key": "kept", "value": {"stringValue": "yes"}}]
    bad = line(span(BAD, 1), span(BAD, 2, parent=1, attributes=attrs))
    f = write(tmp_path / "a.jsonl", bad, good_line())
    kept = {}
    warnings: list[str] = []
    for t in iter_traces([f], on_warning=warnings.append):
        kept.update({s.span_id: s.attributes for s in t.spans.values() if t.trace_id == BAD})
    assert kept[sid(2)] == {"tenant_id": SECRET, "kept": "yes"}
    assert warnings == [at(f, 1) + 'resourceSpans[0].scopeSpans[0].spans[1]: attribute "retry.count" dropped '
                        "(Expected `int` " + ("<=" if value != "-" + str(2**63 + 1) else ">=")
                        + f" {2**63 - 1 if value != '-' + str(2**63 + 1) else -(2**63)} - at `$.value.intValue`)"]
    assert str(value)[-10:] not in warnings[0] and SECRET not in warnings[0]


def test_number_too_long_for_any_decoder_skips_the_line(tmp_path):
    bad = line(span(BAD, 1), span(BAD, 2, startTimeUnixNano=0))
    bad = bad.replace(b'"startTimeUnixNano": 0', b'"startTimeUnixNano": ' + b"9" * 5000)  # > 4300 digits
    f = write(tmp_path / "a.jsonl", bad, good_line())
    traces, warnings = load(f)
    assert traces == {GOOD: {sid(1), sid(2)}}
    assert len(warnings) == 1 and warnings[0].startswith(at(f, 1) + "number out of range (Integer value out of range")
    assert "9999" not in warnings[0]


def test_1e999_double_is_infinity_and_kept(tmp_path):
    bad = line(span(BAD, 1, attributes=[{"key": "d", "value": {"doubleValue": "@"}}])).replace(b'"@"', b"1e999")
    f = write(tmp_path / "a.jsonl", bad, good_line())
    attrs = {}
    warnings: list[str] = []
    for t in iter_traces([f], on_warning=warnings.append):
        attrs.update({s.span_id: s.attributes for s in t.spans.values() if t.trace_id == BAD})
    assert attrs[sid(1)]["d"] == float("inf") and warnings == []


# -- size ---------------------------------------------------------------------------------


def test_five_megabyte_attribute_value_truncated_not_echoed(tmp_path):
    value = SECRET + "x" * 5_000_000
    f = write(tmp_path / "a.jsonl", line(span(BAD, 1, attributes=[{"key": "prompt", "value": {"stringValue": value}}])),
              good_line())
    kept = {}
    warnings: list[str] = []
    for t in iter_traces([f], on_warning=warnings.append):
        kept.update({s.span_id: s.attributes for s in t.spans.values() if t.trace_id == BAD})
    assert len(kept[sid(1)]["prompt"]) == otlp.MAX_VALUE_CHARS
    assert len(warnings) == 1 and warnings[0].startswith(at(f, 1)) and "truncated" in warnings[0]
    assert SECRET not in warnings[0]


@pytest.mark.parametrize("shape", ["chain", "wide", "loop"])
def test_one_trace_of_100k_spans(tmp_path, shape):
    """No recursion anywhere: a 100,000-deep parent chain, a 100,000-wide fan-out, a 100,000-span cycle."""
    n = 100_000
    if shape == "chain":
        spans = [span(GOOD, i, parent=i - 1 if i > 1 else None) for i in range(1, n + 1)]
    elif shape == "wide":
        spans = [span(GOOD, i, parent=1 if i > 1 else None) for i in range(1, n + 1)]
    else:
        spans = [span(GOOD, i, parent=i % n + 1) for i in range(1, n + 1)]
    f = write(tmp_path / "big.jsonl", line(*spans))
    traces, _ = load(f)
    assert len(traces[GOOD]) == n
    analysis = analyze([f], on_warning=lambda w: None)
    assert analysis.spans == n and analysis.traces == 1


# -- files ---------------------------------------------------------------------------------


def test_a_directory_warns_and_a_pipe_is_read_once_into_a_copy(tmp_path):
    """A named pipe — what `flowmap check <(zcat traces.jsonl.gz)` or a piped /dev/stdin
    gives — was skipped as "not a regular file"; it is read once into a private copy
    (the loader reads its input twice), as `-` is, and the copy removed afterwards."""
    import glob
    import threading

    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    other = "0af7651916cd43dd8448eb211c80319d"

    def writer():
        with open(fifo, "wb") as w:
            w.write(line(span(other, 1)) + b"\n")

    threading.Thread(target=writer, daemon=True).start()
    good = write(tmp_path / "good.jsonl", good_line())
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "flowmap-pipe-*")))
    traces, warnings = load(tmp_path, fifo, good)
    assert traces == {GOOD: {sid(1), sid(2)}, other: {sid(1)}}
    assert warnings == [f"{tmp_path}: is a directory, not a trace file"]
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "flowmap-pipe-*"))) == before


def test_unreadable_file_warns_and_the_rest_is_read():
    """chmod 000. As root the permission bits do not stop a read, so the load then runs
    with the effective user id of nobody: the real permission check, not a simulation."""
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o755)
        locked = write(Path(d) / "locked.jsonl", line(span(BAD, 1)))
        good = write(Path(d) / "good.jsonl", good_line())
        locked.chmod(0)
        good.chmod(0o644)
        as_root = os.access(locked, os.R_OK)
        if as_root:
            os.seteuid(65534)
        try:
            assert not os.access(locked, os.R_OK, effective_ids=True)
            traces, warnings = load(locked, good)
        finally:
            if as_root:
                os.seteuid(0)
    assert traces == {GOOD: {sid(1), sid(2)}}
    assert warnings == [f"{locked}: cannot be read (Permission denied)"]


def _gzipped_lines(n: int) -> bytes:
    return gzip.compress(b"".join(line(span(BAD, i)) + b"\n" for i in range(1, n + 1)))


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        pytest.param("cut.jsonl.gz", lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param("noisy.jsonl.gz", lambda data: data[:10] + bytes(range(256)) * 4, id="corrupt-after-header"),
        pytest.param("header.jsonl.gz", lambda data: data[:12], id="header-only"),
        pytest.param("crc.jsonl.gz", lambda data: data[:-8] + b"\0" * 8, id="bad-checksum"),
    ],
)
def test_damaged_gzip_one_warning_and_the_rest_is_read(tmp_path, name, damage):
    f = tmp_path / name
    f.write_bytes(damage(_gzipped_lines(3000)))
    good = write(tmp_path / "good.jsonl", good_line())
    traces, warnings = load(f, good)
    assert traces[GOOD] == {sid(1), sid(2)}
    assert len(warnings) == 1 and warnings[0].startswith(f"{f}:")
    assert "compressed data is corrupt or truncated" in warnings[0]


def _gzip_cut(data: bytes, at: int) -> bytes:
    """``data`` gzipped and cut short where its byte ``at`` begins (a writer killed there):
    what comes before decompresses whole."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb") as gz:
        gz.write(data[:at])
        gz.flush(zlib.Z_FULL_FLUSH)  # everything so far decompresses on its own
        end = out.tell()
        gz.write(data[at:])
    return out.getvalue()[:end]


def test_truncated_gzip_keeps_the_complete_spans_of_the_line_it_cut(tmp_path):
    """A writer killed mid-batch leaves a .gz whose last line is cut: its complete spans
    are kept, as a cut line of plain JSON Lines keeps them (the gzip reader raised before
    handing over that line, so all of its spans were lost), with one warning naming it."""
    batches = [line(*(span(_trace_of(i), k) for k in range(1, 51))) + b"\n" for i in range(4)]
    cut_line = batches[3]
    keep = cut_line.index(b'"spanId": "%s"' % sid(31).encode())  # inside span 31: 30 before it complete
    f = tmp_path / "killed.jsonl.gz"
    f.write_bytes(_gzip_cut(b"".join(batches[:3]) + cut_line, len(b"".join(batches[:3])) + keep))
    good = write(tmp_path / "good.jsonl", good_line())
    traces, warnings = load(f, good)
    assert traces[GOOD] == {sid(1), sid(2)}
    assert all(traces[_trace_of(i)] == {sid(k) for k in range(1, 51)} for i in range(3))
    assert traces[_trace_of(3)] == {sid(k) for k in range(1, 31)}
    assert warnings == [f"{f}:4: compressed data is corrupt or truncated (EOFError); 30 complete spans before it "
                        "kept, rest of file skipped"]
    # its traces are analysed with the file, not held to the end of the input
    order = [t.trace_id for t in iter_traces([str(f), str(good)], on_warning=lambda w: None)]
    assert order.index(_trace_of(3)) < order.index(GOOD)


def _cut_after_a_deep_value(cut_in: str) -> tuple[bytes, int]:
    """A line of five spans, the first with a value nested too deep for the decoders, and
    where to cut it: in the fourth span (three complete before it, the deep one too), or
    deep inside the value nested too deep (none complete before it)."""
    spans = [span(BAD, k, attributes=[{"key": "v", "value": {"stringValue": f"@{k}"}}]) for k in range(1, 6)]
    data = line(*spans).replace(b'{"stringValue": "@1"}', _nested_value(2000).encode())
    if cut_in == "a later span":
        return data, data.index(b'"spanId": "%s"' % sid(4).encode())
    return data, data.index(b'{"stringValue":"x"}') - 1000


@pytest.mark.parametrize("cut_in", ["a later span", "the deep value"])
def test_a_cut_line_with_a_value_nested_too_deep_keeps_its_complete_spans(tmp_path, cut_in):
    """The decoders stop at a value nested too deep before they reach the cut: the line was
    skipped whole ("JSON nested too deeply"), a gzip one with a second warning for the cut."""
    data, cut = _cut_after_a_deep_value(cut_in)
    kept = {sid(1), sid(2), sid(3)} if cut_in == "a later span" else None
    f = write(tmp_path / "a.jsonl", good_line(), data[:cut], good_line(3))
    traces, warnings = load(f)
    assert traces.get(BAD) == kept and traces[GOOD] == {sid(k) for k in range(1, 5)}
    said = "3 complete spans before it kept, rest of line skipped" if kept else "line skipped"
    assert warnings == [at(f, 2) + f"invalid JSON (truncated); {said} (and 1 more problem on this line)"]
    f = tmp_path / "killed.jsonl.gz"
    f.write_bytes(_gzip_cut(good_line() + b"\n" + data, len(good_line()) + 1 + cut))
    traces, warnings = load(f)
    assert traces.get(BAD) == kept and traces[GOOD] == {sid(1), sid(2)}
    said = "3 complete spans before it kept, rest of file skipped" if kept else "rest of file skipped"
    assert warnings == [at(f, 2) + f"compressed data is corrupt or truncated (EOFError); {said} "
                                   "(and 1 more problem on this line)"]


@pytest.mark.parametrize("repairs", [(b"\xff",), (b"\xff", b"\\ud800")])
def test_a_cut_line_counts_each_repair_once(tmp_path, repairs):
    """A line cut short whose complete spans hold an invalid UTF-8 byte (and an unpaired
    surrogate): each repair is one more problem on the line (its salvage repaired them
    again and counted them twice)."""
    spans = [span(BAD, k, attributes=[{"key": "v", "value": {"stringValue": f"@{k}"}}]) for k in range(1, 6)]
    data = line(*spans)
    for k, bad in enumerate(repairs, 1):
        data = data.replace(b'"@%d"' % k, b'"' + bad + b'"')
    f = write(tmp_path / "a.jsonl", data[: data.index(b'"spanId": "%s"' % sid(4).encode())], good_line())
    traces, warnings = load(f)
    assert traces == {BAD: {sid(1), sid(2), sid(3)}, GOOD: {sid(1), sid(2)}}
    n = len(repairs)
    assert warnings == [at(f, 1) + "invalid JSON (truncated); 3 complete spans before it kept, rest of line skipped "
                                   f"(and {n} more problem{'s' if n > 1 else ''} on this line)"]


@pytest.mark.parametrize("cut_in", ["the third span", "the first span"])
def test_a_gzip_line_cut_short_counts_as_the_same_line_of_plain_json_lines(tmp_path, cut_in):
    """LoadStats of a .gz cut inside a line equal those of the plain file cut there: the
    line is counted read, and skipped when none of its spans is complete."""
    data = line(*(span(BAD, k) for k in range(1, 6)))
    cut = data.index(b'"spanId": "%s"' % sid(3 if cut_in == "the third span" else 1).encode())
    (tmp_path / "a.jsonl.gz").write_bytes(_gzip_cut(good_line() + b"\n" + data, len(good_line()) + 1 + cut))
    write(tmp_path / "a.jsonl", good_line(), data[:cut])
    counted = []
    for name in ("a.jsonl", "a.jsonl.gz"):
        stats = LoadStats()
        list(iter_traces([str(tmp_path / name)], stats=stats, on_warning=lambda w: None))
        counted.append((stats.lines, stats.spans, stats.skipped, stats.warning_count))
    assert counted[0] == counted[1] == (2, 4 if cut_in == "the third span" else 2, 1, 1)


def test_truncated_gzip_cut_at_a_line_end_reads_the_whole_line(tmp_path):
    data = gzip.compress(line(span(BAD, 1), span(BAD, 2, parent=1)) + b"\n" + good_line())  # (no last newline)
    f = tmp_path / "end.jsonl.gz"
    f.write_bytes(data[:-8])  # the checksum and size are missing: every byte of data decompressed
    traces, warnings = load(f)
    assert traces == {BAD: {sid(1), sid(2)}, GOOD: {sid(1), sid(2)}}
    assert warnings == [f"{f}:3: compressed data is corrupt or truncated (EOFError); rest of file skipped"]


def _trace_of(i: int) -> str:
    return f"{i + 1:032x}"


def _docs(n: int) -> list[dict]:
    """n TracesData, one trace of three spans each (the i-th: trace _trace_of(i))."""
    attrs = [{"key": "note", "value": {"stringValue": "x" * 40}}]
    return [traces_data(*(span(_trace_of(i), k, parent=1 if k > 1 else None, attributes=attrs) for k in (1, 2, 3)))
            for i in range(n)]


# The same 300 traces as jq . writes them (one pretty document a record), as one pretty
# document, and as JSON Lines
_GZ_SHAPES = {
    "jq-stream": lambda docs: b"".join(json.dumps(d, indent=2).encode() + b"\n" for d in docs),
    "one-document": lambda docs: json.dumps(
        {"resourceSpans": [rs for d in docs for rs in d["resourceSpans"]]}, indent=2).encode() + b"\n",
    "json-lines": lambda docs: b"".join(json.dumps(d).encode() + b"\n" for d in docs),
}


def _gzipped_in_two(data: bytes) -> tuple[bytes, int]:
    """``data`` gzipped, and the offset of a deflate block that begins halfway through."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb") as gz:
        gz.write(data[: len(data) // 2])
        gz.flush(zlib.Z_FULL_FLUSH)  # (the next block starts on a byte of its own)
        middle = out.tell()
        gz.write(data[len(data) // 2 :])
    return out.getvalue(), middle


# Damage halfway through the compressed bytes: cut there, a block header no deflate
# stream has (its type 3, reserved: zlib stops there), a wrong checksum at the end
_GZ_DAMAGE = {
    "truncated": lambda data, middle: data[: middle + 100],
    "corrupt-midway": lambda data, middle: data[:middle] + b"\x06" + data[middle + 1 :],
    "bad-checksum": lambda data, middle: data[:-8] + b"\0" * 8,
}


@pytest.mark.parametrize("shape", list(_GZ_SHAPES))
@pytest.mark.parametrize("damage", list(_GZ_DAMAGE))
def test_damaged_gzip_of_documents_keeps_what_decompressed(tmp_path, shape, damage):
    """A .gz of a pretty-printed stream read nothing when its compressed data was cut or
    corrupt (the file was decompressed whole, and that failed at the end): it keeps what
    decompressed, as a .gz of JSON Lines does, the complete documents and spans before the
    damage analysed, with one warning naming the file and the line where it stopped."""
    docs = _docs(300)
    data = _GZ_DAMAGE[damage](*_gzipped_in_two(_GZ_SHAPES[shape](docs)))
    f = tmp_path / f"{shape}.json.gz"
    f.write_bytes(data)
    traces, warnings = load(f)
    read = sorted(int(tid, 16) - 1 for tid in traces)
    whole = {sid(1), sid(2), sid(3)}
    if damage == "bad-checksum":  # every byte decompressed: all of it is read
        assert read == list(range(300)) and all(traces[t] == whole for t in traces)
    else:  # the traces before the damage, each whole but for the one it cut
        assert 100 < len(read) < 300 and read == list(range(len(read)))
        assert all(traces[_trace_of(i)] == whole for i in read[:-1]), traces
    [warning] = warnings
    name = {"truncated": "EOFError", "corrupt-midway": "error", "bad-checksum": "BadGzipFile"}[damage]
    assert re.fullmatch(rf"{re.escape(str(f))}:\d+: compressed data is corrupt or truncated \({name}\); "
                        r"(\d+ complete spans? before it kept, )?rest of file skipped", warning), warning
    if damage == "truncated":  # the line where decompression stopped (all the data before the cut does)
        stop = zlib.decompressobj(wbits=31).decompress(data).count(b"\n") + 1
        assert warning.startswith(f"{f}:{stop}: ")


def test_cli_on_a_truncated_gzip_of_a_document_stream_judges_the_documents_before_the_cut(tmp_path):
    """Exit 2 (nothing read) was the answer, whatever the documents before the cut held."""
    docs = _docs(300)
    leak = [{"key": "tenant_id", "value": {"stringValue": SECRET}}]  # a raw tenant id: tenant-in-telemetry
    docs[0]["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["attributes"] = leak
    data = gzip.compress(_GZ_SHAPES["jq-stream"](docs))
    f = tmp_path / "jq.json.gz"
    f.write_bytes(data[: len(data) // 2])
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWMAP_")}
    proc = subprocess.run([str(FLOWMAP_BIN), "check", str(f), "--format", "json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["summary"]["findings"].get("tenant-in-telemetry") == 1
    [warning] = report["warnings"]
    assert warning.startswith(f"{f}:") and "compressed data is corrupt or truncated (EOFError)" in warning
    assert SECRET not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        pytest.param(gzip.compress(b""), "no data", id="empty-gz"),
        pytest.param(gzip.compress(b"\n\n  \n"), "no data", id="blank-gz"),
        pytest.param(b"", "empty file", id="zero-bytes"),
    ],
)
def test_empty_files_warn(tmp_path, data, needle):
    f = tmp_path / "empty.jsonl.gz"
    f.write_bytes(data)
    good = write(tmp_path / "good.jsonl", good_line())
    traces, warnings = load(f, good)
    assert traces == {GOOD: {sid(1), sid(2)}}
    assert len(warnings) == 1 and warnings[0].startswith(f"{f}: ") and needle in warnings[0]


@pytest.mark.parametrize(
    ("name", "compress", "what"),
    [
        ("t.jsonl.zst", lambda data: b"\x28\xb5\x2f\xfd" + os.urandom(200), "zstd"),  # the Collector's zstd
        ("t.jsonl.xz", lzma.compress, "xz"),
        ("t.jsonl.bz2", bz2.compress, "bzip2"),
    ],
)
def test_other_compressions_are_named_in_one_warning(tmp_path, name, compress, what):
    f = tmp_path / name
    f.write_bytes(compress(good_line(7) + b"\n"))
    traces, warnings = load(f, write(tmp_path / "good.jsonl", good_line()))
    assert traces == {GOOD: {sid(1), sid(2)}}
    assert warnings == [f"{f}: compressed with {what}, which is not read (gzip is): decompress it first; skipped"]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("config.json", b'{"name": "app", "replicas": 3}\n'),  # a config file among the traces
        ("logs.jsonl", json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {
            "stringValue": SECRET}}]}]}]}).encode() + b"\n"),  # another signal's file
        ("pretty.json", json.dumps({"resourceSpans": []}, indent=2).encode()),
    ],
)
def test_valid_json_without_spans_is_named_once(tmp_path, name, content):
    f = tmp_path / name
    f.write_bytes(content)
    good = write(tmp_path / "good.jsonl", good_line())
    traces, warnings = load(f, good)
    assert traces == {GOOD: {sid(1), sid(2)}}
    assert warnings == [f"{f}: no spans in this file (not OTLP trace data?)"]


def test_a_file_whose_lines_all_failed_gets_only_their_own_warnings(tmp_path):
    bad = write(tmp_path / "bad.jsonl", b"[1, 2]", b"not json")
    traces, warnings = load(bad, write(tmp_path / "good.jsonl", good_line()))
    assert traces == {GOOD: {sid(1), sid(2)}}
    assert [w.split(": ")[0] for w in warnings] == [f"{bad}:1", f"{bad}:2"]


def test_endless_distinct_attribute_names_stop_being_remembered(tmp_path, monkeypatch):
    # every span a new set of names: past the cap their shapes are built per span and not
    # kept (each shape holds its names), and every span is still judged
    monkeypatch.setattr(otlp, "_SHAPE_KEYS_MAX", otlp._shape_keys + 30)
    before = len(otlp._SHAPES)
    spans = [span(GOOD, n, parent=1 if n > 1 else None, attributes=[
        {"key": f"k{n}.{j}", "value": {"stringValue": "v"}} for j in range(10)] + (
        [{"key": "tenant_id", "value": {"stringValue": SECRET}}] if n == 9 else []))
        for n in range(1, 11)]
    f = write(tmp_path / "names.jsonl", line(*spans))
    assert load(f)[0] == {GOOD: {sid(n) for n in range(1, 11)}}
    assert len(otlp._SHAPES) - before <= 3
    findings = analyze([str(f)]).findings
    assert [(x.rule, x.span_id) for x in findings if x.rule == "tenant-in-telemetry"] == [
        ("tenant-in-telemetry", sid(9))]


# -- everything at once, in process and through the command line ---------------------------

@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("startTimeUnixNano", "9" * 30, id="time-huge-string"),
        pytest.param("endTimeUnixNano", 10**30, id="time-huge-number"),
        pytest.param("startTimeUnixNano", -1, id="time-negative"),
        pytest.param("startTimeUnixNano", "1e999", id="time-1e999-string"),
    ],
)
def test_huge_or_negative_times_cost_only_the_time(tmp_path, field, value):
    """Times play no part in the tenant rules: one that is no valid time is ignored (a
    warning naming the field, never the value), and its span is still judged."""
    bad = line(span(BAD, 1), span(BAD, 2, **{field: value}))
    f = write(tmp_path / "a.jsonl", bad, good_line())
    traces, warnings = load(f)
    assert traces == {BAD: {sid(1), sid(2)}, GOOD: {sid(1), sid(2)}}
    assert len(warnings) == 1 and warnings[0].startswith(at(f, 1)) and f"invalid {field} ignored" in warnings[0]
    if len(str(value)) >= 10:
        assert str(value)[-10:] not in warnings[0]  # the value is never echoed


_MIXED_BAD = [
    DEEP,
    b"[1, 2]",
    b'"just a string"',
    b"3.14",
    b"null",
    line(span(BAD, 1)).replace(b'"op"', b'"o\x00p"'),
    b'{"resourceSpans": [{"scopeSpans": [{"spans": [' + b"\xff" * 3,
    line(span(BAD, 2, startTimeUnixNano="9" * 40)),
    line(span(BAD, 3, traceId=10**40)),
    line(span(BAD, 4, attributes=[{"key": "n", "value": {"intValue": str(10**30)}}])),
    line(span(BAD, 5, startTimeUnixNano=0)).replace(b'"startTimeUnixNano": 0', b'"startTimeUnixNano": 1e999'),
    line(span(BAD, 6, attributes=[{"key": "tenant_id", "value": {"stringValue": SECRET + "x" * 5_000_000}}])),
    line(span(BAD, 7)).replace(b'"op"', b'"\\ud800"'),
    json.dumps(traces_data(span(BAD, 8)))[:-9].encode(),  # truncated
    b'{"resourceSpans": [{"scopeSpans": [{"spans": ' + b"[" * 3000 + b"]" * 3000 + b"}]}]}",
]


def _mixed_file(path: Path) -> tuple[Path, list[int]]:
    """Good lines (spans 1..) between every kind of bad line; the bad lines' numbers."""
    lines, bad_numbers = [], []
    n = 1
    for bad in _MIXED_BAD:
        lines.append(good_line(n))
        n += 2
        lines.append(bad)
        bad_numbers.append(len(lines))
    lines.append(good_line(n))
    return write(path, *lines), bad_numbers


def test_mixed_file_exactly_the_good_spans_one_warning_per_bad_line(tmp_path):
    f, bad_numbers = _mixed_file(tmp_path / "mixed.jsonl")
    traces, warnings = load(f)
    n_good = 2 * (len(_MIXED_BAD) + 1)
    # kept from bad lines: the NUL-free 5 MB value (truncated), the repaired surrogate,
    # the span whose int out of range was dropped and those whose bad time was ignored
    assert traces[GOOD] == {sid(i) for i in range(1, n_good + 1)}
    assert traces[BAD] == {sid(2), sid(4), sid(5), sid(6), sid(7)}
    assert [int(w.split(":")[1]) for w in warnings] == bad_numbers
    assert all(w.startswith(f"{f}:") for w in warnings)


def test_cli_on_the_mixed_file_exits_per_findings_with_located_warnings(tmp_path):
    f, bad_numbers = _mixed_file(tmp_path / "mixed.jsonl")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWMAP_")}
    proc = subprocess.run([str(FLOWMAP_BIN), "check", str(f), "--format", "json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr and SECRET not in proc.stderr + proc.stdout
    report = json.loads(proc.stdout)
    assert report["summary"]["spans"] == 2 * (len(_MIXED_BAD) + 1) + 5
    # the JSON output carries every warning; stderr shows the first ten, then a count
    assert [int(w.split(f"{f}:")[1].split(":")[0]) for w in report["warnings"]] == bad_numbers
    located = [ln for ln in proc.stderr.splitlines() if f"{f}:" in ln]
    assert [int(ln.split(f"{f}:")[1].split(":")[0]) for ln in located] == bad_numbers[:10]
    assert all(ln.startswith("warning: ") for ln in located)
    assert f"… and {len(bad_numbers) - 10} more warnings" in proc.stderr
    report_proc = subprocess.run([str(FLOWMAP_BIN), "report", str(f), "-o", str(tmp_path / "map.html")], cwd=tmp_path,
                                 env=env, capture_output=True, text=True, timeout=120)
    assert report_proc.returncode == 0, report_proc.stderr
    assert (tmp_path / "map.html").stat().st_size > 0


def test_cli_nothing_readable_is_exit_2_one_line(tmp_path):
    f = write(tmp_path / "bad.jsonl", DEEP, b"\x00\xff", b"[]")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWMAP_")}
    proc = subprocess.run([str(FLOWMAP_BIN), "check", str(f)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no spans could be read" in proc.stderr


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_a_compressed_line_too_long_to_hold_is_skipped_and_the_rest_read(tmp_path, monkeypatch, encoding):
    """A gzip bomb: a few MB of .gz holding one line of gigabytes was read whole (1 MB of
    gzip peaked at 2 GB). A line past the cap is read past in pieces, skipped with one
    warning naming it, and the lines after it (and other files) are still analysed."""
    from flowmap import loading

    monkeypatch.setattr(loading, "_GZ_LINE_MAX", 1 << 20)
    good = json.dumps({"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [
        {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "00000000000000a1", "name": "op",
         "kind": 2, "startTimeUnixNano": "1", "endTimeUnixNano": "2"}]}]}]})
    f = tmp_path / "bomb.jsonl.gz"
    with gzip.open(f, "wb") as g:  # (UTF-16, with its byte order mark, was read uncapped)
        g.write((" " * (3 << 20) + "\n" + good + "\n").encode(encoding))  # 3 Mi characters of one line
    warnings: list[str] = []
    traces = list(iter_traces([f], on_warning=warnings.append))
    assert [len(t.spans) for t in traces] == [1]
    assert len(warnings) == 1 and f"{f}:1:" in warnings[0] and "longer than 1 MiB" in warnings[0]
