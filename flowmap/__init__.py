"""flowmap: prove which tenant every span, query and tool call belongs to.

The public API is re-exported here lazily (PEP 562) so ``import flowmap`` stays cheap
for the CLI and never drags in the OpenTelemetry SDK before it is needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    ConfigError,
    ContextError,
    FlowmapError,
    InputError,
    MissingContextError,
    TenantSwitchError,
    UnscopedOperationError,
)

if TYPE_CHECKING:  # what the lazy names below are, for type checkers (never imported at run time)
    from .analysis import analyze as analyze
    from .boundaries import boundary as boundary
    from .configure import configure as configure
    from .context import RequestContext as RequestContext
    from .context import bind as bind
    from .context import current as current

__version__ = "0.1.0"

_LAZY = {
    "RequestContext": "flowmap.context",
    "bind": "flowmap.context",
    "current": "flowmap.context",
    "boundary": "flowmap.boundaries",
    "configure": "flowmap.configure",
    "analyze": "flowmap.analysis",
}

__all__ = [
    "FlowmapError",
    "ConfigError",
    "ContextError",
    "MissingContextError",
    "TenantSwitchError",
    "InputError",
    "UnscopedOperationError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flowmap' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
