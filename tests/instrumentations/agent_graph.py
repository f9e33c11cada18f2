"""A real LangGraph agent graph: a fake chat model bound to real tools, run by ToolNode."""

from __future__ import annotations

import threading
from typing import Any

from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import StructuredTool, tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

import flowmap
from flowmap.context import RequestContext, current_tag

# What each tool execution saw: (tool, thread name, bound tag). Tests read and clear it.
SEEN: list[tuple[str, str, str | None]] = []
_seen_lock = threading.Lock()


def _record(name: str) -> str:
    tenant = flowmap.current()  # the tenant comes from the bound context, never from args
    with _seen_lock:
        SEEN.append((name, threading.current_thread().name, current_tag()))
    return f"{name} ok ({len(tenant.tenant_id)})"


@tool
def lookup_order(order_id: str) -> str:
    """Look up an order of the current tenant (sync: LangGraph runs it in its thread pool)."""
    return _record("lookup_order")


def _search_docs(query: str) -> str:
    return _record("search_docs")


async def _asearch_docs(query: str) -> str:
    return _record("search_docs")


# Sync and async implementations: ainvoke runs the coroutine on the event loop.
search_docs = StructuredTool.from_function(
    func=_search_docs,
    coroutine=_asearch_docs,
    name="search_docs",
    description="Search the current tenant's documents.",
)


TOOLS = [lookup_order, search_docs]


class ToolCallingFakeModel(FakeMessagesListChatModel):
    """The fake chat model, accepting ``bind_tools`` like a real tool-calling model."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> "ToolCallingFakeModel":
        return self


def scripted_model(
    tool_args: dict[str, Any] | None = None, calls: list[dict[str, Any]] | None = None
) -> ToolCallingFakeModel:
    """Calls both tools in one turn (so ToolNode runs them concurrently), then answers."""
    calls = calls or [
        {"name": "lookup_order", "args": tool_args or {"order_id": "o-1"}, "id": "call-1"},
        {"name": "search_docs", "args": {"query": "refund policy"}, "id": "call-2"},
    ]
    return ToolCallingFakeModel(
        responses=[AIMessage(content="", tool_calls=calls), AIMessage(content="done")]
    )


def build_graph(model: ToolCallingFakeModel, tools: list[Any] | None = None) -> Any:
    tools = tools or TOOLS
    bound = model.bind_tools(tools)

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    async def aagent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await bound.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState, context_schema=RequestContext)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode(tools))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile()


def question(text: str = "where is my order?") -> dict[str, Any]:
    return {"messages": [HumanMessage(text)]}
