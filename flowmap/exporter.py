"""OTLP JSON Lines span exporter: the trace file format of the contract.

Each ``export`` call appends exactly one line holding one ``TracesData`` object, the way
the OpenTelemetry Collector's file exporter writes them, so the Collector, flowmap's
analyzer and any OTLP JSON reader can load the same file. Encoding follows the OTLP/JSON
mapping (proto3 JSON with the OTLP exceptions): lowerCamelCase keys, hex trace/span ids,
integer enums, 64-bit integers as strings, default values omitted. Attribute values that
are subclasses of ``str``/``int``/``float`` (``numpy.float64``, ``markupsafe.Markup``,
``IntEnum``) are written as the plain value; when a batch still fails to encode (unpaired
surrogates, an odd type outside attributes), a slow path repairs or drops the one value
(attribute, else span) and writes the rest of the batch.

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

from .forking import renew_after_fork

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
    """An OTLP ``AnyValue`` in JSON form (oneof members are written even when default).

    Exact built-in types are checked first (the hot path); subclasses (``numpy.float64``,
    ``markupsafe.Markup``, ``IntEnum`` ...), which the SDK accepts but msgspec refuses,
    are written as the plain ``str``/``int``/``float`` they hold, bypassing any override
    of ``__str__``/``__float__`` so the value written is the value the SDK stored.
    """
    t = type(value)
    if t is str:
        return {"stringValue": value}
    if t is bool:
        return {"boolValue": value}
    if t is int:
        if not _INT64[0] <= value <= _INT64[1]:
            raise _Unencodable("integer out of int64 range")
        return {"intValue": str(value)}
    if t is float:
        return _double(value)
    if t is tuple or t is list:
        values = [_any_value(v) for v in value]
        return {"arrayValue": {"values": values} if values else {}}
    return _any_value_other(value)


def _double(value: float) -> dict[str, Any]:
    if math.isnan(value):
        return {"doubleValue": "NaN"}
    if math.isinf(value):
        return {"doubleValue": "Infinity" if value > 0 else "-Infinity"}
    return {"doubleValue": value}


def _any_value_other(value: Any) -> dict[str, Any]:
    """The rare forms: ``None``, subclasses of the primitives, bytes, other sequences, maps."""
    if value is None:
        return {}
    if isinstance(value, bool):  # bool cannot be subclassed; kept for clarity
        return {"boolValue": bool(value)}
    if isinstance(value, str):
        return {"stringValue": str.__str__(value)}  # a plain str copy, whatever __str__ says
    if isinstance(value, int):
        return _any_value(int.__index__(value))  # a plain int (IntEnum, numpy-style subclasses)
    if isinstance(value, float):
        return _double(float.__float__(value))  # a plain float (numpy.float64 ...)
    if isinstance(value, (bytes, bytearray)):
        return {"bytesValue": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Sequence):
        values = [_any_value(v) for v in value]
        return {"arrayValue": {"values": values} if values else {}}
    if isinstance(value, Mapping):
        kvs = [_key_value(k, v) for k, v in value.items()]
        return {"kvlistValue": {"values": kvs} if kvs else {}}
    raise _Unencodable(f"unsupported attribute type {type(value).__name__}")


def _plain_key(key: Any) -> str:
    return str.__str__(key) if isinstance(key, str) else str(key)


def _key_value(key: Any, value: Any) -> dict[str, Any]:
    if type(key) is not str:
        key = _plain_key(key)
    out: dict[str, Any] = {"key": key} if key else {}
    out["value"] = _any_value(value)
    return out


def _put_attributes(
    out: dict[str, Any], attributes: Mapping[str, Any] | None, dropped: int, cleaning: "_Cleaning | None"
) -> None:
    """Set ``attributes`` and ``droppedAttributesCount`` of ``out``. A value that cannot be
    encoded drops that attribute only (the OTLP exporters' policy), counted in
    ``droppedAttributesCount`` as the slow path counts its drops, and in ``cleaning``
    for the exporter's one warning."""
    if attributes:
        encoded = []
        for key, value in attributes.items():
            try:
                encoded.append(_key_value(key, value))
            except Exception as exc:  # noqa: BLE001 - _Unencodable, or a value whose iteration fails
                dropped += 1
                if cleaning is not None:
                    cleaning.attributes += 1
                    cleaning.errors.add(type(exc).__name__)
                _log.debug("dropping attribute %r: %s", key, exc)
        _put(out, "attributes", encoded)
    _put(out, "droppedAttributesCount", dropped)


def name_text(name: Any) -> str:
    """A span or event name as OTLP's string: the SDK takes any value (``add_event(404)``,
    a ``None`` name), and one that is not text must stop neither export nor scrubbing."""
    if isinstance(name, str) or name is None:
        return name or ""
    try:
        return str(name)
    except Exception:  # noqa: BLE001
        return "<unprintable name>"


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


def _encode_span(span: ReadableSpan, cleaning: "_Cleaning | None") -> dict[str, Any]:
    ctx = span.get_span_context()
    out: dict[str, Any] = {"traceId": f"{ctx.trace_id:032x}", "spanId": f"{ctx.span_id:016x}"}
    _put(out, "traceState", _trace_state(ctx))
    if span.parent is not None:
        out["parentSpanId"] = f"{span.parent.span_id:016x}"
    _put(out, "flags", _flags(span.parent))
    _put(out, "name", name_text(span.name))
    out["kind"] = _KIND.get(span.kind, 0)
    _put(out, "startTimeUnixNano", str(span.start_time) if span.start_time else "")
    _put(out, "endTimeUnixNano", str(span.end_time) if span.end_time else "")
    _put_attributes(out, span.attributes, span.dropped_attributes, cleaning)
    events = []
    for event in span.events:
        ev: dict[str, Any] = {}
        _put(ev, "timeUnixNano", str(event.timestamp) if event.timestamp else "")
        _put(ev, "name", name_text(event.name))
        _put_attributes(ev, event.attributes, event.dropped_attributes, cleaning)
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
        _put_attributes(lk, link.attributes, link.dropped_attributes, cleaning)
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
    An attribute whose value cannot be encoded is left out, counted in its owner's
    ``droppedAttributesCount``.
    """
    return _encode_spans(spans, None)


def _encode_spans(spans: Sequence[ReadableSpan], cleaning: "_Cleaning | None") -> dict[str, Any]:
    """:func:`encode_spans`, its drops also recorded in ``cleaning`` (the exporter's warning)."""
    grouped: dict[Any, dict[Any, list[dict[str, Any]]]] = {}
    for span in spans:
        by_scope = grouped.setdefault(span.resource, {})
        by_scope.setdefault(span.instrumentation_scope or None, []).append(_encode_span(span, cleaning))
    resource_spans = []
    for resource, by_scope in grouped.items():
        scope_spans = []
        for scope, encoded in by_scope.items():
            scope_json: dict[str, Any] = {}
            if scope is not None:
                _put(scope_json, "name", scope.name)
                _put(scope_json, "version", scope.version)
                _put_attributes(scope_json, scope.attributes, 0, cleaning)
            entry: dict[str, Any] = {"scope": scope_json, "spans": encoded}
            if scope is not None:
                _put(entry, "schemaUrl", scope.schema_url)
            scope_spans.append(entry)
        resource_json: dict[str, Any] = {}
        _put_attributes(resource_json, resource.attributes if resource else None, 0, cleaning)
        rs: dict[str, Any] = {"resource": resource_json, "scopeSpans": scope_spans}
        if resource is not None:
            _put(rs, "schemaUrl", resource.schema_url)
        resource_spans.append(rs)
    return {"resourceSpans": resource_spans}


class _Cleaning:
    """What a batch's encoding dropped (either path) or repaired (:func:`_clean`), for one warning."""

    __slots__ = ("attributes", "errors", "repaired", "spans")

    def __init__(self) -> None:
        self.attributes = 0
        self.spans = 0
        self.repaired = 0
        self.errors: set[str] = set()


def _clean_str(value: str, cleaning: _Cleaning) -> str:
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        # Unpaired surrogates (os.fsdecode, broken JSON ...): join the valid pairs,
        # write U+FFFD for the rest, the repair flowmap's loader applies when reading.
        cleaning.repaired += 1
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _clean(node: Any, cleaning: _Cleaning) -> Any:
    """A copy of an encoded document that msgspec can always write: the slow path, taken
    only when the plain encode failed. Subclasses of the JSON types become the plain
    types, unpaired surrogates become U+FFFD, and what still cannot be written is
    dropped at the smallest unit that can go: one attribute (counted in its owner's
    ``droppedAttributesCount``), else one span; never the rest of the batch."""
    t = type(node)
    if t is dict:
        out: dict[str, Any] = {}
        extra = 0
        for key, value in node.items():
            if key in ("attributes", "spans") and type(value) is list:
                kept = []
                for item in value:
                    try:
                        kept.append(_clean(item, cleaning))
                    except Exception as exc:  # noqa: BLE001 - drop the unit, keep the rest
                        cleaning.errors.add(type(exc).__name__)
                        if key == "spans":
                            cleaning.spans += 1
                        else:
                            cleaning.attributes += 1
                            extra += 1
                            _log.debug("dropping attribute %r: cannot be encoded (%s)",
                                       item.get("key") if type(item) is dict else None, type(exc).__name__)
                out[key] = kept
            else:
                out[key] = _clean(value, cleaning)
        if extra:
            out["droppedAttributesCount"] = out.get("droppedAttributesCount", 0) + extra
        return out
    if t is list:
        return [_clean(v, cleaning) for v in node]
    if t is str:
        return _clean_str(node, cleaning)
    if node is None or t is bool or t is float:
        return node
    if t is int:
        if not _INT64[0] <= node <= _INT64[1]:
            raise _Unencodable("integer out of int64 range")
        return node
    # Subclasses in the fields outside attributes (a span name that is a Markup ...).
    if isinstance(node, str):
        return _clean_str(str.__str__(node), cleaning)
    if isinstance(node, int):
        return _clean(int.__index__(node), cleaning)
    if isinstance(node, float):
        return float.__float__(node)
    raise _Unencodable(f"unsupported type {type(node).__name__}")


class _EncodeError(Exception):
    """The batch could not be encoded even by the slow path (a resource or scope field)."""


def _resolve_path(path: str | os.PathLike[str] | None) -> Path:
    """The file, made absolute once, against the working directory of the moment the
    exporter is set up: an application that later changes directory (a job working in a
    temp dir) keeps writing to the one file, not a new one per directory."""
    if path is None:
        path = os.environ.get(FILE_ENV) or DEFAULT_FILE
    resolved = Path(os.fspath(path)).expanduser()
    try:
        return resolved.absolute()
    except OSError:  # the working directory was removed: keep the relative path
        _log.debug("flowmap could not make %s absolute", resolved, exc_info=True)
        return resolved


class JsonLinesSpanExporter(SpanExporter):
    """Append spans to an OTLP JSON Lines file, one ``TracesData`` line per export.

    ``path`` defaults to ``$FLOWMAP_FILE`` or ``flowmap-traces.jsonl``; a relative path
    is made absolute here, once, so a later ``os.chdir`` does not split the trace file.
    Missing parent directories are created. A value that cannot be encoded drops that
    attribute (or, outside attributes, that span), never the rest of the batch. Export
    failures are returned as ``FAILURE`` and logged once (until a later export
    succeeds): an exporter must never raise into the application.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, mode: int = 0o644) -> None:
        self.path = _resolve_path(path)
        self._mode = mode
        self._lock = threading.Lock()
        self._shutdown = False
        self._failing = False
        self._warned_cleaning = False
        self._writing: int | None = None  # the descriptor _append holds the flock on
        renew_after_fork(self, "_lock")  # forked while the batch thread writes: see forking

    def __repr__(self) -> str:
        return f"JsonLinesSpanExporter({str(self.path)!r})"

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        if not spans:
            return SpanExportResult.SUCCESS
        try:
            line = self._encode(spans) + b"\n"
        except Exception as exc:  # noqa: BLE001 - never raise into the SDK or the application
            cause = exc.__cause__ if isinstance(exc, _EncodeError) and exc.__cause__ else exc
            self._fail("flowmap could not encode %d span(s) as OTLP JSON for %s (%s)",
                       len(spans), type(cause).__name__)
            return SpanExportResult.FAILURE
        try:
            with self._lock:
                self._append(line)
        except Exception as exc:  # noqa: BLE001 - never raise into the SDK or the application
            self._fail("flowmap could not write %d span(s) to %s (%s)", len(spans), type(exc).__name__)
            return SpanExportResult.FAILURE
        if self._failing:
            self._failing = False
            _log.info("flowmap is writing spans to %s again", self.path)
        return SpanExportResult.SUCCESS

    def _encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        cleaning = _Cleaning()  # what either path dropped, for one warning
        doc = _encode_spans(spans, cleaning)
        try:
            data = msgspec.json.encode(doc)  # the hot path: plain values encode directly
        except Exception as exc:  # noqa: BLE001 - rare: take the slow path below
            cleaning.errors.add(type(exc).__name__)
            try:
                data = msgspec.json.encode(_clean(doc, cleaning))
            except Exception as exc:
                raise _EncodeError() from exc
        if cleaning.attributes or cleaning.spans or cleaning.repaired:
            log = _log.debug if self._warned_cleaning else _log.warning
            self._warned_cleaning = True
            log(
                "flowmap could not encode some values as OTLP JSON (%s): dropped %d attribute(s) "
                "and %d of %d span(s), repaired %d string(s) with unpaired surrogates; the rest of "
                "the batch is written to %s (further such notes at debug level)",
                ", ".join(sorted(cleaning.errors)), cleaning.attributes, cleaning.spans,
                len(spans), cleaning.repaired, self.path,
            )
        return data

    def _fail(self, message: str, count: int, reason: str) -> None:
        if not self._failing:
            self._failing = True
            _log.warning(message + "; further failures are not logged until an export succeeds",
                         count, self.path, reason)

    def _open(self) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        try:
            return os.open(self.path, flags, self._mode)
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, flags, self._mode)

    def _in_forked_child(self) -> None:
        """Forked while another thread wrote: the child's copy of that descriptor holds the
        writer's flock (flock locks belong to the open file, which fork shares) until the
        child closes it; the child's own next write would wait on it for ever."""
        fd, self._writing = self._writing, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def _append(self, data: bytes) -> None:
        fd = self._open()
        self._writing = fd
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)  # released in the finally below
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
            if fcntl is not None:
                try:  # unlocked before the descriptor is forgotten: a fork in between leaves
                    fcntl.flock(fd, fcntl.LOCK_UN)  # the child an unlocked copy at worst
                except OSError:
                    pass
            self._writing = None
            os.close(fd)

    def shutdown(self) -> None:
        self._shutdown = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # every export is written through before it returns
