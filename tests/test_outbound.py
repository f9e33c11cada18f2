"""Outbound httpx over real loopback HTTP: traceparent always, tenant baggage only to allowed hosts."""

from __future__ import annotations

import asyncio
from types import MappingProxyType
from urllib.parse import parse_qs

import httpx
import pytest
from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from flowmap import attributes as A
from flowmap import runtime
from flowmap.context import RequestContext, bind
from flowmap.hosts import AllowedHosts
from flowmap.outbound import (
    GuardedBaggagePropagator,
    allowed_hosts,
    guard_global_baggage,
    instrument_httpx,
    is_instrumented,
    uninstrument_httpx,
)
from flowmap.processors import TenantSpanProcessor
from flowmap.tagging import Tagger

from servers import RecordingApp, serve

RAW_TENANT = "acme-corp-tenant-7731"
EXTERNAL = "api.example.com"  # never on the allow list; reached through a loopback proxy


class RedirectingApp(RecordingApp):
    """A :class:`RecordingApp` whose ``/hop?to=<url>`` answers ``302 Location: <url>``.

    It also serves as a plain forward proxy: a request for ``http://api.example.com/x``
    sent through it is recorded with path ``http://api.example.com/x``.
    """

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope.get("path", "").endswith("/hop"):
            return await super().__call__(scope, receive, send)
        target = parse_qs(scope.get("query_string", b"").decode())["to"][0]

        async def redirect(message):
            if message["type"] == "http.response.start":
                message = {"type": "http.response.start", "status": 302,
                           "headers": [(b"location", target.encode()), (b"content-length", b"0")]}
            else:
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        return await super().__call__(scope, receive, redirect)


@pytest.fixture
def tagger():
    previous = runtime._tagger
    t = Tagger("outbound-test-key")
    runtime.set_tagger(t)
    yield t
    runtime.set_tagger(previous)


@pytest.fixture
def spans(tagger):
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(TenantSpanProcessor(tagger))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield provider, memory
    uninstrument_httpx()
    provider.shutdown()


@pytest.fixture(scope="module")
def server():
    app = RedirectingApp()
    with serve(app) as running:
        running.app = app
        yield running


def _last_headers(server):
    return server.app.requests[-1]["headers"]


def _client_spans(memory):
    return [s for s in memory.get_finished_spans() if s.kind is SpanKind.CLIENT]


def _assert_no_raw_id(headers):
    for name, value in headers.items():
        assert RAW_TENANT not in name and RAW_TENANT not in value


def _assert_traceparent_is_span(headers, span):
    version, trace_id, span_id, flags = headers["traceparent"].split("-")
    assert trace_id == f"{span.context.trace_id:032x}"
    assert span_id == f"{span.context.span_id:016x}"


def test_allowed_destination_gets_traceparent_and_tenant_tag(spans, server, tagger):
    provider, memory = spans
    instrument_httpx(tracer_provider=provider)
    with bind(RequestContext(RAW_TENANT)):
        assert httpx.get(server.url + "/allowed").status_code == 200
    headers = _last_headers(server)
    tag = tagger.tag(RAW_TENANT)
    assert headers["baggage"] == f"{A.BAGGAGE_KEY}={tag}"
    _assert_no_raw_id(headers)
    (span,) = _client_spans(memory)
    _assert_traceparent_is_span(headers, span)
    assert span.attributes[A.BAGGAGE_SENT] is True
    assert span.attributes[A.BOUNDARY] == "http.client"
    assert span.attributes["server.address"] == "127.0.0.1"
    assert span.attributes["server.port"] == server.port
    assert span.attributes[A.TENANT] == tag


def test_disallowed_destination_gets_traceparent_only(spans, server, tagger):
    provider, memory = spans
    instrument_httpx(AllowedHosts(("localhost",), include_defaults=False), tracer_provider=provider)
    with bind(RequestContext(RAW_TENANT)):
        httpx.get(server.url + "/disallowed")  # 127.0.0.1 is not on this allow list
        disallowed = dict(_last_headers(server))
        httpx.get(f"http://localhost:{server.port}/allowed-name")
        allowed = dict(_last_headers(server))
    assert "traceparent" in disallowed and "baggage" not in disallowed
    _assert_no_raw_id(disallowed)
    assert allowed["baggage"] == f"{A.BAGGAGE_KEY}={tagger.tag(RAW_TENANT)}"
    first, second = _client_spans(memory)
    _assert_traceparent_is_span(disallowed, first)
    assert first.attributes[A.BAGGAGE_SENT] is False
    assert first.attributes["server.address"] == "127.0.0.1"
    # The client span still runs for the tenant: only the header was withheld.
    assert first.attributes[A.TENANT] == tagger.tag(RAW_TENANT)
    assert second.attributes[A.BAGGAGE_SENT] is True
    assert second.attributes["server.address"] == "localhost"


def test_other_baggage_members_are_never_sent(spans, server, tagger):
    provider, memory = spans
    instrument_httpx(tracer_provider=provider)
    token = otel_context.attach(otel_baggage.set_baggage("user.email", "someone@example.com"))
    try:
        with bind(RequestContext(RAW_TENANT)):
            httpx.get(server.url + "/members")
            assert otel_baggage.get_baggage("user.email") == "someone@example.com"  # caller's context intact
        httpx.get(server.url + "/unbound")
    finally:
        otel_context.detach(token)
    bound, unbound = server.app.requests[-2:]
    assert bound["headers"]["baggage"] == f"{A.BAGGAGE_KEY}={tagger.tag(RAW_TENANT)}"
    assert "baggage" not in unbound["headers"] and "traceparent" in unbound["headers"]
    assert [s.attributes[A.BAGGAGE_SENT] for s in _client_spans(memory)] == [True, False]


def test_async_client_is_destination_aware(spans, server, tagger):
    provider, memory = spans
    instrument_httpx(AllowedHosts(("localhost",), include_defaults=False), tracer_provider=provider)

    async def main():
        async with httpx.AsyncClient() as client:
            async with bind(RequestContext(RAW_TENANT)):
                await client.get(f"http://localhost:{server.port}/async-allowed")
                allowed = dict(_last_headers(server))
                await client.get(server.url + "/async-disallowed")
                disallowed = dict(_last_headers(server))
        return allowed, disallowed

    allowed, disallowed = asyncio.run(main())
    assert allowed["baggage"] == f"{A.BAGGAGE_KEY}={tagger.tag(RAW_TENANT)}"
    assert "baggage" not in disallowed and "traceparent" in disallowed
    _assert_no_raw_id(allowed)
    _assert_no_raw_id(disallowed)
    assert [s.attributes[A.BAGGAGE_SENT] for s in _client_spans(memory)] == [True, False]


def test_concurrent_async_requests_keep_their_own_tenant(spans, server, tagger):
    provider, memory = spans
    instrument_httpx(tracer_provider=provider)
    tenants = [f"tenant-{i:03d}" for i in range(20)]

    async def one(client, tenant):
        async with bind(RequestContext(tenant)):
            await client.get(server.url + f"/t/{tagger.tag(tenant)}")

    async def main():
        async with httpx.AsyncClient() as client:
            await asyncio.gather(*(one(client, t) for t in tenants))

    asyncio.run(main())
    seen = [r for r in server.app.requests if r["path"].startswith("/t/")][-len(tenants):]
    for req in seen:
        assert req["headers"]["baggage"] == f"{A.BAGGAGE_KEY}={req['path'][3:]}"
    assert sorted(s.attributes[A.TENANT] for s in _client_spans(memory)) == sorted(tagger.tag(t) for t in tenants)


def test_idempotent_and_uninstrument(spans, server):
    provider, memory = spans
    instrument_httpx(tracer_provider=provider)
    instrument_httpx(AllowedHosts(("localhost",), include_defaults=False), tracer_provider=provider)
    assert is_instrumented() and not allowed_hosts().allows("127.0.0.1")  # second call updated the list
    httpx.get(server.url + "/once")
    assert len(_client_spans(memory)) == 1  # not wrapped twice
    uninstrument_httpx()
    uninstrument_httpx()
    assert not is_instrumented()
    httpx.get(server.url + "/after")
    assert len(_client_spans(memory)) == 1
    assert "traceparent" not in _last_headers(server)


def test_reinstrument_with_another_provider(spans, server, tagger):
    provider, memory = spans
    instrument_httpx(tracer_provider=provider)
    other_memory = InMemorySpanExporter()
    other = TracerProvider()
    other.add_span_processor(SimpleSpanProcessor(other_memory))
    instrument_httpx(tracer_provider=other)
    httpx.get(server.url + "/other")
    assert len(_client_spans(other_memory)) == 1 and not _client_spans(memory)
    other.shutdown()


@pytest.fixture
def guarded_propagation():
    from opentelemetry import propagate

    from flowmap.outbound import unguard_global_baggage

    previous = propagate.get_global_textmap()
    assert guard_global_baggage() and guard_global_baggage()  # idempotent
    yield
    unguard_global_baggage()
    propagate.set_global_textmap(previous)


def test_guarded_baggage_keeps_the_tag_from_other_clients(spans, server, tagger, guarded_propagation):
    from opentelemetry import propagate

    provider, memory = spans
    instrument_httpx(tracer_provider=provider)
    with bind(RequestContext(RAW_TENANT)), provider.get_tracer("t").start_as_current_span("request"):
        other_client_headers: dict[str, str] = {}
        propagate.inject(other_client_headers)  # what any other instrumented client would send
        httpx.get(server.url + "/guarded")
    assert "traceparent" in other_client_headers and "baggage" not in other_client_headers
    assert _last_headers(server)["baggage"] == f"{A.BAGGAGE_KEY}={tagger.tag(RAW_TENANT)}"
    assert _client_spans(memory)[0].attributes[A.BAGGAGE_SENT] is True
    # Extraction still works, so a receiving service sees the inbound tag.
    extracted = propagate.extract({"baggage": f"{A.BAGGAGE_KEY}={tagger.tag(RAW_TENANT)}"})
    assert otel_baggage.get_baggage(A.BAGGAGE_KEY, extracted) == tagger.tag(RAW_TENANT)


def test_guard_strips_only_the_tag_and_can_be_undone(tagger, guarded_propagation):
    from opentelemetry import propagate

    from flowmap.outbound import GuardedBaggagePropagator, unguard_global_baggage

    with bind(RequestContext(RAW_TENANT)):
        headers: dict[str, str] = {}
        propagate.inject(headers, context=otel_baggage.set_baggage("app.flag", "on"))
    assert headers["baggage"] == "app.flag=on"  # the application's own entry is its business
    unguard_global_baggage()
    unguard_global_baggage()  # idempotent
    assert not any(isinstance(p, GuardedBaggagePropagator) for p in propagate.get_global_textmap()._propagators)
    with bind(RequestContext(RAW_TENANT)):
        headers = {}
        propagate.inject(headers)
    assert headers["baggage"] == f"{A.BAGGAGE_KEY}={tagger.tag(RAW_TENANT)}"


def test_other_clients_never_send_the_bound_raw_id_in_baggage(tagger, guarded_propagation):
    """What any other instrumented client (requests, aiohttp, gRPC) sends: the
    application's baggage entries and members holding its tenant's raw id are left out,
    the others kept; with nothing bound, nothing is known to be a raw id."""
    from opentelemetry import propagate

    entries = otel_baggage.set_baggage("tenant_id", RAW_TENANT, otel_baggage.set_baggage("app.flag", "on"))
    with bind(RequestContext(RAW_TENANT)):
        headers: dict[str, str] = {}
        propagate.inject(headers, context=entries)
        forwarded = {"baggage": f"who={RAW_TENANT},x=1"}
        propagate.inject(forwarded)
    assert headers["baggage"] == "app.flag=on"
    assert forwarded["baggage"] == "x=1"
    unbound: dict[str, str] = {}
    propagate.inject(unbound, context=otel_baggage.set_baggage("app.flag", "on"))
    assert unbound["baggage"] == "app.flag=on"


# -- a tag already in the request's headers: redirect hops and forwarded baggage ---------


def _get(mode, url, *, headers=None, proxy=None):
    """One GET following redirects, with an httpx.Client or an httpx.AsyncClient.

    With ``proxy`` (a loopback server's URL), requests for EXTERNAL go through it.
    """
    if mode == "sync":
        mounts = {f"http://{EXTERNAL}": httpx.HTTPTransport(proxy=proxy)} if proxy else None
        with httpx.Client(follow_redirects=True, mounts=mounts) as client:
            return client.get(url, headers=headers)

    async def main():
        mounts = {f"http://{EXTERNAL}": httpx.AsyncHTTPTransport(proxy=proxy)} if proxy else None
        async with httpx.AsyncClient(follow_redirects=True, mounts=mounts) as client:
            return await client.get(url, headers=headers)

    return asyncio.run(main())


def _members(headers):
    return [m.strip() for m in headers.get("baggage", "").split(",") if m.strip()]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_redirect_to_a_disallowed_name_drops_the_copied_tag(spans, server, tagger, mode):
    provider, memory = spans
    instrument_httpx(AllowedHosts(("localhost",), include_defaults=False), tracer_provider=provider)
    landing = f"{server.url}/landing-{mode}"  # 127.0.0.1: not on this allow list
    with bind(RequestContext(RAW_TENANT)):
        response = _get(mode, f"http://localhost:{server.port}/hop?to={landing}")
    assert response.status_code == 200 and len(response.history) == 1
    first, second = server.app.requests[-2:]
    assert first["path"] == "/hop" and second["path"] == f"/landing-{mode}"
    assert first["headers"]["baggage"] == f"{A.BAGGAGE_KEY}={tagger.tag(RAW_TENANT)}"
    # httpx copied the first hop's headers onto the redirect: the tag must not follow.
    assert "baggage" not in second["headers"] and "traceparent" in second["headers"]
    _assert_no_raw_id(second["headers"])
    hop1, hop2 = _client_spans(memory)
    assert (hop1.attributes["server.address"], hop1.attributes[A.BAGGAGE_SENT]) == ("localhost", True)
    assert (hop2.attributes["server.address"], hop2.attributes[A.BAGGAGE_SENT]) == ("127.0.0.1", False)
    _assert_traceparent_is_span(second["headers"], hop2)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_redirect_to_an_external_host_drops_the_copied_tag(spans, server, tagger, mode):
    provider, memory = spans
    instrument_httpx(tracer_provider=provider)  # the contract's default allow list
    with bind(RequestContext(RAW_TENANT)):
        response = _get(mode, f"{server.url}/hop?to=http://{EXTERNAL}/landing", proxy=server.url)
    assert response.status_code == 200
    first, second = server.app.requests[-2:]
    assert first["path"] == "/hop" and second["path"].endswith("/landing")
    assert second["headers"]["host"] == EXTERNAL
    assert first["headers"]["baggage"] == f"{A.BAGGAGE_KEY}={tagger.tag(RAW_TENANT)}"
    assert "baggage" not in second["headers"] and "traceparent" in second["headers"]
    hop1, hop2 = _client_spans(memory)
    assert (hop1.attributes["server.address"], hop1.attributes[A.BAGGAGE_SENT]) == ("127.0.0.1", True)
    assert (hop2.attributes["server.address"], hop2.attributes[A.BAGGAGE_SENT]) == (EXTERNAL, False)
    assert hop2.attributes[A.TENANT] == tagger.tag(RAW_TENANT)  # still the tenant's hop


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_forwarded_baggage_loses_only_the_tag_to_an_external_host(spans, server, tagger, mode):
    provider, memory = spans
    instrument_httpx(tracer_provider=provider)
    tag = tagger.tag(RAW_TENANT)
    # A gateway forwarding its inbound headers: several baggage fields, OWS, properties,
    # and spellings of the key other readers would decode to flowmap.tenant.
    forwarded = [
        ("baggage", f"other=x , {A.BAGGAGE_KEY} = {tag};origin=inbound, team=a%20b;p"),
        ("baggage", f"flowmap%2Etenant={tag}"),
        ("Baggage", f"FlowMap.Tenant={tag},last=1"),
        ("accept", "application/json"),
    ]
    with bind(RequestContext(RAW_TENANT)):
        _get(mode, f"http://{EXTERNAL}/forward-{mode}", headers=forwarded, proxy=server.url)
        only_tag = [("baggage", f"{A.BAGGAGE_KEY}={tag}")]
        _get(mode, f"http://{EXTERNAL}/forward-only-{mode}", headers=only_tag, proxy=server.url)
    mixed, alone = server.app.requests[-2:]
    assert mixed["path"].endswith(f"/forward-{mode}") and alone["path"].endswith(f"/forward-only-{mode}")
    assert _members(mixed["headers"]) == ["other=x", "team=a%20b;p", "last=1"]
    assert tag not in mixed["headers"]["baggage"] and mixed["headers"]["accept"] == "application/json"
    assert "baggage" not in alone["headers"]  # emptied: dropped, not sent empty
    assert [(s.attributes["server.address"], s.attributes[A.BAGGAGE_SENT]) for s in _client_spans(memory)] == [
        (EXTERNAL, False), (EXTERNAL, False)]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_baggage_header_never_carries_the_bound_raw_id_out(spans, server, tagger, mode):
    """The contract: the raw tenant id never leaves the process, baggage included. An
    application that writes (or forwards) its own ``baggage`` header with the tenant's id
    loses those members to an external host; its other members still go."""
    provider, memory = spans
    instrument_httpx(tracer_provider=provider)
    own = [("baggage", f"tenant_id={RAW_TENANT},plan=pro"),
           ("baggage", f"org=acme%2Dcorp%2Dtenant%2D7731;p, note=for {RAW_TENANT}")]
    with bind(RequestContext(RAW_TENANT)):
        _get(mode, f"http://{EXTERNAL}/own-{mode}", headers=own, proxy=server.url)
    (sent,) = server.app.requests[-1:]
    assert sent["path"].endswith(f"/own-{mode}")
    assert _members(sent["headers"]) == ["plan=pro"]
    _assert_no_raw_id(sent["headers"])
    assert [s.attributes[A.BAGGAGE_SENT] for s in _client_spans(memory)] == [False]


def test_forwarded_tag_to_an_allowed_host_is_recorded_as_sent(spans, server, tagger):
    provider, memory = spans
    instrument_httpx(tracer_provider=provider)
    forwarded = {"baggage": f"{A.BAGGAGE_KEY}={tagger.tag('someone-else')},other=x"}
    httpx.get(server.url + "/forward-allowed", headers=forwarded)  # nothing bound: header as is
    with bind(RequestContext(RAW_TENANT)):
        httpx.get(server.url + "/forward-allowed-bound", headers=forwarded)  # bound: flowmap's own tag
    unbound, bound = server.app.requests[-2:]
    assert unbound["headers"]["baggage"] == forwarded["baggage"]
    assert bound["headers"]["baggage"] == f"{A.BAGGAGE_KEY}={tagger.tag(RAW_TENANT)}"
    # The span says what really went out, whoever put the tag in the header.
    assert [s.attributes[A.BAGGAGE_SENT] for s in _client_spans(memory)] == [True, True]


def test_guarded_propagator_agrees_with_the_hook_on_forwarded_tags(spans, server, tagger, guarded_propagation):
    provider, memory = spans
    instrument_httpx(AllowedHosts(("localhost",), include_defaults=False), tracer_provider=provider)
    forwarded = {"baggage": f"{A.BAGGAGE_KEY}={tagger.tag(RAW_TENANT)},other=x"}
    with bind(RequestContext(RAW_TENANT)):
        httpx.get(f"{server.url}/guarded-disallowed", headers=forwarded)
        httpx.get(f"http://localhost:{server.port}/guarded-allowed", headers=forwarded)
    httpx.get(f"http://localhost:{server.port}/guarded-allowed-unbound", headers=forwarded)
    disallowed, allowed, unbound = server.app.requests[-3:]
    assert disallowed["headers"]["baggage"] == "other=x"
    assert allowed["headers"]["baggage"] == f"{A.BAGGAGE_KEY}={tagger.tag(RAW_TENANT)}"
    assert unbound["headers"]["baggage"] == forwarded["baggage"]  # allowed: left as forwarded
    assert [s.attributes[A.BAGGAGE_SENT] for s in _client_spans(memory)] == [False, True, True]


class _NoopSetter:
    def set(self, carrier, key, value):
        pass


@pytest.mark.parametrize(
    ("carrier", "expected"),
    [
        ({"baggage": "flowmap.tenant=0123456789abcdef"}, {}),
        ({"baggage": " a=1 ,flowmap.tenant = 0123456789abcdef ;p=q, b=2;x"}, {"baggage": "a=1,b=2;x"}),
        ({"Baggage": "flowmap.tenant=0123456789abcdef,a=1", "x-other": "flowmap.tenant=kept"},
         {"baggage": "a=1", "x-other": "flowmap.tenant=kept"}),
        ({"baggage": "flowmap%2Etenant=t,FLOWMAP.TENANT=t,flowmap.tenant;p=1,flowmap+tenant=no"},
         {"baggage": "flowmap+tenant=no"}),
        # "flowmap.tenant" as a value is not the key; other fields are not baggage
        ({"baggage": "a=flowmap.tenant,flowmap.tenant=t,b=2", "traceparent": "flowmap.tenant=t"},
         {"baggage": "a=flowmap.tenant,b=2", "traceparent": "flowmap.tenant=t"}),
    ],
)
def test_guarded_propagator_strips_a_tag_already_in_the_carrier(tagger, carrier, expected):
    GuardedBaggagePropagator().inject(carrier, context=Context())
    assert carrier == expected


def test_guarded_propagator_strips_httpx_headers_and_never_raises(tagger):
    headers = httpx.Headers([("baggage", "flowmap.tenant=t,a=1"), ("baggage", "b=2"), ("accept", "*/*")])
    GuardedBaggagePropagator().inject(headers, context=otel_baggage.set_baggage("app.flag", "on", Context()))
    assert headers.get_list("baggage") == ["app.flag=on"] and headers["accept"] == "*/*"
    headers = httpx.Headers([("baggage", "flowmap.tenant=t,a=1"), ("baggage", "b=2")])
    GuardedBaggagePropagator().inject(headers, context=Context())
    assert headers.get_list("baggage") == ["a=1,b=2"]
    frozen = {"baggage": "flowmap.tenant=t"}
    GuardedBaggagePropagator().inject(MappingProxyType(frozen), context=Context(), setter=_NoopSetter())
    assert frozen == {"baggage": "flowmap.tenant=t"}  # could not be rewritten: logged, not raised


@pytest.mark.parametrize(
    ("carrier", "expected"),
    [
        ({b"baggage": b"flowmap.tenant=0123456789abcdef"}, {}),
        ({b"Baggage": b"a=1,flowmap.tenant=0123456789abcdef", b"x-request-id": b"r1"},
         {b"baggage": b"a=1", b"x-request-id": b"r1"}),
        ({b"baggage": "flowmap.tenant=t,b=2", "accept": "*/*"}, {b"baggage": "b=2", "accept": "*/*"}),
    ],
)
def test_guarded_propagator_strips_a_tag_under_a_bytes_header_name(tagger, carrier, expected):
    """Raw headers forwarded as an ASGI scope holds them: bytes names (and values)."""
    GuardedBaggagePropagator().inject(carrier, context=Context())
    assert carrier == expected


def test_forwarded_raw_headers_lose_the_tag_to_an_external_host_through_urllib3(server, tagger, guarded_propagation):
    """A gateway forwards its inbound ASGI headers (bytes names and values) with urllib3,
    injected as the contrib urllib3 and requests instrumentations do (a copy of the
    headers, ``propagate.inject`` into it, then the request): the external host gets the
    other baggage members and headers, never the tag."""
    import urllib3
    from opentelemetry import propagate

    tag = tagger.tag(RAW_TENANT)
    proxy = urllib3.ProxyManager(server.url)
    try:
        with bind(RequestContext(RAW_TENANT)):
            for name, baggage in (("mixed", f"other=x,{A.BAGGAGE_KEY}={tag}"), ("alone", f"{A.BAGGAGE_KEY}={tag}")):
                headers = dict([(b"baggage", baggage.encode()), (b"x-request-id", name.encode())])
                propagate.inject(headers)
                proxy.request("GET", f"http://{EXTERNAL}/raw-{name}", headers=headers)
    finally:
        proxy.clear()
    mixed, alone = server.app.requests[-2:]
    assert mixed["path"].endswith("/raw-mixed") and alone["path"].endswith("/raw-alone")
    assert mixed["headers"]["host"] == EXTERNAL and mixed["headers"]["x-request-id"] == "mixed"
    assert mixed["headers"]["baggage"] == "other=x"
    assert "baggage" not in alone["headers"] and alone["headers"]["x-request-id"] == "alone"
    for request in (mixed, alone):
        assert tag not in str(request["headers"])
        _assert_no_raw_id(request["headers"])


# -- propagators that write baggage under their own headers (OTEL_PROPAGATORS=...,jaeger) --


def _jaeger():
    from opentelemetry.propagators.jaeger import JaegerPropagator

    return JaegerPropagator(), "uberctx-"


def _ottrace():
    from opentelemetry.propagators.ot_trace import OTTracePropagator

    return OTTracePropagator(), "ot-baggage-"


@pytest.mark.parametrize("make", [_jaeger, _ottrace], ids=["jaeger", "ottrace"])
def test_every_propagator_of_the_global_textmap_is_guarded(spans, server, tagger, make):
    """OTEL_PROPAGATORS=tracecontext,baggage,jaeger (or ottrace): the Jaeger and OT
    propagators inject every baggage entry under headers of their own. A client that is
    not flowmap's (the contrib requests/urllib3/aiohttp instrumentations: inject into the
    headers, then send) must send the trace context and the application's own entries
    through every member, and the tenant tag through none."""
    import urllib3
    from opentelemetry import propagate
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from flowmap.outbound import unguard_global_baggage

    provider, _ = spans
    other, prefix = make()
    members = [TraceContextTextMapPropagator(), W3CBaggagePropagator(), other]
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(CompositePropagator(members))  # what that OTEL_PROPAGATORS builds
    proxy = urllib3.ProxyManager(server.url)
    tag = tagger.tag(RAW_TENANT)
    try:
        assert guard_global_baggage() and guard_global_baggage()
        instrument_httpx(tracer_provider=provider)
        with bind(RequestContext(RAW_TENANT)), provider.get_tracer("t").start_as_current_span("request"):
            token = otel_context.attach(otel_baggage.set_baggage("app.flag", "on"))
            try:
                headers: dict[str, str] = {}
                propagate.inject(headers)
                proxy.request("GET", f"http://{EXTERNAL}/every-member", headers=headers)
                httpx.get(server.url + "/every-member-allowed")
            finally:
                otel_context.detach(token)
        external, allowed = server.app.requests[-2:]
        got = external["headers"]
        assert external["path"].endswith("/every-member") and got["host"] == EXTERNAL
        assert "traceparent" in got and got["baggage"] == "app.flag=on"
        assert got[f"{prefix}app.flag"] == "on"  # the other propagator still carries the app's entries
        assert any(name.startswith(("uber-trace-id", "ot-tracer-")) for name in got)
        assert not [name for name in got if A.BAGGAGE_KEY in name] and tag not in str(got)
        _assert_no_raw_id(got)
        # flowmap's own client still sends the tag where the allow list says so
        assert allowed["headers"]["baggage"] == f"{A.BAGGAGE_KEY}={tag}"
        unguard_global_baggage()
        assert propagate.get_global_textmap()._propagators == members  # the very same propagators back
    finally:
        proxy.clear()
        unguard_global_baggage()
        propagate.set_global_textmap(previous)


# -- a propagator the application makes global after flowmap guarded the global one -----


def _external_headers(server, proxy, path):
    """What an external host gets from a client that is not flowmap's (inject, then send)."""
    from opentelemetry import propagate

    headers: dict[str, str] = {}
    propagate.inject(headers)
    proxy.request("GET", f"http://{EXTERNAL}/{path}", headers=headers)
    received = server.app.requests[-1]
    assert received["path"].endswith(f"/{path}") and received["headers"]["host"] == EXTERNAL
    return received["headers"]


def test_a_propagator_set_after_guarding_is_guarded_too(spans, server, tagger):
    """The application's own telemetry setup runs after flowmap.configure() and makes a
    plain W3C baggage propagator global: through propagate.set_global_textmap, or through
    a set_global_textmap imported before flowmap guarded. Neither sends the tag to an
    external host; unguarding puts back the application's latest propagator, as it set it."""
    import urllib3
    from opentelemetry import propagate
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagate import get_global_textmap as imported_get
    from opentelemetry.propagate import set_global_textmap as imported_set
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from flowmap.outbound import unguard_global_baggage

    def plain():
        return CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])

    provider, _ = spans
    previous = propagate.get_global_textmap()
    proxy = urllib3.ProxyManager(server.url)
    tag = tagger.tag(RAW_TENANT)
    try:
        guard_global_baggage()
        with bind(RequestContext(RAW_TENANT)), provider.get_tracer("t").start_as_current_span("request"):
            propagate.set_global_textmap(plain())  # the app's setup, after configure()
            after = _external_headers(server, proxy, "set-after")
            latest = plain()
            imported_set(latest)  # flowmap's guard bypassed: imported before it was patched
            assert imported_get() is latest  # (the global really is the plain propagator now)
            bypassed = _external_headers(server, proxy, "set-after-bypassed")
        for got in (after, bypassed):
            assert "traceparent" in got and "baggage" not in got and tag not in str(got)
            _assert_no_raw_id(got)
        unguard_global_baggage()
        assert propagate.get_global_textmap() is latest  # the app's own, unwrapped
        assert propagate.set_global_textmap is imported_set and propagate.get_global_textmap is imported_get
        with bind(RequestContext(RAW_TENANT)):
            unguarded: dict[str, str] = {}
            propagate.inject(unguarded)
        assert unguarded["baggage"] == f"{A.BAGGAGE_KEY}={tag}"  # unguarded again: plain W3C baggage
    finally:
        proxy.clear()
        unguard_global_baggage()
        propagate.set_global_textmap(previous)


def test_reguarding_after_another_library_wrapped_get_global_textmap_does_not_recurse(tmp_path):
    """configure, another library wraps propagate.get_global_textmap (calling the one it
    found: flowmap's), shutdown, configure again: flowmap took that wrapper as the
    original, and every propagate.inject then recursed until RecursionError."""
    from opentelemetry import propagate

    from flowmap import runtime
    from flowmap.configure import configure

    before_get = propagate.get_global_textmap
    rt = configure(tenant_key="k", service_name="a", exporters="none", instrument_httpx=False)
    found = propagate.get_global_textmap

    def other_library_get():
        return found()

    propagate.get_global_textmap = other_library_get
    try:
        rt.shutdown()
        rt = configure(tenant_key="k", service_name="a", exporters="none", instrument_httpx=False)
        carrier: dict = {}
        propagate.inject(carrier)  # no RecursionError
        rt.shutdown()
    finally:
        propagate.get_global_textmap = before_get
        runtime.set_tagger(None)
        runtime.set_runtime(None)


# -- message brokers: a publish span that names its broker ---------------------------------
#
# The contrib pika and aio-pika instrumentations start a PRODUCER span naming the broker
# (net.peer.name), make it current and call propagate.inject on the message's headers: the
# same steps here, on a real SDK span (tests/fixtures/third_party/pika-nearmiss.jsonl is
# that instrumentation against a real RabbitMQ).


def _publish(provider, headers, *, address="localhost", attribute="net.peer.name", kind=SpanKind.PRODUCER):
    from opentelemetry import propagate, trace

    span = provider.get_tracer("broker-test").start_span("orders send", kind=kind, attributes={attribute: address})
    with trace.use_span(span, end_on_exit=True):
        propagate.inject(headers)
    return span


@pytest.mark.parametrize("attribute", ["net.peer.name", "server.address"])
def test_a_publish_to_an_allowed_broker_carries_the_tag(spans, tagger, guarded_propagation, attribute):
    provider, memory = spans
    headers: dict[str, str] = {}
    with bind(RequestContext(RAW_TENANT)):
        _publish(provider, headers, address="rabbitmq.svc.cluster.local", attribute=attribute)
    assert headers["baggage"] == f"{A.BAGGAGE_KEY}={tagger.tag(RAW_TENANT)}" and "traceparent" in headers
    (sent,) = [s for s in memory.get_finished_spans() if s.kind is SpanKind.PRODUCER]
    assert sent.attributes[A.BAGGAGE_SENT] is True
    _assert_no_raw_id(headers)


def test_a_publish_to_an_external_broker_loses_the_tag_even_one_publish_put_there(spans, tagger, guarded_propagation):
    """flowmap.propagation.publish() writes the tag into the headers; the instrumentation's
    inject inside its own publish span keeps it for an allowed broker (it stripped it from
    every carrier before) and removes it for any other."""
    from flowmap.propagation import publish

    provider, memory = spans
    kept: dict[str, str] = {}
    dropped: dict[str, str] = {}
    from flowmap.context import bind_tag

    with bind_tag(tagger.tag(RAW_TENANT), baggage=False):  # the tag only where publish() puts it
        for headers, broker in ((kept, "10.0.0.7"), (dropped, "mq.example.com")):
            with publish("orders", headers):
                _publish(provider, headers, address=broker)
    assert kept["baggage"] == f"{A.BAGGAGE_KEY}={tagger.tag(RAW_TENANT)}"
    assert "baggage" not in dropped and "traceparent" in dropped
    sent = [s.attributes[A.BAGGAGE_SENT] for s in memory.get_finished_spans() if s.attributes.get("net.peer.name")]
    assert sent == [True, False]


def test_only_a_publish_span_naming_its_broker_is_judged_as_one(spans, tagger, guarded_propagation):
    """An HTTP client span of another instrumentation, and a publish span that names no
    broker, still never send the tag (the README's documented behaviour)."""
    provider, memory = spans
    with bind(RequestContext(RAW_TENANT)):
        client: dict[str, str] = {}
        _publish(provider, client, attribute="server.address", kind=SpanKind.CLIENT)
        nameless: dict[str, str] = {}
        _publish(provider, nameless, attribute="messaging.destination.name", address="orders")
    assert "baggage" not in client and "baggage" not in nameless
    assert all(A.BAGGAGE_SENT not in s.attributes for s in memory.get_finished_spans())


def test_configure_checks_brokers_against_its_allowed_hosts(tmp_path, tagger, monkeypatch):
    """configure(allowed_hosts=...) applies to brokers too, httpx instrumentation or not."""
    from opentelemetry import propagate

    import flowmap
    from flowmap import outbound

    monkeypatch.setattr(outbound, "_allowed", outbound._allowed)  # put back afterwards
    previous = propagate.get_global_textmap()
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    rt = flowmap.configure(service_name="broker-test", tenant_key="broker-test-key", allowed_hosts=["mq.partner.example"],
                           instrument_httpx=False, exporters="none", tracer_provider=provider, set_global=False,
                           guard_baggage=True)
    try:
        headers: dict[str, str] = {}
        with bind(RequestContext(RAW_TENANT)):
            _publish(provider, headers, address="mq.partner.example")
        assert headers["baggage"].startswith(f"{A.BAGGAGE_KEY}=")
        assert RAW_TENANT not in headers["baggage"]
    finally:
        rt.shutdown()
        propagate.set_global_textmap(previous)


@pytest.mark.parametrize(
    ("servers", "sent"),
    [
        ('["kafka-0.kafka.svc.cluster.local:9092", "10.0.0.5:9092"]', True),  # kafka-python's JSON list
        ('["kafka-0.kafka.svc:9092", "kafka.example.com:9092"]', False),  # one outside: not allowed
        ("amqp://rabbit.internal:5672/vhost", True),
        ("broker-1.local:9092,broker-2.local:9092", True),
        ('["kafka-0.svc:9092", 7]', None),  # unreadable: no broker named, stripped
        ("", None),
    ],
)
def test_a_publish_naming_its_bootstrap_servers_is_judged_by_every_one(spans, tagger, guarded_propagation,
                                                                      servers, sent):
    """kafka-python's instrumentation names no server.address, only messaging.url (its
    bootstrap servers as JSON), and injects into Kafka's header list of (name, bytes)."""
    from opentelemetry import propagate, trace

    class KafkaSetter:
        def set(self, carrier, key, value):
            carrier.append((key, value.encode()))

    provider, memory = spans
    headers: list = [("x-app", b"1")]
    with bind(RequestContext(RAW_TENANT)):
        span = provider.get_tracer("kafka-test").start_span("orders send", kind=SpanKind.PRODUCER,
                                                             attributes={"messaging.url": servers})
        with trace.use_span(span, end_on_exit=True):
            propagate.inject(headers, context=trace.set_span_in_context(span), setter=KafkaSetter())
    baggage = [v for k, v in headers if k == "baggage"]
    assert baggage == ([f"{A.BAGGAGE_KEY}={tagger.tag(RAW_TENANT)}".encode()] if sent else [])
    (span,) = memory.get_finished_spans()
    assert span.attributes.get(A.BAGGAGE_SENT) is sent
