"""Service-mesh proxies (Envoy's ``component=proxy``) and configured services are passed
through: the tenant is judged from the calling service to the called one across them."""

from __future__ import annotations

import json

import pytest
from otlp_builder import CLIENT, SERVER, TAG_A, TAG_B, TraceBuilder, analyze_built

from flowmap.analysis import analyze_traces
from flowmap.config import load_config
from flowmap.formats.json import to_document
from flowmap.formats.text import TextReporter
from flowmap.model import Severity
from flowmap.report_data import build_report_data
from flowmap.settings import AnalysisSettings
from flowmap.transparent import pass_through, transparent_spans

ENVOY = {"component": "proxy", "upstream_cluster": "outbound|80||tools.default.svc.cluster.local",
         "http.method": "POST", "http.url": "http://tools/run"}


def mesh_call(tb: TraceBuilder, *, callee_tenant: str | None, proxies: bool = True):
    """api (tagged) -> [api's sidecar egress -> tools' sidecar ingress] -> tools server."""
    entry = tb.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server")
    client = entry.child("POST tools", kind=CLIENT, tenant=TAG_A, boundary="http.client")
    above = client
    if proxies:
        above = client.child("router outbound egress", kind=CLIENT, service="api-sidecar", attrs=ENVOY)
        above = above.child("tools.default.svc:80/*", kind=SERVER, service="tools-sidecar", attrs=ENVOY)
    server = above.child("POST /run", kind=SERVER, service="tools", tenant=callee_tenant, boundary="http.server")
    server.child("execute_tool search", service="tools", tenant=callee_tenant, boundary="tool")
    return client, server


def test_mesh_hops_are_not_dropped_contexts(tmp_path):
    tb = TraceBuilder()
    mesh_call(tb, callee_tenant=TAG_A)
    a = analyze_built(tmp_path, tb)
    assert a.findings == []
    assert a.transparent_spans == 2 and a.spans == 6  # counted, judged as if absent
    edges = {(e.source, e.target): e for e in a.flow.edges.values()}
    call = edges[("api POST tools", "tools POST /run")]  # drawn across the proxies
    assert call.inherited == 1
    assert not any("sidecar" in s or "sidecar" in t for s, t in edges)
    doc = to_document(a)
    assert doc["summary"]["transparent_spans"] == 2 and doc["summary"]["spans"] == 6
    assert TextReporter().render(a).startswith("flowmap: 1 trace, 6 spans from 1 file (2 spans of proxies passed through)")
    data = build_report_data(a)
    assert any(n.startswith("2 spans of service-mesh proxies") for n in data.notices)
    assert not any("sidecar" in n.op for n in data.nodes)


def test_through_proxies_a_callee_that_drops_or_switches_the_tenant_is_still_found(tmp_path):
    dropped, switched = TraceBuilder(), TraceBuilder()
    client, server = mesh_call(dropped, callee_tenant=None)
    mesh_call(switched, callee_tenant=TAG_B)
    a = analyze_built(tmp_path, dropped, switched)
    by_rule = {f.rule: f for f in a.findings if f.trace_id == dropped.trace_id}
    f = by_rule["context-dropped"]
    assert f.span_id == server.span_id and f.parent_span_id == client.span_id  # the calling span
    assert f.severity is Severity.HIGH
    assert [f.rule for f in a.findings if f.trace_id == switched.trace_id] == ["cross-tenant"]


def test_without_the_proxy_marker_the_hop_is_a_dropped_context(tmp_path):
    """The near miss: an untagged CLIENT span of an ordinary service between two tagged
    ones is a real drop (the marker is Envoy's, not any span without a tag)."""
    tb = TraceBuilder()
    entry = tb.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server")
    client = entry.child("POST tools", kind=CLIENT, tenant=TAG_A, boundary="http.client")
    hop = client.child("forward", kind=CLIENT, service="relay", attrs={"component": "relay", "http.method": "POST"})
    hop.child("POST /run", kind=SERVER, service="tools", tenant=TAG_A, boundary="http.server")
    a = analyze_built(tmp_path, tb)
    assert [(f.rule, f.span_id) for f in a.findings] == [("context-dropped", hop.span_id)]
    assert a.transparent_spans == 0


def test_an_edge_gateway_root_leaves_the_service_as_the_entry(tmp_path):
    """A gateway's span as the root: the service behind it is judged as the entry, so a
    request that never bound a tenant is still an unscoped entry."""
    tb = TraceBuilder()
    gw = tb.span("ingress", kind=SERVER, service="gateway", attrs=ENVOY)
    server = gw.child("POST /chat", kind=SERVER, service="api", boundary="http.server")
    server.child("db.query", service="api", boundary="db", scoped=True)
    a = analyze_built(tmp_path, tb)
    (f,) = a.findings
    assert (f.rule, f.span_id, f.severity) == ("unscoped-entry", server.span_id, Severity.HIGH)


def test_configured_services_are_passed_through(tmp_path):
    tb = TraceBuilder()
    entry = tb.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server")
    client = entry.child("POST tools", kind=CLIENT, tenant=TAG_A, boundary="http.client")
    gw = client.child("route /tools", kind=SERVER, service="api-gateway", attrs={"http.method": "POST"})
    gw.child("POST /run", kind=SERVER, service="tools", tenant=TAG_A, boundary="http.server")
    plain = analyze_built(tmp_path, tb)
    assert [f.span_id for f in plain.findings] == [gw.span_id]  # untagged gateway: dropped
    (tmp_path / "pyproject.toml").write_text(
        '[tool.flowmap]\ntransparent_services = ["api-gateway", " "]\n', encoding="utf-8"
    )
    settings = load_config(cwd=tmp_path).settings
    assert settings.transparent_services == frozenset({"api-gateway"})
    through = analyze_built(tmp_path, tb, settings=settings)
    assert through.findings == [] and through.transparent_spans == 1


def test_hand_built_traces_are_read_from_their_attributes_and_left_unchanged():
    tb = TraceBuilder()
    client, server = mesh_call(tb, callee_tenant=TAG_A)
    trace = tb.traces()  # flowmap.model spans, as the pytest plugin and API users build them
    before = {sid: s.parent_span_id for sid, s in trace.spans.items()}
    ids = transparent_spans(trace)
    assert len(ids) == 2
    passed = pass_through(trace, ids)
    assert passed.spans[server.span_id].parent_span_id == client.span_id
    assert {sid: s.parent_span_id for sid, s in trace.spans.items()} == before  # not mutated
    a = analyze_traces([tb.traces()])
    assert a.findings == [] and a.transparent_spans == 2


def test_proxies_in_a_parent_cycle_end_it_and_the_rest_is_still_judged(tmp_path):
    tb = TraceBuilder()
    p1 = tb.span("egress", kind=CLIENT, service="sidecar", attrs=ENVOY, span_id="1" * 16, parent="2" * 16)
    p1.child("ingress", kind=SERVER, service="sidecar", attrs=ENVOY, span_id="2" * 16)
    tb.span("POST /run", kind=SERVER, service="tools", boundary="http.server", parent="2" * 16)
    a = analyze_built(tmp_path, tb)
    assert a.transparent_spans == 2
    assert [f.rule for f in a.findings] == ["unscoped-entry"]  # became a root: an entry
    assert json.dumps(to_document(a))  # serialisable



def test_a_long_proxy_chain_hangs_every_child_from_the_span_above_it():
    """Each child of a 20,000-proxy chain is re-parented to the chain's caller, and the
    chain is walked once (it was walked again per child: 32,000 proxies took 38 s)."""
    tb = TraceBuilder()
    root = tb.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server")
    above, children = root, []
    for _ in range(20_000):
        above = above.child("hop", kind=CLIENT, service="sidecar", attrs=ENVOY)
        children.append(above.child("work", service="api", tenant=TAG_A).span_id)
    trace = tb.traces()
    passed = pass_through(trace, transparent_spans(trace))
    assert len(passed.spans) == 20_001
    assert {passed.spans[c].parent_span_id for c in children} == {root.span_id}


def test_settings_take_one_string_as_one_entry():
    s = AnalysisSettings(tenantless_entries="GET /healthz", transparent_services=" api-gateway ")
    assert s.tenantless_entries == ("GET /healthz",) and s.transparent_services == frozenset({"api-gateway"})
    with pytest.raises(TypeError):
        AnalysisSettings(transparent_services=[1])


def test_a_raw_tenant_id_in_a_proxys_own_tags_is_still_reported_and_masked(tmp_path):
    """Passing a proxy through skips judging the tenant's path, not its attributes: Envoy
    custom tags copied from request headers can hold a raw tenant id."""
    raw = "acme-corp-7731"
    tb = TraceBuilder()
    entry = tb.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server")
    client = entry.child("POST tools", kind=CLIENT, tenant=TAG_A, boundary="http.client")
    proxy = client.child("egress", kind=CLIENT, service="sidecar", attrs={**ENVOY, "tenant_id": raw})
    proxy.child("POST /run", kind=SERVER, service="tools", tenant=TAG_A, boundary="http.server")
    a = analyze_built(tmp_path, tb)
    (f,) = a.findings
    assert (f.rule, f.span_id, str(f.severity)) == ("tenant-in-telemetry", proxy.span_id, "high")
    assert f.origin and f.origin.endswith(":1")
    assert raw not in json.dumps(to_document(a)) + TextReporter().render(a)
