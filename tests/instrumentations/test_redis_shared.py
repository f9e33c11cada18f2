"""Shared (infrastructure) keys: Redis traffic of other libraries is no tenant boundary.

A Celery worker with a Redis broker moves tasks through keys no tenant owns (queues,
kombu's binding tables, the unacked hash and its mutex, result keys). Judged as tenant
data, they failed closed: the worker died at start (kombu's ``restore_visible`` lock ran
with no tenant bound), ``result.get()`` raised, and a publish made for a tenant was
reported as unscoped queries. Commands whose keys are all shared keys now run unjudged
and make no span; everything else is judged as before.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("redis")
import redis  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from flowmap import attributes as A  # noqa: E402
from flowmap.context import RequestContext, bind  # noqa: E402
from flowmap.errors import ConfigError, MissingContextError, UnscopedOperationError  # noqa: E402
from flowmap_instrumentation_redis import (  # noqa: E402
    DEFAULT_SHARED_KEYS,
    SHARED_KEYS_ENV,
    RedisInstrumentor,
    tenant_key,
)


ACME = RequestContext("acme-corp-7731")


@pytest.fixture(autouse=True)
def _no_shared_keys_from_the_environment(monkeypatch):
    monkeypatch.delenv(SHARED_KEYS_ENV, raising=False)


def test_commands_on_shared_keys_are_no_boundary(client, traced):
    """Unbound and in strict mode, kombu's and Celery's keys run, with no span."""
    RedisInstrumentor().instrument(strict=True)
    client.lpush("celery", "task")  # no tenant bound: ran before the fix? MissingContextError
    client.llen("celery\x06\x163")
    client.sadd("_kombu.binding.celery", "celery\x06\x16\x06\x16celery")
    with client.pipeline() as p:  # kombu's ack: one pipeline over the unacked hash and index
        p.zadd("unacked_index", {"tag": 1}).hset("unacked", "tag", "m").execute()
    assert client.set("unacked_mutex", "tok", nx=True, px=1000)
    # redis-py's Lock releases by a script whose declared key is the mutex
    client.eval("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end",
                1, "unacked_mutex", "tok")
    client.setex("celery-task-meta-1f2e", 60, "{}")
    client.publish("/1.celeryev/worker.heartbeat", "{}")
    with bind(ACME):
        client.lpush("celery", "task")  # a tenant's publish: still not a tenant boundary
        assert client.get("celery-task-meta-1f2e") == "{}"
    assert [s for s in traced.spans() if A.BOUNDARY in (s.attributes or {})] == []


def test_everything_else_is_still_judged(client, traced):
    RedisInstrumentor().instrument(strict=True)
    with pytest.raises(MissingContextError):
        client.get("config:feature-flags")  # not a shared key: fails closed unbound
    with bind(ACME):
        with pytest.raises(UnscopedOperationError):  # one key outside the shared ones
            client.mget("celery-task-meta-1", "session:1")
        with pytest.raises(UnscopedOperationError):  # a pattern may reach any key
            client.keys("celery-task-meta-*")
        with pytest.raises(UnscopedOperationError):  # a script that declares no key
            client.eval("return redis.call('get', 'celery')", 0)
        with pytest.raises(UnscopedOperationError):  # nor one declaring only a shared key,
            # within a tenant's request: it may touch any key (unbound, kombu's locks run)
            client.eval("return redis.call('get', 't:other:secret')", 1, "celery")
        with pytest.raises(UnscopedOperationError):  # a shared key inside a pipeline
            with client.pipeline() as p:  # does not excuse the other commands
                p.lpush("celery", "x").get("session:1").execute()
        with client.pipeline() as p:
            p.lpush("celery", "x").set(tenant_key("s"), "1").execute()
    verdicts = [(s.name, s.attributes[A.SCOPED]) for s in traced.spans("cache")]
    assert verdicts == [
        ("redis GET", False),
        ("redis MGET", False),
        ("redis KEYS", False),
        ("redis EVAL", False),
        ("redis EVAL", False),
        ("redis PIPELINE", False),
        ("redis PIPELINE", True),
    ]
    # the pipeline is judged on its tenant commands: the shared one is not counted
    assert traced.spans("cache")[-1].attributes["flowmap.keys.count"] == 1


def test_shared_keys_option_and_environment(client, traced, monkeypatch):
    monkeypatch.setenv(SHARED_KEYS_ENV, " jobs:* , locks:?")
    RedisInstrumentor().instrument(strict=True, shared_keys=["feature-flags"])
    client.get("feature-flags")
    client.rpush("jobs:email", "x")
    client.set("locks:a", "1")
    with pytest.raises(MissingContextError):  # the option replaced the defaults
        client.lpush("celery", "x")
    with pytest.raises(MissingContextError):
        client.set("locks:ab", "1")  # '?' is one character
    RedisInstrumentor().uninstrument()
    RedisInstrumentor().instrument(strict=True)  # defaults, and the environment's
    client.lpush("celery", "x")
    client.rpush("jobs:email", "x")
    with pytest.raises(MissingContextError):
        client.get("feature-flags")
    RedisInstrumentor().uninstrument()
    RedisInstrumentor().instrument(shared_keys=[*DEFAULT_SHARED_KEYS, b"bin:\xff*"])
    client.set(b"bin:\xff\x00", "1")  # byte patterns and keys
    assert [s.name for s in traced.spans("cache")] == ["redis LPUSH", "redis SET", "redis GET"]


def test_a_lone_string_is_refused(client):
    # iterated letter by letter it would contain '*', which matches every key
    with pytest.raises(ConfigError):
        RedisInstrumentor().instrument(shared_keys="celery*")
    assert not RedisInstrumentor().is_instrumented_by_opentelemetry


def test_kombu_redis_transport_runs_unbound_and_in_strict_mode(port, traced, monkeypatch):
    """kombu's real Redis transport (queue, bindings, ack emulation, the unacked mutex at
    close) under strict mode: no refusal, no boundary span, bound or not."""
    kombu = pytest.importorskip("kombu")
    monkeypatch.delenv(SHARED_KEYS_ENV, raising=False)
    RedisInstrumentor().instrument(strict=True)
    try:
        with kombu.Connection(f"redis://127.0.0.1:{port}/3") as conn:
            queue = conn.SimpleQueue("celery")
            with bind(ACME):
                queue.put({"task": "t.add"})
            message = queue.get(timeout=5)
            assert message.payload == {"task": "t.add"}
            message.ack()
            queue.put({"task": "t.requeued"})
            queue.get(timeout=5)  # left unacked: restored to the queue when the channel closes
            queue.close()
    finally:
        RedisInstrumentor().uninstrument()
    assert [s for s in traced.spans() if A.BOUNDARY in (s.attributes or {})] == []
    assert redis.Redis(port=port, db=3).llen("celery") == 1  # the unacked one, restored


# -- a real Celery worker with a Redis broker and result backend, under opentelemetry-instrument


TASKS = """
import os
import celery
import flowmap

flowmap.configure(service_name=os.environ["ROLE"], out=os.environ["TRACES"])
app = celery.Celery("shared-keys", broker=os.environ["BROKER"], backend=os.environ["BACKEND"])


@app.task(name="t.add")
def add(x, y):
    return x + y
"""

PUBLISH = """
import flowmap
import tasks

with flowmap.bind(flowmap.RequestContext("acme-corp-7731")):
    result = tasks.add.delay(2, 3)
print("result", result.get(timeout=30))  # unbound, as an operator's script would
"""


def _findings(path: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "flowmap", "check", "--format", "json", str(path)],
                         capture_output=True, text=True, timeout=60, check=False)
    return json.loads(out.stdout)


def test_celery_worker_with_a_redis_broker_under_opentelemetry_instrument(port, tmp_path):
    """The audit's case: flowmap_redis auto-loaded in a Celery worker and its publisher."""
    pytest.importorskip("celery")
    (tmp_path / "tasks.py").write_text(textwrap.dedent(TASKS))
    (tmp_path / "publish.py").write_text(textwrap.dedent(PUBLISH))
    bindir = Path(sys.executable).parent
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "FLOWMAP_"))},
        "PYTHONPATH": str(tmp_path),
        "FLOWMAP_TENANT_KEY": "shared-keys-test-key",
        "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none",
        "BROKER": f"redis://127.0.0.1:{port}/5", "BACKEND": f"redis://127.0.0.1:{port}/6",
        # contrib's redis instrumentation (installed for another test) is not under test:
        # its spans of the broker's traffic carry no key the analyzer could tell apart
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "redis",
    }
    worker = subprocess.Popen(
        [str(bindir / "opentelemetry-instrument"), str(bindir / "celery"), "-A", "tasks", "worker",
         "-P", "solo", "--loglevel=WARNING", "--without-gossip", "--without-mingle"],
        cwd=tmp_path, env={**env, "ROLE": "worker", "TRACES": str(tmp_path / "worker.jsonl")},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        time.sleep(3)
        assert worker.poll() is None, worker.communicate()[0][-3000:]  # it died at start
        out = subprocess.run(
            [str(bindir / "opentelemetry-instrument"), sys.executable, "publish.py"],
            cwd=tmp_path, env={**env, "ROLE": "web", "TRACES": str(tmp_path / "web.jsonl")},
            capture_output=True, text=True, timeout=90, check=False,
        )
        assert out.returncode == 0, out.stdout + out.stderr[-3000:]
        assert "result 5" in out.stdout  # the worker processed it; get() ran unbound
        assert worker.poll() is None
    finally:
        worker.send_signal(signal.SIGTERM)  # a warm shutdown: flushes its trace file
        try:
            log = worker.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            worker.kill()
            log = worker.communicate()[0]
    assert "MissingContextError" not in log, log[-3000:]
    web, worker_doc = _findings(tmp_path / "web.jsonl"), _findings(tmp_path / "worker.jsonl")
    for doc in (web, worker_doc):
        assert [f for f in doc["findings"] if f["rule"] == "unscoped-query"] == []
        assert [f for f in doc["findings"] if f["boundary"] == "cache"] == []
    assert web["summary"]["spans"] >= 1 and worker_doc["summary"]["spans"] >= 1
    spans = [s for line in (tmp_path / "worker.jsonl").read_text().splitlines()
             for rs in json.loads(line)["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert any(s["name"] == "run/t.add" for s in spans)  # the contrib Celery span of the task


def test_provider_kwarg_reaches_the_spans_of_judged_commands(client):
    """(Only judged commands make spans, on the provider given to instrument().)"""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    RedisInstrumentor().instrument(tracer_provider=provider)
    with bind(ACME):
        client.lpush("celery", "x")
        client.set(tenant_key("k"), "v")
    assert [s.name for s in exporter.get_finished_spans()] == ["redis SET"]
