"""A lookup cache that remembers which span filled each entry.

A hit adds a span link to the span that wrote the entry, so provenance survives in the
trace: when an entry written for one tenant is served to another, the link joins two
spans with different tenant tags and flowmap reports a ``cross-tenant`` edge.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import SpanContext

from ..boundaries import boundary
from ..context import current_or_none

__all__ = ["LookupCache"]


@dataclass(frozen=True)
class _Entry:
    value: Any
    writer: SpanContext


class LookupCache:
    """``get``/``set`` by key, optionally inside a namespace (the tenant, when done right)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._entries: dict[tuple[str | None, str], _Entry] = {}
        self._lock = threading.Lock()

    def get(self, key: str, *, namespace: str | None) -> Any | None:
        with boundary("cache", f"cache.get {self.name}", scoped=_scoped(namespace)) as span:
            with self._lock:
                entry = self._entries.get((namespace, key))
            span.set_attribute("cache.hit", entry is not None)
            if entry is None:
                return None
            if entry.writer.is_valid:
                span.add_link(entry.writer, {"cache.link": "filled-by"})
            return entry.value

    def set(self, key: str, value: Any, *, namespace: str | None) -> None:
        with boundary("cache", f"cache.set {self.name}", scoped=_scoped(namespace)) as span:
            with self._lock:
                self._entries.setdefault((namespace, key), _Entry(value, span.get_span_context()))


def _scoped(namespace: str | None) -> bool:
    ctx = current_or_none()
    return namespace is not None and ctx is not None and namespace == ctx.tenant_id
