"""Span processors that stamp every span with the opaque tag of the tenant it runs for.

``TenantSpanProcessor`` does only that. ``FlowmapSpanProcessor`` — what
``flowmap.configure()`` installs — does tagging, redaction and alerting in one
processor, because on the hot path the SDK's per-processor dispatch and
``set_attribute``'s per-call lock and validation cost more than flowmap's own work:

* ``on_start``: one contextvar read; the cached tag and the source written straight
  into the new span's attribute dict (the span is not yet visible to any other thread).
  With nothing in the contextvar, the binding the parent OpenTelemetry context carries
  (:func:`flowmap.context.carried_binding`: a thread or callback the request's
  OpenTelemetry context reached, flowmap's contextvar not) tags the span as the
  contextvar's would, with the binding's own source.
  Nothing else is stored on the span (redaction finds the raw id again at the end),
  only a reference to what the tag came from on its attribute container
  (``_flowmap_tag``, see below), which costs nothing measurable. A span with nothing
  bound, tagged from baggage, is marked :class:`_FromBaggage` instead, so a child started
  under it can tell it from a parent that ran bound (see :func:`_baggage_tag`).
* ``_on_ending``: one dict lookup — is the tag still there? (it can be evicted, see
  below); redaction, which scans only when a raw id is known and allocates nothing when
  there is nothing to scrub; alerts only for an untagged span.

The SDK keeps at most ``max_span_attributes`` (128 by default) per span and evicts the
*oldest* first, which is the tag written at start: a span with many attributes (an
OpenInference LLM span with flattened messages) would lose it and read as a dropped
context. So at start the tag (the Binding it came from, or ``(tag, source)``) is also
kept on the span's ``BoundedAttributes`` object — not on the Span, whose instance dict
that would un-share — and at end a tag found missing is put back, evicting the oldest
other attribute when the container is full: the tag is the one attribute the analysis
cannot do without.

The boundary kind and scoped flag are kept the same way: ``flowmap.boundaries`` records
them with :func:`keep_attributes` on the span's ``BoundedAttributes`` (``_flowmap_keep``)
when it starts a boundary span (and :func:`~flowmap.boundaries.mark_scoped` when it sets
the flag later), and at end whatever the limit evicted is put back with the tag, also
beyond a limit smaller than their number (0 included). The restore runs only for a span
that lost attributes (``dropped`` is not 0).

None of them ever computes an HMAC per span, blocks, or raises into the application.

Private SDK access is written for opentelemetry-sdk 1.45 (tested on 1.45.1 and 1.45.2)
and guarded: when the span's attribute container is not the SDK's ``BoundedAttributes``
as that version builds it (other type, frozen, near its limit, short value limit), the
public ``span.set_attributes`` is used instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import baggage as otel_baggage
from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context, get_current
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from . import attributes as A
from .alerts import AlertProcessor
from .context import _BINDING, _remember_tag, carried_binding, is_authenticating
from .redaction import redact_ending
from .tagging import Tagger, is_opaque_tag
from .safelog import debug_quietly

__all__ = ["TenantSpanProcessor", "FlowmapSpanProcessor", "stamp_tenant", "keep_attributes"]

_log = logging.getLogger("flowmap.processors")
_TAG_LEN = 16
_TENANT = A.TENANT
_SOURCE = A.TENANT_SOURCE
_EMPTY: dict[str, Any] = {}
_MARK = "_flowmap_tag"  # on the span's BoundedAttributes: what on_start tagged it with
_KEEP = "_flowmap_keep"  # on the span's BoundedAttributes: other flowmap attributes to keep


def stamp_tenant(span: Any, tag: str, source: str) -> None:
    """Set ``flowmap.tenant`` and ``flowmap.tenant.source`` on a span that just started.

    Fast path: a direct write into the SDK's attribute dict, without the public API's
    locks and per-value validation (both values are short plain strings, validated by
    construction). Only valid in ``on_start``, before the span is handed to any other
    code. Anything unexpected takes the public API.
    """
    attrs = getattr(span, "_attributes", None)
    if type(attrs) is BoundedAttributes:
        d = attrs._dict  # noqa: SLF001 - pinned SDK 1.45.2, see module docstring
        maxlen = attrs.maxlen
        if (
            type(d) is dict
            and not attrs._immutable  # noqa: SLF001
            and (maxlen is None or len(d) + 2 <= maxlen)
            and span._end_time is None  # noqa: SLF001
        ):
            # (whole even under a value-length limit below 16: a cut tag names no tenant)
            d[A.TENANT] = tag
            d[A.TENANT_SOURCE] = source
            return
    span.set_attributes({A.TENANT: tag, A.TENANT_SOURCE: source})


def _mark(span: Any, mark: object) -> None:
    """Remember, on the span's attribute container, what on_start tagged the span with:
    ``(tag, source)``, or a :class:`_FromBaggage`."""
    attrs = getattr(span, "_attributes", None)
    if type(attrs) is BoundedAttributes:
        setattr(attrs, _MARK, mark)


class _FromBaggage:
    """The mark (``_flowmap_tag``) of a span that on_start tagged from baggage with
    nothing bound. A span tagged from a binding is marked with its Binding or a
    ``(tag, source)`` tuple instead, whatever its source: one bound with ``bind_tag``
    (``consume()``'s) has source ``baggage`` too, and only this mark tells the two apart
    (see :func:`_baggage_tag`). Read like a Binding (``.tag``, ``.source``) at span end."""

    __slots__ = ("tag",)
    source = A.SOURCE_BAGGAGE

    def __init__(self, tag: str) -> None:
        self.tag = tag


def keep_attributes(span: Any, attributes: Mapping[str, Any]) -> None:
    """Have flowmap's processor put ``attributes`` back at span end if the SDK's
    attribute-count limit evicted them meanwhile (for flowmap's own attributes: the
    boundary kind, the scoped flag). Values must be what the span was given (plain str,
    bool). A no-op for a span that is not the SDK's; never raises."""
    try:
        attrs = getattr(span, "_attributes", None)
        if type(attrs) is not BoundedAttributes:
            return
        keep = getattr(attrs, _KEEP, None)
        if keep is None:
            setattr(attrs, _KEEP, dict(attributes))
        else:
            keep.update(attributes)
    except Exception:  # noqa: BLE001
        _log.debug("flowmap: could not keep attributes", exc_info=True)


def forget_kept(span: Any, names: Iterable[str]) -> None:
    """Undo :func:`keep_attributes` for ``names``: the span end no longer puts them back
    (an attribute flowmap takes off the span again). Never raises."""
    try:
        keep = getattr(getattr(span, "_attributes", None), _KEEP, None)
        if keep:
            for name in names:
                keep.pop(name, None)
    except Exception:  # noqa: BLE001
        _log.debug("flowmap: could not forget kept attributes", exc_info=True)


def _restore(attrs: BoundedAttributes) -> bool:
    """At span end: put back what the attribute-count limit evicted of the tag on_start
    wrote and of the attributes kept with :func:`keep_attributes`; returns whether the
    span holds a tag afterwards.

    ``attrs`` is the ending span's ``BoundedAttributes`` (immutable by now, so written
    directly, under its lock). When the container is full, the oldest attributes other
    than these make room; a limit smaller than their number (even 0) is exceeded by them
    alone: without them the analysis cannot tell whose span it is nor what it did, and
    they are a handful of short values. The dropped count stays the number of
    attributes lost.
    """
    d = attrs._dict  # noqa: SLF001
    want: list[tuple[str, Any]] = []
    mark = getattr(attrs, _MARK, None)
    keep = getattr(attrs, _KEEP, None)
    if keep and _TENANT in keep:
        # a tag set after start (the middleware's authenticated tenant) wins over the one
        # tagged at start (maybe the inbound baggage's, which is evidence, not authority)
        want.append((_TENANT, keep[_TENANT]))
        if _SOURCE in keep:
            want.append((_SOURCE, keep[_SOURCE]))
    elif mark is not None:
        tag, source = mark if type(mark) is tuple else (mark.tag, mark.source)
        if type(tag) is str:
            want.append((_TENANT, tag))
            want.append((_SOURCE, source))
    if keep:
        want.extend((k, v) for k, v in list(keep.items()) if k not in (_TENANT, _SOURCE))
    if not want:
        return _TENANT in d
    maxlen = attrs.maxlen
    with attrs._lock:  # noqa: SLF001
        kept = {k for k, _ in want}
        # evicted, or cut by a value-length limit below their length (flowmap's own values
        # are short and must stay whole: a cut tag names no tenant)
        missing = [(k, v) for k, v in want if d.get(k, _ABSENT) != v]
        if not missing:
            return _TENANT in d
        evicted = sum(1 for k, _ in missing if k not in d)
        if maxlen is not None:
            while d and len(d) + evicted > maxlen:
                victim = next((k for k in d if k not in kept), None)
                if victim is None:  # only flowmap's own are left: they exceed a tiny limit
                    break
                del d[victim]
                attrs.dropped += 1
        for key, value in missing:
            d[key] = value
        # what is put back had been counted as dropped when it was evicted
        attrs.dropped = max(0, attrs.dropped - evicted)
    return _TENANT in d


_ABSENT = object()


def _switch_off(processor: Any) -> None:
    """A shut-down processor does nothing more. The SDK cannot remove it from the app's
    provider, and a later configure() adds fresh ones: still tagging and alerting, it
    would double every alert and metric. Instance attributes, so the hot path of a live
    processor pays no flag test."""
    processor.on_start = _ignore
    processor._on_ending = _ignore


def _ignore(*args: Any, **kwargs: Any) -> None:
    return None


def _restored(attrs: BoundedAttributes) -> bool:
    """At span end: :func:`_restore` when the span lost attributes or a value-length
    limit below the tag's length may have cut flowmap's own (one attribute read each when
    neither); whether the span holds a tag."""
    vlen = attrs.max_value_len
    if attrs.dropped or (vlen is not None and vlen < _TAG_LEN):
        return _restore(attrs)
    return _TENANT in attrs._dict  # noqa: SLF001


def _baggage_tag(parent_context: Context | None) -> str | None:
    """The tag a span with no binding gets from baggage: the caller's evidence, taken by
    a span whose parent came from another process (or that has none), and by the spans
    below one that took it. Not under any other parent of this process: one that ran
    bound, or one left untagged below it, means the binding was lost on the way here —
    the parent's span and baggage reached this code in a context that does not carry
    its binding (a context rebuilt from them, or a binding that attached none:
    ``bind_tag(baggage=False)``) — and a tag from baggage would hide exactly the drop
    the analyzer and the alerts must see.

    A parent bound with ``bind_tag`` (inside ``consume()``) ran bound although its source
    is ``baggage`` too: the parent's mark (:class:`_FromBaggage`, set only on the
    baggage path below) tells it from one that took its tag from baggage, and its source
    must still be ``baggage`` (an authenticated bind may have re-tagged it since)."""
    tag = otel_baggage.get_baggage(A.BAGGAGE_KEY, parent_context)
    if not is_opaque_tag(tag):
        return None
    parent = trace_api.get_current_span(parent_context)
    ctx = parent.get_span_context()
    if not ctx.is_valid or ctx.is_remote:
        return tag
    attrs = getattr(parent, "_attributes", None)
    if attrs is None:
        return tag  # another SDK's span: nothing to tell by
    if type(attrs) is BoundedAttributes and type(getattr(attrs, _MARK, None)) is not _FromBaggage:
        return None  # tagged from a binding (or not tagged at start): ran bound
    return tag if attrs.get(_SOURCE) == A.SOURCE_BAGGAGE else None


class TenantSpanProcessor(SpanProcessor):
    """Sets ``flowmap.tenant`` and ``flowmap.tenant.source`` on every span at start.

    Source ``context``: the RequestContext bound with ``flowmap.bind`` (in flowmap's
    contextvar, else carried by the parent OpenTelemetry context). Source
    ``baggage``: no context bound, but the (inbound or propagated) baggage carries an
    opaque ``flowmap.tenant`` tag — evidence, which the analyzer compares with what the
    service authenticated. Source ``explicit``: the application started the span with an
    opaque tag of its own, which is kept, bound or not (another tenant's than the one
    bound is then judged a switch, not hidden by the binding's).
    """

    def __init__(self, tagger: Tagger) -> None:
        self.tagger = tagger

    @property
    def tagger(self) -> Tagger:
        return self._tagger

    @tagger.setter
    def tagger(self, tagger: Tagger) -> None:  # configure() may swap the key at run time
        self._tagger = tagger
        self._key_id = tagger.key_id

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            attrs = getattr(span, "_attributes", None)
            if type(attrs) is BoundedAttributes and _TENANT in attrs._dict:  # noqa: SLF001
                tag = attrs._dict[_TENANT]  # noqa: SLF001
                if is_opaque_tag(tag):  # the application tagged it itself: kept, as explicit
                    source = attrs._dict.get(_SOURCE) or A.SOURCE_EXPLICIT  # noqa: SLF001
                    stamp_tenant(span, tag, source)
                    _mark(span, (tag, source))
                    return
            b = _BINDING.get()
            if b is None:  # (only then: the hot path with a binding pays nothing for it)
                if parent_context is None:  # read once, for the baggage path below too
                    parent_context = get_current()
                b = carried_binding(parent_context)
            if b is not None:
                if b.key_id == self._key_id or b.ctx is None:  # same key, or a propagated tag
                    tag = b.tag
                else:  # bound under another key: tag under ours, and let redaction map it back
                    tag = b.tag_under(self._tagger)
                    if tag is not None:
                        _remember_tag(tag, b.raw_ids)
                if tag is not None:
                    # stamp_tenant() inlined: this is the per-span hot path
                    if type(attrs) is BoundedAttributes and not attrs._immutable and attrs.max_value_len is None:  # noqa: SLF001
                        d = attrs._dict  # noqa: SLF001
                        room = attrs.maxlen
                        if room is None or len(d) + 2 <= room:
                            d[_TENANT] = tag
                            d[_SOURCE] = b.source
                            # remembered for _on_ending (the tag may get evicted)
                            attrs._flowmap_tag = b if tag is b.tag else (tag, b.source)  # noqa: SLF001
                            return
                    stamp_tenant(span, tag, b.source)
                    _mark(span, (tag, b.source))
                    return
            if is_authenticating():
                span.set_attribute(A.AUTHENTICATING, True)
                keep_attributes(span, {A.AUTHENTICATING: True})  # no tenant yet is no dropped context
                return
            tag = _baggage_tag(parent_context)
            if tag is not None:
                stamp_tenant(span, tag, A.SOURCE_BAGGAGE)
                _mark(span, _FromBaggage(tag))
        except Exception:  # noqa: BLE001 - a processor must never break the app
            debug_quietly(_log, "flowmap: tenant tagging failed")

    def _on_ending(self, span: Span) -> None:
        # What the attribute-count limit evicted of flowmap's own is put back (one
        # attribute read when nothing was).
        try:
            attrs = span._attributes  # noqa: SLF001
            if type(attrs) is BoundedAttributes:
                _restored(attrs)
        except Exception:  # noqa: BLE001
            debug_quietly(_log, "flowmap: tag restore failed")

    def on_end(self, span: ReadableSpan) -> None:  # nothing to do at end
        return None

    def shutdown(self) -> None:
        _switch_off(self)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class FlowmapSpanProcessor(TenantSpanProcessor):
    """Tenant tagging, raw-id redaction and unscoped-span alerts in one processor.

    Behaves like ``TenantSpanProcessor`` + ``RedactionProcessor`` + ``alerts`` (an
    :class:`~flowmap.alerts.AlertProcessor`, or ``None`` for no alerts) installed in that
    order, at a fraction of their cost. ``redact=False`` leaves redaction out.
    """

    def __init__(self, tagger: Tagger, alerts: AlertProcessor | None = None, *, redact: bool = True) -> None:
        super().__init__(tagger)
        self.alerts = alerts
        self.redact = redact

    def _on_ending(self, span: Span) -> None:
        # Alerts are judged here too, on the live span, after redaction (so an alert never
        # carries a raw id): the SDK builds the ReadableSpan for on_end only after this.
        try:
            attrs = span._attributes  # noqa: SLF001
            if type(attrs) is BoundedAttributes:
                tagged = _restored(attrs)
                d = attrs._dict  # noqa: SLF001
            else:
                d = attrs or _EMPTY
                tagged = _TENANT in d
            # restored before redaction, which maps the span's tag back to its raw id
            if self.redact:
                redact_ending(span)
            alerts = self.alerts
            # (a tagged span too when a record-mode boundary ran it unbound: AlertProcessor)
            if alerts is not None and (not tagged or d.get(A.UNSCOPED) is True):
                alerts.on_end(span)  # never raises
        except Exception:  # noqa: BLE001
            debug_quietly(_log, "flowmap: redaction failed")

    def on_end(self, span: ReadableSpan) -> None:  # all done in _on_ending
        return None

    def shutdown(self) -> None:
        _switch_off(self)
        if self.alerts is not None:
            self.alerts.shutdown()
