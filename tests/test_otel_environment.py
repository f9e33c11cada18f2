"""``OTEL_*`` values the OpenTelemetry SDK refuses are flowmap's ConfigError (one line
naming the variable and its value), from ``configure()`` and before ``flowmap run``
starts the program; an ``OTEL_TRACES_EXPORTER`` name flowmap does not export to is a
warning. Real SDK, real processes where the SDK reads the variable at import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import flowmap
from flowmap import runtime
from flowmap.configure import configure
from flowmap.errors import ConfigError

_VARS = (
    "OTEL_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_SPAN_EVENT_COUNT_LIMIT", "OTEL_SPAN_LINK_COUNT_LIMIT",
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "OTEL_PROPAGATORS", "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "FLOWMAP_FILE",
)


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    for var in _VARS:
        monkeypatch.delenv(var, raising=False)
    yield
    runtime.set_tagger(None)
    runtime.set_boundary_mode(None)
    runtime.set_runtime(None)


def _configure(**kw):
    kw.setdefault("tenant_key", "test-key")
    kw.setdefault("instrument_httpx", False)
    kw.setdefault("set_global", False)
    return configure(**kw)


@pytest.mark.parametrize(
    "name, value, shown",
    [
        ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "abc", "'abc'"),
        ("OTEL_ATTRIBUTE_COUNT_LIMIT", "-1", "'-1'"),
        ("OTEL_SPAN_EVENT_COUNT_LIMIT", "1.5", "'1.5'"),
        ("OTEL_PROPAGATORS", "tracecontext,bogus", "'bogus'"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "0", "'0'"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "5000", "5000"),  # above the default queue of 2048
    ],
)
def test_a_value_the_sdk_refuses_is_a_config_error_naming_it(monkeypatch, tmp_path, name, value, shown):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        _configure(out=tmp_path / "t.jsonl")
    message = str(err.value)
    assert name in message and shown in message and "\n" not in message


def test_values_the_sdk_takes_pass(monkeypatch, tmp_path):
    for name, value in [
        ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", " 4096 "), ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", ""),  # blank: no limit
        ("OTEL_PROPAGATORS", "tracecontext, baggage"), ("OTEL_BSP_MAX_QUEUE_SIZE", "not a number"),  # SDK: default
    ]:
        monkeypatch.setenv(name, value)
    _configure(out=tmp_path / "t.jsonl").shutdown()


def test_batch_settings_are_refused_only_where_a_batch_processor_is_built(monkeypatch, tmp_path):
    """The SDK refuses them only when a BatchSpanProcessor is made: a configure() that
    exports nothing (a test's in-memory capture makes none either) runs with them."""
    from flowmap.testing import SpanCapture

    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096")  # above the default queue
    _configure(exporters="none").shutdown()
    with SpanCapture() as capture:
        pass
    assert capture.spans == []
    with pytest.raises(ConfigError, match="OTEL_BSP_MAX_EXPORT_BATCH_SIZE=4096"):
        _configure(out=tmp_path / "t.jsonl")


def test_the_value_shown_is_clipped_and_escaped():
    from flowmap.otelenv import check_environment

    with pytest.raises(ConfigError) as err:
        check_environment({"OTEL_SPAN_LINK_COUNT_LIMIT": "x\n" + "y" * 500})
    message = str(err.value)
    assert "\n" not in message and len(message) < 200 and "\\n" in message


IMPORT_TIME = """
    import flowmap
    try:
        flowmap.configure(service_name="svc", instrument_httpx=False, set_global=False)
    except flowmap.FlowmapError as exc:
        print(type(exc).__name__, "|", exc)
"""


@pytest.mark.parametrize(
    "name, value", [("OTEL_PROPAGATORS", "bogus"), ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "abc")]
)
def test_a_value_the_sdk_reads_when_imported_is_a_config_error_too(tmp_path, name, value):
    """The SDK reads these while ``flowmap.configure`` imports it: still flowmap's error."""
    env = {**os.environ, "FLOWMAP_TENANT_KEY": "test-key", "FLOWMAP_FILE": str(tmp_path / "t.jsonl"), name: value}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(IMPORT_TIME)], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ConfigError |") and name in proc.stdout and repr(value) in proc.stdout


@pytest.mark.parametrize(
    "name, value", [("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "abc"), ("OTEL_PROPAGATORS", "bogus")]
)
def test_flowmap_run_refuses_such_a_value_in_one_line_before_the_program_runs(tmp_path, name, value):
    script = tmp_path / "app.py"
    script.write_text("print('ran')\n")
    env = {**os.environ, "FLOWMAP_TENANT_KEY": "test-key", name: value}
    proc = subprocess.run(
        [sys.executable, "-m", "flowmap", "run", "--out", str(tmp_path / "t.jsonl"), "--no-report", str(script)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert name in line and repr(value) in line and "Traceback" not in proc.stderr
    assert "ran" not in proc.stdout


def test_an_unsupported_exporter_name_is_a_warning_and_the_file_is_still_written(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console,nonexistent")
    out = tmp_path / "t.jsonl"
    with caplog.at_level("WARNING", logger="flowmap"):
        rt = _configure(out=out)
    try:
        warnings = [r.getMessage() for r in caplog.records if "OTEL_TRACES_EXPORTER" in r.getMessage()]
        assert len(warnings) == 1
        assert "'nonexistent'" in warnings[0] and "otlp, console and none" in warnings[0]
        assert "'console'" not in warnings[0]  # a name flowmap follows is not named
        with flowmap.bind(flowmap.RequestContext("acme-raw")), flowmap.boundary("tool", "t"):
            pass
        assert rt.force_flush()
    finally:
        rt.shutdown()
    assert json.loads(out.read_text().splitlines()[0])["resourceSpans"]


@pytest.mark.parametrize("value", ["otlp", "console", "none", "OTLP , console"])
def test_supported_exporter_names_give_no_warning(monkeypatch, tmp_path, caplog, value):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:9/v1/traces")
    with caplog.at_level("WARNING", logger="flowmap"):
        _configure(out=tmp_path / "t.jsonl").shutdown()
    assert not [r for r in caplog.records if "OTEL_TRACES_EXPORTER" in r.getMessage()]
