"""Bad input that must cost as little as possible: the loader repairs what OTLP JSON allows
or what can be dropped on its own, and every warning names the right ``file:line``.

Each case writes the exact OTLP JSON a producer (or ``jq``) could write and checks what a
user relies on: the span or trace is still analysed (a cross-tenant finding still fails
CI), one warning per line naming ``file:line`` (and for a dropped attribute its key,
never its value), exit codes.
"""

from __future__ import annotations

import functools
import gc
import gzip
import json
import os
import subprocess
import sys
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest

from flowmap import loading, otlp
from flowmap.analysis import analyze
from flowmap.loading import LoadStats, _Loader, iter_traces

ROOT_TRACE = "66666666666666666666666666666666"
OTHER_TRACE = "22222222222222222222222222222222"
TAG_A, TAG_B = "0123456789abcdef", "fedcba9876543210"  # opaque tenant tags
SECRET = "acme-corp-secret"  # a raw value that must never reach a warning
FLOWMAP_BIN = Path(sys.executable).parent / "flowmap"


def kv(key, value: dict | None) -> dict:
    return {"key": key, "value": value}


def s(key: str, value: str) -> dict:
    return kv(key, {"stringValue": value})


def root(trace_id: str = ROOT_TRACE, span_id: str = "f000000000000001", **extra) -> dict:
    out = {"traceId": trace_id, "spanId": span_id, "name": "GET /chat", "kind": 2,
           "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000001000000000",
           "attributes": [s("flowmap.tenant", TAG_A), s("flowmap.boundary", "http.server")]}
    out.update(extra)
    return out


def child(trace_id: str = ROOT_TRACE, span_id: str = "f000000000000002", parent: str = "f000000000000001",
          extra_attrs: list | None = None, **extra) -> dict:
    """A tool call under ``root`` made for another tenant: a critical cross-tenant finding."""
    out = {"traceId": trace_id, "spanId": span_id, "name": "execute_tool search", "kind": 1,
           "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000001000000000",
           "attributes": [s("flowmap.tenant", TAG_B), s("flowmap.boundary", "tool"), *(extra_attrs or [])],
           "parentSpanId": parent}
    out.update(extra)
    return out


def traces_data(*spans: dict, resource_attrs: list | None = None) -> dict:
    attrs = resource_attrs if resource_attrs is not None else [s("service.name", "svc-a")]
    return {"resourceSpans": [{"resource": {"attributes": attrs},
                               "scopeSpans": [{"scope": {"name": "x"}, "spans": list(spans)}]}]}


def line(*spans: dict, **kwargs) -> bytes:
    return json.dumps(traces_data(*spans, **kwargs)).encode()


def write(path: Path, *lines: bytes) -> Path:
    path.write_bytes(b"".join(item + b"\n" for item in lines))
    return path


def load(*paths: Path):
    """(trace id -> {span id -> span}, warnings) after loading; checks every warning's form."""
    warnings: list[str] = []
    traces: dict[str, dict] = {}
    for t in iter_traces([str(p) for p in paths], on_warning=warnings.append, stats=LoadStats()):
        assert t.trace_id not in traces, f"trace {t.trace_id} yielded in parts"
        traces[t.trace_id] = dict(t.spans)
    for w in warnings:
        assert "\n" not in w and SECRET not in w and len(w) < 400, w
    return traces, warnings


def findings(*paths: Path) -> list[str]:
    return [f.rule for f in analyze([str(p) for p in paths], on_warning=lambda w: None).findings]


def cli(tmp_path: Path, *args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWMAP_")}
    return subprocess.run([str(FLOWMAP_BIN), *map(str, args)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


# -- A: one unrepresentable value costs only itself ------------------------------------------


def test_cross_tenant_span_with_an_int_beyond_int64_is_still_judged(tmp_path):
    big = kv("retry.count", {"intValue": "18446744073709551616"})
    f = write(tmp_path / "t.jsonl", line(root(), child(extra_attrs=[s("tenant_id", SECRET), big])))
    traces, warnings = load(f)
    kept = traces[ROOT_TRACE]["f000000000000002"]
    assert kept.attributes == {"flowmap.tenant": TAG_B, "flowmap.boundary": "tool", "tenant_id": SECRET}
    assert warnings == [(f"{f}:1: resourceSpans[0].scopeSpans[0].spans[1]: attribute \"retry.count\" dropped "
                        "(Expected `int` <= 9223372036854775807 - at `$.value.intValue`)")]
    assert "18446744073709551616" not in warnings[0]
    assert "cross-tenant" in findings(f)


def test_cli_fails_on_the_cross_tenant_span_with_an_int_beyond_int64(tmp_path):
    big = kv("retry.count", {"intValue": 18446744073709551616})
    f = write(tmp_path / "t.jsonl", line(root(), child(extra_attrs=[big])))
    proc = cli(tmp_path, "check", f, "--fail-on", "critical", "--format", "json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["summary"]["findings"]["cross-tenant"] == 1 and report["summary"]["spans"] == 2
    assert report["warnings"] == [(f"{f}:1: resourceSpans[0].scopeSpans[0].spans[1]: attribute \"retry.count\" "
                                  "dropped (Expected `int` <= 9223372036854775807 - at `$.value.intValue`)")]


@pytest.mark.parametrize(
    ("field", "expected_text"),
    [
        pytest.param({"events": [{"name": "retry", "timeUnixNano": "5",
                                  "attributes": [s("k", "v"), kv("n", {"intValue": str(2**64)})]}]},
                     'events[0].attribute "n" dropped', id="event-attribute"),
        pytest.param({"links": [{"traceId": OTHER_TRACE, "spanId": "b000000000000001",
                                 "attributes": [kv("n", {"intValue": str(2**64)}), s("k", "v")]}]},
                     'links[0].attribute "n" dropped', id="link-attribute"),
        pytest.param({"links": [{"traceId": OTHER_TRACE, "spanId": 5}]}, "links[0] dropped", id="link-id-a-number"),
    ],
)
def test_a_bad_event_or_link_costs_only_itself(tmp_path, field, expected_text):
    f = write(tmp_path / "t.jsonl", line(root(), child(**field)))
    traces, warnings = load(f)
    kept = traces[ROOT_TRACE]["f000000000000002"]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"{f}:1: resourceSpans[0].scopeSpans[0].spans[1]: {expected_text} (")
    assert str(2**64) not in warnings[0]
    if "attribute" in expected_text:
        items = kept.events if "events" in field else kept.links
        assert len(items) == 1 and items[0].attributes == {"k": "v"}
    else:
        assert list(kept.events) == [] and list(kept.links) == []
    assert "cross-tenant" in findings(f)


def test_a_bad_resource_attribute_keeps_the_service(tmp_path):
    res = [s("service.name", "svc-a"), kv("host.cpus", {"intValue": str(2**70)})]
    f = write(tmp_path / "t.jsonl", line(root(), child(), resource_attrs=res))
    traces, warnings = load(f)
    assert {sp.service for sp in traces[ROOT_TRACE].values()} == {"svc-a"}
    assert warnings == [(f"{f}:1: resourceSpans[0].resource: attribute \"host.cpus\" dropped "
                        "(Expected `int` <= 9223372036854775807 - at `$.value.intValue`)")]


def test_many_bad_attributes_on_a_line_are_one_warning(tmp_path):
    bad = [kv(f"n{i}", {"intValue": str(2**64)}) for i in range(50)]
    f = write(tmp_path / "t.jsonl", line(root(), child(extra_attrs=bad)))
    traces, warnings = load(f)
    assert set(traces[ROOT_TRACE]) == {"f000000000000001", "f000000000000002"}
    assert len(warnings) == 1 and warnings[0].startswith(f"{f}:1: ") and "49 more problems" in warnings[0]


def test_attribute_key_in_a_warning_is_escaped_and_clipped(tmp_path):
    key = "\x1b[2J" + "k" * 500
    f = write(tmp_path / "t.jsonl", line(root(), child(extra_attrs=[kv(key, {"intValue": str(2**64)})])))
    _, warnings = load(f)
    # (clipped, and without the word the clip went through: it may be a cut tenant id)
    assert len(warnings) == 1 and "\x1b" not in warnings[0] and 'attribute "\\u001b["…' in warnings[0]
    assert "kkk" not in warnings[0]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"attributes": None}, id="attributes"),
        pytest.param({"events": None}, id="events"),
        pytest.param({"links": None}, id="links"),
        pytest.param({"name": None}, id="name"),
        pytest.param({"kind": None}, id="kind"),
        pytest.param({"parentSpanId": None}, id="parentSpanId"),
        pytest.param({"status": {"code": None, "message": "boom"}}, id="status.code"),
        pytest.param({"status": {"code": 2, "message": None}}, id="status.message"),
        pytest.param({"startTimeUnixNano": None, "endTimeUnixNano": None}, id="times"),
        pytest.param({"events": [{"name": None, "timeUnixNano": None, "attributes": None}]}, id="event-fields"),
        pytest.param({"attributes": [{"key": None, "value": None}]}, id="keyvalue-fields"),
    ],
)
def test_null_is_the_default_value_silently(tmp_path, change):
    """proto3 JSON: null means the field's default. The span is read, with no warning."""
    f = write(tmp_path / "t.jsonl", line(root(), child()), line(root(OTHER_TRACE, "b000000000000001", **change)))
    traces, warnings = load(f)
    assert warnings == []
    span = traces[OTHER_TRACE]["b000000000000001"]
    if "name" in change:
        assert span.name == ""
    if "kind" in change:
        assert span.kind == 0
    if "parentSpanId" in change:
        assert span.parent_span_id is None
    if "status" in change and change["status"] is not None:
        assert span.status_code == (change["status"]["code"] or 0)
    if "attributes" in change and change["attributes"] is None:
        assert span.attributes == {}
    assert "cross-tenant" in findings(f)


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param({"resourceSpans": None}, id="resourceSpans"),
        pytest.param({"resourceSpans": [{"resource": None, "scopeSpans": None}]}, id="scopeSpans"),
        pytest.param({"resourceSpans": [{"scopeSpans": [{"scope": None, "spans": None}]}]}, id="spans"),
        pytest.param({"resourceSpans": [{"resource": {"attributes": None}, "scopeSpans": []}]}, id="resource-attrs"),
    ],
)
def test_null_containers_are_empty_silently(tmp_path, doc):
    f = write(tmp_path / "t.jsonl", json.dumps(doc).encode(), line(root(), child()))
    traces, warnings = load(f)
    assert warnings == [] and set(traces) == {ROOT_TRACE}


def test_a_null_resource_attributes_keeps_the_spans_and_their_service(tmp_path):
    doc = traces_data(root(), child())
    doc["resourceSpans"][0]["resource"] = {"attributes": None}
    f = write(tmp_path / "t.jsonl", json.dumps(doc).encode())
    traces, warnings = load(f)
    assert warnings == [] and {sp.service for sp in traces[ROOT_TRACE].values()} == {"unknown_service"}


def test_invalid_ids_still_skip_the_span(tmp_path):
    f = write(tmp_path / "t.jsonl", line(root(), child(span_id="nothex!!nothex!!", attributes=None)))
    traces, warnings = load(f)
    assert set(traces[ROOT_TRACE]) == {"f000000000000001"}
    assert warnings == [f"{f}:1: span skipped: missing or invalid span id (need 16 hex digits, not all zero)"]


def test_base64_ids_are_named_as_such_and_skipped(tmp_path):
    # protobuf's JSON mapping (MessageToJson) writes ids in base64; OTLP JSON needs hex, and
    # the ids are not guessed at. The warning says what the id is, without quoting it.
    b64_trace, b64_span = "W47/95gDgQPSabYzgT/GDA==", "8AAAAAAAAAE="  # f000000000000001
    f = write(tmp_path / "t.jsonl",
              line(root(trace_id=b64_trace)), line(root(span_id=b64_span)),
              line(root(), child(parent=b64_span, attributes=None)), line(root(trace_id=OTHER_TRACE)))
    traces, warnings = load(f)
    assert set(traces) == {ROOT_TRACE, OTHER_TRACE} and set(traces[ROOT_TRACE]) == {"f000000000000001"}
    hint = "; this one is base64, as protobuf's JSON mapping writes ids: OTLP JSON needs hex)"
    assert [w.split(": ", 1)[0] for w in warnings] == [f"{f}:1", f"{f}:2", f"{f}:3"]
    assert all(w.endswith(hint) and b64_trace not in w and b64_span not in w for w in warnings)
    # hex of the wrong length, or text that only looks like base64, gets no such hint
    f2 = write(tmp_path / "u.jsonl", line(root(span_id="f00000000000001")), line(root(span_id="not/base64/x")),
               line(root(trace_id=OTHER_TRACE)))
    warnings = load(f2)[1]
    assert len(warnings) == 2 and not any("is base64" in w for w in warnings)


def _js_bytes(hex_id: str) -> dict:
    """An id as JSON.stringify writes a Uint8Array: {"0": 240, "1": 0, …}."""
    return {str(i): b for i, b in enumerate(bytes.fromhex(hex_id))}


def _js_long_bits(ns: int) -> dict:
    return {"low": ns & 0xFFFFFFFF, "high": ns >> 32}


def test_javascripts_protobuf_encoding_written_as_json_is_named_as_such(tmp_path):
    # OpenTelemetry JS's createExportTraceServiceRequest (public until otlp-transformer 0.5x)
    # encodes for protobuf by default: ids as Uint8Arrays and times as {low, high}, which
    # JSON.stringify writes as objects (checked with 0.52.1). Not OTLP JSON: such a span is
    # skipped (its ids are not guessed at) and a {low, high} time ignored, each warning
    # saying what was written, never the values
    js_span = root(traceId=_js_bytes(ROOT_TRACE), spanId=_js_bytes("f000000000000003"),
                   startTimeUnixNano=_js_long_bits(1_700_000_000_000_000_000))
    long_bits_only = child(startTimeUnixNano=_js_long_bits(1_700_000_000_000_000_000))
    f = write(tmp_path / "t.jsonl", line(root(), js_span), line(long_bits_only))
    traces, warnings = load(f)
    assert set(traces[ROOT_TRACE]) == {"f000000000000001", "f000000000000002"}
    assert len(warnings) == 2
    assert warnings[0].startswith(f"{f}:1: ") and warnings[0].endswith(
        "skipped: Expected `str`, got `object` - at `$.traceId`; its ids are byte arrays written as JSON"
        " objects, as OpenTelemetry JS encodes them for protobuf: OTLP JSON needs hex (its JsonTraceSerializer"
        " writes it)")
    assert warnings[1] == (f"{f}:2: resourceSpans[0].scopeSpans[0].spans[0]: invalid startTimeUnixNano ignored"
                           " (a {low, high} pair, as OpenTelemetry JS encodes it for protobuf: OTLP JSON needs"
                           " a decimal integer)")
    # an object that is no byte array, or a time that is some other object, gets no such hint
    f2 = write(tmp_path / "u.jsonl", line(root(spanId={"1": 2})), line(child(startTimeUnixNano={"low": 1})))
    warnings = load(f2)[1]
    assert len(warnings) == 2 and not any("OpenTelemetry JS" in w for w in warnings)


# -- E: the truncation warning names the limit of what was cut -----------------------------


@pytest.mark.parametrize(
    ("change", "text"),
    [
        pytest.param({"name": "n" * (otlp.MAX_NAME_CHARS + 5)},
                     f"over-long name truncated to {otlp.MAX_NAME_CHARS} characters", id="span-name"),
        pytest.param({"attributes": [s("k" * (otlp.MAX_NAME_CHARS + 5), "v")]},
                     f"over-long attribute key truncated to {otlp.MAX_NAME_CHARS} characters", id="key"),
        pytest.param({"name": "n" * (otlp.MAX_NAME_CHARS + 5),
                      "attributes": [s("k", "v" * (otlp.MAX_VALUE_CHARS + 5))]},
                     f"over-long name truncated to {otlp.MAX_NAME_CHARS} characters, "
                     f"value truncated to {otlp.MAX_VALUE_CHARS} characters", id="both"),
    ],
)
def test_truncation_warning_says_the_limit_that_applied(tmp_path, change, text):
    f = write(tmp_path / "t.jsonl", line(root(OTHER_TRACE, "b000000000000001", **change)))
    traces, warnings = load(f)
    assert warnings == [f"{f}:1: resourceSpans[0].scopeSpans[0].spans[0]: {text}"]
    span = traces[OTHER_TRACE]["b000000000000001"]
    if "name" in change:
        assert len(span.name) == otlp.MAX_NAME_CHARS


# -- D: documents one after another, or followed by garbage ---------------------------------


def pretty(*spans: dict, indent: int = 2) -> bytes:
    return json.dumps(traces_data(*spans), indent=indent).encode()


def test_two_pretty_documents_back_to_back_are_both_read(tmp_path):
    """``jq . traces.jsonl > traces.json`` writes one pretty document per line it read."""
    f = tmp_path / "jq.json"
    f.write_bytes(pretty(root()) + b"\n" + pretty(child()) + b"\n" + pretty(root(OTHER_TRACE, "b000000000000001")) + b"\n")
    traces, warnings = load(f)
    assert warnings == []
    assert set(traces[ROOT_TRACE]) == {"f000000000000001", "f000000000000002"}
    assert set(traces[OTHER_TRACE]) == {"b000000000000001"}
    assert "cross-tenant" in findings(f)
    proc = cli(tmp_path, "check", f, "--fail-on", "critical")
    assert proc.returncode == 1, proc.stderr


def _traces_and_peak(path: Path) -> tuple[int, int]:
    """How many traces loading ``path`` gives, and the peak of memory it allocated."""
    tracemalloc.start()
    try:
        n = sum(1 for _ in iter_traces([str(path)]))
        return n, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _jq_stream(n: int) -> bytes:
    """n pretty documents (``jq .`` of JSON Lines), document i holding trace i's root and
    the child of trace i - 1 (each trace spans two documents)."""
    ids = [f"{i + 1:032x}" for i in range(n)]
    docs = [pretty(root(ids[i]), *([child(ids[i - 1])] if i else [])) for i in range(n)]
    return b"\n".join(docs) + b"\n"


def test_a_stream_of_documents_gives_each_trace_once_its_last_document_is_read(tmp_path):
    """Every trace of a stream of documents was held to the file's end (~5 KB a span, a
    1.4 GB peak for 200,000 spans): a trace now closes after the document that mentions
    it last, as a trace of JSON Lines does after its last line."""
    f = tmp_path / "jq.json"
    f.write_bytes(_jq_stream(40))
    stats = LoadStats()
    read_at_close = []
    traces = []
    for trace in iter_traces([str(f)], stats=stats):
        read_at_close.append(stats.spans)
        traces.append(trace)
    assert [len(t.spans) for t in traces] == [2] * 39 + [1]  # each whole: root, then its child
    assert [int(t.trace_id, 16) for t in traces] == list(range(1, 41))
    assert read_at_close[0] == 3 and read_at_close[-1] == 79  # not 79 spans read before the first


def test_a_stream_of_documents_is_not_held_twice(tmp_path):
    """Reading a stream of documents held it twice: pass 1's copy stayed in memory, kept
    by a decode error's traceback (a reference cycle the paused collector never freed)."""
    f = tmp_path / "jq.json"
    data = _jq_stream(3000)
    f.write_bytes(data)
    _, peak = _traces_and_peak(f)
    assert peak < 3 * len(data), (peak, len(data))  # (twice it, and every span held: over 4x)


def _one_document(n: int, indent: int | None = 2) -> bytes:
    """One TracesData document of n traces over two resources (the stream of _jq_stream
    as one value): trace i's root in the first resource, its child in the second."""
    ids = [f"{i + 1:032x}" for i in range(n)]
    first = traces_data(*(root(t) for t in ids))["resourceSpans"]
    second = traces_data(*(child(t) for t in ids), resource_attrs=[s("service.name", "svc-b")])["resourceSpans"]
    return json.dumps({"resourceSpans": first + second}, indent=indent).encode() + b"\n"


@pytest.fixture
def small_chunks(monkeypatch):
    """A document past 0 bytes read in chunks of 16 spans (in use: past 8 MiB, of 2,048)."""
    monkeypatch.setattr(loading, "_CHUNKED_OVER", 0, raising=False)
    monkeypatch.setattr(loading, "_CHUNK_SPANS", 16, raising=False)


@pytest.mark.parametrize("indent", [2, None])
def test_a_large_single_document_is_read_in_chunks_with_the_same_analysis(tmp_path, small_chunks, indent):
    """A single document was decoded whole, every span of it held at once (200,000 spans
    peaked at 1.4 GB): its spans are read in chunks, each trace analysed once the chunk
    that mentions it last is read, and the analysis is the JSON Lines file's."""
    doc = tmp_path / "one.json"
    doc.write_bytes(_one_document(40, indent))
    stats = LoadStats()
    at_close = []
    for trace in iter_traces([str(doc)], stats=stats):
        at_close.append(stats.spans)
        assert len(trace.spans) == 2
    assert len(at_close) == 40 and at_close[0] < 80 and at_close[-1] == 80  # not all 80 read before the first
    lines = write(tmp_path / "t.jsonl", *(line(root(f"{i + 1:032x}"), child(f"{i + 1:032x}")) for i in range(40)))
    a, b = analyze([doc]), analyze([lines])
    assert [(f.rule, f.trace_id, f.span_id) for f in a.findings] == [(f.rule, f.trace_id, f.span_id) for f in b.findings]
    assert len(a.findings) == 40 and all(f.origin.startswith(f"{doc}:") for f in a.findings)


@pytest.mark.parametrize("shape", ["one-document", "jq-stream"])
def test_reading_a_large_document_reports_progress_as_it_goes(tmp_path, small_chunks, monkeypatch, shape):
    """A document of gigabytes takes minutes: progress was said only once it was read."""
    monkeypatch.setattr(loading, "_PROGRESS_STEP", 1)
    doc = tmp_path / "docs.json"
    doc.write_bytes(_one_document(40) if shape == "one-document" else _jq_stream(40))
    size = doc.stat().st_size
    seen = []
    for _ in iter_traces([str(doc)], on_progress=lambda done, total: seen.append((done, total))):
        pass
    assert len(seen) > 3 and all(total == size for _, total in seen)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen) and seen[-1][0] == size
    assert seen[0][0] < size  # said before the end


def test_a_chunked_documents_bad_span_is_named_at_its_own_line(tmp_path, small_chunks):
    data = _one_document(30).replace(b'"spanId": "f000000000000002"', b'"spanId": 7', 1)
    doc = tmp_path / "one.json"
    doc.write_bytes(data)
    traces, warnings = load(doc)
    assert len(traces) == 30 and sum(len(t) for t in traces.values()) == 59
    [warning] = warnings
    line_no = data[: data.index(b'"spanId": 7')].count(b"\n") + 1
    assert warning.startswith(f"{doc}:{line_no}: ") and "skipped" in warning, warning


@pytest.mark.parametrize("indent", [2, None], ids=["document", "huge-line"])
@pytest.mark.parametrize("scopes", ["scopeSpans", "instrumentationLibrarySpans"])
def test_a_chunks_bad_span_is_named_by_its_place_in_the_document(tmp_path, monkeypatch, indent, scopes):
    """A chunk is decoded as a document of its own: a bad span's warning named its place
    in that (resourceSpans[0].scopeSpans[0].spans[1]), not in the file, the only pointer
    to it on a huge line."""
    spans = [root(f"{i + 1:032x}", f"{i + 1:016x}") for i in range(40)]
    spans[37]["name"] = 7
    data = {"resourceSpans": [{"resource": {"attributes": [s("service.name", "svc-a")]},
                               scopes: [{"spans": spans[:30]}, {"spans": spans[30:]}]}]}
    f = tmp_path / "one.json"
    f.write_bytes(json.dumps(data, indent=indent).encode() + b"\n")
    whole = load(f)[1]
    monkeypatch.setattr(loading, "_CHUNKED_OVER", 0)
    monkeypatch.setattr(loading, "_CHUNK_SPANS", 16)
    traces, warnings = load(f)
    assert len(traces) == 39 and warnings == whole
    assert f"resourceSpans[0].{scopes}[1].spans[7] skipped" in warnings[0], warnings


@pytest.mark.parametrize("indent", [2, None], ids=["document", "huge-line"])
def test_a_chunks_escaped_trace_id_closes_with_its_chunk(tmp_path, small_chunks, indent):
    """Trace ids written with \\u escapes (which the scan's regex cannot see) were found by
    decoding the whole document or line, every span of it at once, and their traces held
    to its end; now each chunk that has escapes is decoded, its traces closing with it."""
    spans = [sp for i in range(40) for sp in (root(f"{i + 1:032x}"), child(f"{i + 1:032x}"))]
    data = json.dumps(traces_data(*spans), indent=indent).encode() + b"\n"
    data = data.replace(b'"traceId": "' + f"{1:032x}".encode(), b'"traceId": "\\u0030' + f"{1:032x}".encode()[1:])
    data = data.replace(b'"key": "flowmap.tenant"', b'"key": "flowmap.t\\u0065nant"', 1)  # (an escaped key: a huge line's trigger)
    f = tmp_path / "one.json"
    f.write_bytes(data)
    stats = LoadStats()
    first_closed = {}
    for trace in iter_traces([str(f)], stats=stats):
        first_closed.setdefault(trace.trace_id, stats.spans)
        assert len(trace.spans) == 2, trace.trace_id
    assert len(first_closed) == 40 and first_closed[f"{1:032x}"] < 80, first_closed


def test_a_large_single_document_with_an_escape_is_not_decoded_whole_to_find_ids(tmp_path):
    """One \\u escape anywhere in a single large document (a name json.dumps wrote with
    ensure_ascii) had pass 1 decode it whole to find escaped trace ids: a 4x peak."""
    doc = tmp_path / "one.json"
    spans = [span for i in range(6000) for span in (root(f"{i + 1:032x}"), child(f"{i + 1:032x}"))]
    spans[5]["name"] = "caf\u00e9"
    data = json.dumps(traces_data(*spans), indent=2).encode()
    assert len(data) > 8 << 20 and b"\\u00e9" in data
    doc.write_bytes(data)
    n, peak = _traces_and_peak(doc)
    assert n == 6000
    assert peak < 3 * len(data), (peak, len(data))  # (2.2x; was over 4x)


def test_a_large_single_document_is_not_decoded_whole_to_learn_it_is_one(tmp_path):
    """Telling a document from JSON Lines decoded it whole, all its objects at once: a
    1 GB peak for a document of 383 MB; now a skim, and its spans a chunk at a time."""
    doc = tmp_path / "one.json"
    data = json.dumps(traces_data(*(span for i in range(6000) for span in (root(f"{i + 1:032x}"),
                                                                         child(f"{i + 1:032x}")))), indent=2).encode()
    assert len(data) > 8 << 20  # (read in chunks as it is, not by a test's setting: past 8 MiB)
    doc.write_bytes(data)
    n, peak = _traces_and_peak(doc)
    assert n == 6000
    assert peak < 2 * len(data), (peak, len(data))  # (the file, and a few chunks; was over 5x)


def test_compact_documents_without_newlines_between_them(tmp_path):
    f = tmp_path / "docs.json"
    f.write_bytes(b"{\n" + line(root())[1:] + line(child()))
    traces, warnings = load(f)
    assert warnings == [] and set(traces[ROOT_TRACE]) == {"f000000000000001", "f000000000000002"}


@pytest.mark.parametrize("before", [b"", line(root()) + b"\n"], ids=["documents", "after-a-json-line"])
def test_many_records_on_one_line_take_time_linear_in_them(tmp_path, before):
    """Records written without newlines between them (a writer that lost its newlines),
    as a file of documents or a line among JSON Lines: each one looked for the next line
    that starts a document over the rest of the data (6,000 records: ~10 s). Timed
    against the same records one a line."""
    records = [line(root(f"{i:032x}", f"{i:016x}")) for i in range(1, 6_001)]
    joined, lines = tmp_path / "joined.json", tmp_path / "lines.jsonl"
    joined.write_bytes(before + b"".join(records) + b"\n")
    lines.write_bytes(before + b"\n".join(records) + b"\n")
    took = []
    for f in (lines, joined):
        start = time.process_time()
        traces, warnings = load(f)
        took.append(time.process_time() - start)
        assert len(traces) == 6_000 + bool(before) and warnings == []
    assert took[1] < 5 * took[0] + 1, took


def test_document_with_trailing_garbage_keeps_the_document_one_warning(tmp_path):
    f = tmp_path / "doc.json"
    data = pretty(root(), child()) + b"\n\ngarbage " + SECRET.encode() + b"\n"
    f.write_bytes(data)
    garbage_line = data[: data.index(b"garbage")].count(b"\n") + 1
    traces, warnings = load(f)
    assert set(traces[ROOT_TRACE]) == {"f000000000000001", "f000000000000002"}
    assert warnings == [f"{f}:{garbage_line}: invalid JSON after a document (invalid character); rest of file skipped"]
    proc = cli(tmp_path, "check", f, "--format", "json")
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["summary"]["findings"]["cross-tenant"] == 1


def test_second_document_truncated_keeps_the_first(tmp_path):
    f = tmp_path / "cut.json"
    second = pretty(root(OTHER_TRACE, "b000000000000001"))
    f.write_bytes(pretty(root(), child()) + b"\n" + second[: len(second) // 2])
    traces, warnings = load(f)
    assert set(traces) == {ROOT_TRACE}
    assert len(warnings) == 1 and warnings[0].startswith(f"{f}:") and "truncated); rest of file skipped" in warnings[0]
    assert int(warnings[0].split(":")[1]) > pretty(root(), child()).count(b"\n")


def test_documents_with_invalid_utf8_and_surrogates_are_split_where_they_end(tmp_path):
    first = pretty(root(name="caf@")).replace(b"@", b"\xff")
    second = pretty(child(name="@")).replace(b'"@"', b'"\\ud800"')
    f = tmp_path / "docs.json"
    f.write_bytes(first + b"\n" + second + b"\n")
    traces, warnings = load(f)
    assert set(traces[ROOT_TRACE]) == {"f000000000000001", "f000000000000002"}
    assert traces[ROOT_TRACE]["f000000000000001"].name == "caf\ufffd"
    second_line = first.count(b"\n") + 2
    assert warnings == [f"{f}:1: invalid UTF-8 bytes replaced",
                        f"{f}:{second_line}: invalid \\u escapes (unpaired UTF-16 surrogates) replaced"]


# A stream of four documents: the second breaks. Its damage costs at most its own lines:
# reading resumes at the next line that starts with "{" (how jq begins every document).
OTHER_ROOT = root(OTHER_TRACE, "b000000000000001")
OTHER_CHILD = child(OTHER_TRACE, "b000000000000002", parent="b000000000000001")


@pytest.mark.parametrize("indent", [2, 0])
@pytest.mark.parametrize("damage", ["stray-brace", "bad-character", "missing-brace", "cut-short"])
def test_damage_in_the_second_document_costs_only_that_document(tmp_path, damage, indent):
    """Also written with ``indent=0``, where nested objects start at the first column
    too: a document begins where its first key is resourceSpans (each piece of the
    damaged document was a warning of its own, and none of its spans was kept)."""
    pretty = functools.partial(globals()["pretty"], indent=indent)
    second = pretty(child(extra_attrs=[s("tenant_id", SECRET)]))
    broken = {"stray-brace": second + b"}",
              "bad-character": second.replace(b'"name": "x"', b'"name" x: "x"'),
              "missing-brace": second[:-1],
              # where a value is due: the third document parses as the span id, the error
              # comes where the fourth begins, yet the third is read
              "cut-short": second[: second.index(b'"f000000000000002"')]}[damage]
    data = b"\n".join([pretty(root()), broken, pretty(OTHER_ROOT), pretty(OTHER_CHILD)]) + b"\n"
    f = tmp_path / "jq.json"
    f.write_bytes(data)
    traces, warnings = load(f)
    assert set(traces[OTHER_TRACE]) == {"b000000000000001", "b000000000000002"}  # documents 3 and 4
    first = pretty(root()).count(b"\n") + 2  # the lines of the second document
    last = first + broken.rstrip(b"\n").count(b"\n")
    third = _line_of(data, pretty(OTHER_ROOT))
    if damage == "stray-brace":  # the document is whole: only the brace after it is skipped
        assert set(traces[ROOT_TRACE]) == {"f000000000000001", "f000000000000002"}
        assert warnings == [f"{f}:{last}: invalid JSON after a document (invalid character); line {last} skipped"]
    elif damage == "bad-character":  # the document is lost, and only it
        assert set(traces[ROOT_TRACE]) == {"f000000000000001"}
        at = _line_of(data, b'"name" x:')
        assert warnings == [f"{f}:{at}: invalid JSON after a document (expected ':'); lines {first}-{last} skipped"]
    elif damage == "cut-short":
        assert set(traces[ROOT_TRACE]) == {"f000000000000001"}
        assert warnings == [f"{f}:{third - 1}: invalid JSON after a document (truncated); lines {first}-{third - 1} skipped"]
    else:  # its spans are complete: kept; it was cut short where the third document begins
        assert set(traces[ROOT_TRACE]) == {"f000000000000001", "f000000000000002"}
        assert warnings == [(f"{f}:{third - 1}: invalid JSON after a document (truncated); "
                             f"1 complete span before it kept, lines {last}-{third - 1} skipped")]
    assert "cross-tenant" in findings(f)
    proc = cli(tmp_path, "check", f, "--format", "json")
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["summary"]["findings"]["cross-tenant"] == 2 - (damage in ("bad-character", "cut-short"))


@pytest.mark.parametrize("indent", [2, 0])
def test_a_stray_brace_that_closes_a_documents_span_early_keeps_no_part_of_it(tmp_path, indent):
    """A stray ``}`` after a span's first keys makes them a complete span (without its
    tenant tag and boundary: an untagged tool call under a tagged parent), and the error
    shows only at its next key: that part was kept and judged. The span before it, which
    the broken one followed, still is."""
    data = pretty(root(), child(), indent=indent)
    at = data.index(b'"f000000000000002"') + len(b'"f000000000000002"')
    f = tmp_path / "doc.json"
    f.write_bytes(data[:at] + b"}" + data[at:] + b"\n" + pretty(OTHER_ROOT, indent=indent) + b"\n")
    traces, warnings = load(f)
    assert set(traces[ROOT_TRACE]) == {"f000000000000001"} and set(traces[OTHER_TRACE]) == {"b000000000000001"}
    [warning] = warnings
    assert "1 complete span before it kept" in warning, warning
    assert "context-dropped" not in findings(f)


@pytest.mark.parametrize("cut", ["spans-bracket", "span-comma", "span-brace"])
def test_a_document_cut_at_a_span_boundary_costs_not_the_next_one(tmp_path, cut):
    """Cut where a span begins or ends, a document's spans must not run on into the next
    document (read as one more span of the cut one, the next document was lost)."""
    first = pretty(root())
    if cut == "spans-bracket":  # before the first span
        cut_doc = first[: first.index(b'"spans": [') + len(b'"spans": [')]
    else:  # after the whole span, with or without its comma
        span_end = first.index(b"}", first.index(b'"endTimeUnixNano"')) + 1
        cut_doc = first[:span_end] + (b"," if cut == "span-comma" else b"")
    data = cut_doc + b"\n" + pretty(OTHER_ROOT) + b"\n"
    f = tmp_path / "jq.json"
    f.write_bytes(data)
    traces, warnings = load(f)
    assert set(traces[OTHER_TRACE]) == {"b000000000000001"}  # the next document, whole
    [warning] = warnings
    line = cut_doc.count(b"\n") + 1  # the cut document's last line
    assert "(truncated)" in warning and warning.startswith(f"{f}:{line}:"), warning


def test_a_document_nested_too_deeply_keeps_its_spans(tmp_path):
    deep = pretty(child(extra_attrs=[{"key": "deep", "value": {"stringValue": "x"}}]))
    nest = b"[" * 1200 + b"1" + b"]" * 1200  # deeper than the decoders go
    deep = deep.replace(b'"stringValue": "x"', b'"arrayValue": {"values": [{"intValue": 1}]}, "x": ' + nest)
    data = b"\n".join([pretty(root()), deep, pretty(OTHER_ROOT)]) + b"\n"
    f = tmp_path / "jq.json"
    f.write_bytes(data)
    traces, warnings = load(f)
    assert set(traces[OTHER_TRACE]) == {"b000000000000001"}  # the document after it
    # the deep value emptied below the cap: the document's span is kept
    assert set(traces[ROOT_TRACE]) == {"f000000000000001", "f000000000000002"}
    assert len(warnings) == 1 and "nested more than 256 levels deep emptied" in warnings[0], warnings


@pytest.mark.parametrize("opener", [b"[", b'{"resourceSpans": ['])
def test_lines_of_brackets_that_never_close_cost_only_themselves(tmp_path, opener):
    """A file that starts with more unclosed brackets than the decoder nests (lines of
    them, the rest JSON Lines or documents): the whole file was taken for one document
    too deep to decode, and nothing was read (exit 2)."""
    garbage = (opener + b"\n") * 1500
    for rest in (line(root()) + b"\n" + line(child()) + b"\n", pretty(root()) + b"\n" + pretty(child()) + b"\n"):
        f = tmp_path / "t.jsonl"
        f.write_bytes(garbage + rest)
        traces, warnings = load(f)
        assert set(traces[ROOT_TRACE]) == {"f000000000000001", "f000000000000002"}
        assert warnings[0].startswith(f"{f}:1: ")


def test_a_value_that_never_closes_is_read_on_no_further_than_a_cap(tmp_path, monkeypatch):
    """A line that begins a value, then lines that only ever open more (100,000 of
    them, none starting with ``{``): they were all held to the end of the file, as a list
    of lines (a 100 MB run peaked at 1.6 GB); now a bytes buffer, no bigger than the cap
    (64 MiB; 64 KiB here), the lines after it read on as lines, and the good line after
    the run is still read. Memory is compared with the same file without the run (the
    loader's read buffers)."""
    monkeypatch.setattr(loading, "_READ_ON_MAX", 64 << 10, raising=False)
    run = b'{"resourceSpans": [\n' + b'  [ "x",\n' * 100_000
    peaks = []
    for middle in (b"", run):
        f = tmp_path / "t.jsonl"
        f.write_bytes(line(root()) + b"\n" + middle + line(child()) + b"\n")
        tracemalloc.start()
        try:
            traces, warnings = load(f)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert set(traces[ROOT_TRACE]) == {"f000000000000001", "f000000000000002"}
    assert warnings[0].startswith(f"{f}:2: ") and len(warnings) > 1  # (the run is read in pieces)
    # (the run is 900 KB, 4 MB more as a list of lines; a piece decoded builds ~800 KB)
    assert peaks[1] - peaks[0] < 2 << 20, peaks


def test_bad_lines_are_not_kept_in_memory_to_the_end_of_the_load(tmp_path):
    """A line with a type error before its syntax error (decoded twice: typed, then
    generically) kept its error in the frame it was raised in, a reference cycle that the
    garbage collector, paused while the loader runs (and the analysis: see analyze), never
    freed: every such line stayed in memory to the end of the load (half of a 156 MB
    file: 30 MB more). 200 lines of 20 KB here; what is held when the last trace is read
    is compared with the same file without them."""
    bad = b'{"resourceSpans": 7, "pad": "' + b"x" * 20_000  # cut short in a string
    held = []
    for lines in ([line(root())], [line(root()), *[bad] * 200]):
        f = write(tmp_path / "t.jsonl", *lines, line(child()))
        gc.disable()
        tracemalloc.start()
        try:
            warnings: list[str] = []
            for trace in iter_traces([f], on_warning=warnings.append):
                assert set(trace.spans) == {"f000000000000001", "f000000000000002"}
                held.append(tracemalloc.get_traced_memory()[0])
        finally:
            tracemalloc.stop()
            gc.enable()
    assert len(warnings) == 200 and held[1] - held[0] < 1 << 20, held


def test_damage_in_the_first_document_keeps_the_later_ones(tmp_path):
    first = pretty(root()).replace(b'"kind": 2', b'"kind": 2 2')
    data = first + b"\n" + pretty(child()) + b"\n" + pretty(OTHER_ROOT) + b"\n"
    f = tmp_path / "jq.json"
    f.write_bytes(data)
    traces, warnings = load(f)
    assert set(traces[ROOT_TRACE]) == {"f000000000000002"} and set(traces[OTHER_TRACE]) == {"b000000000000001"}
    at, last = _line_of(data, b'"kind": 2 2'), first.count(b"\n") + 1
    assert warnings == [f"{f}:{at}: invalid JSON document (expected ',' or '}}'); lines 1-{last} skipped"]


# A document cut short keeps the spans it holds whole (as a JSON Lines file cut short keeps
# its whole lines): the ones before the last complete span object, never a part of one.
TRICKY = child(OTHER_TRACE, "b000000000000002", parent="b000000000000001",
               name='execute_tool "}]}]}]}]}', extra_attrs=[s("tenant_id", SECRET)])


@pytest.mark.parametrize("indent", [2, 0])
@pytest.mark.parametrize("cut_after", [b"}]}]}]}", b'"b000000000000002"', SECRET.encode(), b'"kind": 1'])
def test_truncated_document_keeps_its_complete_spans(tmp_path, cut_after, indent):
    data = pretty(root(), child(), OTHER_ROOT, TRICKY, indent=indent)
    cut = data.rindex(cut_after) + len(cut_after)
    f = tmp_path / "cut.json"
    f.write_bytes(data[:cut])
    traces, warnings = load(f)
    assert set(traces[ROOT_TRACE]) == {"f000000000000001", "f000000000000002"}
    assert set(traces[OTHER_TRACE]) == {"b000000000000001"}
    assert traces[ROOT_TRACE]["f000000000000002"].attributes["flowmap.tenant"] == TAG_B  # read whole
    line = data[:cut].count(b"\n") + 1
    assert warnings == [f"{f}:{line}: invalid JSON document (truncated); 3 complete spans before it kept, "
                        "rest of file skipped"]
    proc = cli(tmp_path, "check", f, "--fail-on", "critical")
    assert proc.returncode == 1, proc.stderr  # the cross-tenant call is found, not exit 2


def test_truncated_array_of_documents_keeps_the_complete_spans(tmp_path):
    text = json.dumps([traces_data(root(), child()), traces_data(OTHER_ROOT, TRICKY)], indent=2).encode()
    f = tmp_path / "cut.json"
    f.write_bytes(text[: text.index(b"}]}]}]}")])
    traces, warnings = load(f)
    assert set(traces[ROOT_TRACE]) == {"f000000000000001", "f000000000000002"}
    assert set(traces[OTHER_TRACE]) == {"b000000000000001"}
    assert len(warnings) == 1 and "3 complete spans before it kept, rest of file skipped" in warnings[0]


def test_truncated_document_keeps_no_span_whose_resource_is_not_read(tmp_path):
    """A resource written after its spans is cut off with them: such spans are not kept
    (their service and resource attributes are not known)."""
    doc = traces_data(root())
    doc["resourceSpans"].append({"scopeSpans": [{"spans": [OTHER_ROOT]}],
                                 "resource": {"attributes": [s("service.name", "svc-b")]}})
    data = json.dumps(doc, indent=2).encode()
    f = tmp_path / "cut.json"
    f.write_bytes(data[: data.index(b'"svc-b"')])
    traces, warnings = load(f)
    assert set(traces) == {ROOT_TRACE}
    assert len(warnings) == 1 and "truncated); 1 complete span before it kept" in warnings[0]


def test_truncated_second_document_keeps_its_complete_spans(tmp_path):
    second = pretty(OTHER_ROOT, TRICKY)
    data = pretty(root(), child()) + b"\n" + second[: second.index(SECRET.encode())]
    f = tmp_path / "cut.json"
    f.write_bytes(data)
    traces, warnings = load(f)
    assert set(traces[ROOT_TRACE]) == {"f000000000000001", "f000000000000002"}
    assert set(traces[OTHER_TRACE]) == {"b000000000000001"}
    line = data.count(b"\n") + 1
    assert warnings == [f"{f}:{line}: invalid JSON after a document (truncated); "
                        "1 complete span before it kept, rest of file skipped"]


@pytest.mark.parametrize("layout", ["stream", "among-lines", "single"])
def test_a_document_nested_too_deeply_and_cut_short_keeps_its_complete_spans(tmp_path, layout):
    """A writer killed in a document with a value nested deeper than the decoders go: the
    decoder stopped at the depth, before the cut, so the document was taken for valid
    JSON too deep to decode, and all its spans lost ("line skipped"; the only document:
    nothing read, exit 2). Its complete spans are kept, as those of a line cut short."""
    deep = root(OTHER_TRACE, "b000000000000001", x="deep")
    doc = pretty(deep, root(OTHER_TRACE, "b000000000000002"), root(OTHER_TRACE, "b000000000000003", name="cut"))
    doc = doc.replace(b'"deep"', b"[" * 2000 + b"]" * 2000)
    first = {"stream": pretty(root()) + b"\n", "among-lines": line(root()) + b"\n", "single": b""}[layout]
    data = first + doc[: doc.index(b'"name": "cut"')]
    f = tmp_path / "cut.json"
    f.write_bytes(data)
    traces, warnings = load(f)
    assert set(traces[OTHER_TRACE]) == {"b000000000000001", "b000000000000002"}
    assert warnings == [
        f"{f}:{_line_at(data, len(first))}: arrays and objects nested more than 256 levels deep emptied",
        f"{f}:{_line_at(data, len(data))}: invalid JSON {'after a document' if layout == 'stream' else 'document'} (truncated); "
        "2 complete spans before it kept, rest of file skipped",
    ]


@pytest.mark.parametrize("stray", [b"]", b"}}"])
def test_a_document_nested_too_deeply_and_followed_by_a_stray_bracket_keeps_its_spans(tmp_path, stray):
    """A stray closing bracket after a document with a value nested deeper than the
    decoders go: blanking the deep values gave up on it (a bracket closing one never
    opened), so the document was decoded whole and lost, all its spans with it ('JSON
    nested too deeply'). Its spans are kept, the stray line costs only itself, as after
    a document without the depth."""
    deep = pretty(root(x="deep"), root(OTHER_TRACE, "b000000000000002")).replace(b'"deep"', b"[" * 2000 + b"]" * 2000)
    data = deep + b"\n" + stray + b"\n" + pretty(child()) + b"\n"
    f = tmp_path / "stray.json"
    f.write_bytes(data)
    traces, warnings = load(f)
    assert set(traces[ROOT_TRACE]) == {"f000000000000001", "f000000000000002"}
    assert set(traces[OTHER_TRACE]) == {"b000000000000002"}
    at = _line_of(data, b"\n" + stray + b"\n") + 1
    assert warnings == [
        f"{f}:1: arrays and objects nested more than 256 levels deep emptied",
        f"{f}:{at}: invalid JSON after a document (invalid character); line {at} skipped",
    ]


def test_a_document_nested_too_deeply_cut_short_then_a_stray_bracket_keeps_its_complete_spans(tmp_path):
    """A document nested too deeply and cut short (see above), what follows the cut closing more brackets
    than were opened: its complete spans are kept all the same."""
    doc = pretty(root(x="deep"), root(OTHER_TRACE, "b000000000000002"), root(OTHER_TRACE, "b000000000000003", name="cut"))
    doc = doc.replace(b'"deep"', b"[" * 2000 + b"]" * 2000)
    data = doc[: doc.index(b'"name": "cut"')] + b"]]]}}}]]]]\n"
    f = tmp_path / "cut.json"
    f.write_bytes(data)
    traces, warnings = load(f)
    assert set(traces[ROOT_TRACE]) == {"f000000000000001"}
    assert set(traces[OTHER_TRACE]) == {"b000000000000002"}
    assert warnings[0] == f"{f}:1: arrays and objects nested more than 256 levels deep emptied"
    assert warnings[1].startswith(f"{f}:{_line_at(data, len(data) - 1)}: invalid JSON document (")
    assert warnings[1].endswith("; 2 complete spans before it kept, rest of file skipped")


# A compact document first (one line: the file is taken for JSON Lines), then pretty-printed
# ones: each of their lines was a bad JSON line, and their spans were lost. Only a line that
# fails to decode is looked at again: good JSON Lines pay nothing.
_AFTER_COMPACT = {
    "one-a-line": lambda docs: b"\n".join(docs) + b"\n",
    "joined": lambda docs: docs[0] + b"\n" + b"".join(docs[1:]) + b"\n",  # }{ between the pretty ones
    "blank-lines": lambda docs: b"\n\n".join(docs) + b"\n",
    "crlf": lambda docs: (b"\n".join(docs) + b"\n").replace(b"\n", b"\r\n"),
}


@pytest.mark.parametrize("layout", list(_AFTER_COMPACT))
def test_pretty_documents_after_a_compact_first_one_are_read(tmp_path, layout):
    docs = [line(root()), pretty(child(extra_attrs=[s("tenant_id", SECRET)])), pretty(OTHER_ROOT), pretty(OTHER_CHILD)]
    f = tmp_path / "mixed.json"
    f.write_bytes(_AFTER_COMPACT[layout](docs))
    traces, warnings = load(f)
    assert warnings == []
    assert set(traces[ROOT_TRACE]) == {"f000000000000001", "f000000000000002"}
    assert set(traces[OTHER_TRACE]) == {"b000000000000001", "b000000000000002"}
    proc = cli(tmp_path, "check", f, "--format", "json")
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout)["summary"]
    assert summary["spans"] == 4 and summary["findings"]["cross-tenant"] == 2
    assert summary["findings"]["tenant-in-telemetry"] == 1


@pytest.mark.parametrize("stray", ["@", '"'])
def test_indent_0_damage_costs_not_the_next_document_whose_first_key_is_another(tmp_path, stray):
    """A stream written with indent=0 resumes after damage at the next document: a "{"
    line whose first key is resourceSpans, or that follows the "}" line that ended the
    document before. A document with another first key (an unknown field written first)
    was taken for a part of the damaged one and lost with it; and a stray quote at the
    start of a line of an indent=2 stream made it read as one written with indent=0."""
    first = json.dumps(traces_data(root()), indent=0 if stray == "@" else 2).encode()
    other = json.dumps({"schemaVersion": "1", **traces_data(child())}, indent=0).encode()
    at = first.index(b'"traceId"') if stray == "@" else first.index(b"\n") + 1
    f = tmp_path / "docs.json"
    f.write_bytes(first[:at] + stray.encode() + first[at:] + b"\n" + other + b"\n"
                  + json.dumps(traces_data(OTHER_ROOT), indent=0).encode() + b"\n")
    traces, warnings = load(f)
    assert set(traces[ROOT_TRACE]) == {"f000000000000002"} and set(traces[OTHER_TRACE]) == {"b000000000000001"}
    [warning] = warnings
    lines = first.count(b"\n") + 1
    assert warning.startswith(f"{f}:") and warning.endswith(f"lines 1-{lines} skipped"), warning


def test_a_record_pretty_printed_among_json_lines_is_read_and_its_trace_kept_whole(tmp_path):
    """One record of a JSON Lines file pretty-printed (by hand, or by a tool that logs
    both): read, and the lines around it as JSON lines; its trace, spread over the lines
    before and after it, is yielded once, whole."""
    f = write(tmp_path / "t.jsonl", line(root()), pretty(OTHER_ROOT), line(child()), line(OTHER_CHILD))
    traces, warnings = load(f)  # (load() fails on a trace yielded in parts)
    assert warnings == []
    assert set(traces[ROOT_TRACE]) == {"f000000000000001", "f000000000000002"}
    assert set(traces[OTHER_TRACE]) == {"b000000000000001", "b000000000000002"}


@pytest.mark.parametrize("first", ["json-line", "bad-line"])
def test_records_written_with_indent_0_among_json_lines_are_read(tmp_path, first):
    """``json.dump(record, f, indent=0)``: every line starts at the first column, the
    nested objects' ``{`` too, which was taken for the next record: each piece was a bad
    value, one warning each, and the record's spans were lost (all of them, the file's
    first line not JSON)."""
    head = line(root()) if first == "json-line" else b'{"resourceSpans": [' + SECRET.encode()
    zero = json.dumps(traces_data(child(), OTHER_ROOT), indent=0).encode()
    f = write(tmp_path / "t.jsonl", head, zero, json.dumps(traces_data(OTHER_CHILD), indent=0).encode())
    traces, warnings = load(f)
    assert set(traces[OTHER_TRACE]) == {"b000000000000001", "b000000000000002"}
    if first == "json-line":
        assert warnings == [] and set(traces[ROOT_TRACE]) == {"f000000000000001", "f000000000000002"}
    else:
        assert set(traces[ROOT_TRACE]) == {"f000000000000002"}
        assert warnings == [f"{f}:1: invalid JSON (invalid character); line skipped"]


def test_two_records_on_one_json_line_are_both_read(tmp_path):
    f = write(tmp_path / "t.jsonl", line(root()), line(child()) + line(OTHER_ROOT), line(OTHER_CHILD))
    traces, warnings = load(f)
    assert warnings == []
    assert set(traces[ROOT_TRACE]) == {"f000000000000001", "f000000000000002"}
    assert set(traces[OTHER_TRACE]) == {"b000000000000001", "b000000000000002"}


def test_a_pretty_record_among_json_lines_cut_short_costs_only_its_own_lines(tmp_path):
    record = pretty(OTHER_ROOT, TRICKY)
    cut = record[: record.index(SECRET.encode())].rsplit(b"\n", 1)[0] + b"\n"  # in its second span
    head = line(root()) + b"\n" + cut
    data = head + line(child()) + b"\n"
    f = tmp_path / "t.jsonl"
    f.write_bytes(data)
    traces, warnings = load(f)
    assert set(traces[ROOT_TRACE]) == {"f000000000000001", "f000000000000002"}  # the JSON line after it
    assert set(traces[OTHER_TRACE]) == {"b000000000000001"}  # its complete span
    last = 1 + cut.count(b"\n")  # the cut record's last line
    first = head[: head.rindex(b'"traceId"')].count(b"\n")  # where the span it cut begins
    assert warnings == [f"{f}:{last}: invalid JSON document (truncated); 1 complete span before it kept, "
                        f"lines {first}-{last} skipped"]


@pytest.mark.parametrize(("bad", "what"), [
    # a JSON line cut short (a writer killed mid-line): between values, or in a string
    (line(child())[: line(child()).index(b'"attributes"')], "truncated"),
    (line(child())[: line(child()).index(b"execute_tool") + 4], "invalid character"),
    (b'{"resourceSpans": [' + SECRET.encode(), "invalid character"),
    (line(child()) + b" " + SECRET.encode(), "trailing characters"),
])
def test_one_bad_json_line_is_still_one_warning_naming_it(tmp_path, bad, what):
    """The lines after a bad line are read on only when they continue it (a pretty-printed
    document): a bad JSON line is still one warning naming it, the next lines read alone."""
    f = write(tmp_path / "t.jsonl", line(root()), bad, line(OTHER_ROOT), line(OTHER_CHILD))
    traces, warnings = load(f)
    assert set(traces[OTHER_TRACE]) == {"b000000000000001", "b000000000000002"}
    if what == "trailing characters":  # two values on the line: the record is read, what follows not
        assert set(traces[ROOT_TRACE]) == {"f000000000000001", "f000000000000002"}
        assert warnings == [f"{f}:2: invalid JSON after a document (invalid character); line 2 skipped"]
    else:
        assert set(traces[ROOT_TRACE]) == {"f000000000000001"}
        assert warnings == [f"{f}:2: invalid JSON ({what}); line skipped"]


def test_a_truncated_gzip_of_pretty_documents_after_a_compact_one_warns_once(tmp_path):
    docs = [line(root(f"{i:032x}", "f000000000000001")) if i == 1 else pretty(root(f"{i:032x}", "f000000000000001"))
            for i in range(1, 201)]
    data = gzip.compress(b"\n".join(docs) + b"\n")
    f = tmp_path / "mixed.json.gz"
    f.write_bytes(data[: len(data) // 2])
    traces, warnings = load(f)
    assert 50 < len(traces) < 200 and sorted(int(t, 16) for t in traces) == list(range(1, len(traces) + 1))
    stop = zlib.decompressobj(wbits=31).decompress(data[: len(data) // 2]).count(b"\n") + 1
    [warning] = warnings
    assert warning.startswith(f"{f}:{stop}: compressed data is corrupt or truncated (EOFError); ")
    assert warning.endswith("rest of file skipped")


# -- C: warnings about a span of a document name the span's own line -----------------------


def _line_of(data: bytes, needle: bytes) -> int:
    return _line_at(data, data.index(needle))


def _line_at(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def test_document_span_of_the_wrong_type_is_warned_at_its_own_line(tmp_path):
    data = pretty(root(), child(), root(OTHER_TRACE, "c000000000000001", name=5))
    f = tmp_path / "doc.json"
    f.write_bytes(data)
    traces, warnings = load(f)
    assert warnings == [(f"{f}:{_line_of(data, b'c000000000000001')}: resourceSpans[0].scopeSpans[0].spans[2] "
                        "skipped: Expected `str`, got `int` - at `$.name`")]
    assert _line_of(data, b"c000000000000001") > 40
    assert set(traces) == {ROOT_TRACE}


def test_document_span_with_an_invalid_id_is_warned_at_its_own_line(tmp_path):
    data = pretty(root(), child(), root(OTHER_TRACE, "nothex!!nothex!!"))
    f = tmp_path / "doc.json"
    f.write_bytes(data)
    _, warnings = load(f)
    assert warnings == [(f"{f}:{_line_of(data, b'nothex!!')}: span skipped: missing or invalid span id "
                        "(need 16 hex digits, not all zero)")]


@pytest.mark.parametrize(("span_id", "needle"), [
    (12345, b'"spanId": 12345'), (None, b'"spanId": null'), (-1.5, b'"spanId": -1.5')])
def test_document_span_whose_id_is_not_a_string_is_warned_at_its_own_line(tmp_path, span_id, needle):
    data = pretty(root(), child(), root(OTHER_TRACE, span_id))
    f = tmp_path / "doc.json"
    f.write_bytes(data)
    _, warnings = load(f)
    assert len(warnings) == 1 and warnings[0].startswith(f"{f}:{_line_of(data, needle)}: ")


def _documents(layout: str, doc: dict) -> bytes:
    """``doc`` pretty-printed as a file of one of the layouts a document comes in."""
    other = traces_data(root(OTHER_TRACE, "b000000000000001"))
    if layout == "stream":  # (jq . of JSON Lines)
        return pretty(root(OTHER_TRACE, "b000000000000001")) + b"\n" + json.dumps(doc, indent=2).encode() + b"\n"
    if layout == "among-lines":
        return line(root(OTHER_TRACE, "b000000000000001")) + b"\n" + json.dumps(doc, indent=2).encode() + b"\n" + line(
            root(OTHER_TRACE, "b000000000000002")) + b"\n"
    if layout == "array":
        return json.dumps([other, doc], indent=2).encode()
    return json.dumps(doc, indent=2).encode()  # (one document, read whole or in chunks)


@pytest.mark.parametrize("item", [False, True], ids=["typed", "lenient"])
@pytest.mark.parametrize("layout", ["document", "chunked", "stream", "among-lines", "array"])
def test_a_documents_bad_spans_are_each_named_at_their_own_line(tmp_path, monkeypatch, layout, item):
    """Warnings about a document's spans named lines found by the span's id: a duplicate
    was named at the first copy's line (or a link's, to it, written before it), and an
    item that is no span, or a span without an id, at the document's first line. Each
    is named at its own line: its spanId's, else where it begins. (``item``: with a
    value that is no span among them, the document is read by the lenient path.)"""
    no_id = {key: value for key, value in root(name="no id").items() if key != "spanId"}
    again = {"links": [{"traceId": ROOT_TRACE, "spanId": "f000000000000001"}], **root(name="again")}
    spans = [root(), child(), *(["not a span"] if item else []), again, no_id]
    data = _documents(layout, traces_data(*spans))
    f = tmp_path / "doc.json"
    f.write_bytes(data)
    if layout == "chunked":
        monkeypatch.setattr(loading, "_CHUNKED_OVER", 0)
        monkeypatch.setattr(loading, "_CHUNK_SPANS", 2)
    traces, warnings = load(f)

    def at(offset: int) -> str:
        return f"{f}:{_line_at(data, offset)}: "

    named = data.index(b'"name": "again"')
    assert warnings == [
        *([at(data.index(b'"not a span"')) + "resourceSpans[0].scopeSpans[0].spans[2] skipped: "
           "Expected `object`, got `str`"] if item else []),
        at(data.rindex(b'"spanId": "f000000000000001"', 0, named)) + f"duplicate span id f000000000000001 in "
        f"trace {ROOT_TRACE}; first one kept",
        at(data.rindex(b"{", 0, data.index(b'"name": "no id"'))) + "span skipped: missing or invalid span id "
        "(need 16 hex digits, not all zero)",
    ]
    assert set(traces[ROOT_TRACE]) == {"f000000000000001", "f000000000000002"}
    assert traces[ROOT_TRACE]["f000000000000001"].origin == at(data.index(b'"spanId": "f000000000000001"'))[:-2]


@pytest.mark.parametrize("key", ["resourceSpans", "scopeSpans", "instrumentationLibrarySpans", "spans"])
def test_a_documents_bad_spans_are_named_at_their_own_lines_when_a_key_is_written_with_escapes(tmp_path, key):
    """A key around the spans written with \\u escapes (valid JSON, and read so by the
    decoders) was not recognised where the lines are found: every warning about the
    document's spans named its first line. Each names its own line."""
    doc = json.dumps(traces_data(root(), "not a span", root()), indent=2).encode()
    if key == "instrumentationLibrarySpans":  # (the old name, before OTLP 0.15)
        doc = doc.replace(b'"scopeSpans"', b'"instrumentationLibrarySpans"')
    escaped = "".join(f"\\u{ord(c):04x}" if c in "Sa" else c for c in key).encode()
    data = doc.replace(b'"%s"' % key.encode(), b'"%s"' % escaped)
    assert escaped in data and escaped != key.encode()
    f = tmp_path / "escaped.json"
    f.write_bytes(data)
    traces, warnings = load(f)
    assert set(traces[ROOT_TRACE]) == {"f000000000000001"}
    name = "instrumentationLibrarySpans" if key == "instrumentationLibrarySpans" else "scopeSpans"
    assert warnings == [
        f"{f}:{_line_of(data, b'not a span')}: resourceSpans[0].{name}[0].spans[1] skipped: Expected `object`, "
        "got `str`",
        f"{f}:{_line_at(data, data.rindex(b'f000000000000001'))}: duplicate span id f000000000000001 in trace "
        f"{ROOT_TRACE}; first one kept",
    ]


def test_a_documents_spans_after_a_value_nested_too_deeply_are_named_at_their_own_lines(tmp_path):
    """Nested deeper than msgspec reads, a span's value is read past by its brackets:
    the spans after it are still named at their own lines, not at the document's."""
    deep = root(attributes=[kv("x", {"arrayValue": {"values": "deep"}})])
    data = pretty(deep, "not a span", root(name="again")).replace(b'"deep"', b"[" * 2000 + b"]" * 2000)
    f = tmp_path / "doc.json"
    f.write_bytes(data)
    traces, warnings = load(f)
    assert warnings[2:] == [
        f"{f}:{_line_of(data, b'not a span')}: resourceSpans[0].scopeSpans[0].spans[1] skipped: Expected `object`, "
        "got `str`",
        f"{f}:{_line_at(data, data.rindex(b'f000000000000001'))}: duplicate span id f000000000000001 in trace "
        f"{ROOT_TRACE}; first one kept",
    ]
    assert warnings[0].startswith(f"{f}:1: arrays and objects nested more than 256 levels deep emptied")
    assert warnings[1].startswith(f"{f}:{_line_of(data, b'f000000000000001')}: resourceSpans[0].scopeSpans[0]."
                                  'spans[0]: attribute "x" dropped')
    assert set(traces[ROOT_TRACE]) == {"f000000000000001"}


def test_document_attribute_dropped_at_its_span_line_in_the_second_document(tmp_path):
    first = pretty(root())
    second = pretty(child(extra_attrs=[kv("n", {"intValue": str(2**64)})]))
    data = first + b"\n" + second
    f = tmp_path / "docs.json"
    f.write_bytes(data)
    traces, warnings = load(f)
    assert set(traces[ROOT_TRACE]) == {"f000000000000001", "f000000000000002"}
    assert warnings == [(f"{f}:{_line_of(data, b'f000000000000002')}: resourceSpans[0].scopeSpans[0].spans[0]: "
                        "attribute \"n\" dropped (Expected `int` <= 9223372036854775807 - at `$.value.intValue`)")]


# -- B: a line the scan must repair to see its trace id -------------------------------------


@pytest.mark.parametrize("damage", ["surrogate", "utf8"])
def test_escaped_key_and_a_repair_on_a_later_line_do_not_split_the_trace(tmp_path, damage):
    late = line(child(name="execute_tool s@arch")).replace(b'"traceId"', b'"trace\\u0049d"')
    late = late.replace(b"@", b"\\ud800" if damage == "surrogate" else b"\xff")
    f = write(tmp_path / "t.jsonl", line(root()), line(root(OTHER_TRACE, "b000000000000001")), late)
    traces, warnings = load(f)
    assert set(traces[ROOT_TRACE]) == {"f000000000000001", "f000000000000002"}
    assert len(warnings) == 1 and warnings[0].startswith(f"{f}:3: ") and "replaced" in warnings[0]
    assert "cross-tenant" in findings(f)


def test_escaped_key_on_a_line_that_starts_with_a_byte_order_mark(tmp_path):
    """Files joined with cat: a BOM starts a line; pass 2 drops it, so must the scan."""
    late = b"\xef\xbb\xbf" + line(child()).replace(b'"traceId"', b'"trace\\u0049d"')
    f = write(tmp_path / "t.jsonl", line(root()), line(root(OTHER_TRACE, "b000000000000001")), late)
    traces, warnings = load(f)
    assert warnings == [] and set(traces[ROOT_TRACE]) == {"f000000000000001", "f000000000000002"}


def test_a_trace_split_is_the_warning_shown_over_a_repair_on_the_same_line():
    warnings: list[str] = []
    loader = _Loader([], warnings.append, None, LoadStats())
    loader.warn_at("f.jsonl:3", "invalid \\u escapes (unpaired UTF-16 surrogates) replaced")
    loader.warn_at("f.jsonl:3", f"trace {ROOT_TRACE} continues after it was complete; analysed in parts")
    loader._flush()
    assert warnings == [(f"f.jsonl:3: trace {ROOT_TRACE} continues after it was complete; analysed in parts "
                        "(and 1 more problem on this line)")]


def test_an_event_time_out_of_range_costs_only_the_time(tmp_path):
    f = write(tmp_path / "t.jsonl", line(root(), child(events=[{"name": "retry", "timeUnixNano": str(2**64)}])))
    traces, warnings = load(f)
    kept = traces[ROOT_TRACE]["f000000000000002"]
    assert [(e.name, e.time_unix_nano) for e in kept.events] == [("retry", 0)]
    assert warnings == [f"{f}:1: resourceSpans[0].scopeSpans[0].spans[1]: invalid events[0].timeUnixNano ignored"]


def test_a_dropped_attributes_key_cut_inside_a_flagged_id_shows_no_part_of_it(tmp_path):
    """The warning clipped a long key to 64 characters before the analysis masked it, so a
    flagged id past the cut was left as its first characters ("acme-sec"), which no
    masking of the whole id finds: in stderr, the JSON's warnings, the risk map."""
    import json as _json

    from flowmap import analyze

    secret = "acme-secret-tenant"
    key = "quota." + "x" * 50 + secret + ".used"

    def doc(trace_id, attrs):
        span = {"traceId": trace_id, "spanId": "00000000000000a1", "name": "op", "kind": 2,
                "startTimeUnixNano": "1", "endTimeUnixNano": "2", "attributes": attrs}
        return _json.dumps({"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [span]}]}]})

    f = tmp_path / "t.jsonl"
    f.write_text(doc("5b8efff798038103d269b633813fc60c", [{"key": key, "value": {"intValue": "99999999999999999999999"}}])
                 + "\n" + doc("0af7651916cd43dd8448eb211c80319c", [{"key": "tenant_id", "value": {"stringValue": secret}}])
                 + "\n")
    seen: list[str] = []
    a = analyze([f], on_warning=seen.append)
    assert any("tenant-in-telemetry" == x.rule for x in a.findings)
    (warning,) = a.warnings
    assert "attribute \"quota." in warning and "acme" not in warning
    assert not any("acme" in w for w in seen)
    # the callback gets warnings as they come, masked with what was flagged so far
    g = tmp_path / "flagged-first.jsonl"
    g.write_text(doc("0af7651916cd43dd8448eb211c80319c", [{"key": "tenant_id", "value": {"stringValue": secret}}])
                 + "\n" + doc("5b8efff798038103d269b633813fc60c",
                              [{"key": f"quota.{secret}", "value": {"intValue": "99999999999999999999999"}}]) + "\n")
    seen.clear()
    analyze([g], on_warning=seen.append)
    assert len(seen) == 1 and "quota." in seen[0] and secret not in seen[0]
