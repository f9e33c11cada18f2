"""A boundary span keeps ``flowmap.boundary`` and ``flowmap.scoped`` (and the unscoped
mark) under the SDK's attribute-count limit, like the tenant tag: a retrieval span with
flattened documents must not read as a span that crossed no boundary. Real SDK, through
``configure()`` as applications use it."""

import pytest
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flowmap import runtime
from flowmap.attributes import BOUNDARY, REDACTED, SCOPED, TENANT, TENANT_SOURCE, UNSCOPED
from flowmap.boundaries import boundary, mark_scoped
from flowmap.configure import configure
from flowmap.context import RequestContext, bind
from flowmap.tagging import tag_for

RAW = "acme-limits-raw"


@pytest.fixture
def make(monkeypatch):
    """``make(limits)``: configure() on a provider with these span limits; the exporter."""
    monkeypatch.delenv("FLOWMAP_BOUNDARY_MODE", raising=False)
    built = []

    def _make(limits=None):
        exp = InMemorySpanExporter()
        tp = TracerProvider(span_limits=limits)
        tp.add_span_processor(SimpleSpanProcessor(exp))
        rt = configure(tracer_provider=tp, tenant_key="test-key", exporters=None,
                       instrument_httpx=False, set_global=False)
        built.append(rt)
        return exp

    yield _make
    for rt in built:
        rt.shutdown()
    runtime.set_tagger(None)
    runtime.set_boundary_mode(None)
    runtime.set_runtime(None)


def _flood(span, n=130):
    for i in range(n):  # e.g. retrieval.documents.N.* flattened
        span.set_attribute(f"retrieval.documents.{i}.id", i)


def test_boundary_kind_and_scoped_survive_the_attribute_count_limit(make):
    exp = make()
    with bind(RequestContext(RAW)):
        with boundary("vector", "search", scoped=False) as span:
            _flood(span)
    (s,) = exp.get_finished_spans()
    a = s.attributes
    assert a[TENANT] == tag_for("test-key", RAW) and a[TENANT_SOURCE] == "context"
    assert a[BOUNDARY] == "vector"
    assert a[SCOPED] is False
    assert len(a) == 128  # the limit still holds: older attributes made room
    assert s.dropped_attributes == 130 + 4 - 128
    assert a["retrieval.documents.129.id"] == 129  # the newest kept


def test_scoped_set_later_with_mark_scoped_survives(make):
    exp = make()

    @boundary("db", "query")
    def query():
        mark_scoped(None, True)
        from opentelemetry import trace

        _flood(trace.get_current_span(), 200)

    with bind(RequestContext(RAW)):
        query()
    a = exp.get_finished_spans()[0].attributes
    assert (a[BOUNDARY], a[SCOPED]) == ("db", True) and a[TENANT]


def test_unscoped_mark_survives_in_record_mode(make):
    exp = make()
    with boundary("cache", "get", mode="record") as span:  # nothing bound
        _flood(span)
    a = exp.get_finished_spans()[0].attributes
    assert a[BOUNDARY] == "cache" and a[UNSCOPED] is True and TENANT not in a


def test_kept_in_priority_order_under_a_tiny_limit(make):
    exp = make(SpanLimits(max_span_attributes=3))
    with bind(RequestContext(RAW)):
        with boundary("vector", "search", scoped=True) as span:
            _flood(span, 5)
    a = dict(exp.get_finished_spans()[0].attributes)
    assert a == {BOUNDARY: "vector", TENANT: tag_for("test-key", RAW), TENANT_SOURCE: "context"}


def test_redaction_mark_does_not_evict_the_boundary_or_the_tag(make):
    exp = make()
    with bind(RequestContext(RAW)):
        with boundary("vector", "search", scoped=True) as span:
            _flood(span, 127)
            span.set_attribute("db.query.text", f"tenant = '{RAW}'")
    a = exp.get_finished_spans()[0].attributes
    assert a[BOUNDARY] == "vector" and a[SCOPED] is True and a[TENANT] and a[REDACTED] == 1
    assert len(a) == 128


def test_spans_that_lost_nothing_are_left_alone(make):
    exp = make()
    with bind(RequestContext(RAW)):
        with boundary("memory", "recall", scoped=True) as span:
            span.set_attribute("k", "v")
    s = exp.get_finished_spans()[0]
    assert s.dropped_attributes == 0
    assert dict(s.attributes) == {
        BOUNDARY: "memory", SCOPED: True, TENANT: tag_for("test-key", RAW), TENANT_SOURCE: "context", "k": "v",
    }


def test_server_span_annotated_by_the_middleware_keeps_its_boundary(make):
    """TenantMiddleware marks a server span it did not open (an ASGI instrumentation's):
    the app then piles attributes on it; flowmap.boundary survives the limit."""
    from opentelemetry.trace import SpanKind

    from flowmap.asgi import _annotate

    exp = make(SpanLimits(max_attributes=128))
    tracer = runtime.get_tracer()
    with bind(RequestContext(RAW)):
        with tracer.start_as_current_span("GET /chat", kind=SpanKind.SERVER) as span:
            _annotate(span, {BOUNDARY: "http.server", "flowmap.tenant.inbound": None})
            for i in range(130):
                span.set_attribute(f"app.k{i}", i)
    (done,) = exp.get_finished_spans()
    assert done.attributes[BOUNDARY] == "http.server" and done.attributes[TENANT] == tag_for("test-key", RAW)
    assert len(done.attributes) == 128


def test_the_middlewares_authenticated_tag_survives_the_limit_not_the_inbound_one(make):
    """TenantMiddleware sets the authenticated tenant's tag on a server span that was
    tagged at start from inbound baggage; when the app's attributes overflow the limit,
    the authenticated tag is the one put back."""
    from opentelemetry.trace import SpanKind

    from flowmap.asgi import _annotate

    exp = make(SpanLimits(max_attributes=128))
    tracer = runtime.get_tracer()
    with bind(RequestContext("inbound-tenant-raw")):  # stands for the baggage tag at start
        with tracer.start_as_current_span("GET /chat", kind=SpanKind.SERVER) as span:
            _annotate(span, {TENANT: tag_for("test-key", RAW), TENANT_SOURCE: "context"})
            for i in range(130):
                span.set_attribute(f"app.k{i}", i)
    (done,) = exp.get_finished_spans()
    assert (done.attributes[TENANT], done.attributes[TENANT_SOURCE]) == (tag_for("test-key", RAW), "context")
