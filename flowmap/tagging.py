"""Opaque tenant tags: ``hex(HMAC-SHA256(key, tenant_id))[:16]``.

The tag lets an operator group one tenant's spans without the raw id ever leaving the
process. Tags are cached per tenant so a span never pays for an HMAC.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
import re
import threading

from .errors import ConfigError

__all__ = ["Tagger", "key_bytes", "tag_for", "key_id_for", "is_opaque_tag", "DEV_KEY", "KEY_ENV", "DEV_MODE_ENV"]

KEY_ENV = "FLOWMAP_TENANT_KEY"
DEV_MODE_ENV = "FLOWMAP_DEV_MODE"
# A fixed, public key for development only: tags made with it are not secret.
DEV_KEY = "flowmap-insecure-development-key"
_DEV_KEY_BYTES = DEV_KEY.encode()

_TAG_RE = re.compile(r"[0-9a-f]{16}")  # fullmatch: "$" would let a final newline in
_log = logging.getLogger("flowmap")
_dev_warned = threading.Event()


def tag_for(key: str | bytes, tenant_id: str) -> str:
    """The contract's tag: first 16 lowercase hex chars of HMAC-SHA256(key, tenant_id)."""
    k = key.encode("utf-8") if isinstance(key, str) else key
    return hmac.new(k, tenant_id.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def key_id_for(key: str | bytes) -> str:
    """A short non-secret id of the key, so tags made with different keys are never compared."""
    k = key.encode("utf-8") if isinstance(key, str) else key
    return hmac.new(k, b"flowmap.key_id", hashlib.sha256).hexdigest()[:8]


def is_opaque_tag(value: object) -> bool:
    """True when ``value`` has the shape of a flowmap tag (16 lowercase hex)."""
    return isinstance(value, str) and _TAG_RE.fullmatch(value) is not None


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def key_bytes(key: str | bytes | bytearray | memoryview | None) -> bytes | None:
    """The tenant key as the runtime keys tags with it, or None when it is no key.

    No key: None, empty, or (text) blanks only, as a stray newline in a secret store
    gives. A key that is neither text nor bytes, or text with no UTF-8 encoding (the
    undecodable bytes of an environment variable), is a :class:`ConfigError` that never
    quotes the key. Shared by :class:`Tagger` and ``flowmap tag``, so both take a key alike.
    """
    if key is None:
        return None
    if isinstance(key, str):
        if not key.strip():
            return None  # blanks only ("   ", a stray newline) are no key, not a weak one
        try:
            encoded: bytes | None = key.encode("utf-8")
        except UnicodeEncodeError:
            encoded = None
        if encoded is None:  # raised outside the except: no chained error holding the key
            raise ConfigError(
                f"the tenant key is not text (undecodable bytes in {KEY_ENV}?): use a random ASCII string"
            )
        return encoded
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key) or None
    # bytes(123) is 123 NUL bytes, bytes([...]) whatever the list holds: a key nobody
    # chose. The type only: the value may be the secret itself.
    raise ConfigError(
        f"the tenant key must be a string (or bytes), not {type(key).__name__}: "
        f"pass tenant_key='...' or set {KEY_ENV}"
    )


class Tagger:
    """Turns tenant ids into opaque tags under one key; thread-safe, cached."""

    def __init__(self, key: str | bytes | bytearray | memoryview | None = None, *, dev_mode: bool | None = None) -> None:
        if key is None:
            key = os.environ.get(KEY_ENV) or None
        if dev_mode is None:
            dev_mode = _truthy(os.environ.get(DEV_MODE_ENV))
        k = key_bytes(key)
        if k is None:
            if not dev_mode:
                raise ConfigError(
                    f"no tenant key configured: set {KEY_ENV} (or pass tenant_key=... to flowmap.configure); "
                    f"for local development only, set {DEV_MODE_ENV}=1"
                )
            k = _DEV_KEY_BYTES
            if not _dev_warned.is_set():
                _dev_warned.set()
                _log.warning(
                    "FLOWMAP DEVELOPMENT MODE: tenant tags use a public built-in key and are NOT "
                    "secret; set %s before handling real tenants", KEY_ENV
                )
        self.dev_mode = k == _DEV_KEY_BYTES
        self._key = k
        self.key_id = key_id_for(self._key)
        self.tag = functools.lru_cache(maxsize=65536)(self._tag)

    def _tag(self, tenant_id: str) -> str:
        return tag_for(self._key, tenant_id)

    def __repr__(self) -> str:  # never show the key
        return f"Tagger(key_id={self.key_id!r}, dev_mode={self.dev_mode})"
