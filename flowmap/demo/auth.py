"""How both demo services learn whose request it is: the bearer token, never the payload.

The tenant comes from the credential the caller presents, checked by the service itself
(``TenantMiddleware``), so a tag arriving in baggage is only evidence and a tenant named
in a request body or by a model is never trusted.
"""

from __future__ import annotations

from typing import Any

from ..asgi import ASGIApp, Scope, TenantMiddleware, header
from ..context import RequestContext
from .data import tenant_for_token
from .json_app import HEALTH_PATH

__all__ = ["bearer_token", "resolve_tenant", "authenticated"]


def bearer_token(scope: Scope) -> str | None:
    """The token of an ``Authorization: Bearer …`` header, or None."""
    scheme, _, token = (header(scope, "authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def resolve_tenant(scope: Scope) -> RequestContext | None:
    """The tenant the caller's bearer token authenticates (None: the middleware replies 401)."""
    tenant = tenant_for_token(bearer_token(scope))
    return None if tenant is None else RequestContext(tenant.tenant_id, principal=tenant.user)


def authenticated(app: ASGIApp) -> Any:
    """``app`` behind flowmap's TenantMiddleware: server span, tenant bound per request."""
    return TenantMiddleware(
        app, resolve_tenant, exempt_paths=(HEALTH_PATH,),
        span_name=lambda scope: f"{scope.get('method')} {scope.get('path')}",
    )
