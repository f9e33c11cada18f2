"""The JSON Lines exporter writes exactly OTLP JSON (checked against the official protobuf
encoder), one TracesData per line, and stays whole under threads and processes."""

from __future__ import annotations

import base64
import enum
import json
import logging
import multiprocessing
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as otlp_proto_encode
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from flowmap.exporter import DEFAULT_FILE, FILE_ENV, JsonLinesSpanExporter, encode_spans

_ID_KEYS = {"traceId": 16, "spanId": 8, "parentSpanId": 8}


def _ids_to_hex(node):
    """Turn the protobuf JSON's base64 ids into the hex ids OTLP/JSON mandates."""
    if isinstance(node, list):
        return [_ids_to_hex(n) for n in node]
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k in _ID_KEYS and isinstance(v, str):
                raw = base64.b64decode(v)
                assert len(raw) == _ID_KEYS[k]
                out[k] = raw.hex()
            else:
                out[k] = _ids_to_hex(v)
        return out
    return node


def reference_json(spans):
    message = otlp_proto_encode(spans)
    return _ids_to_hex(MessageToDict(message, use_integers_for_enums=True))


def _record_spans():
    """Real SDK spans covering every field the encoder handles."""
    memory = InMemorySpanExporter()
    res_a = Resource.create({"service.name": "svc-a", "flowmap.key_id": "abcd1234"}, schema_url="https://x/1")
    res_b = Resource.create({"service.name": "svc-b"})
    prov_a = TracerProvider(resource=res_a, span_limits=SpanLimits(max_attributes=12, max_events=2, max_links=1))
    prov_b = TracerProvider(resource=res_b)
    for p in (prov_a, prov_b):
        p.add_span_processor(SimpleSpanProcessor(memory))
    t1 = prov_a.get_tracer("scope.one", "1.2.3", schema_url="https://schema/1",
                           attributes={"scope.attr": "v"})
    t2 = prov_a.get_tracer("scope.two")
    t3 = prov_b.get_tracer("scope.three", "0.1")

    remote = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C, span_id=0x00F067AA0BA902B7, is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED), trace_state=TraceState([("vendor", "abc"), ("k2", "v2")]),
    )
    linked = SpanContext(trace_id=0x1, span_id=0x2, is_remote=False)
    parent_ctx = trace.set_span_in_context(NonRecordingSpan(remote))

    with t1.start_as_current_span("server", context=parent_ctx, kind=SpanKind.SERVER,
                                  links=[Link(linked, {"link.attr": 7}), Link(remote)]) as server:
        server.set_attributes({
            "str": "x", "empty": "", "bool": True, "false": False, "int": -42, "zero": 0,
            "big": 2**62, "float": 1.5, "nan": float("nan"), "inf": float("-inf"),
            "strs": ["a", "b"], "ints": [1, 2], "floats": [0.5], "bools": [True, False],
        })
        for i in range(3):
            server.add_event(f"event-{i}", {"i": i, "ok": True})
        server.set_status(Status(StatusCode.ERROR, "boom"))
        with t2.start_as_current_span("child", kind=SpanKind.CLIENT) as child:
            child.set_attribute("server.address", "127.0.0.1")
            child.add_event("no-attrs")
            child.set_status(Status(StatusCode.OK))
        with t1.start_as_current_span("producer", kind=SpanKind.PRODUCER):
            pass
    with t3.start_as_current_span("root-consumer", kind=SpanKind.CONSUMER):
        pass
    with t3.start_as_current_span(""):
        pass
    return memory.get_finished_spans()


def _find(doc, name):
    return next(s for rs in doc["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"] if s["name"] == name)


def test_encoding_equals_official_otlp_encoder():
    spans = _record_spans()
    assert len(spans) == 5
    ours = encode_spans(spans)
    # OTLP's Link has a trace_state field that the Python protobuf encoder leaves out; we keep it.
    server = _find(ours, "server")
    assert [lk.pop("traceState", None) for lk in server["links"]] == ["vendor=abc,k2=v2"]
    assert ours == reference_json(spans)


def test_encoding_shape_is_otlp_json():
    spans = _record_spans()
    doc = encode_spans(spans)
    assert len(doc["resourceSpans"]) == 2  # grouped by resource
    scopes = {ss["scope"]["name"]: ss for ss in doc["resourceSpans"][0]["scopeSpans"]}
    assert set(scopes) == {"scope.one", "scope.two"}  # grouped by scope
    one = scopes["scope.one"]
    assert one["scope"] == {"name": "scope.one", "version": "1.2.3",
                            "attributes": [{"key": "scope.attr", "value": {"stringValue": "v"}}]}
    assert one["schemaUrl"] == "https://schema/1"
    assert doc["resourceSpans"][0]["schemaUrl"] == "https://x/1"
    server = _find(doc, "server")
    assert server["traceId"] == "0af7651916cd43dd8448eb211c80319c"
    assert server["parentSpanId"] == "00f067aa0ba902b7"
    assert server["kind"] == 2 and server["status"] == {"code": 2, "message": "boom"}
    assert isinstance(server["startTimeUnixNano"], str) and server["startTimeUnixNano"].isdigit()
    attrs = {a["key"]: a["value"] for a in server["attributes"]}
    assert attrs["int"] == {"intValue": "-42"}
    assert attrs["big"] == {"intValue": str(2**62)}
    assert attrs["nan"] == {"doubleValue": "NaN"} and attrs["inf"] == {"doubleValue": "-Infinity"}
    assert attrs["strs"] == {"arrayValue": {"values": [{"stringValue": "a"}, {"stringValue": "b"}]}}
    assert server["droppedAttributesCount"] == 2 and server["droppedEventsCount"] == 1
    assert server["droppedLinksCount"] == 1
    assert server["links"][0]["spanId"] == "00f067aa0ba902b7"  # the SDK keeps the newest link
    assert server["flags"] == 0x300  # remote parent
    json.dumps(doc, allow_nan=False)  # strictly valid JSON


def test_anyvalue_forms_match_official_encoder():
    """bytes, nested arrays and maps are valid OTLP AnyValues even if the SDK rarely emits them."""
    span = ReadableSpan(
        name="anyvalue",
        context=SpanContext(trace_id=0xABC, span_id=0xDEF, is_remote=False),
        parent=None,
        resource=Resource.create({"service.name": "s"}),
        attributes={"b": b"\x00\xffraw", "m": {"k": 1, "n": {"deep": [1.0, "x"]}, "e": {}}, "a": [], "none": None},
        events=[Event("e", {"b": b"x"}, timestamp=5)],
        kind=SpanKind.INTERNAL,
        start_time=1,
        end_time=2,
        instrumentation_scope=InstrumentationScope("s", None),
    )
    doc = encode_spans([span])
    assert doc == reference_json([span])
    attrs = {a["key"]: a["value"] for a in doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]}
    assert attrs["b"] == {"bytesValue": base64.b64encode(b"\x00\xffraw").decode()}
    assert attrs["m"]["kvlistValue"]["values"][0] == {"key": "k", "value": {"intValue": "1"}}


def test_link_trace_state_is_kept():
    ts = TraceState([("vendor", "abc")])
    span = ReadableSpan(
        name="l", context=SpanContext(1, 2, False), links=[Link(SpanContext(3, 4, True, trace_state=ts))],
        start_time=1, end_time=2,
    )
    link = encode_spans([span])["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["links"][0]
    assert link == {"traceId": f"{3:032x}", "spanId": f"{4:016x}", "traceState": "vendor=abc", "flags": 0x300}


def _read_lines(path):
    with open(path, encoding="utf-8") as fh:
        raw = fh.read()
    assert raw.endswith("\n")
    return [json.loads(line) for line in raw.splitlines()]


def _span_names(docs):
    return [s.get("name", "") for d in docs for rs in d["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]


def test_one_traces_data_line_per_export(tmp_path):
    path = tmp_path / "nested" / "dir" / "t.jsonl"
    exporter = JsonLinesSpanExporter(path)
    spans = _record_spans()
    assert exporter.export(spans[:2]) is SpanExportResult.SUCCESS
    assert exporter.export(spans[2:]) is SpanExportResult.SUCCESS
    docs = _read_lines(path)
    assert len(docs) == 2
    assert docs[0] == encode_spans(spans[:2])
    assert len(_span_names(docs)) == 5


def test_default_path_and_env_override(tmp_path, monkeypatch):
    monkeypatch.delenv(FILE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert JsonLinesSpanExporter().path.name == DEFAULT_FILE
    monkeypatch.setenv(FILE_ENV, str(tmp_path / "env.jsonl"))
    assert JsonLinesSpanExporter().path == tmp_path / "env.jsonl"
    assert JsonLinesSpanExporter(tmp_path / "explicit.jsonl").path == tmp_path / "explicit.jsonl"


def test_batch_processor_from_many_threads(tmp_path):
    path = tmp_path / "batch.jsonl"
    provider = TracerProvider(resource=Resource.create({"service.name": "threads"}))
    provider.add_span_processor(BatchSpanProcessor(JsonLinesSpanExporter(path), max_export_batch_size=7,
                                                   schedule_delay_millis=5))
    tracer = provider.get_tracer("t")

    def work(i):
        for j in range(50):
            with tracer.start_as_current_span(f"s-{i}-{j}"):
                pass

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    provider.shutdown()
    names = _span_names(_read_lines(path))
    assert sorted(names) == sorted(f"s-{i}-{j}" for i in range(8) for j in range(50))


def _child_writer(path: str, worker: int, batches: int, per_batch: int) -> None:
    exporter = JsonLinesSpanExporter(path)
    provider = TracerProvider(resource=Resource.create({"service.name": f"proc-{worker}"}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("mp")
    for b in range(batches):
        memory.clear()
        for i in range(per_batch):
            with tracer.start_as_current_span(f"w{worker}-b{b}-s{i}") as span:
                span.set_attribute("payload", "x" * 2000)  # big lines: several KB per write
        assert exporter.export(memory.get_finished_spans()) is SpanExportResult.SUCCESS


def test_many_processes_append_to_one_file(tmp_path):
    path = str(tmp_path / "shared.jsonl")
    workers, batches, per_batch = 4, 25, 20
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_child_writer, args=(path, w, batches, per_batch)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    docs = _read_lines(path)  # every line parses
    assert len(docs) == workers * batches
    names = _span_names(docs)
    assert len(names) == workers * batches * per_batch
    assert len(set(names)) == len(names)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_child_forked_while_another_thread_writes_can_still_write(tmp_path):
    """A fork while the batch processor's thread writes (its lock held) must not leave the
    child a lock no thread of its own will release: its exports, and its flush at exit,
    would wait for ever (a forked multiprocessing worker that never ends). The alert
    limiter's and redaction's locks, taken as spans end, are renewed the same way."""
    import threading

    path = tmp_path / "t.jsonl"
    exporter = JsonLinesSpanExporter(path)
    spans = _record_spans()
    holding, release = threading.Event(), threading.Event()

    def writer():
        with exporter._lock:  # as export() holds it while it appends
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    assert holding.wait(5)
    pid = os.fork()
    if pid == 0:  # the child: export, then report how it went by its exit status
        code = 1
        try:
            code = 0 if exporter.export(spans[:1]) is SpanExportResult.SUCCESS else 2
        finally:
            os._exit(code)
    release.set()
    thread.join()
    _assert_child_exits_0(pid)
    assert len(_read_lines(path)) == 1


def _assert_child_exits_0(pid):
    import time

    deadline = time.monotonic() + 10
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child waited for ever on an inherited lock")
        time.sleep(0.02)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_locks_taken_as_spans_end_are_renewed_in_a_forked_child():

    from flowmap.alerts import RateLimit, _Limiter
    from flowmap.redaction import _KNOWN

    limiter = _Limiter(RateLimit(), lambda: 0.0)
    with limiter.lock, _KNOWN.lock:  # held by this thread when the fork happens
        pid = os.fork()
        if pid == 0:
            ok = limiter.lock.acquire(timeout=2) and _KNOWN.lock.acquire(timeout=2)
            os._exit(0 if ok else 1)
    _assert_child_exits_0(pid)


def test_failure_is_returned_and_logged_once(tmp_path, caplog):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    exporter = JsonLinesSpanExporter(blocker / "t.jsonl")
    spans = _record_spans()
    with caplog.at_level(logging.WARNING, logger="flowmap.exporter"):
        assert exporter.export(spans) is SpanExportResult.FAILURE
        assert exporter.export(spans) is SpanExportResult.FAILURE
    assert len([r for r in caplog.records if "could not write" in r.getMessage()]) == 1


def test_no_export_after_shutdown(tmp_path):
    path = tmp_path / "t.jsonl"
    exporter = JsonLinesSpanExporter(path)
    exporter.shutdown()
    assert exporter.export(_record_spans()) is SpanExportResult.FAILURE
    assert not os.path.exists(path)


@pytest.mark.parametrize("mode", [0o600])
def test_file_mode(tmp_path, mode):
    path = tmp_path / "m.jsonl"
    JsonLinesSpanExporter(path, mode=mode).export(_record_spans())
    assert (os.stat(path).st_mode & 0o777) == mode & ~_umask()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


# --- values the SDK accepts but JSON cannot hold as such -------------------------------


class _Score(float):
    """Like numpy.float64: a float subclass, with a __repr__ that is not a number."""

    def __repr__(self):
        return f"Score({float(self)})"


class _Count(int):
    def __str__(self):
        return "many"  # must not leak into intValue


class _Level(enum.IntEnum):
    HIGH = 3


def _attrs(span_json):
    return {a["key"]: a["value"] for a in span_json.get("attributes", [])}


def _spans_by_name(docs):
    return {s.get("name", ""): s for d in docs for rs in d["resourceSpans"] for ss in rs["scopeSpans"]
            for s in ss["spans"]}


def test_subclass_values_are_written_plain_and_no_span_is_lost(tmp_path, caplog):
    """Real SDK + BatchSpanProcessor + the file: float/str/int subclasses (numpy.float64,
    markupsafe.Markup, IntEnum) in span, event and link attributes and inside sequences
    are written as the plain values, beside the ordinary spans of the same batch."""
    from markupsafe import Markup

    path = tmp_path / "subclass.jsonl"
    provider = TracerProvider(resource=Resource.create({"service.name": "svc"}))
    provider.add_span_processor(BatchSpanProcessor(JsonLinesSpanExporter(path), schedule_delay_millis=60000))
    tracer = provider.get_tracer("t")
    with caplog.at_level(logging.DEBUG, logger="flowmap.exporter"):
        for i in range(3):
            with tracer.start_as_current_span(f"plain-{i}"):
                pass
        with tracer.start_as_current_span("odd") as odd:
            odd.set_attributes({
                "score": _Score(0.93), "prompt": Markup("<b>hi</b>"), "count": _Count(7),
                "level": _Level.HIGH, "scores": [_Score(0.5), _Score(1.5)],
                "names": [Markup("a"), "b"], "nan": _Score("nan"),
            })
            odd.add_event("e", {"ev.score": _Score(2.5)})
        with tracer.start_as_current_span("linked", links=[Link(odd.get_span_context(), {"lk": Markup("m")})]):
            pass
        provider.shutdown()  # one batch of 5 spans
    docs = _read_lines(path)
    assert len(docs) == 1
    spans = _spans_by_name(docs)
    assert sorted(spans) == ["linked", "odd", "plain-0", "plain-1", "plain-2"]
    attrs = _attrs(spans["odd"])
    assert attrs["score"] == {"doubleValue": 0.93} and type(attrs["score"]["doubleValue"]) is float
    assert attrs["prompt"] == {"stringValue": "<b>hi</b>"}
    assert attrs["count"] == {"intValue": "7"}
    assert attrs["level"] == {"intValue": "3"}
    assert attrs["scores"] == {"arrayValue": {"values": [{"doubleValue": 0.5}, {"doubleValue": 1.5}]}}
    assert attrs["names"] == {"arrayValue": {"values": [{"stringValue": "a"}, {"stringValue": "b"}]}}
    assert attrs["nan"] == {"doubleValue": "NaN"}
    assert "droppedAttributesCount" not in spans["odd"]
    assert _attrs(spans["odd"]["events"][0]) == {"ev.score": {"doubleValue": 2.5}}
    assert _attrs(spans["linked"]["links"][0]) == {"lk": {"stringValue": "m"}}
    # the plain path handled them: nothing dropped, nothing logged
    assert [r.getMessage() for r in caplog.records if r.name == "flowmap.exporter"] == []


def test_an_unencodable_value_costs_that_value_not_the_batch(tmp_path, caplog):
    """Through flowmap.configure and its file: an out-of-range int is dropped (that
    attribute only), unpaired surrogates are repaired to U+FFFD, a span named by an object
    is written with its text; the warning says encode, not write, once."""
    import flowmap

    path = tmp_path / "odd.jsonl"
    rt = flowmap.configure(tenant_key="k", out=path, instrument_httpx=False, set_global=False)
    tracer = rt.tracer_provider.get_tracer("t")
    try:
        with caplog.at_level(logging.WARNING, logger="flowmap.exporter"):
            for round_ in range(2):
                with flowmap.bind(flowmap.RequestContext("acme")):
                    with tracer.start_as_current_span(f"ok-{round_}"):
                        pass
                    with tracer.start_as_current_span(f"values-{round_}") as span:
                        span.set_attributes({"huge": 2**64, "path": "/tmp/caf\udce9", "kept": 1})
                    with tracer.start_as_current_span(f"name-\ud800-{round_}"):
                        pass
                    tracer.start_span(object()).end()  # the SDK does not check names
                assert rt.force_flush()
    finally:
        rt.shutdown()
    docs = _read_lines(path)
    assert len(docs) == 2
    spans = _spans_by_name(docs)
    named_by_objects = [n for n in spans if n.startswith("<object object at")]
    assert named_by_objects  # (the two objects may print alike: one name)
    assert sorted(set(spans) - set(named_by_objects)) == [
        "name-\ufffd-0", "name-\ufffd-1", "ok-0", "ok-1", "values-0", "values-1"]
    attrs = _attrs(spans["values-1"])
    assert attrs["path"] == {"stringValue": "/tmp/caf\ufffd"}
    assert attrs["kept"] == {"intValue": "1"} and "huge" not in attrs
    assert "flowmap.tenant" in attrs
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1, messages  # once per exporter, then debug
    assert "could not encode" in messages[0] and "could not write" not in messages[0]
    assert "0 of 4 span(s)" in messages[0]  # no span lost


def test_an_attribute_that_cannot_be_written_is_counted_as_dropped_with_one_warning(tmp_path, caplog):
    """An int past int64 (OTLP JSON's intValue cannot hold it) in a batch with nothing else
    odd: that attribute goes, counted in its owner's droppedAttributesCount beside the
    SDK's own drops, and the exporter warns once (then at debug level)."""
    path = tmp_path / "big.jsonl"
    provider = TracerProvider(span_limits=SpanLimits(max_attributes=2))
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    tracer = provider.get_tracer("t")
    with caplog.at_level(logging.DEBUG, logger="flowmap.exporter"):
        for i in range(2):
            with tracer.start_as_current_span(f"linked-{i}") as target:
                pass
            links = [Link(target.get_span_context(), {"lk": 2**64})]
            with tracer.start_as_current_span(f"big-{i}", links=links) as span:
                span.set_attributes({"lost": "a", "total_cents": 2**64, "kept": 1})  # the SDK drops "lost"
                span.add_event("e", {"ev": -(2**63) - 1, "ok": "v"})
    provider.shutdown()
    spans = _spans_by_name(_read_lines(path))
    big = spans["big-1"]
    assert _attrs(big) == {"kept": {"intValue": "1"}}
    assert big["droppedAttributesCount"] == 2  # the SDK's one, and the value not written
    assert _attrs(big["events"][0]) == {"ok": {"stringValue": "v"}}
    assert big["events"][0]["droppedAttributesCount"] == 1
    assert "attributes" not in big["links"][0] and big["links"][0]["droppedAttributesCount"] == 1
    warnings = [r.getMessage() for r in caplog.records if r.name == "flowmap.exporter" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "dropped 3 attribute(s) and 0 of 1 span(s)" in warnings[0]
    # encode_spans alone stays valid JSON and counts the drop the same way
    doc = encode_spans([_ReadableWith({"n": 2**64, "m": "x"})])
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert _attrs(span) == {"m": {"stringValue": "x"}} and span["droppedAttributesCount"] == 1
    json.dumps(doc, allow_nan=False)


def _ReadableWith(attributes):
    return ReadableSpan(name="s", context=SpanContext(1, 2, False), start_time=1, end_time=2,
                        attributes=attributes, resource=Resource({}))


def test_a_batch_that_cannot_be_encoded_fails_quietly_and_says_encode(tmp_path, caplog):
    span = ReadableSpan(name="s", context=SpanContext(1, 2, False), start_time=1, end_time=2,
                        resource=Resource({"a": 1}, schema_url=object()))
    exporter = JsonLinesSpanExporter(tmp_path / "t.jsonl")
    with caplog.at_level(logging.WARNING, logger="flowmap.exporter"):
        assert exporter.export([span]) is SpanExportResult.FAILURE  # never raises
    (record,) = caplog.records
    assert "could not encode 1 span(s)" in record.getMessage()
    assert "could not write" not in record.getMessage()
    assert not (tmp_path / "t.jsonl").exists()


def test_relative_path_is_fixed_when_the_exporter_is_made(tmp_path, monkeypatch):
    monkeypatch.delenv(FILE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    default, relative = JsonLinesSpanExporter(), JsonLinesSpanExporter("rel/t.jsonl")
    assert default.path == tmp_path / DEFAULT_FILE and relative.path == tmp_path / "rel" / "t.jsonl"
    spans = _record_spans()
    default.export(spans[:1])
    relative.export(spans[:1])
    monkeypatch.chdir(tmp_path / "sub")
    default.export(spans[1:])
    relative.export(spans[1:])
    assert len(_span_names(_read_lines(tmp_path / DEFAULT_FILE))) == 5
    assert len(_span_names(_read_lines(tmp_path / "rel" / "t.jsonl"))) == 5
    assert list((tmp_path / "sub").iterdir()) == []


def test_a_span_or_event_named_by_no_text_is_written_with_a_text_name(tmp_path):
    """OTLP's name is a string; the SDK takes 404 or None."""
    path = tmp_path / "t.jsonl"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    with provider.get_tracer("t").start_as_current_span(404) as span:
        span.add_event(7)
    (doc,) = _read_lines(path)
    (s,) = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert s["name"] == "404" and s["events"][0]["name"] == "7"
