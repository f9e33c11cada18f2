"""Contract-level checks of the shared foundation: tags, key ids, allowed hosts, severities."""

import hashlib
import hmac

import pytest

from flowmap.errors import ConfigError, FlowmapError
from flowmap.hosts import AllowedHosts
from flowmap.model import Severity
from flowmap.tagging import Tagger, is_opaque_tag, tag_for


def test_tag_is_contract_hmac_prefix():
    expected = hmac.new(b"k3y", "tenant-a".encode(), hashlib.sha256).hexdigest()[:16]
    assert tag_for("k3y", "tenant-a") == expected
    assert is_opaque_tag(expected)
    assert Tagger("k3y").tag("tenant-a") == expected


def test_tag_handles_non_ascii_tenant_ids():
    expected = hmac.new("clé".encode(), "société".encode(), hashlib.sha256).hexdigest()[:16]
    assert tag_for("clé", "société") == expected


def test_tagger_refuses_without_key(monkeypatch):
    monkeypatch.delenv("FLOWMAP_TENANT_KEY", raising=False)
    monkeypatch.delenv("FLOWMAP_DEV_MODE", raising=False)
    with pytest.raises(ConfigError) as err:
        Tagger()
    assert isinstance(err.value, FlowmapError)
    assert "FLOWMAP_TENANT_KEY" in str(err.value)


@pytest.mark.parametrize("key", ["   ", "\n", "\t \n"])
def test_a_key_of_blanks_is_no_key(monkeypatch, key):
    monkeypatch.delenv("FLOWMAP_DEV_MODE", raising=False)
    monkeypatch.setenv("FLOWMAP_TENANT_KEY", key)
    with pytest.raises(ConfigError, match="no tenant key"):
        Tagger()


def test_a_key_that_is_no_text_is_a_config_error_that_does_not_quote_it(monkeypatch):
    monkeypatch.setenv("FLOWMAP_TENANT_KEY", "abc\udcffsecret")  # undecodable bytes, as os.environ gives them
    with pytest.raises(ConfigError) as err:
        Tagger()
    assert "secret" not in str(err.value) and "udcff" not in str(err.value).lower()


def test_dev_mode_warns_loudly_once(monkeypatch, caplog):
    import flowmap.tagging as tagging

    monkeypatch.delenv("FLOWMAP_TENANT_KEY", raising=False)
    monkeypatch.setattr(tagging, "_dev_warned", type(tagging._dev_warned)())
    with caplog.at_level("WARNING", logger="flowmap"):
        t1 = Tagger(dev_mode=True)
        Tagger(dev_mode=True)
    assert t1.dev_mode
    warnings = [r for r in caplog.records if "DEVELOPMENT MODE" in r.getMessage()]
    assert len(warnings) == 1


def test_key_id_differs_per_key_and_hides_key():
    a, b = Tagger("key-one"), Tagger("key-two")
    assert a.key_id != b.key_id
    assert "key-one" not in repr(a)


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "10.1.2.3", "192.168.0.9", "172.20.0.1", "::1", "[::1]",
     "tools.default.svc", "api.ns.svc.cluster.local", "db.internal", "printer.local", "LOCALHOST."],
)
def test_default_allowed_hosts(host):
    assert AllowedHosts().allows(host)


@pytest.mark.parametrize("host", ["api.openai.com", "8.8.8.8", "example.com", "svc.example.com", "", None,
                                  "evil.local.example.com", "2001:4860::1"])
def test_default_disallowed_hosts(host):
    assert not AllowedHosts().allows(host)


def test_extra_allowed_hosts_and_no_defaults():
    hosts = AllowedHosts(("partner.example.com", "*.corp.example", "203.0.113.0/24"))
    assert hosts.allows("partner.example.com")
    assert hosts.allows("a.corp.example")
    assert hosts.allows("203.0.113.7")
    assert not hosts.allows("other.example.com")
    strict = AllowedHosts(("10.0.0.1",), include_defaults=False)
    assert strict.allows("10.0.0.1") and not strict.allows("127.0.0.1")


def test_severity_order_and_parse():
    assert Severity.CRITICAL > Severity.HIGH > Severity.MEDIUM > Severity.INFO
    assert Severity.parse("High") is Severity.HIGH
    assert str(Severity.MEDIUM) == "medium"
    with pytest.raises(ConfigError):
        Severity.parse("urgent")
