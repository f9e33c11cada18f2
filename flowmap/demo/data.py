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

# What each tenant's user asks, round by round: {user: turns}. In round one every user
# asks about their documents, their plan, and a currency conversion; two of them paste a
# customer's whole message, a large embedding job the platform runs on its worker pool
# (small ones run inline). In round two everyone asks about their plan again.
_PLAN = "Which plan are we on?"
_FX = "Convert 120 EUR to USD for the invoice."
CONVERSATIONS: tuple[dict[str, tuple[str, ...]], ...] = (
    {
        "ana": ("What is our refund policy?", _PLAN, _FX),
        "ben": (
            "A customer forwarded this and wants an answer today: \"We bought forty seats in March, "
            "moved two teams to another product in May, and finance is asking whether the unused "
            "seats can be refunded or only credited.\" What does our refund policy say?",
            _PLAN, _FX,
        ),
        "chloe": ("What is our security policy for passwords?", _PLAN, _FX),
        "dev": (
            "Our compliance office sent a long note about a clinic that closed two of its facilities "
            "this quarter; before they sign anything they need to know what our refund policy says "
            "about fees already paid for those sites, and who has to approve it.",
            _PLAN, _FX,
        ),
    },
    {t.user: ("Remind me which plan we are on.",) for t in TENANTS},
)
