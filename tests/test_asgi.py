"""TenantMiddleware over real loopback HTTP: one trace across the hop, the authenticated
tenant wins over inbound baggage, unauthenticated requests are refused, no raw id leaks."""

from __future__ import annotations

import json
import logging
import time

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from flowmap import attributes as A
from flowmap import runtime
from flowmap.asgi import TenantMiddleware, header
from flowmap.context import RequestContext, bind, current_or_none, current_tag
from flowmap.exporter import encode_spans
from flowmap.outbound import instrument_httpx, uninstrument_httpx
from flowmap.processors import TenantSpanProcessor
from flowmap.redaction import RedactionProcessor
from flowmap.tagging import Tagger

from servers import RecordingApp, serve

TENANT_A = "tenant-alpha-raw-1138"
TENANT_B = "tenant-bravo-raw-2187"
TOKENS = {"token-a": TENANT_A, "token-b": TENANT_B}


@pytest.fixture
def tagger():
    previous = runtime._tagger
    t = Tagger("asgi-test-key")
    runtime.set_tagger(t)
    yield t
    runtime.set_tagger(previous)


@pytest.fixture
def telemetry(tagger):
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(TenantSpanProcessor(tagger))
    provider.add_span_processor(RedactionProcessor())
    provider.add_span_processor(SimpleSpanProcessor(memory))
    instrument_httpx(tracer_provider=provider)
    yield provider, memory
    uninstrument_httpx()
    provider.shutdown()


def resolve_bearer(scope):
    auth = header(scope, "authorization") or ""
    tenant = TOKENS.get(auth.removeprefix("Bearer "))
    return RequestContext(tenant, principal="user-1") if tenant else None


class ServiceApp:
    """The downstream service's own code: does some traced work, maybe calls onwards."""

    def __init__(self, provider, onward_url=None):
        self.tracer = provider.get_tracer("service")
        self.onward_url = onward_url
        self.seen = []

    async def __call__(self, scope, receive, send):
        ctx = current_or_none()
        self.seen.append({"bound": ctx is not None, "tenant": ctx and ctx.tenant_id, "tag": current_tag()})
        with self.tracer.start_as_current_span("service-work"):
            if self.onward_url:
                async with httpx.AsyncClient() as client:
                    await client.get(self.onward_url)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})


def wait_for(memory, predicate, timeout=5.0):
    """The server span ends after the response is sent: wait for it to be exported."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spans = memory.get_finished_spans()
        if predicate(spans):
            return spans
        time.sleep(0.01)
    raise AssertionError(f"spans never arrived: {[s.name for s in memory.get_finished_spans()]}")


def by_kind(spans, kind):
    return [s for s in spans if s.kind is kind]


def exported_text(spans):
    return json.dumps(encode_spans(spans))


def test_two_service_hop_is_one_trace_with_matching_tags(telemetry, tagger):
    provider, memory = telemetry
    service = ServiceApp(provider)
    with serve(TenantMiddleware(service, resolve_bearer, tracer_provider=provider)) as srv:
        with bind(RequestContext(TENANT_A)):
            r = httpx.get(srv.url + f"/tenants/{TENANT_A}/chat", headers={"authorization": "Bearer token-a"})
        assert r.status_code == 200
        spans = wait_for(memory, lambda s: len(by_kind(s, SpanKind.SERVER)) == 1)
    (client,) = by_kind(spans, SpanKind.CLIENT)
    (server,) = by_kind(spans, SpanKind.SERVER)
    work = next(s for s in spans if s.name == "service-work")
    tag = tagger.tag(TENANT_A)
    assert server.context.trace_id == client.context.trace_id == work.context.trace_id
    assert server.parent.span_id == client.context.span_id and server.parent.is_remote
    assert work.parent.span_id == server.context.span_id
    assert client.attributes[A.TENANT] == server.attributes[A.TENANT] == work.attributes[A.TENANT] == tag
    assert server.attributes[A.TENANT_SOURCE] == A.SOURCE_CONTEXT
    assert server.attributes[A.TENANT_INBOUND] == tag
    assert server.attributes[A.BOUNDARY] == "http.server"
    assert server.attributes["http.request.method"] == "GET"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["server.address"] == "127.0.0.1"
    assert service.seen == [{"bound": True, "tenant": TENANT_A, "tag": tag}]
    # The raw id was in the URL path: it is scrubbed before export, never written out.
    assert TENANT_A not in exported_text(spans)
    assert "[flowmap:redacted]" in server.attributes["url.path"]


def test_forged_inbound_tag_never_overrides_the_authenticated_tenant(telemetry, tagger, tmp_path):
    provider, memory = telemetry
    onward = RecordingApp()
    with serve(onward) as third:
        service = ServiceApp(provider, onward_url=third.url + "/onward")
        with serve(TenantMiddleware(service, resolve_bearer, tracer_provider=provider)) as srv:
            # The caller runs for tenant B (so its baggage says B) but authenticates as A.
            with bind(RequestContext(TENANT_B)):
                r = httpx.get(srv.url + "/chat", headers={"authorization": "Bearer token-a"})
            assert r.status_code == 200
            spans = wait_for(memory, lambda s: len(by_kind(s, SpanKind.SERVER)) == 1)
    tag_a, tag_b = tagger.tag(TENANT_A), tagger.tag(TENANT_B)
    (server,) = by_kind(spans, SpanKind.SERVER)
    first_client = next(s for s in by_kind(spans, SpanKind.CLIENT) if s.parent is None)
    assert first_client.attributes[A.TENANT] == tag_b
    assert server.parent.span_id == first_client.context.span_id
    # The edge from the remote parent shows the change: B -> A, with B kept as evidence.
    assert server.attributes[A.TENANT] == tag_a
    assert server.attributes[A.TENANT_SOURCE] == A.SOURCE_CONTEXT
    assert server.attributes[A.TENANT_INBOUND] == tag_b
    assert service.seen[0]["tenant"] == TENANT_A
    # Onward calls carry the authenticated tenant's tag, not the forged one.
    assert onward.requests[-1]["headers"]["baggage"] == f"{A.BAGGAGE_KEY}={tag_a}"
    text = exported_text(spans)
    assert TENANT_A not in text and TENANT_B not in text
    # The analyzer calls it cross-tenant on the server span, from the whole trace and from
    # the server's spans alone (the caller's span not in the data: the inbound tag says it)
    import flowmap

    for kept in (spans, [s for s in spans if s is not first_client]):
        path = tmp_path / f"{len(kept)}.jsonl"
        path.write_text(json.dumps(encode_spans(kept)) + "\n")
        cross = [f for f in flowmap.analyze([path]).findings if f.rule == "cross-tenant"]
        assert [(f.span_id, f.severity.name) for f in cross] == [(format(server.context.span_id, "016x"), "CRITICAL")]


def test_unauthenticated_request_is_refused_without_binding(telemetry, caplog):
    provider, memory = telemetry
    service = ServiceApp(provider)
    with serve(TenantMiddleware(service, resolve_bearer, tracer_provider=provider)) as srv:
        r = httpx.get(srv.url + "/chat", headers={"authorization": "Bearer wrong"})
        spans = wait_for(memory, lambda s: len(by_kind(s, SpanKind.SERVER)) == 1)
    assert r.status_code == 401 and r.json() == {"error": "unauthenticated"}
    assert service.seen == []  # the app never ran
    (server,) = by_kind(spans, SpanKind.SERVER)
    assert server.attributes["http.response.status_code"] == 401
    assert A.TENANT not in server.attributes  # nothing bound, nothing propagated


def test_pass_through_mode_runs_unbound(telemetry):
    provider, memory = telemetry
    service = ServiceApp(provider)
    app = TenantMiddleware(service, resolve_bearer, require_tenant=False, tracer_provider=provider)
    with serve(app) as srv:
        assert httpx.get(srv.url + "/public").status_code == 200
        wait_for(memory, lambda s: len(by_kind(s, SpanKind.SERVER)) == 1)
    assert service.seen == [{"bound": False, "tenant": None, "tag": None}]


def test_async_resolver_returning_a_tenant_string(telemetry, tagger):
    provider, memory = telemetry
    service = ServiceApp(provider)

    async def resolver(scope):
        return TOKENS.get(header(scope, "x-api-key") or "")

    with serve(TenantMiddleware(service, resolver, tracer_provider=provider)) as srv:
        assert httpx.get(srv.url + "/k", headers={"X-Api-Key": "token-b"}).status_code == 200
        spans = wait_for(memory, lambda s: len(by_kind(s, SpanKind.SERVER)) == 1)
    assert service.seen[0]["tenant"] == TENANT_B
    assert by_kind(spans, SpanKind.SERVER)[0].attributes[A.TENANT] == tagger.tag(TENANT_B)


def test_resolver_failure_is_500_without_echoing_ids(telemetry, caplog):
    provider, memory = telemetry
    service = ServiceApp(provider)

    def resolver(scope):
        raise KeyError(f"no such tenant {TENANT_A}")

    with caplog.at_level(logging.DEBUG):
        with serve(TenantMiddleware(service, resolver, tracer_provider=provider)) as srv:
            r = httpx.get(srv.url + "/x")
            spans = wait_for(memory, lambda s: len(by_kind(s, SpanKind.SERVER)) == 1)
    assert r.status_code == 500 and TENANT_A not in r.text
    assert service.seen == []
    (server,) = by_kind(spans, SpanKind.SERVER)
    assert server.status.status_code is StatusCode.ERROR
    assert TENANT_A not in exported_text(spans)
    assert all(TENANT_A not in rec.getMessage() for rec in caplog.records)
    assert any("KeyError" in rec.getMessage() for rec in caplog.records)


def test_exempt_paths_pass_through_untouched(telemetry):
    provider, memory = telemetry
    service = ServiceApp(provider)
    app = TenantMiddleware(service, resolve_bearer, exempt_paths=("/healthz", "/static/"),
                           tracer_provider=provider)
    with serve(app) as srv:
        assert httpx.get(srv.url + "/healthz").status_code == 200
        assert httpx.get(srv.url + "/static/app.js").status_code == 200
        assert httpx.get(srv.url + "/healthz/deeper").status_code == 401
        wait_for(memory, lambda s: len(by_kind(s, SpanKind.SERVER)) == 1)
    assert [s["bound"] for s in service.seen] == [False, False]


def test_annotates_an_existing_server_span_instead_of_opening_one(telemetry, tagger):
    provider, memory = telemetry
    tracer = provider.get_tracer("outer-instrumentation")
    service = ServiceApp(provider)
    inner = TenantMiddleware(service, resolve_bearer, tracer_provider=provider)

    async def instrumented(scope, receive, send):  # stands in for an ASGI instrumentation
        with tracer.start_as_current_span("GET outer", kind=SpanKind.SERVER):
            await inner(scope, receive, send)

    with serve(instrumented) as srv:
        httpx.get(srv.url + "/y", headers={"authorization": "Bearer token-a"})
        spans = wait_for(memory, lambda s: len(by_kind(s, SpanKind.SERVER)) == 1)
    (server,) = by_kind(spans, SpanKind.SERVER)
    assert server.name == "GET outer"
    assert server.attributes[A.TENANT] == tagger.tag(TENANT_A)
    assert server.attributes[A.TENANT_SOURCE] == A.SOURCE_CONTEXT
    assert server.attributes[A.BOUNDARY] == "http.server"
    work = next(s for s in spans if s.name == "service-work")
    assert work.parent.span_id == server.context.span_id


def test_app_exception_marks_span_and_propagates(telemetry):
    provider, memory = telemetry

    async def broken(scope, receive, send):
        raise RuntimeError(f"database said no for {TENANT_A}")

    with serve(TenantMiddleware(broken, resolve_bearer, tracer_provider=provider)) as srv:
        r = httpx.get(srv.url + "/z", headers={"authorization": "Bearer token-a"})
        spans = wait_for(memory, lambda s: len(by_kind(s, SpanKind.SERVER)) == 1)
    assert r.status_code == 500
    (server,) = by_kind(spans, SpanKind.SERVER)
    assert server.status.status_code is StatusCode.ERROR
    assert server.events and server.events[0].name == "exception"
    assert TENANT_A not in exported_text(spans)  # the exception message was redacted



def test_outer_contrib_asgi_span_has_the_raw_id_scrubbed_from_its_url(monkeypatch):
    """The real opentelemetry-instrumentation-asgi middleware owns the SERVER span. When
    the app fails before responding, that span ends in the middleware's ``finally``: after
    TenantMiddleware's binding is gone. Redaction-only pipeline (no tagger, so no tag on
    the span to map back from): only the id TenantMiddleware registered can scrub it."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    monkeypatch.delenv("FLOWMAP_TENANT_KEY", raising=False)
    previous = runtime._tagger
    runtime.set_tagger(None)
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(RedactionProcessor())
    provider.add_span_processor(SimpleSpanProcessor(memory))

    async def failing(scope, receive, send):
        raise RuntimeError("backend unavailable")

    inner = TenantMiddleware(failing, resolve_bearer, tracer_provider=provider)
    app = OpenTelemetryMiddleware(inner, tracer_provider=provider, exclude_spans=["receive", "send"])
    try:
        with serve(app) as srv:
            r = httpx.get(srv.url + f"/tenants/{TENANT_A}/chat", headers={"authorization": "Bearer token-a"})
            assert r.status_code == 500
            spans = wait_for(memory, lambda s: len(by_kind(s, SpanKind.SERVER)) == 1)
    finally:
        runtime.set_tagger(previous)
        provider.shutdown()
    (server,) = by_kind(spans, SpanKind.SERVER)
    assert server.attributes[A.BOUNDARY] == "http.server"  # annotated, not a second span
    assert any(isinstance(v, str) and "[flowmap:redacted]" in v for v in server.attributes.values())
    assert server.attributes[A.REDACTED] >= 1
    assert TENANT_A not in exported_text(spans)


class WebSocketApp:
    """A chat over a websocket: every message does traced work and answers with the tag
    of the tenant bound for the connection."""

    def __init__(self, provider):
        self.tracer = provider.get_tracer("ws")

    async def __call__(self, scope, receive, send):
        assert scope["type"] == "websocket"
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            with self.tracer.start_as_current_span(f"answer {message.get('text')}"):
                await send({"type": "websocket.send", "text": current_tag() or "unbound"})


def test_websocket_is_authenticated_at_its_handshake_and_bound_for_the_connection(telemetry, tagger):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    provider, memory = telemetry
    app = TenantMiddleware(WebSocketApp(provider), resolve_bearer, tracer_provider=provider)
    with serve(app) as srv:
        url = f"ws://{srv.host}:{srv.port}/chat/{TENANT_B}"
        with connect(url, additional_headers={"authorization": "Bearer token-b"}) as ws:
            answers = []
            for text in ("one", "two"):
                ws.send(text)
                answers.append(ws.recv(timeout=5))
        with pytest.raises(InvalidStatus) as refused:  # no token: refused before it is accepted
            connect(url, open_timeout=5)
        assert refused.value.response.status_code == 403
        spans = wait_for(memory, lambda s: len(by_kind(s, SpanKind.SERVER)) == 2)
    tag = tagger.tag(TENANT_B)
    assert answers == [tag, tag]
    served, denied = sorted(by_kind(spans, SpanKind.SERVER), key=lambda s: s.start_time)
    work = [s for s in spans if s.name.startswith("answer")]
    assert [s.attributes[A.TENANT] for s in work] == [tag, tag]
    assert all(s.parent.span_id == served.context.span_id for s in work)
    assert served.attributes[A.TENANT] == tag and served.attributes[A.BOUNDARY] == "http.server"
    assert served.attributes["http.response.status_code"] == 101
    assert served.name == "WEBSOCKET" and served.attributes["url.scheme"] == "ws"
    assert A.TENANT not in denied.attributes and denied.attributes["http.response.status_code"] == 403
    assert TENANT_B not in exported_text(spans)  # the id in the path is scrubbed


@pytest.mark.parametrize("caller_bound", [True, False])
def test_calls_the_resolver_makes_to_authenticate_are_no_dropped_context(telemetry, tagger, tmp_path, caller_bound):
    """A resolver that introspects the token over HTTP (or looks it up in a database)
    runs before the tenant is known, under the server span that gets the tenant
    afterwards: its spans were untagged children of a tagged span, a HIGH
    context-dropped on every request (or, with the caller's baggage, tagged with what
    the caller claimed, under the caller's key). They are marked as authentication now:
    no tag, no alert, no finding; the request's own work still carries the tenant."""
    from flowmap import analyze
    from flowmap.alerts import AlertProcessor

    provider, memory = telemetry
    alerts: list = []
    provider.add_span_processor(AlertProcessor("all", alerts.append))
    auth = RecordingApp()
    with serve(auth) as auth_srv:

        async def introspecting_resolver(scope):
            async with httpx.AsyncClient() as client:
                await client.post(auth_srv.url + "/introspect", content=b"token")
            return resolve_bearer(scope)

        service = ServiceApp(provider)
        with serve(TenantMiddleware(service, introspecting_resolver, tracer_provider=provider)) as srv:
            headers = {"authorization": "Bearer token-a"}
            if caller_bound:
                with bind(RequestContext(TENANT_A)):
                    r = httpx.get(srv.url + "/chat", headers=headers)
                assert r.status_code == 200
            else:  # a caller with no tracing at all (urllib is not instrumented)
                import urllib.request

                assert urllib.request.urlopen(urllib.request.Request(srv.url + "/chat", headers=headers)).status == 200
            spans = wait_for(memory, lambda s: len(by_kind(s, SpanKind.SERVER)) == 1)
    (server,) = by_kind(spans, SpanKind.SERVER)
    introspect = next(s for s in spans if s.kind is SpanKind.CLIENT and s.parent.span_id == server.context.span_id)
    work = next(s for s in spans if s.name == "service-work")
    assert introspect.attributes[A.AUTHENTICATING] is True and A.TENANT not in introspect.attributes
    assert work.attributes[A.TENANT] == server.attributes[A.TENANT] == tagger.tag(TENANT_A)
    assert alerts == []
    path = tmp_path / "traces.jsonl"
    path.write_text(json.dumps(encode_spans(spans)) + "\n", encoding="utf-8")
    assert [(f.rule, f.span_name) for f in analyze([path]).findings] == []


@pytest.mark.parametrize("caller_tenant", [TENANT_A, TENANT_B])
def test_an_app_that_binds_by_itself_tags_the_frameworks_server_span(telemetry, tagger, tmp_path, caller_tenant):
    """Flask's, aiohttp's or Django's instrumentation starts the SERVER span before the
    application's own code authenticates and binds: that span stayed untagged, a HIGH
    context-dropped on every request whose caller sent no tag (requests, urllib3 send
    none). The first authenticated bind under it tags it; a caller of another tenant is
    then a cross-tenant finding, not hidden behind the untagged span."""
    import urllib.request

    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from flowmap import analyze

    provider, memory = telemetry

    async def binds_itself(scope, receive, send):  # the app's own authentication
        ctx = resolve_bearer(scope)
        with bind(ctx), provider.get_tracer("svc").start_as_current_span("service-work"):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"done"})

    app = OpenTelemetryMiddleware(binds_itself, tracer_provider=provider, exclude_spans=["receive", "send"])
    with serve(app) as srv:
        caller = provider.get_tracer("caller")
        with bind(RequestContext(caller_tenant)), caller.start_as_current_span(
            "GET", kind=SpanKind.CLIENT, attributes={"http.request.method": "GET", "server.address": "127.0.0.1"}
        ):
            headers = {"authorization": "Bearer token-a"}
            TraceContextTextMapPropagator().inject(headers)  # traceparent only, no baggage
            assert urllib.request.urlopen(urllib.request.Request(srv.url + "/chat", headers=headers)).status == 200
        spans = wait_for(memory, lambda s: len(by_kind(s, SpanKind.SERVER)) == 1)
    (server,) = by_kind(spans, SpanKind.SERVER)
    assert server.attributes[A.TENANT] == tagger.tag(TENANT_A)
    assert server.attributes[A.TENANT_SOURCE] == A.SOURCE_CONTEXT
    path = tmp_path / "traces.jsonl"
    path.write_text(json.dumps(encode_spans(spans)) + "\n", encoding="utf-8")
    found = [(f.rule, f.span_id) for f in analyze([path]).findings]
    if caller_tenant == TENANT_A:
        assert found == []
    else:
        assert found == [("cross-tenant", format(server.context.span_id, "016x"))]


class PlainGateway:
    """A gateway with OpenTelemetry but not flowmap (its own provider, no tenant
    processors): it continues the caller's trace (traceparent only) and forwards the
    request onwards with its own service credential, which authenticates tenant B."""

    def __init__(self, provider, onward_url):
        self.tracer = provider.get_tracer("gateway")
        self.onward_url = onward_url

    async def __call__(self, scope, receive, send):
        import asyncio
        import urllib.request

        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        propagator = TraceContextTextMapPropagator()
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        parent = propagator.extract(carrier)
        with self.tracer.start_as_current_span("GET /forward", context=parent, kind=SpanKind.SERVER,
                                               attributes={"http.request.method": "GET", "http.route": "/forward"}):
            with self.tracer.start_as_current_span("GET", kind=SpanKind.CLIENT,
                                                   attributes={"http.request.method": "GET"}):
                headers = {"authorization": "Bearer token-b"}
                propagator.inject(headers)
                request = urllib.request.Request(self.onward_url, headers=headers)
                await asyncio.to_thread(lambda: urllib.request.urlopen(request, timeout=10).read())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"forwarded"})


def test_a_tenant_switched_behind_a_gateway_without_flowmap_is_a_cross_tenant(telemetry, tagger, tmp_path):
    """Three services over loopback: the caller runs for tenant A, a gateway traced
    without flowmap forwards with its own credential, and the tool service authenticates
    tenant B. The analyzer flags the gateway's span that lost A and, as a critical
    cross-tenant, the tool service's span that runs for B below it."""
    import flowmap

    provider, memory = telemetry
    plain = TracerProvider()
    plain.add_span_processor(SimpleSpanProcessor(memory))
    service = ServiceApp(provider)
    with serve(TenantMiddleware(service, resolve_bearer, tracer_provider=provider)) as tool:
        with serve(PlainGateway(plain, tool.url + "/run")) as gateway:
            with bind(RequestContext(TENANT_A)):
                r = httpx.get(gateway.url + "/forward", headers={"authorization": "Bearer token-a"})
            assert r.status_code == 200
            spans = wait_for(memory, lambda s: len(by_kind(s, SpanKind.SERVER)) == 2)
    plain.shutdown()
    assert service.seen[0]["tenant"] == TENANT_B
    caller = next(s for s in by_kind(spans, SpanKind.CLIENT) if s.parent is None)
    tool_server = next(s for s in by_kind(spans, SpanKind.SERVER) if s.attributes.get(A.TENANT))
    gateway_server = next(s for s in by_kind(spans, SpanKind.SERVER) if s is not tool_server)
    assert caller.attributes[A.TENANT] == tagger.tag(TENANT_A)
    assert tool_server.attributes[A.TENANT] == tagger.tag(TENANT_B)
    assert A.TENANT_INBOUND not in tool_server.attributes  # the gateway sent no baggage
    assert len({s.context.trace_id for s in spans}) == 1
    path = tmp_path / "traces.jsonl"
    path.write_text(json.dumps(encode_spans(spans)) + "\n")
    found = {(f.rule, f.span_id, f.parent_span_id, f.severity.name) for f in flowmap.analyze([path]).findings}
    sid = lambda s: format(s.context.span_id, "016x")  # noqa: E731
    assert ("cross-tenant", sid(tool_server), sid(caller), "CRITICAL") in found
    assert ("context-dropped", sid(gateway_server), sid(caller), "HIGH") in found
    assert not any(rule == "cross-tenant" and span != sid(tool_server) for rule, span, _, _ in found)
