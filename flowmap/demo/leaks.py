"""The demo platform's leaks: one switch per real bug, named after it.

Each switch turns on code a real platform ships by accident; ``LEAKS`` says which rule
flowmap reports for it and on which operation, so the demo can show that every leak is
caught and the tests can hold it to that.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace

__all__ = ["Leaks", "LeakInfo", "LEAKS", "LEAKS_ENV"]

LEAKS_ENV = "FLOWMAP_DEMO_LEAKS"


@dataclass(frozen=True)
class LeakInfo:
    """What one leak does, and how flowmap sees it."""

    bug: str
    rule: str
    service: str
    span: str
    fix: str


@dataclass(frozen=True)
class Leaks:
    """Which bugs the demo platform runs with (all on by default: ``flowmap demo``)."""

    thread_pool_drops_context: bool = True
    tool_service_ignores_context: bool = True
    cache_key_without_tenant: bool = True
    vector_search_without_tenant_filter: bool = True
    model_chosen_tenant: bool = True
    raw_tenant_id_in_span: bool = True
    unfiltered_tool_catalog: bool = True

    @classmethod
    def all_on(cls) -> "Leaks":
        return cls()

    @classmethod
    def none(cls) -> "Leaks":
        return cls(**{f.name: False for f in fields(cls)})

    @classmethod
    def only(cls, *names: str) -> "Leaks":
        """Just the named leaks on (unknown names are a ValueError)."""
        return replace(cls.none(), **{_check(n): True for n in names})

    def enabled(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name)]

    def to_env(self) -> str:
        return ",".join(self.enabled())

    @classmethod
    def from_env(cls, value: str | None = None) -> "Leaks":
        raw = os.environ.get(LEAKS_ENV, "") if value is None else value
        return cls.only(*(n.strip() for n in raw.split(",") if n.strip()))


def _check(name: str) -> str:
    if name not in {f.name for f in fields(Leaks)}:
        raise ValueError(f"unknown demo leak {name!r}")
    return name


AGENT_SERVICE = "demo-agent-api"
TOOL_SERVICE = "demo-tool-service"

LEAKS: dict[str, LeakInfo] = {
    "thread_pool_drops_context": LeakInfo(
        "query embeddings run on a shared thread pool through loop.run_in_executor, "
        "which does not copy contextvars",
        "orphan-root", AGENT_SERVICE, "embeddings scripted-embedder",
        "flowmap.propagation.run_in_executor carries the request's context into the pool",
    ),
    "tool_service_ignores_context": LeakInfo(
        "the tool service continues the trace but ignores the propagated tenant and "
        "authenticates nothing (a shared service account)",
        "context-dropped", TOOL_SERVICE, "POST /tools/fx_convert",
        "TenantMiddleware authenticates the caller's tenant from the forwarded token",
    ),
    "cache_key_without_tenant": LeakInfo(
        "the lookup cache is keyed by the question only, so one tenant's answer is "
        "served to another",
        "cross-tenant", AGENT_SERVICE, "cache.get account-summary",
        "the cache key starts with the tenant (a per-tenant namespace)",
    ),
    "vector_search_without_tenant_filter": LeakInfo(
        "document search runs over every tenant's documents",
        "unscoped-query", AGENT_SERVICE, "vector.search docs",
        "the search filters on the tenant's metadata",
    ),
    "model_chosen_tenant": LeakInfo(
        "the account tool takes tenant_id as an argument, and the model fills it in",
        "model-chosen-tenant", AGENT_SERVICE, "execute_tool account_lookup",
        "the tool reads the tenant from flowmap.current(), never from its arguments",
    ),
    "raw_tenant_id_in_span": LeakInfo(
        "the agent writes the raw tenant id into a span attribute for debugging",
        "tenant-in-telemetry", AGENT_SERVICE, "invoke_agent support-agent",
        "leave tagging to flowmap: the span already carries the opaque tag",
    ),
    "unfiltered_tool_catalog": LeakInfo(
        "the model is shown every tenant's tools",
        "unfiltered-catalog", AGENT_SERVICE, "tools.list",
        "the catalog is filtered to the tools the tenant owns",
    ),
}
