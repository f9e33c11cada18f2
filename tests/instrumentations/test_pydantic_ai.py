"""Third-party traces: a real Pydantic AI agent, traced by its own OpenTelemetry
instrumentation (flowmap adds only its processors), run with a scripted model.

Pydantic AI's instrumentation versions name and shape their spans differently: below
version 3 a tool call is a ``running tool`` span with ``tool_arguments``; from version 3
an ``execute_tool NAME`` span with ``gen_ai.tool.call.arguments`` (and the model's
output messages with ``tool_call`` parts). Both must be judged alike. The model is a
FunctionModel that asks for the tools the way an LLM would.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("pydantic_ai")

from pydantic_ai import Agent  # noqa: E402
from pydantic_ai.models.instrumented import InstrumentationSettings  # noqa: E402
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart  # noqa: E402
from pydantic_ai.models.function import AgentInfo, FunctionModel  # noqa: E402

import flowmap  # noqa: E402
from flowmap import RequestContext  # noqa: E402
from flowmap.formats.json import to_document  # noqa: E402

ACME = "acme-corp-7731"
GLOBEX = "globex-4411"  # what the model passes as tenant_id: another tenant's raw id
_POOL = ThreadPoolExecutor(1)


@flowmap.boundary("db", "orders.query", mode="record")
def _query_orders() -> int:
    return 3


def _scripted(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """First turn: call both tools, naming another tenant for one; then answer."""
    if len(messages) == 1:
        return ModelResponse(parts=[
            ToolCallPart("account_summary", {"tenant_id": GLOBEX}),
            ToolCallPart("count_orders", {}),
        ])
    return ModelResponse(parts=[TextPart("done")])


def _agent(version: int, tracer_provider) -> Agent:
    agent = Agent(FunctionModel(_scripted), name="support")
    agent.instrument = InstrumentationSettings(version=version, tracer_provider=tracer_provider)

    @agent.tool_plain
    def account_summary(tenant_id: str) -> str:
        """The model is trusted to name the tenant: the leak under test."""
        return "summary"

    @agent.tool_plain
    def count_orders() -> int:
        """Hands the query to a bare thread pool, which drops the context."""
        return _POOL.submit(_query_orders).result()

    return agent


@pytest.mark.filterwarnings("ignore:Instrumentation format versions")
@pytest.mark.parametrize("version", [2, 5])
def test_pydantic_ai_spans_are_tagged_and_its_leaks_found(flowmap_spans, version):
    agent = _agent(version, flowmap_spans.tracer_provider)
    with flowmap.bind(RequestContext(ACME)):
        assert agent.run_sync("how many orders?").output == "done"

    analysis = flowmap_spans.analyze()
    spans = [s for t in analysis.sample_traces.values() for s in t.spans.values()]
    tag = flowmap_spans.tag(ACME)
    agent_spans = [s for s in spans if s.name != "orders.query"]
    assert agent_spans and {s.tenant for s in agent_spans} == {tag}  # tool threads included
    tool_name = "running tool" if version < 3 else "execute_tool account_summary"
    by_rule: dict[str, list] = {}
    for f in analysis.findings:
        by_rule.setdefault(f.rule, []).append(f)
    (chosen,) = by_rule["model-chosen-tenant"]  # once: on the tool span, not also the model's
    assert (chosen.span_name, chosen.boundary) == (tool_name, "tool")
    (orphan,) = by_rule["orphan-root"]
    assert (orphan.span_name, orphan.boundary, str(orphan.severity)) == ("orders.query", "db", "high")
    assert set(by_rule) == {"model-chosen-tenant", "orphan-root"}
    shown = json.dumps(to_document(analysis)) + flowmap_spans.report(analysis=analysis)
    assert ACME not in shown and GLOBEX not in shown  # the chosen id is masked too
