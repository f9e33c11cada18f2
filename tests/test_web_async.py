"""Async streamed bodies served for real: Starlette (FastAPI's responses are Starlette's) under
uvicorn and contrib's ASGI instrumentation, sse-starlette's ``EventSourceResponse``, and
aiohttp.web under its ``AppRunner``, two tenants' streams at once on one event loop.

The endpoint binds the request's tenant itself (``with flowmap.bind(...)``) and returns a
response whose async body the server iterates after the endpoint (and its binding) returned.
Handed to ``flowmap.propagation.acarry``, the body runs for its own request's tenant, under its
SERVER span, and the event loop's task serves the next request unbound; not carried, its
first model call refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

import flowmap
from flowmap.propagation import acarry
from servers import serve
from webapps import (
    TENANTS,
    at_once,
    atokens,
    check_refused,
    check_streams,
    each_tenant_gets_its_stream,
    get,
    requests_of_two_tenants,
    resolve,
    whoami,
)

Carry = Callable[[AsyncIterator], AsyncIterator]


def as_is(body: AsyncIterator) -> AsyncIterator:
    """The body not carried: what an endpoint does without acarry."""
    return body


async def events() -> AsyncIterator[dict]:
    async for token in atokens():
        yield {"data": token}


# -- Starlette (FastAPI) under uvicorn, an endpoint that binds inside itself ---------------

def starlette_app(provider, carry: Carry):
    async def stream(request: Request):
        with flowmap.bind(resolve(request.headers.get("authorization"))):
            return StreamingResponse(carry(atokens()), media_type="text/plain")

    async def sse(request: Request):
        from sse_starlette import EventSourceResponse

        with flowmap.bind(resolve(request.headers.get("authorization"))):
            return EventSourceResponse(carry(events()), ping=600)

    app = Starlette(routes=[Route("/stream", stream), Route("/sse", sse),
                            Route("/whoami", lambda request: PlainTextResponse(whoami()))])
    return OpenTelemetryMiddleware(app, tracer_provider=provider, exclude_spans=["receive", "send"])


def test_starlette_streaming_response_carried_runs_for_its_tenant(flowmap_runtime, caplog):
    rt, exporter = flowmap_runtime
    caplog.set_level(logging.DEBUG)
    with serve(starlette_app(rt.tracer_provider, acarry)) as server:
        each_tenant_gets_its_stream(server.url)
    check_streams(exporter, caplog, "GET /stream")


def test_sse_starlette_event_source_carried_runs_for_its_tenant(flowmap_runtime, caplog):
    rt, exporter = flowmap_runtime
    caplog.set_level(logging.DEBUG)
    with serve(starlette_app(rt.tracer_provider, acarry)) as server:
        answers = requests_of_two_tenants(server.url, "/sse")
    for token, (first, whoami_1, second, whoami_2) in zip(("token-a", "token-b"), answers):
        assert whoami_1 == whoami_2 == (200, "nobody")
        for status, text in (first, second):
            assert status == 200
            assert [line.removeprefix("data: ") for line in text.splitlines() if line.startswith("data:")] == [
                f"{TENANTS[token][:12]}:{i} " for i in range(3)]
    check_streams(exporter, caplog, "GET /sse")


def test_starlette_streaming_response_not_carried_is_refused(flowmap_runtime, caplog):
    """Starlette steps the body after the endpoint's ``with bind`` ended: the stream's first
    model call refuses, and the response breaks off after its headers."""
    rt, exporter = flowmap_runtime
    caplog.set_level(logging.DEBUG)
    with serve(starlette_app(rt.tracer_provider, as_is)) as server:
        answers = at_once((get_or_broken, server.url + "/stream", "token-a"),
                          (get_or_broken, server.url + "/stream", "token-b"))
        assert get(server.url + "/whoami") == (200, "nobody")
    assert answers == ["broken", "broken"]
    check_refused(exporter, caplog, under="GET /stream")  # (the ASGI span is still open)


def get_or_broken(url: str, token: str):
    """``get``, or "broken" when the server broke the response off after its headers."""
    try:
        return get(url, token)
    except Exception:  # noqa: BLE001 - http.client's IncompleteRead and the like
        return "broken"


# -- aiohttp.web: an async body written after the middleware's binding ended ---------------

@contextlib.contextmanager
def aiohttp_server(app) -> Iterator[str]:
    """The app under aiohttp's AppRunner, on its own event loop in a thread."""
    from aiohttp import web

    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def aiohttp_app(provider, carry: Carry):
    """A middleware opens the request's SERVER span (as contrib's aiohttp-server
    instrumentation would) and binds the tenant around the handler; the handler returns a
    ``web.Response`` whose async body aiohttp writes after both returned."""
    from aiohttp import web

    tracer = provider.get_tracer("aiohttp-test")

    @web.middleware
    async def tenant(request, handler):
        with tracer.start_as_current_span(f"{request.method} {request.path}", kind=SpanKind.SERVER):
            ctx = resolve(request.headers.get("authorization"))
            if ctx is None:
                return await handler(request)
            async with flowmap.bind(ctx):
                return await handler(request)

    async def encoded(body: AsyncIterator[str]) -> AsyncIterator[bytes]:
        async for item in body:
            yield item.encode()

    async def stream(request):
        return web.Response(body=carry(encoded(atokens())), content_type="text/plain")

    async def who(request):
        return web.Response(text=whoami())

    app = web.Application(middlewares=[tenant])
    app.router.add_get("/stream", stream)
    app.router.add_get("/whoami", who)
    return app


def test_aiohttp_response_with_an_async_body_carried_runs_for_its_tenant(flowmap_runtime, caplog):
    pytest.importorskip("aiohttp.web")
    rt, exporter = flowmap_runtime
    caplog.set_level(logging.DEBUG)
    with aiohttp_server(aiohttp_app(rt.tracer_provider, acarry)) as url:
        each_tenant_gets_its_stream(url)
    check_streams(exporter, caplog, "GET /stream")


def test_aiohttp_response_with_an_async_body_not_carried_is_refused(flowmap_runtime, caplog):
    pytest.importorskip("aiohttp.web")
    rt, exporter = flowmap_runtime
    caplog.set_level(logging.DEBUG)
    with aiohttp_server(aiohttp_app(rt.tracer_provider, as_is)) as url:
        answers = at_once((get_or_broken, url + "/stream", "token-a"), (get_or_broken, url + "/stream", "token-b"))
        assert get(url + "/whoami") == (200, "nobody")
    assert answers == ["broken", "broken"]
    check_refused(exporter, caplog)
