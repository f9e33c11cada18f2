"""Real HTTP servers for tests and demos: uvicorn on 127.0.0.1, an ephemeral port, a thread.

    with serve(app) as server:
        httpx.get(server.url + "/path")

The socket is bound before the server starts (so the port is known and never raced), the
context manager returns only once uvicorn accepts connections, and on exit the server is
asked to stop, then forced, and its thread joined. A server that fails to start raises.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

__all__ = ["RunningServer", "serve", "RecordingApp"]


@dataclass
class RunningServer:
    host: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextlib.contextmanager
def serve(app: Any, *, host: str = "127.0.0.1", startup_timeout: float = 10.0,
          **config: Any) -> Iterator[RunningServer]:
    """Run ``app`` (any ASGI app) under uvicorn on ``host`` and an ephemeral port."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config.setdefault("log_level", "warning")
    config.setdefault("lifespan", "off")
    config.setdefault("access_log", False)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, **config))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # noqa: BLE001 - surfaced to the caller below
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if errors or not thread.is_alive():
                raise RuntimeError(f"test server on {host}:{port} failed to start") from (
                    errors[0] if errors else None)
            if time.monotonic() > deadline:
                raise TimeoutError(f"test server on {host}:{port} did not start in {startup_timeout}s")
            time.sleep(0.01)
        yield RunningServer(host, port, server, thread)
    finally:
        server.should_exit = True
        thread.join(5)
        if thread.is_alive():
            server.force_exit = True
            thread.join(5)
        sock.close()


class RecordingApp:
    """A minimal ASGI app that records each request's headers and answers 200 ``ok``.

    ``requests`` is a list of ``{"path": str, "headers": {lowercase name: value}}``.
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers: dict[str, str] = {}
        for name, value in scope.get("headers", []):
            key = name.decode("latin-1").lower()
            val = value.decode("latin-1")
            headers[key] = f"{headers[key]},{val}" if key in headers else val
        with self._lock:
            self.requests.append({"path": scope.get("path", ""), "headers": headers})
        while True:  # drain the body so keep-alive connections stay usable
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})
