"""What an analysis may be configured with (the CLI fills it from ``[tool.flowmap]``).

Kept apart from the analysis so the CLI, the pytest plugin and library users build the
same immutable object, and every rule reads its knobs from one place.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from . import attributes
from .hosts import AllowedHosts
from .masking import normalize_key
from .model import Severity

__all__ = ["AnalysisSettings"]


@functools.lru_cache(maxsize=16)
def _tenantless_matcher(patterns: tuple[str, ...]) -> Callable[[str, str], bool]:
    """One compiled test for all patterns (case-sensitive, like span names), matched
    against the span name and against "service name"."""
    regex = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))
    return lambda service, name: regex.match(name) is not None or regex.match(f"{service} {name}") is not None


@dataclass(frozen=True)
class AnalysisSettings:
    """Knobs of one analysis.

    ``tenant_attributes`` are the key names (compared after normalising ``camelCase``,
    ``-`` and ``.`` to ``snake_case``) that hold a tenant identifier; the default is the
    contract's list. Caps bound what is retained for reports, so memory does not grow
    with the input.
    """

    allowed_hosts: AllowedHosts = field(default_factory=AllowedHosts)
    tenant_attributes: frozenset[str] = attributes.TENANT_ID_ATTRIBUTE_NAMES
    fail_on: Severity = Severity.HIGH
    max_examples_per_edge: int = 5
    max_sample_traces: int = 200
    max_paths: int = 500
    max_findings: int | None = None  # None: keep every finding
    #: flow-map operations (service + span name): past these, a service's new span names
    #: are counted under "<service> (other operations)" (see graph.Operations)
    max_operations_per_service: int = 1000
    max_operations: int = 20_000
    max_warnings: int = 1000  # warnings kept in Analysis.warnings (callbacks still see all)
    #: services whose spans are passed through like a mesh proxy's (flowmap.transparent)
    transparent_services: frozenset[str] = frozenset()
    #: entry and root operations that run for no tenant by design (health checks, sign-in,
    #: public pages, a nightly job's root), as shell-style patterns of the span name or of
    #: "service span-name": not judged by unscoped-entry or orphan-root
    tenantless_entries: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # lists given by API callers: stored as the hashable types the matcher caches on
        entries, services = self.tenantless_entries, self.transparent_services
        if isinstance(entries, str):  # one pattern, not its characters
            entries = (entries,)
        if isinstance(services, str):
            services = (services,)
        if not all(isinstance(x, str) for x in (*entries, *services)):
            raise TypeError("tenantless_entries and transparent_services take strings")
        object.__setattr__(self, "tenantless_entries", tuple(e.strip() for e in entries if e.strip()))
        object.__setattr__(self, "transparent_services", frozenset(s.strip() for s in services if s.strip()))

    def is_tenantless_entry(self, service: str, name: str) -> bool:
        """Whether an entry span matches one of :attr:`tenantless_entries` (none: False)."""
        return bool(self.tenantless_entries) and _tenantless_matcher(self.tenantless_entries)(service, name)

    @classmethod
    def with_extras(
        cls,
        *,
        allowed_hosts: Iterable[str] | None = None,
        include_default_hosts: bool = True,
        extra_tenant_attributes: Iterable[str] | None = None,
        include_default_tenant_attributes: bool = True,
        **kwargs: object,
    ) -> "AnalysisSettings":
        """Settings from configuration-style values: extra host entries and attribute
        names (with the contract's names, or, where one of them means something else on
        this platform — ``customer_id`` for a tenant's own customers — instead of them)."""
        defaults = attributes.TENANT_ID_ATTRIBUTE_NAMES if include_default_tenant_attributes else frozenset()
        names = defaults | frozenset(normalize_key(n) for n in (extra_tenant_attributes or ()) if n.strip())
        return cls(
            allowed_hosts=AllowedHosts.from_config(allowed_hosts, include_default_hosts),
            tenant_attributes=names,
            **kwargs,  # type: ignore[arg-type]
        )
