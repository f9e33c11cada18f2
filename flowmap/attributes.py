"""Names fixed by the contract (../shared/DESIGN.md): attributes, boundary kinds, baggage."""

from __future__ import annotations

from typing import Final

TENANT: Final = "flowmap.tenant"
TENANT_SOURCE: Final = "flowmap.tenant.source"
BOUNDARY: Final = "flowmap.boundary"
SCOPED: Final = "flowmap.scoped"
KEY_ID: Final = "flowmap.key_id"  # resource attribute
BAGGAGE_SENT: Final = "flowmap.baggage.sent"
# Not in the contract table but written by flowmap (extra attributes are allowed):
REDACTED: Final = "flowmap.redacted"  # count of values redacted from the span
UNSCOPED: Final = "flowmap.unscoped"  # boundary ran without a bound context (record mode)
#: span events a boundary adds in record mode: it ran without a bound context (with
#: UNSCOPED), and a generator's body ran for another tenant than it was created or
#: started for (the analyzer's cross-tenant)
UNSCOPED_EVENT: Final = "flowmap.unscoped"
SWITCH_EVENT: Final = "flowmap.tenant_switch"
TENANT_INBOUND: Final = "flowmap.tenant.inbound"  # tag received in baggage (evidence) at http.server
# span started while its request was being authenticated, before any tenant was known
# (flowmap.context.authenticating): no tenant yet is no dropped context
AUTHENTICATING: Final = "flowmap.authenticating"
#: flags the analyzer's rules read on every span that has them (never a tenant id)
RULE_FLAGS: Final = frozenset({BAGGAGE_SENT, REDACTED})

BAGGAGE_KEY: Final = "flowmap.tenant"

SOURCE_CONTEXT: Final = "context"
SOURCE_BAGGAGE: Final = "baggage"
SOURCE_EXPLICIT: Final = "explicit"

BOUNDARY_KINDS: Final = frozenset(
    {
        "http.server",
        "http.client",
        "agent",
        "llm",
        "tool",
        "tool.catalog",
        "memory",
        "vector",
        "cache",
        "db",
        "queue.publish",
        "queue.consume",
        "stream",
    }
)
DATA_BOUNDARIES: Final = frozenset({"memory", "vector", "cache", "db", "tool.catalog"})

# Attribute names whose values are raw tenant identifiers when not opaque.
TENANT_ID_ATTRIBUTE_NAMES: Final = frozenset(
    {"tenant_id", "tenant", "org_id", "organization_id", "customer_id", "account_id", "workspace_id"}
)
