"""The tool service: a second ASGI service the agent reaches over HTTP with httpx.

Done right, it authenticates the calling tenant from the forwarded bearer token with
flowmap's ``TenantMiddleware`` (the inbound baggage tag is only evidence). With the
``tool_service_ignores_context`` bug it uses a generic tracing middleware instead: the
trace continues from ``traceparent`` but no tenant is ever bound, so its spans drop the
tenant of the agent's call.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .. import attributes as A
from .. import runtime
from ..asgi import ASGIApp, Receive, Scope, Send, headers_of
from ..boundaries import boundary
from .auth import authenticated
from .json_app import HEALTH_PATH, JsonApp
from .leaks import Leaks

__all__ = ["build_tool_service", "RATES"]

RATES = {("EUR", "USD"): 1.08, ("USD", "EUR"): 0.93, ("GBP", "USD"): 1.27}


async def _fx_convert(scope: Scope, body: Any) -> tuple[int, Any]:
    with boundary("tool", "execute_tool fx_convert",
                  attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "fx_convert"}):
        try:
            amount = float(body["amount"])
            rate = RATES[(str(body["source"]), str(body["target"]))]
        except (KeyError, TypeError, ValueError):
            return 400, {"error": "unsupported conversion"}
        return 200, {"amount": round(amount * rate, 2), "currency": body["target"], "rate": rate}


class TraceOnlyMiddleware:
    """A generic server-span middleware: continues ``traceparent`` and nothing else.

    It reads no baggage and authenticates nobody, like a tracing setup copied from a
    single-tenant service; everything the tool runs is then untagged.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._propagator = TraceContextTextMapPropagator()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == HEALTH_PATH:
            await self.app(scope, receive, send)
            return
        parent = self._propagator.extract(headers_of(scope))
        with runtime.get_tracer().start_as_current_span(
            f"{scope['method']} {scope['path']}", context=parent, kind=SpanKind.SERVER,
            attributes={A.BOUNDARY: "http.server", "http.request.method": scope["method"],
                        "url.path": scope["path"]},
        ):
            await self.app(scope, receive, send)


def build_tool_service(leaks: Leaks) -> Any:
    """The ASGI app: ``POST /tools/fx_convert``, authenticated unless the leak is on."""
    app = JsonApp({("POST", "/tools/fx_convert"): _fx_convert})
    if leaks.tool_service_ignores_context:
        return TraceOnlyMiddleware(app)
    return authenticated(app)
