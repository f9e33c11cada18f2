"""Write hand-made traces as OTLP JSON Lines, exactly as the Collector's file exporter does.

    tb = TraceBuilder(service="api")
    entry = tb.span("GET /chat", kind=SERVER, tenant=TAG_A, boundary="http.server")
    agent = entry.child("agent run", tenant=TAG_A, boundary="agent")
    agent.child("search docs", service="rag", boundary="vector", scoped=False)
    path = write_otlp(tmp_path / "t.jsonl", tb)

Encoding: ``{"resourceSpans": [{"resource": …, "scopeSpans": [{"scope": …, "spans": [...]}]}]}``
one object per line; hex ids; 64-bit integers as strings; integer enums; attributes as
``[{"key": k, "value": AnyValue}]``. Spans are grouped by resource (service, key id,
extra resource attributes) the way an SDK batch would be. :meth:`TraceBuilder.traces`
also gives the same trace as in-memory :class:`flowmap.model.Trace` objects, with the
derived fields set from the builder's arguments (for the in-memory API).
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowmap import attributes as A
from flowmap.model import Event, Link, Span, Trace
from flowmap.tagging import key_id_for, tag_for

__all__ = [
    "INTERNAL",
    "SERVER",
    "CLIENT",
    "PRODUCER",
    "CONSUMER",
    "KEY",
    "KEY_ID",
    "TAG_A",
    "TAG_B",
    "TraceBuilder",
    "SpanRef",
    "any_value",
    "write_otlp",
    "analyze_built",
]

INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER = 1, 2, 3, 4, 5

KEY = "test-key-not-secret"
KEY_ID = key_id_for(KEY)
TAG_A = tag_for(KEY, "tenant-a")
TAG_B = tag_for(KEY, "tenant-b")

_trace_ids = itertools.count(1)
_span_ids = itertools.count(1)


def any_value(v: Any) -> dict[str, Any]:
    """A Python value as an OTLP JSON AnyValue."""
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, bytes):
        return {"bytesValue": base64.b64encode(v).decode()}
    if isinstance(v, (list, tuple)):
        return {"arrayValue": {"values": [any_value(x) for x in v]}}
    if isinstance(v, dict):
        return {"kvlistValue": {"values": [{"key": k, "value": any_value(x)} for k, x in v.items()]}}
    return {"stringValue": str(v)}


def _kv(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": any_value(v)} for k, v in attrs.items()]


@dataclass
class _SpanSpec:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: int
    service: str
    key_id: str | None
    attrs: dict[str, Any]
    resource: dict[str, Any]
    start: int
    end: int
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    links: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    tenant: str | None = None
    boundary: str | None = None
    scoped: bool | None = None
    status: int = 0  # OTLP Status.code: 0 unset, 1 ok, 2 error


@dataclass
class SpanRef:
    """A span added to a builder; ``child`` adds a span under it."""

    builder: "TraceBuilder"
    trace_id: str
    span_id: str
    spec: _SpanSpec

    def child(self, name: str, **kwargs: Any) -> "SpanRef":
        kwargs.setdefault("service", self.spec.service)
        kwargs.setdefault("key_id", self.spec.key_id)
        return self.builder.span(name, parent=self, **kwargs)


class TraceBuilder:
    """One trace (its spans may belong to several services)."""

    def __init__(
        self,
        service: str = "api",
        *,
        trace_id: str | None = None,
        key_id: str | None = KEY_ID,
        resource: dict[str, Any] | None = None,
    ) -> None:
        self.trace_id = trace_id or f"{0xABC0000000000000 + next(_trace_ids):032x}"
        self.service = service
        self.key_id = key_id
        self.resource = dict(resource or {})
        self.specs: list[_SpanSpec] = []
        self._clock = 1_700_000_000_000_000_000

    def span(
        self,
        name: str,
        *,
        kind: int = INTERNAL,
        parent: "SpanRef | str | None" = None,
        service: str | None = None,
        tenant: str | None = None,
        boundary: str | None = None,
        scoped: bool | None = None,
        baggage_sent: bool | None = None,
        attrs: dict[str, Any] | None = None,
        events: list[tuple[str, dict[str, Any]]] | None = None,
        links: list["SpanRef | tuple[str, str]"] | None = None,
        link_attrs: dict[str, Any] | None = None,
        resource: dict[str, Any] | None = None,
        key_id: "str | None | type[TraceBuilder]" = ...,  # type: ignore[assignment]
        span_id: str | None = None,
        start: int | None = None,
        status: int = 0,
    ) -> SpanRef:
        """Add a span; ``tenant``/``boundary``/``scoped``/``baggage_sent`` become flowmap attributes."""
        a: dict[str, Any] = {}
        if tenant is not None:
            a[A.TENANT] = tenant
            a[A.TENANT_SOURCE] = A.SOURCE_CONTEXT
        if boundary is not None:
            a[A.BOUNDARY] = boundary
        if scoped is not None:
            a[A.SCOPED] = scoped
        if baggage_sent is not None:
            a[A.BAGGAGE_SENT] = baggage_sent
        a.update(attrs or {})
        self._clock += 1000
        begin = self._clock if start is None else start
        parent_id = parent.span_id if isinstance(parent, SpanRef) else parent
        spec = _SpanSpec(
            trace_id=self.trace_id,
            span_id=span_id or f"{0x5000000000000000 + next(_span_ids):016x}",
            parent_id=parent_id,
            name=name,
            kind=kind,
            service=service or self.service,
            key_id=self.key_id if key_id is ... else key_id,  # type: ignore[comparison-overlap]
            attrs=a,
            resource={**self.resource, **(resource or {})},
            start=begin,
            end=begin + 500,
            events=list(events or []),
            links=[
                (l.trace_id, l.span_id, dict(link_attrs or {})) if isinstance(l, SpanRef)
                else (l[0], l[1], dict(link_attrs or {}))
                for l in (links or [])
            ],
            tenant=tenant,
            boundary=boundary,
            scoped=scoped,
            status=status,
        )
        self.specs.append(spec)
        return SpanRef(self, spec.trace_id, spec.span_id, spec)

    # -- output ------------------------------------------------------------------

    @staticmethod
    def _resource_attrs(spec: _SpanSpec) -> dict[str, Any]:
        r = {"service.name": spec.service, **spec.resource}
        if spec.key_id is not None:
            r[A.KEY_ID] = spec.key_id
        return r

    def _span_json(self, spec: _SpanSpec) -> dict[str, Any]:
        out: dict[str, Any] = {
            "traceId": spec.trace_id,
            "spanId": spec.span_id,
            "name": spec.name,
            "kind": spec.kind,
            "startTimeUnixNano": str(spec.start),
            "endTimeUnixNano": str(spec.end),
            "attributes": _kv(spec.attrs),
            "status": {"code": spec.status} if spec.status else {},
        }
        if spec.parent_id:
            out["parentSpanId"] = spec.parent_id
        if spec.events:
            out["events"] = [
                {"timeUnixNano": str(spec.start + 1), "name": n, "attributes": _kv(a)}
                for n, a in spec.events
            ]
        if spec.links:
            out["links"] = [{"traceId": t, "spanId": s, "attributes": _kv(a)} for t, s, a in spec.links]
        return out

    def resource_spans(self, specs: list[_SpanSpec] | None = None) -> list[dict[str, Any]]:
        groups: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
        for spec in self.specs if specs is None else specs:
            res = self._resource_attrs(spec)
            key = json.dumps(res, sort_keys=True, default=str)
            groups.setdefault(key, (res, []))[1].append(self._span_json(spec))
        return [
            {
                "resource": {"attributes": _kv(res)},
                "scopeSpans": [{"scope": {"name": "tests.otlp_builder"}, "spans": spans}],
            }
            for res, spans in groups.values()
        ]

    def lines(self, *, per_span: bool = False) -> list[str]:
        """JSON Lines for this trace: one line, or one line per span (``per_span``)."""
        if per_span:
            return [json.dumps({"resourceSpans": self.resource_spans([s])}) for s in self.specs]
        return [json.dumps({"resourceSpans": self.resource_spans()})]

    def traces(self) -> Trace:
        """The same trace as a :class:`Trace`, derived fields taken from the builder arguments."""
        spans = {}
        for spec in self.specs:
            spans[spec.span_id] = Span(
                trace_id=spec.trace_id,
                span_id=spec.span_id,
                parent_span_id=spec.parent_id,
                name=spec.name,
                kind=spec.kind,
                service=spec.service,
                start_ns=spec.start,
                end_ns=spec.end,
                attributes=dict(spec.attrs),
                resource=self._resource_attrs(spec),
                events=[Event(n, dict(a)) for n, a in spec.events],
                links=[Link(t, s, dict(a)) for t, s, a in spec.links],
                origin="memory",
                tenant=spec.tenant,
                boundary=spec.boundary,
                scoped=spec.scoped,
                key_id=spec.key_id,
            )
        return Trace(self.trace_id, spans)


def write_otlp(path: str | Path, *builders: TraceBuilder, per_span: bool = False) -> Path:
    """Write the builders' traces as OTLP JSON Lines (gzip when the name ends in ``.gz``)."""
    path = Path(path)
    text = "".join(line + "\n" for b in builders for line in b.lines(per_span=per_span))
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def analyze_built(tmp_path: Path, *builders: TraceBuilder, settings: Any = None, per_span: bool = False):
    """Write the builders to one OTLP JSON Lines file and analyse it through ``flowmap.analyze``."""
    from flowmap.analysis import analyze

    path = write_otlp(tmp_path / "traces.jsonl", *builders, per_span=per_span)
    return analyze([path], settings)
