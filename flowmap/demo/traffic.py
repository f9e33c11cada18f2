"""The demo's users: every tenant talks to the agent at the same time.

Round one: each tenant's user has a three-turn conversation (docs, plan, currency),
all tenants concurrently; two of them ask with a long pasted message, which the platform
embeds on its worker pool. Round two: each asks a follow-up, again concurrently, so a
cache shared across tenants is guaranteed to serve one tenant's entry to another.
The users are outside the platform: their HTTP calls are not traced.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
from opentelemetry.instrumentation.utils import suppress_instrumentation

from .data import CONVERSATIONS, TENANTS, Tenant

__all__ = ["Exchange", "run_traffic"]


@dataclass(frozen=True)
class Exchange:
    user: str
    message: str
    status: int
    answer: str


async def _converse(client: httpx.AsyncClient, tenant: Tenant, turns: tuple[str, ...]) -> list[Exchange]:
    out = []
    for message in turns:
        resp = await client.post(
            "/v1/chat",
            json={"conversation_id": f"conv-{tenant.user}", "message": message},
            headers={"authorization": f"Bearer {tenant.token}"},
        )
        answer = resp.json().get("answer", "") if resp.status_code == 200 else ""
        out.append(Exchange(tenant.user, message, resp.status_code, answer))
    return out


async def run_traffic(base_url: str) -> list[Exchange]:
    """Send every tenant's conversation to the agent API at ``base_url``."""
    exchanges: list[Exchange] = []
    with suppress_instrumentation():
        async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
            for by_user in CONVERSATIONS:
                rounds = await asyncio.gather(*(_converse(client, t, by_user[t.user]) for t in TENANTS))
                exchanges.extend(e for r in rounds for e in r)
    return exchanges
