"""Connection and cursor subclasses that judge statements reading vec0 tables."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from flowmap.instrumentation import bound_namespace, data_boundary

from . import _sql
from ._settings import settings

__all__ = ["traced_connection_factory"]

_SCHEMA_SQL = "SELECT name, sql FROM sqlite_master WHERE type = 'table'"
_factories: dict[str, type] = {}


def _judge(conn: Any, sql: Any, params: Any) -> tuple[str, str, bool] | None:
    """(operation, table, scoped) for a statement that reads a vec0 table, else None."""
    if not isinstance(sql, str):
        return None
    if _sql.is_ddl(sql):
        conn._flowmap_vec0 = None  # schema may change: re-read on next use
        return None
    verb, tables = _sql.tables_read(sql)
    if verb not in {"select", "with", "delete", "update"} or not tables:
        return None
    vec0 = conn._flowmap_vec0
    if vec0 is None:
        vec0 = conn._flowmap_vec0 = _sql.vec0_tables(conn._flowmap_raw_execute(_SCHEMA_SQL).fetchall())
    hit = sorted(t for t in tables if t in vec0)
    if not hit:
        return None
    ns = bound_namespace(settings.namespace)
    scoped = ns is not None
    for table in hit:
        columns = {settings.partition_column} if settings.partition_column else vec0[table]
        values = _sql.tenant_values(sql, params, columns) if columns else None
        if not values or any(v != ns for v in values):
            scoped = False
    return verb.upper(), hit[0], scoped


def _guarded(conn: Any, sql: Any, params: Any, run: Any) -> Any:
    verdict = _judge(conn, sql, params)
    if verdict is None:
        return run()
    op, table, scoped = verdict
    attrs = {"db.system.name": "sqlite", "db.operation.name": op, "db.collection.name": table}
    with data_boundary("vector", f"{op} {table}", scoped=scoped, strict=settings.strict, attributes=attrs):
        return run()


def traced_connection_factory(module: ModuleType) -> type:
    """A ``factory=`` for ``module.connect`` (sqlite3 or pysqlite3.dbapi2) judging vec0 reads."""
    key = module.__name__
    if key in _factories:
        return _factories[key]

    class TracedCursor(module.Cursor):  # type: ignore[name-defined,misc]
        def execute(self, sql: Any, parameters: Any = (), /) -> Any:
            return _guarded(self.connection, sql, parameters, lambda: super(TracedCursor, self).execute(sql, parameters))

    class TracedConnection(module.Connection):  # type: ignore[name-defined,misc]
        _flowmap_vec0: dict[str, set[str]] | None = None

        def _flowmap_raw_execute(self, sql: str) -> Any:
            return module.Cursor(self).execute(sql)

        def cursor(self, factory: Any = TracedCursor) -> Any:  # type: ignore[override]
            return super().cursor(factory)

        def execute(self, sql: Any, parameters: Any = (), /) -> Any:
            # Judged once here, run on a plain cursor: how the C Connection.execute reaches
            # the cursor differs between sqlite3 and pysqlite3.
            return _guarded(self, sql, parameters, lambda: module.Cursor(self).execute(sql, parameters))

    TracedConnection.__name__ = TracedConnection.__qualname__ = "FlowmapTracedConnection"
    _factories[key] = TracedConnection
    return TracedConnection
