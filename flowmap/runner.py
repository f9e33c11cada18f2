"""``flowmap run``: run a program under the tracer without changing its code.

Like ``coverage run`` and ``opentelemetry-instrument``: the program runs in a child
process whose ``PYTHONPATH`` starts with flowmap's bootstrap directory, so Python imports
flowmap's ``sitecustomize`` before the program's own code — in that process and in every
Python process it starts (see :mod:`flowmap._bootstrap`). All of them append to one
trace file. When the program exits, the file is analysed, the risk map written, a short
summary printed on stderr, and the program's own exit code returned.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from ._bootstrap import ACTIVE_ENV, SERVICE_ENV
from .errors import ConfigError, FlowmapError, InputError
from .tagging import DEV_MODE_ENV, KEY_ENV

__all__ = ["run", "command_for", "BOOTSTRAP_DIR", "DEFAULT_REPORT"]

BOOTSTRAP_DIR = Path(__file__).resolve().parent / "_bootstrap"
DEFAULT_FILE = Path("flowmap-traces.jsonl")
DEFAULT_REPORT = Path("reports/risk-map.html")


def _err(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def command_for(argv: Sequence[str], *, module: bool) -> list[str]:
    """The child's command line: ``-m module``, ``script.py`` or any command."""
    args = list(argv)
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        raise InputError("nothing to run: give a COMMAND, a script.py or -m MODULE")
    if module:
        return [sys.executable, "-m", *args]
    first = args[0]
    if first.endswith((".py", ".pyw")) or (os.path.isfile(first) and not os.access(first, os.X_OK)):
        return [sys.executable, *args]
    if shutil.which(first) is None:
        raise InputError(f"command not found: {first}")
    return args


def _environment(out: Path, service: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if not env.get(KEY_ENV) and env.get(DEV_MODE_ENV, "").strip().lower() not in {"1", "true", "yes", "on"}:
        raise ConfigError(
            f"no tenant key: set {KEY_ENV} (or {DEV_MODE_ENV}=1 for local development, tags not secret)"
        )
    paths = [str(BOOTSTRAP_DIR)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env[ACTIVE_ENV] = "1"
    env["FLOWMAP_FILE"] = str(out)
    if service:
        env[SERVICE_ENV] = service
    return env


def _wait(proc: subprocess.Popen[bytes]) -> int:
    """Wait for the child; Ctrl-C and SIGTERM go to it, and we keep waiting so it can flush."""

    def forward(signum: int, frame: FrameType | None) -> None:
        if proc.poll() is None:
            try:
                proc.send_signal(signum)
            except OSError:
                pass

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        while True:
            try:
                code = proc.wait()
                break
            except KeyboardInterrupt:
                continue  # the child got the SIGINT from the terminal too
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as shells report


def run(
    argv: Sequence[str],
    *,
    module: bool = False,
    out: str | os.PathLike[str] | None = None,
    report: str | os.PathLike[str] | None = DEFAULT_REPORT,
    service_name: str | None = None,
    echo: Callable[[str], None] = _err,
) -> int:
    """Run ``argv`` traced; return its exit code (``report=None`` skips the risk map).

    The trace file (``out``, default ``$FLOWMAP_FILE`` or ``flowmap-traces.jsonl``) is
    replaced, so the summary is about this run only.
    """
    command = command_for(argv, module=module)
    path = Path(out if out is not None else os.environ.get("FLOWMAP_FILE") or DEFAULT_FILE).resolve()
    env = _environment(path, service_name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot write the trace file {path}: {exc.strerror or exc}") from None
    try:
        proc = subprocess.Popen(command, env=env)
    except OSError as exc:
        raise InputError(f"cannot run {command[0]}: {exc.strerror or exc}") from None
    code = _wait(proc)
    _summarize(path, Path(report) if report is not None else None, code, echo)
    return code


def _summarize(path: Path, report: Path | None, code: int, echo: Callable[[str], None]) -> None:
    """The short summary; a failure here never changes the program's exit code."""
    prefix = f"flowmap run: program exited {code};"
    if not path.exists():
        echo(f"{prefix} no spans were recorded (no trace file at {path})")
        return
    try:
        from .analysis import analyze
        from .config import load_config
        from .formats.common import count_by_severity, plural

        try:  # judged as `flowmap check` in this directory would judge it
            settings = load_config().settings
        except FlowmapError as exc:
            echo(f"{prefix} [tool.flowmap] not used: {exc}")
            settings = None
        analysis = analyze([path], settings)
        by_severity = count_by_severity(analysis.findings, analysis.omitted)
        counts = ", ".join(f"{n} {s}" for s, n in by_severity.items() if n) or "none"
        echo(f"{prefix} {plural(analysis.spans, 'span')} in {plural(analysis.traces, 'trace')} "
             f"({plural(len(analysis.services), 'service')}); findings: {counts}")
        echo(f"  trace file: {path}")
        if report is not None:
            from .html import write_report

            echo(f"  risk map:   {write_report(analysis, report)}")
        if analysis.findings:
            echo(f"  details:    flowmap check {path}")
    except FlowmapError as exc:
        echo(f"{prefix} the trace file could not be analysed: {exc}")
    except Exception as exc:  # noqa: BLE001 - the program's exit code is what matters
        echo(f"{prefix} the trace file could not be analysed ({type(exc).__name__}); it is at {path}")
