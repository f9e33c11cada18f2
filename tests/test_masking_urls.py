"""Raw tenant ids named in words: a URL's path, a server's route, a queue's or topic's name."""

from __future__ import annotations

import json
import time

import pytest

from flowmap import masking
from flowmap.attributes import TENANT_ID_ATTRIBUTE_NAMES

_NAMES = TENANT_ID_ATTRIBUTE_NAMES
_TAG = "0123456789abcdef"


def _found(attrs: dict, names: frozenset[str] = _NAMES) -> list[tuple[str, object]]:
    return [(h.key, h.value) for h in masking.scan_attributes(attrs, "attribute", names)]


@pytest.mark.parametrize("route, path, found", [
    ("/tenants/{tenant_id}/orders", "/tenants/acme-corp/orders", [("url.path → tenant_id", "acme-corp")]),
    ("/t/{org_id}/orders", "/t/acme/orders", [("url.path → org_id", "acme")]),  # no tenant word in the path
    ("/t/{org_id:path}", "/t/acme", [("url.path → org_id", "acme")]),
    ("/t/:tenantId/x", "/t/acme/x", [("url.path → tenant_id", "acme")]),  # Express
    ("/t/<int:workspace_id>/x", "/t/42/x", [("url.path → workspace_id", "42")]),  # Flask
    ("/t/{tenant_id}/x", "/t/acme%20corp/x", [("url.path → tenant_id", "acme corp"),
                                              ("url.path → tenant_id", "acme%20corp")]),
])
def test_a_route_parameter_named_after_a_tenant_names_its_segment_of_the_path(route, path, found):
    """A server's route says which segment of the path is the tenant's id, whatever the path's words."""
    assert _found({"http.route": route, "url.path": path}) == found


@pytest.mark.parametrize("key, url, found", [
    ("url.full", "http://billing.internal/v1/tenants/acme-corp/invoices?limit=3", [("url.full → tenants", "acme-corp")]),
    ("http.url", "http://billing.internal/v1/orgs/org_4411/invoices", [("http.url → orgs", "org_4411")]),
    ("http.target", "/tenants/acme/orders?x=1", [("http.target → tenants", "acme")]),
    ("url.path", "/api/customers/c-9", [("url.path → customers", "c-9")]),
    ("url.path", "/workspace_id=w42/x", [("url.path → workspace_id", "w42")]),
])
def test_a_raw_id_after_a_tenant_name_in_a_urls_path_is_found(key, url, found):
    """A REST path names the tenant's collection and then its id (as a cache key does)."""
    assert _found({key: url}) == found


@pytest.mark.parametrize("attrs", [
    {"http.route": "/tenants/{tenant_id}/orders", "url.path": "/tenants/{tenant_id}/orders"},  # a template
    {"http.route": "/tenants/{tenant_id}/orders", "url.path": f"/tenants/{_TAG}/orders"},  # the opaque tag
    {"http.route": "/tenants/me/orders", "url.path": "/tenants/me/orders"},
    {"http.route": "/tenants/{tenant_id}/orders", "url.path": "/tenants/me/orders"},
    {"http.route": "/tenants", "url.path": "/tenants"},  # a plain collection
    {"url.path": "/tenants/"}, {"url.path": "/tenants/search"}, {"url.path": "/tenants/:tenant_id/x"},
    {"url.path": "/tenants/<tenant_id>/x"}, {"url.path": "/tenants/*/x"}, {"url.path": "/tenants/?x=1"},
    {"url.path": "/orgs/settings"}, {"url.path": "/accounts/balance"},  # a shorter form: an id's shape only
    {"url.full": "http://tenants.internal/v1/chat"}, {"url.path": "/subtenants/acme-7"},
    {"http.route": "/users/{user_id}", "url.path": "/users/acme-7"},  # no tenant parameter
    {"http.route": "/t/{tenant_id}/x", "url.path": "/api/t/acme/x"},  # segments that do not line up
    {"messaging.destination.template": "orders.tenant-{tenant}", "messaging.system": "kafka"},
])
def test_paths_and_routes_without_a_raw_id_are_silent(attrs):
    assert _found(attrs) == []


@pytest.mark.parametrize("name, found", [
    ("orders.tenant-acme", [("tenant", "acme")]),
    ("tenant.acme-corp.orders", [("tenant", "acme-corp")]),
    ("orders.tenant_id.42", [("tenant_id", "42")]),
    ("jobs-org-o42", [("org", "o42")]),
])
def test_a_raw_id_in_a_per_tenant_queue_or_topic_name_is_found(name, found):
    """The stable attribute, and the older one contrib's pika and aio-pika write."""
    for key in ("messaging.destination.name", "messaging.destination"):
        attrs = {"messaging.system": "kafka", key: name}
        assert _found(attrs) == [(f"{key} → {n}", v) for n, v in found]


@pytest.mark.parametrize("name", [
    "orders", "jobs", "tenant-events", "tenant.created", "org.updated", "orders.tenant-*", "orders.tenant.#",
    f"orders.tenant-{_TAG}", "orders.tenant-{tenant_id}", "org.settings", "subtenant-acme",
])
def test_queue_and_topic_names_without_a_raw_id_are_silent(name):
    assert _found({"messaging.system": "kafka", "messaging.destination.name": name}) == []


def test_configured_names_are_read_in_paths_too():
    names = _NAMES | {"project_id"}
    masking.learn_names(names)
    assert _found({"url.path": "/projects/p-42/runs"}, names) == [("url.path → projects", "p-42")]
    assert _found({"http.route": "/x/{project_id}", "url.path": "/x/p-42"}, names) == [("url.path → project_id", "p-42")]


def test_the_quick_test_looks_closer_only_at_paths_holding_a_tenant_word():
    """holds_names stays names-blind and cheap: /v1/chat is cleared by its names."""
    assert not masking.holds_names({"url.path": "/v1/chat", "http.route": "/v1/chat"})
    assert masking.holds_names({"url.path": "/tenants/acme/orders"})
    assert masking.holds_names({"messaging.destination.name": "orders.tenant-acme"})


@pytest.mark.parametrize("path", [
    "/tenants/" * 20_000, "/" * 200_000, "/tenants/%2F" * 20_000, "/tenants%2Facme" * 20_000,
    "/tenants/" + "ü" * 200_000, "/tenants/{" * 20_000, "/tenants/" + "a" * 500_000,
    "/t/" + "x/" * 100_000,
])
def test_hostile_paths_are_read_in_linear_time_and_never_raise(path):
    attrs = {"http.route": "/t/{tenant_id}/" + "{a}/" * 10_000, "url.path": path, "url.full": "http://h" + path,
             "messaging.destination.name": path.replace("/", ".")}
    start = time.process_time()
    hits = masking.scan_attributes(attrs, "attribute", _NAMES)
    assert time.process_time() - start < 2.0
    assert len(hits) <= 4 * 2 * 16  # at most _QUERY_LITERALS words an attribute (and its encoding)


def test_raw_ids_in_paths_and_topic_names_are_flagged_and_masked_in_every_output(tmp_path):
    """The REST path, the client's URL and the topic were plain attributes: the raw ids were
    shown unflagged in every output. Each span is flagged and the ids (also in span names) masked."""
    from otlp_builder import CLIENT, PRODUCER, SERVER, TAG_A, TraceBuilder, write_otlp
    from test_masking import _outputs

    tb = TraceBuilder(service="api")
    entry = tb.span("GET /tenants/acme-corp/orders", kind=SERVER, tenant=TAG_A, boundary="http.server", attrs={
        "http.request.method": "GET", "http.route": "/tenants/{tenant_id}/orders", "url.path": "/tenants/acme-corp/orders"})
    client = entry.child("GET", kind=CLIENT, tenant=TAG_A, attrs={
        "http.request.method": "GET", "url.full": "http://billing.internal/v1/orgs/org_4411/invoices?limit=3"})
    topic = entry.child("orders.tenant-globex publish", kind=PRODUCER, tenant=TAG_A, attrs={
        "messaging.system": "kafka", "messaging.destination.name": "orders.tenant-globex"})
    entry.child("GET", kind=CLIENT, tenant=TAG_A, attrs={
        "http.request.method": "GET", "url.full": f"http://billing.internal/v1/tenants/{TAG_A}/invoices"})
    path = write_otlp(tmp_path / "t.jsonl", tb)
    from typer.testing import CliRunner

    from flowmap.cli import app

    result = CliRunner().invoke(app, ["check", "--format", "json", str(path)])
    assert result.exit_code == 1
    found = {f["span_id"]: f for f in json.loads(result.stdout)["findings"]}
    assert set(found) == {entry.span_id, client.span_id, topic.span_id}
    assert {f["rule"] for f in found.values()} == {"tenant-in-telemetry"}
    text = _outputs(tmp_path, path)
    for raw in ("acme-corp", "org_4411", "globex"):
        assert raw not in text
    assert "GET /tenants/[masked]/orders" in text and "orders.tenant-[masked]" in text


def test_names_learned_later_are_looked_for_in_texts_seen_before():
    """may_name_in_words remembers what it found for a text: a name learned later (another
    analysis' configured names) makes it look again."""
    assert not masking.may_name_in_words("/widgets/w-42")
    masking.learn_names(_NAMES | {"widget_id"})
    assert masking.may_name_in_words("/widgets/w-42")
