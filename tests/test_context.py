"""RequestContext and bind: validation, no raw id in repr/errors, nesting, restore, async."""

import asyncio

import pytest
from opentelemetry import baggage

from flowmap import runtime
from flowmap.attributes import TENANT
from flowmap.context import (
    InvalidContextError,
    RequestContext,
    bind,
    bind_tag,
    current,
    current_or_none,
    current_tag,
    outbound_tag,
)
from flowmap.errors import ConfigError, FlowmapError, MissingContextError, TenantSwitchError
from flowmap.tagging import Tagger, tag_for

RAW = "tenant-ctx-secret-42"


@pytest.fixture
def tagger():
    t = Tagger("test-key")
    runtime.set_tagger(t)
    yield t
    runtime.set_tagger(None)


@pytest.mark.parametrize("bad", ["", "   ", None, 42, b"bytes"])
def test_invalid_tenant_id_is_a_clear_flowmap_error(bad):
    with pytest.raises(InvalidContextError) as err:
        RequestContext(bad)  # type: ignore[arg-type]
    assert isinstance(err.value, ConfigError) and isinstance(err.value, ValueError)
    assert isinstance(err.value, FlowmapError)
    assert "tenant_id" in str(err.value)


@pytest.mark.parametrize("bad", ["acme\udc80", "\ud800acme-corp", "acme-\udfff-corp"])
def test_lone_surrogate_tenant_id_is_refused_without_echoing_it(bad, tagger):
    """Its tag (an HMAC of the UTF-8 bytes) cannot be computed: refuse it where it is
    built, with the library's error, rather than a UnicodeEncodeError from bind()."""
    with pytest.raises(InvalidContextError) as err:
        RequestContext(bad)
    assert "tenant_id" in str(err.value)
    assert "acme" not in str(err.value) and "\\ud" not in str(err.value)
    # nothing chained (a UnicodeEncodeError would carry the id in .object)
    assert err.value.__context__ is None and err.value.__cause__ is None


def test_non_ascii_tenant_id_is_accepted_and_tagged(tagger):
    with bind(RequestContext("租户-ü")):
        assert current_tag() == tag_for("test-key", "租户-ü")


def test_repr_and_str_hide_the_raw_tenant_and_principal():
    ctx = RequestContext(RAW, principal="alice@example.com", request_id="req-1")
    for text in (repr(ctx), str(ctx), f"{ctx}", repr([ctx])):
        assert RAW not in text and "alice" not in text
    assert "req-1" in repr(ctx)


def test_context_is_frozen():
    ctx = RequestContext(RAW)
    with pytest.raises(AttributeError):
        ctx.tenant_id = "other"  # type: ignore[misc]


def test_current_raises_when_nothing_bound():
    assert current_or_none() is None
    with pytest.raises(MissingContextError):
        current()


def test_bind_sets_and_restores_even_on_exception():
    ctx = RequestContext(RAW)
    with pytest.raises(RuntimeError):
        with bind(ctx) as bound:
            assert bound is ctx and current() is ctx
            raise RuntimeError("boom")
    assert current_or_none() is None


def test_a_generator_that_binds_stepped_in_fresh_context_copies_logs_no_error(tagger, caplog):
    """Starlette steps a streaming response's sync generator in a fresh copy of the
    context each time: the ``with bind`` inside it exits in another context than it
    entered. OpenTelemetry logged "Failed to detach context" with a traceback on every
    such stream; the exit now restores that context explicitly, baggage included."""
    import contextvars
    import logging

    def stream():
        with bind(RequestContext(RAW)):
            yield current_tag()
            yield current_tag()

    it = stream()
    caplog.set_level(logging.DEBUG)
    first = contextvars.copy_context().run(next, it)
    assert first == tagger.tag(RAW)
    last = contextvars.copy_context()
    assert last.run(next, it) is None  # (that copy never saw the entry: Python's semantics)
    with pytest.raises(StopIteration):
        last.run(next, it)
    assert last.run(current_or_none) is None and last.run(baggage.get_all) == {}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def _inner_binding_left_open():
    """A generator that binds ``tenant-inner-7`` (a switch allowed) inside RAW's binding,
    stepped once in a copy of the context; it and another copy taken after that step,
    which holds the inner entry (its exit, stepped there, runs in another context than
    its entry)."""
    import contextvars

    def stream():
        with bind(RequestContext("tenant-inner-7"), allow_switch=True):
            yield 1

    with bind(RequestContext(RAW)):
        it = stream()
        first = contextvars.copy_context()
        first.run(next, it)
        return it, first.run(contextvars.copy_context)


def test_an_exit_in_another_context_restores_the_outer_tenant_there(tagger):
    """The same, inside an outer binding of another tenant (a switch allowed): the
    outer tenant's tag is back in baggage, not the inner one's."""
    it, other = _inner_binding_left_open()
    assert other.run(baggage.get_all) == {"flowmap.tenant": tagger.tag("tenant-inner-7")}
    with pytest.raises(StopIteration):
        other.run(next, it)
    assert other.run(current_tag) == tagger.tag(RAW)
    assert other.run(baggage.get_all) == {"flowmap.tenant": tagger.tag(RAW)}


def test_bind_puts_only_the_opaque_tag_in_baggage(tagger):
    with bind(RequestContext(RAW)):
        assert baggage.get_all() == {"flowmap.tenant": tag_for("test-key", RAW)}
        assert current_tag() == tagger.tag(RAW)
    assert baggage.get_all() == {}


def test_without_tagger_bind_adds_no_baggage(monkeypatch):
    monkeypatch.delenv("FLOWMAP_TENANT_KEY", raising=False)
    runtime.set_tagger(None)
    with bind(RequestContext(RAW)):
        assert baggage.get_all() == {}
        assert current().tenant_id == RAW


def test_nested_same_tenant_is_fine_different_is_refused():
    with bind(RequestContext(RAW, request_id="a")):
        with bind(RequestContext(RAW, request_id="b")):
            assert current().request_id == "b"
        assert current().request_id == "a"
        with pytest.raises(TenantSwitchError) as err:
            with bind(RequestContext("tenant-other-secret")):
                pass  # pragma: no cover
        assert RAW not in str(err.value) and "tenant-other-secret" not in str(err.value)
        assert current().tenant_id == RAW  # the refused bind changed nothing


def test_explicit_switch_is_allowed_and_restored():
    with bind(RequestContext(RAW)):
        with bind(RequestContext("tenant-b"), allow_switch=True):
            assert current().tenant_id == "tenant-b"
        assert current().tenant_id == RAW


async def test_async_bind_isolated_per_task(tagger):
    seen = {}

    async def request(tid):
        async with bind(RequestContext(tid)):
            await asyncio.sleep(0)
            seen[tid] = (current().tenant_id, baggage.get_baggage("flowmap.tenant"))

    await asyncio.gather(*(request(f"t{i}") for i in range(20)))
    assert seen == {f"t{i}": (f"t{i}", tagger.tag(f"t{i}")) for i in range(20)}
    assert current_or_none() is None


def test_bound_tag_is_evidence_not_authority(tagger):
    tag = tagger.tag(RAW)
    with bind_tag(tag):
        assert current_tag() == tag
        with pytest.raises(MissingContextError):
            current()
        # an authenticated tenant always takes over from evidence, even a different one
        with bind(RequestContext("tenant-b")):
            assert current().tenant_id == "tenant-b"


def test_bound_tag_cannot_override_a_different_authenticated_tenant(tagger):
    with bind(RequestContext(RAW)):
        with pytest.raises(TenantSwitchError):
            with bind_tag(tagger.tag("tenant-b")):
                pass  # pragma: no cover
        with bind_tag(tagger.tag(RAW)):
            assert current().tenant_id == RAW  # matching evidence keeps the authority


def test_bind_tag_rejects_non_opaque_values():
    with pytest.raises(InvalidContextError):
        bind_tag(RAW)


def test_outbound_tag_is_the_bound_tenants_else_opaque_inbound_evidence(tagger):
    from opentelemetry import context as otel_context

    assert outbound_tag() is None
    with bind(RequestContext(RAW)):
        assert outbound_tag() == tagger.tag(RAW)
    inbound = tag_for("test-key", "upstream-tenant")
    for value, expected in ((inbound, inbound), (RAW, None)):  # a raw id never travels on
        token = otel_context.attach(baggage.set_baggage("flowmap.tenant", value))
        try:
            assert outbound_tag() == expected
        finally:
            otel_context.detach(token)


# -- one bind() object entered more than once ------------------------------------------
# A per-tenant scope built once and kept (e.g. in a dict) may be entered again while an
# earlier entry is still open: nested, or by concurrent tasks and threads. Every exit must
# restore exactly what its own entry replaced.


def test_reused_bind_sequentially(tagger):
    scope = bind(RequestContext(RAW))
    for _ in range(3):
        with scope:
            assert current().tenant_id == RAW
            assert baggage.get_baggage("flowmap.tenant") == tagger.tag(RAW)
        assert current_or_none() is None and baggage.get_all() == {}


def test_reused_bind_nested_restores_at_every_level(tagger):
    scope = bind(RequestContext(RAW))
    with scope:
        with scope:
            assert current().tenant_id == RAW
        assert current().tenant_id == RAW  # the inner exit restores the outer entry
        assert baggage.get_baggage("flowmap.tenant") == tagger.tag(RAW)
    assert current_or_none() is None
    assert baggage.get_all() == {}


def test_reused_bind_in_concurrent_tasks_leaves_nothing_bound(tagger):
    scope = bind(RequestContext(RAW))

    async def handler(delay):
        async with scope:
            await asyncio.sleep(delay)
            inside = current().tenant_id
        await asyncio.sleep(0.03)  # the other task has entered and exited meanwhile
        return inside, current_or_none(), baggage.get_all()

    async def main():
        # the first task enters first and exits last
        return await asyncio.gather(handler(0.02), handler(0.0), handler(0.01))

    assert asyncio.run(main()) == [(RAW, None, {})] * 3


def test_reused_bind_in_concurrent_threads_leaves_nothing_bound(tagger):
    import threading

    scope = bind(RequestContext(RAW))
    entered, release = threading.Barrier(4), threading.Event()
    after = []

    def worker(i):
        with scope:
            entered.wait()
            if i == 0:
                release.wait(5)  # one thread exits after the others
        if i == 3:
            release.set()
        after.append((current_or_none(), baggage.get_all()))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert after == [(None, {})] * 4


def test_reused_evidence_scope_does_not_keep_another_entrys_authority(tagger):
    evidence = bind_tag(tagger.tag(RAW))
    with bind(RequestContext(RAW)):
        with evidence:  # agrees with the authenticated tenant: authority is kept here
            assert current().tenant_id == RAW
    with evidence:  # entered again on its own: evidence only, not the earlier authority
        assert current_tag() == tagger.tag(RAW)
        with pytest.raises(MissingContextError):
            current()
    assert current_or_none() is None


# A shared scope re-entered inside a generator whose steps run in fresh copies of the
# context (Starlette/anyio step a streaming response so): the generator's exit undid the
# caller's entry (which the copy inherits), or another thread's, and that thread stayed
# bound to the tenant after its block — the next job on that reused worker thread was
# tagged as the previous tenant, and nothing in the trace said so.


def _step_in_a_fresh_copy(gen):
    """One next() as Starlette steps a sync streaming body: in a fresh copy of the context."""
    import contextvars

    return contextvars.copy_context().run(next, gen)


def _stepped_in_fresh_copies(gen):
    """Exhaust ``gen``, each step in a fresh copy of the context."""
    items = []
    while True:
        try:
            items.append(_step_in_a_fresh_copy(gen))
        except StopIteration:
            return items


def test_a_shared_scope_in_a_stream_leaves_another_threads_entry_alone(flowmap_runtime):
    import concurrent.futures
    import threading

    rt, exp = flowmap_runtime
    tracer = rt.tracer_provider.get_tracer("app")
    scope = bind(RequestContext(RAW))  # the per-tenant scope, built once and shared
    worker = concurrent.futures.ThreadPoolExecutor(max_workers=1)  # one reused thread
    worker_inside, stream_done = threading.Event(), threading.Event()

    def job():
        with scope:
            worker_inside.set()
            stream_done.wait(5)
        return current_or_none(), baggage.get_all()

    def next_job():  # another job on that thread, which binds no tenant
        with tracer.start_as_current_span("unbound job"):
            return current_or_none()

    def chunks():
        with scope:  # the stream re-binds its tenant
            yield 1
            worker_inside.wait(5)
            yield 2

    try:
        with bind(RequestContext(RAW)):  # the request
            stream = chunks()
            first = _step_in_a_fresh_copy(stream)  # entered in one copy...
            job_done = worker.submit(job)
            assert worker_inside.wait(5)
            rest = _stepped_in_fresh_copies(stream)  # ...left in another, while the worker is inside
            stream_done.set()
        assert [first, *rest] == [1, 2]
        assert job_done.result(5) == (None, {})  # the worker is unbound after its block
        assert worker.submit(next_job).result(5) is None
    finally:
        stream_done.set()
        worker.shutdown()
    (span,) = [s for s in exp.get_finished_spans() if s.name == "unbound job"]
    assert TENANT not in span.attributes  # not tagged as the previous job's tenant
    assert current_or_none() is None


def test_a_shared_scope_around_a_job_and_in_its_stream_unbinds_at_the_end_of_the_job(flowmap_runtime):
    rt, exp = flowmap_runtime
    tracer = rt.tracer_provider.get_tracer("app")
    scopes = {raw: bind(RequestContext(raw)) for raw in (RAW, "tenant-ctx-other-43")}

    def chunks():
        with scopes[RAW]:  # the same object as around the job
            yield current().tenant_id
            yield current().tenant_id

    with scopes[RAW]:
        assert _stepped_in_fresh_copies(chunks()) == [RAW, RAW]
        assert current().tenant_id == RAW  # the job's own entry is still open
    assert current_or_none() is None and baggage.get_all() == {}
    with tracer.start_as_current_span("housekeeping"):  # the next job, no tenant
        pass
    (span,) = exp.get_finished_spans()
    assert TENANT not in span.attributes
    with scopes["tenant-ctx-other-43"]:  # and another tenant's job is no "switch"
        assert current().tenant_id == "tenant-ctx-other-43"


def test_a_shared_scope_in_an_async_generator_read_in_new_tasks_unbinds_the_handler(tagger):
    """``async with`` records the frame of the ``async with`` statement (not of
    ``__aenter__``): the async generator's exit, run in a new task by each
    ``asyncio.wait_for`` (Python 3.11), finds its own entry, not the handler's."""
    scope = bind(RequestContext(RAW))

    async def chunks():
        async with scope:
            yield 1
            yield 2

    async def handler():
        async with scope:
            stream = chunks()
            items = []
            while True:
                try:
                    items.append(await asyncio.wait_for(stream.__anext__(), 5))
                except StopAsyncIteration:
                    break
            assert current().tenant_id == RAW
        return items, current_or_none(), baggage.get_all()

    assert asyncio.run(handler()) == ([1, 2], None, {})


def test_a_shared_scope_entered_and_left_by_an_exit_stack(tagger):
    """Entered and left from different frames (ExitStack's own) in one context: the exit
    undoes this context's entry, also while other threads hold entries of the scope."""
    import contextlib
    import threading

    scope = bind(RequestContext(RAW))
    inside, release = threading.Event(), threading.Event()
    seen = []

    def other_thread():
        with scope:
            inside.set()
            release.wait(5)
        seen.append(current_or_none())

    t = threading.Thread(target=other_thread)
    t.start()
    assert inside.wait(5)
    with contextlib.ExitStack() as stack:
        stack.enter_context(scope)
        with contextlib.ExitStack() as inner:
            inner.enter_context(scope)
        assert current().tenant_id == RAW
    assert current_or_none() is None and baggage.get_all() == {}
    release.set()
    t.join(5)
    assert seen == [None]


def _what_the_worker_sees(_: int) -> tuple[bool, dict]:
    return current_or_none() is None, dict(baggage.get_all())


def test_a_process_forked_inside_a_request_starts_with_no_tenant_bound(tagger):
    """A ProcessPoolExecutor forks its workers on first submit, in the submitting
    request's context: every later job, any tenant's, ran as that request's tenant
    (``current()`` answered it, boundaries passed, spans were tagged with it). A forked
    child starts unbound now, as a spawned one does."""
    import concurrent.futures
    import multiprocessing

    pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
    try:
        with bind(RequestContext(RAW)):
            unbound, seen_baggage = pool.submit(_what_the_worker_sees, 1).result(timeout=60)
            assert current().tenant_id == RAW  # (the parent keeps its own)
        assert unbound and "flowmap.tenant" not in seen_baggage
        # and a later job of another request still finds nothing bound
        with bind(RequestContext("tenant-ctx-other-43")):
            assert pool.submit(_what_the_worker_sees, 2).result(timeout=60)[0]
    finally:
        pool.shutdown()


def _what_else_the_worker_inherits(_: int) -> tuple[bool, bool]:
    from opentelemetry import context as otel_context

    from flowmap.context import is_authenticating

    return dict(otel_context.get_current()) == {}, is_authenticating()


def test_a_process_forked_inside_a_span_starts_with_an_empty_opentelemetry_context(tagger):
    """A forked child kept the current span (and all baggage) of the request it was
    forked in: every later job's spans, whatever tenant it bound, went into that
    request's trace under its span (a false cross-tenant). It starts empty now, as a
    spawned one does — also when forked from another thread than the main one, and
    inside an ``authenticating()`` block (whose spans raise no alert)."""
    import concurrent.futures
    import multiprocessing
    import threading

    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    from flowmap.context import authenticating, is_authenticating

    pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
    seen: list[tuple[bool, bool]] = []

    def request() -> None:
        span = NonRecordingSpan(SpanContext(0x1F, 0x2F, is_remote=False, trace_flags=TraceFlags(1)))
        token = otel_context.attach(baggage.set_baggage("app.user", "u-1", trace.set_span_in_context(span)))
        try:
            with authenticating(), bind(RequestContext(RAW)):
                seen.append(pool.submit(_what_else_the_worker_inherits, 1).result(timeout=60))
                seen.append((trace.get_current_span() is span, is_authenticating()))  # the parent's own
        finally:
            otel_context.detach(token)

    try:
        thread = threading.Thread(target=request)  # forks at its first submit, in this thread
        thread.start()
        thread.join(60)
    finally:
        pool.shutdown()
    assert seen == [(True, False), (True, True)]


def test_a_binding_generator_finalised_in_another_request_leaves_that_request_alone(tagger):
    """A streaming body that binds, abandoned after one chunk and freed by the garbage
    collector while another request runs: its exit ran there and set that request's
    binding (and, for a while, baggage) to the first request's tenant."""
    import contextvars
    import gc

    other = "tenant-ctx-other-43"

    def stream():
        with bind(RequestContext(RAW)):
            yield 1
            yield 2

    def request_a():
        with bind(RequestContext(RAW)):
            g = stream()

            class Holder:
                pass

            h = Holder()
            h.g, h.me = g, h  # a cycle: only the cyclic collector frees it
            next(g)

    contextvars.copy_context().run(request_a)

    def request_b():
        with bind(RequestContext(other)):
            gc.collect()  # A's abandoned generator is finalised here
            return current().tenant_id, baggage.get_baggage("flowmap.tenant")

    assert contextvars.copy_context().run(request_b) == (other, tagger.tag(other))


def test_an_entry_serving_several_tenants_in_turn_is_no_switch(tagger, tmp_path):
    """A batch consumer binds per record under one CONSUMER span (as the README says
    workers should). The first bind tags the entry span (a framework started it before
    the app bound anything); the first bind of another tenant withdraws that tag, so
    record B's work is not judged as switching from record A's tenant."""
    import json as _json

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    from flowmap import analyze
    from flowmap.exporter import encode_spans
    from flowmap.processors import TenantSpanProcessor

    mem = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(TenantSpanProcessor(tagger))
    provider.add_span_processor(SimpleSpanProcessor(mem))
    tracer = provider.get_tracer("worker")
    tenants = [RAW, "tenant-ctx-other-43", RAW]
    with tracer.start_as_current_span("jobs process", kind=SpanKind.CONSUMER,
                                      attributes={"messaging.system": "kafka", "messaging.operation.type": "process"}):
        for raw in tenants:
            with bind(RequestContext(raw)), tracer.start_as_current_span("handle record"):
                pass
    with tracer.start_as_current_span("one job", kind=SpanKind.CONSUMER,
                                      attributes={"messaging.system": "kafka", "messaging.operation.type": "process"}):
        with bind(RequestContext(RAW)), tracer.start_as_current_span("handle record"):
            pass
    spans = mem.get_finished_spans()
    batch = next(s for s in spans if s.name == "jobs process")
    single = next(s for s in spans if s.name == "one job")
    assert "flowmap.tenant" not in batch.attributes  # withdrawn: as a framework left it
    assert single.attributes["flowmap.tenant"] == tagger.tag(RAW)  # one tenant: stamped
    path = tmp_path / "t.jsonl"
    path.write_text(_json.dumps(encode_spans(spans)) + "\n")
    assert [(f.rule, f.span_name) for f in analyze([path]).findings] == []
    # a request keeps the tenant it authenticated first: a second one bound under it (an
    # id taken from a request parameter) is the cross-tenant it is
    with tracer.start_as_current_span("GET /docs/{id}", kind=SpanKind.SERVER,
                                      attributes={"http.request.method": "GET", "http.route": "/docs/{id}"}):
        with bind(RequestContext(RAW)):
            pass  # authentication
        with bind(RequestContext("tenant-ctx-other-43")), tracer.start_as_current_span("load_document"):
            pass
    server = [s for s in mem.get_finished_spans() if s.name == "GET /docs/{id}"]
    path.write_text(_json.dumps(encode_spans(server + [s for s in mem.get_finished_spans()
                                                        if s.name == "load_document"])) + "\n")
    assert [(f.rule, f.span_name) for f in analyze([path]).findings] == [("cross-tenant", "load_document")]


def test_a_task_started_while_authenticating_is_not_authenticating_once_that_ends(tagger):
    """A token-cache refresher the resolver starts lazily inherits the context: its
    spans were marked as authentication (no alert, no finding) for its whole life."""
    import contextvars

    from flowmap.context import authenticating, is_authenticating

    with authenticating():
        assert is_authenticating()
        later = contextvars.copy_context()  # what a task started here carries
    assert not is_authenticating() and not later.run(is_authenticating)


def test_an_entry_the_application_tagged_itself_keeps_its_tag_at_the_first_bind(tagger, tmp_path):
    """An explicit tag on a SERVER span is kept when a tenant is bound under it (the
    first-bind stamp only tags untagged or baggage-tagged entries): another tenant's
    bound below it is the cross-tenant to see, not a tag silently replaced."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    from flowmap.analysis import analyze_traces
    from flowmap.processors import TenantSpanProcessor
    from flowmap.settings import AnalysisSettings
    from flowmap.testing import spans_to_traces

    mem = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(TenantSpanProcessor(tagger))
    provider.add_span_processor(SimpleSpanProcessor(mem))
    tracer = provider.get_tracer("t")
    other = tagger.tag("tenant-ctx-other-43")
    with tracer.start_as_current_span("handle", kind=SpanKind.SERVER, attributes={"flowmap.tenant": other}):
        with bind(RequestContext(RAW)), tracer.start_as_current_span("inner"):
            pass
    inner, handle = mem.get_finished_spans()
    assert (handle.attributes["flowmap.tenant"], handle.attributes["flowmap.tenant.source"]) == (other, "explicit")
    findings = analyze_traces(spans_to_traces(mem.get_finished_spans()), AnalysisSettings()).findings
    assert [(f.rule, f.span_name) for f in findings] == [("cross-tenant", "inner")]


# -- the binding carried in OpenTelemetry's context ----------------------------------


def _where_only_opentelemetrys_context_arrived(fn, carried):
    """Run ``fn`` as a worker that received ``carried`` (OpenTelemetry's context captured
    in a request) and not flowmap's contextvar: a fresh contextvars context (a plain
    thread's) with ``carried`` attached, as OpenTelemetry's threading instrumentation or a
    framework's own pool attaches it."""
    import contextvars

    from opentelemetry import context as otel_context

    def run():
        token = otel_context.attach(carried)
        try:
            return fn()
        finally:
            otel_context.detach(token)

    return contextvars.Context().run(run)


def _captured():
    from opentelemetry import context as otel_context

    return otel_context.get_current()


@pytest.mark.parametrize("keyed", [True, False])
def test_a_worker_that_received_opentelemetrys_context_runs_for_the_requests_tenant(request, keyed):
    """current(), current_or_none(), current_tag() and outbound_tag() in code that got only
    the request's OpenTelemetry context: the request's tenant (with no key configured too)."""
    if keyed:
        request.getfixturevalue("tagger")
    ctx = RequestContext(RAW, request_id="r-1")
    with bind(ctx):
        carried = _captured()

    def seen():
        return current(), current_or_none(), current_tag(), outbound_tag()

    tag = tag_for("test-key", RAW) if keyed else None
    assert _where_only_opentelemetrys_context_arrived(seen, carried) == (ctx, ctx, tag, tag)
    with pytest.raises(MissingContextError):  # (and nothing is bound where nothing arrived)
        current()


def test_evidence_carried_into_a_worker_stays_evidence(tagger):
    tag = tagger.tag(RAW)
    with bind_tag(tag):
        carried = _captured()

    def seen():
        with pytest.raises(MissingContextError):
            current()
        return current_or_none(), current_tag()

    assert _where_only_opentelemetrys_context_arrived(seen, carried) == (None, tag)
    with bind_tag(tag, baggage=False):  # (leaves OpenTelemetry's context alone: not carried)
        assert _where_only_opentelemetrys_context_arrived(current_tag, _captured()) is None


def test_the_carried_binding_ends_with_its_block_also_nested_async_and_on_exceptions(tagger):
    """Each entry attaches OpenTelemetry's context with its binding and detaches it at its
    exit, innermost first, whatever the exit: the context is then the very one it was."""
    from flowmap.context import carried_binding

    before = _captured()
    with pytest.raises(RuntimeError):
        with bind(RequestContext(RAW)):
            outer = carried_binding()
            assert outer is not None and outer.ctx.tenant_id == RAW
            with bind(RequestContext("tenant-inner-7"), allow_switch=True):
                assert carried_binding().ctx.tenant_id == "tenant-inner-7"
                with bind_tag(tagger.tag("tenant-inner-7")):  # evidence agreeing: keeps authority
                    assert carried_binding().ctx.tenant_id == "tenant-inner-7"
                    raise RuntimeError("boom")
    assert _captured() is before and carried_binding() is None

    async def task(tid):
        async with bind(RequestContext(tid)):
            await asyncio.sleep(0)
            inside = carried_binding().ctx.tenant_id
        return inside, carried_binding()

    async def main():
        return await asyncio.gather(*(task(f"tenant-async-{i}") for i in range(5)))

    assert asyncio.run(main()) == [(f"tenant-async-{i}", None) for i in range(5)]


def test_in_a_worker_an_explicit_bind_decides_and_a_nested_switch_is_still_refused(tagger):
    """flowmap's contextvar first: a worker that carries tenant A's context may bind
    another tenant (as anywhere with nothing bound: a thread started inside a request may
    serve others, binding each), which is then its tenant, A's again after the block; a
    switch nested inside that bind is refused as anywhere."""
    with bind(RequestContext(RAW)):
        carried = _captured()

    def worker():
        with bind(RequestContext("tenant-ctx-other-43")):
            inside = current().tenant_id, current_tag(), baggage.get_baggage("flowmap.tenant")
            with pytest.raises(TenantSwitchError):
                with bind(RequestContext(RAW)):
                    pass  # pragma: no cover
        return inside, current().tenant_id

    other = "tenant-ctx-other-43"
    inside, after = _where_only_opentelemetrys_context_arrived(worker, carried)
    assert inside == (other, tagger.tag(other), tagger.tag(other)) and after == RAW


def test_no_raw_id_in_what_opentelemetrys_context_propagates(tagger):
    """The binding is held under a private key no propagator reads: injecting the
    bound context writes only the opaque tag, and even the context's repr shows no raw id."""
    from opentelemetry.propagate import inject

    with bind(RequestContext(RAW, principal="alice-secret")):
        headers: dict = {}
        inject(headers)
        text = repr(_captured())
    assert RAW not in repr(headers) and tagger.tag(RAW) in headers.get("baggage", "")
    assert RAW not in text and "alice-secret" not in text


def test_an_exit_in_another_context_restores_the_carried_binding_there(tagger):
    """A generator that binds, stepped in fresh copies of the context: its exit, in
    another context than its entry, puts back the binding that context carried before
    (the outer one's), not the generator's."""
    from flowmap.context import carried_binding

    it, other = _inner_binding_left_open()
    assert other.run(carried_binding).ctx.tenant_id == "tenant-inner-7"
    with pytest.raises(StopIteration):
        other.run(next, it)
    assert other.run(carried_binding).ctx.tenant_id == RAW
    assert other.run(current).tenant_id == RAW
