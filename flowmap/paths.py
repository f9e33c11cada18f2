"""Paths from a trace's entry span to each final tool call, with the first broken edge.

A path is what a reader follows in the report: "the request came in here, went through
these operations, and reached this tool call; the tenant was lost *here*". For each
subtree top of a trace (the entry span — a root — first, then other roots, spans whose
parent is missing, spans where a cycle was cut) the targets are its *final tool calls*:
``tool`` boundary spans with no ``tool`` span below them. A subtree without tool calls
uses its deepest boundaries instead (boundary spans with no boundary below them).

``broken_at`` is the index of the first span on the path that carries a break finding
(:data:`flowmap.rules.BREAK_RULES`): ``context-dropped`` / ``cross-tenant`` on the edge
into it, or ``orphan-root`` / ``unscoped-entry`` on the top span itself (index 0).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from typing import Any

from .graph import SpanGraph
from .model import SPAN_KIND_CONSUMER, SPAN_KIND_SERVER, Finding, TracePath
from .rules import BREAK_RULES, TraceVerdict

__all__ = ["entry_span", "trace_paths", "longest_path_bound", "PathSample", "MAX_PATH_SPANS"]

MAX_TARGETS_PER_TRACE = 1000  # bounds the work on a hostile trace with huge fan-out
#: span ids in the paths built for one trace, and in the paths a sample keeps: a path is
#: as long as its chain, so 1,000 paths below a chain of 80,000 spans made 80 million
#: ids (a 770 MB JSON output, 5.7 GB to write it, 87 s for the text summary); the worst
#: paths are kept, each whole (the worst one however long)
MAX_PATH_SPANS = 100_000


def entry_span(graph: SpanGraph) -> str | None:
    """The trace's entry: the first SERVER/CONSUMER root, else the earliest root (or top)."""
    spans = graph.spans
    for sid in graph.entry_roots():
        if spans[sid].kind in (SPAN_KIND_SERVER, SPAN_KIND_CONSUMER):
            return sid
    tops = graph.tops()
    return tops[0] if tops else None


def _final(graph: SpanGraph, candidates: list[str]) -> list[str]:
    """The candidates with no other candidate strictly below them (walking up from each
    candidate once: no child lists or traversal order needed)."""
    parent = graph.parent
    above: set[str] = set()
    for sid in candidates:
        pid = parent.get(sid)
        while pid is not None and pid not in above:
            above.add(pid)
            pid = parent.get(pid)
    return [sid for sid in candidates if sid not in above]


def trace_paths(graph: SpanGraph, verdict: TraceVerdict) -> list[TracePath]:
    """Every path of one trace from a subtree top to a final tool call (entry first), at
    most :data:`MAX_TARGETS_PER_TRACE` of them, and of those the worst that hold
    :data:`MAX_PATH_SPANS` span ids in all (:func:`_worst_that_fit`).

    Every final target's chain is built, then grouped by its top and capped: the
    fastest way on the traces met in practice. Once that takes more steps than
    :func:`_walks_allowed` (many targets below one deep chain: quadratic), the targets
    are chosen first instead and only their paths built, sharing their prefixes
    (:func:`_paths_once`): linear in the spans plus the paths returned. Both give the
    same paths."""
    tops = graph.tops()
    if len(tops) > 1:
        entry = entry_span(graph)
        if entry is not None and entry in tops and tops[0] != entry:
            tops = [entry] + [t for t in tops if t != entry]
        found = _chains_by_top(graph, tops)
    else:
        found = _one_top_chains(graph)
    if found is None:
        return _paths_once(graph, verdict, tops)
    chains, steps = found

    by_span = verdict.by_span
    trace_id = graph.trace.trace_id
    if not by_span:  # no finding in the trace (the common case): every path intact
        out = [TracePath(trace_id, chain) for chain in chains]
    else:
        out = []
        for chain in chains:
            broken_at = break_rule = severity = worst = None
            for i, sid in enumerate(chain):
                for f in by_span.get(sid, ()):
                    if worst is None or f.severity > worst:
                        worst = f.severity
                    if broken_at is None and f.rule in BREAK_RULES:
                        broken_at, break_rule, severity = i, f.rule, f.severity
            out.append(TracePath(trace_id, chain, broken_at, break_rule, severity, worst))
    if steps <= MAX_PATH_SPANS:  # all the chains walked (so all the paths) fit
        return out
    return [out[i] for i in _worst_that_fit([_score(p) for p in out])]


def _one_top_chains(graph: SpanGraph) -> tuple[list[list[str]], int] | None:
    """:func:`_chains_by_top` for a trace with one subtree top (nearly every trace), in
    fewer steps: every chain ends at that top, which is the entry, so the final tool
    calls are the targets when there are any, else the deepest boundaries; they are
    sorted before their chains are built (by start time and span id: the order
    :func:`_first_targets` gives a top's chains)."""
    spans = graph.spans
    targets = _final(graph, [sid for sid, span in spans.items() if span.boundary == "tool"])
    if not targets:
        targets = _final(graph, [sid for sid, span in spans.items() if span.boundary is not None])
    if len(targets) > 1:
        targets.sort(key=graph._sort_key)
    walked = _walk(graph, targets, 0, _walks_allowed(graph.parent))
    if walked is None:
        return None
    chains, steps = walked
    return chains[:MAX_TARGETS_PER_TRACE], steps


def _walk(graph: SpanGraph, targets: list[str], steps: int, limit: int) -> tuple[list[list[str]], int] | None:
    """Each target's chain (one whole walk up a target) and ``steps`` plus the steps they
    took; None once past ``limit`` (:func:`_walks_allowed`: the walks then share work)."""
    chains = []
    for target in targets:
        chain = graph.chain(target)
        chains.append(chain)
        steps += len(chain)
        if steps > limit:
            return None
    return chains, steps


def _chains_by_top(graph: SpanGraph, tops: list[str]) -> tuple[list[list[str]], int] | None:
    """The chains (top first) of the targets paths are built for (:func:`_first_targets`)
    and the steps taken to build every final target's chain; None past
    :func:`_walks_allowed` steps."""
    spans = graph.spans
    limit = _walks_allowed(graph.parent)
    # final tool calls, with their chains, grouped by the top of their subtree
    walked = _walk(graph, _final(graph, [sid for sid, span in spans.items() if span.boundary == "tool"]), 0, limit)
    if walked is None:
        return None
    chains, steps = walked
    by_top: dict[str, list[list[str]]] = {}
    for chain in chains:
        by_top.setdefault(chain[0], []).append(chain)
    if len(by_top) < len(tops):
        # subtrees without tool calls end at their deepest boundaries instead
        with_tools = set(by_top)
        boundaries = [sid for sid, span in spans.items() if span.boundary is not None]
        walked = _walk(graph, _final(graph, boundaries), steps, limit)
        if walked is None:
            return None
        chains, steps = walked
        for chain in chains:
            if chain[0] not in with_tools:
                by_top.setdefault(chain[0], []).append(chain)
    key = graph._sort_key
    return list(_first_targets(tops, by_top, lambda c: key(c[-1]))), steps


def _break_late(p: TracePath, breaks: dict[tuple[str, str], Finding]) -> bool:
    """Apply to path ``p`` the findings of ``breaks`` on its spans (see
    :meth:`PathSample.settle`); True when it changed."""
    changed = False
    for i, sid in enumerate(p.span_ids):
        f = breaks.get((p.trace_id, sid))
        if f is None:
            continue
        if p.worst is None or f.severity > p.worst:
            p.worst, changed = f.severity, True
        if f.rule in BREAK_RULES and (p.broken_at is None or i < p.broken_at):
            p.broken_at, p.break_rule, p.severity, changed = i, f.rule, f.severity, True
    return changed


def _supersede(
    p: TracePath, superseded: dict[tuple[str, str], tuple[str, Finding]], worst: dict[tuple[str, str], Any]
) -> bool:
    """Apply to path ``p`` the superseded breaks (see :meth:`PathSample.settle`); True
    when it changed. Its worst severity is taken again: the superseded finding may have
    been its worst."""
    at = p.span_ids[p.broken_at] if p.broken_at is not None else None
    hit = superseded.get((p.trace_id, at)) if at is not None else None
    if hit is None or hit[0] != p.break_rule:
        return False
    new = hit[1]
    p.break_rule, p.severity = new.rule, new.severity
    p.worst = max((worst[k] for k in ((p.trace_id, sid) for sid in p.span_ids) if k in worst), default=new.severity)
    return True


def _walks_allowed(parent: dict[str, str]) -> int:
    """Steps the plain walks up (one whole walk a target: the fastest on the traces met
    in practice) may take in all before the work is done with each span walked once."""
    return 2 * len(parent) + 64


def _paths_once(graph: SpanGraph, verdict: TraceVerdict, tops: list[str]) -> list[TracePath]:
    """:func:`trace_paths`'s paths with every span walked once: the top of each final
    target found with memory (:func:`_tops_once`), the targets chosen, and only their
    paths built (:func:`_build_shared`)."""
    spans, parent = graph.spans, graph.parent
    by_top: dict[str, list[str]] = {}
    known: dict[str, str] = {}
    tools = [sid for sid, span in spans.items() if span.boundary == "tool"]
    finals = _final(graph, tools)
    for target, top in zip(finals, _tops_once(parent, finals, known)):
        by_top.setdefault(top, []).append(target)
    if len(by_top) < len(tops):
        with_tools = set(by_top)
        boundaries = [sid for sid, span in spans.items() if span.boundary is not None]
        finals = _final(graph, boundaries)
        for target, top in zip(finals, _tops_once(parent, finals, known)):
            if top not in with_tools:
                by_top.setdefault(top, []).append(target)
    chosen = list(_first_targets(tops, by_top, graph._sort_key))
    by_span = verdict.by_span
    # what each path would say, found without building it (1,000 paths below a chain of
    # 80,000 spans are 80 million ids): then only the paths kept are built
    ranks = [_rank(state[2], state[3], n) for _, n, state in _build_shared(parent, by_span, chosen, chains=False)]
    kept = [chosen[i] for i in _worst_that_fit(ranks)]
    trace_id = graph.trace.trace_id
    return [TracePath(trace_id, chain, *state) for chain, _, state in _build_shared(parent, by_span, kept)]


def _first_targets(tops: list[str], by_top: dict[str, list[Any]], key: Any) -> Iterator[Any]:
    """The targets (or their chains) paths are built for: each top's in ``key`` order,
    the tops in theirs, the first :data:`MAX_TARGETS_PER_TRACE` of them."""
    budget = MAX_TARGETS_PER_TRACE
    for top in tops:
        items = by_top.get(top)
        if not items:
            continue
        if len(items) > 1:
            items.sort(key=key)
        yield from items[:budget]
        budget -= len(items)
        if budget <= 0:
            return


def _worst_that_fit(ranks: list[tuple[int, int, int]]) -> list[int]:
    """Indexes, in order, of the paths a trace keeps within :data:`MAX_PATH_SPANS` span
    ids: the worst first (by :func:`_rank`; ties: the first), each whole, the worst one
    whatever its length, so a deep trace's switch is not lost behind its intact paths."""
    if sum(r[2] for r in ranks) <= MAX_PATH_SPANS:
        return list(range(len(ranks)))
    left, keep = MAX_PATH_SPANS, []
    for i in sorted(range(len(ranks)), key=ranks.__getitem__, reverse=True):  # stable
        if ranks[i][2] <= left or not keep:
            keep.append(i)
            left -= ranks[i][2]
    return sorted(keep)


def _tops_once(parent: dict[str, str], targets: list[str], known: dict[str, str]) -> list[str]:
    """The top of each target's subtree, every span walked once: each span walked keeps
    its top in ``known``."""
    out: list[str] = []
    for sid in targets:
        walked = []
        node = sid
        while True:
            top = known.get(node)
            if top is not None:
                break
            walked.append(node)
            pid = parent.get(node)
            if pid is None:
                top = node
                break
            node = pid
        for n in walked:
            known[n] = top
        out.append(top)
    return out


def _build_shared(
    parent: dict[str, str], by_span: dict[str, list[Finding]], targets: list[str], *, chains: bool = True
) -> Iterator[tuple[list[str] | None, int, tuple]]:
    """Each target's path (entry first), its length and what its findings say (first
    break, worst severity: the state :func:`_note` keeps), with every span walked once:
    a path is the copy of a path built before, up to their last shared span, plus the
    spans walked up to it, and the state is carried down from that span. With
    ``chains=False`` no path is built (None), only its length and state."""
    #: span -> (a path through it or None, its index there, the state from the top down to it)
    built: dict[str, tuple[list[str] | None, int, tuple]] = {}
    none = (None, None, None, None)
    for target in targets:
        walked = [target]
        node = parent.get(target)
        while node is not None and node not in built:
            walked.append(node)
            node = parent.get(node)
        walked.reverse()
        if node is None:
            chain, i, state = (walked if chains else None), 0, none
        else:
            base, at, state = built[node]
            chain = base[: at + 1] + walked if base is not None else None
            i = at + 1
        for sid in walked:
            if by_span:
                found = by_span.get(sid)
                if found:
                    state = _note(state, i, found)
            built[sid] = (chain, i, state)
            i += 1
        yield chain, i, state


def _note(state: tuple, i: int, found: list[Finding]) -> tuple:
    """``state`` (broken_at, break rule, severity, worst) after the findings of the
    span at index ``i`` of a path."""
    broken_at, break_rule, severity, worst = state
    for f in found:
        if worst is None or f.severity > worst:
            worst = f.severity
        if broken_at is None and f.rule in BREAK_RULES:
            broken_at, break_rule, severity = i, f.rule, f.severity
    return (broken_at, break_rule, severity, worst)


def longest_path_bound(graph: SpanGraph) -> int:
    """At least the length of the longest path :func:`trace_paths` would build, found
    without building any: the longest chain above any tool span, and above any boundary
    span too when some subtree top has no tool span below it (final targets are a subset
    of these). Lets :meth:`PathSample.wants` turn away a trace whose findings tie with the
    sample's weakest path, the common case, in a few dict lookups a tool span."""
    parent, spans = graph.parent, graph.spans
    tools = [sid for sid, span in spans.items() if span.boundary == "tool"]
    longest, reached = _walk_up(parent, tools)
    if len(reached) < len(graph.tops()):
        boundaries = [sid for sid, span in spans.items() if span.boundary is not None]
        longest = max(longest, _walk_up(parent, boundaries)[0])
    return longest


def _walk_up(parent: dict[str, str], starts: list[str]) -> tuple[int, set[str]]:
    """The longest chain from any of ``starts`` up to its top, and the tops reached
    (SpanGraph.chain walks the same way but builds each chain: 3.5 against 2.1 µs a
    trace here, on a path taken for about a quarter of the traces).

    Past :func:`_walks_allowed` steps (many starts below one deep chain), the rest is
    found by :func:`_walk_up_once`, which walks each span once."""
    longest = steps = 0
    limit = 2 * len(parent) + 64  # _walks_allowed, inline: this runs for many traces
    reached: set[str] = set()
    for sid in starts:
        n, top = 1, sid
        node = parent.get(sid)
        while node is not None:
            n += 1
            top = node
            node = parent.get(node)
        reached.add(top)
        if n > longest:
            longest = n
        steps += n
        if steps > limit:  # (span ids are unique: index finds this start)
            rest_longest, rest_reached = _walk_up_once(parent, starts[starts.index(sid) + 1:])
            reached |= rest_reached
            return max(longest, rest_longest), reached
    return longest, reached


def _walk_up_once(parent: dict[str, str], starts: list[str]) -> tuple[int, set[str]]:
    """:func:`_walk_up`'s answer with every span walked once: each span's length to its
    top and its top are kept for the walks that reach it later."""
    known: dict[str, tuple[int, str]] = {}
    longest = 0
    reached: set[str] = set()
    for sid in starts:
        walked = []
        node: str | None = sid
        n, top = 0, sid
        while node is not None:
            hit = known.get(node)
            if hit is not None:
                n, top = hit
                break
            walked.append(node)
            node = parent.get(node)
        else:
            top = walked[-1]
        for w in reversed(walked):
            n += 1
            known[w] = (n, top)
        reached.add(top)
        if n > longest:
            longest = n
    return longest, reached


def _score(p: TracePath) -> tuple[int, int, int]:
    return _rank(p.severity, p.worst, len(p.span_ids))


def _rank(severity: Any, worst: Any, length: int) -> tuple[int, int, int]:
    """How bad a path is: its first break's severity, then its worst finding's, then
    its length (a deeper path shows more of the request)."""
    return (int(severity) if severity is not None else -1, int(worst) if worst is not None else -1, length)


class PathSample:
    """A capped sample of paths that keeps the worst ones (ties: first seen wins): at
    most ``cap`` paths, of :data:`MAX_PATH_SPANS` span ids in all (but the worst path,
    kept whole however long)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._heap: list[tuple[tuple[int, int, int], int, TracePath]] = []
        self._counter = itertools.count()
        self._span_ids = 0

    def wants(self, verdict: TraceVerdict, graph: SpanGraph) -> bool:
        """Whether any path of a trace could enter the sample: False when even the best
        score its findings and paths allow would lose to every path kept (then the trace's
        paths need not be built at all, the common case once the sample is full)."""
        if self.cap <= 0:
            return False
        if len(self._heap) < self.cap:
            return True
        brk = worst = -1
        for f in verdict.findings:
            sev = int(f.severity)
            if sev > worst:
                worst = sev
            if f.rule in BREAK_RULES and sev > brk:
                brk = sev
        # ties keep the path seen first, so an equal score does not enter either
        weakest = self._heap[0][0]
        if (brk, worst) != weakest[:2]:
            return (brk, worst) > weakest[:2]
        # no path is longer than the trace has spans: a small trace (a queue worker's) is
        # turned away without walking its chains
        return len(graph.spans) > weakest[2] and longest_path_bound(graph) > weakest[2]

    def add(self, path: TracePath) -> None:
        if self.cap <= 0:
            return
        score = _score(path)
        if len(self._heap) < self.cap:
            heapq.heappush(self._heap, (score, -next(self._counter), path))
        elif score > self._heap[0][0]:  # (an equal score loses: ties keep the path seen first)
            self._span_ids -= len(heapq.heapreplace(self._heap, (score, -next(self._counter), path))[2].span_ids)
        else:
            return
        self._span_ids += len(path.span_ids)
        while self._span_ids > MAX_PATH_SPANS and len(self._heap) > 1:
            self._span_ids -= len(heapq.heappop(self._heap)[2].span_ids)

    def settle(
        self,
        superseded: dict[tuple[str, str], tuple[str, Finding]],
        breaks: dict[tuple[str, str], Finding],
        deferred: dict[str, list[TracePath]],
        findings: list[Finding],
    ) -> None:
        """The end of a run: apply to the paths kept and to the ``deferred`` ones (trace id
        -> its paths, built while its links waited) what changed after they were built,
        then offer the deferred paths, scored as they are now.

        ``superseded``: paths that broke at span ``(trace id, span id)`` with the given
        rule break with the given finding instead (an unscoped-entry that a link judged
        late showed to be a lost tenant), their worst severity taken again from
        ``findings`` (the run's, each once); ``breaks``: findings on spans made after
        their trace's paths were built (a span link judged when the trace it points into
        came later): a path through such a span breaks there if it did not break before."""
        if superseded:
            traces = {t for t, _ in superseded}
            worst: dict[tuple[str, str], Any] = {}
            for f in findings:
                if f.trace_id in traces:
                    key = (f.trace_id, f.span_id)
                    if key not in worst or f.severity > worst[key]:
                        worst[key] = f.severity
            self._apply(lambda p: _supersede(p, superseded, worst), traces, deferred)
        if breaks:
            self._apply(lambda p: _break_late(p, breaks), {t for t, _ in breaks}, deferred)
        for paths in deferred.values():
            for p in paths:
                self.add(p)

    def _apply(
        self, change: Callable[[TracePath], bool], traces: set[str], deferred: dict[str, list[TracePath]]
    ) -> None:
        """Apply ``change`` to every path kept (scoring again those it changed, True) and
        to the deferred paths of ``traces``."""
        items = [(_score(p) if change(p) else score, order, p) for score, order, p in self._heap]
        heapq.heapify(items)
        self._heap = items
        for trace_id in traces.intersection(deferred):
            for p in deferred[trace_id]:
                change(p)

    def worst_first(self) -> list[TracePath]:
        return [item[2] for item in sorted(self._heap, key=lambda i: i[:2], reverse=True)]

