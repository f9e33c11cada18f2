"""Just enough ASGI for the demo's two JSON services: no web framework to install.

Every service answers ``GET /healthz`` itself, so the launcher can wait for it to be
ready without credentials.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from ..asgi import Receive, Scope, Send

__all__ = ["JsonApp", "Handler", "HEALTH_PATH"]

HEALTH_PATH = "/healthz"

#: ``async handler(scope, parsed JSON body) -> (status, JSON payload)``
Handler = Callable[[Scope, Any], Awaitable[tuple[int, Any]]]


async def _health(scope: Scope, body: Any) -> tuple[int, Any]:
    return 200, {"ok": True}


class JsonApp:
    """Routes ``(method, path)`` to a :data:`Handler`; HTTP only (run with ``lifespan="off"``)."""

    def __init__(self, routes: dict[tuple[str, str], Handler]) -> None:
        self.routes = {("GET", HEALTH_PATH): _health, **routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        more = True
        while more:
            message = await receive()
            raw += message.get("body", b"")
            more = message.get("more_body", False)
        status, payload = await self._dispatch(scope, raw)
        data = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})

    async def _dispatch(self, scope: Scope, raw: bytes) -> tuple[int, Any]:
        handler = self.routes.get((scope["method"], scope["path"]))
        if handler is None:
            return 404, {"error": "not found"}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return 400, {"error": "invalid JSON"}
        return await handler(scope, body)
