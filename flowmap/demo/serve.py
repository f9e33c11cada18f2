"""Run one of the demo's services in its own process (what ``flowmap demo`` starts).

    python -m flowmap.demo.serve agent --fd N --tool-url URL
    python -m flowmap.demo.serve tools --fd N

The listening socket is inherited from the parent (bound to 127.0.0.1 on an ephemeral
port before the process starts, so ports are never raced). Each service configures
flowmap itself, as a real service would, and appends to the same trace file
(``FLOWMAP_FILE``). SIGINT/SIGTERM stop it cleanly and flush its spans.
"""

from __future__ import annotations

import argparse
import socket
from typing import Any

import uvicorn

from ..configure import configure
from .leaks import AGENT_SERVICE, TOOL_SERVICE, Leaks

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flowmap.demo.serve")
    parser.add_argument("role", choices=("agent", "tools"))
    parser.add_argument("--fd", type=int, required=True, help="inherited listening socket")
    parser.add_argument("--tool-url", default="")
    args = parser.parse_args(argv)

    leaks = Leaks.from_env()
    runtime = configure(
        service_name=AGENT_SERVICE if args.role == "agent" else TOOL_SERVICE,
        # Record mode lets every leak reach the trace instead of failing the request;
        # the fixed platform runs fail-closed and must still serve every request.
        boundary_mode="record" if leaks.enabled() else "fail",
    )
    app: Any
    if args.role == "agent":
        from .app import Platform, build_agent_api

        app = build_agent_api(Platform(leaks, args.tool_url))
    else:
        from .toolsvc import build_tool_service

        app = build_tool_service(leaks)
    sock = socket.socket(fileno=args.fd)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    try:
        server.run(sockets=[sock])
    finally:
        runtime.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
