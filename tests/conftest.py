"""Shared fixtures: an isolated flowmap Runtime on a real SDK provider with in-memory export."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

TEST_KEY = "test-key"


@pytest.fixture
def flowmap_runtime(monkeypatch):
    """``configure(set_global=False)`` with a test key; yields (runtime, exporter).

    Spans are exported synchronously to an InMemorySpanExporter; process-wide flowmap
    state (tagger, boundary mode, runtime) is reset afterwards.
    """
    from flowmap import runtime
    from flowmap.configure import configure

    monkeypatch.delenv("FLOWMAP_BOUNDARY_MODE", raising=False)
    exporter = InMemorySpanExporter()
    rt = configure(
        tenant_key=TEST_KEY,
        service_name="test-svc",
        exporters=None,
        instrument_httpx=False,
        set_global=False,
    )
    rt.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield rt, exporter
    rt.shutdown()
    runtime.set_tagger(None)
    runtime.set_boundary_mode(None)
    runtime.set_runtime(None)


@pytest.fixture(autouse=True)
def _forget_bound_tenant_ids():
    """Each test starts with no remembered raw ids: redaction scrubs every span of the
    ids the process bound recently, so one test's tenants must not reach the next's spans."""
    yield
    from flowmap.context import forget_known_ids

    forget_known_ids()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With FLOWMAP_NO_SKIPS=1 (scripts/test.sh, so CI), a skipped test fails the run: the
    real frameworks and servers the suite drives are installed there, so a skip means an
    install went wrong, and a skip must never stand in for a test that ran."""
    import os

    if os.environ.get("FLOWMAP_NO_SKIPS") != "1" or exitstatus not in (0, pytest.ExitCode.OK):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", ())) if reporter is not None else 0
    if skipped:
        print(f"\nFLOWMAP_NO_SKIPS=1: {skipped} test(s) skipped; failing the run (see -rs)")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
