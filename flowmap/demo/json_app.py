"""Just enough ASGI for the demo's two JSON services (no web framework needed)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from ..asgi import header

__all__ = ["JsonApp", "bearer_token", "Handler"]

Handler = Callable[[dict[str, Any], Any], Awaitable[tuple[int, Any]]]


def bearer_token(scope: dict[str, Any]) -> str | None:
    value = header(scope, "authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class JsonApp:
    """Routes ``(method, path)`` to ``async handler(scope, body) -> (status, json)``."""

    def __init__(self, routes: dict[tuple[str, str], Handler]) -> None:
        self.routes = routes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        handler = self.routes.get((scope["method"], scope["path"]))
        raw = b""
        more = True
        while more:
            message = await receive()
            raw += message.get("body", b"")
            more = message.get("more_body", False)
        if handler is None:
            status, payload = 404, {"error": "not found"}
        else:
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                status, payload = 400, {"error": "invalid JSON"}
            else:
                status, payload = await handler(scope, body)
        data = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})
