"""Tenant tagging with the real SDK: tag from context, else from inbound baggage.

Every behaviour holds for the standalone TenantSpanProcessor and for the combined
FlowmapSpanProcessor that configure() installs (whose fast path writes the SDK's
attribute dict directly and must export exactly what the public API would)."""

import contextlib

import pytest
from opentelemetry import baggage, context as otel_context, trace
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flowmap.attributes import TENANT, TENANT_SOURCE
from flowmap.context import RequestContext, bind, bind_tag
from flowmap.processors import FlowmapSpanProcessor, TenantSpanProcessor
from flowmap.tagging import Tagger, tag_for


@pytest.fixture(params=["tenant", "flowmap"])
def make(request):
    """Build the processor under test from a tagger."""
    if request.param == "tenant":
        return TenantSpanProcessor
    return lambda tagger: FlowmapSpanProcessor(tagger, None)


def _provider(processor, limits=None):
    exp = InMemorySpanExporter()
    tp = TracerProvider(span_limits=limits)
    tp.add_span_processor(processor)
    tp.add_span_processor(SimpleSpanProcessor(exp))
    return tp.get_tracer("t"), exp


def test_span_gets_tag_and_source_from_bound_context(make):
    tracer, exp = _provider(make(Tagger("test-key")))
    with bind(RequestContext("acme-raw")):
        with tracer.start_as_current_span("work"):
            pass
    (span,) = exp.get_finished_spans()
    assert span.attributes[TENANT] == tag_for("test-key", "acme-raw")
    assert span.attributes[TENANT_SOURCE] == "context"


@pytest.mark.parametrize("bound", [False, True])
def test_a_tag_the_application_set_itself_is_kept_with_source_explicit(make, bound):
    """Contract: flowmap.tenant.source is context, baggage or explicit. Another tenant's
    tag set on a span under a binding is kept (the analyzer then sees the switch)."""
    tracer, exp = _provider(make(Tagger("test-key")))
    own = tag_for("test-key", "globex-raw")
    with bind(RequestContext("acme-raw")) if bound else contextlib.nullcontext():
        with tracer.start_as_current_span("outer"):
            with tracer.start_as_current_span("work", attributes={TENANT: own}):
                pass
    work, outer = exp.get_finished_spans()
    assert (work.attributes[TENANT], work.attributes[TENANT_SOURCE]) == (own, "explicit")
    if bound:
        assert outer.attributes[TENANT] == tag_for("test-key", "acme-raw")


def test_a_value_set_as_the_tag_that_is_no_tag_is_replaced_by_the_bound_one(make):
    tracer, exp = _provider(make(Tagger("test-key")))
    with bind(RequestContext("acme-raw")):
        with tracer.start_as_current_span("work", attributes={TENANT: "acme-raw"}):  # a raw id
            pass
    (span,) = exp.get_finished_spans()
    assert (span.attributes[TENANT], span.attributes[TENANT_SOURCE]) == (tag_for("test-key", "acme-raw"), "context")


def test_processor_tags_with_its_own_key_even_if_bound_under_another(make):
    tracer, exp = _provider(make(Tagger("other-key")))
    with bind(RequestContext("acme-raw")):
        with tracer.start_as_current_span("work"):
            pass
    assert exp.get_finished_spans()[0].attributes[TENANT] == tag_for("other-key", "acme-raw")


def test_inbound_baggage_tag_is_used_with_source_baggage(make):
    tracer, exp = _provider(make(Tagger("test-key")))
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


def _child_with_only_opentelemetrys_context(tracer, carried, whole=False):
    """Start and end a span where OpenTelemetry's span and baggage arrived and flowmap's
    binding did not: a fresh contextvars context (a plain worker thread) with a context
    rebuilt from ``carried``'s span and baggage attached (as code that rebuilds one does),
    or with ``carried`` itself (``whole``), as the contrib threading instrumentation does."""
    import contextvars

    if not whole:
        rebuilt = trace.set_span_in_context(trace.get_current_span(carried), otel_context.Context())
        for name, value in baggage.get_all(carried).items():
            rebuilt = baggage.set_baggage(name, value, rebuilt)
        carried = rebuilt

    def run():
        token = otel_context.attach(carried)
        try:
            tracer.start_span("worker").end()
        finally:
            otel_context.detach(token)

    contextvars.Context().run(run)


def test_a_child_that_lost_a_bind_tag_binding_is_not_tagged_from_baggage(make):
    """A parent bound with bind_tag (consume()'s evidence) has source `baggage` like one
    that took its tag from inbound baggage; only the latter's children may take the tag
    from baggage. A child of the former with nothing bound lost the binding: untagged."""
    tracer, exp = _provider(make(Tagger("test-key")))
    tag = tag_for("test-key", "acme-raw")
    with bind_tag(tag):
        with tracer.start_as_current_span("consumer"):
            carried = otel_context.get_current()
    _child_with_only_opentelemetrys_context(tracer, carried)
    token = otel_context.attach(baggage.set_baggage("flowmap.tenant", tag))
    try:  # nothing bound: the parent takes the inbound tag, and so does its child
        with tracer.start_as_current_span("inbound"):
            carried = otel_context.get_current()
    finally:
        otel_context.detach(token)
    _child_with_only_opentelemetrys_context(tracer, carried)
    consumer, lost, inbound, below = exp.get_finished_spans()
    assert (consumer.attributes[TENANT], consumer.attributes[TENANT_SOURCE]) == (tag, "baggage")
    assert TENANT not in lost.attributes and lost.parent.span_id == consumer.context.span_id
    assert (inbound.attributes[TENANT], inbound.attributes[TENANT_SOURCE]) == (tag, "baggage")
    assert (below.attributes[TENANT], below.attributes[TENANT_SOURCE]) == (tag, "baggage")
    assert below.parent.span_id == inbound.context.span_id


def test_a_child_of_a_baggage_tagged_parent_later_bound_is_not_tagged_from_baggage(make):
    """A parent tagged from baggage, then re-tagged by an authenticated bind (a framework's
    SERVER span), ran bound: a child that lost the binding stays untagged."""
    from opentelemetry.trace import SpanKind

    from flowmap import runtime

    tagger = Tagger("test-key")
    tracer, exp = _provider(make(tagger))
    tag = tag_for("test-key", "acme-raw")
    runtime.set_tagger(tagger)  # (the entry span is stamped at a bind with a tag)
    token = otel_context.attach(baggage.set_baggage("flowmap.tenant", tag))
    try:
        with tracer.start_as_current_span("GET /", kind=SpanKind.SERVER):
            with bind(RequestContext("acme-raw")):
                carried = otel_context.get_current()
    finally:
        otel_context.detach(token)
        runtime.set_tagger(None)
    _child_with_only_opentelemetrys_context(tracer, carried)
    server, lost = exp.get_finished_spans()
    assert server.attributes[TENANT_SOURCE] == "context"
    assert TENANT not in lost.attributes


@pytest.mark.parametrize("binder", ["bind", "bind_tag"])
def test_a_child_that_received_the_whole_opentelemetry_context_is_tagged_from_its_binding(make, binder):
    """The request's OpenTelemetry context carries its binding: a worker that attaches it
    (the threading instrumentation, a framework's own pool) runs for the request's tenant,
    with the binding's own source, and a child of that span is tagged too."""
    tracer, exp = _provider(make(Tagger("test-key")))
    tag = tag_for("test-key", "acme-raw")
    scope = bind(RequestContext("acme-raw")) if binder == "bind" else bind_tag(tag)
    with scope:
        with tracer.start_as_current_span("request"):
            carried = otel_context.get_current()
    _child_with_only_opentelemetrys_context(tracer, carried, whole=True)
    worker = tracer.start_span("later", context=trace.set_span_in_context(exp.get_finished_spans()[-1]))
    worker.end()  # (nothing carried: an explicit parent context of its own, no binding)
    request, child, later = exp.get_finished_spans()
    source = "context" if binder == "bind" else "baggage"
    for span in (request, child):
        assert (span.attributes[TENANT], span.attributes[TENANT_SOURCE]) == (tag, source)
    assert child.parent.span_id == request.context.span_id
    assert TENANT not in later.attributes


def test_anything_else_under_the_binding_key_is_ignored_and_never_raises(make):
    """Only a Binding counts (the key is private; a value put there by other means, a raw
    id, is never a tag), and a parent context the processor cannot read is no error."""
    from flowmap.context import _OTEL_KEY

    processor = make(Tagger("test-key"))
    tracer, exp = _provider(processor)
    token = otel_context.attach(otel_context.set_value(_OTEL_KEY, "acme-raw"))
    try:
        tracer.start_span("odd").end()
    finally:
        otel_context.detach(token)
    processor.on_start(tracer.start_span("unreadable parent"), parent_context=object())  # no raise
    (span,) = exp.get_finished_spans()
    assert TENANT not in span.attributes and "acme-raw" not in span.to_json()


def test_the_bound_tenant_wins_over_the_one_the_parent_context_carries(make):
    """flowmap's contextvar first: a span started with a parent context captured in
    another tenant's request runs for the tenant bound where it starts."""
    tracer, exp = _provider(make(Tagger("test-key")))
    with bind(RequestContext("tenant-a")):
        with tracer.start_as_current_span("a"):
            captured = otel_context.get_current()
    with bind(RequestContext("tenant-b")):
        tracer.start_span("b", context=captured).end()
    a, b = exp.get_finished_spans()
    assert a.attributes[TENANT] == tag_for("test-key", "tenant-a")
    assert b.attributes[TENANT] == tag_for("test-key", "tenant-b")
    assert b.parent.span_id == a.context.span_id


def test_non_opaque_baggage_is_never_copied_into_a_span(make):
    tracer, exp = _provider(make(Tagger("test-key")))
    token = otel_context.attach(baggage.set_baggage("flowmap.tenant", "acme-raw"))
    try:
        with tracer.start_as_current_span("inbound"):
            pass
    finally:
        otel_context.detach(token)
    (span,) = exp.get_finished_spans()
    assert TENANT not in span.attributes


def test_no_context_no_tag(make):
    tracer, exp = _provider(make(Tagger("test-key")))
    with tracer.start_as_current_span("bare"):
        pass
    assert TENANT not in exp.get_finished_spans()[0].attributes


class _BrokenTagger:
    key_id = "broken"

    def tag(self, tenant_id):
        raise RuntimeError("tagger exploded")


def test_processor_never_raises_into_the_application(make):
    tracer, exp = _provider(make(_BrokenTagger()))  # type: ignore[arg-type]
    with bind(RequestContext("acme-raw")):
        with tracer.start_as_current_span("still-runs"):
            ran = True
    assert ran and exp.get_finished_spans()[0].name == "still-runs"


def _exported(processor, limits, start_attrs=None):
    tracer, exp = _provider(processor, limits)
    with bind(RequestContext("acme-raw")):
        with tracer.start_as_current_span("work", attributes=start_attrs) as span:
            span.set_attribute("later", "value")
    (out,) = exp.get_finished_spans()
    return dict(out.attributes), out.dropped_attributes


@pytest.mark.parametrize(
    "limits, start_attrs",
    [
        (None, None),
        (None, {TENANT: "0000000000000000", TENANT_SOURCE: "explicit", "http.method": "GET"}),
        (SpanLimits(max_span_attributes=2), {"a": "1", "b": "2"}),  # near the limit: oldest evicted
        (SpanLimits(max_span_attribute_length=8), None),  # values truncated
        (SpanLimits(max_span_attributes=0), None),  # none of the app's kept, only flowmap's own
    ],
)
def test_fast_path_exports_exactly_what_the_public_api_does(limits, start_attrs):
    tagger = Tagger("test-key")
    expected = _exported(TenantSpanProcessor(tagger), limits, start_attrs)
    assert _exported(FlowmapSpanProcessor(tagger, None), limits, start_attrs) == expected
    if limits is None and start_attrs:  # the application's own tag is kept (explicit)
        assert (expected[0][TENANT], expected[0][TENANT_SOURCE]) == ("0000000000000000", "explicit")
    elif limits is None:
        assert expected[0][TENANT] == tag_for("test-key", "acme-raw")
        assert expected[0][TENANT_SOURCE] == "context"



# -- the tag survives the SDK's attribute-count limit ----------------------------------
# BoundedAttributes evicts the oldest attribute first, and the tag is written first: an
# LLM span with flattened messages (OpenInference writes llm.input_messages.N.*) would
# lose it and the analyzer would report a context it never dropped.


def _many_attributes(span, n=180):
    for i in range(n // 3):
        span.set_attribute(f"llm.input_messages.{i}.message.role", "user")
        span.set_attribute(f"llm.input_messages.{i}.message.content", f"hello {i}")
        span.set_attribute(f"llm.input_messages.{i}.message.name", "x")


def test_tag_survives_more_attributes_than_the_limit(make):
    tracer, exp = _provider(make(Tagger("test-key")))
    with bind(RequestContext("acme-raw")):
        with tracer.start_as_current_span("ChatModel") as span:
            _many_attributes(span)
    (out,) = exp.get_finished_spans()
    assert out.attributes[TENANT] == tag_for("test-key", "acme-raw")
    assert out.attributes[TENANT_SOURCE] == "context"
    assert len(out.attributes) == 128  # the limit still holds: another attribute made room
    assert out.dropped_attributes == 180 + 2 - 128
    assert out.attributes["llm.input_messages.59.message.name"] == "x"  # the newest kept


def test_restored_tag_is_the_one_from_start_even_if_the_span_ends_elsewhere(make):
    import threading

    tracer, exp = _provider(make(Tagger("test-key")))
    with bind(RequestContext("acme-raw")):
        span = tracer.start_span("ChatModel")
    _many_attributes(span)
    with bind(RequestContext("tenant-other")):  # ends in another tenant's block...
        t = threading.Thread(target=span.end)  # ...on a thread with nothing bound
        t.start()
        t.join()
    (out,) = exp.get_finished_spans()
    assert out.attributes[TENANT] == tag_for("test-key", "acme-raw")


def test_baggage_tag_is_restored_with_its_source(make):
    tracer, exp = _provider(make(Tagger("test-key")))
    tag = tag_for("test-key", "acme-raw")
    token = otel_context.attach(baggage.set_baggage("flowmap.tenant", tag))
    try:
        with tracer.start_as_current_span("inbound") as span:
            _many_attributes(span)
    finally:
        otel_context.detach(token)
    (out,) = exp.get_finished_spans()
    assert (out.attributes[TENANT], out.attributes[TENANT_SOURCE]) == (tag, "baggage")


def test_span_untagged_at_start_gets_no_tag_at_end(make):
    tracer, exp = _provider(make(Tagger("test-key")))
    span = tracer.start_span("bare")  # nothing bound at start
    _many_attributes(span)
    with bind(RequestContext("acme-raw")):
        span.end()  # ...so binding a tenant at the end must not invent one
    (out,) = exp.get_finished_spans()
    assert TENANT not in out.attributes


def test_tag_restored_under_a_tight_limit(make):
    tracer, exp = _provider(make(Tagger("test-key")), SpanLimits(max_span_attributes=3))
    with bind(RequestContext("acme-raw")):
        with tracer.start_as_current_span("work") as span:
            for i in range(5):
                span.set_attribute(f"k{i}", i)
    (out,) = exp.get_finished_spans()
    assert dict(out.attributes) == {
        "k4": 4,
        TENANT: tag_for("test-key", "acme-raw"),
        TENANT_SOURCE: "context",
    }


def test_restored_tag_means_no_unscoped_alert():
    from flowmap.alerts import AlertProcessor

    seen = []
    alerts = AlertProcessor("all", callback=seen.append)
    tracer, exp = _provider(FlowmapSpanProcessor(Tagger("test-key"), alerts))
    with bind(RequestContext("acme-raw")):
        with tracer.start_as_current_span("ChatModel") as span:
            _many_attributes(span)
    with tracer.start_as_current_span("unbound") as span:  # the alert does work
        _many_attributes(span)
    assert exp.get_finished_spans()[0].attributes[TENANT]
    assert [a.span_name for a in seen] == ["unbound"]
