"""The one exception hierarchy of flowmap.

Every error a user can see derives from :class:`FlowmapError`, whose ``str()`` is a
single user-facing line (no raw tenant id, ever)::

    FlowmapError
    ├── ConfigError            bad or missing configuration (e.g. no tenant key)
    ├── OutputClosedError      the reader of an output went away (``-o /dev/stdout | head``)
    ├── ContextError
    │   ├── MissingContextError   a boundary or ``current()`` ran with nothing bound
    │   ├── TenantSwitchError     a nested ``bind`` tried to switch tenants
    │   └── UnscopedOperationError  strict instrumentation refused a data operation that
    │                               was not restricted to the bound tenant
    └── InputError             a trace file could not be read at all
"""

from __future__ import annotations

__all__ = [
    "FlowmapError",
    "ConfigError",
    "ContextError",
    "MissingContextError",
    "TenantSwitchError",
    "UnscopedOperationError",
    "InputError",
    "OutputClosedError",
]


class FlowmapError(Exception):
    """Base of every flowmap error; the message is one line meant for the user."""


class ConfigError(FlowmapError):
    """Configuration is missing or invalid."""


class ContextError(FlowmapError):
    """The request context is absent or misused."""


class MissingContextError(ContextError, LookupError):
    """No RequestContext is bound where one is required (fail closed)."""


class TenantSwitchError(ContextError):
    """A nested bind of a different tenant was refused."""


class UnscopedOperationError(ContextError, PermissionError):
    """Strict mode: a cache/vector/catalog operation was not restricted to the bound tenant."""


class OutputClosedError(FlowmapError):
    """An output's reader went away (a closed pipe): the command line ends that output
    quietly, and its exit code stays the one the findings decide."""


class InputError(FlowmapError):
    """Trace input could not be read (nothing usable at all)."""
