"""RedactionProcessor: the request's raw tenant id never leaves the process in a span.

How, with SDK 1.45.2: ``Span.end()`` calls every processor's ``_on_ending(span)``
*before* it builds the ReadableSpan that every ``on_end`` (and so every exporter,
flowmap's or the application's) receives. So rewriting the ending span there covers all
export processors whatever their order — also on a provider the application configured
itself. The span may end on another thread or after its request, so the raw ids are
found without the binding too: from the span's own ``flowmap.tenant`` tag (mapped back
in-process to the raw id bound under it), or captured at ``on_start`` by the standalone
processor. Raw ids stay in process memory only, never in an attribute.

What is scrubbed: span name, attribute keys and values (strings, sequences, maps, and
numbers equal to the id), event names and attributes, link attributes, the status
description. The span then carries ``flowmap.redacted`` = number of values rewritten.

A span that starts before a binding and ends after it (an outer instrumentation's
server span) is covered by :func:`register_tenant_id`.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace.status import Status

from . import attributes as A
from .context import _BINDING, _RAW_BY_TAG, Binding

__all__ = ["RedactionProcessor", "REDACTED_VALUE", "scrub_text", "register_tenant_id"]

_log = logging.getLogger("flowmap.redaction")

REDACTED_VALUE = "[flowmap:redacted]"
# Raw ids to scrub from live spans, keyed by id(span): set at start (or by
# register_tenant_id), popped at the end. A side table rather than an attribute on the
# span because adding an attribute to an SDK Span un-shares its instance dict, which
# alone costs more than everything else flowmap does per span. Only spans that never end
# leave an entry behind, so the table is capped; a stale entry can only add an id to
# scrub, never remove one.
_PENDING: dict[int, tuple[str, ...]] = {}
_PENDING_CAP = 1 << 16
_TENANT = A.TENANT
# Ids this short would match inside unrelated words: only redact them as whole tokens.
_MIN_SUBSTRING_LEN = 4


def _pattern(raw: str) -> re.Pattern[str]:
    return re.compile(r"(?<![0-9A-Za-z])" + re.escape(raw) + r"(?![0-9A-Za-z])")


def scrub_text(text: str, raw_ids: Sequence[str]) -> tuple[str, int]:
    """``text`` with every raw id replaced, and how many occurrences were replaced."""
    n = 0
    for raw in raw_ids:
        if len(raw) >= _MIN_SUBSTRING_LEN:
            if raw in text:
                n += text.count(raw)
                text = text.replace(raw, REDACTED_VALUE)
        elif raw in text:
            text, k = _pattern(raw).subn(REDACTED_VALUE, text)
            n += k
    return text, n


class _Scrubber:
    __slots__ = ("ids", "count")

    def __init__(self, ids: Sequence[str]) -> None:
        self.ids = ids
        self.count = 0

    def text(self, s: str) -> str:
        out, n = scrub_text(s, self.ids)
        self.count += n
        return out

    def value(self, v: Any) -> Any:
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, bool) or v is None or isinstance(v, (bytes, bytearray)):
            return v
        if isinstance(v, (int, float)):
            if str(v) in self.ids:
                self.count += 1
                return REDACTED_VALUE
            return v
        if isinstance(v, Mapping):
            return {self.text(str(k)): self.value(x) for k, x in v.items()}
        if isinstance(v, Sequence):
            before = self.count
            items = [self.value(x) for x in v]
            if self.count != before and any(isinstance(x, str) for x in items):
                # keep the sequence homogeneous once a number became a placeholder
                items = [x if isinstance(x, str) else str(x) for x in items]
            return tuple(items)
        return v

    def attrs(self, attrs: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if not attrs:
            return None
        before = self.count
        out = {self.text(k): self.value(v) for k, v in attrs.items()}
        return out if self.count != before else None


def _bounded(old: Any, new: dict[str, Any]) -> BoundedAttributes:
    ba = BoundedAttributes(
        getattr(old, "maxlen", None), new, immutable=True, max_value_len=getattr(old, "max_value_len", None)
    )
    ba.dropped = getattr(old, "dropped", 0)
    return ba


def _hit(v: Any, raw: str) -> bool:
    """Cheap pre-check (a superset of what ``_Scrubber`` rewrites)."""
    if isinstance(v, str):
        return raw in v
    if isinstance(v, bool) or v is None or isinstance(v, (bytes, bytearray)):
        return False
    if isinstance(v, (int, float)):
        return str(v) == raw
    if isinstance(v, Mapping):
        return any(raw in str(k) or _hit(x, raw) for k, x in v.items())
    if isinstance(v, Sequence):
        return any(_hit(x, raw) for x in v)
    return False


@functools.lru_cache(maxsize=4096)
def _could_be_number(raw: str) -> bool:
    """Whether some int/float attribute could print as ``raw`` (else numbers are skipped).
    Cached: it runs per span and a failed ``float()`` raises, which is slow."""
    try:
        float(raw)
    except ValueError:
        return False
    return True


def register_tenant_id(span: Any, tenant_id: str) -> None:
    """Have redaction scrub ``tenant_id`` from ``span`` whenever it ends.

    Spans started inside ``flowmap.bind`` are covered already. This is for a span that
    starts before the binding and ends after it — e.g. the SERVER span of an outer ASGI
    instrumentation, whose ``url.path`` may hold the id. The id is kept on the live span
    object only, never in an attribute. A no-op for non-SDK or ended spans; never raises.
    """
    try:
        if not isinstance(tenant_id, str) or not tenant_id or not isinstance(span, Span):
            return
        if not span.is_recording():
            return
        ids = _PENDING.get(id(span)) or ()
        if tenant_id not in ids:
            _remember(span, (*ids, tenant_id))
    except Exception:  # noqa: BLE001
        _log.debug("flowmap: could not register a tenant id for redaction", exc_info=True)


def _remember(span: Span, ids: tuple[str, ...]) -> None:
    if len(_PENDING) >= _PENDING_CAP:
        _PENDING.clear()  # only never-ended spans pile up; their ends fall back to the binding
    _PENDING[id(span)] = ids


def capture(span: Span, binding: Binding | None) -> None:
    """At span start: remember the bound raw id for the span's end (which may be elsewhere)."""
    if binding is not None and binding.raw_ids:
        _remember(span, binding.raw_ids)


def redact_ending(span: Span) -> int:
    """At span end (``_on_ending``): scrub the raw ids this span may hold; returns how
    many values were rewritten.

    The ids: the tenant bound now; the tenant whose tag the span carries (so a span that
    ends on another thread or after its request is still covered); any captured at start
    by :class:`RedactionProcessor` or registered with :func:`register_tenant_id`.

    This runs for every span, and most hold no raw id: the check reads the ending span's
    containers directly (pinned SDK 1.45.2; the span has ended, so nothing mutates them
    any more), allocates nothing, and falls back to the public views when they are not
    the types that version builds.
    """
    attrs = span._attributes  # noqa: SLF001
    d = attrs._dict if type(attrs) is BoundedAttributes else dict(attrs or {})  # noqa: SLF001
    tag = d.get(_TENANT)
    b = _BINDING.get()
    ids: tuple[str, ...] | None
    if b is not None and b.raw_ids and (tag is None or tag == b.tag):
        ids = b.raw_ids  # the common case: ends in the binding it started in
    else:
        ids = _RAW_BY_TAG.get(tag) if type(tag) is str else None
        if b is not None and b.raw_ids:
            ids = b.raw_ids if not ids else (*ids, *b.raw_ids)
    if _PENDING:
        extra = _PENDING.pop(id(span), None)
        if extra:
            ids = extra if not ids else (*ids, *(r for r in extra if r not in ids))
    if not ids:
        return 0

    try:  # the SDK's deques and fields (free in 3.11 when nothing raises)
        events = span._events._dq  # noqa: SLF001
        links = span._links._dq  # noqa: SLF001
        desc = span._status._description  # noqa: SLF001
    except AttributeError:
        events, links = list(span.events), list(span.links)
        desc = span.status.description if span.status is not None else None
    name = span._name  # noqa: SLF001
    for raw in ids:
        if raw in name or (desc and raw in desc):
            return _scrub_span(span, ids)
        numeric: bool | None = None
        for k, v in d.items():
            if raw in k:
                return _scrub_span(span, ids)
            t = type(v)
            if t is str:
                if raw in v:
                    return _scrub_span(span, ids)
            elif t is int or t is float:
                if numeric is None:
                    numeric = _could_be_number(raw)
                if numeric and str(v) == raw:
                    return _scrub_span(span, ids)
            elif _hit(v, raw):
                return _scrub_span(span, ids)
        if events:
            for ev in events:
                if raw in ev.name or any(raw in k or _hit(v, raw) for k, v in (ev.attributes or {}).items()):
                    return _scrub_span(span, ids)
        if links:
            for link in links:
                if any(raw in k or _hit(v, raw) for k, v in (link.attributes or {}).items()):
                    return _scrub_span(span, ids)
    return 0


def _scrub_span(span: Span, ids: Sequence[str]) -> int:
    s = _Scrubber(ids)
    name = s.text(span._name)  # noqa: SLF001 - pinned SDK 1.45.2, see module docstring
    if name != span._name:
        span._name = name

    new_attrs = s.attrs(span._attributes)
    events = list(span._events)
    new_events, changed_events = [], False
    for ev in events:
        before = s.count
        ev_name = s.text(ev.name)
        ev_attrs = s.attrs(ev.attributes)
        if s.count != before:
            changed_events = True
            attrs = _bounded(ev.attributes, ev_attrs if ev_attrs is not None else dict(ev.attributes or {}))
            ev = Event(ev_name, attributes=attrs, timestamp=ev.timestamp)
        new_events.append(ev)
    if changed_events:
        span._events = _rebounded(span._events, new_events)

    links = list(span._links)
    new_links, changed_links = [], False
    for link in links:
        la = s.attrs(link.attributes)
        if la is not None:
            changed_links = True
            link = trace_api.Link(link.context, _bounded(link.attributes, la))
        new_links.append(link)
    if changed_links:
        span._links = _rebounded(span._links, new_links)

    status = span._status
    if status is not None and status.description:
        desc = s.text(status.description)
        if desc != status.description:
            span._status = Status(status.status_code, desc)

    if s.count:
        final = dict(new_attrs if new_attrs is not None else span._attributes or {})
        final[A.REDACTED] = s.count
        span._attributes = _bounded(span._attributes, final)
    return s.count


def _rebounded(old: Any, items: list[Any]) -> Any:
    dq = getattr(old, "_dq", None)
    maxlen = dq.maxlen if dq is not None else None
    bl = BoundedList.from_seq(maxlen, items)
    bl.dropped = getattr(old, "dropped", 0)
    return bl


class RedactionProcessor(SpanProcessor):
    """Rewrites ending spans so no value carries the request's raw tenant id.

    Works whatever its position among the provider's processors (see module docstring).
    Never raises into the application.
    """

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            capture(span, _BINDING.get())
        except Exception:  # noqa: BLE001
            _log.debug("flowmap: redaction capture failed", exc_info=True)

    def _on_ending(self, span: Span) -> None:
        try:
            redact_ending(span)
        except Exception:  # noqa: BLE001
            _log.debug("flowmap: redaction failed", exc_info=True)

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
