"""Shared fixtures: a real SDK pipeline (TenantSpanProcessor + in-memory exporter)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flowmap import runtime
from flowmap.processors import TenantSpanProcessor
from flowmap.tagging import Tagger

KEY = "instrumentation-test-key"


class Traced:
    def __init__(self, provider: TracerProvider, exporter: InMemorySpanExporter, tagger: Tagger) -> None:
        self.provider = provider
        self.exporter = exporter
        self.tagger = tagger

    def spans(self, boundary: str | None = None) -> list:
        spans = list(self.exporter.get_finished_spans())
        if boundary is not None:
            spans = [s for s in spans if (s.attributes or {}).get("flowmap.boundary") == boundary]
        return spans

    def tag(self, tenant_id: str) -> str:
        return self.tagger.tag(tenant_id)


@pytest.fixture
def traced() -> Iterator[Traced]:
    tagger = Tagger(KEY)
    provider = TracerProvider()
    provider.add_span_processor(TenantSpanProcessor(tagger))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    old_rt, old_tagger = runtime.current_runtime(), runtime.tagger_or_none()
    runtime.set_tagger(tagger)
    runtime.set_runtime(runtime.Runtime(tracer_provider=provider, tagger=tagger))
    try:
        yield Traced(provider, exporter, tagger)
    finally:
        runtime.set_runtime(old_rt)
        runtime.set_tagger(old_tagger)
        provider.shutdown()


def assert_no_raw(spans: list, *secrets: str) -> None:
    """No attribute or event of any span contains one of ``secrets`` (raw tenant ids, keys)."""
    for span in spans:
        blobs = [span.name, *map(str, (span.attributes or {}).values())]
        for ev in span.events:
            blobs += [ev.name, *map(str, (ev.attributes or {}).values())]
        for blob in blobs:
            for secret in secrets:
                assert secret not in blob, f"{secret!r} leaked into span {span.name!r}"


@pytest.fixture(scope="module")
def port(tmp_path_factory):
    """A real redis-server on an ephemeral port (the redis tests)."""
    from .redis_server import redis_server

    with redis_server(tmp_path_factory.mktemp("redis")) as p:
        yield p


@pytest.fixture
def client(port, traced):
    """A redis-py client of that server, emptied first (before instrumenting: whole-keyspace
    commands are judged unscoped); the instrumentation is removed afterwards."""
    import redis
    from flowmap_instrumentation_redis import RedisInstrumentor

    r = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
    r.flushdb()
    yield r
    RedisInstrumentor().uninstrument()
    r.close()
