"""Every rule of the contract table: a hit with its exact severity, and a near miss that must not fire.

Traces are written as OTLP JSON Lines (tests/otlp_builder.py) and read back through the
real loader by ``flowmap.analyze``.
"""

import dataclasses
import json

import pytest

from flowmap.config import load_config
from flowmap.model import Severity
from flowmap.settings import AnalysisSettings
from flowmap.hosts import AllowedHosts

from otlp_builder import (
    CLIENT,
    CONSUMER,
    INTERNAL,
    PRODUCER,
    SERVER,
    TAG_A,
    TAG_B,
    TraceBuilder,
    analyze_built,
)

RAW = "acme-corp-7731"  # a raw tenant id: must never appear in any output


def rules_of(analysis, rule):
    return [f for f in analysis.findings if f.rule == rule]


def only(analysis, rule):
    found = rules_of(analysis, rule)
    assert len(found) == 1, [f.to_json() for f in analysis.findings]
    return found[0]


def request(tb, tenant=TAG_A):
    return tb.span("POST /chat", kind=SERVER, tenant=tenant, boundary="http.server")


# -- cross-tenant -------------------------------------------------------------------

def test_cross_tenant_child_of_other_tenant_is_critical(tmp_path):
    tb = TraceBuilder()
    entry = request(tb)
    switched = entry.child("load memory", tenant=TAG_B, boundary="memory", scoped=True)
    f = only(analyze_built(tmp_path, tb), "cross-tenant")
    assert f.severity is Severity.CRITICAL
    assert (f.span_id, f.parent_span_id) == (switched.span_id, entry.span_id)
    assert "'api load memory'" in f.message and "'api POST /chat'" in f.message


def test_a_message_cuts_very_long_operation_names_and_the_finding_keeps_them(tmp_path):
    """Span names are the traced program's (the loader keeps 4,096 characters): a message
    quotes each at most 200 characters; the finding's name fields keep them as loaded."""
    tb = TraceBuilder()
    entry = tb.span("P" * 5000, kind=SERVER, tenant=TAG_A, boundary="http.server")
    entry.child("C" * 5000, tenant=TAG_B, boundary="memory", scoped=True)
    f = only(analyze_built(tmp_path, tb), "cross-tenant")
    assert len(f.message) < 600
    assert "'api " + "C" * 195 + "…'" in f.message and "'api " + "P" * 195 + "…'" in f.message
    from flowmap.otlp import MAX_NAME_CHARS

    assert (f.span_name, f.parent_name) == ("C" * MAX_NAME_CHARS, "P" * MAX_NAME_CHARS)


@pytest.mark.parametrize("caller", ["not in the data", "untagged", "no parent at all"])
def test_cross_tenant_when_the_inbound_tag_is_not_the_authenticated_tenant(tmp_path, caller):
    """The tag that came with the request (baggage, kept in flowmap.tenant.inbound) names
    another tenant than the one the service authenticated: judged even when the caller's
    own span cannot say it."""
    tb = TraceBuilder()
    parent = None
    if caller == "not in the data":
        parent = "0000000000000abc"
    elif caller == "untagged":
        parent = tb.span("gateway", kind=CLIENT, service="gateway")
    entry = tb.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server", parent=parent,
                    attrs={"flowmap.tenant.inbound": TAG_B})
    f = only(analyze_built(tmp_path, tb), "cross-tenant")
    assert (f.span_id, f.severity) == (entry.span_id, Severity.CRITICAL) and TAG_B in f.message


@pytest.mark.parametrize("case", ["same tag", "not a tag", "caller under another key", "caller tagged"])
def test_inbound_tag_near_misses(tmp_path, case):
    tb = TraceBuilder()
    inbound = {"same tag": TAG_A, "not a tag": "whatever"}.get(case, TAG_B)
    parent = None
    if case == "caller under another key":
        parent = tb.span("gateway", kind=CLIENT, service="gateway", key_id="other-key")
    elif case == "caller tagged":  # the parent edge judges it (here: the same tenant)
        parent = tb.span("gateway", kind=CLIENT, service="gateway", tenant=TAG_A)
    tb.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server", parent=parent,
            attrs={"flowmap.tenant.inbound": inbound})
    assert rules_of(analyze_built(tmp_path, tb), "cross-tenant") == []


def test_cross_tenant_not_judged_across_different_keys(tmp_path):
    tb = TraceBuilder()
    entry = request(tb)
    entry.child("downstream", tenant=TAG_B, service="billing", key_id="otherkey")
    assert rules_of(analyze_built(tmp_path, tb), "cross-tenant") == []


def test_cross_tenant_same_tag_does_not_fire(tmp_path):
    tb = TraceBuilder()
    request(tb).child("agent", tenant=TAG_A, boundary="agent")
    assert analyze_built(tmp_path, tb).findings == []


def test_cross_tenant_through_queue_link_across_traces(tmp_path):
    producer_trace = TraceBuilder()
    pub = request(producer_trace).child("enqueue job", kind=PRODUCER, tenant=TAG_A, boundary="queue.publish")
    consumer_trace = TraceBuilder(service="worker")
    consumer_trace.span("process job", kind=CONSUMER, tenant=TAG_B, boundary="queue.consume", links=[pub])
    # consumer written before the producer: the link is resolved whatever the order
    f = only(analyze_built(tmp_path, consumer_trace, producer_trace), "cross-tenant")
    assert f.severity is Severity.CRITICAL
    assert f.trace_id == consumer_trace.trace_id and f.parent_span_id == pub.span_id
    assert "link" in f.message
    # the "parent" is in the producer's trace, and the finding says which one
    assert f.parent_trace_id == producer_trace.trace_id != f.trace_id
    assert f.to_json()["parent_trace_id"] == producer_trace.trace_id


def test_a_findings_parent_trace_is_its_own_for_a_parent_and_none_for_a_root(tmp_path):
    tb = TraceBuilder()
    entry = request(tb)
    lost = entry.child("vector search", boundary="vector", scoped=True)
    tb.span("orphan work", boundary="db", scoped=True)
    a = analyze_built(tmp_path, tb)
    dropped, orphan = only(a, "context-dropped"), only(a, "orphan-root")
    assert (dropped.span_id, dropped.parent_trace_id) == (lost.span_id, tb.trace_id)
    assert orphan.parent_trace_id is None


def test_cross_tenant_through_untagged_spans_names_the_tagged_span_above(tmp_path):
    """A -> untagged -> B: the tenant switched through a span that carried none (an
    uninstrumented gateway, a contrib consumer). The untagged span lost the tenant
    (context-dropped), and the span that runs for B is a critical cross-tenant against
    the nearest tagged span above it, whatever the depth and across services."""
    tb = TraceBuilder()
    entry = request(tb)
    proxy = entry.child("proxy", kind=CLIENT)
    gateway = proxy.child("POST /run", kind=SERVER, service="gateway")
    hop = gateway.child("forward", service="gateway")
    switched = hop.child("SELECT orders", service="worker", tenant=TAG_B, boundary="db", scoped=True)
    a = analyze_built(tmp_path, tb)
    f = only(a, "cross-tenant")
    assert f.severity is Severity.CRITICAL
    assert (f.span_id, f.parent_span_id, f.parent_name) == (switched.span_id, entry.span_id, "POST /chat")
    assert f.message == ("'worker SELECT orders' runs for a different tenant than 'api POST /chat' in another "
                         "service above it, through spans that carried no tenant")
    assert only(a, "context-dropped").span_id == proxy.span_id
    edge = a.flow.edges[("gateway forward", "worker SELECT orders")]
    assert (edge.switched, edge.bound) == (1, 0)
    (path,) = [p for p in a.paths if p.span_ids[-1] == switched.span_id]
    assert path.break_rule == "context-dropped"  # the first break on the path
    assert path.worst is Severity.CRITICAL


@pytest.mark.parametrize("case", ["same tenant bound again", "no tagged span above", "tags of another key"])
def test_tenant_bound_below_untagged_spans_is_no_switch(tmp_path, case):
    """Near misses: a worker below an untagged consumer span binds the producer's tenant
    again; a job that never had a tenant binds one; tags made with different keys are
    never compared. The call is counted as the tenant bound there, not switched."""
    tb = TraceBuilder()
    top = tb.span("jobs process", kind=CONSUMER, service="worker") if case == "no tagged span above" else request(tb)
    step = top.child("step", service="worker")
    if case == "tags of another key":
        step.child("lookup", service="worker", tenant=TAG_B, boundary="db", scoped=True, key_id="0" * 16)
    else:
        step.child("lookup", service="worker", tenant=TAG_A if case == "same tenant bound again" else TAG_B,
                   boundary="db", scoped=True)
    a = analyze_built(tmp_path, tb)
    assert rules_of(a, "cross-tenant") == []
    edge = a.flow.edges[("worker step", "worker lookup")]
    assert (edge.switched, edge.bound) == (0, 1)


@pytest.mark.parametrize("case", ["authenticating call", "declared tenantless entry", "neither"])
def test_a_tenant_bound_below_authentication_or_a_tenantless_entry_is_no_switch(tmp_path, case):
    """Near misses of a switch through untagged spans: the identity service a request's
    authentication calls binds its caller's own service tenant (the call is marked
    flowmap.authenticating, the request's tag set once it is known), and a sign-in
    declared in tenantless_entries binds the user's tenant below it. The walk up stops at
    either; without the mark or the declaration it is a cross-tenant."""
    tb = TraceBuilder()
    call = request(tb).child("GET /introspect", kind=CLIENT,
                             attrs={"flowmap.authenticating": True} if case == "authenticating call" else {})
    entry = call.child("POST /signin", kind=SERVER, service="auth")
    below = entry.child("load account", service="auth", tenant=TAG_B, boundary="db", scoped=True)
    settings = AnalysisSettings(tenantless_entries=("auth POST /signin",)) if case == "declared tenantless entry" else None
    a = analyze_built(tmp_path, tb, settings=settings)
    cross = [f.span_id for f in rules_of(a, "cross-tenant")]
    assert cross == ([below.span_id] if case == "neither" else [])


def test_switches_below_one_long_untagged_chain_walk_each_span_once():
    """Hostile: every span of a long untagged chain under tenant A has a span for tenant
    B below it. Each is a cross-tenant against A, and the chain is walked once in all,
    not once from each (quadratic)."""
    from flowmap.graph import SpanGraph
    from flowmap.rules import evaluate

    depth = 2000
    tb = TraceBuilder()
    top = request(tb)
    node = top.child("step 0")
    chain = [node]
    for i in range(1, depth):
        node = node.child(f"step {i}")
        chain.append(node)
    switched = [c.child("lookup", tenant=TAG_B, boundary="db", scoped=True) for c in chain]
    graph = SpanGraph(tb.traces())
    graph.parent = counting = _CountingParents(graph.parent)
    verdict = evaluate(graph, AnalysisSettings())
    found = [f for f in verdict.findings if f.rule == "cross-tenant"]
    assert sorted(f.span_id for f in found) == sorted(s.span_id for s in switched)
    assert {f.parent_span_id for f in found} == {top.span_id}
    assert counting.calls <= 10 * len(graph.spans)


def _processed_as_the_messages_child(send_tagged, parented=True, worker_tenant=TAG_B):
    """Tenant A's request sends a message (from a tagged send, or an untagged one); a
    contrib ``process`` span with no tag is the send's child (OTel messaging: a single
    message's creation context MAY be the process span's parent) and links to it; the
    worker binds ``worker_tenant`` for the message's work below it. ``parented=False``:
    the process span is a root, linked only."""
    tb = TraceBuilder()
    entry = request(tb)
    send = entry.child("orders send", kind=PRODUCER, tenant=TAG_A if send_tagged else None, boundary="queue.publish")
    process = tb.span("orders process", kind=CONSUMER, service="worker", boundary="queue.consume",
                      parent=send if parented else None, links=[send])
    work = process.child("refund", service="worker", tenant=worker_tenant, boundary="tool")
    return tb, entry, send, process, work


@pytest.mark.parametrize("send_tagged", [True, False], ids=["tagged-send", "untagged-send"])
def test_a_consumer_both_child_of_and_linked_to_the_message_reports_its_switch_once(tmp_path, send_tagged):
    """The consumer's parent edge and its link join the same two spans: the tenant bound
    below it (B, for A's message) is one switch, one critical cross-tenant on the span
    that ran for B, against the tagged span above it (the send, or the request above an
    untagged send). The untagged span the tenant was lost at keeps its context-dropped (a
    distinct break: it ran with no tenant, and would still with A bound below it). The
    link was a second cross-tenant for the switch, on the consumer."""
    tb, entry, send, process, work = _processed_as_the_messages_child(send_tagged)
    a = analyze_built(tmp_path, tb)
    above, lost = (send, process) if send_tagged else (entry, send)
    found = [(f.rule, f.severity, f.span_id, f.parent_span_id) for f in a.findings]
    assert found == [
        ("cross-tenant", Severity.CRITICAL, work.span_id, above.span_id),
        ("context-dropped", Severity.HIGH, lost.span_id, lost.spec.parent_id),
    ]
    # the flow map counts what the findings say: the call into the work switched, the
    # call and the link into the consumer dropped (or untagged, below an untagged send)
    into_consumer = a.flow.edges[("api orders send", "worker orders process")]
    assert (into_consumer.switched, into_consumer.via_link) == (0, 1)
    assert (into_consumer.dropped, into_consumer.untagged) == ((2, 0) if send_tagged else (0, 2))
    assert a.flow.edges[("worker orders process", "worker refund")].switched == 1
    assert {op: n.findings for op, n in a.flow.nodes.items() if n.findings} == {
        "worker refund": {"cross-tenant": 1},
        ("worker orders process" if send_tagged else "api orders send"): {"context-dropped": 1},
    }


@pytest.mark.parametrize("send_tagged", [True, False], ids=["tagged-send", "untagged-send"])
def test_a_consumer_run_under_the_sending_request_reports_its_switch_once(tmp_path, send_tagged):
    """The same switch when the process span is the sending request's child (a worker
    in the request's process, its span parented on the request's context) rather than
    the send's: the parent edges see it through the untagged consumer, against the
    request, of the message's tenant. The link was a second cross-tenant for it."""
    tb = TraceBuilder()
    entry = request(tb)
    send = entry.child("orders send", kind=PRODUCER, tenant=TAG_A if send_tagged else None, boundary="queue.publish")
    process = tb.span("orders process", kind=CONSUMER, service="worker", boundary="queue.consume", parent=entry,
                      links=[send])
    work = process.child("refund", service="worker", tenant=TAG_B, boundary="tool")
    found = [(f.rule, f.span_id, f.parent_span_id) for f in analyze_built(tmp_path, tb).findings]
    assert [f for f in found if f[0] == "cross-tenant"] == [("cross-tenant", work.span_id, entry.span_id)]
    assert ("context-dropped", process.span_id, entry.span_id) in found


@pytest.mark.parametrize("send_tagged", [True, False], ids=["tagged-send", "untagged-send"])
def test_a_consumer_only_linked_to_the_message_keeps_its_switch_on_itself(tmp_path, send_tagged):
    """Near misses: the process span is a root, linked only: the link alone sees the work
    below it, one switch on the consumer (one message's work bound for B); and a consumer
    that is the send's child with A bound below it switched nothing."""
    tb, entry, send, process, _ = _processed_as_the_messages_child(send_tagged, parented=False)
    cross = [(f.span_id, f.parent_span_id) for f in rules_of(analyze_built(tmp_path, tb), "cross-tenant")]
    assert cross == [(process.span_id, (send if send_tagged else entry).span_id)]
    tb, *_ = _processed_as_the_messages_child(send_tagged, worker_tenant=TAG_A)
    assert rules_of(analyze_built(tmp_path, tb), "cross-tenant") == []


# -- context-dropped ------------------------------------------------------------------

def test_context_dropped_at_boundary_is_high(tmp_path):
    tb = TraceBuilder()
    lost = request(tb).child("vector search", boundary="vector", scoped=True)
    f = only(analyze_built(tmp_path, tb), "context-dropped")
    assert f.severity is Severity.HIGH and f.span_id == lost.span_id


def test_a_call_made_to_authenticate_the_request_is_no_dropped_context(tmp_path):
    """flowmap.authenticating: the span ran while its request was authenticated, before
    the tenant was known (TenantMiddleware's resolver); the same call unmarked, or a
    boundary after it that really lost the tenant, is still one."""
    tb = TraceBuilder()
    entry = request(tb)
    entry.child("POST", kind=CLIENT, attrs={"flowmap.authenticating": True, "http.request.method": "POST",
                                            "server.address": "auth.internal"})
    lost = entry.child("vector search", boundary="vector", scoped=True)
    found = rules_of(analyze_built(tmp_path, tb), "context-dropped")
    assert [(f.span_id, f.severity) for f in found] == [(lost.span_id, Severity.HIGH)]
    tb = TraceBuilder()
    unmarked = request(tb).child("POST", kind=CLIENT, attrs={"http.request.method": "POST",
                                                             "server.address": "auth.internal"})
    assert only(analyze_built(tmp_path, tb), "context-dropped").span_id == unmarked.span_id


def test_the_asgi_instrumentations_send_spans_after_the_binding_ended_are_no_drop(tmp_path):
    """Starlette's error middleware (outside a TenantMiddleware added with
    add_middleware) sends the 500 after the request's binding ended: the contrib ASGI
    instrumentation's ``http send`` spans of it are untagged, the framework's transport."""
    tb = TraceBuilder()
    entry = request(tb)
    entry.child("GET /boom http send", attrs={"asgi.event.type": "http.response.start", "http.status_code": 500})
    entry.child("GET /boom http send", attrs={"asgi.event.type": "http.response.body"})
    assert analyze_built(tmp_path, tb).findings == []
    # one with work below it is judged as any span: an outer middleware's send wrapper
    tb = TraceBuilder()
    wrapper = request(tb).child("GET /x http send", attrs={"asgi.event.type": "http.response.body"})
    wrapper.child("INSERT audit", boundary="db", scoped=True)
    f = only(analyze_built(tmp_path, tb), "context-dropped")
    assert f.span_id == wrapper.span_id and f.reached is not None


def test_context_dropped_elsewhere_is_medium(tmp_path):
    tb = TraceBuilder()
    request(tb).child("format answer")
    assert only(analyze_built(tmp_path, tb), "context-dropped").severity is Severity.MEDIUM


def test_context_dropped_at_a_wrapper_names_the_boundary_below_that_ran_without_the_tenant(tmp_path):
    """A framework's wrapper span (or a thread pool's task span) lost the tenant and the
    tool and database calls below it ran without one: the one finding, at the first edge,
    is medium (the contract: not at a boundary) and names the first boundary reached."""
    tb = TraceBuilder()
    wrapper = request(tb).child("FunctionAgent.run")
    wrapper.child("step").child("lookup", boundary="tool").child("SELECT docs", boundary="db")
    a = analyze_built(tmp_path, tb)
    f = only(a, "context-dropped")
    assert f.span_id == wrapper.span_id and f.severity is Severity.MEDIUM
    assert f.reached == "tool 'api lookup'" and f.message.endswith(", and tool 'api lookup' below it ran without one")
    assert f.to_json()["reached"] == "tool 'api lookup'"


@pytest.mark.parametrize("case", ["leaf", "tenant bound again below", "boundary refused below"])
def test_no_boundary_is_named_when_none_below_ran_without_a_tenant(tmp_path, case):
    tb = TraceBuilder()
    wrapper = request(tb).child("FunctionAgent.run")
    if case == "tenant bound again below":  # a worker that binds the tenant itself
        wrapper.child("bind", tenant=TAG_A).child("lookup", tenant=TAG_A, boundary="tool")
    elif case == "boundary refused below":  # fail mode: the guard refused it, it never ran
        wrapper.child("lookup", boundary="tool", status=2, attrs={"flowmap.unscoped": True})
    f = only(analyze_built(tmp_path, tb), "context-dropped")
    assert f.span_id == wrapper.span_id and f.severity is Severity.MEDIUM and f.reached is None


@pytest.mark.parametrize(("boundary", "rule"), [("db", "unscoped-query"), ("tool.catalog", "unfiltered-catalog")])
def test_a_refused_unscoped_boundary_is_reported_as_declared_not_as_ran(tmp_path, boundary, rule):
    """A boundary declared scoped=False that flowmap refused (nothing bound, fail mode)
    never ran: still HIGH (the next, bound call would run unscoped), but its message
    says it was declared so and refused, not that it ran or was shown."""
    tb = TraceBuilder()
    ran = request(tb).child("query", boundary=boundary, scoped=False, tenant=TAG_A)
    refused = tb.span("job", kind=SERVER).child("query", boundary=boundary, scoped=False, status=2,
                                                 attrs={"flowmap.unscoped": True})
    found = {f.span_id: f for f in rules_of(analyze_built(tmp_path, tb), rule)}
    assert found[ran.span_id].severity is found[refused.span_id].severity is Severity.HIGH
    assert "refused" not in found[ran.span_id].message
    assert "is declared without" in found[refused.span_id].message and "refused here: no tenant bound" in (
        found[refused.span_id].message)
    assert " ran " not in found[refused.span_id].message and "shown" not in found[refused.span_id].message


def test_context_dropped_reports_only_the_first_edge(tmp_path):
    tb = TraceBuilder()
    lost = request(tb).child("worker step")
    lost.child("nested step").child("deeper step")
    f = only(analyze_built(tmp_path, tb), "context-dropped")
    assert f.span_id == lost.span_id


def test_context_dropped_across_services_through_remote_parent(tmp_path):
    tb = TraceBuilder()
    call = request(tb).child("POST tools", kind=CLIENT, tenant=TAG_A, boundary="http.client",
                             baggage_sent=True, attrs={"server.address": "tools.svc"})
    remote = call.child("POST /run", kind=SERVER, service="tools", boundary="http.server")
    f = only(analyze_built(tmp_path, tb), "context-dropped")
    assert f.severity is Severity.HIGH and f.span_id == remote.span_id
    assert f.service == "tools" and "another service" in f.message


@pytest.mark.parametrize(
    ("caller", "callee", "boundary"),
    [
        # gRPC as another language's SDK writes it: a CLIENT span, the other service's SERVER span
        pytest.param(("agent.Tools/Run", CLIENT, {"rpc.system": "grpc", "server.address": "tools.svc"}),
                     ("agent.Tools/Run", SERVER, {"rpc.system.name": "grpc", "rpc.method": "agent.Tools/Run"}),
                     "http.server", id="grpc"),
        # MCP as the MCP Python SDK writes it: the server's span under the agent's (its remote
        # parent, from the request's _meta); tools/list is the server's tool catalog
        pytest.param(("invoke_agent support", INTERNAL, {"gen_ai.operation.name": "invoke_agent"}),
                     ("tools/list", SERVER, {"mcp.method.name": "tools/list", "jsonrpc.request.id": "2"}),
                     "tool.catalog", id="mcp-tools-list"),
    ],
)
def test_context_dropped_at_a_boundary_known_from_conventions_is_high(tmp_path, caller, callee, boundary):
    tb = TraceBuilder()
    name, kind, attrs = caller
    call = request(tb).child(name, kind=kind, tenant=TAG_A, attrs=attrs)
    name, kind, attrs = callee
    remote = call.child(name, kind=kind, service="tools", attrs=attrs)
    f = only(analyze_built(tmp_path, tb), "context-dropped")
    assert f.severity is Severity.HIGH and f.span_id == remote.span_id and f.boundary == boundary


def test_context_kept_through_grpc_is_no_finding(tmp_path):
    tb = TraceBuilder()
    call = request(tb).child("agent.Tools/Run", kind=CLIENT, tenant=TAG_A, attrs={"rpc.system": "grpc"})
    call.child("agent.Tools/Run", kind=SERVER, service="tools", tenant=TAG_A, attrs={"rpc.system": "grpc"})
    assert analyze_built(tmp_path, tb).findings == []


def test_context_dropped_through_link_within_trace(tmp_path):
    tb = TraceBuilder()
    pub = request(tb).child("publish", kind=PRODUCER, tenant=TAG_A, boundary="queue.publish")
    consumer = tb.span("consume", kind=CONSUMER, service="worker", boundary="queue.consume", links=[pub])
    f = only(analyze_built(tmp_path, tb), "context-dropped")
    assert f.span_id == consumer.span_id and f.severity is Severity.HIGH


def test_untagged_child_of_untagged_parent_is_not_dropped(tmp_path):
    tb = TraceBuilder()
    entry = tb.span("GET /health", kind=SERVER)
    entry.child("ping")
    assert rules_of(analyze_built(tmp_path, tb), "context-dropped") == []


def test_missing_parent_is_info_and_not_judged(tmp_path):
    tb = TraceBuilder()
    request(tb)
    orphaned = tb.span("late step", parent="00000000deadbeef", boundary="db", scoped=True)
    a = analyze_built(tmp_path, tb)
    f = only(a, "missing-parent")
    assert f.severity is Severity.INFO and f.span_id == orphaned.span_id
    assert f.parent_span_id == "00000000deadbeef"
    assert {x.rule for x in a.findings} == {"missing-parent"}


# -- orphan-root -----------------------------------------------------------------------

@pytest.mark.parametrize(
    "kind,boundary,severity",
    [
        (INTERNAL, "tool", Severity.HIGH),
        (INTERNAL, None, Severity.MEDIUM),
        (CLIENT, None, Severity.MEDIUM),
        (PRODUCER, "queue.publish", Severity.HIGH),
        (SERVER, "agent", Severity.HIGH),  # a boundary span that is not an entry boundary
    ],
)
def test_orphan_root_severity(tmp_path, kind, boundary, severity):
    tb = TraceBuilder()
    tb.span("pool task", kind=kind, boundary=boundary)
    f = only(analyze_built(tmp_path, tb), "orphan-root")
    assert f.severity is severity and f.parent_span_id is None


def test_a_producer_span_whose_operation_says_receive_is_a_publish_by_its_kind(tmp_path):
    """contrib's confluent-kafka instrumentation writes messaging.operation=receive on its
    PRODUCER send span: sent from a thread that lost the context, it is an orphan at a
    publish (high), not an entry that received a message (unscoped-entry, medium)."""
    tb = TraceBuilder(service="worker")
    tb.span("jobs send", kind=PRODUCER,
            attrs={"messaging.system": "kafka", "messaging.operation": "receive", "messaging.destination": "jobs"})
    a = analyze_built(tmp_path, tb)
    assert [(f.rule, f.severity, f.boundary) for f in a.findings] == [("orphan-root", Severity.HIGH, "queue.publish")]


def test_orphan_root_names_the_boundary_below_that_ran_without_a_tenant(tmp_path):
    builders = []
    for _ in range(2):  # where the task usually runs: its likely parent
        tb = TraceBuilder()
        request(tb).child("pool task", tenant=TAG_A).child("embed", tenant=TAG_A, boundary="llm")
        builders.append(tb)
    lost = TraceBuilder()
    root = lost.span("pool task")
    root.child("embed", boundary="llm")
    f = only(analyze_built(tmp_path, lost, *builders), "orphan-root")
    assert f.span_id == root.span_id and f.severity is Severity.MEDIUM and f.reached == "llm 'api embed'"
    assert f.message == (  # the likely parent learned at the end keeps the boundary reached
        "'api pool task' started as a root with no tenant: the context was lost before it started, "
        "and llm 'api embed' below it ran without one (it likely belonged under 'api POST /chat')"
    )


@pytest.mark.parametrize("kind,boundary", [(SERVER, None), (SERVER, "http.server"), (CONSUMER, "queue.consume")])
def test_entry_roots_are_not_orphans(tmp_path, kind, boundary):
    tb = TraceBuilder()
    tb.span("entry", kind=kind, boundary=boundary)
    assert rules_of(analyze_built(tmp_path, tb), "orphan-root") == []


@pytest.mark.parametrize(
    "kind, peer, orphan",
    [(INTERNAL, {}, False), (CLIENT, {}, False), (CLIENT, {"server.address": "agents.example.com"}, True),
     (CLIENT, {"url.full": "https://agents.example.com/v1/agents"}, True)],
)
def test_an_agent_built_at_start_up_is_no_orphan_but_a_remote_create_agent_call_is(tmp_path, kind, peer, orphan):
    """LangGraph's create_react_agent() emits an INTERNAL 'create_agent' root at start-up
    (no request, no tenant), AutoGen a CLIENT one naming no server; a CLIENT create_agent
    naming its server is a call to a remote agent service."""
    tb = TraceBuilder()
    tb.span("create_agent react_agent", kind=kind, attrs={"gen_ai.operation.name": "create_agent", **peer})
    assert bool(rules_of(analyze_built(tmp_path, tb), "orphan-root")) is orphan


@pytest.mark.parametrize(
    "name, attrs, orphan",
    [
        # node-redis writes redis-connect whenever the client connects (at start-up, on a
        # reconnect), whatever requireParentSpan says; pg and ioredis when configured to
        ("redis-connect", {"db.system": "redis", "db.connection_string": "redis://127.0.0.1:6379"}, False),
        ("connect", {"db.system": "redis", "db.statement": "connect"}, False),
        ("pg.connect", {"db.system": "postgresql", "db.name": "app"}, False),
        ("pg-pool.connect", {"db.system.name": "postgresql"}, False),
        # a command or a query run outside any request lost its context
        ("get", {"db.system": "redis", "db.statement": "get tenant:acme:session"}, True),
        ("pg.query:SELECT app", {"db.system": "postgresql", "db.statement": "SELECT 1"}, True),
        # a span named connect that runs a query is no connection set-up
        ("connect", {"db.system": "postgresql", "db.statement": "SELECT note FROM notes"}, True),
        ("reconnect_tenant", {"db.system": "redis", "db.statement": "SET ? ?"}, True),
    ],
)
def test_a_database_clients_connection_set_up_is_no_orphan(tmp_path, name, attrs, orphan):
    """A client connecting to its database or cache (no query, no key) does so for no
    tenant: node-redis' redis-connect root at start-up was a HIGH orphan-root in every
    Node.js app that uses it."""
    tb = TraceBuilder()
    tb.span(name, kind=CLIENT, attrs=attrs)
    assert bool(rules_of(analyze_built(tmp_path, tb), "orphan-root")) is orphan


@pytest.mark.parametrize(
    "name, attrs, orphan",
    [
        # contrib's redis instrumentation: every argument written as ?, the span named for
        # the command; a worker's poll of its stream or list, and its acknowledgement
        ("XREADGROUP", {"db.system": "redis", "db.statement": "XREADGROUP ? ? ? ? ? ? ? ? ? ?"}, False),
        ("BLMOVE", {"db.system": "redis", "db.statement": "BLMOVE ? ? ? ? ?"}, False),
        ("BRPOP", {"db.system": "redis", "db.statement": "BRPOP ? ?"}, False),
        ("XACK", {"db.system": "redis", "db.statement": "XACK ? ? ?"}, False),
        # flowmap's own instrumentation (the operation's name), node-redis' span name,
        # ioredis' command text with its options, valkey
        ("redis XREADGROUP", {"db.system.name": "redis", "db.operation.name": "XREADGROUP"}, False),
        ("redis-BLPOP", {"db.system": "redis"}, False),
        ("xread", {"db.system": "redis", "db.statement": "xread BLOCK 5000 STREAMS jobs $"}, False),
        ("BZPOPMIN", {"db.system.name": "valkey", "db.query.text": "BZPOPMIN ? ?"}, False),
        # a tenant's data read or written with no tenant is still an orphan: a read of a
        # stream that does not block, a publish, a key written, another system's command
        ("XREAD", {"db.system": "redis", "db.statement": "XREAD ? ? ? ?"}, True),
        ("XADD", {"db.system": "redis", "db.statement": "XADD ? ? ? ?"}, True),
        ("LREM", {"db.system": "redis", "db.statement": "LREM ? ? ?"}, True),
        ("SET", {"db.system": "redis", "db.statement": "SET ? ?"}, True),
        ("BRPOP", {"db.system": "memcached"}, True),
        ("redis XACK", {"db.system.name": "redis", "db.operation.name": "PIPELINE"}, True),
    ],
)
def test_a_queue_workers_poll_of_redis_is_no_orphan(tmp_path, name, attrs, orphan):
    """A worker waiting for its queue's next message (a blocking pop, a consumer group's
    read) or acknowledging one waits for every tenant at once: each idle poll of a Redis
    stream or list was a HIGH orphan-root, as many as the worker's loop ran."""
    tb = TraceBuilder()
    tb.span(name, kind=CLIENT, attrs=attrs)
    assert bool(rules_of(analyze_built(tmp_path, tb), "orphan-root")) is orphan


def test_a_poll_with_work_below_it_is_still_an_orphan(tmp_path):
    """A poll span under which the worker handled what it got, with no tenant: the
    work below lost the message's tenant, so the root is judged as before."""
    tb = TraceBuilder()
    poll = tb.span("BRPOP", kind=CLIENT, attrs={"db.system": "redis", "db.statement": "BRPOP ? ?"})
    poll.child("lookup_order", boundary="tool")
    assert rules_of(analyze_built(tmp_path, tb), "orphan-root")


@pytest.mark.parametrize(
    "kind, attrs, linked, orphan",
    [
        # a batch send (semconv 1.27: CLIENT once create spans exist; the older PRODUCER
        # publish) or settle, for no tenant, linking to the messages: no lost context
        (CLIENT, {"messaging.system": "kafka", "messaging.operation.type": "send"}, True, False),
        (PRODUCER, {"messaging.system": "rabbitmq", "messaging.operation": "publish"}, True, False),
        (CLIENT, {"messaging.system": "kafka", "messaging.operation.type": "settle"}, True, False),
        # a single message's send links to nothing: its context is the message's, lost
        (PRODUCER, {"messaging.system": "kafka", "messaging.operation.type": "send"}, False, True),
        # a PRODUCER span of no messaging convention still consumes what it links to
        (PRODUCER, {}, True, True),
    ],
)
def test_a_root_that_carries_or_settles_other_contexts_messages_is_no_orphan(tmp_path, kind, attrs, linked, orphan):
    producer = TraceBuilder()
    create = request(producer).child("create job", kind=PRODUCER, tenant=TAG_A, boundary="queue.publish",
                                     attrs={"messaging.system": "kafka", "messaging.operation.type": "create"})
    sender = TraceBuilder(service="sender")
    sender.span("send jobs", kind=kind, boundary="queue.publish", attrs=attrs, links=[create] if linked else [])
    found = sorted(f.rule for f in analyze_built(tmp_path, producer, sender).findings)
    assert found == (["context-dropped"] if orphan and linked else []) + (["orphan-root"] if orphan else [])


def test_tagged_internal_root_is_not_orphan(tmp_path):
    tb = TraceBuilder()
    tb.span("scheduled job", tenant=TAG_A, boundary="agent")
    assert analyze_built(tmp_path, tb).findings == []


def test_orphan_root_learns_likely_parent_from_other_traces(tmp_path):
    builders = []
    for _ in range(3):  # the operation attached under the agent most of the time
        tb = TraceBuilder()
        request(tb).child("agent run", tenant=TAG_A, boundary="agent").child(
            "embed chunk", tenant=TAG_A, boundary="llm")
        builders.append(tb)
    other = TraceBuilder()
    request(other).child("embed chunk", tenant=TAG_A, boundary="llm")  # once directly under the request
    lost = TraceBuilder()
    request(lost).child("agent run", tenant=TAG_A, boundary="agent")
    orphan = lost.span("embed chunk", boundary="llm")  # same trace, context lost in a pool
    a = analyze_built(tmp_path, lost, *builders, other)
    f = only(a, "orphan-root")
    assert f.span_id == orphan.span_id and f.severity is Severity.HIGH
    assert f.likely_parent == "api agent run"
    assert "'api agent run'" in f.message
    edge = a.flow.edges[("api agent run", "api embed chunk")]
    assert edge.orphaned == 1 and lost.trace_id in edge.example_traces


def test_an_orphan_never_likely_belonged_under_its_own_operation(tmp_path):
    # OpenInference's OpenAI Agents spans: the run's AGENT span and the CHAIN span under it
    # are both 'Agent workflow', so the name runs under itself as often as under the request
    builders = []
    for tenant in (TAG_A, None):  # a request's run, then a worker's run with no tenant
        tb = TraceBuilder()
        top = request(tb).child("Agent workflow", tenant=TAG_A, boundary="agent") if tenant else \
            tb.span("Agent workflow", boundary="agent")
        top.child("Agent workflow", tenant=tenant).child("orders_agent", tenant=tenant, boundary="agent")
        builders.append(tb)
    a = analyze_built(tmp_path, *builders)
    f = only(a, "orphan-root")
    assert f.span_name == "Agent workflow" and f.likely_parent == "api POST /chat"
    assert "(it likely belonged under 'api POST /chat')" in f.message
    assert not a.flow.edges[("api Agent workflow", "api Agent workflow")].orphaned
    # with no other parent seen, no guess at all
    a = analyze_built(tmp_path, builders[1])
    f = only(a, "orphan-root")
    assert f.likely_parent is None and "likely" not in f.message


# -- unscoped-entry -------------------------------------------------------------------

def test_unscoped_entry_reaching_a_boundary_is_high(tmp_path):
    tb = TraceBuilder()
    entry = tb.span("POST /chat", kind=SERVER, boundary="http.server")
    entry.child("handler").child("lookup", boundary="db", scoped=True)
    f = only(analyze_built(tmp_path, tb), "unscoped-entry")
    assert f.severity is Severity.HIGH and f.span_id == entry.span_id


def test_unscoped_entry_without_boundary_below_is_medium(tmp_path):
    tb = TraceBuilder()
    tb.span("GET /health", kind=SERVER, boundary="http.server").child("ping")  # itself a boundary
    assert only(analyze_built(tmp_path, tb), "unscoped-entry").severity is Severity.MEDIUM


@pytest.mark.parametrize("status", [401, "403"])
def test_entry_refused_by_authentication_is_not_unscoped(tmp_path, status):
    tb = TraceBuilder()
    tb.span("GET /chat", kind=SERVER, boundary="http.server", attrs={"http.response.status_code": status})
    assert analyze_built(tmp_path, tb).findings == []


def test_entry_refused_with_the_frameworks_own_spans_below_is_not_unscoped(tmp_path):
    """The contrib ASGI instrumentation records the 401 reply's ``http send`` spans, and
    Express its middleware's span, under the entry: the framework answering, no work
    for the request (nor is an authentication call marked as such)."""
    tb = TraceBuilder()
    entry = tb.span("GET /x", kind=SERVER, boundary="http.server", attrs={"http.response.status_code": 401})
    entry.child("GET /x http send", attrs={"asgi.event.type": "http.response.start", "http.status_code": 401})
    entry.child("GET /x http send", attrs={"asgi.event.type": "http.response.body"})
    entry.child("middleware - tenantMiddleware", attrs={"express.type": "middleware"})
    entry.child("POST", kind=CLIENT, attrs={"flowmap.authenticating": True, "http.request.method": "POST",
                                            "server.address": "auth.internal"})
    assert analyze_built(tmp_path, tb).findings == []


def test_refused_entry_that_still_ran_something_is_unscoped(tmp_path):
    tb = TraceBuilder()
    entry = tb.span("GET /chat", kind=SERVER, boundary="http.server", attrs={"http.status_code": 401})
    entry.child("lookup", boundary="db", scoped=True)  # work ran although the request was refused
    assert only(analyze_built(tmp_path, tb), "unscoped-entry").severity is Severity.HIGH


@pytest.mark.parametrize("attrs", [
    {"rpc.system": "grpc", "rpc.service": "shop.Orders", "rpc.method": "List", "rpc.grpc.status_code": 16},
    {"rpc.system": "grpc", "rpc.service": "shop.Orders", "rpc.method": "List", "rpc.grpc.status_code": 7},
    {"rpc.system.name": "grpc", "rpc.method": "shop.Orders/List", "rpc.response.status_code": "UNAUTHENTICATED"},
    {"rpc.system.name": "grpc", "rpc.method": "shop.Orders/List", "rpc.response.status_code": "PERMISSION_DENIED"},
])
def test_rpc_entry_refused_by_authentication_is_not_unscoped(tmp_path, attrs):
    """RPC server spans are judged as HTTP ones: a gRPC call refused UNAUTHENTICATED or
    PERMISSION_DENIED (the contrib instrumentation's numeric code, or the newer
    conventions' name) is a 401/403, authentication working."""
    tb = TraceBuilder(service="grpc-svc")
    tb.span("/shop.Orders/List", kind=SERVER, attrs=attrs, status=2)
    assert analyze_built(tmp_path, tb).findings == []


@pytest.mark.parametrize("code", [5, 13])  # NOT_FOUND, INTERNAL
def test_rpc_entry_failed_otherwise_or_refused_after_work_is_unscoped(tmp_path, code):
    tb = TraceBuilder(service="grpc-svc")
    tb.span("/shop.Orders/List", kind=SERVER, attrs={"rpc.system": "grpc", "rpc.grpc.status_code": code}, status=2)
    refused = tb.span("/shop.Orders/Get", kind=SERVER, attrs={"rpc.system": "grpc", "rpc.grpc.status_code": 16})
    refused.child("SELECT orders", kind=CLIENT, attrs={"db.system.name": "postgresql"})  # work ran all the same
    found = {(f.span_name, f.severity) for f in rules_of(analyze_built(tmp_path, tb), "unscoped-entry")}
    assert found == {("/shop.Orders/List", Severity.MEDIUM), ("/shop.Orders/Get", Severity.HIGH)}


def test_entry_answered_200_without_tenant_is_unscoped(tmp_path):
    tb = TraceBuilder()
    tb.span("GET /chat", kind=SERVER, boundary="http.server", attrs={"http.response.status_code": 200})
    assert only(analyze_built(tmp_path, tb), "unscoped-entry").severity is Severity.MEDIUM


def test_entry_called_by_an_untagged_caller_in_the_data_is_still_unscoped(tmp_path):
    """The browser's (or a job's) spans recorded too: the service that served the request
    without binding a tenant is found as if it were the root (the data's top is only an
    orphan root)."""
    tb = TraceBuilder(service="web")
    call = tb.span("documentLoad").child("HTTP GET", kind=CLIENT, attrs={"http.method": "GET"})
    entry = call.child("GET /docs", kind=SERVER, service="api", attrs={"http.request.method": "GET"})
    entry.child("SELECT docs", kind=CLIENT, service="api", attrs={"db.system.name": "postgresql"})
    f = only(analyze_built(tmp_path, tb), "unscoped-entry")
    assert (f.span_id, f.severity, f.service, f.parent_span_id) == (entry.span_id, Severity.HIGH, "api", call.span_id)


@pytest.mark.parametrize("case", ["entry above", "tenant dropped above", "bound below", "declared tenantless",
                                  "bound later by the caller"])
def test_entry_under_an_untagged_caller_is_not_reported_twice_or_when_covered(tmp_path, case):
    tb = TraceBuilder(service="gateway")
    if case == "entry above":  # the gateway's own entry never bound either: one finding, there
        top = tb.span("POST /chat", kind=SERVER, boundary="http.server")
    elif case == "tenant dropped above":  # the tenant was lost on the way: context-dropped says it
        top = request(tb).child("forward")
    else:
        top = tb.span("documentLoad")
    call = top.child("POST", kind=CLIENT, boundary="http.client")
    if case == "bound later by the caller":  # it asked an auth service, then bound the tenant
        top.child("authenticated", tenant=TAG_A).child("search", tenant=TAG_A, boundary="vector", scoped=True)
    entry = call.child("POST /chat", kind=SERVER, service="api", boundary="http.server")
    below = entry.child("authenticated", service="api", tenant=TAG_A if case == "bound below" else None)
    below.child("lookup", service="api", boundary="db", scoped=True, tenant=TAG_A if case == "bound below" else None)
    settings = AnalysisSettings(tenantless_entries=("api POST /chat",)) if case == "declared tenantless" else None
    a = analyze_built(tmp_path, tb, settings=settings)
    unscoped = [f.span_id for f in rules_of(a, "unscoped-entry")]
    assert entry.span_id not in unscoped, [f.to_json() for f in a.findings]
    if case == "entry above":
        assert unscoped == [top.span_id]
    if case == "tenant dropped above":
        assert [f.span_id for f in rules_of(a, "context-dropped")] == [top.span_id]


def test_entry_that_binds_a_tenant_below_is_not_unscoped(tmp_path):
    tb = TraceBuilder()
    entry = tb.span("POST /chat", kind=SERVER, boundary="http.server")  # before authentication
    entry.child("authenticated", tenant=TAG_A).child("search", tenant=TAG_A, boundary="vector", scoped=True)
    a = analyze_built(tmp_path, tb)
    assert a.findings == []
    assert a.flow.edges[("api POST /chat", "api authenticated")].bound == 1


# -- the runtime's record-mode marks ---------------------------------------------------
# A boundary in record mode runs without a bound tenant (flowmap.unscoped) or for another
# tenant than it was made for (a flowmap.tenant_switch event) instead of being refused.

UNBOUND = {"flowmap.unscoped": True}
BAGGAGE = {"flowmap.tenant.source": "baggage"}  # (the builder writes source "context")


@pytest.mark.parametrize("source", ["baggage", "context"])
def test_boundary_that_ran_unbound_is_untagged_whatever_tag_it_carries(tmp_path, source):
    """Its tag is no binding: the caller's baggage (a service that never binds), or the
    tenant bound when a generator started (resumed after its request ended). Judged as
    untagged: a dropped context at a boundary, counted as dropped in the flow map."""
    tb = TraceBuilder()
    attrs = {**UNBOUND, **(BAGGAGE if source == "baggage" else {})}
    ran = request(tb).child("execute_tool refund", tenant=TAG_A, boundary="tool", attrs=attrs)
    a = analyze_built(tmp_path, tb)
    f = only(a, "context-dropped")
    assert (f.span_id, f.severity) == (ran.span_id, Severity.HIGH)
    assert "ran without a bound tenant (record mode)" in f.message
    assert ("baggage" in f.message) is (source == "baggage")
    assert TAG_A not in f.message and len(a.findings) == 1
    assert a.flow.edges[("api POST /chat", "api execute_tool refund")].dropped == 1
    assert a.paths[0].break_rule == "context-dropped"


@pytest.mark.parametrize("case", ["refused (fail mode)", "mark false", "no mark"])
def test_a_tagged_boundary_that_did_not_run_unbound_keeps_its_tag(tmp_path, case):
    """Near misses: a boundary refused in fail mode (errored, its body never ran), or one
    not marked as having run unbound, is judged on its tag as ever."""
    tb = TraceBuilder()
    attrs, status = {"refused (fail mode)": (UNBOUND, 2), "mark false": ({"flowmap.unscoped": False}, 0),
                     "no mark": ({}, 0)}[case]
    request(tb).child("execute_tool refund", tenant=TAG_A, boundary="tool", attrs={**attrs, **BAGGAGE}, status=status)
    assert analyze_built(tmp_path, tb).findings == []


def test_root_boundary_that_ran_unbound_is_an_orphan_root_and_an_entry_an_unscoped_entry(tmp_path):
    builders = []
    for _ in range(2):  # where the operation usually runs: under the agent
        tb = TraceBuilder()
        request(tb).child("agent run", tenant=TAG_A, boundary="agent").child("embed chunk", tenant=TAG_A,
                                                                            boundary="llm")
        builders.append(tb)
    lost = TraceBuilder()
    root = lost.span("embed chunk", tenant=TAG_A, boundary="llm", attrs=UNBOUND)
    entry = TraceBuilder()
    served = entry.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server", attrs={**UNBOUND, **BAGGAGE})
    served.child("lookup", tenant=TAG_A, boundary="db", scoped=True, attrs={**UNBOUND, **BAGGAGE})
    a = analyze_built(tmp_path, lost, entry, *builders)
    orphan, unscoped = only(a, "orphan-root"), only(a, "unscoped-entry")
    assert (orphan.span_id, orphan.severity, orphan.likely_parent) == (root.span_id, Severity.HIGH, "api agent run")
    assert "ran as a root without a bound tenant (record mode)" in orphan.message
    assert "it likely belonged under 'api agent run'" in orphan.message
    assert (unscoped.span_id, unscoped.severity) == (served.span_id, Severity.HIGH)
    assert "record mode" in unscoped.message and "baggage" in unscoped.message
    assert {f.rule for f in a.findings} == {"orphan-root", "unscoped-entry"}


@pytest.mark.parametrize("started_in", ["A", "B"])
def test_a_tenant_switch_event_is_cross_tenant_on_that_span(tmp_path, started_in):
    """A boundary generator stepped in another tenant's request (record mode) carries a
    flowmap.tenant_switch event: its tag is of the request it started in (made in A,
    first stepped in B: B's; started in A, resumed in B: A's), its parent edge inherited."""
    tb = TraceBuilder()
    tag = TAG_A if started_in == "A" else TAG_B
    switched = request(tb, tenant=tag).child(
        "stream answer", tenant=tag, boundary="stream", events=[("flowmap.tenant_switch", {"flowmap.boundary": "stream"})]
    )
    a = analyze_built(tmp_path, tb)
    f = only(a, "cross-tenant")
    assert (f.span_id, f.severity) == (switched.span_id, Severity.CRITICAL)
    assert f.message == (
        "'api stream answer' ran for another tenant than the one it was created or started for: "
        "a boundary generator stepped in another tenant's request (record mode)"
    )
    assert len(a.findings) == 1 and a.paths[0].break_rule == "cross-tenant"


def test_other_events_are_no_tenant_switch(tmp_path):
    tb = TraceBuilder()
    request(tb).child("stream answer", tenant=TAG_A, boundary="stream",
                      events=[("flowmap.unscoped", {"flowmap.boundary": "stream"}), ("exception", {"x": 1}),
                              ("flowmap.tenant_switch.note", {})])
    assert analyze_built(tmp_path, tb).findings == []


# -- unscoped-query / unfiltered-catalog ----------------------------------------------

@pytest.mark.parametrize("boundary", ["memory", "vector", "cache", "db"])
def test_unscoped_query_is_high(tmp_path, boundary):
    tb = TraceBuilder()
    q = request(tb).child("query", tenant=TAG_A, boundary=boundary, scoped=False)
    f = only(analyze_built(tmp_path, tb), "unscoped-query")
    assert f.severity is Severity.HIGH and f.span_id == q.span_id and f.boundary == boundary


@pytest.mark.parametrize("scoped", [True, None])
def test_scoped_or_unknown_query_does_not_fire(tmp_path, scoped):
    tb = TraceBuilder()
    request(tb).child("query", tenant=TAG_A, boundary="vector", scoped=scoped)
    assert analyze_built(tmp_path, tb).findings == []


def test_unfiltered_catalog_is_high_and_not_an_unscoped_query(tmp_path):
    tb = TraceBuilder()
    request(tb).child("list tools", tenant=TAG_A, boundary="tool.catalog", scoped=False)
    a = analyze_built(tmp_path, tb)
    assert only(a, "unfiltered-catalog").severity is Severity.HIGH
    assert rules_of(a, "unscoped-query") == []


def test_filtered_catalog_does_not_fire(tmp_path):
    tb = TraceBuilder()
    request(tb).child("list tools", tenant=TAG_A, boundary="tool.catalog", scoped=True)
    assert analyze_built(tmp_path, tb).findings == []


# -- model-chosen-tenant --------------------------------------------------------------

@pytest.mark.parametrize(
    "attrs",
    [
        {"gen_ai.tool.call.arguments": json.dumps({"query": "invoices", "tenant_id": RAW})},
        {"input.value": json.dumps({"filters": {"orgId": RAW}})},  # OpenInference, nested, camelCase
        {"tool.arguments.customer_id": RAW},  # flattened form
        {"gen_ai.tool.call.arguments": json.dumps({"tenant_id": {"id": RAW, "name": "acme"}})},  # an object
        # Pydantic AI's "running tool" span before its instrumentation version 3
        {"gen_ai.operation.name": "execute_tool", "tool_arguments": json.dumps({"tenant_id": RAW})},
        # OpenLLMetry's tool span: the function's args and kwargs
        {"traceloop.span.kind": "tool",
         "traceloop.entity.input": json.dumps({"args": [], "kwargs": {"account_id": RAW}})},
        # Google ADK's execute_tool span
        {"gen_ai.operation.name": "execute_tool", "gcp.vertex.agent.tool_call_args": json.dumps({"org_id": RAW})},
        # the Vercel AI SDK's ai.toolCall span
        {"ai.operationId": "ai.toolCall", "ai.toolCall.args": json.dumps({"customerId": RAW})},
        {"ai.operationId": "ai.toolCall", "ai.toolCall.input": json.dumps({"customerId": RAW})},  # v5
        # arguments encoded twice (a framework's input wrapping the model's JSON text)
        {"gen_ai.tool.call.arguments": json.dumps({"input": json.dumps({"org_id": RAW})})},
    ],
)
def test_model_chosen_tenant_in_tool_arguments(tmp_path, attrs):
    tb = TraceBuilder()
    tool = request(tb).child("execute_tool search_invoices", tenant=TAG_A, boundary="tool", attrs=attrs)
    a = analyze_built(tmp_path, tb)
    f = only(a, "model-chosen-tenant")
    assert f.severity is Severity.HIGH and f.span_id == tool.span_id
    dumped = json.dumps([x.to_json() for x in a.findings]) + repr(a.sample_traces)
    assert RAW not in dumped


def test_model_chosen_tenant_on_a_tool_span_known_from_conventions_alone(tmp_path):
    # a TypeScript agent on the Vercel AI SDK: no flowmap attribute but the tenant tag
    tb = TraceBuilder(service="web")
    tool = request(tb).child("ai.toolCall", tenant=TAG_A, attrs={
        "ai.operationId": "ai.toolCall", "ai.toolCall.name": "lookupInvoices",
        "ai.toolCall.args": json.dumps({"workspaceId": RAW, "month": 3})})
    f = only(analyze_built(tmp_path, tb), "model-chosen-tenant")
    assert f.span_id == tool.span_id and f.boundary == "tool" and RAW not in f.message


def test_tool_arguments_without_tenant_key_do_not_fire(tmp_path):
    tb = TraceBuilder()
    entry = request(tb)
    entry.child("execute_tool search", tenant=TAG_A, boundary="tool",
                attrs={"gen_ai.tool.call.arguments": json.dumps({"query": "tenant_id policy"})})
    entry.child("running tool", tenant=TAG_A, boundary="tool",
                attrs={"tool_arguments": json.dumps({"query": "invoices"}),
                       "traceloop.entity.input": json.dumps({"args": ["tenant_id"], "kwargs": {"n": 3}})})
    # (the same names on a model span are the calls the model asked for: judged there)
    assert analyze_built(tmp_path, tb).findings == []


def test_model_chosen_tenant_in_tool_arguments_written_as_python_writes_a_dict(tmp_path):
    """OpenLIT's LangChain tool span records the arguments with str(dict): single quotes,
    not JSON; the tenant the model chose there was not found at the tool."""
    tb = TraceBuilder()
    tool = request(tb).child("execute_tool get_weather", tenant=TAG_A, attrs={
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.call.arguments": str({"city": "Paris", "tenant_id": RAW, "days": None})})
    a = analyze_built(tmp_path, tb)
    f = only(a, "model-chosen-tenant")
    assert f.span_id == tool.span_id and f.boundary == "tool" and "('tenant_id')" in f.message
    assert RAW not in json.dumps([x.to_json() for x in a.findings]) + repr(a.sample_traces)


def _tool_call_messages(arguments: dict) -> str:
    return json.dumps([{"role": "assistant", "parts": [
        {"type": "text", "content": "looking it up"},
        {"type": "tool_call", "id": "c1", "name": "lookup_account", "arguments": arguments},
    ]}])


def _model_chooses_and_calls(entry):
    """A model span whose output asks for lookup_account with a raw tenant id, and the
    tool span that runs it with those arguments; returns the tool span."""
    entry.child("chat gpt", tenant=TAG_A, boundary="llm",
                attrs={"gen_ai.output.messages": _tool_call_messages({"tenant_id": RAW})})
    return entry.child("execute_tool lookup_account", tenant=TAG_A, boundary="tool",
                       attrs={"gen_ai.tool.call.arguments": json.dumps({"tenant_id": RAW})})


@pytest.mark.parametrize(
    "attrs",
    [
        # OpenInference (LangChain): its tool span keeps only a bare value, the model span
        # the arguments by name
        {"openinference.span.kind": "LLM",
         "llm.output_messages.0.message.tool_calls.1.tool_call.function.arguments": json.dumps({"tenant_id": RAW})},
        # OTel GenAI output messages (Pydantic AI, ...), arguments as an object or as JSON text
        {"gen_ai.operation.name": "chat", "gen_ai.output.messages": _tool_call_messages({"org_id": RAW})},
        {"gen_ai.operation.name": "chat",
         "gen_ai.output.messages": _tool_call_messages(json.dumps({"filters": {"customer_id": RAW}}))},
        # OpenLLMetry
        {"llm.request.type": "chat", "gen_ai.completion.0.tool_calls.0.arguments": json.dumps({"account_id": RAW})},
        # the tenant given as an object: masked whole
        {"gen_ai.operation.name": "chat", "gen_ai.output.messages": _tool_call_messages({"tenant_id": {"id": RAW}})},
        # output messages as a list of JSON strings, one per message
        {"gen_ai.operation.name": "chat",
         "gen_ai.output.messages": json.dumps([json.dumps(m) for m in json.loads(_tool_call_messages({"org_id": RAW}))])},
        # the Vercel AI SDK's doGenerate span: args as JSON text (v4), input as an object (v5)
        {"ai.operationId": "ai.generateText.doGenerate", "ai.response.toolCalls": json.dumps([
            {"toolCallType": "function", "toolCallId": "c1", "toolName": "lookup", "args": json.dumps({"orgId": RAW})}])},
        {"ai.operationId": "ai.streamText.doStream", "ai.response.toolCalls": json.dumps([
            {"toolCallId": "c1", "toolName": "lookup", "input": {"tenantId": RAW}}])},
        # OpenLIT, messages or not: each call's arguments joined by ", " (gen_ai.tool.args;
        # LangChain's model span: gen_ai.tool.call.arguments)
        {"gen_ai.operation.name": "chat", "gen_ai.tool.args": json.dumps({"tenant_id": RAW})},
        {"gen_ai.operation.name": "chat",
         "gen_ai.tool.args": json.dumps({"city": "Paris", "days": None}) + ", " + json.dumps({"org_id": RAW})},
        {"gen_ai.operation.name": "chat", "gen_ai.tool.call.arguments": json.dumps({"tenant_id": RAW})},
    ],
)
def test_model_chosen_tenant_in_a_model_calls_tool_calls(tmp_path, attrs):
    tb = TraceBuilder()
    entry = request(tb)
    model = entry.child("chat gpt", tenant=TAG_A, boundary="llm", attrs=attrs)
    entry.child("lookup_account", tenant=TAG_A, boundary="tool", attrs={"input.value": RAW})
    a = analyze_built(tmp_path, tb)
    f = only(a, "model-chosen-tenant")
    assert f.span_id == model.span_id and f.severity is Severity.HIGH
    assert "chose the tenant for a tool call" in f.message
    assert RAW not in json.dumps([x.to_json() for x in a.findings]) + repr(a.sample_traces)


def test_a_models_tool_calls_without_tenant_arguments_do_not_fire(tmp_path):
    tb = TraceBuilder()
    entry = request(tb)
    entry.child("chat gpt", tenant=TAG_A, boundary="llm", attrs={
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
            {"type": "text", "content": json.dumps({"tenant_id": "the model wrote this as text"})},
            {"type": "tool_call", "name": "search", "arguments": {"query": "tenant_id policy"}},
        ]}]),
        # a tool call chosen in an earlier turn, sent back as history: not chosen here
        "gen_ai.input.messages": _tool_call_messages({"tenant_id": RAW}),
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": json.dumps({"n": 3}),
        "llm.output_messages.0.message.tool_calls.1.tool_call.function.arguments": json.dumps({"tenant_id": ""}),
        "ai.response.toolCalls": json.dumps([{"toolName": "search", "args": json.dumps({"q": "org_id"})}]),
        "ai.response.text": json.dumps({"tenant_id": "text, not a tool call"}),
    })
    assert rules_of(analyze_built(tmp_path, tb), "model-chosen-tenant") == []


def test_the_tool_span_is_named_once_when_it_shows_the_models_choice_too(tmp_path):
    tb = TraceBuilder()
    entry = request(tb)
    tool = _model_chooses_and_calls(entry)
    a = analyze_built(tmp_path, tb)
    assert only(a, "model-chosen-tenant").span_id == tool.span_id


def test_the_id_a_model_chose_is_reported_once_not_again_where_the_conversation_records_it(tmp_path):
    """The id a model chose is model-chosen-tenant, on the tool span; the messages and
    arguments that record it as JSON text are no tenant-in-telemetry besides, masked all
    the same. Another raw id next to them is, and so is one under an attribute's own
    name (a flattened argument: a tenant attribute, as the contract names them)."""
    tb = TraceBuilder()
    entry = request(tb)
    tool = _model_chooses_and_calls(entry)
    flat = entry.child("execute_tool lookup_flat", tenant=TAG_A, boundary="tool",
                       attrs={"tool.arguments.tenant_id": RAW})
    agent = entry.child("invoke_agent support", tenant=TAG_A, boundary="agent", attrs={
        "history": json.dumps([{"role": "tool", "content": {"tenant_id": RAW}}]),
        "body": json.dumps({"workspace_id": "globex-9"})})
    a = analyze_built(tmp_path, tb)
    assert sorted(f.span_id for f in a.findings if f.rule == "model-chosen-tenant") == sorted(
        [tool.span_id, flat.span_id])
    telemetry = {f.span_id: f for f in a.findings if f.rule == "tenant-in-telemetry"}
    assert sorted(telemetry) == sorted([agent.span_id, flat.span_id])
    f = telemetry[agent.span_id]
    assert "'body → workspace_id'" in f.message and "history" not in f.message
    shown = json.dumps([x.to_json() for x in a.findings]) + repr(a.sample_traces)
    assert RAW not in shown and "globex-9" not in shown


# -- tenant-in-telemetry --------------------------------------------------------------

@pytest.mark.parametrize(
    "attrs,events",
    [
        ({"tenant_id": RAW}, None),
        ({"app.org_id": RAW}, None),
        ({"enduser.tenant.id": RAW}, None),
        ({"customerId": RAW}, None),
        ({"account_id": 4242}, None),
        ({"baggage.user_plan": RAW}, None),
        ({"http.request.header.baggage": [f"flowmap.tenant={TAG_A},workspace_id={RAW}"]}, None),
        # request headers captured by the contrib ASGI instrumentation and the Java agent
        ({"http.request.header.x_tenant_id": [RAW]}, None),
        ({"http.request.header.x-org-id": [RAW]}, None),
        (None, [("cache miss", {"tenant": RAW})]),
    ],
)
def test_tenant_in_telemetry_hits(tmp_path, attrs, events):
    tb = TraceBuilder()
    s = request(tb).child("agent", tenant=TAG_A, boundary="agent", attrs=attrs, events=events)
    a = analyze_built(tmp_path, tb)
    f = only(a, "tenant-in-telemetry")
    assert f.severity is Severity.HIGH and f.span_id == s.span_id
    assert RAW not in json.dumps([x.to_json() for x in a.findings])
    assert RAW not in repr(a.sample_traces)
    assert "4242" not in repr(a.sample_traces)


def test_tenant_in_telemetry_in_a_link_attribute(tmp_path):
    # a span whose own attributes are plain is still looked at through its links' attributes
    producer_trace = TraceBuilder()
    pub = request(producer_trace).child("enqueue job", kind=PRODUCER, tenant=TAG_A, boundary="queue.publish")
    consumer_trace = TraceBuilder(service="worker")
    s = consumer_trace.span("process job", kind=CONSUMER, tenant=TAG_A, boundary="queue.consume",
                            links=[pub], link_attrs={"tenant_id": RAW})
    a = analyze_built(tmp_path, producer_trace, consumer_trace)
    f = only(a, "tenant-in-telemetry")
    assert f.span_id == s.span_id and "link attribute 'tenant_id'" in f.message
    # the same link with plain attributes: nothing
    consumer_trace = TraceBuilder(service="worker")
    consumer_trace.span("process job", kind=CONSUMER, tenant=TAG_A, boundary="queue.consume",
                        links=[pub], link_attrs={"messaging.batch.size": 1})
    assert analyze_built(tmp_path, producer_trace, consumer_trace).findings == []


def test_a_span_with_thousands_of_leaking_places_names_five_and_counts_the_rest(tmp_path):
    """10,000 events each with a ``tenant_id`` made one message of 400,000 characters
    (in the JSON, SARIF and the report); the redacted attributes are named the same way."""
    tb = TraceBuilder()
    events = [(f"retry {i}", {"tenant_id": RAW}) for i in range(2000)]
    redacted = {f"arg.{i}": "[flowmap:redacted]" for i in range(40)}
    request(tb).child("agent", tenant=TAG_A, attrs={"flowmap.redacted": 40, **redacted}, events=events)
    f = only(analyze_built(tmp_path, tb), "tenant-in-telemetry")
    assert len(f.message) < 1000
    assert "event 'retry 4' attribute 'tenant_id' and 1,995 more of" in f.message
    assert "event 'retry 5'" not in f.message
    assert "('arg.0', 'arg.1', 'arg.2', 'arg.3', 'arg.4' and 35 more)" in f.message


def test_resource_tenant_attribute_reported_once_per_trace_and_service(tmp_path):
    tb = TraceBuilder(resource={"tenant_id": RAW})
    request(tb).child("agent", tenant=TAG_A, boundary="agent")
    f = only(analyze_built(tmp_path, tb), "tenant-in-telemetry")
    assert "resource attribute 'tenant_id'" in f.message


def test_resources_are_judged_per_object_past_the_remembered_ones(tmp_path):
    """Which resources hold a raw id is remembered per resource object; more distinct
    resources than that memory holds are still each judged, clean and not."""
    builders = []
    for i in range(300):
        tb = TraceBuilder(service=f"svc-{i}", resource={"tenant_id": RAW} if i in (5, 280) else {})
        request(tb).child("agent", tenant=TAG_A, boundary="agent")
        builders.append(tb)
    a = analyze_built(tmp_path, *builders)
    hits = sorted(f.service for f in a.findings if f.rule == "tenant-in-telemetry")
    assert hits == ["svc-280", "svc-5"]
    assert RAW not in str([f.to_json() for f in a.findings])


@pytest.mark.parametrize(
    "attrs",
    [
        {"tenant_id": TAG_B},  # an opaque tag is fine
        {"cloud.account.id": "123456789012"},  # infrastructure, not a tenant of the platform
        {"flowmap.tenant.source": "context", "tenant.count": 3},
        {"tenant_id": "[flowmap:redacted]"},  # already scrubbed by the runtime
        {"http.request.header.baggage": [f"flowmap.tenant={TAG_A}"]},
        {"baggage.flowmap.tenant": TAG_A},
        {"http.request.header.x_tenant_id": [TAG_A]},  # a header that carries the tag
        {"http.request.header.x_request_id": ["r-1"], "x_trace_flags": "01"},
    ],
)
def test_tenant_in_telemetry_near_misses(tmp_path, attrs):
    tb = TraceBuilder()
    request(tb).child("agent", tenant=TAG_A, boundary="agent", attrs=attrs)
    assert analyze_built(tmp_path, tb).findings == []


# Maps as attribute values (OTLP kvlistValue; OpenTelemetry Python cannot write one, other
# SDKs and hostile files can): their keys are names too, judged as the flattened name.

def _analyze_as(tmp_path, how, *builders, settings=None):
    """The builders' traces analysed as JSON Lines, as one pretty-printed document, or in memory
    (hand-built model spans, whose attribute dicts hold the nested dicts and lists)."""
    from flowmap.analysis import analyze, analyze_traces

    if how == "lines":
        return analyze_built(tmp_path, *builders, settings=settings)
    if how == "document":
        path = tmp_path / "traces.json"
        path.write_text(json.dumps({"resourceSpans": [rs for b in builders for rs in b.resource_spans()]}, indent=2))
        return analyze([path], settings)
    return analyze_traces([b.traces() for b in builders], settings)


PATHS = ["lines", "document", "memory"]


@pytest.mark.parametrize("how", PATHS)
@pytest.mark.parametrize(
    "span,where",
    [
        pytest.param({"attrs": {"request": {"tenant_id": RAW}}}, "attribute 'request.tenant_id'", id="map"),
        pytest.param({"attrs": {"x": [{"n": 1}, {"TenantId": RAW}]}}, "attribute 'x[].TenantId'", id="array-of-maps"),
        pytest.param({"attrs": {"ctx": {"enduser": [[{"org-id": 4242}]]}}}, "attribute 'ctx.enduser[][].org-id'",
                     id="deeper"),
        # the nested form of enduser.tenant.id
        pytest.param({"attrs": {"enduser": {"tenant": {"id": RAW}}}}, "attribute 'enduser.tenant'", id="dotted"),
        pytest.param({"attrs": {"flowmap": {"tenant": RAW}}}, "attribute 'flowmap.tenant'", id="raw-tag"),
        pytest.param({"attrs": {"headers": {"baggage": f"flowmap.tenant={TAG_A},org_id={RAW}"}}},
                     "attribute 'baggage member org_id'", id="baggage-header"),
        pytest.param({"events": [("cache miss", {"key": {"org_id": RAW}})]},
                     "event 'cache miss' attribute 'key.org_id'", id="event"),
        pytest.param({"links": [("ab" * 16, "cd" * 8)], "link_attrs": {"msg": [{"workspace_id": RAW}]}},
                     "link attribute 'msg[].workspace_id'", id="link"),
        pytest.param({"resource": {"deployment": {"customer-id": RAW}}},
                     "resource attribute 'deployment.customer-id'", id="resource"),
    ],
)
def test_tenant_in_telemetry_inside_map_values(tmp_path, how, span, where):
    _one_raw_id_found_inside(tmp_path, how, span, where)


def _one_raw_id_found_inside(tmp_path, how, span, where):
    """One tenant-in-telemetry on the span built with ``span``, naming ``where``, its raw
    id (RAW, or the number 4242) masked in the findings and the sample traces."""
    tb = TraceBuilder()
    s = request(tb).child("agent", tenant=TAG_A, boundary="agent", **span)
    a = _analyze_as(tmp_path, how, tb)
    f = only(a, "tenant-in-telemetry")
    assert f.span_id == s.span_id and where in f.message, f.message
    assert RAW not in json.dumps([x.to_json() for x in a.findings])
    # (the values the sample traces show, not their ids: a counter's hex id may hold 4242)
    shown = json.dumps([[sp.attributes, sp.resource, [e.attributes for e in sp.events], [x.attributes for x in sp.links]]
                        for t in a.sample_traces.values() for sp in t.spans.values()], default=str).lower()
    assert RAW.lower() not in shown and "4242" not in shown


@pytest.mark.parametrize("how", PATHS)
def test_a_configured_tenant_attribute_inside_a_map_value(tmp_path, how):
    tb = TraceBuilder()
    request(tb).child("agent", tenant=TAG_A, attrs={"call": {"args": {"projectKey": RAW}}})
    assert _analyze_as(tmp_path, how, tb).findings == []
    settings = AnalysisSettings.with_extras(extra_tenant_attributes=["project_key"])
    f = only(_analyze_as(tmp_path, how, tb, settings=settings), "tenant-in-telemetry")
    assert "'call.args.projectKey'" in f.message


def _in(part, attrs):
    """Span keyword arguments putting ``attrs`` in the span's attributes, an event's or a link's."""
    if part == "events":
        return {"events": [("retry", attrs)]}
    if part == "links":
        return {"links": [("ab" * 16, "cd" * 8)], "link_attrs": attrs}
    return {"attrs": attrs}


@pytest.mark.parametrize("how", PATHS)
@pytest.mark.parametrize("part", ["attrs", "events", "links"])
def test_a_map_value_under_names_already_known_plain(tmp_path, how, part):
    """The rules clear a span whose names were all seen plain before without looking at its
    values: the same names, once with a map holding a tenant id, are looked into."""
    before = TraceBuilder()
    for _ in range(3):
        request(before).child("agent", tenant=TAG_A, **_in(part, {"request": "GET /x"}))
    after = TraceBuilder()
    s = request(after).child("agent", tenant=TAG_A, **_in(part, {"request": {"tenant_id": RAW}}))
    a = _analyze_as(tmp_path, how, before, after)
    assert only(a, "tenant-in-telemetry").span_id == s.span_id


@pytest.mark.parametrize("how", PATHS)
@pytest.mark.parametrize(
    "attrs",
    [
        {"request": {"note": RAW, "tenant_count": 3}},  # no key names a tenant
        {"request": {"tenant_id": TAG_B}, "x": [{"tenant": TAG_A}]},  # opaque tags are fine anywhere
        {"flowmap": {"tenant": TAG_A}},
        {"res": {"cloud": {"account": {"id": "123456789012"}}}, "k8s": {"cluster": {"uid": "u-1"}}},  # infrastructure
        {"items": [["a", "b"], [1, 2.5, True, None]], "empty": {}},
    ],
)
def test_tenant_in_telemetry_inside_map_values_near_misses(tmp_path, how, attrs):
    tb = TraceBuilder()
    request(tb).child("agent", tenant=TAG_A, boundary="agent", attrs=attrs)
    assert _analyze_as(tmp_path, how, tb).findings == []


# JSON text and URL queries as attribute values: a JSON object's keys and a query's parameter
# names are names too, judged like attribute names (a request body, a URL written whole).

_ESCAPED_KEY = '{"\\u0074enant_id": "%s"}' % RAW  # JSON allows a key written with escapes


@pytest.mark.parametrize("how", PATHS)
@pytest.mark.parametrize(
    "span,where",
    [
        pytest.param({"attrs": {"body": json.dumps({"workspace_id": RAW})}}, "attribute 'body → workspace_id'",
                     id="json"),
        pytest.param({"attrs": {"body": "\n  " + json.dumps({"user": {"Org-Id": RAW}}, indent=2)}},
                     "attribute 'body → user.Org-Id'", id="json-pretty"),
        pytest.param({"attrs": {"items": json.dumps([{"n": 1}, {"tenantId": RAW}])}},
                     "attribute 'items → [].tenantId'", id="json-array"),
        pytest.param({"attrs": {"org": json.dumps({"id": RAW})}}, "attribute 'org → id'", id="json-path"),
        pytest.param({"attrs": {"body": json.dumps({"tenant": {"type": "enterprise", "id": RAW}})}},
                     "attribute 'body → tenant.id'", id="json-typed-object"),
        pytest.param({"attrs": {"payload": json.dumps({"input": json.dumps({"customer_id": RAW})})}},
                     "attribute 'payload → input → customer_id'", id="json-twice"),
        pytest.param({"attrs": {"messages": ["hi", json.dumps({"account_id": RAW})]}},
                     "attribute 'messages[] → account_id'", id="json-in-array"),
        pytest.param({"attrs": {"body": _ESCAPED_KEY}}, "attribute 'body → tenant_id'", id="json-escaped-key"),
        pytest.param({"attrs": {"url.query": f"page=2&tenant_id={RAW}"}}, "attribute 'url.query → tenant_id'",
                     id="url.query"),
        pytest.param({"attrs": {"url.query": f"?tenant_id={RAW}"}}, "attribute 'url.query → tenant_id'",
                     id="leading-question-mark-url.query"),
        pytest.param({"attrs": {"url.full": f"https://api.example.com/v1/items?orgId={RAW}&page=2#top"}},
                     "attribute 'url.full → orgId'", id="url.full"),
        pytest.param({"attrs": {"http.target": f"/items?filter[org_id]={RAW}"}},
                     "attribute 'http.target → filter[org_id]'", id="http.target"),
        pytest.param({"attrs": {"http.url": f"http://api/items?Customer-ID={RAW.upper()}"}},
                     "attribute 'http.url → Customer-ID'", id="http.url"),
        pytest.param({"events": [("cache miss", {"details": json.dumps({"org_id": RAW})})]},
                     "event 'cache miss' attribute 'details → org_id'", id="event-json"),
        pytest.param({"events": [("redirect", {"url.full": f"https://x/?workspace_id={RAW}"})]},
                     "event 'redirect' attribute 'url.full → workspace_id'", id="event-url"),
        pytest.param({"links": [("ab" * 16, "cd" * 8)], "link_attrs": {"msg": json.dumps([{"workspace_id": RAW}])}},
                     "link attribute 'msg → [].workspace_id'", id="link-json"),
        pytest.param({"resource": {"deployment": json.dumps({"customer-id": RAW})}},
                     "resource attribute 'deployment → customer-id'", id="resource-json"),
    ],
)
def test_tenant_in_telemetry_inside_json_text_and_url_queries(tmp_path, how, span, where):
    _one_raw_id_found_inside(tmp_path, how, span, where)


@pytest.mark.parametrize("how", PATHS)
def test_a_configured_tenant_attribute_inside_json_text_and_a_query(tmp_path, how):
    tb = TraceBuilder()
    request(tb).child("agent", tenant=TAG_A, attrs={"call": json.dumps({"projectKey": RAW}),
                                                      "url.query": f"project-key={RAW}"})
    assert _analyze_as(tmp_path, how, tb).findings == []
    settings = AnalysisSettings.with_extras(extra_tenant_attributes=["project_key"])
    f = only(_analyze_as(tmp_path, how, tb, settings=settings), "tenant-in-telemetry")
    assert "'call → projectKey'" in f.message and "'url.query → project-key'" in f.message


def _holding(where, key, value):
    """Span keyword arguments putting ``value`` under ``key`` on the span, an event or a link."""
    if where == "event":
        return {"events": [("retry", {key: value})]}
    if where == "link":
        return {"links": [("ab" * 16, "cd" * 8)], "link_attrs": {key: value}}
    return {"attrs": {key: value}}


_IN_JSON, _IN_QUERY = json.dumps({"tenant_id": RAW}), f"https://api/items?tenant_id={RAW}"
_IN_SQL = f"SELECT * FROM docs WHERE tenant_id = '{RAW}'"


@pytest.mark.parametrize("how", PATHS)
@pytest.mark.parametrize("where,key,plain,leaky", [
    ("span", "body", "GET /x", _IN_JSON),
    ("span", "url.full", "https://api/items", _IN_QUERY),
    ("event", "details", "GET /x", _IN_JSON),
    ("event", "url.full", "https://api/items", _IN_QUERY),
    ("link", "details", "GET /x", _IN_JSON),
    ("span", "db.statement", "SELECT 1", _IN_SQL),
    ("event", "db.statement", "SELECT 1", _IN_SQL),
    ("link", "db.statement", "SELECT 1", _IN_SQL),
], ids=["json", "url", "event-json", "event-url", "link-json", "sql", "event-sql", "link-sql"])
def test_json_text_or_a_query_under_names_already_known_plain(tmp_path, how, where, key, plain, leaky):
    """The rules clear a span whose names were all seen plain before without looking at its
    values: the same names, once with JSON text or a query holding a tenant id, are looked into."""
    before = TraceBuilder()
    for _ in range(3):
        request(before).child("agent", tenant=TAG_A, **_holding(where, key, plain))
    after = TraceBuilder()
    s = request(after).child("agent", tenant=TAG_A, **_holding(where, key, leaky))
    a = _analyze_as(tmp_path, how, before, after)
    assert only(a, "tenant-in-telemetry").span_id == s.span_id


@pytest.mark.parametrize("how", PATHS)
@pytest.mark.parametrize(
    "attrs",
    [
        {"body": json.dumps({"note": RAW, "tenant_count": 3, "items": [1, 2]})},  # no key names a tenant
        {"body": json.dumps({"tenant_id": TAG_B}), "x": json.dumps([{"org": {"id": TAG_A}}])},  # opaque tags
        {"body": "{tenant_id: " + RAW + "}", "list": "[tenant_id=" + RAW + "]"},  # not JSON
        {"body": json.dumps({"cloud": {"account": {"id": "123456789012"}}})},  # infrastructure
        # a tool's parameters: a schema describing a tenant argument holds no tenant
        {"tool.parameters": json.dumps({"properties": {
            "tenant_id": {"type": "string", "title": "Tenant Id", "default": ""},
            "org_id": {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "the org"},
            "account_id": {"$ref": "#/$defs/Account"}}, "required": ["tenant_id"]})},
        # the path is no query (a path's segment after a tenant name is read as one:
        # tests/test_masking_urls.py)
        {"url.query": "page=2&sort=asc", "url.full": f"https://api/files/{RAW}?page=2"},
        {"url.query": f"tenant_id={TAG_B}", "http.target": "/x?tenant_id=&org_id"},  # a tag; no value
        {"note": f"tenant_id={RAW}", "url.path": f"/x?tenant_id={RAW}"},  # not an attribute holding a query
    ],
    ids=["json-no-tenant-key", "json-opaque-tags", "not-json", "json-infrastructure", "json-schema",
         "query-no-tenant-param", "query-tag-or-empty", "not-a-query-attribute"],
)
def test_tenant_in_telemetry_inside_json_text_and_url_queries_near_misses(tmp_path, how, attrs):
    tb = TraceBuilder()
    request(tb).child("agent", tenant=TAG_A, boundary="agent", attrs=attrs)
    assert _analyze_as(tmp_path, how, tb).findings == []


# -- tenant-in-telemetry: a raw id written as a literal in query or filter text --

@pytest.mark.parametrize("how", PATHS)
@pytest.mark.parametrize(
    "span,where",
    [
        pytest.param({"attrs": {"db.statement": f"SELECT * FROM docs WHERE tenant_id = '{RAW}' AND id = 3"}},
                     "attribute 'db.statement → tenant_id'", id="sql"),
        pytest.param({"attrs": {"db.query.text": f'select * from docs d where d."tenant_id"=\'{RAW}\' limit 5'}},
                     "attribute 'db.query.text → tenant_id'", id="sql-quoted-column"),
        pytest.param({"attrs": {"db.statement": f"UPDATE t SET n = 1 WHERE t.org_id='{RAW}'"}},
                     "attribute 'db.statement → org_id'", id="sql-qualified-column"),
        pytest.param({"attrs": {"db.statement": f"select id from docs where Tenant_Id in ('{TAG_B}', '{RAW}')"}},
                     "attribute 'db.statement → tenant_id'", id="sql-in-list"),
        pytest.param({"attrs": {"db.statement": f"SELECT 1 FROM t WHERE tenantId::text <> '{RAW}'"}},
                     "attribute 'db.statement → tenant_id'", id="sql-cast-camel-case"),
        pytest.param({"attrs": {"db.milvus.search.filter": f'tenant_id == "{RAW}"'}},
                     "attribute 'db.milvus.search.filter → tenant_id'", id="milvus-filter"),
        pytest.param({"attrs": {"db.filter": f'kind == "note" and workspace_id == "{RAW}"'}},
                     "attribute 'db.filter → workspace_id'", id="filter-expression"),
        pytest.param({"attrs": {"db.search.filter": f'status:"open" AND customer_id:"{RAW}"'}},
                     "attribute 'db.search.filter → customer_id'", id="filter-colon"),
        pytest.param({"attrs": {"db.statement": f"find {{'account_id': '{RAW}', 'n': 1}}"}},
                     "attribute 'db.statement → account_id'", id="command-with-python-dict"),
        pytest.param({"attrs": {"db.filter": f'{{tenant_id: "{RAW}"}}'}},
                     "attribute 'db.filter → tenant_id'", id="filter-object-not-json"),
        pytest.param({"events": [("query", {"db.statement": f"DELETE FROM t WHERE tenant = '{RAW}'"})]},
                     "event 'query' attribute 'db.statement → tenant'", id="event-sql"),
    ],
)
def test_tenant_in_telemetry_in_query_and_filter_text(tmp_path, how, span, where):
    """An app that builds its queries with literals has its instrumentation record the raw
    id as written: the literal compared with a tenant name is judged as its value."""
    _one_raw_id_found_inside(tmp_path, how, span, where)


@pytest.mark.parametrize("how", PATHS)
def test_a_configured_tenant_attribute_compared_in_query_text(tmp_path, how):
    tb = TraceBuilder()
    request(tb).child("lookup", tenant=TAG_A, attrs={"db.statement": f"SELECT 1 FROM p WHERE project_key = '{RAW}'"})
    assert _analyze_as(tmp_path, how, tb).findings == []
    settings = AnalysisSettings.with_extras(extra_tenant_attributes=["project_key"])
    f = only(_analyze_as(tmp_path, how, tb, settings=settings), "tenant-in-telemetry")
    assert "'db.statement → project_key'" in f.message


@pytest.mark.parametrize("how", PATHS)
@pytest.mark.parametrize(
    "attrs",
    [
        {"db.statement": "SELECT * FROM docs WHERE tenant_id = $1 AND id = ?",
         "db.query.text": "SELECT * FROM docs WHERE org_id = :tenant AND kind = 'note'"},
        {"db.statement": "SELECT * FROM docs WHERE tenant_id = %s AND title = 'q3'",
         "db.query.text": "SELECT * FROM docs WHERE tenant_id = '%s' OR org_id = %(org)s OR tenant = '?'"},
        {"db.statement": "SELECT * FROM docs d JOIN users u ON d.tenant_id = u.tenant_id WHERE u.name = 'ann'"},
        {"db.statement": f"SELECT * FROM docs WHERE tenant_id = '{TAG_B}' AND status = 'open'",
         "db.milvus.search.filter": f'tenant == "{TAG_B}"'},
        {"db.statement": f"SELECT * FROM docs WHERE status = '{RAW}'"},
        {"db.statement": f"SELECT * FROM docs /* scoped by tenant_id */ WHERE title = '{RAW}'",
         "db.query.text": f"SELECT 'tenant_id' AS label, '{RAW}' AS name FROM t"},
        {"db.statement": f"SELECT * FROM docs WHERE tenant_id IN (SELECT tenant_id FROM m WHERE email = '{RAW}')"},
        {"db.statement": f"SELECT * FROM docs WHERE tenant_id_hash = '{RAW}' OR x_org_id = '{RAW}'"},
        {"note": f"tenant_id = '{RAW}'", "exception.message": f'bad filter tenant_id == "{RAW}"'},
        {"db.statement": "SELECT * FROM docs WHERE tenant_id = '{{ tenant.id }}' OR org_id = '{{org_id}}'",
         "db.query.text": "SELECT * FROM docs WHERE tenant_id = '#{tenantId}' OR tenant = '<tenant_id>'"},
    ],
    ids=["parameters", "format-parameters", "column-to-column", "opaque-tags", "not-a-tenant-column",
         "comment-or-string", "subquery", "other-column", "not-a-query-attribute", "template-placeholders"],
)
def test_tenant_in_telemetry_in_query_and_filter_text_near_misses(tmp_path, how, attrs):
    tb = TraceBuilder()
    request(tb).child("lookup", tenant=TAG_A, boundary="db", scoped=True, attrs=attrs)
    assert _analyze_as(tmp_path, how, tb).findings == []


def test_placeholder_is_the_runtimes_redaction_value():
    from flowmap.masking import REDACTED_PLACEHOLDER
    from flowmap.redaction import REDACTED_VALUE

    assert REDACTED_PLACEHOLDER == REDACTED_VALUE


@pytest.mark.parametrize(
    "attrs,count,where",
    [
        ({"tenant_id": "[flowmap:redacted]", "flowmap.redacted": 1}, 1, "'tenant_id'"),
        # any instrumentation's span: the id was scrubbed out of a query text
        ({"db.query.text": "SELECT * FROM t WHERE org = '[flowmap:redacted]'", "flowmap.redacted": 2},
         2, "'db.query.text'"),
        ({"flowmap.redacted": "3"}, 3, None),  # a count exported as a string; the name was scrubbed
    ],
)
def test_span_marked_redacted_by_the_runtime_is_reported(tmp_path, attrs, count, where):
    tb = TraceBuilder()
    s = request(tb).child("agent", tenant=TAG_A, boundary="agent", attrs=attrs)
    f = only(analyze_built(tmp_path, tb), "tenant-in-telemetry")
    assert f.severity is Severity.HIGH and f.span_id == s.span_id
    assert "wrote a raw tenant id into telemetry" in f.message
    assert f"redacted {count} value" in f.message
    assert where is None or where in f.message


def test_redacted_and_raw_on_one_span_is_one_finding(tmp_path):
    tb = TraceBuilder()
    request(tb).child("agent", tenant=TAG_A, attrs={"flowmap.redacted": 1, "org_id": RAW})
    a = analyze_built(tmp_path, tb)
    f = only(a, "tenant-in-telemetry")
    assert "'org_id'" in f.message and "redacted 1 value" in f.message
    assert RAW not in f.message


@pytest.mark.parametrize("attrs", [{}, {"flowmap.redacted": 0}, {"flowmap.redacted": "0"},
                                   {"flowmap.redacted": False}, {"tenant_id": "[flowmap:redacted]"}])
def test_span_not_marked_redacted_is_not_reported(tmp_path, attrs):
    tb = TraceBuilder()
    request(tb).child("agent", tenant=TAG_A, boundary="agent", attrs=attrs)
    assert analyze_built(tmp_path, tb).findings == []


def test_raw_value_masked_everywhere_it_leaked(tmp_path):
    tb = TraceBuilder()
    entry = tb.span(f"GET /t/{RAW}/docs", kind=SERVER, tenant=TAG_A, boundary="http.server",
                    attrs={"url.full": f"https://app.example/t/{RAW}/docs", "app.tenant_id": RAW})
    entry.child("search", tenant=TAG_A, boundary="vector", scoped=False)
    a = analyze_built(tmp_path, tb)
    assert {f.rule for f in a.findings} == {"tenant-in-telemetry", "unscoped-query"}
    out = json.dumps([f.to_json() for f in a.findings]) + repr(a.sample_traces) + repr(a.flow) + repr(a.warnings)
    assert RAW not in out
    kept = a.sample_traces[tb.trace_id].spans[entry.span_id]
    assert kept.attributes["app.tenant_id"] == "[masked]"
    assert kept.attributes["url.full"] == "https://app.example/t/[masked]/docs"


def test_raw_value_masked_in_the_boundary_a_finding_says_was_reached(tmp_path):
    """A context-dropped on a wrapper names the first boundary below it that ran without
    the tenant (``reached``, a JSON key of its own): a raw id in that span's name is masked
    there as in the message."""
    tb = TraceBuilder()
    entry = tb.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server", attrs={"app.tenant_id": RAW})
    entry.child("FunctionAgent.run").child(f"lookup {RAW}", boundary="tool")
    f = only(analyze_built(tmp_path, tb), "context-dropped")
    assert f.reached == "tool 'api lookup [masked]'" and RAW not in json.dumps(f.to_json())


# -- baggage-to-external ---------------------------------------------------------------

@pytest.mark.parametrize(
    "attrs",
    [
        {"server.address": "api.openai.com"},
        {"url.full": "https://hooks.partner.example/notify"},
        {},  # destination not recorded: not proven allowed
    ],
)
def test_baggage_to_external_is_medium(tmp_path, attrs):
    tb = TraceBuilder()
    call = request(tb).child("POST", kind=CLIENT, tenant=TAG_A, boundary="http.client",
                             baggage_sent=True, attrs=attrs)
    f = only(analyze_built(tmp_path, tb), "baggage-to-external")
    assert f.severity is Severity.MEDIUM and f.span_id == call.span_id


@pytest.mark.parametrize(
    "attrs,sent",
    [
        ({"server.address": "vector.rag.svc.cluster.local"}, True),
        ({"server.address": "10.0.3.7"}, True),
        ({"url.full": "http://127.0.0.1:8080/x"}, True),
        ({"server.address": "api.openai.com"}, False),
    ],
)
def test_baggage_to_allowed_or_not_sent_does_not_fire(tmp_path, attrs, sent):
    tb = TraceBuilder()
    request(tb).child("POST", kind=CLIENT, tenant=TAG_A, boundary="http.client", baggage_sent=sent, attrs=attrs)
    assert analyze_built(tmp_path, tb).findings == []


def test_flags_on_spans_of_a_known_plain_shape_are_still_judged(tmp_path):
    """Once a span's attribute names are known plain but for flowmap.baggage.sent and
    flowmap.redacted, later spans with the same names skip the telemetry scan and are
    judged on those flags alone; a raw id under a new name still gets the full scan."""
    attrs = {"server.address": "hooks.partner.example", "http.request.method": "POST"}
    traces = []
    for redacted in (0, 0, 2):
        tb = TraceBuilder()
        request(tb).child("POST", kind=CLIENT, tenant=TAG_A, boundary="http.client", baggage_sent=True,
                          attrs={**attrs, "flowmap.redacted": redacted})
        traces.append(tb)
    leaky = TraceBuilder()
    request(leaky).child("POST", kind=CLIENT, tenant=TAG_A, boundary="http.client", baggage_sent=True,
                         attrs={**attrs, "flowmap.redacted": 0, "org_id": RAW})
    a = analyze_built(tmp_path, *traces, leaky)
    by_trace = {}
    for f in a.findings:
        by_trace.setdefault(f.trace_id, set()).add(f.rule)
    assert [by_trace[tb.trace_id] for tb in traces] == [{"baggage-to-external"}] * 2 + [
        {"baggage-to-external", "tenant-in-telemetry"}]
    assert by_trace[leaky.trace_id] == {"baggage-to-external", "tenant-in-telemetry"}
    assert RAW not in json.dumps([f.to_json() for f in a.findings])


def test_baggage_to_configured_host_does_not_fire(tmp_path):
    tb = TraceBuilder()
    request(tb).child("POST", kind=CLIENT, tenant=TAG_A, boundary="http.client", baggage_sent=True,
                      attrs={"server.address": "partner.example.com"})
    settings = AnalysisSettings(allowed_hosts=AllowedHosts(("partner.example.com",)))
    assert analyze_built(tmp_path, tb, settings=settings).findings == []


def test_extra_tenant_attribute_names_from_settings(tmp_path):
    tb = TraceBuilder()
    request(tb).child("agent", tenant=TAG_A, attrs={"app.project_key": RAW})
    assert analyze_built(tmp_path, tb).findings == []
    settings = AnalysisSettings.with_extras(extra_tenant_attributes=["projectKey"])
    assert only(analyze_built(tmp_path, tb, settings=settings), "tenant-in-telemetry")


def test_entry_called_from_outside_the_data_is_an_entry_not_a_missing_parent(tmp_path):
    tb = TraceBuilder()
    # a gateway sent traceparent but exports nowhere we can read
    entry = tb.span("POST /chat", kind=SERVER, boundary="http.server", parent="00000000000ca11e")
    entry.child("search", boundary="vector", scoped=True)
    a = analyze_built(tmp_path, tb)
    f = only(a, "unscoped-entry")
    assert f.severity is Severity.HIGH and f.span_id == entry.span_id
    assert rules_of(a, "missing-parent") == []
    tagged = TraceBuilder()
    tagged.span("POST /chat", kind=SERVER, boundary="http.server", parent="00000000000ca11e", tenant=TAG_A)
    assert analyze_built(tmp_path, tagged).findings == []


@pytest.mark.parametrize("kind,boundary", [(SERVER, "tool"), (CONSUMER, "stream"), (SERVER, "agent")])
def test_receiving_boundary_called_from_outside_the_data_is_judged_as_a_root(tmp_path, kind, boundary):
    """An MCP server's execute_tool span (SERVER kind) whose caller exports nowhere we read:
    the service received the call without a tenant, which is a lost context, not a gap."""
    tb = TraceBuilder(service="mcp-server")
    call = tb.span("tools/call lookup", kind=kind, boundary=boundary, parent="00000000000ca11e")
    call.child("SELECT accounts", kind=CLIENT, boundary="db", scoped=True)
    a = analyze_built(tmp_path, tb)
    f = only(a, "orphan-root")
    assert f.span_id == call.span_id and f.severity is Severity.HIGH
    assert rules_of(a, "missing-parent") == []
    tagged = TraceBuilder(service="mcp-server")
    tagged.span("tools/call lookup", kind=kind, boundary=boundary, parent="00000000000ca11e", tenant=TAG_A)
    assert analyze_built(tmp_path, tagged).findings == []
    # near miss: the same span as INTERNAL kind is a child whose parent is missing
    internal = TraceBuilder(service="mcp-server")
    internal.span("tools/call lookup", kind=INTERNAL, boundary=boundary, parent="00000000000ca11e")
    assert [f.rule for f in analyze_built(tmp_path, internal).findings] == ["missing-parent"]


@pytest.mark.parametrize("value", [RAW, [RAW, TAG_A], 31337, {"id": RAW}])
def test_non_opaque_flowmap_tenant_values_of_any_type_are_flagged_and_masked(tmp_path, value):
    tb = TraceBuilder()
    request(tb).child("agent", attrs={"flowmap.tenant": value})
    a = analyze_built(tmp_path, tb)
    flagged = rules_of(a, "tenant-in-telemetry")
    assert len(flagged) == 1
    assert RAW not in json.dumps([f.to_json() for f in a.findings]) + repr(a.sample_traces)


@pytest.mark.parametrize("given", [False, True])
def test_a_tenant_parameter_in_the_tools_schema_is_judged_by_the_arguments_given(tmp_path, given):
    """OpenInference writes the tool's JSON schema (tool.parameters) on every call: a
    tenant parameter the model left unfilled is no tenant the model chose; filled, it is.
    The schema's descriptions are not masked as values either way."""
    tb = TraceBuilder()
    arguments = {"city": "Paris", **({"tenant_id": RAW} if given else {})}
    tool = request(tb).child("get_weather", tenant=TAG_A, boundary="tool", attrs={
        "tool.parameters": json.dumps({"properties": {"city": {"type": "string"},
                                                      "tenant_id": {"default": "", "title": "Tenant Id"}}}),
        "input.value": json.dumps(arguments),
        "tool.description": "takes a string"})
    a = analyze_built(tmp_path, tb)
    assert [f.span_id for f in rules_of(a, "model-chosen-tenant")] == ([tool.span_id] if given else [])
    assert a.sample_traces[tb.trace_id].spans[tool.span_id].attributes["tool.description"] == "takes a string"


@pytest.mark.parametrize(("content", "chosen"), [({"city": "Paris", "tenant_id": RAW}, True), ({"city": "Paris"}, False)])
def test_model_chosen_tenant_in_a_tool_message_event_strands_writes(tmp_path, content, chosen):
    """Strands Agents' execute_tool span (GenAI conventions before tool.call.arguments):
    the tool's input is the content of its gen_ai.tool.message event."""
    tb = TraceBuilder()
    tool = request(tb).child("execute_tool get_weather", tenant=TAG_A, attrs={
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather"},
        events=[("gen_ai.tool.message", {"role": "tool", "content": json.dumps(content), "id": "call_1"}),
                ("gen_ai.choice", {"message": json.dumps([{"text": "sunny"}]), "id": "call_1"})])
    a = analyze_built(tmp_path, tb)
    assert [f.span_id for f in rules_of(a, "model-chosen-tenant")] == ([tool.span_id] if chosen else [])
    assert RAW not in json.dumps([x.to_json() for x in a.findings]) + repr(a.sample_traces)


# -- entries that run for no tenant by design ---------------------------------------------

def _public_entries() -> tuple[list[TraceBuilder], list]:
    """Three requests, each its own trace: a health check, a sign-in that reads the user
    table before any tenant is known, and a chat request that never bound its tenant."""
    health, login, chat = TraceBuilder(), TraceBuilder(), TraceBuilder()
    h = health.span("GET /healthz", kind=SERVER, service="api", boundary="http.server")
    s = login.span("POST /login", kind=SERVER, service="auth", boundary="http.server")
    s.child("SELECT users", service="auth", boundary="db")
    c = chat.span("POST /chat", kind=SERVER, service="api", boundary="http.server")
    c.child("SELECT docs", service="api", boundary="db")
    return [health, login, chat], [h, s, c]


def test_declared_tenantless_entries_are_not_unscoped_entries(tmp_path):
    builders, entries = _public_entries()
    flagged = analyze_built(tmp_path, *builders)
    assert sorted((f.rule, f.span_id) for f in flagged.findings) == sorted(("unscoped-entry", e.span_id) for e in entries)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.flowmap]\ntenantless_entries = ["GET /health*", "auth POST /login"]\n', encoding="utf-8"
    )
    settings = load_config(cwd=tmp_path).settings
    a = analyze_built(tmp_path, *builders, settings=settings)
    # the near miss: POST /chat is not declared, and "POST /login" of another service would not match
    assert [(f.rule, f.span_id) for f in a.findings] == [("unscoped-entry", entries[2].span_id)]
    # a scheduled job's root: no entry, so it would be an orphan-root
    job = TraceBuilder()
    root = job.span("nightly-reindex", service="worker")
    root.child("SELECT docs", service="worker", boundary="db")
    assert [(f.rule, f.span_id) for f in analyze_built(tmp_path, job).findings] == [("orphan-root", root.span_id)]
    declared = dataclasses.replace(settings, tenantless_entries=("worker nightly-*",))
    assert analyze_built(tmp_path, job, settings=declared).findings == []
    assert not AnalysisSettings().is_tenantless_entry("api", "POST /chat")  # no patterns: none
    assert AnalysisSettings(tenantless_entries=["api POST /chat"]).is_tenantless_entry("api", "POST /chat")
    assert not AnalysisSettings(tenantless_entries=["api POST /chat"]).is_tenantless_entry("web", "POST /chat")


@pytest.mark.parametrize("key", [
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments",
    "gen_ai.tool.call.arguments",
])
def test_tool_arguments_nested_past_the_parsers_limit_cost_only_themselves(tmp_path, key):
    """A hostile model output nested ~1000 deep made json.loads raise RecursionError, which
    stopped the whole analysis (exit 2); now that value is not looked into."""
    deep = '{"x":' + "[" * 1500 + json.dumps({"tenant_id": RAW}) + "]" * 1500 + "}"
    tb = TraceBuilder()
    entry = request(tb)
    entry.child("chat", tenant=TAG_A, boundary="llm" if key.startswith("llm") else "tool", attrs={key: deep})
    entry.child("cache.get", tenant=TAG_A, boundary="cache", scoped=False)
    a = analyze_built(tmp_path, tb)
    assert [f.rule for f in a.findings] == ["unscoped-query"]  # the rest is still judged


@pytest.mark.parametrize("via", ["attribute", "header"])
def test_a_raw_id_as_the_flowmap_tenant_baggage_member_is_flagged_and_masked(tmp_path, via):
    """Baggage may carry flowmap.tenant, but only as the opaque tag (the contract)."""
    attrs = ({"baggage.flowmap.tenant": RAW} if via == "attribute"
             else {"http.request.header.baggage": [f"flowmap.tenant={RAW},other=1"]})
    tb = TraceBuilder()
    request(tb).child("GET /docs", tenant=TAG_A, attrs=attrs)
    a = analyze_built(tmp_path, tb)
    f = only(a, "tenant-in-telemetry")
    assert "flowmap.tenant" in f.message
    assert RAW not in json.dumps([x.to_json() for x in a.findings]) + repr(a.sample_traces)
    ok = TraceBuilder()  # the opaque tag is what should travel: no finding
    request(ok).child("GET /docs", tenant=TAG_A, attrs={"baggage.flowmap.tenant": TAG_A,
                                                          "http.request.header.baggage": [f"flowmap.tenant={TAG_A}"]})
    assert analyze_built(tmp_path, ok).findings == []


# -- entries under a long untagged chain: each span above walked once ---------------------

class _CountingParents(dict):
    """A span graph's parent map that counts the lookups made through ``get``."""

    calls = 0

    def get(self, key, default=None):
        self.calls += 1
        return super().get(key, default)


def test_many_entries_under_one_long_untagged_chain_walk_each_span_once():
    """A hostile trace: an untagged chain of spans, each with a SERVER span below it.
    Every entry is still an unscoped-entry (nothing above it is tagged or an entry), but
    the chain above them is walked once in all, not once from each entry (that was
    quadratic: a 20,000-deep chain took ~40 s)."""
    from flowmap.graph import SpanGraph
    from flowmap.rules import evaluate

    depth = 2000
    tb = TraceBuilder(service="job")
    node = root = tb.span("batch")
    chain = [root]
    for i in range(depth - 1):
        node = node.child(f"step {i}")
        chain.append(node)
    entries = [c.child("POST /work", kind=SERVER, service="api") for c in chain]
    graph = SpanGraph(tb.traces())
    graph.parent = counting = _CountingParents(graph.parent)
    verdict = evaluate(graph, AnalysisSettings())
    assert sorted(f.span_id for f in verdict.findings if f.rule == "unscoped-entry") == sorted(
        e.span_id for e in entries)
    assert [f.span_id for f in verdict.findings if f.rule == "orphan-root"] == [root.span_id]
    assert counting.calls <= 10 * len(graph.spans)  # was about depth * depth / 2


def test_entries_under_untagged_callers_same_as_walking_up_from_each():
    """The memo gives every entry the answer a walk up from it alone gives: random
    forests of tagged, untagged and entry spans."""
    import random

    from flowmap.graph import SpanGraph, is_entry
    from flowmap.rules import evaluate

    rng = random.Random(11)
    for _ in range(200):
        tb = TraceBuilder()
        refs: list = []
        for i in range(rng.randint(2, 30)):
            kind = rng.choice([INTERNAL, INTERNAL, CLIENT, SERVER, CONSUMER])
            tenant = TAG_A if rng.random() < 0.15 else None
            boundary = rng.choice([None, None, None, "db", "tool"])
            if refs and rng.random() < 0.9:
                refs.append(rng.choice(refs).child(f"s{i}", kind=kind, tenant=tenant, boundary=boundary))
            else:
                refs.append(tb.span(f"s{i}", kind=kind, tenant=tenant, boundary=boundary))
        graph = SpanGraph(tb.traces())
        spans, parent = graph.spans, graph.parent
        verdict = evaluate(graph, AnalysisSettings())
        tagged = graph.below("tagged")

        def covered(pid, spans=spans, parent=parent, tagged=tagged):
            node = pid
            while node is not None:
                s = spans[node]
                if s.tenant is not None or tagged[node] or is_entry(s):
                    return True
                node = parent.get(node)
            return False

        got = {f.span_id for f in verdict.findings if f.rule == "unscoped-entry" and f.span_id in parent}
        for sid in got:
            assert not covered(parent[sid])
        for sid, span in spans.items():
            pid = parent.get(sid)
            if (sid not in got and pid is not None and span.tenant is None and is_entry(span)
                    and spans[pid].tenant is None and not tagged[sid]
                    and not any(f.rule == "context-dropped" for f in verdict.by_span.get(sid, ()))):
                # not reported: covered from above, or exempt (none declared here: refused only)
                assert covered(pid) or not any(
                    spans[x].boundary is not None for x in graph.subtree(sid)[1:])


# -- a batch consumer inside one trace: links to each record's producer ----------------

@pytest.mark.parametrize("bound", [(TAG_A, TAG_B), (TAG_A,)])
def test_batch_consumer_that_bound_each_producers_tenant_below_it_within_trace(tmp_path, bound):
    """Hit and near miss: a CONSUMER span (untagged: it serves both tenants) links to the
    producers of A's and B's messages and binds each record's tenant below it. A tenant
    bound below is no context lost; one no record bound (B, in the near miss) is."""
    tb = TraceBuilder()
    pubs = [request(tb, tenant=tag).child("publish", kind=PRODUCER, tenant=tag, boundary="queue.publish")
            for tag in (TAG_A, TAG_B)]
    batch = tb.span("process batch", kind=CONSUMER, service="worker", boundary="queue.consume", links=pubs)
    for tag in bound:
        batch.child("handle record", tenant=tag, boundary="tool")
    a = analyze_built(tmp_path, tb)
    if len(bound) == 2:
        assert a.findings == []
    else:
        f = only(a, "context-dropped")
        assert (f.span_id, f.parent_span_id, f.severity) == (batch.span_id, pubs[1].span_id, Severity.HIGH)


# -- what ran below spans that lost the tenant: walked a few steps a span -------------

class _CountingChildren(dict):
    """A span graph's child lists that count the lookups made through ``get``."""

    calls = 0

    def get(self, key, default=None):
        self.calls += 1
        return super().get(key, default)


def test_links_into_nested_untagged_spans_walk_a_few_steps_a_span():
    """A hostile trace: an untagged chain whose every span links to a tagged producer,
    the producer's tenant bound at its bottom. What ran below the spans is walked within
    a few steps a span in all (not once a span: quadratic); the top ones, walked first,
    are judged on what ran below them (as a batch consumer), the rest on their own tag."""
    from flowmap.graph import SpanGraph
    from flowmap.rules import evaluate

    depth = 2000
    tb = TraceBuilder(service="worker")
    pub = request(tb).child("publish", kind=PRODUCER, tenant=TAG_A, boundary="queue.publish")
    node = top = tb.span("process batch", kind=CONSUMER, boundary="queue.consume", links=[pub])
    for i in range(depth):
        node = node.child(f"step {i}", links=[pub])
    node.child("handle record", tenant=TAG_A, boundary="tool")
    graph = SpanGraph(tb.traces())
    graph._children = counting = _CountingChildren(graph.children)
    verdict = evaluate(graph, AnalysisSettings())
    assert counting.calls <= 10 * len(graph.spans)  # would be about depth * depth / 2
    assert verdict.link_states[(pub.span_id, top.span_id)] == "inherited"
