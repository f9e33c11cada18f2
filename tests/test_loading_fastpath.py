"""The loader's fast path (spans decoded as RawSpan, attribute lists read per span) gives
exactly what the full path gives, and input can never set the fields the loader fills in."""

from __future__ import annotations

import json
import sys
from unittest import mock

from flowmap import otlp
from flowmap.analysis import Analyzer
from flowmap.loading import _Loader, LoadStats, decode_document, iter_traces

T1 = "0af7651916cd43dd8448eb211c80319c"
T2 = "4bf92f3577b34da6a3ce929d0e0e4736"


def kv(key, value):
    return {"key": key, "value": value}


def document() -> dict:
    spans = [
        {"traceId": T1, "spanId": "00000000000000a1", "name": "POST /chat", "kind": 2,
         "attributes": [kv("flowmap.tenant", {"stringValue": "0123456789abcdef"}),
                        kv("http.request.method", {"stringValue": "POST"}),
                        kv("tenant_id", {"stringValue": "acme"}),
                        kv("n", {"intValue": "7"}), kv("ok", {"boolValue": True})],
         "events": [{"name": "e", "timeUnixNano": "1", "attributes": [kv("a", {"doubleValue": 1.5})]}]},
        {"traceId": T1.upper(), "spanId": "00000000000000A2", "parentSpanId": "00000000000000a1",
         "name": "GET", "kind": "SPAN_KIND_CLIENT", "status": {"code": 2},
         "attributes": [kv("db.system", {"stringValue": "redis"}), kv("flowmap.scoped", {"boolValue": False}),
                        kv("db.system", {"stringValue": "qdrant"})],  # repeated key: the last one wins
         "links": [{"traceId": T2, "spanId": "00000000000000b1", "attributes": [kv("k", {"stringValue": "v"})]},
                   {"traceId": "nope", "spanId": "00000000000000b2"}]},
        {"traceId": T2, "spanId": "00000000000000b1", "name": "tool", "kind": 1,
         "attributes": [kv("flowmap.boundary", {"stringValue": "not-a-kind"}),
                        kv("gen_ai.operation.name", {"stringValue": "execute_tool"}),
                        kv("flowmap.tenant", {"intValue": "5"})]},
    ]
    res = {"attributes": [kv("service.name", {"stringValue": "api"}), kv("flowmap.key_id", {"stringValue": "k1"})]}
    return {"resourceSpans": [{"resource": res, "scopeSpans": [{"spans": spans}]}]}


def view(traces) -> dict:
    out = {}
    for t in traces:
        for sid, s in t.spans.items():
            out[(t.trace_id, sid)] = (
                s.trace_id, s.span_id, s.parent_span_id, s.name, s.kind, s.service, s.status_code,
                s.tenant, s.boundary, s.scoped, s.key_id, s.origin, s.attributes,
                [(e.name, e.attributes) for e in s.events],
                [(lk.trace_id, lk.span_id, lk.attributes) for lk in s.links], s.operation,
            )
    return out


def full_path(data: bytes) -> tuple[dict, list[str]]:
    warnings: list[str] = []
    loader = _Loader([], warnings.append, None, LoadStats())
    loader._decode_raw = lambda *args: False  # force the full path
    loader._decode_unit(data, "<memory>", None)
    loader._flush()  # warnings are held per line, as decode_document does
    traces = list(loader._closed(list(loader.pending)))
    return view(traces), warnings


def test_fast_path_matches_full_path():
    data = json.dumps(document()).encode()
    fast_warnings: list[str] = []
    fast = view(decode_document(data, on_warning=fast_warnings.append))
    full, full_warnings = full_path(data)
    assert fast == full
    assert fast_warnings == full_warnings and len(fast_warnings) == 1  # the invalid link
    s = fast[(T1, "00000000000000a2")]
    assert s[8:10] == ("vector", False)  # boundary inferred from the last db.system
    assert fast[(T2, "00000000000000b1")][7:9] == (None, "tool")  # non-string tag: no tenant


def test_fast_path_spans_are_raw_spans():
    traces = decode_document(json.dumps(document()).encode())
    assert {type(s) for t in traces for s in t.spans.values()} == {otlp.RawSpan}


def test_input_cannot_set_loader_fields(tmp_path):
    doc = document()
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span.update({"flowmap.loader.tenant": "evil", "flowmap.loader.scoped": "x", "flowmap.loader.service": 3,
                 "flowmap.loader._attrs": {"forged": 1}, "flowmap.loader.shape": [1]})
    span["events"][0]["flowmap.loader._attrs"] = {"forged": 2}
    span["links"] = [{"traceId": T2, "spanId": "00000000000000b1", "flowmap.loader._attrs": {"forged": 3}}]
    f = tmp_path / "t.jsonl"
    f.write_text(json.dumps(doc) + "\n")
    warnings: list[str] = []
    traces = {t.trace_id: t for t in iter_traces([f], on_warning=warnings.append)}
    s = traces[T1].spans["00000000000000a1"]
    assert (s.tenant, s.scoped, s.service) == ("0123456789abcdef", None, "api")
    assert "forged" not in s.attributes and s.attributes["n"] == 7
    assert s.events[0].attributes == {"a": 1.5}
    assert s.links[0].attributes == {}


def test_kept_sample_traces_do_not_pin_their_line():
    doc = document()
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    del spans[1:]  # nothing to mask below: the sample keeps the spans as read
    spans[0]["attributes"] = [a for a in spans[0]["attributes"] if a["key"] != "tenant_id"]
    data = json.dumps(doc).encode()
    before = sys.getrefcount(data)
    traces = decode_document(data)
    assert sys.getrefcount(data) > before  # the raw attribute lists point into the line
    analyzer = Analyzer()
    for t in traces:
        analyzer.add(t)
    del traces, t
    result = analyzer.finish()
    kept = [s for t in result.sample_traces.values() for s in t.spans.values()]
    assert {type(s) for s in kept} == {otlp.RawSpan}
    assert sys.getrefcount(data) == before
    assert kept[0].attributes["http.request.method"] == "POST"


def _rich_document() -> bytes:
    """Traces that reach every span-local rule, on spans the loader reads and on spans
    the one-tag fast path of the rules must still look at."""
    tag, other = "0123456789abcdef", "fedcba9876543210"
    ta, tb, tc = "1" * 32, "2" * 32, "3" * 32

    def sp(tid, n, parent, name, kind, attrs, **extra):
        out = {"traceId": tid, "spanId": f"{n:016x}", "name": name, "kind": kind, "attributes": attrs, **extra}
        if parent:
            out["parentSpanId"] = f"{parent:016x}"
        return out

    def t(value):
        return kv("flowmap.tenant", {"stringValue": value})

    def b(kind):
        return kv("flowmap.boundary", {"stringValue": kind})

    spans = [
        # one tag everywhere: tool arguments chosen by the model, an unscoped query, baggage
        # sent outside, an event with a raw id, a link into another trace
        sp(ta, 1, None, "POST /chat", 2, [t(tag), b("http.server"), kv("http.route", {"stringValue": "/chat"})],
           events=[{"name": "ev", "attributes": [kv("customer_id", {"stringValue": "cust-9"})]}]),
        sp(ta, 2, 1, "execute_tool lookup", 1, [t(tag), b("tool"),
           kv("gen_ai.tool.call.arguments", {"stringValue": '{"tenant_id": "acme"}'})]),
        sp(ta, 3, 2, "SELECT", 3, [t(tag), b("db"), kv("flowmap.scoped", {"boolValue": False})]),
        sp(ta, 4, 1, "POST", 3, [t(tag), b("http.client"), kv("flowmap.baggage.sent", {"boolValue": True}),
           kv("server.address", {"stringValue": "api.example.com"})]),
        sp(ta, 5, 1, "publish", 4, [t(tag), b("queue.publish")]),
        # two tags: the per-span path
        sp(tb, 1, None, "GET /x", 2, [t(tag), b("http.server"), kv("http.route", {"stringValue": "/x"})]),
        sp(tb, 2, 1, "GET", 3, [t(other), b("cache"), kv("flowmap.scoped", {"boolValue": True})]),
        sp(tb, 3, 1, "load", 1, [b("memory")]),
        # one tag, under a resource with a raw tenant id
        sp("4" * 32, 1, None, "job", 1, [t(tag)]),
        # no tag at all, linked to a tagged producer
        sp(tc, 1, None, "process", 5, [b("queue.consume")],
           links=[{"traceId": ta, "spanId": f"{5:016x}"}]),
    ]
    clean = {"attributes": [kv("service.name", {"stringValue": "api"})]}
    raw = {"attributes": [kv("service.name", {"stringValue": "api"}), kv("org_id", {"stringValue": "org-1"})]}
    worker = {"attributes": [kv("service.name", {"stringValue": "worker"})]}
    return json.dumps({"resourceSpans": [
        {"resource": clean, "scopeSpans": [{"spans": spans[:5]}]},
        {"resource": raw, "scopeSpans": [{"spans": spans[5:9]}]},
        {"resource": worker, "scopeSpans": [{"spans": spans[9:]}]},
    ]}).encode()


def _outcome(analysis) -> tuple:
    flow = analysis.flow
    return (
        [f.to_json() for f in analysis.findings],
        sorted((k, v.spans, v.untagged, v.entry, sorted(v.findings.items())) for k, v in flow.nodes.items()),
        sorted((k, e.inherited, e.dropped, e.switched, e.orphaned, e.bound, e.untagged, e.via_link)
               for k, e in flow.edges.items()),
        [(p.trace_id, p.span_ids, p.broken_at, p.break_rule) for p in analysis.paths],
    )


def test_rules_judge_loaded_spans_as_hand_built_ones():
    from flowmap.analysis import analyze_traces
    from flowmap.masking import Masker
    from flowmap.model import Trace

    data = _rich_document()
    # the first analysis learns which names are plain, the second caches that per shape:
    # from the third on, the one-tag traces take the rules' fast path
    first = _outcome(analyze_traces(decode_document(data)))
    assert _outcome(analyze_traces(decode_document(data))) == first
    loaded = decode_document(data)
    copies = Masker()  # nothing to mask: a plain model.Span copy of every span
    built = [Trace(t.trace_id, {sid: copies.span(s) for sid, s in t.spans.items()}) for t in decode_document(data)]
    got, want = _outcome(analyze_traces(loaded)), _outcome(analyze_traces(built))
    assert got == want == first
    rules = {f["rule"] for f in got[0]}
    assert {"model-chosen-tenant", "unscoped-query", "baggage-to-external", "tenant-in-telemetry",
            "cross-tenant", "context-dropped"} <= rules


def _load(path, *, full: bool) -> tuple[dict, list[str], tuple[int, int, int]]:
    warnings: list[str] = []
    stats = LoadStats()
    if full:
        with mock.patch.object(_Loader, "_decode_raw", lambda *args: False):
            traces = list(iter_traces([path], on_warning=warnings.append, stats=stats))
    else:
        traces = list(iter_traces([path], on_warning=warnings.append, stats=stats))
    return view(traces), warnings, (stats.spans, stats.skipped, stats.traces)


def test_a_span_whose_attributes_fail_late_in_a_line_takes_back_what_the_line_added(tmp_path):
    """The fast path decodes each attribute list as it adds the span; when one fails
    validation after others were added (an over-long value, an int out of range), the
    line is read again by the full path with nothing counted, kept or warned twice."""
    long_value = "x" * (otlp.MAX_VALUE_CHARS + 10)
    ta, tb, tc = "a" * 32, "b" * 32, "c" * 32
    # trace id written with a \u escape: the scan does not count it (the _seen_ids path)
    escaped_tc = "\\u0063" + "c" * 31

    def line(scopes) -> str:
        return json.dumps({"resourceSpans": [
            {"resource": {"attributes": [kv("service.name", {"stringValue": "api"})]},
             "scopeSpans": [{"spans": spans} for spans in scopes]}
        ]}).replace("ESCAPED", escaped_tc)

    def sp(tid, n, attrs, parent=None):
        out = {"traceId": tid, "spanId": f"{n:016x}", "name": f"op{n}", "kind": 1, "attributes": attrs}
        if parent:
            out["parentSpanId"] = f"{parent:016x}"
        return out

    tag = [kv("flowmap.tenant", {"stringValue": "0123456789abcdef"})]
    lines = [
        line([[sp(ta, 1, tag)]]),
        # first scope adds spans of a known trace, a new trace and an uncounted one (and a
        # bad span id, warned about); the second scope fails on its last span
        line([
            [sp(ta, 2, tag, 1), sp(tb, 1, tag), sp("ESCAPED", 1, tag), sp(tb, 99, tag) | {"spanId": "xyz"}],
            [sp(tb, 2, tag, 1), sp(ta, 3, [kv("big", {"stringValue": long_value})], 1),
             sp(ta, 4, [kv("n", {"intValue": str(1 << 70)})], 1)],
        ]),
        line([[sp(tc, 2, tag), sp(tb, 3, tag, 2)]]),
    ]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with mock.patch.object(_Loader, "_undo", autospec=True, side_effect=_Loader._undo) as undo:
        fast, fast_warnings, fast_stats = _load(path, full=False)
    assert undo.call_count == 1  # line 2, after its first scope was added
    full, full_warnings, full_stats = _load(path, full=True)
    assert fast == full
    assert fast_warnings == full_warnings
    assert fast_stats == full_stats == (9, 1, 3)  # the span with the int out of range kept, without it
    assert len(fast_warnings) == 1 and fast_warnings[0].startswith(f"{path}:2: ")
    assert "continues after it was complete" not in fast_warnings[0]
    assert len(fast[(ta, f"{3:016x}")][-4]["big"]) == otlp.MAX_VALUE_CHARS  # truncated, kept
    assert "n" not in fast[(ta, f"{4:016x}")][-4]  # the attribute out of range dropped


def _ids_document(ids: list[tuple[str, str]]) -> bytes:
    spans = [
        {"traceId": T1, "spanId": sid, "parentSpanId": parent, "name": f"s{i}", "kind": 1,
         "attributes": [kv("flowmap.tenant", {"stringValue": "0123456789abcdef"})]}
        for i, (sid, parent) in enumerate(ids)
    ]
    res = {"attributes": [kv("service.name", {"stringValue": "api"})]}
    return json.dumps({"resourceSpans": [{"resource": res, "scopeSpans": [{"spans": spans}]}]}).encode()


def test_ids_tested_a_batch_at_once_are_judged_one_by_one():
    """Span and parent ids are tested as lowercase hex a batch at a time: ids whose
    characters pass together but whose lengths are wrong (15 + 17), a zero id, and, in
    another batch, upper case or non-ASCII ids beside good ones are judged as the full
    path judges them."""
    good = [("00000000000000a1", ""), ("00000000000000a2", "00000000000000a1")]
    wrong_lengths = [*good, ("00000000000000a", "00000000000000a1"), ("00000000000000a3f", ""),
                     ("0" * 16, "00000000000000a1"), ("00000000000000a4", "00000000000000a")]
    mixed = [*good, ("00000000000000A5", "00000000000000A1"), ("é" * 16, ""),
             ("00000000000000a6", "ÿ" * 16), ("00000000000000a7", "00000000000000a2")]
    for ids in (good, wrong_lengths, mixed):
        data = _ids_document(ids)
        fast_warnings: list[str] = []
        fast = view(decode_document(data, on_warning=fast_warnings.append))
        full, full_warnings = full_path(data)
        assert fast == full
        assert fast_warnings == full_warnings
    assert len(fast) == 4  # mixed: a1, a2, a5 (lowercased, its parent too), a7
    assert fast[(T1, "00000000000000a5")][2] == "00000000000000a1"
    # the non-ASCII span id and parent id: one line, so one warning that counts the other
    assert len(fast_warnings) == 1 and "invalid span id" in fast_warnings[0]
    assert "and 1 more problem on this line" in fast_warnings[0]
