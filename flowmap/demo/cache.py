"""A lookup cache that remembers which span filled each entry.

Keys live in the bound tenant's namespace (flowmap's ``t:<opaque tag>:`` prefix, the same
policy its Redis instrumentation judges by); a cache built with ``namespace=None`` is the
``cache_key_without_tenant`` bug. A hit adds a span link to the span that wrote the entry,
so provenance survives in the trace: when an entry written for one tenant is served to
another, the link joins spans with different tenant tags and flowmap reports
``cross-tenant``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import SpanContext

from ..boundaries import boundary
from ..instrumentation import Namespace, bound_namespace, tag_namespace

__all__ = ["LookupCache"]


@dataclass(frozen=True)
class _Entry:
    value: Any
    writer: SpanContext


class LookupCache:
    """``get``/``set`` by key, inside the bound tenant's ``namespace`` (None: one shared keyspace)."""

    def __init__(self, name: str, *, namespace: Namespace | None = tag_namespace) -> None:
        self.name = name
        self._namespace = namespace
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Any | None:
        full_key, scoped = self._key(key)
        with boundary("cache", f"cache.get {self.name}", scoped=scoped) as span:
            with self._lock:
                entry = self._entries.get(full_key)
            span.set_attribute("cache.hit", entry is not None)
            if entry is None:
                return None
            if entry.writer.is_valid:
                span.add_link(entry.writer, {"cache.link": "filled-by"})
            return entry.value

    def set(self, key: str, value: Any) -> None:
        full_key, scoped = self._key(key)
        with boundary("cache", f"cache.set {self.name}", scoped=scoped) as span:
            with self._lock:
                self._entries.setdefault(full_key, _Entry(value, span.get_span_context()))

    def _key(self, key: str) -> tuple[str, bool]:
        """The stored key, and whether it lies in the bound tenant's namespace."""
        ns = bound_namespace(self._namespace) if self._namespace is not None else None
        return (key, False) if ns is None else (ns + key, True)
