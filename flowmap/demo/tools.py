"""The demo's tools and who may use them, served through :class:`flowmap.catalog.ToolCatalog`.

Some tools belong to one tenant (its CRM, its records system). The library's catalog
shows the model only what the bound tenant may use (``for_tenant()``); the
``unfiltered_tool_catalog`` leak calls ``unfiltered()`` instead, and the ``tools.list``
span records that the listing was not scoped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..catalog import ToolCatalog
from ..context import RequestContext

__all__ = ["ToolSpec", "demo_catalog", "schemas"]


@dataclass(frozen=True)
class ToolSpec:
    """A tool definition; ``owner`` is the tenant a private tool belongs to (None: shared)."""

    name: str
    description: str
    parameters: dict[str, str] = field(default_factory=dict)
    owner: str | None = None

    def schema(self) -> dict[str, Any]:
        """What the model sees: never the owner."""
        return {"name": self.name, "description": self.description, "parameters": dict(self.parameters)}


def demo_catalog(*, model_chooses_tenant: bool) -> ToolCatalog[ToolSpec]:
    """The demo's tools; with the ``model_chosen_tenant`` bug the account tool asks for a tenant."""
    account_params = {"field": "string"}
    if model_chooses_tenant:
        account_params = {"tenant_id": "string", **account_params}
    tools = (
        ToolSpec("search_docs", "Search the tenant's knowledge base.", {"query": "string"}),
        ToolSpec("account_lookup", "Look up a field of the customer's account.", account_params),
        ToolSpec("fx_convert", "Convert an amount between currencies.",
                 {"amount": "number", "source": "string", "target": "string"}),
        ToolSpec("crm_search", "Search the CRM of the account team.", {"query": "string"}, owner="acme-corp"),
        ToolSpec("records_lookup", "Read a patient record.", {"record": "string"}, owner="umbrella-health"),
    )

    def allowed(ctx: RequestContext) -> list[str]:
        # Asked by the catalog with the authenticated context only.
        return [t.name for t in tools if t.owner in (None, ctx.tenant_id)]

    return ToolCatalog(tools, allowed=allowed)


def schemas(tools: Iterable[ToolSpec]) -> list[dict[str, Any]]:
    """The tool schemas a model is shown."""
    return [t.schema() for t in tools]
