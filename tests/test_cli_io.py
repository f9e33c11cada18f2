"""The command line at the edges of its input and output: file names the system refuses,
standard output closed or full, ``-o -``, options that could be a tenant id, FLOWMAP_FILE."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flowmap.tagging import DEV_KEY, tag_for

from otlp_builder import write_otlp
from test_cli import assert_one_line_error, dropped_at_tool, invoke

FLOWMAP_BIN = Path(sys.executable).parent / "flowmap"
LONG_NAME = "a" * 300 + ".jsonl"  # longer than a file name may be (ENAMETOOLONG)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("FLOWMAP_TENANT_KEY", "FLOWMAP_DEV_MODE", "FLOWMAP_FILE", "FLOWMAP_DEBUG"):
        monkeypatch.delenv(var, raising=False)




@pytest.fixture
def dropped(tmp_path) -> Path:
    return write_otlp(tmp_path / "dropped.jsonl", dropped_at_tool())


def run_cli(*args: object, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWMAP_")}
    env.update(kwargs.pop("env", {}))
    return subprocess.run([str(FLOWMAP_BIN), *map(str, args)], cwd=cwd, env=env, timeout=120, check=False, **kwargs)


def with_closed_stdout(*args: object, cwd: Path, stderr_too: bool = False, env=None) -> subprocess.CompletedProcess:
    """Run flowmap with stdout a pipe whose reader is already gone (``| head -c 0``)."""
    r, w = os.pipe()
    os.close(r)
    try:
        return run_cli(*args, cwd=cwd, stdout=w, stderr=w if stderr_too else subprocess.PIPE, env=env or {})
    finally:
        os.close(w)


# --- 1: file names the system refuses ---------------------------------------------------


def test_a_file_name_too_long_is_a_warning_and_the_other_files_are_read(dropped, tmp_path):
    result = invoke("check", "--format", "json", LONG_NAME, dropped)
    assert result.exit_code == 1, result.output  # judged on dropped.jsonl, not an internal error
    assert json.loads(result.stdout)["summary"]["traces"] == 1
    (warning,) = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert "aaaaaaaa" in warning and warning.endswith("cannot be read (File name too long)")
    assert "internal error" not in result.stderr

    out = tmp_path / "map.html"
    result = invoke("report", "-o", out, LONG_NAME, dropped)
    assert result.exit_code == 0, result.output
    assert "File name too long" in result.stderr and out.exists()


def test_only_a_file_name_too_long_is_an_input_error(tmp_path):
    result = invoke("check", LONG_NAME)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1].startswith("flowmap: error: no spans could be read")
    assert "internal error" not in result.stderr


def test_a_path_that_cannot_be_looked_at_is_left_to_the_loader(dropped, tmp_path, monkeypatch):
    # e.g. a parent directory without search permission: is_dir() raises instead of saying no
    real_is_dir = Path.is_dir

    def is_dir(self):
        if self.name == "locked.jsonl":
            raise PermissionError(13, "Permission denied")
        return real_is_dir(self)

    monkeypatch.setattr(Path, "is_dir", is_dir)
    result = invoke("check", tmp_path / "locked.jsonl", dropped)
    assert result.exit_code == 1, result.output
    assert "locked.jsonl: no such file" in result.stderr


def test_a_directory_that_cannot_be_listed_is_a_warning(dropped, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_iterdir = Path.iterdir

    def iterdir(self):
        if self.name == "locked":
            raise PermissionError(13, "Permission denied")
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    result = invoke("check", locked, dropped)
    assert result.exit_code == 1, result.output
    assert f"flowmap: warning: {locked}: directory cannot be read (Permission denied)" in result.stderr
    line = assert_one_line_error(invoke("check", locked))
    assert line == f"flowmap: error: no trace files to read ({locked}: directory cannot be read (Permission denied))"


def test_a_long_warning_keeps_its_reason():
    from flowmap.cli import _shorten

    line = _shorten("x" * 5000 + ": cannot be read (File name too long)")
    assert len(line) <= 600 and line.startswith("xxx") and line.endswith("(File name too long)")
    assert _shorten("a\x1b[31m b") == "a\\x1b[31m b"


# --- 2: standard output closed by its reader ----------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "text", "sarif"])
def test_a_closed_stdout_does_not_turn_a_pass_into_a_failure(dropped, tmp_path, fmt):
    proc = with_closed_stdout("check", "-f", fmt, "--fail-on", "critical", dropped, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert b"PASS" in proc.stderr
    assert b"Exception ignored" not in proc.stderr and b"Broken pipe" not in proc.stderr
    assert b"error" not in proc.stderr


def test_a_closed_stdout_keeps_the_exit_code_of_the_findings(dropped, tmp_path):
    proc = with_closed_stdout("check", "-f", "json", dropped, cwd=tmp_path)
    assert proc.returncode == 1 and b"FAIL" in proc.stderr and b"Exception ignored" not in proc.stderr


def test_closed_stdout_and_stderr_together_exit_quietly(dropped, tmp_path):
    proc = with_closed_stdout("check", "-f", "json", "--fail-on", "critical", dropped, cwd=tmp_path, stderr_too=True)
    assert proc.returncode == 0


def test_report_and_tag_to_a_closed_stdout(dropped, tmp_path):
    proc = with_closed_stdout("report", "-o", "-", dropped, cwd=tmp_path)
    assert proc.returncode == 0 and b"Exception ignored" not in proc.stderr, proc.stderr
    proc = with_closed_stdout("report", "-o", "/dev/stdout", dropped, cwd=tmp_path)
    assert proc.returncode == 0 and b"Broken pipe" not in proc.stderr, proc.stderr
    proc = with_closed_stdout("tag", "--dev", "tenant-a", cwd=tmp_path)
    assert proc.returncode == 0 and b"Exception ignored" not in proc.stderr, proc.stderr


def test_an_output_file_that_is_a_closed_stdout(dropped, tmp_path):
    proc = with_closed_stdout("check", "-f", "json", "-o", "/dev/stdout", "--fail-on", "critical", dropped, cwd=tmp_path)
    assert proc.returncode == 0 and b"Broken pipe" not in proc.stderr, proc.stderr


# --- 3: standard output that cannot be written ----------------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("fmt", ["json", "text"])
def test_a_full_stdout_is_one_line_and_exit_2(dropped, tmp_path, fmt):
    with open("/dev/full", "wb") as full:
        proc = run_cli("check", "-f", fmt, dropped, cwd=tmp_path, stdout=full, stderr=subprocess.PIPE, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "flowmap: error: cannot write output to <stdout>: No space left on device"


@pytest.mark.parametrize("args", [["check", "-f", "json"], ["report", "-o", "-"]])
def test_a_closed_stdout_is_one_line_and_exit_2(dropped, tmp_path, args):
    """Started with no standard output at all (``1>&-``: Python's sys.stdout is None)."""
    proc = run_cli(*args, dropped, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                   preexec_fn=lambda: os.close(1))
    assert proc.returncode == 2
    assert proc.stderr.strip() == "flowmap: error: cannot write output to <stdout>: it is closed"


# --- 4: -o - is standard output ---------------------------------------------------------------


@pytest.mark.parametrize("option", ["-o", "--output"])
def test_output_dash_is_standard_output(dropped, tmp_path, option):
    result = invoke("check", "--format", "json", option, "-", dropped)
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["summary"]["traces"] == 1
    assert not (tmp_path / "-").exists() and "wrote" not in result.stderr


def test_output_dot_slash_dash_is_a_file_named_dash(dropped, tmp_path):
    result = invoke("check", "--format", "json", "-o", "./-", dropped)
    assert result.exit_code == 1 and result.stdout == ""
    assert json.loads((tmp_path / "-").read_text(encoding="utf-8"))["summary"]["traces"] == 1
    assert "wrote json output to ./-" in result.stderr


def test_report_output_dash_writes_the_html_to_stdout(dropped, tmp_path):
    result = invoke("report", "-o", "-", dropped)
    assert result.exit_code == 0, result.output
    assert result.stdout.lstrip().lower().startswith("<!doctype html")
    assert not (tmp_path / "-").exists() and not (tmp_path / "reports").exists()
    assert "to <stdout>" in result.stderr


@pytest.mark.parametrize("command", ["check", "report"])
def test_output_that_is_a_directory_or_empty_is_a_usage_error(dropped, tmp_path, command):
    for value, words in ((tmp_path, "is a directory"), ("", "empty file name")):
        result = invoke(command, "-o", value, dropped)
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.strip().splitlines()
        assert "--output" in line and words in line


def test_report_default_output_is_unchanged(dropped, tmp_path):
    assert invoke("report", dropped).exit_code == 0
    assert (tmp_path / "reports" / "risk-map.html").exists()


# --- 5: tag never echoes what could be a tenant id ------------------------------------------------


@pytest.mark.parametrize("arg", ["--acme-corp-4411", "-acme", "--acme-corp-4411=x", "--key-fil"])
def test_tag_unknown_option_never_echoes_it(arg):
    result = invoke("tag", arg, env={"FLOWMAP_TENANT_KEY": "k"})
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert "acme" not in line and "fil" not in line.replace("file", "")
    assert "unknown option" in line and "flowmap tag -- ID" in line


def test_tag_id_starting_with_a_dash_goes_after_double_dash():
    result = invoke("tag", "--", "--acme-corp-4411", env={"FLOWMAP_TENANT_KEY": "k"})
    assert result.exit_code == 0, result.output
    assert result.stdout == tag_for("k", "--acme-corp-4411") + "\n"
    result = invoke("tag", "--dev", "--", "-x")
    assert result.exit_code == 0 and result.stdout.strip() == tag_for(DEV_KEY, "-x")


def test_other_commands_still_name_an_unknown_option(dropped):
    result = invoke("check", dropped, "--bogus")
    assert result.exit_code == 2 and "--bogus" in result.stderr


# --- 6: demo --out honours FLOWMAP_FILE ----------------------------------------------------------


def test_demo_out_defaults_to_flowmap_file(monkeypatch):
    import flowmap.demo

    calls: list[dict] = []
    monkeypatch.setattr(flowmap.demo, "run_demo", lambda **kw: calls.append(kw) or 0)
    assert invoke("demo", "--fixed", env={"FLOWMAP_FILE": "envdemo.jsonl"}).exit_code == 0
    assert invoke("demo", "--out", "flag.jsonl", env={"FLOWMAP_FILE": "envdemo.jsonl"}).exit_code == 0
    assert invoke("demo").exit_code == 0
    assert [c["out"] for c in calls] == [Path("envdemo.jsonl"), Path("flag.jsonl"), None]


def test_demo_writes_its_trace_file_where_flowmap_file_says(tmp_path):
    proc = run_cli("demo", "--fixed", "--report", "map.html", cwd=tmp_path,
                   env={"FLOWMAP_FILE": "envdemo.jsonl"}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "envdemo.jsonl").stat().st_size > 0
    assert not (tmp_path / "flowmap-traces.jsonl").exists()


def test_an_input_file_named_in_bytes_that_are_no_utf8_is_reported_in_every_format(tmp_path, monkeypatch):
    """A Latin-1 file name (read as surrogate escapes) crashed SARIF output ('internal
    error (UnicodeEncodeError)') and the HTML report; text and JSON worked."""
    import os

    from otlp_builder import SERVER, TraceBuilder, write_otlp

    tb = TraceBuilder()
    tb.span("GET /x", kind=SERVER, boundary="http.server", attrs={"http.response.status_code": 200})
    monkeypatch.chdir(tmp_path)
    name = os.fsdecode(b"caf\xe9.jsonl")
    write_otlp(tmp_path / name, tb)
    sarif = invoke("check", "--format", "sarif", name)
    assert sarif.exit_code == 0, sarif.output
    assert '"uri": "caf%E9.jsonl"' in sarif.stdout
    report = invoke("report", name, "-o", "map.html")
    assert report.exit_code == 0, report.output
    assert "caf\ufffd" in (tmp_path / "map.html").read_text(encoding="utf-8")


def test_the_report_of_a_file_named_in_bytes_that_are_no_utf8_is_utf8_on_stdout_too(tmp_path):
    """`report -o -` wrote the name's bytes as they were (surrogate escapes back to
    \\xe9): a page that says it is UTF-8 and is not; a file got U+FFFD three times a byte."""
    from otlp_builder import SERVER, TraceBuilder

    tb = TraceBuilder()
    tb.span("GET /x", kind=SERVER, boundary="http.server", attrs={"http.response.status_code": 200})
    name = os.fsdecode(b"caf\xe9.jsonl")
    write_otlp(tmp_path / name, tb)
    proc = run_cli("report", name, "-o", "-", cwd=tmp_path, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    page = proc.stdout.decode("utf-8")  # strict: no stray byte
    assert "<code>caf\ufffd.jsonl</code>" in page
    assert run_cli("report", name, "-o", "map.html", cwd=tmp_path, capture_output=True).returncode == 0
    assert "<code>caf\ufffd.jsonl</code>" in (tmp_path / "map.html").read_text(encoding="utf-8")
