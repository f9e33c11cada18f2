"""The ``OTEL_*`` variables that OpenTelemetry's SDK refuses, checked before it reads them.

The SDK raises a plain ``ValueError`` for a span limit that is not a whole number of 0
or more (``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT=abc``), a batch-processor size or delay that
is not positive, and a propagator it cannot find (``OTEL_PROPAGATORS=bogus``), some of
them while it is imported. ``configure()`` and ``flowmap run`` check them first, so the
error is flowmap's :class:`~flowmap.errors.ConfigError`: one line naming the variable and
its value (clipped). Rules as opentelemetry-sdk 1.45 applies them. Nothing here imports
OpenTelemetry: that import is what would fail.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib.metadata import entry_points

from .errors import ConfigError

__all__ = ["check_environment", "check_batch_settings", "shown"]

#: the span limits (``SpanLimits``): a whole number >= 0, or blank for no limit
LIMITS = (
    "OTEL_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_EVENT_COUNT_LIMIT",
    "OTEL_SPAN_LINK_COUNT_LIMIT",
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
)
#: the batch processor's, and their defaults: positive when they are whole numbers (any
#: other value the SDK logs and replaces by the default), the batch no larger than the queue
_QUEUE, _BATCH = "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"
_BATCH_SETTINGS = {_QUEUE: 2048, "OTEL_BSP_SCHEDULE_DELAY": 5000, _BATCH: 512}
_PROPAGATORS = "OTEL_PROPAGATORS"
_SHOWN = 40  # characters of a value a message shows


def shown(value: str) -> str:
    """A value of the environment as a message shows it: quoted, escaped, clipped."""
    return repr(value if len(value) <= _SHOWN else value[: _SHOWN - 1] + "…")


def check_environment(environ: Mapping[str, str] | None = None, *, batch: bool = True) -> None:
    """Raise :class:`ConfigError` for the first value of ``environ`` (default
    ``os.environ``) that the SDK would refuse with a ValueError. ``batch=False``: not the
    batch processor's settings, which the SDK refuses only where one is built (a test's
    in-memory capture or ``exporters="none"`` builds none: :func:`check_batch_settings`)."""
    env = os.environ if environ is None else environ
    for name in LIMITS:
        raw = env.get(name)
        if raw is None or not raw.strip():
            continue
        try:
            ok = int(raw.strip()) >= 0
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError(f"{name}={shown(raw)} is not a limit: give a whole number, 0 or more (blank: no limit)")
    if batch:
        check_batch_settings(env)
    _check_propagators(env.get(_PROPAGATORS))


def check_batch_settings(environ: Mapping[str, str] | None = None) -> None:
    """Raise :class:`ConfigError` for a batch-processor setting the SDK would refuse."""
    env = os.environ if environ is None else environ
    given: dict[str, int] = {}
    for name, default in _BATCH_SETTINGS.items():
        try:
            given[name] = value = int(env.get(name, default))
        except ValueError:
            given[name] = default
            continue
        if value <= 0:
            raise ConfigError(f"{name}={shown(env[name])} must be a whole number above 0")
    if given[_BATCH] > given[_QUEUE]:
        raise ConfigError(
            f"{_BATCH}={given[_BATCH]} is larger than the queue it is taken from "
            f"({_QUEUE}={given[_QUEUE]}{'' if _QUEUE in env else ', the default'})"
        )


def _check_propagators(configured: str | None) -> None:
    if not configured:
        return
    installed: set[str] | None = None
    for name in (n.strip() for n in configured.split(",")):
        if name.lower() == "none":
            return  # the SDK stops here: no propagator at all
        if installed is None:
            installed = {ep.name for ep in entry_points(group="opentelemetry_propagator")}
        if name not in installed:
            raise ConfigError(
                f"{_PROPAGATORS} names {shown(name)}, which is no installed propagator "
                f"(installed: {', '.join(sorted(installed)) or 'none'}; or 'none' for none)"
            )
