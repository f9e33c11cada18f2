"""Find the RequestContext a graph run carries, in LangGraph's runtime context or config."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowmap.context import RequestContext

__all__ = ["context_from_config", "CONFIGURABLE_KEY"]

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
    if not config:
        return None
    configurable = config.get("configurable") or {}
    runtime = configurable.get(_RUNTIME_KEY)
    found = _as_request_context(getattr(runtime, "context", None))
    if found is not None:
        return found
    return _as_request_context(configurable.get(CONFIGURABLE_KEY))
