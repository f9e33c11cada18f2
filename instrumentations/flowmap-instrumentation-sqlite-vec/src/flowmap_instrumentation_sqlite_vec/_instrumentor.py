"""Patch ``connect`` of sqlite3 (and pysqlite3 when installed) to hand out judging connections."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Collection
from typing import Any

from flowmap.instrumentation import FlowmapInstrumentor

from ._connection import traced_connection_factory
from ._settings import raw_tenant_id, settings

__all__ = ["SqliteVecInstrumentor"]

_MODULES = ("sqlite3", "pysqlite3.dbapi2", "pysqlite3")
_ORIGINAL = "_flowmap_original_connect"


def _patch(module: Any) -> None:
    original = module.connect
    if hasattr(original, _ORIGINAL):
        return
    factory = traced_connection_factory(module)

    @functools.wraps(original)
    def connect(*args: Any, **kwargs: Any) -> Any:
        # An app-chosen factory is left alone (wrap it with traced_connection_factory).
        if len(args) < 6 and "factory" not in kwargs:
            kwargs["factory"] = factory
        return original(*args, **kwargs)

    setattr(connect, _ORIGINAL, original)
    module.connect = connect


def _unpatch(module: Any) -> None:
    original = getattr(module.connect, _ORIGINAL, None)
    if original is not None:
        module.connect = original


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

    ``instrument(namespace=fn, partition_column=None, strict=False)``: ``namespace(ctx)``
    is the value the tenant's rows carry (default: the tenant id); ``partition_column``
    names the filter column (default: each vec0 table's ``partition key`` columns); a table
    without it as a partition key or metadata column is never scoped.
    Connections opened before ``instrument()`` are not judged.
    """

    name = "flowmap_sqlite_vec"

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("sqlite-vec >= 0.1.6, < 0.2",)

    def _instrument(self, **kwargs: Any) -> None:
        settings.namespace = kwargs.get("namespace") or raw_tenant_id
        column = kwargs.get("partition_column")
        settings.partition_column = column.lower() if column else None
        settings.strict = bool(kwargs.get("strict", False))
        for module in _modules():
            _patch(module)

    def _uninstrument(self, **kwargs: Any) -> None:
        for module in _modules():
            _unpatch(module)
        settings.strict = False
