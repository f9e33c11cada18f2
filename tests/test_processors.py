"""TenantSpanProcessor with the real SDK: tag from context, else from inbound baggage."""

from opentelemetry import baggage, context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flowmap.attributes import TENANT, TENANT_SOURCE
from flowmap.context import RequestContext, bind, bind_tag
from flowmap.processors import TenantSpanProcessor
from flowmap.tagging import Tagger, tag_for


def _provider(processor):
    exp = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(processor)
    tp.add_span_processor(SimpleSpanProcessor(exp))
    return tp.get_tracer("t"), exp


def test_span_gets_tag_and_source_from_bound_context():
    tracer, exp = _provider(TenantSpanProcessor(Tagger("test-key")))
    with bind(RequestContext("acme-raw")):
        with tracer.start_as_current_span("work"):
            pass
    (span,) = exp.get_finished_spans()
    assert span.attributes[TENANT] == tag_for("test-key", "acme-raw")
    assert span.attributes[TENANT_SOURCE] == "context"


def test_processor_tags_with_its_own_key_even_if_bound_under_another():
    tracer, exp = _provider(TenantSpanProcessor(Tagger("other-key")))
    with bind(RequestContext("acme-raw")):
        with tracer.start_as_current_span("work"):
            pass
    assert exp.get_finished_spans()[0].attributes[TENANT] == tag_for("other-key", "acme-raw")


def test_inbound_baggage_tag_is_used_with_source_baggage():
    tracer, exp = _provider(TenantSpanProcessor(Tagger("test-key")))
    tag = tag_for("test-key", "acme-raw")
    token = otel_context.attach(baggage.set_baggage("flowmap.tenant", tag))
    try:
        with tracer.start_as_current_span("inbound"):
            pass
    finally:
        otel_context.detach(token)
    with bind_tag(tag):
        with tracer.start_as_current_span("consumer"):
            pass
    for span in exp.get_finished_spans():
        assert span.attributes[TENANT] == tag
        assert span.attributes[TENANT_SOURCE] == "baggage"


def test_non_opaque_baggage_is_never_copied_into_a_span():
    tracer, exp = _provider(TenantSpanProcessor(Tagger("test-key")))
    token = otel_context.attach(baggage.set_baggage("flowmap.tenant", "acme-raw"))
    try:
        with tracer.start_as_current_span("inbound"):
            pass
    finally:
        otel_context.detach(token)
    (span,) = exp.get_finished_spans()
    assert TENANT not in span.attributes


def test_no_context_no_tag():
    tracer, exp = _provider(TenantSpanProcessor(Tagger("test-key")))
    with tracer.start_as_current_span("bare"):
        pass
    assert TENANT not in exp.get_finished_spans()[0].attributes


class _BrokenTagger:
    key_id = "broken"

    def tag(self, tenant_id):
        raise RuntimeError("tagger exploded")


def test_processor_never_raises_into_the_application():
    tracer, exp = _provider(TenantSpanProcessor(_BrokenTagger()))  # type: ignore[arg-type]
    with bind(RequestContext("acme-raw")):
        with tracer.start_as_current_span("still-runs"):
            ran = True
    assert ran and exp.get_finished_spans()[0].name == "still-runs"
