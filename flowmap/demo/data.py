"""The demo's tenants, their credentials and their data (all made up).

Tenant ids are raw ids on purpose: flowmap must keep every one of them out of the
trace file and the report. Documents and accounts never spell a tenant id either.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Tenant", "TENANTS", "tenant_for_token", "DOCUMENTS", "ACCOUNTS", "CONVERSATIONS"]


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    token: str  # the bearer token its users present
    user: str


TENANTS: tuple[Tenant, ...] = (
    Tenant("acme-corp", "tok_7f3a91c2e4", "ana"),
    Tenant("globex-inc", "tok_b82d10f6a7", "ben"),
    Tenant("initech", "tok_45c9e3b1d0", "chloe"),
    Tenant("umbrella-health", "tok_e1a6f58c39", "dev"),
)
_BY_TOKEN = {t.token: t for t in TENANTS}


def tenant_for_token(token: str | None) -> Tenant | None:
    """The tenant a bearer token authenticates, or None."""
    return _BY_TOKEN.get(token or "")


# (tenant id, document id, text): each tenant has its own policies.
DOCUMENTS: tuple[tuple[str, str, str], ...] = (
    ("acme-corp", "doc-101", "Refund policy: customers get a full refund within 30 days of purchase."),
    ("acme-corp", "doc-102", "Onboarding: new seats are provisioned by the workspace owner."),
    ("acme-corp", "doc-103", "Security: single sign-on is required for every administrator."),
    ("globex-inc", "doc-201", "Refund policy: refunds are store credit only, never cash."),
    ("globex-inc", "doc-202", "Onboarding: each new user gets a welcome call from support."),
    ("globex-inc", "doc-203", "Pricing: volume discounts start at fifty seats."),
    ("initech", "doc-301", "Refund policy: no refunds after the invoice has been paid."),
    ("initech", "doc-302", "Security: passwords rotate every ninety days."),
    ("initech", "doc-303", "Onboarding: training sessions run every Monday morning."),
    ("umbrella-health", "doc-401", "Refund policy: refunds require approval from the compliance office."),
    ("umbrella-health", "doc-402", "Security: patient records never leave the private region."),
    ("umbrella-health", "doc-403", "Pricing: the clinical plan is billed per facility."),
)

# Each tenant's account record (what the account tool looks up).
ACCOUNTS: dict[str, dict[str, object]] = {
    "acme-corp": {"plan": "enterprise", "seats": 250, "region": "eu-west"},
    "globex-inc": {"plan": "team", "seats": 40, "region": "us-east"},
    "initech": {"plan": "starter", "seats": 8, "region": "us-west"},
    "umbrella-health": {"plan": "clinical", "seats": 120, "region": "eu-central"},
}

# What every tenant's user asks, turn by turn (round 1), then a follow-up (round 2).
CONVERSATIONS: tuple[tuple[str, ...], ...] = (
    (
        "What is our refund policy?",
        "Which plan are we on?",
        "Convert 120 EUR to USD for the invoice.",
    ),
    ("Remind me which plan we are on.",),
)
