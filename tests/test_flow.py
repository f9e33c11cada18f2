"""The aggregated flow map: operations as nodes, calls as edges with tenant counts."""

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
