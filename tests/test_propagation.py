"""Propagation helpers carry the submitter's context into executors, threads and queues."""

import asyncio
import concurrent.futures
import threading

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from flowmap import propagation as P
from flowmap.attributes import BOUNDARY, TENANT, TENANT_SOURCE
from flowmap.boundaries import boundary
from flowmap.context import RequestContext, bind, current, current_or_none, current_tag
from flowmap.errors import ConfigError, MissingContextError, TenantSwitchError
from flowmap.tagging import tag_for


def _tenant():
    ctx = current_or_none()
    return None if ctx is None else ctx.tenant_id


def test_context_executor_uses_submitter_context_not_the_workers(flowmap_runtime):
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        # a task run without the helper leaks a binding into the (reused) worker thread
        pool.submit(lambda: bind(RequestContext("stale-tenant")).__enter__()).result()
        assert pool.submit(_tenant).result() == "stale-tenant"
        ex = P.ContextExecutor(pool)
        with bind(RequestContext("tenant-a")):
            assert ex.submit(_tenant).result() == "tenant-a"
            assert list(ex.map(lambda _: _tenant(), range(3))) == ["tenant-a"] * 3
            assert P.submit(pool, _tenant).result() == "tenant-a"
        assert ex.submit(_tenant).result() is None  # submitter had nothing bound


def test_helper_tasks_do_not_leak_into_the_worker(flowmap_runtime):
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        with bind(RequestContext("tenant-a")):
            P.submit(pool, lambda: bind(RequestContext("tenant-a")).__enter__()).result()
        assert pool.submit(_tenant).result() is None


def test_thread_and_start_thread_carry_the_creator_context(flowmap_runtime):
    seen = []
    with bind(RequestContext("tenant-t")):
        t = P.Thread(target=lambda: seen.append(_tenant()))
        t2 = P.start_thread(lambda x: seen.append((x, _tenant())), "arg")
    t.start()
    t.join()
    t2.join()
    plain = threading.Thread(target=lambda: seen.append(_tenant()))
    with bind(RequestContext("tenant-t")):
        plain.start()
    plain.join()
    assert sorted(seen[:2], key=str) == [("arg", "tenant-t"), "tenant-t"]
    assert seen[2] is None  # a plain Thread starts with an empty context


class _Recorder:
    """A mixin giving a Thread its run(), as a framework's base class might."""

    def run(self):
        self.seen = _tenant()


def test_a_thread_subclass_that_overrides_run_carries_the_creator_context(flowmap_runtime):
    """Subclassing threading.Thread means overriding run(); the override replaced the
    run that entered the captured context, so it ran with nothing bound."""
    rt, exp = flowmap_runtime
    tracer = rt.tracer_provider.get_tracer("t")

    class Worker(P.Thread):
        def run(self):
            self.seen = _tenant()
            with tracer.start_as_current_span("in thread"):
                pass

    class Wrapping(P.Thread):  # an override that also runs the target: one entry, not two
        def run(self):
            self.before = _tenant()
            super().run()

    class Deeper(Worker):
        def run(self):
            super().run()
            self.after = _tenant()

    class Mixed(_Recorder, P.Thread):
        pass

    inside: list = []
    with bind(RequestContext("tenant-sub")):
        with tracer.start_as_current_span("request") as request:
            threads = [Worker(), Wrapping(target=lambda: inside.append(_tenant())), Deeper(), Mixed()]
            direct = Worker()
    assert current_or_none() is None
    for t in threads:
        t.start()
        t.join()
    worker, wrapping, deeper, mixed = threads
    assert worker.seen == deeper.seen == deeper.after == mixed.seen == "tenant-sub"
    assert wrapping.before == "tenant-sub" and inside == ["tenant-sub"]
    direct.run()  # (run() called directly, not through start(), too)
    assert direct.seen == "tenant-sub" and current_or_none() is None
    spans = [s for s in exp.get_finished_spans() if s.name == "in thread"]
    assert len(spans) == 3
    for span in spans:
        assert span.parent.span_id == request.get_span_context().span_id
        assert span.attributes[TENANT] == tag_for("test-key", "tenant-sub")
        assert span.attributes[TENANT_SOURCE] == "context"


async def test_run_in_executor_carries_context(flowmap_runtime):
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        async with bind(RequestContext("tenant-loop")):
            assert await P.run_in_executor(None, pool, _tenant) == "tenant-loop"
            loop = asyncio.get_running_loop()
            assert await P.run_in_executor(loop, None, _tenant) == "tenant-loop"
            assert await loop.run_in_executor(pool, _tenant) is None  # the drop it fixes


def _streamed(log):
    """A response body: what is bound at each step, and at its cleanup."""
    try:
        for i in range(2):
            log.append(_tenant())
            yield i
    finally:
        log.append(("closed", _tenant()))


def test_carry_steps_a_stream_for_the_request_that_made_it_and_never_binds_the_server(flowmap_runtime):
    """A streaming response is made in the view and stepped by the server after the view's
    binding ended, on a worker thread that serves other requests next: each step (and the
    close a server calls) runs for the request that made it, and the worker between
    steps, or serving its next request, has nothing bound."""
    log: list = []
    plain_log: list = []
    with bind(RequestContext("tenant-stream")):
        body = P.carry(_streamed(log))
        plain = _streamed(plain_log)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as worker:
        assert worker.submit(next, body).result() == 0
        assert worker.submit(_tenant).result() is None  # between two steps
        assert worker.submit(next, plain).result() == 0 and plain_log == [None]  # the drop it fixes
        assert worker.submit(next, body).result() == 1
        worker.submit(body.close).result()
        assert worker.submit(_tenant).result() is None
    assert log == ["tenant-stream", "tenant-stream", ("closed", "tenant-stream")]


def test_carry_closes_a_body_never_stepped_in_the_context_that_made_it(flowmap_runtime):
    """A server closes the body of a request whose client went away before the first
    chunk: the body's cleanup still runs, for its request's tenant."""
    closed = []

    class Body:
        def __iter__(self):
            return self

        def __next__(self):
            raise StopIteration

        def close(self):
            closed.append(_tenant())

    with bind(RequestContext("tenant-gone")):
        body = P.carry(Body())
    body.close()
    assert closed == ["tenant-gone"]


def test_carry_runs_a_boundary_in_the_stream_for_its_tenant_under_the_requests_span(flowmap_runtime):
    rt, exp = flowmap_runtime

    @boundary("llm", "llm.token")
    def token(i):
        return current().tenant_id[:6] + str(i)

    with rt.tracer_provider.get_tracer("t").start_as_current_span("GET /stream") as request:
        with bind(RequestContext("tenant-tokens")):
            body = P.carry(token(i) for i in range(3))
    assert list(body) == ["tenant0", "tenant1", "tenant2"]
    tokens = [s for s in exp.get_finished_spans() if s.name == "llm.token"]
    assert [s.attributes.get(TENANT) for s in tokens] == [tag_for("test-key", "tenant-tokens")] * 3
    assert {s.parent.span_id for s in tokens} == {request.get_span_context().span_id}


# -- acarry: an async body, on asyncio and on trio (through anyio) ------------------------

BACKENDS = ["asyncio", "trio"]


async def _astreamed(log, steps=2):
    """An async response body: what is bound at each step, and at its cleanup."""
    import anyio

    try:
        for i in range(steps):
            log.append(_tenant())
            await anyio.sleep(0)  # (a real suspension: the loop runs other tasks here)
            yield i
    finally:
        log.append(("closed", _tenant()))


def _made_in(tenant, body):
    """``body`` handed to acarry inside ``tenant``'s binding, which then ends (the endpoint
    returned its response)."""
    with bind(RequestContext(tenant)):
        return P.acarry(body)


@pytest.mark.parametrize("backend", BACKENDS)
def test_acarry_steps_an_async_stream_for_its_request_and_never_binds_the_servers_task(flowmap_runtime, backend):
    """A streamed body the server iterates after the endpoint's binding ended: each step
    and the aclose the server calls run for the request that made it; the task stepping
    it has nothing bound between steps, nor after (it serves its next request next)."""
    import anyio

    log, plain_log = [], []

    async def server():
        body = _made_in("tenant-stream", _astreamed(log))
        with bind(RequestContext("tenant-stream")):
            plain = _astreamed(plain_log)
        assert await body.__anext__() == 0
        assert _tenant() is None  # between two steps
        assert await plain.__anext__() == 0 and plain_log == [None]  # the drop it fixes
        assert await body.__anext__() == 1
        await body.aclose()
        await plain.aclose()
        assert _tenant() is None

    anyio.run(server, backend=backend)
    assert log == ["tenant-stream", "tenant-stream", ("closed", "tenant-stream")]


@pytest.mark.parametrize("backend", BACKENDS)
def test_acarry_closes_a_body_never_stepped_in_the_context_that_made_it(flowmap_runtime, backend):
    """A server closes the body of a request whose client went away before the first
    chunk: the body's cleanup still runs, for its request's tenant."""
    import anyio

    closed = []

    class Body:
        def __aiter__(self):
            return self

        async def __anext__(self):
            raise StopAsyncIteration

        async def aclose(self):
            await anyio.sleep(0)
            closed.append(_tenant())

    async def server():
        await _made_in("tenant-gone", Body()).aclose()
        assert _tenant() is None

    anyio.run(server, backend=backend)
    assert closed == ["tenant-gone"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_acarry_passes_errors_and_cancellation_through_unchanged(flowmap_runtime, backend):
    """The body's own error reaches the server as is; a cancelled stream (the client went
    away) is cancelled inside the body, whose cleanup runs for its tenant, and the
    cancellation ends where the server's cancel scope catches it."""
    import anyio

    class Broken(Exception):
        pass

    log = []

    async def failing():
        yield _tenant()
        raise Broken(_tenant())

    async def stalled():
        try:
            yield 0
            await anyio.sleep_forever()
            yield 1
        finally:
            log.append(("cleanup", _tenant()))

    async def server():
        body = _made_in("tenant-err", failing())
        assert await body.__anext__() == "tenant-err"
        with pytest.raises(Broken) as err:
            await body.__anext__()
        assert err.value.args == ("tenant-err",)
        with pytest.raises(StopAsyncIteration):
            await body.__anext__()
        stream = _made_in("tenant-cancel", stalled())
        assert await stream.__anext__() == 0
        with anyio.move_on_after(0.05) as scope:
            await stream.__anext__()
        assert scope.cancelled_caught and log == [("cleanup", "tenant-cancel")]
        assert _tenant() is None

    anyio.run(server, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_acarry_keeps_two_tenants_streams_apart_on_one_loop(flowmap_runtime, backend):
    """Two requests' bodies stepped at once, interleaved on one event loop, each under its
    own request's span: every model call is tagged with its own request's tenant."""
    import anyio

    rt, exp = flowmap_runtime
    tracer = rt.tracer_provider.get_tracer("t")

    @boundary("llm", "llm.token")
    async def token(i):
        await anyio.sleep(0)
        return current().tenant_id[:8] + str(i)

    async def tokens():
        for i in range(3):
            yield await token(i)

    requests, answers = {}, {}

    async def serve(tenant):
        with tracer.start_as_current_span(f"GET /stream {tenant}") as request:
            requests[tenant] = request.get_span_context().span_id
            body = _made_in(tenant, tokens())
        answers[tenant] = [chunk async for chunk in body]

    async def server():
        async with anyio.create_task_group() as group:
            for tenant in ("tenant-a-raw", "tenant-b-raw"):
                group.start_soon(serve, tenant)

    anyio.run(server, backend=backend)
    assert answers == {t: [f"{t[:8]}{i}" for i in range(3)] for t in ("tenant-a-raw", "tenant-b-raw")}
    spans = [s for s in exp.get_finished_spans() if s.name == "llm.token"]
    assert len(spans) == 6
    for span in spans:
        tenant = next(t for t, span_id in requests.items() if span.parent.span_id == span_id)
        assert span.attributes[TENANT] == tag_for("test-key", tenant)


def test_carry_given_an_async_body_says_to_use_acarry(flowmap_runtime):
    async def body():
        yield 0

    stream = body()
    with pytest.raises(TypeError, match="acarry"):
        P.carry(stream)
    asyncio.run(stream.aclose())


def test_inject_headers_carry_traceparent_and_only_the_tag(flowmap_runtime):
    rt, _ = flowmap_runtime
    with bind(RequestContext("tenant-q-raw")):
        with rt.tracer_provider.get_tracer("t").start_as_current_span("send"):
            headers = P.inject_headers({"x-app": "1"})
    assert headers["x-app"] == "1"
    assert headers["traceparent"].startswith("00-")
    assert headers["baggage"] == f"flowmap.tenant={tag_for('test-key', 'tenant-q-raw')}"
    assert "tenant-q-raw" not in repr(headers)


def test_publish_and_consume_link_producer_and_bind_the_tag_as_evidence(flowmap_runtime):
    _, exp = flowmap_runtime
    tag = tag_for("test-key", "tenant-q-raw")
    with bind(RequestContext("tenant-q-raw")):
        with P.publish("orders") as headers:
            pass
    assert current_tag() is None
    with P.consume(headers, "orders"):
        assert current_tag() == tag
        with pytest.raises(MissingContextError):  # evidence, not authority
            current()
        with bind(RequestContext("tenant-q-raw")):  # the consumer authenticates it
            with trace.get_tracer("t", tracer_provider=flowmap_runtime[0].tracer_provider).start_as_current_span("handle"):
                pass
    producer, handle, consumer = exp.get_finished_spans()
    assert producer.kind is SpanKind.PRODUCER and producer.attributes[BOUNDARY] == "queue.publish"
    assert consumer.kind is SpanKind.CONSUMER and consumer.attributes[BOUNDARY] == "queue.consume"
    assert consumer.attributes[TENANT] == tag and consumer.attributes[TENANT_SOURCE] == "baggage"
    assert [link.context.span_id for link in consumer.links] == [producer.context.span_id]
    assert consumer.context.trace_id != producer.context.trace_id  # linked, not parented
    assert handle.parent.span_id == consumer.context.span_id
    assert handle.attributes[TENANT_SOURCE] == "context"


def test_consume_without_tenant_fails_closed(flowmap_runtime):
    with pytest.raises(MissingContextError):
        with P.consume({}, "orders"):
            pass  # pragma: no cover


def test_consume_refuses_a_message_of_another_tenant_inside_a_request(flowmap_runtime):
    headers = {"baggage": f"flowmap.tenant={tag_for('test-key', 'tenant-b')}"}
    with bind(RequestContext("tenant-a")):
        with pytest.raises(TenantSwitchError):
            with P.consume(headers, "orders"):
                pass  # pragma: no cover


def _published(rt):
    with bind(RequestContext("tenant-q-raw")):
        with P.publish("orders") as headers:
            pass
    return dict(headers)


@pytest.mark.parametrize(
    "wire",
    [
        lambda h: {k: v.encode() for k, v in h.items()},  # a client that returns bytes values
        lambda h: {k.encode(): bytearray(v.encode()) for k, v in h.items()},  # bytes names too
        lambda h: [(k, v.encode()) for k, v in h.items()],  # Kafka clients: (str, bytes) pairs
        lambda h: [("Traceparent", h["traceparent"].encode()), ("x-empty", None), ("baggage", h["baggage"])],
    ],
    ids=["bytes-values", "bytes-names-bytearray", "kafka-pairs", "pairs-mixed-case-none"],
)
def test_consume_reads_headers_a_broker_hands_back_as_bytes(flowmap_runtime, wire):
    """publish() writes str headers; a Kafka client hands them back as (key, bytes) pairs
    and others as bytes values. consume() raised a TypeError/AttributeError from
    OpenTelemetry's propagator on them; now it decodes them (UTF-8)."""
    rt, exp = flowmap_runtime
    headers = _published(rt)
    with P.consume(wire(headers), "orders"):
        assert current_tag() == tag_for("test-key", "tenant-q-raw")
    producer, consumer = exp.get_finished_spans()
    assert [link.context.span_id for link in consumer.links] == [producer.context.span_id]
    assert consumer.attributes[TENANT] == tag_for("test-key", "tenant-q-raw")


def test_extract_ignores_header_values_that_are_not_text(flowmap_runtime):
    """Undecodable bytes and values of other types are left out, never an error: the
    message carries no tag then, and consume() fails closed as for any untagged message."""
    from opentelemetry import baggage

    rt, _ = flowmap_runtime
    headers = _published(rt)
    bad = {"traceparent": headers["traceparent"].encode(), "baggage": b"flowmap.tenant=\xff\xfe", "n": 3}
    ctx = P.extract_context(bad)
    assert baggage.get_all(ctx) == {}
    assert trace.get_current_span(ctx).get_span_context().is_valid  # the rest still read
    assert P.extract_context([("baggage",), b"xy", None, ("traceparent", 7)]) is not None
    with pytest.raises(MissingContextError):
        with P.consume(bad, "orders"):
            pass  # pragma: no cover


def test_extract_ignores_non_opaque_and_foreign_baggage(flowmap_runtime):
    from opentelemetry import baggage

    ctx = P.extract_context({"baggage": "flowmap.tenant=tenant-raw,user=alice"})
    assert baggage.get_all(ctx) == {}


def _tenant_bound_in_worker(ctx: RequestContext) -> str | None:
    with bind(ctx):
        return _tenant()


@pytest.mark.parametrize("helper", ["submit", "ContextExecutor", "run_in_executor"])
def test_a_process_pool_is_refused_with_a_config_error_that_says_what_to_do(flowmap_runtime, helper):
    """A context cannot be pickled into another process: each helper refuses a process pool
    when the task is submitted, with flowmap's one-line error (not pickle's TypeError) that
    names the remedy and not the tenant; the remedy it names works."""
    import multiprocessing

    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        with bind(RequestContext("acme-secret-tenant")):
            with pytest.raises(ConfigError) as info:
                if helper == "submit":
                    P.submit(pool, _tenant)
                elif helper == "ContextExecutor":
                    P.ContextExecutor(pool).submit(_tenant)
                else:
                    asyncio.run(_run_in(pool))
            message = str(info.value)
            assert "process pool" in message and "pass the RequestContext" in message
            assert "acme" not in message and "\n" not in message
            # what the message says to do: the context goes as an argument, bound in the worker
            assert pool.submit(_tenant_bound_in_worker, current()).result(timeout=60) == "acme-secret-tenant"


async def _run_in(pool: concurrent.futures.Executor) -> None:
    await P.run_in_executor(None, pool, _tenant)
