"""Redaction: the request's raw tenant id is scrubbed before any exporter sees it.

Every behaviour holds for the standalone TenantSpanProcessor + RedactionProcessor and for
the combined FlowmapSpanProcessor that configure() installs."""

import json
import threading

import pytest

from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flowmap.attributes import REDACTED, TENANT
from flowmap.context import RequestContext, bind
from flowmap.processors import FlowmapSpanProcessor, TenantSpanProcessor
from flowmap.redaction import REDACTED_VALUE, RedactionProcessor, register_tenant_id, scrub_text
from flowmap.tagging import Tagger

RAW = "globex-raw-7731"


@pytest.fixture(params=["standalone", "combined"])
def setup(request):
    return request.param


def _app_provider(setup):
    """An application's provider whose exporter was registered *before* flowmap's processors."""
    exp = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exp))
    if setup == "standalone":
        tp.add_span_processor(TenantSpanProcessor(Tagger("test-key")))
        tp.add_span_processor(RedactionProcessor())
    else:
        tp.add_span_processor(FlowmapSpanProcessor(Tagger("test-key")))
    return tp.get_tracer("app"), exp


def test_attribute_event_link_status_and_name_values_are_redacted_and_marked(setup):
    tracer, exp = _app_provider(setup)
    with bind(RequestContext(RAW)):
        with tracer.start_as_current_span("warmup") as other:
            link_ctx = other.get_span_context()
        links = [trace_api.Link(link_ctx, {"why": f"same tenant {RAW}"})]
        with tracer.start_as_current_span(f"load {RAW}", links=links) as span:
            span.set_attribute("db.query.text", f"SELECT * FROM docs WHERE tenant = '{RAW}'")
            span.set_attribute("tenant_id", RAW)
            span.set_attribute("ids", [RAW, "x"])
            span.set_attribute(f"quota.{RAW}", 3)
            span.set_attribute("safe", "nothing here")
            span.add_event("lookup", {"detail": f"cache miss for {RAW}"})
            try:
                raise ValueError(f"unknown tenant {RAW}")
            except ValueError as err:
                span.record_exception(err)
                span.set_status(trace_api.StatusCode.ERROR, f"failed for {RAW}")
    spans = {s.name.split()[0]: s for s in exp.get_finished_spans()}
    span = spans["load"]
    dump = span.to_json()
    assert RAW not in dump
    assert span.name == f"load {REDACTED_VALUE}"
    attrs = dict(span.attributes)
    assert attrs["db.query.text"] == f"SELECT * FROM docs WHERE tenant = '{REDACTED_VALUE}'"
    assert attrs["tenant_id"] == REDACTED_VALUE
    assert attrs["ids"] == (REDACTED_VALUE, "x")
    assert attrs[f"quota.{REDACTED_VALUE}"] == 3
    assert attrs["safe"] == "nothing here"
    assert attrs[TENANT]  # the opaque tag stays
    assert attrs[REDACTED] >= 8
    assert span.status.description == f"failed for {REDACTED_VALUE}"
    assert REDACTED not in spans["warmup"].attributes  # clean spans are not marked


def test_span_ended_in_another_thread_is_still_redacted(setup):
    tracer, exp = _app_provider(setup)
    with bind(RequestContext(RAW)):
        span = tracer.start_span("handoff")
        span.set_attribute("note", RAW)
    t = threading.Thread(target=span.end)
    t.start()
    t.join()
    assert RAW not in exp.get_finished_spans()[0].to_json()


def test_numbers_equal_to_a_numeric_tenant_id_are_redacted(setup):
    tracer, exp = _app_provider(setup)
    with bind(RequestContext("918273")):
        with tracer.start_as_current_span("numeric") as span:
            span.set_attribute("account", 918273)
            span.set_attribute("other", 5)
    attrs = exp.get_finished_spans()[0].attributes
    assert attrs["account"] == REDACTED_VALUE and attrs["other"] == 5


def test_short_ids_are_redacted_only_as_whole_tokens():
    assert scrub_text("tenant=ab; abc", ["ab"]) == (f"tenant={REDACTED_VALUE}; abc", 1)
    assert scrub_text("xacme-corpx", ["acme-corp"]) == (f"x{REDACTED_VALUE}x", 1)


def test_other_tenants_data_and_unbound_spans_untouched(setup):
    tracer, exp = _app_provider(setup)
    with tracer.start_as_current_span("no-context") as span:
        span.set_attribute("note", RAW)
    (s,) = exp.get_finished_spans()
    assert s.attributes["note"] == RAW and REDACTED not in s.attributes
    # nothing bound: nothing to compare against (the analyzer's tenant-in-telemetry rule covers this)
    json.loads(s.to_json())


def test_span_ended_after_its_request_is_still_redacted(setup):
    tracer, exp = _app_provider(setup)
    with bind(RequestContext(RAW)):
        span = tracer.start_span("outlives-the-request")
    span.set_attribute("late", f"written for {RAW} after the binding was gone")
    span.end()
    (s,) = exp.get_finished_spans()
    assert RAW not in s.to_json() and s.attributes[REDACTED] == 1


def test_registered_id_is_scrubbed_from_a_span_that_starts_and_ends_unbound(setup):
    """An outer instrumentation's server span: started before the binding, ended after it."""
    tracer, exp = _app_provider(setup)
    outer = tracer.start_span("GET /tenants/{id}", attributes={"url.path": f"/tenants/{RAW}/chat"})
    register_tenant_id(outer, RAW)
    register_tenant_id(outer, RAW)  # idempotent
    with bind(RequestContext(RAW)):
        pass  # the request runs
    outer.end()
    (s,) = exp.get_finished_spans()
    assert s.attributes["url.path"] == f"/tenants/{REDACTED_VALUE}/chat"
    assert s.attributes[REDACTED] == 1


def test_register_is_a_no_op_on_spans_it_cannot_help(setup):
    tracer, exp = _app_provider(setup)
    ended = tracer.start_span("ended")
    ended.end()
    register_tenant_id(ended, RAW)  # ended: nothing to do, no error
    register_tenant_id(trace_api.NonRecordingSpan(trace_api.INVALID_SPAN_CONTEXT), RAW)
    register_tenant_id(object(), RAW)
    register_tenant_id(ended, None)  # type: ignore[arg-type]
    later = tracer.start_span("later")
    later.set_attribute("note", RAW)
    later.end()
    assert exp.get_finished_spans()[-1].attributes["note"] == RAW  # no stale registration
