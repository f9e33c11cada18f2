"""flowmap instrumentation for LangGraph.

The tenant rides into the graph on LangGraph's own runtime context (``context=`` with a
``context_schema`` of :class:`flowmap.RequestContext`, or an object with a
``request_context`` attribute) or on ``config["configurable"]["request_context"]``. Each
node execution binds it (so nodes, model calls and tools in LangGraph's thread pool are
tagged) and runs as an ``agent`` boundary; each tool execution runs as a ``tool``
boundary. Both fail closed when no tenant is bound::

    from flowmap_instrumentation_langgraph import LangGraphInstrumentor

    LangGraphInstrumentor().instrument()
    graph = builder.compile()            # StateGraph(State, context_schema=RequestContext)
    graph.invoke(inputs, context=RequestContext(tenant_id="acme"))
"""

from ._context import context_from_config
from ._instrumentor import LangGraphInstrumentor

__all__ = ["LangGraphInstrumentor", "context_from_config"]
__version__ = "0.1.0"
