"""The aggregated flow map: operations as nodes, calls as edges with tenant counts."""

import pytest

from flowmap.settings import AnalysisSettings

from otlp_builder import CONSUMER, PRODUCER, SERVER, TAG_A, TAG_B, TraceBuilder, analyze_built


def _request(tenant_child):
    tb = TraceBuilder()
    entry = tb.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server")
    entry.child("search", tenant=tenant_child, boundary="vector", scoped=True)
    return tb


def test_counts_across_traces(tmp_path):
    builders = [_request(TAG_A), _request(TAG_A), _request(None), _request(TAG_B)]
    a = analyze_built(tmp_path, *builders)
    entry = a.flow.nodes["api POST /chat"]
    assert (entry.spans, entry.untagged, entry.entry, entry.boundary) == (4, 0, True, "http.server")
    search = a.flow.nodes["api search"]
    assert (search.spans, search.untagged, search.entry, search.boundary) == (4, 1, False, "vector")
    assert search.findings == {"context-dropped": 1, "cross-tenant": 1}
    edge = a.flow.edges[("api POST /chat", "api search")]
    assert (edge.inherited, edge.dropped, edge.switched, edge.orphaned, edge.total) == (2, 1, 1, 0, 4)
    # broken calls are preferred as examples
    assert builders[2].trace_id in edge.example_traces and builders[3].trace_id in edge.example_traces


def test_examples_are_capped_and_prefer_broken_calls(tmp_path):
    builders = [_request(TAG_A) for _ in range(4)] + [_request(None)]
    a = analyze_built(tmp_path, *builders, settings=AnalysisSettings(max_examples_per_edge=2))
    edge = a.flow.edges[("api POST /chat", "api search")]
    assert len(edge.example_traces) == 2 and builders[-1].trace_id in edge.example_traces


def test_a_trace_with_a_healthy_and_a_broken_call_on_one_edge_is_kept_as_a_broken_example(tmp_path):
    """Chosen as an example for its healthy call, the trace whose second call on the same
    edge dropped the tenant must not be the one a later broken trace replaces."""
    healthy = _request(TAG_A)
    both = _request(TAG_A)
    entry = both.specs[0]
    both.span("search", parent=entry.span_id, boundary="vector", scoped=True)  # untagged: dropped
    broken = _request(None)
    a = analyze_built(tmp_path, healthy, both, broken, settings=AnalysisSettings(max_examples_per_edge=2))
    edge = a.flow.edges[("api POST /chat", "api search")]
    assert (edge.inherited, edge.dropped) == (2, 2)
    assert sorted(edge.example_traces) == sorted([both.trace_id, broken.trace_id])


def test_queue_link_edge_across_services_and_traces(tmp_path):
    producer = TraceBuilder()
    pub = producer.span("POST /ingest", kind=SERVER, tenant=TAG_A).child(
        "publish", kind=PRODUCER, tenant=TAG_A, boundary="queue.publish")
    consumer = TraceBuilder(service="worker")
    consumer.span("consume", kind=CONSUMER, tenant=TAG_A, boundary="queue.consume", links=[pub])
    a = analyze_built(tmp_path, producer, consumer)
    edge = a.flow.edges[("api publish", "worker consume")]
    assert (edge.inherited, edge.via_link) == (1, 1)
    assert a.flow.nodes["worker consume"].entry is True


@pytest.mark.parametrize("producer_first", [True, False])
def test_a_finding_both_a_parent_edge_and_a_link_give_is_counted_once_on_its_node(tmp_path, producer_first):
    """A span switched from its parent's tenant and from the message it links to is one
    cross-tenant finding: its node must count one, as the findings do."""
    producer = TraceBuilder()
    pub = producer.span("publish", kind=PRODUCER, tenant=TAG_A, boundary="queue.publish")
    worker = TraceBuilder(service="worker")
    entry = worker.span("GET /x", kind=SERVER, tenant=TAG_A, boundary="http.server")
    entry.child("handle", tenant=TAG_B, links=[pub])
    order = [producer, worker] if producer_first else [worker, producer]
    a = analyze_built(tmp_path, *order)
    assert [f.rule for f in a.findings] == ["cross-tenant"]
    assert a.flow.nodes["worker handle"].findings == {"cross-tenant": 1}


# -- caps on distinct operations (span names with ids in them, hostile input) ---------------


def _named(i: int, tenant_child=TAG_A, service_child: str | None = None):
    """An entry whose span name carries a request id (as a URL in a span name does)."""
    tb = TraceBuilder()
    entry = tb.span(f"GET /users/{i}", kind=SERVER, tenant=TAG_A, boundary="http.server")
    entry.child(f"SELECT user {i}", tenant=tenant_child, boundary="db", service=service_child)
    return tb


def test_span_names_past_the_cap_are_counted_under_one_operation(tmp_path):
    builders = [_named(i, tenant_child=None if i == 7 else TAG_A) for i in range(10)]
    a = analyze_built(tmp_path, *builders, settings=AnalysisSettings(max_operations_per_service=3))
    assert sorted(a.flow.nodes) == [
        "api (other operations)", "api GET /users/0", "api GET /users/1", "api SELECT user 0",
    ]
    other = a.flow.nodes["api (other operations)"]
    assert (other.service, other.name, other.spans, other.untagged) == ("api", "(other operations)", 17, 1)
    assert other.findings == {"context-dropped": 1}
    edge = a.flow.edges[("api (other operations)", "api (other operations)")]
    assert (edge.inherited, edge.dropped) == (7, 1) and builders[7].trace_id in edge.example_traces
    assert a.folded_spans == {"api": 17} and a.spans == 20
    (f,) = a.findings  # the finding keeps the span's own names
    assert (f.span_name, f.parent_name) == ("SELECT user 7", "GET /users/7")


def test_services_past_the_total_cap_share_one_operation(tmp_path):
    builders = [_named(0, service_child=f"svc-{i}") for i in range(6)]
    a = analyze_built(tmp_path, *builders,
                      settings=AnalysisSettings(max_operations_per_service=100, max_operations=4))
    assert "(other services) (other operations)" in a.flow.nodes
    assert len(a.flow.nodes) <= 4 + 1  # the cap, plus the one node of other services
    assert sum(a.folded_spans.values()) == a.spans - sum(
        n.spans for n in a.flow.nodes.values() if not n.name.endswith("(other operations)"))


def test_no_names_per_service_is_a_map_of_services_bounded_by_the_total(tmp_path):
    # max_operations_per_service = 0: one node per service, and the total still bounds them
    builders = [_named(i, service_child=f"svc-{i}") for i in range(12)]
    a = analyze_built(tmp_path, *builders,
                      settings=AnalysisSettings(max_operations_per_service=0, max_operations=5))
    assert sorted(a.flow.nodes) == [
        "(other services) (other operations)", "api (other operations)",
        *[f"svc-{i} (other operations)" for i in range(4)],
    ]
    assert sum(a.folded_spans.values()) == a.spans


def test_without_many_names_nothing_folds(tmp_path):
    a = analyze_built(tmp_path, *[_request(TAG_A) for _ in range(3)])
    assert a.folded_spans == {} and sorted(a.flow.nodes) == ["api POST /chat", "api search"]


def test_links_waiting_for_traces_to_come_are_capped(tmp_path, monkeypatch):
    # consumers read before their producers wait for them: past the cap, new ones are
    # counted, not kept
    import flowmap.analysis

    monkeypatch.setattr(flowmap.analysis, "_WAITING_MAX", 2)
    producers = [_publish("publish") for _ in range(3)]
    early = []
    for _, pub in producers:
        tb = TraceBuilder(service="worker")
        tb.span("consume", kind=CONSUMER, boundary="queue.consume", links=[pub])  # dropped the tenant
        early.append(tb)
    a = analyze_built(tmp_path, *early, *[tb for tb, _ in producers])
    assert sorted(f.rule for f in a.findings) == ["context-dropped", "context-dropped", "unscoped-entry"]
    assert a.warnings == ["span links not judged: 1 (more than 2 were waiting at once for traces not read "
                          "yet: links into traces missing from the input?)"]


def test_links_into_traces_missing_from_the_input_do_not_crowd_out_others(tmp_path, monkeypatch):
    # links into traces that are not in the input wait for nothing: once past where the
    # loader could still find them, they make room for links whose target is still to come
    import flowmap.analysis

    monkeypatch.setattr(flowmap.analysis, "_WAITING_MAX", 2)
    producer, pub = _publish("publish")
    early = TraceBuilder(service="worker")
    lost = early.span("consume", kind=CONSUMER, boundary="queue.consume", links=[pub])  # dropped the tenant
    missing = [TraceBuilder(service="worker") for _ in range(4)]
    for i, tb in enumerate(missing):
        tb.span("consume", kind=CONSUMER, tenant=TAG_A, boundary="queue.consume",
                links=[(f"{i + 1:032x}", f"{i + 1:016x}")])
    a = analyze_built(tmp_path, early, *missing, producer)
    assert [(f.rule, f.span_id) for f in a.findings] == [("context-dropped", lost.span_id)]
    assert a.warnings == []



def _publish(name: str, tenant=TAG_A):
    producer = TraceBuilder()
    pub = producer.span("POST /ingest", kind=SERVER, tenant=tenant, boundary="http.server").child(
        name, kind=PRODUCER, tenant=tenant, boundary="queue.publish")
    return producer, pub


def test_a_link_from_a_folded_producer_keeps_its_names_and_is_counted_once(tmp_path):
    # the producer's span name is past the cap: the flow map counts it under the overflow
    # node, but the finding names the real producer, and its span is counted folded once
    for consumer_first in (False, True):
        producer, pub = _publish("publish orders")
        consumer = TraceBuilder(service="worker")
        consumer.span("consume", kind=CONSUMER, boundary="queue.consume", links=[pub])  # dropped
        order = (consumer, producer) if consumer_first else (producer, consumer)
        a = analyze_built(tmp_path, *order, settings=AnalysisSettings(max_operations_per_service=1))
        (f,) = [f for f in a.findings if f.rule == "context-dropped"]
        assert (f.parent_name, f.span_name) == ("publish orders", "consume")
        assert "(other" not in f.message and "'api publish orders'" in f.message
        assert a.folded_spans == {"api": 1}
        assert "(other services) (other operations)" not in a.flow.nodes
        edge = a.flow.edges[("api (other operations)", "worker consume")]
        assert (edge.dropped, edge.via_link) == (1, 1)


def _job(entry: str, tenant=TAG_A):
    tb = TraceBuilder()
    tb.span(entry, kind=SERVER, tenant=tenant, boundary="http.server").child("run job", tenant=tenant)
    return tb


def _orphan_job():
    tb = TraceBuilder()
    tb.span("run job")  # a root that is no entry, with no tenant
    return tb


def test_an_orphan_counted_under_an_overflow_node_gets_no_likely_parent(tmp_path):
    # "run job" is folded: what the overflow node ran under is no guide for this name
    a = analyze_built(tmp_path, _job("GET /a"), _orphan_job(),
                      settings=AnalysisSettings(max_operations_per_service=1))
    (f,) = [f for f in a.findings if f.rule == "orphan-root"]
    assert f.likely_parent is None and f.message.startswith("'api run job' started as a root")
    # without the cap it is learned
    (f,) = [f for f in analyze_built(tmp_path, _job("GET /a"), _orphan_job()).findings if f.rule == "orphan-root"]
    assert f.likely_parent == "api GET /a"


def test_an_overflow_node_is_never_named_as_likely_parent(tmp_path):
    # "run job" ran mostly under entries whose names were folded
    builders = [_job("GET /a"), _job("GET /b"), _job("GET /c"), _orphan_job()]
    a = analyze_built(tmp_path, *builders, settings=AnalysisSettings(max_operations_per_service=2))
    assert a.flow.edges[("api (other operations)", "api run job")].total == 2
    (f,) = [f for f in a.findings if f.rule == "orphan-root"]
    assert f.likely_parent is None and "(other" not in f.message


def test_folded_spans_of_services_past_the_count_are_still_counted(tmp_path, monkeypatch):
    import flowmap.graph

    monkeypatch.setattr(flowmap.graph, "_FOLDED_SERVICES_MAX", 2)
    builders = [_named(0, service_child=f"svc-{i}") for i in range(6)]
    a = analyze_built(tmp_path, *builders,
                      settings=AnalysisSettings(max_operations_per_service=100, max_operations=2))
    assert len(a.folded_spans) == 3 and "(other services)" in a.folded_spans
    assert sum(a.folded_spans.values()) == a.spans - sum(
        n.spans for n in a.flow.nodes.values() if not n.name.endswith("(other operations)"))


def test_making_room_never_lets_go_of_links_into_the_trace_being_analysed(tmp_path, monkeypatch):
    # the trace being analysed is already done for the loader; when its own outgoing
    # links find the table full, the links waiting for it must still be judged
    import flowmap.analysis

    monkeypatch.setattr(flowmap.analysis, "_WAITING_MAX", 4)
    target, target_pub = _publish("publish")
    later = [_publish("publish") for _ in range(4)]
    target.span("relay", kind=CONSUMER, tenant=TAG_A, boundary="queue.consume", links=[later[3][1]])
    crossed = TraceBuilder(service="worker")
    lost = crossed.span("consume", kind=CONSUMER, tenant=TAG_B, boundary="queue.consume", links=[target_pub])
    fillers = []
    for _, pub in later[:3]:
        tb = TraceBuilder(service="worker")
        tb.span("consume", kind=CONSUMER, tenant=TAG_A, boundary="queue.consume", links=[pub])
        fillers.append(tb)
    a = analyze_built(tmp_path, crossed, *fillers, target, *[tb for tb, _ in later])
    assert [(f.rule, f.span_id) for f in a.findings] == [("cross-tenant", lost.span_id)]


def _crew(uuid, tenant=TAG_A, *, attached=True):
    """A request whose agent span is named after its Crew object's uuid (OpenInference's
    CrewAI kickoff span), with a tool call under it; ``tenant``: the kickoff's and the
    tool call's; ``attached=False``: the tool call lost its context and ran as a root."""
    tb = TraceBuilder()
    kickoff = tb.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server").child(
        f"Crew_{uuid}.kickoff", tenant=tenant, boundary="agent")
    if attached:
        kickoff.child("get_weather.run", tenant=tenant, boundary="tool")
    else:
        tb.span("get_weather.run", boundary="tool")
    return tb


_UUIDS = ["059e9574-61c9-42f4-9dcf-dddc4c7db0eb", "171FB26A-43E9-4429-A2A3-6B7302425C52",
          "752f8de5-efa5-4974-b3bd-7425231f7a54"]


def test_spans_named_after_an_instance_uuid_are_one_operation(tmp_path):
    """A crew built per request names each kickoff span after a new uuid: they are one
    operation of the flow map, not one node per request; the findings keep each span's
    own name."""
    a = analyze_built(tmp_path, *[_crew(u) for u in _UUIDS[:2]], _crew(_UUIDS[2], tenant=None))
    kickoffs = [n for n in a.flow.nodes.values() if "kickoff" in n.name]
    assert [(n.id, n.name, n.spans) for n in kickoffs] == [("api Crew_{uuid}.kickoff", "Crew_{uuid}.kickoff", 3)]
    edge = a.flow.edges[("api Crew_{uuid}.kickoff", "api get_weather.run")]
    assert (edge.inherited, edge.dropped, edge.total) == (2, 0, 3)
    assert a.flow.edges[("api POST /chat", "api Crew_{uuid}.kickoff")].dropped == 1
    names = {f.span_name for f in a.findings if "kickoff" in f.span_name}
    assert names == {f"Crew_{_UUIDS[2]}.kickoff"}


def test_an_orphan_learns_its_likely_parent_across_instances(tmp_path):
    # the tool call ran under a kickoff in every other trace, each of another crew
    a = analyze_built(tmp_path, _crew(_UUIDS[0]), _crew(_UUIDS[1]), _crew(_UUIDS[2], attached=False))
    (f,) = [f for f in a.findings if f.rule == "orphan-root"]
    assert f.likely_parent == "api Crew_{uuid}.kickoff"


def test_instance_uuids_fill_no_cap(tmp_path):
    """A service's cap on distinct span names counts operations: a kickoff per request
    must not push the service's other operations into "(other operations)"."""
    builders = [_crew(f"{n:08x}-61c9-42f4-9dcf-dddc4c7db0eb") for n in range(5)]
    a = analyze_built(tmp_path, *builders, settings=AnalysisSettings(max_operations_per_service=3))
    assert set(a.flow.nodes) == {"api POST /chat", "api Crew_{uuid}.kickoff", "api get_weather.run"}


@pytest.mark.parametrize("name, generic", [
    ("Crew_059e9574-61c9-42f4-9dcf-dddc4c7db0eb.kickoff", "Crew_{uuid}.kickoff"),
    ("a 059E9574-61C9-42F4-9DCF-DDDC4C7DB0EB b 752f8de5-efa5-4974-b3bd-7425231f7a54", "a {uuid} b {uuid}"),
    ("POST /chat", "POST /chat"),
    ("order-1234-5678", "order-1234-5678"),  # no UUID: as it is
    ("059e9574-61c9-42f4-9dcf-dddc4c7db0e", "059e9574-61c9-42f4-9dcf-dddc4c7db0e"),  # one digit short
])
def test_generic_name(name, generic):
    from flowmap.graph import generic_name

    assert generic_name(name) == generic
