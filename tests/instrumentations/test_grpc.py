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
