"""[tool.flowmap] configuration: discovery, precedence material, validation."""

from __future__ import annotations

import pytest

from flowmap.attributes import TENANT_ID_ATTRIBUTE_NAMES
from flowmap.config import load_config
from flowmap.errors import ConfigError
from flowmap.formats import OutputFormat
from flowmap.model import Severity


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_no_pyproject_gives_defaults(tmp_path):
    cfg = load_config(cwd=tmp_path)
    assert cfg.path is None and cfg.format is None and cfg.fail_on is None and cfg.warnings == ()
    assert cfg.settings.fail_on is Severity.HIGH
    assert cfg.settings.tenant_attributes == TENANT_ID_ATTRIBUTE_NAMES
    assert cfg.settings.allowed_hosts.allows("10.0.0.5") and not cfg.settings.allowed_hosts.allows("api.example.com")


def test_nearest_pyproject_upward_from_cwd(tmp_path):
    write(tmp_path / "pyproject.toml", """
[project]
name = "app"

[tool.flowmap]
allowed_hosts = ["api.partner.example", "*.corp.example", "100.64.0.0/10"]
tenant_attributes = ["team_id", "Space-Id"]
fail_on = "medium"
format = "sarif"
""")
    deep = tmp_path / "src" / "pkg"
    deep.mkdir(parents=True)
    cfg = load_config(cwd=deep)
    assert cfg.path == tmp_path / "pyproject.toml"
    assert cfg.fail_on is Severity.MEDIUM and cfg.settings.fail_on is Severity.MEDIUM
    assert cfg.format is OutputFormat.SARIF
    hosts = cfg.settings.allowed_hosts
    assert hosts.allows("api.partner.example") and hosts.allows("x.corp.example") and hosts.allows("100.64.1.1")
    assert hosts.allows("localhost")  # defaults kept
    assert not hosts.allows("api.other.example")
    assert {"team_id", "space_id"} <= cfg.settings.tenant_attributes  # names normalised
    assert TENANT_ID_ATTRIBUTE_NAMES <= cfg.settings.tenant_attributes


def test_nearest_pyproject_without_section_stops_the_search(tmp_path):
    write(tmp_path / "pyproject.toml", '[tool.flowmap]\nfail_on = "info"\n')
    write(tmp_path / "sub" / "pyproject.toml", '[project]\nname = "inner"\n')
    cfg = load_config(cwd=tmp_path / "sub")
    assert cfg.path == tmp_path / "sub" / "pyproject.toml" and cfg.fail_on is None


def test_dashed_keys_and_host_defaults_off(tmp_path):
    write(tmp_path / "pyproject.toml", '[tool.flowmap]\nfail-on = "critical"\ninclude-default-hosts = false\n'
                                         'allowed-hosts = ["gw.internal"]\n')
    cfg = load_config(cwd=tmp_path)
    assert cfg.fail_on is Severity.CRITICAL
    assert cfg.settings.allowed_hosts.allows("gw.internal") and not cfg.settings.allowed_hosts.allows("10.0.0.1")


def test_built_in_tenant_attribute_names_can_be_left_out(tmp_path):
    write(tmp_path / "pyproject.toml", "[tool.flowmap]\ninclude-default-tenant-attributes = false\n"
                                         'tenant_attributes = ["tenant_id", "Org-Id"]\n')
    cfg = load_config(cwd=tmp_path)
    assert cfg.settings.tenant_attributes == {"tenant_id", "org_id"} and cfg.warnings == ()


def test_no_tenant_attribute_names_at_all_is_warned(tmp_path):
    write(tmp_path / "pyproject.toml", "[tool.flowmap]\ninclude_default_tenant_attributes = false\n")
    cfg = load_config(cwd=tmp_path)
    assert cfg.settings.tenant_attributes == frozenset()
    (warning,) = cfg.warnings
    assert "no attribute is read as a tenant id" in warning and "\n" not in warning


def test_unknown_keys_give_one_warning_line(tmp_path):
    write(tmp_path / "pyproject.toml", '[tool.flowmap]\nfail_on = "low"\nfial_on = "x"\ncolour = true\n')
    cfg = load_config(cwd=tmp_path)
    assert cfg.fail_on is Severity.LOW
    (warning,) = cfg.warnings
    assert "unknown keys ignored: colour, fial_on" in warning and "\n" not in warning
    assert "fial_on (did you mean fail_on?)" in warning and "colour (" not in warning


def test_an_unknown_key_names_the_key_it_likely_misspells(tmp_path):
    write(tmp_path / "pyproject.toml", '[tool.flowmap]\nallowed_host = ["x.example"]\ntenantless_entry = "GET /h"\n')
    (warning,) = load_config(cwd=tmp_path).warnings
    assert "allowed_host (did you mean allowed_hosts?)" in warning
    assert "tenantless_entry (did you mean tenantless_entries?)" in warning


@pytest.mark.parametrize(
    "body, words",
    [
        ('fail_on = "severe"', ["fail_on", "unknown severity", "critical"]),
        ("fail_on = 3", ["fail_on must be a string"]),
        ('format = "xml"', ["unknown format", "sarif"]),
        ('allowed_hosts = [1, 2]', ["allowed_hosts must be a list of strings"]),
        ("tenant_attributes = {a = 1}", ["tenant_attributes must be a list of strings"]),
        ('include_default_hosts = "yes"', ["include_default_hosts must be true or false"]),
        ("include_default_tenant_attributes = 0", ["include_default_tenant_attributes must be true or false"]),
        ("max_paths = -1", ["max_paths must be a non-negative integer"]),
        ("fail_on = ", ["invalid TOML"]),
    ],
)
def test_bad_values_are_one_line_config_errors(tmp_path, body, words):
    write(tmp_path / "pyproject.toml", f"[tool.flowmap]\n{body}\n")
    with pytest.raises(ConfigError) as info:
        load_config(cwd=tmp_path)
    message = str(info.value)
    assert "\n" not in message and message.count("pyproject.toml") == 1  # said once
    for word in words:
        assert word in message


def test_caps_are_configurable(tmp_path):
    write(tmp_path / "pyproject.toml", "[tool.flowmap]\nmax_paths = 7\nmax_sample_traces = 0\n")
    cfg = load_config(cwd=tmp_path)
    assert cfg.settings.max_paths == 7 and cfg.settings.max_sample_traces == 0


def test_explicit_config_file(tmp_path):
    write(tmp_path / "pyproject.toml", '[tool.flowmap]\nfail_on = "info"\n')
    own = write(tmp_path / "ci" / "flowmap.toml", 'fail_on = "critical"\n')  # top-level keys
    assert load_config(own, cwd=tmp_path).fail_on is Severity.CRITICAL
    other = write(tmp_path / "ci" / "pyproject.toml", '[tool.flowmap]\nformat = "json"\n')
    assert load_config(other).format is OutputFormat.JSON
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "missing.toml")
    # another tool's file without a [tool.flowmap] table: nothing of flowmap's in it,
    # which a file named on purpose is not meant to be: said in one warning
    shared = write(tmp_path / "ci" / "tools.toml", '[tool.other]\nx = 1\n')
    cfg = load_config(shared)
    assert cfg.fail_on is None and len(cfg.warnings) == 1 and "no [tool.flowmap] table" in cfg.warnings[0]
    # found by itself (not named), a pyproject.toml without the table is just not used
    write(tmp_path / "plain" / "pyproject.toml", '[project]\nname = "app"\n')
    assert load_config(cwd=tmp_path / "plain").warnings == ()


def test_allowed_hosts_that_are_not_host_names_are_warned_about(tmp_path):
    write(tmp_path / "pyproject.toml",
          '[tool.flowmap]\nallowed_hosts = ["https://api.partner.example", "tools.partner.example:443", '
          '"ok.partner.example", "10.0.0.0/8", "fd00::/8"]\n')
    (warning,) = load_config(cwd=tmp_path).warnings
    assert "'https://api.partner.example'" in warning and "'tools.partner.example:443'" in warning
    assert "ok.partner.example" not in warning and "10.0.0.0/8" not in warning and "fd00" not in warning


@pytest.mark.parametrize("make", ["directory", "name too long"])
def test_an_unreadable_config_file_names_it_once_with_the_reason(tmp_path, make):
    path = tmp_path if make == "directory" else tmp_path / ("a" * 300 + ".toml")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.count(path.name) == 1 and message.startswith(str(path))
    assert message.endswith(("Is a directory", "File name too long"))


@pytest.mark.parametrize("network", ["10.0.0.0/33", "::1/129", "10.0.0.256/24", "10/8", "10.0.0.0/"])
def test_an_allowed_hosts_network_that_is_no_cidr_network_is_a_config_error(tmp_path, network):
    # it was kept as a host name that no destination is ever called, silently
    write(tmp_path / "pyproject.toml", f'[tool.flowmap]\nallowed_hosts = ["ok.example", "{network}"]\n')
    with pytest.raises(ConfigError) as info:
        load_config(cwd=tmp_path)
    message = str(info.value)
    assert f"'{network}' is not a valid CIDR network" in message and "\n" not in message


def test_allowed_hosts_networks_that_parse_keep_working(tmp_path):
    write(tmp_path / "pyproject.toml",
          '[tool.flowmap]\nallowed_hosts = ["100.64.0.0/10", "FD00::/8", "192.0.2.7/24", "*.corp.example"]\n')
    cfg = load_config(cwd=tmp_path)
    assert cfg.warnings == ()
    hosts = cfg.settings.allowed_hosts
    assert hosts.allows("100.64.1.1") and hosts.allows("fd00::1") and hosts.allows("192.0.2.200")
    assert hosts.allows("api.corp.example") and not hosts.allows("api.example")


@pytest.mark.parametrize("pattern", ["*", "*example.com", "api.*.example", "*."])
def test_an_allowed_hosts_wildcard_that_never_matches_is_warned_about(tmp_path, pattern):
    write(tmp_path / "pyproject.toml", f'[tool.flowmap]\nallowed_hosts = ["{pattern}", "*.corp.example"]\n')
    cfg = load_config(cwd=tmp_path)
    (warning,) = cfg.warnings
    assert f"'{pattern}'" in warning and "never match" in warning
    assert "'*.corp.example' (any name under it)" in warning and "none matches every host" in warning
    assert "\n" not in warning
    assert not cfg.settings.allowed_hosts.allows("api.partner.example")  # as said: nothing more allowed


@pytest.mark.parametrize("first, second", [("fail_on", "fail-on"), ("allowed-hosts", "allowed_hosts")])
def test_one_key_in_both_spellings_is_a_config_error_naming_both(tmp_path, first, second):
    # the later one silently won
    write(tmp_path / "pyproject.toml", f'[tool.flowmap]\n{first} = "info"\n{second} = "critical"\n')
    with pytest.raises(ConfigError) as info:
        load_config(cwd=tmp_path)
    message = str(info.value)
    assert first in message and second in message and "keep one" in message
