"""LangGraph: the tenant carried into a real graph; nodes and tools tagged and guarded."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

pytest.importorskip("langgraph")

from flowmap import attributes as A  # noqa: E402
from flowmap.context import RequestContext, bind  # noqa: E402
from flowmap.errors import MissingContextError, TenantSwitchError  # noqa: E402
from flowmap_instrumentation_langgraph import LangGraphInstrumentor  # noqa: E402

from . import agent_graph  # noqa: E402
from .conftest import assert_no_raw  # noqa: E402

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

ACME = RequestContext("acme-corp-7731")
GLOBEX = RequestContext("globex-4410")


@pytest.fixture
def instrumented(traced):
    agent_graph.SEEN.clear()
    LangGraphInstrumentor().instrument()
    yield traced
    LangGraphInstrumentor().uninstrument()


def test_runtime_context_tags_nodes_and_tools_in_langgraphs_thread_pool(instrumented):
    traced = instrumented
    graph = agent_graph.build_graph(agent_graph.scripted_model())
    out = graph.invoke(agent_graph.question(), context=ACME)  # no bind() around it
    assert out["messages"][-1].content == "done"

    tag = traced.tag(ACME.tenant_id)
    seen = {name: (thread, t) for name, thread, t in agent_graph.SEEN}
    assert set(seen) == {"lookup_order", "search_docs"}
    # The sync tool ran on a LangGraph executor thread, not ours, and still saw the tenant.
    assert seen["lookup_order"][0] != threading.current_thread().name
    assert {t for _, t in seen.values()} == {tag}

    nodes = traced.spans("agent")
    tools = traced.spans("tool")
    assert sorted(s.name for s in nodes) == [
        "graph LangGraph", "node agent", "node agent", "node tools"
    ]
    assert sorted(s.name for s in tools) == ["tool lookup_order", "tool search_docs"]
    for s in nodes + tools:
        assert s.attributes[A.TENANT] == tag
        assert s.attributes[A.TENANT_SOURCE] == A.SOURCE_CONTEXT
    # Tool spans are children of the ToolNode's node span: the path is unbroken.
    (tool_node,) = [s for s in nodes if s.name == "node tools"]
    assert {s.parent.span_id for s in tools} == {tool_node.context.span_id}
    # One trace, rooted at the graph run: entry to tool call is one path.
    (root,) = [s for s in nodes if s.parent is None]
    assert root.name == "graph LangGraph"
    assert {s.context.trace_id for s in nodes + tools} == {root.context.trace_id}


def test_configurable_request_context_is_honoured(instrumented):
    graph = agent_graph.build_graph(agent_graph.scripted_model())
    graph.invoke(agent_graph.question(), config={"configurable": {"request_context": GLOBEX}})
    tag = instrumented.tag(GLOBEX.tenant_id)
    assert {t for _, _, t in agent_graph.SEEN} == {tag}
    assert {s.attributes[A.TENANT] for s in instrumented.spans("tool")} == {tag}


def test_no_tenant_fails_closed_before_any_node_runs(instrumented):
    graph = agent_graph.build_graph(agent_graph.scripted_model())
    with pytest.raises(MissingContextError):
        graph.invoke(agent_graph.question())
    assert agent_graph.SEEN == []  # no tool ran
    (refused,) = instrumented.spans("agent")  # the graph run itself was refused
    assert A.TENANT not in refused.attributes and not refused.status.is_ok


def test_graph_context_cannot_switch_the_bound_tenant(instrumented):
    graph = agent_graph.build_graph(agent_graph.scripted_model())
    with bind(ACME):
        with pytest.raises(TenantSwitchError):
            graph.invoke(agent_graph.question(), context=GLOBEX)
    assert agent_graph.SEEN == []


def test_bound_request_without_graph_context_is_enough(instrumented):
    graph = agent_graph.build_graph(agent_graph.scripted_model())
    with bind(ACME):
        graph.invoke(agent_graph.question())
    assert {t for _, _, t in agent_graph.SEEN} == {instrumented.tag(ACME.tenant_id)}


def test_two_tenants_concurrently_never_cross(instrumented):
    def run(ctx: RequestContext) -> None:
        graph = agent_graph.build_graph(agent_graph.scripted_model())
        graph.invoke(agent_graph.question(), context=ctx)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(run, [ACME, GLOBEX] * 4))
    by_trace: dict[int, set[str]] = {}
    for s in instrumented.spans():
        by_trace.setdefault(s.context.trace_id, set()).add(s.attributes.get(A.TENANT))
    assert len(by_trace) == 8  # one trace per graph run
    assert all(len(tags) == 1 and None not in tags for tags in by_trace.values())
    assert {next(iter(t)) for t in by_trace.values()} == {
        instrumented.tag(ACME.tenant_id),
        instrumented.tag(GLOBEX.tenant_id),
    }


def test_async_graph_and_async_tools(instrumented):
    graph = agent_graph.build_graph(agent_graph.scripted_model())
    out = asyncio.run(graph.ainvoke(agent_graph.question(), context=ACME))
    assert out["messages"][-1].content == "done"
    tag = instrumented.tag(ACME.tenant_id)
    assert {t for _, _, t in agent_graph.SEEN} == {tag}
    assert len(instrumented.spans("tool")) == 2
    assert {s.attributes[A.TENANT] for s in instrumented.spans()} == {tag}


def test_tool_arguments_are_never_recorded(instrumented):
    model = agent_graph.scripted_model(tool_args={"order_id": ACME.tenant_id + "/o-9"})
    agent_graph.build_graph(model).invoke(agent_graph.question(), context=ACME)
    assert_no_raw(instrumented.spans(), ACME.tenant_id, "o-9")


def test_uninstrument_restores_and_instrument_is_idempotent(traced):
    inst = LangGraphInstrumentor()
    inst.instrument()
    inst.instrument()
    graph = agent_graph.build_graph(agent_graph.scripted_model())
    graph.invoke(agent_graph.question(), context=ACME)
    assert len(traced.spans("tool")) == 2  # not wrapped twice
    inst.uninstrument()
    traced.exporter.clear()
    with bind(ACME):
        agent_graph.build_graph(agent_graph.scripted_model()).invoke(agent_graph.question())
    assert traced.spans("tool") == [] and traced.spans("agent") == []


def test_uninstrument_keeps_another_instrumentations_wrapper_on_top(traced):
    """Another instrumentation (OpenInference's, say) wraps BaseTool.run after flowmap:
    flowmap's uninstrument takes only its own wrapper away."""
    import wrapt
    from langchain_core.tools.base import BaseTool

    calls = []

    def other(wrapped, instance, args, kwargs):
        calls.append(instance.name)
        return wrapped(*args, **kwargs)

    plain = vars(BaseTool)["run"]
    inst = LangGraphInstrumentor()
    inst.instrument()
    wrapt.wrap_function_wrapper(BaseTool, "run", other)
    try:
        inst.uninstrument()
        assert isinstance(vars(BaseTool)["run"], wrapt.FunctionWrapper)  # the other one stays
        with bind(ACME):
            agent_graph.build_graph(agent_graph.scripted_model()).invoke(agent_graph.question())
        assert calls and traced.spans("tool") == []  # it still runs, ours no longer does
    finally:
        BaseTool.run = plain


@dataclasses.dataclass(frozen=True)
class AppContext:
    """The app's own LangGraph ``context_schema`` (a user, a model name): no tenant in it."""

    user: str


def _app_context_graph() -> Any:
    """The agent graph, but with the app's own context_schema instead of RequestContext."""
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    bound = agent_graph.scripted_model().bind_tools(agent_graph.TOOLS)

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    builder = StateGraph(MessagesState, context_schema=AppContext)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode(agent_graph.TOOLS))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile()


async def _drain(agen: Any) -> list[Any]:
    return [chunk async for chunk in agen]


_ENTRY_POINTS = {  # how each entry point is run with (input, config, context)
    "invoke": lambda g, i, c, x: g.invoke(i, config=c, context=x),
    "invoke, config positional": lambda g, i, c, x: g.invoke(i, c, context=x),
    "ainvoke": lambda g, i, c, x: asyncio.run(g.ainvoke(i, config=c, context=x)),
    "stream": lambda g, i, c, x: list(g.stream(i, config=c, context=x)),
    "astream": lambda g, i, c, x: asyncio.run(_drain(g.astream(i, config=c, context=x))),
    "batch": lambda g, i, c, x: g.batch([i], config=c, context=x),
    "abatch": lambda g, i, c, x: asyncio.run(g.abatch([i], config=c, context=x)),
}


@pytest.mark.parametrize("entry", list(_ENTRY_POINTS))
def test_configurable_request_context_beside_the_apps_own_context(entry, instrumented):
    """The tenant in ``configurable`` counts when ``context=`` is the app's own object:
    invoke/ainvoke (which open the graph span) behave as stream/astream always did."""
    config = {"configurable": {"request_context": ACME}}
    _ENTRY_POINTS[entry](_app_context_graph(), agent_graph.question(), config, AppContext("u-1"))
    tag = instrumented.tag(ACME.tenant_id)
    assert sorted(name for name, _, _ in agent_graph.SEEN) == ["lookup_order", "search_docs"]
    assert {t for _, _, t in agent_graph.SEEN} == {tag}
    spans = instrumented.spans("agent") + instrumented.spans("tool")
    assert len(spans) >= 5 and {s.attributes[A.TENANT] for s in spans} == {tag}
    assert all(s.status.is_ok for s in spans)


@pytest.mark.parametrize("entry", ["invoke", "ainvoke", "stream", "astream"])
def test_two_tenants_in_one_run_are_refused(entry, instrumented):
    config = {"configurable": {"request_context": GLOBEX}}
    with pytest.raises(TenantSwitchError):
        _ENTRY_POINTS[entry](agent_graph.build_graph(agent_graph.scripted_model()), agent_graph.question(),
                             config, ACME)
    assert agent_graph.SEEN == []


def test_tracer_provider_given_to_instrument_gets_the_spans(traced):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    inst = LangGraphInstrumentor()
    inst.instrument(tracer_provider=provider)
    try:
        agent_graph.build_graph(agent_graph.scripted_model()).invoke(agent_graph.question(), context=ACME)
    finally:
        inst.uninstrument()
        provider.shutdown()
    mine = exporter.get_finished_spans()
    assert sorted(s.name for s in mine if s.name.startswith("tool ")) == ["tool lookup_order", "tool search_docs"]
    assert "graph LangGraph" in {s.name for s in mine}
    assert {s.instrumentation_scope.name for s in mine} == {"flowmap_instrumentation_langgraph"}
    assert traced.spans() == []  # nothing went to flowmap's (the global) provider
    traced.exporter.clear()
    with bind(ACME):  # uninstrumented: back to no spans at all
        agent_graph.build_graph(agent_graph.scripted_model()).invoke(agent_graph.question())
    assert traced.spans() == [] and len(exporter.get_finished_spans()) == len(mine)


def test_entry_point_is_registered():
    from importlib.metadata import entry_points

    eps = {ep.name: ep for ep in entry_points(group="opentelemetry_instrumentor")}
    assert eps["flowmap_langgraph"].load() is LangGraphInstrumentor
