"""AlertProcessor: unscoped spans -> warning log, metric, callback; rate-limited; never raises."""

import logging

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from flowmap.alerts import METRIC_NAME, AlertProcessor, RateLimit
from flowmap.attributes import BOUNDARY
from flowmap.context import RequestContext, bind
from flowmap.processors import TenantSpanProcessor
from flowmap.tagging import Tagger


class _Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _setup(scope="boundary", callback=None, rate_limit=None, clock=None):
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    tp = TracerProvider(resource=Resource.create({"service.name": "alert-svc"}))
    tp.add_span_processor(TenantSpanProcessor(Tagger("test-key")))
    tp.add_span_processor(
        AlertProcessor(scope, callback, rate_limit, meter_provider=meters, clock=clock or _Clock())
    )
    return tp.get_tracer("t"), reader


def _counts(reader):
    data = reader.get_metrics_data()
    out = {}
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == METRIC_NAME:
                    for p in m.data.data_points:
                        out[(p.attributes["boundary"], p.attributes["span.name"], p.attributes["service.name"])] = p.value
    return out


def test_unscoped_boundary_span_logs_counts_and_calls_back(caplog):
    alerts = []
    tracer, reader = _setup(callback=alerts.append)
    with caplog.at_level(logging.WARNING, logger="flowmap.alerts"):
        with tracer.start_as_current_span("vector-search", attributes={BOUNDARY: "vector"}) as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
    (record,) = caplog.records
    msg = record.getMessage()
    assert "vector-search" in msg and "vector" in msg and "alert-svc" in msg and trace_id in msg
    assert _counts(reader) == {("vector", "vector-search", "alert-svc"): 1}
    (alert,) = alerts
    assert (alert.span_name, alert.boundary, alert.service, alert.trace_id) == (
        "vector-search", "vector", "alert-svc", trace_id
    )


def test_tagged_and_non_boundary_spans_do_not_alert_by_default(caplog):
    alerts = []
    tracer, reader = _setup(callback=alerts.append)
    with caplog.at_level(logging.WARNING, logger="flowmap.alerts"):
        with tracer.start_as_current_span("plain-internal"):
            pass
        with bind(RequestContext("tenant-alert-raw")):
            with tracer.start_as_current_span("scoped", attributes={BOUNDARY: "db"}):
                pass
    assert alerts == [] and caplog.records == [] and _counts(reader) == {}


@pytest.mark.parametrize("setup", ["separate", "configured"])
def test_a_record_mode_boundary_that_ran_unbound_alerts_though_tagged_from_baggage(caplog, setup):
    """README: record mode "records, alerts and continues"; the caller's baggage tag on
    the span is evidence, not a binding. Under both the separate processors and the one
    FlowmapSpanProcessor that configure() installs."""
    from opentelemetry import baggage, context as otel_context

    from flowmap.boundaries import boundary
    from flowmap.processors import FlowmapSpanProcessor
    from flowmap.tagging import tag_for

    alerts = []
    if setup == "separate":
        tracer, _ = _setup(callback=alerts.append)
    else:
        tp = TracerProvider(resource=Resource.create({"service.name": "alert-svc"}))
        alerter = AlertProcessor("boundary", alerts.append, meter_provider=MeterProvider(), clock=_Clock())
        tp.add_span_processor(FlowmapSpanProcessor(Tagger("test-key"), alerter))
        tracer = tp.get_tracer("t")
    token = otel_context.attach(baggage.set_baggage("flowmap.tenant", tag_for("test-key", "acme-raw")))
    try:
        with boundary("tool", "refund", mode="record", tracer=tracer) as span:
            assert span.attributes["flowmap.tenant.source"] == "baggage"
    finally:
        otel_context.detach(token)
    assert [(a.span_name, a.boundary) for a in alerts] == [("refund", "tool")]
    alerts.clear()
    with bind(RequestContext("acme-raw")):  # near miss: bound, tagged, no alert
        with boundary("tool", "refund", mode="record", tracer=tracer):
            pass
    assert alerts == []


def test_scope_all_alerts_on_any_untagged_span():
    alerts = []
    tracer, reader = _setup(scope="all", callback=alerts.append)
    with tracer.start_as_current_span("plain-internal"):
        pass
    assert [a.span_name for a in alerts] == ["plain-internal"]
    assert _counts(reader) == {("", "plain-internal", "alert-svc"): 1}


def test_rate_limit_bounds_logs_and_callbacks_then_summarises(caplog):
    alerts = []
    clock = _Clock()
    tracer, reader = _setup(callback=alerts.append, rate_limit=RateLimit(burst=3, per_seconds=60), clock=clock)
    with caplog.at_level(logging.WARNING, logger="flowmap.alerts"):
        for _ in range(50):
            with tracer.start_as_current_span("flood", attributes={BOUNDARY: "tool"}):
                pass
        assert len(alerts) == 3 and len(caplog.records) == 3
        clock.now += 60  # one token back
        with tracer.start_as_current_span("flood", attributes={BOUNDARY: "tool"}):
            pass
    assert len(alerts) == 4 and alerts[-1].suppressed == 47
    assert any("suppressed 47" in r.getMessage() for r in caplog.records)
    assert _counts(reader) == {("tool", "flood", "alert-svc"): 51}  # the metric counts everything


def test_global_cap_limits_across_span_names():
    alerts = []
    tracer, _ = _setup(callback=alerts.append, rate_limit=RateLimit(burst=5, global_burst=4))
    for i in range(10):
        with tracer.start_as_current_span(f"name-{i}", attributes={BOUNDARY: "tool"}):
            pass
    assert len(alerts) == 4


def test_callback_errors_never_reach_the_application():
    def bad(alert):
        raise RuntimeError("pager down")

    tracer, reader = _setup(callback=bad)
    with tracer.start_as_current_span("tool-call", attributes={BOUNDARY: "tool"}):
        pass
    assert _counts(reader) == {("tool", "tool-call", "alert-svc"): 1}


def test_a_callback_whose_own_spans_are_unscoped_is_not_called_for_them():
    """A callback that posts the alert over http makes an untagged http.client span,
    itself an unscoped boundary: it must not be called for that one, on and on."""
    calls = []
    holder = {}

    def post(alert):
        calls.append(alert.span_name)
        with holder["tracer"].start_as_current_span("POST /webhook", attributes={BOUNDARY: "http.client"}):
            pass

    tracer, reader = _setup(callback=post)
    holder["tracer"] = tracer
    with tracer.start_as_current_span("tool-call", attributes={BOUNDARY: "tool"}):
        pass
    assert calls == ["tool-call"]
    counts = _counts(reader)  # the webhook's own span is still counted
    assert counts[("tool", "tool-call", "alert-svc")] == 1 and counts[("http.client", "POST /webhook", "alert-svc")] == 1


def test_invalid_scope_is_config_error():
    from flowmap.errors import ConfigError

    with pytest.raises(ConfigError):
        AlertProcessor("some")


# --- an alerted span is one not under its tenant's binding: its name may hold the raw id ---


def _orphan(tracer, raw, attributes):
    """A request of ``raw`` hands work to a thread pool that drops the context."""
    import concurrent.futures as cf

    def work():
        with tracer.start_as_current_span(f"search {raw}", attributes=attributes):
            pass

    with bind(RequestContext(raw)):
        with tracer.start_as_current_span("request"):
            with cf.ThreadPoolExecutor(1) as pool:
                pool.submit(work).result()


@pytest.mark.parametrize("with_redaction", [False, True])
def test_alert_outlets_never_carry_a_raw_tenant_id(caplog, with_redaction):
    """Log line, metric attribute and callback all get the scrubbed name — with the
    standalone AlertProcessor (no redaction installed) and behind RedactionProcessor."""
    from flowmap.redaction import REDACTED_VALUE, RedactionProcessor

    raw = f"initech-alert-{int(with_redaction)}-5521"
    alerts = []
    reader = InMemoryMetricReader()
    tp = TracerProvider(resource=Resource.create({"service.name": "alert-svc"}))
    tp.add_span_processor(TenantSpanProcessor(Tagger("test-key")))
    if with_redaction:
        tp.add_span_processor(RedactionProcessor())
    tp.add_span_processor(
        AlertProcessor("boundary", alerts.append, meter_provider=MeterProvider(metric_readers=[reader]), clock=_Clock())
    )
    tracer = tp.get_tracer("t")
    with caplog.at_level(logging.WARNING, logger="flowmap.alerts"):
        _orphan(tracer, raw, {BOUNDARY: "vector"})
    scrubbed = f"search {REDACTED_VALUE}"
    (record,) = caplog.records
    assert raw not in record.getMessage() and scrubbed in record.getMessage()
    assert _counts(reader) == {("vector", scrubbed, "alert-svc"): 1}
    (alert,) = alerts
    assert alert.span_name == scrubbed


def test_configured_processor_alerts_and_exports_without_the_raw_id(caplog):
    """What configure() installs: one FlowmapSpanProcessor doing redaction, then alerts."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from flowmap.processors import FlowmapSpanProcessor
    from flowmap.redaction import REDACTED_VALUE

    raw = "initech-configured-5521"
    alerts = []
    reader = InMemoryMetricReader()
    exp = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": "alert-svc"}))
    tp.add_span_processor(SimpleSpanProcessor(exp))
    alerter = AlertProcessor(
        "all", alerts.append, meter_provider=MeterProvider(metric_readers=[reader]), clock=_Clock()
    )
    tp.add_span_processor(FlowmapSpanProcessor(Tagger("test-key"), alerter))
    tracer = tp.get_tracer("t")
    with caplog.at_level(logging.WARNING, logger="flowmap.alerts"):
        _orphan(tracer, raw, {"q": f"docs of {raw}"})
    orphan = next(s for s in exp.get_finished_spans() if s.name.startswith("search"))
    assert raw not in orphan.to_json()
    assert all(raw not in r.getMessage() for r in caplog.records)
    assert _counts(reader) == {("", f"search {REDACTED_VALUE}", "alert-svc"): 1}
    assert [a.span_name for a in alerts] == [f"search {REDACTED_VALUE}"]


def test_a_logging_handler_that_raises_never_reaches_the_application(flowmap_runtime):
    """The alert is a log warning, and a processor's own failure a debug record: a
    handler that throws (it happens: a broken network handler) must not turn into an
    exception in the application's span.end()."""
    import logging

    from flowmap.boundaries import boundary

    class Raising(logging.Handler):
        def handle(self, record):  # as handlers that do not route errors through handleError
            raise RuntimeError("handler down")

    root = logging.getLogger()
    handler, level = Raising(logging.DEBUG), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        for _ in range(3):
            with boundary("vector", mode="record"):  # unbound: an alert, logged
                pass
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    _, exporter = flowmap_runtime
    assert len(exporter.get_finished_spans()) == 3


def test_a_request_refused_unauthenticated_raises_no_alert_but_work_below_it_does(caplog):
    """TenantMiddleware answers 401 to a request it cannot authenticate: its server span
    has no tenant by design, and the analysis finds nothing there (unscoped-entry exempts a
    refused request). The runtime alerted on every such probe, logging 'span ended without a
    tenant' and counting it in flowmap.unscoped_spans."""
    from opentelemetry.trace import SpanKind

    alerts = []
    tracer, reader = _setup(callback=alerts.append)
    with caplog.at_level(logging.WARNING, logger="flowmap.alerts"):
        for status, key in ((401, "http.response.status_code"), (403, "http.status_code"), ("407", "http.status_code")):
            with tracer.start_as_current_span("GET", kind=SpanKind.SERVER,
                                              attributes={BOUNDARY: "http.server", key: status}):
                pass
    assert alerts == [] and caplog.records == [] and _counts(reader) == {}
    # a refused request whose handler still ran a boundary: that span alerts
    with tracer.start_as_current_span("GET", kind=SpanKind.SERVER, attributes={BOUNDARY: "http.server"}) as entry:
        with tracer.start_as_current_span("cache.get", attributes={BOUNDARY: "cache"}):
            pass
        entry.set_attribute("http.response.status_code", 401)
    assert [a.span_name for a in alerts] == ["cache.get"]
    # served without a tenant (200), or refused by a client span's callee: still alerts
    with tracer.start_as_current_span("GET /x", kind=SpanKind.SERVER,
                                      attributes={BOUNDARY: "http.server", "http.response.status_code": 200}):
        pass
    with tracer.start_as_current_span("POST", kind=SpanKind.CLIENT,
                                      attributes={BOUNDARY: "http.client", "http.response.status_code": 401}):
        pass
    assert [a.span_name for a in alerts] == ["cache.get", "GET /x", "POST"]


def test_an_rpc_refused_unauthenticated_raises_no_alert():
    """RPC server spans are judged as HTTP ones: a gRPC call refused UNAUTHENTICATED or
    PERMISSION_DENIED is a 401/403 (alerting on every span, scope "all")."""
    from opentelemetry.trace import SpanKind

    alerts = []
    tracer, reader = _setup(scope="all", callback=alerts.append)
    for attrs in (
        {"rpc.system": "grpc", "rpc.grpc.status_code": 16},
        {"rpc.system": "grpc", "rpc.grpc.status_code": 7},
        {"rpc.system.name": "grpc", "rpc.response.status_code": "UNAUTHENTICATED"},
        {"rpc.system.name": "grpc", "rpc.response.status_code": "PERMISSION_DENIED"},
    ):
        with tracer.start_as_current_span("/shop.Orders/List", kind=SpanKind.SERVER, attributes=attrs):
            pass
    assert alerts == [] and _counts(reader) == {}
    # failed otherwise (NOT_FOUND), or the client's side of a refused call: still alerts
    with tracer.start_as_current_span("/shop.Orders/Get", kind=SpanKind.SERVER,
                                      attributes={"rpc.system": "grpc", "rpc.grpc.status_code": 5}):
        pass
    with tracer.start_as_current_span("/shop.Orders/List call", kind=SpanKind.CLIENT,
                                      attributes={"rpc.system": "grpc", "rpc.grpc.status_code": 16}):
        pass
    assert [a.span_name for a in alerts] == ["/shop.Orders/Get", "/shop.Orders/List call"]
