"""What every flowmap instrumentation shares: env disabling, data-boundary guards, namespaces,
its own tracer, and wrappers it can remove without touching anyone else's.

The distributions under ``instrumentations/`` patch third-party libraries; the policy they
apply (when to skip, how a data operation is judged and refused, what a tenant's key
namespace is) lives here once, so a Redis key and a vector filter are judged the same way.

The API an instrumentation uses (all small):

* :class:`FlowmapInstrumentor` — subclass it, set ``name`` (the entry point name). Its
  ``instrument()`` honours the disable variables (see :func:`is_disabled`) and the
  contrib convention ``instrument(tracer_provider=tp)``: :meth:`FlowmapInstrumentor.tracer`
  returns a tracer on ``tp`` or, without one, on flowmap's provider (the one
  ``flowmap.configure()`` installed, else the global one) as it is when the span starts.
  The tracer's instrumentation scope is the instrumentation's own (``scope_name``,
  default its top-level import package, e.g. ``flowmap_instrumentation_redis``, and
  that package's ``__version__``), so a span tells which instrumentation made it.
* :func:`data_boundary` — a data-boundary span; pass ``tracer=instrumentor.tracer()``.
* :class:`Patches` — ``wrap()`` instead of ``wrapt.wrap_function_wrapper`` and
  ``unwrap_all()`` in ``_uninstrument``: removes only its own wrappers, even when
  another instrumentation (the contrib one for the same library) wrapped on top.
* :func:`tag_namespace` / :func:`bound_namespace` — the tenant's key namespace.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from importlib import import_module
from typing import Any, ClassVar

import wrapt
from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.trace import Span, Tracer

from . import runtime
from .boundaries import boundary
from .context import RequestContext, current_or_none
from .errors import UnscopedOperationError

__all__ = [
    "DISABLED_ENV",
    "FlowmapInstrumentor",
    "Patches",
    "is_disabled",
    "data_boundary",
    "tag_namespace",
    "Namespace",
    "bound_namespace",
]

DISABLED_ENV = "FLOWMAP_DISABLED_INSTRUMENTATIONS"
OTEL_DISABLED_ENV = "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"

_log = logging.getLogger("flowmap.instrumentation")
# the base of wrapt's proxies (FunctionWrapper included): wrapt 2 names it BaseObjectProxy
_PROXY: type = getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy)

# A function of the authenticated tenant that names its slice of a store (a key prefix,
# a partition value). It runs in-process; its output is compared, never recorded.
Namespace = Callable[[RequestContext], str]


def tag_namespace(ctx: RequestContext) -> str:
    """Default key namespace ``t:<opaque tag>:``.

    Built from the tag, not the raw id, so keys stay safe even when another tool (a
    Redis MONITOR, an OTel Redis instrumentation writing ``db.statement``) records them.
    """
    return f"t:{ctx.tag(runtime.get_tagger())}:"


def is_disabled(name: str) -> bool:
    """True when ``name`` is listed in FLOWMAP_DISABLED_INSTRUMENTATIONS or
    OTEL_PYTHON_DISABLED_INSTRUMENTATIONS (comma separated, spaces ignored), or when the
    list says every one: ``*`` in either (as ``opentelemetry-instrument`` reads it), or
    ``all`` in FLOWMAP_DISABLED_INSTRUMENTATIONS."""
    for env, everything in ((DISABLED_ENV, {"all", "*"}), (OTEL_DISABLED_ENV, {"*"})):
        listed = {x.strip() for x in os.environ.get(env, "").split(",") if x.strip()}
        if name in listed or listed & everything:
            return True
    return False


class FlowmapInstrumentor(BaseInstrumentor):
    """BaseInstrumentor that honours the disable variables in ``instrument()`` itself, and
    ``instrument(tracer_provider=...)`` for the spans it makes (see :meth:`tracer`).

    ``opentelemetry-instrument`` already skips names in OTEL_PYTHON_DISABLED_INSTRUMENTATIONS;
    checking here too covers code that calls ``instrument()`` directly.
    """

    name: ClassVar[str] = ""  # the entry point name, e.g. "flowmap_redis"
    # the instrumentation scope of its spans; "" = the subclass's top-level package
    scope_name: ClassVar[str] = ""

    _provider: Any = None  # instrument(tracer_provider=...), None: flowmap's at span time
    _tracer_cache: tuple[Any, Tracer] | None = None

    def instrumentation_dependencies(self) -> Collection[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def instrument(self, **kwargs: Any) -> Any:
        if is_disabled(self.name):
            _log.info("flowmap: instrumentation %s disabled by environment", self.name)
            return None
        if not self.is_instrumented_by_opentelemetry:
            self._provider = kwargs.get("tracer_provider")
            self._tracer_cache = None
        return super().instrument(**kwargs)

    def uninstrument(self, **kwargs: Any) -> Any:
        result = super().uninstrument(**kwargs)
        self._provider = None
        self._tracer_cache = None
        return result

    def tracer(self) -> Tracer:
        """The tracer for this instrumentation's spans: on ``instrument(tracer_provider=)``'s
        provider, else on flowmap's (``configure()``'s or the global) as it is now."""
        provider = self._provider or runtime.tracer_provider()
        cached = self._tracer_cache
        if cached is not None and cached[0] is provider:
            return cached[1]
        package = self.scope_name or type(self).__module__.partition(".")[0]
        version = getattr(sys.modules.get(package), "__version__", None)
        tracer = trace.get_tracer(package, version, tracer_provider=provider)
        self._tracer_cache = (provider, tracer)
        return tracer


class Patches:
    """The wrappers one instrumentation installed, so it removes only its own.

    ``opentelemetry.instrumentation.utils.unwrap`` removes whatever wrapper is outermost:
    after another instrumentation wrapped the same method on top (the contrib one for the
    same library), it would remove that one and leave ours. ``unwrap_all()`` instead
    turns each of ours into a pass-through first, then restores the method when ours is
    outermost, or splices ours out of the chain when a wrapt proxy sits on top; any other
    wrapper on top is left alone, with ours inside it passing calls straight through.
    """

    def __init__(self) -> None:
        # (owner, attribute, our wrapper, [active], whether the owner defined it itself)
        self._installed: list[tuple[Any, str, Any, list[bool], bool]] = []

    def wrap(self, module: str, name: str, wrapper: Callable[..., Any]) -> None:
        """Wrap ``module``'s ``name`` (``"Class.method"``) with the wrapt-style ``wrapper``."""
        parent: Any = import_module(module)
        *path, attr = name.split(".")
        for part in path:
            parent = getattr(parent, part)
        active = [True]

        def gated(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            if active[0]:
                return wrapper(wrapped, instance, args, kwargs)
            return wrapped(*args, **kwargs)

        own = not isinstance(parent, type) or attr in vars(parent)
        if isinstance(parent, type):  # the raw attribute (a function, not a bound method)
            original = next(vars(c)[attr] for c in parent.__mro__ if attr in vars(c))
        else:
            original = getattr(parent, attr)
        ours = wrapt.FunctionWrapper(original, gated)
        setattr(parent, attr, ours)
        self._installed.append((parent, attr, ours, active, own))

    def unwrap_all(self) -> None:
        """Remove every wrapper this object installed (and only those), newest first."""
        while self._installed:
            parent, attr, ours, active, own = self._installed.pop()
            active[0] = False  # whatever happens below, ours no longer acts
            current = vars(parent).get(attr) if isinstance(parent, type) else getattr(parent, attr, None)
            if current is ours:
                if own:
                    setattr(parent, attr, ours.__wrapped__)
                else:  # it was inherited: inherit it again
                    delattr(parent, attr)
                continue
            node = current
            for _ in range(64):  # walk the chain of wrappers above ours
                inner = getattr(node, "__wrapped__", None)
                if inner is None:
                    break
                if inner is ours:
                    if isinstance(node, _PROXY):
                        try:
                            node.__wrapped__ = ours.__wrapped__
                        except Exception:  # noqa: BLE001 - ours stays, as a pass-through
                            _log.debug("flowmap: could not splice out a wrapper", exc_info=True)
                    break
                node = inner


@contextmanager
def data_boundary(
    kind: str,
    name: str,
    *,
    scoped: bool,
    strict: bool = False,
    attributes: Mapping[str, Any] | None = None,
    tracer: Tracer | None = None,
) -> Iterator[Span]:
    """A data-boundary span with ``flowmap.scoped`` as the instrumentation verified it.

    In strict mode an unscoped operation raises UnscopedOperationError inside the span
    (so the refusal is recorded) and before the caller's operation runs. With no tenant
    bound the boundary's own mode applies (fail closed by default). ``tracer``: the
    instrumentation's (:meth:`FlowmapInstrumentor.tracer`); default flowmap's own.
    """
    guard = boundary(kind, name, scoped=scoped, attributes=attributes, tracer=tracer)
    with guard as span:
        if strict and not scoped:
            raise UnscopedOperationError(
                f"strict mode: {name} is not restricted to the bound tenant"
            )
        yield span


def bound_namespace(namespace: Namespace) -> str | None:
    """The bound tenant's namespace, or None when no authenticated tenant is bound."""
    ctx = current_or_none()
    if ctx is None:
        return None
    try:
        return namespace(ctx)
    except Exception:  # noqa: BLE001 - a broken namespace function judges as unscoped
        _log.debug("flowmap: namespace function failed", exc_info=True)
        return None
