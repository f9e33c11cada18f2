"""What the web framework tests share: two tenants' bearer tokens, a streamed answer whose
every token is a model call, a plain HTTP client, and the checks on the spans it leaves.

Used by test_web_frameworks.py (Flask, Django: sync bodies, ``carry``) and
test_web_async.py (Starlette under uvicorn, sse-starlette, aiohttp.web: async bodies,
``acarry``).
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator

from opentelemetry.trace import SpanKind, StatusCode

import flowmap
from flowmap import attributes as A
from flowmap.context import RequestContext, authenticating, current_or_none
from flowmap.exporter import encode_spans
from flowmap.tagging import tag_for

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


async def atokens() -> AsyncIterator[str]:
    """The same answer from an async generator, suspending between tokens (so two
    requests' streams interleave on one event loop)."""
    import anyio

    for i in range(3):
        await anyio.sleep(0.01)
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


def requests_of_two_tenants(url: str, path: str = "/stream") -> list:
    """Both tenants' streams at once, each followed by an unauthenticated request."""
    def client(token: str) -> list:
        return [get(url + path, token), get(url + "/whoami"), get(url + path, token), get(url + "/whoami")]

    return at_once((client, "token-a"), (client, "token-b"))


def each_tenant_gets_its_stream(url: str) -> None:
    """Both tenants' streams at once: each gets its own tenant's tokens, and the request
    after it on the same client finds nobody bound."""
    assert requests_of_two_tenants(url) == [[(200, streamed(t)), (200, "nobody")] * 2 for t in ("token-a", "token-b")]


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


def check_refused(exporter, caplog, under: str | None = None) -> None:
    """The stream's first model call ran with nothing bound: refused, as an errored span
    with no tenant and no parent (the request's span ended with its binding), or, where
    the server's span stays open around the body (ASGI), below the SERVER span ``under``."""
    spans = exporter.get_finished_spans()
    refused = [s for s in spans if s.name == "llm.token"]
    servers = {s.context.span_id for s in spans if s.kind is SpanKind.SERVER and s.name == under}
    assert len(refused) == 2
    for span in refused:
        assert span.status.status_code is StatusCode.ERROR
        assert span.parent is None if under is None else span.parent.span_id in servers
        assert A.TENANT not in span.attributes and span.attributes[A.UNSCOPED] is True
    assert not [raw for raw in TENANTS.values() if raw in caplog.text]
