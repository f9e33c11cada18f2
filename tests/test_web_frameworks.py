"""Flask and Django served for real on loopback, under contrib's instrumentation: a tenant bound
from the request's token, a token stream the server iterates after the view returned.

Flask binds in ``before_request`` and unbinds in ``teardown_request`` (waitress, one worker
thread: every request reuses it); Django binds in a middleware around ``get_response`` (its
threaded wsgiref server). A body handed to ``flowmap.propagation.carry`` runs for its own
request's tenant, under its SERVER span, and the worker serves the next request unbound; a
body that is not carried runs after the binding ended, and its boundary refuses.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

flask = pytest.importorskip("flask")
django = pytest.importorskip("django")
waitress_server = pytest.importorskip("waitress.server")
from waitress.wasyncore import close_all  # noqa: E402
from opentelemetry.instrumentation.django import DjangoInstrumentor  # noqa: E402
from opentelemetry.instrumentation.flask import FlaskInstrumentor  # noqa: E402
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

import flowmap  # noqa: E402
from flowmap import attributes as A  # noqa: E402
from flowmap.context import RequestContext, authenticating, current_or_none  # noqa: E402
from flowmap.exporter import encode_spans  # noqa: E402
from flowmap.propagation import carry  # noqa: E402
from flowmap.tagging import tag_for  # noqa: E402

TENANTS = {"token-a": "tenant-alpha-raw-4711", "token-b": "tenant-bravo-raw-0815"}
TAGS = {token: tag_for("test-key", raw) for token, raw in TENANTS.items()}


def resolve(token: str | None) -> RequestContext | None:
    with authenticating():
        tenant = TENANTS.get((token or "").removeprefix("Bearer "))
    return RequestContext(tenant) if tenant else None


@flowmap.boundary("llm", "llm.token")
def next_token(i: int) -> str:
    return f"{flowmap.current().tenant_id[:12]}:{i} "


def tokens() -> Iterator[str]:
    """The agent's streamed answer: a model call per token."""
    for i in range(3):
        yield next_token(i)


def whoami() -> str:
    ctx = current_or_none()
    return "nobody" if ctx is None else ctx.tenant_id


def get(url: str, token: str | None = None) -> tuple[int | None, str]:
    """A real HTTP client (urllib: untraced, as another process's would be)."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""


def at_once(*calls) -> list:
    """Run each (fn, *args) in a thread of its own, all at once; their results in order."""
    results: list = [None] * len(calls)

    def run(i: int) -> None:
        fn, *args = calls[i]
        results[i] = fn(*args)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    return results


def streamed(token: str) -> str:
    raw = TENANTS[token]
    return "".join(f"{raw[:12]}:{i} " for i in range(3))


def check_streams(exporter, caplog, server_name: str) -> None:
    """Every request's SERVER span and every token span below it carry that request's
    tenant; no raw id in the exported spans or any log record."""
    spans = exporter.get_finished_spans()
    servers = {s.context.trace_id: s for s in spans if s.kind is SpanKind.SERVER and s.name == server_name}
    token_spans = [s for s in spans if s.name == "llm.token"]
    assert len(servers) == 4 and len(token_spans) == 12
    for span in token_spans:
        server = servers[span.context.trace_id]
        assert span.parent.span_id == server.context.span_id
        assert span.attributes[A.TENANT] == server.attributes[A.TENANT]
    assert sorted(s.attributes[A.TENANT] for s in servers.values()) == sorted([*TAGS.values()] * 2)
    assert {s.attributes[A.TENANT_SOURCE] for s in servers.values()} == {A.SOURCE_CONTEXT}
    exported = json.dumps(encode_spans(spans))
    assert not [raw for raw in TENANTS.values() if raw in exported or raw in caplog.text]


def check_refused(exporter, caplog) -> None:
    """The stream's first model call ran with nothing bound: refused, as an errored span
    with no tenant and no parent (the request's span ended with its binding)."""
    refused = [s for s in exporter.get_finished_spans() if s.name == "llm.token"]
    assert len(refused) == 2
    for span in refused:
        assert span.status.status_code is StatusCode.ERROR and span.parent is None
        assert A.TENANT not in span.attributes and span.attributes[A.UNSCOPED] is True
    assert not [raw for raw in TENANTS.values() if raw in caplog.text]


# -- Flask under waitress ---------------------------------------------------------------

def flask_app(provider, stream):
    app = flask.Flask("web-app")
    FlaskInstrumentor().instrument_app(app, tracer_provider=provider)

    @app.before_request
    def authenticate() -> None:
        ctx = resolve(flask.request.headers.get("authorization"))
        if ctx is not None:  # (/whoami is asked unauthenticated)
            flask.g.flowmap_scope = flowmap.bind(ctx)
            flask.g.flowmap_scope.__enter__()

    @app.teardown_request
    def unbind(exc: BaseException | None) -> None:
        scope = flask.g.pop("flowmap_scope", None)
        if scope is not None:
            scope.__exit__(None, None, None)

    app.get("/stream")(lambda: flask.Response(stream(tokens()), mimetype="text/plain"))
    app.get("/whoami")(whoami)
    return app


@contextlib.contextmanager
def waitress(app) -> Iterator[str]:
    """One worker thread: every request, whichever tenant's, runs on the same thread."""
    server = waitress_server.create_server(app, host="127.0.0.1", port=0, threads=1)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:  # closed in its own loop's thread (closing it from here races its select)
        server.trigger.pull_trigger(lambda: (server.task_dispatcher.shutdown(), close_all(server._map)))
        thread.join(5)
        FlaskInstrumentor().uninstrument_app(app)


def requests_of_two_tenants(url: str) -> list:
    """Both tenants' streams at once, each followed by an unauthenticated request."""
    def client(token: str) -> list:
        return [get(url + "/stream", token), get(url + "/whoami"), get(url + "/stream", token), get(url + "/whoami")]

    return at_once((client, "token-a"), (client, "token-b"))


def test_flask_stream_carried_runs_for_its_tenant_on_a_reused_worker(flowmap_runtime, caplog):
    rt, exporter = flowmap_runtime
    caplog.set_level(logging.DEBUG)
    with waitress(flask_app(rt.tracer_provider, carry)) as url:
        answers = requests_of_two_tenants(url)
    assert answers == [[(200, streamed(t)), (200, "nobody")] * 2 for t in ("token-a", "token-b")]
    check_streams(exporter, caplog, "GET /stream")


def test_flasks_stream_with_context_does_not_keep_a_binding_made_in_before_request(flowmap_runtime, caplog):
    """Flask 3.1 runs teardown_request when the view returns (and again after the
    stream): a body wrapped in stream_with_context runs after the binding ended."""
    rt, exporter = flowmap_runtime
    caplog.set_level(logging.DEBUG)
    with waitress(flask_app(rt.tracer_provider, flask.stream_with_context)) as url:
        answers = at_once((get, url + "/stream", "token-a"), (get, url + "/stream", "token-b"))
        assert get(url + "/whoami") == (200, "nobody")
    assert [status for status, _ in answers] == [500, 500]
    check_refused(exporter, caplog)


# -- Django under its threaded wsgiref server --------------------------------------------

CARRY = True  # whether the middleware carries a streaming response's body


class TenantMiddleware:
    """Binds the request's tenant around the view; carries a streamed body (when CARRY)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        ctx = resolve(request.headers.get("authorization"))
        if ctx is None:
            return self.get_response(request)
        with flowmap.bind(ctx):
            response = self.get_response(request)
            if CARRY and response.streaming:
                response.streaming_content = carry(response.streaming_content)
            return response


def _django_views() -> list:
    from django.http import HttpResponse, StreamingHttpResponse
    from django.urls import path

    return [path("stream", lambda request: StreamingHttpResponse(tokens(), content_type="text/plain")),
            path("whoami", lambda request: HttpResponse(whoami()))]


urlpatterns: list = []


@pytest.fixture
def django_server(flowmap_runtime) -> Iterator[str]:
    from django.conf import settings
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application

    if not settings.configured:
        settings.configure(DEBUG=False, ALLOWED_HOSTS=["127.0.0.1"], ROOT_URLCONF=__name__, SECRET_KEY="test",
                           MIDDLEWARE=[f"{__name__}.TenantMiddleware"])
        django.setup()
        urlpatterns[:] = _django_views()
    DjangoInstrumentor().instrument(tracer_provider=flowmap_runtime[0].tracer_provider)

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = ThreadedWSGIServer(("127.0.0.1", 0), Quiet)
    server.set_app(get_wsgi_application())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        DjangoInstrumentor().uninstrument()


def test_django_streaming_response_carried_by_the_middleware_runs_for_its_tenant(django_server, flowmap_runtime, caplog):
    caplog.set_level(logging.DEBUG)
    answers = requests_of_two_tenants(django_server)
    assert answers == [[(200, streamed(t)), (200, "nobody")] * 2 for t in ("token-a", "token-b")]
    check_streams(flowmap_runtime[1], caplog, "GET stream")


def test_django_streaming_response_not_carried_is_refused(django_server, flowmap_runtime, caplog, monkeypatch):
    """Django iterates the body after the middleware's ``with bind`` ended: the stream's
    first model call refuses (the server answers 500: nothing was sent yet)."""
    monkeypatch.setattr(sys.modules[__name__], "CARRY", False)
    caplog.set_level(logging.DEBUG)
    answers = at_once((get, django_server + "/stream", "token-a"), (get, django_server + "/stream", "token-b"))
    assert [status for status, _ in answers] == [500, 500]
    check_refused(flowmap_runtime[1], caplog)
