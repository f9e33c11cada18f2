"""Many tenants at once through asyncio, a shared reused thread pool, threads and a queue.

Every span must carry the tag of its own request's tenant wherever the helpers are used;
a task handed to the pool without the helper must show up untagged (never with the
previous task's tenant); and the exported file must contain no raw tenant id.
"""

import asyncio
import concurrent.futures
import json
import threading

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flowmap import propagation as P
from flowmap import runtime
from flowmap.attributes import TENANT, TENANT_SOURCE
from flowmap.boundaries import boundary
from flowmap.configure import configure
from flowmap.context import RequestContext, bind, current
from flowmap.errors import MissingContextError
from flowmap.tagging import tag_for

TENANTS = [f"tenant-raw-{i:03d}-qx" for i in range(60)]
REQUESTS_PER_TENANT = 2
KEY = "test-key"


@pytest.fixture
def file_runtime(tmp_path):
    out = tmp_path / "traces.jsonl"
    mem = InMemorySpanExporter()
    rt = configure(
        tenant_key=KEY, service_name="conc", out=out, exporters=["jsonl"],
        instrument_httpx=False, set_global=False,
    )
    rt.tracer_provider.add_span_processor(SimpleSpanProcessor(mem))
    yield rt, mem, out
    rt.shutdown()
    runtime.set_tagger(None)
    runtime.set_runtime(None)


async def test_every_span_carries_its_own_requests_tenant(file_runtime):
    rt, mem, out = file_runtime
    tracer = rt.tracer_provider.get_tracer("test")
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=3)  # few workers, heavily reused
    ctx_pool = P.ContextExecutor(pool)
    history: dict[int, list[str]] = {}  # worker thread -> what it ran, in order
    hist_lock = threading.Lock()
    queue: asyncio.Queue = asyncio.Queue()
    request_tenant: dict[str, str] = {}

    def note(kind):
        with hist_lock:
            history.setdefault(threading.get_ident(), []).append(kind)

    def tool(path, rid):
        with boundary("tool", f"tool {path}", attributes={"test.request": rid}) as span:
            note("bound")
            # app code putting the raw id into telemetry: must be redacted on export
            span.set_attribute("app.note", f"working for {current().tenant_id}")
        return path

    def dropped(rid):
        # no helper: runs in whatever context the worker thread has
        note("dropped")
        with tracer.start_as_current_span("dropped", attributes={"test.request": rid}):
            pass

    async def consumer():
        while True:
            item = await queue.get()
            if item is None:
                return
            rid, headers = item
            with P.consume(headers, "jobs", attributes={"test.request": rid}):
                await asyncio.sleep(0)

    async def request(tid, rid):
        request_tenant[rid] = tid
        async with bind(RequestContext(tid, request_id=rid)):
            async with boundary("http.server", "POST /chat", attributes={"test.request": rid}):

                async def llm():
                    async with boundary("llm", "llm", attributes={"test.request": rid}):
                        await asyncio.sleep(0)

                await asyncio.gather(llm(), llm())
                await P.run_in_executor(None, pool, tool, "run_in_executor", rid)
                await asyncio.wrap_future(ctx_pool.submit(tool, "context_executor", rid))
                await asyncio.wrap_future(P.submit(pool, tool, "submit", rid))
                t = P.start_thread(tool, "thread", rid)
                await asyncio.to_thread(t.join)
                with P.publish("jobs", attributes={"test.request": rid}) as headers:
                    headers["x-rid"] = rid
                await queue.put((rid, dict(headers)))
                # the deliberate drop: a plain submit to the shared, reused pool
                await asyncio.wrap_future(pool.submit(dropped, rid))

    consumer_task = asyncio.create_task(consumer())  # started with nothing bound
    await asyncio.gather(
        *(request(tid, f"r{i}-{n}") for i, tid in enumerate(TENANTS) for n in range(REQUESTS_PER_TENANT))
    )
    await queue.put(None)
    await consumer_task
    pool.shutdown()
    assert rt.force_flush()

    spans = mem.get_finished_spans()
    n_requests = len(TENANTS) * REQUESTS_PER_TENANT
    # server + 2 llm + 4 tool + producer + consumer + dropped per request
    assert len(spans) == n_requests * 10
    dropped_spans = [s for s in spans if s.name == "dropped"]
    assert len(dropped_spans) == n_requests
    for s in spans:
        rid = s.attributes["test.request"]
        if s.name == "dropped":
            # visible as untagged; never the stale tenant of a previous task on that worker
            assert TENANT not in s.attributes
            continue
        assert s.attributes.get(TENANT) == tag_for(KEY, request_tenant[rid]), (s.name, rid)
        expected_source = "baggage" if s.name == "jobs" and s.kind.name == "CONSUMER" else "context"
        assert s.attributes[TENANT_SOURCE] == expected_source

    # the dropped tasks ran on reused workers that had earlier run bound (helper) tasks:
    # those untagged spans prove no stale tenant was carried over
    after_bound = 0
    for kinds in history.values():
        for i, kind in enumerate(kinds):
            if kind == "dropped" and "bound" in kinds[:i]:
                after_bound += 1
    assert after_bound >= n_requests - 3  # at worst each worker's first task was a drop

    # grep: no raw tenant id anywhere in what was exported (memory and file)
    exported = "\n".join(s.to_json() for s in spans)
    data = out.read_text(encoding="utf-8")
    assert data.count("\n") >= 1
    for tid in TENANTS:
        assert tid not in exported
        assert tid not in data
    file_spans = [
        span
        for line in data.splitlines()
        for rs in json.loads(line)["resourceSpans"]
        for ss in rs["scopeSpans"]
        for span in ss["spans"]
    ]
    assert len(file_spans) == len(spans)


def _otel_context_only(fn):
    """``fn`` carried into a pool as the contrib threading instrumentation carries it:
    OpenTelemetry's context (span and baggage) captured at submit, flowmap's binding (a
    contextvar of its own) not. (Emulated: the instrumentation's only 0.66 release pins
    opentelemetry-instrumentation 0.66b1, which the tested set, 0.66b2, excludes.)"""
    from opentelemetry import context as otel_context

    carried = otel_context.get_current()

    def run():
        token = otel_context.attach(carried)
        try:
            return fn()
        finally:
            otel_context.detach(token)

    return run


def test_a_thread_that_got_opentelemetrys_context_but_not_flowmaps_is_a_drop(tmp_path):
    """The contrib threading instrumentation (in opentelemetry-bootstrap's default set)
    carries OpenTelemetry's context, baggage included, into a pool's worker, but not
    flowmap's binding. The worker's spans were tagged from that baggage like their
    parent, so the lost binding passed `flowmap check` and raised no alert; now they are
    untagged (an alert fires) and the analyzer reports the drop at the boundary."""
    from opentelemetry import trace as trace_api

    from flowmap import analyze

    out = tmp_path / "traces.jsonl"
    alerts: list = []
    rt = configure(
        tenant_key=KEY, service_name="conc", out=out, exporters=["jsonl"], instrument_httpx=False,
        set_global=False, alert_callback=alerts.append,
    )
    mem = InMemorySpanExporter()
    rt.tracer_provider.add_span_processor(SimpleSpanProcessor(mem))
    tracer = rt.tracer_provider.get_tracer("test")

    @boundary("vector", "docs.search", scoped=True)
    def search():
        return "searched"

    def job():  # a span of its own first: the boundary's parent is then an untagged local span
        with tracer.start_as_current_span("process job"):
            return search()

    pool = concurrent.futures.ThreadPoolExecutor(1)
    with bind(RequestContext(TENANTS[0])):
        with tracer.start_as_current_span("POST /chat", kind=trace_api.SpanKind.SERVER,
                                          attributes={"http.request.method": "POST", "http.route": "/chat"}):
            with pytest.raises(MissingContextError):
                pool.submit(_otel_context_only(search)).result()
            with pytest.raises(MissingContextError):
                pool.submit(_otel_context_only(job)).result()
            with tracer.start_as_current_span("inline child"):
                pass  # (a child in the bound request itself keeps its tenant)
    pool.shutdown()
    rt.shutdown()
    runtime.set_tagger(None)
    runtime.set_runtime(None)
    by_name = {s.name: s for s in mem.get_finished_spans()}
    searches = [s for s in mem.get_finished_spans() if s.name == "docs.search"]
    assert len(searches) == 2 and all(TENANT not in s.attributes for s in searches)
    assert TENANT not in by_name["process job"].attributes
    assert by_name["inline child"].attributes[TENANT_SOURCE] == "context"
    assert sorted(a.span_name for a in alerts) == ["docs.search", "docs.search"]
    found = sorted((f.rule, str(f.severity), f.span_name) for f in analyze([out]).findings)
    assert found == [("context-dropped", "high", "docs.search"), ("context-dropped", "medium", "process job")]


@pytest.mark.parametrize("mode", ["record", "fail"])
def test_a_pool_inside_consume_that_got_only_opentelemetrys_context_is_a_drop(tmp_path, monkeypatch, mode):
    """consume() binds the message's tag as evidence (bind_tag, source baggage). A plain
    pool's task, handed OpenTelemetry's context (baggage included) by the contrib threading
    instrumentation but not flowmap's binding, was tagged from that baggage like a span
    below an inbound tag: its parent's source is `baggage` too. So the dropped binding
    raised no alert and no finding, and in fail mode even the refusal span was tagged. Now
    the worker's spans stay untagged, alert, and read as context-dropped, as under bind()."""
    from flowmap import analyze

    monkeypatch.delenv("FLOWMAP_BOUNDARY_MODE", raising=False)
    out = tmp_path / "traces.jsonl"
    alerts: list = []
    rt = configure(
        tenant_key=KEY, service_name="conc", out=out, exporters=["jsonl"], instrument_httpx=False,
        set_global=False, alert_callback=alerts.append, boundary_mode=mode,
    )
    mem = InMemorySpanExporter()
    rt.tracer_provider.add_span_processor(SimpleSpanProcessor(mem))
    tracer = rt.tracer_provider.get_tracer("test")
    refused: list = []

    def work():
        try:
            with boundary("db", "orders.query"):
                pass
        except MissingContextError:
            refused.append(True)
        with tracer.start_as_current_span("orders.step"):
            pass

    try:
        with bind(RequestContext(TENANTS[0])):
            with P.publish("orders") as headers:
                pass
        pool = concurrent.futures.ThreadPoolExecutor(1)
        with P.consume(headers, "orders"):
            pool.submit(_otel_context_only(work)).result()
            with tracer.start_as_current_span("inline"):
                pass  # (a span in the consumer itself keeps the message's tag)
            P.submit(pool, lambda: tracer.start_span("carried").end()).result()  # (the helper carries it)
        pool.shutdown()
    finally:
        rt.shutdown()
        runtime.set_tagger(None)
        runtime.set_boundary_mode(None)
        runtime.set_runtime(None)
    tag = tag_for(KEY, TENANTS[0])
    by_name = {s.name: s for s in mem.get_finished_spans() if s.kind.name != "PRODUCER"}
    assert refused == ([True] if mode == "fail" else [])
    assert TENANT not in by_name["orders.query"].attributes  # the refusal span too
    assert TENANT not in by_name["orders.step"].attributes
    for name in ("orders", "inline", "carried"):  # the consumer span and its bound children
        assert (by_name[name].attributes[TENANT], by_name[name].attributes[TENANT_SOURCE]) == (tag, "baggage")
    assert [a.span_name for a in alerts] == ["orders.query"]
    found = sorted((f.rule, str(f.severity), f.span_name) for f in analyze([out]).findings)
    assert found == [("context-dropped", "high", "orders.query"), ("context-dropped", "medium", "orders.step")]
    assert TENANTS[0] not in out.read_text()
