"""The facade: streaming over files, in-memory traces, samples, masking, ordering."""

import json

import pytest

from flowmap import analyze as public_analyze
from flowmap.analysis import analyze, analyze_traces
from flowmap.model import Severity
from flowmap.settings import AnalysisSettings

from otlp_builder import (
    CLIENT,
    CONSUMER,
    PRODUCER,
    SERVER,
    TAG_A,
    TAG_B,
    TraceBuilder,
    analyze_built,
    write_otlp,
)

RAW = "globex-industries"


def _mixed():
    healthy = TraceBuilder()
    healthy.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server").child(
        "tool weather", tenant=TAG_A, boundary="tool")
    leaky = TraceBuilder(service="gateway")
    e = leaky.span("POST /chat", kind=SERVER, tenant=TAG_B, boundary="http.server",
                   attrs={"org_id": RAW})
    e.child("tool search", tenant=TAG_A, boundary="tool")
    info = TraceBuilder()
    info.span("late", parent="0000000000000abc", tenant=TAG_A)
    return healthy, leaky, info


def test_summary_fields_and_sorted_findings(tmp_path):
    healthy, leaky, info = _mixed()
    a = analyze_built(tmp_path, healthy, leaky, info)
    assert (a.traces, a.spans) == (3, 5)
    assert a.services == {"api", "gateway"}
    assert a.tenant_tags == {TAG_A, TAG_B}
    assert [f.rule for f in a.findings] == ["cross-tenant", "tenant-in-telemetry", "missing-parent"]
    assert [f.severity for f in a.findings] == [Severity.CRITICAL, Severity.HIGH, Severity.INFO]
    assert all(f.origin for f in a.findings)


def test_public_api_and_file_list(tmp_path):
    healthy, leaky, info = _mixed()
    path = write_otlp(tmp_path / "t.jsonl", healthy, leaky, info)
    a = public_analyze([path])
    assert a.traces == 3 and str(path) in a.files


def test_trace_spread_over_lines_and_files(tmp_path):
    healthy, leaky, info = _mixed()
    first = write_otlp(tmp_path / "a.jsonl", leaky, per_span=True)
    second = write_otlp(tmp_path / "b.jsonl.gz", healthy, info, per_span=True)
    a = analyze([first, second])
    assert (a.traces, a.spans) == (3, 5)
    assert [f.rule for f in a.findings] == ["cross-tenant", "tenant-in-telemetry", "missing-parent"]


def test_in_memory_matches_files_and_leaves_inputs_untouched(tmp_path):
    healthy, leaky, info = _mixed()
    traces = [b.traces() for b in (healthy, leaky, info)]
    mem = analyze_traces(iter(traces))
    disk = analyze([write_otlp(tmp_path / "t.jsonl", healthy, leaky, info)])
    assert [(f.rule, f.span_id, f.message) for f in mem.findings] == [
        (f.rule, f.span_id, f.message) for f in disk.findings]
    assert mem.flow.edges.keys() == disk.flow.edges.keys()
    # the caller's spans still hold their value; the retained copy is masked
    span = next(iter(traces[1].spans.values()))
    assert span.attributes["org_id"] == RAW
    assert mem.sample_traces[leaky.trace_id].spans[span.span_id].attributes["org_id"] == "[masked]"


def test_sample_traces_capped_with_flagged_first(tmp_path):
    builders = []
    for i in range(6):
        tb = TraceBuilder()
        tb.span("POST /chat", kind=SERVER, tenant=TAG_A).child("step", tenant=TAG_A if i % 3 else None)
        builders.append(tb)
    flagged = {b.trace_id for i, b in enumerate(builders) if i % 3 == 0}
    a = analyze_built(tmp_path, *builders, settings=AnalysisSettings(max_sample_traces=3))
    assert len(a.sample_traces) == 3
    assert flagged <= set(a.sample_traces)
    assert list(a.sample_traces)[:2] == [b.trace_id for b in builders if b.trace_id in flagged]


def test_cycle_warning_names_the_trace_and_analysis_goes_on(tmp_path):
    bad = TraceBuilder()
    bad.span("a", span_id="00000000000000c1", parent="00000000000000c2", tenant=TAG_A)
    bad.span("b", span_id="00000000000000c2", parent="00000000000000c1")
    good = TraceBuilder()
    good.span("POST /x", kind=SERVER, tenant=TAG_A).child("y")
    seen = []
    a = analyze([write_otlp(tmp_path / "t.jsonl", bad, good)], on_warning=seen.append)
    assert a.traces == 2
    cycle = [w for w in a.warnings if "cycle" in w]
    assert len(cycle) == 1 and bad.trace_id in cycle[0]
    assert cycle[0].startswith(f"{tmp_path / 't.jsonl'}:1: trace ")  # file:line, as every input warning
    assert seen == a.warnings
    assert any(f.rule == "context-dropped" and f.trace_id == good.trace_id for f in a.findings)


def test_raw_values_never_in_any_output(tmp_path):
    healthy, leaky, info = _mixed()
    a = analyze_built(tmp_path, healthy, leaky, info)
    blob = json.dumps([f.to_json() for f in a.findings]) + repr(a.sample_traces) + repr(a.flow) + repr(a.paths)
    assert RAW not in blob


# -- span links across traces -----------------------------------------------------------

def _cache_fill_and_hit(boundary="cache"):
    """Tenant A's request fills an entry; tenant B's request is served it (a link)."""
    writer = TraceBuilder()
    fill = writer.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server").child(
        f"{boundary}.set summary", tenant=TAG_A, boundary=boundary, scoped=False)
    reader = TraceBuilder()
    hit = reader.span("POST /chat", kind=SERVER, tenant=TAG_B, boundary="http.server").child(
        f"{boundary}.get summary", tenant=TAG_B, boundary=boundary, scoped=False, links=[fill])
    return writer, reader, fill, hit


@pytest.mark.parametrize("boundary", ["cache", "memory", "db", "vector"])
@pytest.mark.parametrize("writer_first", [True, False])
def test_link_to_a_data_boundary_in_another_trace_is_judged_in_either_order(tmp_path, boundary, writer_first):
    writer, reader, fill, hit = _cache_fill_and_hit(boundary)
    order = (writer, reader) if writer_first else (reader, writer)
    a = analyze_built(tmp_path, *order)
    cross = [f for f in a.findings if f.rule == "cross-tenant"]
    assert len(cross) == 1, [f.to_json() for f in a.findings]
    f = cross[0]
    assert (f.trace_id, f.span_id, f.parent_span_id) == (reader.trace_id, hit.span_id, fill.span_id)
    assert f.parent_name == f"{boundary}.set summary" and f.severity is Severity.CRITICAL
    edge = a.flow.edges[(f"api {boundary}.set summary", f"api {boundary}.get summary")]
    assert (edge.switched, edge.via_link) == (1, 1)


@pytest.mark.parametrize("writer_first", [True, False])
def test_link_across_traces_to_the_same_tenant_is_inherited(tmp_path, writer_first):
    writer, reader, _, _ = _cache_fill_and_hit()
    reader.specs[0].attrs["flowmap.tenant"] = reader.specs[1].attrs["flowmap.tenant"] = TAG_A
    order = (writer, reader) if writer_first else (reader, writer)
    a = analyze_built(tmp_path, *order)
    assert [f.rule for f in a.findings if f.severity >= Severity.MEDIUM] == ["unscoped-query"] * 2
    edge = a.flow.edges[("api cache.set summary", "api cache.get summary")]
    assert (edge.inherited, edge.switched, edge.via_link) == (1, 0, 1)


def test_link_to_an_unremembered_kind_is_judged_when_the_linking_span_comes_first(tmp_path):
    writer = TraceBuilder()
    step = writer.span("POST /chat", kind=SERVER, tenant=TAG_A).child("plain step", tenant=TAG_A)
    reader = TraceBuilder()
    reader.span("POST /chat", kind=SERVER, tenant=TAG_B, links=[step])
    a = analyze_built(tmp_path, reader, writer)
    assert [f.rule for f in a.findings] == ["cross-tenant"]


def test_links_before_and_after_their_target_are_all_judged(tmp_path):
    """A target whose every incoming link was judged is not remembered; one with a link
    still to come is, and that later link is judged against it."""
    writer, early, fill, _ = _cache_fill_and_hit()
    late = TraceBuilder()
    late.span("POST /chat", kind=SERVER, tenant=TAG_B, boundary="http.server").child(
        "cache.get summary", tenant=TAG_B, boundary="cache", scoped=True, links=[fill])
    a = analyze_built(tmp_path, early, writer, late)
    cross = sorted(f.trace_id for f in a.findings if f.rule == "cross-tenant")
    assert cross == sorted([early.trace_id, late.trace_id])
    edge = a.flow.edges[("api cache.set summary", "api cache.get summary")]
    assert (edge.switched, edge.via_link) == (2, 2)


def test_a_target_whose_links_all_came_first_is_not_remembered(tmp_path):
    from flowmap.analysis import Analyzer
    from flowmap.loading import iter_traces

    writer, reader, _, _ = _cache_fill_and_hit()
    analyzer = Analyzer()
    for trace in iter_traces([write_otlp(tmp_path / "t.jsonl", reader, writer)]):
        analyzer.add(trace)
    assert analyzer._link_targets == {} and analyzer._pending_links == {}
    assert [f.rule for f in analyzer.finish().findings if f.rule == "cross-tenant"] == ["cross-tenant"]


@pytest.mark.parametrize("writer_first", [True, False])
def test_many_healthy_links_across_traces_are_all_counted_and_a_later_break_still_found(tmp_path, writer_first):
    """Past its example cap an edge's healthy link calls are only counted (not judged one
    by one): the counts stay exact, and a link that switches tenant afterwards is still a
    finding, counted on the same edge and chosen as an example."""
    pairs = []
    for i in range(12):
        writer, reader, _, _ = _cache_fill_and_hit()
        if i != 10:  # the eleventh reader runs for another tenant than its writer
            reader.specs[0].attrs["flowmap.tenant"] = reader.specs[1].attrs["flowmap.tenant"] = TAG_A
        pairs.extend((writer, reader) if writer_first else (reader, writer))
    # In a file a link target's trace ends on the line of the last link into it, so the
    # linking trace always comes first; in memory the order is the caller's: writer first
    # judges each link against a remembered target, reader first lets it wait for it.
    from flowmap.loading import iter_traces

    loaded = {t.trace_id: t for t in iter_traces([write_otlp(tmp_path / "t.jsonl", *pairs)])}
    a = analyze_traces([loaded[b.trace_id] for b in pairs], AnalysisSettings(max_examples_per_edge=3))
    cross = [f for f in a.findings if f.rule == "cross-tenant"]
    assert [f.trace_id for f in cross] == [pairs[21 if writer_first else 20].trace_id]
    edge = a.flow.edges[("api cache.set summary", "api cache.get summary")]
    assert (edge.inherited, edge.switched, edge.via_link) == (11, 1, 12)
    assert len(edge.example_traces) == 3 and cross[0].trace_id in edge.example_traces


@pytest.mark.parametrize("order", ["producer-first", "consumer-first", "producer-first-memory"])
def test_a_batch_jobs_many_sends_are_each_judged_against_their_own_consumer(tmp_path, order):
    """A job's trace that sends 40 messages remembers 40 link targets (an index past 16,
    a joined string before: searched once per link, quadratic for thousands): each
    consumer is judged against its own send, and the one that ran for another tenant is
    the one finding."""
    job = TraceBuilder()
    root = job.span("POST /batch", kind=SERVER, tenant=TAG_A, boundary="http.server")
    sends = [root.child(f"send job {i}", kind=PRODUCER, tenant=TAG_A, boundary="queue.publish") for i in range(40)]
    consumers = []
    for i, send in enumerate(sends):
        worker = TraceBuilder(service="worker")
        worker.span("process job", kind=CONSUMER, service="worker", tenant=TAG_B if i == 30 else TAG_A,
                    boundary="queue.consume", links=[send])
        consumers.append(worker)
    from flowmap.loading import iter_traces

    builders = [job, *consumers] if order.startswith("producer-first") else [*consumers, job]
    if order.endswith("memory"):
        a = analyze_traces([b.traces() for b in builders])
    else:
        loaded = {t.trace_id: t for t in iter_traces([write_otlp(tmp_path / "t.jsonl", *builders)])}
        a = analyze_traces([loaded[b.trace_id] for b in builders])
    [cross] = [f for f in a.findings if f.rule == "cross-tenant"]
    assert (cross.trace_id, cross.parent_span_id) == (consumers[30].trace_id, sends[30].span_id)
    assert sum(e.switched for e in a.flow.edges.values()) == 1
    assert sum(e.inherited for e in a.flow.edges.values() if e.via_link) == 39


@pytest.mark.parametrize("later_part", ["another send", "a send again, for another tenant"])
def test_a_job_trace_analysed_in_parts_keeps_each_send_paired_with_its_own_tenant(later_part):
    """A job's trace read in two parts (a late fragment) whose first part remembers more
    than 16 link targets: the parts' targets are merged, and each consumer is still judged
    against its own send (they were paired with other sends' summaries once merged from
    an index: sends of one tenant taken for the other's). A send read again in the newer
    part is judged as that part has it."""
    import dataclasses

    from flowmap.model import Trace

    job = TraceBuilder()
    sends = [job.span(f"send job {i}", kind=PRODUCER, tenant=(TAG_A, TAG_B)[i % 2], boundary="queue.publish")
             for i in range(20)]
    extra = job.span("send job 20", kind=PRODUCER, tenant=TAG_A, boundary="queue.publish")
    consumers = []
    for i, send in enumerate([*sends, extra]):
        worker = TraceBuilder(service="worker")
        worker.span("process job", kind=CONSUMER, service="worker", tenant=(TAG_A, TAG_B)[i % 2],
                    boundary="queue.consume", links=[send])
        consumers.append(worker)
    whole = job.traces()
    first = Trace(whole.trace_id, {s.span_id: whole.spans[s.span_id] for s in sends})
    if later_part == "another send":
        later, switched = whole.spans[extra.span_id], None
    else:  # send 0 again, now tagged for the other tenant than its consumer's
        later, switched = dataclasses.replace(whole.spans[sends[0].span_id], tenant=TAG_B), consumers[0]
    a = analyze_traces([first, Trace(whole.trace_id, {later.span_id: later}), *(c.traces() for c in consumers)])
    cross = [f.trace_id for f in a.findings if f.rule == "cross-tenant"]
    assert cross == ([] if switched is None else [switched.trace_id])
    via_link = [e for e in a.flow.edges.values() if e.via_link]
    assert sum(e.switched for e in via_link) == len(cross)
    # (send 20's consumer links into nothing read when the later part is send 0 again)
    assert sum(e.inherited for e in via_link) == (21 if switched is None else 19)


def test_links_waiting_for_a_trace_read_in_parts_are_judged_by_the_part_that_holds_their_span():
    """Consumers read before a trace that comes in two parts (a late fragment): the links
    into the second part's span waited no further once the first part came, and were
    never judged (a consumer of another tenant passed)."""
    from flowmap.model import Trace

    job = TraceBuilder()
    early = job.span("send job 0", kind=PRODUCER, tenant=TAG_A, boundary="queue.publish")
    late = job.span("send job 1", kind=PRODUCER, tenant=TAG_A, boundary="queue.publish")
    consumers = []
    for send, tenant in ((early, TAG_A), (late, TAG_B)):
        worker = TraceBuilder(service="worker")
        worker.span("process job", kind=CONSUMER, service="worker", tenant=tenant, boundary="queue.consume",
                    links=[send])
        consumers.append(worker)
    whole = job.traces()
    parts = [Trace(whole.trace_id, {s.span_id: whole.spans[s.span_id]}) for s in (early, late)]
    a = analyze_traces([*(c.traces() for c in consumers), *parts])
    assert [(f.rule, f.trace_id) for f in a.findings if f.rule == "cross-tenant"] == [
        ("cross-tenant", consumers[1].trace_id)]
    via_link = [e for e in a.flow.edges.values() if e.via_link]
    assert (sum(e.inherited for e in via_link), sum(e.switched for e in via_link)) == (1, 1)


# -- an untagged consumer root linked to a tagged producer ----------------------------

def _queue(same_trace):
    producer = TraceBuilder()
    pub = producer.span("POST /jobs", kind=SERVER, tenant=TAG_A, boundary="http.server").child(
        "publish job", kind=PRODUCER, tenant=TAG_A, boundary="queue.publish")
    consumer = producer if same_trace else TraceBuilder(service="worker")
    root = consumer.span("process job", kind=CONSUMER, service="worker", boundary="queue.consume",
                         links=[pub])
    root.child("store result", boundary="db", scoped=True)
    return producer, consumer, root


@pytest.mark.parametrize("order", ["same-trace", "producer-first", "consumer-first"])
def test_consumer_root_that_lost_the_producers_tenant_is_context_dropped_only(tmp_path, order):
    producer, consumer, root = _queue(order == "same-trace")
    builders = {"same-trace": (producer,), "producer-first": (producer, consumer),
                "consumer-first": (consumer, producer)}[order]
    a = analyze_built(tmp_path, *builders)
    on_root = [f.rule for f in a.findings if f.span_id == root.span_id]
    assert on_root == ["context-dropped"]
    assert a.flow.nodes["worker process job"].findings == {"context-dropped": 1}
    broken = [p for p in a.paths if p.trace_id == consumer.trace_id and root.span_id in p.span_ids]
    assert broken and all(p.break_rule == "context-dropped" for p in broken)


def test_untagged_consumer_root_without_a_tagged_producer_is_still_unscoped_entry(tmp_path):
    producer = TraceBuilder()
    pub = producer.span("cron tick", kind=PRODUCER, boundary="queue.publish")
    consumer = TraceBuilder(service="worker")
    root = consumer.span("process job", kind=CONSUMER, boundary="queue.consume", links=[pub])
    root.child("store result", boundary="db", scoped=True)
    a = analyze_built(tmp_path, consumer, producer)
    assert "unscoped-entry" in [f.rule for f in a.findings if f.span_id == root.span_id]


@pytest.mark.parametrize("seed", range(4))
def test_every_link_between_tenants_is_judged_whatever_the_file_order(tmp_path, seed):
    """Property: spans of a few traces, shuffled over lines, some linking to spans of
    other traces (any kind, before or after them in the file): every link whose two
    ends are both in the input and carry different tenant tags is a cross-tenant
    finding on the linking span. (Traces are complete after their last span, not after
    the last link into them; a target read first is remembered for the links to come.)"""
    import random

    rnd = random.Random(seed)
    for case in range(60):
        tids = [f"{rnd.getrandbits(128) | 1:032x}" for _ in range(rnd.randint(2, 7))]
        spans = []
        for tid in tids:
            for _ in range(rnd.randint(1, 4)):
                spans.append({"traceId": tid, "spanId": f"{rnd.getrandbits(64) | 1:016x}", "name": "op",
                              "kind": rnd.randint(1, 5), "tenant": rnd.choice([TAG_A, TAG_B])})
        expected = set()
        for s in spans:
            if rnd.random() < 0.4:
                target = rnd.choice(spans)
                s["links"] = [{"traceId": target["traceId"], "spanId": target["spanId"]}]
                if target["traceId"] != s["traceId"] and target["tenant"] != s["tenant"]:
                    expected.add((s["traceId"], s["spanId"]))
        rnd.shuffle(spans)
        lines = []
        while spans:
            n = rnd.randint(1, 3)
            batch, spans = spans[:n], spans[n:]
            for s in batch:
                s["attributes"] = [{"key": "flowmap.tenant", "value": {"stringValue": s.pop("tenant")}}]
            lines.append(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": batch}]}]}))
        path = tmp_path / f"links-{case}.jsonl"
        path.write_text("\n".join(lines) + "\n")
        found = {(f.trace_id, f.span_id) for f in analyze([path]).findings if f.rule == "cross-tenant"}
        assert expected <= found, (case, expected - found)


def test_a_remembered_target_is_forgotten_once_its_last_link_is_judged(tmp_path):
    """A trace that links still point into when it is complete is remembered (only the
    span linked to), then forgotten once as many links as the scan counted were judged."""
    from flowmap.analysis import Analyzer
    from flowmap.loading import iter_traces

    writer, reader, fill, hit = _cache_fill_and_hit(boundary="memory")
    # the reader's trace stays open after the line with its link: a later span of it
    reader.span("late step", parent=hit, tenant=TAG_B)
    path = write_otlp(tmp_path / "t.jsonl", writer, reader, per_span=True)
    analyzer = Analyzer()
    sizes = []
    for trace in iter_traces([path]):
        analyzer.add(trace)
        if trace.trace_id == writer.trace_id:
            assert trace.linked_spans == frozenset({fill.span_id})
        sizes.append(len(analyzer._link_targets))
    assert max(sizes) == 1 and analyzer._link_targets == {} and analyzer._targets_left == {}
    assert [f.trace_id for f in analyzer.finish().findings if f.rule == "cross-tenant"] == [reader.trace_id]



# -- links judged in every order of arrival -----------------------------------------

_ORDERS = ["same-trace", "producer-first", "consumer-first", "producer-first-memory", "consumer-first-memory"]


def _analyse_in(order, tmp_path, producers, consumer):
    """The traces analysed in ``order``: the producers' before or after the consumer's
    (as the loader reads them, with its record of links, or built in memory, without)."""
    from flowmap.loading import iter_traces

    if order == "same-trace":
        return analyze_built(tmp_path, consumer)
    builders = [*producers, consumer] if order.startswith("producer-first") else [consumer, *producers]
    if order.endswith("memory"):
        return analyze_traces([b.traces() for b in builders])
    loaded = {t.trace_id: t for t in iter_traces([write_otlp(tmp_path / "t.jsonl", *builders)])}
    return analyze_traces([loaded[b.trace_id] for b in builders])


# -- reached: a context-dropped through a link names what ran without the tenant -------

def _dropped_into_a_plain_span(same_trace):
    """A tagged message; the span that reads it (no boundary, no tenant) runs a query."""
    producer = TraceBuilder(service="a")
    pub = producer.span("op1", kind=PRODUCER, tenant=TAG_A, boundary="queue.publish")
    consumer = producer if same_trace else TraceBuilder(service="b")
    reader = consumer.span("op2", service="b", links=[pub])
    reader.child("op3", boundary="db")
    return producer, consumer, reader


@pytest.mark.parametrize("order", _ORDERS)
def test_context_dropped_through_a_link_names_the_boundary_reached_in_every_order(tmp_path, order):
    producer, consumer, reader = _dropped_into_a_plain_span(order == "same-trace")
    a = _analyse_in(order, tmp_path, [producer], consumer)
    (f,) = [f for f in a.findings if f.rule == "context-dropped"]
    assert (f.span_id, f.severity, f.reached) == (reader.span_id, Severity.MEDIUM, "db 'b op3'")
    assert f.message == "'b op2' lost the tenant of 'a op1' across a span link, and db 'b op3' below it ran without one"


@pytest.mark.parametrize("order", ["producer-first", "consumer-first"])
def test_context_dropped_through_a_link_into_a_boundary_names_nothing_reached(tmp_path, order):
    producer, consumer, reader = _dropped_into_a_plain_span(False)
    reader.spec.attrs["flowmap.boundary"] = "queue.consume"
    (f,) = [f for f in _analyse_in(order, tmp_path, [producer], consumer).findings if f.rule == "context-dropped"]
    assert (f.severity, f.reached) == (Severity.HIGH, None)
    assert f.message == "'b op2' lost the tenant of 'a op1' across a span link"


# -- a batch consumer: one span linked to every record's producer, a bind per record -----

def _published(tenants, same_trace):
    """The consumer's trace, and messages published for ``tenants`` (each in its own
    trace, or all in the consumer's): (consumer, producers' traces, publish spans)."""
    consumer = TraceBuilder(service="worker")
    producers, pubs = [], []
    for tag in tenants:
        tb = consumer if same_trace else TraceBuilder()
        pubs.append(tb.span("publish job", kind=PRODUCER, service="api", tenant=tag, boundary="queue.publish"))
        if not same_trace:
            producers.append(tb)
    return consumer, producers, pubs


def _batch(bound, tenants=(TAG_A, TAG_B), same_trace=False):
    """Messages published for ``tenants`` (each in its own trace, or all in the
    consumer's); a CONSUMER span linked to each message's producer (OTel messaging's batch
    receive), untagged (it serves several tenants: the runtime withdraws its tag), that
    handles one record for each tenant of ``bound``, bound while it runs."""
    consumer, producers, pubs = _published(tenants, same_trace)
    batch = consumer.span("process batch", kind=CONSUMER, boundary="queue.consume", links=pubs)
    for tag in bound:
        batch.child("step", boundary=None).child("handle record", tenant=tag, boundary="tool")
    return producers, consumer, batch, pubs


@pytest.mark.parametrize("order", _ORDERS)
def test_a_batch_consumer_that_binds_each_records_tenant_loses_none(tmp_path, order):
    producers, consumer, batch, _ = _batch(bound=(TAG_A, TAG_B), same_trace=order == "same-trace")
    a = _analyse_in(order, tmp_path, producers, consumer)
    assert [f.to_json() for f in a.findings] == []
    edge = a.flow.edges[("api publish job", "worker process batch")]
    assert (edge.inherited, edge.dropped, edge.via_link) == (2, 0, 2)


@pytest.mark.parametrize("order", _ORDERS)
@pytest.mark.parametrize("bound", [(TAG_B,), (TAG_A,), ()], ids=["another-tenant", "same-tenant", "none"])
def test_one_message_worked_on_for_another_tenant_is_a_switch_in_every_order(tmp_path, order, bound):
    """A contrib CONSUMER span that carries no tag, linked to one message of tenant A,
    and the worker binds tenant B below it: A's message was worked on for B, a critical
    cross-tenant on the consumer (was a context-dropped), and the link counts as switched.
    Near misses: the worker binds A again (nothing), or binds nothing (context-dropped)."""
    producers, consumer, batch, pubs = _batch(bound=bound, tenants=(TAG_A,), same_trace=order == "same-trace")
    a = _analyse_in(order, tmp_path, producers, consumer)
    found = [(f.rule, f.severity, f.span_id, f.parent_span_id) for f in a.findings]
    edge = a.flow.edges[("api publish job", "worker process batch")]
    if bound == (TAG_B,):
        assert found == [("cross-tenant", Severity.CRITICAL, batch.span_id, pubs[0].span_id)]
        assert "the work below it ran for another tenant" in a.findings[0].message
        assert (edge.inherited, edge.dropped, edge.switched) == (0, 0, 1)
    elif bound == (TAG_A,):
        assert found == [] and (edge.inherited, edge.dropped, edge.switched) == (1, 0, 0)
    else:
        assert found == [("context-dropped", Severity.HIGH, batch.span_id, pubs[0].span_id)]
        assert (edge.inherited, edge.dropped, edge.switched) == (0, 1, 0)
    if order != "same-trace":
        (path,) = [p for p in a.paths if p.span_ids[0] == batch.span_id]
        assert path.break_rule == (found[0][0] if found else None)


@pytest.mark.parametrize("order", _ORDERS)
def test_a_batch_consumer_that_never_binds_one_producers_tenant_dropped_it(tmp_path, order):
    """The near miss: two messages, for A and B; only A's record bound its tenant. The
    link from B's producer is a context-dropped (high: the consumer is a boundary)."""
    producers, consumer, batch, pubs = _batch(bound=(TAG_A,), same_trace=order == "same-trace")
    a = _analyse_in(order, tmp_path, producers, consumer)
    found = [(f.rule, f.span_id, f.parent_span_id, f.severity) for f in a.findings]
    assert found == [("context-dropped", batch.span_id, pubs[1].span_id, Severity.HIGH)]
    edge = a.flow.edges[("api publish job", "worker process batch")]
    assert (edge.inherited, edge.dropped, edge.via_link) == (1, 1, 2)


@pytest.mark.parametrize("order", _ORDERS)
def test_a_batch_consumer_that_binds_another_key_or_a_tenant_only_under_a_switch_dropped_it(tmp_path, order):
    """A tag bound below counts only under the producer's key id, and only where a tenant
    was bound below the consumer's untagged spans (not under a span of another tenant)."""
    producers, consumer, batch, pubs = _batch(bound=(), same_trace=order == "same-trace")
    batch.child("handle record", tenant=TAG_A, boundary="tool", key_id="other-key")
    batch.child("handle record", tenant=TAG_A, boundary="tool").child("nested", tenant=TAG_B)
    a = _analyse_in(order, tmp_path, producers, consumer)
    dropped = [f.parent_span_id for f in a.findings if f.rule == "context-dropped" and f.span_id == batch.span_id]
    assert dropped == [pubs[1].span_id]


@pytest.mark.parametrize("order", ["consumer-first", "consumer-first-memory"])
def test_a_waiting_batch_consumer_keeps_a_tenant_a_link_past_the_small_cap(tmp_path, order):
    """Links waiting for their producers keep the tenants bound below their consumer (at
    most a few, or one a link): a batch of 40 tenants, its consumer read first, is judged
    as one whose producers came first; a span with one link keeps no more than the cap."""
    from flowmap.analysis import _BOUND_KEPT, Analyzer
    from flowmap.tagging import tag_for

    from otlp_builder import KEY

    tags = [tag_for(KEY, f"tenant-{i}") for i in range(40)]
    producers, consumer, _, _ = _batch(bound=tags, tenants=tags)
    assert [f.to_json() for f in _analyse_in(order, tmp_path, producers, consumer).findings] == []
    # one link, 40 tenants bound below: what waits is capped
    _, one, _, _ = _batch(bound=tags, tenants=tags[:1])
    analyzer = Analyzer()
    analyzer.add(one.traces())
    (waiting,) = [c for by_span in analyzer._pending_links.values() for cs in by_span.values() for c in cs]
    assert len(waiting[12]) == _BOUND_KEPT


def test_a_batch_consumer_past_the_cap_is_judged_alike_whichever_end_came_first(tmp_path):
    """One link, its producer's tenant bound below the consumer after 39 others: a link
    waiting for its producer keeps only the first tenants (the cap), so a producer read
    after the consumer found its tenant not bound (a context-dropped) while one read
    before it found it bound (nothing): the same spans, another finding by file order.
    Judged on what a waiting link keeps, in both: one message's work that ran for other
    tenants, a switch."""
    from flowmap.tagging import tag_for

    from otlp_builder import KEY

    tags = [tag_for(KEY, f"tenant-{i}") for i in range(40)]
    producers, consumer, batch, pubs = _batch(bound=tags, tenants=tags[-1:])
    found = {
        order: [(f.rule, f.span_id, f.parent_span_id) for f in _analyse_in(order, tmp_path, producers, consumer).findings]
        for order in ("producer-first", "consumer-first")
    }
    assert found["producer-first"] == found["consumer-first"] == [("cross-tenant", batch.span_id, pubs[0].span_id)]


def _stamped_batch(same_trace=False, tenants=(TAG_A, TAG_B), boundary="queue.consume"):
    """Messages published for ``tenants``; a CONSUMER span linked to each, tagged A: the
    runtime stamps a framework's batch span with the tenant of the first record bound
    under it, and keeps that stamp while no other tenant is bound below it. The caller
    adds the records below it."""
    consumer, producers, pubs = _published(tenants, same_trace)
    batch = consumer.span("process batch", kind=CONSUMER, tenant=TAG_A, boundary=boundary, links=pubs)
    return producers, consumer, batch, pubs


@pytest.mark.parametrize("order", _ORDERS)
@pytest.mark.parametrize("mode", ["record", "fail"])
def test_a_stamped_batch_that_handles_a_record_with_no_tenant_lost_its_message_not_switched_it(tmp_path, order, mode):
    """Record A bound its tenant (the batch span kept A's stamp), record B was handled
    with none: its tool ran unbound (record mode) or was refused (fail mode). B's message
    was lost (a context-dropped on the batch span, high: it is a boundary), not worked on
    for A: it was a critical cross-tenant, in every order of arrival."""
    producers, consumer, batch, pubs = _stamped_batch(same_trace=order == "same-trace")
    batch.child("handle record", tenant=TAG_A, boundary="tool")
    if mode == "record":
        record = batch.child("handle record", boundary="tool", attrs={"flowmap.unscoped": True})
    else:
        record = batch.child("handle record", boundary="tool", attrs={"flowmap.unscoped": True}, status=2)
    a = _analyse_in(order, tmp_path, producers, consumer)
    found = sorted((f.rule, f.severity, f.span_id, f.parent_span_id) for f in a.findings)
    assert found == sorted([("context-dropped", Severity.HIGH, batch.span_id, pubs[1].span_id),
                            ("context-dropped", Severity.HIGH, record.span_id, batch.span_id)])
    (lost,) = [f for f in a.findings if f.span_id == batch.span_id]
    assert lost.message == ("'worker process batch' lost the tenant of 'api publish job' across a span link "
                            "(a batch: a record below it was handled with no tenant)")
    edge = a.flow.edges[("api publish job", "worker process batch")]
    assert (edge.inherited, edge.dropped, edge.switched, edge.via_link) == (1, 1, 0, 2)


def _a_record(batch, shape):
    """Record B's work below a stamped batch, in ``shape``."""
    if shape == "another-records-tenant":
        batch.child("handle record", tenant=TAG_A, boundary="tool")
    elif shape == "unbound-commit":  # B's record under A; an offset commit (no boundary) ran unbound
        batch.child("handle record", tenant=TAG_A, boundary="tool")
        batch.child("commit offsets", kind=CLIENT)
    else:  # B's record under A; the record's authentication ran before any tenant was bound
        batch.child("verify token", kind=CLIENT, boundary="http.client", attrs={"flowmap.authenticating": True})
        batch.child("handle record", tenant=TAG_A, boundary="tool")


@pytest.mark.parametrize("order", _ORDERS)
@pytest.mark.parametrize("shape", ["another-records-tenant", "unbound-commit", "authenticating"])
def test_a_stamped_batch_that_handles_a_record_under_another_records_tenant_switched_it(tmp_path, order, shape):
    """The near misses: every record's tool ran for A, B's message among them: B's message
    was worked on for A, a critical cross-tenant, whatever else ran with no tenant and no
    boundary below the batch (an offset commit: its own context-dropped, medium), or ran
    while authenticating."""
    producers, consumer, batch, pubs = _stamped_batch(same_trace=order == "same-trace")
    batch.child("handle record", tenant=TAG_A, boundary="tool")
    _a_record(batch, shape)
    a = _analyse_in(order, tmp_path, producers, consumer)
    found = sorted((f.rule, f.severity, f.span_id, f.parent_span_id) for f in a.findings)
    switched = ("cross-tenant", Severity.CRITICAL, batch.span_id, pubs[1].span_id)
    if shape == "unbound-commit":
        (commit,) = [f.span_id for f in a.findings if f.span_name == "commit offsets"]
        assert found == sorted([switched, ("context-dropped", Severity.MEDIUM, commit, batch.span_id)])
    else:
        assert found == [switched]
    edge = a.flow.edges[("api publish job", "worker process batch")]
    assert (edge.inherited, edge.dropped, edge.switched) == (1, 0, 1)


@pytest.mark.parametrize("order", _ORDERS)
def test_a_consumer_of_one_message_that_binds_another_tenant_switched_it_whatever_ran_unbound(tmp_path, order):
    """One message, B's, and the consumer span stamped with A (bound for it), a tool
    below it unbound too: the message was worked on for A, a switch, not a batch's loss."""
    producers, consumer, batch, pubs = _stamped_batch(same_trace=order == "same-trace", tenants=(TAG_B,))
    batch.child("handle record", tenant=TAG_A, boundary="tool")
    record = batch.child("handle record", boundary="tool", attrs={"flowmap.unscoped": True})
    a = _analyse_in(order, tmp_path, producers, consumer)
    found = sorted((f.rule, f.span_id, f.parent_span_id) for f in a.findings)
    assert found == sorted([("cross-tenant", batch.span_id, pubs[0].span_id),
                            ("context-dropped", record.span_id, batch.span_id)])


def test_a_batch_that_is_no_boundary_names_the_unbound_work_alike_in_every_order(tmp_path):
    """A batch span that is no boundary (medium) names the first boundary below it that
    ran with no tenant, through a record span that carried none, whichever trace came
    first: the consumer's links keep it when they wait."""
    found = {}
    for order in _ORDERS:
        producers, consumer, batch, pubs = _stamped_batch(same_trace=order == "same-trace", boundary=None)
        batch.child("handle record", tenant=TAG_A, boundary="tool")
        batch.child("record").child("refund", boundary="tool", attrs={"flowmap.unscoped": True})
        a = _analyse_in(order, tmp_path, producers, consumer)
        found[order] = sorted((f.rule, f.severity, f.span_name, f.parent_name, f.reached, f.message)
                              for f in a.findings if f.span_id == batch.span_id)
    assert found["same-trace"] == [(
        "context-dropped", Severity.MEDIUM, "process batch", "publish job", "tool 'worker refund'",
        "'worker process batch' lost the tenant of 'api publish job' across a span link (a batch: a record "
        "below it was handled with no tenant), and tool 'worker refund' below it ran without one")]
    assert all(got == found["same-trace"] for got in found.values()), found


def test_links_below_a_long_untagged_chain_are_judged_alike_whichever_end_came_first(tmp_path):
    """A chain of 100 untagged spans, each linked to a message (every other one tagged),
    the tenant bound at its bottom: what was bound below each is found by walks that share
    one budget a trace (rules.UntaggedBelow, against hostile traces). They were made for
    the links still waiting and for the tagged producers read before, so the budget ran
    out at another span by file order: another set of context-dropped findings."""
    producers, pubs = [], []
    for i in range(100):
        tb = TraceBuilder(service="api")
        pubs.append(tb.span("publish job", kind=PRODUCER, tenant=TAG_A if i % 2 else None, boundary="queue.publish"))
        producers.append(tb)
    consumer = TraceBuilder(service="worker")
    step = consumer.span("step", links=[pubs[0]])
    for pub in pubs[1:]:
        step = step.child("step", links=[pub])
    step.child("handle record", tenant=TAG_A, boundary="tool")
    found = {
        order: sorted((f.rule, f.span_id) for f in _analyse_in(order, tmp_path, producers, consumer).findings)
        for order in ("producer-first", "consumer-first")
    }
    assert found["producer-first"] == found["consumer-first"]
    assert found["consumer-first"]  # (the budget ran out: the walks judged no further)


# -- messaging: a batch send, a pull receive, a settle (rules.link_reading) ------------

def _messaging(op):
    return {"messaging.system": "kafka", "messaging.destination.name": "jobs", "messaging.operation.type": op}


def _created(same_trace, consumer, tenants=(TAG_A, TAG_B)):
    """One message created for each of ``tenants`` (its create span, tagged), each in a
    request trace of its own or all in ``consumer``'s trace."""
    producers, creates = [], []
    for tag in tenants:
        tb = consumer if same_trace else TraceBuilder(service="api")
        creates.append(tb.span("create job", kind=PRODUCER, service="api", tenant=tag, boundary="queue.publish",
                               attrs=_messaging("create")))
        if not same_trace:
            producers.append(tb)
    return producers, creates


@pytest.mark.parametrize("order", _ORDERS)
@pytest.mark.parametrize("own", [None, TAG_B], ids=["untagged", "another-tenant"])
def test_a_batch_send_carries_each_message_on_in_every_order(tmp_path, order, own):
    """A batch send (semconv 1.27: a CLIENT span once create spans exist) links to each
    message's create span: run for no tenant, or for the one whose request flushed the
    batch, it lost and switched none (each message keeps its own context); counted
    inherited on the flow map, the way the messages went."""
    sender = TraceBuilder(service="sender")
    producers, creates = _created(order == "same-trace", sender)
    sender.span("send jobs", kind=CLIENT, tenant=own, boundary="queue.publish", attrs=_messaging("send"), links=creates)
    a = _analyse_in(order, tmp_path, producers, sender)
    assert [f.to_json() for f in a.findings] == []
    edge = a.flow.edges[("api create job", "sender send jobs")]
    assert (edge.inherited, edge.dropped, edge.switched, edge.via_link) == (2, 0, 0, 2)


@pytest.mark.parametrize("order", _ORDERS)
@pytest.mark.parametrize("own", [None, TAG_B], ids=["untagged", "another-tenant"])
def test_a_receive_that_hands_its_messages_out_of_the_trace_is_judged_on_its_own_tag(tmp_path, order, own):
    """A receive that is a root with nothing below it handed its messages to code outside
    its trace: untagged, it lost nothing itself (an unscoped-entry, medium); run for
    another tenant than a message's (a worker's stale binding), a cross-tenant."""
    worker = TraceBuilder(service="worker")
    producers, creates = _created(order == "same-trace", worker, tenants=(TAG_A,))
    receive = worker.span("receive jobs", kind=CLIENT, tenant=own, boundary="queue.consume",
                          attrs=_messaging("receive"), links=creates)
    a = _analyse_in(order, tmp_path, producers, worker)
    found = [(f.rule, f.severity, f.span_id) for f in a.findings]
    if own is None:
        assert found == [("unscoped-entry", Severity.MEDIUM, receive.span_id)]
    else:
        assert found == [("cross-tenant", Severity.CRITICAL, receive.span_id)]


@pytest.mark.parametrize("order", _ORDERS)
@pytest.mark.parametrize("bound", [(TAG_A, TAG_B), (TAG_A,)], ids=["both", "one"])
def test_a_receive_is_judged_on_what_its_caller_bound(tmp_path, order, bound):
    """A poll loop receives two tenants' messages, then handles each with its tenant
    bound: the receive's span ended before, so the binding is looked for below its
    caller. A message whose tenant the loop never bound was dropped (high: a boundary)."""
    worker = TraceBuilder(service="worker")
    producers, creates = _created(order == "same-trace", worker)
    loop = worker.span("poll loop")
    receive = loop.child("receive jobs", kind=CLIENT, boundary="queue.consume", attrs=_messaging("receive"),
                         links=creates)
    for tag in bound:
        loop.child("handle job", tenant=tag, boundary="db")
    a = _analyse_in(order, tmp_path, producers, worker)
    dropped = [(f.span_id, f.parent_span_id, f.severity) for f in a.findings if f.rule == "context-dropped"]
    assert dropped == ([] if len(bound) == 2 else [(receive.span_id, creates[1].span_id, Severity.HIGH)])


@pytest.mark.parametrize("order", _ORDERS)
@pytest.mark.parametrize("own", [None, TAG_B], ids=["untagged", "another-tenant"])
def test_an_acknowledgement_loses_no_tenant_in_every_order(tmp_path, order, own):
    """A batch settle at the end of a poll loop, for no tenant (or a stale one), linking
    to the messages it settles: an acknowledgement carries none of their data."""
    worker = TraceBuilder(service="worker")
    producers, creates = _created(order == "same-trace", worker)
    worker.span("poll loop", tenant=own).child("ack jobs", kind=CLIENT, tenant=own, attrs=_messaging("settle"),
                                               links=creates)
    a = _analyse_in(order, tmp_path, producers, worker)
    assert [f.rule for f in a.findings] == (["orphan-root"] if own is None else [])  # the poll loop's
    edge = a.flow.edges[("api create job", "worker ack jobs")]
    assert (edge.inherited, edge.dropped, edge.switched, edge.via_link) == (2, 0, 0, 2)


# -- the real runtime ------------------------------------------------------------------

def test_a_batch_consumer_as_the_readme_prescribes_passes_with_the_real_runtime(flowmap_runtime, tmp_path):
    """Messages published for two tenants; a worker's batch CONSUMER span linked to both
    (as OTel messaging instrumentations record a batch receive) binds each record's tenant
    in turn: the runtime withdraws the batch span's tag, and the analysis finds nothing
    lost. A record whose tenant was never bound is still found."""
    from opentelemetry import trace as otel_trace
    from opentelemetry.trace import Link, SpanKind

    import flowmap
    from flowmap.exporter import encode_spans

    rt, exporter = flowmap_runtime
    tracer = rt.tracer_provider.get_tracer("worker")

    def run(bound):
        exporter.clear()
        links = []
        for tenant in ("acme", "globex"):
            with flowmap.bind(flowmap.RequestContext(tenant_id=tenant)):
                with flowmap.boundary("queue.publish", "publish"):
                    links.append(Link(otel_trace.get_current_span().get_span_context()))
        with tracer.start_as_current_span("batch process", kind=SpanKind.CONSUMER, links=links,
                                          attributes={"messaging.system": "kafka",
                                                      "messaging.operation.type": "process"}):
            for tenant in bound:
                with flowmap.bind(flowmap.RequestContext(tenant_id=tenant)):
                    with flowmap.boundary("tool", "handle record"):
                        pass
        spans = exporter.get_finished_spans()
        batch = next(s for s in spans if s.name == "batch process")
        assert "flowmap.tenant" not in batch.attributes  # withdrawn at the second tenant's bind
        path = tmp_path / "traces.jsonl"
        path.write_text(json.dumps(encode_spans(spans)) + "\n")
        publish = [s for s in spans if s.name == "publish"]
        return analyze([path]), batch, publish

    a, _, _ = run(["acme", "globex"])
    assert [f.to_json() for f in a.findings] == []
    # globex's message handled as another tenant's record: globex's tenant was lost
    a, batch, publish = run(["acme", "initech"])
    found = [(f.rule, f.span_id, f.parent_span_id) for f in a.findings]
    assert found == [("context-dropped", f"{batch.context.span_id:016x}", f"{publish[1].context.span_id:016x}")]


@pytest.mark.parametrize(("tenants", "handled", "expected"), [
    # record B handled with nothing bound: its tool ran unbound (record mode), or was
    # refused (fail mode, the worker caught MissingContextError): B's message was lost, not
    # switched to A's tenant, which the batch span kept from A's record
    (("acme", "globex"), ("acme", "record"), {("context-dropped", "high", "batch process", "publish"),
                                              ("context-dropped", "high", "handle record", "batch process")}),
    (("acme", "globex"), ("acme", "fail"), {("context-dropped", "high", "batch process", "publish"),
                                            ("context-dropped", "high", "handle record", "batch process")}),
    # record B handled under record A's tenant: the switch it is
    (("acme", "globex"), ("acme", "acme"), {("cross-tenant", "critical", "batch process", "publish")}),
    # a batch of one tenant's messages, one record handled unbound: the record's loss
    (("acme", "acme"), ("acme", "record"), {("context-dropped", "high", "handle record", "batch process")}),
], ids=["unbound", "refused", "another-records-tenant", "one-tenant"])
def test_a_batch_consumer_that_skips_a_records_tenant_lost_it_through_flowmap_check(
    flowmap_runtime, tmp_path, tenants, handled, expected,
):
    """The real runtime end to end: messages published for ``tenants``, a worker's batch
    CONSUMER span linked to them that handles each record as ``handled`` says (a tenant
    bound, or nothing bound in record or fail mode), written by flowmap's exporter and
    checked by ``flowmap check --format json``. The runtime stamps the batch span with
    the first record's tenant (only one was bound below it): a record handled with no
    tenant was a critical cross-tenant from that stamp beside its context-dropped."""
    from opentelemetry import trace as otel_trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import Link, SpanKind
    from typer.testing import CliRunner

    import flowmap
    from flowmap import runtime
    from flowmap.cli import app
    from flowmap.exporter import JsonLinesSpanExporter

    rt, _ = flowmap_runtime
    path = tmp_path / "traces.jsonl"
    rt.tracer_provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    tracer = rt.tracer_provider.get_tracer("worker")
    links = []
    for tenant in tenants:
        with flowmap.bind(flowmap.RequestContext(tenant_id=tenant)):
            with flowmap.boundary("queue.publish", "publish"):
                links.append(Link(otel_trace.get_current_span().get_span_context()))
    with tracer.start_as_current_span("batch process", kind=SpanKind.CONSUMER, links=links,
                                      attributes={"messaging.system": "kafka",
                                                  "messaging.operation.type": "process"}) as batch:
        for how in handled:
            if how in ("record", "fail"):
                runtime.set_boundary_mode(how)
                try:
                    with flowmap.boundary("tool", "handle record"):
                        pass
                except flowmap.MissingContextError:
                    assert how == "fail"
                continue
            with flowmap.bind(flowmap.RequestContext(tenant_id=how)):
                with flowmap.boundary("tool", "handle record"):
                    pass
    assert batch.attributes["flowmap.tenant"] == flowmap.RequestContext("acme").tag()  # the stamp
    result = CliRunner().invoke(app, ["check", "--format", "json", str(path)])
    assert result.exit_code == 1, result.output
    out = json.loads(result.stdout)
    assert {(f["rule"], f["severity"], f["span_name"], f["parent_name"]) for f in out["findings"]} == expected
    assert len(out["findings"]) == len(expected)


# -- a link's finding breaks the path through its span, in every order of arrival -------

@pytest.mark.parametrize("order", _ORDERS)
def test_a_switch_through_a_link_breaks_the_consumers_path_in_every_order(tmp_path, order):
    """A worker's trace starts at a consumer that links to another tenant's message and
    runs a tool: the path from the consumer to the tool breaks at the consumer (index 0,
    cross-tenant), wherever the producer is and whichever trace came first."""
    producer = TraceBuilder(service="api")
    pub = producer.span("publish job", kind=PRODUCER, tenant=TAG_A, boundary="queue.publish")
    consumer = producer if order == "same-trace" else TraceBuilder(service="worker")
    job = consumer.span("process job", kind=CONSUMER, service="worker", tenant=TAG_B, boundary="queue.consume",
                        links=[pub])
    tool = job.child("refund", tenant=TAG_B, boundary="tool")
    a = _analyse_in(order, tmp_path, [] if order == "same-trace" else [producer], consumer)
    assert [(f.rule, f.span_id) for f in a.findings] == [("cross-tenant", job.span_id)]
    [path] = [p for p in a.paths if p.span_ids[-1] == tool.span_id]
    assert (path.span_ids, path.broken_at, path.break_rule, path.severity) == (
        [job.span_id, tool.span_id], 0, "cross-tenant", Severity.CRITICAL)
    assert a.paths[0] is path  # worst first


@pytest.mark.parametrize("loaded", [True, False])
def test_a_full_path_sample_still_takes_a_path_a_later_link_breaks(tmp_path, loaded):
    """The sample is full (max_paths 1) of a medium orphan-root's path when a worker's
    trace arrives whose link points to a message not read yet: its path is healthy then,
    but the link, judged when the message's trace comes, makes it critical, and the
    critical path must be the one kept."""
    orphan = TraceBuilder(service="api")
    orphan.span("cache get", boundary="cache")  # an untagged root boundary: orphan-root
    producer = TraceBuilder(service="api")
    pub = producer.span("publish job", kind=PRODUCER, tenant=TAG_A, boundary="queue.publish")
    consumer = TraceBuilder(service="worker")
    job = consumer.span("process job", kind=CONSUMER, tenant=TAG_B, boundary="queue.consume", links=[pub])
    tool = job.child("refund", tenant=TAG_B, boundary="tool")
    builders = [orphan, consumer, producer]
    if loaded:
        from flowmap.loading import iter_traces

        by_id = {t.trace_id: t for t in iter_traces([write_otlp(tmp_path / "t.jsonl", *builders)])}
        traces = [by_id[b.trace_id] for b in builders]
    else:
        traces = [b.traces() for b in builders]
    a = analyze_traces(traces, AnalysisSettings(max_paths=1))
    assert sorted(f.rule for f in a.findings) == ["cross-tenant", "orphan-root"]
    [path] = a.paths
    assert (path.span_ids, path.broken_at, path.break_rule) == ([job.span_id, tool.span_id], 0, "cross-tenant")


def test_a_trace_analysed_in_parts_keeps_the_waiting_paths_of_every_part():
    """A worker's trace comes in two parts (its lines split around another trace's), each
    with a consumer linked to a message not read yet: once the message's trace comes,
    both consumers' paths are critical, and the sample (full of medium orphan paths)
    takes both, not only the later part's."""
    orphans = []
    for _ in range(2):
        orphan = TraceBuilder(service="api")
        orphan.span("cache get", boundary="cache")  # an untagged root boundary: orphan-root
        orphans.append(orphan)
    producer = TraceBuilder(service="api")
    pub = producer.span("publish job", kind=PRODUCER, tenant=TAG_A, boundary="queue.publish")
    parts = []
    for n in range(2):
        part = TraceBuilder(service="worker", trace_id=f"{0xFEED:032x}")
        job = part.span(f"process job {n}", kind=CONSUMER, tenant=TAG_B, boundary="queue.consume", links=[pub])
        job.child("refund", tenant=TAG_B, boundary="tool")
        parts.append((part, job))
    traces = [o.traces() for o in orphans] + [p.traces() for p, _ in parts] + [producer.traces()]
    a = analyze_traces(traces, AnalysisSettings(max_paths=2))
    assert sorted(f.rule for f in a.findings) == ["cross-tenant"] * 2 + ["orphan-root"] * 2
    assert sorted((p.span_ids[0], p.break_rule) for p in a.paths) == sorted(
        (job.span_id, "cross-tenant") for _, job in parts)


def _consumer_below_untagged_root():
    """A producer's tagged message, and a worker's untagged consumer root linked to it,
    whose tool call below runs untagged: an unscoped-entry (high: it reaches a
    boundary) that the link shows to be a lost tenant, a context-dropped (medium: the
    root is no boundary)."""
    producer = TraceBuilder(service="api")
    pub = producer.span("publish job", kind=PRODUCER, tenant=TAG_A, boundary="queue.publish")
    consumer = TraceBuilder(service="worker")
    job = consumer.span("process job", kind=CONSUMER, links=[pub])
    job.child("run").child("refund", boundary="tool")
    return producer, consumer, job


@pytest.mark.parametrize("producer_first", [True, False])
def test_a_path_sample_keeps_the_worst_paths_when_a_link_lowers_a_break(producer_first):
    """The consumer's path must not take the place of a worse one (a high orphan-root's)
    on the unscoped-entry it loses to the link's context-dropped, in either order of the
    traces (the link judged at once, or at the end)."""
    orphan = TraceBuilder(service="api")
    orphan.span("cache get", boundary="cache")  # an untagged root boundary: high orphan-root
    producer, consumer, job = _consumer_below_untagged_root()
    pair = [producer, consumer] if producer_first else [consumer, producer]
    a = analyze_traces([b.traces() for b in [orphan, *pair]], AnalysisSettings(max_paths=1))
    assert sorted((f.rule, f.span_id) for f in a.findings) == sorted(
        [("context-dropped", job.span_id), ("orphan-root", orphan.specs[0].span_id)])
    [path] = a.paths
    assert (path.trace_id, path.break_rule) == (orphan.trace_id, "orphan-root")


@pytest.mark.parametrize("producer_first", [True, False])
def test_a_superseded_break_leaves_the_paths_worst_severity_to_the_findings_left(producer_first):
    producer, consumer, job = _consumer_below_untagged_root()
    pair = [producer, consumer] if producer_first else [consumer, producer]
    a = analyze_traces([b.traces() for b in pair])
    [path] = [p for p in a.paths if p.trace_id == consumer.trace_id]
    assert (path.span_ids[0], path.break_rule, path.severity, path.worst) == (
        job.span_id, "context-dropped", Severity.MEDIUM, Severity.MEDIUM)


# -- a link from an untagged producer: judged against the tagged span above it -----------

def _sent_from_an_untagged_span(consumer_tenant, below=None, same_trace=False):
    """Tenant A's request sends a message from a span that carries no tag (an
    uninstrumented or contrib ``send``, no flowmap tag: itself a context-dropped); a
    worker's consumer links to it, running for ``consumer_tenant`` (None: untagged, one
    message), the worker binding ``below`` in a tool call under it."""
    producer = TraceBuilder(service="api")
    entry = producer.span("POST /orders", kind=SERVER, tenant=TAG_A, boundary="http.server")
    send = entry.child("orders send", kind=PRODUCER, boundary="queue.publish",
                       attrs={"messaging.system": "kafka", "messaging.operation.type": "send"})
    consumer = producer if same_trace else TraceBuilder(service="worker")
    process = consumer.span("orders process", kind=CONSUMER, service="worker", tenant=consumer_tenant,
                            boundary="queue.consume", links=[send])
    process.child("refund", service="worker", tenant=below or consumer_tenant, boundary="tool")
    return producer, consumer, entry, send, process


@pytest.mark.parametrize("order", _ORDERS)
@pytest.mark.parametrize("consumer_tenant", [TAG_B, None], ids=["consumer-tagged", "bound-below-the-consumer"])
def test_a_switch_through_an_untagged_producer_is_found_in_every_order(tmp_path, order, consumer_tenant):
    """A (tenant A) -> untagged send -> link -> consumer for tenant B (its own tag, or one
    message's work bound below it): a critical cross-tenant on the consumer against A,
    the span whose tag differs, as through untagged parent spans; the send keeps its own
    context-dropped, and the link counts as switched. It was only the send's
    context-dropped, the link compared with the untagged send alone."""
    producer, consumer, entry, send, process = _sent_from_an_untagged_span(consumer_tenant, below=TAG_B,
                                                                            same_trace=order == "same-trace")
    a = _analyse_in(order, tmp_path, [] if order == "same-trace" else [producer], consumer)
    found = [(f.rule, f.severity, f.span_id, f.parent_span_id, f.parent_trace_id) for f in a.findings]
    assert found == [
        ("cross-tenant", Severity.CRITICAL, process.span_id, entry.span_id, producer.trace_id),
        ("context-dropped", Severity.HIGH, send.span_id, entry.span_id, producer.trace_id),
    ]
    cross = a.findings[0]
    assert (cross.parent_name, cross.parent_service) == ("POST /orders", "api")
    assert cross.message == (
        ("'worker orders process' runs for a different tenant than " if consumer_tenant else
         "the work below 'worker orders process' ran for a different tenant than ")
        + "'api POST /orders' above 'api orders send', which it links to, through spans that carried no tenant")
    edge = a.flow.edges[("api orders send", "worker orders process")]
    assert (edge.switched, edge.bound, edge.untagged, edge.via_link) == (1, 0, 0, 1)
    assert a.flow.nodes["worker orders process"].findings == {"cross-tenant": 1}
    (path,) = [p for p in a.paths if p.span_ids[0] == process.span_id]
    assert (path.broken_at, path.break_rule, path.severity) == (0, "cross-tenant", Severity.CRITICAL)


@pytest.mark.parametrize("order", _ORDERS)
@pytest.mark.parametrize("consumer_tenant", [TAG_A, None], ids=["consumer-tagged", "bound-below-the-consumer"])
def test_the_same_tenant_through_an_untagged_producer_is_no_switch(tmp_path, order, consumer_tenant):
    """The near miss: the consumer runs for A, the tenant of the tagged span above the
    untagged send (or binds A below it): only the send's own context-dropped, and the
    link counts as the tenant bound (or untagged) at the consumer, as before."""
    producer, consumer, entry, send, process = _sent_from_an_untagged_span(consumer_tenant, below=TAG_A,
                                                                            same_trace=order == "same-trace")
    a = _analyse_in(order, tmp_path, [] if order == "same-trace" else [producer], consumer)
    assert [(f.rule, f.span_id) for f in a.findings] == [("context-dropped", send.span_id)]
    edge = a.flow.edges[("api orders send", "worker orders process")]
    assert (edge.switched, edge.bound, edge.untagged) == ((0, 1, 0) if consumer_tenant else (0, 0, 1))


@pytest.mark.parametrize("order", _ORDERS)
@pytest.mark.parametrize("record", ["unbound", "another-records-tenant"])
def test_a_stamped_batch_through_an_untagged_producer_switched_only_a_record_handled_for_another_tenant(
    tmp_path, order, record,
):
    """A batch span stamped with B (a record bound B below it) links to B's message and
    to one that A's request sent from an untagged span; A's record handled with no
    tenant lost A's tenant, which is the send's own context-dropped (beside the record's):
    no switch from A to the batch's B. Handled under B's tenant, it is the switch."""
    producer, consumer, entry, send, process = _sent_from_an_untagged_span(TAG_B, same_trace=order == "same-trace")
    other = consumer if order == "same-trace" else TraceBuilder()
    pub = other.span("publish job", kind=PRODUCER, service="api", tenant=TAG_B, boundary="queue.publish")
    process.spec.links.append((pub.trace_id, pub.span_id, {}))
    if record == "unbound":
        unbound = process.child("refund", service="worker", boundary="tool", attrs={"flowmap.unscoped": True})
    else:
        process.child("refund", service="worker", tenant=TAG_B, boundary="tool")
    producers = [] if order == "same-trace" else [producer, other]
    a = _analyse_in(order, tmp_path, producers, consumer)
    found = sorted((f.rule, f.span_id, f.parent_span_id) for f in a.findings)
    if record == "unbound":
        assert found == sorted([("context-dropped", send.span_id, entry.span_id),
                                ("context-dropped", unbound.span_id, process.span_id)])
    else:
        assert found == sorted([("context-dropped", send.span_id, entry.span_id),
                                ("cross-tenant", process.span_id, entry.span_id)])


@pytest.mark.parametrize("order", ["same-trace", "producer-first", "consumer-first", "producer-first-memory"])
@pytest.mark.parametrize("stop", ["authenticating send", "declared tenantless entry", "neither"])
def test_the_walk_above_an_untagged_producer_stops_where_a_parent_edges_does(tmp_path, order, stop):
    """The walk up from the untagged send stops, with no tagged span, at a span marked
    flowmap.authenticating and at an entry declared in tenantless_entries, as the walk
    above a span's untagged parents does: no switch then; without either it is one."""
    producer = TraceBuilder(service="api")
    gateway = producer.span("POST /signin", kind=CLIENT, service="gateway", tenant=TAG_A)
    signin = gateway.child("POST /signin", kind=SERVER, service="auth")
    send = signin.child("events send", kind=PRODUCER, service="auth",
                        attrs={"flowmap.authenticating": True} if stop == "authenticating send" else {})
    consumer = producer if order == "same-trace" else TraceBuilder(service="worker")
    process = consumer.span("events process", kind=CONSUMER, service="worker", tenant=TAG_B,
                            boundary="queue.consume", links=[send])
    settings = AnalysisSettings(tenantless_entries=("auth POST /signin",)) if stop == "declared tenantless entry" else None
    builders = [producer, consumer] if order.startswith("producer-first") else [consumer, producer]
    if order == "same-trace":
        a = analyze_traces([producer.traces()], settings)
    elif order.endswith("memory"):
        a = analyze_traces([b.traces() for b in builders], settings)
    else:
        a = analyze([write_otlp(tmp_path / "t.jsonl", *builders)], settings)
    cross = [(f.span_id, f.parent_span_id) for f in a.findings if f.rule == "cross-tenant"]
    assert cross == ([(process.span_id, gateway.span_id)] if stop == "neither" else [])


def test_warnings_left_out_are_counted_whole_below_the_loaders_own_cap(tmp_path):
    """``max_warnings`` under the loader's cap: the count of the rest still covers every
    bad line, also those the loader only counted (its "N more not shown" line)."""
    from flowmap.loading import MAX_WARNINGS

    bad = MAX_WARNINGS + 300
    healthy, _, _ = _mixed()
    f = write_otlp(tmp_path / "a.jsonl", healthy)
    f.write_text(f.read_text() + "garbage\n" * bad)
    result = public_analyze([f], AnalysisSettings(max_warnings=50))
    assert len(result.warnings) == 51
    assert result.warnings[-1] == f"... and {bad - 50} more warnings"
