"""Third-party traces: OpenInference's LangChain spans, tagged by flowmap and judged.

The same real LangGraph graph, traced only by ``openinference-instrumentation-langchain``
(flowmap adds nothing but its TenantSpanProcessor): the spans are written to an OTLP
JSON Lines file by flowmap's exporter, read back by the loader, and the analyzer infers
the boundaries from ``openinference.span.kind`` and judges the tenant path.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

pytest.importorskip("openinference.instrumentation.langchain")

from langchain_core.runnables import RunnableConfig  # noqa: E402
from langchain_core.tools import tool  # noqa: E402
from openinference.instrumentation.langchain import LangChainInstrumentor  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402

from flowmap import runtime  # noqa: E402
from flowmap.analysis import analyze_traces  # noqa: E402
from flowmap.context import RequestContext, bind  # noqa: E402
from flowmap.exporter import JsonLinesSpanExporter  # noqa: E402
from flowmap.formats.json import to_document  # noqa: E402
from flowmap.processors import TenantSpanProcessor  # noqa: E402
from flowmap.tagging import Tagger  # noqa: E402

from . import agent_graph  # noqa: E402
from .conftest import KEY  # noqa: E402

ACME = RequestContext("acme-corp-7731")


@tool
def audit_log(entry: str) -> str:
    """Write an audit entry."""
    return "logged"


@tool
def escalate(reason: str, config: RunnableConfig) -> str:
    """Escalate to a human: hands the audit write to a raw thread (the leak under test)."""
    # threading.Thread does not copy contextvars: the tenant binding stays behind, while
    # the callbacks in ``config`` still parent the child span under this tool's span.
    worker = threading.Thread(target=lambda: audit_log.invoke({"entry": reason}, config=config))
    worker.start()
    worker.join()
    return "escalated"


@pytest.fixture
def trace_file(tmp_path):
    """Run a graph under OpenInference only; return (loaded traces, path) via the JSONL file."""
    path = tmp_path / "flowmap-traces.jsonl"
    tagger = Tagger(KEY)
    provider = TracerProvider(resource=Resource.create({"service.name": "agent", "flowmap.key_id": tagger.key_id}))
    provider.add_span_processor(TenantSpanProcessor(tagger))
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    old = runtime.tagger_or_none()
    runtime.set_tagger(tagger)
    LangChainInstrumentor().instrument(tracer_provider=provider)
    try:
        yield path, tagger
    finally:
        LangChainInstrumentor().uninstrument()
        runtime.set_tagger(old)
        provider.shutdown()


def _load(path) -> list[Any]:
    from flowmap.loading import iter_traces

    return list(iter_traces([path]))


def test_openinference_spans_are_tagged_and_boundaries_inferred(trace_file):
    path, tagger = trace_file
    graph = agent_graph.build_graph(agent_graph.scripted_model())
    with bind(ACME):
        graph.invoke(agent_graph.question())

    (trace,) = _load(path)
    spans = list(trace.spans.values())
    by_boundary: dict[str | None, set[str]] = {}
    for s in spans:
        by_boundary.setdefault(s.boundary, set()).add(s.name)
    assert by_boundary["tool"] == {"lookup_order", "search_docs"}
    assert by_boundary["llm"] == {"ToolCallingFakeModel"}
    assert "agent" in by_boundary["agent"]
    assert {s.tenant for s in spans} == {tagger.tag(ACME.tenant_id)}  # every span, threads too

    analysis = analyze_traces([trace])
    assert analysis.findings == [], [f.message for f in analysis.findings]
    assert ACME.tenant_id not in path.read_text()


def test_a_context_dropped_in_a_raw_thread_is_found(trace_file):
    path, tagger = trace_file
    calls = [{"name": "escalate", "args": {"reason": "refund"}, "id": "call-1"}]
    graph = agent_graph.build_graph(agent_graph.scripted_model(calls=calls), tools=[escalate, audit_log])
    with bind(ACME):
        graph.invoke(agent_graph.question())

    (trace,) = _load(path)
    analysis = analyze_traces([trace])
    dropped = [f for f in analysis.findings if f.rule == "context-dropped"]
    # OpenInference parents the thread's tool run under the ToolNode ("tools") chain span
    # it got the callbacks from: tagged parent, untagged tool child.
    assert [(f.span_name, f.parent_name, f.boundary, str(f.severity)) for f in dropped] == [
        ("audit_log", "tools", "tool", "high")
    ]
    spans = trace.spans
    assert spans[dropped[0].parent_span_id].tenant == tagger.tag(ACME.tenant_id)
    assert spans[dropped[0].span_id].tenant is None
    assert {f.rule for f in analysis.findings} == {"context-dropped"}


@tool
def account_summary(tenant_id: str) -> str:
    """Summarise a tenant's account (the model is trusted to name the tenant: the leak)."""
    return "summary"


def test_a_tenant_the_model_chose_for_a_tool_is_found_on_the_model_span(trace_file):
    """OpenInference's tool span keeps only the bare argument value; the model span's
    output keeps the tool call with its argument names, and that is where it is found."""
    path, _ = trace_file
    chosen = "globex-inc-4411"  # another tenant's raw id, chosen by the model
    calls = [{"name": "account_summary", "args": {"tenant_id": chosen}, "id": "call-1"}]
    graph = agent_graph.build_graph(agent_graph.scripted_model(calls=calls), tools=[account_summary])
    with bind(ACME):
        graph.invoke(agent_graph.question())

    (trace,) = _load(path)
    tool_span = next(s for s in trace.spans.values() if s.name == "account_summary")
    assert tool_span.attributes.get("input.value") == chosen  # no argument name on the tool span
    analysis = analyze_traces([trace])
    (f,) = [f for f in analysis.findings if f.rule == "model-chosen-tenant"]
    assert (f.span_name, f.boundary, str(f.severity)) == ("ToolCallingFakeModel", "llm", "high")
    assert "'tenant_id'" in f.message
    assert chosen not in json.dumps(to_document(analysis))
