"""The tool service: a second ASGI service the agent reaches over HTTP with httpx.

Done right, it authenticates the calling tenant from the forwarded bearer token with
flowmap's ``TenantMiddleware`` (the inbound baggage tag is only evidence). With the
``tool_service_ignores_context`` bug it uses a generic tracing middleware instead: the
trace continues from ``traceparent`` but no tenant is ever bound, so its spans drop the
tenant of the agent's call.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .. import attributes as A
from .. import runtime
from ..asgi import TenantMiddleware, headers_of
from ..boundaries import boundary
from ..context import RequestContext
from ._http import JsonApp, bearer_token
from .data import tenant_for_token
from .leaks import Leaks

__all__ = ["build_tool_service", "RATES"]

RATES = {("EUR", "USD"): 1.08, ("USD", "EUR"): 0.93, ("GBP", "USD"): 1.27}


async def _fx_convert(scope: dict[str, Any], body: Any) -> tuple[int, Any]:
    with boundary("tool", "execute_tool fx_convert",
                  attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "fx_convert"}):
        try:
            amount = float(body["amount"])
            rate = RATES[(str(body["source"]), str(body["target"]))]
        except (KeyError, TypeError, ValueError):
            return 400, {"error": "unsupported conversion"}
        return 200, {"amount": round(amount * rate, 2), "currency": body["target"], "rate": rate}


async def _health(scope: dict[str, Any], body: Any) -> tuple[int, Any]:
    return 200, {"ok": True}


def resolve_tenant(scope: dict[str, Any]) -> RequestContext | None:
    """The tenant the caller's bearer token authenticates (shared by both services)."""
    tenant = tenant_for_token(bearer_token(scope))
    return None if tenant is None else RequestContext(tenant.tenant_id, principal=tenant.user)


class TraceOnlyMiddleware:
    """A generic server-span middleware: continues ``traceparent`` and nothing else."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._propagator = TraceContextTextMapPropagator()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] == "/healthz":
            await self.app(scope, receive, send)
            return
        parent = self._propagator.extract(headers_of(scope))
        name = f"{scope['method']} {scope['path']}"
        span = runtime.get_tracer().start_span(
            name, context=parent, kind=SpanKind.SERVER,
            attributes={A.BOUNDARY: "http.server", "http.request.method": scope["method"],
                        "url.path": scope["path"]},
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            await self.app(scope, receive, send)
        finally:
            otel_context.detach(token)
            span.end()


def build_tool_service(leaks: Leaks) -> Any:
    app = JsonApp({("POST", "/tools/fx_convert"): _fx_convert, ("GET", "/healthz"): _health})
    if leaks.tool_service_ignores_context:
        return TraceOnlyMiddleware(app)
    return TenantMiddleware(
        app, resolve_tenant, exempt_paths=("/healthz",),
        span_name=lambda scope: f"{scope.get('method')} {scope.get('path')}",
    )
