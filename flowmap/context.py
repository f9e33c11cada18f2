"""The request's tenant context: what the app authenticated, bound for the request's duration.

``bind(ctx)`` sets a contextvar (so every span, boundary and helper sees the tenant) and
attaches an OpenTelemetry context that holds the Binding under a private key (never
propagated: no propagator reads it) and, when a Tagger is configured, baggage with only
``flowmap.tenant`` = the opaque tag, so outbound propagation never sees the raw id.

Whatever carries the OpenTelemetry context into other code carries the binding with it:
OpenTelemetry's threading instrumentation (``Thread.start``, ``ThreadPoolExecutor.submit``),
a framework that attaches ``context.get_current()`` in its workers, a span started with an
explicit parent context. Where flowmap's contextvar holds nothing, that carried binding
is what is bound (:func:`current_binding` and the rest, the boundaries, the tagging
processor); the contextvar always wins, so a ``bind`` in such a worker decides, as it
does anywhere with nothing bound (another tenant is not a switch there: a thread started
inside a request may serve other tenants, binding each).

A propagated tag (from a queue message or inbound baggage) can be bound with
``bind_tag``: that is *evidence*, not authority — ``current()`` still raises, since no
tenant was authenticated, and an authenticated ``bind(ctx)`` always takes precedence.

``RequestContext`` rejects a ``tenant_id`` that is not encodable as UTF-8 (a lone
surrogate): its tag is an HMAC of the UTF-8 bytes, so it could never be bound.
"""

from __future__ import annotations

import contextvars
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from threading import get_ident
from types import FrameType, TracebackType
from typing import Any

from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import trace

from . import attributes as A
from . import runtime
from .errors import ConfigError, MissingContextError, TenantSwitchError
from .spellings import spellings
from .tagging import Tagger, is_opaque_tag

__all__ = [
    "RequestContext",
    "InvalidContextError",
    "Binding",
    "bind",
    "bind_tag",
    "current",
    "current_or_none",
    "current_binding",
    "carried_binding",
    "current_tag",
    "outbound_tag",
    "forget_known_ids",
    "authenticating",
]


class InvalidContextError(ConfigError, ValueError):
    """A RequestContext was built with an invalid field (the value is never echoed)."""


@dataclass(frozen=True, slots=True, repr=False)
class RequestContext:
    """Who a request runs for, as the app authenticated it.

    ``tenant_id`` is the raw id: it stays in the process. ``repr``/``str`` never show it
    (nor the principal), so a stray log line cannot leak it.
    """

    tenant_id: str
    principal: str | None = None
    request_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.tenant_id, str):
            raise InvalidContextError("RequestContext.tenant_id must be a string")
        if not self.tenant_id.strip():
            raise InvalidContextError("RequestContext.tenant_id must not be empty")
        if not _utf8_encodable(self.tenant_id):  # raised outside any except: no chained
            # UnicodeEncodeError (whose .object is the raw id) rides along
            raise InvalidContextError(
                "RequestContext.tenant_id must be valid Unicode text (it holds a lone surrogate, "
                "which has no UTF-8 encoding)"
            )
        if self.principal is not None and not isinstance(self.principal, str):
            raise InvalidContextError("RequestContext.principal must be a string or None")
        if self.request_id is not None and not isinstance(self.request_id, str):
            raise InvalidContextError("RequestContext.request_id must be a string or None")

    def tag(self, tagger: Tagger | None = None) -> str:
        """The opaque tag of this tenant (under ``tagger`` or the configured one)."""
        return (tagger or runtime.get_tagger()).tag(self.tenant_id)

    def __repr__(self) -> str:
        principal = "None" if self.principal is None else "<hidden>"
        return (
            f"RequestContext(tenant_id=<hidden>, principal={principal}, "
            f"request_id={self.request_id!r})"
        )

    __str__ = __repr__


def _utf8_encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Binding:
    """What is bound right now: an authenticated context, or only a propagated tag."""

    ctx: RequestContext | None
    tag: str | None  # computed at bind time when a tagger is configured
    source: str = A.SOURCE_CONTEXT
    key_id: str | None = field(default=None, compare=False)
    # The raw ids redaction scrubs from spans of this binding, built once per bind so the
    # per-span path never allocates (see flowmap.redaction).
    raw_ids: tuple[str, ...] = field(default=(), compare=False, repr=False, init=False)

    def __post_init__(self) -> None:
        if self.ctx is not None:
            raw = self.ctx.tenant_id
            # and the id as a URL or JSON text writes it (only an id with a space, an
            # accent, @…: the usual id has no other spelling)
            object.__setattr__(self, "raw_ids", (raw, *sorted(spellings(raw) - {raw})))

    def tag_under(self, tagger: Tagger) -> str | None:
        """The tag under ``tagger`` (recomputed from the cache if keys differ)."""
        if self.ctx is not None:
            if self.tag is not None and self.key_id == tagger.key_id:
                return self.tag
            return tagger.tag(self.ctx.tenant_id)
        return self.tag


_BINDING: contextvars.ContextVar[Binding | None] = contextvars.ContextVar(
    "flowmap_binding", default=None
)
# The same Binding in the OpenTelemetry context (see the module docstring). A private key:
# only this module sets it and no propagator reads it, so it never leaves the process.
_OTEL_KEY = otel_context.create_key("flowmap.binding")


def carried_binding(context: otel_context.Context | None = None) -> Binding | None:
    """The Binding an OpenTelemetry context carries (``None``: the current one), or None:
    the tenant a thread or callback that received the request's OpenTelemetry context,
    but not flowmap's contextvar, runs for."""
    b = (context if context is not None else otel_context.get_current()).get(_OTEL_KEY)
    return b if type(b) is Binding else None


def _bound(context: otel_context.Context | None = None) -> Binding | None:
    """What is bound here: flowmap's contextvar, else the binding the OpenTelemetry context
    ``context`` (``None``: the current one; a span's parent context) carries."""
    b = _BINDING.get()
    return b if b is not None else carried_binding(context)


class _Authenticating:
    """One ``authenticating()`` block: active until it exits, in every context copied from
    it (a task the resolver starts and that outlives it is not authenticating any more)."""

    __slots__ = ("active",)

    def __init__(self) -> None:
        self.active = True


_AUTHENTICATING: contextvars.ContextVar[_Authenticating | None] = contextvars.ContextVar(
    "flowmap_authenticating", default=None
)


def is_authenticating() -> bool:
    """Whether the code running now is inside an active :func:`authenticating` block."""
    block = _AUTHENTICATING.get()
    return block is not None and block.active


def _unbind_in_forked_child() -> None:
    """A forked process starts with no tenant bound and an empty OpenTelemetry context, as
    a spawned or forkserver one does (Python 3.14's default on Linux). Without this, a pool
    forked lazily inside one request (``ProcessPoolExecutor``, whose workers fork on first
    submit) ran every later job, whatever its tenant, as that request's tenant; and, with
    the binding cleared, still under that request's span: a job that bound its own tenant
    was a cross-tenant call in the first request's trace. Bind in the child what it serves,
    and attach the context a job carries (``propagation.extract_context``) where it runs.

    Runs in the thread that forked, the child's only one, in its current context (the
    one ``multiprocessing`` runs the child's target in)."""
    try:
        if _BINDING.get() is not None:
            _BINDING.set(None)
        if _AUTHENTICATING.get() is not None:  # (a fork inside an authentication block)
            _AUTHENTICATING.set(None)
        if otel_context.get_current():  # the request's span, baggage, anything attached
            otel_context.attach(otel_context.Context())
    except Exception:  # noqa: BLE001 - never break the child
        pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_unbind_in_forked_child)


@contextmanager
def authenticating() -> Iterator[None]:
    """Mark the spans started inside (with no tenant bound) as the request's
    authentication: a token introspection call, a key fetch, a user lookup, made before
    the tenant is known, under an entry span that gets the tenant afterwards. They carry
    ``flowmap.authenticating=true`` and no tag (not even from inbound baggage, which is
    only what the caller claims), raise no alert, and the analyzer does not count them as
    a dropped context. ``TenantMiddleware`` runs its resolver inside it; use it around
    your own authentication in other frameworks (Flask's ``before_request``, an aiohttp
    middleware)."""
    block = _Authenticating()
    token = _AUTHENTICATING.set(block)
    try:
        yield
    finally:
        block.active = False
        _AUTHENTICATING.reset(token)


# tag -> raw ids of tenants bound in this process, so redaction can find the raw id of a
# span from its own ``flowmap.tenant`` when it ends away from its binding (another
# thread, after the request). In-process only, like the Tagger's own cache; bounded.
_RAW_BY_TAG: dict[str, tuple[str, ...]] = {}
_RAW_BY_TAG_CAP = 1 << 16


def _remember_tag(tag: str, raw_ids: tuple[str, ...]) -> None:
    if _RAW_BY_TAG.get(tag) is not raw_ids:
        if len(_RAW_BY_TAG) >= _RAW_BY_TAG_CAP:
            _RAW_BY_TAG.clear()
        _RAW_BY_TAG[tag] = raw_ids


def forget_known_ids() -> None:
    """Forget every tenant id this process has bound (the tag -> raw id map redaction
    uses for spans ending outside their binding). For tests: one test's tenants must not
    be redacted from the next test's spans, whatever order they run in."""
    _RAW_BY_TAG.clear()


def current_binding() -> Binding | None:
    """The active Binding (authenticated or evidence), or None."""
    return _bound()


def current_or_none() -> RequestContext | None:
    """The bound RequestContext, or None (also when only a propagated tag is bound)."""
    b = _bound()
    return None if b is None else b.ctx


def current() -> RequestContext:
    """The bound RequestContext; raises MissingContextError when none is bound."""
    b = _bound()
    if b is None:
        raise MissingContextError("no RequestContext is bound: wrap the request in flowmap.bind(ctx)")
    if b.ctx is None:
        raise MissingContextError(
            "only a propagated tenant tag is bound (evidence, not authority): "
            "authenticate the tenant and bind a RequestContext"
        )
    return b.ctx


def current_tag() -> str | None:
    """The opaque tag of the bound tenant under the configured Tagger, or None."""
    b = _bound()
    if b is None:
        return None
    tagger = runtime.tagger_or_none()
    if tagger is None:
        return b.tag if b.ctx is None else None
    return b.tag_under(tagger)


def outbound_tag() -> str | None:
    """The tag a hop out of this request carries: the bound tenant's, else an opaque
    inbound tag (evidence from the previous hop travels on), else None. Never a raw id."""
    tag = current_tag()
    if tag is None:
        inbound = otel_baggage.get_baggage(A.BAGGAGE_KEY)
        tag = inbound if is_opaque_tag(inbound) else None
    return tag


class _Bind:
    """Context manager (sync and async) that installs a Binding and restores on exit.

    One object may be entered many times — one after the other, nested, or by
    concurrent tasks or threads at once (a per-tenant scope built once and shared) — so
    nothing about an entry lives on the instance alone: each entry records the frame
    that entered it (the ``with`` statement's), its thread and its tokens, in the
    instance's list of open entries and in the entering context (``_ENTERED``, a
    contextvar), and each exit undoes the entry :func:`_take_entry` picks for it — the
    one its own ``with`` statement made, also when a generator's steps run in fresh
    copies of the context or in other threads, and never another thread's.
    """

    __slots__ = ("_binding", "_allow_switch", "_open", "_baggage")

    # every entry made in this context and not exited yet: (bind object, entering frame,
    # thread id, binding token, otel token, binding, binding carried in otel before)
    _ENTERED: contextvars.ContextVar[tuple[_Entry, ...]] = contextvars.ContextVar(
        "flowmap_bind_entries", default=()
    )

    def __init__(self, binding: Binding, allow_switch: bool, baggage: bool = True) -> None:
        self._binding = binding
        self._allow_switch = allow_switch
        self._baggage = baggage  # also attach an OpenTelemetry context with it (and its tag in baggage)
        self._open: list[_Entry] = []  # the open entries, every thread's (see _take_entry)

    def _check_switch(self, outer: Binding) -> None:
        new = self._binding
        if self._allow_switch:
            return
        if new.ctx is not None:
            if outer.ctx is None:
                return  # authenticated context supersedes evidence; the trace shows any change
            if outer.ctx.tenant_id != new.ctx.tenant_id:
                raise TenantSwitchError(
                    "refusing to bind a different tenant inside a bound request "
                    "(pass allow_switch=True if this is really intended)"
                )
            return
        # Evidence (a propagated tag) never overrides a different bound tenant.
        tagger = runtime.tagger_or_none()
        outer_tag = outer.tag_under(tagger) if tagger is not None else outer.tag
        if outer_tag is not None and new.tag is not None and outer_tag != new.tag:
            raise TenantSwitchError(
                "refusing to bind a propagated tenant tag that differs from the bound tenant"
            )

    def __enter__(self) -> RequestContext | None:
        return self._enter(sys._getframe(1))

    def _enter(self, frame: FrameType) -> RequestContext | None:
        binding = self._binding
        outer = _BINDING.get()
        if outer is not None:
            self._check_switch(outer)
            if binding.ctx is None and outer.ctx is not None and not self._allow_switch:
                # evidence that agrees with the authenticated tenant adds nothing: keep
                # authority (for this entry only: the object may be entered elsewhere)
                binding = outer
        token = _BINDING.set(binding)
        if outer is None and binding.ctx is not None and binding.tag is not None:
            _stamp_entry(binding)
        otel_token: Any = None
        before = None
        if self._baggage:
            before = carried_binding()
            otel_token = _attach_binding(binding)
        entry = (self, frame, get_ident(), token, otel_token, binding, before)
        self._open.append(entry)
        _Bind._ENTERED.set((*_Bind._ENTERED.get(), entry))
        return binding.ctx

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exit(sys._getframe(1))

    def _exit(self, frame: FrameType) -> None:
        entry = _take_entry(self, self._open, _Bind._ENTERED, frame)
        if entry is None:
            return
        token, otel_token, bound, before = entry[3:]
        try:
            _BINDING.reset(token)
        except ValueError:
            # exited in another context than its entry (a generator that binds, stepped
            # each time in a fresh copy of the context, as Starlette streams one): its
            # tokens belong to that one (OpenTelemetry would log an error detaching it),
            # so restore explicitly what the entry changed — only where this entry's
            # binding is what is bound: a generator the garbage collector finalises in
            # another request's context must leave that request's tenant alone
            if _BINDING.get() is bound:
                old = token.old_value
                old = None if old is contextvars.Token.MISSING else old
                _BINDING.set(old)
                if otel_token is not None:
                    _restore_otel(old, bound, before)
            return
        if otel_token is not None:  # (after the reset above proved this is the entry's context)
            try:
                otel_context.detach(otel_token)
            except Exception:  # noqa: BLE001
                pass

    # the frames are taken here, not in __enter__/__exit__ called from these: the
    # ``async with`` statement's frame, the same at entry and exit
    async def __aenter__(self) -> RequestContext | None:
        return self._enter(sys._getframe(1))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exit(sys._getframe(1))


# An open entry of a context manager that one object may have entered many times at once
# (a shared bind() scope, a shared Boundary): (owner, entering frame, thread id, what the
# owner needs to undo it...). The frame object itself, not its id: an open entry keeps
# it alive, so no other frame can be mistaken for it.
_Entry = tuple[Any, ...]


def _take_entry(
    owner: Any, opened: list[_Entry], entered: contextvars.ContextVar[tuple[_Entry, ...]], frame: FrameType
) -> _Entry | None:
    """Take the entry an exit of ``owner`` from ``frame`` undoes off ``opened`` (the
    owner's open entries, every thread's) and off ``entered`` (this context's entries,
    every owner's); None when there is none to take.

    1. The latest open entry made from ``frame``: the ``with`` statement being left
       (one frame's blocks close innermost first). A generator keeps its frame across
       its steps whichever context copy or thread runs them (Starlette/anyio step a
       streaming response's iterator in a fresh copy each time), so its exit finds its
       own entry, not the caller's that the copy inherited, nor another thread's.
    2. Else this context's latest open entry of ``owner`` made in this thread (entered
       and left from different frames in one context: ``contextlib.ExitStack``).
    3. Else the latest open entry of ``owner`` made in this thread.
    4. Else None: another thread's entry is never taken (that thread's own exit undoes
       it; taking it left that thread bound after its block).

    The usual case — a ``with`` block whose entry is this context's and the owner's
    latest — is decided from the last items alone. ``opened`` is shared by threads: it
    is read from a copy and changed only by one ``list.remove`` (no entry equals
    another: each holds its own token, and tokens compare by identity).
    """
    stack = entered.get()
    try:
        entry = opened[-1]
    except IndexError:
        return None
    if stack and stack[-1] is entry and entry[1] is frame:
        entered.set(stack[:-1])
    else:
        entry, kept = _pick_entry(owner, opened[:], stack, frame)
        if kept is not stack:
            entered.set(kept)
        if entry is None:
            return None
    try:
        opened.remove(entry)
    except ValueError:
        return None  # (taken meanwhile by another exit)
    return entry


def _pick_entry(
    owner: Any, opened: list[_Entry], stack: tuple[_Entry, ...], frame: FrameType
) -> tuple[_Entry | None, tuple[_Entry, ...]]:
    """:func:`_take_entry`'s rules beyond the usual case: (the entry or None, this
    context's stack without it and without the owner's entries already taken elsewhere)."""
    entry = next((e for e in reversed(opened) if e[1] is frame), None)
    if entry is None:
        thread = get_ident()
        mine = [e for e in stack if e[0] is owner and e[2] == thread and _among(e, opened)]
        entry = mine[-1] if mine else next((e for e in reversed(opened) if e[2] == thread), None)
    if not any(e[0] is owner and (e is entry or not _among(e, opened)) for e in stack):
        return entry, stack
    return entry, tuple(e for e in stack if e[0] is not owner or (e is not entry and _among(e, opened)))


def _among(entry: _Entry, entries: list[_Entry]) -> bool:
    return any(e is entry for e in entries)


def _stamp_entry(binding: Binding) -> None:
    """Give the request's entry span the tenant its service authenticated.

    A framework's instrumentation (Flask's, aiohttp's, Django's, a task queue's) starts
    the SERVER or CONSUMER span before the application's own code binds the tenant, so
    that span stayed untagged — a context dropped on every request whose caller sent no
    tag — or kept the caller's baggage tag, which is evidence, not authority. The first
    authenticated bind under such a span tags it as ``TenantMiddleware`` does; a
    differing inbound tag is kept as ``flowmap.tenant.inbound`` for the analyzer to
    compare. Its raw id is registered for redaction (the span ends after the binding).

    A CONSUMER entry may serve several tenants in turn (a batch of records, one bind per
    record): at the first bind of another tenant under it, the stamp is withdrawn — the
    span is as it was before — so no record's work reads as a switch from the first
    one's. A SERVER entry keeps it: a request that authenticated one tenant and then
    binds another (from a request parameter, say) is the cross-tenant finding to see.
    A batch under which only one tenant was bound keeps it too: the analyzer reads a
    message of another tenant there as a switch, or as lost when a record below it was
    handled with no tenant (flowmap.rules.batch_ran_unbound)."""
    try:
        span = trace.get_current_span()
        if getattr(span, "kind", None) not in _ENTRY_KINDS or not span.is_recording():
            return
        container = getattr(span, "_attributes", None)
        stamp = getattr(container, _STAMP, None)
        if stamp is not None:
            if stamp is not _WITHDRAWN and stamp[0] != binding.tag and span.kind is trace.SpanKind.CONSUMER:
                _withdraw(span, container, stamp)
            return
        attrs = getattr(span, "attributes", None) or {}
        source = attrs.get(A.TENANT_SOURCE)
        if source == A.SOURCE_CONTEXT or source == A.SOURCE_EXPLICIT:
            return  # tagged by TenantMiddleware, by a binding of its own, or by the application
        new = {A.TENANT: binding.tag, A.TENANT_SOURCE: A.SOURCE_CONTEXT}
        old = attrs.get(A.TENANT)
        if source == A.SOURCE_BAGGAGE and old and A.TENANT_INBOUND not in attrs:
            new[A.TENANT_INBOUND] = old
        span.set_attributes(new)
        setattr(container, _STAMP, (binding.tag, old, source, A.TENANT_INBOUND in new))
        from .processors import keep_attributes  # (they import this module)
        from .redaction import register_tenant_id

        keep_attributes(span, new)
        register_tenant_id(span, binding.ctx.tenant_id)  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - telemetry must not break the request
        pass


_STAMP = "_flowmap_stamp"  # on the entry span's attribute container: (tag, old tag, old source, inbound set)
_WITHDRAWN = ("",)


def _withdraw(span: Any, container: Any, stamp: tuple[Any, ...]) -> None:
    """Put the entry span back as it was before :func:`_stamp_entry` (its tag and source,
    or none; no inbound tag added), and stop its processor from restoring the stamp."""
    from .processors import forget_kept  # (they import this module)

    _, old, source, inbound = stamp
    setattr(container, _STAMP, _WITHDRAWN)
    names = (A.TENANT, A.TENANT_SOURCE, A.TENANT_INBOUND) if inbound else (A.TENANT, A.TENANT_SOURCE)
    forget_kept(span, names)
    if old is not None:
        span.set_attributes({A.TENANT: old, A.TENANT_SOURCE: source})
        names = (A.TENANT_INBOUND,) if inbound else ()
    for name in names:
        try:
            del container[name]
        except (KeyError, TypeError):
            pass


_ENTRY_KINDS = (trace.SpanKind.SERVER, trace.SpanKind.CONSUMER)


def _attach_binding(binding: Binding) -> Any:
    """Attach the current OpenTelemetry context with ``binding`` in it, and its tag in
    baggage when it has one; the token to detach it, or None if that failed."""
    try:
        ctx = otel_context.get_current()
        if binding.tag is not None:
            ctx = otel_baggage.set_baggage(A.BAGGAGE_KEY, binding.tag, ctx)
        return otel_context.attach(otel_context.set_value(_OTEL_KEY, binding, ctx))
    except Exception:  # noqa: BLE001 - telemetry must not break the request
        return None


def _restore_otel(outer: Binding | None, bound: Binding, before: Binding | None) -> None:
    """Undo, from another context than its own, what an entry of ``bound`` attached: the
    current OpenTelemetry context with the tenant baggage of ``outer`` (none when nothing
    is bound) if the entry set its own, and, where ``bound`` is the binding it carries,
    the one it carried before the entry (``before``)."""
    try:
        ctx = otel_context.get_current()
        tag = outer.tag if outer is not None else None
        if bound.tag is not None and otel_baggage.get_baggage(A.BAGGAGE_KEY, ctx) != tag:
            if tag is None:
                ctx = otel_baggage.remove_baggage(A.BAGGAGE_KEY, ctx)
            else:
                ctx = otel_baggage.set_baggage(A.BAGGAGE_KEY, tag, ctx)
        if carried_binding(ctx) is bound:
            ctx = otel_context.set_value(_OTEL_KEY, before, ctx)
        if ctx is not otel_context.get_current():
            otel_context.attach(ctx)
    except Exception:  # noqa: BLE001 - telemetry must not break the request
        pass


def bind(ctx: RequestContext, *, allow_switch: bool = False) -> _Bind:
    """Bind ``ctx`` for a block: ``with bind(ctx):`` or ``async with bind(ctx):``.

    Binding a different tenant inside a bound one raises TenantSwitchError (a switch
    mid-request is a bug) unless ``allow_switch=True``; re-binding the same tenant is fine.
    """
    if not isinstance(ctx, RequestContext):
        raise InvalidContextError("bind() needs a flowmap.RequestContext")
    tagger = runtime.tagger_or_none()
    if tagger is not None:
        binding = Binding(ctx, tagger.tag(ctx.tenant_id), A.SOURCE_CONTEXT, tagger.key_id)
        _remember_tag(binding.tag, binding.raw_ids)  # type: ignore[arg-type]
    else:
        binding = Binding(ctx, None, A.SOURCE_CONTEXT, None)
    return _Bind(binding, allow_switch)


def bind_tag(
    tag: str, *, source: str = A.SOURCE_BAGGAGE, allow_switch: bool = False, baggage: bool = True
) -> _Bind:
    """Bind only a propagated opaque tag (evidence, not authority), e.g. in a queue consumer.

    Spans get the tag with ``flowmap.tenant.source`` = ``source``; ``current()`` still
    raises because no tenant was authenticated here. ``baggage=False`` leaves the
    OpenTelemetry context alone (flowmap's own binding only, so code handed that context
    does not carry it): for a binding entered and left from hooks whose order against
    other instrumentations' context changes is not known (a task queue's signals), where
    restoring it could undo theirs out of order.
    """
    if not is_opaque_tag(tag):
        raise InvalidContextError("bind_tag() needs an opaque flowmap tenant tag")
    return _Bind(Binding(None, tag, source, None), allow_switch, baggage)
