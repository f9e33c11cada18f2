"""flowmap instrumentation for Celery.

A task published while a tenant is bound carries the tenant's opaque tag (never the raw
id) in its own message header; the worker binds that tag as evidence while the task
runs, and tags the task's ``run`` span with it. Without it, the contrib Celery
instrumentation's worker span has no tenant (flowmap's guarded baggage propagator keeps
the tag out of every carrier it did not check, a task's headers included), and
``flowmap check`` reports ``context-dropped`` at the ``queue.consume`` boundary::

    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from flowmap_instrumentation_celery import CeleryTenantInstrumentor

    CeleryInstrumentor().instrument()
    CeleryTenantInstrumentor().instrument()      # in the publisher and in the worker
    with flowmap.bind(ctx):
        summarize.delay(doc_id)                  # the worker runs it under ctx's tag
"""

from ._instrumentor import HEADER, CeleryTenantInstrumentor

__all__ = ["CeleryTenantInstrumentor", "HEADER"]
__version__ = "0.1.0"
