"""The tool catalog helper: filtered per tenant, recorded as a tool.catalog boundary."""

from __future__ import annotations

import pytest
from langchain_core.tools import tool

from flowmap import attributes as A
from flowmap.catalog import ToolCatalog
from flowmap.context import RequestContext, bind
from flowmap.errors import MissingContextError, UnscopedOperationError

from .conftest import assert_no_raw

ACME = RequestContext("acme-corp-7731")
GLOBEX = RequestContext("globex-4410")
PLANS = {ACME.tenant_id: {"search_docs", "acme_crm"}, GLOBEX.tenant_id: {"search_docs"}}


@tool
def search_docs(query: str) -> str:
    """Search documents."""
    return query


@tool
def acme_crm(query: str) -> str:
    """acme's private CRM."""
    return query


def catalog(**kw) -> ToolCatalog:
    return ToolCatalog([search_docs, acme_crm], allowed=lambda ctx: PLANS[ctx.tenant_id], **kw)


def test_each_tenant_sees_only_its_tools(traced):
    with bind(ACME):
        acme = catalog().for_tenant()
    with bind(GLOBEX):
        globex = catalog().for_tenant()
    assert [t.name for t in acme] == ["search_docs", "acme_crm"]
    assert [t.name for t in globex] == ["search_docs"]
    spans = traced.spans("tool.catalog")
    assert [(s.attributes[A.SCOPED], s.attributes["flowmap.catalog.shown"]) for s in spans] == [(True, 2), (True, 1)]
    assert [s.attributes[A.TENANT] for s in spans] == [traced.tag(ACME.tenant_id), traced.tag(GLOBEX.tenant_id)]
    assert_no_raw(traced.spans(), ACME.tenant_id, GLOBEX.tenant_id)


def test_openai_style_schemas_work_too(traced):
    schemas = [{"type": "function", "function": {"name": "acme_crm"}}, {"name": "search_docs"}]
    with bind(GLOBEX):
        shown = ToolCatalog(schemas, allowed=lambda ctx: PLANS[ctx.tenant_id]).for_tenant()
    assert shown == [{"name": "search_docs"}]


def test_unfiltered_is_recorded_unscoped_and_refused_in_strict_mode(traced):
    with bind(GLOBEX):
        assert len(catalog().unfiltered()) == 2  # shown, and the span says so
        with pytest.raises(UnscopedOperationError):
            catalog(strict=True).unfiltered()
    assert [s.attributes[A.SCOPED] for s in traced.spans("tool.catalog")] == [False, False]


def test_no_tenant_shows_nothing():
    with pytest.raises(MissingContextError):
        catalog().for_tenant()
