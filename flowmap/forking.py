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


def renew_after_fork(owner: Any, attribute: str = "lock") -> None:
    """Give ``owner`` a new ``threading.Lock`` as ``attribute`` in every forked child.
    Holds ``owner`` weakly: an owner that is gone costs the child nothing."""
    if not hasattr(os, "register_at_fork"):
        return
    ref = weakref.ref(owner)

    def renew() -> None:
        target = ref()
        if target is not None:
            setattr(target, attribute, threading.Lock())

    os.register_at_fork(after_in_child=renew)
