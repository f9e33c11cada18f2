"""Logging from where a failure must never reach the application: span processors.

Why: a logging handler may raise (a broken network handler, a test's handler that
throws), and ``Logger`` calls do not catch that; a processor that logs its own failure
would then raise into the application's ``span.start()`` or ``span.end()``.
"""

from __future__ import annotations

import logging

__all__ = ["debug_quietly"]


def debug_quietly(logger: logging.Logger, message: str) -> None:
    """``logger.debug(message, exc_info=True)``, and nothing if logging itself fails."""
    try:
        logger.debug(message, exc_info=True)
    except Exception:  # noqa: BLE001 - the handler's failure is not the application's
        pass
