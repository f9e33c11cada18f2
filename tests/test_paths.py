"""Paths from the entry span to each final tool call, with the first broken edge."""

import pytest

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


# -- a deep chain with many tool calls: targets chosen first, prefixes shared --------------

class _CountingParents(dict):
    """A span graph's parent map that counts the lookups made through ``get``."""

    calls = 0

    def get(self, key, default=None):
        self.calls += 1
        return super().get(key, default)


def _reference_paths(graph, verdict, max_targets):
    """The paths as they were built before targets were chosen first: every final
    target's whole chain, grouped by its top, then capped."""
    from flowmap.paths import _final, entry_span
    from flowmap.rules import BREAK_RULES

    spans = graph.spans
    tops = graph.tops()
    entry = entry_span(graph)
    if entry is not None and entry in tops and tops[0] != entry:
        tops = [entry] + [t for t in tops if t != entry]
    by_top: dict = {}
    for target in _final(graph, [s for s, span in spans.items() if span.boundary == "tool"]):
        chain = graph.chain(target)
        by_top.setdefault(chain[0], []).append(chain)
    if len(by_top) < len(tops):
        with_tools = set(by_top)
        for target in _final(graph, [s for s, span in spans.items() if span.boundary is not None]):
            chain = graph.chain(target)
            if chain[0] not in with_tools:
                by_top.setdefault(chain[0], []).append(chain)
    out = []
    for top in tops:
        for chain in sorted(by_top.get(top, ()), key=lambda c: graph._sort_key(c[-1])):
            if len(out) == max_targets:
                return _reference_budget(out)
            broken_at = rule = severity = worst = None
            for i, sid in enumerate(chain):
                for f in verdict.by_span.get(sid, ()):
                    if worst is None or f.severity > worst:
                        worst = f.severity
                    if broken_at is None and f.rule in BREAK_RULES:
                        broken_at, rule, severity = i, f.rule, f.severity
            out.append((chain, broken_at, rule, severity, worst))
    return _reference_budget(out)


def _reference_budget(paths):
    """Of ``paths``, those kept within MAX_PATH_SPANS span ids, in their order: take the
    worst left (first break's severity, then worst finding's, then length; ties: the
    first), keep it if it fits (the first taken always), until none is left."""
    from flowmap.paths import MAX_PATH_SPANS

    def rank(i):
        _, _, _, severity, worst = paths[i]
        return (-1 if severity is None else int(severity), -1 if worst is None else int(worst), len(paths[i][0]), -i)

    left, kept, remaining = MAX_PATH_SPANS, set(), list(range(len(paths)))
    while remaining:
        i = max(remaining, key=rank)
        remaining.remove(i)
        if len(paths[i][0]) <= left or not kept:
            kept.add(i)
            left -= len(paths[i][0])
    return [p for i, p in enumerate(paths) if i in kept]


def _random_trace(rng):
    tb = TraceBuilder()
    refs: list = []
    for i in range(rng.randint(1, 40)):
        boundary = rng.choice([None, None, "tool", "tool", "db", "agent"])
        tenant = rng.choice([TAG_A, TAG_A, TAG_A, None, TAG_B])
        kind = SERVER if i == 0 or rng.random() < 0.1 else 1
        if refs and rng.random() < 0.85:
            # mostly below the newest spans: deep chains with fan-out
            refs.append(rng.choice(refs[-5:] if rng.random() < 0.7 else refs).child(
                f"s{i}", tenant=tenant, boundary=boundary))
        elif rng.random() < 0.5:
            refs.append(tb.span(f"s{i}", kind=kind, tenant=tenant, boundary=boundary, parent="00000000000000ff"))
        else:
            refs.append(tb.span(f"s{i}", kind=kind, tenant=tenant, boundary=boundary))
    return SpanGraph(tb.traces())


@pytest.mark.parametrize("walks", ["plain", "once"])
def test_paths_are_those_of_every_chain_built_then_capped(monkeypatch, walks):
    """Choosing the targets before building paths, and sharing prefixes (what a trace
    past the plain walks' allowance gets: forced here with none allowed), changes no
    path, no break and no cap (random traces: roots, missing parents, fan-out, findings)."""
    import random

    import flowmap.paths as paths

    if walks == "once":
        monkeypatch.setattr(paths, "_walks_allowed", lambda parent: 0)
    rng = random.Random(3)
    for cap, budget in ((1000, 100_000), (3, 100_000), (1000, 12)):
        monkeypatch.setattr(paths, "MAX_TARGETS_PER_TRACE", cap)
        monkeypatch.setattr(paths, "MAX_PATH_SPANS", budget)
        for _ in range(400):
            g = _random_trace(rng)
            verdict = evaluate(g, AnalysisSettings())
            got = [(p.span_ids, p.broken_at, p.break_rule, p.severity, p.worst) for p in trace_paths(g, verdict)]
            assert got == _reference_paths(g, verdict, cap)
            assert all(p.trace_id == g.trace.trace_id for p in trace_paths(g, verdict))


def _deep_chain_with_tools(depth: int, tools: int, *, tool_under: int | None = None):
    tb = TraceBuilder()
    node = tb.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server")
    chain = [node]
    for i in range(depth - 1):
        node = node.child(f"step {i}", tenant=TAG_A)
        chain.append(node)
    under = chain[-1] if tool_under is None else chain[tool_under]
    calls = [under.child("tool x", tenant=TAG_A if i % 7 else None, boundary="tool") for i in range(tools)]
    return tb, chain, calls


def test_a_deep_chain_with_many_tool_calls_is_walked_once(monkeypatch):
    """The audit's hostile trace: a chain of D spans with N tool calls under its last one.
    Every final tool call's chain was built before the cap chose 1,000 of them (D x N
    steps and lists: 40,000 spans took 44 s and 3.3 GB); now each span is walked once,
    and the paths chosen are the same (with no budget of span ids: see the next test)."""
    import flowmap.paths as paths_module
    from flowmap.paths import MAX_TARGETS_PER_TRACE, longest_path_bound

    monkeypatch.setattr(paths_module, "MAX_PATH_SPANS", 10**9)
    depth, tools = 1500, 1500
    tb, chain, calls = _deep_chain_with_tools(depth, tools)
    g = SpanGraph(tb.traces())
    verdict = evaluate(g, AnalysisSettings())
    g.parent = counting = _CountingParents(g.parent)
    assert longest_path_bound(g) == depth + 1
    paths = trace_paths(g, verdict)
    # was depth * tools; the paths are walked twice (what each would say, then those kept)
    assert counting.calls <= 12 * len(g.spans)
    ids = [c.span_id for c in chain]
    chosen = sorted(c.span_id for c in calls)[:MAX_TARGETS_PER_TRACE]  # same start: by id
    assert [p.span_ids for p in paths] == [ids + [t] for t in chosen]
    dropped = {c.span_id for i, c in enumerate(calls) if not i % 7}
    assert [p.break_rule for p in paths] == ["context-dropped" if t in dropped else None for t in chosen]
    assert all(p.broken_at in (None, depth) for p in paths)


def test_a_deep_trace_keeps_its_worst_paths_within_the_budget():
    """The same trace under MAX_PATH_SPANS: of its 1,000 paths of 1,501 ids, the 66 that
    fit are the broken ones (every 7th tool call lost the tenant), in their order, not
    the first 66 (mostly intact)."""
    from flowmap.paths import MAX_PATH_SPANS, MAX_TARGETS_PER_TRACE

    depth, tools = 1500, 1500
    tb, chain, calls = _deep_chain_with_tools(depth, tools)
    g = SpanGraph(tb.traces())
    paths = trace_paths(g, evaluate(g, AnalysisSettings()))
    ids = [c.span_id for c in chain]
    dropped = {c.span_id for i, c in enumerate(calls) if not i % 7}
    chosen = [t for t in sorted(c.span_id for c in calls)[:MAX_TARGETS_PER_TRACE] if t in dropped]
    assert [p.span_ids for p in paths] == [ids + [t] for t in chosen[:MAX_PATH_SPANS // (depth + 1)]]
    assert {p.break_rule for p in paths} == {"context-dropped"}


def test_many_starts_below_one_chain_are_bounded_as_before():
    """longest_path_bound walks each span once when many starts share a deep chain
    (after as many steps as twice the spans, the rest is walked with memory), with the
    same bound as walking up from each."""
    from flowmap.paths import _walk_up, _walk_up_once

    for tool_under in (0, 700, 1199):
        tb, chain, calls = _deep_chain_with_tools(1200, 600, tool_under=tool_under)
        g = SpanGraph(tb.traces())
        parent = _CountingParents(g.parent)
        tools = [c.span_id for c in calls]
        longest, reached = _walk_up(parent, tools)
        assert (longest, reached) == (tool_under + 2, {chain[0].span_id})
        assert parent.calls <= 6 * len(g.spans)
        assert _walk_up_once(g.parent, tools) == (longest, reached)
    import random

    rng = random.Random(5)
    for _ in range(300):
        g = _random_trace(rng)
        starts = [s for s in g.spans if rng.random() < 0.5]
        assert _walk_up_once(g.parent, starts) == _walk_up(g.parent, starts)


# -- paths hold at most MAX_PATH_SPANS span ids: a path is as long as its chain ------------

def _ids(paths) -> int:
    return sum(len(p.span_ids) for p in paths)


@pytest.mark.parametrize("walks", ["plain", "once"])
def test_the_paths_of_a_deep_chain_hold_at_most_max_path_spans(monkeypatch, walks):
    """A recursive agent 3,000 spans deep calling a tool at every 30th step: its 100
    paths held 150,000 span ids (at 80,000 deep, 80 million: a 770 MB JSON output and 87 s
    for the text summary). The worst paths that fit are built (all intact: the deepest), each whole."""
    import flowmap.paths as paths

    if walks == "once":
        monkeypatch.setattr(paths, "_walks_allowed", lambda parent: 0)
    tb = TraceBuilder()
    node = tb.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server")
    for i in range(1, 3000):
        node = node.child("step", tenant=TAG_A)
        if i % 30 == 0:
            node.child("tool x", tenant=TAG_A, boundary="tool")
    built = _paths(tb)
    lengths = [len(p.span_ids) for p in built]
    every = {32 + 30 * k for k in range(99)}  # each kept whole
    assert 0 < sum(lengths) <= paths.MAX_PATH_SPANS and set(lengths) <= every
    assert lengths == sorted(lengths) and max(lengths) == max(every)  # in order; the deepest (ties: longest) kept
    assert all(sum(lengths) + n > paths.MAX_PATH_SPANS for n in every - set(lengths))  # as many as fit


def test_a_path_longer_than_the_budget_is_kept_whole_and_alone(monkeypatch):
    import flowmap.paths as paths

    monkeypatch.setattr(paths, "MAX_PATH_SPANS", 10)
    tb, chain, calls = _deep_chain_with_tools(12, 3)
    built = _paths(tb)
    assert [len(p.span_ids) for p in built] == [13]
    sample = PathSample(5)
    for p in built:
        sample.add(p)
    assert sample.worst_first() == built


def test_the_sample_keeps_the_worst_paths_that_fit_in_max_path_spans(monkeypatch):
    """Five paths of 4 ids each fit a budget of 12 three at a time: the worst three are
    kept (the dropped ones before the intact ones)."""
    import flowmap.paths as paths

    monkeypatch.setattr(paths, "MAX_PATH_SPANS", 12)
    sample = PathSample(10)
    traces = {}
    for tenant in (TAG_A, None, TAG_A, TAG_B, None):
        tb = TraceBuilder()
        tb.span("in", kind=SERVER, tenant=TAG_A).child("agent", tenant=TAG_A).child("mid", tenant=TAG_A).child(
            "tool", tenant=tenant, boundary="tool")
        for p in _paths(tb):
            sample.add(p)
            traces[p.trace_id] = tenant
    kept = sample.worst_first()
    assert _ids(kept) == 12
    assert [traces[p.trace_id] for p in kept] == [TAG_B, None, None]


def test_an_analysis_of_deep_chains_keeps_at_most_max_path_spans(tmp_path):
    """Over the whole run too: 40 traces, each a chain of 3,000 with its tool call at the
    bottom, gave 40 paths of 3,001 ids (120,000)."""
    from flowmap.paths import MAX_PATH_SPANS

    builders = []
    for _ in range(40):
        tb = TraceBuilder()
        node = tb.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server")
        for _ in range(2999):
            node = node.child("step", tenant=TAG_A)
        node.child("tool x", boundary="tool")
        builders.append(tb)
    a = analyze_built(tmp_path, *builders)
    assert 0 < _ids(a.paths) <= MAX_PATH_SPANS
    assert len(a.paths) == MAX_PATH_SPANS // 3001
    assert all(p.break_rule == "context-dropped" for p in a.paths)
