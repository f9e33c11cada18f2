"""The HTML risk map's data, prepared apart from rendering.

Everything the template and its script show is decided here, from an
:class:`~flowmap.model.Analysis`: the header and its verdict, the laid-out flow map,
the findings table, the sample traces for the trace view. Long lists are capped (see
:class:`Caps`) and every cap that actually cut something is stated in ``notices`` so
the page says so. Values taken from trace files stay plain strings here (the template
escapes them); raw tenant ids are masked again, whatever the analyzer already did.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from collections.abc import Callable
from typing import Any

from . import attributes
from .conventions import holds_content
from .formats.common import clean, count_by_rule, count_by_severity
from .formats.rules import rule_doc
from .graph import OTHER_OPERATIONS, OTHER_SERVICES
from .layout import Layout, layered_layout
from .masking import MASK, Masker, is_tenant_key
from .model import (
    STATUS_CODE_ERROR,
    Analysis,
    Finding,
    FlowEdge,
    Severity,
    Span,
    Trace,
    TracePath,
)
from .tagging import is_opaque_tag

__all__ = [
    "Caps",
    "DEFAULT_CAPS",
    "Header",
    "NodeView",
    "EdgeView",
    "FindingView",
    "SpanView",
    "TraceView",
    "ReportData",
    "build_report_data",
    "EDGE_KINDS",
    "BREAK_RULES",
]

# What happened to the tenant on an edge, worst first (an edge shows its worst kind).
EDGE_KINDS: tuple[str, ...] = ("switched", "dropped", "orphaned", "inherited")
# Rules that mean the edge into a span broke the tenant chain (highlighted in traces).
BREAK_RULES: tuple[str, ...] = ("cross-tenant", "context-dropped", "orphan-root", "unscoped-entry")
_KIND_NAMES = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}

NAME_CHARS = 44  # longer labels are cut with an ellipsis on the map (longer name in the panel)
BOUNDARY_CHARS = 40
NAME_PX = 7.4  # bold 12px sans-serif, generous average advance
SUB_PX = 6.4  # 11px sans-serif
NODE_PAD = 14.0
NODE_MIN_W = 150.0
NODE_H = 44.0
BADGE_W = 34.0  # room for the findings count at the right of a box


@dataclass(frozen=True, slots=True)
class Caps:
    """Bounds that keep a report of a 100,000-span input small and quick to open."""

    nodes: int = 300  # operations drawn on the map (worst and busiest kept)
    edges: int = 500  # calls between two of them drawn on the map (broken and busiest kept):
    # the layout's time and the map's size grow with edges times the columns they span
    findings: int = 2000  # rows in the findings table (worst first)
    traces: int = 60  # sample traces available in the trace view
    spans_per_trace: int = 250  # spans shown per sample trace (those of listed findings always)
    span_budget: int = 6000  # spans over all sample traces
    examples_per_edge: int = 5  # example traces listed per edge / node
    attributes_per_span: int = 16
    attribute_chars: int = 2_000_000  # attribute text over all sample traces, as written in the page
    # (an escaped "<" counts six), then spans are shown with their names only
    value_chars: int = 200
    name_chars: int = 200  # span names (attacker-chosen, up to 4096 characters) wherever shown
    service_chars: int = 120
    files: int = 20


DEFAULT_CAPS = Caps()


@dataclass(slots=True)
class Header:
    files: list[str]
    files_total: int
    traces: int
    spans: int
    services: int
    tenant_tags: int
    severities: dict[str, int]  # critical..info, zeros included
    rules: dict[str, int]
    findings_total: int
    verdict: str
    verdict_level: str  # "critical" / "high" / "medium" / "low" / "info" / "ok"
    warnings: list[str]


@dataclass(slots=True)
class NodeView:
    id: str  # "n0", safe in attributes and JSON keys
    op: str
    service: str
    name: str
    label: str  # name cut to NAME_CHARS
    sublabel: str  # "service · boundary"
    boundary: str | None
    boundary_class: str  # one of attributes.BOUNDARY_KINDS with dots as dashes, or "none"/"other"
    spans: int
    untagged: int
    entry: bool
    findings: dict[str, int]
    worst: str | None  # worst severity of findings on the node
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    h: float = 0.0
    self_loops: int = 0
    edges_in: list[str] = field(default_factory=list)
    edges_out: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)


@dataclass(slots=True)
class EdgeView:
    id: str  # "e0"
    source: str  # NodeView.id
    target: str
    source_op: str
    target_op: str
    inherited: int
    dropped: int
    switched: int
    orphaned: int
    via_link: int
    total: int
    kind: str  # worst of EDGE_KINDS present
    mixed: bool  # more than one kind on this edge
    label: str  # count shown on the map
    title: str  # hover text
    path: str = ""
    label_x: float = 0.0
    label_y: float = 0.0
    label_anchor: str = "end"
    reversed: bool = False
    examples: list[str] = field(default_factory=list)

    @property
    def stroke(self) -> float:
        """Line width grows with the call count, slowly (log scale)."""
        return round(1.4 + min(3.2, math.log10(self.total + 1) * 1.1), 2)

    @property
    def classes(self) -> str:
        out = ["edge", self.kind]
        if self.mixed:
            out.append("mixed")
        if self.via_link:
            out.append("via-link")
        if self.reversed:
            out.append("back")
        return " ".join(out)


@dataclass(slots=True)
class FindingView:
    index: int
    rule: str
    severity: str
    rank: int  # Severity value, for sorting
    trace_id: str
    span_id: str
    span_name: str
    parent_name: str | None
    service: str
    boundary: str | None
    message: str
    node: str | None  # NodeView.id of the span's operation
    edge: str | None  # EdgeView.id of the edge into it, when known
    in_trace_view: bool


@dataclass(slots=True)
class SpanView:
    span_id: str
    parent_span_id: str | None
    depth: int
    name: str
    service: str
    kind: str
    boundary: str | None
    tenant: str | None  # opaque tag, MASK if the value was not opaque, None if untagged
    tenant_hue: int | None  # a stable color per tag, so a switch is visible at a glance
    source: str | None
    scoped: bool | None
    start_ms: float
    duration_ms: float
    error: bool
    on_path: bool
    rules: list[str]
    broken: str | None  # rule that broke the edge into this span
    attributes: list[tuple[str, str]]
    node: str | None


@dataclass(slots=True)
class TraceView:
    trace_id: str
    spans: list[SpanView]
    spans_total: int
    duration_ms: float
    first_broken: str | None  # span id of the first broken edge
    break_rule: str | None
    path: list[str]  # span ids from the entry to the final tool call, if known
    notice: str | None = None  # says how many spans a long trace leaves out, and which are kept


@dataclass(slots=True)
class ReportData:
    header: Header
    nodes: list[NodeView]
    edges: list[EdgeView]
    findings: list[FindingView]
    traces: dict[str, TraceView]
    notices: list[str]  # one sentence per cap that cut something
    map_counts: str  # what the map draws of the whole input's operations and calls
    width: float
    height: float
    crossings: int
    filter_rules: list[str]
    filter_services: list[str]
    rule_help: dict[str, str]

    def script_data(self) -> dict[str, Any]:
        """The JSON the page's script reads (drill-down panels and trace view): only what
        it reads, since every name in it may cost six bytes a character (``\\u003c``)."""
        return {
            "nodes": {
                n.id: {
                    "service": n.service, "name": n.name, "boundary": n.boundary,
                    "spans": n.spans, "untagged": n.untagged, "entry": n.entry,
                    "findings": n.findings, "in": n.edges_in, "out": n.edges_out,
                    "examples": n.examples, "selfLoops": n.self_loops,
                }
                for n in self.nodes
            },
            "edges": {
                e.id: {
                    "source": e.source, "target": e.target, "sourceOp": e.source_op,
                    "targetOp": e.target_op, "inherited": e.inherited, "dropped": e.dropped,
                    "switched": e.switched, "orphaned": e.orphaned, "viaLink": e.via_link,
                    "total": e.total, "kind": e.kind, "examples": e.examples,
                }
                for e in self.edges
            },
            "findings": [
                {
                    "rule": f.rule, "severity": f.severity, "trace": f.trace_id, "span": f.span_id,
                    "message": f.message, "node": f.node, "edge": f.edge,
                }
                for f in self.findings
            ],
            "traces": {tid: asdict(t) for tid, t in self.traces.items()},
            "rules": self.rule_help,
        }


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _boundary_class(boundary: str | None) -> str:
    if not boundary:
        return "none"
    return boundary.replace(".", "-") if boundary in attributes.BOUNDARY_KINDS else "other"


def _edge_kind(e: FlowEdge) -> tuple[str, bool]:
    present = [k for k in EDGE_KINDS if getattr(e, k)]
    if not present:
        return "inherited", False
    return present[0], len(present) > 1


def _verdict(analysis: Analysis) -> tuple[str, str]:
    """The header's one line, counted over the whole flow map (not the edges drawn)."""
    sev = count_by_severity(analysis.findings, analysis.omitted)
    flow_edges = analysis.flow.edges.values()
    switched = sum(1 for e in flow_edges if e.switched)
    dropped = sum(1 for e in flow_edges if e.dropped or e.orphaned)
    if sev["critical"]:
        on = f", on {_plural(switched, 'call edge')}" if switched else ""
        return (
            f"Tenant context switched to another tenant ({_plural(sev['critical'], 'critical finding')}"
            f"{on}): data may cross tenants.",
            "critical",
        )
    if sev["high"]:
        where = f" on {_plural(dropped, 'call edge')}" if dropped else ""
        return (
            f"Tenant context is lost or unchecked{where} ({_plural(sev['high'], 'high finding')}): "
            "operations run without knowing whose data they touch.",
            "high",
        )
    for level in ("medium", "low", "info"):
        if sev[level]:
            return (
                f"No critical or high findings; {_plural(sev[level], level + ' finding')} to review.",
                level,
            )
    return f"No tenant context breaks found in {_plural(analysis.traces, 'trace')}.", "ok"


# Characters a browser draws as nothing, or as a space like U+0020: a span named
# "tool refund" + U+FE0F (a variation selector), "tool" + U+00A0 + "refund" or
# "tool  refund" (HTML collapses the two spaces) would be a second operation that looks
# exactly like "tool refund" on the map and in the table, so a leak could be shown
# under the name of a clean operation. They are shown as \\uXXXX, like the control
# and bidi characters clean() escapes. (Unicode's Default_Ignorable_Code_Point, the
# spaces other than U+0020, the Braille blank; the format characters among them are
# clean()'s too.)
_UNSEEN = re.compile(
    "[\u00a0\u00ad\u034f\u061c\u115f\u1160\u1680\u17b4\u17b5\u180b-\u180f"
    "\u2000-\u200f\u202a-\u202f\u205f-\u206f\u2800\u3000\u3164\ufe00-\ufe0f\ufeff"
    "\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
    "| (?= )|^ | $"  # a space next to another one (or at an end), which HTML would not show
)


def _isolate(s: str) -> str:
    """``s`` between U+2068 and U+2069 (first strong isolate, pop directional isolate), for
    a value written beside others: two right-to-left names either side of " → " would
    be drawn in reverse order, the callee first. (_visible escapes those characters in
    the values themselves, so an isolate is always ours.)"""
    return f"\u2068{s}\u2069"


def _visible(s: str) -> str:
    return _UNSEEN.sub(lambda m: f"\\u{ord(m.group()):04x}", s)


class _Safe:
    """Masks raw tenant ids in anything shown, on top of the analyzer's own masking."""

    def __init__(self, analysis: Analysis, caps: Caps, content: bool = False) -> None:
        self.caps = caps
        self.content = content  # show conversation and tool content (holds_content)
        self.content_hidden = 0  # values of such attributes shown by their size only
        self.names = attributes.TENANT_ID_ATTRIBUTE_NAMES
        raw: list[Any] = []
        for trace in analysis.sample_traces.values():
            for span in trace.spans.values():
                for key, value in span.attributes.items():
                    if self._is_raw_tenant(key, value):
                        raw.append(value)
                if span.tenant is not None and not is_opaque_tag(span.tenant):
                    raw.append(span.tenant)
        self.masker = Masker(raw)
        self.chars_left = caps.attribute_chars  # attribute text still to show (see Caps)
        self.attrs_cut = 0  # spans shown without (some of) their attributes for it

    def _is_raw_tenant(self, key: str, value: Any) -> bool:
        return (
            isinstance(value, (str, int, float))
            and not isinstance(value, bool)
            and str(value).strip() != ""
            and str(value) != MASK
            and not is_opaque_tag(value)
            and is_tenant_key(key, self.names)
        )

    def text(self, value: Any, limit: int | None = None, *, blanks: bool = True) -> str:
        """Masked, with control / bidi / line-separator characters made visible (``\\u202e``),
        and the characters that draw nothing or look like a plain space (:func:`_visible`)."""
        s = "" if value is None else str(value)
        if self.masker:
            s = self.masker.text(s)
        return clean(_visible(s) if blanks else s, limit or 100_000)

    def name(self, value: Any) -> str:
        return self.text(value, self.caps.name_chars)

    def service(self, value: Any) -> str:
        return self.text(value, self.caps.service_chars)

    def op(self, service: str, name: str) -> str:
        """An operation as shown: its service and span name, each cut (the ids that link
        the map's parts are ``n0``/``e0``, never names, so a cut cannot merge two)."""
        return self.text(f"{self.service(service)} {self.name(name)}", blanks=False)

    def boundary(self, value: str | None) -> str | None:
        return self.text(value, BOUNDARY_CHARS) if value else None

    def hides(self, key: str, value: Any, boundary: str | None = None) -> bool:
        """Whether this value is shown by its size only (:meth:`size_only`): prompts,
        messages, tool arguments and results, what a tenant's users said, the documents a
        vector store or memory keeps (on a span crossing ``boundary``), stay out of a page
        made to be shared, whatever the masking found in them."""
        return not self.content and value is not None and holds_content(key, boundary)

    @staticmethod
    def size_only(value: Any) -> str:
        return f"[{len(str(value)):,} characters of content not shown]"

    def attribute(self, key: str, value: Any) -> str:
        if self._is_raw_tenant(key, value):
            return MASK
        if key.startswith("baggage.") and key != f"baggage.{attributes.BAGGAGE_KEY}":
            return MASK
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        return self.text(value, self.caps.value_chars)


def _operations_of(analysis: Analysis) -> Callable[[str, str], str | None]:
    """The flow-map operation a span of (service, name) was counted under: its own, or an
    overflow operation when the analysis folded that service's span names; None when it
    has none on the map (a span passed through, a service past the caps)."""
    nodes, folded = analysis.flow.nodes, analysis.folded_spans
    # by its service and name, not by "<service> <name>": service "api" with span "tool
    # refund" and service "api tool" with span "refund" are two operations
    by_names = {(n.service, n.name): op for op, n in nodes.items() if n.name != OTHER_OPERATIONS}

    def op_of(service: str, name: str) -> str | None:
        op = by_names.get((service, name))
        if op is not None:
            return op
        op = f"{service} {name}"
        node = nodes.get(op)
        # (a node masking merged this one into: of the same service, never another
        # service's operation whose id only reads alike, such as that of span "tool refund"
        # of "api" for a span "refund" of "api tool" passed through or folded)
        if node is not None and node.service == service:
            return op
        if folded:  # (a service past the count of folded services is not among them)
            for overflow in (f"{service} {OTHER_OPERATIONS}", f"{OTHER_SERVICES} {OTHER_OPERATIONS}"):
                if overflow in nodes:
                    return overflow
        return None

    return op_of


# The finding each broken kind of call leaves on the callee, and the severity an edge
# ranks at when the callee has none of it (the analysis's max_findings keeps the worst
# findings, so one left out was at most as bad; a drop or an orphan is medium off a boundary).
_BREAK_FINDINGS: dict[str, tuple[str, Severity]] = {
    "switched": ("cross-tenant", Severity.CRITICAL),
    "dropped": ("context-dropped", Severity.MEDIUM),
    "orphaned": ("orphan-root", Severity.MEDIUM),
}


def _broken(e: FlowEdge) -> int:
    return e.switched + e.dropped + e.orphaned


def _edge_severity(e: FlowEdge, break_sev: dict[tuple[str, str], Severity]) -> Severity | None:
    """How bad what happened on an edge is: the worst severity of the findings its broken
    kinds left on its callee (``break_sev``: (operation, rule) -> worst), None if unbroken."""
    return max(
        (break_sev.get((e.target, rule), fallback) for kind, (rule, fallback) in _BREAK_FINDINGS.items()
         if getattr(e, kind)),
        default=None,
    )


def _edge_order_key(d: tuple[str, str, FlowEdge], break_sev: dict[tuple[str, str], Severity]) -> tuple:
    """Worst edges first: by severity (one high orphan outranks any number of medium drops),
    then by how many of its calls broke, then the busiest."""
    s, t, e = d
    sev = _edge_severity(e, break_sev)
    return (1 if sev is None else -int(sev), -_broken(e), -e.total, s, t)  # (unbroken: after all)


def _edge_cap_notice(cap: int, calls: int, broken: int) -> str:
    """What the map's cap on call edges kept and left out; ``broken``: of the ``calls``."""
    head = f"The map draws {cap:,} of the {calls:,} call edges between its operations"
    if broken <= cap:
        kept = f"all {broken:,} broken ones (switched, dropped, orphaned)" if broken else "none of them is broken"
        return f"{head}: {kept}, then the busiest."
    left = broken - cap
    healthy = calls - broken
    return (
        f"{head}: the worst {cap:,} of the {broken:,} broken ones (cross-tenant switches first, then by the "
        "severity of the findings on the operation called, then by how many of their calls broke). "
        f"{_plural(left, 'broken call edge')}{f' and {healthy:,} unbroken' if healthy else ''} "
        f"{'is' if left == 1 and not healthy else 'are'} left off the map; "
        "the verdict and the findings counts above include them."
    )


def _map_counts(nodes: list[NodeView], edges: list[EdgeView], nodes_total: int, calls_total: int) -> str:
    """The map's toolbar line: operations and arrows drawn, of the input's when capped; an
    operation's calls to itself are no arrow but a count on its box (↻)."""
    arrows = sum(1 for e in edges if e.source != e.target)
    looping = sum(1 for n in nodes if n.self_loops)
    ops = f"{len(nodes):,} of {nodes_total:,} operations" if len(nodes) < nodes_total else _plural(
        nodes_total, "operation")
    calls = f"{arrows:,} of {calls_total:,} call edges drawn" if arrows < calls_total else _plural(
        calls_total, "call edge")
    loops = ""
    if looping:
        loops = f" · {_plural(looping, 'operation')} calling {'itself' if looping == 1 else 'themselves'} (↻)"
    return f"{ops} · {calls}{loops}"


def _node_order_key(n: Any) -> tuple:
    worst = max((rule_doc(r).severity for r in n.findings), default=-1)
    return (-int(worst), -sum(n.findings.values()), -n.spans, n.id)


def build_report_data(analysis: Analysis, caps: Caps = DEFAULT_CAPS, *, content: bool = False) -> ReportData:
    """Everything the risk map shows, capped and masked, with the map laid out; the text
    of conversation and tool content attributes only with ``content``."""
    safe = _Safe(analysis, caps, content)
    notices: list[str] = []
    if analysis.transparent_spans:
        notices.append(
            f"{_plural(analysis.transparent_spans, 'span')} of service-mesh proxies (or transparent_services) "
            "passed through: not drawn, the calls across them judged from caller to callee."
        )
    flow = analysis.flow
    op_of = _operations_of(analysis)
    if analysis.folded_spans:
        notices.append(
            f"{_plural(sum(analysis.folded_spans.values()), 'span')} of services with too many distinct span names "
            f"are drawn as one '{OTHER_OPERATIONS}' operation per service "
            "(max_operations_per_service, max_operations); "
            "the findings table keeps their own names."
        )

    # -- nodes (capped: worst and busiest first), ids independent of names
    flow_nodes = list(flow.nodes.values())
    if len(flow_nodes) > caps.nodes:
        kept = sorted(flow_nodes, key=_node_order_key)[: caps.nodes]
        notices.append(
            f"The map shows {caps.nodes:,} of {len(flow_nodes):,} operations: those with findings "
            "and the busiest; the findings table still lists findings on the others."
        )
        keep_ids = {n.id for n in kept}
        flow_nodes = [n for n in flow_nodes if n.id in keep_ids]
    flow_nodes.sort(key=lambda n: (not n.entry, n.service, n.name, n.id))
    node_id = {n.id: f"n{i}" for i, n in enumerate(flow_nodes)}
    finding_sev: dict[str, Severity] = {}
    break_sev: dict[tuple[str, str], Severity] = {}  # (callee, rule of a broken call) -> worst
    break_rules = {rule for rule, _ in _BREAK_FINDINGS.values()}
    for f in analysis.findings:
        op = op_of(f.service, f.span_name) if f.service is not None else None
        if op not in node_id:
            continue
        if op not in finding_sev or f.severity > finding_sev[op]:
            finding_sev[op] = f.severity
        prev = break_sev.get((op, f.rule))
        if f.rule in break_rules and (prev is None or f.severity > prev):
            break_sev[(op, f.rule)] = f.severity

    nodes: list[NodeView] = []
    for n in flow_nodes:
        name = safe.name(n.name)
        service = safe.service(n.service)
        label = _cut(name, NAME_CHARS)
        sub = _cut(f"{service} · {n.boundary}" if n.boundary else service, NAME_CHARS + 6)
        worst = finding_sev.get(n.id)
        nv = NodeView(
            id=node_id[n.id], op=safe.op(n.service, n.name), service=service, name=name, label=label,
            sublabel=sub, boundary=safe.boundary(n.boundary),
            boundary_class=_boundary_class(n.boundary), spans=n.spans, untagged=n.untagged,
            entry=n.entry, findings=dict(n.findings), worst=str(worst) if worst is not None else None,
        )
        badge = BADGE_W if n.findings else 0.0
        nv.w = max(NODE_MIN_W, len(label) * NAME_PX + 2 * NODE_PAD + badge, len(sub) * SUB_PX + 2 * NODE_PAD + badge)
        nv.h = NODE_H
        nodes.append(nv)
    by_id = {nv.id: nv for nv in nodes}

    # -- edges
    edges: list[EdgeView] = []
    edge_id: dict[tuple[str, str], str] = {}
    dropped_edges = 0
    drawn: list[tuple[str, str, FlowEdge]] = []
    for (s, t), e in sorted(flow.edges.items()):
        if s not in node_id or t not in node_id:
            dropped_edges += 1
            continue
        drawn.append((s, t, e))
    calls = [d for d in drawn if d[0] != d[1]]  # (a self loop is a count on its node, not drawn)
    flow_calls = [st for st in flow.edges if st[0] != st[1]]
    if len(calls) > caps.edges:
        # a map of 300 operations could join them by 90,000 arrows: a report of hundreds of
        # MB whose layout takes minutes; the worst broken calls and the busiest are kept
        ranked = sorted(calls, key=lambda d: _edge_order_key(d, break_sev))
        kept_calls = {(s, t) for s, t, _ in ranked[: caps.edges]}
        drawn = [d for d in drawn if d[0] == d[1] or (d[0], d[1]) in kept_calls]
        notices.append(_edge_cap_notice(caps.edges, len(calls), sum(1 for d in calls if _broken(d[2]))))
    for s, t, e in drawn:
        kind, mixed = _edge_kind(e)
        broken = e.total - e.inherited
        source_op, target_op = by_id[node_id[s]].op, by_id[node_id[t]].op
        label = f"{e.total:,}" if kind == "inherited" else (
            f"{getattr(e, kind):,}" if not mixed else f"{broken:,}/{e.total:,}"
        )
        parts = [f"{getattr(e, k):,} {k}" for k in EDGE_KINDS if getattr(e, k)]
        if e.via_link:
            parts.append(f"{e.via_link:,} through span links")
        ev = EdgeView(
            id=f"e{len(edges)}", source=node_id[s], target=node_id[t],
            source_op=source_op, target_op=target_op, inherited=e.inherited,
            dropped=e.dropped, switched=e.switched, orphaned=e.orphaned, via_link=e.via_link,
            total=e.total, kind=kind, mixed=mixed, label=label,
            title=f"{_isolate(_cut(source_op, 80))} → {_isolate(_cut(target_op, 80))}: " + ", ".join(parts or ["no calls"]),
            examples=list(dict.fromkeys(e.example_traces))[: caps.examples_per_edge],
        )
        edge_id[(s, t)] = ev.id
        edges.append(ev)
        if s == t:
            by_id[ev.source].self_loops += e.total
        else:
            by_id[ev.source].edges_out.append(ev.id)
            by_id[ev.target].edges_in.append(ev.id)
    if dropped_edges:
        notices.append(f"{_plural(dropped_edges, 'call edge')} to or from operations left off the map are not drawn.")

    layout: Layout = layered_layout(
        {nv.id: (nv.w, nv.h) for nv in nodes},
        [(ev.source, ev.target) for ev in edges],
        entries=[nv.id for nv in nodes if nv.entry],
    )
    for nv in nodes:
        box = layout.nodes[nv.id]
        nv.x, nv.y, nv.w, nv.h = box.x, box.y, box.w, box.h
    for ev in edges:
        r = layout.edges[(ev.source, ev.target)]
        ev.path, ev.label_x, ev.label_y = r.path, r.label_x, r.label_y
        ev.label_anchor, ev.reversed = r.label_anchor, r.reversed

    # -- sample traces for the trace view (those behind findings and broken paths first)
    ordered = sorted(analysis.findings, key=lambda f: (-int(f.severity), f.rule, f.service or "", f.trace_id))
    shown = ordered[: caps.findings]
    by_span: dict[tuple[str, str], list[Finding]] = defaultdict(list)
    for f in analysis.findings:
        by_span[(f.trace_id, f.span_id)].append(f)
    shown_spans: dict[str, list[str]] = defaultdict(list)  # trace -> spans of its listed findings
    for f in shown:
        shown_spans[f.trace_id].append(f.span_id)
    paths: dict[str, list[TracePath]] = defaultdict(list)  # trace -> its paths, worst first
    for p in analysis.paths:
        paths[p.trace_id].append(p)
    wanted: list[str] = []
    wanted.extend(p.trace_id for p in analysis.paths if p.broken_at is not None)
    wanted.extend(f.trace_id for f in sorted(analysis.findings, key=lambda f: -f.severity))
    for ev in edges:
        wanted.extend(ev.examples)
    wanted.extend(analysis.sample_traces)
    traces: dict[str, TraceView] = {}
    budget = caps.span_budget
    cut_spans = 0

    def node_of(service: str, name: str) -> str | None:
        op = op_of(service, name)
        return None if op is None else node_id.get(op)

    for tid in dict.fromkeys(wanted):
        if len(traces) >= caps.traces or budget <= 0:
            break
        trace = analysis.sample_traces.get(tid)
        if trace is None:
            continue
        tv = _trace_view(trace, paths.get(tid, []), by_span, shown_spans.get(tid, []), node_of, safe,
                         min(caps.spans_per_trace, budget))
        cut_spans += tv.spans_total - len(tv.spans)
        budget -= len(tv.spans)
        traces[tid] = tv
    available = sum(1 for t in analysis.sample_traces)
    if available > len(traces):
        notices.append(
            f"The trace view holds {len(traces):,} of the {available:,} sample traces the analysis kept "
            f"(at most {caps.traces:,} traces and {caps.span_budget:,} spans in one report)."
        )
    if safe.attrs_cut:
        notices.append(
            f"{_plural(safe.attrs_cut, 'span')} of the sample traces are shown without all their "
            f"attributes (at most {caps.attribute_chars:,} characters of attributes in one report)."
        )
    if safe.content_hidden:
        notices.append(
            f"{_plural(safe.content_hidden, 'attribute value')} of conversation and tool content (prompts, "
            "messages, tool arguments and results) shown by size only: this page is made to be shared "
            "(flowmap report --show-content shows them)."
        )
    if cut_spans:
        notices.append(
            f"{_plural(cut_spans, 'span')} of long sample traces are not shown "
            f"(at most {caps.spans_per_trace:,} per trace; the spans of listed findings and of the paths "
            "to the tool calls are kept first)."
        )
    if analysis.traces > len(analysis.sample_traces) and analysis.sample_traces:
        notices.append(
            f"Example traces are a sample: {len(analysis.sample_traces):,} of {analysis.traces:,} traces "
            "were kept by the analysis for drill-down; counts on the map cover all traces."
        )

    # -- examples per node: from its edges and its findings
    for nv in nodes:
        ex: list[str] = []
        for eid in nv.edges_in + nv.edges_out:
            ex.extend(edges[int(eid[1:])].examples)
        nv.examples = ex
    node_examples: dict[str, list[str]] = defaultdict(list)

    # -- findings table (worst first, capped)
    if len(ordered) > caps.findings:
        notices.append(
            f"The findings table lists the {caps.findings:,} most severe of {len(ordered):,} findings; "
            "`flowmap check --format json` lists them all."
        )
    names_by_target: dict[str, list[str]] = defaultdict(list)
    for s, t in edge_id:
        names_by_target[t].append(s)
    in_view = {tid: {s.span_id for s in tv.spans} for tid, tv in traces.items()}
    findings: list[FindingView] = []
    for i, f in enumerate(shown):
        op = op_of(f.service, f.span_name) if f.service is not None else None
        nid = node_id.get(op) if op else None
        eid = _edge_for(f, op, names_by_target, edge_id, flow, analysis.sample_traces, op_of)
        if nid is not None:
            node_examples[nid].append(f.trace_id)
        findings.append(FindingView(
            index=i, rule=f.rule, severity=str(f.severity), rank=int(f.severity),
            trace_id=f.trace_id, span_id=f.span_id, span_name=safe.name(f.span_name),
            parent_name=safe.name(f.parent_name) if f.parent_name is not None else None,
            service=safe.service(f.service) if f.service is not None else "",
            boundary=safe.boundary(f.boundary),
            message=safe.text(f.message, 400), node=nid, edge=eid,
            in_trace_view=f.span_id in in_view.get(f.trace_id, ()),
        ))
    for nv in nodes:
        merged = node_examples.get(nv.id, []) + nv.examples
        # examples we can open come first
        merged = sorted(dict.fromkeys(merged), key=lambda t: t not in traces)
        nv.examples = merged[: caps.examples_per_edge]
    for ev in edges:
        ev.examples = sorted(ev.examples, key=lambda t: t not in traces)

    files = [safe.text(p, 200) for p in analysis.files[: caps.files]]
    sev_counts = count_by_severity(analysis.findings, analysis.omitted)
    verdict, level = _verdict(analysis)
    header = Header(
        files=files, files_total=len(analysis.files), traces=analysis.traces, spans=analysis.spans,
        services=len(analysis.services), tenant_tags=len(analysis.tenant_tags),
        severities=sev_counts, rules={r: n for r, n in count_by_rule(analysis.findings, analysis.omitted).items() if n},
        findings_total=len(analysis.findings), verdict=verdict, verdict_level=level,
        warnings=[safe.text(w, 300) for w in analysis.warnings[:20]],
    )
    if len(analysis.warnings) > 20:
        notices.append(f"{len(analysis.warnings) - 20:,} more input warnings are not shown.")
    rules = sorted({f.rule for f in findings})
    return ReportData(
        header=header, nodes=nodes, edges=edges, findings=findings, traces=traces,
        notices=notices, map_counts=_map_counts(nodes, edges, len(flow.nodes), len(flow_calls)),
        width=layout.width, height=layout.height, crossings=layout.crossings,
        filter_rules=rules, filter_services=sorted({f.service for f in findings if f.service}),
        rule_help={r: rule_doc(r).short for r in rules},
    )


def _edge_for(
    f: Finding,
    op: str | None,
    sources_by_target: dict[str, list[str]],
    edge_id: dict[tuple[str, str], str],
    flow: Any,
    samples: dict[str, Trace],
    op_of: Callable[[str, str], str | None],
) -> str | None:
    """The flow-map edge a finding sits on: the call into its span, when it can be told."""
    if op is None:
        return None
    if f.likely_parent and (f.likely_parent, op) in edge_id:
        return edge_id[(f.likely_parent, op)]
    if f.parent_span_id:
        trace = samples.get(f.trace_id)
        parent = _caller(trace, f) if trace else None
        if parent is not None:
            source = op_of(parent.service, parent.name)
            return edge_id.get((source, op)) if source is not None else None
    if f.parent_service is not None and f.parent_name is not None:  # (a link's parent: another trace)
        source = op_of(f.parent_service, f.parent_name)
        if source is not None and (source, op) in edge_id:
            return edge_id[(source, op)]
    if f.parent_name is not None:
        cands = [s for s in sources_by_target.get(op, []) if flow.nodes[s].name == f.parent_name]
        if len(cands) == 1:
            return edge_id[(cands[0], op)]
    return None


def _caller(trace: Trace, f: Finding) -> Span | None:
    """The span of ``trace`` whose call into the finding's span the finding is on: the
    "parent" the finding names, but for a cross-tenant through untagged spans, whose
    "parent" is the tagged span above (rules._switched_through): the call that counted
    as switched is the one from the span's own parent. A span linked to is named as it
    is (the call counted through the link)."""
    named = trace.spans.get(f.parent_span_id) if f.parent_span_id else None
    span = trace.spans.get(f.span_id)
    if named is None or span is None or span.parent_span_id == named.span_id:
        return named
    own = trace.spans.get(span.parent_span_id) if span.parent_span_id else None
    if own is None or any(link.span_id == named.span_id and link.trace_id == trace.trace_id for link in span.links):
        return named
    return own


def _tenant_hue(tag: str) -> int:
    return int(hashlib.sha256(tag.encode()).hexdigest()[:4], 16) % 360


def _span_order(trace: Trace) -> list[tuple[Span, int]]:
    """The spans depth-first with their depth, roots and siblings by start time; spans in
    parent cycles last. Iterative: a deep or cyclic trace must not recurse."""
    spans = trace.spans
    children: dict[str | None, list[Span]] = defaultdict(list)
    for s in spans.values():
        parent = s.parent_span_id if s.parent_span_id in spans else None
        children[parent].append(s)
    for lst in children.values():
        lst.sort(key=lambda s: (s.start_ns, s.span_id))
    ordered: list[tuple[Span, int]] = []
    visited: set[str] = set()
    stack = [(s, 0) for s in reversed(children[None])]
    while stack:
        s, depth = stack.pop()
        if s.span_id in visited:
            continue
        visited.add(s.span_id)
        ordered.append((s, depth))
        stack.extend((c, depth + 1) for c in reversed(children.get(s.span_id, [])))
    for s in sorted(spans.values(), key=lambda s: (s.start_ns, s.span_id)):
        if s.span_id not in visited:
            visited.add(s.span_id)
            ordered.append((s, 0))
    return ordered


def _first_break(paths: list[TracePath]) -> tuple[str | None, str | None]:
    """The span and rule of the worst path's first broken edge, if it broke."""
    p = paths[0] if paths else None
    if p is not None and p.broken_at is not None and 0 <= p.broken_at < len(p.span_ids):
        return p.span_ids[p.broken_at], p.break_rule
    return None, None


def _kept_spans(
    trace: Trace, ordered: list[tuple[Span, int]], must: list[str], paths: list[TracePath], limit: int
) -> set[str]:
    """Which spans a trace of more than ``limit`` spans shows.

    ``must`` (the spans the findings table and the broken edge point at) whatever the
    limit, since the page links to them; then, up to the limit, their parents (the
    other end of a broken edge), the spans of the paths to the tool calls (worst path
    first), and the rest in display order.
    """
    spans = trace.spans
    keep = {sid for sid in must if sid in spans}
    parents = (spans[sid].parent_span_id for sid in must if sid in spans)
    on_paths = (sid for p in paths for sid in p.span_ids)
    rest = (s.span_id for s, _ in ordered)
    for sid in itertools.chain(parents, on_paths, rest):
        if len(keep) >= limit:
            break
        if sid is not None and sid in spans:
            keep.add(sid)
    return keep


def _cut_notice(shown: int, total: int) -> str | None:
    if shown >= total:
        return None
    return (
        f"{_plural(total - shown, 'span')} of this trace's {total:,} left out: it shows the spans "
        "its findings point at, the paths to the tool calls, then the first others."
    )


def _trace_view(
    trace: Trace,
    paths: list[TracePath],
    by_span: dict[tuple[str, str], list[Finding]],
    listed: list[str],
    node_of: Callable[[str, str], str | None],
    safe: _Safe,
    limit: int,
) -> TraceView:
    """One sample trace as a waterfall; ``listed``: span ids of its findings in the
    findings table, which stay in the view whatever ``limit`` says."""
    spans = trace.spans
    path = paths[0] if paths else None
    on_path = set(path.span_ids) if path is not None else set()
    ordered = _span_order(trace)
    total = len(ordered)
    first_broken, break_rule = _first_break(paths)
    if first_broken not in spans:
        first_broken, break_rule = None, None
    if total > limit:
        keep = _kept_spans(trace, ordered, [*listed, *([first_broken] if first_broken else [])], paths, limit)
        ordered = [(s, d) for s, d in ordered if s.span_id in keep]
    t0 = min((s.start_ns for s in spans.values() if s.start_ns), default=0)
    t1 = max((s.end_ns for s in spans.values()), default=t0)
    views: list[SpanView] = []
    for s, depth in ordered:
        view = _span_view(s, depth, t0, by_span.get((trace.trace_id, s.span_id), []), on_path, node_of, safe)
        if first_broken is None and view.broken is not None:
            first_broken, break_rule = s.span_id, view.broken
        views.append(view)
    return TraceView(
        trace_id=trace.trace_id, spans=views, spans_total=total,
        duration_ms=round(max(0, t1 - t0) / 1e6, 3), first_broken=first_broken,
        break_rule=break_rule, path=list(path.span_ids) if path is not None else [],
        notice=_cut_notice(len(views), total),
    )


_JSON_ESCAPES = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def script_json(value: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``</script>``, no ``<!--``."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).translate(_JSON_ESCAPES)


def _page_chars(text: str) -> int:
    """What ``text`` costs in the page's JSON, as :func:`script_json` writes it: ``<`` is
    ``\\u003c`` (six characters), so a value of them would take six times its cap, and
    ``"`` two (a value of quotes took twice its cap)."""
    return len(script_json(text)) - 2  # (less its quotes)


def _span_view(
    s: Span, depth: int, t0: int, findings: list[Finding], on_path: set[str],
    node_of: Callable[[str, str], str | None], safe: _Safe,
) -> SpanView:
    rules = sorted({f.rule for f in findings})
    tenant = s.tenant if s.tenant is None or is_opaque_tag(s.tenant) else MASK
    attrs: list[tuple[str, Any]] = []
    for k, v in list(s.attributes.items())[: safe.caps.attributes_per_span]:
        hidden = safe.hides(k, v, s.boundary)
        pair = (safe.text(k, 80), safe.size_only(v) if hidden else safe.attribute(k, v))
        cost = _page_chars(pair[0]) + _page_chars(str(pair[1]))
        if cost > safe.chars_left:  # a hostile input's thousands of long values: the page stays small
            safe.attrs_cut += 1
            break
        safe.chars_left -= cost
        attrs.append(pair)
        if hidden:  # (counted as shown: a value the cap left out is not on the page)
            safe.content_hidden += 1
    return SpanView(
        span_id=s.span_id, parent_span_id=s.parent_span_id, depth=depth, name=safe.name(s.name),
        service=safe.service(s.service), kind=_KIND_NAMES.get(s.kind, str(s.kind)),
        boundary=safe.boundary(s.boundary), tenant=tenant,
        tenant_hue=_tenant_hue(tenant) if tenant and tenant != MASK else None,
        source=safe.text(s.attributes.get(attributes.TENANT_SOURCE), 20) or None,
        scoped=s.scoped, start_ms=round((s.start_ns - t0) / 1e6, 3) if s.start_ns else 0.0,
        duration_ms=round(max(0, s.end_ns - s.start_ns) / 1e6, 3), error=s.status_code == STATUS_CODE_ERROR,
        on_path=s.span_id in on_path, rules=rules, broken=next((r for r in BREAK_RULES if r in rules), None),
        attributes=attrs, node=node_of(s.service, s.name),
    )
