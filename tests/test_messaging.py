"""Messaging traces as OpenTelemetry's messaging conventions shape them, made with the
real SDK and flowmap's runtime (two tenants' requests each create a message; the spans
an instrumentation would start are started here with its kinds, attributes and links).

Which way a link points depends on the operation (see flowmap.conventions.link_role):
a consumer's ``process`` (``deliver``) or ``receive`` links to each message's creation
context, a batch ``send`` (``publish`` before semconv 1.27) links to the ``create`` span
of each message it carries, a ``settle`` may link to the messages it settles. A correct
multi-tenant platform gives nothing at or above high; a consumer that lost a message's
tenant, or ran for another tenant, is found, whatever carried the message to it.
"""

from __future__ import annotations

import json
import threading
from contextlib import nullcontext

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind

import flowmap
from flowmap.analysis import analyze
from flowmap.exporter import encode_spans

NEW, OLD = "messaging.operation.type", "messaging.operation"


class Platform:
    """Requests that create messages for their tenant, and the spans that carry, receive,
    process and settle them, on the runtime's provider."""

    def __init__(self, rt, exporter, attr=NEW):
        self.tracer = rt.tracer_provider.get_tracer("messaging-test")
        self.exporter = exporter
        self.attr = attr

    def _messaging(self, op, **extra):
        return {"messaging.system": "kafka", "messaging.destination.name": "orders", self.attr: op, **extra}

    def span(self, name, kind=SpanKind.INTERNAL, links=(), op=None, root=False, **extra):
        return self.tracer.start_as_current_span(
            name, context=otel_context.Context() if root else None, kind=kind, links=list(links),
            attributes=self._messaging(op, **extra) if op else None)

    def request(self, tenant, op="create", kind=SpanKind.PRODUCER):
        """A tenant's request that creates one message: its creation context."""
        with flowmap.bind(flowmap.RequestContext(tenant)):
            with self.span("POST /orders", SpanKind.SERVER):
                with self.span(f"{op} orders", kind, op=op) as message:
                    return message.get_span_context()

    def in_thread(self, work):
        """``work`` on a plain thread (no contextvars: a client library's sender thread)."""
        t = threading.Thread(target=work)
        t.start()
        t.join()

    def batch_send(self, messages, kind=SpanKind.PRODUCER, op="send"):
        """A batch flushed by a sender thread, linking to each message's creation context."""
        def flush():
            with self.span("send orders", kind, [Link(m) for m in messages], op, root=True,
                           **{"messaging.batch.message_count": len(messages)}):
                pass
        self.in_thread(flush)

    def work(self, tenant):
        """A message's work, ``tenant`` bound (None: nothing bound)."""
        with flowmap.bind(flowmap.RequestContext(tenant)) if tenant else nullcontext():
            with self.tracer.start_as_current_span("INSERT orders", kind=SpanKind.CLIENT,
                                                   attributes={"db.system.name": "postgresql"}):
                pass

    def process(self, message, tenant, op="process", root=True):
        """A push consumer's process span linked to the message, the work below it."""
        with self.span("process orders", SpanKind.CONSUMER, [Link(message)], op, root=root):
            self.work(tenant)

    def findings(self, tmp_path, reverse=False):
        """flowmap's findings on what was exported (``reverse``: the spans written last
        first, so that linking spans are read before what they link to)."""
        spans = list(self.exporter.get_finished_spans())
        path = tmp_path / "traces.jsonl"
        path.write_text(json.dumps(encode_spans(spans[::-1] if reverse else spans)) + "\n")
        a = analyze([path])
        return sorted((f.rule, f.severity.name.lower(), f.span_name) for f in a.findings), a


ORDERS = pytest.mark.parametrize("reverse", [False, True], ids=["producers-first", "consumers-first"])


@pytest.fixture
def platform(flowmap_runtime):
    rt, exporter = flowmap_runtime
    return lambda attr=NEW: Platform(rt, exporter, attr)


# -- a batch send links to the messages it carries -------------------------------------

BATCH_SENDS = {
    "semconv 1.27 send, PRODUCER": (NEW, "send", SpanKind.PRODUCER, "process"),
    "semconv 1.27 send, CLIENT (create spans give the creation context)": (NEW, "send", SpanKind.CLIENT, "process"),
    "semconv 1.26 publish": (NEW, "publish", SpanKind.PRODUCER, "process"),
    "messaging.operation publish, deliver": (OLD, "publish", SpanKind.PRODUCER, "deliver"),
}


@ORDERS
@pytest.mark.parametrize("shape", BATCH_SENDS)
def test_a_batch_send_of_two_tenants_messages_loses_no_tenant(platform, tmp_path, shape, reverse):
    """The send runs on the sender thread for no tenant and links to both messages'
    create spans: it carries them on, each with its own context; their consumers bind
    each message's tenant. Nothing is lost (the send was a context-dropped and an
    orphan-root)."""
    attr, op, kind, process = BATCH_SENDS[shape]
    p = platform(attr)
    a, b = p.request("tenant-a", op="create"), p.request("tenant-b", op="create")
    p.batch_send([a, b], kind, op)
    p.process(a, "tenant-a", process)
    p.process(b, "tenant-b", process)
    found, analysis = p.findings(tmp_path, reverse)
    assert found == []
    create_to_send = analysis.flow.edges[("test-svc create orders", "test-svc send orders")]
    assert (create_to_send.inherited, create_to_send.dropped, create_to_send.via_link) == (2, 0, 2)


@ORDERS
@pytest.mark.parametrize(("leak", "expected"), [
    (None, ("context-dropped", "high", "process orders")),
    ("tenant-b", ("cross-tenant", "critical", "process orders")),
])
def test_a_consumer_of_a_batch_sent_message_is_still_judged(platform, tmp_path, leak, expected, reverse):
    """Past the batch send, the consumer that lost tenant A's message (nothing bound), or
    ran it for tenant B, is found on its link to the message's create span."""
    p = platform()
    a, b = p.request("tenant-a"), p.request("tenant-b")
    p.batch_send([a, b])
    p.process(a, leak)
    p.process(b, "tenant-b")
    assert p.findings(tmp_path, reverse)[0] == [expected]


@ORDERS
def test_a_batch_send_does_not_hide_the_tenant_a_message_was_created_without(platform, tmp_path, reverse):
    """A message created where the tenant was lost (a thread that dropped the context):
    the create span is the orphan, not the send that carries it."""
    p = platform()
    a = p.request("tenant-a")
    lost = []
    p.in_thread(lambda: lost.append(_create_unbound(p)))
    p.batch_send([a, lost[0]])
    p.process(a, "tenant-a")
    assert p.findings(tmp_path, reverse)[0] == [("orphan-root", "high", "create orders")]


def _create_unbound(p):
    with p.span("create orders", SpanKind.PRODUCER, op="create") as message:
        return message.get_span_context()


@ORDERS
def test_a_single_message_send_is_the_creation_context(platform, tmp_path, reverse):
    """No create span: the send's own context travels with the message, its consumer
    links to the send, judged as ever."""
    p = platform()
    sent = p.request("tenant-a", op="send")
    p.process(sent, "tenant-a")
    assert p.findings(tmp_path, reverse)[0] == []
    p.exporter.clear()
    sent = p.request("tenant-a", op="send")
    p.process(sent, None)
    assert p.findings(tmp_path, reverse)[0] == [("context-dropped", "high", "process orders")]


# -- a pull consumer's receive hands the messages to its caller ------------------------

def _receive(p, where, bound, kind=SpanKind.CLIENT):
    """Two tenants' messages received in one batch (a CLIENT span, semconv 1.27; CONSUMER
    before), then each one's work with ``bound`` tenants. ``where``: 'loop' (the receive
    and the work under an untagged poll-loop span), 'process' (the receive a root, each
    message then processed in a process span of its own), 'inside' (the work below the
    receive span)."""
    a, b = p.request("tenant-a"), p.request("tenant-b")
    receive = p.span("receive orders", kind, [Link(a), Link(b)], "receive", root=where != "loop",
                     **{"messaging.batch.message_count": 2})
    if where == "loop":
        with p.span("poll loop", root=True):
            with receive:
                pass
            for tenant in bound:
                p.work(tenant)
    elif where == "inside":
        with receive:
            for tenant in bound:
                p.work(tenant)
    else:
        with receive:
            pass
        for message, tenant in zip((a, b), bound):
            p.process(message, tenant)


@ORDERS
@pytest.mark.parametrize(("where", "expected"), [
    # the poll loop is a root that serves no tenant: an orphan-root (medium), as before
    ("loop", [("orphan-root", "medium", "poll loop")]),
    # the receive is an entry that bound no tenant itself: medium, nothing ran below it
    ("process", [("unscoped-entry", "medium", "receive orders")]),
])
def test_a_pull_consumer_that_binds_each_messages_tenant_loses_none(platform, tmp_path, where, expected, reverse):
    """The receive ends before the messages are processed: their tenants are bound by
    its caller (the poll loop) or in the process spans that follow (the receive was a
    context-dropped, high, on each)."""
    p = platform()
    _receive(p, where, ["tenant-a", "tenant-b"])
    assert p.findings(tmp_path, reverse)[0] == expected


@ORDERS
@pytest.mark.parametrize(("where", "kind", "expected"), [
    ("loop", SpanKind.CLIENT, [("context-dropped", "high", "receive orders"), ("orphan-root", "medium", "poll loop")]),
    ("process", SpanKind.CLIENT, [("context-dropped", "high", "process orders"),
                                  ("unscoped-entry", "medium", "receive orders")]),
    # (the runtime stamped the receive, a CONSUMER entry, with the one tenant bound below
    # it, B: A's message was lost in a record handled with no tenant, not switched to B)
    ("inside", SpanKind.CONSUMER, [("context-dropped", "high", "INSERT orders"),
                                   ("context-dropped", "high", "receive orders")]),
])
def test_a_pull_consumer_that_never_binds_a_messages_tenant_is_found(platform, tmp_path, where, kind, expected, reverse):
    p = platform()
    _receive(p, where, [None, "tenant-b"], kind)  # tenant A's message handled with nothing bound
    assert p.findings(tmp_path, reverse)[0] == expected


@ORDERS
def test_a_receive_with_the_work_below_it_that_binds_each_tenant_loses_none(platform, tmp_path, reverse):
    p = platform()
    _receive(p, "inside", ["tenant-a", "tenant-b"], SpanKind.CONSUMER)
    assert p.findings(tmp_path, reverse)[0] == []


# -- a batch process span, a settle -----------------------------------------------------

@ORDERS
def test_a_batch_process_span_binding_each_records_tenant_loses_none(platform, tmp_path, reverse):
    p = platform()
    a, b = p.request("tenant-a"), p.request("tenant-b")
    with p.span("process orders", SpanKind.CONSUMER, [Link(a), Link(b)], "process", root=True,
                **{"messaging.batch.message_count": 2}):
        p.work("tenant-a")
        p.work("tenant-b")
    assert p.findings(tmp_path, reverse)[0] == []


@ORDERS
@pytest.mark.parametrize("batch", [False, True], ids=["per-message", "batch"])
def test_an_acknowledgement_linking_to_the_messages_it_settles_loses_nothing(platform, tmp_path, batch, reverse):
    """A settle carries no message data: one in each process span, or one for the batch
    at the end of the poll loop (no tenant: it was a context-dropped), lost no tenant;
    its links are drawn inherited, from the messages' create spans."""
    p = platform()
    messages = {"tenant-a": p.request("tenant-a"), "tenant-b": p.request("tenant-b")}
    with p.span("poll loop", root=True):
        for tenant, message in messages.items():
            with p.span("process orders", SpanKind.CONSUMER, [Link(message)], "process"):
                with flowmap.bind(flowmap.RequestContext(tenant)):
                    if not batch:
                        with p.span("ack orders", SpanKind.CLIENT, [Link(message)], "settle"):
                            pass
        if batch:
            with p.span("ack orders", SpanKind.CLIENT, [Link(m) for m in messages.values()], "settle"):
                pass
    found, analysis = p.findings(tmp_path, reverse)
    assert found == [("orphan-root", "medium", "poll loop")]
    acked = analysis.flow.edges[("test-svc create orders", "test-svc ack orders")]
    assert (acked.inherited, acked.dropped, acked.via_link) == (2, 0, 2)



# -- a message sent from a span with no tag; a process span that is the message's child --

def _sent_on_a_sender_thread(p, tenant):
    """A tenant's request whose message a client library sends on its own thread, as the
    request's child (it kept the request's span, not its context): the send runs with
    nothing bound, untagged, a context-dropped."""
    with flowmap.bind(flowmap.RequestContext(tenant)):
        with p.span("POST /orders", SpanKind.SERVER) as request:
            parent = trace.set_span_in_context(request, otel_context.Context())
    sent = []

    def send():
        with p.tracer.start_as_current_span("send orders", parent, SpanKind.PRODUCER,
                                            attributes=p._messaging("send")) as span:
            sent.append(span.get_span_context())
    p.in_thread(send)
    return sent[0]


def _bound_for(p, tenant, where):
    """The message's work with ``tenant`` bound: ``before`` the process span starts (it
    gets the tag), ``in the process span`` (the runtime stamps the CONSUMER entry with
    it), or ``in a handler`` span below it (the process span stays untagged)."""
    if where == "before":
        return flowmap.bind(flowmap.RequestContext(tenant)), nullcontext(), None
    if where == "in the process span":
        return nullcontext(), nullcontext(), tenant
    return nullcontext(), p.span("handle order"), tenant


@ORDERS
@pytest.mark.parametrize("where", ["before", "in the process span", "in a handler"])
def test_a_message_sent_without_a_tag_is_judged_against_the_request_that_sent_it(platform, tmp_path, reverse, where):
    """Tenant A's message, sent untagged, processed for tenant B: a critical cross-tenant
    on the process span against A's request, besides the send's own context-dropped (the
    process span was compared with the untagged send only). Processed for A: only the
    context-dropped."""
    p = platform()
    for worker_tenant, leak in (("tenant-b", True), ("tenant-a", False)):
        p.exporter.clear()
        sent = _sent_on_a_sender_thread(p, "tenant-a")
        outer, handler, tenant = _bound_for(p, worker_tenant, where)
        with outer:
            with p.span("process orders", SpanKind.CONSUMER, [Link(sent)], "process", root=True):
                with handler:
                    p.work(tenant)
        found, _ = p.findings(tmp_path, reverse)
        switch = [("cross-tenant", "critical", "process orders")] if leak else []
        assert found == [("context-dropped", "high", "send orders"), *switch]


@ORDERS
@pytest.mark.parametrize("where", ["in the process span", "in a handler"])
def test_a_process_span_that_is_the_messages_child_reports_a_switch_once(platform, tmp_path, reverse, where):
    """A push consumer's process span parented on the message's creation context and
    linked to it (OTel messaging allows both for one message): the worker binds tenant B
    for tenant A's message. One critical cross-tenant: on the process span when the
    runtime stamped it with B; else on the work that ran for B, the process span keeping
    its context-dropped (it ran with no tenant, as it would with A bound below it). The
    link gave a second cross-tenant, on the process span."""
    p = platform()
    message = p.request("tenant-a", op="send")
    from_message = trace.set_span_in_context(trace.NonRecordingSpan(message), otel_context.Context())
    _, handler, tenant = _bound_for(p, "tenant-b", where)
    with p.tracer.start_as_current_span("process orders", from_message, SpanKind.CONSUMER, links=[Link(message)],
                                        attributes=p._messaging("process")):
        with handler:
            p.work(tenant)
    found, _ = p.findings(tmp_path, reverse)
    if where == "in the process span":
        assert found == [("cross-tenant", "critical", "process orders")]
    else:
        assert found == [("context-dropped", "high", "process orders"), ("cross-tenant", "critical", "INSERT orders")]
