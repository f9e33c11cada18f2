"""Boundaries: fail closed before the body runs, or record-and-continue; every callable shape."""

import asyncio
import functools

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from flowmap import runtime
from flowmap.attributes import BOUNDARY, SCOPED, TENANT, UNSCOPED
from flowmap.boundaries import SWITCH_EVENT, UNSCOPED_EVENT, boundary, mark_scoped
from flowmap.context import RequestContext, bind, current, current_or_none
from flowmap.errors import ConfigError, MissingContextError, TenantSwitchError
from flowmap.tagging import tag_for


def _shapes(ran):
    """The five ways to use a boundary; each appends to ``ran`` when its body runs."""

    @boundary("tool", "sync-fn")
    def sync_fn(tenant_id=None):
        ran.append("sync")
        return 1

    @boundary("llm", "async-fn")
    async def async_fn(tenant_id=None):
        ran.append("async")
        return 2

    @boundary("vector", "gen-fn", scoped=True)
    def gen_fn(tenant_id=None):
        ran.append("gen")
        yield 1
        yield 2

    @boundary("memory", "agen-fn")
    async def agen_fn(tenant_id=None):
        ran.append("agen")
        yield 1
        yield 2

    def cm():
        with boundary("cache", "sync-cm"):
            ran.append("cm")

    async def acm():
        async with boundary("db", "async-cm"):
            ran.append("acm")

    async def run_all():
        # tenant_id passed as an argument must never count as a bound context
        results = [sync_fn(tenant_id="acme"), await async_fn(tenant_id="acme"), list(gen_fn(tenant_id="acme"))]
        results.append([x async for x in agen_fn(tenant_id="acme")])
        cm()
        await acm()
        return results

    calls = [
        lambda: sync_fn(tenant_id="acme"),
        lambda: asyncio.run(async_fn(tenant_id="acme")),
        lambda: gen_fn(tenant_id="acme"),
        lambda: agen_fn(tenant_id="acme"),
        cm,
        lambda: asyncio.run(acm()),
    ]
    return calls, run_all


@pytest.mark.parametrize("index", range(6))
def test_fail_mode_raises_before_the_body_runs(flowmap_runtime, index):
    _, exp = flowmap_runtime
    ran = []
    calls, _ = _shapes(ran)
    with pytest.raises(MissingContextError):
        calls[index]()
    assert ran == []
    (span,) = exp.get_finished_spans()  # the refusal itself is visible in the trace
    assert span.attributes[BOUNDARY] and TENANT not in span.attributes
    assert span.status.status_code.name == "ERROR"


def test_record_mode_marks_and_continues_for_every_shape(flowmap_runtime):
    _, exp = flowmap_runtime
    runtime.set_boundary_mode("record")
    ran = []
    _, run_all = _shapes(ran)
    assert asyncio.run(run_all()) == [1, 2, [1, 2], [1, 2]]
    assert ran == ["sync", "async", "gen", "agen", "cm", "acm"]
    spans = exp.get_finished_spans()
    assert sorted(s.name for s in spans) == sorted(
        ["sync-fn", "async-fn", "gen-fn", "agen-fn", "sync-cm", "async-cm"]
    )
    for s in spans:
        assert s.attributes[UNSCOPED] is True
        assert TENANT not in s.attributes
        assert [e.name for e in s.events] == [UNSCOPED_EVENT]


def test_bound_context_tags_every_shape(flowmap_runtime):
    _, exp = flowmap_runtime
    ran = []
    _, run_all = _shapes(ran)
    with bind(RequestContext("acme-bound")):
        asyncio.run(run_all())
    spans = {s.name: s for s in exp.get_finished_spans()}
    assert len(spans) == 6
    for s in spans.values():
        assert s.attributes[TENANT] == tag_for("test-key", "acme-bound")
        assert UNSCOPED not in s.attributes
    assert spans["gen-fn"].attributes[SCOPED] is True
    assert spans["sync-fn"].attributes[BOUNDARY] == "tool"


def test_per_boundary_mode_overrides_the_default(flowmap_runtime):
    _, exp = flowmap_runtime
    with boundary("cache", mode="record"):
        pass
    runtime.set_boundary_mode("record")
    with pytest.raises(MissingContextError):
        with boundary("cache", mode="fail"):
            pass  # pragma: no cover


def test_env_sets_default_mode_and_a_typo_stays_closed(flowmap_runtime, monkeypatch):
    import logging

    from flowmap import runtime

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("flowmap")
    monkeypatch.setattr(logger, "disabled", False)  # (an earlier test's logging config may
    monkeypatch.setattr(logger, "level", logging.WARNING)  # have silenced it)
    logger.addHandler(handler)

    monkeypatch.setenv("FLOWMAP_BOUNDARY_MODE", "record")
    with boundary("tool"):
        pass
    monkeypatch.setenv("FLOWMAP_BOUNDARY_MODE", "recrod")
    monkeypatch.setattr(runtime, "_bad_mode_warned", False)
    for _ in range(2):
        with pytest.raises(MissingContextError):
            with boundary("tool"):
                pass  # pragma: no cover
    logging.getLogger("flowmap").removeHandler(handler)
    # and the typo is said, once
    said = [r.getMessage() for r in records if "FLOWMAP_BOUNDARY_MODE" in r.getMessage()]
    assert len(said) == 1 and "neither 'fail' nor 'record'" in said[0]


def test_unknown_kind_and_mode_are_config_errors():
    with pytest.raises(ConfigError):
        boundary("database")
    with pytest.raises(ConfigError):
        boundary("db", mode="open")


def test_span_kinds_and_scoped_only_on_data_boundaries(flowmap_runtime):
    _, exp = flowmap_runtime
    with bind(RequestContext("acme-bound")):
        with boundary("http.server", scoped=True):
            pass
        with boundary("queue.publish"):
            pass
    server, producer = exp.get_finished_spans()
    assert server.kind is SpanKind.SERVER and SCOPED not in server.attributes
    assert producer.kind is SpanKind.PRODUCER


def test_exception_in_body_is_recorded_and_propagates(flowmap_runtime):
    _, exp = flowmap_runtime

    @boundary("tool")
    def explode():
        raise KeyError("x")

    with bind(RequestContext("acme-bound")):
        with pytest.raises(KeyError):
            explode()
    (span,) = exp.get_finished_spans()
    assert span.status.status_code.name == "ERROR"
    assert any(e.name == "exception" for e in span.events)


def test_mark_scoped_after_the_fact(flowmap_runtime):
    _, exp = flowmap_runtime
    with bind(RequestContext("acme-bound")):
        with boundary("vector") as span:
            mark_scoped(span, False)
        with boundary("db"):
            mark_scoped(None, True)
    vec, db = exp.get_finished_spans()
    assert vec.attributes[SCOPED] is False and db.attributes[SCOPED] is True


@pytest.mark.parametrize("value", ["false", "no", "True", 2, 0.0, -1])
def test_a_scoped_flag_that_is_not_a_bool_is_refused_or_recorded_false(flowmap_runtime, value):
    """bool("false") is True: a text or other value must never record a verified scope."""
    from flowmap import ConfigError

    with pytest.raises(ConfigError, match="scoped must be True, False or None"):
        boundary("db", scoped=value)
    _, exp = flowmap_runtime
    with bind(RequestContext("acme-bound")):
        with boundary("vector"):
            mark_scoped(None, value)
        with boundary("db"):
            mark_scoped(None, 1)  # the integer 1 is a yes
    vec, db = exp.get_finished_spans()
    assert vec.attributes[SCOPED] is False and db.attributes[SCOPED] is True


def test_generator_span_is_current_only_inside_its_body(flowmap_runtime):
    _, exp = flowmap_runtime
    inside, outside = [], []

    @boundary("stream", "chunks")
    def chunks():
        for i in range(2):
            inside.append(trace.get_current_span().get_span_context().span_id)
            yield i

    with bind(RequestContext("acme-bound")):
        for _ in chunks():
            outside.append(trace.get_current_span().get_span_context().span_id)
    (span,) = exp.get_finished_spans()
    assert set(inside) == {span.context.span_id}
    assert span.context.span_id not in outside


def test_shared_boundary_instance_used_concurrently(flowmap_runtime):
    _, exp = flowmap_runtime
    shared = boundary("tool", "shared")

    async def request(tid):
        async with bind(RequestContext(tid)):
            async with shared:
                await asyncio.sleep(0.001)

    async def main():
        await asyncio.gather(*(request(f"tenant-{i}") for i in range(10)))

    asyncio.run(main())
    tags = sorted(s.attributes[TENANT] for s in exp.get_finished_spans())
    assert tags == sorted(tag_for("test-key", f"tenant-{i}") for i in range(10))


def test_context_manager_in_a_generator_stepped_in_fresh_context_copies_ends_its_span(flowmap_runtime, caplog):
    """Starlette's StreamingResponse runs each next() of a sync iterator in a new copy of
    the context: the boundary entered in one copy and left in another still ends."""
    import contextvars
    import logging

    _, exp = flowmap_runtime

    def stream():
        with boundary("stream", "push"):
            yield "a"
            yield "b"
        yield "done"

    with bind(RequestContext("acme-stream")):
        gen = stream()
        items = []
        with caplog.at_level(logging.ERROR):
            while True:
                try:
                    items.append(contextvars.copy_context().run(next, gen))
                except StopIteration:
                    break
    assert items == ["a", "b", "done"]
    (span,) = exp.get_finished_spans()
    assert span.name == "push" and span.attributes[TENANT] == tag_for("test-key", "acme-stream")
    assert not [r for r in caplog.records if "detach" in r.getMessage()]
    # one shared instance (a module-level guard) over two such streams: each exit ends
    # its own stream's span, found by the generator's frame
    shared = boundary("stream", "shared push")

    def shared_stream(who):
        with shared as span:
            span.set_attribute("who", who)
            yield who
            yield who

    with bind(RequestContext("acme-stream")):
        a, b = shared_stream("A"), shared_stream("B")
        step = contextvars.copy_context
        step().run(next, a), step().run(next, b)
        step().run(next, a), step().run(next, a, None)  # A ends while B is still open
        ended = [s.attributes.get("who") for s in exp.get_finished_spans() if s.name == "shared push"]
        assert ended == ["A"]
        step().run(next, b), step().run(next, b, None)
    assert [s.attributes.get("who") for s in exp.get_finished_spans() if s.name == "shared push"] == ["A", "B"]
    exp.clear()
    # and the usual case is unchanged: a second boundary in one context nests and ends
    with bind(RequestContext("acme-stream")):
        with boundary("tool", "outer"):
            with boundary("db", "inner"):
                pass
    assert [s.name for s in exp.get_finished_spans()] == ["inner", "outer"]


def _no_detach_errors(caplog):
    return not [r for r in caplog.records if "detach" in r.getMessage().lower()]


def test_one_instance_around_a_request_and_in_its_stream_ends_each_span_at_its_own_exit(flowmap_runtime, caplog):
    """A boundary declared once and used around a request and again inside the streaming
    generator it returns, stepped in fresh copies of the context: the generator's exit
    took the request's entry (inherited by the copy) and ended the request's span early;
    the generator's own span was never exported."""
    import contextvars
    import logging

    rt, exp = flowmap_runtime
    stream_boundary = boundary("stream")

    def chunks():
        with stream_boundary as span:
            span.set_attribute("which", "inner")
            yield "a"
            yield "b"

    with bind(RequestContext("acme-stream")), caplog.at_level(logging.ERROR):
        with stream_boundary as outer:
            outer.set_attribute("which", "outer")
            gen, items = chunks(), []
            while True:
                try:
                    items.append(contextvars.copy_context().run(next, gen))
                except StopIteration:
                    break
            assert outer.is_recording()  # not ended by the stream's exit
            with rt.tracer_provider.get_tracer("app").start_as_current_span("after the stream"):
                pass
    assert items == ["a", "b"] and _no_detach_errors(caplog), caplog.text
    spans = {s.attributes.get("which", s.name): s for s in exp.get_finished_spans()}
    assert set(spans) == {"inner", "outer", "after the stream"}
    outer_id = spans["outer"].context.span_id
    assert spans["inner"].parent.span_id == outer_id
    assert spans["after the stream"].parent.span_id == outer_id
    assert spans["outer"].end_time >= spans["after the stream"].end_time
    tag = tag_for("test-key", "acme-stream")
    assert all(s.attributes[TENANT] == tag for s in spans.values())


def test_one_instance_around_a_handler_and_in_its_async_stream_read_in_new_tasks(flowmap_runtime, caplog):
    """The same with ``async with`` and an async generator read with asyncio.wait_for,
    which runs each step in a new task (a fresh copy of the context, Python 3.11)."""
    import logging

    _, exp = flowmap_runtime
    stream_boundary = boundary("stream")

    async def chunks():
        async with stream_boundary as span:
            span.set_attribute("which", "inner")
            yield "a"
            yield "b"

    async def handler():
        async with bind(RequestContext("acme-stream")):
            async with stream_boundary as outer:
                outer.set_attribute("which", "outer")
                gen, items = chunks(), []
                while True:
                    try:
                        items.append(await asyncio.wait_for(gen.__anext__(), 5))
                    except StopAsyncIteration:
                        break
                return items, outer.is_recording()

    with caplog.at_level(logging.ERROR):
        assert asyncio.run(handler()) == (["a", "b"], True)
    assert _no_detach_errors(caplog), caplog.text
    spans = {s.attributes["which"]: s for s in exp.get_finished_spans()}
    assert set(spans) == {"inner", "outer"}
    assert spans["inner"].parent.span_id == spans["outer"].context.span_id


def test_a_stream_stepped_first_in_the_request_then_in_fresh_copies_ends_its_span_quietly(flowmap_runtime, caplog):
    """Its first chunk read in the request's own context (to send the headers), the rest
    in fresh copies that inherit the entry: the exit in a copy cannot detach the span's
    context (OpenTelemetry logged "Failed to detach context" with a traceback), and
    need not: it went with the request's context. The span still ends."""
    import contextvars
    import logging

    _, exp = flowmap_runtime

    def chunks():
        with boundary("stream", "push"):
            yield "a"
            yield "b"

    with bind(RequestContext("acme-stream")), caplog.at_level(logging.ERROR):
        gen = chunks()
        items = [next(gen)]
        while True:
            try:
                items.append(contextvars.copy_context().run(next, gen))
            except StopIteration:
                break
    assert items == ["a", "b"] and _no_detach_errors(caplog), caplog.text
    (span,) = exp.get_finished_spans()
    assert span.name == "push" and span.attributes[TENANT] == tag_for("test-key", "acme-stream")


# -- generators run their body when iterated, not when called --------------------------
# A streaming response is often created inside the request's bind block and iterated
# after it (or, worse, inside another request): the gate must judge the context bound
# when the body actually runs.


def _drain(agen):
    """Every item of an async generator, read in a fresh event loop."""

    async def items():
        return [x async for x in agen]

    return asyncio.run(items())


def _lazy_shapes(ran):
    @boundary("db", "rows", scoped=True)
    def rows():
        ran.append(current().tenant_id)
        yield 1
        yield 2

    @boundary("vector", "arows", scoped=True)
    async def arows():
        ran.append(current().tenant_id)
        yield 1
        yield 2

    return [(rows, list), (arows, _drain)]


@pytest.mark.parametrize("shape", [0, 1], ids=["gen", "agen"])
def test_generator_iterated_after_its_bind_block_fails_closed(flowmap_runtime, shape):
    _, exp = flowmap_runtime
    ran = []
    make, iterate = _lazy_shapes(ran)[shape]
    with bind(RequestContext("acme-bound")):
        lazy = make()  # the gate passes here...
    with pytest.raises(MissingContextError):
        iterate(lazy)  # ...but the body would run with nothing bound
    assert ran == []
    (span,) = exp.get_finished_spans()  # the refusal is in the trace, as for functions
    assert TENANT not in span.attributes and span.attributes[UNSCOPED] is True
    assert span.status.status_code.name == "ERROR"


@pytest.mark.parametrize("shape", [0, 1], ids=["gen", "agen"])
def test_generator_iterated_unbound_in_record_mode_is_marked(flowmap_runtime, shape):
    _, exp = flowmap_runtime
    runtime.set_boundary_mode("record")
    ran = []

    @boundary("db", "rows", scoped=True)
    def rows():
        ran.append("body")
        yield 1

    @boundary("db", "rows", scoped=True)
    async def arows():
        ran.append("body")
        yield 1

    with bind(RequestContext("acme-bound")):
        lazy = rows() if shape == 0 else arows()
    assert (list(lazy) if shape == 0 else _drain(lazy)) == [1]
    assert ran == ["body"]
    (span,) = exp.get_finished_spans()
    assert TENANT not in span.attributes
    assert span.attributes[UNSCOPED] is True
    assert [e.name for e in span.events] == [UNSCOPED_EVENT]


@pytest.mark.parametrize("shape", [0, 1], ids=["gen", "agen"])
def test_generator_iterated_for_another_tenant_is_refused(flowmap_runtime, shape):
    _, exp = flowmap_runtime
    ran = []
    make, iterate = _lazy_shapes(ran)[shape]
    with bind(RequestContext("tenant-a")):
        lazy = make()
    with bind(RequestContext("tenant-b")):
        with pytest.raises(TenantSwitchError):
            iterate(lazy)
    assert ran == []  # tenant-a's operation never ran for tenant-b
    (span,) = exp.get_finished_spans()
    assert span.attributes[TENANT] == tag_for("test-key", "tenant-b")  # who it was refused in
    assert span.status.status_code.name == "ERROR"


@pytest.mark.parametrize("shape", [0, 1], ids=["gen", "agen"])
def test_generator_switch_in_record_mode_runs_for_and_is_tagged_by_the_iterating_tenant(
    flowmap_runtime, shape
):
    _, exp = flowmap_runtime
    runtime.set_boundary_mode("record")
    ran = []
    make, iterate = _lazy_shapes(ran)[shape]
    with bind(RequestContext("tenant-a")):
        lazy = make()
    with bind(RequestContext("tenant-b")):
        assert iterate(lazy) == [1, 2]
    assert ran == ["tenant-b"]
    (span,) = exp.get_finished_spans()
    assert span.attributes[TENANT] == tag_for("test-key", "tenant-b")
    assert [e.name for e in span.events] == [SWITCH_EVENT]


@pytest.mark.parametrize("shape", [0, 1], ids=["gen", "agen"])
def test_generator_created_and_iterated_in_separate_blocks_of_one_tenant(flowmap_runtime, shape):
    _, exp = flowmap_runtime
    ran = []
    make, iterate = _lazy_shapes(ran)[shape]
    with bind(RequestContext("acme-bound", request_id="1")):
        lazy = make()
    with bind(RequestContext("acme-bound", request_id="2")):
        assert iterate(lazy) == [1, 2]
    (span,) = exp.get_finished_spans()
    assert span.attributes[TENANT] == tag_for("test-key", "acme-bound")
    assert span.status.status_code.name == "UNSET" and not span.events


def test_generator_resumed_after_its_bind_block_fails_closed(flowmap_runtime):
    _, exp = flowmap_runtime
    cleaned, ran = [], []

    @boundary("stream", "chunks")
    def chunks():
        try:
            yield "first"
            ran.append("second chunk")  # pragma: no cover - never resumed unbound
            yield "second"  # pragma: no cover
        finally:
            cleaned.append(True)

    with bind(RequestContext("acme-bound")):
        stream = chunks()
        assert next(stream) == "first"  # started (peeked) inside the request...
    with pytest.raises(MissingContextError):
        next(stream)  # ...resumed after it
    assert ran == [] and cleaned == [True]  # the body was closed, its cleanup ran
    (span,) = exp.get_finished_spans()
    assert span.attributes[TENANT] == tag_for("test-key", "acme-bound")
    assert span.status.status_code.name == "ERROR"


@pytest.mark.parametrize("shape", [0, 1], ids=["gen", "agen"])
def test_generator_resumed_unbound_in_record_mode_runs_unbound(flowmap_runtime, shape):
    """The body runs in its span's OpenTelemetry context, made at its first step inside
    the request, which carries that request's binding: a resume after the request (in
    record mode) must still run with nothing bound, its spans untagged, as it is judged."""
    rt, exp = flowmap_runtime
    runtime.set_boundary_mode("record")
    tracer = rt.tracer_provider.get_tracer("t")
    seen = []

    def step():
        seen.append(current_or_none())
        tracer.start_span(f"chunk {len(seen)}").end()

    @boundary("stream", "chunks")
    def chunks():
        step()
        yield 1
        step()
        yield 2

    @boundary("stream", "chunks")
    async def achunks():
        step()
        yield 1
        step()
        yield 2

    async def both_steps():
        with bind(RequestContext("acme-bound")):
            stream = achunks()
            first = await stream.__anext__()
        return [first, *[x async for x in stream]]

    if shape == 0:
        with bind(RequestContext("acme-bound")):
            stream = chunks()
            assert next(stream) == 1
        assert list(stream) == [2]
    else:
        assert asyncio.run(both_steps()) == [1, 2]
    assert seen[0].tenant_id == "acme-bound" and seen[1] is None
    by_name = {s.name: s for s in exp.get_finished_spans()}
    assert by_name["chunk 1"].attributes[TENANT] == tag_for("test-key", "acme-bound")
    assert TENANT not in by_name["chunk 2"].attributes
    assert [e.name for e in by_name["chunks"].events] == [UNSCOPED_EVENT]


def test_generator_exceptions_propagate_unchanged(flowmap_runtime):
    boom = KeyError("body")

    @boundary("tool", "explodes")
    def explodes():
        yield 1
        raise boom

    @boundary("tool", "catches")
    def catches():
        try:
            yield 1
        except ValueError as err:
            yield err

    with bind(RequestContext("acme-bound")):
        stream = explodes()
        assert next(stream) == 1
        with pytest.raises(KeyError) as err:
            next(stream)
        assert err.value is boom
        other = catches()
        next(other)
    thrown = ValueError("from the consumer")
    assert other.throw(thrown) is thrown  # thrown in as is, even with nothing bound now


# -- a generator returned by a sync callable ---------------------------------------------
# A plain decorator (functools.wraps) around a generator function hides it: @boundary sees
# an ordinary function. The generator it returns is gated at every step all the same.


def _plain_deco(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)

    return wrapper


def _wrapped_shapes(ran, tracer=None):
    @boundary("db", "rows", scoped=True)
    @_plain_deco
    def rows():
        ran.append(getattr(current_or_none(), "tenant_id", None))
        if tracer is not None:
            with tracer.start_as_current_span("row read"):
                pass
        yield 1
        yield 2

    @boundary("vector", "arows", scoped=True)
    @_plain_deco
    async def arows():
        ran.append(getattr(current_or_none(), "tenant_id", None))
        if tracer is not None:
            with tracer.start_as_current_span("row read"):
                pass
        yield 1
        yield 2

    return [(rows, list), (arows, _drain)]


@pytest.mark.parametrize("shape", [0, 1], ids=["gen", "agen"])
def test_a_wrapped_generator_iterated_after_its_bind_block_fails_closed(flowmap_runtime, shape):
    _, exp = flowmap_runtime
    ran = []
    make, iterate = _wrapped_shapes(ran)[shape]
    with bind(RequestContext("acme-bound")):
        lazy = make()
    with pytest.raises(MissingContextError):
        iterate(lazy)
    assert ran == []  # the body never ran unbound
    (span,) = exp.get_finished_spans()
    assert span.name == ("rows", "arows")[shape] and span.status.status_code.name == "ERROR"


@pytest.mark.parametrize("shape", [0, 1], ids=["gen", "agen"])
def test_a_wrapped_generator_iterated_for_another_tenant_is_refused(flowmap_runtime, shape):
    _, exp = flowmap_runtime
    ran = []
    make, iterate = _wrapped_shapes(ran)[shape]
    with bind(RequestContext("tenant-a")):
        lazy = make()
    with bind(RequestContext("tenant-b")):
        with pytest.raises(TenantSwitchError):
            iterate(lazy)
    assert ran == []  # tenant-a's operation never ran for tenant-b
    (span,) = exp.get_finished_spans()
    assert span.status.status_code.name == "ERROR"


@pytest.mark.parametrize("shape", [0, 1], ids=["gen", "agen"])
def test_a_wrapped_generator_span_covers_its_body_and_is_its_parent(flowmap_runtime, shape):
    rt, exp = flowmap_runtime
    ran = []
    make, iterate = _wrapped_shapes(ran, rt.tracer_provider.get_tracer("app"))[shape]
    with bind(RequestContext("acme-bound", request_id="1")):
        lazy = make()
        assert not exp.get_finished_spans()  # not ended when the generator is made
    with bind(RequestContext("acme-bound", request_id="2")):  # the same tenant: fine
        assert iterate(lazy) == [1, 2]
    assert ran == ["acme-bound"]
    read, span = exp.get_finished_spans()
    assert read.name == "row read" and read.parent.span_id == span.context.span_id
    assert span.attributes[BOUNDARY] in ("db", "vector") and span.attributes[SCOPED] is True
    assert span.attributes[TENANT] == read.attributes[TENANT] == tag_for("test-key", "acme-bound")
    assert span.end_time >= read.end_time and span.status.status_code.name == "UNSET"


@pytest.mark.parametrize("shape", [0, 1], ids=["gen", "agen"])
def test_a_wrapped_generator_in_record_mode_is_marked_where_it_ran_unbound_or_switched(flowmap_runtime, shape):
    _, exp = flowmap_runtime
    runtime.set_boundary_mode("record")
    ran = []
    make, iterate = _wrapped_shapes(ran)[shape]
    with bind(RequestContext("tenant-a")):
        unbound, switched = make(), make()
    assert iterate(unbound) == [1, 2]  # runs, recorded
    with bind(RequestContext("tenant-b")):
        assert iterate(switched) == [1, 2]
    assert ran == [None, "tenant-b"]
    first, second = exp.get_finished_spans()
    assert first.attributes[UNSCOPED] is True and UNSCOPED_EVENT in [e.name for e in first.events]
    assert [e.name for e in second.events] == [SWITCH_EVENT]


def test_a_function_returning_a_generator_is_gated_when_it_runs(flowmap_runtime):
    ran = []

    def _rows():
        ran.append(current().tenant_id)
        yield 1

    @boundary("db", "rows")
    def rows():
        return _rows()  # an ordinary function handing back another one's generator

    with bind(RequestContext("tenant-a")):
        lazy = rows()
    with bind(RequestContext("tenant-b")):
        with pytest.raises(TenantSwitchError):
            list(lazy)
    assert ran == []


def test_boundary_above_classmethod_and_staticmethod_keeps_the_method_kind(flowmap_runtime):
    """Either decorator order works: @boundary outermost wraps the function inside."""
    _, exp = flowmap_runtime

    class Store:
        prefix = "t:"

        @boundary("cache", "store.key")
        @classmethod
        def key(cls, name):
            return cls.prefix + name

        @boundary("cache", "store.plain")
        @staticmethod
        def plain(name):
            return name

    with bind(RequestContext("acme")):
        assert Store.key("a") == "t:a" and Store().key("b") == "t:b"
        assert Store.plain("c") == "c" and Store().plain("d") == "d"
    assert [s.name for s in exp.get_finished_spans()] == ["store.key", "store.key", "store.plain", "store.plain"]
    with pytest.raises(MissingContextError):
        Store.key("e")


# -- record mode, judged by the analyzer ------------------------------------------------
# The runtime's record-mode marks (flowmap.unscoped, the flowmap.tenant_switch event) are
# what `flowmap check` sees of a boundary that ran unbound or for another tenant: each
# scenario runs the real runtime, writes its spans as the exporter does, and analyses them.

_RAW_IDS = ("tenant-a", "tenant-b")


def _checked(tmp_path, spans):
    """The spans as `flowmap check` reads them: OTLP JSON Lines, through flowmap.analyze.
    The findings are (rule, severity, span name); no output names a raw tenant id."""
    import json

    from flowmap import analyze
    from flowmap.exporter import encode_spans
    from flowmap.formats import OutputFormat, reporter_for

    path = tmp_path / "record.jsonl"
    path.write_text(json.dumps(encode_spans(spans)) + "\n")
    result = analyze([path])
    text = reporter_for(OutputFormat.JSON).render(result) + reporter_for(OutputFormat.TEXT).render(result)
    assert not any(raw in text for raw in _RAW_IDS)
    return result, [(f.rule, str(f.severity), f.span_name) for f in result.findings]


def _request(tenant, fn):
    """``fn`` inside a request of ``tenant``: its SERVER span, the tenant bound."""
    tracer = runtime.get_tracer()
    with bind(RequestContext(tenant)):
        with tracer.start_as_current_span("POST /chat", kind=SpanKind.SERVER, attributes={"http.route": "/chat"}):
            return fn()


def test_record_mode_boundary_in_a_service_that_never_binds_is_a_dropped_context(flowmap_runtime, tmp_path):
    """A service reached with the caller's traceparent and tenant baggage, that never
    binds: its record-mode tool boundary runs, tagged from the baggage (evidence, not a
    binding), and marked flowmap.unscoped. The analyzer judges it untagged: a dropped
    context at a tool boundary, under the entry the baggage tagged."""
    from opentelemetry import context, propagate

    _, exp = flowmap_runtime
    runtime.set_boundary_mode("record")

    @boundary("tool", "execute_tool refund")
    def refund():
        return "done"

    headers = {
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "baggage": f"flowmap.tenant={tag_for('test-key', 'tenant-a')}",
    }
    token = context.attach(propagate.extract(headers))
    try:
        with runtime.get_tracer().start_as_current_span("POST /tools/refund", kind=SpanKind.SERVER,
                                                        attributes={"http.request.method": "POST"}):
            assert refund() == "done"
    finally:
        context.detach(token)
    tool = next(s for s in exp.get_finished_spans() if s.name == "execute_tool refund")
    assert tool.attributes[UNSCOPED] is True and tool.attributes[TENANT] == tag_for("test-key", "tenant-a")
    result, found = _checked(tmp_path, exp.get_finished_spans())
    assert found == [("context-dropped", "high", "execute_tool refund")]
    message = result.findings[0].message
    assert "without a bound tenant (record mode)" in message and "baggage" in message
    # the same call inside a binding is clean
    exp.clear()
    with bind(RequestContext("tenant-a")):
        refund()
    assert _checked(tmp_path, exp.get_finished_spans())[1] == []


def test_record_mode_stream_resumed_after_its_request_ended_is_a_dropped_context(flowmap_runtime, tmp_path):
    """A boundary generator started in its request and resumed after it ended keeps the
    tag it started with; marked flowmap.unscoped, it is judged untagged: the edge from the
    request into the stream counts as dropped in the flow map."""
    _, exp = flowmap_runtime
    runtime.set_boundary_mode("record")

    @boundary("stream", "stream answer")
    def answer():
        yield from range(3)

    def start():
        stream = answer()
        next(stream)
        return stream

    stream = _request("tenant-a", start)
    assert list(stream) == [1, 2]  # nothing bound now
    result, found = _checked(tmp_path, exp.get_finished_spans())
    assert found == [("context-dropped", "high", "stream answer")]
    assert "record mode" in result.findings[0].message and "when it started" in result.findings[0].message
    (edge,) = [e for e in result.flow.edges.values() if e.target.endswith("stream answer")]
    assert (edge.dropped, edge.inherited) == (1, 0)
    # near miss: drained inside its request
    exp.clear()
    assert _request("tenant-a", lambda: list(answer())) == [0, 1, 2]
    assert _checked(tmp_path, exp.get_finished_spans())[1] == []


@pytest.mark.parametrize("started", [False, True], ids=["created-in-a", "started-in-a"])
def test_record_mode_stream_stepped_in_another_tenants_request_is_cross_tenant(flowmap_runtime, tmp_path, started):
    """A stream made in tenant A's request and stepped in tenant B's (stashed in a module
    cache): fail mode refuses it (TenantSwitchError); record mode lets it run and marks
    its span with a flowmap.tenant_switch event, which the analyzer reports as a
    cross-tenant on that span whatever its tag."""
    _, exp = flowmap_runtime
    runtime.set_boundary_mode("record")

    @boundary("stream", "stream answer")
    def answer():
        yield from range(3)

    def make():
        stream = answer()
        if started:
            next(stream)
        return stream

    stash = _request("tenant-a", make)
    _request("tenant-b", lambda: list(stash))
    result, found = _checked(tmp_path, exp.get_finished_spans())
    assert found == [("cross-tenant", "critical", "stream answer")]
    assert "another tenant than the one it was created or started for" in result.findings[0].message
    assert result.paths[0].break_rule == "cross-tenant"
    # near miss: made and stepped in two requests of the same tenant
    exp.clear()
    stash = _request("tenant-a", make)
    _request("tenant-a", lambda: list(stash))
    assert _checked(tmp_path, exp.get_finished_spans())[1] == []
