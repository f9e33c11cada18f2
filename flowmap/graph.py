"""The span graph of one trace: parent edges, span links, roots, and hostile shapes.

Built with plain dicts rather than a networkx graph per trace: the analyzer builds one
graph per trace over millions of spans, and every algorithm here is a single linear,
iterative pass (no recursion, so a 100,000-deep chain or a parent cycle cannot blow
the stack). :meth:`SpanGraph.to_networkx` gives the same graph as a ``networkx.DiGraph``
for callers who want its algorithms.

Shapes handled:

- *roots*: spans without a parent id;
- *missing parents*: a parent id that is not in the trace (incomplete export,
  sampling) — such spans start their own subtree and their incoming edge is not judged;
- *remote entries*: an entry span (SERVER/CONSUMER, ``http.server``, ``queue.consume``)
  whose parent is missing was called by a system outside the data (a gateway, a browser
  that sent ``traceparent``): it is judged as a root, not as a missing parent. So is a
  SERVER/CONSUMER span that is another kind of boundary (an MCP server's ``execute_tool``
  span): the service received the call, so its tenant is judged here, as an orphan when
  it has none, rather than passed over as a gap in the data;
- *cycles* (a span its own parent, or longer loops): broken at the earliest span of the
  loop, whose parent edge is dropped; reported once per trace through ``on_warning``;
- *links*: to a span of the same trace (resolved here) or of another trace (kept in
  :attr:`SpanGraph.external_links` for the analysis to resolve across traces).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from .model import SPAN_KIND_CONSUMER, SPAN_KIND_SERVER, Span, Trace

if TYPE_CHECKING:  # pragma: no cover
    import networkx

__all__ = [
    "SpanGraph", "Operations", "is_entry", "operation", "generic_name", "ENTRY_BOUNDARIES", "OTHER_OPERATIONS",
    "OTHER_SERVICES",
]

#: boundaries that are entry points whatever the span kind says
ENTRY_BOUNDARIES = frozenset({"http.server", "queue.consume"})
_RECEIVING = (SPAN_KIND_SERVER, SPAN_KIND_CONSUMER)


def is_entry(span: Span) -> bool:
    """An entry point: an HTTP server or queue consumer boundary, or a SERVER/CONSUMER
    span that is not another kind of boundary."""
    if span.boundary is not None:
        return span.boundary in ENTRY_BOUNDARIES
    return span.kind in _RECEIVING


#: the span name, and the service, of the flow-map node that stands for the operations
#: past a cardinality cap (see Operations)
OTHER_OPERATIONS = "(other operations)"
OTHER_SERVICES = "(other services)"
_FOLDED_SERVICES_MAX = 10_000  # services whose folded spans are counted one by one

#: a UUID from its first dash, the eight hex digits before it tested apart: a pattern that
#: begins with a literal is searched for by that character, where one that begins with a
#: hex digit is tried at every character (~20 ns each: a hostile 4 KiB name of dashes took
#: 65 us, now 25)
_UUID_TAIL = re.compile(r"-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_HEX = frozenset("0123456789abcdefABCDEF")
#: what stands for an instance's UUID in an operation's name
UUID_PLACEHOLDER = "{uuid}"


def generic_name(name: str) -> str:
    """``name`` with every UUID in it written ``{uuid}``: the name of the operation.

    Why: some instrumentations name a span after the object that ran it (OpenInference's
    CrewAI kickoff span is ``Crew_<the Crew's uuid4>.kickoff``, and an application builds a
    crew per request), so the flow map got one node per request, the service's
    operations filled its cap, and an orphan's likely parent could not be learned. The
    operation is the code that ran, as a route template is; findings keep the span's own
    name."""
    if "-" not in name:  # (one C scan; a UUID has four)
        return name
    parts: list[str] = []
    at = 0
    for m in _UUID_TAIL.finditer(name):
        start = m.start() - 8
        # (not one whose first digits ended the UUID before it)
        if start >= at and _HEX.issuperset(name[start : start + 8]):
            parts += (name[at:start], UUID_PLACEHOLDER)
            at = m.end()
    if not parts:
        return name
    parts.append(name[at:])
    return "".join(parts)


class Operations:
    """The operation ids (``"<service> <span name>"``) of one analysis, one shared string
    per operation (built once, its hash cached, so every dict keyed by operations hashes
    nothing), with caps on how many there can be.

    Why the caps: span names are sometimes unbounded (a URL or a SQL statement with its
    literals in the name, or a hostile input), and the flow map, its JSON and the risk
    map grow with the number of operations. Like an OpenTelemetry metric's cardinality
    limit, a service's span names past ``per_service`` distinct ones are counted under
    one ``"<service> (other operations)"`` operation; once ``total`` operations exist,
    new names of known services fold the same way and new services under
    ``"(other services) (other operations)"``. Findings keep each span's own names; only
    the aggregate (flow map, paths, orphans' likely parents) folds. ``None``: no cap.
    """

    __slots__ = ("table", "per_service", "total", "size", "folded", "_overflow", "_names", "_ids")

    def __init__(self, per_service: int | None = None, total: int | None = None) -> None:
        #: service -> span name -> operation id, for the operations within the caps
        self.table: dict[str, dict[str, str]] = {}
        self.per_service = per_service
        self.total = total
        self.size = 0  # operations made: in the table, and overflow ones
        #: service -> how many spans were counted under an overflow operation (past
        #: _FOLDED_SERVICES_MAX services, the rest together under OTHER_SERVICES)
        self.folded: dict[str, int] = {}
        self._overflow: dict[str, str] = {}  # service -> its overflow operation id
        self._names: dict[str, tuple[str, str]] = {}  # overflow operation -> (service, name)
        self._ids: set[str] = set()  # every operation id made (see _unique)

    def __call__(self, service: str, name: str) -> str:
        """The operation id of a span of ``service`` named ``name`` (its
        :func:`generic_name`)."""
        by_name = self.table.get(service)
        if by_name is not None:
            op = by_name.get(name)
            if op is not None:
                return op
        generic = generic_name(name)
        if generic is not name:  # (not kept under its own name: there is one per instance)
            op = None if by_name is None else by_name.get(generic)
            if op is not None:
                return op
            name = generic
        if self.total is not None and self.size >= self.total:
            # no new operation past the total: a service's own overflow node if it has one
            return self._fold(service, service if service in self._overflow else OTHER_SERVICES)
        if self.per_service is not None and (0 if by_name is None else len(by_name)) >= self.per_service:
            return self._fold(service, service)
        if by_name is None:
            by_name = self.table[service] = {}
        self.size += 1
        op = by_name[name] = self._unique(f"{service} {name}")
        return op

    def _unique(self, op: str) -> str:
        """``op``, or ``op #2`` (``#3`` …) when another (service, name) already has that id:
        service ``api`` with span ``tool refund`` and service ``api tool`` with span
        ``refund`` are two operations, and a span an attacker names so must not be counted
        (and drawn) as another service's operation. Only a new operation comes here."""
        ids = self._ids
        if op in ids:
            n = 2
            while f"{op} #{n}" in ids:
                n += 1
            op = f"{op} #{n}"
        ids.add(op)
        return op

    def _fold(self, service: str, under: str) -> str:
        folded = self.folded
        if service not in folded and len(folded) >= _FOLDED_SERVICES_MAX:
            service = OTHER_SERVICES  # counted together past that many services
        folded[service] = folded.get(service, 0) + 1
        op = self._overflow.get(under)
        if op is None:  # a new operation too: counted against the total
            op = self._overflow[under] = self._unique(f"{under} {OTHER_OPERATIONS}")
            self._names[op] = (under, OTHER_OPERATIONS)
            self.size += 1
        return op

    def names(self, op: str) -> tuple[str, str] | None:
        """(service, span name) of an overflow operation; None for any other."""
        return self._names.get(op)

    @property
    def overflow(self) -> Mapping[str, tuple[str, str]]:
        """The overflow operations made so far (see :meth:`names`)."""
        return self._names


#: the operations of spans analysed outside an Analyzer: no fold, and past the total the
#: table stops growing (new operations are then built anew each time)
_DEFAULT = Operations()
_DEFAULT_MAX = 100_000


def operation(service: str, name: str) -> str:
    """The operation of a span of ``service`` named ``name`` (see Operations), one shared
    string per distinct operation (no fold)."""
    by_name = _DEFAULT.table.get(service)
    if by_name is not None:
        op = by_name.get(name)
        if op is not None:
            return op
    if _DEFAULT.size < _DEFAULT_MAX:
        return _DEFAULT(service, name)
    return f"{service} {generic_name(name)}"


class SpanGraph:
    """Parent/child/link structure of one trace, in a stable order (start time, span id).

    The analyzer builds one per trace, so only what every trace needs is computed up
    front (parent map, tops, links, operations, a cycle check); ``children`` and
    ``order`` are built on first use.
    """

    __slots__ = (
        "trace",
        "spans",
        "parent",
        "roots",
        "missing_parent",
        "remote_entries",
        "cycle_cut",
        "links",
        "external_links",
        "ops",
        "known_ops",
        "_children",
        "_order",
        "_below",
    )

    def __init__(
        self,
        trace: Trace,
        on_warning: Callable[[str], None] | None = None,
        operations: Operations | None = None,
    ) -> None:
        self.trace = trace
        spans = trace.spans
        self.spans: dict[str, Span] = spans
        #: span id -> operation (``Span.operation`` with its UUIDs as ``{uuid}``, one
        #: shared string per operation, or the overflow operation it was counted under:
        #: see Operations)
        self.ops: dict[str, str]
        # Comprehensions rather than one loop with branches: this runs for every span.
        table, named = (_DEFAULT.table, operation) if operations is None else (operations.table, operations)
        try:
            self.ops = {sid: table[span.service][span.name] for sid, span in spans.items()}
            #: every span's operation was in the table already: none new, none folded
            self.known_ops = True
        except KeyError:  # a new operation, or one past the caps
            self.ops = {sid: named(span.service, span.name) for sid, span in spans.items()}
            self.known_ops = False
        #: span id -> parent span id, only for parents present in the trace (cycles cut)
        parent = self.parent = {
            sid: span.parent_span_id for sid, span in spans.items() if span.parent_span_id in spans
        }
        #: spans without a parent id
        self.roots: list[str] = []
        #: spans whose parent id is not in the trace (entries excepted)
        self.missing_parent: list[str] = []
        #: entry spans whose parent is outside the data: judged as entry roots
        self.remote_entries: list[str] = []
        #: spans whose parent edge was removed to break a cycle
        self.cycle_cut: list[str] = []
        #: (source span id, target span id) for links inside this trace: source -> target
        self.links: list[tuple[str, str]] = []
        #: (linked trace id, linked span id, span id) for links to other traces
        self.external_links: list[tuple[str, str, str]] = []
        self._children: dict[str, list[str]] | None = None
        self._order: list[str] | None = None
        self._below: dict[str, dict[str, bool]] | None = None

        if len(parent) < len(spans):
            # the tops as a set difference (in C, not a pass over the spans in Python):
            # its order does not matter, since more than one top are sorted below
            for sid in spans.keys() - parent.keys():
                span = spans[sid]
                if not span.parent_span_id:
                    self.roots.append(sid)
                elif span.kind in _RECEIVING or is_entry(span):
                    self.remote_entries.append(sid)
                else:
                    self.missing_parent.append(sid)
            if len(spans) - len(parent) > 1:  # more than one top (most traces have one)
                for tops in (self.roots, self.remote_entries, self.missing_parent):
                    if len(tops) > 1:
                        tops.sort(key=self._sort_key)
        trace_id = trace.trace_id
        for sid, span in [(sid, span) for sid, span in spans.items() if span.links]:
            for link in span.links:
                if link.trace_id == trace_id and link.span_id in spans:
                    if link.span_id != sid:
                        self.links.append((link.span_id, sid))
                elif link.trace_id != trace_id:
                    self.external_links.append((link.trace_id, link.span_id, sid))

        if parent and self._has_cycle():
            self._break_cycles(self._sort_key, on_warning)
            if len(self.cycle_cut) > 1:
                self.cycle_cut.sort(key=self._sort_key)

    def _sort_key(self, sid: str) -> tuple[int, str]:
        return (self.spans[sid].start_ns, sid)

    def _has_cycle(self) -> bool:
        """Whether some span does not reach a top by walking up its parents.

        Only spans that have both a parent and a child in the trace can be on a loop, so
        only they are walked (found in C); a span whose parent is not one of them reaches
        a top at once. Most traces have a few such spans, many small ones none."""
        parent = self.parent
        inner = parent.keys() & parent.values()
        if not inner:
            return False
        good: set[str] = set()
        limit = len(inner)
        for sid in inner:
            if sid in good:
                continue
            walk = [sid]
            node = parent[sid]
            while node in inner and node not in good:
                if len(walk) > limit:
                    return True  # longer than every inner span: the walk went round a loop
                walk.append(node)
                node = parent[node]
            good.update(walk)
        return False

    @property
    def children(self) -> dict[str, list[str]]:
        """span id -> child span ids, by start time."""
        if self._children is None:
            children: dict[str, list[str]] = {}
            for sid, pid in self.parent.items():
                kids = children.get(pid)
                if kids is None:
                    children[pid] = [sid]
                else:
                    kids.append(sid)
            for kids in children.values():
                if len(kids) > 1:
                    kids.sort(key=self._sort_key)
            self._children = children
        return self._children

    @property
    def order(self) -> list[str]:
        """Every span once, parents before children (breadth first from each top span)."""
        if self._order is None:
            self._order = self._bfs(self.tops())
        return self._order

    # -- structure ---------------------------------------------------------------

    def _break_cycles(
        self, sort_key: Callable[[str], tuple[int, str]], on_warning: Callable[[str], None] | None
    ) -> None:
        # Each span has at most one parent, so a cycle is found by walking up from each
        # span once; nodes are coloured 1 (on the current walk) and 2 (done).
        parent = self.parent
        state: dict[str, int] = {}
        found = False
        for start in self.spans:
            if start in state:
                continue
            walk: list[str] = []
            node: str | None = start
            while node is not None and node not in state:
                state[node] = 1
                walk.append(node)
                node = parent.get(node)
            if node is not None and state[node] == 1:
                loop = walk[walk.index(node):]
                cut = min(loop, key=sort_key)
                del parent[cut]
                self.cycle_cut.append(cut)
                found = True
            for n in walk:
                state[n] = 2
        if found and on_warning is not None:
            origin = self.spans[self.cycle_cut[0]].origin  # "file:line" of a cut span, as every input warning
            on_warning(
                f"{origin + ': ' if origin else ''}trace {self.trace.trace_id}: parent ids form a cycle; "
                f"broken at {len(self.cycle_cut)} span(s), whose parent edge is ignored"
            )

    def tops(self) -> list[str]:
        """Spans that start a subtree: roots, remote entries, spans with a missing parent, cut spans."""
        return [*self.roots, *self.remote_entries, *self.missing_parent, *self.cycle_cut]

    def entry_roots(self) -> list[str]:
        """Roots and remote entries: the spans the root rules judge (not to be modified)."""
        return [*self.roots, *self.remote_entries] if self.remote_entries else self.roots

    def _bfs(self, starts: list[str]) -> list[str]:
        out = list(starts)
        children = self.children
        i = 0
        while i < len(out):
            out.extend(children.get(out[i], ()))
            i += 1
        return out

    def subtree(self, span_id: str) -> list[str]:
        """``span_id`` and all its descendants, breadth first."""
        return self._bfs([span_id])

    def parent_of(self, span_id: str) -> Span | None:
        pid = self.parent.get(span_id)
        return self.spans[pid] if pid is not None else None

    def chain(self, span_id: str) -> list[str]:
        """Span ids from the top of ``span_id``'s subtree down to ``span_id``."""
        out = [span_id]
        parent = self.parent
        node = parent.get(span_id)
        while node is not None:
            out.append(node)
            node = parent.get(node)
        out.reverse()
        return out

    def depth(self) -> dict[str, int]:
        """Distance of every span from the top of its subtree."""
        d: dict[str, int] = {}
        for sid in self.order:
            pid = self.parent.get(sid)
            d[sid] = 0 if pid is None else d[pid] + 1
        return d

    def subtree_any(self, predicate: Callable[[Span], bool]) -> dict[str, bool]:
        """For every span: does any *strict* descendant satisfy ``predicate``?"""
        below: dict[str, bool] = dict.fromkeys(self.order, False)
        spans = self.spans
        parent = self.parent
        for sid in reversed(self.order):
            pid = parent.get(sid)
            if pid is not None and (below[sid] or predicate(spans[sid])):
                below[pid] = True
        return below

    def below(self, fact: str) -> dict[str, bool]:
        """For every span, whether a *strict* descendant has a fact the rules and paths
        share: ``"tagged"`` (a tenant tag), ``"boundary"`` (any boundary), ``"tool"``
        (a tool call). All three are computed together in one reverse pass."""
        table = self._below.get(fact) if self._below is not None else None
        if table is None:
            tagged = dict.fromkeys(self.order, False)
            boundary = tagged.copy()
            tool = tagged.copy()
            spans = self.spans
            parent = self.parent
            for sid in reversed(self.order):
                pid = parent.get(sid)
                if pid is None:
                    continue
                span = spans[sid]
                if tagged[sid] or span.tenant is not None:
                    tagged[pid] = True
                if boundary[sid] or span.boundary is not None:
                    boundary[pid] = True
                if tool[sid] or span.boundary == "tool":
                    tool[pid] = True
            self._below = {"tagged": tagged, "boundary": boundary, "tool": tool}
            table = self._below[fact]
        return table

    def iter_edges(self) -> Iterator[tuple[Span, Span]]:
        """(parent, child) for every parent edge present in the trace."""
        spans = self.spans
        for sid, pid in self.parent.items():
            yield spans[pid], spans[sid]

    def to_networkx(self) -> "networkx.DiGraph":
        """The graph as a ``networkx.DiGraph``: nodes are span ids (``span`` attribute),
        edges parent -> child with ``kind="parent"`` and source -> target with ``kind="link"``."""
        import networkx

        g = networkx.DiGraph()
        for sid, span in self.spans.items():
            g.add_node(sid, span=span)
        for sid, pid in self.parent.items():
            g.add_edge(pid, sid, kind="parent")
        for src, dst in self.links:
            if not g.has_edge(src, dst):
                g.add_edge(src, dst, kind="link")
        return g
