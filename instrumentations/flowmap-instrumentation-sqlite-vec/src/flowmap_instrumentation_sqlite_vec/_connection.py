"""Connection and cursor classes that judge every statement reading vec0 data.

Every way a statement reaches SQLite through a judging connection is judged:
``execute``, ``executemany`` and ``executescript`` on the connection and on each of its
cursors — the one ``Connection.execute`` hands back, those ``cursor()`` makes, and those
an application's own cursor ``factory=`` makes (a Cursor subclass is judged as it is; a
factory function's cursor is adopted, or refused when it cannot be). A connection's
``row_factory`` and an application's own connection class are kept.

Which tables hold vec0 data is read from the schema (every attached database, temp
included) and kept until it may have changed. That is decided without asking SQLite on
the common path, which costs a dictionary lookup and a set intersection:

* a statement through this connection that may change the schema (DDL, PRAGMA, ATTACH,
  ROLLBACK, any script), or ``backup()`` into it, makes it read the schema again;
* another connection can change a database file's schema between any two statements
  run outside a transaction, so then each statement that may read a table first reads
  the schema version of each such database (one ``PRAGMA schema_version``). Inside a
  transaction, once it has been read, no other connection can change what this one
  sees until the transaction ends (SQLite's locks, or WAL's snapshot);
* a private database (``":memory:"``, ``""``) and ``temp`` change only through this
  connection: never asked, except when a transaction began or ended where this module
  did not see it (``with conn:``), which may have rolled back a schema change.

What is not seen: statements run on a cursor constructed directly (``sqlite3.Cursor(conn)``)
or through the base class's methods (``sqlite3.Connection.execute(conn, ...)``), and a
``backup()`` into a private database made by a connection that is not judging.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType
from typing import Any

from flowmap.instrumentation import bound_namespace, data_boundary

from . import _sql
from ._settings import settings

_statement = _sql.statement

__all__ = ["traced_connection_factory"]

_DBAPI = ("sqlite3", "pysqlite3.dbapi2", "pysqlite3")
_SCHEMA_SQL = "SELECT type, name, sql FROM {}.sqlite_master WHERE type IN ('table', 'view')"
_connections: dict[type, type] = {}
_cursors: dict[type, type] = {}


class _State:
    """What a judging connection knows of its schema, and when it must look again."""

    __slots__ = ("module", "auto", "private", "epoch", "read_epoch", "generation", "rows", "vec0",
                 "dbs", "versions", "watch", "txn", "check_all", "verified")

    def __init__(self, module: ModuleType, private: bool) -> None:
        self.module = module
        self.auto = False  # opened by the instrumented connect: judges only while instrumented
        self.private = private  # main is ":memory:" or "": no other connection sees it
        self.epoch = 0  # bumped after each statement of this connection that may change the schema
        self.read_epoch = -1  # the epoch when the schema was read (-1: never)
        self.generation = -1  # settings.generation then
        self.rows: list[tuple[str, str, str]] = []  # (type, name, sql) of every table and view
        self.vec0: dict[str, _sql.Vec0] = {}
        self.dbs: tuple[str, ...] = ()  # the databases then (main, temp, attached)
        self.versions: dict[str, Any] = {}  # their schema_version then
        self.watch: tuple[str, ...] = ()  # those another connection can change
        self.txn = False  # in_transaction at the last statement
        self.check_all = False  # a transaction began or ended unseen: check every version
        self.verified = False  # the schema read is current without asking SQLite


def _state(conn: Any) -> _State | None:
    """The connection's state if its statements are to be judged now, else None."""
    st = getattr(conn, "_flowmap_state", None)
    if st is None or (st.auto and not settings.active):
        return None
    return st


def _text(value: Any) -> Any:
    """A schema value as text, whatever the connection's ``text_factory`` made of it."""
    if isinstance(value, str) or value is None:
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _raw(conn: Any, st: _State, sql: str) -> list[Any]:
    # a plain cursor: not judged, no row_factory
    return st.module.Cursor(conn).execute(sql).fetchall()  # type: ignore[no-any-return]


def _version(conn: Any, st: _State, db: str) -> Any:
    try:
        return _raw(conn, st, f"PRAGMA {_quote(db)}.schema_version")[0][0]
    except st.module.OperationalError:  # detached where this module did not see it
        return None  # never equal to a version read before: the schema is read again


def _read_schema(conn: Any, st: _State) -> None:
    epoch = st.epoch
    dbs = tuple(_text(row[1]) for row in _raw(conn, st, "PRAGMA database_list"))
    # the versions before the tables: a change in between is then seen next time
    versions = {db: _version(conn, st, db) for db in dbs}
    rows: list[tuple[str, str, str]] = []
    for db in dbs:
        rows += [tuple(map(_text, row)) for row in _raw(conn, st, _SCHEMA_SQL.format(_quote(db)))]
    st.vec0 = _sql.vec0_tables(rows)
    st.rows, st.dbs, st.versions = rows, dbs, versions
    st.watch = tuple(db for db in dbs if db != "temp" and not (db == "main" and st.private))
    st.read_epoch, st.generation = epoch, settings.generation


def _vec0(conn: Any, st: _State) -> dict[str, _sql.Vec0]:
    """The connection's vec0-data tables as they are now (see the module docstring)."""
    if st.verified and st.read_epoch == st.epoch and st.generation == settings.generation:
        return st.vec0
    if st.read_epoch != st.epoch or st.generation != settings.generation:
        _read_schema(conn, st)
    elif any(_version(conn, st, db) != st.versions.get(db) for db in (st.dbs if st.check_all else st.watch)):
        _read_schema(conn, st)
    st.check_all = False
    # Python 3.12's autocommit=False opens the next transaction as one ends, so an unseen
    # end cannot be told from in_transaction: then ask every time.
    st.verified = (not st.watch or st.txn) and getattr(conn, "autocommit", None) is not False
    return st.vec0


def _observe(conn: Any, st: _State) -> None:
    """At each statement: a transaction that began or ended since the last one (by this
    module's statements or unseen, ``with conn:``) ends what was known without asking."""
    txn = conn.in_transaction
    if txn is not st.txn:
        st.txn = txn
        st.check_all = True
        st.verified = False


def _reads(conn: Any, st: _State, sql: str, info: _sql.Statement) -> tuple[str, str, dict[str, _sql.Vec0]] | None:
    """(operation, first vec0-data table, the vec0 tables) if ``sql`` reads vec0 data."""
    if not info.may_read:
        return None
    vec0 = _vec0(conn, st)
    if not vec0 or (info.names is not None and info.names.isdisjoint(vec0)):
        return None
    hit = _sql.reads(sql, vec0)
    if hit is None:
        return None
    return hit[0].upper(), hit[1][0], vec0


def _scoped(sql: str, param_sets: Any, vec0: dict[str, _sql.Vec0]) -> bool:
    ns = bound_namespace(settings.namespace)
    return ns is not None and all(_sql.scoped(sql, p, vec0, settings.partition_column, ns) for p in param_sets)


def _boundary(op: str, table: str, scoped: bool, batch: int | None = None) -> Any:
    attrs: dict[str, Any] = {"db.system.name": "sqlite", "db.operation.name": op, "db.collection.name": table}
    if batch is not None:
        attrs["db.operation.batch.size"] = batch
    tracer = settings.tracer() if settings.tracer is not None else None
    return data_boundary("vector", f"{op} {table}", scoped=scoped, strict=settings.strict, attributes=attrs,
                         tracer=tracer)


def _script_verdict(conn: Any, st: _State, script: str) -> tuple[str, str, bool] | None:
    """Each statement of a script judged, against the tables its earlier statements make."""
    judged: list[tuple[str, str, bool]] = []
    rows: list[tuple[str, str, str]] | None = None
    vec0: dict[str, _sql.Vec0] = {}
    for part in _sql.script(script, st.module.complete_statement):
        info = _sql.statement(part)
        if not (info.may_read or info.schema):
            continue
        if rows is None:
            vec0, rows = _vec0(conn, st), list(st.rows)
        if info.may_read and vec0 and (info.names is None or not info.names.isdisjoint(vec0)):
            hit = _sql.reads(part, vec0)
            if hit is not None:
                judged.append((hit[0].upper(), hit[1][0], _scoped(part, ((),), vec0)))
        made = _sql.created(part) if info.schema else None
        if made is not None:
            kind, name, renamed_from = made
            if renamed_from is None:
                rows.append((kind, name, part))
            else:
                rows += [(k, name, s) for k, n, s in rows if _sql.fold(n) == renamed_from]
            vec0 = _sql.vec0_tables(rows)
    if not judged:
        return None
    op = judged[0][0] if len(judged) == 1 else "BATCH"
    return op, judged[0][1], all(s for _, _, s in judged)


class _CursorMixin:
    """Judges each statement before the cursor runs it."""

    __slots__ = ()

    def execute(self, sql: Any, parameters: Any = (), /) -> Any:
        # The common path (a statement naming no vec0-data table, the schema known to be
        # current) is written out here: it runs before every statement of the process.
        conn = self.connection  # type: ignore[attr-defined]
        st = getattr(conn, "_flowmap_state", None)
        if st is None or (st.auto and not settings.active) or not isinstance(sql, str):
            return super().execute(sql, parameters)  # type: ignore[misc]
        txn = conn.in_transaction
        if txn is not st.txn:
            _observe(conn, st)
        info = _statement(sql)
        if info.may_read:
            if st.verified and st.read_epoch == st.epoch and st.generation == settings.generation:
                vec0 = st.vec0
            else:
                vec0 = _vec0(conn, st)
            if vec0 and (info.names is None or not info.names.isdisjoint(vec0)):
                return self._flowmap_judged(conn, st, sql, parameters, info)
        if info.schema:
            try:
                return super().execute(sql, parameters)  # type: ignore[misc]
            finally:
                st.epoch += 1
        return super().execute(sql, parameters)  # type: ignore[misc]

    def _flowmap_judged(self, conn: Any, st: _State, sql: str, parameters: Any, info: _sql.Statement) -> Any:
        try:
            hit = _reads(conn, st, sql, info)
            if hit is None:
                return super().execute(sql, parameters)  # type: ignore[misc]
            op, table, vec0 = hit
            with _boundary(op, table, _scoped(sql, (parameters,), vec0)):
                return super().execute(sql, parameters)  # type: ignore[misc]
        finally:
            if info.schema:
                st.epoch += 1

    def executemany(self, sql: Any, seq_of_parameters: Any, /) -> Any:
        conn = self.connection  # type: ignore[attr-defined]
        st = _state(conn)
        if st is None or not isinstance(sql, str):
            return super().executemany(sql, seq_of_parameters)  # type: ignore[misc]
        _observe(conn, st)
        info = _sql.statement(sql)
        try:
            hit = _reads(conn, st, sql, info)
            if hit is None:
                return super().executemany(sql, seq_of_parameters)  # type: ignore[misc]
            op, table, vec0 = hit
            try:  # every parameter set is judged before the first runs
                seq_of_parameters = list(seq_of_parameters)
            except TypeError:
                pass  # not iterable: SQLite refuses it before anything runs
            param_sets = seq_of_parameters if isinstance(seq_of_parameters, list) else [None]
            with _boundary(op, table, _scoped(sql, param_sets, vec0), len(param_sets)):
                return super().executemany(sql, seq_of_parameters)  # type: ignore[misc]
        finally:
            if info.schema:
                st.epoch += 1

    def executescript(self, sql_script: Any, /) -> Any:
        conn = self.connection  # type: ignore[attr-defined]
        st = _state(conn)
        if st is None or not isinstance(sql_script, str):
            return super().executescript(sql_script)  # type: ignore[misc]
        _observe(conn, st)
        try:
            verdict = _script_verdict(conn, st, sql_script)
            if verdict is None:
                return super().executescript(sql_script)  # type: ignore[misc]
            with _boundary(*verdict):
                return super().executescript(sql_script)  # type: ignore[misc]
        finally:
            st.epoch += 1  # a script may do anything (and it commits first)


def _traced_cursor_class(base: type) -> type:
    """``base`` (a Cursor subclass) judging its statements; the same layout, so a cursor
    made by a factory function can be adopted by assigning ``__class__``."""
    if issubclass(base, _CursorMixin):
        return base
    cls = _cursors.get(base)
    if cls is None:
        name = "FlowmapTraced" + base.__name__
        cls = type(base)(name, (_CursorMixin, base), {"__slots__": (), "__module__": __name__, "__qualname__": name})
        _cursors[base] = cls
    return cls


def _adopt(cursor: Any) -> Any:
    if isinstance(cursor, _CursorMixin):
        return cursor
    try:
        cursor.__class__ = _traced_cursor_class(type(cursor))
    except TypeError:
        raise TypeError(
            "flowmap sqlite-vec: this cursor factory made a cursor whose statements cannot be "
            "judged; pass a Cursor subclass as the factory"
        ) from None
    return cursor


def _private(database: Any) -> bool:
    try:
        return os.fsdecode(database) in (":memory:", "")
    except TypeError:
        return False


class _ConnectionMixin:
    """A connection whose every cursor judges its statements."""

    _flowmap_state: _State | None = None
    _flowmap_module: ModuleType
    _flowmap_cursor: type | None  # the default cursor; None when the app's class picks its own
    _flowmap_base_cursor: Any  # the DB-API module's Connection.cursor

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._flowmap_state = _State(self._flowmap_module, _private(args[0] if args else kwargs.get("database")))

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        if not args and not kwargs and self._flowmap_cursor is not None:
            return super().cursor(self._flowmap_cursor)  # type: ignore[misc]
        factory = args[0] if args else kwargs.get("factory")
        if isinstance(factory, type) and issubclass(factory, self._flowmap_module.Cursor):
            factory = _traced_cursor_class(factory)
            if args:
                args = (factory, *args[1:])
            else:
                kwargs["factory"] = factory
        return _adopt(super().cursor(*args, **kwargs))  # type: ignore[misc]

    def execute(self, sql: Any, parameters: Any = (), /) -> Any:
        cls = self._flowmap_cursor
        cursor = self.cursor() if cls is None else self._flowmap_base_cursor(cls)
        return cursor.execute(sql, parameters)

    def executemany(self, sql: Any, seq_of_parameters: Any, /) -> Any:
        return self.cursor().executemany(sql, seq_of_parameters)

    def executescript(self, sql_script: Any, /) -> Any:
        return self.cursor().executescript(sql_script)

    def rollback(self) -> Any:
        try:
            return super().rollback()  # type: ignore[misc]
        finally:
            if self._flowmap_state is not None:
                self._flowmap_state.epoch += 1  # may have undone a schema change

    def backup(self, target: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().backup(target, *args, **kwargs)  # type: ignore[misc]
        finally:
            st = getattr(target, "_flowmap_state", None)
            if st is not None:
                st.epoch += 1  # the target's schema is the source's now


def _deserialize(self: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return super(_ConnectionMixin, self).deserialize(*args, **kwargs)
    finally:
        if self._flowmap_state is not None:
            self._flowmap_state.epoch += 1


def _blobopen(self: Any, table: Any, *args: Any, **kwargs: Any) -> Any:
    """Blob I/O reads a row of a table without a statement: of a vec0 shadow table, never
    scoped (there is no filter)."""
    st = _state(self)
    if st is not None and isinstance(table, str):
        _observe(self, st)
        name = _sql.fold(table)
        if name in _vec0(self, st):
            with _boundary("BLOBOPEN", name, False):
                return super(_ConnectionMixin, self).blobopen(table, *args, **kwargs)
    return super(_ConnectionMixin, self).blobopen(table, *args, **kwargs)


def _module_of(base: type) -> ModuleType:
    for name in _DBAPI:
        module = sys.modules.get(name)
        if module is not None and isinstance(getattr(module, "Connection", None), type) and issubclass(
            base, module.Connection
        ):
            return module
    raise TypeError("traced_connection_factory() needs sqlite3, pysqlite3.dbapi2 or a Connection subclass")


def traced_connection_factory(module: Any) -> type:
    """A ``factory=`` for ``connect`` judging vec0 reads: ``traced_connection_factory(sqlite3)``
    (or ``pysqlite3.dbapi2``), or ``traced_connection_factory(MyConnection)`` for the
    application's own Connection subclass (kept as the base)."""
    if isinstance(module, type):
        base = module
        module = _module_of(base)
    else:
        base = module.Connection
    if issubclass(base, _ConnectionMixin):
        return base
    cls = _connections.get(base)
    if cls is not None:
        return cls
    own_cursor = any("cursor" in vars(c) for c in base.__mro__ if c not in module.Connection.__mro__)
    name = "FlowmapTracedConnection" if base is module.Connection else "FlowmapTraced" + base.__name__
    namespace: dict[str, Any] = {
        "__module__": __name__,
        "__qualname__": name,
        "_flowmap_module": module,
        "_flowmap_cursor": None if own_cursor else _traced_cursor_class(module.Cursor),
        "_flowmap_base_cursor": module.Connection.cursor,
    }
    if hasattr(base, "deserialize"):
        namespace["deserialize"] = _deserialize
    if hasattr(base, "blobopen"):
        namespace["blobopen"] = _blobopen
    cls = type(base)(name, (_ConnectionMixin, base), namespace)
    _connections[base] = cls
    return cls
