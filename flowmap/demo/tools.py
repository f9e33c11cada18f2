"""The tool catalog the model is shown, and its tenant filter.

Some tools belong to one tenant (its CRM, its records system). Showing them to every
tenant's model is the ``unfiltered-catalog`` leak: the ``tool.catalog`` boundary records
whether the listing was restricted to the bound tenant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..boundaries import boundary
from ..context import current

__all__ = ["ToolSpec", "ToolCatalog", "default_catalog"]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, str] = field(default_factory=dict)
    owner: str | None = None  # a tenant id for private tools; None for shared tools

    def schema(self) -> dict[str, Any]:
        """What the model sees (never the owner)."""
        return {"name": self.name, "description": self.description, "parameters": dict(self.parameters)}


class ToolCatalog:
    def __init__(self, tools: list[ToolSpec]) -> None:
        self._tools = list(tools)

    def list(self, *, tenant_filter: bool) -> list[dict[str, Any]]:
        """The schemas shown to the model for the bound tenant's request."""
        with boundary("tool.catalog", "tools.list", scoped=tenant_filter) as span:
            tenant = current().tenant_id
            shown = [t for t in self._tools if not tenant_filter or t.owner in (None, tenant)]
            span.set_attribute("tool.catalog.size", len(shown))
            return [t.schema() for t in shown]


def default_catalog(*, model_chooses_tenant: bool) -> ToolCatalog:
    """The demo's tools; with the model-chosen-tenant bug the account tool asks for a tenant."""
    account_params = {"field": "string"}
    if model_chooses_tenant:
        account_params = {"tenant_id": "string", **account_params}
    return ToolCatalog([
        ToolSpec("search_docs", "Search the tenant's knowledge base.", {"query": "string"}),
        ToolSpec("account_lookup", "Look up a field of the customer's account.", account_params),
        ToolSpec("fx_convert", "Convert an amount between currencies.",
                 {"amount": "number", "source": "string", "target": "string"}),
        ToolSpec("crm_search", "Search the CRM of the account team.", {"query": "string"}, owner="acme-corp"),
        ToolSpec("records_lookup", "Read a patient record.", {"record": "string"}, owner="umbrella-health"),
    ])
