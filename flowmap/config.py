"""``[tool.flowmap]`` configuration: the nearest ``pyproject.toml`` upward from the cwd, or ``--config``.

Precedence is command line > configuration file > built-in defaults; the CLI applies
its own flags on top of what :func:`load_config` returns. Keys may be written with
``_`` or ``-`` (not both: ``fail_on`` beside ``fail-on`` is an error). An unknown key,
or an ``allowed_hosts`` entry that can never match (``*``, a URL), is reported in one
warning line (a typo must not pass silently, nor stop a CI job); a bad value (an
``allowed_hosts`` network that is not one, ``10.0.0.0/33``) is a
:class:`~flowmap.errors.ConfigError`.

Example::

    [tool.flowmap]
    allowed_hosts = ["api.partner.example", "*.corp.example", "100.64.0.0/10"]
    include_default_hosts = true
    tenant_attributes = ["team_id"]      # in addition to the built-in names
    include_default_tenant_attributes = true  # false: only tenant_attributes (customer_id
                                              # may be a tenant's own customers here)
    transparent_services = ["api-gateway"]  # passed through, like mesh proxies
    tenantless_entries = ["GET /healthz", "auth POST /login"]  # entries that run for no tenant
    fail_on = "medium"
    format = "sarif"
    max_operations_per_service = 1000  # distinct span names a service keeps in the flow map
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .formats import OutputFormat
from .model import Severity
from .settings import AnalysisSettings

__all__ = ["Config", "load_config", "find_pyproject", "KNOWN_KEYS"]

_CAPS = tuple(f.name for f in dataclasses.fields(AnalysisSettings) if f.name.startswith("max_"))
KNOWN_KEYS = frozenset(
    {
        "allowed_hosts", "include_default_hosts", "tenant_attributes", "include_default_tenant_attributes",
        "transparent_services",
        "tenantless_entries", "fail_on", "format", *_CAPS,
    }
)


@dataclass(frozen=True)
class Config:
    """What the configuration file said, already validated."""

    settings: AnalysisSettings
    format: OutputFormat | None = None  # None: not configured (the CLI default applies)
    fail_on: Severity | None = None  # None: not configured
    path: Path | None = None  # the file read, if any
    warnings: tuple[str, ...] = ()


def find_pyproject(start: Path) -> Path | None:
    """The nearest ``pyproject.toml`` in ``start`` or a parent directory."""
    start = start.resolve()
    for directory in (start, *start.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:  # the reason only: the error's own text repeats the path
        raise ConfigError(f"{path}: cannot read configuration: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc}") from None


def _section(data: dict[str, Any], path: Path, explicit: bool) -> dict[str, Any] | None:
    tool = data.get("tool")
    section = tool.get("flowmap") if isinstance(tool, dict) else None
    if section is None and explicit and path.name != "pyproject.toml" and not isinstance(tool, dict):
        section = data  # a dedicated flowmap.toml: keys at the top level
    if section is not None and not isinstance(section, dict):
        raise ConfigError(f"{path}: [tool.flowmap] must be a table")
    return section


# "https://host", "host/path", "host:443" (but not an IPv6 address or network)
_NOT_A_HOST = re.compile(r"://|/(?![0-9]{1,3}$)|^[^:\[\]]+:[0-9]+$")
# written as a CIDR network: an IPv4 or IPv6 address (or the start of one), '/', a prefix
_NETWORK_LIKE = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)*|\[?[0-9a-f.]*:[0-9a-f:.]*\]?)/[0-9]*$", re.IGNORECASE)


def _shown(entries: list[str]) -> str:
    return ", ".join(repr(h) for h in entries[:3]) + (" …" if len(entries) > 3 else "")


def _check_hosts(hosts: tuple[str, ...], where: str) -> list[str]:
    """Warnings for ``allowed_hosts`` entries that could never match; an entry written
    as a CIDR network that is not one (``10.0.0.0/33``) is a :class:`ConfigError`."""
    unusable: list[str] = []
    wildcards: list[str] = []
    for raw in hosts:
        entry = raw.strip()
        if _NETWORK_LIKE.match(entry):
            try:
                ipaddress.ip_network(entry, strict=False)  # host bits set is fine, as at run time
            except ValueError:
                raise ConfigError(
                    f"{where} allowed_hosts: {entry!r} is not a valid CIDR network "
                    "(an address and a prefix length, e.g. '10.0.0.0/8' or 'fd00::/8')"
                ) from None
        elif "/" in entry or _NOT_A_HOST.search(entry):  # (every network was matched above)
            unusable.append(raw)
        elif "*" in entry and not (entry.startswith("*.") and "*" not in entry[2:] and entry[2:].strip(".")):
            wildcards.append(raw)  # "*", "*example.com", "api.*.example": matched as plain names
    warnings = []
    if unusable:  # they would never match: say so rather than keep flagging that host
        warnings.append(
            f"{where} allowed_hosts entries that are not host names (a scheme, path or port) never match "
            f"a destination's host: {_shown(unusable)}; write the host only, e.g. 'api.partner.example'"
        )
    if wildcards:
        warnings.append(
            f"{where} allowed_hosts entries with a '*' anywhere but a leading '*.' never match: "
            f"{_shown(wildcards)}; an entry is an exact host name, '*.corp.example' (any name under "
            "it), an IP address or a CIDR network, and none matches every host"
        )
    return warnings


def _with_suggestion(key: str) -> str:
    """An unknown key, with the known key it most likely misspells: ``fial_on (fail_on?)``."""
    close = difflib.get_close_matches(key, sorted(KNOWN_KEYS), n=1, cutoff=0.8)
    return f"{key} (did you mean {close[0]}?)" if close else key


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of strings")
    return tuple(v for v in value if v.strip())


def load_config(config_path: str | Path | None = None, *, cwd: str | Path | None = None) -> Config:
    """Read and validate the configuration; with none found, the defaults."""
    explicit = config_path is not None
    path = Path(config_path) if explicit else find_pyproject(Path(cwd) if cwd else Path.cwd())
    if path is None:
        return Config(settings=AnalysisSettings())
    section = _section(_read_toml(path), path, explicit)
    if section is None:
        # a file named on purpose that configures nothing is a mistake worth a line
        said = (f"{path}: no [tool.flowmap] table; the defaults apply",) if explicit else ()
        return Config(settings=AnalysisSettings(), path=path, warnings=said)

    where = f"{path}: [tool.flowmap]"
    values: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for k, v in section.items():
        key = str(k).replace("-", "_")
        if key in spelled:  # fail_on and fail-on: one would silently win over the other
            raise ConfigError(f"{where} {spelled[key]} and {k} are the same key ('-' and '_' are alike): keep one")
        spelled[key] = str(k)
        values[key] = v
    warnings: list[str] = []
    unknown = sorted(set(values) - KNOWN_KEYS)
    if unknown:
        warnings.append(f"{where} unknown keys ignored: {', '.join(map(_with_suggestion, unknown))}")

    def text(key: str) -> str | None:
        value = values.get(key)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{where} {key} must be a string")
        return value

    fail_on = fmt = None
    if (value := text("fail_on")) is not None:
        try:
            fail_on = Severity.parse(value)
        except ConfigError as exc:
            raise ConfigError(f"{where} fail_on: {exc}") from None
    if (value := text("format")) is not None:
        try:
            fmt = OutputFormat.parse(value)
        except ConfigError as exc:
            raise ConfigError(f"{where} format: {exc}") from None

    include_defaults = values.get("include_default_hosts", True)
    if not isinstance(include_defaults, bool):
        raise ConfigError(f"{where} include_default_hosts must be true or false")
    default_names = values.get("include_default_tenant_attributes", True)
    if not isinstance(default_names, bool):
        raise ConfigError(f"{where} include_default_tenant_attributes must be true or false")
    names = _strings(values.get("tenant_attributes", []), f"{where} tenant_attributes")
    if not default_names and not names:  # (_strings drops blank names)
        warnings.append(
            f"{where} include_default_tenant_attributes is false and tenant_attributes names none: "
            "no attribute is read as a tenant id (tenant-in-telemetry by name and "
            "model-chosen-tenant never fire)"
        )
    caps: dict[str, int] = {}
    for key in _CAPS:
        if key in values:
            value = values[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{where} {key} must be a non-negative integer")
            caps[key] = value

    hosts = _strings(values.get("allowed_hosts", []), f"{where} allowed_hosts")
    warnings.extend(_check_hosts(hosts, where))
    settings = AnalysisSettings.with_extras(
        allowed_hosts=hosts,
        include_default_hosts=include_defaults,
        extra_tenant_attributes=names,
        include_default_tenant_attributes=default_names,
        fail_on=fail_on if fail_on is not None else Severity.HIGH,  # INFO is 0: falsy
        transparent_services=frozenset(
            s.strip() for s in _strings(values.get("transparent_services", []), f"{where} transparent_services")
            if s.strip()
        ),
        tenantless_entries=tuple(
            p.strip() for p in _strings(values.get("tenantless_entries", []), f"{where} tenantless_entries")
            if p.strip()
        ),
        **caps,
    )
    return Config(settings=settings, format=fmt, fail_on=fail_on, path=path, warnings=tuple(warnings))
