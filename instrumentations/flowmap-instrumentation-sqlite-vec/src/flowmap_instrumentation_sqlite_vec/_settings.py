"""Process-wide settings of the sqlite-vec instrumentation (set by ``instrument()``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flowmap.context import RequestContext
from flowmap.instrumentation import Namespace


def raw_tenant_id(ctx: RequestContext) -> str:
    """Default partition value: the tenant id as the app stores it (compared, never recorded).

    Stored data outlives key rotation, so the default is not the (key-dependent) tag.
    """
    return ctx.tenant_id


@dataclass
class _Settings:
    """What the current ``instrument()`` call asked for; the defaults when not instrumented.

    Connections the instrumented ``connect`` opened judge only while ``active``; connections
    opened with ``factory=traced_connection_factory(...)`` always judge, with these settings.
    """

    namespace: Namespace = raw_tenant_id
    partition_column: str | None = None  # None: the vec0 table's own ``partition key`` columns
    strict: bool = False
    active: bool = False  # between instrument() and uninstrument()
    # bumped by every instrument(): what a connection learnt of its schema before is not
    # trusted after (while uninstrumented it did not watch its statements)
    generation: int = 0
    tracer: Callable[[], Any] | None = None  # () -> the instrumentation's tracer

    def reset(self) -> None:
        self.namespace = raw_tenant_id
        self.partition_column = None
        self.strict = False
        self.active = False


settings = _Settings()
