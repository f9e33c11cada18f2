"""Redaction of *other* tenants' raw ids: every span is scrubbed of every raw id the
process bound recently, whatever its own tenant — tenant B's request whose span holds
tenant A's id (an IDOR probe ``/t/<A>/docs``) is the case flowmap exists to catch.

Real SDK, both processor setups (standalone TenantSpanProcessor + RedactionProcessor, and
the combined FlowmapSpanProcessor that configure() installs)."""

import json

import pytest
from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flowmap.attributes import BOUNDARY, REDACTED, TENANT, TENANT_SOURCE
from flowmap.context import RequestContext, bind
from flowmap.processors import FlowmapSpanProcessor, TenantSpanProcessor
from flowmap.redaction import (
    REDACTED_FOREIGN,
    REDACTED_VALUE,
    RedactionProcessor,
    known_ids_limit,
    set_known_ids_limit,
)
from flowmap.tagging import Tagger, tag_for

A_RAW = "xt-tenant-A-SECRET-9931"
B_RAW = "xt-tenant-B-4471"


@pytest.fixture(params=["standalone", "combined"])
def setup(request):
    return request.param


@pytest.fixture(autouse=True)
def _default_limit():
    set_known_ids_limit(None)
    yield
    set_known_ids_limit(0)  # forget this test's tenants: later tests must not see them
    set_known_ids_limit(None)


def _provider(setup, limits=None):
    exp = InMemorySpanExporter()
    tp = TracerProvider(span_limits=limits)
    tp.add_span_processor(SimpleSpanProcessor(exp))  # the app's exporter, registered first
    if setup == "standalone":
        tp.add_span_processor(TenantSpanProcessor(Tagger("test-key")))
        tp.add_span_processor(RedactionProcessor())
    else:
        tp.add_span_processor(FlowmapSpanProcessor(Tagger("test-key")))
    return tp.get_tracer("app"), exp


def _touch(tracer, raw):
    """One request of tenant ``raw``: the process has bound it from now on."""
    with bind(RequestContext(raw)):
        with tracer.start_as_current_span("handler"):
            pass


def _named(exp, prefix):
    (span,) = [s for s in exp.get_finished_spans() if s.name.startswith(prefix)]
    return span


def test_another_tenants_id_is_redacted_from_a_tagged_span_and_marked(setup):
    tracer, exp = _provider(setup)
    _touch(tracer, A_RAW)  # tenant A was bound once, earlier
    with bind(RequestContext(B_RAW)):  # tenant B's request names A's id
        with tracer.start_as_current_span(
            f"GET /t/{A_RAW}/docs", kind=trace_api.SpanKind.SERVER, attributes={"url.path": f"/t/{A_RAW}/docs"}
        ) as span:
            span.add_event("cache.hit", {"key": f"docs:{A_RAW}:index", "owner": B_RAW})
            span.set_attribute("who", B_RAW)
    s = _named(exp, "GET")
    dump = s.to_json()
    assert A_RAW not in dump and B_RAW not in dump
    assert s.name == f"GET /t/{REDACTED_VALUE}/docs"
    assert s.attributes["url.path"] == f"/t/{REDACTED_VALUE}/docs"
    assert s.events[0].attributes["key"] == f"docs:{REDACTED_VALUE}:index"
    assert s.attributes[TENANT] == tag_for("test-key", B_RAW)  # still B's span
    assert s.attributes[REDACTED] == 5
    assert s.attributes[REDACTED_FOREIGN] == 1  # one other tenant's id was in it


def test_own_id_alone_is_not_marked_foreign(setup):
    tracer, exp = _provider(setup)
    _touch(tracer, A_RAW)
    with bind(RequestContext(B_RAW)):
        with tracer.start_as_current_span("own", attributes={"note": f"for {B_RAW}"}):
            pass
    s = _named(exp, "own")
    assert s.attributes["note"] == f"for {REDACTED_VALUE}" and s.attributes[REDACTED] == 1
    assert REDACTED_FOREIGN not in s.attributes


def test_another_tenant_whose_id_is_part_of_the_own_id_is_not_counted(setup):
    own, other = "xt-acme-corp-eu", "xt-acme-corp"  # "xt-acme-corp" is inside the own id
    tracer, exp = _provider(setup)
    _touch(tracer, other)
    with bind(RequestContext(own)):
        with tracer.start_as_current_span("own", attributes={"path": f"/t/{own}/x"}):
            pass
    s = _named(exp, "own")
    assert s.attributes["path"] == f"/t/{REDACTED_VALUE}/x"
    assert REDACTED_FOREIGN not in s.attributes


def test_numeric_id_of_another_tenant_under_a_tenant_key(setup):
    tracer, exp = _provider(setup)
    _touch(tracer, "77120931")
    with bind(RequestContext(B_RAW)):
        with tracer.start_as_current_span("lookup") as span:
            span.set_attribute("account_id", 77120931)  # B's request reads A's account
            span.set_attribute("db.response.returned_rows", 77120931)  # not a tenant key
    s = _named(exp, "lookup")
    assert s.attributes["account_id"] == REDACTED_VALUE
    assert s.attributes["db.response.returned_rows"] == 77120931
    assert s.attributes[REDACTED_FOREIGN] == 1


def test_a_text_seen_clean_is_searched_again_once_a_new_tenant_is_bound(setup):
    """Texts found clean are remembered; binding a new tenant must not leave its id in
    a text remembered clean before it was known."""
    late = f"xt-tenant-late-{setup}"
    tracer, exp = _provider(setup)
    text = f"/t/{late}/docs"
    with bind(RequestContext(B_RAW)):
        for i in range(2):  # seen (and remembered clean) before `late` is known
            with tracer.start_as_current_span(f"early{i}", attributes={"url.path": text}):
                pass
    _touch(tracer, late)
    with bind(RequestContext(B_RAW)):
        with tracer.start_as_current_span("later", attributes={"url.path": text}):
            pass
    assert _named(exp, "early1").attributes["url.path"] == text  # not known yet: left alone
    assert _named(exp, "later").attributes["url.path"] == f"/t/{REDACTED_VALUE}/docs"


def test_many_known_tenants_found_in_a_tagged_span_of_another(setup):
    """More tenants than plain `in` per id is used for (the combined matcher), short and
    long texts, keys, sequences, link attributes and the status description."""
    tracer, exp = _provider(setup)
    many = [f"xt-org-{i:05d}" for i in range(300)]
    for raw in many:
        _touch(tracer, raw)
    _touch(tracer, "xq7")  # a short id: whole tokens only
    with tracer.start_as_current_span("peer") as peer:
        link_ctx = peer.get_span_context()
    prompt = ("lorem ipsum " * 100) + f" context of {many[77]} " + ("dolor " * 50)
    with bind(RequestContext(many[0])):
        with tracer.start_as_current_span(
            "chat", links=[trace_api.Link(link_ctx, {"from": many[5]})]
        ) as span:
            span.set_attribute("gen_ai.prompt", prompt)  # longer than any remembered text
            span.set_attribute(f"quota.{many[9]}", 1)
            span.set_attribute("tenants", [many[1], "unrelated", "xq7"])
            span.set_attribute("note", "xq7x is not a tenant, xq7 is")
            span.set_status(trace_api.StatusCode.ERROR, f"denied for {many[299]}")
    s = _named(exp, "chat")
    dump = s.to_json()
    for i in (1, 5, 9, 77, 299):
        assert many[i] not in dump
    assert s.attributes["tenants"] == (REDACTED_VALUE, "unrelated", REDACTED_VALUE)
    assert s.attributes["note"] == f"xq7x is not a tenant, {REDACTED_VALUE} is"
    assert f"quota.{REDACTED_VALUE}" in s.attributes
    assert s.status.description == f"denied for {REDACTED_VALUE}"
    assert s.attributes[REDACTED_FOREIGN] == 6
    assert "lorem ipsum" in s.attributes["gen_ai.prompt"]


def test_only_the_most_recent_ids_are_remembered(setup):
    tracer, exp = _provider(setup)
    set_known_ids_limit(4)
    assert known_ids_limit() == 4
    old, kept, x3 = (f"xt-lru-{name}-{setup}" for name in ("old", "kept", "x3"))
    for raw in (old, kept, x3, f"xt-lru-x4-{setup}", f"xt-lru-x5-{setup}"):  # `old` evicted
        _touch(tracer, raw)
    _touch(tracer, kept)  # bound again: the most recent now
    _touch(tracer, f"xt-lru-x6-{setup}")  # evicts x3, now the least recently bound
    with bind(RequestContext(B_RAW)):  # evicts x4
        with tracer.start_as_current_span("probe", attributes={"a": old, "b": kept, "c": x3}):
            pass
    s = _named(exp, "probe")
    assert s.attributes["a"] == old and s.attributes["c"] == x3  # forgotten: bounded memory
    assert s.attributes["b"] == REDACTED_VALUE


def test_limit_zero_still_scrubs_the_spans_own_id(setup):
    tracer, exp = _provider(setup)
    set_known_ids_limit(0)
    _touch(tracer, A_RAW)
    with bind(RequestContext(B_RAW)):
        with tracer.start_as_current_span("probe", attributes={"a": A_RAW, "b": B_RAW}):
            pass
    s = _named(exp, "probe")
    assert s.attributes["a"] == A_RAW and s.attributes["b"] == REDACTED_VALUE


def test_bad_limit_is_a_config_error():
    from flowmap.errors import ConfigError

    for bad in (-1, 1.5, "10", True):
        with pytest.raises(ConfigError):
            set_known_ids_limit(bad)


def test_redaction_marks_never_evict_flowmaps_own_attributes(setup):
    tracer, exp = _provider(setup, SpanLimits(max_span_attributes=6))
    _touch(tracer, A_RAW)
    with bind(RequestContext(B_RAW)):
        with tracer.start_as_current_span("full", attributes={BOUNDARY: "vector"}) as span:
            for i in range(3):
                span.set_attribute(f"k{i}", f"/t/{A_RAW}/{i}")
    s = _named(exp, "full")
    a = dict(s.attributes)
    assert a[TENANT] == tag_for("test-key", B_RAW) and a[TENANT_SOURCE] == "context"
    assert a[BOUNDARY] == "vector"
    assert a[REDACTED] >= 1 and a[REDACTED_FOREIGN] == 1
    assert len(a) == 6 and A_RAW not in json.dumps(a)


def test_configure_file_export_never_holds_another_tenants_id(tmp_path):
    """The audit's repro, end to end through configure() and the JSON Lines file."""
    import flowmap
    from flowmap import runtime

    out = tmp_path / "x.jsonl"
    rt = flowmap.configure(tenant_key="k", out=str(out), service_name="svc", set_global=False,
                           instrument_httpx=False)
    try:
        tr = rt.tracer_provider.get_tracer("app")
        with flowmap.bind(flowmap.RequestContext(A_RAW)):
            with tr.start_as_current_span(f"warm cache for {A_RAW}"):
                pass
        with flowmap.bind(flowmap.RequestContext(B_RAW)):
            with tr.start_as_current_span("GET", attributes={"url.path": f"/t/{A_RAW}/docs"}):
                pass
    finally:
        rt.shutdown()
        runtime.set_tagger(None)
        runtime.set_runtime(None)
    text = out.read_text()
    assert A_RAW not in text and B_RAW not in text
    assert "flowmap.redacted.foreign" in text


def test_flowmaps_own_attributes_are_never_rewritten(setup):
    """With every known id searched in every span, a known id inside an opaque tag's hex,
    or a tenant named like a source, a boundary kind or a flowmap key, must not corrupt
    flowmap's own attributes (the analysis reads them)."""
    tracer, exp = _provider(setup)
    owner = f"xt-owner-{setup}"
    tag = tag_for("test-key", owner)
    for raw in (tag[3:9], "context", "vector", "flowmap", "tenant"):
        _touch(tracer, raw)
    with bind(RequestContext(owner)):
        with tracer.start_as_current_span("search", attributes={BOUNDARY: "vector"}) as span:
            span.set_attribute("note", f"{tag[3:9]} vector")
    s = _named(exp, "search")
    a = dict(s.attributes)
    assert a[TENANT] == tag and a[TENANT_SOURCE] == "context" and a[BOUNDARY] == "vector"
    assert a["note"] == f"{REDACTED_VALUE} {REDACTED_VALUE}"  # the app's own text is scrubbed
    assert a[REDACTED] == 2 and a[REDACTED_FOREIGN] == 2
