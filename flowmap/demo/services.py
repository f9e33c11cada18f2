"""Start the demo's two services as child processes on loopback, and stop them cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from opentelemetry.instrumentation.utils import suppress_instrumentation

from ..errors import FlowmapError
from .json_app import HEALTH_PATH
from .leaks import LEAKS_ENV, Leaks

__all__ = ["Services", "start_services"]


@dataclass(frozen=True)
class Services:
    agent_url: str
    tool_url: str


def _listen() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


@contextmanager
def _service(args: list[str], sock: socket.socket, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flowmap.demo.serve", *args, "--fd", str(sock.fileno())],
            env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            pass_fds=(sock.fileno(),),
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # uvicorn shuts down, then flowmap flushes
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], name: str, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    with suppress_instrumentation():
        while True:
            if proc.poll() is not None:
                raise FlowmapError(f"the demo's {name} exited at start (exit {proc.returncode}); its log: {log}")
            try:
                if httpx.get(url + HEALTH_PATH, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise FlowmapError(f"the demo's {name} did not start in {timeout:.0f}s; its log: {log}")
            time.sleep(0.05)


@contextmanager
def start_services(leaks: Leaks, trace_file: Path, key: str, logs: Path) -> Iterator[Services]:
    """Run the tool service and the agent API, both writing spans to ``trace_file``."""
    env = dict(os.environ)
    env.update({
        "FLOWMAP_TENANT_KEY": key,
        "FLOWMAP_FILE": str(trace_file.resolve()),
        LEAKS_ENV: leaks.to_env(),
        "PYTHONUNBUFFERED": "1",
    })
    for name in ("FLOWMAP_DEV_MODE", "FLOWMAP_BOUNDARY_MODE", "OTEL_TRACES_EXPORTER", "OTEL_SERVICE_NAME",
                 "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        env.pop(name, None)  # the demo is self-contained: no exporter or mode from outside
    logs.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        tool_sock = stack.enter_context(_listen())
        agent_sock = stack.enter_context(_listen())
        services = Services(agent_url=_url(agent_sock), tool_url=_url(tool_sock))
        tool_log, agent_log = logs / "tool-service.log", logs / "agent-api.log"
        tools = stack.enter_context(_service(["tools"], tool_sock, env, tool_log))
        # Stopped first (ExitStack unwinds in reverse), so no request hits a stopped tool service.
        agent = stack.enter_context(_service(["agent", "--tool-url", services.tool_url], agent_sock, env, agent_log))
        _wait_healthy(services.tool_url, tools, "tool service", tool_log)
        _wait_healthy(services.agent_url, agent, "agent API", agent_log)
        yield services
