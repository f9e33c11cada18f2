"""Loading OTLP JSON trace files: every encoding form the contract allows, and bad input."""

from __future__ import annotations

import base64
import gzip
import json
import re
from pathlib import Path

import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry import trace as trace_api
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flowmap import otlp
from flowmap.errors import InputError
from flowmap.exporter import JsonLinesSpanExporter
from flowmap.loading import MAX_WARNINGS, LoadStats, _Loader, iter_traces

T1 = "0af7651916cd43dd8448eb211c80319c"
T2 = "4bf92f3577b34da6a3ce929d0e0e4736"
T3 = "5be0a6f1c2d34e7f8a9b0c1d2e3f4a5b"


def sid(n: int) -> str:
    return f"{n:016x}"


def span(trace_id: str = T1, span_id: str | None = None, parent: str | None = None, **extra):
    out = {"traceId": trace_id, "spanId": span_id or sid(1), "name": "op", "kind": 1}
    if parent:
        out["parentSpanId"] = parent
    out.update(extra)
    return out


def line(*spans, service: str = "svc") -> dict:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                "scopeSpans": [{"scope": {"name": "t"}, "spans": list(spans)}],
            }
        ]
    }


def write(path: Path, *lines: dict | str | bytes) -> Path:
    with open(path, "wb") as fh:
        for item in lines:
            if isinstance(item, dict):
                item = json.dumps(item)
            if isinstance(item, str):
                item = item.encode()
            fh.write(item + b"\n")
    return path


def load(*paths, **kw):
    stats = LoadStats()
    warnings: list[str] = []
    traces = list(iter_traces([str(p) for p in paths], on_warning=warnings.append, stats=stats, **kw))
    return {t.trace_id: t for t in traces}, warnings, stats


def all_spans(traces):
    return {s.span_id: s for t in traces.values() for s in t.spans.values()}


# -- the encoding forms ----------------------------------------------------------------


def test_ids_case_insensitive_and_lowercased(tmp_path):
    f = write(
        tmp_path / "a.jsonl",
        line(span(T1.upper(), "00000000000000AB"), span(T1, sid(2), parent="00000000000000Ab")),
    )
    traces, warnings, _ = load(f)
    assert warnings == []
    assert list(traces) == [T1]
    spans = traces[T1].spans
    assert set(spans) == {"00000000000000ab", sid(2)}
    assert spans[sid(2)].parent_span_id == "00000000000000ab"
    assert spans["00000000000000ab"].trace_id == T1


def test_an_upper_case_id_among_thousands_still_merges_with_its_lower_case_spelling(tmp_path):
    """The index tests its ids for upper case a slice at a time: an id spelt in upper case
    far down the file still joins the spans of its lower-case spelling into one trace,
    on lines far apart, and that trace is not reported as continuing after it ended."""
    others = [span(f"{n:032x}", sid(1)) for n in range(1, 10_000)]
    f = write(tmp_path / "a.jsonl", line(span(T1, sid(1))), line(*others), line(span(T1.upper(), sid(2), parent=sid(1))))
    traces, warnings, _ = load(f)
    assert warnings == []
    assert len(traces) == 10_000
    assert set(traces[T1].spans) == {sid(1), sid(2)}


def test_ints_as_strings_or_numbers_and_enum_names(tmp_path):
    f = write(
        tmp_path / "a.jsonl",
        line(
            span(span_id=sid(1), kind=2, startTimeUnixNano="1700000000000000001", endTimeUnixNano=1700000000000000002),
            span(span_id=sid(2), kind="SPAN_KIND_CLIENT", status={"code": "STATUS_CODE_ERROR"}),
            span(span_id=sid(3), kind="3", status={"code": 2}),
        ),
    )
    traces, warnings, _ = load(f)
    assert warnings == []
    spans = traces[T1].spans
    assert spans[sid(1)].kind == 2
    assert spans[sid(1)].start_ns == 1700000000000000001
    assert spans[sid(1)].end_ns == 1700000000000000002
    assert spans[sid(2)].kind == 3 and spans[sid(2)].status_code == 2
    assert spans[sid(3)].kind == 3 and spans[sid(3)].status_code == 2


def test_instrumentation_library_spans_of_otlp_before_0_15(tmp_path):
    # files written before scopeSpans got its name (and a document mixing both names)
    old = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "old"}}]},
        "instrumentationLibrarySpans": [{"instrumentationLibrary": {"name": "t"}, "spans": [span(span_id=sid(1))]}],
    }]}
    both = line(span(span_id=sid(2), parent=sid(1)))
    both["resourceSpans"][0]["instrumentationLibrarySpans"] = [{"spans": [span(span_id=sid(3), parent=sid(1))]}]
    f = write(tmp_path / "a.jsonl", old, both)
    doc = write(tmp_path / "b.json", json.dumps(old, indent=2))
    traces, warnings, _ = load(f)
    assert warnings == [] and sorted(traces[T1].spans) == [sid(1), sid(2)]  # the old name ignored beside the new
    assert traces[T1].spans[sid(1)].service == "old"
    traces, warnings, _ = load(doc)
    assert warnings == [] and sorted(traces[T1].spans) == [sid(1)]
    # the line-by-line repair path knows the old name too
    old["resourceSpans"][0]["instrumentationLibrarySpans"][0]["spans"][0]["attributes"] = [
        {"key": "n", "value": {"intValue": "abc"}}]
    traces, warnings, _ = load(write(tmp_path / "c.jsonl", old))
    assert sorted(traces[T1].spans) == [sid(1)] and len(warnings) == 1
    assert "instrumentationLibrarySpans[0].spans[0]: attribute \"n\" dropped" in warnings[0]


def test_a_sender_in_transition_writes_both_names_and_spans_are_read_once(tmp_path):
    # OTLP let JSON senders write the same spans under both names; receivers ignore the old
    same = line(span(span_id=sid(1)), span(span_id=sid(2), parent=sid(1)))
    same["resourceSpans"][0]["instrumentationLibrarySpans"] = same["resourceSpans"][0]["scopeSpans"]
    broken = json.loads(json.dumps(same))
    broken["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["attributes"] = [{"key": "n", "value": {"intValue": "x"}}]
    for doc in (same, broken):  # the fast path, and the repair path
        traces, warnings, stats = load(write(tmp_path / "a.jsonl", doc))
        assert sorted(traces[T1].spans) == [sid(1), sid(2)] and stats.skipped == 0
        assert not [w for w in warnings if "duplicate" in w]


def test_all_anyvalue_forms(tmp_path):
    attrs = [
        {"key": "s", "value": {"stringValue": "x"}},
        {"key": "b", "value": {"boolValue": False}},
        {"key": "i", "value": {"intValue": "9223372036854775807"}},
        {"key": "i2", "value": {"intValue": -3}},
        {"key": "d", "value": {"doubleValue": 1.5}},
        {"key": "d2", "value": {"doubleValue": 2}},
        {"key": "nan", "value": {"doubleValue": "NaN"}},
        {"key": "inf", "value": {"doubleValue": "-Infinity"}},
        {"key": "arr", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "1"}]}}},
        {"key": "empty_arr", "value": {"arrayValue": {}}},
        {"key": "kv", "value": {"kvlistValue": {"values": [{"key": "k", "value": {"boolValue": True}}]}}},
        {"key": "bytes", "value": {"bytesValue": base64.b64encode(b"\x00\x01").decode()}},
        {"key": "empty", "value": {}},
    ]
    f = write(tmp_path / "a.jsonl", line(span(attributes=attrs, unknownField={"x": 1})))
    traces, warnings, _ = load(f)
    assert warnings == []
    a = traces[T1].spans[sid(1)].attributes
    assert a["s"] == "x" and a["b"] is False
    assert a["i"] == 2**63 - 1 and a["i2"] == -3
    assert a["d"] == 1.5 and a["d2"] == 2.0 and isinstance(a["d2"], float)
    assert a["nan"] != a["nan"] and a["inf"] == float("-inf")
    assert a["arr"] == ["a", 1] and a["empty_arr"] == []
    assert a["kv"] == {"k": True}
    assert base64.b64decode(a["bytes"]) == b"\x00\x01"
    assert a["empty"] is None


def test_derived_fields(tmp_path):
    res = {
        "attributes": [
            {"key": "service.name", "value": {"stringValue": "api"}},
            {"key": "flowmap.key_id", "value": {"stringValue": "k1"}},
        ]
    }
    attrs = [
        {"key": "flowmap.tenant", "value": {"stringValue": "0123456789abcdef"}},
        {"key": "flowmap.boundary", "value": {"stringValue": "vector"}},
        {"key": "flowmap.scoped", "value": {"boolValue": False}},
        {"key": "db.system", "value": {"stringValue": "redis"}},
    ]
    doc = {"resourceSpans": [{"resource": res, "scopeSpans": [{"spans": [span(attributes=attrs)]}]}]}
    doc2 = {"resourceSpans": [{"scopeSpans": [{"spans": [span(T2, attributes=attrs[3:])]}]}]}
    f = write(tmp_path / "a.jsonl", doc, doc2)
    traces, _, _ = load(f)
    s = traces[T1].spans[sid(1)]
    assert (s.tenant, s.boundary, s.scoped, s.key_id, s.service) == ("0123456789abcdef", "vector", False, "k1", "api")
    assert s.origin == f"{f}:1"
    s2 = traces[T2].spans[sid(1)]
    assert (s2.tenant, s2.boundary, s2.scoped, s2.key_id, s2.service) == (None, "cache", None, None, "unknown_service")
    assert s2.origin == f"{f}:2"


@pytest.mark.parametrize("blank", ["", " ", "\t\n"])
def test_an_empty_tenant_tag_names_no_tenant(tmp_path, blank):
    # Another writer may put an empty tag where it knew no tenant: read as untagged, so an
    # entry that never bound one is still unscoped (not silently "bound").
    attrs = [{"key": "flowmap.tenant", "value": {"stringValue": blank}}]
    entry = span(T1, sid(1), kind=2, attributes=[*attrs, {"key": "http.request.method", "value": {"stringValue": "GET"}}])
    tool = span(T1, sid(2), parent=sid(1), kind=1, attributes=[*attrs, {"key": "flowmap.boundary", "value": {"stringValue": "tool"}}])
    f = write(tmp_path / "a.jsonl", line(entry, tool))
    traces, warnings, _ = load(f)
    assert warnings == [] and traces[T1].spans[sid(1)].tenant is None
    import flowmap

    assert [(x.rule, str(x.severity)) for x in flowmap.analyze([str(f)]).findings] == [("unscoped-entry", "high")]


def test_contract_attributes_written_otherwise_are_read_leniently_with_one_warning_each(tmp_path):
    # A kind in another case and "false" as a string mean what they say (the unscoped
    # vector search is found); an unknown kind is no boundary. Each distinct value is
    # warned about once, naming where it was first read.
    def search(n, boundary, scoped):
        return span(T1, sid(n), kind=1, attributes=[
            {"key": "flowmap.tenant", "value": {"stringValue": "a" * 16}},
            {"key": "flowmap.boundary", "value": {"stringValue": boundary}},
            {"key": "flowmap.scoped", "value": scoped},
        ])
    f = write(tmp_path / "a.jsonl",
              line(search(1, "Vector ", {"boolValue": False})),
              line(search(2, "vector", {"stringValue": "false"})),
              line(search(3, "vectorstore", {"boolValue": False})),
              line(search(4, "Vector ", {"stringValue": "FALSE"}), search(5, "vector", {"intValue": "7"})))
    traces, warnings, _ = load(f)
    spans = traces[T1].spans
    assert [(spans[sid(n)].boundary, spans[sid(n)].scoped) for n in range(1, 6)] == [
        ("vector", False), ("vector", False), (None, False), ("vector", False), ("vector", None)]
    assert warnings == [
        f"{f}:1: flowmap.boundary 'Vector ' is read as 'vector' (warned once per value)",
        f"{f}:2: flowmap.scoped 'false' is read as false (warned once per value)",
        f"{f}:3: flowmap.boundary of 11 characters is not a boundary kind; the span is judged by its other "
        "attributes (warned once per value)",
        f"{f}:4: flowmap.scoped 'FALSE' is read as false (warned once per value) (and 1 more problem on this line)",
    ]
    import flowmap

    found = sorted(x.span_id for x in flowmap.analyze([str(f)]).findings if x.rule == "unscoped-query")
    assert found == [sid(1), sid(2), sid(4)]


def test_links_and_events(tmp_path):
    f = write(
        tmp_path / "a.jsonl",
        line(
            span(
                T2,
                kind=5,
                links=[{"traceId": T1.upper(), "spanId": sid(7), "attributes": [{"key": "a", "value": {"intValue": "1"}}]}],
                events=[{"name": "exception", "timeUnixNano": "5", "attributes": [{"key": "exception.type", "value": {"stringValue": "E"}}]}],
            )
        ),
    )
    traces, warnings, _ = load(f)
    assert warnings == []
    s = traces[T2].spans[sid(1)]
    assert [(lk.trace_id, lk.span_id, lk.attributes) for lk in s.links] == [(T1, sid(7), {"a": 1})]
    assert [(e.name, e.attributes) for e in s.events] == [("exception", {"exception.type": "E"})]


def test_pretty_printed_single_document(tmp_path):
    f = tmp_path / "doc.json"
    f.write_text(json.dumps(line(span(span_id=sid(1)), span(span_id=sid(2), parent=sid(1))), indent=2))
    traces, warnings, stats = load(f)
    assert warnings == []
    spans = traces[T1].spans
    assert set(spans) == {sid(1), sid(2)}
    # origins point at the line where each span's id is written
    text = f.read_text().splitlines()
    assert sid(2) in text[int(spans[sid(2)].origin.rsplit(":", 1)[1]) - 1]
    assert stats.lines == 1


@pytest.mark.parametrize("bad", [None, 7, True, "span"])
def test_a_span_item_that_is_no_object_in_a_document_costs_only_itself(tmp_path, bad):
    """One null (or number) among a pretty-printed document's spans lost every span of
    the document (a TypeError caught by the last-resort guard: 'could not read this
    document'); as in JSON Lines, it is one warning and the rest is read."""
    doc = line(span(span_id=sid(1)), span(span_id=sid(2), parent=sid(1)))
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"].append(bad)
    f = tmp_path / "doc.json"
    f.write_text(json.dumps(doc, indent=2))
    traces, warnings, stats = load(f)
    assert set(traces[T1].spans) == {sid(1), sid(2)}
    assert len(warnings) == 1 and "spans[2] skipped" in warnings[0] and "could not read" not in warnings[0]


def test_an_array_of_traces_data_one_element_a_line_is_read_whole(tmp_path):
    """``[`` on its own line, then one TracesData a line with commas, then ``]``: its last
    element's line is JSON on its own, so it was read as JSON Lines and every element but
    the last was lost (with three warnings); the same array on one line was read."""
    elements = [json.dumps(line(span(span_id=sid(n)))) for n in (1, 2, 3)]
    f = tmp_path / "array.json"
    f.write_text("[\n" + ",\n".join(elements) + "\n]\n")
    traces, warnings, _ = load(f)
    assert warnings == [] and set(traces[T1].spans) == {sid(1), sid(2), sid(3)}


def test_json_lines_after_a_bracket_line_are_read_as_lines_never_whole(tmp_path, monkeypatch):
    """``[`` on its own line, then JSON Lines without commas (an array begun by hand):
    the whole file was read into memory to try it as one array (a 156 MB file peaked at
    220 MB, 69 MB without the bracket). Two lines that are TracesData on their own tell
    JSON Lines: an array one element a line has at most one."""
    f = tmp_path / "t.jsonl"
    f.write_text("[\n" + "\n".join(json.dumps(line(span(span_id=sid(n)))) for n in (1, 2, 3)) + "\n")
    monkeypatch.setattr(_Loader, "_read_all", lambda self, f: pytest.fail("read whole"))
    traces, warnings, _ = load(f)
    assert set(traces[T1].spans) == {sid(1), sid(2), sid(3)}
    assert warnings == [f"{f}:1: invalid JSON (truncated); line skipped"]


def test_gzip_by_magic_bytes_not_extension(tmp_path):
    data = (json.dumps(line(span())) + "\n").encode()
    f = tmp_path / "traces.jsonl"  # no .gz suffix
    f.write_bytes(gzip.compress(data))
    traces, warnings, _ = load(f)
    assert warnings == [] and list(traces) == [T1]


def test_trace_split_across_two_files_is_yielded_once_complete(tmp_path):
    a = write(tmp_path / "a.jsonl", line(span(T1, sid(1))), line(span(T2, sid(1))))
    b = write(tmp_path / "b.jsonl", line(span(T1, sid(2), parent=sid(1))))
    stats = LoadStats()
    seen = []
    for t in iter_traces([a, b], stats=stats):
        seen.append((t.trace_id, sorted(t.spans)))
    # T2 is complete after a.jsonl line 2; T1 only after b.jsonl
    assert seen == [(T2, [sid(1)]), (T1, [sid(1), sid(2)])]
    assert stats.traces == 2 and stats.spans == 3 and stats.files == [str(a), str(b)]


def test_trace_yielded_at_its_last_line_not_at_the_end(tmp_path):
    f = write(tmp_path / "a.jsonl", line(span(T1, sid(1))), line(span(T2, sid(1))), line(span(T2, sid(2))))
    it = iter_traces([f])
    first = next(it)
    assert first.trace_id == T1
    assert next(it).trace_id == T2


def test_blank_lines_are_fine(tmp_path):
    f = write(tmp_path / "a.jsonl", "", line(span()), "   ", "")
    traces, warnings, _ = load(f)
    assert warnings == [] and list(traces) == [T1]


def test_progress_reports_bytes(tmp_path):
    f = write(tmp_path / "a.jsonl", line(span()))
    calls = []
    load(f, on_progress=lambda done, total: calls.append((done, total)))
    size = f.stat().st_size
    assert calls and calls[-1] == (size, size)


# -- bad input: one warning naming file and line, the rest still loads -----------------

GOOD = line(span(T2, sid(9)))


def bad_case(tmp_path, bad, *, name="bad.jsonl"):
    f = write(tmp_path / name, GOOD, bad, line(span(T2, sid(10))))
    traces, warnings, stats = load(f)
    assert T2 in traces and {sid(9), sid(10)} <= set(traces[T2].spans)
    return traces, warnings, stats, f


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        pytest.param(json.dumps(line(span()))[:-9], "truncated", id="truncated-line"),
        pytest.param('{"resourceSpans": [}', "invalid JSON", id="invalid-json"),
        pytest.param(line(span(T1, "xyz")), "invalid span id", id="span-id-wrong-length"),
        pytest.param(line(span(T1, "zzzzzzzzzzzzzzzz")), "invalid span id", id="span-id-non-hex"),
        pytest.param(line(span(T1, "0" * 16)), "invalid span id", id="span-id-all-zero"),
        pytest.param(line(span("0" * 32)), "invalid trace id", id="trace-id-all-zero"),
        pytest.param(line(span("ab" * 15)), "invalid trace id", id="trace-id-wrong-length"),
        pytest.param(line({"spanId": sid(1), "name": "x"}), "invalid trace id", id="trace-id-missing"),
        pytest.param(line(span(parent="nothex!!nothex!!")), "invalid parent span id", id="parent-invalid"),
        pytest.param(line(span(name=42)), "Expected `str`, got `int`", id="name-is-a-number"),
        pytest.param(line(span(kind="SPAN_KIND_BOGUS")), "not a valid number or enum name", id="kind-unknown-name"),
        pytest.param({"resourceSpans": [{"scopeSpans": [{"spans": {"a": 1}}]}]}, "spans is not a list", id="spans-not-list"),
        pytest.param({"resourceSpans": "nope"}, "resourceSpans is not a list", id="resourcespans-not-list"),
        pytest.param("42", "not an OTLP TracesData object", id="not-an-object"),
    ],
)
def test_bad_input_one_warning_rest_loads(tmp_path, bad, needle):
    traces, warnings, stats, f = bad_case(tmp_path, bad)
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"{f}:2: ")
    assert needle in warnings[0]
    assert "\n" not in warnings[0]
    assert T1 not in traces
    assert stats.skipped == 1


def _batch_line(n: int = 4) -> str:
    """One line as the Collector's file exporter writes a batch: several traces' spans,
    each a few hundred bytes (the cuts below fall inside the third span)."""
    spans = [span(T1 if i < 2 else T3, sid(i + 1), name=f"step {i} " + "x" * 200) for i in range(n)]
    return json.dumps(line(*spans, service="batcher"))


def _inside_third_span(text: str, in_string: bool) -> int:
    at = text.index('"spanId": "%s"' % sid(3))
    return text.index("x" * 100, at) if in_string else at - 1  # in its name, or before its first key


@pytest.mark.parametrize("in_string", [True, False], ids=["cut-in-a-string", "cut-between-values"])
@pytest.mark.parametrize("last", [False, True], ids=["lines-after", "last-line-no-newline"])
def test_a_line_cut_short_keeps_its_complete_spans(tmp_path, in_string, last):
    """A writer killed mid-line (a Collector file exporter's batch of spans a line) cost
    every span of the line: the complete spans before the cut are kept, with their
    resource, and one warning names the file and line; the other lines load."""
    text = _batch_line()
    cut = text[: _inside_third_span(text, in_string)]
    f = tmp_path / "t.jsonl"
    f.write_text(json.dumps(line(span(T2, sid(9)))) + "\n" + cut + ("" if last else "\n" + json.dumps(line(span(T2, sid(10)))) + "\n"))
    traces, warnings, stats = load(f)
    assert set(traces[T1].spans) == {sid(1), sid(2)} and T3 not in traces
    assert {s.service for s in traces[T1].spans.values()} == {"batcher"}
    assert set(traces[T2].spans) == ({sid(9)} if last else {sid(9), sid(10)})
    [warning] = warnings
    assert re.fullmatch(rf"{re.escape(str(f))}:2: invalid JSON \((truncated|invalid character)\); "
                        "2 complete spans before it kept, rest of line skipped", warning), warning
    assert stats.skipped == 1


def test_a_bad_byte_inside_a_line_keeps_the_spans_before_it(tmp_path):
    text = _batch_line()
    at = _inside_third_span(text, in_string=False)
    f = write(tmp_path / "t.jsonl", text[:at] + "@" + text[at:], line(span(T2, sid(9))))
    traces, warnings, _ = load(f)
    assert set(traces[T1].spans) == {sid(1), sid(2)} and T3 not in traces and T2 in traces
    [warning] = warnings
    assert re.fullmatch(rf"{re.escape(str(f))}:1: invalid JSON \([a-z ]+\); 2 complete spans before it kept, "
                        "rest of line skipped", warning), warning


def test_a_line_cut_at_every_offset_keeps_exactly_the_spans_complete_before_it(tmp_path):
    """Every cut of a line whose strings hold brackets, quotes and escapes: the spans
    kept are those whose object closed before the cut (never a part of one, never one
    whose resource is not read), with one warning, and the next line still loads."""
    tricky = [
        span(T1, sid(1), name='a "}]}]}" b', attributes=[{"key": "k[", "value": {"stringValue": "\\\"{["}}]),
        span(T1, sid(2), parent=sid(1), name="é ] } \u2028"),
        span(T3, sid(3), name="{[{[", events=[{"name": "]}", "timeUnixNano": "1"}]),
    ]
    text = json.dumps(line(*tricky))
    ends = [_span_end(text, text.rindex("{", 0, text.index('"spanId": "%s"' % sid(n)))) for n in (1, 2, 3)]
    after = json.dumps(line(span(T2, sid(9))))
    f = tmp_path / "t.jsonl"
    for cut in range(1, len(text)):
        f.write_text(text[:cut] + "\n" + after + "\n")
        traces, warnings, _ = load(f)
        kept = {s for t in traces.values() for s in t.spans} - {sid(9)}
        assert kept == {sid(n + 1) for n, end in enumerate(ends) if end <= cut}, (cut, text[:cut])
        assert len(warnings) == 1 and warnings[0].startswith(f"{f}:1: invalid JSON"), (cut, warnings)
        assert sid(9) in traces[T2].spans


def _span_end(text: str, start: int) -> int:
    """One past the closing brace of the object that begins at ``start``."""
    end = json.JSONDecoder().raw_decode(text, start)[1]
    return end


@pytest.mark.parametrize("case", ["cut-in-the-first-span", "resource-after-its-spans"])
def test_a_cut_line_keeps_no_span_it_cannot_place(tmp_path, case):
    """Near misses: no span complete before the cut; spans whose resource (service, key
    id) is written after them are not kept without it. The line is skipped as before."""
    text = _batch_line()
    if case == "resource-after-its-spans":
        doc = json.loads(text)
        rs = doc["resourceSpans"][0]
        doc["resourceSpans"][0] = {"scopeSpans": rs["scopeSpans"], "resource": rs["resource"]}
        text = json.dumps(doc)
        cut = text[: _inside_third_span(text, in_string=True)]
    else:
        cut = text[: text.index(sid(1))]
    f = write(tmp_path / "t.jsonl", cut, line(span(T2, sid(9))))
    traces, warnings, _ = load(f)
    assert set(traces) == {T2}
    assert len(warnings) == 1 and warnings[0].startswith(f"{f}:1: invalid JSON (") and warnings[0].endswith(
        "; line skipped")


@pytest.mark.parametrize("stray", ["}", '"'])
def test_a_stray_byte_that_closes_a_span_early_keeps_no_part_of_it(tmp_path, stray):
    """A stray closing brace (or quote, which turns the brackets in a string into the
    span's end) inside a span makes the JSON before it a complete span missing its
    other fields (here its tenant tag): the error shows only at its next key. Such a
    span was kept, a part of one, analysed as an untagged span. The spans before it
    still are, and a stray byte between spans still keeps the one before it when the
    next began (test_a_bad_byte_inside_a_line_keeps_the_spans_before_it)."""
    tagged = {"attributes": [{"key": "flowmap.tenant", "value": {"stringValue": "0123456789abcdef"}}]}
    text = json.dumps(line(span(T1, sid(1)), span(T1, sid(2), name='a "}]}" b', **tagged), span(T1, sid(3))))
    at = text.index(', "name": "a') if stray == "}" else text.index('\\"}]}') + 1
    f = write(tmp_path / "t.jsonl", text[:at] + stray + text[at:], line(span(T2, sid(9))))
    traces, warnings, _ = load(f)
    assert set(traces[T1].spans) == {sid(1)} and sid(9) in traces[T2].spans
    [warning] = warnings
    assert warning.startswith(f"{f}:1: invalid JSON (") and "1 complete span before it kept" in warning, warning


def test_a_line_cut_short_whose_kept_spans_have_problems_is_one_warning(tmp_path):
    """The complete spans of a cut line are read as any line's: one of them without a
    valid trace id is skipped, and that is counted into the line's one warning (it was a
    second warning line for the same line)."""
    text = json.dumps(line(span(T1, sid(1)), span("0" * 32, sid(2)), span(T1, sid(3), name="c")))
    f = write(tmp_path / "t.jsonl", text[: text.index('"name": "c"')])
    traces, warnings, _ = load(f)
    assert set(traces[T1].spans) == {sid(1)}
    assert warnings == [f"{f}:1: invalid JSON (truncated); 2 complete spans before it kept, rest of line skipped "
                        "(and 1 more problem on this line)"]


@pytest.mark.parametrize("last", [False, True], ids=["lines-after", "last-line"])
def test_a_line_cut_short_after_a_byte_order_mark_keeps_its_complete_spans(tmp_path, last):
    """Files joined with cat: a line may begin with a byte order mark, which the reading
    drops. One cut short lost all its spans (the salvage read the mark as part of the
    JSON), where the same line without it keeps its complete ones."""
    text = json.dumps(line(span(T1, sid(1)), span(T1, sid(2)), span(T1, sid(3), name="c")))
    cut = b"\xef\xbb\xbf" + text[: text.index('"name": "c"')].encode()
    f = write(tmp_path / "t.jsonl", line(span(T2, sid(9))), cut, *([] if last else [line(span(T2, sid(10)))]))
    traces, warnings, _ = load(f)
    assert set(traces[T1].spans) == {sid(1), sid(2)}
    assert warnings == [f"{f}:2: invalid JSON (truncated); 2 complete spans before it kept, rest of line skipped"]


@pytest.mark.parametrize("field", ["attributes", "resource"])
def test_a_bad_byte_in_a_field_name_is_said(tmp_path, field):
    """Invalid UTF-8 in an object key: the decoder skips a key it does not know without
    reading it, so the field (a span's attributes and its tenant tag, a resource and its
    service) was dropped without a word, and the span judged without it. It is repaired
    and said like one in a value; the other lines are read as they were."""
    tagged = [{"key": "flowmap.tenant", "value": {"stringValue": "0123456789abcdef"}}]
    text = json.dumps(line(span(T1, sid(1), name="caf\u00e9", attributes=tagged)), ensure_ascii=False).encode()
    at = text.index(f'"{field}"'.encode()) + 4
    f = write(tmp_path / "t.jsonl", text[:at] + b"\xff" + text[at:], line(span(T2, sid(9))))
    traces, warnings, _ = load(f)
    assert warnings == [f"{f}:1: invalid UTF-8 bytes replaced"]
    assert traces[T1].spans[sid(1)].name == "caf\u00e9" and sid(9) in traces[T2].spans


def test_one_bad_span_in_a_line_costs_only_itself(tmp_path):
    f = write(tmp_path / "a.jsonl", line(span(T1, sid(1)), span(T1, sid(2), name=["x"]), span(T1, sid(3))))
    traces, warnings, _ = load(f)
    assert set(traces[T1].spans) == {sid(1), sid(3)}
    assert len(warnings) == 1 and "spans[1]" in warnings[0] and warnings[0].startswith(f"{f}:1: ")


def test_duplicate_span_id_keeps_first(tmp_path):
    f = write(tmp_path / "a.jsonl", line(span(name="first")), line(span(name="second")))
    traces, warnings, _ = load(f)
    assert traces[T1].spans[sid(1)].name == "first"
    assert len(warnings) == 1 and warnings[0].startswith(f"{f}:2: duplicate span id")


def test_self_parent_is_dropped_with_warning(tmp_path):
    f = write(tmp_path / "a.jsonl", line(span(parent=sid(1))))
    traces, warnings, _ = load(f)
    assert traces[T1].spans[sid(1)].parent_span_id is None
    assert len(warnings) == 1 and "its own parent" in warnings[0] and warnings[0].startswith(f"{f}:1: ")


def test_invalid_link_dropped_span_kept(tmp_path):
    f = write(tmp_path / "a.jsonl", line(span(links=[{"traceId": "x", "spanId": sid(2)}])))
    traces, warnings, _ = load(f)
    assert traces[T1].spans[sid(1)].links == []
    assert len(warnings) == 1 and "link" in warnings[0]


def test_huge_value_truncated_never_echoed(tmp_path):
    secret = "tenant-acme-" + "x" * (otlp.MAX_VALUE_CHARS + 10)
    bad = line(span(T1, attributes=[{"key": "prompt", "value": {"stringValue": secret}}]))
    f = write(tmp_path / "a.jsonl", GOOD, bad)
    traces, warnings, _ = load(f)
    value = traces[T1].spans[sid(1)].attributes["prompt"]
    assert len(value) == otlp.MAX_VALUE_CHARS and secret.startswith(value)
    assert len(warnings) == 1 and warnings[0].startswith(f"{f}:2: ") and "truncated" in warnings[0]
    assert "tenant-acme" not in warnings[0] and len(warnings[0]) < 300


def test_non_utf8_bytes_replaced_with_warning(tmp_path):
    raw = json.dumps(line(span(name="caf\u00e9")), ensure_ascii=False).encode().replace("\u00e9".encode(), b"\xff")
    f = write(tmp_path / "a.jsonl", GOOD, raw)
    traces, warnings, _ = load(f)
    assert traces[T1].spans[sid(1)].name == "caf\ufffd"
    assert len(warnings) == 1 and warnings[0] == f"{f}:2: invalid UTF-8 bytes replaced"


def test_wrong_value_type_warning_does_not_echo_value(tmp_path):
    bad = line(span(T1, attributes=[{"key": "tenant_id", "value": {"stringValue": ["acme-corp"]}}]))
    f = write(tmp_path / "a.jsonl", GOOD, bad)
    _, warnings, _ = load(f)
    assert len(warnings) == 1 and "acme-corp" not in warnings[0]


def test_missing_file_and_directory_warn_and_continue(tmp_path):
    good = write(tmp_path / "a.jsonl", GOOD)
    traces, warnings, stats = load(tmp_path / "missing.jsonl", tmp_path, good)
    assert T2 in traces
    assert warnings == [f"{tmp_path / 'missing.jsonl'}: no such file", f"{tmp_path}: is a directory, not a trace file"]
    assert stats.files == [str(good)]


def test_broken_pretty_document_gives_one_warning(tmp_path):
    f = tmp_path / "doc.json"
    text = json.dumps(line(span()), indent=2)
    f.write_text(text[: len(text) // 2])  # cut inside the span: nothing complete to keep
    good = write(tmp_path / "a.jsonl", GOOD)
    traces, warnings, _ = load(f, good)
    assert list(traces) == [T2]
    assert len(warnings) == 1 and warnings[0].startswith(f"{f}:") and "invalid JSON document" in warnings[0]


def test_corrupt_gzip_warns_and_keeps_what_it_read(tmp_path):
    data = gzip.compress(b"".join((json.dumps(line(span(T2, sid(i)))) + "\n").encode() for i in range(1, 2000)))
    f = tmp_path / "cut.jsonl.gz"
    f.write_bytes(data[: len(data) // 2])
    traces, warnings, _ = load(f)
    assert T2 in traces and len(traces[T2].spans) > 10
    assert any("compressed data is corrupt or truncated" in w for w in warnings)


def test_nothing_readable_raises_input_error(tmp_path):
    bad = write(tmp_path / "bad.jsonl", "not json", "{}")
    with pytest.raises(InputError) as info:
        list(iter_traces([bad, tmp_path / "missing.jsonl"]))
    assert "\n" not in str(info.value)
    with pytest.raises(InputError):
        list(iter_traces([tmp_path / "missing.jsonl"]))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(InputError):
        list(iter_traces([empty]))


def test_warnings_are_capped(tmp_path):
    f = write(tmp_path / "a.jsonl", GOOD, *["garbage"] * (MAX_WARNINGS + 5))
    traces, warnings, stats = load(f)
    assert T2 in traces
    assert stats.warning_count == MAX_WARNINGS + 5 and len(stats.warnings) == MAX_WARNINGS
    assert warnings[-1] == "5 more warning(s) not shown" and warnings[-1].hidden == 5


def test_escaped_keys_do_not_split_a_trace(tmp_path):
    # A JSON encoder may escape key characters; the fast scan must not lose the trace's end.
    escaped = json.dumps(line(span(T1, sid(2), parent=sid(1)))).replace('"traceId"', '"trace\\u0049d"')
    f = write(tmp_path / "a.jsonl", line(span(T1, sid(1))), line(span(T2, sid(1))), escaped)
    traces, warnings, _ = load(f)
    assert warnings == []
    assert set(traces[T1].spans) == {sid(1), sid(2)}


def test_maybe_linked_only_for_traces_a_link_points_into(tmp_path):
    # The analysis remembers a trace's spans as link targets only when the scan saw its
    # id somewhere else than on its own spans (a link), or could not count it.
    T3 = "5bf92f3577b34da6a3ce929d0e0e4736"
    link = {"traceId": T1.upper(), "spanId": sid(1)}
    escaped = json.dumps(line(span(T3, sid(2), parent=sid(1)))).replace('"traceId"', '"trace\\u0049d"')
    f = write(tmp_path / "a.jsonl", line(span(T1, sid(1)), span(T2, sid(2))),
              line(span(T2, sid(3), links=[link]), span(T3, sid(1))), escaped)
    traces, warnings, _ = load(f)
    assert warnings == []
    assert traces[T1].maybe_linked  # a span of T2 links to it (its id written in upper case)
    assert not traces[T2].maybe_linked
    assert traces[T3].maybe_linked  # one of its lines could only be read by a full decode
    assert (traces[T1].links_in, traces[T2].links_in, traces[T3].links_in) == (1, 0, -1)


def test_a_trace_carries_the_ids_of_its_spans_that_links_point_to(tmp_path):
    # The analysis remembers, of a trace that links still point into, only the spans
    # they point to (any kind): the loader has read every such link by the time the
    # trace is complete (it ends at the last line that mentions it).
    T3 = "5bf92f3577b34da6a3ce929d0e0e4736"
    producer = span(T1, sid(1), kind=1, attributes=[{"key": "flowmap.tenant", "value": {"stringValue": "a" * 16}}])
    consumer = span(T3, sid(2), kind=5, links=[{"traceId": T1.upper(), "spanId": sid(1).upper()}],
                    attributes=[{"key": "flowmap.tenant", "value": {"stringValue": "b" * 16}}])
    late = span(T3, sid(4), parent=sid(2))  # T3 still open after the line that links
    f = write(tmp_path / "a.jsonl", line(producer, span(T1, sid(5), parent=sid(1))), line(span(T2, sid(3))),
              line(consumer), line(late))
    traces, warnings, _ = load(f)
    assert warnings == [] and traces[T1].links_in == 1
    assert (traces[T1].linked_spans, traces[T2].linked_spans) == (frozenset({sid(1)}), frozenset())
    # the link is judged: T1 (an INTERNAL span linked to) complete before T3
    import flowmap

    found = [(x.rule, x.trace_id) for x in flowmap.analyze([str(f)]).findings]
    assert ("cross-tenant", T3) in found


def test_linked_spans_known_even_when_the_scan_could_not_count_the_links(tmp_path):
    # A line the scan cannot read by regex (an escaped key) is decoded to find its ids, so
    # the trace still ends at its last mention: every link into it has been read by then,
    # though their number is not known.
    escaped = json.dumps(line(span(T2, sid(2), links=[{"traceId": T1, "spanId": sid(1)}]))).replace(
        '"traceId"', '"trace\\u0049d"')
    f = write(tmp_path / "a.jsonl", line(span(T1, sid(1))), escaped)
    traces, warnings, _ = load(f)
    assert warnings == [] and traces[T1].links_in == -1 and traces[T1].linked_spans == frozenset({sid(1)})


def _tagged(trace_id: str, span_id: str, tag: str, **extra) -> dict:
    return span(trace_id, span_id, kind=1, attributes=[{"key": "flowmap.tenant", "value": {"stringValue": tag}}], **extra)


@pytest.mark.parametrize("escape", ["unknown-key", "ids"])
@pytest.mark.parametrize("producer_first", [True, False])
def test_a_link_to_an_internal_span_is_judged_when_its_line_has_escapes(tmp_path, escape, producer_first):
    # An unknown field with a non-ASCII name (json.dumps escapes it) or escaped id
    # characters make the scan decode the line: the link into an INTERNAL span (a kind
    # not remembered by default) between two tenants must still be found, in the same
    # line or either order of lines.
    producer = _tagged(T1, sid(1), "a" * 16)
    consumer = _tagged(T2, sid(2), "b" * 16, links=[{"traceId": T1, "spanId": sid(1)}])
    spans = [producer, consumer] if producer_first else [consumer, producer]
    data = line(*spans)
    if escape == "unknown-key":
        data["resourceSpans"][0]["x-caf\u00e9"] = 1
        text = json.dumps(data)
    else:
        text = json.dumps(data).replace(T1, "".join(f"\\u{ord(c):04x}" if c in "0123" else c for c in T1))
    assert "\\u" in text
    single = write(tmp_path / "one.jsonl", text)
    import flowmap

    found = [(x.rule, x.trace_id, x.span_id) for x in flowmap.analyze([str(single)]).findings]
    assert found == [("cross-tenant", T2, sid(2))]


# -- round trips through the real OpenTelemetry SDK ---------------------------------------


def _record(exporter) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "agent", "flowmap.key_id": "kid"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span(
        "POST /chat", kind=trace_api.SpanKind.SERVER, attributes={"http.request.method": "POST", "flowmap.tenant": "aa" * 8}
    ) as root:
        with tracer.start_as_current_span("chat gpt", kind=trace_api.SpanKind.CLIENT, attributes={"gen_ai.operation.name": "chat"}):
            pass
        with tracer.start_as_current_span(
            "publish", kind=trace_api.SpanKind.PRODUCER, attributes={"messaging.system": "kafka", "sizes": [1, 2]}
        ):
            pass
    ctx = root.get_span_context()
    with tracer.start_as_current_span(
        "consume", kind=trace_api.SpanKind.CONSUMER, links=[trace_api.Link(ctx, {"k": 1.5})], attributes={"messaging.system": "kafka"}
    ) as consumer:
        consumer.add_event("got", {"n": 2})
    provider.shutdown()


def _check_roundtrip(traces) -> None:
    spans = all_spans(traces)
    assert len(traces) == 2 and len(spans) == 4
    by_name = {s.name: s for s in spans.values()}
    root, chat = by_name["POST /chat"], by_name["chat gpt"]
    assert (root.kind, root.boundary, root.tenant, root.service, root.key_id) == (2, "http.server", "aa" * 8, "agent", "kid")
    assert chat.parent_span_id == root.span_id and chat.boundary == "llm"
    assert by_name["publish"].boundary == "queue.publish" and by_name["publish"].attributes["sizes"] == [1, 2]
    consumer = by_name["consume"]
    assert consumer.boundary == "queue.consume"
    assert [(lk.trace_id, lk.span_id, lk.attributes) for lk in consumer.links] == [(root.trace_id, root.span_id, {"k": 1.5})]
    assert consumer.events[0].attributes == {"n": 2}
    assert root.end_ns > root.start_ns > 0


def test_roundtrip_flowmap_exporter(tmp_path):
    path = tmp_path / "sdk.jsonl"
    _record(JsonLinesSpanExporter(path))
    traces, warnings, _ = load(path)
    assert warnings == []
    _check_roundtrip(traces)


def test_roundtrip_collector_encoding(tmp_path):
    """The OTLP protobuf encoder + proto3 JSON mapping: what the Collector's file exporter writes."""
    memory = InMemorySpanExporter()
    _record(memory)
    msg = MessageToDict(encode_spans(memory.get_finished_spans()))  # enums as names, ints as strings

    def hexify(node):
        if isinstance(node, dict):
            for key in ("traceId", "spanId", "parentSpanId"):
                if key in node:
                    node[key] = base64.b64decode(node[key]).hex().upper()  # upper case on purpose
            for value in node.values():
                hexify(value)
        elif isinstance(node, list):
            for value in node:
                hexify(value)

    hexify(msg)
    assert '"SPAN_KIND_SERVER"' in json.dumps(msg)
    path = tmp_path / "collector.jsonl"
    write(path, msg)
    traces, warnings, _ = load(path)
    assert warnings == []
    _check_roundtrip(traces)


def test_trace_split_between_lines_file_and_pretty_document(tmp_path):
    a = write(tmp_path / "a.jsonl", line(span(T1, sid(1))))
    doc = tmp_path / "b.json"
    doc.write_text(json.dumps(line(span(T1, sid(2), parent=sid(1)), span(T2, sid(1))), indent=2))
    c = write(tmp_path / "c.jsonl", line(span(T2, sid(2))))
    traces, warnings, stats = load(a, doc, c)
    assert warnings == []
    assert set(traces[T1].spans) == {sid(1), sid(2)} and set(traces[T2].spans) == {sid(1), sid(2)}
    assert stats.traces == 2


def test_last_resort_guard_turns_an_unexpected_error_into_one_warning(tmp_path, monkeypatch):
    """Whatever a line makes go wrong inside the loader, the other lines are still read."""
    from flowmap import loading

    real = loading.infer_boundary

    def explode_on_clients(kind, attrs):
        if kind == 3:
            raise ZeroDivisionError("secret-tenant-value")
        return real(kind, attrs)

    monkeypatch.setattr(loading, "infer_boundary", explode_on_clients)
    # an HTTP attribute: the loader infers boundaries only for spans with something to infer from
    http = [{"key": "http.request.method", "value": {"stringValue": "GET"}}]
    f = write(tmp_path / "a.jsonl", GOOD, line(span(T1, kind=3, attributes=http)), line(span(T2, sid(10))))
    traces, warnings, stats = load(f)
    assert set(traces[T2].spans) == {sid(9), sid(10)}
    assert warnings == [f"{f}:2: could not read this line (ZeroDivisionError); line skipped"]


def test_load_stats_let_go_of_the_index_once_the_load_ends(tmp_path):
    f = write(tmp_path / "a.jsonl", line(span(span_id=sid(1))))
    traces, _, stats = load(f)
    assert list(traces) == [T1] and stats._done is None and stats.trace_done(T1) is False


@pytest.mark.parametrize("written, read", [
    (1.7e18, 1_700_000_000_000_000_000),  # exponent notation (proto3 JSON allows it)
    ("1.7e18", 1_700_000_000_000_000_000),
    (1700000000000000000.0, 1_700_000_000_000_000_000),
    (2**64 - 1, 2**63 - 1),  # a valid fixed64 past 2262: the latest time kept
    ("18446744073709551615", 2**63 - 1),
])
def test_times_in_every_form_the_json_mapping_allows_are_read(tmp_path, written, read):
    child = span(span_id=sid(2), parent=sid(1), startTimeUnixNano=written, endTimeUnixNano="1700000000000000001")
    f = write(tmp_path / "a.jsonl", line(span(), child))
    traces, warnings, stats = load(f)
    assert warnings == [] and stats.spans == 2
    assert traces[T1].spans[sid(2)].start_ns == read


@pytest.mark.parametrize("written", [-1, 1.5, "soon", True, 2**64, [1]])
def test_an_invalid_time_costs_only_itself_not_its_span(tmp_path, written):
    ev = {"name": "e", "timeUnixNano": written}
    child = span(span_id=sid(2), parent=sid(1), startTimeUnixNano=written, events=[ev])
    f = write(tmp_path / "a.jsonl", line(span(), child))
    traces, warnings, stats = load(f)
    assert stats.spans == 2 and stats.skipped == 0
    s = traces[T1].spans[sid(2)]
    assert s.start_ns == 0 and [e.name for e in s.events] == ["e"]
    assert len(warnings) == 1 and "a.jsonl:1" in warnings[0] and "invalid startTimeUnixNano ignored" in warnings[0]


def test_spans_of_a_trace_that_stays_open_stop_pinning_their_lines(tmp_path, monkeypatch):
    # A span's undecoded attributes are a view into its line: a long-lived trace (one span
    # on every line of a file) kept every line, the whole file, in memory. Pending spans
    # are copied out of their lines every _DETACH_EVERY bytes of input.
    from flowmap import loading

    long_trace = "f" * 32
    attrs = [{"key": "payload", "value": {"stringValue": "x" * 200}}]
    lines = [line(span(long_trace, sid(100 + i), parent=sid(100) if i else None, attributes=attrs),
                  span(f"{i + 1:032x}", sid(1), attributes=attrs)) for i in range(6)]
    f = write(tmp_path / "a.jsonl", *lines)

    def pinned(every):
        monkeypatch.setattr(loading, "_DETACH_EVERY", every)
        (kept,) = [t for t in iter_traces([str(f)]) if t.trace_id == long_trace]
        # Raw.copy() is the object itself only when it already owns its bytes
        return [s.kvs.copy() is not s.kvs for s in kept.spans.values()]

    assert pinned(1) == [False] * 5 + [True]  # all but the last line's span copied out
    assert pinned(1 << 40) == [True] * 6  # (without the copies: every line pinned)


def test_traces_tagged_under_the_development_key_are_said_to_be_so_once(tmp_path):
    """Development mode's tags are not secret (the key is public): the analysis says so,
    once, where such spans were first read — loud where a log line was easy to miss."""
    from flowmap.loading import LoadStats, iter_traces
    from flowmap.tagging import DEV_KEY, key_id_for, tag_for

    from otlp_builder import KEY, TraceBuilder, write_otlp

    dev = [TraceBuilder(key_id=key_id_for(DEV_KEY)) for _ in range(3)]
    for tb in dev:
        tb.span("GET /a", tenant=tag_for(DEV_KEY, "acme"))
    path = write_otlp(tmp_path / "dev.jsonl", *dev)
    stats = LoadStats()
    list(iter_traces([path], stats=stats))
    (warning,) = stats.warnings
    assert warning.startswith(f"{path}:1: spans tagged under flowmap's public development key")
    real = TraceBuilder()  # this module's own key
    real.span("GET /a", tenant=tag_for(KEY, "acme"))
    stats = LoadStats()
    list(iter_traces([write_otlp(tmp_path / "real.jsonl", real)], stats=stats))
    assert stats.warnings == []
