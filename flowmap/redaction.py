"""RedactionProcessor: the request's raw tenant id never leaves the process in a span.

How, with SDK 1.45.2: ``Span.end()`` calls every processor's ``_on_ending(span)``
*before* it builds the ReadableSpan that every ``on_end`` (and so every exporter,
flowmap's or the application's) receives. So rewriting the ending span there covers all
export processors whatever their order — also on a provider the application configured
itself. The raw id is captured at ``on_start`` (the span may end on another thread) and
kept on the live span object only, never in an attribute.

What is scrubbed: span name, attribute keys and values (strings, sequences, maps, and
numbers equal to the id), event names and attributes, link attributes, the status
description. The span then carries ``flowmap.redacted`` = number of values rewritten.
"""

from __future__ import annotations

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
from .context import _BINDING

__all__ = ["RedactionProcessor", "REDACTED_VALUE", "scrub_text"]

_log = logging.getLogger("flowmap.redaction")

REDACTED_VALUE = "[flowmap:redacted]"
_RAW_ATTR = "_flowmap_raw_tenant_ids"
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


def _needs_redaction(span: Span, ids: Sequence[str]) -> bool:
    """Most spans hold no raw id: answer that without building anything (hot path)."""
    attrs = span._attributes or {}  # noqa: SLF001
    attrs = getattr(attrs, "_dict", attrs)  # BoundedAttributes' plain dict: no per-key locking
    status = span._status  # noqa: SLF001
    for raw in ids:
        if raw in span._name:  # noqa: SLF001
            return True
        for k, v in attrs.items():
            if type(v) is str:
                if raw in v or raw in k:
                    return True
            elif raw in k or _hit(v, raw):
                return True
        for ev in span._events:  # noqa: SLF001
            if raw in ev.name or any(raw in k or _hit(v, raw) for k, v in (ev.attributes or {}).items()):
                return True
        for link in span._links:  # noqa: SLF001
            if any(raw in k or _hit(v, raw) for k, v in (link.attributes or {}).items()):
                return True
        if status is not None and status.description and raw in status.description:
            return True
    return False


def _redact_span(span: Span, ids: Sequence[str]) -> int:
    if not _needs_redaction(span, ids):
        return 0
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
            b = _BINDING.get()
            if b is not None and b.ctx is not None:
                setattr(span, _RAW_ATTR, (b.ctx.tenant_id,))
        except Exception:  # noqa: BLE001
            _log.debug("flowmap: redaction capture failed", exc_info=True)

    def _on_ending(self, span: Span) -> None:
        try:
            ids: tuple[str, ...] = getattr(span, _RAW_ATTR, ())
            b = _BINDING.get()
            if b is not None and b.ctx is not None and b.ctx.tenant_id not in ids:
                ids = (*ids, b.ctx.tenant_id)
            if ids:
                _redact_span(span, ids)
        except Exception:  # noqa: BLE001
            _log.debug("flowmap: redaction failed", exc_info=True)

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
