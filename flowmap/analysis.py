"""The analysis facade: traces in, one :class:`~flowmap.model.Analysis` out.

The CLI, the HTML report and the pytest plugin all call this and nothing below it.
Traces are consumed one at a time (:class:`Analyzer`), so memory grows with the largest
trace, the flow map (distinct operations), the findings, and the capped samples
(``max_sample_traces``, ``max_paths``), plus a compact record (about 55 bytes) of each
span that links read later still point to (from the loader: only the spans linked to,
forgotten once their links are judged; without the loader's record, every data
boundary, queue publish, stream item and PRODUCER span of a trace linked to) and the
linking spans still waiting for their target. What needs every trace is finished in
:meth:`Analyzer.finish`: the likely parent of each orphan root, and masking of every raw
tenant identifier flagged anywhere in the input; links whose two ends are in different
traces are judged as soon as both were seen, in either order.
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
from collections import Counter
from collections.abc import Callable, Iterable
from os import PathLike
from typing import Any

from . import attributes
from .flow import FlowMapBuilder
from .graph import Operations, SpanGraph
from .masking import Masker, learn_names
from .model import SPAN_KIND_PRODUCER, Analysis, Finding, FlowMap, Severity, Span, Trace, TracePath
from .otlp import detach
from .paths import PathSample, trace_paths
from .rules import (
    BATCH_UNBOUND, CONTEXT_DROPPED, CROSS_TENANT, DROPPED, INHERITED, JUDGED, SWITCHED, UNSCOPED_ENTRY, LinkingSpans,
    TraceVerdict, evaluate, judge_link, judge_link_through, judge_passed_through, one_message, orphan_message,
    passes_on, ran_unbound, sort_findings, tagged_above, tenant_state,
)
from .settings import AnalysisSettings
from .tagging import is_opaque_tag
from .transparent import pass_through, transparent_spans

__all__ = ["analyze", "analyze_traces", "Analyzer"]

# Spans another trace may link to: a span link is a data-flow edge whatever the target's
# kind (a queue message, a stream item, a cache entry or a memory record written for one
# request and read by another), but a link's target cannot be known before the linking
# span is seen. So spans of these kinds are remembered in a small summary (no attributes,
# events or links; see Analyzer._link_targets) until the end of the analysis; this is the
# one part of memory that grows with the input (with the number of such spans). When the
# input comes from files, the loader's scan counts where every trace id appears, so only
# traces that some link points into are remembered (Trace.maybe_linked), and only while a
# link into them is still to come (Trace.links_in: the scan's count; links seen before
# their target waited for it and were judged when it arrived). Of such a trace only the
# spans the links point to are remembered, whatever their kind (Trace.linked_spans: the
# loader has read every link into a trace by the time it yields it), and only until the
# last of those links is judged. Without that record (traces built by hand), spans of the
# kinds above are remembered, and links to spans of other kinds are judged when the
# linking span comes first (it waits in a pending record until its target's trace arrives).
_LINK_TARGET_BOUNDARIES = attributes.DATA_BOUNDARIES | {"queue.publish", "stream"}
_KINDS = {k: k for k in attributes.BOUNDARY_KINDS}  # one string object per boundary kind
_JUDGED_MAX = 100_000  # non-opaque tags remembered as judged; past it, judged again each time
_SUMMARIES_MAX = 200_000  # distinct link-target summaries shared; past it, kept per span
#: links waiting for the trace they point into; past it, new ones are counted, not judged
#: (links into traces missing from the input would otherwise be kept to the end)
_WAITING_MAX = 200_000
#: tenants bound below an untagged linking span that its waiting links keep (a batch
#: consumer's records: see rules.UntaggedBelow): this many at most, or one a link of the
#: span when it has more links (a batch of 500 messages for 500 tenants); one set a span,
#: shared by its links
_BOUND_KEPT = 16
#: paths kept, of traces whose links waited, until those links are judged (see Analyzer.add)
_DEFERRED_PATHS_MAX = 50_000
_NO_TENANTS: frozenset[tuple[str, str | None]] = frozenset()


def _detach(trace: Trace) -> None:
    """A kept trace's spans must not pin the whole lines they were read from."""
    for span in trace.spans.values():
        detach(span)


def _summary(span: Span) -> Span:
    """The fields a link judgement needs, without attributes (small, kept until the end)."""
    return _summary_span(_waiting_record(span, ""))


def _waiting_record(
    span: Span, operation: str, bound: frozenset[tuple[str, str | None]] = _NO_TENANTS, reached: str | None = None,
    reading: str = JUDGED, one_message: bool = False,
) -> tuple[Any, ...]:
    """A linking span waiting for its target's trace, as a tuple (a tenth of a span
    summary's cost to make): operation, tenant tag, key id, trace id first, for the
    judgement of a healthy link; then the fields for :func:`_summary_span`; then, for an
    untagged span, what its trace showed below it (its trace is gone when the link is
    judged): the tenants bound there, ``(tag, key id)`` (rules.UntaggedBelow), and the
    ``reached`` of a context-dropped on it when it is no boundary; then how its links
    are read (rules.link_reading); last, whether what ran below it is one message's work
    (rules.one_message)."""
    return (operation, span.tenant, span.key_id, span.trace_id, span.span_id, span.parent_span_id,
            span.name, span.kind, span.service, span.origin, span.boundary, span.scoped, bound, reached, reading,
            one_message)


#: a trace's link targets up to this many are remembered as one string of their ids
_TARGETS_JOINED = 16


def _target_ids(ids: str | dict[str, int]) -> list[str]:
    """The span ids of a trace's remembered link targets, in order (Analyzer._link_targets)."""
    return list(ids) if type(ids) is dict else ids.split("\n")


def _indexed(ids: list[str], summaries: list[Any]) -> tuple[dict[str, int], list[Any]]:
    """Link targets as an index (span id -> its summary's position) and their summaries,
    the first of a duplicate id kept (the newer part's): the index lists its ids in the
    summaries' order, so that a later part's merge (_target_ids) pairs them again."""
    index: dict[str, int] = {}
    kept: list[Any] = []
    for sid, summary in zip(ids, summaries):
        if sid not in index:
            index[sid] = len(kept)
            kept.append(summary)
    return index, kept


def _above_span(trace_id: str, above: tuple[Any, ...]) -> Span:
    """The tagged span above an untagged link target, from what its summary keeps
    (Analyzer._kept_above), for a finding that names it."""
    tenant, key_id, span_id, name, service = above
    return _summary_span((None, tenant, key_id, trace_id, span_id, None, name, 0, service, "", None, None))


def _summary_span(record: tuple[Any, ...]) -> Span:
    tenant, key_id, trace_id, span_id, parent_span_id, name, kind, service, origin, boundary, scoped = record[1:12]
    return _new_span(trace_id, span_id, parent_span_id, name, kind, service, 0, 0, {}, {}, [], [], 0,
                     origin, tenant, boundary, scoped, key_id)


_SPAN_FIELDS = (
    "trace_id", "span_id", "parent_span_id", "name", "kind", "service", "start_ns", "end_ns",
    "attributes", "resource", "events", "links", "status_code", "origin", "tenant", "boundary",
    "scoped", "key_id",
)  # fmt: skip


def _span_by_keywords(*values: Any) -> Span:
    return Span(**dict(zip(_SPAN_FIELDS, values)))


# Positional construction is ~3x faster; fall back to keywords should the model's field
# order ever change (fields may be added to the model, never renamed).
_new_span = (
    Span if tuple(f.name for f in dataclasses.fields(Span))[: len(_SPAN_FIELDS)] == _SPAN_FIELDS
    else _span_by_keywords
)


class Analyzer:
    """Incremental analysis: :meth:`add` each trace, then :meth:`finish` once."""

    def __init__(
        self,
        settings: AnalysisSettings | None = None,
        *,
        on_warning: Callable[[str], None] | None = None,
        trace_done: Callable[[str], bool] | None = None,
    ) -> None:
        """``trace_done(trace_id)``: whether no more of that trace can come (the
        loader's :meth:`LoadStats.trace_done`); links waiting for such a trace are let go
        when too many wait (see _WAITING_MAX)."""
        self.settings = settings or AnalysisSettings()
        learn_names(self.settings.tenant_attributes)  # (before the loader's names-blind tests)
        self._on_warning = on_warning
        self._trace_done = trace_done
        self.result = Analysis()
        self._warnings_dropped = 0
        #: operation ids, capped (see graph.Operations): shared by span graphs and flow map
        self._operations = Operations(self.settings.max_operations_per_service, self.settings.max_operations)
        self._flow = FlowMapBuilder(self.settings.max_examples_per_edge, self._operations)
        self._paths = PathSample(self.settings.max_paths)
        #: (trace id, span id) -> a finding on a span link judged after its trace's paths
        #: were sampled (the linking span's trace came first): applied to them at the end
        self._late_breaks: dict[tuple[str, str], Finding] = {}
        #: trace id -> the paths of a trace whose links waited for traces not read yet
        #: (offered to the sample again at the end, should such a link break them)
        self._deferred: dict[str, list[TracePath]] = {}
        self._deferred_paths = 0
        self._masker = Masker()
        self._findings: list[Finding] = []
        # orphan-root findings, their operation and whether each ran unbound (record mode),
        # resolved at the end
        self._orphans: list[tuple[Finding, str, bool]] = []
        # cross-trace links: trace id -> span id -> summary of a span other traces may
        # link to; and trace id -> span id -> linking spans that wait for that target
        #: trace id -> (its link targets' span ids joined by "\n", then their summaries
        #: (operation, tenant, key id, boundary, and (service, span name) when the
        #: operation was folded, else None) in the same order): two objects a trace,
        #: the summaries shared (see _LINK_TARGET_BOUNDARIES). Not a dict per trace: every
        #: object kept while the input streams pins the allocator's memory among the
        #: short-lived span objects, which slowed the whole run by ~15%.
        self._link_targets: dict[str, tuple[Any, ...]] = {}
        #: trace id -> links into it still to come (the scan's count less those judged)
        self._targets_left: dict[str, int] = {}
        self._canon: dict[str, str] = {}  # one string object per tenant tag
        self._judged_tags: set[str | None] = {None}  # tenant tags already judged opaque or not
        self._summaries: dict[tuple, tuple] = {}  # one tuple object per distinct summary
        self._pending_links: dict[str, dict[str, list[tuple[Any, ...]]]] = {}
        self._waiting = 0  # linking spans in _pending_links
        self._unjudged_links = 0  # links not judged: too many were waiting (_WAITING_MAX)
        # (rule, trace id, span id) -> a finding through a cross-trace link, and the linking
        # span's operation (its flow-map node counted it): a context-dropped one supersedes
        # unscoped-entry on the same span, and one the span's parent edge gave too is
        # taken back from the node's count
        self._by_link: dict[tuple[str, str, str], tuple[Finding, str]] = {}
        # sample traces: flagged (medium+) first, then others
        self._flagged: dict[str, Trace] = {}
        self._others: dict[str, Trace] = {}
        self._finished = False

    # -- input -------------------------------------------------------------------

    def warn(self, message: str) -> None:
        if len(self.result.warnings) < self.settings.max_warnings:
            self.result.warnings.append(message)
        else:  # the loader's "N more warning(s) not shown" line stands for N (its `hidden`)
            self._warnings_dropped += getattr(message, "hidden", 1)
        if self._on_warning is not None:
            # (masked with the values flagged so far: one flagged later is not known yet)
            self._on_warning(self._masker.text(message) if self._masker else message)

    def add(self, trace: Trace) -> None:
        """Analyse one complete trace."""
        if not trace.spans:
            return
        r = self.result
        r.traces += 1
        r.spans += len(trace.spans)
        if trace.transparent or trace.transparent is None or self.settings.transparent_services:
            through = transparent_spans(trace, self.settings.transparent_services)
            if through:
                r.transparent_spans += len(through)
                gone = Trace(trace.trace_id, {sid: trace.spans[sid] for sid in through})
                self._add_findings(judge_passed_through(gone, self.settings), gone.spans)
                trace = pass_through(trace, through)
                if not trace.spans:
                    return
        graph = SpanGraph(trace, on_warning=self.warn, operations=self._operations)
        verdict = evaluate(graph, self.settings)
        spans = trace.spans

        # the services as a set comprehension (fewer instructions than map over an
        # attrgetter), and only for a trace with an operation new to the table: the
        # services of every operation in it were added with the trace that made it
        # (graph.Operations: only this analyzer's span graphs add to it); tags tested in
        # C, sets built only for new tags
        if not graph.known_ops:
            r.services.update({s.service for s in spans.values()})
        judged = self._judged_tags
        if not judged.issuperset(verdict.tenants):
            for t in verdict.tenants - judged:
                if is_opaque_tag(t):
                    r.tenant_tags.add(t)
                    self._canon[t] = t  # remembered link targets share this string
                    judged.add(t)
                elif len(judged) < _JUDGED_MAX:
                    judged.add(t)
        if verdict.findings:
            self._add_findings(verdict, spans)
            for f in verdict.orphans:
                self._orphans.append((f, graph.ops[f.span_id], ran_unbound(spans[f.span_id])))

        self._flow.add_trace(graph, verdict)
        # links judged before the paths are built: a link's finding breaks a path as a
        # parent edge's does (the flow map above has counted the trace's own edges)
        before = len(self._findings)
        waits = self._links(graph)
        if len(self._findings) > before:
            self._link_breaks(trace.trace_id, verdict, before)
        if waits and self._deferred_paths < _DEFERRED_PATHS_MAX:
            # its links may still change its paths' scores (judged when their traces
            # come): they enter the sample at the end, scored as they are then, so that
            # none evicts a worse path on a score it loses later (a trace analysed in
            # parts: every part's paths are kept)
            paths = trace_paths(graph, verdict)
            self._deferred.setdefault(trace.trace_id, []).extend(paths)
            self._deferred_paths += len(paths)
        elif self._paths.wants(verdict, graph):
            for path in trace_paths(graph, verdict):
                self._paths.add(path)
        cap = self.settings.max_sample_traces
        if verdict.findings or len(self._flagged) + len(self._others) < cap:
            self._retain(trace, any(f.severity >= Severity.MEDIUM for f in verdict.findings))

    def _link_breaks(self, trace_id: str, verdict: TraceVerdict, judged: int) -> None:
        """The findings the trace's links just gave (``self._findings[judged:]``): on this
        trace's spans, into its verdict (its paths and sample); on the spans of a trace
        analysed earlier (a linking span that waited for this one), kept for its paths."""
        for f in self._findings[judged:]:
            if f.trace_id == trace_id:
                verdict.add(f)
                if f.rule == CONTEXT_DROPPED:  # it supersedes unscoped-entry (see finish)
                    verdict.remove(f.span_id, UNSCOPED_ENTRY)
            else:
                self._late_breaks.setdefault((f.trace_id, f.span_id), f)

    def _add_findings(self, verdict: TraceVerdict, spans: dict[str, Span]) -> None:
        """Keep a verdict's findings, located at the lines their spans were read from."""
        for f in verdict.findings:
            f.origin = spans[f.span_id].origin or None
        self._findings.extend(verdict.findings)
        if verdict.raw_values:
            self._masker.add(verdict.raw_values)

    def _links(self, graph: SpanGraph) -> bool:
        """Judge links between this trace and others, whichever of the two came first;
        True when some of this trace's links wait for a trace not read yet."""
        spans, ops = graph.spans, graph.ops
        queued = False
        trace = graph.trace
        trace_id = trace.trace_id
        # links waiting for this trace: taken out first, so that room made for this
        # trace's own links (_let_go) never lets them go
        waiting = self._pending_links.pop(trace_id, None) if self._pending_links else None
        if waiting is not None:
            self._waiting -= sum(map(len, waiting.values()))
        # a healthy link between two known operations is only counted (_healthy_link);
        # span summaries are made for findings
        if graph.external_links:
            pending = self._pending_links
            linking = LinkingSpans(graph)
            for linked_trace, linked_span, sid in graph.external_links:
                summary = self._target_summary(linked_trace, linked_span)
                if self._targets_left:
                    self._judged_into(linked_trace)  # (also a link to a span not in it)
                consumer = spans[sid]
                if consumer.tenant is None or len(consumer.links) > 1:
                    # what an untagged span's (or a tagged batch's) links keep, made for each
                    # of them in the same order whether its target came first or not: the
                    # walks below its trace's spans share one budget (rules.UntaggedBelow),
                    # so made only for links still waiting or not healthy, they gave another
                    # answer by input order
                    self._kept_below(linking, consumer)
                if summary is not None:
                    op, tenant, key_id = summary[:3]
                    if tenant is None and summary[5] is not None and self._through_link(
                        self._target_span(linked_trace, linked_span, summary), _above_span(linked_trace, summary[5]),
                        consumer, op, ops[sid], self._kept_below(linking, consumer),
                    ):
                        pass  # a switch from the tagged span above an untagged producer
                    elif not self._healthy_link(op, tenant, key_id, ops[sid], consumer.tenant, consumer.key_id, trace_id):
                        producer = self._target_span(linked_trace, linked_span, summary)
                        self._judge_kept(producer, consumer, op, ops[sid], self._kept_below(linking, consumer))
                elif self._waiting < _WAITING_MAX or self._let_go():  # waits, as a summary
                    record = _waiting_record(consumer, ops[sid], *self._kept_below(linking, consumer))
                    pending.setdefault(linked_trace, {}).setdefault(linked_span, []).append(record)
                    self._waiting += 1
                    queued = True
                else:  # links into traces never read (or far ahead) must not fill memory
                    self._unjudged_links += 1
        judged = len(graph.links)  # links into this trace judged by now
        known: dict[str, Any] = {}  # (tagged_above's answers)
        if waiting is not None:
            unmatched: dict[str, list[tuple[Any, ...]]] | None = None
            for sid, consumers in waiting.items():
                span = spans.get(sid)
                if span is None:  # (a later part of the trace may hold it: they wait on)
                    if unmatched is None:
                        unmatched = self._pending_links[trace_id] = {}
                    unmatched[sid] = consumers
                    self._waiting += len(consumers)
                else:
                    producer = None
                    op, tenant, key_id = ops[sid], span.tenant, span.key_id
                    above = tagged_above(graph, sid, self.settings, known) if tenant is None else None
                    for c in consumers:
                        if above is not None:  # an untagged producer: a switch from the span above it?
                            producer = producer or _summary(span)
                            if self._through_link(producer, above, _summary_span(c), op, c[0], c[12:16]):
                                continue
                        if not self._healthy_link(op, tenant, key_id, c[0], c[1], c[2], c[3]):
                            if producer is None:
                                producer = _summary(span)
                            # (what the waiting span kept of its trace: as _kept_below gave it)
                            self._judge_kept(producer, _summary_span(c), op, c[0], c[12:16])
                    judged += len(consumers)
        if not trace.maybe_linked or 0 <= trace.links_in <= judged:
            # the loader's scan saw no link into this trace that is still to come:
            # nothing to remember
            return queued
        linked = trace.linked_spans
        if linked is not None:  # the loader read which spans the links point to
            mine = [sid for sid in linked if sid in spans]
        elif trace.links_in > 0:  # links still to come, to spans not known: any may be
            mine = list(spans)
        else:  # one comprehension: this runs for every span
            mine = [
                sid for sid, s in spans.items()
                if s.boundary in _LINK_TARGET_BOUNDARIES or s.kind == SPAN_KIND_PRODUCER
            ]
        if mine:
            ops, cget, kinds = graph.ops, self._canon.get, _KINDS.get
            folded = self._operations.overflow  # a folded target keeps its own names
            shared = self._summaries
            share = shared.setdefault if len(shared) < _SUMMARIES_MAX else None
            # one loop rather than a comprehension each to make, share and name the
            # summaries: a trace has one or two targets, and each comprehension is a call
            summaries = []
            for sid in mine:
                s, op = spans[sid], ops[sid]
                t = (op, cget(s.tenant, s.tenant), s.key_id, kinds(s.boundary, s.boundary),
                     (s.service, s.name) if op in folded else None,
                     None if s.tenant is not None else self._kept_above(graph, sid, known))
                # (one that keeps the span above it is its own: not shared)
                summaries.append(t if share is None or t[5] is not None else share(t, t))
            have = self._link_targets.get(trace_id)
            if have is not None:  # a trace analysed in parts: the newer part first wins
                mine, summaries = [*mine, *_target_ids(have[0])], [*summaries, *have[1:]]
            # the ids joined in one string (a trace has one or two targets), or indexed
            # where there are many: searching the string for each of a batch job's
            # thousands of linked sends was quadratic
            sids: Any
            if len(mine) <= _TARGETS_JOINED:
                sids = "\n".join(mine)
            else:
                sids, summaries = _indexed(mine, summaries)
            self._link_targets[trace_id] = (sids, *summaries)
            if trace.links_in > 0:  # forgotten once that many more links were judged
                self._targets_left[trace_id] = self._targets_left.get(trace_id, 0) + trace.links_in - judged
        return queued

    def _let_go(self) -> bool:
        """With too many links waiting: let go of those waiting for traces that can no
        longer come (only linked to, or read already without the span linked to); True
        when that made room. Gives up for good when it frees little, so that a full
        table is not swept again and again."""
        if self._trace_done is None:
            return False
        done = self._trace_done
        gone = [tid for tid in self._pending_links if done(tid)]
        freed = 0
        for tid in gone:
            freed += sum(map(len, self._pending_links.pop(tid).values()))
        self._waiting -= freed  # (as at the end: a link into a trace not in the input is no finding)
        if freed < _WAITING_MAX // 4:
            self._trace_done = None
        return self._waiting < _WAITING_MAX

    def _judged_into(self, trace_id: str) -> None:
        """One more link into a remembered trace judged: forget the trace after its last
        (the loader's scan counted them), so memory holds only traces with links to come."""
        left = self._targets_left.get(trace_id)
        if left is not None:
            if left > 1:
                self._targets_left[trace_id] = left - 1
            else:
                del self._targets_left[trace_id]
                self._link_targets.pop(trace_id, None)

    def _kept_above(self, graph: SpanGraph, span_id: str, known: dict[str, Any]) -> tuple[Any, ...] | None:
        """What a remembered untagged link target keeps of the nearest tagged span above
        it (rules.tagged_above), for links read later (rules.judge_link_through): its
        tenant tag (the string the analysis shares), key id, span id, name and service;
        None when there is none."""
        above = tagged_above(graph, span_id, self.settings, known)
        if above is None:
            return None
        return self._canon.get(above.tenant, above.tenant), above.key_id, above.span_id, above.name, above.service

    def _target_summary(self, trace_id: str, span_id: str) -> tuple[Any, ...] | None:
        """The remembered link target ``(trace_id, span_id)``, if any: (operation, tenant
        tag, key id, boundary, own names if folded, and for an untagged one what it keeps
        of the tagged span above it: :meth:`_kept_above`)."""
        seen = self._link_targets.get(trace_id)
        if seen is None or span_id not in seen[0]:
            return None
        ids = seen[0]
        if type(ids) is dict:
            return seen[1 + ids[span_id]]
        try:
            at = ids.split("\n").index(span_id)
        except ValueError:
            return None
        return seen[1 + at]

    def _target_span(self, trace_id: str, span_id: str, summary: tuple[Any, ...]) -> Span:
        """A remembered link target as a span (for findings and the flow map)."""
        op, tenant, key_id, boundary, names = summary[:5]
        service, name = names or self._flow.names(op)
        return _summary_span((op, tenant, key_id, trace_id, span_id, None, name, 0, service, "", boundary, None))

    def _healthy_link(
        self, source: str, pt: str | None, pk: str | None, target: str, ct: str | None, ck: str | None,
        trace_id: str,
    ) -> bool:
        """Count a link between traces that is no finding (judged on the two ends' tags):
        True when counted; False when the link needs :meth:`_judge_link`."""
        state = tenant_state(pt, pk, ct, ck)
        return state != SWITCHED and state != DROPPED and self._flow.count_link(source, target, state, trace_id)

    def _kept_below(self, linking: LinkingSpans, consumer: Span) -> tuple[Any, ...]:
        """What a linking span's waiting links keep of its trace (gone when they are
        judged): how its links are read (rules.link_reading), and for an untagged span
        judged as a consumer, or a tagged batch that ran work with no tenant
        (rules.BATCH_UNBOUND), what ran below it (or below its caller: a pull receive): the
        tenants bound there (the first :data:`_BOUND_KEPT`, or one a link of the span;
        their tags the strings the analysis shares), and ``reached`` when it was found
        below the span itself and the span is no boundary (a context-dropped on a
        boundary is high and names none), and whether that is one message's work
        (rules.one_message). Made once a span, and read by the links judged
        at once too (_judge_kept), so that a link is judged alike whichever end came first."""
        got = linking.kept.get(consumer.span_id)
        if got is not None:
            return got
        how, scope = linking.reading(consumer.span_id)
        if how != BATCH_UNBOUND and (consumer.tenant is not None or how != JUDGED):
            got = _NO_TENANTS, None, how, False
        else:
            reached, bound = linking.below(scope)
            if bound:
                cap = max(_BOUND_KEPT, len(consumer.links))
                cget = self._canon.get
                tenants = frozenset([(cget(t, t), k) for t, k in itertools.islice(bound, cap)])
            else:
                tenants = _NO_TENANTS
            own = consumer.boundary is None and scope == consumer.span_id
            got = tenants, reached if own else None, how, one_message(consumer, scope)
        linking.kept[consumer.span_id] = got
        return got

    def _judge_kept(self, producer: Span, consumer: Span, source: str, target: str, kept: tuple[Any, ...]) -> None:
        """Judge a link whose two ends' tags say it lost or switched the tenant, from what
        the linking span keeps of its trace (``kept``, :meth:`_kept_below`: the tenants
        bound below it, ``reached``, how its links are read, whether it is one message's
        work), the same whether its trace is at hand or was read first and waited: no
        finding when the span passes the message on (rules.passes_on), or when it is an
        untagged consumer below which (or below whose caller) the producer's tenant was
        bound again (rules.UntaggedBelow)."""
        bound, reached, how, one = kept
        state = tenant_state(producer.tenant, producer.key_id, consumer.tenant, consumer.key_id)
        if passes_on(how, state) or (state == DROPPED and (producer.tenant, producer.key_id) in bound):
            self._inherited_link(producer, consumer, source, target)
        else:
            self._judge_link(producer, consumer, source, target, reached, bound if one else (), how)

    def _through_link(
        self, producer: Span, above: Span, consumer: Span, source: str, target: str, kept: tuple[Any, ...]
    ) -> bool:
        """A link between traces from an untagged producer, judged against ``above``, the
        nearest tagged span above it (rules.judge_link_through), from what the linking
        span keeps of its trace (:meth:`_kept_below`), whichever trace came first: True
        when it switched (the finding kept, the link counted as switched); False when it
        is to be counted as its two ends' tags say."""
        bound, _, how, one = kept
        f = judge_link_through(above, producer, consumer, how, bound if one else ())
        if f is None:
            return False
        self._link_finding(f, producer, consumer, source, target)
        return True

    def _inherited_link(self, producer: Span, consumer: Span, source: str, target: str) -> None:
        """Count a link that lost or switched no tenant though its two ends' tags say so:
        into an untagged consumer that bound the producer's tenant below it (a batch
        consumer: rules.UntaggedBelow), or into a span that carries or hands the message
        on (rules.passes_on): no finding, counted as inherited."""
        if not self._flow.count_link(source, target, INHERITED, consumer.trace_id):
            self._flow.add_link(producer, consumer, source, target, None, INHERITED)

    def _judge_link(
        self, producer: Span, consumer: Span, source: str, target: str, reached: str | None = None,
        bound: Iterable[tuple[str, str | None]] = (), reading: str = JUDGED,
    ) -> None:
        """Judge a link between traces; ``source``, ``target``: the two ends' operations
        (as their span graphs counted them: not looked up again, see graph.Operations);
        ``reached``: what a context-dropped on the consumer names below it (the rules
        named it on findings in the consumer's trace before the link was judged);
        ``bound``: the tenants bound below an untagged consumer, ``reading``: how its links
        are read (rules.judge_link)."""
        f = judge_link(producer, consumer, reached, bound, reading)
        if f is None:
            self._flow.add_link(producer, consumer, source, target, None)
        else:
            self._link_finding(f, producer, consumer, source, target)

    def _link_finding(self, f: Finding, producer: Span, consumer: Span, source: str, target: str) -> None:
        """Keep a finding a link between traces gave, and count the link (switched for a
        cross-tenant, whatever the two ends' tags: a lost tenant with another bound below
        is a switch, rules.judge_link, and so is one switched from the span above an
        untagged producer, rules.judge_link_through; dropped for a context-dropped, also
        a switch into a batch that handled a record with no tenant: rules.BATCH_UNBOUND)."""
        f.origin = consumer.origin or None
        self._findings.append(f)
        self._by_link.setdefault((f.rule, f.trace_id, f.span_id), (f, target))
        state = SWITCHED if f.rule == CROSS_TENANT else DROPPED
        self._flow.add_link(producer, consumer, source, target, f.rule, state)

    def _parent_counts(self) -> dict[str, dict[str, int]]:
        """operation -> {parent operation: how many of its spans ran under it}, over every
        trace: the flow map's calls that went through parent edges (not links, not orphans)."""
        out: dict[str, dict[str, int]] = {}
        for (source, target), edge in self._flow.flow.edges.items():
            n = edge.total - edge.orphaned - edge.via_link
            if n > 0:
                out.setdefault(target, {})[source] = n
        return out

    def _retain(self, trace: Trace, flagged: bool) -> None:
        cap = self.settings.max_sample_traces
        if cap <= 0:
            return
        if flagged:
            if len(self._flagged) < cap:
                _detach(trace)
                self._flagged[trace.trace_id] = trace
                if len(self._flagged) + len(self._others) > cap:
                    self._others.popitem()
        elif len(self._flagged) + len(self._others) < cap:
            _detach(trace)
            self._others[trace.trace_id] = trace

    # -- output ------------------------------------------------------------------

    def mask(self, text: str) -> str:
        """``text`` with every raw tenant id flagged so far masked: for what a caller
        adds to the result after :meth:`finish` (the input file names)."""
        return self._masker.text(text)

    def finish(self) -> Analysis:
        """Resolve what needed every trace, mask, sort; returns the :class:`Analysis`."""
        if self._finished:
            return self.result
        self._finished = True
        r = self.result
        parents = self._parent_counts() if self._orphans else {}
        overflow = self._operations.names
        for f, operation, unbound in self._orphans:
            # a folded operation (see graph.Operations) stands for many span names: what
            # its spans ran under says nothing about this one (its message keeps its name)
            counter = parents.get(operation) if overflow(operation) is None else None
            if counter:
                # most frequent parent operation; ties broken by name for a stable answer.
                # Never the orphan's own operation: a framework that names a wrapper and
                # the span under it alike (OpenInference's OpenAI Agents: 'Agent workflow'
                # over 'Agent workflow') would have the orphan belong under itself
                likely = min(((p, n) for p, n in counter.items() if p != operation),
                             key=lambda kv: (-kv[1], kv[0]), default=(None, 0))[0]
                if likely is not None and overflow(likely) is None:
                    f.likely_parent = likely
                    f.message = orphan_message(operation, likely, f.reached, unbound)
                    self._flow.add_orphan(likely, operation, f.trace_id)

        # one finding per rule and span (a link resolved late may repeat a parent-edge one)
        seen: set[tuple[str, str, str]] = set()
        unique = []
        # an unscoped-entry whose span a cross-trace link showed to have lost a tagged
        # producer's tenant is superseded by that context-dropped finding
        by_link = self._by_link
        superseded: dict[tuple[str, str], tuple[str, Finding]] = {}
        for f in self._findings:
            key = (f.rule, f.trace_id, f.span_id)
            if key in seen:
                if key in by_link:  # its node counted it once for each
                    self._flow.remove_finding(by_link[key][1], f.rule)
                continue
            if f.rule == UNSCOPED_ENTRY and by_link:
                dropped = by_link.get((CONTEXT_DROPPED, f.trace_id, f.span_id))
                if dropped is not None:
                    link_finding, operation = dropped
                    self._flow.remove_finding(operation, UNSCOPED_ENTRY)
                    superseded[(f.trace_id, f.span_id)] = (UNSCOPED_ENTRY, link_finding)
                    continue
            seen.add(key)
            unique.append(f)
        self._paths.settle(superseded, self._late_breaks, self._deferred, unique)
        self._deferred = {}
        if self._unjudged_links:
            self.warn(
                f"span links not judged: {self._unjudged_links:,} (more than {_WAITING_MAX:,} were waiting at once "
                "for traces not read yet: links into traces missing from the input?)"
            )
        findings = sort_findings(unique)
        cap = self.settings.max_findings
        if cap is not None and len(findings) > cap:  # (worst first) the rest only counted
            r.omitted = dict(Counter((f.rule, f.severity) for f in findings[cap:]))
            findings = findings[:cap]

        m = self._masker
        if m:
            for f in findings:
                f.message = m.text(f.message)
                f.span_name = m.text(f.span_name)
                f.service = m.text(f.service) if f.service is not None else None
                f.parent_name = m.text(f.parent_name) if f.parent_name is not None else None
                f.parent_service = m.text(f.parent_service) if f.parent_service is not None else None
                f.likely_parent = m.text(f.likely_parent) if f.likely_parent is not None else None
                f.reached = m.text(f.reached) if f.reached is not None else None
                f.origin = m.located(f.origin) if f.origin else f.origin  # a file name can hold an id too
            r.warnings = [m.located(w) for w in r.warnings]
            r.services = {m.text(name) for name in r.services}
        r.findings = findings
        folded = r.folded_spans = {}
        for service, n in self._operations.folded.items():
            key = m.text(service) if m else service  # two services masked alike add up
            folded[key] = folded.get(key, 0) + n
        r.flow = _mask_flow(self._flow.flow, m) if m else self._flow.flow
        r.paths = self._paths.worst_first()
        sample = {**self._flagged, **self._others}
        r.sample_traces = {tid: m.trace(t) for tid, t in sample.items()} if m else sample
        if self._warnings_dropped:
            r.warnings.append(f"... and {self._warnings_dropped} more warnings")
        self._flagged = self._others = {}
        self._link_targets = {}
        self._pending_links = {}
        return r


def _mask_flow(flow: FlowMap, m: Masker) -> FlowMap:
    """The flow map with raw values masked in operation names (nodes merged if they collide)."""
    out = FlowMap()
    for node in flow.nodes.values():
        nid = m.text(node.id)
        have = out.nodes.get(nid)
        if have is None:
            node.id, node.name, node.service = nid, m.text(node.name), m.text(node.service)
            out.nodes[nid] = node
        else:
            have.spans += node.spans
            have.untagged += node.untagged
            have.entry = have.entry or node.entry
            for rule, n in node.findings.items():
                have.findings[rule] = have.findings.get(rule, 0) + n
    for edge in flow.edges.values():
        key = (m.text(edge.source), m.text(edge.target))
        have = out.edges.get(key)
        if have is None:
            edge.source, edge.target = key
            out.edges[key] = edge
        else:
            for name in ("inherited", "dropped", "switched", "orphaned", "bound", "untagged", "via_link"):
                setattr(have, name, getattr(have, name) + getattr(edge, name))
    return out


def analyze_traces(
    traces: Iterable[Trace],
    settings: AnalysisSettings | None = None,
    *,
    on_warning: Callable[[str], None] | None = None,
) -> Analysis:
    """Analyse traces already in memory (e.g. spans captured by the pytest plugin).

    The given objects are never modified: retained sample traces are masked copies.
    """
    analyzer = Analyzer(settings, on_warning=on_warning)
    for trace in traces:
        analyzer.add(trace)
    return analyzer.finish()


def analyze(
    paths: Iterable[str | PathLike[str]] | str | PathLike[str],
    settings: AnalysisSettings | None = None,
    *,
    on_warning: Callable[[str], None] | None = None,
    on_progress: Callable[..., Any] | None = None,
) -> Analysis:
    """Analyse OTLP JSON Lines trace files (streamed: one trace in memory at a time).

    ``on_warning`` gets each warning as it is found, masked with the raw tenant ids
    flagged so far (not with one flagged later in the input): print the result's
    ``warnings``, masked with all of them, rather than what the callback saw."""
    from .loading import LoadStats, iter_traces

    if isinstance(paths, (str, PathLike)):
        paths = [paths]
    paths = list(paths)
    stats = LoadStats()
    analyzer = Analyzer(settings, on_warning=on_warning, trace_done=stats.trace_done)
    # The analysis creates no reference cycles, and the collector's passes over millions of
    # young span objects cost more than the analysis itself: pause it while streaming.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for trace in iter_traces(paths, on_warning=analyzer.warn, on_progress=on_progress, stats=stats):
            if was_enabled and gc.isenabled():
                gc.disable()  # the loader restores the caller's setting while it yields
            analyzer.add(trace)
    finally:
        if was_enabled:
            gc.enable()
    result = analyzer.finish()
    files = getattr(stats, "files", None)
    names = [str(f) for f in files] if files else [str(p) for p in paths]
    result.files = [analyzer.mask(name) for name in names]  # a file may be named after a tenant
    return result
