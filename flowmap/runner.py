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
import stat
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ._bootstrap import ACTIVE_ENV, HOSTS_ENV, SERVICE_ENV, hosts_for_env
from .errors import ConfigError, FlowmapError, InputError
from .otelenv import check_environment
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
    if first.startswith("-"):  # (no program is named so; click drops a '--' before it)
        raise InputError(f"unknown option {first} (see 'flowmap run --help')")
    if first.endswith((".py", ".pyw")) and not os.path.exists(first):
        raise InputError(f"no such script: {first}")
    if (
        first.endswith((".py", ".pyw"))
        or (os.path.isfile(first) and not os.access(first, os.X_OK))
        or os.path.isfile(os.path.join(first, "__main__.py"))  # a directory Python runs
    ):
        return [sys.executable, *args]
    if shutil.which(first) is None:
        raise InputError(f"command not found: {first}")
    return args


#: opentelemetry-instrument's command names (its console script; .exe on Windows)
_OTEL_INSTRUMENT = frozenset({"opentelemetry-instrument", "opentelemetry-instrument.exe"})
#: run with ``python -S`` (no site: neither sitecustomize runs), between
#: opentelemetry-instrument and the command it runs: puts flowmap's bootstrap (argv[1])
#: first on PYTHONPATH again, then becomes the command (argv[2:]) as opentelemetry-instrument would
_BOOTSTRAP_FIRST = (
    "import os, shutil, sys\n"
    "first, command = sys.argv[1], sys.argv[2:]\n"
    "rest = [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p and p != first]\n"
    "os.environ['PYTHONPATH'] = os.pathsep.join([first, *rest])\n"
    "exe = shutil.which(command[0]) or command[0]\n"
    "os.execv(exe, [exe, *command[1:]])\n"
)


def _bootstrap_first(command: list[str], echo: Callable[[str], None]) -> list[str]:
    """``opentelemetry-instrument [options] COMMAND ARGS`` with flowmap's bootstrap kept first.

    opentelemetry-instrument puts its own directory first on PYTHONPATH, and its
    ``sitecustomize`` runs no other one: flowmap's would never run, and nothing be traced.
    So its COMMAND is started through a step that puts flowmap's directory first again;
    flowmap's ``sitecustomize`` then runs opentelemetry's after its own, exactly as in
    ``opentelemetry-instrument flowmap run -- COMMAND``. Its options all take a value (but
    ``--help`` and ``--version``, which run nothing). Where that step cannot work (Windows,
    where ``exec`` starts a new process) one line says which order does.
    """
    if not command or os.path.basename(command[0]) not in _OTEL_INSTRUMENT:
        return command
    i = 1
    while i < len(command):
        arg = command[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-"):
            break
        if arg in ("-h", "--help", "--version"):
            return command
        i += 1 if "=" in arg else 2
    if i >= len(command):
        return command  # opentelemetry-instrument will say what is missing
    if os.name == "nt":
        echo("flowmap run: opentelemetry-instrument runs no other sitecustomize, so flowmap's would not run; "
             "use: opentelemetry-instrument [options] flowmap run -- COMMAND")
        return command
    return [*command[:i], sys.executable, "-S", "-c", _BOOTSTRAP_FIRST, str(BOOTSTRAP_DIR), *command[i:]]


def _environment(out: Path, service: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if not env.get(KEY_ENV) and env.get(DEV_MODE_ENV, "").strip().lower() not in {"1", "true", "yes", "on"}:
        raise ConfigError(
            f"no tenant key: set {KEY_ENV} (or use --dev, or {DEV_MODE_ENV}=1, for local development: tags not secret)"
        )
    paths = [str(BOOTSTRAP_DIR)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env[ACTIVE_ENV] = "1"
    env["FLOWMAP_FILE"] = str(out)
    if service:
        env[SERVICE_ENV] = service
        # also for a provider the program (or opentelemetry-instrument) makes itself with the
        # SDK's default resource; given for this run, it wins over an inherited OTEL_SERVICE_NAME
        env["OTEL_SERVICE_NAME"] = service
    env.pop(HOSTS_ENV, None)
    from .config import load_config

    try:  # the runtime's allowed hosts are the analyzer's: [tool.flowmap] in this directory
        hosts = load_config().settings.allowed_hosts
    except FlowmapError:
        pass  # the defaults, as the summary will say ("[tool.flowmap] not used: ...")
    else:
        env[HOSTS_ENV] = hosts_for_env(hosts)
    return env


#: signals passed on to the program; flowmap itself keeps waiting, to summarise what ran
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_SI_USER = 0  # siginfo si_code of a signal sent by kill(2); the kernel's (a terminal's) are > 0


def _wait(proc: subprocess.Popen[bytes]) -> int:
    """Wait for the program, passing on the signals flowmap gets (so it can flush and exit
    as it would alone), and return its exit code.

    A signal that a process sent (``kill PID``, a CI runner or supervisor stopping it) is
    forwarded. One that the kernel sent for a terminal (Ctrl-C, a closed terminal's
    SIGHUP) went to the whole foreground group, the program included: not forwarded, or
    the program would get it twice (a second Ctrl-C forces servers down before they
    flush). Told apart by waiting for the signals synchronously (``sigtimedwait``), which
    says who sent each one. A process that signals the whole group (``timeout``,
    ``kill -- -PGID``) cannot be told apart from one signalling flowmap alone: the program
    then gets it twice (docs/run.md says so).
    """
    if not hasattr(signal, "sigtimedwait"):  # (not POSIX): the program gets what the console sends
        return _exit_code(_wait_plain(proc))
    waited = {*_FORWARDED, signal.SIGCHLD}
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, waited)
    try:
        while True:
            code = proc.poll()
            if code is not None:
                return _exit_code(code)
            info = signal.sigtimedwait(waited, 1.0)
            if info is None or info.si_signo == signal.SIGCHLD:
                continue
            if info.si_code <= _SI_USER and proc.poll() is None:
                try:
                    proc.send_signal(info.si_signo)
                except OSError:
                    pass
    finally:
        # what came after the last wait is for the program, which has ended (a SIGCHLD,
        # a second Ctrl-C): not for the summary, which a KeyboardInterrupt would cut short
        while signal.sigtimedwait(waited, 0) is not None:
            pass
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def _wait_plain(proc: subprocess.Popen[bytes]) -> int:
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            continue  # the console sent it to the program too


def _exit_code(code: int) -> int:
    return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as shells report


def _trace_path(out: str | os.PathLike[str] | None) -> Path:
    """The trace file, made absolute (not resolved: a symlink is replaced, never the file
    it points to); refused when it exists and is not a regular file (a device such as
    /dev/full, a FIFO, a directory), which replacing would destroy."""
    path = Path(out if out is not None else os.environ.get("FLOWMAP_FILE") or DEFAULT_FILE).absolute()
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return path
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise ConfigError(f"the trace file {path} exists and is not a regular file: give another --out")
    return path


def _inherited(path: Path) -> bool:
    """Whether ``path`` is the trace file of a ``flowmap run`` this one runs inside: it is
    appended to, not replaced (the outer run's spans are in it)."""
    outer = os.environ.get("FLOWMAP_FILE")
    return os.environ.get(ACTIVE_ENV) == "1" and bool(outer) and Path(outer).absolute() == path


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
    replaced, so the summary is about this run only (inside another ``flowmap run``,
    the outer run's file is appended to instead).
    """
    command = _bootstrap_first(command_for(argv, module=module), echo)
    path = _trace_path(out)
    env = _environment(path, service_name)
    check_environment(env)  # a value the SDK refuses would leave every process untraced
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not _inherited(path):
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
            cfg = load_config()
        except FlowmapError as exc:
            echo(f"{prefix} [tool.flowmap] not used: {exc}")
            settings = None
        else:
            settings = cfg.settings
            for warning in cfg.warnings:  # (an unknown key: as `flowmap check` says it)
                echo(f"flowmap run: warning: {warning}")
        analysis = analyze([path], settings)
        by_severity = count_by_severity(analysis.findings, analysis.omitted)
        counts = ", ".join(f"{n} {s}" for s, n in by_severity.items() if n) or "none"
        echo(f"{prefix} {plural(analysis.spans, 'span')} in {plural(analysis.traces, 'trace')} "
             f"({plural(len(analysis.services), 'service')}); findings: {counts}")
        echo(f"  trace file: {path}")
        if report is not None:
            from .html import write_report

            try:
                echo(f"  risk map:   {write_report(analysis, report)}")
            except FlowmapError as exc:
                echo(f"  risk map:   not written: {exc}")
        if analysis.findings:
            echo(f"  details:    flowmap check {path}")
    except FlowmapError as exc:
        echo(f"{prefix} the trace file could not be analysed: {exc}")
    except Exception as exc:  # noqa: BLE001 - the program's exit code is what matters
        echo(f"{prefix} the trace file could not be analysed ({type(exc).__name__}); it is at {path}")
