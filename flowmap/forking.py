"""Locks that a forked child gets afresh.

Why: a fork while another thread holds a lock gives the child a lock that no thread of
its own will ever release. Locks taken where spans start, end or are exported (the file
exporter's, the alert limiter's, redaction's index of known ids) would then stop the
child's application threads, or its flush at exit, for ever: a multiprocessing worker or
a preforked server worker that never answers. (The SDK's batch processor renews its own.)
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

__all__ = ["renew_after_fork"]

# owner -> the attributes to renew; held weakly, so an owner that is gone costs nothing
_OWNERS: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
_registered = False
_guard = threading.Lock()


def renew_after_fork(owner: Any, attribute: str = "lock") -> None:
    """Give ``owner`` a new ``threading.Lock`` as ``attribute`` in every forked child."""
    global _registered
    with _guard:
        _OWNERS.setdefault(owner, set()).add(attribute)
        if not _registered and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_renew)  # once: hooks cannot be removed
            _registered = True


def _renew() -> None:
    global _guard
    _guard = threading.Lock()  # (this one may have been held at the fork too)
    for owner, names in list(_OWNERS.items()):
        for name in names:
            setattr(owner, name, threading.Lock())
        hook = getattr(owner, "_in_forked_child", None)  # (the exporter drops a descriptor)
        if callable(hook):
            try:
                hook()
            except Exception:  # noqa: BLE001 - never break the child
                pass
