"""The allow list of baggage destinations: a host as instrumentations record it, with its
port (an old-semconv ``http.host`` is the Host header, ``host[:port]``), is judged as the
host alone, in the runtime's check and in ``flowmap check`` alike."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from flowmap.cli import app
from flowmap.hosts import AllowedHosts

from otlp_builder import CLIENT, SERVER, TAG_A, TraceBuilder, write_otlp

ALLOWED_WITH_PORT = ["localhost:3000", "tools.svc:8080", "10.0.0.5:8080", "[::1]:8080", "[fe80::1%eth0]:80",
                     "api.ns.svc.cluster.local:443", "LOCALHOST.:8080", "tools.svc:"]
EXTERNAL_WITH_PORT = ["api.openai.com:443", "8.8.8.8:53", "[2001:4860::1]:443", "evil.example.com:8080"]


@pytest.mark.parametrize("host", ALLOWED_WITH_PORT)
def test_an_allowed_host_is_allowed_with_a_port(host):
    assert AllowedHosts().allows(host)


@pytest.mark.parametrize("host", EXTERNAL_WITH_PORT + [
    "tools.svc:8080@evil.example.com",  # not a port: the whole is no allowed name
    "tools.svc:80:90", "[::1]x", ":8080",
])
def test_an_external_host_stays_external_with_a_port(host):
    assert not AllowedHosts().allows(host)


@pytest.mark.parametrize("host,allowed", [
    ("::1", True), ("fe80::1", True), ("[::1]", True), ("fe80::1%eth0", True), ("::ffff:10.0.0.1", True),
    ("2001:4860::1", False),
])
def test_a_bare_ipv6_literal_is_not_read_as_host_and_port(host, allowed):
    assert AllowedHosts().allows(host) is allowed


def test_extra_entries_allow_any_port_and_an_entry_with_its_port_still_matches():
    hosts = AllowedHosts(("partner.example.com", "*.corp.example", "203.0.113.0/24", "gw.example.net:8443"),
                         include_defaults=False)
    assert hosts.allows("partner.example.com:443") and hosts.allows("a.corp.example:80")
    assert hosts.allows("203.0.113.7:8080")
    assert hosts.allows("gw.example.net:8443")  # as written in the configuration: exact
    assert not hosts.allows("other.example.com:443") and not hosts.allows("localhost:3000")


def _request_calling(tb: TraceBuilder, hosts: list[str]) -> None:
    """One request whose client spans sent the tenant baggage, each destination recorded
    only as an old-semconv http.host."""
    entry = tb.span("GET /a", kind=SERVER, tenant=TAG_A, boundary="http.server",
                    attrs={"http.method": "GET", "http.target": "/a"})
    for host in hosts:
        entry.child(f"HTTP GET {host}", kind=CLIENT, tenant=TAG_A, boundary="http.client", baggage_sent=True,
                    attrs={"http.method": "GET", "http.host": host})


def _check(tmp_path, *builders: TraceBuilder):
    path = write_otlp(tmp_path / "hosts.jsonl", *builders)
    result = CliRunner().invoke(app, ["check", str(path), "--format", "json", "--fail-on", "medium"],
                                env={"FLOWMAP_TENANT_KEY": "", "FLOWMAP_DEV_MODE": "", "FLOWMAP_FILE": ""})
    return result, json.loads(result.stdout)


def test_flowmap_check_judges_http_host_with_a_port_by_its_host(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no pyproject.toml above with other settings
    allowed = TraceBuilder(service="old-svc")
    _request_calling(allowed, ALLOWED_WITH_PORT)
    result, report = _check(tmp_path, allowed)
    assert result.exit_code == 0, result.output
    assert report["findings"] == []

    external = TraceBuilder(service="old-svc")
    _request_calling(external, ["tools.svc:8080", "evil.example.com:8080"])
    result, report = _check(tmp_path, external)
    assert result.exit_code == 1
    (finding,) = report["findings"]
    assert finding["rule"] == "baggage-to-external" and finding["span_name"] == "HTTP GET evil.example.com:8080"


@pytest.mark.parametrize("host", [
    "10.1.2.3", "172.31.255.1", "192.168.0.9", "fd12::1", "127.0.0.1", "::1", "169.254.169.254", "fe80::1",
    "::ffff:10.0.0.1",
])
def test_loopback_and_private_ranges_are_allowed_by_default(host):
    assert AllowedHosts().allows(host)


@pytest.mark.parametrize("host", [
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo: a host on the public internet
    "192.0.2.10", "198.51.100.7", "203.0.113.5", "2001:db8::1",  # documentation ranges
    "198.18.0.1",  # benchmarking, which fake-IP proxies map external names into
    "240.0.0.1", "255.255.255.255", "100.64.0.1", "0.0.0.0", "8.8.8.8",
])
def test_special_purpose_ranges_are_not_private(host):
    # ipaddress's is_private holds these (its list changes with the Python release): the
    # tenant tag must not go there unless the configuration allows it
    assert not AllowedHosts().allows(host)
    assert AllowedHosts.from_config([host]).allows(host)
