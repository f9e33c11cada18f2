"""Wrap LangGraph's Pregel.invoke/ainvoke (the graph run), its task runner (nodes) and langchain-core's BaseTool.run/arun (tools)."""

from __future__ import annotations

from collections.abc import Collection
from contextlib import ExitStack
from typing import Any

from flowmap.boundaries import boundary
from flowmap.context import bind
from flowmap.instrumentation import FlowmapInstrumentor, Patches

from ._context import run_contexts

__all__ = ["LangGraphInstrumentor"]

_patches = Patches()

_INSTRUMENTS = ("langgraph >= 1.0, < 2", "langchain-core >= 1.0, < 2")
_MAIN = "langgraph.pregel.main"
_RUNNER = "langgraph.pregel._runner"  # imports run_with_retry by name: patch it there
_TOOLS = "langchain_core.tools.base"


def _bind_run(stack: ExitStack, config: Any, context: Any = None) -> None:
    """Bind every RequestContext the run carries (``context=``, then ``configurable``).

    Binding the same tenant again is a no-op; a *different* tenant inside a bound request
    (or in the other place of the same run) raises TenantSwitchError, as any mid-request
    switch does.
    """
    for ctx in run_contexts(config, context):
        stack.enter_context(bind(ctx))


def _enter(stack: ExitStack, config: Any, kind: str, name: str, attributes: dict[str, Any],
           context: Any = None) -> None:
    """Bind the run's RequestContext (if it carries one), then open the boundary."""
    _bind_run(stack, config, context)
    # on this instrumentation's tracer: instrument(tracer_provider=...) gets the spans
    stack.enter_context(boundary(kind, name, attributes=attributes, tracer=LangGraphInstrumentor().tracer()))


def _task_args(args: Any, kwargs: Any) -> Any:
    return args[0] if args else kwargs["task"]


def _is_internal(name: str) -> bool:
    return name.startswith("__")  # __start__ and other LangGraph plumbing


def _node_attrs(task: Any) -> dict[str, Any]:
    return {"langgraph.node": task.name, "gen_ai.operation.name": "invoke_agent"}


def _run_with_retry(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    task = _task_args(args, kwargs)
    with ExitStack() as stack:
        if _is_internal(task.name):
            _bind_run(stack, task.config)
        else:
            _enter(stack, task.config, "agent", f"node {task.name}", _node_attrs(task))
        return wrapped(*args, **kwargs)


async def _arun_with_retry(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    task = _task_args(args, kwargs)
    with ExitStack() as stack:
        if _is_internal(task.name):
            _bind_run(stack, task.config)
        else:
            _enter(stack, task.config, "agent", f"node {task.name}", _node_attrs(task))
        return await wrapped(*args, **kwargs)


def _graph_run(args: Any, kwargs: Any) -> tuple[Any, Any]:
    """(config, context) of ``invoke(input, config=None, *, context=None)``: both are read,
    as LangGraph hands both to every task (see ``run_contexts``)."""
    return kwargs.get("config", args[1] if len(args) > 1 else None), kwargs.get("context")


def _graph_attrs(graph: Any) -> dict[str, Any]:
    return {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": str(graph.name)}


def _invoke(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    with ExitStack() as stack:
        config, context = _graph_run(args, kwargs)
        _enter(stack, config, "agent", f"graph {instance.name}", _graph_attrs(instance), context)
        return wrapped(*args, **kwargs)


async def _ainvoke(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    with ExitStack() as stack:
        config, context = _graph_run(args, kwargs)
        _enter(stack, config, "agent", f"graph {instance.name}", _graph_attrs(instance), context)
        return await wrapped(*args, **kwargs)


def _tool_attrs(tool: Any) -> dict[str, Any]:
    # The tool's arguments are never recorded: they may carry tenant data.
    return {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": str(tool.name)}


def _tool_run(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    with ExitStack() as stack:
        _enter(stack, kwargs.get("config"), "tool", f"tool {instance.name}", _tool_attrs(instance))
        return wrapped(*args, **kwargs)


async def _tool_arun(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    with ExitStack() as stack:
        _enter(stack, kwargs.get("config"), "tool", f"tool {instance.name}", _tool_attrs(instance))
        return await wrapped(*args, **kwargs)


class LangGraphInstrumentor(FlowmapInstrumentor):
    """Carry the RequestContext into LangGraph nodes and tools, guarded as boundaries.

    ``instrument(tracer_provider=tp)`` puts the graph, node and tool spans on ``tp``
    (default: flowmap's provider).
    """

    name = "flowmap_langgraph"

    def instrumentation_dependencies(self) -> Collection[str]:
        return _INSTRUMENTS

    def _instrument(self, **kwargs: Any) -> None:
        _patches.wrap(_MAIN, "Pregel.invoke", _invoke)
        _patches.wrap(_MAIN, "Pregel.ainvoke", _ainvoke)
        _patches.wrap(_RUNNER, "run_with_retry", _run_with_retry)
        _patches.wrap(_RUNNER, "arun_with_retry", _arun_with_retry)
        _patches.wrap(_TOOLS, "BaseTool.run", _tool_run)
        _patches.wrap(_TOOLS, "BaseTool.arun", _tool_arun)

    def _uninstrument(self, **kwargs: Any) -> None:
        _patches.unwrap_all()  # only flowmap's own wrappers, whoever wrapped on top
