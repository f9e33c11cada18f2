"""The flowmap command line, in-process (typer's CliRunner) and as a real subprocess."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flowmap.cli import _optional, app, main
from flowmap.errors import FlowmapError
from flowmap.progress import ProgressBar
from flowmap.tagging import DEV_KEY, tag_for

from otlp_builder import CLIENT, SERVER, TAG_A, TAG_B, TraceBuilder, write_otlp

ROOT = Path(__file__).resolve().parent.parent
FLOWMAP_BIN = Path(sys.executable).parent / "flowmap"
CONTRACT_FINDING_KEYS = {
    "rule", "severity", "trace_id", "span_id", "span_name",
    "parent_span_id", "parent_name", "service", "boundary", "message",
}


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Run every command in an empty directory (no pyproject.toml above it) without keys."""
    monkeypatch.chdir(tmp_path)
    for var in ("FLOWMAP_TENANT_KEY", "FLOWMAP_DEV_MODE", "FLOWMAP_FILE"):
        monkeypatch.delenv(var, raising=False)


def invoke(*args: str, env: dict[str, str] | None = None, input: str | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env, input=input)


def assert_one_line_error(result, *words: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


# --- trace files ------------------------------------------------------------------


def dropped_at_tool() -> TraceBuilder:
    """GET /chat → agent run → tool search_docs, the tool ran without the tenant (high)."""
    tb = TraceBuilder(service="api")
    entry = tb.span("GET /chat", kind=SERVER, tenant=TAG_A, boundary="http.server")
    agent = entry.child("agent run", tenant=TAG_A, boundary="agent")
    agent.child("tool search_docs", boundary="tool")
    return tb


def switched_tenant() -> TraceBuilder:
    tb = TraceBuilder(service="api")
    entry = tb.span("GET /chat", kind=SERVER, tenant=TAG_A, boundary="http.server")
    entry.child("memory load", tenant=TAG_B, boundary="memory", scoped=True)
    return tb


def clean_trace() -> TraceBuilder:
    tb = TraceBuilder(service="api")
    entry = tb.span("GET /chat", kind=SERVER, tenant=TAG_A, boundary="http.server")
    entry.child("tool search_docs", tenant=TAG_A, boundary="tool")
    return tb


def baggage_to(host: str) -> TraceBuilder:
    tb = TraceBuilder(service="api")
    entry = tb.span("GET /chat", kind=SERVER, tenant=TAG_A, boundary="http.server")
    entry.child("POST", kind=CLIENT, tenant=TAG_A, boundary="http.client", baggage_sent=True,
                attrs={"server.address": host, "http.request.method": "POST"})
    return tb


def raw_team_id() -> TraceBuilder:
    tb = TraceBuilder(service="api")
    entry = tb.span("GET /chat", kind=SERVER, tenant=TAG_A, boundary="http.server")
    entry.child("agent run", tenant=TAG_A, boundary="agent", attrs={"team_id": "acme-secret-team"})
    return tb


@pytest.fixture
def dropped(tmp_path) -> Path:
    return write_otlp(tmp_path / "dropped.jsonl", dropped_at_tool())


# --- check: exit codes --------------------------------------------------------------


def test_findings_at_default_threshold_exit_1(dropped):
    result = invoke("check", dropped)
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.stderr and "1 high" in result.stderr


@pytest.mark.parametrize(
    "threshold, code", [("info", 1), ("medium", 1), ("high", 1), ("HIGH", 1), ("critical", 0)]
)
def test_fail_on_threshold(dropped, threshold, code):
    assert invoke("check", dropped, "--fail-on", threshold).exit_code == code


@pytest.mark.parametrize("frozen", [False, True])
def test_check_in_process_leaves_the_collector_as_it_found_it(dropped, frozen):
    # the command moves what its analysis left to the collector's oldest generation
    # (a freeze and an unfreeze): a program that runs it in-process keeps its collector
    # on, and its own frozen objects (gc.freeze before forking workers) frozen
    import gc

    mine = [object()]  # a container the collector tracks
    if frozen:
        gc.freeze()
    try:
        assert invoke("check", dropped).exit_code == 1
        assert gc.isenabled()
        assert any(o is mine for o in gc.get_objects()) is not frozen  # (frozen ones are not listed)
    finally:
        gc.unfreeze()


def test_cross_tenant_fails_even_at_critical(tmp_path):
    path = write_otlp(tmp_path / "switched.jsonl", switched_tenant())
    result = invoke("check", path, "--fail-on", "critical", "--format", "json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["summary"]["findings"]["cross-tenant"] == 1


def test_clean_traces_exit_0(tmp_path):
    path = write_otlp(tmp_path / "clean.jsonl", clean_trace())
    result = invoke("check", path, "--fail-on", "info")
    assert result.exit_code == 0, result.output
    assert "PASS: no findings in 1 trace" in result.stderr


# --- check: usage and input errors ---------------------------------------------------


@pytest.mark.parametrize(
    "args, words",
    [
        (["check"], ["flowmap check", "Missing argument"]),
        (["check", "x.jsonl", "--bogus"], ["No such option", "--bogus"]),
        (["check", "x.jsonl", "--fail-on", "severe"], ["--fail-on", "severe"]),
        (["check", "x.jsonl", "--format", "xml"], ["--format", "xml"]),
        (["frobnicate"], ["No such command"]),
        (["run"], ["nothing to run"]),
    ],
)
def test_usage_errors_exit_2_with_one_line(args, words):
    assert_one_line_error(invoke(*args), *words)


def test_no_arguments_shows_help_and_exits_2():
    result = invoke()
    assert result.exit_code == 2 and "check" in result.output and "tag" in result.output


def test_missing_file_exits_2_when_nothing_could_be_read(tmp_path):
    assert_one_line_error(invoke("check", tmp_path / "nope.jsonl"), "flowmap: error:")


def test_nothing_readable_from_several_files_names_each_cause_in_one_line(tmp_path):
    line = assert_one_line_error(invoke("check", tmp_path / "a.jsonl", tmp_path / "b.jsonl"))
    assert line == ("flowmap: error: no spans could be read from 2 input file(s) "
                    f"({tmp_path / 'a.jsonl'}: no such file; {tmp_path / 'b.jsonl'}: no such file)")
    line = assert_one_line_error(invoke("check", *(tmp_path / f"{n}.jsonl" for n in "abcde")))
    assert line.endswith("c.jsonl: no such file; and 2 more problems)")


def test_file_of_garbage_exits_2(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("this is not json\n{\"resourceSpans\": [\n", encoding="utf-8")
    result = invoke("check", bad)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.stderr.strip().splitlines()[-1].startswith("flowmap: error:")


def test_partly_bad_file_warns_and_still_judges(tmp_path):
    path = write_otlp(tmp_path / "mixed.jsonl", dropped_at_tool())
    with path.open("a", encoding="utf-8") as fh:
        fh.write("{truncated\n")
    result = invoke("check", path, "--format", "json")
    assert result.exit_code == 1
    warnings = [l for l in result.stderr.splitlines() if l.startswith("warning:")]
    assert len(warnings) == 1 and f"{path}:2" in warnings[0]
    assert json.loads(result.stdout)["summary"]["findings"]["context-dropped"] == 1


def test_warnings_are_capped(tmp_path):
    path = write_otlp(tmp_path / "many.jsonl", clean_trace())
    with path.open("a", encoding="utf-8") as fh:
        fh.write("not json\n" * 15)
    result = invoke("check", path)
    assert result.exit_code == 0
    warnings = [l for l in result.stderr.splitlines() if l.startswith("warning:")]
    assert len(warnings) == 11 and warnings[-1] == "warning: … and 5 more warnings"


@pytest.mark.parametrize("readable", [True, False], ids=["with-spans", "no-spans"])
def test_hidden_warnings_are_counted_past_the_loaders_cap(tmp_path, readable):
    """Past the loader's cap (200 passed on, then one line for the rest) the count on
    stderr is still every warning not shown, whether the run read spans or ended in error."""
    from flowmap.loading import MAX_WARNINGS

    bad = MAX_WARNINGS + 300
    path = write_otlp(tmp_path / "many.jsonl", clean_trace()) if readable else tmp_path / "many.jsonl"
    with path.open("a", encoding="utf-8") as fh:
        fh.write("not json\n" * bad)
    result = invoke("check", path)
    if not readable:  # the error's one line names the first three and counts the rest
        line = assert_one_line_error(result)
        assert line.endswith(f"; and {bad - 3} more problems)")
        return
    assert result.exit_code == 0, result.output
    warnings = [l for l in result.stderr.splitlines() if l.startswith("warning:")]
    assert len(warnings) == 11 and warnings[-1] == f"warning: … and {bad - 10} more warnings"


def test_one_missing_file_among_good_ones_is_a_warning(dropped, tmp_path):
    result = invoke("check", dropped, tmp_path / "gone.jsonl")
    assert result.exit_code == 1
    assert "gone.jsonl" in result.stderr


def test_directory_input(dropped, tmp_path):
    (tmp_path / "notes.txt").write_text("not a trace", encoding="utf-8")
    result = invoke("check", tmp_path, "--format", "json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["summary"]["traces"] == 1


# --- check: outputs -----------------------------------------------------------------


def test_json_to_stdout_and_summary_to_stderr(dropped):
    result = invoke("check", dropped, "--format", "json")
    doc = json.loads(result.stdout)  # stdout is the document and nothing else
    assert doc["version"] == 1 and doc["summary"]["traces"] == 1 and doc["summary"]["spans"] == 3
    (finding,) = doc["findings"]
    assert CONTRACT_FINDING_KEYS <= set(finding)
    assert finding["rule"] == "context-dropped" and finding["severity"] == "high"
    assert finding["span_name"] == "tool search_docs" and finding["parent_name"] == "agent run"
    assert finding["boundary"] == "tool" and finding["service"] == "api"
    assert finding["trace_id"] == finding["trace_id"].lower()
    assert "1 trace, 3 spans, 1 finding (1 high)" in result.stderr


def test_output_file(dropped, tmp_path):
    out = tmp_path / "out" / "flowmap.sarif"
    result = invoke("check", dropped, "--format", "sarif", "--output", out)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"wrote sarif output to {out}" in result.stderr
    log = json.loads(out.read_text(encoding="utf-8"))
    (res,) = log["runs"][0]["results"]
    assert res["ruleId"] == "context-dropped" and res["level"] == "error"
    phys = res["locations"][0]["physicalLocation"]
    assert phys["artifactLocation"]["uri"] == "dropped.jsonl"  # relative to the cwd
    assert phys["region"]["startLine"] == 1


def test_text_output_shows_the_broken_edge(dropped):
    result = invoke("check", dropped)
    assert "GET /chat → agent run → ✗ context-dropped → tool search_docs" in result.stdout
    assert "By severity: 0 critical, 1 high" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].startswith("FAIL: 1 finding at or above high")


def test_standard_input_through_a_real_pipe(dropped, tmp_path):
    # a pipe cannot be read twice: "-" is copied to a private temporary file, removed after
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    data = dropped.read_bytes() + b"{not json\n"
    out = subprocess.run([sys.executable, "-m", "flowmap", "check", "--format", "json", "-"],
                         input=data, capture_output=True, timeout=60, env=env, check=False)
    assert out.returncode == 1, out.stderr
    doc = json.loads(out.stdout)
    assert doc["summary"]["files"] == ["<stdin>"] and doc["summary"]["findings"]["context-dropped"] == 1
    assert b"warning: <stdin>:2: invalid JSON" in out.stderr
    assert list((tmp_path / "tmp").iterdir()) == []


def test_standard_input_beside_files_and_given_twice(dropped, tmp_path):
    other = write_otlp(tmp_path / "other.jsonl", dropped_at_tool())
    result = invoke("check", "--format", "json", "-", other, "-", input=dropped.read_text(encoding="utf-8"))
    assert result.exit_code == 1
    summary = json.loads(result.stdout)["summary"]
    assert summary["files"] == ["<stdin>", str(other)] and summary["traces"] == 2
    assert "warning: <stdin>: given more than once; read once" in result.stderr


def test_empty_standard_input_is_exit_2(tmp_path):
    assert_one_line_error(invoke("check", "-", input=""), "<stdin>: empty file")


def test_unwritable_output_is_one_line(dropped, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    line = assert_one_line_error(invoke("check", dropped, "-o", blocker / "sub" / "out.json"), "cannot write")
    assert line.endswith(f"{blocker} is not a directory")  # the file in the way, not "File exists"
    assert blocker.read_text(encoding="utf-8") == "x"


# --- configuration ------------------------------------------------------------------


def test_folded_operations_in_json_and_text_with_the_cap_from_config(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.flowmap]\nmax-operations-per-service = 2\n")
    builders = []
    for i in range(5):
        tb = TraceBuilder(service="api")
        tb.span(f"GET /users/{i}", kind=SERVER, tenant=TAG_A, boundary="http.server").child(
            f"SELECT user {i}", tenant=TAG_A, boundary="db")
        builders.append(tb)
    path = write_otlp(tmp_path / "ids.jsonl", *builders)
    doc = json.loads(invoke("check", "--format", "json", path).stdout)
    assert doc["summary"]["folded_spans"] == 8
    assert sorted(n["id"] for n in doc["flow_map"]["nodes"]) == [
        "api (other operations)", "api GET /users/0", "api SELECT user 0"]
    text = invoke("check", path).stdout
    assert "(the flow map counts 8 spans of api under '(other operations)'" in text


def test_config_fail_on_and_cli_override(dropped, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.flowmap]\nfail_on = "critical"\nformat = "json"\n')
    result = invoke("check", dropped)
    assert result.exit_code == 0
    assert json.loads(result.stdout)["version"] == 1  # format from config
    assert invoke("check", dropped, "--fail-on", "high").exit_code == 1
    assert invoke("check", dropped, "--format", "text").stdout.startswith("flowmap:")


def test_config_allowed_hosts(tmp_path):
    path = write_otlp(tmp_path / "bag.jsonl", baggage_to("api.partner.example"))
    result = invoke("check", path, "--fail-on", "medium", "--format", "json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["summary"]["findings"]["baggage-to-external"] == 1
    (tmp_path / "pyproject.toml").write_text('[tool.flowmap]\nallowed_hosts = ["*.partner.example"]\n')
    result = invoke("check", path, "--fail-on", "medium", "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["summary"]["findings"]["baggage-to-external"] == 0


def test_config_tenant_attributes(tmp_path):
    path = write_otlp(tmp_path / "team.jsonl", raw_team_id())
    result = invoke("check", path, "--format", "json")
    assert json.loads(result.stdout)["summary"]["findings"]["tenant-in-telemetry"] == 0
    (tmp_path / "pyproject.toml").write_text('[tool.flowmap]\ntenant_attributes = ["team_id"]\n')
    for fmt in ("json", "sarif", "text"):
        result = invoke("check", path, "--format", fmt)
        assert result.exit_code == 1
        assert "acme-secret-team" not in result.output  # the flagged raw value is masked
    assert json.loads(invoke("check", path, "--format", "json").stdout)["summary"]["findings"][
        "tenant-in-telemetry"] == 1


def test_config_can_drop_the_built_in_tenant_attribute_names(tmp_path):
    """On a CRM platform customer_id names one of the tenant's own customers: a tool taking
    it is no model-chosen tenant. include_default_tenant_attributes = false keeps only the
    platform's own names, which are still judged."""
    tb = TraceBuilder(service="api")
    entry = tb.span("POST /ask", kind=SERVER, tenant=TAG_A, boundary="http.server")
    entry.child("execute_tool lookup_orders", tenant=TAG_A, boundary="tool",
                attrs={"gen_ai.tool.call.arguments": json.dumps({"customer_id": "cust-8841"})})
    entry.child("execute_tool switch_org", tenant=TAG_A, boundary="tool",
                attrs={"gen_ai.tool.call.arguments": json.dumps({"tenant_id": "acme-corp-77"})})
    path = write_otlp(tmp_path / "crm.jsonl", tb)

    def chosen() -> list[str]:
        out = json.loads(invoke("check", path, "--format", "json").stdout)
        return sorted(f["span_name"] for f in out["findings"] if f["rule"] == "model-chosen-tenant")

    assert chosen() == ["execute_tool lookup_orders", "execute_tool switch_org"]
    (tmp_path / "pyproject.toml").write_text(
        '[tool.flowmap]\ninclude_default_tenant_attributes = false\ntenant_attributes = ["tenant_id"]\n')
    assert chosen() == ["execute_tool switch_org"]


def test_report_leaves_prompts_out_unless_show_content(tmp_path):
    tb = TraceBuilder(service="api")
    entry = tb.span("POST /ask", kind=SERVER, tenant=TAG_A, boundary="http.server")
    entry.child("chat gpt-4o", kind=CLIENT, tenant=TAG_A, boundary="llm",
                attrs={"gen_ai.prompt.0.content": "my passport number is X1234567"})
    entry.child("tool search_docs", boundary="tool")  # a finding, so the trace is a sample
    path = write_otlp(tmp_path / "chat.jsonl", tb)
    assert invoke("report", path, "-o", tmp_path / "r.html").exit_code == 0
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "X1234567" not in page and "characters of content not shown" in page
    assert invoke("report", path, "-o", tmp_path / "full.html", "--show-content").exit_code == 0
    assert "my passport number is X1234567" in (tmp_path / "full.html").read_text(encoding="utf-8")


def test_config_errors_and_warnings(dropped, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.flowmap]\nfail_on = "severe"\n')
    assert_one_line_error(invoke("check", dropped), "fail_on", "severe")
    (tmp_path / "pyproject.toml").write_text('[tool.flowmap]\nfial_on = "low"\n')
    result = invoke("check", dropped)
    assert result.exit_code == 1
    assert "warning: " in result.stderr and "unknown keys ignored: fial_on" in result.stderr
    explicit = tmp_path / "ci.toml"
    explicit.write_text('fail_on = "critical"\n')
    assert invoke("check", dropped, "--config", explicit).exit_code == 0


# --- tag ----------------------------------------------------------------------------


def test_tag_under_env_key():
    result = invoke("tag", "tenant-a", env={"FLOWMAP_TENANT_KEY": "s3cret"})
    assert result.exit_code == 0
    assert result.stdout == tag_for("s3cret", "tenant-a") + "\n"
    assert "tenant-a" not in result.stderr


def test_tag_key_file_and_stdin(tmp_path):
    key = tmp_path / "key"
    key.write_text("file-key\n", encoding="utf-8")
    result = invoke("tag", "--key-file", key, "-", input="tenant-b\n")
    assert result.exit_code == 0 and result.stdout.strip() == tag_for("file-key", "tenant-b")


def test_tag_without_key_names_the_variable_and_never_the_id():
    line = assert_one_line_error(invoke("tag", "acme-corp-42"), "FLOWMAP_TENANT_KEY")
    assert "acme-corp-42" not in line


def test_tag_dev_key_is_loud():
    result = invoke("tag", "--dev", "tenant-a")
    assert result.exit_code == 0 and result.stdout.strip() == tag_for(DEV_KEY, "tenant-a")
    assert "DEVELOPMENT MODE" in result.stderr and "NOT secret" in result.stderr


def test_tag_errors_never_echo_the_id(tmp_path):
    line = assert_one_line_error(invoke("tag", "acme", "corp", env={"FLOWMAP_TENANT_KEY": "k"}), "exactly one")
    assert "acme" not in line and "corp" not in line
    assert_one_line_error(invoke("tag", "--key-file", tmp_path / "missing", "acme"), "cannot read key file")
    assert_one_line_error(invoke("tag", "", env={"FLOWMAP_TENANT_KEY": "k"}), "empty")


# --- other commands ------------------------------------------------------------------


def test_missing_optional_part_is_a_one_line_error():
    with pytest.raises(FlowmapError, match="'flowmap demo' is not available: flowmap.nothere is not installed"):
        _optional("flowmap.nothere", "demo", "run_demo")
    with pytest.raises(FlowmapError, match="'flowmap demo' is not available: flowmap.errors.run_demo is missing"):
        _optional("flowmap.errors", "demo", "run_demo")


def test_report_writes_html(dropped, tmp_path):
    out = tmp_path / "maps" / "risk.html"
    result = invoke("report", dropped, "-o", out)
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")
    assert str(out) in result.stderr


def test_report_that_cannot_be_written_names_why_and_keeps_the_old_one(dropped, tmp_path):
    blocker = tmp_path / "maps"
    blocker.write_text("x", encoding="utf-8")
    line = assert_one_line_error(invoke("report", dropped, "-o", blocker / "risk.html"), "cannot write report")
    assert line.endswith(f"{blocker} is not a directory")
    out = tmp_path / "risk.html"
    out.write_text("previous", encoding="utf-8")
    out.chmod(0o640)
    assert invoke("report", dropped, "-o", out).exit_code == 0
    assert out.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")
    assert oct(out.stat().st_mode & 0o777) == oct(0o640)  # replaced, permissions kept
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_report_on_unreadable_input_exits_2(tmp_path):
    assert_one_line_error(invoke("report", tmp_path / "none.jsonl", "-o", tmp_path / "r.html"))
    assert not (tmp_path / "r.html").exists()


# --- progress -----------------------------------------------------------------------


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_off_when_not_a_terminal():
    stream = io.StringIO()
    bar = ProgressBar(stream, delay=0)
    bar(50, 100)
    assert not bar.enabled and stream.getvalue() == ""


def test_progress_bar_waits_then_draws_then_clears():
    now = [0.0]
    stream = _Tty()
    bar = ProgressBar(stream, delay=0.5, clock=lambda: now[0])
    bar(10, 100)
    assert stream.getvalue() == ""  # a quick run prints nothing
    now[0] = 1.0
    bar(50, 100)
    assert "50%" in stream.getvalue() and "\r" in stream.getvalue()
    with bar:
        pass
    assert stream.getvalue().endswith("\r")


# --- real subprocesses ----------------------------------------------------------------


def run_cli(*args: str, cwd: Path, exe: list[str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWMAP_")}
    return subprocess.run([*(exe or [str(FLOWMAP_BIN)]), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_console_script_json_and_exit_code(dropped, tmp_path):
    proc = run_cli("check", dropped.name, "--format", "json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["findings"][0]["rule"] == "context-dropped"
    assert "FAIL" in proc.stderr


def test_console_script_usage_error_is_one_line(tmp_path):
    proc = run_cli("check", "--fail-on", "severe", "x.jsonl", cwd=tmp_path)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    proc = run_cli("check", tmp_path / "absent.jsonl", cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_python_dash_m_flowmap(tmp_path):
    proc = run_cli("tag", "--dev", "tenant-a", cwd=tmp_path, exe=[sys.executable, "-m", "flowmap"])
    assert proc.returncode == 0 and proc.stdout.strip() == tag_for(DEV_KEY, "tenant-a")


def test_importing_the_cli_stays_light(tmp_path):
    code = ("import sys, flowmap.cli; heavy = [m for m in ('flowmap.analysis', 'opentelemetry', "
            "'networkx', 'jinja2', 'flowmap.html') if m in sys.modules]; print(heavy)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_an_internal_error_is_one_line_without_the_data(tmp_path, monkeypatch, capsys):
    import flowmap.analysis

    def broken(*args, **kwargs):
        raise RuntimeError("bug while reading tenant acme-secret-corp")

    monkeypatch.setattr(flowmap.analysis, "analyze", broken)
    monkeypatch.delenv("FLOWMAP_DEBUG", raising=False)
    tb = TraceBuilder()
    tb.span("GET /x", kind=SERVER, tenant=TAG_A)
    path = write_otlp(tmp_path / "t.jsonl", tb)
    with pytest.raises(SystemExit) as exit_:
        main(["check", str(path)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "internal error (RuntimeError)" in err and "Traceback" not in err
    assert "acme-secret-corp" not in err and len(err.splitlines()) == 1


def test_raw_id_in_a_service_name_or_attribute_key_is_masked_in_every_output(tmp_path):
    """A raw tenant id flagged in one attribute is masked wherever else it shows: inside
    the service name (in findings, the services list, samples) and inside attribute keys."""
    raw = "acme-corp-secret"
    tb = TraceBuilder(service=f"billing-{raw}")
    tb.span("GET /x", kind=SERVER, tenant=TAG_A, boundary="http.server",
            attrs={"tenant_id": raw, f"quota.{raw}.used": 3})
    path = write_otlp(tmp_path / "t.jsonl", tb)
    for fmt in ("text", "json", "sarif"):
        result = invoke("check", "--format", fmt, path)
        assert result.exit_code == 1, result.output
        assert raw not in result.stdout + result.stderr, fmt
        assert "billing-[masked]" in result.stdout + result.stderr, fmt
    doc = json.loads(invoke("check", "--format", "json", path).stdout)
    assert doc["findings"][0]["service"] == "billing-[masked]"
    result = invoke("report", path, "-o", tmp_path / "map.html")
    assert result.exit_code == 0, result.output
    html = (tmp_path / "map.html").read_text(encoding="utf-8")
    assert raw not in html and "quota.[masked].used" in html


def test_an_empty_file_name_is_a_usage_error_not_the_current_directory(tmp_path):
    write_otlp(tmp_path / "here.jsonl", dropped_at_tool())  # would be read if "" meant "."
    line = assert_one_line_error(invoke("check", ""), "empty file name")
    assert "here.jsonl" not in line


def test_the_error_line_escapes_control_characters_of_a_file_name(tmp_path):
    evil = tmp_path / "x\x1b[2J\x1b]0;pwned\x07.jsonl"
    evil.write_text("{not json\n")
    line = assert_one_line_error(invoke("check", evil), "no spans could be read")
    assert "\x1b" not in line and "\x07" not in line and "\\x1b[2J" in line


def test_fail_on_info_from_the_config_is_honoured(tmp_path):
    """info is the lowest severity (0): it must not read as "no setting"."""
    tb = TraceBuilder(service="api")
    tb.span("late export", tenant=TAG_A, parent="00000000000ca11e")  # missing-parent: info
    path = write_otlp(tmp_path / "t.jsonl", tb)
    assert invoke("check", path).exit_code == 0
    (tmp_path / "pyproject.toml").write_text('[tool.flowmap]\nfail_on = "info"\n')
    result = invoke("check", path)
    assert result.exit_code == 1 and "at or above info" in result.stderr


@pytest.mark.parametrize("cap", [0, 1])
def test_max_findings_caps_the_list_not_the_counts_or_the_verdict(tmp_path, cap):
    tb = TraceBuilder(service="api")
    entry = tb.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server")
    entry.child("tool search_docs", boundary="tool")  # context-dropped: high
    entry.child("tool other", tenant=TAG_B, boundary="tool")  # cross-tenant: critical
    path = write_otlp(tmp_path / "t.jsonl", tb)
    (tmp_path / "pyproject.toml").write_text(f"[tool.flowmap]\nmax_findings = {cap}\n")
    result = invoke("check", "--format", "json", path)
    assert result.exit_code == 1, result.stderr
    doc = json.loads(result.stdout)
    assert len(doc["findings"]) == cap and doc["summary"]["omitted_findings"] == 2 - cap
    assert doc["summary"]["findings"]["cross-tenant"] == 1 and doc["summary"]["findings"]["context-dropped"] == 1
    assert doc["summary"]["severities"]["critical"] == 1 and doc["summary"]["severities"]["high"] == 1
    assert "2 findings (1 critical, 1 high)" in result.stderr and "FAIL: 2 findings at or above high" in result.stderr
    # the report's summary line counts them all too, as its page does
    result = invoke("report", path, "-o", tmp_path / "r.html")
    assert result.exit_code == 0 and "(2 findings)" in result.stderr, result.stderr


def test_output_that_is_also_an_input_is_refused(tmp_path):
    path = write_otlp(tmp_path / "t.jsonl", dropped_at_tool())
    before = path.read_bytes()
    assert_one_line_error(invoke("check", "--format", "json", "-o", path, path), "also an input")
    assert_one_line_error(invoke("report", "-o", tmp_path / "." / "t.jsonl", path), "also an input")
    assert path.read_bytes() == before


def test_a_failed_write_leaves_the_previous_output_whole(tmp_path, monkeypatch):
    path = write_otlp(tmp_path / "t.jsonl", dropped_at_tool())
    out = tmp_path / "report.json"
    out.write_text("previous report\n")
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            self.fh.write(data[:100])
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: Full(real_fdopen(fd, mode)))
    assert_one_line_error(invoke("check", "--format", "json", "-o", out, path), "No space left")
    assert out.read_text() == "previous report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "t.jsonl"]  # no temp file left


def test_case_variants_of_a_flagged_raw_id_are_masked_in_every_output(tmp_path):
    """``Acme-Corp-7`` flagged in tenant_id is masked as ``acme-corp-7`` in a route and
    ``ACME-CORP-7`` in a cache key too."""
    raw = "Acme-Corp-7"
    tb = TraceBuilder(service="api")
    entry = tb.span("GET /t/acme-corp-7/summary", kind=SERVER, tenant=TAG_A, boundary="http.server",
                    attrs={"tenant_id": raw})
    entry.child("cache.get ACME-CORP-7:summary", kind=CLIENT, tenant=TAG_A, boundary="cache", scoped=False)
    path = write_otlp(tmp_path / "t.jsonl", tb)
    for fmt in ("text", "json", "sarif"):
        result = invoke("check", "--format", fmt, path)
        assert result.exit_code == 1, result.output
        out = result.stdout + result.stderr
        assert raw.lower() not in out.lower(), fmt
        assert "cache.get [masked]:summary" in out, fmt
    assert invoke("report", path, "-o", tmp_path / "map.html").exit_code == 0
    html = (tmp_path / "map.html").read_text(encoding="utf-8")
    assert raw.lower() not in html.lower() and "GET /t/[masked]/summary" in html


def test_a_file_named_after_a_tenant_is_masked_in_every_output(tmp_path):
    """The file name holds the raw id flagged inside it: the JSON files and origins, the
    SARIF locations (masked too: see the README) and the HTML header hide it."""
    raw = "Globex-7731"
    tb = TraceBuilder(service="api")
    tb.span("GET /x", kind=SERVER, tenant=TAG_A, boundary="http.server", attrs={"tenant_id": raw})
    path = write_otlp(tmp_path / "export-globex-7731.jsonl", tb)
    masked = str(tmp_path / "export-[masked].jsonl")
    outs = {}
    for fmt in ("text", "json", "sarif"):
        result = invoke("check", "--format", fmt, path)
        assert result.exit_code == 1, result.output
        outs[fmt] = result.stdout + result.stderr
        assert raw.lower() not in outs[fmt].lower(), fmt
    doc = json.loads(invoke("check", "--format", "json", path).stdout)
    assert doc["summary"]["files"] == [masked]
    assert doc["findings"][0]["origin"] == {"file": masked, "line": 1}
    location = json.loads(invoke("check", "--format", "sarif", path).stdout)["runs"][0]["results"][0]["locations"][0]
    assert location["physicalLocation"]["artifactLocation"]["uri"].endswith("export-%5Bmasked%5D.jsonl")
    assert invoke("report", path, "-o", tmp_path / "map.html").exit_code == 0
    html = (tmp_path / "map.html").read_text(encoding="utf-8")
    assert raw.lower() not in html.lower() and "export-[masked].jsonl" in html


def test_warnings_on_stderr_mask_a_raw_id_flagged_after_them(tmp_path):
    """A loader warning quotes an attribute key holding a raw id that the analysis only
    flags later (in another case, in the next trace): stderr shows it masked, and so does
    the analysis' own warnings list."""
    first = TraceBuilder(service="api")
    first.span("GET /x", kind=SERVER, tenant=TAG_A, boundary="http.server",
               attrs={"quota.ACME-CORP-7.used": "BIG"})
    later = TraceBuilder(service="api")
    later.span("GET /y", kind=SERVER, tenant=TAG_A, boundary="http.server", attrs={"tenant_id": "Acme-Corp-7"})
    path = write_otlp(tmp_path / "t.jsonl", first, later)
    path.write_text(path.read_text().replace('"stringValue": "BIG"', '"intValue": "99999999999999999999999"'))
    result = invoke("check", "--format", "json", path)
    assert result.exit_code == 1, result.output
    warnings = [l for l in result.stderr.splitlines() if l.startswith("warning:")]
    assert len(warnings) == 1 and 'attribute "quota.[masked].used" dropped' in warnings[0]
    assert "acme-corp-7" not in (result.stdout + result.stderr).lower()
    assert json.loads(result.stdout)["warnings"] == [warnings[0][len("warning: "):]]


def test_json_to_a_text_only_stdout(tmp_path, monkeypatch):
    # a program that runs flowmap in-process with its own text stream as stdout
    tb = TraceBuilder()
    tb.span("POST /chat", kind=SERVER, tenant=TAG_A, boundary="http.server")
    traces = write_otlp(tmp_path / "t.jsonl", tb)
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    try:
        code = main(["check", str(traces), "--format", "json"])
    except SystemExit as exc:
        code = exc.code
    assert code in (0, None) and json.loads(out.getvalue())["summary"]["spans"] == 1


def test_standard_input_that_fails_midway_leaves_no_temporary_file(tmp_path, monkeypatch):
    # the copy is removed even when reading stdin fails after part of it was written
    import tempfile

    from flowmap.loading import iter_traces

    class Failing(io.RawIOBase):
        calls = 0

        def readable(self):
            return True

        def readinto(self, b):
            self.calls += 1
            if self.calls > 1:
                raise OSError(5, "Input/output error")
            b[:3] = b"{}\n"
            return 3

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(Failing())))
    other = write_otlp(tmp_path / "other.jsonl", dropped_at_tool())
    warnings: list[str] = []
    assert len(list(iter_traces(["-", other], on_warning=warnings.append))) == 1
    assert warnings == ["<stdin>: cannot be read (OSError)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.jsonl"]


def test_a_file_named_dash_is_read_as_a_file(dropped, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-").write_bytes(dropped.read_bytes())
    result = invoke("check", "--format", "json", "./-", input="")
    assert result.exit_code == 1, result.stderr
    assert json.loads(result.stdout)["summary"]["files"] == ["./-"]


def test_text_to_a_text_only_stdout_that_cannot_encode_it(monkeypatch):
    from flowmap.cli import _write_output

    class Ascii(io.StringIO):
        encoding = "ascii"

        def write(self, s):
            s.encode("ascii")  # raises, as a terminal in the C locale does
            return super().write(s)

    out = Ascii()
    monkeypatch.setattr(sys, "stdout", out)
    _write_output("GET /chat → tool\n", None)
    assert out.getvalue() == "GET /chat ? tool\n"
