"""boundary() on async callables that are not plain ``async def`` functions: the span
must cover the awaited work (and the gate must run before it), not close at the call."""

import asyncio
import functools
import inspect
import time

import pytest
from opentelemetry import trace

from flowmap.attributes import BOUNDARY, TENANT
from flowmap.boundaries import boundary
from flowmap.context import RequestContext, bind
from flowmap.errors import MissingContextError

RAW = "acme-async-raw"


def _check_covers(exp, seen, name):
    """The body ran with the boundary span current, and the span ended after it."""
    (span,) = [s for s in exp.get_finished_spans() if s.name == name]
    assert seen["span_id"] == span.context.span_id
    assert span.end_time >= seen["done_ns"]
    assert span.attributes[BOUNDARY] == "tool" and span.attributes[TENANT]
    return span


async def _work(seen, result="ok"):
    await asyncio.sleep(0.01)
    seen["span_id"] = trace.get_current_span().get_span_context().span_id
    seen["done_ns"] = time.time_ns()
    return result


class Tool:
    def __init__(self, seen):
        self.seen = seen

    async def __call__(self, x):
        return await _work(self.seen, x)


def test_object_with_async_call_is_wrapped_as_a_coroutine_function(flowmap_runtime):
    _, exp = flowmap_runtime
    seen = {}
    wrapped = boundary("tool", "callable-obj")(Tool(seen))
    assert inspect.iscoroutinefunction(wrapped)

    async def main():
        with bind(RequestContext(RAW)):
            return await wrapped("x")

    assert asyncio.run(main()) == "x"
    _check_covers(exp, seen, "callable-obj")


def test_object_with_async_call_is_gated_when_awaited(flowmap_runtime):
    _, exp = flowmap_runtime
    seen = {}
    wrapped = boundary("tool", "callable-obj")(Tool(seen))
    with pytest.raises(MissingContextError):
        asyncio.run(wrapped("x"))
    assert seen == {}  # the body never ran


def test_default_span_name_of_a_callable_object_is_its_class(flowmap_runtime):
    _, exp = flowmap_runtime
    seen = {}
    wrapped = boundary("tool")(Tool(seen))

    async def main():
        with bind(RequestContext(RAW)):
            await wrapped("x")

    asyncio.run(main())
    assert exp.get_finished_spans()[0].name == "Tool"


def test_partial_of_a_coroutine_function(flowmap_runtime):
    _, exp = flowmap_runtime
    seen = {}
    wrapped = boundary("tool", "partial")(functools.partial(_work, seen))
    assert inspect.iscoroutinefunction(wrapped)

    async def main():
        with bind(RequestContext(RAW)):
            return await wrapped("y")

    assert asyncio.run(main()) == "y"
    _check_covers(exp, seen, "partial")


def _marked_functions():
    def plain(seen):
        return _work(seen, "marked")

    marks = []
    if hasattr(asyncio.coroutines, "_is_coroutine"):  # asgiref's marker before 3.12
        legacy = functools.wraps(plain)(lambda seen: plain(seen))
        legacy._is_coroutine = asyncio.coroutines._is_coroutine
        marks.append(legacy)
    if hasattr(inspect, "markcoroutinefunction"):  # Python 3.12+
        marks.append(inspect.markcoroutinefunction(functools.wraps(plain)(lambda seen: plain(seen))))
    return marks


@pytest.mark.parametrize("fn", _marked_functions(), ids=lambda fn: "asyncio-marker" if hasattr(fn, "_is_coroutine") else "markcoroutinefunction")
def test_function_marked_as_a_coroutine_function(flowmap_runtime, fn):
    _, exp = flowmap_runtime
    seen = {}
    wrapped = boundary("tool", "marked")(fn)
    assert inspect.iscoroutinefunction(wrapped)

    async def main():
        with bind(RequestContext(RAW)):
            return await wrapped(seen)

    assert asyncio.run(main()) == "marked"
    _check_covers(exp, seen, "marked")


def _sync_deco(fn):
    """A decorator that does not mark its wrapper (common in libraries)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)

    return wrapper


def test_sync_decorator_around_async_def_span_covers_the_awaited_body(flowmap_runtime):
    _, exp = flowmap_runtime
    seen = {}

    @boundary("tool", "wrapped-async")
    @_sync_deco
    async def slow():
        return await _work(seen, "slow")

    async def main():
        with bind(RequestContext(RAW)):
            outside = trace.get_current_span()
            coro = slow()  # the span is not current between the call and the await
            assert trace.get_current_span() is outside
            return await coro

    assert asyncio.run(main()) == "slow"
    span = _check_covers(exp, seen, "wrapped-async")
    assert (span.end_time - span.start_time) >= 10_000_000  # the 10 ms sleep


def test_sync_decorator_around_async_def_records_the_error(flowmap_runtime):
    _, exp = flowmap_runtime

    @boundary("tool", "wrapped-fails")
    @_sync_deco
    async def fails():
        await asyncio.sleep(0)
        raise KeyError("boom")

    async def main():
        with bind(RequestContext(RAW)):
            await fails()

    with pytest.raises(KeyError):
        asyncio.run(main())
    (span,) = exp.get_finished_spans()
    assert not span.status.is_ok and span.events[0].name == "exception"


def test_sync_decorator_around_async_def_is_gated_at_the_call(flowmap_runtime):
    _, exp = flowmap_runtime
    ran = []

    @boundary("tool", "wrapped-async")
    @_sync_deco
    async def slow():
        ran.append(1)

    with pytest.raises(MissingContextError):
        slow()  # refused before a coroutine even exists
    assert ran == []


def test_sync_function_returning_a_task_span_ends_when_it_is_done(flowmap_runtime):
    _, exp = flowmap_runtime
    seen = {}

    @boundary("tool", "spawns")
    def spawn():
        return asyncio.ensure_future(_work(seen, "task"))

    async def main():
        with bind(RequestContext(RAW)):
            task = spawn()
            assert isinstance(task, asyncio.Task)  # returned as is
            return await task

    assert asyncio.run(main()) == "task"
    _check_covers(exp, seen, "spawns")


def test_other_awaitables_are_returned_unchanged(flowmap_runtime):
    _, exp = flowmap_runtime

    class Awaitable:
        def __await__(self):
            return (yield from asyncio.sleep(0).__await__()) or "done"

    made = Awaitable()

    @boundary("tool", "returns-awaitable")
    def get():
        return made

    async def main():
        with bind(RequestContext(RAW)):
            aw = get()
            assert aw is made
            return await aw

    assert asyncio.run(main()) == "done"
    assert exp.get_finished_spans()[0].name == "returns-awaitable"


def test_a_generator_based_coroutine_is_returned_unchanged(flowmap_runtime):
    """A generator is driven as one (gated at every step); one that is a coroutine
    (``types.coroutine``) is awaited, not iterated, and stays awaitable."""
    import types

    _, exp = flowmap_runtime

    @types.coroutine
    def legacy():
        yield  # one turn of the event loop
        return "legacy"

    @boundary("tool", "returns-legacy-coroutine")
    def get():
        return legacy()

    async def main():
        with bind(RequestContext(RAW)):
            aw = get()
            assert inspect.isgenerator(aw)  # as is
            return await aw

    assert asyncio.run(main()) == "legacy"
    assert exp.get_finished_spans()[0].name == "returns-legacy-coroutine"
