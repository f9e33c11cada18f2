"""sqlite-vec: every way a statement reaches SQLite through a judging connection is judged;
uninstrument() gives plain connections back; the schema is re-read only when it may have
changed; instrument(tracer_provider=...) gets the spans. On real SQLite with sqlite-vec."""

from __future__ import annotations

import sqlite3 as stdlib_sqlite3

import pytest

sqlite_vec = pytest.importorskip("sqlite_vec")

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from flowmap import attributes as A  # noqa: E402
from flowmap.context import bind  # noqa: E402
from flowmap.errors import UnscopedOperationError  # noqa: E402
from flowmap_instrumentation_sqlite_vec import (  # noqa: E402
    SqliteVecInstrumentor,
    traced_connection_factory,
)

from .test_sqlite_vec import ACME, GLOBEX, KNN, dbapi, open_db, seed_db, vec  # noqa: E402

UNSCOPED = "SELECT rowid, doc FROM docs"  # every tenant's rows
SCOPED = "SELECT rowid, doc FROM docs WHERE tenant = ?"


@pytest.fixture
def db_path(tmp_path):
    return seed_db(tmp_path)


@pytest.fixture
def instrumented(traced):
    yield traced
    SqliteVecInstrumentor().uninstrument()


def _count(path: str, sql: str = "SELECT count(*) FROM docs") -> int:
    db = dbapi.connect(path)  # uninstrumented by now, or a plain read of the plain count
    db.enable_load_extension(True)
    sqlite_vec.load(db)
    return db.execute(sql).fetchone()[0]


class AppCursor(dbapi.Cursor):
    """An application's own cursor class, with behaviour of its own."""

    def first(self):
        return self.fetchone()[0]


class AppConnection(dbapi.Connection):
    """An application's own connection class, picking its own cursor class."""

    def cursor(self, factory=AppCursor):
        return super().cursor(factory)


def _app_cursor_function(conn):  # a factory that is a function, not a class
    return AppCursor(conn)


# Every path a statement can take to SQLite; each must be refused in strict mode.
PATHS = {
    "cursor handed back by conn.execute, reused": lambda db: db.execute("SELECT 1").execute(UNSCOPED),
    "conn.cursor().execute": lambda db: db.cursor().execute(UNSCOPED),
    "cursor of a Cursor subclass": lambda db: db.cursor(AppCursor).execute(UNSCOPED),
    "cursor of a Cursor subclass, keyword": lambda db: db.cursor(factory=AppCursor).execute(UNSCOPED),
    "cursor of a factory function": lambda db: db.cursor(_app_cursor_function).execute(UNSCOPED),
    "conn.executemany": lambda db: db.executemany("DELETE FROM docs WHERE rowid = ?", [(1,), (2,)]),
    "cursor.executemany": lambda db: db.cursor().executemany("DELETE FROM docs WHERE rowid = ?", iter([(2,)])),
    "conn.executescript": lambda db: db.executescript("CREATE TABLE leak AS SELECT doc FROM docs;"),
    "cursor.executescript": lambda db: db.cursor().executescript(
        "CREATE TABLE plain(x); INSERT INTO plain SELECT doc FROM docs WHERE rowid = 2;"),
    "script reading a vec0 table it creates": lambda db: db.executescript(
        "CREATE VIRTUAL TABLE notes USING vec0(tenant text partition key, embedding float[2]);"
        "CREATE TABLE leak AS SELECT * FROM notes;"),
    "script reading a view it creates": lambda db: db.executescript(
        "CREATE VIEW v AS SELECT doc FROM docs; CREATE TABLE leak AS SELECT * FROM v;"),
    "script reading a table it renames": lambda db: db.executescript(
        "ALTER TABLE docs RENAME TO d2; CREATE TABLE leak AS SELECT * FROM d2;"),
}


@pytest.mark.parametrize("path", list(PATHS))
def test_strict_mode_refuses_on_every_path(path, db_path, instrumented):
    SqliteVecInstrumentor().instrument(strict=True)
    db = open_db(db_path)
    with bind(ACME), pytest.raises(UnscopedOperationError):
        PATHS[path](db)
    db.commit()
    SqliteVecInstrumentor().uninstrument()
    assert _count(db_path) == 2  # nothing was deleted
    assert _count(db_path, "SELECT count(*) FROM sqlite_master WHERE name IN ('leak', 'plain', 'd2')") == 0
    refused = instrumented.spans("vector")
    assert len(refused) == 1 and refused[0].attributes[A.SCOPED] is False and not refused[0].status.is_ok


@pytest.mark.parametrize("schema", ["temp", "attached"])
def test_vec0_tables_of_temp_and_attached_databases_are_judged(schema, tmp_path, instrumented):
    SqliteVecInstrumentor().instrument(strict=True)
    db = open_db(str(tmp_path / "main.db"))
    if schema == "attached":
        db.execute("ATTACH ? AS other", (str(tmp_path / "other.db"),))
    prefix = "temp." if schema == "temp" else "other."
    db.execute(f"CREATE VIRTUAL TABLE {prefix}docs USING vec0(tenant text partition key, embedding float[2])")
    for i, ctx in enumerate([ACME, GLOBEX], 1):
        db.execute("INSERT INTO docs(rowid, tenant, embedding) VALUES (?, ?, ?)", (i, ctx.tenant_id, vec([1, 0])))
    with bind(ACME):
        assert db.execute("SELECT rowid FROM docs WHERE tenant = ?", (ACME.tenant_id,)).fetchall() == [(1,)]
        with pytest.raises(UnscopedOperationError):
            db.execute(f"SELECT rowid FROM {prefix}docs")
    assert [s.attributes[A.SCOPED] for s in instrumented.spans("vector")] == [True, False]


def test_scoped_executemany_and_script_run_and_are_judged_once(db_path, instrumented):
    SqliteVecInstrumentor().instrument(strict=True)
    db = open_db(db_path)
    with bind(ACME):
        db.executemany("UPDATE docs SET doc = ? WHERE rowid = ? AND tenant = ?",
                       [("one", 1, ACME.tenant_id), ("two", 1, ACME.tenant_id)])
        with pytest.raises(UnscopedOperationError):  # one parameter set names another tenant
            db.executemany("UPDATE docs SET doc = ? WHERE tenant = ?",
                           [("x", ACME.tenant_id), ("mine now", GLOBEX.tenant_id)])
        db.executescript("CREATE TABLE plain(x); INSERT INTO plain VALUES (1);")  # no vec0 read: no span
        db.executescript("DELETE FROM docs WHERE tenant = 'acme-corp-7731' AND rowid = 1;")
    spans = instrumented.spans("vector")
    assert [(s.name, s.attributes[A.SCOPED]) for s in spans] == [
        ("UPDATE docs", True), ("UPDATE docs", False), ("DELETE docs", True)]
    assert spans[0].attributes["db.operation.batch.size"] == 2
    SqliteVecInstrumentor().uninstrument()
    assert _count(db_path, "SELECT group_concat(doc) FROM docs") == "globex secret"


def test_application_classes_and_row_factory_are_kept(db_path, instrumented):
    SqliteVecInstrumentor().instrument(strict=True)
    db = dbapi.connect(db_path, factory=AppConnection)
    db.enable_load_extension(True)
    sqlite_vec.load(db)
    db.row_factory = dbapi.Row
    assert isinstance(db, AppConnection)
    with bind(ACME):
        row = db.execute(SCOPED, (ACME.tenant_id,)).fetchone()
        cursor = db.cursor()  # the app's class picks AppCursor
        assert isinstance(cursor, AppCursor)
        assert cursor.execute("SELECT doc FROM docs WHERE tenant = ?", (ACME.tenant_id,)).first() == "acme plan"
        assert isinstance(db.cursor(_app_cursor_function), AppCursor)
        with pytest.raises(UnscopedOperationError):
            cursor.execute(UNSCOPED)
    assert isinstance(row, dbapi.Row) and row["doc"] == "acme plan"  # row_factory kept
    assert [s.attributes[A.SCOPED] for s in instrumented.spans("vector")] == [True, True, False]


def test_text_factory_bytes_still_judges(db_path, instrumented):
    SqliteVecInstrumentor().instrument(strict=True)
    db = open_db(db_path)
    db.text_factory = bytes  # the schema reads back as bytes too
    with bind(ACME):
        assert db.execute(SCOPED, (ACME.tenant_id,)).fetchall() == [(1, b"acme plan")]
        with pytest.raises(UnscopedOperationError):
            db.execute(UNSCOPED)


def test_a_factory_whose_cursor_cannot_be_judged_is_refused(db_path, instrumented):
    SqliteVecInstrumentor().instrument()
    db = open_db(db_path)
    with pytest.raises(TypeError):
        db.cursor(lambda conn: dbapi.Cursor(conn))  # a plain C cursor cannot be adopted


def test_uninstrument_gives_back_plain_connections(db_path, instrumented):
    SqliteVecInstrumentor().instrument(strict=True)
    db = open_db(db_path)
    cursor = db.cursor()
    SqliteVecInstrumentor().uninstrument()
    # no tenant bound, unscoped: a plain connection does not care
    assert len(db.execute(UNSCOPED).fetchall()) == 2
    assert len(cursor.execute(UNSCOPED).fetchall()) == 2
    db.executemany("UPDATE docs SET doc = doc WHERE rowid = ?", [(1,)])
    assert instrumented.spans() == []
    db.execute("CREATE VIEW later AS SELECT doc FROM docs")  # unwatched while uninstrumented
    SqliteVecInstrumentor().instrument(strict=True)  # judged again, the view known
    with bind(ACME), pytest.raises(UnscopedOperationError):
        cursor.execute("SELECT doc FROM later")


def test_explicit_factory_judges_with_the_current_settings(db_path, instrumented):
    db = dbapi.connect(db_path, factory=traced_connection_factory(dbapi))
    db.enable_load_extension(True)
    sqlite_vec.load(db)
    SqliteVecInstrumentor().instrument(strict=True)
    with bind(ACME), pytest.raises(UnscopedOperationError):
        db.execute(UNSCOPED)
    SqliteVecInstrumentor().uninstrument()
    with bind(ACME):  # judged still (the app asked for it), not strict any more: flagged
        assert len(db.execute(UNSCOPED).fetchall()) == 2
    assert [s.attributes[A.SCOPED] for s in instrumented.spans("vector")] == [False, False]
    assert traced_connection_factory(dbapi.Connection) is traced_connection_factory(dbapi)
    assert issubclass(traced_connection_factory(AppConnection), AppConnection)


# --- when the schema is read: not before every statement, but whenever it may have changed


def _statements(db) -> list[str]:
    seen: list[str] = []
    db.set_trace_callback(seen.append)
    return seen


def test_no_schema_version_read_per_statement_on_a_private_database(instrumented):
    SqliteVecInstrumentor().instrument(strict=True)
    db = dbapi.connect(":memory:")
    db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v)")
    db.execute("INSERT INTO t VALUES (1, 'x')")
    seen = _statements(db)
    for _ in range(20):
        assert db.execute("SELECT v FROM t WHERE id = ?", (1,)).fetchone() == ("x",)
    queries = [s for s in seen if s.startswith("SELECT v FROM t")]
    assert len(queries) == 20
    # at most one look at the schema version (the INSERT began a transaction), none per SELECT
    assert len(seen) - len(queries) <= 1 and all("sqlite_master" not in s for s in seen)


def test_a_file_database_is_asked_once_per_transaction(tmp_path, instrumented):
    SqliteVecInstrumentor().instrument()
    path = str(tmp_path / "f.db")
    db = dbapi.connect(path)
    db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v)")
    db.commit()
    seen = _statements(db)
    for _ in range(3):  # outside a transaction another connection may change the schema
        db.execute("SELECT v FROM t").fetchall()
    assert sum("schema_version" in s for s in seen) >= 3
    seen.clear()
    db.execute("BEGIN")
    for _ in range(5):
        db.execute("SELECT v FROM t").fetchall()
    db.execute("INSERT INTO t(v) VALUES (1)")
    assert sum('"main".schema_version' in s for s in seen) == 1
    db.commit()


def test_schema_changes_behind_its_back_are_seen(tmp_path, instrumented):
    """Another connection turns a plain table into a vec0 table between two statements;
    a rollback this module did not see (the stdlib's ``with db:``) brings a dropped vec0
    table back."""
    SqliteVecInstrumentor().instrument(strict=True)
    path = str(tmp_path / "m.db")
    db = open_db(path)
    db.execute("CREATE TABLE docs(x)")
    db.commit()
    assert db.execute("SELECT x FROM docs").fetchall() == []
    other = open_db(path)
    other.execute("DROP TABLE docs")
    other.execute("CREATE VIRTUAL TABLE docs USING vec0(tenant text partition key, embedding float[2])")
    other.commit()
    with bind(ACME):
        with pytest.raises(UnscopedOperationError):
            db.execute("SELECT rowid FROM docs")
        mem = open_db(":memory:")
        mem.execute("CREATE VIRTUAL TABLE docs USING vec0(tenant text partition key, embedding float[2])")
        mem.execute("SELECT rowid FROM docs WHERE tenant = ?", (ACME.tenant_id,))
        mem.execute("BEGIN")  # (DDL opens no transaction of its own in sqlite3's default mode)
        mem.execute("DROP TABLE docs")
        assert mem.execute("SELECT count(*) FROM sqlite_master WHERE name = 'docs'").fetchone() == (0,)
        # the stdlib's `with conn:` rolls back in C, past any Python override: so here
        dbapi.Connection.rollback(mem)
        with pytest.raises(UnscopedOperationError):
            mem.execute("SELECT rowid FROM docs")


def test_backup_into_a_private_database_is_seen(db_path, instrumented):
    SqliteVecInstrumentor().instrument(strict=True)
    mem = open_db(":memory:")
    assert mem.execute("SELECT vec_version()").fetchone()[0]  # the schema (none) read now
    open_db(db_path).backup(mem)
    with bind(ACME), pytest.raises(UnscopedOperationError):
        mem.execute(UNSCOPED)


@pytest.mark.skipif(not hasattr(stdlib_sqlite3.Connection, "blobopen"), reason="Python < 3.11")
def test_shadow_tables_are_judged_without_the_extension_and_blob_reads_refused(db_path, instrumented):
    SqliteVecInstrumentor().instrument(strict=True)
    db = stdlib_sqlite3.connect(db_path)  # no sqlite-vec loaded: the shadow tables are plain tables
    with bind(ACME):
        with pytest.raises(UnscopedOperationError):
            db.execute("SELECT value00 FROM docs_auxiliary")
        with pytest.raises(UnscopedOperationError):
            db.blobopen("docs_auxiliary", "value00", 2, readonly=True)
    assert [s.name for s in instrumented.spans("vector")] == ["SELECT docs_auxiliary", "BLOBOPEN docs_auxiliary"]


def test_tracer_provider_given_to_instrument_gets_the_spans(db_path, instrumented):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    SqliteVecInstrumentor().instrument(tracer_provider=provider)
    try:
        db = open_db(db_path)
        with bind(ACME):
            db.execute(KNN + " AND tenant = ?", (vec([0.1, 0.2]), ACME.tenant_id)).fetchall()
    finally:
        SqliteVecInstrumentor().uninstrument()
        provider.shutdown()
    (span,) = exporter.get_finished_spans()
    assert span.name == "SELECT docs" and span.attributes[A.SCOPED] is True
    assert span.instrumentation_scope.name == "flowmap_instrumentation_sqlite_vec"
    assert instrumented.spans() == []  # none on flowmap's (the global) provider


def test_uninstrument_keeps_another_instrumentations_connect_wrapper(traced):
    """OpenTelemetry's dbapi/sqlite3 instrumentation wraps connect too: flowmap's
    uninstrument() takes away its own wrapper only."""
    import wrapt

    module = dbapi
    plain = module.connect
    seen = []

    def other(wrapped, instance, args, kwargs):
        seen.append(args[0] if args else kwargs.get("database"))
        return wrapped(*args, **kwargs)

    SqliteVecInstrumentor().instrument()
    wrapt.wrap_function_wrapper(module, "connect", other)
    try:
        SqliteVecInstrumentor().uninstrument()
        assert isinstance(module.connect, wrapt.FunctionWrapper)  # the other one stays
        module.connect(":memory:").execute("SELECT 1").fetchall()
        assert seen == [":memory:"] and traced.spans() == []  # it runs; flowmap's no longer does
    finally:
        module.connect = plain
