"""The risk map's data: what the page shows, capped, stated, masked, and safe to embed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from flowmap.html import render_report, script_json, write_report
from flowmap.masking import MASK
from flowmap.model import Analysis, FlowEdge, FlowMap, FlowNode, Severity, Span, Trace
from flowmap.report_data import Caps, build_report_data
from report_fixture import (
    RAW_LEAK,
    RAW_TENANTS,
    TAGS,
    XSS_ATTR,
    XSS_BREAKOUT,
    XSS_NAME,
    build_analysis,
    long_names,
    long_trace,
    LONG,
    platform_builders,
    write_platform_otlp,
)


@pytest.fixture(scope="module")
def analysis() -> Analysis:
    return build_analysis()


@pytest.fixture(scope="module")
def data(analysis):
    return build_report_data(analysis)


def _edge(data, source_suffix: str, target_suffix: str):
    nodes = {n.id: n for n in data.nodes}
    for e in data.edges:
        if nodes[e.source].op.endswith(source_suffix) and nodes[e.target].op.endswith(target_suffix):
            return e
    raise AssertionError(f"no edge {source_suffix} -> {target_suffix}")


def test_header_counts_and_verdict(analysis, data):
    h = data.header
    assert (h.traces, h.spans, h.services) == (analysis.traces, analysis.spans, len(analysis.services))
    assert h.tenant_tags == 3  # a number, never the tags or ids themselves
    assert h.files_total == 2
    assert h.severities["critical"] == sum(f.severity == Severity.CRITICAL for f in analysis.findings) > 0
    assert list(h.severities) == ["critical", "high", "medium", "low", "info"]
    assert h.verdict_level == "critical"
    assert "switched to another tenant" in h.verdict


def test_verdict_when_clean():
    clean = Analysis(traces=4, spans=10)
    data = build_report_data(clean)
    assert data.header.verdict_level == "ok"
    assert "No tenant context breaks found in 4 traces" in data.header.verdict
    assert data.nodes == [] and data.edges == []
    assert "No operations in the input." in render_report(clean)


def test_every_kind_of_edge_is_classified(data):
    assert _edge(data, "agent.run support-agent", "tool refund_order").kind == "switched"
    assert _edge(data, "agent.run support-agent", "tool send_email").kind == "dropped"
    orphan = _edge(data, "agent.run support-agent", "tool summarize_file")
    assert orphan.kind == "orphaned" and orphan.orphaned > 0
    assert _edge(data, "agent.run support-agent", "planner.plan").kind == "inherited"
    queue = _edge(data, "queue.publish ingest", "queue.consume ingest")
    assert queue.via_link and "via-link" in queue.classes and queue.classes.startswith("edge dropped")
    mixed = _edge(data, "agent.run support-agent", "tool refund_order")
    assert mixed.mixed and mixed.label == f"{mixed.switched}/{mixed.total}"
    assert "switched" in mixed.title and "inherited" in mixed.title


def test_orphans_hang_under_their_likely_parent(data):
    nodes = {n.id: n for n in data.nodes}
    orphan = _edge(data, "agent.run support-agent", "tool summarize_file")
    assert nodes[orphan.target].x > nodes[orphan.source].x
    f = next(f for f in data.findings if f.rule == "orphan-root")
    assert f.edge == orphan.id and f.node == orphan.target


def test_findings_link_to_nodes_edges_and_traces(data):
    assert [f.rank for f in data.findings] == sorted((f.rank for f in data.findings), reverse=True)
    switched = _edge(data, "agent.run support-agent", "tool refund_order")
    cross = [f for f in data.findings if f.rule == "cross-tenant"]
    assert cross and all(f.edge == switched.id for f in cross)
    assert all(f.in_trace_view == (f.trace_id in data.traces) for f in data.findings)
    assert any(f.in_trace_view for f in data.findings)
    node = next(n for n in data.nodes if n.op.endswith("tool send_email"))
    assert node.worst == "high" and node.findings["context-dropped"] > 0
    assert node.examples and node.examples[0] in data.traces  # openable examples first


def test_trace_view_marks_the_first_broken_edge(analysis, data):
    broken = [p for p in analysis.paths if p.broken_at is not None and p.trace_id in data.traces]
    assert broken
    for p in broken:
        tv = data.traces[p.trace_id]
        assert tv.first_broken == p.span_ids[p.broken_at]
        assert tv.break_rule == p.break_rule
        span = next(s for s in tv.spans if s.span_id == tv.first_broken)
        assert span.on_path and span.broken == p.break_rule
    tv = data.traces[broken[0].trace_id]
    assert tv.spans[0].depth == 0 and tv.spans[0].boundary == "http.server"
    assert all(s.tenant in (None, *TAGS) for s in tv.spans)
    assert any(s.tenant_hue is not None for s in tv.spans)


def test_raw_tenant_ids_are_masked_even_if_the_analyzer_missed_one(analysis, data):
    leaked = [s for t in analysis.sample_traces.values() for s in t.spans.values()
              if s.attributes.get("tenant_id") == RAW_LEAK]
    assert leaked, "fixture must plant an unmasked raw tenant id"
    shown = [v for t in data.traces.values() for s in t.spans for k, v in s.attributes if k == "tenant_id"]
    assert shown and set(shown) == {MASK}
    blob = json.dumps(dataclasses.asdict(data), default=str) + json.dumps(data.script_data())
    for raw in RAW_TENANTS:
        assert raw not in blob


def test_non_opaque_tenant_attribute_is_masked():
    span = Span("t1", "s1", None, "GET /", 2, "api", tenant="customer-42", boundary="http.server",
                attributes={"flowmap.tenant": "customer-42", "baggage.user": "bob@example.com"})
    a = Analysis(traces=1, spans=1, services={"api"}, sample_traces={"t1": Trace("t1", {"s1": span})},
                 flow=FlowMap(nodes={"api GET /": FlowNode("api GET /", "api", "GET /", "http.server", 1, 0, True)}))
    data = build_report_data(a)
    s = data.traces["t1"].spans[0]
    assert s.tenant == MASK and s.tenant_hue is None
    assert dict(s.attributes) == {"flowmap.tenant": MASK, "baggage.user": MASK}
    html = render_report(a)
    assert "customer-42" not in html and "bob@example.com" not in html


def _conversation() -> Analysis:
    prompt = "My card is 4111-1111-1111-1111, please refund order 77"
    span = Span("t1", "s1", None, "chat gpt-4o", 3, "agent", tenant=TAGS[0], boundary="llm", attributes={
        "flowmap.tenant": TAGS[0], "gen_ai.request.model": "gpt-4o",
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": prompt}]}]),
        "llm.input_messages.0.message.content": prompt,  # OpenInference, flattened
        "gen_ai.tool.call.arguments": json.dumps({"order": 77, "note": prompt}),
    })
    return Analysis(traces=1, spans=1, services={"agent"}, sample_traces={"t1": Trace("t1", {"s1": span})},
                    flow=FlowMap(nodes={"agent chat gpt-4o": FlowNode("agent chat gpt-4o", "agent", "chat gpt-4o",
                                                                      "llm", 1, 0, True)}))


def test_conversation_and_tool_content_is_shown_by_size_only_unless_asked():
    """The page is shared (a CI artifact, a ticket): what the tenant's users said to the
    model, and what its tools were given, stays out of it; the other attributes are shown."""
    a = _conversation()
    data = build_report_data(a)
    shown = dict(data.traces["t1"].spans[0].attributes)
    assert shown["gen_ai.request.model"] == "gpt-4o"
    for key in ("gen_ai.input.messages", "llm.input_messages.0.message.content", "gen_ai.tool.call.arguments"):
        assert shown[key].endswith("characters of content not shown]"), (key, shown[key])
    assert any("3 attribute values of conversation and tool content" in n for n in data.notices)
    html = render_report(a)
    assert "4111-1111" not in html and "refund order" not in html
    full = render_report(a, content=True)
    assert "4111-1111-1111-1111, please refund order 77" in full and "content not shown" not in full


def test_hostile_names_are_kept_verbatim_in_data(data):
    # escaping is the renderer's job; the data keeps what the trace said (so it shows literally)
    ops = {n.name for n in data.nodes}
    assert f"tool {XSS_NAME}" in ops
    # invisible separators / bidi overrides are made visible rather than rendered
    assert f"tool {XSS_BREAKOUT}".replace("\u2028", "\\u2028") in ops
    values = {v for t in data.traces.values() for s in t.spans for _, v in s.attributes}
    assert XSS_ATTR in values


def _csp(page: str) -> str:
    import html as html_mod
    import re

    m = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', page)
    assert m, "no CSP meta tag"
    return html_mod.unescape(m.group(1))


def test_script_json_cannot_close_its_script_element():
    value = {"name": "</script><script>alert(1)</script>", "c": "<!-- & \u2028\u2029 >"}
    text = script_json(value)
    for bad in ("<", ">", "&", "\u2028", "\u2029"):
        assert bad not in text
    assert json.loads(text) == value


def test_rendered_page_escapes_everything(analysis):
    html = render_report(analysis)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '"><img src=x onerror' not in html and "<svg onload" not in html
    assert html.count("<script") == 2  # the JSON block and our one script
    assert html.count("</script>") == 2
    assert "\u2028" not in html
    assert "default-src 'none'" in _csp(html) and "img-src" not in _csp(html)
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in html.replace("https://example.com/page", "")  # the span name only
    for raw in RAW_TENANTS:
        assert raw not in html


def test_csp_hash_matches_the_inline_script(analysis):
    import base64
    import hashlib
    import re

    html = render_report(analysis)
    script = re.search(r"<script>(.*?)</script>", html, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}';" in _csp(html)
    assert "unsafe-inline" not in _csp(html).split("script-src")[1].split(";")[0]


def test_caps_cut_long_lists_and_say_so(analysis):
    caps = Caps(nodes=20, findings=10, traces=5, spans_per_trace=8, span_budget=30, examples_per_edge=2)
    data = build_report_data(analysis, caps)
    assert len(data.nodes) == 20 and len(data.findings) == 10 and len(data.traces) <= 5
    assert all(len(t.spans) <= 8 for t in data.traces.values())
    assert sum(len(t.spans) for t in data.traces.values()) <= 30
    assert all(len(e.examples) <= 2 for e in data.edges)
    text = " ".join(data.notices)
    assert "shows 20 of" in text and "10 most severe of" in text and "per trace" in text
    assert data.map_counts.startswith(f"20 of {len(analysis.flow.nodes)} operations · ")
    # the worst operations are the ones kept
    kept = {n.op for n in data.nodes}
    assert any(op.endswith("tool refund_order") for op in kept)
    # a cut trace still keeps its path and the span that broke
    for tv in data.traces.values():
        ids = {s.span_id for s in tv.spans}
        if tv.first_broken:
            assert tv.first_broken in ids
    html = render_report(analysis, caps)
    assert "most severe of" in html


def test_attribute_text_is_capped_over_the_whole_report_and_said_so(analysis):
    """A hostile input with long values on every span: the first spans keep their
    attributes, later ones are shown without them, and the page says so."""
    full = build_report_data(analysis, Caps())
    chars = sum(len(k) + len(str(v)) for t in full.traces.values() for sp in t.spans for k, v in sp.attributes)
    assert chars > 200  # the premise: this input has attributes to cut
    capped = build_report_data(analysis, Caps(attribute_chars=chars // 3))
    shown = [sum(len(k) + len(str(v)) for k, v in sp.attributes) for t in capped.traces.values() for sp in t.spans]
    assert sum(shown) <= chars // 3 and shown[0] > 0
    assert any("without all their attributes" in n for n in capped.notices)
    assert not any("without all their attributes" in n for n in full.notices)


def test_huge_input_gives_a_small_report():
    """An analysis of a big input (aggregated, as analyze returns it) renders within bounds."""
    nodes = {}
    edges = {}
    findings = []
    sample = {}
    from flowmap.model import Finding

    for i in range(600):
        op = f"svc{i % 9} op{i}"
        nodes[op] = FlowNode(op, f"svc{i % 9}", f"op{i}", "tool" if i % 3 else None, spans=170, untagged=i % 2)
        if i:
            parent = f"svc{(i // 2) % 9} op{i // 2}"
            edges[(parent, op)] = FlowEdge(parent, op, inherited=150, dropped=i % 4,
                                           example_traces=[f"{k:032x}" for k in range(5)])
    for k in range(8000):
        findings.append(Finding("context-dropped", Severity.HIGH, f"{k % 500:032x}", f"{k:016x}", f"op{k % 600}",
                                None, None, f"svc{k % 9}", "tool", "tenant lost"))
    for t in range(500):
        spans = {f"{t:08x}{s:08x}": Span(f"{t:032x}", f"{t:08x}{s:08x}", None if s == 0 else f"{t:08x}{s - 1:08x}",
                                         f"op{s}", 1, f"svc{s % 9}", tenant=TAGS[0]) for s in range(200)}
        sample[f"{t:032x}"] = Trace(f"{t:032x}", spans)
    a = Analysis(traces=500, spans=100_000, services={f"svc{i}" for i in range(9)}, tenant_tags=set(TAGS),
                 findings=findings, flow=FlowMap(nodes, edges), sample_traces=sample)
    data = build_report_data(a)
    assert len(data.nodes) == 300 and len(data.findings) == 2000
    assert sum(len(t.spans) for t in data.traces.values()) <= 6000
    html = render_report(a)
    assert len(html.encode()) < 6_000_000
    assert "shows 300 of 600 operations" in html


def _dense_analysis(n: int) -> Analysis:
    """n operations, each calling every other: n * (n - 1) call edges among few nodes."""
    nodes = {f"svc op{i}": FlowNode(f"svc op{i}", "svc", f"op{i}", "tool", spans=n) for i in range(n)}
    edges = {}
    for i in range(n):
        for j in range(n):
            if i != j:
                edges[(f"svc op{i}", f"svc op{j}")] = FlowEdge(
                    f"svc op{i}", f"svc op{j}", inherited=1 + (i * j) % 7, switched=int((i + j) % 97 == 0))
    return Analysis(traces=1, spans=n * n, services={"svc"}, flow=FlowMap(nodes, edges))


def test_call_edges_on_the_map_are_capped_broken_ones_first_and_said_so():
    """A few operations that all call each other (an attacker needs n * n spans for it)
    were drawn with every one of their n * n arrows: 100 operations gave a 100 MB page
    whose layout took 20 seconds. The map keeps the broken calls, then the busiest."""
    a = _dense_analysis(80)
    switched = sum(1 for e in a.flow.edges.values() if e.switched)
    data = build_report_data(a, Caps(edges=100))
    drawn = [e for e in data.edges if e.source != e.target]
    assert len(drawn) == 100 and len(a.flow.edges) == 80 * 79
    assert sum(1 for e in drawn if e.kind == "switched") == switched  # none of the broken ones left off
    assert any("draws 100 of the 6,320 call edges" in n for n in data.notices)
    # the page's links only name edges it has
    ids = {e.id for e in data.edges}
    assert all(set(n.edges_in + n.edges_out) <= ids for n in data.nodes)
    # with the default caps the page stays small
    html = render_report(_dense_analysis(100))
    assert len(html.encode()) < 5_000_000


def _capped_platform() -> Analysis:
    """30 call edges each dropped once onto an operation that is no boundary (medium), one
    edge orphaned 6 times onto a vector search (high), and an agent loop calling itself."""
    from flowmap.analysis import analyze_traces
    from otlp_builder import CLIENT, SERVER, TAG_A, TraceBuilder

    builders = []
    for i in range(3):
        for j in range(10):
            tb = TraceBuilder(service="api")
            tb.span(f"GET /e{i}", kind=SERVER, tenant=TAG_A, boundary="http.server").child(f"step{j}")
            builders.append(tb)
    for k in range(8):
        tb = TraceBuilder(service="api")
        chat = tb.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server")
        if k < 6:  # the search ran in a thread pool, as a root without tenant
            tb.span("embed.docs", kind=CLIENT, boundary="vector")
        else:  # where it normally runs (the analysis learns the likely parent from these)
            chat.child("embed.docs", kind=CLIENT, tenant=TAG_A, boundary="vector")
            chat.child("agent.loop", tenant=TAG_A).child("agent.loop", tenant=TAG_A)
        builders.append(tb)
    return analyze_traces(b.traces() for b in builders)


def test_capped_map_draws_the_worst_broken_edges_and_says_what_it_left_out():
    """More broken call edges than the map draws: one edge orphaned 6 times (high) lost its
    place to single medium drops ranked field by field (any drop before any orphan), while
    the notice said the broken ones were kept, the verdict counted only the drawn edges and
    the toolbar counted a self-loop as a call edge."""
    a = _capped_platform()
    sev = {(f.rule, f.span_name): f.severity for f in a.findings}
    assert sev[("orphan-root", "embed.docs")] == Severity.HIGH  # the premise
    assert sev[("context-dropped", "step0")] == Severity.MEDIUM
    data = build_report_data(a, Caps(edges=10))
    arrows = [e for e in data.edges if e.source != e.target]
    assert len(arrows) == 10
    orphan = _edge(data, "POST /chat", "embed.docs")  # the worst edge is drawn
    assert orphan.kind == "orphaned" and orphan.orphaned == 6
    assert all(e.kind != "inherited" for e in arrows)  # the rest: broken ones, not the busiest
    notice = next(n for n in data.notices if "call edges between its operations" in n)
    assert "draws 10 of the 32 call edges" in notice and "the worst 10 of the 31 broken ones" in notice
    assert "21 broken call edges and 1 unbroken are left off the map" in notice
    assert "the broken ones (switched, dropped, orphaned) and the busiest" not in notice
    # the verdict counts the whole flow map, not the drawn edges
    assert "lost or unchecked on 31 call edges" in data.header.verdict
    # the toolbar says what it counts: arrows drawn of all calls, the self-loop apart
    assert data.map_counts == "16 operations · 10 of 32 call edges drawn · 1 operation calling itself (↻)"
    assert 'id="map-counts" class="muted small">16 operations · 10 of 32 call edges drawn' in render_report(
        a, Caps(edges=10))
    # uncapped: everything drawn, the toolbar without "of"
    full = build_report_data(a)
    assert not any("call edges between its operations" in n for n in full.notices)
    assert full.map_counts == "16 operations · 32 call edges · 1 operation calling itself (↻)"
    assert "lost or unchecked on 31 call edges" in full.header.verdict


def test_call_edges_within_the_cap_keep_every_broken_one_then_the_busiest():
    a = _capped_platform()
    data = build_report_data(a, Caps(edges=31))
    assert sum(1 for e in data.edges if e.source != e.target) == 31
    assert any("draws 31 of the 32 call edges between its operations: all 31 broken ones" in n
               for n in data.notices)


def test_write_report_creates_directories(tmp_path, analysis):
    out = write_report(analysis, tmp_path / "a" / "b" / "map.html")
    assert out.exists() and out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_end_to_end_from_otlp_json_lines(tmp_path):
    from flowmap.analysis import analyze

    path = write_platform_otlp(tmp_path / "platform.jsonl")
    analysis = analyze([path])
    data = build_report_data(analysis)
    kinds = {e.kind for e in data.edges}
    assert {"inherited", "dropped", "switched", "orphaned"} <= kinds
    assert data.header.tenant_tags == 2
    html = render_report(analysis)
    assert RAW_LEAK not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_end_to_end_in_memory():
    from flowmap.analysis import analyze_traces

    analysis = analyze_traces([b.traces() for b in platform_builders()])
    data = build_report_data(analysis)
    orphan = next(e for e in data.edges if e.kind == "orphaned")
    assert orphan.source_op == "agent-svc agent.run" and orphan.target_op == "tools tool summarize_file"
    assert any(t.first_broken for t in data.traces.values())


def test_a_long_trace_keeps_every_span_its_findings_point_at():
    """More finding spans than the cap: none is cut (the broken edge among them), and the
    view says how many others are left out."""
    from flowmap.analysis import analyze_traces

    tb, ids = long_trace()
    data = build_report_data(analyze_traces([tb.traces()]))
    tv = data.traces[tb.trace_id]
    shown = {s.span_id for s in tv.spans}
    assert len(data.findings) == 302 and all(f.span_id in shown and f.in_trace_view for f in data.findings)
    assert tv.first_broken in shown and tv.first_broken in (ids["dropped"], ids["switched"])
    assert tv.spans_total == 305 and len(tv.spans) == 302
    assert tv.notice.startswith("3 spans of this trace's 305 left out")


def test_a_cut_trace_keeps_both_ends_of_each_broken_edge_then_its_paths():
    from flowmap.analysis import analyze_traces

    tb, ids = long_trace(noise=30, noise_findings=False)
    analysis = analyze_traces([tb.traces()])
    data = build_report_data(analysis, Caps(spans_per_trace=6))
    tv = data.traces[tb.trace_id]
    shown = [s.span_id for s in tv.spans]
    assert set(ids.values()) <= set(shown) and len(shown) == 6  # the 5 that matter, then 1 other
    assert tv.notice.startswith("29 spans of this trace's 35 left out")
    assert all(f.in_trace_view for f in data.findings)


def test_in_trace_view_only_when_the_span_is_in_the_view():
    """A finding on a span of a sample trace that is not among its spans (a link judged
    against a summary) cannot be shown: its row offers no trace button."""
    from flowmap.model import Finding

    tb, ids = long_trace(noise=2, noise_findings=False)
    trace = tb.traces()
    span = trace.spans[ids["dropped"]]
    a = Analysis(traces=1, spans=len(trace.spans), sample_traces={trace.trace_id: trace}, findings=[
        Finding("context-dropped", Severity.HIGH, trace.trace_id, ids["dropped"], span.name, ids["agent"],
                "agent.run", "api", "tool", "lost"),
        Finding("context-dropped", Severity.HIGH, trace.trace_id, "f" * 16, "elsewhere", None, None, "api",
                "tool", "lost through a link"),
    ])
    data = build_report_data(a)
    assert [f.in_trace_view for f in data.findings] == [True, False]
    assert 'data-span="ffffffffffffffff"' not in render_report(a)


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def test_long_operation_names_are_cut_and_the_map_still_links_the_right_operations():
    from flowmap.analysis import analyze_traces

    caps = Caps()
    data = build_report_data(analyze_traces([long_names().traces()]), caps)
    longest = caps.service_chars + 1 + caps.name_chars
    assert max(map(len, _strings(data.script_data()))) <= max(longest, 400)  # 400: messages
    for n in data.nodes:
        assert len(n.name) <= caps.name_chars and len(n.service) <= caps.service_chars
        assert len(n.op) <= longest and "…" in n.op
    for f in data.findings:
        assert len(f.span_name) <= caps.name_chars and len(f.service) <= caps.service_chars
    # the two operations alike for 4000 characters stay two nodes, and the edges join the right ones
    by_boundary = {n.boundary: n for n in data.nodes}
    agent, tool = by_boundary["agent"], by_boundary["tool"]
    assert agent.id != tool.id and agent.op == tool.op
    into_tool = next(e for e in data.edges if e.target == tool.id)
    assert into_tool.source == agent.id and into_tool.kind == "dropped"
    assert into_tool.source_op == agent.op and len(into_tool.title) < 250
    assert next(f for f in data.findings if f.rule == "context-dropped").node == tool.id
    html = render_report(analyze_traces([long_names().traces()]))
    assert LONG[:caps.name_chars] not in html and len(html.encode()) < 120_000


def test_folded_operations_are_one_node_and_spans_point_at_it(tmp_path):
    # span names with ids in them: past the cap, the map draws one node per service
    from flowmap.settings import AnalysisSettings
    from otlp_builder import SERVER, TAG_A, TraceBuilder, analyze_built

    builders = []
    for i in range(6):
        tb = TraceBuilder()
        tb.span(f"GET /users/{i}", kind=SERVER, tenant=TAG_A, boundary="http.server").child(
            f"SELECT user {i}", boundary="db")  # the tenant dropped: a finding on every trace
        builders.append(tb)
    analysis = analyze_built(tmp_path, *builders, settings=AnalysisSettings(max_operations_per_service=2))
    data = build_report_data(analysis)
    other = [n for n in data.nodes if n.name == "(other operations)"]
    assert len(other) == 1 and other[0].findings == {"context-dropped": 5}
    assert any("(other operations)" in notice and "max_operations_per_service" in notice for notice in data.notices)
    last = data.traces[builders[-1].trace_id]
    assert {s.node for s in last.spans} == {other[0].id}
    # the findings table keeps each span's own name, and points at the node it was counted in
    listed = [f for f in data.findings if f.trace_id == builders[-1].trace_id]
    assert listed and "SELECT user 5" in listed[0].span_name and listed[0].node == other[0].id


def test_spans_of_services_past_the_count_of_folded_services_point_at_a_node(tmp_path, monkeypatch):
    import flowmap.graph
    from flowmap.settings import AnalysisSettings
    from otlp_builder import SERVER, TAG_A, TraceBuilder, analyze_built

    monkeypatch.setattr(flowmap.graph, "_FOLDED_SERVICES_MAX", 1)
    builders = []
    for i in range(5):
        tb = TraceBuilder()
        tb.span("GET /users", kind=SERVER, tenant=TAG_A, boundary="http.server").child(
            "SELECT user", boundary="db", service=f"db-{i}")  # the tenant dropped
        builders.append(tb)
    analysis = analyze_built(tmp_path, *builders, settings=AnalysisSettings(max_operations=2))
    data = build_report_data(analysis)
    ids = {n.id for n in data.nodes}
    for trace in data.traces.values():
        assert all(s.node in ids for s in trace.spans)
    assert all(f.node in ids for f in data.findings)


def test_the_script_data_holds_no_name_the_script_does_not_read(data):
    """Names are the bulk of the page, and a hostile one costs six bytes a character in
    the JSON (``<`` as ``\\u003c``): findings carried their span and service names and
    nodes their operation, which the findings table and the map already show and the
    script never read (2,000 findings of long '<' names: 22 MB, 18 MB without them)."""
    blob = data.script_data()
    assert all(set(f) == {"rule", "severity", "trace", "span", "message", "node", "edge"} for f in blob["findings"])
    assert all("op" not in n for n in blob["nodes"].values())
    script = (Path(__file__).resolve().parents[1] / "flowmap" / "templates" / "risk_map.js").read_text()
    for key in ("message", "node", "edge", "span", "trace"):
        assert f"f.{key}" in script


@pytest.mark.parametrize("char", ["<", '"', "\\"])
def test_the_attribute_cap_counts_what_the_page_writes_for_escaped_characters(char):
    """Values of '<' are written as \\u003c in the page's JSON: counted as one character
    each, 2,000,000 characters of them took 12 MB, six times the cap. A quote or a
    backslash is written as two: counted as one, they took twice the cap."""
    spans = {f"{s:016x}": Span("a" * 32, f"{s:016x}", None, f"op{s}", 1, "svc", tenant=TAGS[0],
                               attributes={f"k{i}": char * 100 for i in range(4)}) for s in range(1, 51)}
    a = Analysis(traces=1, spans=50, services={"svc"}, sample_traces={"a" * 32: Trace("a" * 32, spans)})
    data = build_report_data(a, Caps(attribute_chars=10_000))
    written = sum(len(script_json(k)) - 2 + len(script_json(v)) - 2
                  for t in data.traces.values() for sp in t.spans for k, v in sp.attributes)
    assert 5_000 < written <= 10_000
    assert any("without all their attributes" in n for n in data.notices)


def test_a_span_without_its_own_operation_is_never_drawn_on_another_services_alike(tmp_path):
    """Service "api" with span "tool refund" and service "api tool" with span "refund" are
    two operations (graph.Operations), but the report looked a span up by "<service>
    <name>" whenever its own (service, name) was not on the map: a span of "api tool"
    passed through (transparent_services) or folded past max_operations_per_service had
    its finding drawn on, and painted, the clean operation of "api"."""
    from flowmap.settings import AnalysisSettings
    from otlp_builder import SERVER, TAG_A, TAG_B, TraceBuilder, analyze_built

    def builders(leak: dict) -> list:
        out = []
        for child in ({"name": "tool refund", "service": "api", "tenant": TAG_A, "boundary": "tool"},
                      {"name": "first", "service": "api tool", "tenant": TAG_A, "boundary": "tool"},
                      {"name": "refund", "service": "api tool", **leak}):
            tb = TraceBuilder(service="gw")
            tb.span("POST /refund", kind=SERVER, tenant=TAG_A, boundary="http.server").child(**child)
            out.append(tb)
        return out

    passed = analyze_built(tmp_path, *builders({"attrs": {"tenant_id": "acme-corp-7"}}),
                           settings=AnalysisSettings(transparent_services=frozenset({"api tool"})))
    folded = analyze_built(tmp_path, *builders({"tenant": TAG_B, "boundary": "tool"}),
                           settings=AnalysisSettings(max_operations_per_service=1))
    for analysis, rule, node in ((passed, "tenant-in-telemetry", None), (folded, "cross-tenant", "(other operations)")):
        data = build_report_data(analysis)
        clean = next(n for n in data.nodes if n.service == "api")
        assert clean.worst is None and not clean.findings
        (f,) = [f for f in data.findings if f.rule == rule]
        assert f.node != clean.id
        if node is None:
            assert f.node is None
        else:
            assert next(n for n in data.nodes if n.id == f.node).name == node
        for trace in data.traces.values():
            assert all(s.node != clean.id for s in trace.spans if s.service == "api tool")


def test_the_content_notice_counts_the_values_the_page_shows_by_size():
    """Every span's first attribute was looked at before the attribute cap left it out,
    so a content value counted as 'shown by size only' though the page holds nothing of
    it: 100 said for the 20 on the page."""
    spans = {f"{s:016x}": Span("a" * 32, f"{s:016x}", None, f"op{s}", 1, "svc", tenant=TAGS[0],
                               attributes={"input.value": "x" * 150}) for s in range(1, 101)}
    a = Analysis(traces=1, spans=100, services={"svc"}, sample_traces={"a" * 32: Trace("a" * 32, spans)})
    data = build_report_data(a, Caps(attribute_chars=1_000))
    shown = sum(1 for t in data.traces.values() for sp in t.spans for _, v in sp.attributes if "not shown" in v)
    assert shown == 20
    assert any(n.startswith(f"{shown} attribute values of conversation and tool content") for n in data.notices)


def test_a_cross_tenant_through_untagged_spans_sits_on_the_call_counted_as_switched(tmp_path):
    """A -> untagged gateway -> B: the finding names the tagged span above as its parent
    (the JSON's parent_span_id), but the call the flow map counts as switched is the one
    into B from its own parent. The finding sat on no edge: the switched edge opened on an
    empty findings list. A link's finding still sits on the link's edge."""
    from otlp_builder import CLIENT, PRODUCER, SERVER, TAG_A, TAG_B, TraceBuilder, analyze_built

    tb = TraceBuilder()
    entry = tb.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server")
    proxy = entry.child("proxy", kind=CLIENT, tenant=TAG_A)
    hop = proxy.child("POST /run", kind=SERVER, service="gateway").child("forward")
    hop.child("run tool", service="worker", tenant=TAG_B, boundary="tool")
    pub = entry.child("publish", kind=PRODUCER, tenant=TAG_A, boundary="queue.publish")
    job = tb.span("job", kind=SERVER, tenant=TAG_B, boundary="http.server")
    job.child("handle", tenant=TAG_B, boundary="tool", links=[pub])
    data = build_report_data(analyze_built(tmp_path, tb))
    cross = {f.span_name: f for f in data.findings if f.rule == "cross-tenant"}
    assert cross["run tool"].edge == _edge(data, "gateway forward", "worker run tool").id
    assert cross["handle"].edge == _edge(data, "api publish", "api handle").id
