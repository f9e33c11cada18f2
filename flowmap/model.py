"""The analyzer's data model, shared by loading, rules, paths, the flow map and reports.

Stages exchange these plain objects only, so a reporter never needs to know how a
trace file was decoded. Fields may be added; existing ones are not renamed (the JSON
output and the HTML report depend on them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

__all__ = [
    "Severity",
    "Span",
    "Link",
    "Event",
    "Trace",
    "Finding",
    "FlowNode",
    "FlowEdge",
    "FlowMap",
    "TracePath",
    "Analysis",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
    "STATUS_CODE_ERROR",
]

# OTLP integer enums (opentelemetry.proto.trace.v1.Span.SpanKind)
SPAN_KIND_UNSPECIFIED = 0
SPAN_KIND_INTERNAL = 1
SPAN_KIND_SERVER = 2
SPAN_KIND_CLIENT = 3
SPAN_KIND_PRODUCER = 4
SPAN_KIND_CONSUMER = 5
STATUS_CODE_ERROR = 2  # Status.StatusCode


class Severity(IntEnum):
    """Ordered severities; ``str(sev)`` is the lowercase name used in every output."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    def __str__(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> "Severity":
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(str(s) for s in cls)
            from .errors import ConfigError

            raise ConfigError(f"unknown severity {text!r}: use one of {names}") from None


@dataclass(slots=True)
class Link:
    trace_id: str  # lowercase hex
    span_id: str  # lowercase hex
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Event:
    name: str
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Span:
    """One span as read from a trace file, ids normalised to lowercase hex."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: int  # SPAN_KIND_* integer
    service: str  # resource service.name, "unknown_service" when absent
    start_ns: int = 0
    end_ns: int = 0
    attributes: dict[str, Any] = field(default_factory=dict)
    resource: dict[str, Any] = field(default_factory=dict)  # shared between spans of one resource
    events: list[Event] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    status_code: int = 0
    origin: str = ""  # "file:line" the span was read from
    # Derived once at load time:
    #: value of flowmap.tenant, if any; None on a boundary that ran with no tenant bound
    #: (flowmap.unscoped, record mode, not refused: see rules.ran_unbound)
    tenant: str | None = None
    boundary: str | None = None  # flowmap.boundary, or inferred from conventions
    scoped: bool | None = None  # flowmap.scoped on data boundaries
    key_id: str | None = None  # resource flowmap.key_id

    @property
    def operation(self) -> str:
        """This span's operation, as findings name it: service and span name (its
        flow-map node writes a UUID in the name as ``{uuid}``: graph.generic_name)."""
        return f"{self.service} {self.name}"


@dataclass(slots=True)
class Trace:
    trace_id: str
    spans: dict[str, Span]  # span_id -> Span
    #: False when the loader's scan saw this trace id only on the trace's own spans, so no
    #: span link anywhere in the input points into it (the analysis then need not remember
    #: its spans as link targets); True when it may be linked to or nobody knows.
    maybe_linked: bool = True
    #: how many span links the loader's scan saw pointing into this trace (its id in a
    #: link, counted over the whole input; an upper bound, as broken lines count too),
    #: or -1 when not known. Lets the analysis skip remembering link targets once every
    #: link into the trace was judged.
    links_in: int = -1
    #: ids of the spans the loader found marked as proxies (``component=proxy``), which
    #: the analysis passes through (:mod:`flowmap.transparent`); None when not looked for
    #: (a trace built by hand: the analysis then reads the attributes)
    transparent: Sequence[str] | None = None
    #: the ids of this trace's spans that span links in the input point to (the loader
    #: has read every such link by the time it yields the trace), or None when not known
    #: (then any span may be): the analysis remembers only these for links still to come
    linked_spans: "frozenset[str] | None" = None


@dataclass(slots=True)
class Finding:
    rule: str
    severity: Severity
    trace_id: str
    span_id: str
    span_name: str
    parent_span_id: str | None
    parent_name: str | None
    service: str | None
    boundary: str | None
    message: str
    likely_parent: str | None = None  # orphan-root: operation it most likely belonged under
    #: context-dropped / orphan-root on a span that is no boundary: the first boundary
    #: below it that ran without the lost tenant too ("tool 'svc lookup'"), else None
    reached: str | None = None
    origin: str | None = None  # "file:line" the flagged span was read from (SARIF locations)
    #: the trace the parent span is in: another one than ``trace_id`` when the "parent" is
    #: the span this one links to (a queue's producer); None when there is no parent
    parent_trace_id: str | None = None
    #: the service of the parent span (another one than ``service`` across a remote parent
    #: or a link); None when there is no parent span in the data
    parent_service: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": str(self.severity),
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "span_name": self.span_name,
            "parent_span_id": self.parent_span_id,
            "parent_name": self.parent_name,
            "service": self.service,
            "boundary": self.boundary,
            "message": self.message,
            "likely_parent": self.likely_parent,
            "reached": self.reached,
            "parent_trace_id": self.parent_trace_id,
            "parent_service": self.parent_service,
        }


@dataclass(slots=True)
class FlowNode:
    """An operation (service + span name) across all traces."""

    id: str
    service: str
    name: str
    boundary: str | None
    spans: int = 0
    untagged: int = 0  # spans of this operation without a tenant tag
    entry: bool = False  # a SERVER/CONSUMER root somewhere
    findings: dict[str, int] = field(default_factory=dict)  # rule -> count


@dataclass(slots=True)
class FlowEdge:
    """Calls from one operation to another, with what happened to the tenant on them."""

    source: str  # FlowNode.id
    target: str  # FlowNode.id
    inherited: int = 0
    dropped: int = 0
    switched: int = 0
    orphaned: int = 0  # target ran as a root; source is the most likely parent
    via_link: int = 0  # of the above, edges through span links (queues, streams)
    example_traces: list[str] = field(default_factory=list)  # capped sample
    bound: int = 0  # source untagged, target tagged (and no other tenant tagged above): bound at this call
    untagged: int = 0  # neither side tagged

    @property
    def total(self) -> int:
        return (
            self.inherited + self.dropped + self.switched + self.orphaned + self.bound + self.untagged
        )


@dataclass(slots=True)
class FlowMap:
    nodes: dict[str, FlowNode] = field(default_factory=dict)
    edges: dict[tuple[str, str], FlowEdge] = field(default_factory=dict)


@dataclass(slots=True)
class TracePath:
    """The path of span ids from the entry span to one final tool call."""

    trace_id: str
    span_ids: list[str]
    broken_at: int | None = None  # index in span_ids of the first span whose edge broke
    break_rule: str | None = None  # "context-dropped" / "cross-tenant" / ...
    severity: "Severity | None" = None  # severity of the break's finding, None when unbroken
    worst: "Severity | None" = None  # worst finding on any span of the path


@dataclass(slots=True)
class Analysis:
    """Everything one analysis produced; what reporters consume."""

    files: list[str] = field(default_factory=list)
    traces: int = 0
    spans: int = 0
    services: set[str] = field(default_factory=set)
    tenant_tags: set[str] = field(default_factory=set)
    findings: list[Finding] = field(default_factory=list)
    flow: FlowMap = field(default_factory=FlowMap)
    paths: list[TracePath] = field(default_factory=list)  # capped sample, worst first
    sample_traces: dict[str, Trace] = field(default_factory=dict)  # capped, for drill-down
    warnings: list[str] = field(default_factory=list)  # one line each, "file:line: ..."
    #: findings left out of ``findings`` by ``max_findings``, by (rule, severity): still
    #: counted in every summary and in the verdict
    omitted: dict[tuple[str, Severity], int] = field(default_factory=dict)
    #: spans passed through (service-mesh proxies, configured services): counted in
    #: ``spans``, judged as if absent (flowmap.transparent)
    transparent_spans: int = 0
    #: service -> spans counted under an overflow operation of the flow map, past the
    #: caps on distinct operations (``max_operations_per_service``, ``max_operations``)
    folded_spans: dict[str, int] = field(default_factory=dict)
