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
import logging
import sys
import threading
from collections.abc import Iterator

import pytest

flask = pytest.importorskip("flask")
django = pytest.importorskip("django")
waitress_server = pytest.importorskip("waitress.server")
from waitress.wasyncore import close_all  # noqa: E402
from opentelemetry.instrumentation.django import DjangoInstrumentor  # noqa: E402
from opentelemetry.instrumentation.flask import FlaskInstrumentor  # noqa: E402

import flowmap  # noqa: E402
from flowmap.propagation import carry  # noqa: E402
from webapps import (  # noqa: E402
    at_once,
    check_refused,
    check_streams,
    each_tenant_gets_its_stream,
    get,
    resolve,
    tokens,
    whoami,
)


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


def test_flask_stream_carried_runs_for_its_tenant_on_a_reused_worker(flowmap_runtime, caplog):
    rt, exporter = flowmap_runtime
    caplog.set_level(logging.DEBUG)
    with waitress(flask_app(rt.tracer_provider, carry)) as url:
        each_tenant_gets_its_stream(url)
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
    each_tenant_gets_its_stream(django_server)
    check_streams(flowmap_runtime[1], caplog, "GET stream")


def test_django_streaming_response_not_carried_is_refused(django_server, flowmap_runtime, caplog, monkeypatch):
    """Django iterates the body after the middleware's ``with bind`` ended: the stream's
    first model call refuses (the server answers 500: nothing was sent yet)."""
    monkeypatch.setattr(sys.modules[__name__], "CARRY", False)
    caplog.set_level(logging.DEBUG)
    answers = at_once((get, django_server + "/stream", "token-a"), (get, django_server + "/stream", "token-b"))
    assert [status for status, _ in answers] == [500, 500]
    check_refused(flowmap_runtime[1], caplog)
