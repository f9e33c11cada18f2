"""AlertProcessor: a span that ends without a tenant is an incident, raise it where ops look.

Three outlets, all with opaque values only (span name, boundary, service, trace id):
a ``logging`` warning on ``flowmap.alerts``, the OpenTelemetry counter
``flowmap.unscoped_spans`` and an optional callback. Logs and callbacks are rate-limited
(a token bucket per (service, span name) plus a global cap) so an incident cannot
flood them; the counter counts every one. Only spans the sampler records are seen: one
it drops reaches no span processor (sample at 100 %, or parent-based on a sampled root,
where unscoped spans must be counted). A request refused unauthenticated (a SERVER span
answered 401/403/407, or gRPC's UNAUTHENTICATED/PERMISSION_DENIED) is no incident: it raises none. Never raises into the application.

The span name is scrubbed of every raw tenant id this process has bound recently
(:func:`flowmap.redaction.scrub_known`) before any outlet sees it, whether or not a
redaction processor ran first: an unscoped span is exactly one not under its tenant's
binding, e.g. ``embed for <tenant id>`` in a thread pool.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import SpanKind

from . import attributes as A
from .conventions import refused_request
from .forking import renew_after_fork
from .safelog import debug_quietly
from .redaction import scrub_known

__all__ = ["AlertProcessor", "UnscopedAlert", "RateLimit", "ALERT_SCOPES", "METRIC_NAME"]

_log = logging.getLogger("flowmap.alerts")
_debug = logging.getLogger("flowmap.processors")

METRIC_NAME = "flowmap.unscoped_spans"
ALERT_SCOPES = frozenset({"boundary", "all"})


@dataclass(frozen=True, slots=True)
class UnscopedAlert:
    """What the callback receives: opaque identifiers only, never a tenant id."""

    span_name: str
    boundary: str | None
    service: str | None
    trace_id: str
    span_id: str
    suppressed: int = 0  # alerts for this key dropped by the rate limit since the last one


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Token buckets: ``burst`` alerts per key, refilled at one per ``per_seconds``;
    ``global_burst`` alerts overall, refilled at ``global_burst`` per ``per_seconds``."""

    burst: int = 5
    per_seconds: float = 60.0
    global_burst: int = 100
    max_keys: int = 10000


class _Bucket:
    __slots__ = ("tokens", "stamp", "suppressed")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp
        self.suppressed = 0


class _Limiter:
    def __init__(self, limit: RateLimit, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.clock = clock
        self.lock = threading.Lock()
        renew_after_fork(self)  # taken as spans end, in any thread
        self.buckets: dict[tuple[Any, ...], _Bucket] = {}
        now = clock()
        self.global_bucket = _Bucket(float(limit.global_burst), now)

    @staticmethod
    def _take(b: _Bucket, cap: float, rate: float, now: float) -> bool:
        b.tokens = min(cap, b.tokens + (now - b.stamp) * rate)
        b.stamp = now
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return True
        return False

    def allow(self, key: tuple[Any, ...]) -> tuple[bool, int]:
        """(allowed, how many were suppressed for this key before this one)."""
        lim = self.limit
        now = self.clock()
        with self.lock:
            b = self.buckets.get(key)
            if b is None:
                if len(self.buckets) >= lim.max_keys:
                    self.buckets.clear()  # bounded memory under a name explosion
                b = self.buckets[key] = _Bucket(float(lim.burst), now)
            rate = 1.0 / lim.per_seconds if lim.per_seconds > 0 else float("inf")
            ok = self._take(b, float(lim.burst), rate, now)
            if ok:
                g_rate = lim.global_burst / lim.per_seconds if lim.per_seconds > 0 else float("inf")
                ok = self._take(self.global_bucket, float(lim.global_burst), g_rate, now)
                if not ok:
                    b.tokens += 1.0  # the key did not really spend it
            if not ok:
                b.suppressed += 1
                return False, 0
            suppressed, b.suppressed = b.suppressed, 0
            return True, suppressed


_in_callback = threading.local()  # this thread is running an alert callback now

def _refused_entry(span: ReadableSpan, attrs: Any) -> bool:
    """A request the service turned away unauthenticated (a SERVER span answered 401, 403
    or 407, as TenantMiddleware answers, or an RPC's UNAUTHENTICATED/PERMISSION_DENIED:
    :func:`flowmap.conventions.refused_request`): no incident; a boundary that ran below it all
    the same is a span of its own and alerts by itself."""
    return span.kind is SpanKind.SERVER and refused_request(attrs)


class AlertProcessor(SpanProcessor):
    """Alerts on spans that end without ``flowmap.tenant``.

    ``scope="boundary"`` (default): only spans with ``flowmap.boundary``; ``"all"``: every
    span. ``callback(alert)`` gets an :class:`UnscopedAlert`; its exceptions are swallowed.
    """

    def __init__(
        self,
        scope: str = "boundary",
        callback: Callable[[UnscopedAlert], Any] | None = None,
        rate_limit: RateLimit | None = None,
        *,
        meter_provider: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from .errors import ConfigError

        if scope not in ALERT_SCOPES:
            raise ConfigError(f"alert scope must be one of {sorted(ALERT_SCOPES)}")
        self.scope = scope
        self.callback = callback
        self._limiter = _Limiter(rate_limit or RateLimit(), clock)
        self._counter = None
        try:
            if meter_provider is None:
                from opentelemetry import metrics

                meter_provider = metrics.get_meter_provider()
            from . import __version__

            meter = meter_provider.get_meter("flowmap", __version__)
            self._counter = meter.create_counter(
                METRIC_NAME, unit="{span}", description="Spans that ended without a tenant tag"
            )
        except Exception:  # noqa: BLE001 - metrics are best effort
            _debug.debug("flowmap: alert counter unavailable", exc_info=True)

    def on_end(self, span: ReadableSpan) -> None:
        try:
            attrs = span.attributes or {}
            if A.TENANT in attrs:
                # a tag is no binding where a boundary ran unbound in record mode (the
                # caller's baggage, or the tenant bound when its generator started)
                if attrs.get(A.UNSCOPED) is not True:
                    return
            elif attrs.get(A.AUTHENTICATING) is True:
                return
            boundary = attrs.get(A.BOUNDARY)
            if self.scope == "boundary" and boundary is None:
                return
            if _refused_entry(span, attrs):
                return
            service = span.resource.attributes.get("service.name") if span.resource else None
            name = scrub_known(span.name)  # never a raw id in a log, metric or callback
            if self._counter is not None:
                self._counter.add(
                    1,
                    {"boundary": str(boundary or ""), "span.name": name, "service.name": str(service or "")},
                )
            allowed, suppressed = self._limiter.allow((service, name))
            if not allowed:
                return
            ctx = span.context
            alert = UnscopedAlert(
                span_name=name,
                boundary=None if boundary is None else str(boundary),
                service=None if service is None else str(service),
                trace_id=format(ctx.trace_id, "032x") if ctx else "",
                span_id=format(ctx.span_id, "016x") if ctx else "",
                suppressed=suppressed,
            )
            if suppressed:
                _log.warning(
                    "flowmap: suppressed %d unscoped-span alerts for service=%s span=%r",
                    suppressed, alert.service, alert.span_name,
                )
            _log.warning(
                "flowmap: span ended without a tenant: span=%r boundary=%s service=%s trace_id=%s span_id=%s",
                alert.span_name, alert.boundary, alert.service, alert.trace_id, alert.span_id,
            )
            if self.callback is not None and not getattr(_in_callback, "on", False):
                # a callback that posts the alert (an untagged http call: itself an
                # unscoped boundary) must not alert about its own spans, on and on
                _in_callback.on = True
                try:
                    self.callback(alert)
                except Exception:  # noqa: BLE001
                    debug_quietly(_debug, "flowmap: alert callback failed")
                finally:
                    _in_callback.on = False
        except Exception:  # noqa: BLE001
            debug_quietly(_debug, "flowmap: alerting failed")

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
