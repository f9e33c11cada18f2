"""A realistic :class:`~flowmap.model.Analysis` for report tests, built without the analyzer.

An agent platform of ~60 operations over several services: HTTP entries, an agent loop
that calls an LLM and ~20 tools, each tool hitting data boundaries, a queue to a worker
(through span links), a recursive delegate tool (a cycle), a long edge from the gateway
straight to the audit database. Breaks of every kind are planted: context dropped,
switched to another tenant, orphaned roots (with the likely parent), unscoped queries.
Names are hostile where an attacker could choose them, and one span carries a raw
tenant id the analyzer "forgot" to mask, so the report's own masking is exercised.
"""

from __future__ import annotations

import random
from collections import defaultdict

from flowmap.model import (
    SPAN_KIND_CLIENT,
    SPAN_KIND_CONSUMER,
    SPAN_KIND_INTERNAL,
    SPAN_KIND_PRODUCER,
    SPAN_KIND_SERVER,
    Analysis,
    Finding,
    FlowEdge,
    FlowMap,
    FlowNode,
    Severity,
    Span,
    Trace,
    TracePath,
)
from flowmap.tagging import tag_for

KEY = "report-test-key"
RAW_TENANTS = ["acme-corp-raw-7731", "globex-raw-4410", "initech-raw-9920"]
TAGS = [tag_for(KEY, t) for t in RAW_TENANTS]
RAW_LEAK = RAW_TENANTS[0]  # appears unmasked in one sample span's attributes

XSS_NAME = "<script>alert(1)</script>"
XSS_ATTR = '"><img src=x onerror=alert(1)>'
XSS_BREAKOUT = "</script><script>alert(2)</script>\u2028<!--"
XSS_SERVICE = 'tools"><svg onload=alert(3)>'

TOOLS = [
    "search_docs", "send_email", "create_ticket", "lookup_order", "refund_order",
    "calendar_create", "crm_update", "web_fetch", "summarize_file", "translate",
    "billing_invoice", "slack_post", "jira_search", "github_issue", "run_sql_report",
    "delegate_agent", "kb_lookup", "user_profile", "memory_write", "files_list", "weather",
    "stock_quote", "sentiment", "classify_intent", XSS_NAME, XSS_BREAKOUT,
]
# tool -> data boundaries it touches (service, span name, boundary)
DATA = {
    "search_docs": [("vector-db", "vector.query docs", "vector"), ("cache", "cache.get embeddings", "cache")],
    "send_email": [("postgres", "db.select contacts", "db")],
    "create_ticket": [("postgres", "db.insert tickets", "db")],
    "lookup_order": [("postgres", "db.select orders", "db"), ("cache", "cache.get orders", "cache")],
    "refund_order": [("postgres", "db.update orders", "db")],
    "calendar_create": [],
    "crm_update": [("postgres", "db.update crm", "db")],
    "web_fetch": [],
    "summarize_file": [("blob", "blob.read file", "db")],
    "translate": [],
    "billing_invoice": [("postgres", "db.select invoices", "db")],
    "slack_post": [],
    "jira_search": [("vector-db", "vector.query tickets", "vector")],
    "github_issue": [],
    "run_sql_report": [("postgres", "db.select orders", "db")],
    "delegate_agent": [],
    "kb_lookup": [("vector-db", "vector.query kb", "vector")],
    "user_profile": [("postgres", "db.select users", "db"), ("cache", "cache.get profile", "cache")],
    "memory_write": [("memory", "memory.write notes", "memory")],
    "files_list": [("blob", "blob.list files", "db")],
    "weather": [],
    "stock_quote": [("cache", "cache.get quotes", "cache")],
    "sentiment": [],
    "classify_intent": [("llm-gateway", "chat gpt-4o-mini", "llm")],
    XSS_NAME: [("memory", "memory.read notes", "memory")],
    XSS_BREAKOUT: [],
}
ENTRIES = [
    ("gateway", "POST /v1/chat"),
    ("gateway", "POST /v1/agents/{id}/run"),
    ("gateway", "GET /v1/conversations/{id}"),
    ("gateway", "POST /v1/ingest"),
]


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.traces: dict[str, Trace] = {}
        self.findings: list[Finding] = []
        self.paths: list[TracePath] = []
        self.orphans: dict[tuple[str, str], str] = {}  # (trace, span) -> likely parent op
        self.n = 0

    def sid(self) -> str:
        self.n += 1
        return f"{self.n:016x}"

    def span(self, trace: Trace, parent: Span | None, service: str, name: str, kind: int,
             boundary: str | None, tenant: str | None, t: int, **attrs) -> Span:
        s = Span(
            trace_id=trace.trace_id, span_id=self.sid(),
            parent_span_id=parent.span_id if parent else None, name=name, kind=kind,
            service=service, start_ns=t, end_ns=t + self.rng.randint(2, 40) * 1_000_000,
            attributes=dict(attrs), tenant=tenant, boundary=boundary,
        )
        if tenant is not None:
            s.attributes["flowmap.tenant"] = tenant
            s.attributes["flowmap.tenant.source"] = "context"
        if boundary is not None:
            s.attributes["flowmap.boundary"] = boundary
        trace.spans[s.span_id] = s
        return s

    def finding(self, rule: str, sev: Severity, s: Span, parent: Span | None, msg: str,
                likely_parent: str | None = None) -> None:
        self.findings.append(Finding(
            rule=rule, severity=sev, trace_id=s.trace_id, span_id=s.span_id, span_name=s.name,
            parent_span_id=parent.span_id if parent else None,
            parent_name=parent.name if parent else None, service=s.service, boundary=s.boundary,
            message=msg, likely_parent=likely_parent,
        ))

    def trace(self, i: int) -> None:
        tid = f"{i + 1:032x}"
        trace = Trace(tid, {})
        self.traces[tid] = trace
        rng = self.rng
        tenant = TAGS[i % len(TAGS)]
        service, entry_name = ENTRIES[i % len(ENTRIES)]
        t = 1_700_000_000_000_000_000 + i * 10_000_000_000
        root = self.span(trace, None, service, entry_name, SPAN_KIND_SERVER, "http.server", tenant, t,
                         **{"http.request.method": "POST", "url.path": "/v1/chat"})
        if i == 0:  # a raw id the analyzer "forgot" to mask: the report must mask it itself
            root.attributes["tenant_id"] = RAW_LEAK
            self.finding("tenant-in-telemetry", Severity.HIGH, root, None,
                         "attribute tenant_id holds a raw tenant identifier ([masked])")
        path = [root.span_id]
        broken_at: int | None = None
        break_rule: str | None = None
        auth = self.span(trace, root, "gateway", "auth.verify", SPAN_KIND_INTERNAL, None, tenant, t + 1)
        self.span(trace, root, "postgres", "db.insert audit", SPAN_KIND_CLIENT, "db", tenant, t + 2,
                  **{"db.system": "postgresql", "flowmap.scoped": True})
        del auth
        if entry_name == "POST /v1/ingest":
            pub = self.span(trace, root, "gateway", "queue.publish ingest", SPAN_KIND_PRODUCER,
                            "queue.publish", tenant, t + 3)
            dropped = i % 8 == 3
            consume = self.span(trace, pub, "worker", "queue.consume ingest", SPAN_KIND_CONSUMER,
                                "queue.consume", None if dropped else tenant, t + 5)
            emb = self.span(trace, consume, "worker", "embeddings text-embedding-3", SPAN_KIND_CLIENT,
                            "llm", None if dropped else tenant, t + 6)
            up = self.span(trace, consume, "vector-db", "vector.upsert docs", SPAN_KIND_CLIENT, "vector",
                           None if dropped else tenant, t + 7, **{"flowmap.scoped": True})
            del emb, up
            if dropped:
                self.finding("context-dropped", Severity.HIGH, consume, pub,
                             "tenant lost across the ingest queue (span link)")
                path += [pub.span_id, consume.span_id]
                broken_at, break_rule = 2, "context-dropped"
            self.paths.append(TracePath(tid, path, broken_at, break_rule))
            return
        agent = self.span(trace, root, "agent-svc", "agent.run support-agent", SPAN_KIND_INTERNAL, "agent",
                          tenant, t + 3, **{"gen_ai.operation.name": "invoke_agent"})
        path.append(agent.span_id)
        plan = self.span(trace, agent, "agent-svc", "planner.plan", SPAN_KIND_INTERNAL, None, tenant, t + 4)
        self.span(trace, plan, "llm-gateway", "chat gpt-4o", SPAN_KIND_CLIENT, "llm", tenant, t + 5,
                  **{"gen_ai.operation.name": "chat"})
        catalog_scoped = i % 9 != 4
        cat = self.span(trace, agent, "tools", "tools.catalog list", SPAN_KIND_INTERNAL, "tool.catalog",
                        tenant, t + 6, **{"flowmap.scoped": catalog_scoped})
        if not catalog_scoped:
            self.finding("unfiltered-catalog", Severity.HIGH, cat, agent,
                         "tool catalog shown to the model without the tenant filter")
        mem = self.span(trace, agent, "memory", "memory.read history", SPAN_KIND_CLIENT, "memory",
                        tenant, t + 7, **{"flowmap.scoped": True})
        del mem
        for k, tool in enumerate(rng.sample(TOOLS, 3)):
            tool_service = XSS_SERVICE if tool == XSS_NAME else "tools"
            tt = t + 10 + k * 5
            mode = "ok"
            if tool == "send_email" and i % 3 == 0:
                mode = "dropped"
            elif tool == "refund_order" and i % 4 == 1:
                mode = "switched"
            elif tool == "summarize_file" and i % 2 == 0:
                mode = "orphan"
            tool_tenant = {"ok": tenant, "dropped": None, "switched": TAGS[(i + 1) % len(TAGS)],
                           "orphan": None}[mode]
            parent = None if mode == "orphan" else agent
            attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool,
                     "tool.arguments": '{"q": "status"}',
                     "tool.description": XSS_ATTR if tool == XSS_NAME else "looks up the status"}
            if tool == "crm_update" and i % 5 == 0:
                attrs["tenant_id"] = RAW_LEAK  # the analyzer should have masked this
            span = self.span(trace, parent, tool_service, f"tool {tool}",
                             SPAN_KIND_INTERNAL if parent else SPAN_KIND_CLIENT, "tool", tool_tenant, tt, **attrs)
            if "tenant_id" in attrs:
                self.finding("tenant-in-telemetry", Severity.HIGH, span, agent,
                             "attribute tenant_id holds a raw tenant identifier ([masked])")
            if mode == "dropped":
                self.finding("context-dropped", Severity.HIGH, span, agent,
                             "tool call lost the tenant context (thread pool without contextvars)")
            elif mode == "switched":
                self.finding("cross-tenant", Severity.CRITICAL, span, agent,
                             "tool ran for another tenant than the agent that called it")
            elif mode == "orphan":
                self.finding("orphan-root", Severity.HIGH, span, None,
                             "root span at a tool boundary without a tenant: context lost before it started",
                             likely_parent=agent.operation)
                self.orphans[(tid, span.span_id)] = agent.operation
            if mode != "ok" and broken_at is None:
                path_ids = [root.span_id, agent.span_id, span.span_id]
                path, broken_at, break_rule = path_ids, 2, {
                    "dropped": "context-dropped", "switched": "cross-tenant", "orphan": "orphan-root"}[mode]
            for j, (svc, name, b) in enumerate(DATA.get(tool, [])):
                scoped = not (name == "vector.query docs" and i % 6 == 2)
                d = self.span(trace, span, svc, name, SPAN_KIND_CLIENT, b, tool_tenant, tt + 1 + j,
                              **{"flowmap.scoped": scoped})
                if not scoped:
                    self.finding("unscoped-query", Severity.HIGH, d, span,
                                 "vector search ran without a tenant filter")
            if tool == "delegate_agent":
                sub = self.span(trace, span, "agent-svc", "agent.run support-agent", SPAN_KIND_INTERNAL,
                                "agent", tool_tenant, tt + 2)
                del sub
            if tool == "web_fetch":
                self.span(trace, span, "tools", "GET https://example.com/page", SPAN_KIND_CLIENT,
                          "http.client", tool_tenant, tt + 1, **{"server.address": "example.com",
                                                                 "flowmap.baggage.sent": i % 2 == 0})
        if len(path) == 2:
            last = [s for s in trace.spans.values() if s.boundary == "tool"]
            if last:
                path.append(last[-1].span_id)
        self.paths.append(TracePath(tid, path, broken_at, break_rule))


def _flow(traces: dict[str, Trace], orphans: dict[tuple[str, str], str], findings: list[Finding]) -> FlowMap:
    flow = FlowMap()
    for trace in traces.values():
        for s in trace.spans.values():
            node = flow.nodes.get(s.operation)
            if node is None:
                node = flow.nodes[s.operation] = FlowNode(s.operation, s.service, s.name, s.boundary)
            node.spans += 1
            node.untagged += s.tenant is None
            node.entry |= s.parent_span_id is None and s.kind in (SPAN_KIND_SERVER, SPAN_KIND_CONSUMER)
            if s.parent_span_id is not None:
                p = trace.spans[s.parent_span_id]
                key = (p.operation, s.operation)
            elif (trace.trace_id, s.span_id) in orphans:
                p = None
                key = (orphans[(trace.trace_id, s.span_id)], s.operation)
            else:
                continue
            e = flow.edges.get(key)
            if e is None:
                e = flow.edges[key] = FlowEdge(*key)
            if p is None:
                e.orphaned += 1
            elif p.tenant and not s.tenant:
                e.dropped += 1
            elif p.tenant and s.tenant and p.tenant != s.tenant:
                e.switched += 1
            else:
                e.inherited += 1
            if s.boundary == "queue.consume":
                e.via_link += 1
            broken = e.total - e.inherited
            if len(e.example_traces) < 5 and (broken or len(e.example_traces) < 2) and trace.trace_id not in e.example_traces:
                e.example_traces.append(trace.trace_id)
    for f in findings:
        op = f"{f.service} {f.span_name}"
        node = flow.nodes[op]
        node.findings[f.rule] = node.findings.get(f.rule, 0) + 1
    return flow


def build_analysis(traces: int = 120, seed: int = 7, sample: int = 80) -> Analysis:
    """The fixture: ``traces`` requests of the platform, ``sample`` kept for drill-down."""
    b = _Builder(seed)
    for i in range(traces):
        b.trace(i)
    flow = _flow(b.traces, b.orphans, b.findings)
    findings = sorted(b.findings, key=lambda f: -f.severity)
    sample_ids = list(dict.fromkeys([f.trace_id for f in findings] + list(b.traces)))[:sample]
    spans = sum(len(t.spans) for t in b.traces.values())
    services = {s.service for t in b.traces.values() for s in t.spans.values()}
    by_trace: defaultdict[str, list[TracePath]] = defaultdict(list)
    for p in b.paths:
        by_trace[p.trace_id].append(p)
    return Analysis(
        files=["traces/platform.jsonl", "traces/<b>evil</b>.jsonl"],
        traces=traces, spans=spans, services=services, tenant_tags=set(TAGS), findings=findings,
        flow=flow, paths=sorted(b.paths, key=lambda p: p.broken_at is None)[:50],
        sample_traces={tid: b.traces[tid] for tid in sample_ids},
        warnings=["traces/platform.jsonl:17: span with an invalid id skipped"],
    )


def write_platform_otlp(path):
    """:func:`platform_builders` written as one OTLP JSON Lines file (Collector format)."""
    from otlp_builder import write_otlp

    return write_otlp(path, *platform_builders())


def platform_builders():
    """A smaller platform as OTLP trace builders, for end-to-end tests through ``analyze``.

    Every kind of edge: inherited, dropped (tool in a thread pool), switched (tool ran for
    tenant B), orphaned (a root tool span without tenant), hostile names, a raw tenant id.
    """
    from otlp_builder import CLIENT, SERVER, TAG_A, TAG_B, TraceBuilder

    builders = []
    for i in range(12):
        tb = TraceBuilder(service="gateway")
        tag = TAG_A if i % 2 == 0 else TAG_B
        entry = tb.span("POST /v1/chat", kind=SERVER, tenant=tag, boundary="http.server")
        agent = entry.child("agent.run", service="agent-svc", tenant=tag, boundary="agent")
        agent.child("chat gpt-4o", service="llm-gateway", kind=CLIENT, tenant=tag, boundary="llm")
        docs = agent.child("tool search_docs", service="tools", tenant=tag, boundary="tool")
        docs.child("vector.query docs", service="vector-db", kind=CLIENT, tenant=tag, boundary="vector",
                   scoped=i % 4 != 1)
        if i % 3 == 0:
            agent.child("tool send_email", service="tools", boundary="tool")  # dropped
        if i % 4 == 2:
            other = TAG_B if tag == TAG_A else TAG_A
            agent.child("tool refund_order", service="tools", tenant=other, boundary="tool")  # switched
        if i % 5 == 1:
            tb.span("tool summarize_file", service="tools", kind=CLIENT, boundary="tool")  # orphan root
        elif i % 5 == 3:  # where it normally runs: the analysis learns the likely parent from this
            agent.child("tool summarize_file", service="tools", kind=CLIENT, tenant=tag, boundary="tool")
        evil = agent.child(XSS_NAME, service=XSS_SERVICE, tenant=tag, boundary="tool",
                           attrs={"tool.description": XSS_ATTR, "note": XSS_BREAKOUT})
        if i == 0:
            evil.child("db.update crm", service="postgres", kind=CLIENT, tenant=tag, boundary="db",
                       scoped=True, attrs={"tenant_id": RAW_LEAK})
        builders.append(tb)
    return builders


def long_trace(noise: int = 300, noise_findings: bool = True):
    """POST /chat → (``noise`` vector queries, unscoped when ``noise_findings``) and, last,
    agent.run → tool send_email (context dropped) and agent.plan → tool refund (switched)."""
    from otlp_builder import CLIENT, SERVER, TAG_A, TAG_B, TraceBuilder

    tb = TraceBuilder(service="api")
    entry = tb.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server")
    for i in range(noise):
        entry.child(f"vector.query shard-{i}", kind=CLIENT, tenant=TAG_A, boundary="vector",
                    scoped=not noise_findings)
    agent = entry.child("agent.run", tenant=TAG_A, boundary="agent")
    dropped = agent.child("tool send_email", boundary="tool")
    plan = entry.child("agent.plan", tenant=TAG_A, boundary="agent")
    switched = plan.child("tool refund", tenant=TAG_B, boundary="tool")
    return tb, {"entry": entry.span_id, "agent": agent.span_id, "dropped": dropped.span_id,
                "plan": plan.span_id, "switched": switched.span_id}



LONG = "x" * 4000  # a shared prefix far past every cap


def long_names():
    """Operations named with 4096 characters (the most an attribute-limited SDK sends), two
    of them alike for their first 4000: POST /chat → agent LONG…a → tool LONG…b, the
    tool without the tenant (context-dropped), in a service with a 4096-character name."""
    from otlp_builder import SERVER, TAG_A, TraceBuilder

    service = "svc-" + "y" * 4092
    tb = TraceBuilder(service=service)
    entry = tb.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server")
    agent = entry.child(LONG + "a" * 96, tenant=TAG_A, boundary="agent")
    agent.child(LONG + "b" * 96, boundary="tool")
    return tb
