"""The ``flowmap`` command line: a thin layer over the library.

Streams: machine output (``--format json|sarif``, or the text report) goes to stdout or
``--output``; the human summary, warnings and errors go to stderr. Exit codes are
:class:`ExitCode`. Every error a user can cause, including a usage error, is one line
on stderr and never a traceback. Heavy modules (analysis, HTML, OpenTelemetry) are
imported inside the commands, so ``flowmap --help`` stays quick.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import gc
import importlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from typer.core import TyperCommand, TyperGroup

from .errors import ConfigError, FlowmapError, InputError, OutputClosedError
from .formats import OutputFormat
from .model import Severity

try:  # typer >= 0.2x ships its own copy of click
    from typer._click.exceptions import ClickException, NoSuchOption, UsageError
except ImportError:  # pragma: no cover - older typer on real click
    from click.exceptions import ClickException, NoSuchOption, UsageError  # type: ignore[no-redef]

if TYPE_CHECKING:
    from .config import Config
    from .model import Analysis

__all__ = ["app", "main", "ExitCode"]

PROG = "flowmap"
DEFAULT_REPORT = Path("reports/risk-map.html")
TRACE_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")
MAX_WARNINGS_SHOWN = 10
WARNING_WIDTH = 600  # a longer warning keeps its start and its end (the reason)
STDOUT_NAME = "<stdout>"


class ExitCode(enum.IntEnum):
    OK = 0  # nothing at or above the threshold
    FINDINGS = 1  # findings at or above --fail-on
    ERROR = 2  # usage, configuration or input error


# The --fail-on choices, in the order a user reads them.
FailOn = enum.Enum("FailOn", {s.name: str(s) for s in sorted(Severity, reverse=True)}, type=str)  # type: ignore[misc]


def _one_line(text: object) -> str:
    """An error message as one line a terminal shows as it is: it can quote a file name or
    a warning from a trace file, so control characters are escaped, not sent."""
    from .formats.common import clean

    return clean(" ".join(str(text).split()), 2000)


def _err(line: str) -> None:
    """Write one line to stderr, whatever the terminal's encoding. A stderr that cannot be
    written (its reader gone, a full disk) is dropped quietly: there is nowhere to say so,
    and the exit code still tells the result."""
    stream = sys.stderr
    try:
        try:
            stream.write(line + "\n")
        except UnicodeEncodeError:
            enc = getattr(stream, "encoding", None) or "ascii"
            stream.write(line.encode(enc, "backslashreplace").decode(enc) + "\n")
        stream.flush()
    except OSError:
        _discard(stream)


def _discard(stream: Any) -> None:
    """Point the descriptor under ``stream`` at the null device. Its reader is gone (``| head``)
    or its disk full: what is still buffered, and whatever is written later, goes nowhere,
    instead of failing again at exit (Python would print "Exception ignored … BrokenPipeError"
    and exit 120). A stream with no descriptor (a test's, an embedding program's) is left."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:  # pragma: no cover - no /dev/null
        return
    try:
        os.dup2(devnull, fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(devnull)


@contextlib.contextmanager
def _reader_may_leave() -> Iterator[None]:
    """An output file that is a pipe (``-o /dev/stdout | head``) ends quietly when its reader
    goes away, as standard output does."""
    try:
        yield
    except OutputClosedError:
        pass


def _to_stdout(write: Callable[[], None]) -> None:
    """Run ``write`` (which writes to stdout). A closed pipe ends the output quietly, so the
    exit code stays the one the findings decide (``flowmap check | head`` passes or fails as
    without ``head``); any other write error (``> /dev/full``), or no standard output at
    all (started with it closed, ``1>&-``), is one line and exit 2."""
    if sys.stdout is None:
        raise FlowmapError(f"cannot write output to {STDOUT_NAME}: it is closed")
    try:
        write()
    except OSError as exc:
        _discard(sys.stdout)
        if isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE:
            return
        raise FlowmapError(f"cannot write output to {STDOUT_NAME}: {exc.strerror or exc}") from None


def _can_encode(stream: Any, sample: str = "→✗…") -> bool:
    try:
        sample.encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


class FlowmapGroup(TyperGroup):
    """Typer's group with flowmap's error contract: one line on stderr, exit 2."""

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except FlowmapError as exc:
            if not standalone_mode:
                raise
            _err(f"{PROG}: error: {_one_line(exc)}")
            sys.exit(int(ExitCode.ERROR))
        except ClickException as exc:
            if not standalone_mode:
                raise
            ctx = getattr(exc, "ctx", None)
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare `flowmap`: the help (rich prints it)
                text = exc.format_message()
                if text.strip():
                    _err(text)
                sys.exit(int(ExitCode.ERROR))
            where = ctx.command_path if ctx is not None else PROG
            hint = f" (see '{where} --help')" if isinstance(exc, UsageError) else ""
            _err(f"{where}: error: {_one_line(exc.format_message())}{hint}")
            sys.exit(int(ExitCode.ERROR) if isinstance(exc, UsageError) else exc.exit_code)
        except typer.Abort:
            if not standalone_mode:
                raise
            _err(f"{PROG}: aborted")
            sys.exit(1)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # a bug of ours: still one line, and no input value in it
            if not standalone_mode or os.environ.get("FLOWMAP_DEBUG"):
                raise
            _err(
                f"{PROG}: internal error ({type(exc).__name__}); "
                "set FLOWMAP_DEBUG=1 to see the traceback, and please report it"
            )
            sys.exit(int(ExitCode.ERROR))
        if not standalone_mode:
            return rv
        sys.exit(int(rv) if isinstance(rv, int) else 0)


class NoEchoCommand(TyperCommand):
    """A command whose arguments are secrets (``tag``'s tenant id): an unknown option, which
    may be the id itself (``flowmap tag --acme-corp``), is a usage error that never repeats it."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except NoSuchOption:
            raise UsageError(
                f"unknown option (tenant ids that start with '-' go after '--': {PROG} {ctx.info_name} -- ID)", ctx
            ) from None


app = typer.Typer(
    cls=FlowmapGroup,
    name=PROG,
    help="Prove that every span, query and tool call knows which tenant it serves.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: option texts mention [tool.flowmap] literally
)


def _version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"{PROG} {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Prove that every span, query and tool call knows which tenant it serves."""


# --- shared plumbing ---------------------------------------------------------


def _optional(module: str, command: str, attr: str) -> Any:
    """``module.attr`` from a part that may not be installed; its absence is a one-line error."""
    try:
        found = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or module
        if module == missing or module.startswith(missing + "."):
            raise FlowmapError(f"'{PROG} {command}' is not available: {module} is not installed") from None
        raise FlowmapError(f"'{PROG} {command}' needs the module {missing!r}, which is not installed") from None
    value = getattr(found, attr, None)
    if value is None:
        raise FlowmapError(f"'{PROG} {command}' is not available: {module}.{attr} is missing")
    return value


def _load_config(path: Path | None) -> "Config":
    from .config import load_config

    config = load_config(path)
    for line in config.warnings:
        _err(f"{PROG}: warning: {line}")
    return config


def _expand(names: list[str]) -> list[str]:
    """Files as given; a directory stands for the trace files directly inside it."""
    out: list[str] = []
    unread: list[str] = []  # directories that gave no file: warnings, or the error's reasons
    for name in names:
        if not name:
            raise typer.BadParameter("an empty file name (an unset variable?)", param_hint="FILE")
        p = Path(name)
        if name == "-" or not _is_dir(p):  # "-" is standard input, even beside a directory "-"
            out.append(name)  # as given: "./-" is a file, "-" standard input
            continue
        where = _clean_path(p)
        try:
            found = sorted(str(c) for c in p.iterdir() if c.name.endswith(TRACE_SUFFIXES) and not _is_dir(c))
        except OSError as exc:
            unread.append(f"{where}: directory cannot be read ({exc.strerror or type(exc).__name__})")
            continue
        if not found:
            unread.append(f"{where}: no trace files ({', '.join(TRACE_SUFFIXES)}) in this directory")
        out.extend(found)
    if not out:
        from .loading import problems

        raise InputError(f"no trace files to read{problems(unread, len(unread))}")
    for line in unread:
        _err(f"{PROG}: warning: {line}")
    return out


def _is_dir(path: Path) -> bool:
    """Whether ``path`` is a directory; a path the system will not even look at (a name too
    long, a parent not searchable) is not: as an input, the loader warns about it as about
    any file it cannot read and reads the others; as an output, the write says what is wrong."""
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def _output_path(value: str | None, default: Path | None = None) -> Path | None:
    """``--output`` as given: ``-`` is standard output (None), as ``-`` is standard input for
    the inputs; ``./-`` is a file named ``-``. No value: ``default``."""
    if value is None:
        return default
    if value == "-":
        return None
    hint = "'--output' / '-o'"
    if not value:
        raise typer.BadParameter("an empty file name (an unset variable?)", param_hint=hint)
    path = Path(value)
    if _is_dir(path):
        raise typer.BadParameter(f"{_clean_path(path)} is a directory", param_hint=hint)
    return path


def _shorten(line: str, limit: int = WARNING_WIDTH) -> str:
    """A warning made safe for a terminal; a long one keeps its start and its end, where the
    reason is (a 300-character file name must not hide why it was skipped)."""
    from .formats.common import clean

    text = clean(line, len(line) * 6 + 1)  # escaped in full (an escape is at most 6 characters)
    if len(text) <= limit:
        return text
    half = (limit - 1) // 2
    return f"{text[:half]}…{text[len(text) - half:]}"


class _Warnings:
    """Loader warnings for stderr: the first few in full, then a count.

    They are printed once the analysis ended, from its own list (:attr:`Analysis.warnings`):
    a warning can quote an attribute key, a span name or a file name holding a raw
    tenant id, and only the finished analysis knows every id to mask. Held until then,
    they never tear the progress bar either. A run that reads nothing at all ends in one
    error line naming the cause; its other warnings are printed as they came, since
    nothing read means no id flagged.
    """

    def __init__(self, limit: int = MAX_WARNINGS_SHOWN) -> None:
        self.limit = limit
        self.lines: list[str] = []  # the first few as they came, for a run that read nothing
        self.total = 0

    def __call__(self, line: str) -> None:
        # the loader's last line stands for the warnings it no longer passed on (a
        # loading.WarningsNotShown, not imported here: the command line starts light)
        self.total += getattr(line, "hidden", 1)
        if len(self.lines) < self.limit:
            self.lines.append(line)

    def flush(self, masked: list[str] | None = None) -> None:
        """Print the first warnings (``masked``: the analysis' list, else as they came)."""
        shown = self.lines if masked is None else masked[: self.limit]
        for line in shown:
            _err(f"warning: {_shorten(line)}")
        more = max(self.total, len(masked or ())) - len(shown)
        if more > 0:
            _err(f"warning: … and {more} more warnings")
        self.lines, self.total = [], 0


def _analyze(files: list[str], config: "Config", output: Path | None = None) -> "Analysis":
    from .progress import ProgressBar

    paths = _expand(files)
    if output is not None and _same_file(output, paths):
        raise typer.BadParameter(f"{_clean_path(output)} is also an input: it would be overwritten", param_hint="--output")
    analyze = _optional("flowmap.analysis", "check", "analyze")
    warnings = _Warnings()
    try:
        with ProgressBar(sys.stderr) as progress, _aged_after():
            analysis = analyze(paths, config.settings, on_warning=warnings, on_progress=progress)
    except InputError:  # its one line names the problems
        raise
    warnings.flush(list(analysis.warnings))  # masked by the analysis
    return analysis


@contextlib.contextmanager
def _aged_after() -> Iterator[None]:
    """The cyclic collector off until the analysis has returned, and what it left then
    moved to the collector's oldest generation without being walked.

    Why: the analysis pauses the collector while it runs, and every object it left alive
    (its result, what it keeps for the end) was then in the young generations, walked in
    full by the collector's next two passes while the output was written (~0.15 s on a
    million spans). Moved as a whole (gc.freeze, then gc.unfreeze: two list splices),
    they are walked only by a full collection, which a command does not reach."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:  # (no one else's frozen objects to let go of)
            gc.freeze()
            gc.unfreeze()
        if enabled:
            gc.enable()


def _same_file(output: Path, paths: list[str]) -> bool:
    try:
        target = output.resolve()
        return any(Path(p).resolve() == target for p in paths)
    except (OSError, RuntimeError, ValueError):
        return False


def _clean_path(path: str | Path) -> str:
    from .files import shown_path

    return shown_path(path)


def _write_chunks(chunks: Iterable[bytes], output: Path | None) -> None:
    if output is None:
        _to_stdout(lambda: _chunks_to_stdout(chunks))
        return
    from .files import write_atomically

    with _reader_may_leave():
        write_atomically(output, chunks)


def _chunks_to_stdout(chunks: Iterable[bytes]) -> None:
    stream = sys.stdout
    stream.flush()
    buffer = getattr(stream, "buffer", None)
    if buffer is None:  # a text-only stream (an embedding program's, a test's)
        for chunk in chunks:
            stream.write(chunk.decode("utf-8"))
        stream.flush()
        return
    buffer.writelines(chunks)
    buffer.flush()


def _text_to_stdout(text: str) -> None:
    stream = sys.stdout
    try:
        stream.write(text)
    except UnicodeEncodeError:
        stream.flush()
        buffer = getattr(stream, "buffer", None)
        if buffer is None:  # a text-only stream: what it cannot encode is replaced
            stream.write(text.encode(stream.encoding or "utf-8", "replace").decode(stream.encoding or "utf-8"))
        else:
            buffer.write(text.encode("utf-8"))
    stream.flush()


def _write_output(text: str, output: Path | None) -> None:
    if output is None:
        _to_stdout(lambda: _text_to_stdout(text))
        return
    from .files import write_atomically

    with _reader_may_leave():
        write_atomically(output, text.encode("utf-8"))


# --- commands ----------------------------------------------------------------

ConfigOption = Annotated[
    Optional[Path],
    typer.Option("--config", metavar="PATH", help="Read [tool.flowmap] from this file instead of the nearest pyproject.toml."),
]
FilesArgument = Annotated[
    list[str],  # not Path: Path("") is ".", and an unset "$TRACES" would read the whole directory
    typer.Argument(metavar="FILE", help="OTLP JSON Lines trace files (.gz too), directories of them, or - for standard input."),
]


@app.command()
def check(
    files: FilesArgument,
    format: Annotated[
        Optional[OutputFormat],
        typer.Option("--format", "-f", case_sensitive=False, help="Output format [default: text, or from config]."),
    ] = None,
    output: Annotated[
        Optional[str],  # not Path: "-" is stdout, and Path("./-") would be "-" too
        typer.Option("--output", "-o", metavar="PATH", help="Write the output here instead of stdout (- is stdout)."),
    ] = None,
    fail_on: Annotated[
        Optional[FailOn],
        typer.Option("--fail-on", case_sensitive=False, help="Exit 1 on findings at or above this severity [default: high, or from config]."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Analyse trace files for lost or switched tenant context.

    Exit 0 when nothing is at or above --fail-on, 1 when something is, 2 on a usage or
    input error. Machine output goes to stdout (or --output), the summary to stderr.
    """
    import dataclasses

    from .formats import reporter_for
    from .formats.common import count_by_severity, failing, plural, total_findings
    from .formats.text import verdict

    output_path = _output_path(output)
    cfg = _load_config(config)
    threshold = (
        Severity.parse(fail_on.value) if fail_on is not None
        else cfg.fail_on if cfg.fail_on is not None else Severity.HIGH  # INFO is 0: falsy
    )
    fmt = format or cfg.format or OutputFormat.TEXT
    settings = dataclasses.replace(cfg.settings, fail_on=threshold)
    cfg = dataclasses.replace(cfg, settings=settings)

    analysis = _analyze(files, cfg, output_path)
    unicode = output_path is not None or _can_encode(sys.stdout)
    reporter = reporter_for(fmt, fail_on=threshold, unicode=unicode)
    chunks = getattr(reporter, "chunks", None)  # JSON comes in pieces: never whole in memory
    if chunks is not None:
        _write_chunks(chunks(analysis), output_path)
    else:
        _write_output(reporter.render(analysis), output_path)

    if output_path is not None:
        _err(f"{PROG}: wrote {fmt} output to {_clean_path(output)}")  # as given: "./-", not "-"
    counts = ", ".join(f"{n:,} {sev}" for sev, n in count_by_severity(analysis.findings, analysis.omitted).items() if n)
    _err(
        f"{PROG}: {plural(analysis.traces, 'trace')}, {plural(analysis.spans, 'span')}, "
        f"{plural(total_findings(analysis), 'finding')}{f' ({counts})' if counts else ''}. {verdict(analysis, threshold)}"
    )
    if failing(analysis, threshold):
        raise typer.Exit(ExitCode.FINDINGS)


@app.command()
def report(
    files: FilesArgument,
    output: Annotated[
        str,  # not Path: "-" is stdout, and Path("./-") would be "-" too
        typer.Option("--output", "-o", metavar="PATH", help="Where to write the HTML risk map (- is stdout)."),
    ] = str(DEFAULT_REPORT),
    config: ConfigOption = None,
    show_content: Annotated[
        bool,
        typer.Option("--show-content", help="Show the text of prompts, messages and tool arguments and results "
                     "(by default only their size: the page is made to be shared)."),
    ] = False,
) -> None:
    """Write the HTML risk map of trace files.

    Exit 0 whatever was found (use check to gate CI), 2 when the input is unreadable.
    """
    from .formats.common import plural, total_findings

    output_path = _output_path(output, DEFAULT_REPORT)
    if output_path is None:
        render_report = _optional("flowmap.html", "report", "render_report")
        analysis = _analyze(files, _load_config(config), None)
        _write_output(render_report(analysis, content=show_content), None)
        written: object = STDOUT_NAME
    else:
        write_report = _optional("flowmap.html", "report", "write_report")
        analysis = _analyze(files, _load_config(config), output_path)
        written = output_path
        try:
            with _reader_may_leave():
                written = write_report(analysis, output_path, content=show_content)
        except OSError as exc:
            raise FlowmapError(f"cannot write {_clean_path(output_path)}: {exc.strerror or exc}") from None
    _err(f"{PROG}: wrote the risk map of {plural(analysis.traces, 'trace')} "
         f"({plural(total_findings(analysis), 'finding')}) to {written}")  # max_findings keeps fewer


@app.command(
    context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
)
def run(
    argv: Annotated[
        Optional[list[str]],
        typer.Argument(metavar="[--] COMMAND|SCRIPT|MODULE [ARGS]", help="What to run, and its arguments."),
    ] = None,
    module: Annotated[bool, typer.Option("-m", "--module", help="Run a module, like python -m.")] = False,
    out: Annotated[
        Optional[Path],
        typer.Option("--out", metavar="PATH", envvar="FLOWMAP_FILE", help="Trace file to write [default: flowmap-traces.jsonl]."),
    ] = None,
    report: Annotated[
        Optional[Path],
        typer.Option("--report", metavar="PATH", help="Risk map to write [default: reports/risk-map.html]."),
    ] = None,
    no_report: Annotated[bool, typer.Option("--no-report", help="Do not write the risk map.")] = False,
    service_name: Annotated[
        Optional[str],
        typer.Option("--service-name", metavar="NAME", help="service.name of the traced processes [default: OTEL_SERVICE_NAME, else the script or module]."),
    ] = None,
    dev: Annotated[
        bool, typer.Option("--dev", help="Without FLOWMAP_TENANT_KEY, tag with the public development key (tags NOT secret).")
    ] = False,
) -> None:
    """Run a program under the tracer and write its trace file.

    flowmap run -- COMMAND ARGS, flowmap run script.py ARGS, flowmap run -m module ARGS.
    """
    if not argv:
        raise UsageError("nothing to run: give a COMMAND, a script.py or -m MODULE")
    run_program = _optional("flowmap.runner", "run", "run")
    if dev:
        from .tagging import DEV_MODE_ENV

        os.environ[DEV_MODE_ENV] = "1"  # inherited by the traced program (over a 0 set before)
    kwargs: dict[str, object] = {"service_name": service_name}
    if no_report:
        kwargs["report"] = None
    elif report is not None:
        kwargs["report"] = report
    code = run_program(list(argv), module=module, out=out, **kwargs)
    raise typer.Exit(int(code or 0))


@app.command()
def demo(
    fixed: Annotated[bool, typer.Option("--fixed", help="Run the platform with its leaks fixed.")] = False,
    out: Annotated[
        Optional[Path],
        typer.Option("--out", metavar="PATH", envvar="FLOWMAP_FILE", help="Trace file to write [default: flowmap-traces.jsonl]."),
    ] = None,
    report: Annotated[
        Optional[Path], typer.Option("--report", metavar="PATH", help="Risk map to write [default: reports/risk-map.html].")
    ] = None,
) -> None:
    """Run the bundled leaky agent platform and write its risk map."""
    run_demo = _optional("flowmap.demo", "demo", "run_demo")
    code = run_demo(fixed=fixed, out=out, report=report)
    raise typer.Exit(int(code or 0))


def _tenant_id_from_stdin() -> str:
    """The one tenant id on stdin (its line break dropped). A second id is an error, as on
    the command line: ``cat ids.txt | flowmap tag -`` printed the first id's tag alone,
    which read as the tag of the list. Typed at a terminal, the id ends with its line."""
    try:
        text = sys.stdin.readline() if sys.stdin.isatty() else sys.stdin.read()
    except UnicodeDecodeError:
        text = None
    if text is None:  # raised outside the except: the decode error holds the id's bytes
        raise ConfigError("the tenant id on stdin is not UTF-8 text")
    first, _, rest = text.partition("\n")
    if rest.strip():
        raise ConfigError("give exactly one TENANT_ID on stdin: it holds more than one line")
    return first.rstrip("\r")


@app.command(cls=NoEchoCommand)
def tag(
    tenant_id: Annotated[
        Optional[list[str]],
        typer.Argument(metavar="TENANT_ID", help="The tenant id, or - to read it from stdin (keeps it out of ps)."),
    ] = None,
    key_file: Annotated[
        Optional[Path],
        typer.Option("--key-file", metavar="PATH", help=f"Read the tenant key from this file instead of {'FLOWMAP_TENANT_KEY'}."),
    ] = None,
    dev: Annotated[
        bool, typer.Option("--dev", help="Without a key, use the public development key (tags are NOT secret).")
    ] = False,
) -> None:
    """Print the opaque tag of a tenant id, to find its traces.

    The key comes from --key-file or FLOWMAP_TENANT_KEY; the id is never printed.
    """
    from .context import RequestContext
    from .tagging import DEV_KEY, DEV_MODE_ENV, KEY_ENV, Tagger, key_bytes

    # Arguments are taken as a list so that no usage error ever echoes a tenant id back.
    if not tenant_id or len(tenant_id) != 1:
        raise ConfigError("give exactly one TENANT_ID (quote it if it contains spaces), or - to read it from stdin")
    raw: str | None = tenant_id[0]
    if raw == "-":
        raw = _tenant_id_from_stdin()
    if not raw:
        raise ConfigError("the tenant id is empty")
    if not raw.strip():  # (said in the CLI's words, not RequestContext's)
        raise ConfigError("the tenant id is blank: the runtime refuses it, so no span carries its tag")
    # The runtime's own checks (blanks only, no UTF-8 encoding: undecodable bytes in the
    # argument), with its one-line errors: an id the runtime could never bind has no tag.
    ctx = RequestContext(raw)

    key: str | None
    if key_file is not None:
        try:
            key = key_file.read_text(encoding="utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            key = None
        except OSError as exc:
            raise ConfigError(f"cannot read key file {key_file}: {exc.strerror or type(exc).__name__}") from None
        if key is None:  # raised outside the except: the decode error holds the key's bytes
            raise ConfigError(f"key file {key_file} is not UTF-8 text: use a random ASCII string")
        if key_bytes(key) is None:
            raise ConfigError(f"key file {key_file} is empty")
    else:
        key = os.environ.get(KEY_ENV) or None
    if key_bytes(key) is None:  # as the runtime: absent, empty or blanks only is no key
        if not (dev or os.environ.get(DEV_MODE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}):
            raise ConfigError(
                f"no tenant key configured: set {KEY_ENV} or use --key-file "
                "(--dev uses the public development key)"
            )
        key = DEV_KEY
        _err(
            f"{PROG}: WARNING: DEVELOPMENT MODE: this tag uses the public built-in key and is NOT secret; "
            f"set {KEY_ENV} for real tenants"
        )
    tagger = Tagger(key)
    _write_output(ctx.tag(tagger) + "\n", None)
    _err(f"{PROG}: key id {tagger.key_id}")


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point (``flowmap = "flowmap.cli:main"``)."""
    command = typer.main.get_command(app)
    return command.main(args=argv, prog_name=PROG)


if __name__ == "__main__":  # python -m flowmap.cli
    sys.exit(main())
