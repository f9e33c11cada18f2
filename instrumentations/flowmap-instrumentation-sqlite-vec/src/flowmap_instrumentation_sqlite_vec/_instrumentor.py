"""Patch ``connect`` of sqlite3 (and pysqlite3 when installed) to hand out judging connections."""

from __future__ import annotations

import importlib
from collections.abc import Collection
from typing import Any

from flowmap.instrumentation import FlowmapInstrumentor, Patches

from ._connection import _ConnectionMixin, traced_connection_factory
from ._settings import raw_tenant_id, settings

__all__ = ["SqliteVecInstrumentor"]

_MODULES = ("sqlite3", "pysqlite3.dbapi2", "pysqlite3")
_patches = Patches()  # removes only flowmap's own wrappers, whoever wrapped on top
_FACTORY_AT = 5  # connect(database, timeout, detect_types, isolation_level, check_same_thread, factory, ...)


def _judging_factory(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], bool]:
    """``connect``'s arguments with a judging factory, and whether the connection follows
    instrument()/uninstrument(). An app's Connection subclass is kept as the base; a
    judging class the app chose itself judges always; a factory function is left alone."""
    given = kwargs["factory"] if "factory" in kwargs else args[_FACTORY_AT] if len(args) > _FACTORY_AT else None
    if given is None and ("factory" in kwargs or len(args) > _FACTORY_AT):
        return args, False
    if given is None:
        factory = traced_connection_factory(module)
    elif not isinstance(given, type) or issubclass(given, _ConnectionMixin):
        return args, False
    elif issubclass(given, module.Connection):
        factory = traced_connection_factory(given)
    else:
        return args, False
    if "factory" in kwargs or len(args) <= _FACTORY_AT:
        kwargs["factory"] = factory
    else:
        args = (*args[:_FACTORY_AT], factory, *args[_FACTORY_AT + 1 :])
    return args, True


def _connect(module: Any) -> Any:
    """The wrapper of ``module.connect``: connections are made with a judging factory."""

    def connect(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        args, follows = _judging_factory(module, args, kwargs)
        conn = wrapped(*args, **kwargs)
        state = getattr(conn, "_flowmap_state", None)
        if follows and state is not None:
            state.auto = True  # a plain connection again after uninstrument()
        return conn

    return connect


def _modules() -> list[Any]:
    found = []
    for name in _MODULES:
        try:
            found.append(importlib.import_module(name))
        except ImportError:
            continue
    return found


class SqliteVecInstrumentor(FlowmapInstrumentor):
    """Judge every read of a vec0 table against the bound tenant's partition value.

    ``instrument(namespace=fn, partition_column=None, strict=False, tracer_provider=None)``:
    ``namespace(ctx)`` is the value the tenant's rows carry (default: the tenant id);
    ``partition_column`` names the filter column (default: each vec0 table's ``partition
    key`` columns); a table without it as a partition key or metadata column is never
    scoped; ``tracer_provider`` gets the spans (default: flowmap's provider).
    Connections opened before ``instrument()`` are not judged; those opened while
    instrumented are judged until ``uninstrument()``, then behave as plain connections.
    """

    name = "flowmap_sqlite_vec"

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("sqlite-vec >= 0.1.6, < 0.2",)

    def _instrument(self, **kwargs: Any) -> None:
        settings.namespace = kwargs.get("namespace") or raw_tenant_id
        column = kwargs.get("partition_column")
        settings.partition_column = column.lower() if column else None
        settings.strict = bool(kwargs.get("strict", False))
        settings.generation += 1  # what connections learnt while not instrumented is not trusted
        settings.active = True
        for module in _modules():
            _patches.wrap(module.__name__, "connect", _connect(module))

    def _uninstrument(self, **kwargs: Any) -> None:
        _patches.unwrap_all()
        settings.reset()


settings.tracer = lambda: SqliteVecInstrumentor().tracer()  # the instrumentor is a singleton
