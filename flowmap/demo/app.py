"""The agent API: authenticates tenants from bearer tokens and runs the agent loop.

One request: load the conversation (memory), list the tools the tenant may use (tool
catalog), let the scripted model plan tool calls, run them (document search over the
vector index, a cached account lookup, a currency tool on the tool service over HTTP),
answer, save the turn. Every leak in :mod:`.leaks` is a branch here or a constructor
argument, named after it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx

from ..boundaries import boundary
from ..context import current
from ..instrumentation import tag_namespace
from .auth import authenticated, bearer_token
from .cache import LookupCache
from .data import ACCOUNTS, DOCUMENTS
from .embeddings import Embedder
from .json_app import JsonApp
from .leaks import Leaks
from .memory import ConversationMemory
from .model import ScriptedModel, ToolCall
from .tools import demo_catalog, schemas
from .vectors import VectorIndex

__all__ = ["Platform", "build_agent_api", "AGENT_NAME"]

AGENT_NAME = "support-agent"
_log = logging.getLogger("flowmap.demo")


class Platform:
    """The agent and its tools, wired with (or without) each leak."""

    def __init__(self, leaks: Leaks, tool_url: str) -> None:
        self.leaks = leaks
        self.model = ScriptedModel()
        self.embedder = Embedder(carry_context=not leaks.thread_pool_drops_context)
        self.index = VectorIndex("docs")
        for tenant_id, doc_id, text in DOCUMENTS:
            self.index.add(doc_id, text, tenant=tenant_id)
        self.memory = ConversationMemory()
        self.cache = LookupCache(
            "account-summary", namespace=None if leaks.cache_key_without_tenant else tag_namespace)
        self.catalog = demo_catalog(model_chooses_tenant=leaks.model_chosen_tenant)
        self._http = httpx.AsyncClient(base_url=tool_url, timeout=10.0)

    async def chat(self, conversation_id: str, message: str, token: str) -> dict[str, Any]:
        ctx = current()
        with boundary("agent", f"invoke_agent {AGENT_NAME}",
                      attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": AGENT_NAME}) as span:
            if self.leaks.raw_tenant_id_in_span:
                span.set_attribute("tenant_id", ctx.tenant_id)  # "just for debugging"
            history = self.memory.load(conversation_id)
            tools = self.catalog.unfiltered() if self.leaks.unfiltered_tool_catalog else self.catalog.for_tenant()
            # Naming the tenant in the prompt is harmless until a tool schema asks for one.
            system = f"You are the support agent of tenant {ctx.tenant_id}. Answer from the tools."
            calls = self.model.plan(system, message, schemas(tools))
            results = [(call, await self.execute(call, token)) for call in calls]
            answer = self.model.answer(message, results)
            self.memory.append(conversation_id, "user", message)
            self.memory.append(conversation_id, "assistant", answer)
            return {"answer": answer, "tools": [c.name for c in calls], "turn": len(history) // 2 + 1}

    async def execute(self, call: ToolCall, token: str) -> Any:
        with boundary("tool", f"execute_tool {call.name}", attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": call.name,
            "gen_ai.tool.call.arguments": json.dumps(call.arguments, sort_keys=True),
        }):
            args = call.arguments
            if call.name == "search_docs":
                return await self.search_docs(str(args["query"]))
            if call.name == "account_lookup":
                return self.account_lookup(str(args["field"]), args.get("tenant_id"))
            if call.name == "fx_convert":
                return await self.fx_convert(args, token)
            raise ValueError("the model called a tool this platform does not implement")

    async def search_docs(self, query: str) -> list[dict[str, str]]:
        vector = await self.embedder.embed(query)
        where = None if self.leaks.vector_search_without_tenant_filter else {"tenant": current().tenant_id}
        return [{"doc": h.doc_id, "text": h.text} for h in self.index.search(vector, k=2, where=where)]

    def account_lookup(self, field: str, model_tenant: Any) -> dict[str, Any]:
        # The model_chosen_tenant bug: the tenant is whatever the model put in the arguments.
        tenant = str(model_tenant) if self.leaks.model_chosen_tenant else current().tenant_id
        record = self.cache.get(field)
        if record is None:
            record = self._query_account(tenant)
            self.cache.set(field, record)
        return {field: record.get(field)}

    def _query_account(self, tenant: str) -> dict[str, Any]:
        with boundary("db", "db.query accounts", scoped=tenant == current().tenant_id, attributes={
            "db.system.name": "demo-db", "db.operation.name": "SELECT", "db.collection.name": "accounts",
        }):
            return dict(ACCOUNTS.get(tenant, {}))

    async def fx_convert(self, args: dict[str, Any], token: str) -> dict[str, Any]:
        # The user's token is forwarded so the tool service can authenticate the tenant itself.
        resp = await self._http.post("/tools/fx_convert", json=args, headers={"authorization": f"Bearer {token}"})
        resp.raise_for_status()
        return dict(resp.json())


def build_agent_api(platform: Platform) -> Any:
    """The ASGI app: ``POST /v1/chat`` behind TenantMiddleware."""

    async def chat(scope: dict[str, Any], body: Any) -> tuple[int, Any]:
        try:
            conversation = str(body["conversation_id"])
            message = str(body["message"])
        except (KeyError, TypeError):
            return 400, {"error": "conversation_id and message are required"}
        try:
            return 200, await platform.chat(conversation, message, bearer_token(scope) or "")
        except Exception as exc:  # noqa: BLE001 - never echo details (they may hold tenant data)
            _log.warning("demo agent request failed: %s", type(exc).__name__)
            return 500, {"error": "internal error"}

    return authenticated(JsonApp({("POST", "/v1/chat"): chat}))
