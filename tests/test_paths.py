"""Paths from the entry span to each final tool call, with the first broken edge."""

from flowmap.graph import SpanGraph
from flowmap.paths import PathSample, trace_paths
from flowmap.rules import evaluate
from flowmap.settings import AnalysisSettings

from otlp_builder import SERVER, TAG_A, TAG_B, TraceBuilder, analyze_built


def _paths(tb):
    g = SpanGraph(tb.traces())
    return trace_paths(g, evaluate(g, AnalysisSettings()))


def test_path_to_each_final_tool_call_with_first_broken_edge(tmp_path):
    tb = TraceBuilder()
    entry = tb.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server")
    agent = entry.child("agent", tenant=TAG_A, boundary="agent")
    ok_tool = agent.child("tool weather", tenant=TAG_A, boundary="tool")
    pool = agent.child("pool worker")  # tenant dropped here
    bad_tool = pool.child("tool search", boundary="tool").child("tool subcall", boundary="tool")
    a = analyze_built(tmp_path, tb)
    by_target = {p.span_ids[-1]: p for p in a.paths}
    assert set(by_target) == {ok_tool.span_id, bad_tool.span_id}  # only the deepest tool on a branch
    good = by_target[ok_tool.span_id]
    assert good.span_ids == [entry.span_id, agent.span_id, ok_tool.span_id]
    assert good.broken_at is None and good.break_rule is None
    bad = by_target[bad_tool.span_id]
    assert bad.span_ids[:3] == [entry.span_id, agent.span_id, pool.span_id]
    assert bad.broken_at == 2 and bad.break_rule == "context-dropped"
    assert a.paths[0] is bad  # worst first


def test_switched_tenant_breaks_the_path():
    tb = TraceBuilder()
    entry = tb.span("POST /chat", kind=SERVER, tenant=TAG_A)
    entry.child("agent", tenant=TAG_A).child("memory", tenant=TAG_B, boundary="memory", scoped=True).child(
        "tool x", tenant=TAG_B, boundary="tool")
    [p] = _paths(tb)
    assert (p.broken_at, p.break_rule) == (2, "cross-tenant")


def test_orphan_subtree_path_breaks_at_its_root():
    tb = TraceBuilder()
    tb.span("POST /chat", kind=SERVER, tenant=TAG_A).child("agent", tenant=TAG_A)
    orphan = tb.span("pool task")
    orphan.child("tool send_mail", boundary="tool")
    paths = _paths(tb)
    [p] = paths
    assert p.span_ids[0] == orphan.span_id and (p.broken_at, p.break_rule) == (0, "orphan-root")


def test_without_tools_paths_end_at_deepest_boundaries():
    tb = TraceBuilder()
    entry = tb.span("GET /docs", kind=SERVER, tenant=TAG_A, boundary="http.server")
    db = entry.child("handler", tenant=TAG_A).child("select", tenant=TAG_A, boundary="db", scoped=True)
    [p] = _paths(tb)
    assert p.span_ids[-1] == db.span_id and p.broken_at is None


def test_path_sample_keeps_the_worst():
    sample = PathSample(2)
    traces = []
    for tenant in (TAG_A, None, TAG_A):
        tb = TraceBuilder()
        tb.span("in", kind=SERVER, tenant=TAG_A).child("tool", tenant=tenant, boundary="tool")
        traces.append(tb)
        for p in _paths(tb):
            sample.add(p)
    kept = sample.worst_first()
    assert len(kept) == 2
    assert kept[0].trace_id == traces[1].trace_id and kept[0].break_rule == "context-dropped"
    assert kept[1].trace_id == traces[0].trace_id  # ties: first seen wins


def test_traces_skipped_once_the_sample_is_full_change_nothing(tmp_path):
    """Paths are only built for traces that could enter the sample: same result as building all."""
    builders = []
    for i in range(12):
        tb = TraceBuilder()
        entry = tb.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server")
        node = entry
        for _ in range(i % 4):  # paths of different lengths
            node = node.child("step", tenant=TAG_A)
        # every third trace drops the tenant, every fifth switches it
        tenant = None if i % 3 == 0 else TAG_B if i % 5 == 0 else TAG_A
        node.child("tool x", tenant=tenant, boundary="tool")
        builders.append(tb)
    settings = AnalysisSettings(max_paths=3)
    a = analyze_built(tmp_path, *builders, settings=settings)
    every = PathSample(3)
    for tb in builders:
        for p in _paths(tb):
            every.add(p)
    expected = [(p.trace_id, p.span_ids, p.break_rule) for p in every.worst_first()]
    assert [(p.trace_id, p.span_ids, p.break_rule) for p in a.paths] == expected
    assert [p.break_rule for p in a.paths] == ["cross-tenant"] * 2 + ["context-dropped"]


def test_longest_path_bound_is_never_below_a_built_path():
    """The sample turns traces away on this bound: were it ever below a real path, that
    path could be missing from the sample."""
    import random

    from flowmap.paths import longest_path_bound

    rng = random.Random(7)
    for _ in range(300):
        tb = TraceBuilder()
        refs: list = []
        for i in range(rng.randint(1, 14)):
            boundary = rng.choice([None, None, "tool", "db", "agent", "vector"])
            kind = SERVER if i == 0 or rng.random() < 0.1 else 1
            if refs and rng.random() < 0.85:
                refs.append(rng.choice(refs).child(f"s{i}", tenant=TAG_A, boundary=boundary))
            elif rng.random() < 0.5:  # a parent outside the trace, or another root
                refs.append(tb.span(f"s{i}", kind=kind, tenant=TAG_A, boundary=boundary, parent="00000000000000ff"))
            else:
                refs.append(tb.span(f"s{i}", kind=kind, tenant=TAG_A, boundary=boundary))
        g = SpanGraph(tb.traces())
        built = trace_paths(g, evaluate(g, AnalysisSettings()))
        assert longest_path_bound(g) >= max((len(p.span_ids) for p in built), default=0)


def test_a_full_sample_builds_no_paths_for_traces_that_cannot_enter(tmp_path):
    """Healthy traces whose paths are no longer than the weakest kept one are turned away
    without building paths, even when their spans go deeper below the tool call; a
    longer healthy path still enters."""
    def trace(depth: int, below_tool: int = 0) -> TraceBuilder:
        tb = TraceBuilder()
        node = tb.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server")
        for _ in range(depth):
            node = node.child("step", tenant=TAG_A)
        node = node.child("tool x", tenant=TAG_A, boundary="tool")
        for _ in range(below_tool):
            node = node.child("select", tenant=TAG_A, boundary="db", scoped=True)
        return tb

    sample = PathSample(2)
    for tb in (trace(1), trace(1)):
        for p in _paths(tb):
            sample.add(p)
    deep_below = SpanGraph(trace(1, below_tool=4).traces())
    assert not sample.wants(evaluate(deep_below, AnalysisSettings()), deep_below)
    longer = SpanGraph(trace(2).traces())
    assert sample.wants(evaluate(longer, AnalysisSettings()), longer)
    a = analyze_built(tmp_path, trace(1), trace(1), trace(1, below_tool=4), trace(2), settings=AnalysisSettings(max_paths=2))
    assert sorted(len(p.span_ids) for p in a.paths) == [3, 4]
