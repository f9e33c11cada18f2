"""Read OTLP JSON trace files into :class:`~flowmap.model.Trace` objects, one trace at a time.

Input (the contract's trace file format): OTLP JSON Lines as the Collector's file
exporter writes them (one ``TracesData`` per line), or pretty-printed OTLP JSON
documents (one per file, or several one after another as ``jq . a.jsonl`` writes them);
gzip-compressed files are recognised by their magic bytes. A trace
may be spread over many lines and files. In JSON Lines, a line that fails to decode and
begins a value the next lines continue (a pretty-printed record among them, or after a
compact first one) or holds two (``}{``) is read with those lines as documents are.

**What bounds memory.** Loading makes two passes over the input:

1. a cheap scan (a bytes regex over ``"traceId": "…"``, no JSON decoding) that records,
   for every trace id, the last line (file, line number) on which it appears. The scan
   is conservative: a trace id in a span link, or in a line that turns out to be
   broken, only makes the trace end later, never earlier. Lines whose keys or ids are
   written with ``\\u`` escapes are decoded in full instead, so nothing is missed.
2. a full decode that yields each trace as soon as its last line has been processed.

So memory holds the per-trace-id table of pass 1 (a few dozen bytes per trace) plus
the spans of the traces that are still *open*: begun on an earlier line and not yet
at their last one. For files written by an exporter, where a trace's spans are close
together, that is the largest trace plus the traces running concurrently with it,
not the whole input. A pretty-printed single document is decoded whole, so its size
bounds memory for that file; in JSON Lines, a value read on from a line that failed (a
pretty-printed record among them) is held to at most 64 MiB (_READ_ON_MAX), and a bad
line is let go once warned about (the slow path keeps no error that would hold it in a
reference cycle: the garbage collector is paused).

**Bad input** never stops the load: each bad line gives one warning line
``"{file}:{line}: {what is wrong}"`` (its first problem that lost data; any others on
the line are counted into it), file-level problems ``"{file}: …"``; the offending line
or span is skipped, and everything else is analysed. What can be repaired without
guessing is, with a warning: invalid UTF-8, unpaired ``\\u`` surrogates, strings over
the length caps; an attribute, event or link whose value cannot be represented (an
``intValue`` beyond int64) is dropped on its own, named by its key, and its span kept.
A JSON ``null`` is the field's default (proto3 JSON), silently. In a document, a
warning about a span names the span's own line, that of its ``spanId`` (where it begins
when it has none, or is no object: documents.span_lines); damage (garbage, a document cut
short) costs only the document it is in, less its complete spans (see :mod:`flowmap.documents`).
A gzip file whose compressed data is corrupt or truncated keeps what decompressed before
the error (JSON Lines or documents alike), one warning naming the line where it stops.
A UTF-8 byte order mark (at the start of the file or of a line) is dropped and UTF-16
files are re-encoded, silently. Deep nesting, numbers out of range and non-object lines
each have their own warning; as a last resort any other exception while decoding a
line becomes ``"{file}:{line}: could not read this line (ErrorType)"``.
Warnings never echo input values (a raw tenant id could be in them).
:class:`~flowmap.errors.InputError` is raised only when nothing at all could be read.

**Speed.** Lines decode straight into typed msgspec Structs (:mod:`flowmap.otlp`) with
the garbage collector paused while the loader runs (the decoded objects hold no
cycles, and collecting while millions of young objects are alive dominated the time).
The decoded span is the analyzer's span (:class:`flowmap.otlp.RawSpan`, no second
object): its attribute list stays raw JSON, is decoded per span, read for what the
analysis needs (tenant, boundary, scoped, the names' shared shape) and dropped at
once; the ``attributes`` dict is built only for spans something asks about. A line
where anything fails that fast path is decoded again by the full path; a line that
fails typed validation there goes through a lenient path that decodes it generically
and validates span by span, so one bad span costs only itself.
"""

from __future__ import annotations

import binascii
import bisect
import codecs
import contextlib
import gc
import gzip
import io
import itertools
import json
import math
import os
import re
import shutil
import stat
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from operator import attrgetter
from dataclasses import dataclass, field
from typing import Any

import msgspec

from . import otlp
from .attributes import (
    BAGGAGE_SENT, BOUNDARY, BOUNDARY_KINDS, KEY_ID, REDACTED, SCOPED, TENANT, TENANT_SOURCE, UNSCOPED,
)
from .conventions import PROXY_VALUE, infer_boundary
from .documents import (
    _BYTE_RE, _DEPTH_MAX, _GENERIC, _SURROGATE_RE, _Damage, _LineOf, _bad_utf8, _begins_value, _bracket_depth, _clip, _continues,
    Chunk, _decode_error, _fix_surrogate, _leading_newlines, _split_documents, _trailing_at, chunk_document,
    Scope, emptied_below, salvage_line, span_chunks, span_lines,
)
from .errors import InputError
from .model import SPAN_KIND_CLIENT, SPAN_KIND_SERVER, STATUS_CODE_ERROR, Trace
from .tagging import DEV_KEY, key_id_for

__all__ = ["LoadStats", "iter_traces", "decode_document", "MAX_WARNINGS", "WarningsNotShown"]

#: the file name that stands for standard input, and how warnings and origins name it
STDIN, STDIN_NAME = "-", "<stdin>"
MAX_WARNINGS = 200  # warnings kept in LoadStats and passed to on_warning; the rest are counted
_PROGRESS_STEP = 4 << 20  # report progress at most every 4 MiB
_GZIP_MAGIC = b"\x1f\x8b"
#: other compressions a trace file may come in (the Collector's file exporter writes zstd):
#: named in one warning rather than read as lines of invalid JSON
_OTHER_COMPRESSION = {
    b"\x28\xb5\x2f\xfd": "zstd",
    b"\xfd7zXZ\x00": "xz",
    b"BZh": "bzip2",
    b"PK\x03\x04": "zip",
    b"\x04\x22\x4d\x18": "lz4",
    b"\xff\x06\x00\x00sNaPpY": "snappy",
}
_BOM = b"\xef\xbb\xbf"  # UTF-8 byte order mark, written by many Windows tools
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")  # Windows PowerShell's `>` writes UTF-16

# (no leading quote: a prefix that starts with a rarer byte than '"' scans ~10 % faster;
# a key merely ending in "traceId" would only count once more, keeping its trace longer)
_TRACE_ID_RE = re.compile(rb'traceId"\s*:\s*"([0-9a-fA-F]*)"')
_SPAN_ID_RE = re.compile(rb'"spanId"\s*:\s*"([0-9a-fA-F]+)"')
# Keys or trace ids written with \u escapes, which the regex above cannot see.
_ESCAPED_RE = re.compile(rb'"[^"]*\\u[^"]*"\s*:|"traceId"\s*:\s*"[0-9a-fA-F]*\\')


def _has_escaped_ids(line: bytes) -> bool:
    """Whether a line may hide trace ids from the scan's regex (a key or a trace id
    written with ``\\u`` escapes): its ids are then found by decoding it (_trace_ids_in).
    The one-byte test first: memchr is ~20x faster than searching for two bytes."""
    return b"\\" in line and b"\\u" in line and _ESCAPED_RE.search(line) is not None


_ZERO_TRACE = "0" * 32
_DEV_KEY_ID = key_id_for(DEV_KEY)
_UPPER_RE = re.compile(rb"[A-Z]")
_ZERO_SPAN = "0" * 16
_HEX_DIGITS = "0123456789abcdef"
_HEX_BYTES = _HEX_DIGITS.encode("ascii")
_READ_BUFFER = 4 << 20
#: link targets noted at once (Trace.linked_spans); past it, not known (~150 bytes each)
_LINKED_MAX = 250_000
#: input bytes between two copies of the pending spans out of their lines (see
#: _Loader._detach_pending); the benchmark's agent traces keep ~4,000 spans pending
_DETACH_EVERY = 32 << 20
_UNKNOWN_SERVICE = "unknown_service"
_KVS = attrgetter("kvs")
_RAW = msgspec.Raw
_ESCAPE = re.compile(rb"\\").search  # a backslash in an undecoded attribute list (a buffer)
#: a single quote in one: a Python literal's key can be in its strings (masking.literal_value)
_QUOTE = re.compile(rb"'").search
#: the contract's attribute names, known to the key decoder from the start
_SEED_KEYS = (TENANT, TENANT_SOURCE, BOUNDARY, SCOPED, BAGGAGE_SENT, REDACTED, UNSCOPED)
_SPAN_ID = attrgetter("span_id")
_PARENT_ID = attrgetter("parent_span_id")
_SHAPES = otlp._SHAPES  # the shared shapes, read directly in the hot loop
_KIND_OF = {kind: kind for kind in BOUNDARY_KINDS}  # one string object per boundary kind
_FLAG_TEXT = {"true": True, "false": False}  # flowmap.scoped written as a string
_ODD_MAX = 64  # distinct odd contract values warned about (see _Loader._odd_value)
_TAGS_MAX = 100_000  # distinct tenant tags shared per load; past it, a span keeps its own
_CLOSED = -(1 << 63)  # the count of a trace already yielded (compared by identity)
_UNCOUNTED = -(1 << 62)  # added to a count: it stays negative ("not known") whatever else is added
_ABSENT = -(1 << 61)  # the count of an id that only links pointed at, once past its last mention


class WarningsNotShown(str):
    """The line passed to ``on_warning`` in place of the warnings past :data:`MAX_WARNINGS`:
    a warning's text, and in ``hidden`` how many it stands for, so a caller that counts the
    lines it got can still give the true total."""

    hidden: int

    def __new__(cls, hidden: int) -> "WarningsNotShown":
        line = super().__new__(cls, f"{hidden} more warning(s) not shown")
        line.hidden = hidden
        return line


@dataclass
class LoadStats:
    """What a load read and skipped; filled in while :func:`iter_traces` runs."""

    files: list[str] = field(default_factory=list)  # files that could be opened and read
    lines: int = 0  # non-blank lines (a pretty-printed document counts as one)
    spans: int = 0  # spans loaded
    traces: int = 0  # traces yielded
    skipped: int = 0  # lines and spans skipped as unreadable
    warnings: list[str] = field(default_factory=list)  # the first MAX_WARNINGS warnings
    warning_count: int = 0  # all warnings, including those not kept
    _done: Callable[[str], bool] | None = field(default=None, repr=False, compare=False)

    def trace_done(self, trace_id: str) -> bool:
        """Whether no span of ``trace_id`` can come any more in this load (it was
        yielded, or the input went past the last place the id appeared: a trace only
        linked to, missing from the input). False when not known."""
        return self._done is not None and self._done(trace_id)


def iter_traces(
    paths: Sequence[str | os.PathLike[str]],
    *,
    on_warning: Callable[[str], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    stats: LoadStats | None = None,
) -> Iterator[Trace]:
    """Yield every trace in ``paths``, each once, as soon as all its spans are read.

    Span ids are lowercase hex and the derived fields (tenant, boundary, scoped, key_id,
    service, origin) are filled in. Warnings go to ``on_warning`` (the first
    :data:`MAX_WARNINGS`, then one :class:`WarningsNotShown` line with the number left out)
    and to ``stats``.
    ``on_progress(bytes_done, bytes_total)`` follows the decoding pass over the
    (compressed) input bytes. Raises :class:`InputError` when no span could be read.
    A path ``-`` is standard input, named ``<stdin>`` in warnings and origins (copied to
    a private temporary file first, removed at the end: the input is read twice).
    """
    loader = _Loader(paths, on_warning, on_progress, stats if stats is not None else LoadStats())
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for trace in loader.run():
            if was_enabled:
                gc.enable()
            try:
                yield trace
            finally:
                if was_enabled:
                    gc.disable()
    finally:
        loader.close()
        loader.stats._done = None  # the stats outlive the load; its index of ids must not
        if was_enabled:
            gc.enable()


def decode_document(
    data: bytes | str,
    *,
    origin: str = "<memory>",
    on_warning: Callable[[str], None] | None = None,
) -> list[Trace]:
    """Decode one in-memory OTLP JSON ``TracesData`` document into traces.

    For spans that never touched a file (the pytest plugin encodes captured SDK spans
    with :func:`flowmap.exporter.encode_spans`): the same decoding, derived fields and
    warnings as :func:`iter_traces`; ``origin`` stands in for ``file:line``. Unlike
    ``iter_traces`` it does not raise when the document holds no span.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    loader = _Loader([], on_warning, None, LoadStats())
    try:
        loader._decode_unit(data, origin, None)
    except Exception as exc:  # noqa: BLE001 - last resort, as for a line of a file
        loader._skip(origin, f"could not read this document ({type(exc).__name__})")
    loader._flush()
    return list(loader._closed(list(loader.pending)))


@dataclass
class _File:
    path: str  # what is opened
    index: int
    size: int
    gzipped: bool
    name: str  # as given, used in warnings and origins ("<stdin>" for "-")
    document: bool = False  # one (pretty-printed) JSON document rather than JSON Lines
    ok: bool = True
    read_error: bool = False  # a read error was warned about (once, though both passes meet it)
    too_long: bool = False  # a compressed line past _GZ_LINE_MAX was warned about (once)
    #: why the file's data stops short (a read error, corrupt or truncated gzip), once met:
    #: said once, where it stops, by the reading of its lines or documents (pass 2), with
    #: what the damage there cost when it cut a document short
    cut: str | None = None
    #: documents one after another (``jq . a.jsonl``), or with damage: see documents._split_documents;
    #: None for a single valid document
    parts: list[tuple[int, int, bytes] | _Damage] | None = None
    #: a single large document read in this many chunks of spans (documents.span_chunks), 0: whole
    chunks: int = 0
    #: the line a .gz's damage cut, read apart from the others (_Loader._cut_tail), 0: none
    cut_line: int = 0


class _Continued(Exception):
    """Raised for a line of JSON Lines that is not JSON on its own but may begin a value
    the lines after it continue (see _Loader._read_on); ``error``: why it did not decode;
    ``data``: the line as decoded (after the repairs, which the error's offsets are in)."""

    def __init__(self, error: Exception, data: bytes) -> None:
        super().__init__()
        self.error = error
        self.data = data


class _Loader:
    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        on_warning: Callable[[str], None] | None,
        on_progress: Callable[[int, int], None] | None,
        stats: LoadStats,
    ) -> None:
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.paths = list(paths)
        self.on_warning = on_warning
        self.on_progress = on_progress
        self.stats = stats
        self.pending: dict[str, dict[str, otlp.Span]] = {}
        #: position (file index, line) -> the ids of the traces whose last span is there
        #: (ASCII bytes, as the scan found them; see _index)
        self.closing: dict[tuple[int, ...], list[bytes]] = {}  # (a line, or a chunk of a huge one: _scan)
        self._seen_ids: set[str] = set()  # ids the scan missed, started already (late fragments)
        #: trace ids whose pending dict, and ids the scan missed that _seen_ids gained,
        #: since the line being read began (what _undo takes back)
        self._line_new: list[str] = []
        self._line_seen: list[str] = []
        #: contract attributes written otherwise (see _odd_value) warned about so far, and
        #: those the line being read added (what _undo takes back)
        self._odd: dict[str, None] = {}
        self._line_odd: list[str] = []
        #: tenant tag -> the one string object the spans share: the decoded one is freed
        #: with its attribute list, and the analysis compares and hashes tags already hashed
        self._tags: dict[str, str] = {}
        #: the fast path's attribute-list decoder, learning this load's keys (see KeyDecoder)
        self._keys = otlp.KeyDecoder(_SEED_KEYS)
        #: the count of map values decoded (otlp.maps_decoded) and what it was when the
        #: line (or document) being read began; spans are looked at for map values when
        #: it moved (see _add_spans), every span when it does not count
        self._maps = otlp.maps_decoded()
        self._maps_at = 0
        self._maps_always = not otlp.maps_counted()
        #: whether the line (or document) being read has a \ escape or a ': only then can a
        #: string value be JSON text (or a Python literal) with a key (see _decode_unit)
        self._texts = True
        self._quotes = True  # whether it has a ' (a Python literal's quote)
        self._held: list[Any] | None = None  # [where, what, more]: the current line's warning
        #: trace id -> how many times the scan saw it as a "traceId" (spans' and links'),
        #: negative when some were seen only by the full decode of an escaped line,
        #: _CLOSED once the trace was yielded
        self.counts: dict[bytes, int] = {}  # keyed by _key(trace id)
        #: trace id -> ids of its spans marked as a service-mesh proxy's (Trace.transparent)
        self._proxies: dict[str, list[str]] = {}
        #: trace id -> the ids of its spans that links read so far point to, until it is
        #: yielded (Trace.linked_spans); all unknown once too many were noted at once
        self._linked: dict[str, set[str]] = {}
        self._linked_size = 0
        self._linked_known = True
        self._dev_key_at: str | None = None  # where spans tagged under the development key were first read
        #: standard input was given ("-"); the copies of it and of pipes, removed by close()
        self._stdin_given = False
        self._spooled: list[str] = []
        #: a file of JSON Lines is being read: a line that begins a value the next lines
        #: continue is handed back to it (_Continued), not skipped
        self._reading_lines = False
        #: the chunk being decoded (documents.span_chunks): where its spans are in the document
        self._chunk: Chunk | None = None
        stats._done = self._done

    # -- warnings ---------------------------------------------------------------

    def warn(self, message: str) -> None:
        """A warning about a whole file (or about a line, already complete)."""
        if self._held is not None:
            self._flush()
        stats = self.stats
        stats.warning_count += 1
        if stats.warning_count <= MAX_WARNINGS:
            stats.warnings.append(message)
            if self.on_warning is not None:
                self.on_warning(message)

    def _warned(self) -> int:
        """Warnings given so far, the one held for the current line included."""
        return self.stats.warning_count + (self._held is not None)

    def warn_at(self, where: str, what: str) -> None:
        """A warning about a line (``where`` is ``file:line``): one warning line per line.

        The first problem that lost data (something skipped or dropped) is the warning,
        else the first repair; the others on the same line are counted into it, so a
        line of 500 broken spans is one line of output.
        """
        held = self._held
        if held is not None:
            if held[0] == where:
                held[2] += 1
                if not _loses_data(held[1]) and _loses_data(what):
                    held[1] = what
                return
            self._flush()
        self._held = [where, what, 0]

    def _flush(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            where, what, more = held
            extra = f" (and {more} more problem{'s' if more > 1 else ''} on this line)" if more else ""
            self.warn(f"{where}: {what}{extra}")

    # -- driver -----------------------------------------------------------------

    def run(self) -> Iterator[Trace]:
        files = self._open_files()
        raw_last: dict[bytes, tuple[int, int]] = {}
        raw_counts: Counter[bytes] = Counter()
        for f in files:
            self._scan(f, raw_last, raw_counts)
        self._index(raw_last, raw_counts)
        del raw_last, raw_counts
        total = sum(f.size for f in files if f.ok)
        done = 0
        stats = self.stats
        for f in files:
            if not f.ok:
                continue
            spans, warned = stats.spans + stats.skipped, self._warned()
            yield from self._decode_file(f, done, total)
            done += f.size
            if stats.spans + stats.skipped == spans and self._warned() == warned and not f.read_error:
                # valid JSON without a span (another signal's file, a config file in a
                # directory of traces): said once, so that it is not taken for traces
                self.warn(f"{f.name}: no spans in this file (not OTLP trace data?)")
            if self.on_progress is not None:
                self.on_progress(done, total)
        # Traces the scan did not place (ids it could not see): complete now.
        yield from self._closed(list(self.pending))
        self._flush()
        if self._dev_key_at is not None:  # said once, at the end: loud, not in the hot loop
            self.warn(
                f"{self._dev_key_at}: spans tagged under flowmap's public development key (key id "
                f"{_DEV_KEY_ID}): their tags are not secret; set FLOWMAP_TENANT_KEY where they are made"
            )
        hidden = self.stats.warning_count - MAX_WARNINGS
        if hidden > 0 and self.on_warning is not None:
            self.on_warning(WarningsNotShown(hidden))
        if self.stats.spans == 0:
            n = len(self.paths)
            raise InputError(f"no spans could be read from {n} input file(s){problems(self.stats.warnings, self.stats.warning_count)}")

    def _index(self, raw_last: dict[bytes, tuple[int, int]], raw_counts: Counter[bytes]) -> None:
        """From what the scan found (raw id -> last position, -> count): ``counts`` by
        trace id, and the ids that end at each position (``closing``).

        The index grows with the number of distinct trace ids (on an input of many small
        traces it is the loader's largest structure), so it keeps the ids as the scan
        found them, ASCII bytes, and the scan's count table itself when no id is written
        in upper case (every SDK writes lower case): no second copy of every id, and no
        second table, is ever made. Otherwise the spellings of one id are merged: its
        last position, and the sum of its counts. Trace ids are looked up with
        :func:`_key`."""
        closing = self.closing
        if not _any_upper(raw_last):
            self.counts = raw_counts  # (every id the scan noted is counted there too)
            for raw, pos in raw_last.items():
                closing.setdefault(pos, []).append(raw)
            return
        counts = self.counts
        last: dict[bytes, tuple[int, int]] = {}
        for raw, pos in raw_last.items():
            key = raw.lower()
            n = raw_counts.get(raw, _UNCOUNTED)  # negative: not known (stays so when summed)
            if key not in last:
                last[key] = pos
                counts[key] = n
            else:
                if last[key] < pos:
                    last[key] = pos
                counts[key] += n
        for key, pos in last.items():
            closing.setdefault(pos, []).append(key)

    def _close(self, tid: str) -> Trace | None:
        """The pending trace ``tid``, complete (None when it has no spans)."""
        spans = self.pending.pop(tid, None)
        counts, key = self.counts, _key(tid)
        if not spans:
            if counts.get(key, _CLOSED) >= 0:  # an id seen only in links: none to come
                counts[key] = _ABSENT
            if self._linked:
                self._forget_linked(tid)
            return None
        self.stats.traces += 1
        links_in = self._links_in(key, len(spans))
        if key in counts:
            # closed, marked in place: a set of closed ids would keep a string per
            # trace alive among the short-lived span objects (see analysis._links)
            counts[key] = _CLOSED
        proxies = self._proxies.pop(tid, ()) if self._proxies else ()
        linked: frozenset[str] | None = None
        if self._linked_known:
            # every link into the trace was read by now: it ends at its last mention,
            # links included, also where the scan could not count the mentions (escaped
            # ids: their lines are decoded to find them, so the position is still known)
            ids = self._forget_linked(tid) if self._linked else None
            linked = frozenset(ids) if ids else frozenset()
        return Trace(tid, spans, links_in != 0, links_in, proxies, linked)

    def _forget_linked(self, tid: str) -> set[str] | None:
        ids = self._linked.pop(tid, None)
        if ids is not None:
            self._linked_size -= len(ids)
        return ids

    def _done(self, tid: str) -> bool:
        n = self.counts.get(_key(tid))
        return n is _CLOSED or n is _ABSENT

    def _closed(self, tids: Iterable[str]) -> Iterator[Trace]:
        for tid in tids:
            trace = self._close(tid)
            if trace is not None:
                yield trace

    def _links_in(self, key: bytes, spans: int) -> int:
        """How many links point into a trace (its :func:`_key`) of ``spans`` spans
        (Trace.links_in), -1 when not known: every "traceId" the scan saw with its id that
        did not belong to one of its spans was in a link (or in a line that turned out
        broken): an upper bound."""
        n = self.counts.get(key)
        return n - spans if n is not None and n >= spans else -1

    def _linking_first(self, ending: list[str]) -> list[str]:
        """Traces ending on one line, those no link points into first: a trace that links
        to another closing on the same line is then judged before its target, so the
        target need not be remembered for links still to come (see Trace.links_in)."""
        pending = self.pending
        return sorted(ending, key=lambda tid: self._links_in(_key(tid), len(pending.get(tid, ()))) != 0)

    # -- files ------------------------------------------------------------------

    def _open_files(self) -> list[_File]:
        files: list[_File] = []
        seen: set[str] = set()
        for raw in self.paths:
            path = os.fspath(raw)
            if isinstance(path, bytes):
                path = os.fsdecode(path)
            opened = path
            if path == STDIN:
                if self._stdin_given:
                    self.warn(f"{STDIN_NAME}: given more than once; read once")
                    continue
                self._stdin_given = True
                path = STDIN_NAME
                opened = self._spool_stdin()  # (removed by close())
                if opened is None:
                    continue
            try:
                real = os.path.realpath(opened)
                if real in seen:
                    self.warn(f"{path}: given more than once; read once")
                    continue
                mode = os.stat(opened).st_mode  # before open: opening a FIFO would block
                if stat.S_ISDIR(mode):
                    self.warn(f"{path}: is a directory, not a trace file")
                    continue
                if stat.S_ISFIFO(mode):  # a pipe (<(zcat x.gz), /dev/stdin piped): read it once, into a copy
                    opened = self._spool(path, opened)
                    if opened is None:
                        continue
                    real, mode = os.path.realpath(opened), os.stat(opened).st_mode
                if not stat.S_ISREG(mode):
                    # a device may never end; a socket is no file
                    self.warn(f"{path}: not a regular file (socket or device); skipped")
                    continue
                with open(opened, "rb") as fh:
                    head = fh.read(10)
                    size = os.fstat(fh.fileno()).st_size
            except FileNotFoundError:
                self.warn(f"{path}: no such file")
                continue
            except OSError as exc:
                self.warn(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})")
                continue
            except ValueError:  # e.g. a NUL character in the path
                self.warn(f"{path!r}: not a valid file name")
                continue
            seen.add(real)
            if size == 0:
                self.warn(f"{path}: empty file")
                continue
            other = next((name for magic, name in _OTHER_COMPRESSION.items() if head.startswith(magic)), None)
            if other is not None:
                self.warn(f"{path}: compressed with {other}, which is not read (gzip is): decompress it first; skipped")
                continue
            files.append(_File(opened, len(files), size, head.startswith(_GZIP_MAGIC), path))
            self.stats.files.append(path)
        return files

    def _spool_stdin(self) -> str | None:
        """Standard input copied to a private temporary file: the loader reads its input
        twice (where traces end, then the spans), which a pipe cannot give."""
        if sys.stdin is None or getattr(sys.stdin, "buffer", None) is None:
            self.warn(f"{STDIN_NAME}: cannot be read (standard input is closed)")
            return None
        return self._spool(STDIN_NAME, None)

    def _spool(self, name: str, path: str | None) -> str | None:
        """The pipe at ``path`` (standard input if None) copied to a private temporary
        file, removed by :meth:`close`; None (with a warning) when it cannot be read."""
        try:
            with tempfile.NamedTemporaryFile(prefix="flowmap-pipe-", delete=False) as out:
                self._spooled.append(out.name)  # removed by close() even if the copy fails
                if path is None:
                    shutil.copyfileobj(sys.stdin.buffer, out, _READ_BUFFER)
                else:
                    with open(path, "rb") as pipe:
                        shutil.copyfileobj(pipe, out, _READ_BUFFER)
            return out.name
        except Exception as exc:  # noqa: BLE001 - no stdin, closed, unreadable, disk full
            self.warn(f"{name}: cannot be read ({type(exc).__name__})")
            return None

    def close(self) -> None:
        """Remove the copies of standard input and pipes, if any were made."""
        while self._spooled:
            with contextlib.suppress(OSError):
                os.unlink(self._spooled.pop())

    def _lines(self, f: _File, peek: bool = False) -> Iterator[tuple[int, bytes, int]]:
        """(line number, line, input bytes consumed so far); stops with a warning on read errors.

        A UTF-8 byte order mark at the start of the file is dropped; a file that starts
        with a UTF-16 one is read as UTF-16 (re-encoded line by line). Any exception while
        reading (I/O, corrupt or truncated gzip, a line too long for memory) ends the
        file with one warning naming the line (``f.cut`` says what stopped it); what was
        read before is kept. A ``peek`` (pass 1) gives no warning: the file's reading
        proper (pass 2) says what is wrong, where it knows what the error cut short.
        """
        lineno = 0
        try:
            # a 4 MiB buffer: exporters write lines of hundreds of KiB, which the default
            # 8 KiB buffer reads in many pieces and joins (pass 1 read 2-3x faster); with
            # 1 MiB, a line of 400 KiB still crossed the buffer's end ~40 % of the time
            # (reading 779 MB of such lines: 0.15 s with 1 MiB, 0.12 s with 4 MiB)
            with open(f.path, "rb", buffering=_READ_BUFFER) as raw:
                if f.gzipped:
                    with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                        until = _UntilError(gz)
                        pos = 0
                        lines = _file_lines(io.BufferedReader(until), _GZ_LINE_MAX)
                        for lineno, line in enumerate(lines, 1):  # noqa: B007
                            if not line:  # a line past _GZ_LINE_MAX once decompressed
                                if not f.too_long:
                                    f.too_long = True
                                    self.warn_at(f"{f.name}:{lineno}", f"line longer than {_GZ_LINE_MAX >> 20} MiB "
                                                 "once decompressed; skipped (also any other such line)")
                                line = b"\n"
                            if not lineno & 1023:  # (a seek per line cost more than the line)
                                pos = raw.tell()
                            if until.error is not None and not line.endswith(b"\n") and not peek:
                                # the line the damage cut: its complete spans kept, one warning
                                self._cut_tail(f, lineno, line, _compressed_error(until.error))
                                return
                            yield lineno, line, pos
                        if until.error is not None:
                            raise until.error
                else:
                    pos = 0
                    for lineno, line in enumerate(_file_lines(raw), 1):  # noqa: B007
                        pos += len(line)
                        yield lineno, line, pos
        except Exception as exc:  # noqa: BLE001 - whatever the stream raises ends this file only
            f.cut = _compressed_error(exc) if f.gzipped else f"read error ({type(exc).__name__})"
            if not f.read_error and not peek:
                f.read_error = True
                self.warn_at(f"{f.name}:{lineno + 1}", f"{f.cut}; rest of file skipped")

    def _cut_tail(self, f: _File, lineno: int, line: bytes, cut: str) -> None:
        """The last line of a .gz whose compressed data stops in it (a writer killed
        mid-batch): its complete spans kept, as a cut line's of plain JSON Lines, with
        one warning that says what stopped the file. Without this the line was lost:
        the gzip reader raised before handing over the part it had decompressed."""
        f.cut, f.read_error, f.cut_line = cut, True, lineno
        origin = f"{f.name}:{lineno}"
        counted = not line.isspace()  # (counted as a line of plain JSON Lines is)
        self.stats.lines += counted
        data = line
        try:
            try:
                msgspec.json.decode(line)
            except RecursionError:  # the decoder stopped before the cut: emptied, as pass 2 does (_repair)
                data = emptied_below(line, _DEPTH_MAX) or line
                msgspec.json.decode(data)
        except (msgspec.ValidationError, RecursionError):  # JSON: read whole, as below
            pass
        except msgspec.DecodeError as exc:
            if data is not line:  # (said in the one warning for the line, as its other problems)
                self.warn_at(origin, _REPAIR_WARNINGS["deep"])
            if not self._salvaged(data, exc, origin, cut):
                self.stats.skipped += counted
                self.warn_at(origin, f"{cut}; rest of file skipped")
            return
        # cut just before its newline: a whole line (any problem in it is its own warning)
        self._decode_unit(line, origin, None)
        self.warn_at(f"{f.name}:{lineno + 1}", f"{cut}; rest of file skipped")

    def _read_all(self, f: _File) -> bytes | None:
        """The whole file (decompressed), for a document; a gzip file whose compressed
        data is corrupt or truncated gives what decompressed before the error (as its
        lines would), ``f.cut`` saying why it stops short."""
        try:
            with open(f.path, "rb") as raw:
                if f.gzipped:
                    data = _decompressed(raw, f)
                else:
                    data = raw.read()
        except Exception as exc:  # noqa: BLE001 - as in _lines
            if not f.read_error:
                f.read_error = True
                self.warn(f"{f.name}: cannot be read in full ({type(exc).__name__})")
            return None
        if data.startswith(_UTF16_BOMS):
            return data.decode("utf-16", "replace").encode("utf-8")
        return data[len(_BOM) :] if data.startswith(_BOM) else data

    # -- pass 1: where does each trace end? ------------------------------------

    def _scan(self, f: _File, last: dict[bytes, tuple[int, int]], counts: Counter[bytes]) -> None:
        """Pass 1: where each trace id is last mentioned (``last``) and how often
        (``counts``), by its spans and by span links into it alike: a regex at the speed
        of ``bytes.count``. Telling links apart (a skimming decode of every line that has
        any) doubled this pass, so a trace is complete at the last line that mentions it,
        which keeps a trace that a link far on points into until that link."""
        first = True
        index = f.index
        update = last.update
        count = counts.update
        fromkeys = dict.fromkeys
        findall = _TRACE_ID_RE.findall
        lineno = 0
        for lineno, line, _ in self._lines(f, peek=True):
            if line.isspace():
                continue
            if first:
                first = False
                if not _is_json(line) and self._detect_document(f, line, last, counts):
                    return
            pos = (index, lineno)
            if len(line) > _CHUNKED_OVER and _scan_chunks(line, pos, last, counts):
                continue  # (a huge line read a chunk at a time: each id closes after its last chunk)
            found = findall(line)
            update(fromkeys(found, pos))  # raw bytes keys: normalised once, later
            count(found)
            if _has_escaped_ids(line):
                hidden = _trace_ids_in(line)
                update(fromkeys(hidden, pos))
                counts.update(dict.fromkeys(hidden, _UNCOUNTED))
        if first:  # nothing but blank lines (or an empty .gz, or an error before any line)
            f.ok = False
            if f.cut is not None:  # (not read in pass 2: said here)
                f.read_error = True
                self.warn_at(f"{f.name}:{lineno + 1}", f"{f.cut}; rest of file skipped")
            elif not f.too_long:
                self.warn(f"{f.name}: no data (empty after decompression, or only blank lines)")

    def _detect_document(
        self, f: _File, first_line: bytes, last: dict[bytes, tuple[int, int]], counts: Counter[bytes]
    ) -> bool:
        """Called when the first line is not JSON on its own: is the file one document?

        JSON Lines whose first line is broken are told apart by their other lines: one
        of the next few is a ``TracesData`` object on its own, which no line of a
        pretty-printed document is. So a broken first line never costs the file.
        """
        head = first_line.strip()
        if not head.startswith((b"{", b"[")):
            return False  # JSON Lines with a broken first line: warned about in pass 2
        records = self._json_lines_ahead(f)
        data = None
        if head == b"[" and records < 2:
            # an array of TracesData, one element a line: only its last line is one on its
            # own (the others end with a comma), so two such lines are JSON Lines after a
            # bad first line, never read whole
            data = self._read_all(f)
            if data is not None and _syntax_error(data) is not None:
                data = None  # not one: judged as below
        if data is None and records:
            return False
        if data is None:
            data = self._read_all(f)
        if data is None:
            f.ok = False
            return True
        # a large single document's chunks (its skim proves it is valid JSON)
        chunks = _chunks_of(data) if f.cut is None else None
        exc = _syntax_error(data) if chunks is None else None
        pretty = head in (b"{", b"[") or len(head) < 20
        if exc is not None and (pretty or _trailing_at(exc) is not None):
            # documents one after another, or one followed by garbage, or broken: each
            # complete one is read, and the complete spans before the damage
            f.parts = _split_documents(data)
            if any(not isinstance(unit, _Damage) for unit in f.parts):
                exc = None
        if exc is not None:
            if pretty:
                # Pretty-printed, and broken: one warning for the file, not one per line
                # (where decompression stopped, the cut's)
                line = _error_line(data, exc)
                what = f"invalid JSON document ({_decode_error(exc)})"
                if f.cut is not None and line == data.count(b"\n") + 1:
                    what, f.read_error = f.cut, True
                self.warn_at(f"{f.name}:{line}", f"{what}; file skipped")
                self.stats.skipped += 1
                f.ok = False
                return True
            return False
        f.document = True
        # each id's position: the number of the last part (document or damage, or chunk of
        # a single large document) that mentions it, so that a trace closes after its last
        # one (see _decode_document), not every trace of the file at its end
        if chunks is not None:
            f.chunks = len(chunks)
            escaped = b"\\u" in data
            for c, chunk in enumerate(chunks, 1):
                _note_chunk(chunk, (f.index, c), last, counts, escaped)
            return True
        units = f.parts or [(0, len(data), b"")]
        found: list[bytes] = []
        if len(units) == 1:
            found = _TRACE_ID_RE.findall(data)
            last.update(dict.fromkeys(found, (f.index, 1)))
        else:
            ends = [unit.resume if isinstance(unit, _Damage) else unit[1] for unit in units]
            for m in _TRACE_ID_RE.finditer(data):
                tid = m.group(1)
                found.append(tid)
                last[tid] = (f.index, min(bisect.bisect_right(ends, m.start()), len(units) - 1) + 1)
        counts.update(found)
        if b"\\u" in data:
            for k, unit in enumerate(units, 1):
                if isinstance(unit, _Damage):
                    continue
                start, end, closing = unit
                hidden = _trace_ids_in(data[start:end] + closing)
                last.update(dict.fromkeys(hidden, (f.index, k)))
                counts.update(dict.fromkeys(hidden, _UNCOUNTED))
        return True

    def _json_lines_ahead(self, f: _File) -> int:
        """How many of lines 2-20 are TracesData objects on their own (JSON Lines), up to 2."""
        found = 0
        for lineno, line, _ in self._lines(f, peek=True):
            if lineno > 20:
                break
            if lineno > 1 and b"resourceSpans" in line:
                try:
                    obj = _GENERIC.decode(line)
                except RecursionError:  # one too deep is one too, read as pass 2 reads it (emptied)
                    obj, _ = _decode_repaired(line, deep=True)
                except Exception:  # noqa: BLE001 - not such a line, whatever is wrong with it
                    continue
                if isinstance(obj, dict) and "resourceSpans" in obj:
                    found += 1
                    if found == 2:
                        break
        return found

    # -- pass 2: decode ---------------------------------------------------------

    def _decode_file(self, f: _File, done: int, total: int) -> Iterator[Trace]:
        if f.document:
            yield from self._decode_document(f, done, total)
            return
        closing = self.closing
        progress = self.on_progress
        next_report = _PROGRESS_STEP
        next_detach = _DETACH_EVERY
        stats = self.stats
        index = f.index
        path = f.name
        lines = self._lines(f)
        rest: Iterator[tuple[int, bytes, int]] | None = lines
        self._reading_lines = True
        try:
            while rest is not None:  # (again only after a line was read past: see _read_on)
                it, rest = rest, None
                for lineno, line, consumed in it:
                    if line.isspace():
                        continue
                    stats.lines += 1
                    try:
                        chunks = _chunks_of(line) if len(line) > _CHUNKED_OVER else None
                        if chunks is None:
                            self._decode_unit(line, f"{path}:{lineno}", None)
                        else:  # (as pass 1 saw it: see _scan)
                            origin = f"{path}:{lineno}"
                            for c, chunk in enumerate(chunks, 1):
                                # (origin_of: a chunk is no line that the next lines continue)
                                self._decode_chunk(chunk, origin, lambda *_, o=origin: itertools.repeat(o))
                                yield from self._closing_at((index, lineno, c))
                            del chunks
                    except _Continued as continued:
                        last, after = self._read_on(f, lineno, line, lines, continued)
                        yield from self._closing_at(*((index, n) for n in range(lineno, last + 1)))
                        if after is not None:  # the line that ended it, read as a line
                            rest = itertools.chain((after,), lines)
                            break
                        continue
                    except Exception as exc:  # noqa: BLE001 - last resort: one line never stops the others
                        self._skip(f"{path}:{lineno}", f"could not read this line ({type(exc).__name__})")
                    if (index, lineno) in closing:
                        yield from self._closing_at((index, lineno))
                    if consumed >= next_detach:
                        next_detach = consumed + _DETACH_EVERY
                        self._detach_pending()
                    if progress is not None and consumed >= next_report:
                        next_report = consumed + _PROGRESS_STEP
                        progress(done + consumed, total)
        finally:
            self._reading_lines = False
        if f.cut_line:  # a .gz cut inside its last line, which _cut_tail read: its traces too
            yield from self._closing_at((index, f.cut_line))

    def _read_on(
        self, f: _File, first: int, line: bytes, lines: Iterator[tuple[int, bytes, int]], continued: _Continued
    ) -> tuple[int, tuple[int, bytes, int] | None]:
        """A line of JSON Lines that begins a value the lines after it continue (a
        pretty-printed document among the lines, one after a compact first document),
        or that holds more than one (``}{``): read with the lines after it, up to the one
        where its brackets close or to the next line that starts with ``{`` (where a
        document or a JSON line begins, as in a stream of documents; but an array's
        element written with ``indent=0``: see documents._begins_value), as documents are
        (:mod:`flowmap.documents`). A JSON line cut short, the next line a line of its
        own, is skipped as before; one that never closes is read on no further than
        _READ_ON_MAX (its lines are damage, and the lines after them are read as lines
        again). Reached only once a line failed to decode: JSON Lines pay nothing for it. Returns the last line read as part of it, and the line after
        it when that was read too (to be read as a line)."""
        path, last = f.name, first
        block = bytearray(line)  # (not a list of lines: a million short ones cost 50 bytes each more)
        depth = _bracket_depth(line)
        more = to_end = False  # whether lines after it continue it; whether it runs to the end
        after = None
        before = line  # the last line that is not blank
        while depth > 0 and len(block) <= _READ_ON_MAX:
            after = next(lines, None)
            if after is None:
                to_end = True
                break
            lineno, text, _ = after
            if text.startswith(b"{") and _begins_value(before, text):
                break
            block += text
            last, after = lineno, None
            if not text.isspace():
                more = True
                depth += _bracket_depth(text)
                before = text
        origin = f"{path}:{first}"
        error = continued.error
        if not more and _decode_error(error) == "truncated":
            # (its repaired copy: a value nested too deep emptied, the spans after it are found)
            if not self._salvaged(continued.data, error, origin):
                self._unreadable(origin, error)
            return last, after
        held = self._held
        if held is not None and held[0] == origin:
            self._held = None  # (its repairs are made and said again, as its documents')
        cut = None
        if to_end and held is not None and held[0] == f"{path}:{last + 1}" and f.cut is not None:
            self._held, cut = None, f.cut  # the lines stopped at an error: said with what it cut
        self.stats.lines -= 1  # (its documents count instead)
        data = bytes(block)
        del block
        for _ in self._read_documents(data, _split_documents(data), path, first, to_end, cut):
            pass  # (its traces close with the lines they end on: see _decode_file)
        return last, after

    def _closing_at(self, *positions: tuple[int, ...]) -> Iterator[Trace]:
        """The traces whose last mention is at one of ``positions`` (a line, lines read as
        one by _read_on, a chunk of a huge line, a part of a file of documents), those no
        link points into first (_linking_first)."""
        closing = self.closing
        ending = _trace_ids([key for pos in positions for key in closing.pop(pos, ())])
        yield from self._closed(self._linking_first(ending) if len(ending) > 1 else ending)

    def _detach_pending(self) -> None:
        """Copy the pending spans' undecoded attributes out of the lines they were read
        from (a span copied before is not copied again). Why: a span's attributes are a
        view into its line, so one span of a trace that stays open for long (a session,
        a job, a trace a far link points into) would keep its whole line, megabytes of
        other traces, in memory: a trace spanning a file kept the whole file. Done every
        _DETACH_EVERY bytes of input, so lines read since are pinned at most."""
        for trace in self.pending.values():
            for span in trace.values():
                otlp.detach(span)

    def _decode_document(self, f: _File, done: int = 0, total: int = 0) -> Iterator[Trace]:
        """The traces of a file of documents, each once the part that mentions it last is
        read: holding every span of a stream of documents (``jq .`` of JSON Lines) to its
        end took ~5 KB a span (each span pins its document's copy)."""
        data = self._read_all(f)
        if data is None:
            return
        chunks = _chunks_of(data) if f.chunks else None
        if chunks is not None and len(chunks) == f.chunks:  # (else changed since pass 1: read whole)
            parts: Iterator[int] = self._read_chunks(data, chunks, f.name)
        else:
            parts = self._read_documents(data, f.parts, f.name, cut=f.cut)
        progress = self.on_progress
        count = f.chunks or (len(f.parts) if f.parts else 1)
        next_report = _PROGRESS_STEP
        for k in parts:
            yield from self._closing_at((f.index, k))
            read = f.size * k // count  # (about: gigabytes take minutes)
            if progress is not None and read >= next_report:
                progress(done + read, total)
                next_report = read + _PROGRESS_STEP
        if f.cut is not None:
            f.read_error = True  # (said by _read_documents)

    def _read_chunks(self, data: bytes, chunks: list[Chunk], path: str) -> Iterator[int]:
        """Decode a single document chunk after chunk (documents.span_chunks), giving each
        chunk's number (from 1) once its spans are pending: what _read_documents does for
        a document, a part at a time."""
        begins = 1 + _leading_newlines(data, 0, len(data))
        origin = f"{path}:{begins}"
        origin_of = _span_origins(path, data, 1, origin)
        self.stats.lines += 1
        for c, chunk in enumerate(chunks, 1):
            try:
                self._decode_chunk(chunk, origin, origin_of)
            except Exception as exc:  # noqa: BLE001 - last resort, as for a line
                self._skip(origin, f"could not read this document ({type(exc).__name__})")
            yield c

    def _decode_chunk(self, chunk: Chunk, origin: str, origin_of: _OriginsOf) -> None:
        """Decode a chunk of a single large document or huge line, its warnings naming
        each span's place in that document (see _decode_lenient), and its line
        (``origin_of`` is the document's)."""

        def in_document(_t: int, r: int, _name: str, _j: int, k: int) -> Iterator[str]:
            # the chunk's resourceSpans item r holds one scope's spans, from its place ``at``
            # in the document (so the chunk's own TracesData, name and scope index say nothing)
            at = chunk[r].at
            return origin_of(0, at[0], at[1], at[2], at[3] + k)

        self._chunk = chunk
        try:
            self._decode_unit(chunk_document(chunk), origin, in_document)
        finally:
            self._chunk = None

    def _read_documents(
        self,
        data: bytes,
        parts: list[tuple[int, int, bytes] | _Damage] | None,
        path: str,
        first: int = 1,
        to_end: bool = True,
        cut: str | None = None,
    ) -> Iterator[int]:
        """Decode the documents in ``data``, which begins on line ``first`` of ``path``,
        as ``parts`` (see documents._split_documents; None: one valid document) and add
        their spans to the pending traces, giving each part's number (from 1) once it is
        read; ``to_end``: ``data`` runs to the end of the file; ``cut``: why it stops
        short there (see _File.cut)."""
        line_of = _LineOf(data, first)
        read = False  # a document was read before
        # the line where decompression stopped: damage there is the cut's, said as such
        stop = first + data.count(b"\n") if cut is not None else None
        for k, unit in enumerate(parts if parts is not None else [(0, len(data), b"")], 1):
            if isinstance(unit, _Damage):
                at_cut = stop is not None and line_of(unit.at) == stop
                self._damaged(unit, path, line_of, read, to_end, cut if at_cut else None)
                stop = None if at_cut else stop
                yield k
                continue
            start, end, closing = unit
            self.stats.lines += 1
            line = line_of(start)
            origin = f"{path}:{line + _leading_newlines(data, start, end)}"
            doc = data if parts is None else data[start:end] + closing
            try:
                self._decode_unit(doc, origin, _span_origins(path, doc, line, origin))
            except Exception as exc:  # noqa: BLE001 - last resort, as for a line
                self._skip(origin, f"could not read this document ({type(exc).__name__})")
            read = read or not closing  # (a salvaged part is of the document that broke)
            yield k
        if stop is not None:  # (it stopped between documents)
            self.warn_at(f"{path}:{stop}", f"{cut}; rest of file skipped")

    def _damaged(
        self, damage: _Damage, path: str, line_of: _LineOf, after: bool, to_end: bool, cause: str | None
    ) -> None:
        """One warning for where a document stream stops being JSON (at the error's
        line): the complete spans kept from before it, the lines skipped up to where
        reading resumes (the end of the file, or of the data when it is not: ``to_end``).
        ``cause``: what cut the data short there (compressed data)."""
        self.stats.skipped += 1
        what = cause or f"invalid JSON {'after a document' if after else 'document'} ({damage.what})"
        n = damage.spans
        kept = f"{n} complete span{'s' if n != 1 else ''} before it kept, " if n else ""
        data = line_of.data
        if damage.resume < len(data) or not to_end:
            first = line_of(_SEPARATORS_RE.match(data, damage.kept).end())
            last = line_of(damage.resume - 1)
            skipped = f"line {last}" if first >= last else f"lines {first}-{last}"
        else:
            skipped = "rest of file"
        # cut short at the end of data that is not the file's end: its last line (where the
        # next line of its own begins, as documents._split_documents names such damage)
        at = damage.at if damage.at < len(data) or to_end else len(data) - 1
        where = f"{path}:{line_of(at)}"
        self.warn_at(where, f"{what}; {kept}{skipped} skipped")

    def _decode_unit(
        self, data: bytes, origin: str, origin_of: _OriginsOf | None
    ) -> None:
        """Decode one line (or document) and add its spans to the pending traces."""
        self._maps = otlp.maps_decoded()  # (this thread's)
        self._maps_at = self._maps[0]
        # JSON text with a key has a quote, written \" (or \u0022) in a JSON string: data
        # without a backslash holds none, and its spans need no look at their strings (one
        # search at memchr speed, once per line of hundreds of spans); a Python literal's
        # keys are quoted with ' (OpenLLMetry writes a vector search's filter so)
        self._quotes = b"'" in data
        self._texts = self._quotes or b"\\" in data
        self._line_new.clear()
        self._line_seen.clear()
        self._line_odd.clear()
        if not data.isascii():
            bad = _invalid_utf8(data)
            if bad is not None:
                # msgspec skips an object key it does not know without reading its bytes: a
                # bad byte in a field's name ("na\xffme", "attrib\xffutes") dropped the
                # field without a word. Repaired and said, as in a value (the slow path).
                self._recover(data, origin, origin_of, bad)
                return
        if self._decode_raw(data, origin, origin_of):
            return
        try:
            td = otlp.decode_traces_data(data)
        except Exception as exc:  # noqa: BLE001 - sorted out on the slow path
            self._recover(data, origin, origin_of, exc)
            return
        self._add_traces_data(td, origin, origin_of)

    def _add_traces_data(
        self,
        td: Any,
        origin: str,
        origin_of: _OriginsOf | None,
        kv_lists: Callable[[list[Any]], Iterable[list[otlp.KeyValue]]] | None = None,
    ) -> None:
        """Add the spans of one decoded TracesData to the pending traces; ``kv_lists``
        gives the decoded attribute lists of a scope's spans when they are raw."""
        for r, rs in enumerate(td.resource_spans):
            resource = otlp.attributes(rs.resource.attributes) if rs.resource is not None else {}
            for j, ss in enumerate(otlp.scopes(rs)):
                spans = ss.spans
                origins = None if origin_of is None else origin_of(0, r, otlp.scopes_name(rs), j, 0)
                self._add_spans(spans, resource, origin, origins, None if kv_lists is None else kv_lists(spans))

    def _decode_raw(
        self, data: bytes, origin: str, origin_of: _OriginsOf | None
    ) -> bool:
        """The fast path: spans as :class:`otlp.RawSpan`, each attribute list decoded on
        its own and dropped once read (see RawSpan). False, with nothing added, when
        anything in the line fails to decode: the full path then decodes it again and
        says what is wrong."""
        decode_kvs = otlp.decode_key_values
        try:
            td = otlp.decode_traces_data_raw(data)
            # a document decodes every attribute list first: its spans warn under their own
            # lines, so warnings given while adding could not be taken back (see _undo)
            if origin_of is not None:
                kv_lists = [
                    [decode_kvs(s.kvs) for s in ss.spans] for rs in td.resource_spans for ss in otlp.scopes(rs)
                ]
        except Exception:  # noqa: BLE001 - anything at all: the full path sorts it out
            return False
        if origin_of is not None:
            lists = iter(kv_lists)
            self._add_traces_data(td, origin, origin_of, lambda _: next(lists))
            return True
        # A line: each attribute list is decoded as its span is added, and freed with the
        # next one (a line's worth of decoded lists is ~1.5 KB a span, more than the CPU's
        # cache). Should one not decode, what the line added is taken back (_undo).
        if self._held is not None:
            self._flush()  # so that the warning held from here on is this line's
        stats = self.stats
        before = (stats.spans, stats.skipped)
        keys = self._keys
        decode = keys.decode
        try:
            self._add_traces_data(td, origin, None, lambda spans: map(decode, map(_KVS, spans)))
        except Exception as exc:  # noqa: BLE001 - as above
            self._undo(td, before)
            if decode is decode_kvs or not keys.is_miss(exc) or not self._learn_keys(td):
                return False
            # once more with the keys learned (the spans were changed in place: a new decode)
            return self._decode_raw(data, origin, origin_of)
        return True

    def _learn_keys(self, td: Any) -> bool:
        """The attribute keys of a line the key decoder did not know, learned (False
        when a list does not decode at all, or nothing could be learned)."""
        try:
            found = [kv.key for rs in td.resource_spans for ss in otlp.scopes(rs) for s in ss.spans
                     for kv in otlp.decode_key_values(s.kvs)]
        except Exception:  # noqa: BLE001 - the full path says what is wrong
            return False
        return self._keys.learn(found)

    def _undo(self, td: Any, before: tuple[int, int]) -> None:
        """Take back what a line's spans added to the pending traces, counts and warnings."""
        pending = self.pending
        for rs in td.resource_spans:
            for ss in otlp.scopes(rs):
                for s in ss.spans:
                    trace = pending.get(s.trace_id)
                    if trace is not None and trace.get(s.span_id) is s:
                        del trace[s.span_id]
        for tid in self._line_new:
            if not pending.get(tid):
                pending.pop(tid, None)
        self._seen_ids.difference_update(self._line_seen)
        for shown in self._line_odd:
            self._odd.pop(shown, None)
        self.stats.spans, self.stats.skipped = before
        self._held = None

    # -- the slow path: a line the typed decoder refused ---------------------------

    def _recover(
        self, data: bytes, origin: str, origin_of: _OriginsOf | None, exc: Exception
    ) -> None:
        """Read what can be read of a line the typed decode refused.

        First the repairs that keep the data (a byte order mark at the start of a line,
        invalid UTF-8, unpaired surrogate escapes; each warned about once) and the typed
        decode again. A line that is valid JSON but not valid OTLP is then decoded
        generically and validated span by span, so one bad span costs only itself. The
        generic decode repairs the same way: msgspec stops at the first validation
        error, so the typed decode proved nothing about the rest of the line.
        """
        repaired: set[str] = set()
        td = self._repaired(otlp.decode_traces_data, data, exc, origin, repaired)
        if isinstance(td, tuple):
            data, exc = td
            if isinstance(exc, msgspec.ValidationError):
                try:
                    obj = _GENERIC.decode(data)
                except Exception as exc2:  # noqa: BLE001 - sorted out by _repaired
                    obj = self._repaired(_GENERIC.decode, data, exc2, origin, repaired)
                    if isinstance(obj, tuple):
                        self._not_json(*obj, origin, origin_of)
                        return
                self._decode_lenient(obj, origin, origin_of)
                return
            self._not_json(data, exc, origin, origin_of)
            return
        self._add_traces_data(td, origin, origin_of)

    def _not_json(self, data: bytes, exc: Exception, origin: str, origin_of: _OriginsOf | None) -> None:
        """A line (or document) that is not JSON, even repaired: skipped, with a warning;
        but a line of JSON Lines that may begin a value the next lines continue goes back
        to the file's reading (see _read_on)."""
        if origin_of is None and self._reading_lines and _continues(data, exc):
            raise _Continued(exc, data)
        if origin_of is None and self._salvaged(data, exc, origin):
            return
        self._unreadable(origin, exc)

    def _salvaged(self, line: bytes, exc: Exception, origin: str, cut: str | None = None) -> bool:
        """Read the complete spans of a line that is not JSON (cut short, or a bad byte in
        it: documents.salvage_line), with one warning; False when it holds none. ``cut``:
        the read error that ended the file in this line, said instead of the JSON error."""
        if not isinstance(exc, msgspec.DecodeError) or isinstance(exc, msgspec.ValidationError):
            return False
        if line.lstrip().startswith(_BOM):  # files joined with cat: dropped, as _repair does
            line = line.lstrip()[len(_BOM) :]
        got = salvage_line(line, exc)
        if got is None:
            return False
        doc, n = got
        self.stats.skipped += 1
        # one warning for the line, this one: what its reading held (a repair) and what
        # its spans give (decoding flushes a held warning first: see _decode_raw) counted in
        more = self._take_held(origin)
        self._decode_unit(doc, origin, None)
        more += self._take_held(origin)
        kept = f"{n} complete span{'s' if n != 1 else ''} before it kept"
        if cut is None:
            self.warn_at(origin, f"invalid JSON ({_decode_error(exc)}); {kept}, rest of line skipped")
        else:
            self.warn_at(origin, f"{cut}; {kept}, rest of file skipped")
        self._held[2] += more  # type: ignore[index]
        return True

    def _take_held(self, origin: str) -> int:
        """Take back the warning held for ``origin``: how many problems it said (0: none held)."""
        held = self._held
        if held is None or held[0] != origin:
            return 0
        self._held = None
        return held[2] + 1

    def _repaired(
        self, decode: Callable[[bytes], Any], data: bytes, exc: Exception, origin: str, done: set[str]
    ) -> Any:
        """``decode(data)`` after the repairs ``exc`` calls for; ``(data, exc)`` when none helps.

        ``done`` holds the repairs made so far on this line (each is made and warned
        about once, whichever decode needed it). The error is kept for its message only,
        without its traceback: an error held by a frame it was raised in is a reference
        cycle, and the garbage collector is paused while the loader runs, so each such
        line (a type error before a syntax error, a repair that did not help) and the
        frames above it (a value read on from JSON Lines: up to _READ_ON_MAX) stayed in
        memory to the end of the load.
        """
        exc = exc.with_traceback(None)
        while True:
            step = _repair(data, exc, done)
            if step is None:
                return data, exc
            name, data = step
            if name in _REPAIR_WARNINGS:
                self.warn_at(origin, _REPAIR_WARNINGS[name])
            try:
                return decode(data)
            except Exception as again:  # noqa: BLE001 - the next repair, or the end
                exc = again.with_traceback(None)

    def _skip(self, origin: str, what: str) -> None:
        self.stats.skipped += 1
        self.warn_at(origin, f"{what}; line skipped")

    def _unreadable(self, origin: str, exc: Exception) -> None:
        """One warning for a line that could not be decoded at all; never the line's values."""
        if isinstance(exc, msgspec.ValidationError):  # (a DecodeError) generic decode: numbers only
            self._skip(origin, f"number out of range ({_clip(str(exc))})")
        elif isinstance(exc, (msgspec.DecodeError, UnicodeDecodeError)):
            self._skip(origin, f"invalid JSON ({_decode_error(exc)})")
        elif isinstance(exc, RecursionError):
            self._skip(origin, "JSON nested too deeply")
        else:
            self._skip(origin, f"could not read this line ({type(exc).__name__})")

    def _decode_lenient(self, obj: Any, origin: str, origin_of: _OriginsOf | None) -> None:
        """Valid JSON, not valid OTLP: validate piece by piece so one bad span costs only itself."""
        if isinstance(obj, list):  # lenient: an array of TracesData
            items = [(t, item) for t, item in enumerate(obj) if isinstance(item, dict)]
            if not obj:
                self.stats.skipped += 1
                self.warn_at(origin, "not an OTLP TracesData object (an empty array); skipped")
            elif len(items) < len(obj):  # one warning for the line, however many items
                self.stats.skipped += 1
                n = len(obj) - len(items)
                self.warn_at(origin, f"{n} of {len(obj)} array items are not OTLP TracesData objects; skipped")
        elif isinstance(obj, dict):
            items = [(0, obj)]
        else:
            self.stats.skipped += 1
            self.warn_at(origin, "not an OTLP TracesData object; skipped")
            return
        for t, obj in items:
            rss = obj.get("resourceSpans")
            if rss is None:  # absent, or null: proto3 JSON's default, no spans
                continue
            if not isinstance(rss, list):
                self.stats.skipped += 1
                self.warn_at(origin, "resourceSpans is not a list; skipped")
                continue
            for i, rs in enumerate(rss):
                # (a chunk's item i is one scope's spans from a place of the document's)
                place = self._chunk[i].at if self._chunk is not None else (i, None, 0, 0)
                where = f"resourceSpans[{place[0]}]"
                if not isinstance(rs, dict):
                    self.stats.skipped += 1
                    self.warn_at(origin, f"{where} is not an object; skipped")
                    continue
                res = self._convert(rs.get("resource") or {}, otlp.Resource, origin, f"{where}.resource")
                resource = otlp.attributes(res.attributes) if res is not None else {}
                # the old name (before OTLP 0.15) only when the new one is absent, as otlp.scopes
                new, old = otlp.SCOPE_SPANS_NAMES
                own = old if not rs.get(new) and rs.get(old) is not None else new
                sss = rs.get(own)
                name = place[1] or own
                if sss is None:
                    continue
                if not isinstance(sss, list):
                    self.stats.skipped += 1
                    self.warn_at(origin, f"{where}.{name} is not a list; skipped")
                    continue
                for j, ss in enumerate(sss, place[2]):
                    swhere = f"{where}.{name}[{j}]"
                    spans = ss.get("spans", ()) if isinstance(ss, dict) else None
                    if spans is None and isinstance(ss, dict):  # null: no spans
                        continue
                    if not isinstance(spans, (list, tuple)):
                        self.stats.skipped += 1
                        what = "spans is not a list" if isinstance(ss, dict) else "is not an object"
                        self.warn_at(origin, f"{swhere}{'.' if isinstance(ss, dict) else ' '}{what}; skipped")
                        continue
                    # in a document, each span's own line (else the line's)
                    ats = itertools.repeat(origin) if origin_of is None else origin_of(t, i, own, j - place[2], 0)
                    good, good_at = [], []
                    for k, (sp, at) in enumerate(zip(spans, ats), place[3]):
                        span = self._convert(sp, otlp.Span, at, f"{swhere}.spans[{k}]")
                        if span is not None:
                            good.append(span)
                            good_at.append(at)
                        else:
                            self.stats.skipped += 1
                    self._add_spans(good, resource, origin, None if origin_of is None else iter(good_at))

    def _convert(self, obj: Any, cls: type, origin: str, where: str) -> Any:
        """``obj`` (decoded JSON) as ``cls``, repaired if it must be; None (with a warning)
        when it cannot be.

        The repairs, on a copy: nulls are dropped (proto3 JSON: null is the field's
        default; silently), over-long strings truncated, and an attribute, event or link
        that still fails dropped on its own (one warning each, naming its key, never its
        value), so one unrepresentable value costs only itself, not its span.
        """
        try:
            return otlp.convert(obj, cls)
        except msgspec.ValidationError as exc:
            error = str(exc)
        except RecursionError:
            error = "nested too deeply"
        notes: list[str] = []
        if error != "nested too deeply":
            try:
                cut: dict[str, int] = {}
                fixed = _cleaned(obj, cut)
                timing = _fix_times(fixed) if cls is otlp.Span and isinstance(fixed, dict) else []
                try:
                    converted = otlp.convert(fixed, cls)
                except msgspec.ValidationError as exc:
                    error = str(exc)
                    if not isinstance(fixed, dict) or not _ITEMS_ERROR_RE.search(error):
                        raise
                    notes = _drop_bad_items(fixed, cls)
                    if not notes:
                        raise
                    converted = otlp.convert(fixed, cls)
            except msgspec.ValidationError as exc:
                error = str(exc)
            except RecursionError:
                error = "nested too deeply"
            else:
                notes[:0] = timing
                if cut:
                    parts = ", ".join(f"{kind} truncated to {limit} characters" for kind, limit in cut.items())
                    notes.insert(0, f"over-long {parts}")
                for note in notes:
                    self.warn_at(origin, f"{where}: {note}")
                return converted
        hint = _byte_ids_hint(obj) if cls is otlp.Span else ""
        self.warn_at(origin, f"{where} skipped: {_clip(error)}{hint}")
        return None

    # -- spans --------------------------------------------------------------------

    def _add_spans(
        self,
        spans: Iterable[otlp.Span],
        resource: dict[str, Any],
        origin: str,
        origins: Iterator[str] | None,
        kv_lists: Iterable[list[otlp.KeyValue]] | None = None,
    ) -> None:
        """Validate and normalise decoded spans in place, fill in their derived fields,
        and add them to their pending traces; ``origins``: each span's own (in a
        document), else every span's is ``origin`` (a line's).

        The hot loop of the loader: the decoded span *is* the analyzer's span (no second
        object, no attribute dict). What the analysis needs from the attributes is read
        here from the decoded list (``kv_lists``, one per span, or the spans' own
        ``kvs``) through the shared :class:`otlp.AttributeShape` of its names; the
        span's ``attributes`` dict is built only if something asks for it. Everything
        is inlined, because a call per span is measurable.
        """
        pending = self.pending
        counts = self.counts
        warn = self.warn_at
        fromhex = bytes.fromhex
        shapes = _SHAPES
        shape_of = otlp.shape_of
        holds_maps = otlp.holds_maps
        with_inner = otlp.with_inner
        # JSON text (only in data with escapes) and URL queries (only in URL attributes;
        # an event's or link's, whose names have no shape: the rules' look at their names)
        texts = self._texts
        quotes = self._quotes
        holds_text = otlp.holds_text
        holds_literals = otlp.holds_literals
        escape = _ESCAPE
        quote = _QUOTE
        # Map values (nearly no input has any): a span is looked at for them when one was
        # decoded since the line began, before its spans' attribute lists (an event's, a
        # link's, a resource's; in a document or on the slow paths, any attribute list),
        # or since the span before: its own list, decoded as the loop takes it (kv_lists).
        maps = self._maps
        all_maps = self._maps_always or maps[0] != self._maps_at
        maps_seen = maps[0]
        kind_of = _KIND_OF.get
        tags = self._tags
        tags_get = tags.get
        service = resource.get("service.name")
        if type(service) is not str or not service:
            service = _UNKNOWN_SERVICE
        key_id = resource.get(KEY_ID)
        if type(key_id) is not str:
            key_id = None
        elif key_id == _DEV_KEY_ID and self._dev_key_at is None:
            self._dev_key_at = origin
        added = skipped = 0
        where = origin
        line_new = self._line_new
        # every span and parent id of the batch lowercase hex (or empty), tested at once
        # in C (~1 ns a character, where str.strip costs ~6): each id's own test below is
        # then its length alone (a batch of a few spans is not worth the set-up)
        hexed = (
            type(spans) is list and len(spans) > 3
            and _lower_hex(itertools.chain(map(_SPAN_ID, spans), map(_PARENT_ID, spans)))
        )
        for s, kvs in zip(spans, kv_lists if kv_lists is not None else map(_KVS, spans)):
            if origins is not None:
                where = next(origins)
            tid = s.trace_id
            trace = pending.get(tid)
            if trace is None:
                tid = _valid_id(tid, 32, _ZERO_TRACE)
                if tid is None:
                    skipped += 1
                    hint = _base64_hint(s.trace_id, 16)
                    warn(where, f"span skipped: missing or invalid trace id (need 32 hex digits, not all zero{hint})")
                    continue
                s.trace_id = tid
                trace = pending.get(tid)
                if trace is None:
                    trace = pending[tid] = {}
                    line_new.append(tid)
                    n = counts.get(_key(tid))
                    if n is _CLOSED or (n is None and tid in self._seen_ids):
                        warn(where, f"trace {tid} continues after it was complete; analysed in parts")
                    elif n is None:  # an id the scan did not count (rare): remembered here
                        self._seen_ids.add(tid)
                        self._line_seen.append(tid)
            sid = s.span_id
            # lowercase hex (the usual form): known for the batch (hexed), else one C call
            # that allocates nothing: strip() leaves "" only when every character is one
            if len(sid) != 16 or (not hexed and sid.strip(_HEX_DIGITS)) or sid == _ZERO_SPAN:
                sid = _valid_id(sid, 16, _ZERO_SPAN)
                if sid is None:
                    skipped += 1
                    hint = _base64_hint(s.span_id, 8)
                    warn(where, f"span skipped: missing or invalid span id (need 16 hex digits, not all zero{hint})")
                    continue
                s.span_id = sid
            if sid in trace:
                skipped += 1
                warn(where, f"duplicate span id {sid} in trace {tid}; first one kept")
                continue
            parent: str | None = s.parent_span_id
            if parent:
                if len(parent) != 16 or (not hexed and parent.strip(_HEX_DIGITS)):
                    try:
                        if len(parent) != 16 or not parent.isalnum():
                            raise ValueError
                        fromhex(parent)
                    except ValueError:
                        skipped += 1
                        warn(where, f"span {sid} skipped: invalid parent span id (need 16 hex digits{_base64_hint(parent, 8)})")
                        continue
                    parent = s.parent_span_id = parent.lower()
                if parent == sid:
                    warn(where, f"span {sid} is its own parent; parent dropped")
                    s.parent_span_id = None  # type: ignore[assignment]
                elif parent == _ZERO_SPAN:
                    s.parent_span_id = None  # type: ignore[assignment]
            else:
                s.parent_span_id = None  # type: ignore[assignment]
            kind = s.kind
            status = s.status
            code = 0 if status is None else status.code
            if type(kind) is not int or type(code) is not int:
                try:
                    s.kind = kind = otlp.span_kind(kind)
                    code = otlp.status_code(code)
                except ValueError:
                    skipped += 1
                    warn(where, f"span {sid} skipped: kind or status code is not a valid number or enum name")
                    continue
            keys = tuple([kv.key for kv in kvs])  # (faster than map(attrgetter) here)
            shape = shapes.get(keys)
            if shape is None:
                shape = shape_of(keys)
            if all_maps or maps[0] != maps_seen:
                maps_seen = maps[0]
                if (
                    holds_maps(kvs) or any([holds_maps(p.kvs) for p in s.events])
                    or any([holds_maps(p.kvs) for p in s.links])
                ):
                    shape = with_inner(shape)  # its names alone do not clear it (masking.holds_names)
            # (a span's undecoded list without a backslash or a ' holds no JSON text or Python
            # literal with a key, nor a quoted literal in query text: one search in C, where
            # looking at each string costs more)
            if (texts or shape.urls or shape.systems or shape.named) and not shape.inner and (
                (texts and (s.kvs.__class__ is not _RAW or escape(s.kvs) or (quotes and quote(s.kvs)))
                 and (holds_text(kvs) or (shape.queries and holds_literals(kvs, shape.queries))))
                or (shape.urls and otlp.holds_query(kvs, shape.urls))
                or (shape.systems and otlp.holds_keys(kvs, shape))  # a cache's keys
                or (shape.named and otlp.holds_naming_words(kvs, shape.named))  # a path naming a tenant
            ):
                shape = with_inner(shape)
            s.shape = shape
            i = shape.proxy
            if i >= 0:  # a service-mesh proxy's span is passed through (flowmap.transparent)
                av = kvs[i].value
                if av is not None and av.string_value == PROXY_VALUE:
                    self._proxies.setdefault(tid, []).append(sid)
            # only ever set here, never from the input
            s._attrs = otlp.attributes(kvs) if shape.eager else None
            i = shape.tenant
            if i >= 0:
                av = kvs[i].value
                tag = None if av is None else av.string_value
                if tag is not None:  # one string object per tag (see _tags)
                    same = tags_get(tag)
                    if same is not None:
                        tag = same
                    elif not tag or tag.isspace():  # an empty tag names no tenant
                        tag = None
                    elif len(tags) < _TAGS_MAX:
                        tags[tag] = tag
                    if shape.unscoped >= 0 and code != STATUS_CODE_ERROR:
                        # a boundary that ran its body with no tenant bound (record mode):
                        # its tag (the caller's baggage, or the tenant bound when a
                        # generator started) is no binding. One refused (errored) never ran.
                        av = kvs[shape.unscoped].value
                        if av is not None and av.bool_value is True:
                            tag = None
                s.tenant = tag
            else:
                s.tenant = None
            i = shape.boundary
            boundary = None
            if i >= 0:
                av = kvs[i].value
                if av is not None:
                    boundary = kind_of(av.string_value)  # the shared string, None if no kind
                    if boundary is None:
                        boundary = self._odd_value(BOUNDARY, av, where)
            if boundary is None and (shape.infer or shape.http):
                if shape.infer or kind == SPAN_KIND_SERVER or kind == SPAN_KIND_CLIENT:
                    boundary = infer_boundary(kind, otlp.attributes(kvs))
            s.boundary = boundary
            i = shape.scoped
            if i >= 0:
                av = kvs[i].value
                scoped = None if av is None else av.bool_value
                if scoped is None and av is not None:
                    scoped = self._odd_value(SCOPED, av, where)
                s.scoped = scoped
            else:
                s.scoped = None
            s.service = service
            s.resource = resource
            s.origin = where
            s.key_id = key_id
            s.status_code = code
            s.status = None  # read: freed now, while in the cache, not with its trace
            if s.links:
                s.links = self._links(s.links, where, sid)
                if texts and not shape.inner and any([holds_text(p.kvs) or holds_literals(p.kvs) for p in s.links]):
                    s.shape = shape = with_inner(shape)
            if s.events:
                for e in s.events:
                    e._attrs = None
                if texts and not shape.inner and any([holds_text(p.kvs) or holds_literals(p.kvs) for p in s.events]):
                    s.shape = shape = with_inner(shape)
            trace[sid] = s
            added += 1
        self.stats.spans += added
        self.stats.skipped += skipped

    def _odd_value(self, name: str, av: otlp.AnyValue, where: str) -> Any:
        """``flowmap.boundary`` or ``flowmap.scoped`` written otherwise than the contract
        says (another instrumentation's spelling): read leniently where the meaning is
        plain (a kind in another case, ``"false"`` as a string), else not at all, with one
        warning per distinct value (its writer puts it on every span), so that an
        unscoped query is neither missed nor missed silently."""
        value = otlp.any_value(av)
        text = value.strip().lower() if isinstance(value, str) else None
        read: Any
        if name == BOUNDARY:
            read = _KIND_OF.get(text)
            how = f"read as {read!r}" if read else "not a boundary kind; the span is judged by its other attributes"
        else:
            read = _FLAG_TEXT.get(text)
            how = f"read as {str(read).lower()}" if read is not None else "not a boolean; ignored"
        key = f"{name} {_clip(repr(value), 80)}"
        if key not in self._odd and len(self._odd) < _ODD_MAX:
            self._odd[key] = None
            self._line_odd.append(key)
            # a value read as a kind or flag is shown (it is one, spelled otherwise); any
            # other only by its size: warnings never echo input values
            if read is not None:
                shown = key
            elif isinstance(value, str):
                shown = f"{name} of {len(value)} character{'s' if len(value) != 1 else ''}"
            else:
                shown = f"{name} of type {type(value).__name__}"
            self.warn_at(where, f"{shown} is {how} (warned once per value)")
        return read

    def _links(self, links: list[otlp.Link], where: str, sid: str) -> list[otlp.Link]:
        out = []
        for link in links:
            tid = _valid_id(link.trace_id, 32, _ZERO_TRACE)
            lsid = _valid_id(link.span_id, 16, _ZERO_SPAN)
            if tid is None or lsid is None:
                self.warn_at(where, f"span {sid}: link with missing or invalid ids dropped")
                continue
            link.trace_id, link.span_id, link._attrs = tid, lsid, None
            out.append(link)
            if self._linked_known:
                self._note_linked(tid, lsid)
        return out

    def _note_linked(self, tid: str, sid: str) -> None:
        """A link to span ``sid`` of trace ``tid`` was read: the analysis will remember
        that span, and only it, for the links of traces still open (Trace.linked_spans).
        Past _LINKED_MAX noted at once, every linked trace's spans count as targets."""
        ids = self._linked.get(tid)
        if ids is None:
            if self.counts.get(_key(tid)) is _CLOSED:
                return  # (a link the scan could not count, to a trace yielded already)
            ids = self._linked[tid] = set()
        if sid not in ids:
            ids.add(sid)
            self._linked_size += 1
            if self._linked_size > _LINKED_MAX:
                self._linked_known = False
                self._linked.clear()


# -- helpers -------------------------------------------------------------------------


def problems(warnings: list[str], total: int, shown: int = 3) -> str:
    """The first ``shown`` of ``total`` problems, for the one line of an input error
    (`` (a; b; and 3 more problems)``; empty when there were none): a run that read
    nothing says why in that line alone."""
    if not warnings:
        return ""
    more = total - min(shown, len(warnings))
    tail = [f"and {more} more problem{'s' if more > 1 else ''}"] if more > 0 else []
    return f" ({'; '.join([*warnings[:shown], *tail])})"


def _loses_data(what: str) -> bool:
    """Whether a warning says something was lost (or a trace split): it wins over repairs."""
    return "skipped" in what or "dropped" in what or "first one kept" in what or "in parts" in what


def _key(trace_id: str) -> bytes:
    """A trace id as the loader's index keys it (the scan's bytes): a valid id is ASCII,
    and anything else (never a key there) still encodes."""
    return trace_id.encode("utf-8", "surrogatepass")


def _any_upper(keys: Iterable[bytes]) -> bool:
    """Whether any of these ids has an upper-case letter: tested in C a slice at a time
    (bytes.join holds an 80-byte buffer record per item, so joining a million ids at
    once cost more memory than the index itself)."""
    it = iter(keys)
    while chunk := list(itertools.islice(it, 4096)):
        if _UPPER_RE.search(b"".join(chunk)) is not None:
            return True
    return False


def _trace_ids(keys: Iterable[bytes]) -> list[str]:
    """Trace ids of the index's keys (ASCII: hex digits, or a hidden id that was ASCII)."""
    return [key.decode("ascii") for key in keys]


def _lower_hex(ids: Iterable[str]) -> bool:
    """Whether every one of these strings is made of lowercase hex digits only."""
    try:
        return not "".join(ids).encode("ascii").translate(None, _HEX_BYTES)
    except (TypeError, UnicodeEncodeError):  # a non-string (hand-built span), non-ASCII text
        return False


def _valid_id(raw: str, length: int, zero: str | None) -> str | None:
    """Lowercase hex id of exactly ``length`` digits (not all zero), else None."""
    if len(raw) == length and not raw.strip(_HEX_DIGITS) and raw != zero:
        return raw  # the usual form, in one C call that allocates nothing (see _add_spans)
    if len(raw) != length or not raw.isalnum():
        return None
    try:
        bytes.fromhex(raw)  # with isalnum: exactly hex digits (no spaces, signs, 0x)
    except ValueError:
        return None
    low = raw.lower()
    return None if low == zero else low


def _base64_hint(raw: Any, size: int) -> str:
    """What to add to an invalid-id warning when the id is the base64 of ``size`` bytes:
    protobuf's own JSON mapping writes ids so (``MessageToJson``), OTLP JSON as hex. Such
    ids are not guessed at: a file mixing the two would pair the wrong spans."""
    if type(raw) is not str or len(raw) != 4 * ((size + 2) // 3) or not raw.endswith("="):
        return ""
    try:
        if len(binascii.a2b_base64(raw, strict_mode=True)) != size:
            return ""
    except (binascii.Error, ValueError):
        return ""
    return "; this one is base64, as protobuf's JSON mapping writes ids: OTLP JSON needs hex"


#: a decompressed line longer than this is skipped: a few MB of gzip can hold a line of
#: gigabytes (a "gzip bomb"), which reading whole would take that much memory
_GZ_LINE_MAX = 64 << 20
#: a value read on from a line of JSON Lines (see _Loader._read_on) stops at this size:
#: lines of brackets that never close must not be held to the end of the file
_READ_ON_MAX = 64 << 20
#: a gzip document is decompressed this much at a time: corrupt data loses at most the
#: piece it is in, as much as the lines of a .gz lose (GzipFile reads them through a buffer
#: of this size); 8 KiB to 64 KiB pieces took the same time
_GZ_PIECE = io.DEFAULT_BUFFER_SIZE


def _decompressed(raw: io.BufferedIOBase, f: _File) -> bytes:
    """The gzip file ``raw`` decompressed, up to any corrupt or truncated compressed data
    (``f.cut`` says which). A piece at a time into one buffer, whose bytes are returned
    without a copy: ``GzipFile.read()`` lost everything at such an error, and held the
    data twice at the end (its pieces, and their join)."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
        try:
            while piece := gz.read1(_GZ_PIECE):
                out.write(piece)
        except Exception as exc:  # noqa: BLE001 - as in _Loader._lines: the data before it is kept
            f.cut = _compressed_error(exc)
    return out.getvalue()


class _UntilError(io.RawIOBase):
    """A stream's bytes up to its first read error, then its end; the error is kept
    (``error``), so that the line it cut reaches the reader (see _Loader._cut_tail)."""

    def __init__(self, stream: Any) -> None:
        super().__init__()
        self._stream = stream
        self.error: Exception | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.error is not None:
            return 0
        try:
            data = self._stream.read1(min(len(buffer), _GZ_PIECE))  # (an error loses its piece)
        except Exception as exc:  # noqa: BLE001 - kept for the reader, as _Loader._lines catches it
            self.error = exc.with_traceback(None)
            return 0
        buffer[: len(data)] = data
        return len(data)


def _compressed_error(exc: Exception) -> str:
    return f"compressed data is corrupt or truncated ({type(exc).__name__})"


def _bounded_lines(stream: Any, cap: int, newline: Any = b"\n") -> Iterator[Any]:
    """The lines of a binary (or, with ``newline="\\n"``, text) stream, each at most
    ``cap`` long: an empty one stands for a longer line, read past in pieces."""
    while True:
        line = stream.readline(cap + 1)
        if not line:
            return
        if len(line) > cap and not line.endswith(newline):
            while True:  # the rest of it, a piece at a time
                rest = stream.readline(cap)
                if not rest or rest.endswith(newline):
                    break
            yield line[:0]
            continue
        yield line


def _file_lines(stream: io.BufferedIOBase, cap: int | None = None) -> Iterable[bytes]:
    """The lines of a file as UTF-8: a byte order mark at its start says how it is encoded.
    With ``cap`` (bytes; for UTF-16, two a character), a longer line is read past in pieces,
    never held whole, and stands as ``b""`` (never a line otherwise)."""
    if stream.peek(2)[:2] in _UTF16_BOMS:  # type: ignore[attr-defined]  # buffered and gzip streams
        text = io.TextIOWrapper(stream, encoding="utf-16", errors="replace", newline="")
        lines: Iterable[Any] = text if cap is None else _bounded_lines(text, cap // 2, "\n")
        return (line.encode("utf-8") for line in lines)
    return _without_bom(stream if cap is None else _bounded_lines(stream, cap))


def _without_bom(lines: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of a file, a UTF-8 byte order mark at its start removed."""
    lines = iter(lines)
    first = next(lines, None)
    if first is None:
        return lines
    if first.startswith(_BOM):
        first = first[len(_BOM) :] or b"\n"
    return itertools.chain((first,), lines)


def _is_json(line: bytes) -> bool:
    """Whether a line is JSON on its own (numbers out of range and deep nesting count as
    JSON); a huge one is skimmed, not decoded (see _chunks_of)."""
    if len(line) > _CHUNKED_OVER and _chunks_of(line) is not None:
        return True
    try:
        msgspec.json.decode(line)
    except (msgspec.ValidationError, RecursionError):  # (ValidationError is a DecodeError)
        return True  # syntactically a value; pass 2 says what is wrong with it
    except (msgspec.DecodeError, UnicodeDecodeError):
        return False
    return True


def _syntax_error(data: bytes) -> Exception | None:
    """The JSON syntax error in ``data``, or None: the repairs of the slow path are allowed.

    Not a syntax error: invalid UTF-8 or unpaired surrogates (repaired with a warning in
    pass 2), numbers out of range (pass 2 says what is wrong). Nesting too deep is given
    as an error: the decoder stopped there, so nothing after it is known to be part of
    one document (lines of brackets that never close, then JSON Lines, were read as one
    document too deep to decode: the whole file lost).

    Valid JSON is first told by skimming it, which builds no objects (invalid UTF-8 and
    numbers out of range pass the skim, as they should here): decoding a document of
    383 MB only to learn that it is one built 1 GB of objects, the peak of its reading.
    """
    try:
        msgspec.json.decode(data, type=msgspec.Raw)
        return None
    except Exception:  # noqa: BLE001 - told apart below, with the repairs
        pass
    _, exc = _decode_repaired(data)
    if isinstance(exc, RecursionError):
        return exc
    return exc if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError) else None


#: the origins of the spans of a scope of a document, from its k-th (see _span_origins)
_OriginsOf = Callable[[int, int, str, int, int], Iterator[str]]


def _span_origins(path: str, data: bytes, first: int, origin: str) -> _OriginsOf:
    """``origins(t, r, name, j, k)``: the origins of a scope's spans, from its k-th, in
    the document ``data`` (which begins on line ``first`` of ``path``), at the place
    the decoder read them from (documents.span_lines: TracesData t, resourceSpans r,
    the scope spans' field name and index j); ``origin``, the document's, for those not
    placed. Placed when first asked (a part without spans never is)."""
    lines: dict[Scope, list[int]] | None = None

    def origins(t: int, r: int, name: str, j: int, k: int) -> Iterator[str]:
        nonlocal lines
        if lines is None:
            lines = span_lines(data, first)
        at = lines.get((t, r, name, j), ())
        return itertools.chain((f"{path}:{at[i]}" for i in range(k, len(at))), itertools.repeat(origin))

    return origins


#: a single document larger than this is read in chunks of _CHUNK_SPANS spans
_CHUNKED_OVER = 8 << 20
_CHUNK_SPANS = 2048


def _chunks_of(data: bytes) -> list[Chunk] | None:
    """A single large document's chunks of spans (documents.span_chunks), or None when it
    is small, or not one TracesData, or one chunk would do: read whole."""
    if len(data) <= _CHUNKED_OVER:
        return None
    chunks = span_chunks(data, _CHUNK_SPANS)
    return chunks if chunks is not None and len(chunks) > 1 else None


_U_ESCAPE_RE = re.compile(rb"\\u")


def _scan_chunks(line: bytes, pos: tuple[int, int], last: dict[bytes, tuple[int, ...]], counts: Counter[bytes]) -> bool:
    """Pass 1 of a huge line read in chunks (_chunks_of), each id placed at the chunk
    that mentions it last; False when it is read whole (not one TracesData)."""
    chunks = _chunks_of(line)
    if chunks is None:
        return False
    escaped = _has_escaped_ids(line)
    for c, chunk in enumerate(chunks, 1):
        _note_chunk(chunk, (*pos, c), last, counts, escaped)
    return True


def _note_chunk(
    chunk: Chunk, pos: tuple[int, ...], last: dict[bytes, tuple[int, ...]], counts: Counter[bytes], escaped: bool
) -> None:
    """Pass 1 of one chunk of a single large document or huge line: its ids' position,
    and, when the data has ``\\u`` escapes (``escaped``), the ids written with them, found
    by decoding the chunks that have any, not the whole data (which held every span at
    once), so that they close after their own chunk too."""
    findall = _TRACE_ID_RE.findall
    found = [tid for piece in chunk for span in piece.spans for tid in findall(span)]
    last.update(dict.fromkeys(found, pos))
    counts.update(found)
    if escaped and any(_U_ESCAPE_RE.search(span) for piece in chunk for span in piece.spans):  # (Raw has no ``in``)
        hidden = _trace_ids_in(chunk_document(chunk))
        last.update(dict.fromkeys(hidden, pos))
        counts.update(dict.fromkeys(hidden, _UNCOUNTED))


def _decode_repaired(data: bytes, deep: bool = False) -> tuple[Any, Exception | None]:
    """The generic decode of ``data`` after the repairs pass 2 makes (invalid UTF-8 and
    unpaired surrogates replaced, on a copy; with ``deep``, nesting too deep emptied):
    ``(value, None)``, or ``(None, the error no repair helps)``. The error comes without
    its traceback: its frames hold ``data`` in a reference cycle, which the paused
    collector never freed (a document read whole stayed in memory through the whole load)."""
    # (callers strip a byte order mark themselves, where it is allowed)
    done = {"bom"} if deep else {"bom", "deep"}
    while True:
        try:
            return _GENERIC.decode(data), None
        except msgspec.ValidationError as exc:  # before DecodeError: its subclass
            return None, exc.with_traceback(None)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            step = _repair(data, exc, done)
            if step is None:
                return None, exc.with_traceback(None)
            data = step[1]


_UTF8_CHUNK = 1 << 20


def _invalid_utf8(data: bytes) -> UnicodeDecodeError | None:
    """Why ``data`` is not UTF-8, or None: checked a megabyte at a time (a line can be
    hundreds of megabytes, its text up to four times that)."""
    decode = codecs.getincrementaldecoder("utf-8")().decode
    view = memoryview(data)
    n = len(data)
    try:
        for i in range(0, n, _UTF8_CHUNK):
            decode(view[i : i + _UTF8_CHUNK], i + _UTF8_CHUNK >= n)
    except UnicodeDecodeError as exc:
        return exc
    return None


_REPAIR_WARNINGS = {
    "utf8": "invalid UTF-8 bytes replaced",
    "surrogate": "invalid \\u escapes (unpaired UTF-16 surrogates) replaced",
    "deep": f"arrays and objects nested more than {_DEPTH_MAX} levels deep emptied",
}


def _repair(data: bytes, exc: BaseException, done: set[str]) -> tuple[str, bytes] | None:
    """The next repair a decode error calls for, ``(its name, the repaired copy)``, or None.

    Each repair is made once per line (``done`` records them): invalid UTF-8 replaced, a
    byte order mark starting a line dropped (files joined with cat), unpaired surrogate
    escapes replaced. Pass 1 and pass 2 repair alike, so they agree on what a line holds.
    """
    syntax = isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError)
    if _bad_utf8(exc) and "utf8" not in done:
        done.add("utf8")
        return "utf8", data.decode("utf-8", "replace").encode("utf-8")
    if syntax and "bom" not in done and data.lstrip().startswith(_BOM):
        done.add("bom")
        return "bom", data.lstrip()[len(_BOM) :]
    if syntax and "surrogate" not in done and "surrogate" in str(exc):
        done.add("surrogate")
        return "surrogate", _SURROGATE_RE.sub(_fix_surrogate, data)
    if isinstance(exc, RecursionError) and "deep" not in done:
        done.add("deep")
        shallow = emptied_below(data, _DEPTH_MAX)
        return None if shallow is None else ("deep", shallow)
    return None


def _trace_ids_in(line: bytes) -> list[bytes]:
    """Trace ids of a line decoded in full (for lines the regex scan cannot read).

    The line is decoded after the repairs pass 2 makes (a byte order mark, invalid
    UTF-8, unpaired surrogates, nesting too deep, on a copy), so a trace is not closed
    before such a line. A line that still does not decode gives none: pass 2 warns about
    it. The walk uses a stack, not recursion, whatever the nesting. Sorted: traces ending on the same line are closed
    in this order, which must not depend on the hash seed.
    """
    if line.lstrip().startswith(_BOM):  # files joined with cat (pass 2 drops it too)
        line = line.lstrip()[len(_BOM) :]
    obj, _ = _decode_repaired(line, deep=True)
    if obj is None:
        return []
    found: set[bytes] = set()
    stack = [obj]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            tid = node.get("traceId")
            if isinstance(tid, str) and tid.isascii():
                found.add(tid.encode("ascii"))
            stack.extend(v for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, (dict, list)))
    return sorted(found)


def _cleaned(obj: Any, cut: dict[str, int]) -> Any:
    """A copy of decoded JSON without nulls in objects (proto3 JSON: null is the field's
    default) and with strings cut to the caps of :mod:`flowmap.otlp`; ``cut`` gains what
    was truncated (``"name"``, ``"attribute key"``, ``"value"``) and to how many characters."""
    if isinstance(obj, str):
        if len(obj) > otlp.MAX_VALUE_CHARS:
            cut["value"] = otlp.MAX_VALUE_CHARS
            return obj[: otlp.MAX_VALUE_CHARS]
        return obj
    if isinstance(obj, list):
        return [_cleaned(v, cut) for v in obj]
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if value is None:
                continue
            if key in _NAME_KEYS and isinstance(value, str):
                if len(value) > otlp.MAX_NAME_CHARS:
                    kind = _NAME_KEYS[key]
                    cut[kind] = otlp.MAX_NAME_CHARS
                    value = value[: otlp.MAX_NAME_CHARS]
                out[key] = value
            else:
                out[key] = _cleaned(value, cut)
        return out
    return obj


_NAME_KEYS = {"name": "name", "key": "attribute key"}  # the fields capped at MAX_NAME_CHARS


def _fix_times(span: dict[str, Any]) -> list[str]:
    """Repair a span's times (and its events') in place; a note for each one ignored.

    Why: the proto3 JSON mapping allows a 64-bit integer in exponent notation or with a
    zero fraction (``1.7e18``, ``1.7e18`` as a string) and a fixed64 up to 2**64-1; the
    typed decode takes plain integers up to 2**63-1 only. Such times are read (a time
    past 2262 as the latest kept), and one that is no time at all (negative, a fraction,
    text) is ignored with a note, not the span: times play no part in the tenant rules.
    """
    notes: list[str] = []
    items = [(span, ("startTimeUnixNano", "endTimeUnixNano"), "")]
    events = span.get("events")
    if isinstance(events, list):
        items.extend((e, ("timeUnixNano",), f"events[{i}].") for i, e in enumerate(events) if isinstance(e, dict))
    for obj, keys, prefix in items:
        for key in keys:
            if key not in obj:
                continue
            value = obj[key]
            if type(value) is int and 0 <= value <= otlp.TIME_MAX:
                continue
            fixed = _time_value(value)
            if fixed is None:
                del obj[key]
                notes.append(f"invalid {prefix}{key} ignored{_long_bits_hint(value)}")
            else:
                obj[key] = fixed
    return notes


def _time_value(value: Any) -> int | None:
    """A time the proto3 JSON mapping allows (see _fix_times) as an int, else None."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text) if text.isdigit() else float(text)
        except ValueError:
            return None
    if type(value) is float:
        if not math.isfinite(value) or not value.is_integer():
            return None
        value = int(value)
    if type(value) is int and 0 <= value < 1 << 64:  # fixed64's range
        return min(value, otlp.TIME_MAX)
    return None


def _long_bits_hint(value: Any) -> str:
    """What to add to an invalid-time note when the time is a ``{low, high}`` pair: how
    OpenTelemetry JS's OTLP encoding for protobuf holds 64-bit integers, which its
    ``createExportTraceServiceRequest`` (public until 0.5x) gives by default and some hand-
    written file exporters pass to ``JSON.stringify``. Times play no part in the rules:
    the note says why this one was ignored, and what to write instead."""
    if isinstance(value, dict) and {"low", "high"} <= value.keys():
        return " (a {low, high} pair, as OpenTelemetry JS encodes it for protobuf: OTLP JSON needs a decimal integer)"
    return ""


def _byte_ids_hint(span: Any) -> str:
    """What to add to a skipped span's warning when its ids are byte arrays written as JSON
    objects (``{"0": 242, "1": 118, …}``: ``JSON.stringify`` of a ``Uint8Array``), as the
    same JS encoding for protobuf leaves them (see :func:`_long_bits_hint`); its
    ``JsonTraceSerializer`` writes hex. Not read, as base64 ids are not (_base64_hint)."""
    if isinstance(span, dict) and any(_is_byte_object(span.get(k)) for k in ("traceId", "spanId", "parentSpanId")):
        return ("; its ids are byte arrays written as JSON objects, as OpenTelemetry JS encodes them"
                " for protobuf: OTLP JSON needs hex (its JsonTraceSerializer writes it)")
    return ""


def _is_byte_object(value: Any) -> bool:
    """``{"0": n, "1": n, …}``, bytes 0-255 under their indexes in order, up to 16 of them."""
    return (
        isinstance(value, dict) and 0 < len(value) <= 16
        and all(k == str(i) and type(v) is int and 0 <= v <= 255 for i, (k, v) in enumerate(value.items()))
    )


# A validation error inside a span's (or resource's) attributes, events or links.
_ITEMS_ERROR_RE = re.compile(r"- at `\$\.(?:attributes|events|links)\[")
_ITEM_CLASSES = {"attributes": otlp.KeyValue, "events": otlp.Event, "links": otlp.Link}


def _drop_bad_items(obj: dict[str, Any], cls: type) -> list[str]:
    """Drop, in place, the attributes, events and links of a span (or resource) dict that
    do not validate on their own; a warning text for each one dropped."""
    notes: list[str] = []
    for name in ("attributes", "events", "links") if cls is otlp.Span else ("attributes",):
        items = obj.get(name)
        if isinstance(items, list):
            obj[name] = _good_items(items, name, "", notes)
    return notes


def _good_items(items: list[Any], name: str, prefix: str, notes: list[str]) -> list[Any]:
    """The items of one list field that validate; an event or link whose own attributes
    fail keeps the rest of them."""
    item_cls = _ITEM_CLASSES[name]
    kept = []
    for i, item in enumerate(items):
        try:
            otlp.convert(item, item_cls)
        except msgspec.ValidationError as exc:
            error = str(exc)
            path = f"{prefix}{name}[{i}]"
            if name != "attributes" and isinstance(item, dict) and isinstance(item.get("attributes"), list):
                inner: list[str] = []
                item["attributes"] = _good_items(item["attributes"], "attributes", path + ".", inner)
                try:
                    otlp.convert(item, item_cls)
                except msgspec.ValidationError as exc2:
                    error = str(exc2)
                else:
                    notes.extend(inner)
                    kept.append(item)
                    continue
            notes.append(f"{_item_text(path, name, item)} dropped ({_clip(error, 120)})")
            continue
        kept.append(item)
    return kept


_KEY_SHOWN = 64  # characters of a dropped attribute's key a warning shows
_PARTIAL_WORD = re.compile(r"[\w\-:@]+$")


def _item_text(path: str, name: str, item: Any) -> str:
    """How a warning names a dropped item: an attribute by its key (escaped, clipped; never its value)."""
    if name == "attributes":
        key = item.get("key") if isinstance(item, dict) else None
        where = path.rpartition("attributes[")[0]
        if isinstance(key, str):
            if len(key) <= _KEY_SHOWN:
                return f"{where}attribute {json.dumps(key)}"
            # cut, then without the word the cut went through: the masking of flagged
            # values comes later, and a cut id ("acme-sec") is no longer one it finds
            return f"{where}attribute {json.dumps(_PARTIAL_WORD.sub('', key[:_KEY_SHOWN]))}…"
        return f"{where}attribute {path[len(where):]}"
    return path


_SEPARATORS_RE = re.compile(rb"[\s,]*")


def _error_line(data: bytes, exc: Exception) -> int:
    if _bad_utf8(exc):  # (msgspec's own error does not say where)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as bad:
            return data.count(b"\n", 0, bad.start) + 1
    m = _BYTE_RE.search(str(exc))
    if m:
        return data.count(b"\n", 0, int(m.group(1))) + 1
    if "truncated" in str(exc):
        return data.count(b"\n") + 1
    return 1
