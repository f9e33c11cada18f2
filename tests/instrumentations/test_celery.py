"""Third-party traces through a task queue: a real Celery task published and run by a
real worker (in-memory broker), traced by the contrib Celery instrumentation, with and
without flowmap's own Celery instrumentation.

Celery's spans carry ``celery.action`` and ``messaging.message.id`` but no
``messaging.system``: the analyzer still infers ``queue.publish``/``queue.consume``, so a
worker that runs a tenant's task without its tenant fails ``flowmap check`` (high).
``CeleryTenantInstrumentor`` carries the opaque tag with the task, past flowmap's
guarded baggage propagator, and binds it in the worker.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys

import pytest

celery = pytest.importorskip("celery")
pytest.importorskip("opentelemetry.instrumentation.celery")

from celery.contrib.testing.worker import start_worker  # noqa: E402
from opentelemetry.instrumentation.celery import CeleryInstrumentor  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402

import flowmap  # noqa: E402
from flowmap import runtime  # noqa: E402
from flowmap.context import current_tag  # noqa: E402
from flowmap.exporter import JsonLinesSpanExporter  # noqa: E402
from flowmap.outbound import guard_global_baggage, unguard_global_baggage  # noqa: E402
from flowmap.processors import FlowmapSpanProcessor  # noqa: E402
from flowmap.tagging import Tagger  # noqa: E402
from flowmap_instrumentation_celery import HEADER, CeleryTenantInstrumentor  # noqa: E402

KEY = "celery-test-key"
ACME = "acme-corp-7731"
TAG = Tagger(KEY).tag(ACME)

app = celery.Celery("flowmap-test", broker="memory://", backend="cache+memory://")
_providers: list[TracerProvider] = []  # the current test's
_seen: list[str | None] = []  # the tag bound inside each task run


@app.task(name="tasks.summarize")
def summarize(doc_id: str) -> str:
    _seen.append(current_tag())
    with _providers[-1].get_tracer("worker").start_as_current_span("load document"):
        return f"summary of {doc_id}"


@pytest.fixture(autouse=True)
def _tagger():
    """The process's tagger, as flowmap.configure() sets it (bound tenants get tags)."""
    old = runtime.tagger_or_none()
    runtime.set_tagger(Tagger(KEY))
    yield
    runtime.set_tagger(old)


@app.task(name="tasks.fail")
def fail() -> None:
    _seen.append(current_tag())
    raise ValueError("the task failed")


@app.task(name="tasks.peek")
def peek() -> None:
    _seen.append(current_tag())


def _summarize_in_worker(tmp_path, *, flowmap_first=None, bound=True, links=False):
    """web publishes a task (a tenant bound unless not ``bound``); a worker runs it.
    ``flowmap_first``: None without flowmap's Celery instrumentation, else whether it is
    instrumented before the contrib one; ``links``: the contrib's ``use_span_links``
    (the run span a root linked to the publish span, not its child)."""
    path = tmp_path / "traces.jsonl"
    provider = TracerProvider(resource=Resource.create({"service.name": "summaries"}))
    provider.add_span_processor(FlowmapSpanProcessor(Tagger(KEY)))
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    contrib, ours = CeleryInstrumentor(), CeleryTenantInstrumentor()
    steps = [lambda: contrib.instrument(tracer_provider=provider, use_span_links=links)]
    if flowmap_first is not None:
        steps.insert(0 if flowmap_first else 1, ours.instrument)
    for step in steps:
        step()
    _providers.append(provider)
    _seen.clear()
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, loglevel="ERROR"):
            with flowmap.bind(flowmap.RequestContext(ACME)) if bound else contextlib.nullcontext():
                entry = provider.get_tracer("web").start_as_current_span(
                    "POST /summaries", kind=SpanKind.SERVER, attributes={"http.request.method": "POST"})
                with entry:
                    result = summarize.delay("doc-1")
            assert result.get(timeout=30) == "summary of doc-1"
    finally:
        if flowmap_first is not None:
            ours.uninstrument()
        contrib.uninstrument()
        provider.shutdown()
    out = subprocess.run([sys.executable, "-m", "flowmap", "check", "--format", "json", str(path)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert ACME not in out.stdout + out.stderr + path.read_text()
    return out, json.loads(out.stdout)


@pytest.fixture
def guarded():
    """The global baggage propagator as flowmap.configure() leaves it: it never injects
    the tenant tag into a carrier flowmap did not check (a task's headers included)."""
    guard_global_baggage()
    yield
    unguard_global_baggage()


def test_celery_worker_that_drops_the_tenant_fails_check(tmp_path, guarded):
    out, doc = _summarize_in_worker(tmp_path)
    assert out.returncode == 1, out.stderr
    assert doc["summary"]["spans"] == 4  # entry, apply_async, run, the task's own span
    (f,) = doc["findings"]
    assert (f["rule"], f["severity"], f["boundary"]) == ("context-dropped", "high", "queue.consume")
    assert (f["span_name"], f["parent_name"]) == ("run/tasks.summarize", "apply_async/tasks.summarize")
    assert _seen == [None]


@pytest.mark.parametrize("flowmap_first", [True, False], ids=["flowmap-first", "contrib-first"])
def test_flowmap_celery_instrumentation_carries_the_tag_past_the_baggage_guard(tmp_path, guarded, flowmap_first):
    out, doc = _summarize_in_worker(tmp_path, flowmap_first=flowmap_first)
    assert out.returncode == 0, out.stderr
    assert doc["summary"]["spans"] == 4 and doc["findings"] == []
    assert _seen == [TAG]  # bound while the task ran (as evidence: current() still raises)
    spans = [s for line in (tmp_path / "traces.jsonl").read_text().splitlines()
             for rs in json.loads(line)["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    run = next(s for s in spans if s["name"] == "run/tasks.summarize")
    attrs = {a["key"]: a["value"]["stringValue"] for a in run["attributes"] if "stringValue" in a["value"]}
    assert (attrs["flowmap.tenant"], attrs["flowmap.tenant.source"]) == (TAG, "baggage")


def test_without_the_guard_the_contrib_baggage_carries_the_tag(tmp_path):
    # an application that kept OpenTelemetry's plain baggage propagator
    out, doc = _summarize_in_worker(tmp_path)
    assert out.returncode == 0, out.stderr
    assert doc["summary"]["spans"] == 4 and doc["findings"] == []


def test_a_task_published_for_no_tenant_is_the_entrys_finding(tmp_path, guarded):
    # nothing bound at publish: no tag to carry, and the request itself is unscoped
    out, doc = _summarize_in_worker(tmp_path, flowmap_first=True, bound=False)
    assert out.returncode == 1 and [f["rule"] for f in doc["findings"]] == ["unscoped-entry"]
    assert _seen == [None]


@pytest.mark.parametrize("flowmap_first", [True, False], ids=["flowmap-first", "contrib-first"])
def test_a_task_run_linked_to_its_publish_keeps_the_tenant_with_flowmaps_instrumentation(tmp_path, guarded,
                                                                                        flowmap_first):
    """``use_span_links=True``: the worker's CONSUMER run span starts a trace of its own
    and links to the PRODUCER apply_async span, a producer -> consumer link judged as a
    parent edge is: flowmap's instrumentation binds the tag, nothing is lost."""
    out, doc = _summarize_in_worker(tmp_path, flowmap_first=flowmap_first, links=True)
    assert out.returncode == 0, out.stderr
    assert doc["summary"]["traces"] == 2 and doc["findings"] == []
    assert _seen == [TAG]


@pytest.mark.parametrize("guard", [True, False], ids=["guarded", "plain-baggage"])
def test_a_task_run_linked_to_its_publish_without_its_tenant_fails_check(tmp_path, guard):
    """Without flowmap's instrumentation the run span lost the tenant through its link
    (context-dropped, high at the inferred queue.consume). With links the contrib
    instrumentation does not attach the task's extracted context, so not even a plain
    baggage propagator carries the tag to the task (without links it does)."""
    if guard:
        guard_global_baggage()
    try:
        out, doc = _summarize_in_worker(tmp_path, links=True)
    finally:
        if guard:
            unguard_global_baggage()
    assert out.returncode == 1, out.stderr
    (f,) = doc["findings"]
    assert (f["rule"], f["severity"], f["boundary"]) == ("context-dropped", "high", "queue.consume")
    assert (f["span_name"], f["parent_name"]) == ("run/tasks.summarize", "apply_async/tasks.summarize")
    assert f["parent_trace_id"] != f["trace_id"]
    assert _seen == [None]


def test_a_task_published_without_a_tenant_carries_no_header(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="flowmap.instrumentation.celery")
    headers: dict = {}
    from flowmap_instrumentation_celery._instrumentor import _before_publish

    _before_publish(headers=headers)
    assert HEADER not in headers and not caplog.records
    with flowmap.bind(flowmap.RequestContext(ACME)):
        _before_publish(headers=headers)
    assert headers[HEADER] == TAG


@pytest.mark.parametrize("flowmap_first", [True, False], ids=["flowmap-first", "contrib-first"])
def test_a_worker_never_runs_a_task_under_the_previous_tasks_tenant(tmp_path, guarded, flowmap_first):
    # a stale worker: neither the tag bound for one task (even one that failed) nor its
    # OpenTelemetry context is left for the next task on the same thread
    path = tmp_path / "traces.jsonl"
    provider = TracerProvider(resource=Resource.create({"service.name": "worker"}))
    provider.add_span_processor(FlowmapSpanProcessor(Tagger(KEY)))
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    contrib, ours = CeleryInstrumentor(), CeleryTenantInstrumentor()
    steps = [lambda: contrib.instrument(tracer_provider=provider), ours.instrument]
    for step in (steps[::-1] if flowmap_first else steps):
        step()
    untraced = {"on": False}

    def like_a_publisher_without_opentelemetry(headers=None, **_):  # e.g. celery beat
        if untraced["on"] and headers is not None:
            headers.pop("traceparent", None)
            headers.pop("tracestate", None)

    celery.signals.before_task_publish.connect(like_a_publisher_without_opentelemetry, weak=False)
    _seen.clear()
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, loglevel="CRITICAL"):
            with flowmap.bind(flowmap.RequestContext(ACME)):
                failed = fail.delay()
            with pytest.raises(ValueError):
                failed.get(timeout=30)
            untraced["on"] = True
            peek.delay().get(timeout=30)  # no tenant, no trace context
            untraced["on"] = False
            with flowmap.bind(flowmap.RequestContext("globex-12")):
                peek.delay().get(timeout=30)
    finally:
        celery.signals.before_task_publish.disconnect(like_a_publisher_without_opentelemetry)
        ours.uninstrument()
        contrib.uninstrument()
        provider.shutdown()
    assert _seen == [TAG, None, Tagger(KEY).tag("globex-12")]
    spans = [s for line in path.read_text().splitlines()
             for rs in json.loads(line)["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    runs = [s for s in spans if s["name"].startswith("run/")]
    tenants = [{a["key"]: a["value"].get("stringValue") for a in s.get("attributes", [])}.get("flowmap.tenant")
               for s in runs]
    assert tenants == [TAG, None, Tagger(KEY).tag("globex-12")]
    assert not runs[1].get("parentSpanId") and runs[1]["traceId"] != runs[0]["traceId"]
