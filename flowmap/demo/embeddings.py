"""Query embeddings, and where they run: inline when small, on a worker pool when large.

Embedding a long text is CPU work that would stall the event loop for every tenant, so
the platform hands large jobs to a thread pool shared by all requests, as real platforms
do. Handing work to a pool is where Python drops the request's context:
``loop.run_in_executor`` does not copy contextvars, so the embedding span starts with no
tenant and no parent (the ``thread_pool_drops_context`` leak). Small jobs run inline and
stay attached under their tool call, which is how flowmap learns where the orphans
belong. The fix is :func:`flowmap.propagation.run_in_executor`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures

from ..boundaries import boundary
from ..propagation import run_in_executor
from .vectors import embed_text

__all__ = ["Embedder", "EMBEDDER_NAME", "INLINE_MAX_CHARS"]

EMBEDDER_NAME = "scripted-embedder"
#: Texts up to this length are embedded inline; longer ones go to the worker pool.
INLINE_MAX_CHARS = 200


@boundary(
    "llm", f"embeddings {EMBEDDER_NAME}",
    attributes={"gen_ai.operation.name": "embeddings", "gen_ai.request.model": EMBEDDER_NAME},
)
def _embed(text: str) -> list[float]:
    return embed_text(text)


class Embedder:
    """Embeds query text; ``carry_context=False`` is the platform's bug, True its fix."""

    def __init__(self, *, carry_context: bool, workers: int = 2) -> None:
        self.carry_context = carry_context
        # One pool for all requests: its worker threads serve every tenant in turn.
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="embed")

    async def embed(self, text: str) -> list[float]:
        if len(text) <= INLINE_MAX_CHARS:
            return _embed(text)
        loop = asyncio.get_running_loop()
        if self.carry_context:
            return await run_in_executor(loop, self._pool, _embed, text)
        return await loop.run_in_executor(self._pool, _embed, text)  # the worker has no contextvars

    def close(self) -> None:
        self._pool.shutdown(wait=False)
