"""Third-party traces: a real OpenAI Agents SDK agent, traced by OpenInference's and by
OpenLLMetry's instrumentation (flowmap adds only its processors), against a fake
OpenAI-compatible Responses API on loopback that asks for the agent's tool once, then
answers. No network.

What a platform gets right and wrong around it: two tenants' runs interleaved (each
framework span carries its own run's tenant, nothing at medium or above), a tool that
hands its store read to a bare thread pool (the boundary refuses it: orphan-root, high),
and a worker that runs the agent after the request with no tenant bound (orphan-root on
the run's top span, its likely parent the request's span, never the run's own name).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("agents")
pytest.importorskip("openinference.instrumentation.openai_agents")
pytest.importorskip("opentelemetry.instrumentation.openai_agents")

from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_trace_processors  # noqa: E402
from openai import AsyncOpenAI  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402

import flowmap  # noqa: E402
from flowmap import RequestContext  # noqa: E402
from flowmap.model import Severity  # noqa: E402

from .conftest import assert_no_raw  # noqa: E402

ACME, GLOBEX = "acme-corp-7731", "globex-4411"
MEMORY = {ACME: "order A1", GLOBEX: "order G1"}
_POOL = ThreadPoolExecutor(1)


class _FakeResponses(BaseHTTPRequestHandler):
    """POST /v1/responses: a function call of the first tool offered, until the input
    carries its output; then a final message."""

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))) or b"{}")
        items = body.get("input") if isinstance(body.get("input"), list) else []
        answered = any(isinstance(i, dict) and i.get("type") == "function_call_output" for i in items)
        tools = [t for t in body.get("tools") or () if t.get("type") == "function"]
        if answered or not tools:
            output = [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                       "content": [{"type": "output_text", "text": "done", "annotations": []}]}]
        else:
            output = [{"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": tools[0]["name"],
                       "arguments": json.dumps({"customer": "bob"}), "status": "completed"}]
        data = json.dumps({
            "id": "resp_1", "object": "response", "created_at": 1, "status": "completed",
            "model": body.get("model"), "output": output, "parallel_tool_calls": True,
            "tool_choice": "auto", "tools": [], "instructions": body.get("instructions"),
            "usage": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15,
                      "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 0}},
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeResponses)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(params=["openinference", "openllmetry"])
def instrumentation(request, flowmap_spans) -> Iterator[str]:
    """The SDK's trace processors replaced by the instrumentation's alone (the SDK's own
    exporter to OpenAI's backend never runs), removed afterwards."""
    if request.param == "openinference":
        from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor as OpenInference

        instrumentor = OpenInference()
        set_trace_processors([])
        instrumentor.instrument(tracer_provider=flowmap_spans.tracer_provider)
    else:
        from opentelemetry.instrumentation.openai_agents import OpenAIAgentsInstrumentor as OpenLLMetry

        instrumentor = OpenLLMetry(replace_existing_processors=True)
        instrumentor.instrument(tracer_provider=flowmap_spans.tracer_provider)
    try:
        yield request.param
    finally:
        instrumentor.uninstrument()
        set_trace_processors([])


@flowmap.boundary("memory", "memory.read orders", scoped=True)
def _read_orders() -> str:
    return MEMORY[flowmap.current().tenant_id]


@function_tool
async def lookup_orders(customer: str) -> str:
    """Look up a customer's orders."""
    return await asyncio.to_thread(_read_orders)  # to_thread copies the context


@function_tool
async def lookup_orders_in_pool(customer: str) -> str:
    """Look up a customer's orders, the store read handed to a bare thread pool."""
    return await asyncio.get_running_loop().run_in_executor(_POOL, _read_orders)  # drops it


def _agent(base_url: str, tool) -> Agent:
    model = OpenAIResponsesModel(model="gpt-4o-mini", openai_client=AsyncOpenAI(base_url=base_url, api_key="sk-test"))
    return Agent(name="orders_agent", instructions="Be brief.", tools=[tool], model=model)


async def _request(capture, base_url: str, tenant: str, tool=lookup_orders) -> str:
    """One request: the tenant bound, under a server span, as TenantMiddleware does."""
    tracer = capture.tracer_provider.get_tracer("test")
    with flowmap.bind(RequestContext(tenant)):
        with tracer.start_as_current_span("POST /ask", kind=SpanKind.SERVER, attributes={"http.request.method": "POST"}):
            result = await Runner.run(_agent(base_url, tool), "what are my orders?")
    return result.final_output


def _spans(analysis) -> list:
    return [s for t in analysis.sample_traces.values() for s in t.spans.values()]


def test_interleaved_tenants_runs_are_tagged_each_its_own_and_nothing_is_found(
        flowmap_spans, base_url, instrumentation):
    async def both() -> list[str]:
        return await asyncio.gather(*(_request(flowmap_spans, base_url, t) for t in (ACME, GLOBEX, ACME, GLOBEX)))

    assert asyncio.run(both()) == ["done"] * 4
    analysis = flowmap_spans.analyze()
    assert [(f.rule, f.span_name) for f in analysis.findings if f.severity >= Severity.MEDIUM] == []
    traces = analysis.sample_traces.values()
    assert len(traces) == 4
    tags = {flowmap_spans.tag(ACME), flowmap_spans.tag(GLOBEX)}
    for trace in traces:  # one tenant per request, on every span of it, framework's included
        assert len({s.tenant for s in trace.spans.values()}) == 1
        assert {s.tenant for s in trace.spans.values()} <= tags
    # the framework's own spans are recognised as the boundaries they cross
    kinds = {s.boundary for s in _spans(analysis)}
    assert {"agent", "llm", "tool", "memory", "http.server"} <= kinds
    assert_no_raw(flowmap_spans.spans, ACME, GLOBEX)


def test_a_tool_handing_its_read_to_a_bare_pool_is_refused_and_found(flowmap_spans, base_url, instrumentation):
    assert asyncio.run(_request(flowmap_spans, base_url, ACME, lookup_orders_in_pool)) == "done"
    analysis = flowmap_spans.analyze()
    (orphan,) = [f for f in analysis.findings if f.severity >= Severity.MEDIUM]
    assert (orphan.rule, orphan.span_name, orphan.boundary, orphan.severity) == (
        "orphan-root", "memory.read orders", "memory", Severity.HIGH)
    (read,) = flowmap_spans.by_name("memory.read orders")
    assert read.status.description == "missing tenant context"  # refused: the store never read
    tool = next(s for s in _spans(analysis) if s.boundary == "tool")
    assert tool.tenant == flowmap_spans.tag(ACME)  # the framework's tool span kept the tenant
    assert_no_raw(flowmap_spans.spans, ACME)


def test_an_agent_run_by_a_worker_without_the_tenant_is_found_under_the_request(
        flowmap_spans, base_url, instrumentation):
    async def request_then_worker() -> None:
        await _request(flowmap_spans, base_url, ACME)
        await Runner.run(_agent(base_url, lookup_orders_in_pool), "summarise")  # no tenant bound

    asyncio.run(request_then_worker())
    findings = [f for f in flowmap_spans.analyze().findings if f.severity >= Severity.MEDIUM]
    (orphan,) = [f for f in findings if f.rule == "orphan-root" and f.span_name != "memory.read orders"]
    if instrumentation == "openinference":
        # its top span is an AGENT span: the lost run is high where it starts
        assert (orphan.span_name, orphan.boundary, orphan.severity) == ("Agent workflow", "agent", Severity.HIGH)
    else:
        # OpenLLMetry's top span is a 'workflow' (no boundary: medium, per the contract),
        # the agent below it named
        assert (orphan.span_name, orphan.boundary, orphan.severity) == ("Agent Workflow", None, Severity.MEDIUM)
        assert orphan.reached == "agent 'pytest orders_agent.agent'"
    # OpenInference names the run's span and the span under it alike ('Agent workflow'):
    # the orphan belonged under the request, not under itself
    assert orphan.likely_parent == "pytest POST /ask"
