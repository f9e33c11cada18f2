"""What each rule means, for the reports that have to explain themselves (SARIF).

The ids and one-line descriptions are :mod:`flowmap.rules` (the contract's findings
table); this adds what a code-scanning UI shows besides: a name, the highest severity
the rule gives, a longer explanation and tags.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import rules as r
from ..model import Severity

__all__ = ["RuleDoc", "RULES", "RULE_IDS", "rule_doc"]


@dataclass(frozen=True, slots=True)
class RuleDoc:
    id: str
    name: str  # PascalCase, as SARIF's reportingDescriptor.name wants
    severity: Severity  # the highest severity the rule gives
    full: str
    tags: tuple[str, ...] = ("security", "multi-tenancy")

    @property
    def short(self) -> str:
        text = r.RULES.get(self.id, f"flowmap rule {self.id}")
        return text[:1].upper() + text[1:] + "."


RULES: tuple[RuleDoc, ...] = (
    RuleDoc(
        r.CROSS_TENANT, "CrossTenant", Severity.CRITICAL,
        "The span's opaque tenant tag differs from its parent's (or from the span that links "
        "to it): work started for one tenant continued under another, so data may cross tenants.",
    ),
    RuleDoc(
        r.CONTEXT_DROPPED, "ContextDropped", Severity.HIGH,
        "The parent span carries a tenant tag and the child has none (also across services "
        "through a remote parent, and across queues through span links). High at a boundary, "
        "medium elsewhere (the message then names a boundary below that ran without it).",
    ),
    RuleDoc(
        r.ORPHAN_ROOT, "OrphanRoot", Severity.HIGH,
        "An INTERNAL, CLIENT or PRODUCER root (or a boundary span) has no tenant tag: the "
        "context was lost before it started, e.g. in a thread pool. High at a boundary, "
        "medium elsewhere (the message then names a boundary below that ran without it).",
    ),
    RuleDoc(
        r.UNSCOPED_ENTRY, "UnscopedEntry", Severity.HIGH,
        "A SERVER or CONSUMER root span and its whole subtree ran without a tenant tag. High "
        "if the subtree reaches a boundary, medium otherwise. An HTTP entry refused with "
        "401/403/407 before anything ran is authentication working, not a finding.",
    ),
    RuleDoc(
        r.UNSCOPED_QUERY, "UnscopedQuery", Severity.HIGH,
        "A memory, vector, cache, database or tool-catalog operation recorded "
        "flowmap.scoped=false: it was not restricted to the tenant (key namespace, query "
        "filter, catalog filter).",
    ),
    RuleDoc(
        r.UNFILTERED_CATALOG, "UnfilteredCatalog", Severity.HIGH,
        "The model saw tools of every tenant, so it can call a tool that belongs to another tenant.",
    ),
    RuleDoc(
        r.MODEL_CHOSEN_TENANT, "ModelChosenTenant", Severity.HIGH,
        "The tenant must come from the authenticated request context, never from model output: "
        "a prompt injection can make the model name another tenant.",
    ),
    RuleDoc(
        r.TENANT_IN_TELEMETRY, "TenantInTelemetry", Severity.HIGH,
        "An attribute such as tenant_id, org_id, customer_id, account_id or workspace_id holds "
        "a non-opaque value, or baggage other than flowmap.tenant was sent, or flowmap's "
        "runtime had to redact a raw tenant id from the span (flowmap.redacted). Telemetry "
        "must carry only the opaque tag. The flagged value is masked in every report.",
    ),
    RuleDoc(
        r.BAGGAGE_TO_EXTERNAL, "BaggageToExternal", Severity.MEDIUM,
        "A client span sent the flowmap.tenant baggage to a destination that is not in the "
        "allowed hosts (by default loopback, private ranges, localhost and cluster-internal names).",
    ),
    RuleDoc(
        r.MISSING_PARENT, "MissingParent", Severity.INFO,
        "The export is incomplete or sampled: the span names a parent that no input file "
        "contains, so whether the tenant was inherited is unknown.",
        ("reliability", "multi-tenancy"),
    ),
)

RULE_IDS: tuple[str, ...] = tuple(r.RULES)  # contract table order
_BY_ID = {doc.id: doc for doc in RULES}


def rule_doc(rule_id: str) -> RuleDoc:
    """The description of ``rule_id``; rules unknown to this table get a generic one."""
    doc = _BY_ID.get(rule_id)
    if doc is not None:
        return doc
    name = "".join(part.capitalize() for part in rule_id.replace("_", "-").split("-")) or "Rule"
    return RuleDoc(rule_id, name, Severity.MEDIUM, f"flowmap rule {rule_id}.")
