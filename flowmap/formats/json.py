"""``--format json``: the contract's versioned document (../shared/DESIGN.md, "findings").

``version``, ``summary.{traces,spans,findings}`` and the ten keys of every finding are
the contract; everything else here is additive (``summary.severities``, ``flow_map``,
``paths``, ``warnings``). Keys are sorted and findings keep the analysis order, so the
same input gives byte-identical output.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from ..model import Analysis, Finding, FlowMap, Severity, TracePath
from .common import STREAMED, count_by_rule, count_by_severity, json_chunks, split_origin

__all__ = ["JsonReporter", "to_document", "FORMAT_VERSION"]

FORMAT_VERSION = 1


def _hex(value: str | None) -> str | None:
    return value.lower() if value else None


def finding_json(f: Finding) -> dict[str, Any]:
    doc = f.to_json()
    doc.update(
        severity=str(Severity(f.severity)),
        trace_id=_hex(f.trace_id),
        span_id=_hex(f.span_id),
        parent_span_id=_hex(f.parent_span_id),
        parent_trace_id=_hex(f.parent_trace_id),
    )
    loc = split_origin(getattr(f, "origin", None))
    doc["origin"] = None if loc is None else {"file": loc[0], "line": loc[1]}
    return doc


def flow_map_json(flow: FlowMap) -> dict[str, Any]:
    nodes = [dataclasses.asdict(n) for _, n in sorted(flow.nodes.items())]
    edges = []
    for _, e in sorted(flow.edges.items()):
        doc = dataclasses.asdict(e)
        doc["total"] = e.total
        doc["example_traces"] = [t.lower() for t in e.example_traces]
        edges.append(doc)
    return {"nodes": nodes, "edges": edges}


def path_json(p: TracePath) -> dict[str, Any]:
    return {
        "trace_id": p.trace_id.lower(),
        "span_ids": [s.lower() for s in p.span_ids],
        "broken_at": p.broken_at,
        "break_rule": p.break_rule,
    }


def to_document(analysis: Analysis, *, findings: Any = None) -> dict[str, Any]:
    """The JSON document as plain Python data (what ``--format json`` prints);
    ``findings`` stands in for the list of findings if given."""
    return {
        "version": FORMAT_VERSION,
        "summary": {
            "traces": analysis.traces,
            "spans": analysis.spans,
            "findings": count_by_rule(analysis.findings, analysis.omitted),
            "severities": count_by_severity(analysis.findings, analysis.omitted),
            # findings counted above but left out of the list by max_findings
            "omitted_findings": sum(analysis.omitted.values()),
            # spans of service-mesh proxies and transparent_services, judged as if absent
            "transparent_spans": analysis.transparent_spans,
            # spans the flow map counts under "<service> (other operations)": past the caps
            # on distinct span names (max_operations_per_service, max_operations)
            "folded_spans": sum(analysis.folded_spans.values()),
            "files": list(analysis.files),
            "services": sorted(analysis.services),
        },
        "findings": [finding_json(f) for f in analysis.findings] if findings is None else findings,
        "flow_map": flow_map_json(analysis.flow),
        "paths": [path_json(p) for p in analysis.paths],
        "warnings": list(analysis.warnings),
    }


class JsonReporter:
    def __init__(self, *, fail_on: Severity = Severity.HIGH, unicode: bool = True) -> None:
        self.fail_on = fail_on

    def render(self, analysis: Analysis) -> str:
        return b"".join(self.chunks(analysis)).decode("utf-8")

    def chunks(self, analysis: Analysis) -> Iterator[bytes]:
        """The document's bytes in pieces, each finding encoded on its own (see
        common.json_chunks): what the CLI writes, so that memory does not grow with them."""
        doc = to_document(analysis, findings=STREAMED)
        return json_chunks(doc, map(finding_json, analysis.findings), 2, sort_keys=True)
