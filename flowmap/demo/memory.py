"""Conversation memory keyed by tenant and conversation.

The tenant part of the key comes from the bound context only, so one tenant can never
read another's conversation even with a guessed conversation id.
"""

from __future__ import annotations

import threading

from ..boundaries import boundary
from ..context import current

__all__ = ["ConversationMemory"]


class ConversationMemory:
    """Turns of each conversation, stored under (bound tenant, conversation id)."""

    def __init__(self) -> None:
        self._turns: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self._lock = threading.Lock()

    def load(self, conversation_id: str) -> list[tuple[str, str]]:
        with boundary("memory", "memory.load", scoped=True) as span:
            key = (current().tenant_id, conversation_id)
            with self._lock:
                turns = list(self._turns.get(key, ()))
            span.set_attribute("memory.turns", len(turns))
            return turns

    def append(self, conversation_id: str, role: str, text: str) -> None:
        with boundary("memory", "memory.save", scoped=True):
            key = (current().tenant_id, conversation_id)
            with self._lock:
                self._turns.setdefault(key, []).append((role, text))
