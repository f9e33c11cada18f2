"""redis-py against a real redis-server: every command judged by the tenant's key namespace."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("redis")
import redis  # noqa: E402
import redis.asyncio  # noqa: E402

from flowmap import attributes as A  # noqa: E402
from flowmap.context import RequestContext, bind  # noqa: E402
from flowmap.errors import MissingContextError, UnscopedOperationError  # noqa: E402
from flowmap_instrumentation_redis import RedisInstrumentor, tenant_key  # noqa: E402

from .conftest import assert_no_raw  # noqa: E402
from .redis_server import redis_server  # noqa: E402

ACME = RequestContext("acme-corp-7731")
GLOBEX = RequestContext("globex-4410")


@pytest.fixture(scope="module")
def port(tmp_path_factory):
    with redis_server(tmp_path_factory.mktemp("redis")) as p:
        yield p


@pytest.fixture
def client(port, traced):
    r = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
    r.flushdb()  # before instrumenting: whole-keyspace commands are judged unscoped
    yield r
    RedisInstrumentor().uninstrument()
    r.close()


def test_namespaced_keys_are_scoped_and_tagged(client, traced):
    RedisInstrumentor().instrument()
    with bind(ACME):
        key = tenant_key("session:1")
        client.set(key, "v")
        assert client.get(key) == "v"
    assert key.startswith(f"t:{traced.tag(ACME.tenant_id)}:")
    spans = traced.spans("cache")
    assert [s.name for s in spans] == ["redis SET", "redis GET"]
    for s in spans:
        assert s.attributes[A.SCOPED] is True
        assert s.attributes[A.TENANT] == traced.tag(ACME.tenant_id)
        assert s.attributes["db.operation.name"] in ("SET", "GET")
    assert_no_raw(traced.spans(), ACME.tenant_id, "session:1")


def test_key_outside_namespace_is_unscoped_but_runs(client, traced):
    RedisInstrumentor().instrument()
    with bind(ACME):
        client.set("session:1", "shared")  # no tenant prefix: every tenant shares it
        with bind(GLOBEX, allow_switch=True):
            client.get(tenant_key("x"))
        # another tenant's namespace is not this tenant's
        globex_key = f"t:{traced.tag(GLOBEX.tenant_id)}:x"
        client.get(globex_key)
        assert client.get("session:1") == "shared"  # not refused outside strict mode
    spans = traced.spans("cache")
    assert [s.attributes[A.SCOPED] for s in spans] == [False, True, False, False]
    assert spans[0].attributes["flowmap.keys.outside"] == 1
    assert_no_raw(traced.spans(), ACME.tenant_id, GLOBEX.tenant_id, "session:1")


def test_strict_mode_refuses_before_the_command_runs(client, traced):
    RedisInstrumentor().instrument(strict=True)
    with bind(ACME):
        with pytest.raises(UnscopedOperationError):
            client.set("leak", "x")
        with pytest.raises(UnscopedOperationError):
            client.mset({tenant_key("a"): 1, "b": 2})  # one key outside is enough
        client.set(tenant_key("ok"), "1")
    RedisInstrumentor().uninstrument()
    assert client.exists("leak", "b") == 0  # nothing reached the server
    assert client.get(f"t:{traced.tag(ACME.tenant_id)}:a") is None
    refused = [s for s in traced.spans("cache") if s.attributes[A.SCOPED] is False]
    assert len(refused) == 2 and all(not s.status.is_ok for s in refused)


def test_whole_keyspace_and_unmatched_scan_are_unscoped(client, traced):
    RedisInstrumentor().instrument()
    with bind(ACME):
        client.set(tenant_key("k"), "1")
        list(client.scan_iter(match=tenant_key("*")))
        list(client.scan_iter())  # no MATCH: walks every tenant's keys
        client.flushdb()
    verdicts = {s.name: s.attributes[A.SCOPED] for s in traced.spans("cache")}
    assert verdicts == {"redis SET": True, "redis SCAN": False, "redis FLUSHDB": False}
    scans = [s.attributes[A.SCOPED] for s in traced.spans("cache") if s.name == "redis SCAN"]
    assert scans == [True, False]


def test_pipeline_is_one_span_judged_on_every_key(client, traced):
    RedisInstrumentor().instrument()
    with bind(ACME):
        with client.pipeline() as p:
            p.set(tenant_key("a"), 1).incr(tenant_key("b")).execute()
        with client.pipeline() as p:
            p.set(tenant_key("a"), 1).get("other").execute()
    spans = traced.spans("cache")
    assert [(s.name, s.attributes[A.SCOPED]) for s in spans] == [
        ("redis PIPELINE", True),
        ("redis PIPELINE", False),
    ]
    assert spans[0].attributes["db.operation.batch.size"] == 2


def test_memory_kind_and_custom_namespace(client, traced):
    RedisInstrumentor().instrument(kind="memory", namespace=lambda ctx: f"mem/{ctx.tag()}/")
    with bind(ACME):
        client.rpush(tenant_key("chat"), "hello")
        assert client.lrange(f"mem/{traced.tag(ACME.tenant_id)}/chat", 0, -1) == ["hello"]
    assert [s.attributes[A.SCOPED] for s in traced.spans("memory")] == [True, True]
    assert traced.spans("cache") == []


def test_no_bound_tenant_fails_closed(client, traced):
    RedisInstrumentor().instrument()
    with pytest.raises(MissingContextError):
        client.set("anything", "x")
    assert client.ping() is True  # keyless commands are not boundaries
    RedisInstrumentor().uninstrument()
    assert client.exists("anything") == 0


def test_asyncio_client(port, traced):
    RedisInstrumentor().instrument(strict=True)

    async def main() -> None:
        r = redis.asyncio.Redis(host="127.0.0.1", port=port)
        try:
            async with bind(ACME):
                await r.set(tenant_key("async"), "1")
                with pytest.raises(UnscopedOperationError):
                    await r.get("async")
                async with r.pipeline() as p:
                    await p.set(tenant_key("p"), 1).get(tenant_key("p")).execute()
        finally:
            await r.aclose()

    try:
        asyncio.run(main())
    finally:
        RedisInstrumentor().uninstrument()
    assert [(s.name, s.attributes[A.SCOPED]) for s in traced.spans("cache")] == [
        ("redis SET", True),
        ("redis GET", False),
        ("redis PIPELINE", True),
    ]


def test_instrument_is_idempotent_and_uninstrument_restores(client, traced):
    inst = RedisInstrumentor()
    inst.instrument()
    inst.instrument()  # second call is a no-op, not a double wrap
    with bind(ACME):
        client.set(tenant_key("x"), "1")
    assert len(traced.spans("cache")) == 1
    inst.uninstrument()
    with bind(ACME):
        client.set("y", "1")
    assert len(traced.spans("cache")) == 1


def test_disabled_by_environment(client, traced, monkeypatch):
    monkeypatch.setenv("FLOWMAP_DISABLED_INSTRUMENTATIONS", "flowmap_sqlite_vec, flowmap_redis")
    RedisInstrumentor().instrument()
    assert not RedisInstrumentor().is_instrumented_by_opentelemetry
    with bind(ACME):
        client.set("x", "1")
    assert traced.spans("cache") == []


def test_entry_point_is_registered():
    from importlib.metadata import entry_points

    eps = {ep.name: ep for ep in entry_points(group="opentelemetry_instrumentor")}
    assert eps["flowmap_redis"].load() is RedisInstrumentor
