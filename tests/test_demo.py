"""`flowmap demo` end to end: real processes, real HTTP on loopback, the real SDK and analyzer.

The leaky run must catch every leak switch as its own rule on the operation where the
bug lives; the fixed run (same traffic) must find nothing at medium or above; no raw
tenant id may reach the trace file, the report or the console.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flowmap.analysis import analyze
from flowmap.demo import DEMO_KEY
from flowmap.demo.data import TENANTS
from flowmap.demo.leaks import LEAKS, Leaks
from flowmap.model import Severity

RAW_IDS = [t.tenant_id for t in TENANTS]
AGENT = "demo-agent-api"


def _run_demo(tmp: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    out, report = tmp / "traces" / "demo.jsonl", tmp / "reports" / "map.html"
    proc = subprocess.run(
        [sys.executable, "-m", "flowmap", "demo", "--out", str(out), "--report", str(report), *extra],
        cwd=tmp, capture_output=True, text=True, timeout=120,
    )
    return proc, out, report


@pytest.fixture(scope="module")
def leaky(tmp_path_factory):
    return _run_demo(tmp_path_factory.mktemp("leaky"))


@pytest.fixture(scope="module")
def fixed(tmp_path_factory):
    return _run_demo(tmp_path_factory.mktemp("fixed"), "--fixed")


def test_leaky_demo_runs_and_says_it_uses_its_own_key(leaky):
    proc, out, report = leaky
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert "demo" in first and "key" in first and DEMO_KEY in first
    assert out.stat().st_size > 0 and report.stat().st_size > 0
    assert "16 answered" in proc.stdout  # every request of every tenant was served


@pytest.mark.parametrize("leak", sorted(LEAKS))
def test_every_leak_is_caught_as_its_rule_on_its_operation(leaky, leak):
    _, out, _ = leaky
    info = LEAKS[leak]
    analysis = analyze([out])
    hits = [f for f in analysis.findings
            if f.rule == info.rule and f.service == info.service and f.span_name == info.span]
    assert hits, f"{leak}: no {info.rule} finding on '{info.service} {info.span}'"
    assert all(f.severity >= Severity.HIGH for f in hits)


def test_leaky_demo_prints_its_findings_and_every_leak_caught(leaky):
    proc, _, _ = leaky
    assert "MISSED" not in proc.stdout
    for leak, info in LEAKS.items():
        assert f"caught  {leak}: {info.rule}" in proc.stdout
    assert "critical" in proc.stdout and "cross-tenant" in proc.stdout


def test_cache_leak_serves_one_tenants_entry_to_another(leaky):
    """The cross-tenant edge joins a cache hit to the span that filled it for another tenant."""
    _, out, _ = leaky
    analysis = analyze([out])
    cross = [f for f in analysis.findings if f.rule == "cross-tenant"]
    assert cross and all(f.span_name == "cache.get account-summary" for f in cross)
    assert {f.parent_name for f in cross} == {"cache.set account-summary"}
    assert len({f.trace_id for f in cross}) >= 3  # at least three tenants were served another's entry


def test_thread_pool_orphans_are_placed_under_the_search_tool(leaky):
    """Only long queries go to the pool, so flowmap learns where the orphans belonged."""
    _, out, _ = leaky
    analysis = analyze([out])
    embed, search = f"{AGENT} embeddings scripted-embedder", f"{AGENT} execute_tool search_docs"
    orphans = [f for f in analysis.findings if f.rule == "orphan-root"]
    assert orphans and {f.span_name for f in orphans} == {"embeddings scripted-embedder"}
    assert {f.likely_parent for f in orphans} == {search}
    assert all(f"likely belonged under '{search}'" in f.message for f in orphans)
    edge = analysis.flow.edges[(search, embed)]
    assert edge.orphaned == len(orphans)  # the long queries, run in the pool
    assert edge.inherited > 0  # the short ones, embedded inline under their tool call


def test_fixed_demo_finds_nothing_at_medium_or_above(fixed):
    proc, out, report = fixed
    assert proc.returncode == 0, proc.stderr
    assert "16 answered" in proc.stdout
    analysis = analyze([out])
    assert analysis.spans > 100 and analysis.services == {"demo-agent-api", "demo-tool-service"}
    assert len(analysis.tenant_tags) == len(TENANTS)
    serious = [(f.rule, f.span_name) for f in analysis.findings if f.severity >= Severity.MEDIUM]
    assert serious == []
    assert "no finding at medium or above" in proc.stdout
    assert report.exists()


def test_fixed_demo_is_one_trace_per_request_across_both_services(fixed):
    """The tool service continues the agent's trace and authenticates the same tenant."""
    _, out, _ = fixed
    analysis = analyze([out])
    assert analysis.traces == 16


@pytest.mark.parametrize("run", ["leaky", "fixed"])
def test_no_raw_tenant_id_anywhere(run, request):
    proc, out, report = request.getfixturevalue(run)
    for text in (out.read_text(), report.read_text(), proc.stdout, proc.stderr):
        for raw in RAW_IDS:
            assert raw not in text


def test_leak_switches_round_trip_through_the_environment():
    leaks = Leaks.only("cache_key_without_tenant", "model_chosen_tenant")
    assert Leaks.from_env(leaks.to_env()) == leaks
    assert Leaks.from_env("") == Leaks.none()
    assert set(Leaks.all_on().enabled()) == set(LEAKS)
    with pytest.raises(ValueError):
        Leaks.only("not_a_leak")
