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
