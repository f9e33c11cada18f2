"""The bundled multi-tenant agent platform that ``flowmap demo`` runs and analyses.

Two real services on loopback (an agent API and a tool service, each its own process
configured with flowmap), a scripted model, a vector index, conversation memory, a
lookup cache and concurrent tenants. Each leak real platforms ship is a named switch
(:mod:`flowmap.demo.leaks`); ``run_demo(fixed=True)`` runs the same traffic with every
leak fixed, and must produce no finding at medium or above.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from ..model import Analysis, Severity
from .leaks import LEAKS, Leaks

__all__ = ["run_demo", "DEMO_KEY", "Leaks", "LEAKS", "caught_leaks"]

#: The demo's own tenant key: public, so its tags are not secret (the tenants are made up).
DEMO_KEY = "flowmap-demo-public-key"
DEFAULT_OUT = Path("flowmap-traces.jsonl")
DEFAULT_REPORT = Path("reports/risk-map.html")


def caught_leaks(analysis: Analysis, leaks: Leaks) -> dict[str, bool]:
    """For each leak switched on: did flowmap report its rule on its operation?"""
    seen = {(f.rule, f.service, f.span_name) for f in analysis.findings}
    return {name: (LEAKS[name].rule, LEAKS[name].service, LEAKS[name].span) in seen for name in leaks.enabled()}


def run_demo(
    *,
    fixed: bool = False,
    out: Path | str | None = None,
    report: Path | str | None = None,
    echo: Callable[[str], None] = print,
) -> int:
    """Run the platform (leaky, or ``fixed``), write its trace file and risk map, print findings.

    The trace file is replaced, not appended to, so the findings are this run's. Returns 0
    (a demo that ran is a success, whatever it found).
    """
    from ..analysis import analyze
    from ..html import write_report
    from .services import start_services
    from .traffic import run_traffic

    out = Path(out) if out is not None else DEFAULT_OUT
    report = Path(report) if report is not None else DEFAULT_REPORT
    leaks = Leaks.none() if fixed else Leaks.all_on()
    echo(f"flowmap demo: using the demo's own tenant key {DEMO_KEY!r} "
         "(public: its tags are not secret; the tenants are made up)")
    state = "every leak fixed" if fixed else f"{len(leaks.enabled())} leaks switched on"
    echo(f"platform: agent API + tool service on 127.0.0.1, {state}")

    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    logs = Path(tempfile.mkdtemp(prefix="flowmap-demo-"))
    with start_services(leaks, out, DEMO_KEY, logs) as services:
        exchanges = asyncio.run(run_traffic(services.agent_url))
    failed = [e for e in exchanges if e.status != 200]
    if failed:
        echo(f"warning: {len(failed)} of {len(exchanges)} requests failed; service logs in {logs}")
    else:
        shutil.rmtree(logs, ignore_errors=True)
    echo(f"traffic: {len(exchanges)} requests from {len({e.user for e in exchanges})} tenants, "
         f"{len(exchanges) - len(failed)} answered")

    analysis = analyze([out])
    written = write_report(analysis, report)
    _print_findings(analysis, echo)
    if not fixed:
        echo("leaks caught:")
        for name, caught in caught_leaks(analysis, leaks).items():
            info = LEAKS[name]
            mark = "caught" if caught else "MISSED"
            echo(f"  {mark:7} {name}: {info.rule} at '{info.service} {info.span}'")
    else:
        serious = [f for f in analysis.findings if f.severity >= Severity.MEDIUM]
        echo("verdict: " + ("no finding at medium or above: the fixed platform keeps every tenant apart"
                            if not serious else f"{len(serious)} findings at medium or above"))
    echo(f"trace file: {out}")
    echo(f"risk map:   {written}  (open it in a browser)")
    sys.stdout.flush()
    return 0


def _print_findings(analysis: Analysis, echo: Callable[[str], None]) -> None:
    echo(f"analysed {analysis.spans} spans in {analysis.traces} traces from "
         f"{len(analysis.services)} services, {len(analysis.tenant_tags)} tenant tags")
    if not analysis.findings:
        echo("findings: none")
        return
    groups = Counter((f.severity, f.rule, f.service, f.span_name) for f in analysis.findings)
    echo(f"findings ({len(analysis.findings)}):")
    for (severity, rule, service, span), n in sorted(groups.items(), key=lambda kv: (-kv[0][0], kv[0][1:])):
        echo(f"  {str(severity):8} {rule:20} x{n:<3} {service} {span}")
