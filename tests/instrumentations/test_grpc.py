"""Third-party traces across services: a real gRPC call over loopback, traced by the
contrib gRPC instrumentation (flowmap adds only its processor and exporter).

Two services, each with its own tracer provider and trace file, as two processes would
write them; ``flowmap check`` reads both. The gRPC spans carry no ``flowmap.boundary``:
the analyzer infers ``http.client``/``http.server`` from ``rpc.system``, so a service
that ignores the propagated tenant is judged at a boundary (high), as over HTTP.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent import futures

import pytest

grpc = pytest.importorskip("grpc")
pytest.importorskip("opentelemetry.instrumentation.grpc")

from opentelemetry.instrumentation.grpc import (  # noqa: E402
    client_interceptor,
    server_interceptor,
)
from opentelemetry.instrumentation.grpc.grpcext import intercept_channel  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402

import flowmap  # noqa: E402
from flowmap.exporter import JsonLinesSpanExporter  # noqa: E402
from flowmap.processors import FlowmapSpanProcessor  # noqa: E402
from flowmap.tagging import Tagger  # noqa: E402

KEY = "grpc-test-key"
ACME = "acme-corp-7731"


def _provider(service: str, path) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(FlowmapSpanProcessor(Tagger(KEY)))
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    return provider


def _call_tools(tmp_path, send_tag: bool):
    """gateway (tenant bound) --gRPC--> tools, which never binds a tenant itself."""
    gateway = _provider("gateway", tmp_path / "gateway.jsonl")
    tools = _provider("tools", tmp_path / "tools.jsonl")
    tools_tracer = tools.get_tracer("tools")

    def run(request: bytes, context) -> bytes:
        with tools_tracer.start_as_current_span("orders.lookup"):
            return b"ok:" + request

    handler = grpc.method_handlers_generic_handler(
        "agent.Tools", {"Run": grpc.unary_unary_rpc_method_handler(run)}
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2),
        interceptors=[server_interceptor(tracer_provider=tools)],
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        channel = intercept_channel(
            grpc.insecure_channel(f"127.0.0.1:{port}"), client_interceptor(tracer_provider=gateway)
        )
        with channel:
            call = channel.unary_unary("/agent.Tools/Run")
            tag = Tagger(KEY).tag(ACME)
            # the tenant travels as the opaque tag in baggage only when the caller sends it
            metadata = (("baggage", f"flowmap.tenant={tag}"),) if send_tag else None
            with flowmap.bind(flowmap.RequestContext(ACME)):
                entry = gateway.get_tracer("gateway").start_as_current_span(
                    "POST /chat", kind=SpanKind.SERVER, attributes={"http.request.method": "POST"}
                )
                with entry:
                    assert call(b"x", metadata=metadata) == b"ok:x"
    finally:
        server.stop(None)
        gateway.shutdown()
        tools.shutdown()
    out = subprocess.run(
        [sys.executable, "-m", "flowmap", "check", "--format", "json",
         str(tmp_path / "gateway.jsonl"), str(tmp_path / "tools.jsonl")],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert ACME not in out.stdout + out.stderr
    return out, json.loads(out.stdout)


def test_grpc_service_that_drops_the_tenant_fails_check(tmp_path):
    out, doc = _call_tools(tmp_path, send_tag=False)
    assert out.returncode == 1, out.stderr
    assert doc["summary"]["spans"] == 4  # entry, gRPC client, gRPC server, the lookup
    (f,) = doc["findings"]
    assert (f["rule"], f["severity"], f["service"], f["boundary"]) == (
        "context-dropped", "high", "tools", "http.server"
    )
    assert f["span_name"] == f["parent_name"] == "/agent.Tools/Run"


def test_grpc_service_tagged_from_the_callers_baggage_passes(tmp_path):
    out, doc = _call_tools(tmp_path, send_tag=True)
    assert out.returncode == 0, out.stderr
    assert doc["summary"]["spans"] == 4 and doc["findings"] == []


def _serve_with_auth(tmp_path, refusal, alerts: list) -> dict:
    """A gRPC service that authenticates each call from its metadata and binds the
    tenant, and turns a call without a valid token away with ``refusal`` (a
    grpc.StatusCode) before any boundary runs; set up by ``flowmap.configure`` (alerting
    on every untagged span) and traced by the contrib server interceptor."""
    from flowmap import runtime

    rt = flowmap.configure(
        tenant_key=KEY, service_name="orders", out=str(tmp_path / "orders.jsonl"), instrument_httpx=False,
        set_global=False, alert_scope="all", alert_callback=alerts.append,
    )
    tokens = {"tok-acme": ACME}

    def list_orders(request: bytes, context) -> bytes:
        tenant = tokens.get(dict(context.invocation_metadata()).get("authorization", ""))
        if tenant is None:
            context.abort(refusal, "no valid token")
        with flowmap.bind(flowmap.RequestContext(tenant)):
            with flowmap.boundary("db", "orders.select", scoped=True):
                return b"orders"

    handler = grpc.method_handlers_generic_handler(
        "shop.Orders", {"List": grpc.unary_unary_rpc_method_handler(list_orders)}
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2),
        interceptors=[server_interceptor(tracer_provider=rt.tracer_provider)],
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/shop.Orders/List")
            assert call(b"x", metadata=(("authorization", "tok-acme"),)) == b"orders"
            with pytest.raises(grpc.RpcError) as refused:
                call(b"x")
            assert refused.value.code() == refusal
    finally:
        server.stop(None)
        rt.shutdown()
        runtime.set_tagger(None)
        runtime.set_runtime(None)
    out = subprocess.run(
        [sys.executable, "-m", "flowmap", "check", "--format", "json", str(tmp_path / "orders.jsonl")],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert ACME not in out.stdout + out.stderr
    doc = json.loads(out.stdout)
    assert doc["summary"]["spans"] == 3, out.stderr  # two server spans, one boundary
    return doc


@pytest.mark.parametrize("refusal", ["UNAUTHENTICATED", "PERMISSION_DENIED"])
def test_grpc_call_refused_unauthenticated_is_no_finding_and_no_alert(tmp_path, refusal):
    """A call the service refuses as gRPC's answer to HTTP 401/403 is authentication
    working, as a 401 is: no unscoped-entry, no runtime alert."""
    alerts: list = []
    doc = _serve_with_auth(tmp_path, getattr(grpc.StatusCode, refusal), alerts)
    assert doc["findings"] == [] and alerts == []


def test_grpc_call_failed_otherwise_without_a_tenant_is_still_unscoped(tmp_path):
    """The near miss: a call answered with another error (here NOT_FOUND) before any
    tenant was bound is a request served tenantless."""
    alerts: list = []
    doc = _serve_with_auth(tmp_path, grpc.StatusCode.NOT_FOUND, alerts)
    (f,) = doc["findings"]
    assert (f["rule"], f["severity"], f["span_name"]) == ("unscoped-entry", "medium", "/shop.Orders/List")
    assert [a.span_name for a in alerts] == ["/shop.Orders/List"]
