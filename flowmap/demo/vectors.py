"""A small in-memory vector index with metadata filters, and the hashing it embeds with.

The index's ``search`` is instrumented the way a vector-store integration would be: a
``vector`` boundary whose ``flowmap.scoped`` says whether the query's filter actually
restricted it to the bound tenant (checked here, not taken on trust).
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Any

from ..boundaries import boundary
from ..context import current_or_none

__all__ = ["VectorIndex", "Hit", "embed_text", "DIMENSIONS"]

DIMENSIONS = 64
_WORD = re.compile(r"[a-z]+")


def embed_text(text: str) -> list[float]:
    """Feature hashing of words into a unit vector: deterministic, no model download."""
    vec = [0.0] * DIMENSIONS
    for word in _WORD.findall(text.lower()):
        h = hashlib.blake2b(word.encode(), digest_size=4).digest()
        vec[int.from_bytes(h[:3], "big") % DIMENSIONS] += 1.0 if h[3] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


@dataclass(frozen=True)
class Hit:
    doc_id: str
    score: float
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


class VectorIndex:
    """Cosine search over a few documents; ``where`` filters on exact metadata values."""

    def __init__(self, name: str = "docs") -> None:
        self.name = name
        self._rows: list[tuple[str, list[float], str, dict[str, Any]]] = []

    def add(self, doc_id: str, text: str, **metadata: Any) -> None:
        self._rows.append((doc_id, embed_text(text), text, dict(metadata)))

    def search(self, vector: list[float], k: int = 2, where: dict[str, Any] | None = None) -> list[Hit]:
        with boundary(
            "vector", f"vector.search {self.name}", scoped=_restricted_to_tenant(where),
            attributes={"db.system.name": "demo-vectors", "db.collection.name": self.name, "vector.top_k": k},
        ) as span:
            hits = [
                Hit(doc_id, sum(a * b for a, b in zip(vector, vec)), text, meta)
                for doc_id, vec, text, meta in self._rows
                if not where or all(meta.get(key) == value for key, value in where.items())
            ]
            hits.sort(key=lambda h: (-h.score, h.doc_id))
            span.set_attribute("vector.results", [h.doc_id for h in hits[:k]])
            return hits[:k]


def _restricted_to_tenant(where: dict[str, Any] | None) -> bool:
    ctx = current_or_none()
    return bool(where) and ctx is not None and where.get("tenant") == ctx.tenant_id
