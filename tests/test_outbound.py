"""Outbound httpx over real loopback HTTP: traceparent always, tenant baggage only to allowed hosts."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from flowmap import attributes as A
from flowmap import runtime
from flowmap.context import RequestContext, bind
from flowmap.hosts import AllowedHosts
from flowmap.outbound import (
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
    app = RecordingApp()
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

    previous = propagate.get_global_textmap()
    assert guard_global_baggage() and guard_global_baggage()  # idempotent
    yield
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
