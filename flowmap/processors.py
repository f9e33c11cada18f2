"""TenantSpanProcessor: stamp every span with the opaque tag of the tenant it runs for.

``on_start`` does one thing — read the bound context (or, failing that, the inbound
baggage) and set two attributes — from the Tagger's cache: it never computes an HMAC
per span, never blocks and never raises into the application.
"""

from __future__ import annotations

import logging

from opentelemetry import baggage as otel_baggage
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from . import attributes as A
from .context import _BINDING
from .tagging import Tagger, is_opaque_tag

__all__ = ["TenantSpanProcessor"]

_log = logging.getLogger("flowmap.processors")


class TenantSpanProcessor(SpanProcessor):
    """Sets ``flowmap.tenant`` and ``flowmap.tenant.source`` on every span at start.

    Source ``context``: the RequestContext bound with ``flowmap.bind``. Source
    ``baggage``: no context bound, but the (inbound or propagated) baggage carries an
    opaque ``flowmap.tenant`` tag — evidence, which the analyzer compares with what the
    service authenticated.
    """

    def __init__(self, tagger: Tagger) -> None:
        self.tagger = tagger

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            b = _BINDING.get()
            if b is not None:
                tag = b.tag_under(self.tagger)
                if tag is not None:
                    span.set_attributes({A.TENANT: tag, A.TENANT_SOURCE: b.source})
                    return
            tag = otel_baggage.get_baggage(A.BAGGAGE_KEY, parent_context)
            if is_opaque_tag(tag):
                span.set_attributes({A.TENANT: tag, A.TENANT_SOURCE: A.SOURCE_BAGGAGE})
        except Exception:  # noqa: BLE001 - a processor must never break the app
            _log.debug("flowmap: tenant tagging failed", exc_info=True)

    def on_end(self, span: ReadableSpan) -> None:  # nothing to do at end
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
