"""opentelemetry-instrument discovers flowmap's instrumentors and honours the disable list."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from flowmap.instrumentation import is_disabled

PROBE = (
    "from flowmap_instrumentation_redis import RedisInstrumentor as R\n"
    "from flowmap_instrumentation_langgraph import LangGraphInstrumentor as L\n"
    "from flowmap_instrumentation_sqlite_vec import SqliteVecInstrumentor as S\n"
    "from flowmap_instrumentation_celery import CeleryTenantInstrumentor as C\n"
    "print(*(c().is_instrumented_by_opentelemetry for c in (R, L, S, C)))\n"
)


def test_opentelemetry_instrument_loads_them_except_disabled(tmp_path):
    exe = Path(sys.executable).with_name("opentelemetry-instrument")
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "flowmap_sqlite_vec",
    }
    out = subprocess.run(
        [str(exe), sys.executable, "-c", PROBE], env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=120, check=True,
    )
    assert out.stdout.split() == ["True", "True", "False", "True"]


def test_flowmap_disable_list(monkeypatch):
    monkeypatch.delenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", raising=False)
    monkeypatch.setenv("FLOWMAP_DISABLED_INSTRUMENTATIONS", " flowmap_redis ,x")
    assert is_disabled("flowmap_redis") and not is_disabled("flowmap_langgraph")
    monkeypatch.setenv("FLOWMAP_DISABLED_INSTRUMENTATIONS", "all")
    assert is_disabled("flowmap_langgraph")
