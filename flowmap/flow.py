"""The flow map: every operation and call across all traces, with what happened to the tenant.

This is the data the HTML risk map draws and the ``flow`` object of the JSON output.
Its size grows with the number of distinct operations, not with the number of traces,
and that number is capped: span names past the caps are counted under one
``"<service> (other operations)"`` node per service (:class:`flowmap.graph.Operations`).

Structure (:class:`flowmap.model.FlowMap`)::

    FlowMap
    ├── nodes: {operation id: FlowNode}
    │     id        "<service> <span name>", a UUID in the name written {uuid}
    │               (graph.generic_name)
    │     service, name
    │     boundary  boundary kind of the operation (first one seen), or None
    │     spans     how many spans ran this operation
    │     untagged  how many of them carried no tenant tag
    │     entry     True when it was an entry root somewhere (SERVER/CONSUMER, http.server,
    │               queue.consume)
    │     findings  {rule id: count} of findings on its spans
    └── edges: {(source id, target id): FlowEdge}
          one edge per pair of operations where source called target (parent -> child),
          or where target's span linked to a source span (producer -> consumer, and
          a message's creation -> the batch send that carries it or the settle that
          acknowledges it: rules.link_reading); counts per call:
          inherited  both tagged with the same tenant (tags under different keys, which
                     are never compared, count here too; and a link into an untagged
                     batch consumer whose work bound the producer's tenant again below
                     it: rules.UntaggedBelow; and a link into a span that carries, settles
                     or hands on the message, whose own tenant is not the message's:
                     rules.passes_on)
          dropped    source tagged, target not                 (context-dropped; and a
                     link from another tenant into a tagged batch that handled a
                     record with no tenant: rules.BATCH_UNBOUND)
          switched   both tagged, different tenants            (cross-tenant; also a call
                     or link into a tagged span from an untagged one whose nearest tagged
                     span above ran for another tenant, and a link into an untagged
                     consumer of one message below which another tenant was bound)
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

from collections import Counter, _count_elements  # type: ignore[attr-defined]

from .graph import Operations, SpanGraph, generic_name
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
_SETTLED_MAX = 1_000_000


class FlowMapBuilder:
    """Accumulates a :class:`FlowMap` one trace at a time."""

    def __init__(self, max_examples_per_edge: int = 5, operations: Operations | None = None) -> None:
        self._flow = FlowMap()
        #: the operation ids of the analysis (the same as its span graphs'), caps included
        self._ops = operations if operations is not None else Operations()
        self.max_examples = max_examples_per_edge
        self._bad_examples: dict[tuple[str, str], set[str]] = {}
        # (source, target, state) of healthy calls whose edge has all its examples: from
        # then on only counted (in C, into _calls), and moved onto the edges when read
        self._settled: set[tuple[str, str, str]] = set()
        self._calls: Counter[tuple[str, str, str]] = Counter()
        # spans and untagged spans per operation, counted in C and moved onto the nodes
        # when the map is read
        self._spans: Counter[str] = Counter()
        self._untagged: Counter[str] = Counter()
        self._bare: set[str] = set()  # operations whose node has no boundary kind yet
        # the same for healthy calls through links between traces (also via_link)
        self._link_settled: set[tuple[str, str, str]] = set()
        self._link_calls: Counter[tuple[str, str, str]] = Counter()

    @property
    def flow(self) -> FlowMap:
        """The map so far."""
        nodes = self._flow.nodes
        for counts, name in ((self._spans, "spans"), (self._untagged, "untagged")):
            if counts:
                for operation, n in counts.items():
                    node = nodes[operation]
                    setattr(node, name, getattr(node, name) + n)
                counts.clear()
        edges = self._flow.edges
        for calls in (self._calls, self._link_calls):
            for (source, target, state), n in calls.items():
                edge = edges[(source, target)]
                setattr(edge, state, getattr(edge, state) + n)  # states are FlowEdge fields
                if calls is self._link_calls:
                    edge.via_link += n
            calls.clear()
        return self._flow

    def names(self, operation: str) -> tuple[str, str]:
        """(service, span name) of an operation already in the map."""
        node = self._flow.nodes[operation]
        return node.service, node.name

    def node(self, span: Span, key: str) -> FlowNode:
        """The node of operation ``key`` (made from ``span`` if new)."""
        nodes = self._flow.nodes
        node = nodes.get(key)
        if node is None:
            service, name = self._ops.names(key) or (span.service, generic_name(span.name))
            node = nodes[key] = FlowNode(key, service, name, span.boundary)
            if span.boundary is None:
                self._bare.add(key)
        elif node.boundary is None and span.boundary is not None:
            node.boundary = span.boundary
            self._bare.discard(key)
        return node

    def _edge(self, source: str, target: str) -> FlowEdge:
        edges = self._flow.edges
        edge = edges.get((source, target))
        if edge is None:
            edge = edges[(source, target)] = FlowEdge(source, target)
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
        if self.max_examples <= 0:
            return
        key = (edge.source, edge.target)
        if trace_id in examples:
            if bad:  # chosen for a healthy call: it broke here too, so it is kept as such
                self._bad_examples.setdefault(key, set()).add(trace_id)
            return
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
        flow_nodes = self._flow.nodes
        # per operation, not per span: counted in C, nodes made only for new operations
        operations = ops.values()
        # an operation without a node is one the counter has not seen since the map was
        # last read (read: every counted operation has its node), so it grows
        known = len(self._spans)
        _count_elements(self._spans, operations)  # Counter.update's C loop, without its checks
        if verdict.untagged:
            _count_elements(self._untagged, verdict.untagged)
        if len(self._spans) > known or (self._bare and not self._bare.isdisjoint(operations)):
            self._new_nodes(graph)
        for sid in graph.entry_roots():
            if is_entry(spans[sid]):
                flow_nodes[ops[sid]].entry = True
        # parent edges were judged by the rules; links inside the trace are judged here
        calls, settled = verdict.calls, self._settled
        if settled.issuperset(calls):  # the common case: healthy calls, examples all chosen
            _count_elements(self._calls, calls)
        else:
            for key, n in Counter(calls).items():
                if key in settled:
                    self._calls[key] += n
                    continue
                source, target, state = key
                self.count(source, target, state, trace_id, n=n)
                self._settle(settled, key)
        judged = verdict.link_states  # links whose state is not their ends' (see TraceVerdict)
        for src, dst in graph.links:
            state = edge_state(spans[src], spans[dst])
            if judged and state != INHERITED:
                state = judged.get((src, dst), state)
            self.count(ops[src], ops[dst], state, trace_id, via_link=True)
        for f in verdict.findings:
            node = flow_nodes[ops[f.span_id]]
            node.findings[f.rule] = node.findings.get(f.rule, 0) + 1

    def _settle(self, settled: set[tuple[str, str, str]], key: tuple[str, str, str]) -> None:
        """Mark a just-counted call as settled once its edge has all its examples and the
        call is healthy: from then on it is only counted."""
        source, target, state = key
        if (
            state not in _BAD and len(self._flow.edges[(source, target)].example_traces) >= self.max_examples
            and len(settled) < _SETTLED_MAX
        ):
            settled.add(key)

    def count_link(self, source: str, target: str, state: str, trace_id: str) -> bool:
        """Count one healthy call through a link between traces whose two operations are
        nodes of the map already (with their boundary kinds); False, with nothing
        counted, otherwise (the caller then goes through :meth:`add_link`)."""
        nodes, bare = self._flow.nodes, self._bare
        if source not in nodes or target not in nodes or (bare and (source in bare or target in bare)):
            return False
        key = (source, target, state)
        settled = self._link_settled
        if key in settled:
            self._link_calls[key] += 1
        else:
            self.count(source, target, state, trace_id, via_link=True)
            self._settle(settled, key)
        return True

    def _new_nodes(self, graph: SpanGraph) -> None:
        """Nodes for operations new to the map, and boundary kinds for nodes without one
        (the first boundary kind seen for an operation is kept)."""
        nodes, bare, ops = self._flow.nodes, self._bare, graph.ops
        for sid, span in graph.spans.items():
            operation = ops[sid]
            if operation not in nodes or operation in bare:
                self.node(span, operation)

    def add_link(
        self, producer: Span, consumer: Span, source: str, target: str, rule: str | None, state: str | None = None
    ) -> None:
        """A link between traces, judged once both sides were seen (``source``, ``target``:
        their operations; ``state``: the link's, when not the two ends' edge state)."""
        self.node(producer, source)
        node = self.node(consumer, target)
        self.count(source, target, state or edge_state(producer, consumer), consumer.trace_id, via_link=True)
        if rule is not None:
            node.findings[rule] = node.findings.get(rule, 0) + 1

    def remove_finding(self, operation: str, rule: str) -> None:
        """Take back one finding counted on an operation (superseded by a later one)."""
        node = self._flow.nodes.get(operation)
        if node is None:
            return
        n = node.findings.get(rule, 0)
        if n > 1:
            node.findings[rule] = n - 1
        else:
            node.findings.pop(rule, None)

    def add_orphan(self, likely_parent: str, orphan_operation: str, trace_id: str) -> None:
        if likely_parent in self._flow.nodes and orphan_operation in self._flow.nodes:
            self.count(likely_parent, orphan_operation, "orphaned", trace_id)
