"""TenantMiddleware: the receiving side of a hop, as pure ASGI (no framework needed).

For each HTTP request (and websocket) it continues the caller's trace from
``traceparent``, lets the app's ``resolver`` authenticate the tenant, and binds the
RequestContext for the whole request (or connection). The inbound baggage tag is
evidence, never authority: the server span carries
the *authenticated* tenant's tag (source ``context``) and keeps the inbound tag in
``flowmap.tenant.inbound``, so a forged or stale tag shows up in the trace as a tenant
change on the edge from the remote parent.

If an OpenTelemetry ASGI instrumentation already opened the SERVER span, that span is
annotated; otherwise the middleware opens it (``flowmap.boundary="http.server"`` plus
the standard ``http.*``/``url.*``/``server.*`` attributes). Its own span ends inside the
binding; an outer span ends after it, so the raw id is registered on that span for
flowmap's redaction (e.g. a ``url.path`` that holds the tenant id is still scrubbed).
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from . import attributes as A
from . import runtime
from .context import RequestContext, authenticating, bind
from .processors import keep_attributes
from .propagation import _text_headers, extract_context
from .redaction import register_tenant_id
from .tagging import Tagger, is_opaque_tag

__all__ = ["TenantMiddleware", "Resolver", "header", "headers_of"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
ResolverResult = RequestContext | str | None
Resolver = Callable[[Scope], ResolverResult | Awaitable[ResolverResult]]

_log = logging.getLogger("flowmap.asgi")


def headers_of(scope: Scope) -> dict[str, str]:
    """The request headers as ``{lowercase name: value}`` (repeated headers comma-joined)."""
    return _text_headers(scope.get("headers"), "latin-1")  # HTTP header bytes are latin-1


def header(scope: Scope, name: str) -> str | None:
    """One request header by (case-insensitive) name, for resolvers."""
    wanted = name.lower().encode("latin-1")
    values = [v.decode("latin-1") for k, v in scope.get("headers") or () if k.lower() == wanted]
    return ",".join(values) if values else None


def _json_response(status: int, error: str) -> tuple[Message, Message]:
    body = json.dumps({"error": error}).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    return start, {"type": "http.response.body", "body": body}


class _ResolverFailed(Exception):
    pass


class TenantMiddleware:
    """Authenticate the tenant of each HTTP request and bind it for the request's duration.

    ``resolver(scope)`` (sync or async) returns a :class:`RequestContext`, a tenant id
    string, or ``None`` when the request is not authenticated. Unauthenticated requests
    get ``401`` (``require_tenant=True``, the default) or pass through unbound. A resolver
    that raises or returns something else gets a generic ``500``: no error body or log
    line ever echoes what the resolver saw. ``exempt_paths`` (exact paths, or prefixes
    ending in ``/``) pass through untouched, e.g. health checks. A websocket is
    authenticated the same way, from its handshake, and bound for the whole connection
    (a chat stream serves one tenant); one that is refused is closed before it is
    accepted (code 1008: the server answers the handshake with 403), as is one whose
    resolver fails. Other scopes (lifespan) pass through untouched.
    """

    def __init__(
        self,
        app: ASGIApp,
        resolver: Resolver,
        *,
        tagger: Tagger | None = None,
        exempt_paths: Iterable[str] = (),
        require_tenant: bool = True,
        tracer_provider: Any = None,
        span_name: Callable[[Scope], str] | None = None,
    ) -> None:
        self.app = app
        self.resolver = resolver
        self.tagger = tagger
        self.require_tenant = require_tenant
        self.tracer_provider = tracer_provider
        self.span_name = span_name
        paths = tuple(exempt_paths)
        self._exempt_exact = frozenset(p for p in paths if not p.endswith("/"))
        self._exempt_prefixes = tuple(p for p in paths if p.endswith("/"))

    def _exempt(self, path: str) -> bool:
        return path in self._exempt_exact or (bool(self._exempt_prefixes) and path.startswith(self._exempt_prefixes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") not in _SCOPES or self._exempt(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        headers = headers_of(scope)
        extracted = extract_context(headers)
        inbound = _inbound_tag(extracted)
        outer = trace.get_current_span()
        owns_span = not (outer.is_recording() and getattr(outer, "kind", None) is SpanKind.SERVER)
        if owns_span:
            span = runtime.get_tracer(self.tracer_provider).start_span(
                self._name(scope), context=extracted, kind=SpanKind.SERVER,
                attributes=_request_attributes(scope, headers),
            )
            parent_ctx = extracted
        else:
            span = outer
            parent_ctx = otel_context.get_current()
        token = otel_context.attach(trace.set_span_in_context(span, parent_ctx))
        try:
            _annotate(span, {A.BOUNDARY: "http.server", A.TENANT_INBOUND: inbound})
            try:
                with authenticating():  # spans of the resolver: no tenant known yet
                    ctx = await self._resolve(scope)
            except _ResolverFailed as exc:
                _annotate_error(span, str(exc))
                await self._reply(scope, receive, send, span, 500, "internal error")
                return
            if ctx is None:
                if self.require_tenant:
                    await self._reply(scope, receive, send, span, 401, "unauthenticated")
                    return
                await self._run(scope, receive, send, span, owns_span)
                return
            if not owns_span:
                # the outer span ends after this binding is gone: tell redaction its raw id
                register_tenant_id(span, ctx.tenant_id)
            with bind(ctx):
                tagger = self.tagger or runtime.tagger_or_none()
                if tagger is not None:
                    _annotate(span, {A.TENANT: tagger.tag(ctx.tenant_id), A.TENANT_SOURCE: A.SOURCE_CONTEXT})
                await self._run(scope, receive, send, span, owns_span)
        finally:
            otel_context.detach(token)
            if owns_span and span.is_recording():  # only reached before bind on early exits
                span.end()

    def _name(self, scope: Scope) -> str:
        if self.span_name is not None:
            try:
                return str(self.span_name(scope))
            except Exception:  # noqa: BLE001
                _log.debug("flowmap: span_name callback failed", exc_info=True)
        return _method(scope)

    async def _resolve(self, scope: Scope) -> RequestContext | None:
        try:
            result = self.resolver(scope)
            if inspect.isawaitable(result):
                result = await result
            if result is None or isinstance(result, RequestContext):
                return result
            if isinstance(result, str):
                return RequestContext(result)
        except Exception as exc:  # noqa: BLE001 - reported without its message (may hold ids)
            _log.warning("flowmap: tenant resolver raised %s; replying 500", type(exc).__name__)
            raise _ResolverFailed(f"tenant resolver raised {type(exc).__name__}") from None
        _log.warning("flowmap: tenant resolver returned %s; replying 500", type(result).__name__)
        raise _ResolverFailed(f"tenant resolver returned {type(result).__name__}")

    async def _reply(self, scope: Scope, receive: Receive, send: Send, span: Span, status: int, error: str) -> None:
        if _is_websocket(scope):
            # closed before it is accepted: the server refuses the handshake with a 403
            _annotate(span, {"http.response.status_code": 403})
            message = await receive()
            if message.get("type") == "websocket.connect":
                await send({"type": "websocket.close", "code": _WS_POLICY_VIOLATION})
            return
        start, body = _json_response(status, error)
        _annotate(span, {"http.response.status_code": status})
        await send(start)
        await send(body)

    async def _run(self, scope: Scope, receive: Receive, send: Send, span: Span, owns_span: bool) -> None:
        status_holder: list[int] = []

        async def send_wrapper(message: Message) -> None:
            kind = message.get("type")
            if kind == "http.response.start":
                status_holder.append(int(message.get("status", 0)))
            elif kind == "websocket.accept":
                status_holder.append(101)  # the handshake switched protocols
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException as exc:
            if owns_span and span.is_recording():
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                span.set_attribute("error.type", type(exc).__qualname__)
            raise
        finally:
            if owns_span and span.is_recording():
                if status_holder:
                    code = status_holder[0]
                    span.set_attribute("http.response.status_code", code)
                    if code >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                route = scope.get("route")
                route_path = getattr(route, "path", None)
                if isinstance(route_path, str) and self.span_name is None:
                    span.set_attribute("http.route", route_path)
                    span.update_name(f"{_method(scope)} {route_path}")
                span.end()  # inside bind(): redaction still knows the raw id to scrub


_SCOPES = frozenset({"http", "websocket"})
_WS_POLICY_VIOLATION = 1008  # RFC 6455 close code for a refused connection


def _method(scope: Scope) -> str:
    """The request's method, or ``WEBSOCKET`` for a websocket (its scope has none)."""
    return str(scope.get("method") or ("WEBSOCKET" if _is_websocket(scope) else "HTTP"))


def _is_websocket(scope: Scope) -> bool:
    return scope.get("type") == "websocket"


def _inbound_tag(extracted: Any) -> str | None:
    tag = otel_baggage.get_baggage(A.BAGGAGE_KEY, extracted)
    return tag if is_opaque_tag(tag) else None


def _annotate(span: Span, attrs: dict[str, Any]) -> None:
    try:
        if span.is_recording():
            present = {k: v for k, v in attrs.items() if v is not None}
            span.set_attributes(present)
            # flowmap's own survive the attribute-count limit (not the status code also set here)
            keep_attributes(span, {k: v for k, v in present.items() if k.startswith("flowmap.")})
    except Exception:  # noqa: BLE001 - telemetry must not break the request
        _log.debug("flowmap: could not annotate the server span", exc_info=True)


def _annotate_error(span: Span, description: str) -> None:
    try:
        if span.is_recording():
            span.set_status(Status(StatusCode.ERROR, description))
    except Exception:  # noqa: BLE001
        pass


def _request_attributes(scope: Scope, headers: dict[str, str]) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        A.BOUNDARY: "http.server",
        "http.request.method": scope.get("method", "GET" if _is_websocket(scope) else "_OTHER"),
        "url.scheme": scope.get("scheme", "ws" if _is_websocket(scope) else "http"),
        "url.path": scope.get("path", ""),
    }
    version = scope.get("http_version")
    if version:
        attrs["network.protocol.version"] = version
    host = headers.get("host")
    server = scope.get("server")
    if host:
        name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        if name and port.isdigit():
            attrs["server.address"], attrs["server.port"] = name.strip("[]"), int(port)
        else:
            attrs["server.address"] = host.strip("[]")
    elif server:
        attrs["server.address"], attrs["server.port"] = server[0], server[1]
    client = scope.get("client")
    if client:
        attrs["client.address"] = client[0]
    agent = headers.get("user-agent")
    if agent:
        attrs["user_agent.original"] = agent
    return attrs
