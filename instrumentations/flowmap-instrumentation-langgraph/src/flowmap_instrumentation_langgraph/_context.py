"""Find the RequestContext a graph run carries, in LangGraph's runtime context or config."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowmap.context import RequestContext

__all__ = ["context_from_config", "run_contexts", "CONFIGURABLE_KEY"]

CONFIGURABLE_KEY = "request_context"
# LangGraph keeps the Runtime (whose .context is the run's ``context=``) under this key.
_RUNTIME_KEY = "__pregel_runtime"


def _as_request_context(value: Any) -> RequestContext | None:
    if isinstance(value, RequestContext):
        return value
    inner = getattr(value, CONFIGURABLE_KEY, None)
    if isinstance(inner, RequestContext):
        return inner
    if isinstance(value, Mapping) and isinstance(value.get(CONFIGURABLE_KEY), RequestContext):
        return value[CONFIGURABLE_KEY]
    return None


def context_from_config(config: Mapping[str, Any] | None) -> RequestContext | None:
    """The RequestContext of a run: ``Runtime.context`` first, then ``configurable``."""
    found = run_contexts(config)
    return found[0] if found else None


def run_contexts(config: Mapping[str, Any] | None, context: Any = None) -> list[RequestContext]:
    """Every RequestContext a run carries, in the order they are bound: the run's
    ``context=`` (given to ``invoke``/``stream``, or inside a task as ``Runtime.context``),
    then ``config["configurable"]["request_context"]``.

    Both places count, whatever the other holds: an app with its own ``context_schema``
    passes its own object as ``context=`` and the tenant in ``configurable``. Binding
    them one after the other makes two different tenants a TenantSwitchError.
    """
    configurable = (config.get("configurable") if isinstance(config, Mapping) else None) or {}
    if context is None:
        context = getattr(configurable.get(_RUNTIME_KEY), "context", None)
    found = [
        ctx
        for ctx in (_as_request_context(context), _as_request_context(configurable.get(CONFIGURABLE_KEY)))
        if ctx is not None
    ]
    if len(found) == 2 and found[0] == found[1]:
        del found[1]
    return found
