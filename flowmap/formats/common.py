"""Small helpers every reporter shares: counts, verdicts, paths as names, safe text."""

from __future__ import annotations

import json
import re
import unicodedata
import uuid
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Any

import msgspec

from ..model import Analysis, Finding, Severity, TracePath
from ..rules import BREAK_RULES
from .rules import RULE_IDS

__all__ = [
    "dump_json",
    "json_chunks",
    "STREAMED",
    "plural",
    "count_by_rule",
    "count_by_severity",
    "at_or_above",
    "clean",
    "SpanNames",
    "sorted_paths",
    "worst_by_span",
    "break_findings",
    "path_breaks",
    "path_severity",
    "split_origin",
]

SEVERITIES_DESC: tuple[Severity, ...] = tuple(sorted(Severity, reverse=True))
Omitted = Mapping[tuple[str, Severity], int]
_NONE: Omitted = {}


def dump_json(doc: Any, *, sort_keys: bool = False) -> str:
    """Indented JSON text, as ``json.dumps(indent=2, ensure_ascii=False)`` writes it.

    msgspec writes the same bytes about ten times faster, which matters for inputs with
    100,000 findings. A string it cannot encode holds a lone surrogate (a file name
    that is not UTF-8, a span built in memory): it is written with U+FFFD in its place,
    as the loader reads such text, since an escaped lone surrogate is not valid for
    strict JSON parsers.
    """
    return (_pretty(doc, sort_keys) + b"\n").decode("utf-8")


def json_chunks(doc: Any, items: Iterable[Any], depth: int, *, sort_keys: bool = False) -> Iterator[bytes]:
    """The bytes of ``dump_json(doc)``, in pieces, where the one value of ``doc`` that is
    :data:`STREAMED` stands for the list ``items``, whose items are ``depth`` levels deep
    (2 for a list under a top-level key): each item is encoded on its own, so a list of a
    million findings is never held as text or as dicts all at once."""
    sentinel = f"flowmap-streamed-{uuid.uuid4().hex}"  # unguessable: never in the data
    text = _pretty(_replace_streamed(doc, sentinel), sort_keys)
    before, after = text.split(b'"' + sentinel.encode() + b'"')
    yield before
    pad = b"  " * depth
    first = True
    for item in items:
        yield (b"[\n" if first else b",\n") + pad + _pretty(item, sort_keys).replace(b"\n", b"\n" + pad)
        first = False
    yield (b"[]" if first else b"\n" + pad[:-2] + b"]") + after + b"\n"


#: the placeholder of the streamed list in a document given to json_chunks
STREAMED: Any = object()


def _replace_streamed(doc: Any, sentinel: str) -> Any:
    if doc is STREAMED:
        return sentinel
    if isinstance(doc, dict):
        return {k: _replace_streamed(v, sentinel) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_replace_streamed(v, sentinel) for v in doc]
    return doc


def _pretty(doc: Any, sort_keys: bool) -> bytes:
    order = "sorted" if sort_keys else None
    try:
        raw = msgspec.json.encode(doc, order=order)
    except UnicodeError:
        doc = _without_surrogates(doc)
        try:
            raw = msgspec.json.encode(doc, order=order)
        except (msgspec.EncodeError, TypeError, OverflowError):
            return json.dumps(doc, sort_keys=sort_keys, indent=2, ensure_ascii=False).encode("utf-8")
    except (msgspec.EncodeError, TypeError, OverflowError):
        return json.dumps(_without_surrogates(doc), sort_keys=sort_keys, indent=2, ensure_ascii=False).encode("utf-8")
    return msgspec.json.format(raw, indent=2)


def _without_surrogates(doc: Any) -> Any:
    if isinstance(doc, str):
        return _SURROGATE.sub("\ufffd", doc)
    if isinstance(doc, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in doc.items()}
    if isinstance(doc, (list, tuple)):
        return [_without_surrogates(v) for v in doc]
    return doc


_SURROGATE = re.compile("[\ud800-\udfff]")


def plural(n: int, word: str) -> str:
    """``1 trace``, ``2 traces``, ``12,345 spans``: counts in human summaries."""
    return f"{n} {word}" if n == 1 else f"{n:,} {word}s"


def count_by_rule(findings: Iterable[Finding], omitted: Omitted = _NONE) -> dict[str, int]:
    """Counts for every contract rule (zeros included, so dashboards see stable keys);
    ``omitted``: :attr:`Analysis.omitted`, the findings a cap left out of the list."""
    counts = Counter(f.rule for f in findings)
    for (rule, _), n in omitted.items():
        counts[rule] += n
    out = {rule: counts.pop(rule, 0) for rule in RULE_IDS}
    out.update(sorted(counts.items()))
    return out


def count_by_severity(findings: Iterable[Finding], omitted: Omitted = _NONE) -> dict[str, int]:
    counts = Counter(Severity(f.severity) for f in findings)
    for (_, sev), n in omitted.items():
        counts[Severity(sev)] += n
    return {str(sev): counts.get(sev, 0) for sev in SEVERITIES_DESC}


def at_or_above(findings: Iterable[Finding], threshold: Severity) -> list[Finding]:
    """The listed findings at or above ``threshold``."""
    return [f for f in findings if f.severity >= threshold]


def failing(analysis: Analysis, threshold: Severity) -> int:
    """How many findings make ``flowmap check --fail-on threshold`` exit 1 (those a cap
    left out of the list included)."""
    left_out = sum(n for (_, sev), n in analysis.omitted.items() if sev >= threshold)
    return len(at_or_above(analysis.findings, threshold)) + left_out


def total_findings(analysis: Analysis) -> int:
    return len(analysis.findings) + sum(analysis.omitted.values())


def clean(text: object, limit: int = 160) -> str:
    """``text`` made safe for a terminal: control and format characters escaped, length capped.

    Span names come from whatever wrote the trace file; an escape sequence or a bidi
    override in one must not repaint the operator's terminal or hide a finding.
    """
    s = "" if text is None else str(text)
    # every character gives one or more: only the first limit + 1 can be seen (a 4,096-
    # character span name shown in 200 was escaped whole, for every place it is shown)
    s = s[: limit + 1]
    out = []
    for ch in s:
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cf", "Zl", "Zp"):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    s = "".join(out)
    return s if len(s) <= limit else s[: limit - 1] + "…"


class SpanNames:
    """Names and services of spans, from the sample traces and, failing that, the findings."""

    def __init__(self, analysis: Analysis) -> None:
        self._spans: dict[tuple[str, str], tuple[str, str | None]] = {}
        for f in analysis.findings:
            trace_id = f.trace_id.lower()
            self._spans.setdefault((trace_id, f.span_id.lower()), (f.span_name, f.service))
            if f.parent_span_id and f.parent_name is not None:
                # (a linked "parent" is in another trace: the one it is in)
                parent_trace = (f.parent_trace_id or trace_id).lower()
                self._spans.setdefault((parent_trace, f.parent_span_id.lower()), (f.parent_name, None))
        self._traces = analysis.sample_traces

    def get(self, trace_id: str, span_id: str) -> tuple[str, str | None]:
        trace = self._traces.get(trace_id)
        if trace is not None:
            span = trace.spans.get(span_id)
            if span is not None:
                return span.name, span.service
        key = (trace_id.lower(), span_id.lower())
        return self._spans.get(key, (f"span {span_id[:8].lower()}", None))

    def labels(self, path: TracePath) -> list[str]:
        """One label per span of ``path``; the service is named where it changes."""
        labels: list[str] = []
        previous: str | None = None
        for span_id in path.span_ids:
            name, service = self.get(path.trace_id, span_id)
            label = clean(name, 80)
            if service and service != previous:
                label = f"{clean(service, 40)}: {label}"
                previous = service
            labels.append(label)
        return labels


def path_severity(path: TracePath, by_span: dict[tuple[str, str], Finding]) -> Severity | None:
    """Severity of the finding at the path's broken edge (None for an intact path)."""
    if path.broken_at is None or not (0 <= path.broken_at < len(path.span_ids)):
        return None
    known = getattr(path, "severity", None)
    if known is not None:
        return Severity(known)
    f = by_span.get((path.trace_id.lower(), path.span_ids[path.broken_at].lower()))
    return Severity(f.severity) if f is not None else Severity.HIGH


def worst_by_span(findings: Iterable[Finding], rules: Collection[str] | None = None) -> dict[tuple[str, str], Finding]:
    """(trace id, span id) -> the worst finding there (of ``rules`` only, when given), ids
    lowercase."""
    out: dict[tuple[str, str], Finding] = {}
    for f in findings:
        if rules is None or f.rule in rules:
            key = (f.trace_id.lower(), f.span_id.lower())
            if key not in out or f.severity > out[key].severity:
                out[key] = f
    return out


def break_findings(analysis: Analysis) -> dict[tuple[str, str], Finding]:
    """(trace id, span id) -> the worst finding there of a rule that breaks a path
    (:data:`flowmap.rules.BREAK_RULES`), ids lowercase."""
    return worst_by_span(analysis.findings, BREAK_RULES)


def path_breaks(path: TracePath, breaks: dict[tuple[str, str], Finding]) -> list[tuple[int, Finding]]:
    """The spans of ``path`` after its first break that break it again (a tenant dropped,
    then another bound further on: a switch through untagged spans), with their findings."""
    if path.broken_at is None:
        return []
    tid = path.trace_id.lower()
    found = []
    for i in range(path.broken_at + 1, len(path.span_ids)):
        f = breaks.get((tid, path.span_ids[i].lower()))
        if f is not None:
            found.append((i, f))
    return found


def sorted_paths(analysis: Analysis) -> list[tuple[TracePath, Severity | None]]:
    """Broken paths first, worst severity first (of any break on the path: a critical
    switch after a dropped tenant rates its path critical); otherwise the analysis's own
    order."""
    by_span = worst_by_span(analysis.findings)
    breaks = break_findings(analysis)
    rated = []
    for p in analysis.paths:
        sev = path_severity(p, by_span)
        for _, f in path_breaks(p, breaks):
            sev = max(sev, Severity(f.severity)) if sev is not None else Severity(f.severity)
        rated.append((p, sev))
    return sorted(rated, key=lambda ps: -1 if ps[1] is None else -int(ps[1]) - 10)


def split_origin(origin: str | None) -> tuple[str, int | None] | None:
    """``"file:line"`` → ``(file, line)``; a bare file name gives ``(file, None)``."""
    if not origin:
        return None
    file, sep, line = origin.rpartition(":")
    if sep and file and line.isdigit():
        return file, int(line)
    return origin, None
