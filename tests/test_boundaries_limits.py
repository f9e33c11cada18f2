"""A boundary span keeps ``flowmap.boundary`` and ``flowmap.scoped`` (and the unscoped
mark) under the SDK's attribute-count limit, like the tenant tag: a retrieval span with
flattened documents must not read as a span that crossed no boundary. Real SDK, through
``configure()`` as applications use it."""

import json

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


@pytest.mark.parametrize("limit", [0, 1, 3])
def test_all_of_flowmaps_own_survive_a_limit_below_their_number(make, limit):
    """A limit smaller than flowmap's own attributes (even 0) is exceeded by them alone."""
    exp = make(SpanLimits(max_span_attributes=limit))
    with bind(RequestContext(RAW)):
        with boundary("vector", "search", scoped=True) as span:
            _flood(span, 5)
    (s,) = exp.get_finished_spans()
    assert dict(s.attributes) == {
        BOUNDARY: "vector", SCOPED: True, TENANT: tag_for("test-key", RAW), TENANT_SOURCE: "context",
    }
    assert s.dropped_attributes == 5  # the application's, all lost


@pytest.mark.parametrize("limit", [0, 1])
def test_the_unscoped_mark_survives_a_tiny_limit_also_when_a_generator_resumes_unbound(make, limit):
    exp = make(SpanLimits(max_span_attributes=limit))
    with boundary("cache", "get", mode="record") as span:  # nothing bound at the start
        _flood(span, 3)

    @boundary("vector", "stream", mode="record")
    def results():
        yield 1
        yield 2

    with bind(RequestContext(RAW)):
        gen = results()
        next(gen)
    list(gen)  # resumed with nothing bound: marked unscoped then
    by_name = {s.name: dict(s.attributes) for s in exp.get_finished_spans()}
    assert by_name["get"] == {BOUNDARY: "cache", UNSCOPED: True}
    assert by_name["stream"] == {
        BOUNDARY: "vector", UNSCOPED: True, TENANT: tag_for("test-key", RAW), TENANT_SOURCE: "context",
    }


@pytest.mark.parametrize("limit", [0, 2])
def test_redaction_under_a_tiny_limit_keeps_flowmaps_own_and_writes_no_raw_id(make, limit):
    exp = make(SpanLimits(max_span_attributes=limit))
    with bind(RequestContext(RAW)):
        with boundary("db", f"select for {RAW}", scoped=True) as span:
            span.set_attribute("db.query.text", f"tenant = '{RAW}'")
    (s,) = exp.get_finished_spans()
    a = dict(s.attributes)
    assert RAW not in s.name
    # the query made room for flowmap's own: only the name is left to redact
    assert a == {
        BOUNDARY: "db", SCOPED: True, TENANT: tag_for("test-key", RAW), TENANT_SOURCE: "context", REDACTED: 1,
    }


def test_the_authenticating_mark_survives_a_limit_of_0_also_on_a_redacted_span(make):
    from flowmap.context import authenticating

    exp = make(SpanLimits(max_span_attributes=0))
    with bind(RequestContext(RAW)):  # its id is known to redaction from now on
        pass
    with authenticating():
        with runtime.get_tracer().start_as_current_span("introspect"):
            pass
        with runtime.get_tracer().start_as_current_span(f"introspect {RAW}"):
            pass
    plain, redacted = (dict(s.attributes) for s in exp.get_finished_spans())
    assert plain == {"flowmap.authenticating": True}
    assert redacted == {"flowmap.authenticating": True, REDACTED: 1}


@pytest.mark.parametrize("limit", ["0", "3"])
def test_under_the_environments_limit_the_trace_file_reads_as_the_app_ran(tmp_path, monkeypatch, limit):
    """OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT as an operator sets it, configure()'s own provider,
    the JSON Lines file, and the analysis: every span keeps its tenant and its boundary, so
    nothing reads as a dropped context or a boundary that was never crossed."""
    from flowmap.analysis import analyze

    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", limit)
    monkeypatch.delenv("FLOWMAP_BOUNDARY_MODE", raising=False)
    out = tmp_path / "t.jsonl"
    rt = configure(tenant_key="test-key", out=out, instrument_httpx=False, set_global=False)
    try:
        with bind(RequestContext(RAW)):
            with boundary("agent", "run") as agent:
                _flood(agent, 4)
                with boundary("vector", "search", scoped=True) as span:
                    _flood(span, 4)
        assert rt.force_flush()
    finally:
        rt.shutdown()
        runtime.set_tagger(None)
        runtime.set_runtime(None)
    spans = [s for line in out.read_text().splitlines() for rs in json.loads(line)["resourceSpans"]
             for ss in rs["scopeSpans"] for s in ss["spans"]]
    attrs = {s["name"]: {a["key"]: next(iter(a["value"].values())) for a in s["attributes"]} for s in spans}
    assert attrs["search"] == {
        BOUNDARY: "vector", SCOPED: True, TENANT: tag_for("test-key", RAW), TENANT_SOURCE: "context",
    }
    assert attrs["run"] == {BOUNDARY: "agent", TENANT: tag_for("test-key", RAW), TENANT_SOURCE: "context"}
    analysis = analyze([out])
    assert analysis.spans == 2 and analysis.findings == []


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
