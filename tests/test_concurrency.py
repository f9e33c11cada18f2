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
    """``fn`` carried as a framework that hands its workers OpenTelemetry's context does:
    ``context.get_current()`` captured here, attached where ``fn`` runs; flowmap's own
    contextvar is not carried."""
    from opentelemetry import context as otel_context

    carried = otel_context.get_current()

    def run():
        token = otel_context.attach(carried)
        try:
            return fn()
        finally:
            otel_context.detach(token)

    return run


@pytest.fixture
def otel_threading():
    """OpenTelemetry's threading instrumentation (in opentelemetry-bootstrap's default
    set, so in every zero-code set-up), instrumented for the test alone: it captures the
    OpenTelemetry context at ``Thread.start`` and ``ThreadPoolExecutor.submit`` and
    attaches it in the worker."""
    from opentelemetry.instrumentation.threading import ThreadingInstrumentor

    instrumentor = ThreadingInstrumentor()
    instrumentor.instrument()
    yield
    instrumentor.uninstrument()


def _file_runtime(out, alerts, mode=None):
    rt = configure(
        tenant_key=KEY, service_name="conc", out=out, exporters=["jsonl"], instrument_httpx=False,
        set_global=False, alert_callback=alerts.append, boundary_mode=mode,
    )
    mem = InMemorySpanExporter()
    rt.tracer_provider.add_span_processor(SimpleSpanProcessor(mem))
    return rt, mem


def _stop(rt):
    rt.shutdown()
    runtime.set_tagger(None)
    runtime.set_boundary_mode(None)
    runtime.set_runtime(None)


def test_a_pool_under_opentelemetrys_threading_instrumentation_runs_for_the_request(tmp_path, otel_threading):
    """The threading instrumentation carries OpenTelemetry's context into a plain pool's
    worker (DSPy's ParallelExecutor, any ``ThreadPoolExecutor``), and the request's binding
    rides in it: the worker's spans carry the request's tenant, its boundaries accept, and
    ``current()`` is the request's context. Nothing is alerted, nothing found, no raw id
    exported. A job submitted with nothing bound still runs unbound and is refused."""
    from opentelemetry import trace as trace_api

    from flowmap import analyze

    out = tmp_path / "traces.jsonl"
    alerts: list = []
    rt, mem = _file_runtime(out, alerts)
    tracer = rt.tracer_provider.get_tracer("test")

    @boundary("vector", "docs.search", scoped=True)
    def search():
        return current().tenant_id

    def job():  # a span of its own first: the boundary's parent is a worker's span
        with tracer.start_as_current_span("process job"):
            return search()

    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        with bind(RequestContext(TENANTS[0])):
            with tracer.start_as_current_span("POST /chat", kind=trace_api.SpanKind.SERVER,
                                              attributes={"http.request.method": "POST", "http.route": "/chat"}):
                assert pool.submit(search).result() == TENANTS[0]
                assert pool.submit(job).result() == TENANTS[0]
        with pytest.raises(MissingContextError):  # nothing bound where it was submitted
            pool.submit(search).result()
        pool.shutdown()
    finally:
        _stop(rt)
    tag = tag_for(KEY, TENANTS[0])
    spans = mem.get_finished_spans()
    searches = [s for s in spans if s.name == "docs.search"]
    assert len(searches) == 3 and all(s.attributes.get(TENANT) == tag for s in searches[:2])
    assert all(s.attributes[TENANT_SOURCE] == "context" for s in searches[:2])
    assert TENANT not in searches[2].attributes  # the refusal, unbound
    assert {s.name: s for s in spans}["process job"].attributes[TENANT] == tag
    assert [a.span_name for a in alerts] == ["docs.search"]  # the refused one alone
    found = [(f.rule, f.span_name) for f in analyze([out]).findings]
    assert found == [("orphan-root", "docs.search")]  # the refused one alone, out of any request
    assert TENANTS[0] not in out.read_text()
    assert all(TENANTS[0] not in s.to_json() for s in spans)


def test_a_thread_handed_opentelemetrys_context_by_hand_runs_for_the_request(file_runtime):
    """A plain Thread (no instrumentation) whose target attaches the context captured in
    the request (as a framework's own pool does) runs for the request's tenant; one given
    nothing runs unbound: its boundary refuses and its span has no tenant."""
    rt, mem, _ = file_runtime
    tracer = rt.tracer_provider.get_tracer("test")
    seen: dict = {}

    def work(name):
        try:
            with boundary("db", f"orders.query {name}"):
                seen[name] = current().tenant_id
        except MissingContextError:
            seen[name] = "refused"

    with bind(RequestContext(TENANTS[1])):
        with tracer.start_as_current_span("request"):
            carried = threading.Thread(target=_otel_context_only(lambda: work("carried")))
            plain = threading.Thread(target=lambda: work("plain"))
    for t in (carried, plain):
        t.start()
        t.join()
    assert seen == {"carried": TENANTS[1], "plain": "refused"}
    by_name = {s.name: s for s in mem.get_finished_spans()}
    assert by_name["orders.query carried"].attributes[TENANT] == tag_for(KEY, TENANTS[1])
    assert by_name["orders.query carried"].parent.span_id == by_name["request"].context.span_id
    assert TENANT not in by_name["orders.query plain"].attributes


def test_a_worker_started_before_the_request_still_loses_it(tmp_path, otel_threading):
    """Under the threading instrumentation too, a long-lived worker thread fed through a
    queue got its context when it started, before any request: a job a request hands it
    runs with nothing bound. Its boundary refuses, its span has no tenant, it alerts, and
    the analyzer reports the lost work (an orphan root): the leak still shows."""
    import queue as queue_mod

    from flowmap import analyze

    out = tmp_path / "traces.jsonl"
    alerts: list = []
    rt, mem = _file_runtime(out, alerts)
    tracer = rt.tracer_provider.get_tracer("test")
    jobs: queue_mod.Queue = queue_mod.Queue()
    results: list = []

    def loop():
        while (fn := jobs.get()) is not None:
            try:
                results.append(fn())
            except MissingContextError:
                results.append("refused")

    @boundary("db", "orders.query")
    def query():
        return current().tenant_id

    worker = threading.Thread(target=loop)
    worker.start()
    try:
        with bind(RequestContext(TENANTS[2])):
            with tracer.start_as_current_span("request"):
                jobs.put(query)
                jobs.put(None)
                worker.join()
    finally:
        _stop(rt)
    assert results == ["refused"]
    by_name = {s.name: s for s in mem.get_finished_spans()}
    assert TENANT not in by_name["orders.query"].attributes
    assert [a.span_name for a in alerts] == ["orders.query"]
    assert [f.rule for f in analyze([out]).findings] == ["orphan-root"]  # out of the request's trace too


@pytest.mark.parametrize("mode", ["record", "fail"])
def test_a_pool_inside_consume_under_opentelemetrys_threading_instrumentation_keeps_the_message(
    tmp_path, monkeypatch, mode, otel_threading
):
    """consume() binds the message's tag as evidence (bind_tag, source baggage): a plain
    pool's task under the threading instrumentation runs for that evidence too, tagged
    with source ``baggage`` like the consumer's own spans; its boundary is not refused
    (nothing to alert, nothing found, as with flowmap's own executor helper)."""
    from flowmap import analyze

    monkeypatch.delenv("FLOWMAP_BOUNDARY_MODE", raising=False)
    out = tmp_path / "traces.jsonl"
    alerts: list = []
    rt, mem = _file_runtime(out, alerts, mode)
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
            pool.submit(work).result()
            with tracer.start_as_current_span("inline"):
                pass
            P.submit(pool, lambda: tracer.start_span("carried").end()).result()
        pool.shutdown()
    finally:
        _stop(rt)
    tag = tag_for(KEY, TENANTS[0])
    by_name = {s.name: s for s in mem.get_finished_spans() if s.kind.name != "PRODUCER"}
    assert refused == []
    for name in ("orders", "orders.query", "orders.step", "inline", "carried"):
        assert (by_name[name].attributes[TENANT], by_name[name].attributes[TENANT_SOURCE]) == (tag, "baggage")
    assert alerts == []
    assert analyze([out]).findings == []
    assert TENANTS[0] not in out.read_text()


def test_two_tenants_fanning_out_on_one_instrumented_pool_never_mix(file_runtime, otel_threading):
    """Requests of many tenants at once, in their own threads, hand work to one shared
    pool of few (reused) workers under the threading instrumentation: every job runs for
    its own request's tenant, never another's nor the one a worker ran before."""
    rt, mem, out = file_runtime
    tracer = rt.tracer_provider.get_tracer("test")
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    wrong: list = []

    @boundary("tool", "lookup")
    def lookup(tid, rid):
        if current().tenant_id != tid:
            wrong.append(rid)
        tracer.start_span("step", attributes={"test.request": rid}).end()

    def request(tid, rid):
        with bind(RequestContext(tid, request_id=rid)):
            with tracer.start_as_current_span("request", attributes={"test.request": rid}):
                for f in [pool.submit(lookup, tid, rid) for _ in range(3)]:
                    f.result()

    tenants = TENANTS[:8]
    threads = [threading.Thread(target=request, args=(tid, f"r{i}-{n}"))
               for i, tid in enumerate(tenants) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pool.shutdown()
    assert wrong == []
    steps = [s for s in mem.get_finished_spans() if s.name == "step"]
    assert len(steps) == len(threads) * 3
    for s in steps:
        rid = s.attributes["test.request"]
        tid = tenants[int(rid[1:].split("-")[0])]
        assert s.attributes[TENANT] == tag_for(KEY, tid) and s.attributes[TENANT_SOURCE] == "context"
    rt.force_flush()
    assert not any(tid in out.read_text() for tid in tenants)
