"""``--format text``: what a person reads first: broken paths, then findings, then a verdict.

Worst paths first, each with its broken edge shown in place
(``GET /chat → agent.run → ✗ context-dropped → tool search_docs``), then the findings
by severity (capped: the JSON output has them all), counts by severity and one verdict
line. Everything taken from trace files is escaped for the terminal.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..graph import OTHER_OPERATIONS
from ..model import Analysis, Finding, Severity
from ..rules import first_few
from .common import (
    SpanNames,
    break_findings,
    clean,
    count_by_severity,
    failing,
    path_breaks,
    plural,
    sorted_paths,
    total_findings,
)

__all__ = ["TextReporter", "verdict", "MAX_PATHS", "MAX_FINDINGS"]

MAX_PATHS = 10
MAX_FINDINGS = 25
_LONG_PATH = 24  # operations in a path shown whole; longer ones keep their ends and breaks
_BREAKS_SHOWN = 5


def verdict(analysis: Analysis, fail_on: Severity) -> str:
    """One line: pass or fail against the threshold, and why."""
    n = failing(analysis, fail_on)
    if n:
        return f"FAIL: {plural(n, 'finding')} at or above {fail_on} (--fail-on {fail_on})"
    if total := total_findings(analysis):
        return f"PASS: {plural(total, 'finding')}, none at or above {fail_on}"
    return f"PASS: no findings in {plural(analysis.traces, 'trace')}"


_SERVICES_SHOWN = 20


def _services(services: Iterable[str], *, by_name: bool = True) -> str:
    """Service names for one line: the first few (sorted by name, or in the given order),
    then how many more."""
    names = sorted(services) if by_name else list(services)
    return first_few([clean(s, 40) for s in names], _SERVICES_SHOWN)


def severity_line(analysis: Analysis) -> str:
    counts = count_by_severity(analysis.findings, analysis.omitted)
    return ", ".join(f"{n:,} {sev}" for sev, n in counts.items())


class TextReporter:
    def __init__(self, *, fail_on: Severity = Severity.HIGH, unicode: bool = True) -> None:
        self.fail_on = fail_on
        self.arrow = " → " if unicode else " -> "
        self.cross = "✗" if unicode else "X"

    def render(self, analysis: Analysis) -> str:
        names = SpanNames(analysis)
        lines = [
            f"flowmap: {plural(analysis.traces, 'trace')}, {plural(analysis.spans, 'span')}"
            + (f" from {plural(len(analysis.files), 'file')}" if analysis.files else "")
            + (f" ({plural(analysis.transparent_spans, 'span')} of proxies passed through)" if analysis.transparent_spans else "")
            + (f"; services: {_services(analysis.services)}" if analysis.services else "")
        ]
        if analysis.folded_spans:
            folded = sorted(analysis.folded_spans, key=lambda s: -analysis.folded_spans[s])
            lines.append(
                f"(the flow map counts {plural(sum(analysis.folded_spans.values()), 'span')} of "
                f"{_services(folded, by_name=False)} under '{OTHER_OPERATIONS}': too many distinct span names; "
                "see max_operations_per_service, max_operations)"
            )
        lines += self._paths(analysis, names)
        lines += self._findings(analysis)
        lines += ["", f"By severity: {severity_line(analysis)}", verdict(analysis, self.fail_on)]
        return "\n".join(lines) + "\n"

    def path_line(
        self, labels: list[str], broken_at: int | None, rule: str | None, more: Iterable[tuple[int, str]] = (),
    ) -> str:
        """The path's operations, each break shown before the span it breaks at: the first
        (``broken_at``, ``rule``) and ``more`` further on, (index, rule).

        A long path (a recursive agent, a loop of tool calls) would make one line of
        thousands of operations, so only the ends and each break with the operation
        before it are kept, the rest counted (``… 95 more …``); after
        ``_BREAKS_SHOWN`` breaks, the others are counted."""
        parts = list(labels)
        breaks: set[int] = set()
        for at, why in ((broken_at, rule), *more):
            if at is not None and 0 <= at < len(parts):
                parts[at] = f"{self.cross} {why or 'broken'}{self.arrow}{parts[at]}"
                breaks.add(at)
        if len(parts) <= _LONG_PATH:
            return self.arrow.join(parts)
        keep = {0, 1, len(parts) - 1} | {i for at in sorted(breaks)[:_BREAKS_SHOWN] for i in (at - 1, at)}
        hidden = len(breaks - keep)
        out: list[str] = []
        skipped = 0
        for i, part in enumerate(parts):
            if i in keep:
                if skipped:
                    out.append(f"… {skipped:,} more …" if skipped > 1 else parts[i - 1])
                    skipped = 0
                out.append(part)
            else:
                skipped += 1
        line = self.arrow.join(out)
        if hidden > 0:
            line += f"  ({plural(hidden, 'more break')} not shown)"
        return line

    def _paths(self, analysis: Analysis, names: SpanNames) -> list[str]:
        rated = sorted_paths(analysis)
        if not rated:
            return []
        broken = [(p, s) for p, s in rated if s is not None]
        breaks = break_findings(analysis)
        # Many traces take the same path: show each distinct path once, with its count.
        groups: dict[tuple[Severity | None, str], list[str]] = {}
        for path, sev in broken or rated:
            more = [(i, f.rule) for i, f in path_breaks(path, breaks)]
            line = self.path_line(names.labels(path), path.broken_at, path.break_rule, more)
            groups.setdefault((sev, line), []).append(path.trace_id.lower())
        out = ["", f"Paths from entry to tool call: {len(broken):,} broken in a sample of {len(rated):,}"]
        for (sev, line), traces in list(groups.items())[:MAX_PATHS]:
            mark = f"{str(sev).upper():<8}" if sev is not None else "ok      "
            out.append(f"  {mark} {line}")
            out.append(f"           {_traces(traces)}")
        hidden = len(groups) - MAX_PATHS
        if hidden > 0:
            out.append(f"  … and {hidden:,} more distinct paths (see --format json)")
        return out

    def _findings(self, analysis: Analysis) -> list[str]:
        if not analysis.findings:
            return ["", "No findings."]
        ordered = sorted(analysis.findings, key=lambda f: -int(f.severity))  # stable: analysis order
        groups: dict[tuple, list[Finding]] = {}
        for f in ordered:
            key = (f.rule, int(f.severity), f.service, f.parent_service, f.parent_name, f.span_name, f.boundary)
            groups.setdefault(key, []).append(f)
        out = ["", f"Findings: {len(ordered):,} ({len(groups):,} distinct)"]
        for same in list(groups.values())[:MAX_FINDINGS]:
            out += self._finding(same)
        hidden = len(groups) - MAX_FINDINGS
        if hidden > 0:
            out.append(f"  … and {hidden:,} more distinct findings (see --format json)")
        return out

    def _finding(self, same: list[Finding]) -> list[str]:
        f = same[0]
        sev = str(Severity(f.severity)).upper()
        where = clean(f.span_name, 80)
        service = f"{clean(f.service, 40)}: " if f.service else ""
        if f.parent_name is None:
            where = service + where
        elif f.parent_service is not None and f.parent_service != f.service:
            # each end under its own service (a remote parent, a link)
            parent = f"{clean(f.parent_service, 40)}: {clean(f.parent_name, 80)}"
            where = f"{parent}{self.arrow}{self.cross} {service}{where}"
        else:
            where = f"{service}{clean(f.parent_name, 80)}{self.arrow}{self.cross} {where}"
        if f.boundary:
            where += f" [{clean(f.boundary, 30)}]"
        example = f"span {f.span_id.lower()} in trace {f.trace_id.lower()}"
        seen = f"{len(same):,} times, e.g. {example}" if len(same) > 1 else example
        out = [f"  {sev:<8} {f.rule:<20} {where}", f"           {clean(f.message, 300)}", f"           {seen}"]
        if f.likely_parent:
            out.append(f"           likely belonged under: {clean(f.likely_parent, 120)}")
        return out


def _traces(trace_ids: list[str]) -> str:
    """Where a group of paths was seen: a trace can hold several (one per tool call), so
    the paths are counted apart from the traces when they differ."""
    traces = len(set(trace_ids))
    where = f"trace {trace_ids[0]}" if traces == 1 else f"{traces:,} traces, e.g. {trace_ids[0]}"
    return where if len(trace_ids) == traces else f"{len(trace_ids):,} paths in {where}"
