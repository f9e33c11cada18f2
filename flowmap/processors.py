"""Span processors that stamp every span with the opaque tag of the tenant it runs for.

``TenantSpanProcessor`` does only that. ``FlowmapSpanProcessor`` — what
``flowmap.configure()`` installs — does tagging, redaction and alerting in one
processor, because on the hot path the SDK's per-processor dispatch and
``set_attribute``'s per-call lock and validation cost more than flowmap's own work:

* ``on_start``: one contextvar read; the cached tag and the source written straight
  into the new span's attribute dict (the span is not yet visible to any other thread).
  Nothing else is stored on the span: redaction finds the raw id again at the end.
* ``_on_ending``: redaction, which scans only when a raw id is known and allocates
  nothing when there is nothing to scrub; then one dict lookup for alerts (only an
  untagged span goes on to the alert logic).

None of them ever computes an HMAC per span, blocks, or raises into the application.

Private SDK access is pinned to opentelemetry-sdk 1.45.2 and guarded: when the span's
attribute container is not the SDK's ``BoundedAttributes`` as that version builds it
(other type, frozen, near its limit, short value limit), the public
``span.set_attributes`` is used instead.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import baggage as otel_baggage
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from . import attributes as A
from .alerts import AlertProcessor
from .context import _BINDING, _remember_tag
from .redaction import redact_ending
from .tagging import Tagger, is_opaque_tag

__all__ = ["TenantSpanProcessor", "FlowmapSpanProcessor", "stamp_tenant"]

_log = logging.getLogger("flowmap.processors")
_TAG_LEN = 16
_TENANT = A.TENANT
_SOURCE = A.TENANT_SOURCE
_EMPTY: dict[str, Any] = {}


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
        max_value_len = attrs.max_value_len
        if (
            type(d) is dict
            and not attrs._immutable  # noqa: SLF001
            and (maxlen is None or len(d) + 2 <= maxlen)
            and (max_value_len is None or max_value_len >= _TAG_LEN)
            and span._end_time is None  # noqa: SLF001
        ):
            d[A.TENANT] = tag
            d[A.TENANT_SOURCE] = source
            return
    span.set_attributes({A.TENANT: tag, A.TENANT_SOURCE: source})


def _baggage_tag(parent_context: Context | None) -> str | None:
    tag = otel_baggage.get_baggage(A.BAGGAGE_KEY, parent_context)
    return tag if is_opaque_tag(tag) else None


class TenantSpanProcessor(SpanProcessor):
    """Sets ``flowmap.tenant`` and ``flowmap.tenant.source`` on every span at start.

    Source ``context``: the RequestContext bound with ``flowmap.bind``. Source
    ``baggage``: no context bound, but the (inbound or propagated) baggage carries an
    opaque ``flowmap.tenant`` tag — evidence, which the analyzer compares with what the
    service authenticated.
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
            b = _BINDING.get()
            if b is not None:
                if b.key_id == self._key_id or b.ctx is None:  # same key, or a propagated tag
                    tag = b.tag
                else:  # bound under another key: tag under ours, and let redaction map it back
                    tag = b.tag_under(self._tagger)
                    if tag is not None:
                        _remember_tag(tag, b.raw_ids)
                if tag is not None:
                    # stamp_tenant() inlined: this is the per-span hot path
                    attrs = span._attributes  # noqa: SLF001
                    if type(attrs) is BoundedAttributes and not attrs._immutable and attrs.max_value_len is None:  # noqa: SLF001
                        d = attrs._dict  # noqa: SLF001
                        room = attrs.maxlen
                        if room is None or len(d) + 2 <= room:
                            d[_TENANT] = tag
                            d[_SOURCE] = b.source
                            return
                    stamp_tenant(span, tag, b.source)
                    return
            tag = _baggage_tag(parent_context)
            if tag is not None:
                stamp_tenant(span, tag, A.SOURCE_BAGGAGE)
        except Exception:  # noqa: BLE001 - a processor must never break the app
            _log.debug("flowmap: tenant tagging failed", exc_info=True)

    def on_end(self, span: ReadableSpan) -> None:  # nothing to do at end
        return None

    def shutdown(self) -> None:
        return None

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
            if self.redact:
                redact_ending(span)
            alerts = self.alerts
            if alerts is not None:
                attrs = span._attributes  # noqa: SLF001
                d = attrs._dict if type(attrs) is BoundedAttributes else (attrs or _EMPTY)  # noqa: SLF001
                if _TENANT not in d:
                    alerts.on_end(span)  # never raises
        except Exception:  # noqa: BLE001
            _log.debug("flowmap: redaction failed", exc_info=True)

    def on_end(self, span: ReadableSpan) -> None:  # all done in _on_ending
        return None

    def shutdown(self) -> None:
        if self.alerts is not None:
            self.alerts.shutdown()
