"""The demo platform's leaks: one switch per real bug, named after it.

Each switch turns on code a real platform ships by accident; ``LEAKS`` says which rule
flowmap reports for it and on which operation, so the demo can show that every leak is
caught and the tests can hold it to that.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace

__all__ = ["Leaks", "LeakInfo", "LEAKS", "LEAKS_ENV"]

LEAKS_ENV = "FLOWMAP_DEMO_LEAKS"  # how the switches reach the two service processes


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
        bug="long query embeddings are offloaded to a shared thread pool through "
            "loop.run_in_executor, which does not copy contextvars (short ones run inline)",
        rule="orphan-root", service=AGENT_SERVICE, span="embeddings scripted-embedder",
        fix="flowmap.propagation.run_in_executor carries the request's context into the pool",
    ),
    "tool_service_ignores_context": LeakInfo(
        bug="the tool service continues the trace but ignores the propagated tenant and "
            "authenticates nothing (a shared service account)",
        rule="context-dropped", service=TOOL_SERVICE, span="POST /tools/fx_convert",
        fix="TenantMiddleware authenticates the caller's tenant from the forwarded token",
    ),
    "cache_key_without_tenant": LeakInfo(
        bug="the lookup cache is keyed by the question only, so one tenant's answer is "
            "served to another",
        rule="cross-tenant", service=AGENT_SERVICE, span="cache.get account-summary",
        fix="keys live in the tenant's namespace (flowmap's t:<opaque tag>: prefix)",
    ),
    "vector_search_without_tenant_filter": LeakInfo(
        bug="document search runs over every tenant's documents",
        rule="unscoped-query", service=AGENT_SERVICE, span="vector.search docs",
        fix="the search filters on the tenant's metadata",
    ),
    "model_chosen_tenant": LeakInfo(
        bug="the account tool takes tenant_id as an argument, and the model fills it in",
        rule="model-chosen-tenant", service=AGENT_SERVICE, span="execute_tool account_lookup",
        fix="the tool reads the tenant from flowmap.current(), never from its arguments",
    ),
    "raw_tenant_id_in_span": LeakInfo(
        bug="the agent writes the raw tenant id into a span attribute for debugging",
        rule="tenant-in-telemetry", service=AGENT_SERVICE, span="invoke_agent support-agent",
        fix="leave tagging to flowmap: the span already carries the opaque tag",
    ),
    "unfiltered_tool_catalog": LeakInfo(
        bug="the model is shown every tenant's tools",
        rule="unfiltered-catalog", service=AGENT_SERVICE, span="tools.list",
        fix="flowmap.catalog.ToolCatalog.for_tenant() shows only the tools the tenant may use",
    ),
}
