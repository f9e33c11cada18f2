"""The per-trace span graph: structure, hostile shapes (cycles, missing parents, depth), links."""

from flowmap.graph import SpanGraph

from otlp_builder import CONSUMER, PRODUCER, SERVER, TAG_A, TraceBuilder


def test_parents_children_roots_in_start_order():
    tb = TraceBuilder()
    entry = tb.span("entry", kind=SERVER)
    b = entry.child("b")
    c = entry.child("c")
    second_root = tb.span("second root")
    g = SpanGraph(tb.traces())
    assert g.roots == [entry.span_id, second_root.span_id]
    assert g.children[entry.span_id] == [b.span_id, c.span_id]
    assert g.parent_of(c.span_id).name == "entry"
    assert g.chain(c.span_id) == [entry.span_id, c.span_id]
    assert g.order[0] == entry.span_id and set(g.order) == set(tb.traces().spans)


def test_self_parent_and_longer_cycle_are_broken_with_one_warning():
    tb = TraceBuilder()
    tb.span("self", span_id="00000000000000a1", parent="00000000000000a1")
    tb.span("x", span_id="00000000000000b1", parent="00000000000000b3")
    tb.span("y", span_id="00000000000000b2", parent="00000000000000b1")
    tb.span("z", span_id="00000000000000b3", parent="00000000000000b2")
    warnings = []
    g = SpanGraph(tb.traces(), on_warning=warnings.append)
    assert len(warnings) == 1 and tb.trace_id in warnings[0] and "cycle" in warnings[0]
    # each loop is cut at its earliest span, which then tops its own subtree
    assert g.cycle_cut == ["00000000000000a1", "00000000000000b1"]
    assert g.chain("00000000000000b3") == ["00000000000000b1", "00000000000000b2", "00000000000000b3"]
    assert len(g.order) == 4


def test_very_deep_chain_needs_no_recursion():
    tb = TraceBuilder()
    node = tb.span("root", kind=SERVER, tenant=TAG_A)
    for i in range(30_000):
        node = node.child(f"step {i % 7}", tenant=TAG_A)
    g = SpanGraph(tb.traces())
    assert len(g.chain(node.span_id)) == 30_001
    assert g.depth()[node.span_id] == 30_000
    assert g.below("tagged")[g.roots[0]] is True


def test_missing_parent_starts_its_own_subtree():
    tb = TraceBuilder()
    tb.span("root", kind=SERVER)
    lost = tb.span("lost", parent="1234567812345678")
    g = SpanGraph(tb.traces())
    assert g.missing_parent == [lost.span_id]
    assert lost.span_id in g.tops() and lost.span_id not in g.parent


def test_links_inside_and_across_traces():
    other = TraceBuilder()
    far = other.span("publish elsewhere", kind=PRODUCER)
    tb = TraceBuilder()
    pub = tb.span("publish", kind=PRODUCER)
    con = tb.span("consume", kind=CONSUMER, links=[pub, far])
    g = SpanGraph(tb.traces())
    assert g.links == [(pub.span_id, con.span_id)]
    assert g.external_links == [(other.trace_id, far.span_id, con.span_id)]
    nx = g.to_networkx()
    assert nx.edges[pub.span_id, con.span_id]["kind"] == "link"


def test_operations_of_different_services_never_share_an_id():
    """"<service> <name>" is ambiguous: service "api" with span "tool refund" and service
    "api tool" with span "refund" were one operation, so a span named so by anyone was
    counted, drawn and blamed as another service's operation."""
    from flowmap.graph import OTHER_OPERATIONS, Operations

    ops = Operations(per_service=1)
    a, b = ops("api", "tool refund"), ops("api tool", "refund")
    assert a == "api tool refund" and b != a and ops("api tool", "refund") == b
    # a real span named like the overflow operation stays apart from it
    real = ops("svc", OTHER_OPERATIONS)
    assert ops("svc", "another name") != real


def test_an_operation_named_to_merge_with_another_service_stays_its_own_in_the_analysis():
    from flowmap.analysis import analyze_traces

    from otlp_builder import TAG_B

    traces = []
    for i in range(4):
        tb = TraceBuilder(service="gw")
        entry = tb.span("POST /refund", kind=SERVER, tenant=TAG_A, boundary="http.server")
        if i < 3:
            entry.child("tool refund", service="api", tenant=TAG_A, boundary="tool")  # clean
        else:
            entry.child("refund", service="api tool", tenant=TAG_B, boundary="tool")  # the leak
        traces.append(tb.traces())
    a = analyze_traces(traces)
    nodes = {(n.service, n.name): n for n in a.flow.nodes.values()}
    assert nodes[("api", "tool refund")].spans == 3 and not nodes[("api", "tool refund")].findings
    assert nodes[("api tool", "refund")].findings == {"cross-tenant": 1}
    from flowmap.report_data import build_report_data

    data = build_report_data(a)
    leak = next(n for n in data.nodes if n.service == "api tool")
    assert [f.node for f in data.findings] == [leak.id] and leak.worst == "critical"
    assert next(n for n in data.nodes if n.service == "api").worst is None
