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

ACME = RequestContext("acme-corp-7731")
GLOBEX = RequestContext("globex-4410")


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


def _run_strict_async(port, body) -> None:
    """``await body(r)`` on an asyncio client with strict mode on, then uninstrument."""
    RedisInstrumentor().instrument(strict=True)

    async def main() -> None:
        r = redis.asyncio.Redis(host="127.0.0.1", port=port)
        try:
            await body(r)
        finally:
            await r.aclose()

    try:
        asyncio.run(main())
    finally:
        RedisInstrumentor().uninstrument()


def test_asyncio_client(port, traced):
    async def body(r) -> None:
        async with bind(ACME):
            await r.set(tenant_key("async"), "1")
            with pytest.raises(UnscopedOperationError):
                await r.get("async")
            async with r.pipeline() as p:
                await p.set(tenant_key("p"), 1).get(tenant_key("p")).execute()

    _run_strict_async(port, body)
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


# -- multi-key commands: every key a command touches is judged -------------------------


def _namespaces(traced) -> tuple[str, str]:
    return f"t:{traced.tag(ACME.tenant_id)}:", f"t:{traced.tag(GLOBEX.tenant_id)}:"


@pytest.fixture
def globex_data(client, traced):
    """Another tenant's data, written before instrumenting."""
    a, b = _namespaces(traced)
    client.zadd(b + "z", {"b-secret": 1})
    client.set(b + "s", "b-secret-string")
    client.rpush(b + "list", "b-item")
    client.sadd(b + "set", "b-member")
    client.pfadd(b + "hll", "b-visitor")
    client.geoadd(b + "geo", (13.36, 38.11, "b-place"))
    client.xadd(b + "st", {"f": "b-event"})
    client.set(b + "w_1", "1")
    client.rpush(a + "list", "1")
    client.set(a + "s", "a-string")
    client.zadd(a + "z", {"a": 1})
    client.sadd(a + "set", "a-member")
    client.xadd(a + "st", {"f": "a-event"})
    return a, b


def test_multi_key_commands_cannot_reach_another_tenant(client, traced, globex_data, port):
    """Repro: under ACME, a command whose first key is ACME's but which reads or writes
    GLOBEX's keys (or key patterns) must be unscoped, and strict mode refuses it."""
    a, b = globex_data
    attempts = {
        "ZUNIONSTORE": lambda: client.zunionstore(a + "dest", [b + "z"]),
        "ZINTERSTORE": lambda: client.zinterstore(a + "dest", [a + "z", b + "z"]),
        "ZDIFFSTORE": lambda: client.zdiffstore(a + "dest", [a + "z", b + "z"]),
        "ZRANGESTORE": lambda: client.zrangestore(a + "dest", b + "z", 0, -1),
        "ZUNION": lambda: client.zunion([a + "z", b + "z"]),
        "GEOSEARCHSTORE": lambda: client.geosearchstore(
            a + "dest", b + "geo", longitude=13.36, latitude=38.11, radius=100, unit="km"
        ),
        "GEORADIUS STORE": lambda: client.georadius(a + "z", 13.36, 38.11, 100, store=b + "geo"),
        "LCS": lambda: client.lcs(a + "s", b + "s"),
        "SORT GET": lambda: client.sort(a + "list", by="nosort", get=[b + "*"]),
        "SORT BY": lambda: client.sort(a + "list", by=b + "w_*"),
        "SORT STORE": lambda: client.sort(a + "list", store=b + "list"),
        "SORT_RO GET": lambda: client.sort_ro(a + "list", get=b + "*"),
        "SUNIONSTORE": lambda: client.sunionstore(a + "dest", [a + "set", b + "set"]),
        "SINTERCARD": lambda: client.sintercard(2, [a + "set", b + "set"]),
        "COPY": lambda: client.copy(b + "s", a + "dest"),
        "RENAME": lambda: client.rename(a + "s", b + "mine-now"),
        "SMOVE": lambda: client.smove(b + "set", a + "set", "b-member"),
        "LMOVE": lambda: client.lmove(b + "list", a + "list"),
        "RPOPLPUSH": lambda: client.rpoplpush(b + "list", a + "list"),
        "LMPOP": lambda: client.lmpop(2, a + "list", b + "list", direction="LEFT"),
        "BITOP": lambda: client.bitop("OR", a + "dest", a + "s", b + "s"),
        "PFMERGE": lambda: client.pfmerge(a + "dest", b + "hll"),
        "MGET": lambda: client.mget(a + "s", b + "s"),
        "MSET": lambda: client.mset({a + "k": 1, b + "s": "overwritten"}),
        "DEL": lambda: client.delete(a + "k", b + "s"),
        "XREAD": lambda: client.xread({a + "st": 0, b + "st": 0}),
        "OBJECT": lambda: client.object("encoding", b + "s"),
        "MEMORY USAGE": lambda: client.memory_usage(b + "s"),
        "MIGRATE": lambda: client.migrate("127.0.0.1", port, [a + "s", b + "s"], 0, 100),
        "SCAN": lambda: list(client.scan_iter(match=b + "*")),
        "SCAN MATCH twice": lambda: client.execute_command("SCAN", 0, "MATCH", a + "*", "MATCH", "*"),
        "KEYS": lambda: client.keys(b + "*"),
        "KEYS *": lambda: client.keys("*"),
        "EVAL": lambda: client.eval("return redis.call('GET', ARGV[1])", 1, a + "s", b + "s"),
        "unknown": lambda: client.execute_command("DEBUG", "OBJECT", a + "s"),
        "bad numkeys": lambda: client.execute_command("ZUNION", "01", a + "z"),
    }
    RedisInstrumentor().instrument(strict=True)
    with bind(ACME):
        for label, attempt in attempts.items():
            with pytest.raises(UnscopedOperationError):
                attempt()
                pytest.fail(f"{label} ran")
        with pytest.raises(UnscopedOperationError):  # one command of a pipeline is enough
            with client.pipeline() as p:
                p.set(a + "ok", 1).zunionstore(a + "dest", [b + "z"]).execute()
    RedisInstrumentor().uninstrument()
    spans = traced.spans("cache")
    assert len(spans) == len(attempts) + 1
    assert all(s.attributes[A.SCOPED] is False and not s.status.is_ok for s in spans)
    assert all(s.attributes["flowmap.keys.outside"] >= 1 for s in spans)
    # nothing reached the server
    assert client.exists(a + "dest", a + "ok", a + "k", b + "mine-now") == 0
    assert client.zrange(b + "z", 0, -1) == ["b-secret"]
    assert client.get(b + "s") == "b-secret-string" and client.get(a + "s") == "a-string"
    assert client.lrange(b + "list", 0, -1) == ["b-item"] and client.lrange(a + "list", 0, -1) == ["1"]
    assert_no_raw(traced.spans(), ACME.tenant_id, GLOBEX.tenant_id, "b-secret")


def test_multi_key_commands_on_own_keys_are_scoped(client, traced, globex_data):
    """No false alarms: the same commands on the tenant's own keys run in strict mode."""
    a, _b = globex_data
    RedisInstrumentor().instrument(strict=True)
    with bind(ACME):
        assert client.zunion([a + "z", a + "nothing"]) == ["a"]
        client.zunionstore(a + "dest", [a + "z"], aggregate="MAX")
        client.zinterstore(a + "dest2", {a + "z": 2})
        assert client.zintercard(1, [a + "z"]) == 1
        client.zrangestore(a + "dest3", a + "z", 0, -1)
        assert client.bitop("AND", a + "bits", a + "s", a + "s") == len("a-string")
        assert client.xread({a + "st": 0}, count=1)[0][0] == a + "st"
        client.xgroup_create(a + "st", "g", id="0")
        assert client.xreadgroup("g", "c", {a + "st": ">"}, count=1)[0][0] == a + "st"
        assert client.xinfo_stream(a + "st")["length"] == 1
        client.mset({a + "k1": "1", a + "k2": "2"})
        assert client.mget(a + "k1", a + "k2") == ["1", "2"]
        assert client.sintercard(1, [a + "set"]) == 1
        assert client.lmpop(2, a + "nothing", a + "list", direction="LEFT") == [a + "list", ["1"]]
        client.rpush(a + "list", "1", "2")
        client.set(a + "o_1", "one")
        assert client.sort(a + "list", by="nosort", get=["#", a + "o_*"]) == ["1", "one", "2", None]
        client.sort(a + "list", by=a + "w_*", store=a + "sorted")
        assert client.lcs(a + "s", a + "k1") == ""
        client.copy(a + "s", a + "s2")
        client.rename(a + "s2", a + "s3")
        assert client.object("encoding", a + "s") is not None
        assert client.memory_usage(a + "s") > 0
        assert client.exists(a + "s", a + "s3") == 2
        assert client.delete(a + "s3", a + "dest3") == 2
        assert list(client.scan_iter(match=a + "k*")) != []
        assert sorted(client.keys(a + "k*")) == [a + "k1", a + "k2"]
        client.publish(a + "events", "hello")
        client.execute_command("OBJECT", "ENCODING", a + "s")  # split subcommand
    spans = traced.spans("cache")
    assert len(spans) > 25
    assert [s.name for s in spans if s.attributes[A.SCOPED] is not True] == []


def test_scripts_are_unscoped_unless_declared_keys_are_trusted(client, traced, globex_data):
    """Redis lets a script touch keys it did not declare, so declared keys prove nothing
    unless the application says its scripts keep to them."""
    a, b = globex_data
    leak = "return redis.call('GET', ARGV[1])"
    RedisInstrumentor().instrument(strict=True)
    with bind(ACME):
        with pytest.raises(UnscopedOperationError):
            client.eval(leak, 1, a + "s", b + "s")  # declared keys are ACME's, yet reads GLOBEX
    RedisInstrumentor().uninstrument()
    RedisInstrumentor().instrument(strict=True, trust_script_keys=True)
    with bind(ACME):
        assert client.eval("return redis.call('GET', KEYS[1])", 1, a + "s") == "a-string"
        with pytest.raises(UnscopedOperationError):
            client.eval("return redis.call('GET', KEYS[1])", 1, b + "s")
        with pytest.raises(UnscopedOperationError):
            client.eval("return 1", 0)  # no key at all: nothing to scope
    assert [s.attributes[A.SCOPED] for s in traced.spans("cache")] == [False, True, False, False]


def test_commands_while_watching_are_judged(client, traced, globex_data):
    """A pipeline that WATCHes sends commands at once, outside execute(): judged too."""
    a, b = globex_data
    RedisInstrumentor().instrument(strict=True)
    with bind(ACME):
        with client.pipeline() as p:
            with pytest.raises(UnscopedOperationError):
                p.watch(b + "s")
        with client.pipeline() as p:
            p.watch(a + "s")
            assert p.get(a + "s") == "a-string"
            with pytest.raises(UnscopedOperationError):
                p.get(b + "s")
            p.multi()
            p.set(a + "s", "updated")
            p.execute()
    assert [(s.name, s.attributes[A.SCOPED]) for s in traced.spans("cache")] == [
        ("redis WATCH", False),
        ("redis WATCH", True),
        ("redis GET", True),
        ("redis GET", False),
        ("redis SET", True),
    ]


def test_glob_patterns_must_match_only_the_namespace(client, traced):
    """A namespace with glob characters: only the escaped pattern is confined to it."""
    client.set("ab:other", "x")  # matched by the glob "a[b]:*"
    client.set("a[b]:mine", "y")
    RedisInstrumentor().instrument(strict=True, namespace=lambda ctx: "a[b]:")
    with bind(ACME):
        with pytest.raises(UnscopedOperationError):
            client.keys("a[b]:*")
        assert client.keys("a\\[b\\]:*") == ["a[b]:mine"]
        client.sort(tenant_key("l"), get="a[b]:o_*")  # SORT patterns are not globs
    RedisInstrumentor().uninstrument()
    RedisInstrumentor().instrument(strict=True, namespace=lambda ctx: "s*:")
    with bind(ACME):
        with pytest.raises(UnscopedOperationError):  # SORT would replace the prefix's '*'
            client.sort(tenant_key("l"), get="s*:o_*")
    assert [s.attributes[A.SCOPED] for s in traced.spans("cache")] == [False, True, True, False]


def test_asyncio_commands_while_watching_are_judged(port, traced):
    async def body(r) -> None:
        async with bind(ACME):
            async with r.pipeline() as p:
                await p.watch(tenant_key("w"))
                with pytest.raises(UnscopedOperationError):
                    await p.get("not-namespaced")
                with pytest.raises(UnscopedOperationError):
                    await p.zunionstore(tenant_key("d"), ["not-namespaced"])

    _run_strict_async(port, body)
    assert [(s.name, s.attributes[A.SCOPED]) for s in traced.spans("cache")] == [
        ("redis WATCH", True),
        ("redis GET", False),
        ("redis ZUNIONSTORE", False),
    ]


# -- lifecycle: settings before instrument(), other wrappers, provider, packaging -------


def test_tenant_key_without_instrument(tmp_path):
    """tenant_key() works when instrument() never ran in the process (disabled by the
    environment, or called before it): the default namespace, a function stored on the
    settings class, was read as a bound method and raised TypeError."""
    import os
    import subprocess
    import sys

    from flowmap.tagging import Tagger

    probe = (
        "import flowmap\n"
        "from flowmap_instrumentation_redis import RedisInstrumentor, tenant_key\n"
        "RedisInstrumentor().instrument()\n"
        "assert not RedisInstrumentor().is_instrumented_by_opentelemetry\n"
        "with flowmap.bind(flowmap.RequestContext('acme')):\n"
        "    print(tenant_key('session:42'))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "FLOWMAP_"))}
    env.update(FLOWMAP_TENANT_KEY="k1", OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="flowmap_redis")
    out = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [f"t:{Tagger('k1').tag('acme')}:session:42"]


def _other_wrapper(calls):
    """Another library's wrapt wrapper, as the contrib Redis instrumentation installs."""

    def wrapper(wrapped, instance, args, kwargs):
        calls.append(args[0])
        return wrapped(*args, **kwargs)

    return wrapper


@pytest.fixture
def restored():
    """Every method flowmap wraps, put back as it was after the test (other wrappers too)."""
    owners = (redis.client.Redis, redis.client.Pipeline, redis.asyncio.client.Redis, redis.asyncio.client.Pipeline)
    saved = [(o, dict(vars(o))) for o in owners]
    yield
    for owner, attrs in saved:
        for name in ("execute_command", "execute", "immediate_execute_command"):
            if name in attrs:
                setattr(owner, name, attrs[name])


def test_uninstrument_removes_only_flowmaps_wrapper(client, traced, restored):
    import wrapt
    from opentelemetry.instrumentation.utils import unwrap

    original = vars(redis.client.Redis)["execute_command"]
    calls: list = []
    RedisInstrumentor().instrument()
    wrapt.wrap_function_wrapper("redis.client", "Redis.execute_command", _other_wrapper(calls))
    theirs = vars(redis.client.Redis)["execute_command"]
    RedisInstrumentor().uninstrument()
    assert vars(redis.client.Redis)["execute_command"] is theirs  # still installed, on top
    assert theirs.__wrapped__ is original  # flowmap's spliced out of the chain
    client.set("unbound", "1")  # flowmap's guard is gone: no MissingContextError
    assert calls == ["SET"] and traced.spans("cache") == []
    RedisInstrumentor().instrument()  # again, on top of the other one
    with bind(ACME):
        client.set(tenant_key("k"), "1")
    assert calls == ["SET", "SET"] and len(traced.spans("cache")) == 1
    RedisInstrumentor().uninstrument()
    assert vars(redis.client.Redis)["execute_command"] is theirs
    unwrap(redis.client.Redis, "execute_command")
    assert vars(redis.client.Redis)["execute_command"] is original


def test_uninstrument_under_a_wrapper_that_cannot_be_spliced(client, traced, restored):
    """A plain function on top (no wrapt proxy): flowmap's stays below it, passing through."""
    import functools

    RedisInstrumentor().instrument()
    below = vars(redis.client.Redis)["execute_command"]

    @functools.wraps(below)
    def on_top(self, *args, **kwargs):
        return below(self, *args, **kwargs)

    redis.client.Redis.execute_command = on_top
    RedisInstrumentor().uninstrument()
    assert vars(redis.client.Redis)["execute_command"] is on_top
    client.set("unbound", "1")  # passes through flowmap's: no MissingContextError
    assert traced.spans("cache") == []


def test_uninstrument_beside_the_contrib_redis_instrumentation(client, traced, restored):
    contrib = pytest.importorskip("opentelemetry.instrumentation.redis")
    RedisInstrumentor().instrument()
    contrib.RedisInstrumentor().instrument(tracer_provider=traced.provider)
    try:
        RedisInstrumentor().uninstrument()
        client.get("k")  # unbound: flowmap's guard is gone, contrib's span remains
        scopes = [s.instrumentation_scope.name for s in traced.spans()]
        assert scopes == ["opentelemetry.instrumentation.redis"]
    finally:
        contrib.RedisInstrumentor().uninstrument()


def test_tracer_provider_and_instrumentation_scope(client, traced):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import flowmap_instrumentation_redis

    exporter = InMemorySpanExporter()
    mine = TracerProvider()
    mine.add_span_processor(SimpleSpanProcessor(exporter))
    RedisInstrumentor().instrument(tracer_provider=mine)
    with bind(ACME):
        client.set(tenant_key("k"), "v")
    (span,) = exporter.get_finished_spans()
    assert traced.spans() == []  # not on flowmap's (the configured) provider
    assert span.name == "redis SET" and span.attributes[A.BOUNDARY] == "cache"
    scope = span.instrumentation_scope
    assert (scope.name, scope.version) == ("flowmap_instrumentation_redis", flowmap_instrumentation_redis.__version__)
    RedisInstrumentor().uninstrument()
    RedisInstrumentor().instrument()  # without one: flowmap's provider again
    with bind(ACME):
        client.get(tenant_key("k"))
    assert [s.instrumentation_scope.name for s in traced.spans("cache")] == ["flowmap_instrumentation_redis"]
    assert len(exporter.get_finished_spans()) == 1


def test_disabled_by_wildcard_in_direct_calls(client, traced, monkeypatch):
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "*")
    RedisInstrumentor().instrument()
    assert not RedisInstrumentor().is_instrumented_by_opentelemetry
    client.set("x", "1")  # unbound, not refused: nothing is wrapped
    assert traced.spans() == []


def test_opentelemetry_instrument_checks_the_redis_version(tmp_path):
    """An unsupported redis-py (metadata of 4.6.0 found first on the path) is skipped by
    the loader; it was instrumented anyway (skip_dep_check, no requirement to check)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    old = tmp_path / "old" / "redis-4.6.0.dist-info"
    old.mkdir(parents=True)
    (old / "METADATA").write_text("Metadata-Version: 2.1\nName: redis\nVersion: 4.6.0\n")
    probe = "from flowmap_instrumentation_redis import RedisInstrumentor as R\nprint(R().is_instrumented_by_opentelemetry)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "FLOWMAP_DISABLED_INSTRUMENTATIONS"}
    env.update(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    exe = Path(sys.executable).with_name("opentelemetry-instrument")
    seen = []
    for path in (None, str(old.parent)):
        run_env = {**env, "PYTHONPATH": path} if path else env
        out = subprocess.run([str(exe), sys.executable, "-c", probe], env=run_env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=120, check=True)
        seen.append(out.stdout.split())
    assert seen == [["True"], ["False"]]
