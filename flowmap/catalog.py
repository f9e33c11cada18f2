"""The tool catalog a model is shown, filtered to what the bound tenant may use.

A model can only call what it was shown, so the catalog is a data boundary: a
``tool.catalog`` span records ``flowmap.scoped`` = true when the listing was filtered
for the bound tenant, false when it was not (the analyzer's ``unfiltered-catalog``).
It wraps no third-party library, so it lives in core rather than in ``instrumentations/``:
any agent framework's tool list (LangChain tools, MCP tool schemas, plain dicts) fits.

    catalog = ToolCatalog(tools, allowed=lambda ctx: plans[ctx.tenant_id].tools)
    with flowmap.bind(ctx):
        model = model.bind_tools(catalog.for_tenant())
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from .context import RequestContext, current
from .instrumentation import data_boundary

__all__ = ["ToolCatalog", "tool_name"]

T = TypeVar("T")

SIZE = "flowmap.catalog.size"  # tools in the catalog
SHOWN = "flowmap.catalog.shown"  # tools shown to the model


def tool_name(tool: object) -> str:
    """The name of a tool object, a tool schema dict (``name`` or OpenAI-style ``function.name``)."""
    if isinstance(tool, dict):
        fn = tool.get("function")
        return str(tool.get("name") or (fn.get("name") if isinstance(fn, dict) else ""))
    return str(getattr(tool, "name", "") or getattr(tool, "__name__", ""))


class ToolCatalog(Generic[T]):
    """Tools plus a policy saying which of them a tenant may use.

    ``allowed(ctx)`` returns the names of the tools ``ctx``'s tenant may use; it is asked
    with the bound, authenticated context only (never a tenant named by a model).
    Tool names and counts are recorded; which tenant owns which tool is not.
    """

    def __init__(
        self,
        tools: Iterable[T],
        *,
        allowed: Callable[[RequestContext], Iterable[str]],
        name_of: Callable[[T], str] = tool_name,
        name: str = "tools.list",
        strict: bool = False,
    ) -> None:
        self._tools = list(tools)
        self._allowed = allowed
        self._name_of = name_of
        self.name = name
        self.strict = strict

    def for_tenant(self) -> list[T]:
        """The tools the bound tenant may use (MissingContextError when none is bound)."""
        with data_boundary("tool.catalog", self.name, scoped=True, attributes={SIZE: len(self._tools)}) as span:
            allowed = set(self._allowed(current()))
            shown = [t for t in self._tools if self._name_of(t) in allowed]
            span.set_attribute(SHOWN, len(shown))
            return shown

    def unfiltered(self) -> list[T]:
        """Every tool, recorded as an unscoped catalog (refused when ``strict``).

        For code paths that truly show everything (an admin console); in a tenant's
        request it is the ``unfiltered-catalog`` leak, and the span says so.
        """
        attrs = {SIZE: len(self._tools), SHOWN: len(self._tools)}
        with data_boundary("tool.catalog", self.name, scoped=False, strict=self.strict, attributes=attrs):
            return list(self._tools)
