"""Carry the request's context where Python drops it: executors, threads, queues, and
a streaming response's body (sync or async), which the server iterates after the view
returned.

Each helper captures the *submitting* code's contextvars (flowmap's binding and the
OpenTelemetry context alike) at submit time and runs the work inside a private copy of
them, so a task never sees what a reused worker thread happened to carry, and never
leaks what it binds into the worker.

Queue and stream messages carry ``traceparent`` plus the opaque tenant tag in
``baggage`` (never the raw id). ``consume`` starts a CONSUMER span *linked* to the
producer and binds the tag as evidence (source ``baggage``), not as authority. It reads
headers as brokers return them: a mapping or (key, value) pairs, str or bytes values.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import inspect
import threading
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
)
from typing import Any, TypeVar, Union

from opentelemetry import baggage as otel_baggage
from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from . import attributes as A
from .boundaries import boundary
from .context import bind_tag, outbound_tag
from .errors import ConfigError
from .tagging import is_opaque_tag

__all__ = [
    "ContextExecutor",
    "submit",
    "Thread",
    "start_thread",
    "run_in_executor",
    "carry",
    "acarry",
    "inject_headers",
    "extract_context",
    "publish",
    "consume",
]

T = TypeVar("T")

HeaderValue = Union[str, bytes, bytearray, memoryview]
# What a message's headers come as: a mapping (``publish()`` writes ``{str: str}``; a
# broker or client may hand values back as bytes), or (key, value) pairs as Kafka clients
# return them (``[("traceparent", b"00-…")]``, values possibly None).
Headers = Union[
    Mapping[str, Union[HeaderValue, None]],
    Mapping[bytes, Union[HeaderValue, None]],
    Iterable[tuple[Union[str, bytes], Union[HeaderValue, None]]],
]

_TRACE = TraceContextTextMapPropagator()
_BAGGAGE = W3CBaggagePropagator()


# -- executors and threads -----------------------------------------------------------


def _submitting_context(executor: concurrent.futures.Executor | None) -> contextvars.Context:
    """A copy of the caller's context for a task on ``executor``. A process pool would have
    to pickle it, which Python cannot do: refused here, at submit time, with a clear error
    (pickle's TypeError came only from the task's future)."""
    if isinstance(executor, concurrent.futures.ProcessPoolExecutor):
        raise ConfigError(
            f"flowmap cannot carry a request's context into a process pool ({type(executor).__name__}): "
            "pass the RequestContext to the task as an argument and bind it there"
        )
    return contextvars.copy_context()


class ContextExecutor(concurrent.futures.Executor):
    """Wraps an executor so each task runs in a copy of its submitter's context.

    ``ContextExecutor(pool).submit(fn, ...)`` / ``.map(fn, ...)``; shutting the wrapper
    down shuts the wrapped executor down. For thread pools: a task submitted to a process
    pool raises :class:`ConfigError` (a context cannot cross processes).
    """

    def __init__(self, executor: concurrent.futures.Executor) -> None:
        self._executor = executor

    @property
    def wrapped(self) -> concurrent.futures.Executor:
        return self._executor

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        ctx = _submitting_context(self._executor)
        return self._executor.submit(ctx.run, fn, *args, **kwargs)

    # Executor.map calls self.submit per item in the caller's context: inherited as is.

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=cancel_futures)


def submit(executor: concurrent.futures.Executor, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
    """``executor.submit`` that carries the caller's context into the task (threads only:
    :class:`ConfigError` for a process pool)."""
    ctx = _submitting_context(executor)
    return executor.submit(ctx.run, fn, *args, **kwargs)


# The Thread whose run() is running in its captured context right now, in that context:
# a run() that calls super().run() (another level's run, wrapped too) is already inside.
_RUNNING: contextvars.ContextVar[threading.Thread | None] = contextvars.ContextVar(
    "flowmap_thread_running", default=None
)


def _in_creator_context(run: Any) -> Callable[..., Any]:
    """``run`` (a Thread class's, as found in its namespace: a function or any descriptor)
    made to run in the context its thread captured when it was created."""

    @functools.wraps(run)
    def run_in_creator_context(self: threading.Thread, *args: Any, **kwargs: Any) -> Any:
        ctx = getattr(self, "_flowmap_context", None)
        if ctx is None or _RUNNING.get() is self:  # not initialised yet, or already inside
            return _call(run, self, args, kwargs)
        return ctx.run(_run_as, self, run, args, kwargs)

    run_in_creator_context._flowmap_carries_context = True  # type: ignore[attr-defined]
    return run_in_creator_context


def _call(run: Any, thread: threading.Thread, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    get = getattr(run, "__get__", None)  # bound as Python binds a class attribute
    return (run if get is None else get(thread, type(thread)))(*args, **kwargs)


def _run_as(thread: threading.Thread, run: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    token = _RUNNING.set(thread)
    try:
        return _call(run, thread, args, kwargs)
    finally:
        _RUNNING.reset(token)  # (nothing in the captured context keeps the thread alive)


class Thread(threading.Thread):
    """A ``threading.Thread`` whose ``run`` sees the context of the code that created it.

    Either way of using a ``threading.Thread`` works: ``Thread(target=fn)``, or a
    subclass that overrides ``run()`` (also one whose ``run`` comes from a mixin); the
    ``run`` a subclass defines is wrapped when the class is created, so it runs in a
    private copy of the context captured in ``__init__`` (and so does a direct
    ``t.run()`` call). Nested ``super().run()`` calls enter it once.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._flowmap_context = contextvars.copy_context()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        run = inspect.getattr_static(cls, "run")  # what the MRO resolves: the class's, a mixin's
        if not getattr(run, "_flowmap_carries_context", False):
            cls.run = _in_creator_context(run)  # type: ignore[method-assign]

    @_in_creator_context
    def run(self) -> None:
        super().run()


def start_thread(target: Callable[..., Any], *args: Any, daemon: bool | None = None, name: str | None = None, **kwargs: Any) -> Thread:
    """Create and start a context-carrying :class:`Thread` running ``target(*args, **kwargs)``."""
    t = Thread(target=target, args=args, kwargs=kwargs, daemon=daemon, name=name)
    t.start()
    return t


def run_in_executor(
    loop: asyncio.AbstractEventLoop | None,
    executor: concurrent.futures.Executor | None,
    fn: Callable[..., T],
    *args: Any,
) -> asyncio.Future[T]:
    """``loop.run_in_executor`` that carries the caller's context (it does not by itself;
    :class:`ConfigError` for a process pool)."""
    loop = loop or asyncio.get_running_loop()
    ctx = _submitting_context(executor)
    return loop.run_in_executor(executor, ctx.run, fn, *args)


def carry(iterable: Iterable[T]) -> Iterator[T]:
    """An iterator over ``iterable`` whose every step (and its ``close()``) runs in a
    private copy of the caller's context: a streaming response's body, made in the view
    and iterated by the server after the view returned (Flask's ``Response(generator)``,
    Django's ``StreamingHttpResponse``), still runs for the request's tenant and under
    its span. The stepping thread itself is never bound: a reused worker cannot pass the
    tenant on to its next request, as a ``with bind`` inside the generator's body could.
    Plain iteration only (``send``/``throw`` are not forwarded). An async body:
    :func:`acarry`."""
    if not hasattr(iterable, "__iter__") and hasattr(iterable, "__aiter__"):
        raise TypeError(f"carry() steps a sync body; {type(iterable).__name__} is async: use acarry()")
    context = contextvars.copy_context()
    return _Carried(context, context.run(iter, iterable))


class _Carried(Iterator[T]):
    """:func:`carry`'s iterator. ``close()`` is forwarded even before the first step (a
    server closes a body whose client went away before it was iterated)."""

    __slots__ = ("_context", "_iterator")

    def __init__(self, context: contextvars.Context, iterator: Iterator[T]) -> None:
        self._context = context
        self._iterator = iterator

    def __next__(self) -> T:
        return self._context.run(next, self._iterator)

    def close(self) -> None:
        close = getattr(self._iterator, "close", None)
        if close is not None:
            self._context.run(close)


def acarry(iterable: AsyncIterable[T]) -> AsyncIterator[T]:
    """:func:`carry` for an async body: every ``__anext__`` step (and its ``aclose()``)
    runs in a private copy of the caller's context, on any event loop (asyncio, trio).
    For a body the server iterates after the endpoint's binding ended: Starlette's or
    FastAPI's ``StreamingResponse``, sse-starlette's ``EventSourceResponse``, aiohttp's
    ``web.Response(body=...)``. The server's task is never bound (it serves its next
    request unbound); cancellation and exceptions pass through unchanged. Plain
    iteration only (``asend``/``athrow`` are not forwarded)."""
    context = contextvars.copy_context()
    return _ACarried(context, context.run(aiter, iterable))


class _ACarried(AsyncIterator[T]):
    """:func:`acarry`'s iterator: not an async generator, so ``aclose()`` reaches the body
    even before the first step (a server closes the body of a client that went away)."""

    __slots__ = ("_context", "_iterator")

    def __init__(self, context: contextvars.Context, iterator: AsyncIterator[T]) -> None:
        self._context = context
        self._iterator = iterator

    def __anext__(self) -> Awaitable[T]:
        return _InContext(self._context, self._iterator.__anext__)

    async def aclose(self) -> None:
        aclose = getattr(self._iterator, "aclose", None)
        if aclose is not None:
            await _InContext(self._context, aclose)


class _InContext(Awaitable[T]):
    """Awaits ``start()`` with every step of its coroutine run in ``context``: each
    ``send``/``throw`` the event loop makes is forwarded inside ``context.run``, and what
    the coroutine yields to the loop (asyncio's futures, trio's traps) passes out as is.
    The awaiting task's own context is never entered, so it stays unbound between steps
    (``asyncio.create_task(context=...)`` would do it on asyncio only, in another task)."""

    __slots__ = ("_context", "_start")

    def __init__(self, context: contextvars.Context, start: Callable[[], Awaitable[T]]) -> None:
        self._context = context
        self._start = start

    def __await__(self) -> Generator[Any, Any, T]:
        run = self._context.run
        inner = run(lambda: self._start().__await__())
        step, value = inner.send, None
        while True:
            try:
                signal = run(step, value)
            except StopIteration as stop:
                result: T = stop.value
                return result
            try:
                value = yield signal
                step = inner.send
            except GeneratorExit:  # the awaiting coroutine was closed: close this one too
                run(inner.close)
                raise
            except BaseException as exc:  # noqa: BLE001 - cancellation and errors go to the body
                step, value = inner.throw, exc


# -- queue and stream messages -------------------------------------------------------


def inject_headers(headers: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Write ``traceparent`` (and ``tracestate``) plus ``baggage: flowmap.tenant=<tag>``.

    Only the opaque tag of the bound tenant goes into the baggage, never other entries
    and never the raw id. Returns the (new or given) mapping.
    """
    carrier: MutableMapping[str, str] = {} if headers is None else headers
    _TRACE.inject(carrier)
    tag = outbound_tag()
    if tag is not None:
        _BAGGAGE.inject(carrier, context=otel_baggage.set_baggage(A.BAGGAGE_KEY, tag, context=Context()))
    return carrier


def _text(value: object, encoding: str) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode(encoding)
        except UnicodeDecodeError:
            return None
    return None


def _text_headers(headers: Headers | None, encoding: str = "utf-8") -> dict[str, str]:
    """``headers`` as ``{lowercase name: value}``, text only, repeated names comma-joined
    (as HTTP combines them, and W3C ``baggage`` allows). Names and values given as bytes
    are decoded with ``encoding``; a pair that is not text or bytes (None, a number), or
    whose bytes do not decode, is left out. Shared by :func:`extract_context` (UTF-8: a
    message's headers) and :func:`flowmap.asgi.headers_of` (latin-1: HTTP's)."""
    out: dict[str, str] = {}
    if not headers:
        return out
    items = headers.items() if isinstance(headers, Mapping) else headers
    for item in items:
        try:
            raw_name, raw_value = item
        except (TypeError, ValueError):
            continue
        name = _text(raw_name, encoding)
        value = _text(raw_value, encoding)
        if name is None or value is None:
            continue
        name = name.lower()
        out[name] = f"{out[name]},{value}" if name in out else value
    return out


def extract_context(headers: Headers | None) -> Context:
    """The trace context and opaque tenant tag carried by ``headers`` (nothing else).

    ``headers``: a mapping, or (key, value) pairs as Kafka clients return them; values
    may be str or bytes (decoded as UTF-8; undecodable ones and other types are ignored),
    names are matched case-insensitively.
    """
    carrier = _text_headers(headers)
    ctx = _TRACE.extract(carrier)
    inbound = _BAGGAGE.extract(carrier)
    tag = otel_baggage.get_baggage(A.BAGGAGE_KEY, inbound)
    if is_opaque_tag(tag):
        ctx = otel_baggage.set_baggage(A.BAGGAGE_KEY, tag, context=ctx)
    return ctx


@contextlib.contextmanager
def publish(
    name: str,
    headers: MutableMapping[str, str] | None = None,
    *,
    kind: str = "queue.publish",
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[MutableMapping[str, str]]:
    """A PRODUCER span (boundary ``queue.publish``) whose context is injected into ``headers``.

    ``with publish("orders", msg.headers) as headers: queue.put(msg)``.
    """
    with boundary(kind, name, attributes=attributes):
        yield inject_headers(headers)


@contextlib.contextmanager
def consume(
    headers: Headers | None,
    name: str,
    *,
    kind: str = "queue.consume",
    allow_switch: bool = False,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Span]:
    """A CONSUMER span linked to the producer's, with the message's tenant tag bound.

    ``headers`` as the client hands them over: a mapping, or Kafka-style (key, value)
    pairs, with str or bytes values (see :func:`extract_context`).
    The tag is evidence (source ``baggage``): authenticate the tenant from the message
    and ``bind(RequestContext(...))`` inside for anything that needs ``current()``.
    Without a tag (and nothing bound) the boundary mode applies: fail closed by default.
    """
    extracted = extract_context(headers)
    producer = trace.get_current_span(extracted).get_span_context()
    links = [Link(producer)] if producer.is_valid else None
    tag = otel_baggage.get_baggage(A.BAGGAGE_KEY, extracted)
    with contextlib.ExitStack() as stack:
        if is_opaque_tag(tag):
            stack.enter_context(bind_tag(str(tag), allow_switch=allow_switch))
        span = stack.enter_context(boundary(kind, name, attributes=attributes, links=links))
        yield span
