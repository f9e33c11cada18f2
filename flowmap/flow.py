"""The flow map: every operation and call across all traces, with what happened to the tenant.

This is the data the HTML risk map draws and the ``flow`` object of the JSON output.
Its size grows with the number of distinct operations, not with the number of traces.

Structure (:class:`flowmap.model.FlowMap`)::

    FlowMap
    ├── nodes: {operation id: FlowNode}
    │     id        "<service> <span name>"  (Span.operation)
    │     service, name
    │     boundary  boundary kind of the operation (first one seen), or None
    │     spans     how many spans ran this operation
    │     untagged  how many of them carried no tenant tag
    │     entry     True when it was an entry root somewhere (SERVER/CONSUMER, http.server,
    │               queue.consume)
    │     findings  {rule id: count} of findings on its spans
    └── edges: {(source id, target id): FlowEdge}
          one edge per pair of operations where source called target (parent -> child),
          or where target's span linked to a source span (producer -> consumer);
          counts per call:
          inherited  both tagged with the same tenant (tags under different keys, which
                     are never compared, count here too)
          dropped    source tagged, target not                 (context-dropped)
          switched   both tagged, different tenants            (cross-tenant)
          orphaned   target ran as a root with no tenant; source is the operation it
                     most likely belonged under                (orphan-root)
          bound      source untagged, target tagged: the tenant was bound at this call
          untagged   neither tagged
          via_link   how many of the calls above went through span links (queues, streams)
          example_traces  up to ``max_examples_per_edge`` trace ids, traces where the
                     tenant broke on this edge first
          total      (property) sum of the six counts

The JSON output (``flow_map`` in ``flowmap check --format json``) is these fields as
they are, plus ``total`` (see :mod:`flowmap.formats.json`).
"""

from __future__ import annotations

from collections import Counter

from .graph import SpanGraph
from .model import FlowEdge, FlowMap, FlowNode, Span
from .rules import (
    BOUND,
    DROPPED,
    INHERITED,
    SWITCHED,
    UNTAGGED,
    TraceVerdict,
    edge_state,
    is_entry,
)

__all__ = ["FlowMapBuilder"]

_BAD = frozenset({DROPPED, SWITCHED, "orphaned"})


class FlowMapBuilder:
    """Accumulates a :class:`FlowMap` one trace at a time."""

    def __init__(self, max_examples_per_edge: int = 5) -> None:
        self.flow = FlowMap()
        self.max_examples = max_examples_per_edge
        self._bad_examples: dict[tuple[str, str], set[str]] = {}

    def node(self, span: Span) -> FlowNode:
        key = span.operation
        node = self.flow.nodes.get(key)
        if node is None:
            node = self.flow.nodes[key] = FlowNode(key, span.service, span.name, span.boundary)
        elif node.boundary is None and span.boundary is not None:
            node.boundary = span.boundary
        return node

    def _edge(self, source: str, target: str) -> FlowEdge:
        edge = self.flow.edges.get((source, target))
        if edge is None:
            edge = self.flow.edges[(source, target)] = FlowEdge(source, target)
        return edge

    def count(
        self, source: str, target: str, state: str, trace_id: str, *, via_link: bool = False, n: int = 1
    ) -> None:
        """Count ``n`` calls ``source -> target`` in ``state`` (an edge state or ``"orphaned"``)."""
        edge = self._edge(source, target)
        if state == INHERITED:
            edge.inherited += n
        elif state == DROPPED:
            edge.dropped += n
        elif state == SWITCHED:
            edge.switched += n
        elif state == BOUND:
            edge.bound += n
        elif state == UNTAGGED:
            edge.untagged += n
        else:
            edge.orphaned += n
        if via_link:
            edge.via_link += n
        self._example(edge, trace_id, state in _BAD)

    def _example(self, edge: FlowEdge, trace_id: str, bad: bool) -> None:
        examples = edge.example_traces
        if trace_id in examples or self.max_examples <= 0:
            return
        key = (edge.source, edge.target)
        bad_set = self._bad_examples.setdefault(key, set()) if bad else self._bad_examples.get(key, set())
        if len(examples) < self.max_examples:
            examples.append(trace_id)
        elif bad:
            # a trace where the tenant broke here is a better example than a healthy one
            for i in range(len(examples) - 1, -1, -1):
                if examples[i] not in bad_set:
                    examples[i] = trace_id
                    break
            else:
                return
        else:
            return
        if bad:
            bad_set.add(trace_id)

    def add_trace(self, graph: SpanGraph, verdict: TraceVerdict) -> None:
        spans = graph.spans
        ops = graph.ops
        trace_id = graph.trace.trace_id
        flow_nodes = self.flow.nodes
        # per operation, not per span: a trace repeats few distinct operations
        need: list[str] = []
        for operation, n in Counter(ops.values()).items():
            node = flow_nodes.get(operation)
            if node is None or node.boundary is None:
                need.append(operation)
            else:
                node.spans += n
        if need:
            self._new_nodes(graph, need)
        untagged = [ops[sid] for sid, s in spans.items() if s.tenant is None]
        for operation in untagged:
            flow_nodes[operation].untagged += 1
        for sid in graph.entry_roots():
            if is_entry(spans[sid]):
                flow_nodes[ops[sid]].entry = True
        # parent edges were judged and counted by the rules; links inside the trace here
        for (source, target, state), n in verdict.calls.items():
            self.count(source, target, state, trace_id, n=n)
        for src, dst in graph.links:
            self.count(ops[src], ops[dst], edge_state(spans[src], spans[dst]), trace_id, via_link=True)
        for f in verdict.findings:
            node = flow_nodes[ops[f.span_id]]
            node.findings[f.rule] = node.findings.get(f.rule, 0) + 1

    def _new_nodes(self, graph: SpanGraph, operations: list[str]) -> None:
        """Count the spans of operations new to the map, or still without a boundary kind
        (the first boundary kind seen for an operation is kept), span by span."""
        wanted = set(operations)
        ops = graph.ops
        for sid, span in graph.spans.items():
            if ops[sid] in wanted:
                self.node(span).spans += 1

    def add_link(self, producer: Span, consumer: Span, rule: str | None) -> None:
        """A link between traces, judged once both sides were seen."""
        self.node(producer)
        node = self.node(consumer)
        self.count(producer.operation, consumer.operation, edge_state(producer, consumer),
                   consumer.trace_id, via_link=True)
        if rule is not None:
            node.findings[rule] = node.findings.get(rule, 0) + 1

    def remove_finding(self, operation: str, rule: str) -> None:
        """Take back one finding counted on an operation (superseded by a later one)."""
        node = self.flow.nodes.get(operation)
        if node is None:
            return
        n = node.findings.get(rule, 0)
        if n > 1:
            node.findings[rule] = n - 1
        else:
            node.findings.pop(rule, None)

    def add_orphan(self, likely_parent: str, orphan_operation: str, trace_id: str) -> None:
        if likely_parent in self.flow.nodes and orphan_operation in self.flow.nodes:
            self.count(likely_parent, orphan_operation, "orphaned", trace_id)
