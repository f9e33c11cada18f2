"""A deterministic scripted model: plans tool calls and answers without any network.

It behaves like a function-calling LLM for the demo's purposes: it reads the system
prompt and the user's message, picks tools from the catalog it was *shown*, and fills
their arguments from the schema. That is exactly how a real model ends up choosing a
tenant id: the tool's schema asks for one and the prompt mentions one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..boundaries import boundary

__all__ = ["ToolCall", "ScriptedModel", "MODEL_NAME"]

MODEL_NAME = "scripted-model"
_TENANT_IN_PROMPT = re.compile(r"tenant (\S+)\.")
_AMOUNT = re.compile(r"(\d+(?:\.\d+)?)\s*([A-Z]{3})\s+to\s+([A-Z]{3})")
_DOC_WORDS = ("refund", "policy", "onboarding", "security", "pricing")


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


def _llm_span(kind: str) -> Any:
    return boundary(
        "llm", f"chat {MODEL_NAME}",
        attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": MODEL_NAME,
                    "gen_ai.system": "scripted", "demo.step": kind},
    )


class ScriptedModel:
    """Rule-based stand-in for a function-calling chat model."""

    def plan(self, system: str, message: str, tools: list[dict[str, Any]]) -> list[ToolCall]:
        """The tool calls the model makes for ``message`` given the tool schemas it sees."""
        with _llm_span("plan") as span:
            shown = {t["name"]: t for t in tools}
            calls: list[ToolCall] = []
            text = message.lower()
            if "search_docs" in shown and any(w in text for w in _DOC_WORDS):
                calls.append(self._fill(shown["search_docs"], system, {"query": message}))
            if "account_lookup" in shown and "plan" in text:
                calls.append(self._fill(shown["account_lookup"], system, {"field": "plan"}))
            m = _AMOUNT.search(message)
            if "fx_convert" in shown and m:
                calls.append(self._fill(
                    shown["fx_convert"], system,
                    {"amount": float(m.group(1)), "source": m.group(2), "target": m.group(3)},
                ))
            span.set_attribute("gen_ai.response.tool_calls", len(calls))
            return calls

    def answer(self, message: str, results: list[tuple[ToolCall, Any]]) -> str:
        """A final answer composed from the tool results (no tenant id in it)."""
        with _llm_span("answer"):
            parts = [f"{call.name}: {_summary(result)}" for call, result in results]
            return "; ".join(parts) if parts else "I could not find anything for that."

    @staticmethod
    def _fill(tool: dict[str, Any], system: str, wanted: dict[str, Any]) -> ToolCall:
        params = tool.get("parameters", {})
        args = {k: v for k, v in wanted.items() if k in params}
        if "tenant_id" in params:
            # The schema asks for a tenant and the prompt names one: the model obliges.
            m = _TENANT_IN_PROMPT.search(system)
            if m:
                args["tenant_id"] = m.group(1)
        return ToolCall(tool["name"], args)


def _summary(result: Any) -> str:
    if isinstance(result, list):
        return f"{len(result)} result(s)"
    if isinstance(result, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(result.items()) if k != "owner")
    return str(result)
