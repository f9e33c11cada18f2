"""The CeleryTenantInstrumentor: Celery signal handlers on both sides of the broker."""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from opentelemetry import trace

from flowmap import attributes as A
from flowmap.context import bind_tag, outbound_tag
from flowmap.instrumentation import FlowmapInstrumentor
from flowmap.tagging import is_opaque_tag

__all__ = ["CeleryTenantInstrumentor", "HEADER"]

#: the message header that carries the opaque tag (a header of its own, not W3C
#: baggage: the guarded baggage propagator strips the tag from every carrier it did not
#: check, and the order of Celery's signal handlers is the application's)
HEADER = "flowmap_tenant"
_INSTRUMENTS = ("celery >= 5.3, < 6",)
_log = logging.getLogger("flowmap.instrumentation.celery")


#: where a task run keeps its binding: on its own request (one per run, per thread), so
#: two runs of one task id (a redelivered message) never share or swap bindings
_BINDING_ATTR = "_flowmap_binding"


def _before_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Publisher side: the bound tenant's tag into the message's headers."""
    try:
        tag = outbound_tag()
        if tag is not None and headers is not None:
            headers[HEADER] = tag
    except Exception:  # noqa: BLE001 - never break the application's publish
        _log.debug("flowmap: could not add the tenant tag to a task", exc_info=True)


def _task_tag(request: Any) -> str | None:
    """The opaque tag a task run's request carries, if any."""
    tag = getattr(request, HEADER, None)
    if tag is None and isinstance(getattr(request, "headers", None), dict):
        tag = request.headers.get(HEADER)  # where older message protocols keep it
    return tag if isinstance(tag, str) and is_opaque_tag(tag) else None


def _prerun(task: Any = None, **_: Any) -> None:
    """Worker side: the task's tag bound while it runs (evidence, like a queue consumer's:
    ``flowmap.current()`` still needs the tenant authenticated from the task's data)."""
    try:
        request = getattr(task, "request", None)
        tag = _task_tag(request)
        if tag is None:
            return
        # flowmap's binding only: the OpenTelemetry context is the contrib
        # instrumentation's to attach and detach (in an order that is not ours)
        binding = bind_tag(tag, baggage=False)
        binding.__enter__()  # another tenant bound: refused, logged
        try:
            setattr(request, _BINDING_ATTR, binding)
        except Exception:
            binding.__exit__(None, None, None)  # nowhere to keep it: never left bound
            raise
        # the contrib instrumentation's run span may have started before this handler
        span = trace.get_current_span()
        attrs = getattr(span, "attributes", None)
        if span.is_recording() and attrs is not None and A.TENANT not in attrs:
            span.set_attribute(A.TENANT, tag)
            span.set_attribute(A.TENANT_SOURCE, A.SOURCE_BAGGAGE)
    except Exception:  # noqa: BLE001 - never break the worker
        _log.debug("flowmap: could not bind a task's tenant tag", exc_info=True)


def _postrun(task: Any = None, **_: Any) -> None:
    try:
        request = getattr(task, "request", None)
        binding = getattr(request, _BINDING_ATTR, None)
        if binding is not None:
            delattr(request, _BINDING_ATTR)
            binding.__exit__(None, None, None)
    except Exception:  # noqa: BLE001 - never break the worker
        _log.debug("flowmap: could not unbind a task's tenant tag", exc_info=True)


class CeleryTenantInstrumentor(FlowmapInstrumentor):
    """Carry the bound tenant's opaque tag with every Celery task and bind it in the
    worker while the task runs. Works beside the contrib ``CeleryInstrumentor``, in
    either order of ``instrument()`` calls."""

    name = "flowmap_celery"

    def instrumentation_dependencies(self) -> Collection[str]:
        return _INSTRUMENTS

    def _instrument(self, **kwargs: Any) -> None:
        from celery import signals

        signals.before_task_publish.connect(_before_publish, weak=False, dispatch_uid="flowmap_celery")
        signals.task_prerun.connect(_prerun, weak=False, dispatch_uid="flowmap_celery")
        signals.task_postrun.connect(_postrun, weak=False, dispatch_uid="flowmap_celery")

    def _uninstrument(self, **kwargs: Any) -> None:
        from celery import signals

        signals.before_task_publish.disconnect(_before_publish, dispatch_uid="flowmap_celery")
        signals.task_prerun.disconnect(_prerun, dispatch_uid="flowmap_celery")
        signals.task_postrun.disconnect(_postrun, dispatch_uid="flowmap_celery")
