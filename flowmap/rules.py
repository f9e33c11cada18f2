"""The rules of the contract's findings table, judged on one trace's span graph.

Each rule has a stable id (:data:`RULES`) and exactly the severity the contract gives.
All rules run in one pass over the spans (the analyzer sees millions of them); the
edge judgement (:func:`edge_state`) is shared with the flow map and the paths so that a
"dropped" edge means the same thing in a finding, a path and the risk map.

Two rules need more than one trace and are finished by the analysis:
``orphan-root`` learns its ``likely_parent`` from every trace, and links to a span of
another trace (queues) are judged with :func:`judge_link` once both sides were seen (a
link from an untagged producer with :func:`judge_link_through`, against the nearest
tagged span above the producer, which the producer's summary keeps for that).

A link is judged as the linking span consuming what the linked span produced, except
where OpenTelemetry's messaging conventions say otherwise (:func:`link_reading`): a
batch send links to the messages it carries, a pull receive hands its messages to its
caller, an acknowledgement links to the messages it settles.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from . import attributes
from .conventions import (
    CARRIES, RECEIVES, SETTLES, TOOL_ARGUMENT_ATTRIBUTES, URL_KEYS, link_role, opens_a_connection, refused_request, waits_for_work,
)
from .hosts import AllowedHosts
from .graph import ENTRY_BOUNDARIES, SpanGraph, is_entry
from .masking import (
    NEVER_QUIET,
    REDACTED_PLACEHOLDER,
    RawValue,
    find_raw_tenant_values,
    holds_names,
    is_quiet,
    is_tenant_key,
    json_value,
    known_opaque_tags,
    may_name_tenant,
    quiet_keys,
    scalars,
    scan_attributes,
    tenant_keys_in,
)
from .otlp import Event as LoadedEvent
from .otlp import Link as LoadedLink
from .otlp import RawSpan
from .otlp import Span as LoadedSpan
from .model import (
    SPAN_KIND_CLIENT,
    SPAN_KIND_PRODUCER,
    STATUS_CODE_ERROR,
    Finding,
    Severity,
    Span,
    Trace,
)
from .settings import AnalysisSettings
from .tagging import is_opaque_tag

__all__ = [
    "RULES",
    "judge_passed_through",
    "CROSS_TENANT",
    "CONTEXT_DROPPED",
    "ORPHAN_ROOT",
    "UNSCOPED_ENTRY",
    "UNSCOPED_QUERY",
    "UNFILTERED_CATALOG",
    "MODEL_CHOSEN_TENANT",
    "TENANT_IN_TELEMETRY",
    "BAGGAGE_TO_EXTERNAL",
    "MISSING_PARENT",
    "BREAK_RULES",
    "INHERITED",
    "DROPPED",
    "SWITCHED",
    "BOUND",
    "UNTAGGED",
    "ENTRY_BOUNDARIES",
    "TOOL_ARGUMENT_ATTRIBUTES",
    "TraceVerdict",
    "edge_state",
    "tenant_state",
    "is_entry",
    "judge_link",
    "judge_link_through",
    "tagged_above",
    "link_reading",
    "LinkingSpans",
    "passes_on",
    "JUDGED",
    "TRANSPORT",
    "HANDED_ON",
    "BATCH_UNBOUND",
    "UntaggedBelow",
    "evaluate",
    "orphan_message",
    "ran_unbound",
    "op",
    "sort_findings",
]

CROSS_TENANT = "cross-tenant"
CONTEXT_DROPPED = "context-dropped"
ORPHAN_ROOT = "orphan-root"
UNSCOPED_ENTRY = "unscoped-entry"
UNSCOPED_QUERY = "unscoped-query"
UNFILTERED_CATALOG = "unfiltered-catalog"
MODEL_CHOSEN_TENANT = "model-chosen-tenant"
TENANT_IN_TELEMETRY = "tenant-in-telemetry"
BAGGAGE_TO_EXTERNAL = "baggage-to-external"
MISSING_PARENT = "missing-parent"

#: rule id -> one-line description (the contract table), in table order
RULES: dict[str, str] = {
    CROSS_TENANT: "a span's tenant tag differs from its parent's (or from the span that links to it)",
    CONTEXT_DROPPED: "parent has a tenant tag, the child has none",
    ORPHAN_ROOT: "a root span that is not an entry point has no tenant",
    UNSCOPED_ENTRY: "a request entered and no tenant was ever bound",
    UNSCOPED_QUERY: "a data boundary ran with flowmap.scoped=false",
    UNFILTERED_CATALOG: "a tool catalog was shown to the model without the tenant filter",
    MODEL_CHOSEN_TENANT: "a tool call's arguments carry a tenant identifier chosen by the model",
    TENANT_IN_TELEMETRY: "a raw tenant identifier appears in telemetry",
    BAGGAGE_TO_EXTERNAL: "the tenant baggage was sent to a destination outside the allowed hosts",
    MISSING_PARENT: "a span's parent is not in the data, so its path cannot be judged",
}

#: rules that mark the edge (or root) where a path lost or switched its tenant
BREAK_RULES = frozenset({CROSS_TENANT, CONTEXT_DROPPED, ORPHAN_ROOT, UNSCOPED_ENTRY})

# Edge states (parent -> child, or linked producer -> consumer)
INHERITED = "inherited"  # both tagged: same tag (or tags under different keys, never compared)
DROPPED = "dropped"  # parent tagged, child not
SWITCHED = "switched"  # both tagged under the same (or an unknown) key, tags differ
BOUND = "bound"  # parent untagged, child tagged: the tenant was bound here
UNTAGGED = "untagged"  # neither tagged

_HOST_ATTRIBUTES = ("server.address", "net.peer.name", "http.host")
_URL_ATTRIBUTES = ("url.full", "http.url")


_NAME_IN_MESSAGE = 200  # characters of an operation a message quotes


def op(span: Span) -> str:
    """How a message names a span: its operation (service and span name), quoted, cut
    at :data:`_NAME_IN_MESSAGE` characters with an ellipsis: names are the traced
    program's (a service name up to the loader's 64 KiB, a span name 4,096 characters),
    and a message quoting two whole operations could pass 130 KB in every output; the
    finding's own name fields keep the names as loaded."""
    name = span.operation
    if len(name) > _NAME_IN_MESSAGE:
        name = name[: _NAME_IN_MESSAGE - 1] + "…"
    return f"'{name}'"


def edge_state(parent: Span, child: Span) -> str:
    """What happened to the tenant between a parent (or linking) span and a child."""
    return tenant_state(parent.tenant, parent.key_id, child.tenant, child.key_id)


def tenant_state(pt: str | None, pk: str | None, ct: str | None, ck: str | None) -> str:
    """:func:`edge_state` of the two ends' tenant tags and key ids (for callers that keep
    a span's summary, not the span)."""
    if pt is None:
        return UNTAGGED if ct is None else BOUND
    if ct is None:
        return DROPPED
    if pt == ct:
        return INHERITED
    if pk is not None and ck is not None and pk != ck:
        return INHERITED  # tags made with different keys are never compared
    return SWITCHED


def _finding(
    rule: str, severity: Severity, span: Span, parent: Span | None, message: str
) -> Finding:
    return Finding(
        rule=rule,
        severity=severity,
        trace_id=span.trace_id,
        span_id=span.span_id,
        span_name=span.name,
        parent_span_id=parent.span_id if parent is not None else span.parent_span_id,
        parent_name=parent.name if parent is not None else None,
        service=span.service,
        boundary=span.boundary,
        message=message,
        parent_trace_id=parent.trace_id if parent is not None else span.trace_id if span.parent_span_id else None,
        parent_service=parent.service if parent is not None else None,
    )


def _at_boundary(span: Span) -> Severity:
    return Severity.HIGH if span.boundary is not None else Severity.MEDIUM


# How the links of a span are read (link_reading)
JUDGED = "judged"  # it consumes what it links to: both tenant rules
TRANSPORT = "transport"  # it carries the messages on or settles them: no finding, counted as inherited
HANDED_ON = "handed on"  # a receive whose messages were processed outside its trace: a drop is no finding
# a tagged batch consumer that handled a record with no tenant: a switch is a loss (batch_ran_unbound)
BATCH_UNBOUND = "batch ran unbound"
_TRANSPORT_ROLES = frozenset({CARRIES, SETTLES})


def link_reading(graph: SpanGraph, span_id: str) -> tuple[str, str]:
    """How the links of span ``span_id`` are judged (:data:`JUDGED`, :data:`TRANSPORT`,
    :data:`HANDED_ON`: see :func:`flowmap.conventions.link_role`; :data:`BATCH_UNBOUND`:
    :func:`batch_ran_unbound`), and the span below
    which its work on what they point at ran: where a consumer of a tagged message that
    carries no tag itself (a batch consumer) bound the message's tenant again
    (:class:`UntaggedBelow`).

    That span is the linking span itself, but for a pull ``receive``: it hands the
    messages to its caller, so the work ran below its parent span. A receive that is a
    root with nothing below it handed them to code outside any span of its trace: the
    processing is judged where it ran (a ``process`` span linking to the message, or the
    spans of the work), and its untagged receive lost nothing itself (it is an
    ``unscoped-entry``, medium, when it has no tenant).

    Asked only for a link that the two ends' tags make a loss or a switch (or that waits
    for its target), so a span's attributes are read only then, and not for a tagged
    span at a boundary its operation would not give a span that carries or settles a
    message (``queue.consume``, a data boundary…: the common consumer): a tagged span
    can only switch, which every reading but :data:`TRANSPORT` judges alike (and
    :data:`BATCH_UNBOUND`, told from its links and the spans below it, not attributes)."""
    span = graph.spans[span_id]
    kind = span.kind
    boundary = span.boundary
    if span.tenant is not None and boundary is not None and boundary != "queue.publish" and kind != SPAN_KIND_PRODUCER:
        return _consumes(graph, span_id)
    role = link_role(kind, span.attributes)
    if role in _TRANSPORT_ROLES:
        return TRANSPORT, span_id
    if role == RECEIVES:
        caller = graph.parent.get(span_id)
        if caller is not None:
            return JUDGED, caller
        return (JUDGED if graph.children.get(span_id) else HANDED_ON), span_id
    return _consumes(graph, span_id)


def _consumes(graph: SpanGraph, span_id: str) -> tuple[str, str]:
    """:func:`link_reading` of a span that consumes what it links to, judged on its own subtree."""
    return (BATCH_UNBOUND if batch_ran_unbound(graph, span_id) else JUDGED), span_id


def batch_ran_unbound(graph: SpanGraph, span_id: str) -> bool:
    """Whether span ``span_id`` is tagged, links to several messages (a batch) and ran a
    boundary with no tenant below it, through spans with none (a record handled without
    its tenant: its tool or query ran unbound, or was refused for want of a tenant; not
    a call made while authenticating, nor a span that is no boundary, such as an offset
    commit).

    Why: its own tag is then no message's. The runtime tags a framework's CONSUMER span
    with the first tenant bound under it and withdraws that tag at another tenant's
    bind (flowmap.context._stamp_entry), so a batch that bound one record's tenant and
    handled another record with none kept the first one's tag, and the other message
    read as switched to it: a critical ``cross-tenant`` where that message's tenant was
    lost (:data:`BATCH_UNBOUND`: a ``context-dropped``). A batch whose work all ran bound
    keeps its tag's meaning: a message of another tenant was worked on for that tag's
    tenant, a switch. Asked only of links that switched or wait (:func:`link_reading`);
    the walk stops at tagged spans, so the walks from a trace's spans never overlap."""
    spans = graph.spans
    span = spans[span_id]
    if span.tenant is None or len(span.links) < 2:
        return False
    children = graph.children  # (made on first use: not for every trace with a link)
    todo = list(children.get(span_id, ()))
    for sid in todo:  # (breadth first: todo grows as it is read)
        below = spans[sid]
        if below.tenant is not None or below.attributes.get(attributes.AUTHENTICATING) is True:
            continue
        if below.boundary is not None:
            return True
        todo.extend(children.get(sid, ()))
    return False


class LinkingSpans:
    """What is asked about the linking spans of one trace, each answered once: how a
    span's links are read (:func:`link_reading`), and what ran below a span
    (:class:`UntaggedBelow`, made on first use: :attr:`walks`). Used for the links inside
    a trace (:func:`evaluate`) and for those to other traces (the analysis)."""

    __slots__ = ("graph", "_readings", "walks", "kept")

    def __init__(self, graph: SpanGraph) -> None:
        self.graph = graph
        self._readings: dict[str, tuple[str, str]] = {}
        self.walks: UntaggedBelow | None = None
        #: linking span id -> what its links keep of the trace (analysis.Analyzer._kept_below)
        self.kept: dict[str, tuple[Any, ...]] = {}

    def reading(self, span_id: str) -> tuple[str, str]:
        got = self._readings.get(span_id)
        if got is None:
            got = self._readings[span_id] = link_reading(self.graph, span_id)
        return got

    def below(self, span_id: str) -> tuple[str | None, dict[tuple[str, str | None], None]]:
        if self.walks is None:
            self.walks = UntaggedBelow(self.graph)
        return self.walks(span_id)


def passes_on(reading: str, state: str) -> bool:
    """Whether a link in edge ``state`` into a span read so (:func:`link_reading`) is no
    finding and counts as inherited: a message keeps its own creation context, and so
    its tenant, past a span that only carries it on (a batch send of several tenants'
    messages, whatever tenant the send itself ran for), settles it (an acknowledgement
    carries none of its data) or, untagged, hands it on."""
    if state == DROPPED:
        return reading == TRANSPORT or reading == HANDED_ON
    return state == SWITCHED and reading == TRANSPORT


def one_message(consumer: Span, scope: str) -> bool:
    """Whether what ran below an untagged consumer is one message's work: it links to one
    message and is judged on its own subtree (``scope``, from :meth:`LinkingSpans.reading`).
    Then another tenant bound there means the message was worked on for that tenant, a
    switch; below a batch, or a receive judged on its poll loop, it is another record's."""
    return scope == consumer.span_id and len(consumer.links) == 1


def judge_link(
    producer: Span, consumer: Span, reached: str | None = None, bound: Iterable[tuple[str, str | None]] = (),
    reading: str = JUDGED,
) -> Finding | None:
    """The finding, if any, for a consumer span linked to a producer span, judged on the
    two ends' tags (a batch consumer that bound the producer's tenant below it is for the
    caller to tell apart: :class:`UntaggedBelow`). ``bound``: the tenants bound below an
    untagged consumer of one message (:func:`one_message`), when the producer's is not
    among them: another tenant there makes the lost tenant a switch. ``reached``:
    the first boundary below the consumer that ran without a tenant
    (:meth:`UntaggedBelow.reached`), named by a ``context-dropped`` on a consumer that is
    no boundary as the rules name it inside a trace (for a link judged after the
    consumer's trace was: :func:`evaluate` names it on findings it makes itself).
    ``reading``: the consumer's (:func:`link_reading`); a switch into a
    :data:`BATCH_UNBOUND` span lost the message's tenant."""
    state = edge_state(producer, consumer)
    batch = state == SWITCHED and reading == BATCH_UNBOUND
    if batch:
        state = DROPPED
    if state == SWITCHED:
        return _finding(
            CROSS_TENANT, Severity.CRITICAL, consumer, producer,
            f"{op(consumer)} runs for a different tenant than {op(producer)}, which it links to",
        )
    if state == DROPPED:
        if _another_bound(producer, bound):
            return _finding(
                CROSS_TENANT, Severity.CRITICAL, consumer, producer,
                f"{op(consumer)} lost the tenant of {op(producer)} across a span link, and the work below it "
                "ran for another tenant",
            )
        f = _finding(
            CONTEXT_DROPPED, _at_boundary(consumer), consumer, producer,
            f"{op(consumer)} lost the tenant of {op(producer)} across a span link"
            + (" (a batch: a record below it was handled with no tenant)" if batch else ""),
        )
        if reached is not None and f.severity == Severity.MEDIUM:
            f.reached = reached
            f.message += _ran_without(reached)
        return f
    return None


def judge_link_through(
    above: Span, producer: Span, consumer: Span, reading: str, bound: Collection[tuple[str, str | None]] = (),
) -> Finding | None:
    """The ``cross-tenant``, if any, for a link from an untagged producer (A → untagged
    publish → link → B: an uninstrumented or contrib ``send`` with no tag): the consumer
    compared with ``above``, the nearest tagged span above the producer
    (:func:`tagged_above`), as a span below untagged spans is compared along parent
    edges. Only a switch is a finding: the loss is the producer's own ``context-dropped``.
    ``reading``: how the consumer's links are read (:func:`link_reading`: one that
    carries the message on switches nothing); ``bound``: the tenants bound below an
    untagged consumer of one message (:func:`one_message`; none for another consumer).
    A switch into a :data:`BATCH_UNBOUND` span lost the message's tenant: no finding."""
    state = edge_state(above, consumer)
    if state == SWITCHED and reading == BATCH_UNBOUND:
        return None
    if passes_on(reading, state):
        return None
    through = f"{op(above)} above {op(producer)}, which it links to, through spans that carried no tenant"
    if state == SWITCHED:
        return _finding(
            CROSS_TENANT, Severity.CRITICAL, consumer, above, f"{op(consumer)} runs for a different tenant than {through}",
        )
    if state == DROPPED and (above.tenant, above.key_id) not in bound and _another_bound(above, bound):
        return _finding(
            CROSS_TENANT, Severity.CRITICAL, consumer, above,
            f"the work below {op(consumer)} ran for a different tenant than {through}",
        )
    return None


def _another_bound(producer: Span, bound: Iterable[tuple[str, str | None]]) -> bool:
    """Whether another tenant than ``producer``'s (under the same or an unknown key) is
    among the tenants ``bound`` below an untagged consumer."""
    pt, pk = producer.tenant, producer.key_id
    return any(tenant_state(pt, pk, t, k) == SWITCHED for t, k in bound)


def _reached(span: Span) -> bool:
    """An untagged span that ``reached`` names: a boundary that ran (not one refused for
    want of a tenant, whose body never ran)."""
    return span.tenant is None and span.boundary is not None and not _refused_boundary(span)


class UntaggedBelow:
    """What ran below untagged spans of one trace, walking through untagged spans only
    (a tagged one bound a tenant): :meth:`reached`, the first boundary below a span that
    ran without a tenant too (breadth first), as a finding's ``reached`` names it; and
    ``below(span_id)``, that and the tenants bound again below the span,
    ``(reached, {(tag, key id): None, …})`` in the order bound.

    Why the tenants: a batch consumer's span links to each message's producer (OTel
    messaging's batch receive) and binds each record's tenant while it handles that
    record; its own span carries no tag (it serves several tenants: see
    flowmap.context._stamp_entry). A link from a tagged producer to it lost no tenant
    when the producer's tenant (same tag, same key id) was bound below it, and did when
    no record's work bound it.

    ``below`` answers each span once. The walks of one trace take a few steps a span in
    all: spans with findings or links nested in one untagged subtree (spans that each
    link to a tagged producer) would walk it again each, quadratic in a hostile trace.
    Past that, :meth:`reached` is None and ``below`` is ``(None, {})``: a link is judged
    on its consumer's own tag alone."""

    __slots__ = ("graph", "_memo", "_steps")

    def __init__(self, graph: SpanGraph) -> None:
        self.graph = graph
        self._memo: dict[str, tuple[str | None, dict[tuple[str, str | None], None]]] = {}
        self._steps = 4 * len(graph.spans) + 1024

    def reached(self, span_id: str) -> str | None:
        """The first boundary below ``span_id`` that ran without a tenant, as ``kind
        'operation'``, or None."""
        spans, children = self.graph.spans, self.graph.children
        todo = list(children.get(span_id, ()))
        i, steps = 0, self._steps
        found = None
        while i < len(todo) and i < steps:
            sid = todo[i]
            i += 1
            span = spans[sid]
            if span.tenant is not None:
                continue
            if _reached(span):
                found = f"{span.boundary} {op(span)}"
                break
            todo.extend(children.get(sid, ()))
        self._steps = steps - i
        return found

    def __call__(self, span_id: str) -> tuple[str | None, dict[tuple[str, str | None], None]]:
        got = self._memo.get(span_id)
        if got is None:
            got = self._memo[span_id] = self._walk(span_id)
        return got

    def _walk(self, span_id: str) -> tuple[str | None, dict[tuple[str, str | None], None]]:
        spans, children = self.graph.spans, self.graph.children
        reached: str | None = None
        bound: dict[tuple[str, str | None], None] = {}
        todo = list(children.get(span_id, ()))
        i, steps = 0, self._steps
        while i < len(todo) and i < steps:
            sid = todo[i]
            i += 1
            span = spans[sid]
            if span.tenant is not None:
                bound[(span.tenant, span.key_id)] = None
                continue
            if reached is None and _reached(span):
                reached = f"{span.boundary} {op(span)}"
            todo.extend(children.get(sid, ()))
        self._steps = steps - i
        return (reached, bound) if i == len(todo) else (None, {})


_ASGI_EVENT = "asgi.event.type"


def _asgi_message(span: Span, sid: str, graph: SpanGraph) -> bool:
    """The ASGI instrumentation's record of a message the server sent or received, with
    nothing below it: the framework's transport, no application code (Starlette's error
    middleware sends a 500 after the request's binding ended). One with spans below is
    judged as any span (an outer middleware's send wrapper that writes an audit row)."""
    return span.boundary is None and _ASGI_EVENT in span.attributes and not graph.children.get(sid)


def _judge_parent(parent: Span, child: Span) -> Finding | None:
    state = edge_state(parent, child)
    remote = " in another service" if parent.service != child.service else ""
    if state == SWITCHED:
        return _finding(
            CROSS_TENANT, Severity.CRITICAL, child, parent,
            f"{op(child)} runs for a different tenant than its parent {op(parent)}{remote}",
        )
    if state == DROPPED:
        if child.attributes.get(attributes.AUTHENTICATING) is True:
            return None  # ran while its request was being authenticated: no tenant yet
        return _finding(
            CONTEXT_DROPPED, _at_boundary(child), child, parent,
            f"{op(child)} lost the tenant of its parent {op(parent)}{remote}{_unbound_note(child)}",
        )
    return None


def _tagged_above(
    start: str, spans: dict[str, Span], parent: dict[str, str], known: dict[str, Any], settings: AnalysisSettings,
) -> Span | None:
    """The nearest tagged span at or above ``start`` along parent edges (None when there
    is none in the data): the tenant a span bound below untagged spans is compared with.
    The walk stops, with none, at a call made to authenticate a request
    (``flowmap.authenticating``: an identity service may bind the caller's own service
    tenant before the request's is known) and at an entry declared to run for no tenant
    (``tenantless_entries``: a sign-in)."""
    def tag_of(sid: str, span: Span) -> Any:
        if span.tenant is not None:
            return span
        if span.attributes.get(attributes.AUTHENTICATING) is True or (
            is_entry(span) and settings.is_tenantless_entry(span.service, span.name)
        ):
            return None
        return _GO_ON

    return _walk_up(start, spans, parent, known, tag_of, None)


def tagged_above(graph: SpanGraph, span_id: str, settings: AnalysisSettings, known: dict[str, Any]) -> Span | None:
    """The nearest tagged span at or above ``span_id`` in its trace (see
    :func:`_tagged_above`; ``known``: the walks' answers, shared by the calls on one
    trace): what a link from an untagged producer is judged against
    (:func:`judge_link_through`)."""
    return _tagged_above(span_id, graph.spans, graph.parent, known, settings)


def _switched_through(above: Span, span: Span) -> Finding:
    """``cross-tenant`` for a tenant bound below untagged spans whose nearest tagged
    ancestor ran for another tenant: the finding's parent is that ancestor, the span
    whose tag differs."""
    remote = " in another service" if above.service != span.service else ""
    return _finding(
        CROSS_TENANT, Severity.CRITICAL, span, above,
        f"{op(span)} runs for a different tenant than {op(above)}{remote} above it, "
        "through spans that carried no tenant",
    )


def ran_unbound(span: Span) -> bool:
    """A boundary that ran its body with no tenant bound: marked ``flowmap.unscoped`` in
    record mode (the guard let it run) and not refused (:func:`_refused_boundary`). The
    loader reads its tag as none, since what it carries is no binding: the caller's
    baggage, or the tenant bound when a generator started and since unbound."""
    shape = getattr(span, "shape", None)  # a loaded span's names say whether it has the mark
    if shape is not None and shape.unscoped < 0:
        return False
    return span.status_code != STATUS_CODE_ERROR and span.attributes.get(attributes.UNSCOPED) is True


def _unbound_note(span: Span) -> str:
    """What a finding on an untagged span adds when the span is a boundary that ran
    unbound in record mode (:func:`ran_unbound`), saying where a tag it shows came from."""
    if not ran_unbound(span):
        return ""
    a = span.attributes
    tag = a.get(_TENANT_ATTR)
    if tag.__class__ is not str or not tag.strip():
        where = ""
    elif a.get(attributes.TENANT_SOURCE) == attributes.SOURCE_BAGGAGE:
        where = "; the tag it carries came with the caller's baggage, evidence and not a binding"
    else:
        where = "; the tag it carries is the tenant bound when it started"
    return f": the boundary ran without a bound tenant (record mode){where}"


def _judge_inbound(span: Span, parent: Span | None) -> Finding | None:
    """``cross-tenant`` when the tenant tag a service received with the request
    (``flowmap.tenant.inbound``, from baggage) is not the tenant it authenticated: a
    forged or stale tag, or a caller working for another tenant. Judged where the
    caller's own span cannot say it: not in the data (``parent`` None) or untagged."""
    if span.__class__ in _LOADED_ONLY and _INBOUND not in span.shape.keys:
        return None  # (the usual span: its names say it has no inbound tag, no dict built)
    inbound = span.attributes.get(_INBOUND)
    tenant = span.tenant
    if inbound.__class__ is not str or inbound == tenant or not is_opaque_tag(inbound) or not is_opaque_tag(tenant):
        return None
    if parent is not None and parent.key_id != span.key_id:
        return None  # tags made with different keys are never compared
    caller = f" from {op(parent)}" if parent is not None else ""
    return _finding(
        CROSS_TENANT, Severity.CRITICAL, span, parent,
        f"{op(span)} was called{caller} with the context of tenant {inbound}, not the tenant it authenticated",
    )


def orphan_message(
    operation: str, likely_parent: str | None, reached: str | None = None, unbound: bool = False
) -> str:
    """The orphan-root message; ``unbound``: the root is a boundary that ran with no
    tenant bound in record mode (:func:`ran_unbound`)."""
    below = _ran_without(reached) if reached else ""
    where = f" (it likely belonged under '{likely_parent}')" if likely_parent else ""
    how = "ran as a root without a bound tenant (record mode)" if unbound else "started as a root with no tenant"
    return f"'{operation}' {how}: the context was lost before it started{below}{where}"


def _switched(events: Iterable[Any]) -> bool:
    """Whether a span's events say a boundary generator ran for another tenant than the
    one it was created or started for (record mode; fail mode refuses it). Names only:
    a loaded event's attributes stay undecoded."""
    for e in events:
        if e.name == _SWITCH_EVENT:
            return True
    return False


def _switch_finding(span: Span, parent: Span | None) -> Finding:
    return _finding(
        CROSS_TENANT, Severity.CRITICAL, span, parent,
        f"{op(span)} ran for another tenant than the one it was created or started for: a boundary "
        "generator stepped in another tenant's request (record mode)",
    )


def _ran_without(reached: str) -> str:
    return f", and {reached} below it ran without one"


def _note_boundaries_reached(v: TraceVerdict, graph: SpanGraph, below: UntaggedBelow | None) -> None:
    """A context-dropped or orphan-root finding on a span that is no boundary (medium,
    per the contract) names the first boundary below it that ran without a tenant too
    (a thread pool's task span over its tool calls, a framework's wrapper span): only the
    first untagged span is a finding, and the boundaries below lost nothing from their
    untagged parents, so this is where a reader learns that a tool ran tenantless.
    Boundaries refused for want of a tenant (fail mode) did not run: not named."""
    spans = graph.spans
    for f in v.findings:
        if f.severity != Severity.MEDIUM or (f.rule != CONTEXT_DROPPED and f.rule != ORPHAN_ROOT):
            continue
        if below is None:
            below = UntaggedBelow(graph)
        reached = below.reached(f.span_id)
        if reached is not None:
            f.reached = reached
            if f.rule == CONTEXT_DROPPED:
                f.message += _ran_without(reached)
            else:
                span = spans[f.span_id]
                f.message = orphan_message(span.operation, None, reached, ran_unbound(span))


def _refused_boundary(span: Span) -> bool:
    """A boundary that flowmap refused (no tenant bound, fail mode): recorded as an
    errored span marked ``flowmap.unscoped``; its body never ran."""
    return span.status_code == STATUS_CODE_ERROR and span.attributes.get(attributes.UNSCOPED) is True


def _destination(a: dict[str, Any]) -> str | None:
    """The host that a span's attributes ``a`` name as its destination, if any."""
    for name in _HOST_ATTRIBUTES:
        v = a.get(name)
        if isinstance(v, str) and (v := v.strip()):
            return v
    for name in _URL_ATTRIBUTES:
        v = a.get(name)
        if isinstance(v, str) and (v := v.strip()):
            try:
                host = urlsplit(v).hostname
            except ValueError:
                host = None
            if host:
                return host
    return None


def _redacted_count(value: Any) -> int:
    """``flowmap.redacted`` as a count (0 when absent or not a positive number)."""
    if value is None or isinstance(value, bool):
        return 0
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return 0
    if isinstance(value, (int, float)) and value == value and value > 0:
        return max(1, int(min(value, 2**31)))
    return 0


def _placeholder_keys(span: Span) -> list[str]:
    """Attributes still holding the runtime's placeholder: where the redacted ids were."""
    out = []
    for key, value in span.attributes.items():
        values = value if isinstance(value, (list, tuple)) else (value,)
        if any(isinstance(x, str) and REDACTED_PLACEHOLDER in x for x in values):
            out.append(key)
    return out


_PLACES_SHOWN = 5


def first_few(items: list[str], shown: int) -> str:
    """The first ``shown`` of ``items``, then how many more: one line of a message or
    summary however many there are."""
    more = len(items) - shown
    return ", ".join(items[:shown]) + (f" and {more:,} more" if more > 0 else "")


def _some(places: Iterable[str]) -> str:
    """The first few distinct ``places``, the rest counted: a span with 10,000 events
    each holding a ``tenant_id`` made a message of 400,000 characters."""
    return first_few(list(dict.fromkeys(places)), _PLACES_SHOWN)


def _telemetry_message(span: Span, hits: list[RawValue], redacted: int) -> str:
    parts = []
    if hits:
        shown = _some(f"{h.where} '{h.key}'" for h in hits)
        parts.append(f"raw tenant identifier in {shown} of {op(span)} (value masked)")
    if redacted:
        # The runtime caught the leak before export, but the code still wrote it: any
        # exporter or processor that ran without flowmap's redaction would have sent it.
        keys = _placeholder_keys(span)
        where = " (" + _some(f"'{k}'" for k in keys) + ")" if keys else ""
        plural = "value" if redacted == 1 else "values"
        parts.append(
            f"the code wrote a raw tenant id into telemetry on {op(span)}{where}; "
            f"flowmap's runtime redacted {redacted} {plural} before export"
        )
    return "; ".join(parts)


@functools.lru_cache(maxsize=4096)
def _allows(hosts: AllowedHosts, host: str | None) -> bool:
    """``hosts.allows(host)``, remembered: a platform calls the same few hosts all day."""
    return hosts.allows(host)


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


_TENANT_ATTR = attributes.TENANT
_SWITCH_EVENT = attributes.SWITCH_EVENT
# the loader's spans (their attribute names in a shared shape)
_LOADED_ONLY = frozenset({LoadedSpan, RawSpan})
_INBOUND = attributes.TENANT_INBOUND
# names a span may hold besides plain ones and still be judged on its flags alone
# (evaluate: flowmap.tenant.inbound only when its value is a known opaque tag)
_FLAGS_OR_INBOUND = NEVER_QUIET | {_INBOUND}
_NOT_A_TAG = object()  # flowmap.tenant present with a value that is not a string
_LOADED_PARTS = frozenset({LoadedEvent, LoadedLink})  # their ``kvs`` is the attribute list
_URL_KEYS = URL_KEYS


def _quiet_parts(parts: Iterable[Any], quiet: set[str]) -> bool:
    """masking.is_quiet for every event or link of a span; a loaded one whose names are
    all known plain (and not flowmap.tenant, nor a URL's, whose query holds names) is
    quiet without building its attribute dict (one whose values hold maps or JSON text
    gave its span a shape that is looked into anyway: otlp.with_inner)."""
    for p in parts:
        if p.__class__ in _LOADED_PARTS:
            kvs = p.kvs
            if not kvs:  # (a queue consumer's link: no attributes, no names to list)
                continue
            keys = [kv.key for kv in kvs]
            if quiet.issuperset(keys) and _TENANT_ATTR not in keys and _URL_KEYS.isdisjoint(keys):
                continue
        if not is_quiet(p.attributes, quiet):
            return False
    return True


_NOT_ARGUMENTS: set[str] = set()  # attribute names known not to hold tool arguments
_ARG_CLASS: dict[str, str | None] = {}  # attribute name -> "" (whole arguments), tail, or None


def _argument_attr(attr: str) -> str | None:
    """"" when ``attr`` holds whole tool arguments, the argument name for a flattened
    ``<arguments>.<name>`` attribute, else None (cached: called for every tool attribute)."""
    try:
        return _ARG_CLASS[attr]
    except KeyError:
        pass
    out: str | None = None
    if attr in TOOL_ARGUMENT_ATTRIBUTES:
        out = ""
    else:
        for prefix in TOOL_ARGUMENT_ATTRIBUTES:
            if attr.startswith(prefix + ".") and len(attr) > len(prefix) + 1:
                out = attr[len(prefix) + 1:]
                break
    if len(_ARG_CLASS) < 100_000:
        _ARG_CLASS[attr] = out
        if out is None:
            _NOT_ARGUMENTS.add(attr)
    return out


def _holds_none(span: Span, known_not: set[str], flag: str) -> bool:
    """Whether every attribute name of ``span`` is known (``known_not``) not to hold what a
    rule looks for; on a loaded span the answer is kept on its shape under ``flag``, as
    the set only grows."""
    if span.__class__ in _LOADED_ONLY:
        shape = span.shape
        if getattr(shape, flag):
            return True
        if known_not.issuperset(shape.keys):
            setattr(shape, flag, True)
            return True
        return False
    return known_not.issuperset(span.attributes)


def _model_chosen_keys(span: Span, names: frozenset[str]) -> tuple[list[str], list[Any]]:
    """Argument names that carry a tenant id in a tool span, and their values."""
    keys: list[str] = []
    values: list[Any] = []

    def add_whole(arguments: Any) -> None:
        for key, v in tenant_keys_in(arguments, names):
            if v is None or v == "":
                continue  # no tenant given (an optional argument left empty)
            keys.append(key)
            values.append(v)

    if span.events:
        # Strands Agents (GenAI conventions before gen_ai.tool.call.arguments): the tool's
        # input is the content of a gen_ai.tool.message event on its execute_tool span
        for ev in span.events:
            if ev.name == _TOOL_MESSAGE_EVENT:
                add_whole(ev.attributes.get("content"))
    if _holds_none(span, _NOT_ARGUMENTS, "no_args"):
        return keys, values
    for attr, value in span.attributes.items():
        kind = _argument_attr(attr)
        if kind is None:
            continue
        if kind == "":
            add_whole(value)
        elif is_tenant_key(kind, names):
            keys.append(kind)
            values.append(value)
    return keys, values


_TOOL_MESSAGE_EVENT = "gen_ai.tool.message"


#: attributes of a model call holding the tool calls the model asked for: OpenInference
#: and OpenLLMetry flatten each call's arguments (JSON) under its own name; OTel GenAI
#: writes the output messages as JSON, a tool call being a ``{"type": "tool_call",
#: "arguments": …}`` part; the Vercel AI SDK a JSON list of ``{"toolName", "args"}``
#: (``input`` from its version 5); OpenLIT each call's arguments (JSON) joined by ", "
#: (``gen_ai.tool.args``; ``gen_ai.tool.call.arguments`` on LangChain's model spans),
#: written also when it records no messages
_OUTPUT_ARGUMENTS_RE = re.compile(
    r"llm\.output_messages\.\d+\.message\.tool_calls\.\d+\.tool_call\.function\.arguments"
    r"|gen_ai\.completion\.\d+\.tool_calls\.\d+\.arguments"
    r"|(gen_ai\.output\.messages)"
    r"|(ai\.response\.toolCalls)"
    r"|(gen_ai\.tool\.args|gen_ai\.tool\.call\.arguments)"
)
_NOT_OUTPUT_ARGUMENTS: set[str] = set()  # attribute names known not to hold a model's tool calls


def _tool_calls_in(messages: Any) -> Iterator[Any]:
    """The arguments of each ``tool_call`` part in GenAI output messages (JSON text or
    decoded, or a list of messages each as JSON text), each as its object or its JSON text."""
    obj = json_value(messages)
    for message in obj if isinstance(obj, list) else ():
        if isinstance(message, str):
            message = json_value(message)
        parts = message.get("parts") if isinstance(message, dict) else None
        for part in parts if isinstance(parts, list) else ():
            if isinstance(part, dict) and part.get("type") == "tool_call":
                yield part.get("arguments")


def _vercel_tool_calls(value: Any) -> Iterator[Any]:
    """The arguments of each call in the Vercel AI SDK's ``ai.response.toolCalls``."""
    obj = json_value(value)
    for call in obj if isinstance(obj, list) else ():
        if isinstance(call, dict):
            yield call.get("args", call.get("input"))


def _joined_arguments(value: Any) -> Iterator[Any]:
    """The arguments of each call OpenLIT records on a model span: one call's JSON, or
    several joined by ", " (read as the JSON array they make); each parsed here once."""
    if not isinstance(value, str):
        yield value
        return
    one = json_value(value)
    if one is not None:
        yield one
        return
    calls = json_value(f"[{value}]")
    yield from calls if isinstance(calls, list) else ()


def _model_output_keys(span: Span, names: frozenset[str]) -> tuple[list[str], list[Any]]:
    """Argument names that carry a tenant id in the tool calls a model call returned, and
    their values: the model chose them, whether or not the tool span records its
    arguments by name (OpenInference's LangChain tool span keeps only a bare value)."""
    keys: list[str] = []
    values: list[Any] = []
    if _holds_none(span, _NOT_OUTPUT_ARGUMENTS, "no_output_args"):
        return keys, values
    for attr, value in span.attributes.items():
        if attr in _NOT_OUTPUT_ARGUMENTS:
            continue
        m = _OUTPUT_ARGUMENTS_RE.fullmatch(attr)
        if m is None:
            if len(_NOT_OUTPUT_ARGUMENTS) < 100_000:
                _NOT_OUTPUT_ARGUMENTS.add(attr)
            continue
        if m.lastindex is None:
            calls: Iterable[Any] = (value,)  # one call's arguments
        elif isinstance(value, str) and not may_name_tenant(value, names):
            continue
        elif m.lastindex == 1:
            calls = _tool_calls_in(value)  # GenAI messages: the arguments of their tool calls
        elif m.lastindex == 2:
            calls = _vercel_tool_calls(value)
        else:
            calls = _joined_arguments(value)
        for arguments in calls:
            for key, v in tenant_keys_in(arguments, names):
                if v is None or v == "":
                    continue  # no tenant given (an optional argument left empty)
                keys.append(key)
                values.append(v)
    return keys, values


class TraceVerdict:
    """What the rules found in one trace (a plain slotted class: one is made per trace)."""

    __slots__ = ("findings", "by_span", "orphans", "raw_values", "calls", "untagged", "tenants", "link_states")

    def __init__(self) -> None:
        self.findings: list[Finding] = []
        #: span id -> findings on that span
        self.by_span: dict[str, list[Finding]] = {}
        #: orphan-root findings, whose likely_parent the analysis fills in at the end
        self.orphans: list[Finding] = []
        #: raw values flagged (tenant-in-telemetry, model-chosen-tenant): to be masked
        self.raw_values: list[Any] = []
        #: (parent operation, child operation, edge state) of every parent edge: every edge
        #: is judged here once, and the flow map counts these instead of judging again
        self.calls: list[tuple[str, str, str]] = []
        #: the operation of every span without a tenant tag (for the flow map's counts)
        self.untagged: list[str] = []
        #: the distinct tenant tags of the trace's spans (None among them for untagged spans)
        self.tenants: set[str | None] = set()
        #: (linked span id, linking span id) -> state, of the links inside the trace whose
        #: state is not the two ends' edge state: inherited into a batch consumer that bound
        #: the linked span's tenant below it (:class:`UntaggedBelow`) or into a span that
        #: passes the message on (:func:`passes_on`); switched into an untagged consumer
        #: below which only another tenant was bound, and from an untagged producer into a
        #: consumer that switched from the tagged span above it (:func:`judge_link_through`)
        self.link_states: dict[tuple[str, str], str] | None = None

    def judged_link(self, src: str, dst: str, state: str) -> None:
        """Count the link ``src`` -> ``dst`` as ``state``, not as its two ends' tags say
        (see ``link_states``)."""
        if self.link_states is None:
            self.link_states = {}
        self.link_states[(src, dst)] = state

    def add(self, f: Finding) -> None:
        existing = self.by_span.setdefault(f.span_id, [])
        if any(e.rule == f.rule for e in existing):
            return  # one finding per rule per span (a parent edge and a link can agree)
        existing.append(f)
        self.findings.append(f)

    def remove(self, span_id: str, rule: str) -> None:
        """Take back the finding of ``rule`` on a span (superseded by a later one)."""
        on_span = self.by_span.get(span_id)
        gone = [f for f in on_span or () if f.rule == rule]
        if gone:
            on_span.remove(gone[0])  # type: ignore[union-attr]
            self.findings.remove(gone[0])


def _has(v: TraceVerdict, span_id: str, rule: str) -> bool:
    return any(f.rule == rule for f in v.by_span.get(span_id, ()))


def _attribute_rules(
    v: TraceVerdict, graph: SpanGraph, span: Span, settings: AnalysisSettings, resource_hits: list[RawValue],
    scan: bool = True, deferred: list[tuple[Span, list[RawValue], int]] | None = None,
) -> None:
    """tenant-in-telemetry and baggage-to-external on a span the quick test could not clear.

    ``scan=False`` when every attribute name is known plain but for the flags read here
    (the attributes, events and links then hold no raw identifier to look for). A span
    with raw ids goes to ``deferred`` when given (see :func:`_telemetry`)."""
    names = settings.tenant_attributes
    hits = find_raw_tenant_values(span, names, include_resource=False) if scan else []
    hits.extend(resource_hits)
    attrs = span.attributes
    redacted = _redacted_count(attrs.get(attributes.REDACTED))
    if hits and deferred is not None:
        deferred.append((span, hits, redacted))
    elif hits or redacted:
        _telemetry(v, graph, span, hits, redacted)
    if _truthy(attrs.get(attributes.BAGGAGE_SENT)):
        host = _destination(attrs)
        if not _allows(settings.allowed_hosts, host):
            where = f"'{host}'" if host else "an unrecorded destination"
            v.add(_finding(
                BAGGAGE_TO_EXTERNAL, Severity.MEDIUM, span, graph.parent_of(span.span_id),
                f"{op(span)} sent the tenant baggage to {where}, outside the allowed hosts",
            ))


def _telemetry(
    v: TraceVerdict, graph: SpanGraph, span: Span, hits: list[RawValue], redacted: int, chosen: set[str] | None = None
) -> None:
    """The tenant-in-telemetry finding of a span, its raw ids to be masked. Those all of
    whose text is among ``chosen`` (the ids a model chose in the trace: model-chosen-tenant)
    and that are found inside a value (JSON text, a map, a URL's query) are not named
    again: the conversation records them (messages, tool arguments) wherever the model's
    choice went, and that one leak is reported once. One under an attribute's own name
    (a flattened ``tool.arguments.tenant_id``) is still."""
    v.raw_values.extend(h.value for h in hits)
    if chosen:
        attrs = span.attributes
        hits = [h for h in hits if not (chosen.issuperset(scalars(h.value)) and _inside_a_value(h, attrs))]
    if hits or redacted:
        v.add(_finding(
            TENANT_IN_TELEMETRY, Severity.HIGH, span, graph.parent_of(span.span_id),
            _telemetry_message(span, hits, redacted),
        ))


def _inside_a_value(hit: RawValue, attrs: dict[str, Any]) -> bool:
    """Whether a raw id was found inside an attribute's value (a path: ``body → workspace_id``,
    ``request.tenant_id``, ``x[].org_id``), not under an attribute's own name."""
    return " → " in hit.key or "[]" in hit.key or (hit.where == "attribute" and hit.key not in attrs)


_NO_RESOURCE = object()  # (no span's resource)
_RESOURCES_SEEN: dict[frozenset[str], tuple[dict[int, Any], dict[int, Any]]] = {}
_RESOURCES_MAX = 256


def _resource_hits(spans: Collection[Span], names: frozenset[str]) -> bool:
    """Whether any resource of these spans holds a raw tenant identifier. Remembered
    per resource object (one per exported batch, shared by its spans) and tenant
    attribute names, as clean or not; the cache holds the resource, so its id is not
    reused while remembered, and the common case (every resource known clean) is one
    short loop."""
    seen = _RESOURCES_SEEN.get(names)
    if seen is None:
        if len(_RESOURCES_SEEN) >= 16:
            _RESOURCES_SEEN.clear()
        seen = _RESOURCES_SEEN[names] = ({}, {})
    clean, dirty = seen
    # every resource known clean, tested in a loop that looks each run of spans sharing
    # one resource up once (half the instructions of a set of every span's id)
    last: Any = _NO_RESOURCE
    for span in spans:
        r = span.resource
        if r is not last:
            if id(r) not in clean:
                break
            last = r
    else:
        return False
    ids = {id(span.resource) for span in spans}
    if len(clean) + len(dirty) + len(ids) > _RESOURCES_MAX:
        clean.clear()
        dirty.clear()
    for span in spans:
        r = span.resource
        i = id(r)
        if i not in clean and i not in dirty:
            hit = bool(r) and bool(scan_attributes(r, "resource attribute", names))
            (dirty if hit else clean)[i] = r
    return not dirty.keys().isdisjoint(ids)


def judge_passed_through(trace: Trace, settings: AnalysisSettings) -> TraceVerdict:
    """The attribute rules (tenant-in-telemetry, baggage-to-external) on spans passed
    through (flowmap.transparent): they carry no tenant to judge, but a proxy's custom
    tags copied from request headers can still put a raw tenant id in telemetry."""
    v = TraceVerdict()
    graph = SpanGraph(trace)
    for span in trace.spans.values():
        _attribute_rules(v, graph, span, settings, [])
    return v


def evaluate(graph: SpanGraph, settings: AnalysisSettings) -> TraceVerdict:
    """Run every rule on one trace.

    One pass over the spans: this is the analyzer's hot loop, so the common case — a
    tagged span under a parent with the same tag, with attribute names already known to
    be plain — costs a few dict lookups and no allocation; messages are formatted only
    for findings.
    """
    v = TraceVerdict()
    names = settings.tenant_attributes
    spans = graph.spans
    parent_of = graph.parent
    ops = graph.ops
    calls = v.calls
    quiet = quiet_keys(names)
    is_plain = quiet.issuperset
    opaque = known_opaque_tags()

    seen_resources: set[tuple[str, str]] = set()
    last_resource: dict[str, Any] | None = None
    rhits: list[RawValue] = []
    every = spans.values()
    tenants = v.tenants = {span.tenant for span in every}
    local: Iterable[tuple[str, Span]] = spans.items()  # the spans the span-local rules judge
    clean_resources = False  # known to hold no raw tenant id
    if len(tenants) == 1 and _LOADED_ONLY.issuperset(map(type, every)):
        # The common trace: one tag (or none) on every span, so every parent edge has the
        # same state and none is a finding; the edges are listed in one comprehension (a
        # quarter fewer instructions than zip and map over ops.__getitem__), and only the
        # spans some span-local rule could fire on are looked at one by one.
        (tag,) = tenants
        state = INHERITED if tag is not None else UNTAGGED
        v.calls = [(ops[pid], ops[sid], state) for sid, pid in parent_of.items()]
        if tag is None:
            v.untagged.extend(ops.values())
        elif tag in opaque and not _resource_hits(every, names):
            clean_resources = True
            local = [
                (sid, span) for sid, span in local
                if span.shape.quiet_for is not quiet or span.links or span.events or span.scoped is False
                or (span.boundary == "tool" and not span.shape.no_args)
                or (span.boundary == "llm" and not span.shape.no_output_args)
            ]
    else:
        untagged = v.untagged
        above_known: dict[str, Any] = {}  # (_tagged_above's answers, one walk a span)
        for sid, span in local:
            tenant = span.tenant
            if tenant is None:
                untagged.append(ops[sid])
            # cross-tenant / context-dropped along parent edges
            pid = parent_of.get(sid)
            if pid is not None:
                parent = spans[pid]
                pt = parent.tenant
                if pt == tenant:
                    state = INHERITED if pt is not None else UNTAGGED
                else:
                    state = edge_state(parent, span)
                    if state == SWITCHED or state == DROPPED:
                        f = _judge_parent(parent, span)
                        if f is not None and not (state == DROPPED and _asgi_message(span, sid, graph)):
                            v.add(f)
                    elif pt is None:
                        above = _tagged_above(pid, spans, parent_of, above_known, settings)
                        if above is not None and edge_state(above, span) == SWITCHED:
                            # A -> untagged -> B: the tenant switched through spans that
                            # carried none (an uninstrumented gateway, a contrib consumer)
                            state = SWITCHED
                            v.add(_switched_through(above, span))
                        f = _judge_inbound(span, parent)
                        if f is not None:
                            v.add(f)
                calls.append((ops[pid], ops[sid], state))

    # model-chosen-tenant found in a model's output, added only when no tool span of the
    # trace says it already (the tool span is where the tenant was used)
    chosen_by_model: list[Finding] = []
    chosen_values: list[Any] = []  # the ids the model chose (tool span or model span)
    deferred: list[tuple[Span, list[RawValue], int]] = []  # tenant-in-telemetry, see _telemetry
    for sid, span in local:
        events = span.events
        boundary = span.boundary
        if boundary is not None:
            if events and _switched(events):  # (only a boundary writes the switch event)
                v.add(_switch_finding(span, graph.parent_of(sid)))
            # data boundaries
            if span.scoped is False:
                # (declared so in its code: a call flowmap refused for want of a tenant
                # never ran, but the next one, bound, would run unscoped)
                refused = _refused_boundary(span)
                if boundary == "tool.catalog":
                    v.add(_finding(
                        UNFILTERED_CATALOG, Severity.HIGH, span, graph.parent_of(sid),
                        f"tool catalog {op(span)} " + (
                            "is declared without the tenant filter (refused here: no tenant bound)" if refused
                            else "was shown to the model without the tenant filter"),
                    ))
                elif boundary in attributes.DATA_BOUNDARIES:
                    v.add(_finding(
                        UNSCOPED_QUERY, Severity.HIGH, span, graph.parent_of(sid),
                        f"{boundary} boundary {op(span)} " + (
                            "is declared without a tenant scope (flowmap.scoped=false; refused here: no tenant bound)"
                            if refused else "ran without a tenant scope (flowmap.scoped=false)"),
                    ))
            # model-chosen-tenant
            if boundary == "tool":
                keys, values = _model_chosen_keys(span, names)
                if keys:
                    # values given by the model (not a schema's {"type": ...} description;
                    # an object the model gave, {"id": ...}, is masked whole)
                    values = [x for x in values if not (isinstance(x, dict) and "type" in x)]
                    v.raw_values.extend(values)
                    chosen_values.extend(values)
                    shown = ", ".join(f"'{k}'" for k in dict.fromkeys(keys))
                    v.add(_finding(
                        MODEL_CHOSEN_TENANT, Severity.HIGH, span, graph.parent_of(sid),
                        f"tool call {op(span)} takes the tenant from the model's arguments ({shown})",
                    ))
            elif boundary == "llm":
                keys, values = _model_output_keys(span, names)
                if keys:
                    v.raw_values.extend(values)  # a model's output arguments, never a schema
                    chosen_values.extend(values)
                    shown = ", ".join(f"'{k}'" for k in dict.fromkeys(keys))
                    chosen_by_model.append(_finding(
                        MODEL_CHOSEN_TENANT, Severity.HIGH, span, graph.parent_of(sid),
                        f"model call {op(span)} chose the tenant for a tool call ({shown})",
                    ))

        # tenant-in-telemetry (resource attributes once per service and trace) and
        # baggage-to-external
        resource = span.resource
        if resource is not last_resource:
            last_resource = resource
            rhits = scan_attributes(resource, "resource attribute", names) if resource and not clean_resources else []
        new_rhits = rhits
        if rhits:
            new_rhits = []
            for hit in rhits:
                if (span.service, hit.key) not in seen_resources:
                    seen_resources.add((span.service, hit.key))
                    new_rhits.append(hit)
        # (masking.is_quiet, inlined: this runs for every span; events and links whose
        # attributes are all quiet need no closer look either). A loaded span's names
        # are judged once per distinct tuple of names (its shape), without its dict; a
        # span whose values hold names (maps, JSON text, a URL's query) has a shape of its
        # own (otlp.with_inner) that names never clear.
        flags_only = False  # every name plain but for the flags the rules read
        if span.__class__ in _LOADED_ONLY:
            shape = span.shape
            plain = shape.quiet_for is quiet
            if not plain and not shape.inner:
                if is_plain(shape.keys):
                    shape.quiet_for = quiet  # the set only grows: plain stays plain
                    plain = True
                elif shape.flags_for is quiet:
                    flags_only = True
                elif all([k in quiet or k in _FLAGS_OR_INBOUND for k in shape.keys]):
                    shape.flags_for = quiet
                    flags_only = True
            if flags_only and shape.inbound >= 0:
                # flowmap.tenant.inbound holds no raw id when it is a known opaque tag
                # (masking._judge, as for flowmap.tenant): a service's server span
                # reached with baggage is then not scanned name by name
                inbound = span.attributes.get(_INBOUND)
                flags_only = inbound.__class__ is str and inbound in opaque
            # flowmap.tenant present: its value is the tenant when it is a string
            tag = (span.tenant or _NOT_A_TAG) if shape.tenant >= 0 else None
        else:
            attrs = span.attributes
            plain = is_plain(attrs) and not holds_names(attrs)
            tag = attrs.get(_TENANT_ATTR)
        rest_quiet = not (
            new_rhits
            or (events and not _quiet_parts(events, quiet))
            or (span.links and not _quiet_parts(span.links, quiet))
            or (tag is not None and (tag.__class__ is not str or tag not in opaque))
        )
        if not plain or not rest_quiet:
            scan = not (flags_only and rest_quiet)
            _attribute_rules(v, graph, span, settings, new_rhits, scan=scan, deferred=deferred)
    if chosen_by_model and not any(f.rule == MODEL_CHOSEN_TENANT for f in v.findings):
        for f in chosen_by_model:
            v.add(f)
    if deferred:
        chosen = {t for x in chosen_values for t in scalars(x)}
        for span, hits, redacted in deferred:
            _telemetry(v, graph, span, hits, redacted, chosen)

    # links inside the trace (queues, streams): linked span -> linking span
    walks: UntaggedBelow | None = None  # what ran below untagged consumers, and below findings
    if graph.links:
        walks = _judge_links(v, graph, settings)

    # roots (and entries called from outside the data)
    for sid in graph.entry_roots():
        span = spans[sid]
        if span.tenant is not None:
            f = _judge_inbound(span, None)
            if f is not None:
                v.add(f)
            continue
        if is_entry(span):
            # an entry that lost its producer's tenant through a link already has the more
            # specific context-dropped finding: unscoped-entry would say the same twice
            below = graph.subtree(sid)[1:]
            if _exempt_entry(span, sid, graph, settings):
                continue
            if not any(spans[x].tenant is not None for x in below) and not _has(v, sid, CONTEXT_DROPPED):
                v.add(_unscoped_entry(span, None, any(spans[x].boundary is not None for x in below)))
        elif settings.is_tenantless_entry(span.service, span.name):
            continue  # a job's root declared to run for no tenant (e.g. a nightly re-index)
        elif _builds_an_agent(span) or _configures_mastra(span):
            continue  # a framework building its agent at start-up: no request, no tenant
        elif span.boundary in _STORES and opens_a_connection(span.name, span.attributes):
            continue  # a client connecting to its database or cache (start-up, reconnect)
        elif span.boundary == "cache" and waits_for_work(span.name, span.attributes) and sid not in graph.children:
            continue  # a queue worker waiting for (or acknowledging) every tenant's messages
        elif span.links and link_role(span.kind, span.attributes) in _TRANSPORT_ROLES:
            continue  # a batch send or settle: its messages keep their own contexts (link_reading)
        else:
            message = orphan_message(span.operation, None, None, ran_unbound(span))
            f = _finding(ORPHAN_ROOT, _at_boundary(span), span, None, message)
            v.add(f)
            v.orphans.append(f)

    if None in tenants and len(spans) > 1:
        _entries_under_untagged_callers(v, graph, settings)

    for sid in graph.missing_parent:
        span = spans[sid]
        v.add(_finding(
            MISSING_PARENT, Severity.INFO, span, None,
            f"the parent of {op(span)} is not in the data (incomplete export or sampling): "
            "its path cannot be judged",
        ))
    for sid in graph.cycle_cut:
        span = spans[sid]
        v.add(_finding(
            MISSING_PARENT, Severity.INFO, span, None,
            f"the parent chain of {op(span)} loops back on itself: its path cannot be judged",
        ))
    if v.findings:
        _note_boundaries_reached(v, graph, walks)
    return v


def _judge_links(v: TraceVerdict, graph: SpanGraph, settings: AnalysisSettings) -> UntaggedBelow | None:
    """The findings of the links inside the trace, each read as :func:`link_reading`
    says; returns the walks below spans made for them (for _note_boundaries_reached)."""
    spans = graph.spans
    linking = LinkingSpans(graph)
    known: dict[str, Any] = {}  # (tagged_above's answers)
    for src, dst in graph.links:
        producer = spans[src]
        if producer.tenant is None:
            if len(v.tenants) > 1:  # (a tagged span to compare with)
                _judge_link_through(v, graph, linking, src, dst, known, settings)
            continue
        f = judge_link(producer, spans[dst])
        if f is None:
            continue  # no loss, no switch
        how, scope = linking.reading(dst)
        if how == BATCH_UNBOUND:  # a switch (the span is tagged) that lost the message's tenant
            f = judge_link(producer, spans[dst], None, (), how)
        dropped = f.rule == CONTEXT_DROPPED
        state = INHERITED
        if not passes_on(how, DROPPED if dropped else SWITCHED):
            if not dropped:
                v.add(f)
                continue
            bound = () if how == BATCH_UNBOUND else linking.below(scope)[1]
            if (producer.tenant, producer.key_id) not in bound:  # a batch consumer: see UntaggedBelow
                if bound and one_message(spans[dst], scope) and not _judged_by_parents(graph, dst, producer, known,
                                                                                       settings):
                    f = judge_link(producer, spans[dst], None, bound) or f
                v.add(f)
                state = SWITCHED if f.rule == CROSS_TENANT else DROPPED
        v.judged_link(src, dst, state)
    return linking.walks


def _judge_link_through(
    v: TraceVerdict, graph: SpanGraph, linking: LinkingSpans, src: str, dst: str, known: dict[str, Any],
    settings: AnalysisSettings,
) -> None:
    """A link inside the trace from an untagged producer: ``cross-tenant`` when the
    consumer switched from the nearest tagged span above the producer
    (:func:`judge_link_through`), the link then counted as switched."""
    above = tagged_above(graph, src, settings, known)
    if above is None:
        return
    consumer = graph.spans[dst]
    how, scope = linking.reading(dst)
    bound: Any = ()
    if consumer.tenant is None:
        if not one_message(consumer, scope) or _judged_by_parents(graph, dst, above, known, settings):
            return
        bound = linking.below(scope)[1]
    f = judge_link_through(above, graph.spans[src], consumer, how, bound)
    if f is not None:
        v.add(f)
        v.judged_link(src, dst, SWITCHED)


def _judged_by_parents(
    graph: SpanGraph, dst: str, compared: Span, known: dict[str, Any], settings: AnalysisSettings,
) -> bool:
    """Whether the parent edges already judge what ran below an untagged consumer of one
    message against the tenant its link compares it with (``compared``: the producer, or
    the tagged span above an untagged one): the nearest tagged span above the consumer
    ran for that tenant (the producer itself, for a ``process`` span parented on the
    message's creation context, as OTel's messaging conventions allow for one message;
    or the request that sent it), so a tenant bound below it is a ``cross-tenant`` on the
    span that bound it (compared through untagged spans), and the consumer's own parent
    edge its ``context-dropped``. The link reports the one switch no second time (it was
    a second cross-tenant, a third finding, for it)."""
    above = tagged_above(graph, dst, settings, known)
    return above is not None and edge_state(compared, above) == INHERITED


def _entries_under_untagged_callers(v: TraceVerdict, graph: SpanGraph, settings: AnalysisSettings) -> None:
    """``unscoped-entry`` for a request that entered a service from an untagged caller in
    the data (a browser's or a job's span, a gateway that never bound a tenant) and was
    served without a tenant ever being bound.

    Why: the root rules judge only the trace's top, so recording more of the request
    (the caller's spans) would otherwise hide the service that served it tenantless.
    Only when no tenant is known anywhere above it: not under a tagged span (the edge
    that dropped the tenant is a finding), nor under a span with a tenant bound elsewhere
    below it (a gateway that calls an authentication service before it binds the tenant
    the service resolved), nor under an untagged entry (itself an ``unscoped-entry``, or
    declared tenantless)."""
    spans, parent = graph.spans, graph.parent
    tagged = boundary = None
    covered: dict[str, Any] = {}
    for sid, span in spans.items():
        if span.tenant is not None or not is_entry(span):
            continue
        pid = parent.get(sid)
        if pid is None or spans[pid].tenant is not None:
            continue  # a root (judged above), or a tagged caller (context-dropped judged the edge)
        if tagged is None:
            tagged, boundary = graph.below("tagged"), graph.below("boundary")
        if tagged[sid] or _has(v, sid, CONTEXT_DROPPED):
            continue
        if _covered_above(pid, spans, parent, tagged, covered):
            continue
        if not _exempt_entry(span, sid, graph, settings):
            v.add(_unscoped_entry(span, graph.parent_of(sid), boundary[sid]))


def _covered_above(
    start: str, spans: dict[str, Span], parent: dict[str, str], tagged: dict[str, bool], covered: dict[str, Any]
) -> bool:
    """Whether ``start`` or a span above it is tagged, has a tagged span below it, or is
    an entry."""
    def answer(sid: str, span: Span) -> Any:
        return True if span.tenant is not None or tagged[sid] or is_entry(span) else _GO_ON

    return _walk_up(start, spans, parent, covered, answer, False)


_GO_ON = object()  # a _walk_up step's "not here: look at the parent"


def _walk_up(
    start: str, spans: dict[str, Span], parent: dict[str, str], known: dict[str, Any],
    answer: Callable[[str, Span], Any], default: Any,
) -> Any:
    """The first ``answer(sid, span)`` that is not :data:`_GO_ON`, walking up parent
    edges from ``start``; ``default`` past the top (or a parent not in the data). Walking
    stops at a span already answered in ``known`` too, and every span walked gets the
    answer there: each span is walked once per trace however many spans below one long
    untagged chain ask (walking up from each again was quadratic), without recursion (a
    chain can be a million spans deep)."""
    walked: list[str] = []
    node: str | None = start
    result = default
    while node is not None:
        if node in known:
            result = known[node]
            break
        span = spans.get(node)
        if span is None:
            break
        got = answer(node, span)
        if got is not _GO_ON:
            result = got
            break
        walked.append(node)
        node = parent.get(node)
    for n in walked:
        known[n] = result
    return result


def _ran_work(span: Span) -> bool:
    """Whether a span below an entry is work done for the request: a boundary, other than
    a call made to authenticate it. A framework's own spans of the refusal (the ASGI
    instrumentation's ``http send`` of a 401, Express's middleware span) are not."""
    return span.boundary is not None and span.attributes.get(attributes.AUTHENTICATING) is not True


def _exempt_entry(span: Span, sid: str, graph: SpanGraph, settings: AnalysisSettings) -> bool:
    """An entry that bound no tenant and is no finding: authentication turned the request
    away before it reached any boundary (401/403/407, or an RPC's UNAUTHENTICATED or
    PERMISSION_DENIED: conventions.refused_request), or it is declared to run for no
    tenant (health checks, sign-in). What ran below is looked at only for a refusal."""
    if refused_request(span.attributes) and not any(_ran_work(graph.spans[x]) for x in graph.subtree(sid)[1:]):
        return True
    return settings.is_tenantless_entry(span.service, span.name)


def _unscoped_entry(span: Span, parent: Span | None, reached_boundary: bool) -> Finding:
    return _finding(
        UNSCOPED_ENTRY, Severity.HIGH if reached_boundary else Severity.MEDIUM, span, parent,
        f"request {op(span)} entered and no tenant was ever bound"
        + (" before it reached a boundary" if reached_boundary else "") + _unbound_note(span),
    )


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Severity descending, then trace, span and rule: a stable order for every output."""
    return sorted(findings, key=lambda f: (-int(f.severity), f.trace_id, f.span_id, f.rule))


def _configures_mastra(span: Span) -> bool:
    """Mastra's telemetry (0.x) traces the ``Mastra`` object's own setters, which its
    constructor calls at start-up (``mastra.setLogger``, its argument in
    ``mastra.setLogger.argument.0``): no request's, so no tenant to lose."""
    name = span.name
    return name.startswith("mastra.set") and span.boundary is None and f"{name}.argument.0" in span.attributes


#: the boundaries of a client that connects before its calls (opens_a_connection)
_STORES = frozenset({"db", "cache"})


def _builds_an_agent(span: Span) -> bool:
    """A GenAI ``create_agent`` span that is not a call to a remote agent service (GenAI
    semconv: that one is a CLIENT span naming its server): frameworks emit it in-process
    when they build an agent, once, at start-up, so its root has no tenant and lost none.
    AutoGen's is a CLIENT span too, but names no server."""
    a = span.attributes
    if a.get("gen_ai.operation.name") != "create_agent":
        return False
    return span.kind != SPAN_KIND_CLIENT or _destination(a) is None
