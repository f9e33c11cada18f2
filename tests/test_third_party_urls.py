"""Tenants in REST paths and per-tenant queue names, as contrib's FastAPI, httpx and requests
instrumentations record them (fixtures: rest-paths-*, generators/rest_path_traces.py)."""

from __future__ import annotations

import json

import pytest

from flowmap.tagging import tag_for
from test_third_party import FIXTURES, _assert_never_shown, _check, _load

KEY = "rest-path-fixtures-key"  # the test key the fixtures' tags were made with
RAW = ("acme-corp", "globex-inc", "org_4411", "org_5522")  # the slugs and billing orgs in the raw file


def _leak(span: str, boundary: str, where: str) -> tuple[str, str, str, str, str]:
    return ("tenant-in-telemetry", "high", span, boundary, where)


# file -> (rule, severity, span, boundary, where the raw id is) of flowmap check --format json
FINDINGS = {
    "rest-paths-raw.jsonl": [
        _leak("GET /tenants/{tenant_id}/orders", "http.server",
              "attribute 'http.target → tenant_id', attribute 'url.path → tenant_id', attribute 'http.url → tenant_id'"),
        _leak("GET /v1/tenants/{tenant_id}/invoices", "http.server",
              "attribute 'http.target → tenant_id', attribute 'url.path → tenant_id', attribute 'http.url → tenant_id'"),
        _leak("GET /v1/orgs/{org_id}/invoices", "http.server",
              "attribute 'http.target → org_id', attribute 'url.path → org_id', attribute 'http.url → org_id'"),
        _leak("GET", "http.client", "attribute 'http.url → tenants', attribute 'url.full → tenants'"),
        _leak("GET", "http.client", "attribute 'http.url → orgs', attribute 'url.full → orgs'"),
        _leak("orders.tenant-[masked] publish", "queue.publish", "attribute 'messaging.destination.name → tenant'"),
        _leak("tenant.[masked].orders publish", "queue.publish", "attribute 'messaging.destination.name → tenant'"),
    ] * 2,
    "rest-paths-tagged.jsonl": [],
    "rest-paths-nearmiss.jsonl": [],
    # billing binds no tenant: its server spans run without the caller's (the tags in the
    # paths are no raw id)
    "rest-paths-dropped.jsonl": [("context-dropped", "high", span, "http.server", "") for span in (
        "GET /v1/tenants/{tenant_id}/invoices", "GET /v1/orgs/{org_id}/invoices")] * 2,
}


@pytest.mark.parametrize("name", sorted(FINDINGS))
def test_rest_path_findings_through_the_command_line(name, tmp_path, monkeypatch):
    """The raw file had no finding (the slugs and orgs in its paths and queue names were
    shown in every output); now each span holding one is flagged, where it is; the tagged
    and near-miss files (the opaque tag, /tenants/me, /tenants, shared queues) stay silent."""
    result = _check(name, tmp_path, monkeypatch, "--format", "json")
    expected = FINDINGS[name]
    assert result.exit_code == (1 if expected else 0), result.output
    out = json.loads(result.stdout)
    assert out["warnings"] == []
    assert sorted((f["rule"], f["severity"], f["span_name"], f["boundary"],
                   f["message"].partition("identifier in ")[2].partition(" of '")[0])
                  for f in out["findings"]) == sorted(expected)
    for raw in RAW:
        assert raw not in result.stdout


@pytest.mark.parametrize("fmt", ["text", "sarif", "html"])
@pytest.mark.parametrize("raw", RAW)
def test_the_raw_ids_in_paths_and_queue_names_are_never_shown(raw, fmt, tmp_path, monkeypatch):
    _assert_never_shown("rest-paths-raw.jsonl", raw, fmt, tmp_path, monkeypatch)


@pytest.mark.parametrize("name", sorted(FINDINGS))
def test_rest_path_spans_are_as_the_instrumentations_write_them(name):
    """What the findings rest on: both conventions' path attributes on every server span,
    the route template beside them, each request's spans tagged with its own tenant."""
    traces, warnings = _load(FIXTURES / name)
    assert warnings == [] and len(traces) == (4 if "nearmiss" in name else 2)
    servers = [s for t in traces for s in t.spans.values() if s.kind == 2]
    assert servers and all({"url.path", "http.target", "http.route"} <= s.attributes.keys() for s in servers)
    tags = {tag_for(KEY, t) for t in ("t-1001", "t-2002")}
    for t in traces:
        found = {s.tenant for s in t.spans.values() if not ("dropped" in name and s.service == "billing")}
        assert found <= tags and len(found) == 1


# -- per-tenant RabbitMQ queues under contrib's pika and aio-pika (generators/tenant_queue_traces.py)

QUEUE_KEY = "tenant-queue-fixtures-key"
_SENDS = {"pika": ("orders.tenant-[masked] send", 2 * 2), "aio-pika": (",orders.tenant-[masked] send", 2)}


@pytest.mark.parametrize("stack", sorted(_SENDS))
@pytest.mark.parametrize("mode", ["raw", "tagged", "shared"])
def test_per_tenant_queue_findings_through_the_command_line(stack, mode, tmp_path, monkeypatch):
    """Contrib writes the queue as ``messaging.destination`` and names the span for it: the
    raw files had no finding; each PRODUCER span with the tenant's slug in its queue is
    flagged now, and the slug masked in its name; a queue named by the tag, or shared, is none."""
    name = f"tenant-queue-{stack}-{mode}.jsonl"
    span, count = _SENDS[stack]
    expected = [_leak(span, "queue.publish", "attribute 'messaging.destination → tenant'")] * count if mode == "raw" else []
    result = _check(name, tmp_path, monkeypatch, "--format", "json")
    assert result.exit_code == (1 if expected else 0), result.output
    out = json.loads(result.stdout)
    assert out["warnings"] == []
    assert sorted((f["rule"], f["severity"], f["span_name"], f["boundary"],
                   f["message"].partition("identifier in ")[2].partition(" of '")[0])
                  for f in out["findings"]) == expected
    traces, _ = _load(FIXTURES / name)
    tags = {tag_for(QUEUE_KEY, t) for t in ("t-1001", "t-2002")}
    assert {s.tenant for t in traces for s in t.spans.values()} == tags


@pytest.mark.parametrize("fmt", ["text", "sarif", "html"])
@pytest.mark.parametrize("stack", sorted(_SENDS))
def test_the_slugs_in_per_tenant_queue_names_are_never_shown(stack, fmt, tmp_path, monkeypatch):
    for raw in ("acme-corp", "globex-inc"):
        _assert_never_shown(f"tenant-queue-{stack}-raw.jsonl", raw, fmt, tmp_path, monkeypatch)
