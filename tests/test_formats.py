"""Reporters on hand-built analyses: the JSON contract, SARIF structure, the text summary."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from flowmap.formats import OutputFormat, Reporter, reporter_for
from flowmap.formats.common import clean, count_by_rule, sorted_paths
from flowmap.formats.json import to_document
from flowmap.formats.rules import RULE_IDS, RULES
from flowmap.formats.sarif import FINGERPRINT_KEY, to_sarif
from flowmap.formats.text import TextReporter, verdict
from flowmap.model import (
    SPAN_KIND_INTERNAL,
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
from flowmap.rules import RULES as CONTRACT_RULES

T1 = "4bf92f3577b34da6a3ce929d0e0e4736"
T2 = "0af7651916cd43dd8448eb211c80319c"
CONTRACT_FINDING_KEYS = {
    "rule", "severity", "trace_id", "span_id", "span_name",
    "parent_span_id", "parent_name", "service", "boundary", "message",
}
HEX = re.compile(r"^[0-9a-f]+$")


def _span(span_id: str, parent: str | None, name: str, service: str, line: int, **kw) -> Span:
    return Span(T1, span_id, parent, name, kw.pop("kind", SPAN_KIND_INTERNAL), service,
                origin=f"traces/run.jsonl:{line}", **kw)


@pytest.fixture
def analysis() -> Analysis:
    spans = [
        _span("00f067aa0ba902b7", None, "GET /chat", "api", 1, kind=SPAN_KIND_SERVER, tenant="a1b2c3d4e5f60718"),
        _span("1111111111111111", "00f067aa0ba902b7", "agent.run", "api", 2, tenant="a1b2c3d4e5f60718"),
        _span("2222222222222222", "1111111111111111", "tool search_docs", "worker", 3, boundary="tool"),
    ]
    trace = Trace(T1, {s.span_id: s for s in spans})
    findings = [
        Finding("missing-parent", Severity.INFO, T2.upper(), "33333333333333AA", "cache.get", "44444444444444BB",
                None, None, None, "cache.get names a parent that is not in the data"),
        Finding("context-dropped", Severity.HIGH, T1, "2222222222222222", "tool search_docs", "1111111111111111",
                "agent.run", "worker", "tool", "worker tool search_docs lost the tenant of its parent api agent.run"),
    ]
    flow = FlowMap(
        nodes={
            "api agent.run": FlowNode("api agent.run", "api", "agent.run", "agent", spans=1),
            "worker tool search_docs": FlowNode("worker tool search_docs", "worker", "tool search_docs", "tool",
                                                spans=1, untagged=1, findings={"context-dropped": 1}),
        },
        edges={("api agent.run", "worker tool search_docs"): FlowEdge(
            "api agent.run", "worker tool search_docs", inherited=3, dropped=1, example_traces=[T1])},
    )
    return Analysis(
        files=["traces/run.jsonl"], traces=2, spans=5, services={"api", "worker"},
        findings=findings, flow=flow,
        paths=[
            TracePath(T1, ["00f067aa0ba902b7", "1111111111111111"]),
            TracePath(T1, [s.span_id for s in spans], broken_at=2, break_rule="context-dropped"),
        ],
        sample_traces={T1: trace},
        warnings=["traces/run.jsonl:9: invalid JSON (Expecting value), line skipped"],
    )


# --- JSON ----------------------------------------------------------------------


def test_json_has_exactly_the_contract_shape(analysis):
    doc = json.loads(reporter_for(OutputFormat.JSON).render(analysis))
    assert doc["version"] == 1
    assert doc["summary"]["traces"] == 2 and doc["summary"]["spans"] == 5
    assert doc["summary"]["findings"]["context-dropped"] == 1
    assert doc["summary"]["findings"]["missing-parent"] == 1
    assert doc["summary"]["findings"]["cross-tenant"] == 0  # every rule, zeros included
    assert list(doc["summary"]["findings"]) == sorted(RULE_IDS)
    assert doc["summary"]["severities"] == {"critical": 0, "high": 1, "medium": 0, "low": 0, "info": 1}
    assert [f["rule"] for f in doc["findings"]] == ["missing-parent", "context-dropped"]  # analysis order
    for f in doc["findings"]:
        assert CONTRACT_FINDING_KEYS <= set(f)
        for key in CONTRACT_FINDING_KEYS:
            assert f[key] is None or isinstance(f[key], str), key
        for key in ("trace_id", "span_id", "parent_span_id"):
            assert f[key] is None or HEX.match(f[key]), (key, f[key])


def test_json_absent_values_are_null_and_ids_lowercase(analysis):
    doc = to_document(analysis)
    orphan = doc["findings"][0]
    assert orphan["parent_name"] is None and orphan["service"] is None and orphan["boundary"] is None
    assert orphan["trace_id"] == T2 and orphan["span_id"] == "33333333333333aa"
    assert orphan["parent_span_id"] == "44444444444444bb"
    assert orphan["severity"] == "info"


def test_json_is_deterministic_with_sorted_keys(analysis):
    a = reporter_for(OutputFormat.JSON).render(analysis)
    assert a == reporter_for(OutputFormat.JSON).render(analysis)
    doc = json.loads(a)
    assert list(doc) == sorted(doc)
    assert list(doc["findings"][1]) == sorted(doc["findings"][1])


def test_json_carries_flow_map_paths_and_warnings(analysis):
    doc = to_document(analysis)
    (edge,) = doc["flow_map"]["edges"]
    assert (edge["source"], edge["target"]) == ("api agent.run", "worker tool search_docs")
    assert (edge["inherited"], edge["dropped"], edge["switched"], edge["orphaned"]) == (3, 1, 0, 0)
    assert edge["total"] == 4 and edge["example_traces"] == [T1]
    assert [n["id"] for n in doc["flow_map"]["nodes"]] == ["api agent.run", "worker tool search_docs"]
    assert doc["paths"][1]["broken_at"] == 2 and doc["paths"][1]["break_rule"] == "context-dropped"
    assert doc["warnings"] == analysis.warnings
    json.dumps(doc)  # plain data all the way down


def test_json_of_empty_analysis():
    doc = to_document(Analysis())
    assert doc["findings"] == [] and doc["summary"]["traces"] == 0
    assert set(doc["summary"]["findings"].values()) == {0}


# --- SARIF ---------------------------------------------------------------------
# Allowed properties of the SARIF 2.1.0 schema objects we emit (the schema sets
# additionalProperties: false on each), and the ones it requires.
SARIF_OBJECTS = {
    "log": ({"$schema", "version", "runs", "inlineExternalProperties", "properties"}, {"version", "runs"}),
    "run": ({"tool", "invocations", "conversion", "language", "versionControlProvenance", "originalUriBaseIds",
             "artifacts", "logicalLocations", "graphs", "results", "automationDetails", "runAggregates",
             "baselineGuid", "redactionTokens", "defaultEncoding", "defaultSourceLanguage", "newlineSequences",
             "columnKind", "externalPropertyFileReferences", "threadFlowLocations", "taxonomies", "addresses",
             "translations", "policies", "webRequests", "webResponses", "specialLocations", "properties"},
            {"tool"}),
    "driver": ({"guid", "name", "organization", "product", "productSuite", "shortDescription", "fullDescription",
                "fullName", "version", "semanticVersion", "dottedQuadFileVersion", "releaseDateUtc", "downloadUri",
                "informationUri", "globalMessageStrings", "notifications", "rules", "taxa", "locations", "language",
                "contents", "isComprehensive", "localizedDataSemanticVersion",
                "minimumRequiredLocalizedDataSemanticVersion", "associatedComponent", "translationMetadata",
                "supportedTaxonomies", "properties"}, {"name"}),
    "rule": ({"id", "deprecatedIds", "guid", "deprecatedGuids", "name", "deprecatedNames", "shortDescription",
              "fullDescription", "messageStrings", "defaultConfiguration", "helpUri", "help", "relationships",
              "properties"}, {"id"}),
    "result": ({"ruleId", "ruleIndex", "rule", "kind", "level", "message", "analysisTarget", "locations", "guid",
                "correlationGuid", "occurrenceCount", "partialFingerprints", "fingerprints", "stacks", "codeFlows",
                "graphs", "graphTraversals", "relatedLocations", "suppressions", "baselineState", "rank",
                "attachments", "hostedViewerUri", "workItemUris", "provenance", "fixes", "taxa", "webRequest",
                "webResponse", "properties"}, {"message"}),
    "location": ({"id", "physicalLocation", "logicalLocations", "message", "annotations", "relationships",
                  "properties"}, set()),
    "physicalLocation": ({"address", "artifactLocation", "region", "contextRegion", "properties"}, set()),
    "artifactLocation": ({"uri", "uriBaseId", "index", "description", "properties"}, set()),
    "region": ({"startLine", "startColumn", "endLine", "endColumn", "charOffset", "charLength", "byteOffset",
                "byteLength", "snippet", "message", "sourceLanguage", "properties"}, set()),
}
LEVELS = {"none", "note", "warning", "error"}


def _check(obj: dict, kind: str) -> None:
    allowed, required = SARIF_OBJECTS[kind]
    assert isinstance(obj, dict), kind
    assert set(obj) <= allowed, (kind, set(obj) - allowed)
    assert required <= set(obj), (kind, required - set(obj))


def _message(obj: dict) -> None:
    assert isinstance(obj, dict) and isinstance(obj["text"], str) and obj["text"]


def test_sarif_structure_per_spec_and_github(analysis):
    log = json.loads(reporter_for(OutputFormat.SARIF).render(analysis))
    _check(log, "log")
    assert log["version"] == "2.1.0" and log["$schema"].startswith("https://")
    (run,) = log["runs"]
    _check(run, "run")
    driver = run["tool"]["driver"]
    _check(driver, "driver")
    assert driver["name"] == "flowmap" and "informationUri" not in driver  # no made-up home page
    rule_ids = [r["id"] for r in driver["rules"]]
    assert rule_ids == list(RULE_IDS) and len(set(rule_ids)) == len(rule_ids)
    for rule in driver["rules"]:
        _check(rule, "rule")
        _message(rule["shortDescription"]), _message(rule["fullDescription"])
        assert "helpUri" not in rule and rule["id"] in rule["help"]["markdown"]
        assert rule["defaultConfiguration"]["level"] in LEVELS
        sev = rule["properties"]["security-severity"]
        assert isinstance(sev, str) and 0.0 < float(sev) <= 10.0
        assert isinstance(rule["properties"]["tags"], list) and "security" in rule["properties"]["tags"] or rule["id"] == "missing-parent"
    assert {r["id"]: r["properties"]["security-severity"] for r in driver["rules"]}["cross-tenant"] == "9.5"
    assert len(run["results"]) == len(analysis.findings)
    for result in run["results"]:
        _check(result, "result")
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in LEVELS
        _message(result["message"])
        assert len(result["locations"]) == 1
        loc = result["locations"][0]
        _check(loc, "location")
        _check(loc["physicalLocation"], "physicalLocation")
        _check(loc["physicalLocation"]["artifactLocation"], "artifactLocation")
        _check(loc["physicalLocation"]["region"], "region")
        assert isinstance(loc["physicalLocation"]["region"]["startLine"], int)
        assert loc["physicalLocation"]["region"]["startLine"] >= 1
        fp = result["partialFingerprints"]
        assert isinstance(fp, dict) and all(isinstance(v, str) for v in fp.values())
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"].endswith("/")


def test_sarif_levels_and_locations(analysis, tmp_path):
    log = to_sarif(analysis, cwd=Path.cwd())
    info, high = log["runs"][0]["results"]
    assert (info["level"], high["level"]) == ("note", "error")
    # the dropped span was read from traces/run.jsonl line 3 (its Span.origin)
    art = high["locations"][0]["physicalLocation"]
    assert art["artifactLocation"] == {"uri": "traces/run.jsonl", "uriBaseId": "%SRCROOT%"}
    assert art["region"]["startLine"] == 3
    # no origin known: the first input file
    assert info["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "traces/run.jsonl"


def test_sarif_prefers_finding_origin_and_leaves_cwd_as_file_uri(analysis, tmp_path):
    analysis.findings[0].origin = "/elsewhere/other trace.jsonl:42"
    log = to_sarif(analysis, cwd=tmp_path)
    phys = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert phys["artifactLocation"] == {"uri": "file:///elsewhere/other%20trace.jsonl"}
    assert phys["region"]["startLine"] == 42


def test_sarif_fingerprints_repeat_for_the_same_input_and_differ_per_rule(analysis):
    a = to_sarif(analysis)["runs"][0]["results"]
    b = to_sarif(analysis)["runs"][0]["results"]
    assert [r["partialFingerprints"] for r in a] == [r["partialFingerprints"] for r in b]
    assert a[0]["partialFingerprints"][FINGERPRINT_KEY] != a[1]["partialFingerprints"][FINGERPRINT_KEY]
    other = Finding("cross-tenant", Severity.CRITICAL, T1, "2222222222222222", "tool search_docs",
                    None, None, None, None, "x")
    analysis.findings.append(other)
    c = to_sarif(analysis)["runs"][0]["results"]
    assert c[2]["partialFingerprints"] != c[1]["partialFingerprints"]  # same span, other rule


def test_rule_table_covers_every_contract_rule():
    assert {doc.id for doc in RULES} == set(CONTRACT_RULES)
    assert [doc.id for doc in RULES] == list(CONTRACT_RULES)


# --- text ----------------------------------------------------------------------


def test_text_shows_the_broken_edge_in_its_path(analysis):
    analysis.paths.insert(0, TracePath(T2, ["33333333333333aa"], broken_at=0, break_rule="orphan-root",
                                       severity=Severity.MEDIUM))
    out = reporter_for(OutputFormat.TEXT).render(analysis)
    assert "api: GET /chat → agent.run → ✗ context-dropped → worker: tool search_docs" in out
    # worst path first (high before medium), intact paths left out while broken ones exist
    assert out.index("HIGH     api: GET /chat") < out.index("MEDIUM   ✗ orphan-root → cache.get")
    assert f"           trace {T1}" in out
    assert "ok       " not in out and "2 broken in a sample of 3" in out
    assert "By severity: 0 critical, 1 high, 0 medium, 0 low, 1 info" in out
    assert out.rstrip().splitlines()[-1] == "FAIL: 1 finding at or above high (--fail-on high)"


def test_text_groups_identical_paths_and_findings(analysis):
    twin = TracePath(T1, list(analysis.paths[1].span_ids), broken_at=2, break_rule="context-dropped")
    analysis.paths.append(twin)
    again = Finding(**{k: getattr(analysis.findings[1], k) for k in analysis.findings[1].__slots__})
    again.span_id = "9999999999999999"
    analysis.findings.append(again)
    out = TextReporter().render(analysis)
    assert out.count("✗ context-dropped → worker: tool search_docs") == 1
    assert f"2 paths in trace {T1}" in out  # both in T1: was "2 traces"
    assert "Findings: 3 (2 distinct)" in out
    assert "2 times, e.g. span 2222222222222222" in out


def test_text_names_a_parent_in_another_service_under_its_own_service(analysis):
    # The broken edge crosses services (a remote parent, a queue's link): the parent is
    # shown under its own service, and same-named parents of two services are two findings.
    dropped = analysis.findings[1]
    dropped.parent_service = "api"
    other = Finding(**{k: getattr(dropped, k) for k in dropped.__slots__})
    other.span_id, other.parent_service = "9999999999999999", "billing"
    analysis.findings.append(other)
    out = TextReporter().render(analysis)
    assert "context-dropped      api: agent.run → ✗ worker: tool search_docs [tool]" in out
    assert "context-dropped      billing: agent.run → ✗ worker: tool search_docs [tool]" in out
    assert "Findings: 3 (3 distinct)" in out
    same = Finding(**{k: getattr(dropped, k) for k in dropped.__slots__})
    same.parent_service = same.service = "worker"
    assert "worker: agent.run → ✗ tool search_docs" in TextReporter().render(Analysis(findings=[same]))


def test_findings_carry_the_parent_service_across_a_remote_parent(tmp_path):
    from tests.otlp_builder import CLIENT, SERVER, TAG_A, TraceBuilder, write_otlp

    tb = TraceBuilder(service="gateway")
    client = tb.span("POST /run", kind=CLIENT, tenant=TAG_A, boundary="http.client")
    client.child("run", kind=SERVER, service="tools", boundary="http.server")
    import flowmap

    analysis = flowmap.analyze([str(write_otlp(tmp_path / "t.jsonl", tb))])
    [f] = analysis.findings
    assert (f.rule, f.service, f.parent_service, f.parent_name) == ("context-dropped", "tools", "gateway", "POST /run")
    assert to_document(analysis)["findings"][0]["parent_service"] == "gateway"


def test_text_verdict_follows_threshold(analysis):
    assert verdict(analysis, Severity.CRITICAL).startswith("PASS: 2 findings, none at or above critical")
    assert verdict(analysis, Severity.INFO).startswith("FAIL: 2 findings at or above info")
    assert verdict(Analysis(traces=3), Severity.HIGH) == "PASS: no findings in 3 traces"
    text = TextReporter(fail_on=Severity.CRITICAL).render(analysis)
    assert text.rstrip().endswith("none at or above critical")


def test_text_ascii_fallback(analysis):
    out = reporter_for(OutputFormat.TEXT, unicode=False).render(analysis)
    assert "agent.run -> X context-dropped -> worker: tool search_docs" in out


def test_text_escapes_terminal_control_sequences(analysis):
    analysis.sample_traces[T1].spans["1111111111111111"].name = "agent\x1b[2J.run\u202e"
    analysis.findings[1].span_name = "tool\x07"
    out = TextReporter().render(analysis)
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "agent\\x1b[2J.run\\u202e" in out


def test_path_order_uses_path_severity_when_known():
    a = Analysis(paths=[
        TracePath(T1, ["a"], broken_at=0, break_rule="context-dropped", severity=Severity.MEDIUM),
        TracePath(T2, ["b"]),
        TracePath(T2, ["c"], broken_at=0, break_rule="cross-tenant", severity=Severity.CRITICAL),
    ])
    assert [p.span_ids[0] for p, _ in sorted_paths(a)] == ["c", "a", "b"]


def test_text_path_shows_a_switch_after_a_drop_and_rates_the_path_by_it(tmp_path):
    """A -> untagged gateway -> B: the path breaks first where the tenant was dropped,
    and the switch further on is shown in place too; the path is rated critical (it
    sorts before a path whose only break is high)."""
    from otlp_builder import CLIENT, SERVER, TAG_A, TAG_B, TraceBuilder, analyze_built

    switched = TraceBuilder()
    top = switched.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server")
    gateway = top.child("GET", kind=CLIENT, tenant=TAG_A, boundary="http.client").child(
        "GET /forward", kind=SERVER, service="gateway", attrs={"http.request.method": "GET"})
    gateway.child("POST /run", kind=SERVER, service="tools", tenant=TAG_B, boundary="http.server").child(
        "refund", service="tools", tenant=TAG_B, boundary="tool")
    dropped = TraceBuilder()
    dropped.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server").child(
        "refund", boundary="tool")
    a = analyze_built(tmp_path, dropped, switched)
    assert [(p.trace_id, s) for p, s in sorted_paths(a)] == [
        (switched.trace_id, Severity.CRITICAL), (dropped.trace_id, Severity.HIGH)]
    out = TextReporter().render(a)
    assert ("CRITICAL api: POST /chat → GET → ✗ context-dropped → gateway: GET /forward → ✗ cross-tenant → "
            "tools: POST /run → refund") in out


def test_text_long_path_keeps_its_ends_and_breaks_and_counts_the_rest():
    """A recursive agent's path of thousands of operations is one readable line: the
    entry, each shown break with the operation before it, the final tool call, and a
    count of what was left out."""
    r = TextReporter()
    labels = [f"op{i}" for i in range(30)]
    line = r.path_line(labels, 10, "context-dropped", [(11, "cross-tenant")])
    assert line == ("op0 → op1 → … 7 more … → op9 → ✗ context-dropped → op10 → ✗ cross-tenant → op11"
                    " → … 17 more … → op29")
    # one left out is shown rather than counted
    assert r.path_line(labels, 3, "x") == "op0 → op1 → op2 → ✗ x → op3 → … 25 more … → op29"
    # short paths are shown whole, as before
    assert r.path_line(labels[:10], 5, "x") == " → ".join(labels[:5]) + " → ✗ x → " + " → ".join(labels[5:10])
    # past five breaks, the others are counted (the last operation's own break is shown)
    many = r.path_line(labels * 10, 2, "x", [(i, "y") for i in range(20, 300, 20)] + [(299, "z")])
    assert many.count("✗") == 6 and many.endswith("✗ z → op29  (10 more breaks not shown)")


def test_text_summary_of_a_very_deep_trace_stays_short(tmp_path):
    """2,000 nested tool calls, the tenant dropped at every 100th: the path line names the
    first broken edge, and is not 2,000 operations long."""
    from otlp_builder import SERVER, TAG_A, TraceBuilder, analyze_built

    t = TraceBuilder()
    span = t.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server")
    for i in range(1, 2000):
        span = span.child(f"step{i}", tenant=None if i % 100 == 0 else TAG_A, boundary="tool")
    out = TextReporter().render(analyze_built(tmp_path, t))
    line = next(ln for ln in out.splitlines() if ln.startswith("  HIGH") and "POST /chat" in ln)
    assert "step99 → ✗ context-dropped → step100 → " in line
    assert "… 97 more …" in line and line.endswith("(14 more breaks not shown)")
    assert len(line) < 1000


def test_clean_and_counts():
    assert clean("x" * 200, 10) == "x" * 9 + "…"
    assert clean(None) == ""
    counts = count_by_rule([Finding("new-rule", Severity.LOW, T1, "1", "n", None, None, None, None, "m")])
    assert counts["new-rule"] == 1 and list(counts)[-1] == "new-rule"


def test_every_reporter_satisfies_the_protocol():
    for fmt in OutputFormat:
        assert isinstance(reporter_for(fmt), Reporter)


def test_dump_json_writes_what_the_standard_library_writes():
    import json as stdlib_json

    from flowmap.formats.common import dump_json

    doc = {"b": [1, 2.5, None, True], "a": {"naïve": "<tool> → ✗", "z": "\u2028"}, "c": []}
    assert dump_json(doc, sort_keys=True) == stdlib_json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert dump_json(doc) == stdlib_json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def test_dump_json_survives_strings_utf8_cannot_hold():
    import json as stdlib_json

    from flowmap.formats.common import dump_json

    import msgspec

    # a lone surrogate (an in-memory span, a file name that is not UTF-8) becomes U+FFFD:
    # escaped, it would be JSON that strict parsers (and flowmap's own decoder) refuse
    text = dump_json({"span_name": "bad \ud800 surrogate", "file": "bad\udcff.jsonl"})
    assert stdlib_json.loads(text) == {"span_name": "bad \ufffd surrogate", "file": "bad\ufffd.jsonl"}
    assert msgspec.json.decode(text.encode("utf-8")) == stdlib_json.loads(text)


@pytest.mark.parametrize("keep", [0, 1, 2])
def test_json_in_pieces_is_the_whole_document(analysis, keep):
    # the CLI writes --format json piece by piece (findings encoded one by one): the same
    # bytes as the document encoded whole, findings or none, a surrogate in one of them
    import dataclasses

    from flowmap.formats.common import dump_json
    from flowmap.formats.json import JsonReporter

    findings = analysis.findings[:keep]
    if keep == 2:
        findings[1] = dataclasses.replace(findings[1], span_name="bad \ud800 name")
    analysis.findings = findings
    whole = dump_json(to_document(analysis), sort_keys=True).encode("utf-8")
    pieces = list(JsonReporter().chunks(analysis))
    assert b"".join(pieces) == whole and len(pieces) == keep + 2
    assert JsonReporter().render(analysis) == whole.decode("utf-8")


def test_json_chunks_stream_a_list_nested_deeper():
    import json as stdlib_json

    from flowmap.formats.common import STREAMED, json_chunks

    doc = {"runs": [{"tool": "x", "results": STREAMED, "z": {"a": []}}], "$schema": "s"}
    items = [{"b": [1, {"c": None}], "a": "é"}, {"a": "\n"}]
    expected = {"runs": [{"tool": "x", "results": items, "z": {"a": []}}], "$schema": "s"}
    text = b"".join(json_chunks(doc, iter(items), 4)).decode("utf-8")
    assert text == stdlib_json.dumps(expected, indent=2, ensure_ascii=False) + "\n"


def test_sarif_path_through_a_symlinked_directory_stays_relative(analysis, tmp_path):
    real = tmp_path / "work"
    (real / "traces").mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(real)
    analysis.findings[0].origin = f"{link}/traces/run.jsonl:7"  # "$PWD/..." in a linked checkout
    log = to_sarif(analysis, cwd=real)
    phys = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert phys["artifactLocation"] == {"uri": "traces/run.jsonl", "uriBaseId": "%SRCROOT%"}


def test_sarif_lists_at_most_the_results_code_scanning_accepts(analysis, monkeypatch):
    from flowmap.formats import sarif

    monkeypatch.setattr(sarif, "MAX_RESULTS", 1)
    run = to_sarif(analysis)["runs"][0]
    assert [r["level"] for r in run["results"]] == ["error"]  # the worst kept
    (note,) = run["invocations"][0]["toolExecutionNotifications"]
    assert note["message"]["text"].startswith("1 less severe findings are not listed")
    monkeypatch.setattr(sarif, "MAX_RESULTS", 25_000)
    assert "toolExecutionNotifications" not in to_sarif(analysis)["runs"][0]["invocations"][0]


def _sarif_of_one_leaky_request(tmp_path: Path, raw_tenant_id: str, *, tool_service: str = "worker") -> list[dict]:
    """One request as the app would trace it in any CI run (new trace and span ids each time)."""
    from otlp_builder import SERVER, TAG_A, TraceBuilder, analyze_built

    tb = TraceBuilder(service="api")
    entry = tb.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server")
    agent = entry.child("agent run", tenant=TAG_A, boundary="agent")
    agent.child(f"cache.get {raw_tenant_id}", service=tool_service, boundary="cache", scoped=True,
                attrs={"tenant_id": raw_tenant_id})
    run_dir = tmp_path / f"run-{raw_tenant_id}-{tool_service}"
    run_dir.mkdir()
    return to_sarif(analyze_built(run_dir, tb), cwd=run_dir)["runs"][0]["results"]


def test_sarif_fingerprints_name_the_problem_not_the_run(tmp_path):
    # GitHub code scanning matches alerts across uploads by partialFingerprints: ids that
    # change every run closed every alert and opened a new one on each CI run
    first = _sarif_of_one_leaky_request(tmp_path, "acme-corp-7781")
    second = _sarif_of_one_leaky_request(tmp_path, "globex-inc-2203")
    assert {r["ruleId"] for r in first} == {"context-dropped", "tenant-in-telemetry"}
    assert [r["properties"]["trace_id"] for r in first] != [r["properties"]["trace_id"] for r in second]
    assert [r["properties"]["span_id"] for r in first] != [r["properties"]["span_id"] for r in second]

    def fingerprints(results):
        return {r["ruleId"]: r["partialFingerprints"][FINGERPRINT_KEY] for r in results}

    # the span is named after a raw tenant id, printed masked: the fingerprint is made from
    # what is printed, so two tenants' ids give one alert and no hash of an id is published
    assert fingerprints(first) == fingerprints(second)
    assert len(set(fingerprints(first).values())) == 2  # two rules, two alerts
    assert "acme-corp-7781" not in json.dumps(first)
    # the same rule on another operation is another problem
    elsewhere = _sarif_of_one_leaky_request(tmp_path, "acme-corp-7781", tool_service="billing")
    assert fingerprints(elsewhere)["context-dropped"] != fingerprints(first)["context-dropped"]


def test_clean_looks_only_at_what_it_can_show():
    """It escaped a whole text before cutting it: the risk map cleans every name where it
    shows it, and names of thousands of characters made a capped report take 8 s, not 4.
    The first limit + 1 characters decide the result."""
    import random
    import time

    rng = random.Random(7)
    alphabet = "ab \u202e\x00\u2028é<"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        limit = rng.randrange(1, 30)
        escaped = "".join(clean(ch, 100) for ch in text)  # each character alone, uncut
        assert clean(text, limit) == (escaped if len(escaped) <= limit else escaped[: limit - 1] + "…")
    start = time.perf_counter()
    assert clean("\u202e" * 5_000_000, 200).endswith("…")
    assert time.perf_counter() - start < 0.5
