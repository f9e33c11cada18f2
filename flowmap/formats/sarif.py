"""``--format sarif``: SARIF 2.1.0 in the subset GitHub code scanning accepts.

A finding is located at the trace file line its span was read from (``Finding.origin``
or the span's ``origin``): GitHub needs a physical location for every result, and the
trace file is the artifact the finding was made from. A file name holding a flagged raw
tenant id comes masked from the analysis, and stays so here: such an alert points at a
file code scanning cannot open rather than publish the id. ``partialFingerprints`` hash the
rule, service, span name, parent span name and boundary, not trace or span ids (new in every
run): the same problem found by the next CI run keeps its code-scanning alert instead of
closing it and opening another, and its occurrences in many traces are one alert.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..model import Analysis, Finding, Severity
from .common import dump_json, split_origin
from .rules import RULE_IDS, rule_doc

__all__ = ["SarifReporter", "to_sarif", "SARIF_SCHEMA", "LEVELS", "SECURITY_SEVERITY", "MAX_RESULTS"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
# No informationUri/helpUri: flowmap has no public home page to point at, and a made-up
# link would be a broken one in every code-scanning alert; the rules carry their help.
#: results in one run: GitHub code scanning rejects a SARIF run with more than 25,000
MAX_RESULTS = 25_000
#: v1 hashed trace and span ids, which are new in every run; v2 names the problem instead
FINGERPRINT_KEY = "flowmapFinding/v2"
SRCROOT = "%SRCROOT%"

LEVELS: dict[Severity, str] = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
# GitHub maps >= 9.0 critical, 7.0-8.9 high, 4.0-6.9 medium, 0.1-3.9 low.
SECURITY_SEVERITY: dict[Severity, str] = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "1.0",
}


def _version() -> str:
    from .. import __version__

    return __version__


def fingerprint(f: Finding) -> str:
    """The same in every run for the same problem: rule, service, span name, parent's name, boundary.

    Trace and span ids are new in every run, and the message's wording may change between
    releases, so neither is part of it. The names are the finding's as printed, masked
    where they held a flagged raw tenant id: a hash of a raw id could be reversed by
    trying the tenants' ids, so none is ever hashed here.
    """
    raw = json.dumps([f.rule, f.service, f.span_name, f.parent_name, f.boundary])  # ASCII, None apart from ""
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _artifact(file: str, cwd: Path) -> dict[str, Any]:
    """A repository-relative URI when the file is under the working directory."""
    path = Path(file)
    absolute = Path(os.path.normpath(path if path.is_absolute() else cwd / path))
    try:
        rel = absolute.relative_to(cwd)
    except ValueError:
        try:  # the same place reached through a symlink (macOS /tmp, a linked checkout)
            rel = Path(os.path.realpath(absolute)).relative_to(os.path.realpath(cwd))
        except ValueError:
            return {"uri": absolute.as_uri()}
    # (a name that is no UTF-8, read as surrogate escapes: its bytes percent-encoded)
    return {"uri": quote(os.fsencode(rel.as_posix())), "uriBaseId": SRCROOT}


def _origin(analysis: Analysis, f: Finding) -> str | None:
    origin = getattr(f, "origin", None)
    if origin:
        return origin
    trace = analysis.sample_traces.get(f.trace_id)
    span = trace.spans.get(f.span_id) if trace is not None else None
    return span.origin if span is not None and span.origin else None


def _location(analysis: Analysis, f: Finding, cwd: Path) -> dict[str, Any]:
    loc = split_origin(_origin(analysis, f))
    if loc is None:  # nothing better known: the first input file
        loc = (analysis.files[0], None) if analysis.files else ("flowmap-traces.jsonl", None)
    file, line = loc
    return {
        "physicalLocation": {
            "artifactLocation": _artifact(file, cwd),
            "region": {"startLine": max(1, line or 1)},
        },
        "message": {"text": f"span {f.span_name!r} in trace {f.trace_id.lower()}"},
    }


def _rule(doc_id: str) -> dict[str, Any]:
    doc = rule_doc(doc_id)
    return {
        "id": doc.id,
        "name": doc.name,
        "shortDescription": {"text": doc.short},
        "fullDescription": {"text": doc.full},
        "help": {"text": doc.full, "markdown": f"**{doc.id}** (up to {doc.severity}): {doc.full}"},
        "defaultConfiguration": {"level": LEVELS[doc.severity]},
        "properties": {
            "security-severity": SECURITY_SEVERITY[doc.severity],
            "tags": list(doc.tags),
            "precision": "high",
        },
    }


def _result(analysis: Analysis, f: Finding, index: int, cwd: Path) -> dict[str, Any]:
    sev = Severity(f.severity)
    props: dict[str, Any] = {
        "severity": str(sev),
        "trace_id": f.trace_id.lower(),
        "span_id": f.span_id.lower(),
    }
    for key in ("service", "boundary", "parent_name", "parent_service"):
        value = getattr(f, key)
        if value is not None:
            props[key] = value
    if f.parent_span_id:
        props["parent_span_id"] = f.parent_span_id.lower()
    if f.parent_trace_id:
        props["parent_trace_id"] = f.parent_trace_id.lower()
    return {
        "ruleId": f.rule,
        "ruleIndex": index,
        "level": LEVELS[sev],
        "message": {"text": f.message or rule_doc(f.rule).short},
        "locations": [_location(analysis, f, cwd)],
        "partialFingerprints": {FINGERPRINT_KEY: fingerprint(f)},
        "properties": props,
    }


def _invocation(analysis: Analysis, listed: list[Finding]) -> dict[str, Any]:
    invocation: dict[str, Any] = {"executionSuccessful": True}
    left_out = len(analysis.findings) - len(listed) + sum(analysis.omitted.values())
    if left_out:
        invocation["toolExecutionNotifications"] = [{
            "level": "warning",
            "message": {"text": f"{left_out:,} less severe findings are not listed (at most "
                                f"{MAX_RESULTS:,} results a run, or max_findings); "
                                "flowmap check --format json counts them all"},
        }]
    return invocation


def to_sarif(analysis: Analysis, *, cwd: Path | None = None) -> dict[str, Any]:
    """The SARIF log as plain Python data."""
    cwd = Path(os.path.normpath(cwd or Path.cwd()))
    rule_ids = list(RULE_IDS) + sorted({f.rule for f in analysis.findings} - set(RULE_IDS))
    listed = analysis.findings
    if len(listed) > MAX_RESULTS:  # keep the worst (the analyzer lists them worst first anyway)
        listed = sorted(listed, key=lambda f: -int(f.severity))[:MAX_RESULTS]
    index = {rule_id: i for i, rule_id in enumerate(rule_ids)}
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "flowmap",
                        "version": _version(),
                        "semanticVersion": _version(),
                        "rules": [_rule(r) for r in rule_ids],
                    }
                },
                "originalUriBaseIds": {SRCROOT: {"uri": cwd.as_uri().rstrip("/") + "/"}},
                "invocations": [_invocation(analysis, listed)],
                "results": [_result(analysis, f, index[f.rule], cwd) for f in listed],
                "columnKind": "unicodeCodePoints",
            }
        ],
    }


class SarifReporter:
    def __init__(self, *, fail_on: Severity = Severity.HIGH, unicode: bool = True) -> None:
        self.fail_on = fail_on

    def render(self, analysis: Analysis) -> str:
        return dump_json(to_sarif(analysis))
