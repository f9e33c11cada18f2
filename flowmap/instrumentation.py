"""What every flowmap instrumentation shares: env disabling, data-boundary guards, namespaces.

The distributions under ``instrumentations/`` patch third-party libraries; the policy they
apply (when to skip, how a data operation is judged and refused, what a tenant's key
namespace is) lives here once, so a Redis key and a vector filter are judged the same way.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.trace import Span

from . import runtime
from .boundaries import boundary
from .context import RequestContext, current_or_none
from .errors import UnscopedOperationError

__all__ = [
    "DISABLED_ENV",
    "FlowmapInstrumentor",
    "is_disabled",
    "data_boundary",
    "tag_namespace",
    "Namespace",
    "bound_namespace",
]

DISABLED_ENV = "FLOWMAP_DISABLED_INSTRUMENTATIONS"
OTEL_DISABLED_ENV = "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"

_log = logging.getLogger("flowmap.instrumentation")

# A function of the authenticated tenant that names its slice of a store (a key prefix,
# a partition value). It runs in-process; its output is compared, never recorded.
Namespace = Callable[[RequestContext], str]


def tag_namespace(ctx: RequestContext) -> str:
    """Default key namespace ``t:<opaque tag>:``.

    Built from the tag, not the raw id, so keys stay safe even when another tool (a
    Redis MONITOR, an OTel Redis instrumentation writing ``db.statement``) records them.
    """
    return f"t:{ctx.tag(runtime.get_tagger())}:"


def is_disabled(name: str) -> bool:
    """True when ``name`` (or ``all``/``*``) is listed in FLOWMAP_DISABLED_INSTRUMENTATIONS
    or OTEL_PYTHON_DISABLED_INSTRUMENTATIONS (comma separated, spaces ignored)."""
    for env in (DISABLED_ENV, OTEL_DISABLED_ENV):
        listed = {x.strip() for x in os.environ.get(env, "").split(",") if x.strip()}
        if name in listed or (env == DISABLED_ENV and listed & {"all", "*"}):
            return True
    return False


class FlowmapInstrumentor(BaseInstrumentor):
    """BaseInstrumentor that honours the disable variables in ``instrument()`` itself.

    ``opentelemetry-instrument`` already skips names in OTEL_PYTHON_DISABLED_INSTRUMENTATIONS;
    checking here too covers code that calls ``instrument()`` directly.
    """

    name: ClassVar[str] = ""  # the entry point name, e.g. "flowmap_redis"

    def instrumentation_dependencies(self) -> Collection[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def instrument(self, **kwargs: Any) -> Any:
        if is_disabled(self.name):
            _log.info("flowmap: instrumentation %s disabled by environment", self.name)
            return None
        return super().instrument(**kwargs)


@contextmanager
def data_boundary(
    kind: str,
    name: str,
    *,
    scoped: bool,
    strict: bool = False,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Span]:
    """A data-boundary span with ``flowmap.scoped`` as the instrumentation verified it.

    In strict mode an unscoped operation raises UnscopedOperationError inside the span
    (so the refusal is recorded) and before the caller's operation runs. With no tenant
    bound the boundary's own mode applies (fail closed by default).
    """
    with boundary(kind, name, scoped=scoped, attributes=attributes) as span:
        if strict and not scoped:
            raise UnscopedOperationError(
                f"strict mode: {name} is not restricted to the bound tenant"
            )
        yield span


def bound_namespace(namespace: Namespace) -> str | None:
    """The bound tenant's namespace, or None when no authenticated tenant is bound."""
    ctx = current_or_none()
    if ctx is None:
        return None
    try:
        return namespace(ctx)
    except Exception:  # noqa: BLE001 - a broken namespace function judges as unscoped
        _log.debug("flowmap: namespace function failed", exc_info=True)
        return None
