"""Writing output files whole or not at all.

Why one writer: ``flowmap check --output`` and the HTML report are files a CI step
uploads or a browser opens; a failed write (disk full, a size limit, a file where a
directory should be) must leave the previous file as it was and no partial one, and say
in one line what is in the way.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import FlowmapError, OutputClosedError
from .formats.common import clean

__all__ = ["write_atomically", "shown_path"]


def write_atomically(output: Path, data: bytes | Iterable[bytes], what: str = "") -> None:
    """Write ``data`` to ``output`` through a temporary file in the same directory,
    creating missing parent directories; the file keeps its permissions when it existed.
    A symbolic link keeps pointing where it did (its target is replaced); a device, pipe
    or socket (``/dev/null``), or a file this process has open (``/dev/stdout``,
    ``/proc/self/fd/N``), is written to as it is, never replaced.
    ``data`` may come in pieces (written as they come: a large output is never whole in
    memory). Raises :class:`FlowmapError` (``cannot write [what ]PATH: reason``), and
    :class:`OutputClosedError` when the output is a pipe whose reader went away."""
    label = f"{what} {shown_path(output)}" if what else shown_path(output)
    tmp: Path | None = None
    try:
        try:
            mode = os.stat(output).st_mode
        except (FileNotFoundError, NotADirectoryError):
            mode = None
        fd = _own_descriptor(output) if mode is not None and not stat.S_ISDIR(mode) else None
        if fd is not None:
            # one of this process's descriptors (``-o /dev/stdout > log 2>&1``): written
            # through it, at the position it shares with what else writes there
            _write_descriptor(fd, data)
            return
        if mode is not None and not stat.S_ISDIR(mode) and (not stat.S_ISREG(mode) or _is_open_stream(output)):
            # appended: a file the shell opened for a process (``> out``, ``>> log``)
            # is written at its end, where replacing it would lose what it held
            with open(output, "ab") as fh:
                _write(fh, data)
            return
        if output.is_symlink():
            output = Path(os.path.realpath(output))
        _make_parent(output, label)
        fd, name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
        tmp = Path(name)
        with os.fdopen(fd, "wb") as fh:
            _write(fh, data)
        if output.exists():
            os.chmod(tmp, stat.S_IMODE(output.stat().st_mode))
        else:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, output)
        tmp = None
    except OSError as exc:
        error = OutputClosedError if isinstance(exc, BrokenPipeError) else FlowmapError
        raise error(f"cannot write {label}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            try:
                tmp.unlink()
            except OSError:
                pass


_OPEN_STREAM = re.compile(r"/dev/(?:std(?:in|out|err)|fd/\d+)|/proc/[^/]+/fd/\d+")
_OWN_FD = re.compile(r"/dev/fd/(\d+)|/proc/(?:self|thread-self|(\d+))/fd/(\d+)")
_STD = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}
_LINKS_MAX = 40  # as the kernel's limit on links followed


def _link_chain(path: Path) -> Iterator[str]:
    """``path`` made absolute, then each path the symbolic links it leads through name,
    resolved as text (``/dev/stdout`` must be seen before the kernel turns it into
    ``/proc/self/fd/1`` and that into the file behind it)."""
    name = os.path.abspath(path)
    for _ in range(_LINKS_MAX):
        yield name
        try:
            target = os.readlink(name)
        except OSError:  # not a link (or gone)
            return
        name = os.path.normpath(os.path.join(os.path.dirname(name), target))


def _is_open_stream(path: Path) -> bool:
    """Whether ``path`` (or a link it leads through) names a file descriptor of a
    process: its file is already open, and may hold what the shell put there."""
    return any(_OPEN_STREAM.fullmatch(name) for name in _link_chain(path))


def _own_descriptor(path: Path) -> int | None:
    """The descriptor of this process that ``path`` (or a link it leads through) names,
    if it is open: ``/dev/stdout``, ``/dev/fd/N``, ``/proc/self/fd/N``."""
    for name in _link_chain(path):
        fd = _STD.get(name)
        m = _OWN_FD.fullmatch(name)
        if m is not None and (m.group(2) is None or int(m.group(2)) == os.getpid()):
            fd = int(m.group(1) or m.group(3))
        if fd is not None:
            try:
                os.fstat(fd)
            except OSError:
                return None
            return fd
    return None


def _write_descriptor(fd: int, data: bytes | Iterable[bytes]) -> None:
    for stream in (sys.stdout, sys.stderr):  # what Python buffered for it goes first
        try:
            if stream is not None and stream.fileno() == fd:
                stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    with open(fd, "wb", closefd=False) as fh:  # the descriptor's own file description
        _write(fh, data)


def _write(fh: BinaryIO, data: bytes | Iterable[bytes]) -> None:
    if isinstance(data, (bytes, bytearray, memoryview)):
        fh.write(data)
    else:
        for chunk in data:
            fh.write(chunk)


def _make_parent(output: Path, label: str) -> None:
    """Create the directory ``output`` goes in; a file in the way is named (``mkdir``
    alone says only "File exists", about a path the user did not type)."""
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        for parent in output.parents:
            if parent.exists() and not parent.is_dir():
                raise FlowmapError(f"cannot write {label}: {shown_path(parent)} is not a directory") from None
        raise


def shown_path(path: str | Path) -> str:
    """A path as an error or warning line shows it (it can hold control characters)."""
    return clean(path, 1000)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
