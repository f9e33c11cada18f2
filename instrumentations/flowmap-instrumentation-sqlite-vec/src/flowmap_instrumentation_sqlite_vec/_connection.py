"""Connection and cursor subclasses that judge statements reading vec0 tables."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from flowmap.instrumentation import bound_namespace, data_boundary

from . import _sql
from ._settings import settings

__all__ = ["traced_connection_factory"]

_SCHEMA_SQL = "SELECT type, name, sql FROM sqlite_master WHERE type IN ('table', 'view')"
_factories: dict[str, type] = {}


def _schema(conn: Any) -> dict[str, _sql.Vec0]:
    """vec0-data tables of the connection, re-read whenever the schema changed (by anyone)."""
    version = conn._flowmap_raw_execute("PRAGMA schema_version").fetchone()[0]
    if conn._flowmap_vec0 is None or conn._flowmap_schema_version != version:
        conn._flowmap_vec0 = _sql.vec0_tables(conn._flowmap_raw_execute(_SCHEMA_SQL).fetchall())
        conn._flowmap_schema_version = version
    return conn._flowmap_vec0


def _judge(conn: Any, sql: Any, params: Any) -> tuple[str, str, bool] | None:
    """(operation, table, scoped) for a statement that reads vec0 data, else None."""
    if not isinstance(sql, str) or not _sql.may_read(sql):
        return None
    vec0 = _schema(conn)
    verdict = _sql.reads(sql, vec0)
    if verdict is None:
        return None
    verb, hit = verdict
    ns = bound_namespace(settings.namespace)
    scoped = ns is not None and _sql.scoped(sql, params, vec0, settings.partition_column, ns)
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
        _flowmap_vec0: dict[str, _sql.Vec0] | None = None
        _flowmap_schema_version: int | None = None

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
