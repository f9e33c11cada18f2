"""What an analysis may be configured with (the CLI fills it from ``[tool.flowmap]``).

Kept apart from the analysis so the CLI, the pytest plugin and library users build the
same immutable object, and every rule reads its knobs from one place.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from . import attributes
from .hosts import AllowedHosts
from .masking import normalize_key
from .model import Severity

__all__ = ["AnalysisSettings"]


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
    max_warnings: int = 1000  # warnings kept in Analysis.warnings (callbacks still see all)
    #: services whose spans are passed through like a mesh proxy's (flowmap.transparent)
    transparent_services: frozenset[str] = frozenset()

    @classmethod
    def with_extras(
        cls,
        *,
        allowed_hosts: Iterable[str] | None = None,
        include_default_hosts: bool = True,
        extra_tenant_attributes: Iterable[str] | None = None,
        **kwargs: object,
    ) -> "AnalysisSettings":
        """Settings from configuration-style values: extra host entries and attribute names."""
        names = attributes.TENANT_ID_ATTRIBUTE_NAMES | frozenset(
            normalize_key(n) for n in (extra_tenant_attributes or ()) if n.strip()
        )
        return cls(
            allowed_hosts=AllowedHosts.from_config(allowed_hosts, include_default_hosts),
            tenant_attributes=names,
            **kwargs,  # type: ignore[arg-type]
        )
