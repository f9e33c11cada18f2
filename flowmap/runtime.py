"""Process-wide runtime state: the Tagger, the boundary mode, the alert settings.

One small module so every runtime piece (context, processors, boundaries, transport)
reads the same settings without importing ``configure`` (which pulls in exporters).
Nothing here registers anything at import time.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from .errors import ConfigError
from .tagging import KEY_ENV, Tagger

if TYPE_CHECKING:  # pragma: no cover
    from opentelemetry.sdk.trace import TracerProvider

__all__ = [
    "BOUNDARY_MODES",
    "BOUNDARY_MODE_ENV",
    "Runtime",
    "get_tagger",
    "set_tagger",
    "tagger_or_none",
    "boundary_mode",
    "set_boundary_mode",
    "validate_boundary_mode",
    "current_runtime",
    "set_runtime",
    "tracer_provider",
    "get_tracer",
]

BOUNDARY_MODE_ENV = "FLOWMAP_BOUNDARY_MODE"
BOUNDARY_MODES: frozenset[str] = frozenset({"fail", "record"})
DEFAULT_BOUNDARY_MODE = "fail"

_lock = threading.RLock()
_tagger: Tagger | None = None
_boundary_mode: str | None = None
_runtime: "Runtime | None" = None


def validate_boundary_mode(mode: str) -> str:
    """Normalise a boundary mode name; anything but ``fail``/``record`` is a ConfigError."""
    m = str(mode).strip().lower()
    if m not in BOUNDARY_MODES:
        raise ConfigError(f"boundary mode must be one of {sorted(BOUNDARY_MODES)}")
    return m


def set_tagger(tagger: Tagger | None) -> None:
    """Install (or with ``None`` remove) the process-wide Tagger."""
    global _tagger
    with _lock:
        _tagger = tagger


def tagger_or_none() -> Tagger | None:
    """The configured Tagger; built from ``FLOWMAP_TENANT_KEY`` if only the env has a key.

    Never raises and never enters development mode by itself: no key means ``None``.
    """
    t = _tagger
    if t is not None:
        return t
    if not os.environ.get(KEY_ENV):
        return None
    try:
        return get_tagger()
    except ConfigError:
        return None


def get_tagger() -> Tagger:
    """The configured Tagger, built from the environment on first use.

    Raises ConfigError when no key is configured and development mode is off.
    """
    global _tagger
    t = _tagger
    if t is not None:
        return t
    with _lock:
        if _tagger is None:
            _tagger = Tagger()  # env key or dev mode, else ConfigError
        return _tagger


def boundary_mode() -> str:
    """Default mode of boundaries: set in code, else ``FLOWMAP_BOUNDARY_MODE``, else ``fail``."""
    m = _boundary_mode
    if m is not None:
        return m
    env = os.environ.get(BOUNDARY_MODE_ENV)
    if env:
        try:
            return validate_boundary_mode(env)
        except ConfigError:
            _warn_bad_mode_once()
            return DEFAULT_BOUNDARY_MODE  # a typo must not open the boundaries
    return DEFAULT_BOUNDARY_MODE


_bad_mode_warned = False


def _warn_bad_mode_once() -> None:
    """A typo in FLOWMAP_BOUNDARY_MODE keeps boundaries closed, said once (not per call)."""
    global _bad_mode_warned
    if not _bad_mode_warned:
        _bad_mode_warned = True
        import logging

        logging.getLogger("flowmap").warning(
            "flowmap: %s is neither 'fail' nor 'record'; boundaries fail without a tenant",
            BOUNDARY_MODE_ENV,
        )


def set_boundary_mode(mode: str | None) -> None:
    """Set the process-wide default boundary mode (``None`` goes back to env/default)."""
    global _boundary_mode
    with _lock:
        _boundary_mode = None if mode is None else validate_boundary_mode(mode)


@dataclass
class Runtime:
    """What ``flowmap.configure()`` built: the provider, the tagger and flowmap's processors."""

    tracer_provider: "TracerProvider"
    tagger: Tagger
    meter_provider: Any = None
    processors: list[Any] = field(default_factory=list)
    owns_provider: bool = True
    _shutdown_hooks: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export everything buffered so far (call before reading the trace file)."""
        try:
            return bool(self.tracer_provider.force_flush(timeout_millis))
        except Exception:  # noqa: BLE001 - flushing telemetry must not break the app
            return False

    def shutdown(self) -> None:
        """Flush and stop flowmap's exporters (the provider too when flowmap created it)."""
        for hook in list(self._shutdown_hooks):
            try:
                hook()
            except Exception:  # noqa: BLE001
                pass
        self._shutdown_hooks.clear()
        try:
            if self.owns_provider:
                self.tracer_provider.shutdown()
            else:
                self.force_flush()
                for p in self.processors:
                    p.shutdown()
        except Exception:  # noqa: BLE001
            pass
        global _runtime
        with _lock:
            if _runtime is self:
                _runtime = None


def current_runtime() -> Runtime | None:
    """The Runtime installed by the last global ``configure()``, if any."""
    return _runtime


def set_runtime(rt: Runtime | None) -> None:
    global _runtime
    with _lock:
        _runtime = rt


def tracer_provider() -> Any:
    """The provider flowmap's own spans go to: the configured Runtime's, else the global one."""
    rt = _runtime
    if rt is not None:
        return rt.tracer_provider
    from opentelemetry import trace

    return trace.get_tracer_provider()


def get_tracer(provider: Any = None) -> Any:
    """A tracer named ``flowmap`` on ``provider`` (default: :func:`tracer_provider`)."""
    global _tracer_cache
    provider = provider or tracer_provider()
    cached = _tracer_cache
    if cached is not None and cached[0] is provider:
        return cached[1]
    from opentelemetry import trace

    from . import __version__

    tracer = trace.get_tracer("flowmap", __version__, tracer_provider=provider)
    _tracer_cache = (provider, tracer)
    return tracer


_tracer_cache: tuple[Any, Any] | None = None
