"""redis-py's PubSub against a real redis-server: subscriptions are judged like commands.

``r.pubsub()`` sends (P|S)SUBSCRIBE and the unsubscribes through ``PubSub.execute_command``,
which flowmap did not wrap: a tenant's request subscribing to another tenant's channel, or
to a pattern covering every tenant, was never judged (PUBLISH through the client was).
"""

from __future__ import annotations

import asyncio
import time

import pytest

pytest.importorskip("redis")
import redis  # noqa: E402
import redis.asyncio  # noqa: E402
from redis.connection import Connection  # noqa: E402

from flowmap import attributes as A  # noqa: E402
from flowmap.context import RequestContext, bind  # noqa: E402
from flowmap.errors import MissingContextError, UnscopedOperationError  # noqa: E402
from flowmap_instrumentation_redis import (  # noqa: E402
    DEFAULT_SHARED_KEYS,
    SHARED_KEYS_ENV,
    RedisInstrumentor,
    tenant_key,
)

from .conftest import assert_no_raw  # noqa: E402

ACME = RequestContext("acme-corp-7731")
GLOBEX = RequestContext("globex-4410")


@pytest.fixture(autouse=True)
def _no_shared_keys_from_the_environment(monkeypatch):
    monkeypatch.delenv(SHARED_KEYS_ENV, raising=False)


def _raw(port: int, *args):
    """A command on a raw connection: below redis-py's client, so never judged."""
    c = Connection(host="127.0.0.1", port=port, decode_responses=True)
    try:
        c.send_command(*args)
        return c.read_response()
    finally:
        c.disconnect()


def _subscribers(port: int, channel: str) -> int:
    return int(_raw(port, "PUBSUB", "NUMSUB", channel)[1])


def _wait(pubsub, n: int) -> list:
    """The next ``n`` messages (subscribe confirmations included) of a PubSub."""
    out: list = []
    deadline = time.monotonic() + 5
    while len(out) < n and time.monotonic() < deadline:
        m = pubsub.get_message(timeout=0.2)
        if m is not None:
            out.append(m)
    return out


def _verdicts(traced) -> list[tuple[str, bool]]:
    return [(s.name, s.attributes[A.SCOPED]) for s in traced.spans("cache")]


def test_subscriptions_are_judged_on_every_channel_and_pattern(client, traced, port):
    RedisInstrumentor().instrument()
    other = f"t:{traced.tag(GLOBEX.tenant_id)}:events"
    p = client.pubsub()
    with bind(ACME):
        own = tenant_key("events")
        p.subscribe(own)
        p.subscribe(other)  # another tenant's channel: runs (record mode), unscoped
        p.psubscribe(tenant_key("events:*"))
        p.psubscribe("t:*:events")  # every tenant's channel
        p.ssubscribe(own)
        p.subscribe(own, "events")  # one channel outside is enough
        client.publish(own, "hello")
    messages = _wait(p, 8)
    assert [m["data"] for m in messages if m["type"] == "message"] == ["hello"]
    assert _subscribers(port, other) == 1  # not refused outside strict mode
    assert _verdicts(traced) == [
        ("redis SUBSCRIBE", True),
        ("redis SUBSCRIBE", False),
        ("redis PSUBSCRIBE", True),
        ("redis PSUBSCRIBE", False),
        ("redis SSUBSCRIBE", True),
        ("redis SUBSCRIBE", False),
        ("redis PUBLISH", True),
    ]
    spans = traced.spans("cache")
    for s in spans:
        assert s.attributes[A.TENANT] == traced.tag(ACME.tenant_id)
        assert s.attributes["db.system.name"] == "redis"
        assert s.attributes["db.operation.name"] == s.name.split()[1]
    assert [s.attributes["flowmap.keys.count"] for s in spans[:6]] == [1, 1, 1, 1, 1, 2]
    assert [s.attributes["flowmap.keys.outside"] for s in spans[:6]] == [0, 1, 0, 1, 0, 1]
    assert_no_raw(traced.spans(), ACME.tenant_id, GLOBEX.tenant_id, "events")
    p.close()


def test_strict_mode_refuses_a_subscription_before_it_reaches_the_server(client, traced, port):
    RedisInstrumentor().instrument(strict=True)
    other = f"t:{traced.tag(GLOBEX.tenant_id)}:events"
    p = client.pubsub()
    with bind(ACME):
        with pytest.raises(UnscopedOperationError):
            p.subscribe(other)
        with pytest.raises(UnscopedOperationError):
            p.psubscribe("t:*")
        with pytest.raises(UnscopedOperationError):
            p.ssubscribe(other)
        p.subscribe(tenant_key("events"))
    assert _subscribers(port, other) == 0
    assert int(_raw(port, "PUBSUB", "NUMPAT")) == 0
    assert set(p.channels) == {tenant_key_of(traced, ACME, "events")} and not p.patterns
    assert _verdicts(traced) == [
        ("redis SUBSCRIBE", False),
        ("redis PSUBSCRIBE", False),
        ("redis SSUBSCRIBE", False),
        ("redis SUBSCRIBE", True),
    ]
    p.close()


def tenant_key_of(traced, ctx: RequestContext, key: str) -> str:
    return f"t:{traced.tag(ctx.tenant_id)}:{key}"


def test_a_pattern_is_scoped_only_if_it_cannot_match_outside_the_namespace(client, traced):
    RedisInstrumentor().instrument(namespace=lambda ctx: f"ev[{ctx.tag()[:6]}]*:")
    p = client.pubsub()
    with bind(ACME):
        prefix = tenant_key("")
        p.psubscribe(prefix + "x")  # '[', ']' and '*' unescaped: matches other channels
        escaped = prefix.replace("[", "\\[").replace("]", "\\]").replace("*", "\\*")
        p.psubscribe(escaped + "*")
        p.subscribe(prefix + "x")  # a channel name is no pattern: the prefix as written
    assert [v for _n, v in _verdicts(traced)] == [False, True, True]
    p.close()


def test_unsubscribing_is_judged_by_the_names_given(client, traced):
    RedisInstrumentor().instrument(strict=True)
    p = client.pubsub()
    with bind(ACME):
        p.subscribe(tenant_key("a"))
        p.psubscribe(tenant_key("b:*"))
        p.unsubscribe(tenant_key("a"))
        p.punsubscribe(tenant_key("b:*"))
        with pytest.raises(UnscopedOperationError):
            p.unsubscribe(tenant_key_of(traced, GLOBEX, "a"))  # another tenant's channel
    assert tenant_key_of(traced, ACME, "a") in p.channels  # until the server confirms
    with bind(GLOBEX):
        with pytest.raises(UnscopedOperationError):  # being left: subscribing anew is judged
            p.subscribe(tenant_key_of(traced, ACME, "a"))
    p.unsubscribe()  # every subscription of this connection: no tenant's data, no span
    p.punsubscribe()
    assert _verdicts(traced) == [
        ("redis SUBSCRIBE", True),
        ("redis PSUBSCRIBE", True),
        ("redis UNSUBSCRIBE", True),
        ("redis PUNSUBSCRIBE", True),
        ("redis UNSUBSCRIBE", False),
        ("redis SUBSCRIBE", False),
    ]
    p.close()


def test_a_listener_for_every_tenant_subscribes_outside_any_request_through_shared_keys(
    client, traced, port
):
    RedisInstrumentor().instrument()
    p = client.pubsub()
    with pytest.raises(MissingContextError):  # unbound, not shared: fails closed
        p.subscribe("events")
    with pytest.raises(MissingContextError):
        p.psubscribe("t:*:events")
    assert _verdicts(traced) == [("redis SUBSCRIBE", False), ("redis PSUBSCRIBE", False)]
    traced.exporter.clear()
    RedisInstrumentor().uninstrument()
    # fnmatch's [*] is a literal '*': it shares the listener's pattern and no tenant's channel
    RedisInstrumentor().instrument(shared_keys=[*DEFAULT_SHARED_KEYS, "events", "t:[*]:events"])
    p.subscribe("events")
    p.psubscribe("t:*:events")
    assert traced.spans("cache") == []
    assert _subscribers(port, "events") == 1 and int(_raw(port, "PUBSUB", "NUMPAT")) == 1
    q = client.pubsub()  # a request's own
    with bind(ACME):
        q.subscribe("events")  # a shared channel: no boundary in a request either
        q.subscribe(tenant_key_of(traced, GLOBEX, "events"))  # still judged
        q.psubscribe("t:*:events")  # a pattern in a request reaches every tenant: judged
    assert _verdicts(traced) == [("redis SUBSCRIBE", False), ("redis PSUBSCRIBE", False)]
    p.close()
    q.close()


def test_run_in_thread_listener_resubscribes_after_a_reconnect(client, traced, port):
    """redis-py re-sends a PubSub's subscriptions from the thread that notices a dropped
    connection (the listener's, no tenant bound): judged when made, they are not judged
    again, and the listener lives on."""
    RedisInstrumentor().instrument(strict=True, shared_keys=[*DEFAULT_SHARED_KEYS, "events"])
    got: list[str] = []
    errors: list[BaseException] = []
    p = client.pubsub()
    p.subscribe(events=lambda m: got.append(m["data"]))  # at start-up, for every tenant
    with bind(ACME):
        own = tenant_key("events")
        p.subscribe(**{own: lambda m: got.append(m["data"])})  # made in a request
        p.psubscribe(**{tenant_key("jobs:*"): lambda m: got.append(m["data"])})

    def on_error(exc, pubsub, thread) -> None:
        errors.append(exc)
        thread.stop()

    thread = p.run_in_thread(sleep_time=0.05, daemon=True, exception_handler=on_error)
    try:
        def publish_all(n: int) -> None:
            _raw(port, "PUBLISH", "events", f"all-{n}")
            _raw(port, "PUBLISH", own, f"acme-{n}")
            _raw(port, "PUBLISH", tenant_key_of(traced, ACME, "jobs:1"), f"job-{n}")

        def received(n: int) -> bool:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and len(got) < n and not errors:
                time.sleep(0.05)
            return len(got) >= n

        time.sleep(0.2)
        publish_all(1)
        assert received(3), (got, errors)
        assert _raw(port, "CLIENT", "KILL", "TYPE", "pubsub") >= 1
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not errors and (
            _subscribers(port, own) == 0 or int(_raw(port, "PUBSUB", "NUMPAT")) == 0
        ):
            time.sleep(0.05)
        publish_all(2)
        assert received(6), (got, errors)
    finally:
        thread.stop()
        thread.join(5)
    assert errors == [] and sorted(got) == sorted(["all-1", "acme-1", "job-1", "all-2", "acme-2", "job-2"])
    assert _verdicts(traced) == [("redis SUBSCRIBE", True), ("redis PSUBSCRIBE", True)]
    p.close()


def test_asyncio_pubsub(port, traced):
    RedisInstrumentor().instrument(strict=True)
    other = tenant_key_of(traced, GLOBEX, "events")

    async def main() -> None:
        r = redis.asyncio.Redis(host="127.0.0.1", port=port)
        p = r.pubsub()
        try:
            async with bind(ACME):
                await p.subscribe(tenant_key("events"))
                with pytest.raises(UnscopedOperationError):
                    await p.subscribe(other)
                with pytest.raises(UnscopedOperationError):
                    await p.psubscribe("*")
                await p.psubscribe(tenant_key("jobs:*"))
                await p.unsubscribe(tenant_key("events"))
            with pytest.raises(MissingContextError):
                await p.subscribe("events")
            await p.unsubscribe()  # no tenant's data: never refused
        finally:
            await p.aclose()
            await r.aclose()

    try:
        asyncio.run(main())
    finally:
        RedisInstrumentor().uninstrument()
    assert _subscribers(port, other) == 0
    assert _verdicts(traced) == [
        ("redis SUBSCRIBE", True),
        ("redis SUBSCRIBE", False),
        ("redis PSUBSCRIBE", False),
        ("redis PSUBSCRIBE", True),
        ("redis UNSUBSCRIBE", True),
        ("redis SUBSCRIBE", False),
    ]


def test_instrument_is_idempotent_and_uninstrument_restores_pubsub(client, traced):
    originals = {
        cls: vars(cls)["execute_command"] for cls in (redis.client.PubSub, redis.asyncio.client.PubSub)
    }
    inst = RedisInstrumentor()
    inst.instrument()
    inst.instrument()  # a no-op, not a second wrapper
    p = client.pubsub()
    with bind(ACME):
        p.subscribe(tenant_key("x"))
    assert len(traced.spans("cache")) == 1
    inst.uninstrument()
    for cls, original in originals.items():
        assert vars(cls)["execute_command"] is original
    p.subscribe("unbound")  # no guard left: no MissingContextError, no span
    assert len(traced.spans("cache")) == 1
    p.close()
