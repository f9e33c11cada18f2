"""Boundaries: the places where a missing tenant becomes a leak, guarded fail-closed.

``boundary(kind)`` is a decorator (sync and async functions, generators, async
generators) and a context manager (``with`` and ``async with``). It opens a span with
``flowmap.boundary``; with no tenant bound it raises MissingContextError *before* the
wrapped code runs (mode ``fail``, the default), or in mode ``record`` marks the span
``flowmap.unscoped``, adds an event and continues (the AlertProcessor then alerts).

A generator's body runs only when it is iterated, which may be after the ``bind`` block
that created it (a lazy, streaming response) or inside another request. So generators
are gated twice: when called (fail early), and again whenever the body is about to run
(first ``next()``/``anext()`` and every resume). The context bound *then* is what counts:
nothing bound is handled as for a function (MissingContextError, or record and go on),
and a different tenant than the one it was created for (or started with) is refused
with TenantSwitchError — like a nested ``bind`` of another tenant — or, in mode
``record``, marked with a ``flowmap.tenant_switch`` event. The span is started at the
first step, so it is tagged with the tenant bound while the body runs.

Async callables that are not plain ``async def`` functions are recognised as such
(:func:`_is_async_callable`): an object whose ``__call__`` is ``async def``, a function
marked with ``inspect.markcoroutinefunction`` (or asyncio's older marker, which
``asgiref``'s ``markcoroutinefunction`` sets before Python 3.12), and a
``functools.partial`` of any of these. They get an ``async def`` wrapper: gated when
awaited, the span covers the awaited work. A sync callable that still returns an
awaitable or a generator — a plain decorator (``functools.wraps``) around an ``async
def`` or a generator function, or a function that returns a generator — is gated when
called, and then:

* a generator or async generator is returned wrapped as one a generator function
  decorated directly returns: gated again whenever its body is about to run (unbound,
  or another tenant than at the call: refused, or marked in mode ``record``), the span —
  the one started at the call, so tagged with the tenant bound then — current only
  while the body runs and ended when it finishes (one never iterated never ends its
  span, as a coroutine never awaited);
* a coroutine is returned wrapped in one that runs it with the span current and ends the
  span when it finishes (one that is never awaited never ends its span, so no span is
  exported for it);
* an asyncio Future or Task is returned as is, and the span ends when it is done;
* any other awaitable is returned as is and the span ends at return: such objects often
  speak other protocols too (``async with session.get(...)``), which a wrapper would
  break, and what runs when one is awaited is not known.

The boundary kind, the scoped flag and the unscoped mark are kept with
:func:`flowmap.processors.keep_attributes`, so the SDK's attribute-count limit cannot
evict them (flowmap's processor puts them back at span end, as it does the tag).

The tenant is only ever taken from the bound context, never from the function's
arguments: a model or a caller cannot choose it.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import sys
from collections.abc import Callable, Mapping
from threading import get_ident
from types import FrameType, TracebackType
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer

from . import attributes as A
from . import runtime
from .context import _OTEL_KEY, Binding, _bound, _take_entry, carried_binding
from .errors import ConfigError, MissingContextError, TenantSwitchError
from .processors import keep_attributes

__all__ = ["boundary", "Boundary", "mark_scoped", "UNSCOPED_EVENT", "SWITCH_EVENT", "span_kind_for"]

F = TypeVar("F", bound=Callable[..., Any])
_log = logging.getLogger("flowmap.boundaries")

_KEPT = (A.BOUNDARY, A.SCOPED, A.UNSCOPED)  # restored at span end if evicted (see _start)

UNSCOPED_EVENT = A.UNSCOPED_EVENT
SWITCH_EVENT = A.SWITCH_EVENT

# Open context-manager boundaries of this task/thread: a shared Boundary instance may be
# entered concurrently from many tasks, so its spans cannot live on the instance. Each
# entry: (boundary, entering frame, thread id, span, detach token, token of _HERE), in
# this stack and in the instance's own list (see flowmap.context._take_entry).
_OPEN: contextvars.ContextVar[tuple[tuple[Any, ...], ...]] = contextvars.ContextVar(
    "flowmap_open_boundaries", default=()
)
# Set at each entry for its token alone: resetting it succeeds only in the context the
# entry was made in, which tells the exit whether the span's context can be detached.
_HERE: contextvars.ContextVar[None] = contextvars.ContextVar("flowmap_boundary_here", default=None)

_KINDS = {
    "http.server": SpanKind.SERVER,
    "http.client": SpanKind.CLIENT,
    "queue.publish": SpanKind.PRODUCER,
    "queue.consume": SpanKind.CONSUMER,
}


def span_kind_for(kind: str) -> SpanKind:
    """The OTel SpanKind that matches a boundary kind (INTERNAL unless it crosses a process)."""
    return _KINDS.get(kind, SpanKind.INTERNAL)


def _scoped_flag(value: Any) -> bool | None:
    """``scoped`` as a bool: True/False, or the integers 1/0; None for anything else (the
    text ``"false"``, which ``bool()`` makes true, must never claim a verified scope)."""
    if type(value) is bool:
        return value
    return bool(value) if type(value) is int and value in (0, 1) else None


def mark_scoped(span: Span | None, scoped: bool) -> None:
    """Record whether a data boundary's operation was restricted to the tenant.

    For instrumentations, which verify the key namespace / query filter themselves;
    ``span=None`` means the current span. Never raises: a ``scoped`` that is neither a
    bool nor the integer 0 or 1 is recorded as false (:func:`_scoped_flag`), so that the
    span never claims a scope nobody verified.
    """
    try:
        span = span or trace.get_current_span()
        flag = _scoped_flag(scoped) is True
        span.set_attribute(A.SCOPED, flag)
        keep_attributes(span, {A.SCOPED: flag})  # survives the attribute-count limit
    except Exception:  # noqa: BLE001
        pass


class Boundary:
    """One boundary declaration; reusable, as decorator or (re-entrant) context manager."""

    __slots__ = ("kind", "name", "scoped", "mode", "attributes", "links", "tracer", "_entered")

    def __init__(
        self,
        kind: str,
        name: str | None = None,
        *,
        scoped: bool | None = None,
        mode: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        links: list[Link] | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        if kind not in A.BOUNDARY_KINDS:
            raise ConfigError(f"unknown boundary kind; use one of {sorted(A.BOUNDARY_KINDS)}")
        flag = None if scoped is None else _scoped_flag(scoped)
        if scoped is not None and flag is None:
            raise ConfigError(f"scoped must be True, False or None, not {type(scoped).__name__}")
        self.kind = kind
        self.name = name
        self.scoped = flag
        self.mode = None if mode is None else runtime.validate_boundary_mode(mode)
        self.attributes = dict(attributes or {})
        self.links = links
        #: the tracer of its spans; None: flowmap's own, as configured when a span starts
        #: (an instrumentation passes its own: its provider and instrumentation scope)
        self.tracer = tracer
        # this instance's open context-manager entries, every thread's (as in _OPEN)
        self._entered: list[tuple[Any, ...]] = []

    # -- the gate and the span -------------------------------------------------------
    def _check(self) -> bool:
        """True when a tenant is bound; raises MissingContextError in fail mode."""
        if _bound() is not None:
            return True
        if (self.mode or runtime.boundary_mode()) == "fail":
            raise MissingContextError(
                f"no tenant context bound at {self.kind} boundary: wrap the request in flowmap.bind(ctx)"
            )
        return False

    def _fails(self) -> bool:
        return (self.mode or runtime.boundary_mode()) == "fail"

    def _switch_error(self) -> TenantSwitchError:
        return TenantSwitchError(
            f"a {self.kind} boundary generator is iterated for another tenant than it was "
            "created (or started) for: create it inside the request that consumes it"
        )

    def _gate_step(self, name: str, created: Binding | None) -> tuple[Binding | None, bool]:
        """Gate a generator body about to start: returns (binding now, switched).

        Raises MissingContextError (nothing bound) or TenantSwitchError (another tenant
        than at creation) in fail mode, after recording the refusal as a span.
        """
        now = _bound()
        try:
            if now is None:
                self._check()  # raises in fail mode
                return None, False
            switched = created is not None and not _same_tenant(created, now)
            if switched and self._fails():
                raise self._switch_error()
            return now, switched
        except (MissingContextError, TenantSwitchError) as err:
            self._record_refusal(name, err, bound=now is not None)
            raise

    def _regate(self, span: Span, first: Binding | None, flagged: list[bool]) -> BaseException | None:
        """Gate a generator body about to resume (called only when the binding changed).

        Returns the error to raise in fail mode; in record mode marks the span instead."""
        now = _bound()
        if now is None:
            if first is None:
                return None  # ran unbound from the start: already marked
            if self._fails():
                return MissingContextError(
                    f"no tenant context bound when a {self.kind} boundary generator resumed: "
                    "consume it inside flowmap.bind(ctx)"
                )
            if not flagged[0]:  # marked once, however many steps follow
                flagged[0] = True
                span.set_attribute(A.UNSCOPED, True)
                keep_attributes(span, {A.UNSCOPED: True})  # survives the attribute-count limit
                span.add_event(UNSCOPED_EVENT, {A.BOUNDARY: self.kind})
            return None
        if first is not None and not _same_tenant(first, now):
            if self._fails():
                return self._switch_error()
            if not flagged[1]:
                flagged[1] = True
                span.add_event(SWITCH_EVENT, {A.BOUNDARY: self.kind})
        return None

    def _start(self, name: str, bound: bool) -> Span:
        attrs: dict[str, Any] = dict(self.attributes)
        attrs[A.BOUNDARY] = self.kind
        if self.scoped is not None and self.kind in A.DATA_BOUNDARIES:
            attrs[A.SCOPED] = self.scoped
        if not bound:
            attrs[A.UNSCOPED] = True
        span = (self.tracer or runtime.get_tracer()).start_span(
            name, kind=span_kind_for(self.kind), attributes=attrs, links=self.links
        )
        # flowmap's processor puts these back at the end if the SDK's attribute-count
        # limit evicts them (a retrieval span with flattened documents), like the tag
        keep_attributes(span, {k: attrs[k] for k in _KEPT if k in attrs})
        if not bound:
            span.add_event(UNSCOPED_EVENT, {A.BOUNDARY: self.kind})
        return span

    def _gate(self, name: str) -> bool:
        """:meth:`_check`, recording a refusal as a span before raising it."""
        try:
            return self._check()
        except MissingContextError as err:
            self._record_refusal(name, err)
            raise

    def _open(self, name: str) -> tuple[Span, object]:
        """Gate, start the span and make it current. Returns (span, detach token)."""
        span = self._start(name, self._gate(name))
        return span, otel_context.attach(trace.set_span_in_context(span))

    def _record_refusal(self, name: str, err: BaseException, bound: bool = False) -> None:
        """A refused boundary is evidence too: emit an (untagged, errored) span for it."""
        try:
            span = self._start(name, bound)
            span.record_exception(err)
            reason = "tenant switch" if isinstance(err, TenantSwitchError) else "missing tenant context"
            span.set_status(Status(StatusCode.ERROR, reason))
            span.end()
        except Exception:  # noqa: BLE001
            pass

    @staticmethod
    def _close(span: Span, token: object | None, exc: BaseException | None) -> None:
        try:
            if exc is not None and not isinstance(exc, (GeneratorExit, StopIteration, StopAsyncIteration)):
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        finally:
            try:
                if token is not None:
                    otel_context.detach(token)
            finally:
                span.end()

    # -- context manager -------------------------------------------------------------
    def __enter__(self) -> Span:
        return self._enter(sys._getframe(1))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exit(exc, sys._getframe(1))

    async def __aenter__(self) -> Span:
        return self._enter(sys._getframe(1))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exit(exc, sys._getframe(1))

    def _enter(self, caller: FrameType) -> Span:
        span, token = self._open(self.name or self.kind)
        entry = (self, caller, get_ident(), span, token, _HERE.set(None))
        _OPEN.set((*_OPEN.get(), entry))
        self._entered.append(entry)
        return span

    def _exit(self, exc: BaseException | None, caller: FrameType) -> None:
        # the entry this ``with`` statement made (see _take_entry): with a shared
        # instance, one entered around a request and again inside a generator stepped in
        # fresh copies of the context, the copy inherits the request's entry, which the
        # generator's exit must not end
        entry = _take_entry(self, self._entered, _OPEN, caller)
        if entry is None:
            return
        span, token, here = entry[3:]
        try:
            _HERE.reset(here)
        except ValueError:
            # entered in another context (a generator stepped in a fresh copy each time):
            # its span's context went with that copy, nothing to detach here
            token = None
        self._close(span, token, exc)

    # -- decorator -------------------------------------------------------------------
    def __call__(self, fn: F) -> F:
        if isinstance(fn, (classmethod, staticmethod)):
            # above @classmethod/@staticmethod: wrap the function, keep the method kind
            return type(fn)(self(fn.__func__))  # type: ignore[return-value]
        name = self.name or _callable_name(fn) or self.kind
        if inspect.isasyncgenfunction(fn):
            return self._wrap_generator(fn, name, self._agen)  # type: ignore[return-value]
        if inspect.isgeneratorfunction(fn):
            return self._wrap_generator(fn, name, self._gen)  # type: ignore[return-value]
        if _is_async_callable(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                span, token = self._open(name)
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    self._close(span, token, exc)
                    raise
                self._close(span, token, None)
                return result

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            span, token = self._open(name)
            created = _bound()
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                self._close(span, token, exc)
                raise
            if inspect.iscoroutine(result):  # a sync wrapper around async work
                otel_context.detach(token)
                return self._run_coroutine(span, result)
            drive = self._driver(result)
            if drive is not None:  # a sync wrapper around a generator function
                otel_context.detach(token)
                return drive(name, created, result, span)
            if asyncio.isfuture(result) and not result.done():
                otel_context.detach(token)
                result.add_done_callback(functools.partial(_end_with, span))
                return result
            self._close(span, token, None)
            return result

        return wrapper  # type: ignore[return-value]

    async def _run_coroutine(self, span: Span, coro: Any) -> Any:
        """Run ``coro`` with the boundary's span current; end the span when it finishes."""
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            result = await coro
        except BaseException as exc:
            self._close(span, token, exc)
            raise
        self._close(span, token, None)
        return result

    def _wrap_generator(self, fn: Callable[..., Any], name: str, drive: Callable[..., Any]) -> Callable[..., Any]:
        """A generator function's wrapper: gated at call time, and again by ``drive``
        (:meth:`_gen` or :meth:`_agen`) whenever the body is about to run."""

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self._gate(name)
            return drive(name, _bound(), fn(*args, **kwargs))

        return wrapper

    def _driver(self, result: Any) -> Callable[..., Any] | None:
        """:meth:`_gen` for a generator a sync callable returned, :meth:`_agen` for an
        async one, else None (a generator-based coroutine is an awaitable: returned as is)."""
        if inspect.isgenerator(result):
            return None if result.gi_code.co_flags & inspect.CO_ITERABLE_COROUTINE else self._gen
        return self._agen if inspect.isasyncgen(result) else None

    def _begin(self, name: str, created: Binding | None, span: Span | None) -> tuple[Span, Binding | None, bool]:
        """A generator body about to run for the first time: (its span, the binding it
        runs for, whether its first step is gated as a resume). A span started when the
        generator was made is kept, and the first step is judged against what was bound
        then; else the first step is gated here and the span starts now."""
        if span is not None:
            return span, created, True
        first, switched = self._gate_step(name, created)
        span = self._start(name, first is not None)
        if switched:
            span.add_event(SWITCH_EVENT, {A.BOUNDARY: self.kind})
        return span, first, False

    def _gen(self, name: str, created: Binding | None, gen: Any, span: Span | None = None) -> Any:
        """Run generator ``gen`` gated whenever its body is about to run (see the module
        docstring); the span lives from first step to exhaustion, and is current only
        while the body runs (never leaks into the consumer between yields).

        ``created``: what was bound when ``gen`` was made. ``span``: one already started
        when it was made (a sync callable that returned ``gen``), else it starts at the
        first step, gated then as a function is."""
        span, first, started = self._begin(name, created, span)
        span_ctx = trace.set_span_in_context(span)
        exc: BaseException | None = None
        flagged = [False, False]  # marked unscoped / switched mid-stream (record mode)
        try:
            send_value: Any = None
            throw: BaseException | None = None
            while True:
                if throw is None and started and _bound() is not first:
                    refused = self._regate(span, first, flagged)
                    if refused is not None:
                        gen.close()
                        raise refused
                started = True
                token = otel_context.attach(_stepping(span_ctx))
                try:
                    item = gen.throw(throw) if throw is not None else gen.send(send_value)
                except StopIteration as stop:
                    return stop.value
                finally:
                    otel_context.detach(token)
                throw = None
                try:
                    send_value = yield item
                except GeneratorExit:
                    gen.close()
                    raise
                except BaseException as e:  # noqa: BLE001 - forwarded into the body
                    throw = e
        except BaseException as e:
            exc = e
            raise
        finally:
            if exc is not None and not isinstance(exc, GeneratorExit):
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            span.end()

    async def _agen(self, name: str, created: Binding | None, agen: Any, span: Span | None = None) -> Any:
        """:meth:`_gen` for an async generator."""
        span, first, started = self._begin(name, created, span)
        span_ctx = trace.set_span_in_context(span)
        exc: BaseException | None = None
        flagged = [False, False]  # marked unscoped / switched mid-stream (record mode)
        try:
            send_value: Any = None
            throw: BaseException | None = None
            while True:
                if throw is None and started and _bound() is not first:
                    refused = self._regate(span, first, flagged)
                    if refused is not None:
                        await agen.aclose()
                        raise refused
                started = True
                token = otel_context.attach(_stepping(span_ctx))
                try:
                    step = agen.athrow(throw) if throw is not None else agen.asend(send_value)
                    item = await step
                except StopAsyncIteration:
                    return
                finally:
                    otel_context.detach(token)
                throw = None
                try:
                    send_value = yield item
                except GeneratorExit:
                    await agen.aclose()
                    raise
                except BaseException as e:  # noqa: BLE001
                    throw = e
        except BaseException as e:
            exc = e
            raise
        finally:
            if exc is not None and not isinstance(exc, GeneratorExit):
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            span.end()


def _is_async_callable(fn: Any) -> bool:
    """Whether calling ``fn`` runs nothing until the result is awaited: a coroutine
    function, also behind ``functools.partial``, marked as one, or an object whose
    ``__call__`` is one."""
    fn = _unwrapped(fn)
    if inspect.iscoroutinefunction(fn):  # 3.12+: also inspect.markcoroutinefunction
        return True
    if _ASYNCIO_MARK is not None and getattr(fn, "_is_coroutine", None) is _ASYNCIO_MARK:
        return True  # asyncio's marker (asgiref's markcoroutinefunction before 3.12)
    if inspect.isroutine(fn) or inspect.isclass(fn) or not callable(fn):
        return False
    try:
        call = type(fn).__call__
    except AttributeError:
        return False
    return inspect.iscoroutinefunction(call) or (
        _ASYNCIO_MARK is not None and getattr(call, "_is_coroutine", None) is _ASYNCIO_MARK
    )


try:
    _ASYNCIO_MARK: Any = asyncio.coroutines._is_coroutine  # noqa: SLF001
except AttributeError:  # removed in a later Python
    _ASYNCIO_MARK = None


def _unwrapped(fn: Any) -> Any:
    """The callable inside ``functools.partial`` layers (at most 100: a cycle ends too)."""
    for _ in range(100):
        if not isinstance(fn, functools.partial):
            break
        fn = fn.func
    return fn


def _callable_name(fn: Any) -> str | None:
    """The span name a decorated callable gets by default: its qualified name, its
    class's for a callable object, the wrapped function's for a partial."""
    fn = _unwrapped(fn)
    name = getattr(fn, "__qualname__", None)
    if isinstance(name, str):
        return name
    name = getattr(type(fn), "__qualname__", None)
    return name if isinstance(name, str) and not inspect.isroutine(fn) else None


def _end_with(span: Span, future: Any) -> None:
    """Done callback: end a boundary's span with how its Future finished. Never raises."""
    try:
        if not future.cancelled():
            exc = future.exception()
            if exc is not None:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
    except Exception:  # noqa: BLE001
        _log.debug("flowmap: could not record how a boundary's future ended", exc_info=True)
    finally:
        span.end()


def _stepping(span_ctx: otel_context.Context) -> otel_context.Context:
    """The context a generator's body runs in for one step: its span's (made at its first
    step), carrying the binding the code stepping it carries now, not the one of the
    first step: what the body runs for is what is bound where it is stepped (a stream
    stepped after its request, in record mode, runs unbound as before)."""
    now = carried_binding()
    if carried_binding(span_ctx) is now:
        return span_ctx
    return otel_context.set_value(_OTEL_KEY, now, span_ctx)


def _same_tenant(a: Binding, b: Binding) -> bool:
    """Whether two bindings are for the same tenant (unknown counts as the same)."""
    if a is b:
        return True
    if a.ctx is not None and b.ctx is not None:
        return a.ctx.tenant_id == b.ctx.tenant_id
    tagger = runtime.tagger_or_none()
    ta = a.tag_under(tagger) if tagger is not None else a.tag
    tb = b.tag_under(tagger) if tagger is not None else b.tag
    return ta is None or tb is None or ta == tb


def boundary(
    kind: str,
    name: str | None = None,
    *,
    scoped: bool | None = None,
    mode: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    links: list[Link] | None = None,
    tracer: Tracer | None = None,
) -> Boundary:
    """Declare a boundary of ``kind`` (one of ``attributes.BOUNDARY_KINDS``).

    Use as ``@boundary("tool")`` on sync/async functions and (async) generators, or as
    ``with boundary("vector", scoped=True):`` / ``async with ...``. ``mode`` overrides
    the process default (``fail``; see ``configure(boundary_mode=...)`` and
    ``FLOWMAP_BOUNDARY_MODE``). ``scoped`` is recorded on data boundaries only.
    ``tracer``: whose spans (default flowmap's; an instrumentation passes its own).
    """
    return Boundary(kind, name, scoped=scoped, mode=mode, attributes=attributes, links=links, tracer=tracer)
