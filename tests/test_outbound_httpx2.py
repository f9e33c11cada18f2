"""Outbound httpx2 (the httpx fork the openai 3.x SDK sends through) over real loopback
HTTP: a CLIENT span per hop, traceparent always, the tenant baggage only to allowed
hosts, exactly as for httpx (tests/test_outbound.py, whose fixtures and helpers this reuses)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from opentelemetry.trace import SpanKind, StatusCode

import test_outbound as base
from flowmap import attributes as A
from flowmap import outbound
from flowmap.asgi import TenantMiddleware
from flowmap.context import RequestContext, bind
from flowmap.hosts import AllowedHosts
from flowmap.outbound import instrument_httpx, is_instrumented, uninstrument_httpx

from servers import RecordingApp, serve

httpx2 = pytest.importorskip("httpx2")

RAW_TENANT = base.RAW_TENANT
TOKENS = {"token-a": RAW_TENANT}
TESTS = Path(__file__).parent

# the same fixtures as the httpx tests: a tagger, a real SDK provider, a loopback server
tagger, spans, server = base.tagger, base.spans, base.server


def _get(mode, url, **kwargs):
    """One GET through an httpx2.Client or an httpx2.AsyncClient (redirects followed)."""
    if mode == "sync":
        with httpx2.Client(follow_redirects=True) as client:
            return client.get(url, **kwargs)

    async def main():
        async with httpx2.AsyncClient(follow_redirects=True) as client:
            return await client.get(url, **kwargs)

    return asyncio.run(main())


class BoundService:
    """The downstream tool service's own code: records the tenant it runs for."""

    def __init__(self):
        self.seen = []

    async def __call__(self, scope, receive, send):
        from flowmap.context import current_or_none, current_tag

        ctx = current_or_none()
        self.seen.append({"tenant": ctx and ctx.tenant_id, "tag": current_tag()})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})


def _resolve(scope):
    from flowmap.asgi import header

    tenant = TOKENS.get((header(scope, "authorization") or "").removeprefix("Bearer "))
    return RequestContext(tenant) if tenant else None


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_called_service_gets_traceparent_and_tag_and_binds_the_same_tenant(spans, tagger, mode):
    provider, memory = spans
    instrument_httpx(tracer_provider=provider)
    recording, service = RecordingApp(), BoundService()

    async def app(scope, receive, send):  # records the headers, then the real service runs
        await recording(scope, receive, lambda message: asyncio.sleep(0))
        await TenantMiddleware(service, _resolve, tracer_provider=provider)(scope, receive, send)

    with serve(app) as srv, bind(RequestContext(RAW_TENANT)):
        response = _get(mode, srv.url + "/tool", headers={"authorization": "Bearer token-a"})
    assert response.status_code == 200
    tag = tagger.tag(RAW_TENANT)
    (headers,) = [r["headers"] for r in recording.requests]
    assert headers["baggage"] == f"{A.BAGGAGE_KEY}={tag}"
    base._assert_no_raw_id(headers)
    (client,) = base._client_spans(memory)
    base._assert_traceparent_is_span(headers, client)
    assert client.attributes[A.BAGGAGE_SENT] is True
    assert client.attributes[A.BOUNDARY] == "http.client"
    assert client.attributes[A.TENANT] == tag
    assert (client.attributes["server.address"], client.attributes["server.port"]) == ("127.0.0.1", srv.port)
    # the tool service authenticated the same tenant the tag names, in the same trace
    assert service.seen == [{"tenant": RAW_TENANT, "tag": tag}]
    (served,) = [s for s in memory.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert served.attributes[A.TENANT_INBOUND] == served.attributes[A.TENANT] == tag
    assert served.parent.span_id == client.context.span_id


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_host_not_allowed_gets_traceparent_but_no_tag(spans, server, tagger, mode):
    provider, memory = spans
    instrument_httpx(AllowedHosts(("localhost",), include_defaults=False), tracer_provider=provider)
    with bind(RequestContext(RAW_TENANT)):
        _get(mode, server.url + f"/httpx2-disallowed-{mode}")  # 127.0.0.1: not on this list
        disallowed = dict(base._last_headers(server))
        _get(mode, f"http://localhost:{server.port}/httpx2-allowed-{mode}")
        allowed = dict(base._last_headers(server))
    assert "traceparent" in disallowed and "baggage" not in disallowed
    base._assert_no_raw_id(disallowed)
    assert allowed["baggage"] == f"{A.BAGGAGE_KEY}={tagger.tag(RAW_TENANT)}"
    first, second = base._client_spans(memory)
    base._assert_traceparent_is_span(disallowed, first)
    assert (first.attributes["server.address"], first.attributes[A.BAGGAGE_SENT]) == ("127.0.0.1", False)
    assert (second.attributes["server.address"], second.attributes[A.BAGGAGE_SENT]) == ("localhost", True)
    assert first.attributes[A.TENANT] == tagger.tag(RAW_TENANT)  # the hop still runs for the tenant


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_redirect_to_a_host_not_allowed_drops_the_copied_tag(spans, server, tagger, mode):
    provider, memory = spans
    instrument_httpx(AllowedHosts(("localhost",), include_defaults=False), tracer_provider=provider)
    landing = f"{server.url}/httpx2-landing-{mode}"
    with bind(RequestContext(RAW_TENANT)):
        response = _get(mode, f"http://localhost:{server.port}/hop?to={landing}")
    assert response.status_code == 200 and len(response.history) == 1
    first, second = server.app.requests[-2:]
    assert first["headers"]["baggage"] == f"{A.BAGGAGE_KEY}={tagger.tag(RAW_TENANT)}"
    assert "baggage" not in second["headers"] and "traceparent" in second["headers"]
    hop1, hop2 = base._client_spans(memory)  # one span per hop
    assert (hop1.attributes["server.address"], hop1.attributes[A.BAGGAGE_SENT]) == ("localhost", True)
    assert (hop2.attributes["server.address"], hop2.attributes[A.BAGGAGE_SENT]) == ("127.0.0.1", False)
    base._assert_traceparent_is_span(second["headers"], hop2)


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_connection_error_marks_the_span_and_reaches_the_caller_unchanged(spans, tagger, mode):
    provider, memory = spans
    instrument_httpx(tracer_provider=provider)
    with bind(RequestContext(RAW_TENANT)), pytest.raises(httpx2.ConnectError) as raised:
        _get(mode, f"http://127.0.0.1:{_closed_port()}/down")
    (span,) = base._client_spans(memory)
    assert span.status.status_code is StatusCode.ERROR
    (event,) = [e for e in span.events if e.name == "exception"]
    assert event.attributes["exception.type"].endswith("ConnectError")
    assert type(raised.value) is httpx2.ConnectError
    assert span.attributes[A.TENANT] == tagger.tag(RAW_TENANT)


def test_a_client_with_its_own_transport_is_traced(spans, server, tagger):
    provider, memory = spans
    instrument_httpx(tracer_provider=provider)
    transport = httpx2.HTTPTransport(retries=1)
    with httpx2.Client(transport=transport) as client, bind(RequestContext(RAW_TENANT)):
        client.get(server.url + "/own-transport")
    assert base._last_headers(server)["baggage"] == f"{A.BAGGAGE_KEY}={tagger.tag(RAW_TENANT)}"
    (span,) = base._client_spans(memory)
    assert span.attributes[A.BAGGAGE_SENT] is True
    # a transport that is no HTTPTransport is not traced (as with httpx), and gets no tag
    sent = []
    mock = httpx2.MockTransport(lambda request: sent.append(request.headers) or httpx2.Response(200))
    with httpx2.Client(transport=mock) as client, bind(RequestContext(RAW_TENANT)):
        client.get("http://127.0.0.1/mocked")
    assert len(base._client_spans(memory)) == 1 and "baggage" not in sent[0]


def test_a_failing_allow_list_fails_closed_and_the_request_still_goes(spans, server, tagger, monkeypatch, caplog):
    provider, memory = spans
    instrument_httpx(tracer_provider=provider)

    class Broken(AllowedHosts):
        def allows(self, host):
            raise RuntimeError("allow list broke")

    monkeypatch.setattr(outbound, "_allowed", Broken())
    with caplog.at_level(logging.DEBUG, logger="flowmap.outbound"), bind(RequestContext(RAW_TENANT)):
        assert httpx2.get(server.url + "/broken-list").status_code == 200
    headers = base._last_headers(server)
    assert "traceparent" in headers and "baggage" not in headers
    (span,) = base._client_spans(memory)
    assert span.attributes[A.BAGGAGE_SENT] is False
    assert "outbound baggage decision failed" in caplog.text and RAW_TENANT not in caplog.text


def test_idempotent_and_uninstrument_stops_it(spans, server):
    provider, memory = spans
    instrument_httpx(tracer_provider=provider)
    instrument_httpx(tracer_provider=provider)
    httpx2.get(server.url + "/httpx2-once")
    assert len(base._client_spans(memory)) == 1  # not wrapped twice
    uninstrument_httpx()
    uninstrument_httpx()
    assert not is_instrumented()
    httpx2.get(server.url + "/httpx2-after")
    asyncio.run(httpx2.AsyncClient().get(server.url + "/httpx2-after-async"))
    assert len(base._client_spans(memory)) == 1
    assert "traceparent" not in base._last_headers(server)


def test_httpx2_instrumented_without_flowmaps_hooks_is_taken_over(spans, server, tagger):
    from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor

    provider, memory = spans
    HTTPX2ClientInstrumentor().instrument(tracer_provider=provider)  # plain contrib: no destination check
    instrument_httpx(AllowedHosts(("localhost",), include_defaults=False), tracer_provider=provider)
    with bind(RequestContext(RAW_TENANT)):
        httpx2.get(server.url + "/taken-over")
    assert "baggage" not in base._last_headers(server)
    (span,) = base._client_spans(memory)
    assert span.attributes[A.BAGGAGE_SENT] is False
    uninstrument_httpx()
    assert not HTTPX2ClientInstrumentor().is_instrumented_by_opentelemetry


def test_a_failure_to_instrument_httpx2_leaves_httpx_instrumented(spans, server, monkeypatch, caplog):
    from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor

    def broken(self, **kwargs):
        raise RuntimeError("contrib broke")

    monkeypatch.setattr(HTTPX2ClientInstrumentor, "_instrument", broken)
    provider, memory = spans
    with caplog.at_level(logging.WARNING, logger="flowmap.outbound"):
        instrument_httpx(tracer_provider=provider)
    assert "could not instrument HTTPX2ClientInstrumentor" in caplog.text
    httpx.get(server.url + "/httpx-still")
    assert len(base._client_spans(memory)) == 1 and is_instrumented()


def test_a_contrib_without_httpx2_support_is_named_and_httpx_still_traced(spans, server, monkeypatch, caplog):
    import opentelemetry.instrumentation.httpx as contrib

    monkeypatch.delattr(contrib, "HTTPX2ClientInstrumentor")  # as in contrib before 0.66b1
    provider, memory = spans
    with caplog.at_level(logging.WARNING, logger="flowmap.outbound"):
        instrument_httpx(tracer_provider=provider)
    assert "no httpx2 support" in caplog.text
    httpx.get(server.url + "/httpx-without-httpx2-support")
    httpx2.get(server.url + "/httpx2-untraced")
    assert len(base._client_spans(memory)) == 1 and is_instrumented()


def test_configure_instruments_httpx2_and_shutdown_undoes_it(server, tmp_path):
    from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor

    from flowmap import runtime
    from flowmap.configure import configure

    rt = configure(tenant_key="test-key", out=tmp_path / "t.jsonl", set_global=False)
    try:
        assert HTTPX2ClientInstrumentor().is_instrumented_by_opentelemetry
        with bind(RequestContext(RAW_TENANT)):
            httpx2.get(server.url + "/configured")
        assert base._last_headers(server)["baggage"].startswith(f"{A.BAGGAGE_KEY}=")
    finally:
        rt.shutdown()
        runtime.set_tagger(None)
        runtime.set_runtime(None)
    assert not HTTPX2ClientInstrumentor().is_instrumented_by_opentelemetry
    written = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert written and RAW_TENANT not in json.dumps(written)


def _run(script, **env):
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path]), **env},
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def test_flowmap_works_without_httpx2():
    proc = _run(
        """
        import sys
        sys.modules["httpx2"] = None  # as if httpx2 were not installed: importing it fails
        import httpx
        import flowmap
        from flowmap import outbound
        from servers import RecordingApp, serve

        rt = flowmap.configure(tenant_key="k", exporters="none", set_global=False)
        assert outbound.is_instrumented()
        app = RecordingApp()
        with serve(app) as srv, flowmap.bind(flowmap.RequestContext("raw-tenant")):
            httpx.get(srv.url + "/x")
        assert "flowmap.tenant=" in app.requests[-1]["headers"]["baggage"]
        rt.shutdown()
        assert not outbound.is_instrumented()
        print("OK")
        """
    )
    assert proc.stdout.strip() == "OK"
    assert "httpx2" not in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("opt_in", ["", "http", "http/dup"])
def test_httpx2_spans_carry_the_attributes_contrib_writes_for_httpx(opt_in):
    """Under each OTEL_SEMCONV_STABILITY_OPT_IN (read once per process: a fresh one each),
    the same request through httpx and httpx2 gets the same span: names, kind, attributes."""
    proc = _run(
        """
        import json
        import httpx, httpx2
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from flowmap.outbound import instrument_httpx
        from servers import RecordingApp, serve

        memory = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        instrument_httpx(tracer_provider=provider)
        with serve(RecordingApp()) as srv:
            for client in (httpx, httpx2):
                client.get(srv.url + "/same?q=1")
        print(json.dumps([[s.name, str(s.kind), dict(s.attributes)] for s in memory.get_finished_spans()]))
        """,
        OTEL_SEMCONV_STABILITY_OPT_IN=opt_in,
    )
    via_httpx, via_httpx2 = json.loads(proc.stdout)
    assert via_httpx2 == via_httpx
    attributes = via_httpx2[2]
    old, stable = "http.method" in attributes, "http.request.method" in attributes
    assert (old, stable) == {"": (True, False), "http": (False, True), "http/dup": (True, True)}[opt_in]
    assert attributes[A.BOUNDARY] == "http.client" and A.BAGGAGE_SENT in attributes


class FakeChatCompletions(RecordingApp):
    """POST /v1/chat/completions: records the request's headers, answers one completion."""

    async def __call__(self, scope, receive, send):
        body = json.dumps({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-test",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "done"}}],
        }).encode()

        async def answer(message):
            if message["type"] == "http.response.start":
                message = {"type": "http.response.start", "status": 200,
                           "headers": [(b"content-type", b"application/json")]}
            else:
                message = {"type": "http.response.body", "body": body}
            await send(message)

        return await super().__call__(scope, receive, answer)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_openai_call_through_httpx2_is_a_client_span_with_the_tenant(spans, tagger, mode):
    openai = pytest.importorskip("openai")
    provider, memory = spans
    instrument_httpx(tracer_provider=provider)
    app = FakeChatCompletions()
    with serve(app) as srv, bind(RequestContext(RAW_TENANT)):
        options = {"base_url": srv.url + "/v1", "api_key": "sk-test", "max_retries": 0}
        messages = [{"role": "user", "content": "hi"}]
        if mode == "sync":
            reply = openai.OpenAI(**options).chat.completions.create(model="gpt-test", messages=messages)
        else:
            reply = asyncio.run(openai.AsyncOpenAI(**options).chat.completions.create(
                model="gpt-test", messages=messages))
    assert reply.choices[0].message.content == "done"
    (headers,) = [r["headers"] for r in app.requests]
    tag = tagger.tag(RAW_TENANT)
    assert headers["baggage"] == f"{A.BAGGAGE_KEY}={tag}"
    (span,) = base._client_spans(memory)
    base._assert_traceparent_is_span(headers, span)
    assert span.name == "POST"
    assert (span.attributes[A.TENANT], span.attributes[A.BAGGAGE_SENT]) == (tag, True)
