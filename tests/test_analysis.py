"""The facade: streaming over files, in-memory traces, samples, masking, ordering."""

import json

from flowmap import analyze as public_analyze
from flowmap.analysis import analyze, analyze_traces
from flowmap.model import Severity
from flowmap.settings import AnalysisSettings

from otlp_builder import SERVER, TAG_A, TAG_B, TraceBuilder, analyze_built, write_otlp

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
    assert any(bad.trace_id in w and "cycle" in w for w in a.warnings)
    assert seen == a.warnings
    assert any(f.rule == "context-dropped" and f.trace_id == good.trace_id for f in a.findings)


def test_raw_values_never_in_any_output(tmp_path):
    healthy, leaky, info = _mixed()
    a = analyze_built(tmp_path, healthy, leaky, info)
    blob = json.dumps([f.to_json() for f in a.findings]) + repr(a.sample_traces) + repr(a.flow) + repr(a.paths)
    assert RAW not in blob
