"""Process-wide settings of the sqlite-vec instrumentation (set by ``instrument()``)."""

from __future__ import annotations

from dataclasses import dataclass

from flowmap.context import RequestContext
from flowmap.instrumentation import Namespace


def raw_tenant_id(ctx: RequestContext) -> str:
    """Default partition value: the tenant id as the app stores it (compared, never recorded).

    Stored data outlives key rotation, so the default is not the (key-dependent) tag.
    """
    return ctx.tenant_id


@dataclass
class _Settings:
    namespace: Namespace = raw_tenant_id
    partition_column: str | None = None  # None: the vec0 table's own ``partition key`` columns
    strict: bool = False


settings = _Settings()
