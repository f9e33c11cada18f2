"""Third-party traces through a task queue: a real Celery task published and run by a
real worker (in-memory broker), traced by the contrib Celery instrumentation; flowmap
adds only its processor and exporter.

Celery's spans carry ``celery.action`` and ``messaging.message.id`` but no
``messaging.system``: the analyzer still infers ``queue.publish``/``queue.consume``, so a
worker that runs a tenant's task without its tenant fails ``flowmap check`` (high).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

celery = pytest.importorskip("celery")
pytest.importorskip("opentelemetry.instrumentation.celery")

from celery.contrib.testing.worker import start_worker  # noqa: E402
from opentelemetry import baggage, context  # noqa: E402
from opentelemetry.instrumentation.celery import CeleryInstrumentor  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402

import flowmap  # noqa: E402
from flowmap.exporter import JsonLinesSpanExporter  # noqa: E402
from flowmap.processors import FlowmapSpanProcessor  # noqa: E402
from flowmap.tagging import Tagger  # noqa: E402

KEY = "celery-test-key"
ACME = "acme-corp-7731"

app = celery.Celery("flowmap-test", broker="memory://", backend="cache+memory://")
_providers: list[TracerProvider] = []  # the current test's


@app.task(name="tasks.summarize")
def summarize(doc_id: str) -> str:
    with _providers[-1].get_tracer("worker").start_as_current_span("load document"):
        return f"summary of {doc_id}"


def _summarize_in_worker(tmp_path, send_tag: bool):
    """web (tenant bound) publishes a task; the worker runs it without binding a tenant."""
    path = tmp_path / "traces.jsonl"
    provider = TracerProvider(resource=Resource.create({"service.name": "summaries"}))
    provider.add_span_processor(FlowmapSpanProcessor(Tagger(KEY)))
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    instrumentor = CeleryInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    _providers.append(provider)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, loglevel="ERROR"):
            with flowmap.bind(flowmap.RequestContext(ACME)):
                entry = provider.get_tracer("web").start_as_current_span(
                    "POST /summaries", kind=SpanKind.SERVER, attributes={"http.request.method": "POST"})
                with entry:
                    # the opaque tag travels in the task's headers only when baggage carries it
                    ctx = baggage.set_baggage("flowmap.tenant", Tagger(KEY).tag(ACME)) if send_tag else None
                    token = context.attach(ctx) if ctx is not None else None
                    try:
                        result = summarize.delay("doc-1")
                    finally:
                        if token is not None:
                            context.detach(token)
            assert result.get(timeout=30) == "summary of doc-1"
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    out = subprocess.run([sys.executable, "-m", "flowmap", "check", "--format", "json", str(path)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert ACME not in out.stdout + out.stderr
    return out, json.loads(out.stdout)


def test_celery_worker_that_drops_the_tenant_fails_check(tmp_path):
    out, doc = _summarize_in_worker(tmp_path, send_tag=False)
    assert out.returncode == 1, out.stderr
    assert doc["summary"]["spans"] == 4  # entry, apply_async, run, the task's own span
    (f,) = doc["findings"]
    assert (f["rule"], f["severity"], f["boundary"]) == ("context-dropped", "high", "queue.consume")
    assert (f["span_name"], f["parent_name"]) == ("run/tasks.summarize", "apply_async/tasks.summarize")


def test_celery_worker_tagged_from_the_task_headers_passes(tmp_path):
    out, doc = _summarize_in_worker(tmp_path, send_tag=True)
    assert out.returncode == 0, out.stderr
    assert doc["summary"]["spans"] == 4 and doc["findings"] == []
