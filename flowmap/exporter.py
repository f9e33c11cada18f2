"""OTLP JSON Lines span exporter: the trace file format of the contract.

Each ``export`` call appends exactly one line holding one ``TracesData`` object, the way
the OpenTelemetry Collector's file exporter writes them, so the Collector, flowmap's
analyzer and any OTLP JSON reader can load the same file. Encoding follows the OTLP/JSON
mapping (proto3 JSON with the OTLP exceptions): lowerCamelCase keys, hex trace/span ids,
integer enums, 64-bit integers as strings, default values omitted.

Writing is safe for BatchSpanProcessor threads and for several processes appending to
one file: the batch is encoded first, then written with one ``O_APPEND`` write under an
exclusive ``flock``, so lines never interleave.
"""

from __future__ import annotations

import base64
import logging
import math
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanContext, SpanKind

try:  # POSIX only; elsewhere O_APPEND alone keeps single writes whole.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["JsonLinesSpanExporter", "encode_spans", "DEFAULT_FILE", "FILE_ENV"]

DEFAULT_FILE = "flowmap-traces.jsonl"
FILE_ENV = "FLOWMAP_FILE"

_log = logging.getLogger("flowmap.exporter")

# OTLP SpanKind enum values (SPAN_KIND_INTERNAL = 1 ...).
_KIND = {
    SpanKind.INTERNAL: 1,
    SpanKind.SERVER: 2,
    SpanKind.CLIENT: 3,
    SpanKind.PRODUCER: 4,
    SpanKind.CONSUMER: 5,
}
# SpanFlags: bit 8 says "is_remote is known", bit 9 says "parent/link is remote".
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200
_INT64 = (-(2**63), 2**63 - 1)


class _Unencodable(Exception):
    pass


def _any_value(value: Any) -> dict[str, Any]:
    """An OTLP ``AnyValue`` in JSON form (oneof members are written even when default)."""
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise _Unencodable("integer out of int64 range")
        return {"intValue": str(value)}
    if isinstance(value, float):
        if math.isnan(value):
            return {"doubleValue": "NaN"}
        if math.isinf(value):
            return {"doubleValue": "Infinity" if value > 0 else "-Infinity"}
        return {"doubleValue": value}
    if isinstance(value, (bytes, bytearray)):
        return {"bytesValue": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Sequence):
        values = [_any_value(v) for v in value]
        return {"arrayValue": {"values": values} if values else {}}
    if isinstance(value, Mapping):
        kvs = [_key_value(str(k), v) for k, v in value.items()]
        return {"kvlistValue": {"values": kvs} if kvs else {}}
    raise _Unencodable(f"unsupported attribute type {type(value).__name__}")


def _key_value(key: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"key": key} if key else {}
    out["value"] = _any_value(value)
    return out


def _attributes(attributes: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if not attributes:
        return []
    encoded = []
    for key, value in attributes.items():
        try:
            encoded.append(_key_value(key, value))
        except _Unencodable as exc:
            # Same policy as the OTLP exporters: drop the one attribute, keep the span.
            _log.debug("dropping attribute %r: %s", key, exc)
    return encoded


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` unless ``value`` is the proto3 default (omitted in JSON)."""
    if value:
        out[key] = value


def _flags(context: SpanContext | None) -> int:
    if context is not None and context.is_remote:
        return _HAS_IS_REMOTE | _IS_REMOTE
    return _HAS_IS_REMOTE


def _trace_state(context: SpanContext) -> str:
    state = context.trace_state
    return ",".join(f"{k}={v}" for k, v in state.items()) if state else ""


def _encode_span(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.get_span_context()
    out: dict[str, Any] = {"traceId": f"{ctx.trace_id:032x}", "spanId": f"{ctx.span_id:016x}"}
    _put(out, "traceState", _trace_state(ctx))
    if span.parent is not None:
        out["parentSpanId"] = f"{span.parent.span_id:016x}"
    _put(out, "flags", _flags(span.parent))
    _put(out, "name", span.name)
    out["kind"] = _KIND.get(span.kind, 0)
    _put(out, "startTimeUnixNano", str(span.start_time) if span.start_time else "")
    _put(out, "endTimeUnixNano", str(span.end_time) if span.end_time else "")
    _put(out, "attributes", _attributes(span.attributes))
    _put(out, "droppedAttributesCount", span.dropped_attributes)
    events = []
    for event in span.events:
        ev: dict[str, Any] = {}
        _put(ev, "timeUnixNano", str(event.timestamp) if event.timestamp else "")
        _put(ev, "name", event.name)
        _put(ev, "attributes", _attributes(event.attributes))
        _put(ev, "droppedAttributesCount", event.dropped_attributes)
        events.append(ev)
    _put(out, "events", events)
    _put(out, "droppedEventsCount", span.dropped_events)
    links = []
    for link in span.links:
        lk: dict[str, Any] = {
            "traceId": f"{link.context.trace_id:032x}",
            "spanId": f"{link.context.span_id:016x}",
        }
        _put(lk, "traceState", _trace_state(link.context))
        _put(lk, "attributes", _attributes(link.attributes))
        _put(lk, "droppedAttributesCount", link.dropped_attributes)
        _put(lk, "flags", _flags(link.context))
        links.append(lk)
    _put(out, "links", links)
    _put(out, "droppedLinksCount", span.dropped_links)
    status: dict[str, Any] = {}
    if span.status is not None:
        _put(status, "message", span.status.description)
        _put(status, "code", span.status.status_code.value)
    out["status"] = status
    return out


def encode_spans(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """Encode finished SDK spans as one OTLP JSON ``TracesData`` object.

    Spans are grouped by resource, then by instrumentation scope, in first-seen order.
    """
    grouped: dict[Any, dict[Any, list[dict[str, Any]]]] = {}
    for span in spans:
        by_scope = grouped.setdefault(span.resource, {})
        by_scope.setdefault(span.instrumentation_scope or None, []).append(_encode_span(span))
    resource_spans = []
    for resource, by_scope in grouped.items():
        scope_spans = []
        for scope, encoded in by_scope.items():
            scope_json: dict[str, Any] = {}
            if scope is not None:
                _put(scope_json, "name", scope.name)
                _put(scope_json, "version", scope.version)
                _put(scope_json, "attributes", _attributes(scope.attributes))
            entry: dict[str, Any] = {"scope": scope_json, "spans": encoded}
            if scope is not None:
                _put(entry, "schemaUrl", scope.schema_url)
            scope_spans.append(entry)
        resource_json: dict[str, Any] = {}
        _put(resource_json, "attributes", _attributes(resource.attributes if resource else None))
        rs: dict[str, Any] = {"resource": resource_json, "scopeSpans": scope_spans}
        if resource is not None:
            _put(rs, "schemaUrl", resource.schema_url)
        resource_spans.append(rs)
    return {"resourceSpans": resource_spans}


def _resolve_path(path: str | os.PathLike[str] | None) -> Path:
    if path is None:
        path = os.environ.get(FILE_ENV) or DEFAULT_FILE
    return Path(os.fspath(path)).expanduser()


class JsonLinesSpanExporter(SpanExporter):
    """Append spans to an OTLP JSON Lines file, one ``TracesData`` line per export.

    ``path`` defaults to ``$FLOWMAP_FILE`` or ``flowmap-traces.jsonl``. Missing parent
    directories are created. Export failures are returned as ``FAILURE`` and logged once
    (until a later export succeeds): an exporter must never raise into the application.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, mode: int = 0o644) -> None:
        self.path = _resolve_path(path)
        self._mode = mode
        self._lock = threading.Lock()
        self._shutdown = False
        self._failing = False

    def __repr__(self) -> str:
        return f"JsonLinesSpanExporter({str(self.path)!r})"

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        if not spans:
            return SpanExportResult.SUCCESS
        try:
            line = msgspec.json.encode(encode_spans(spans)) + b"\n"
            with self._lock:
                self._append(line)
        except Exception as exc:  # never raise into the SDK or the application
            if not self._failing:
                self._failing = True
                _log.warning(
                    "flowmap could not write %d span(s) to %s (%s); further failures are not logged "
                    "until an export succeeds", len(spans), self.path, type(exc).__name__,
                )
            return SpanExportResult.FAILURE
        if self._failing:
            self._failing = False
            _log.info("flowmap is writing spans to %s again", self.path)
        return SpanExportResult.SUCCESS

    def _open(self) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        try:
            return os.open(self.path, flags, self._mode)
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, flags, self._mode)

    def _append(self, data: bytes) -> None:
        fd = self._open()
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)  # released by close()
            view = memoryview(data)
            written = 0
            try:
                while written < len(view):
                    written += os.write(fd, view[written:])
            except OSError:
                if 0 < written < len(view):
                    # Terminate the partial line so the next batch starts on a fresh line.
                    try:
                        os.write(fd, b"\n")
                    except OSError:
                        pass
                raise
        finally:
            os.close(fd)

    def shutdown(self) -> None:
        self._shutdown = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # every export is written through before it returns
