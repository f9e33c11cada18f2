"""sqlite-vec: every read of a vec0 table judged by its tenant filter, on real SQLite."""

from __future__ import annotations

import sqlite3 as stdlib_sqlite3

import pytest

sqlite_vec = pytest.importorskip("sqlite_vec")

from flowmap import attributes as A  # noqa: E402
from flowmap.context import RequestContext, bind, current  # noqa: E402
from flowmap.errors import MissingContextError, UnscopedOperationError  # noqa: E402
from flowmap_instrumentation_sqlite_vec import (  # noqa: E402
    SqliteVecInstrumentor,
    traced_connection_factory,
)

from .conftest import assert_no_raw  # noqa: E402

if hasattr(stdlib_sqlite3.Connection, "enable_load_extension"):
    dbapi = stdlib_sqlite3
else:  # this Python's sqlite3 cannot load extensions: use pysqlite3's bundled SQLite
    dbapi = pytest.importorskip("pysqlite3.dbapi2")

ACME = RequestContext("acme-corp-7731")
GLOBEX = RequestContext("globex-4410")
KNN = "SELECT rowid, distance, doc FROM docs WHERE embedding MATCH ? AND k = 10"
vec = sqlite_vec.serialize_float32


def open_db(path: str):
    db = dbapi.connect(path)
    db.enable_load_extension(True)
    sqlite_vec.load(db)
    db.enable_load_extension(False)
    return db


@pytest.fixture
def db_path(tmp_path):
    path = str(tmp_path / "vectors.db")
    db = open_db(path)  # seeded before instrumenting
    db.execute("CREATE VIRTUAL TABLE docs USING vec0(tenant text partition key, embedding float[2], +doc text)")
    for i, (tenant, doc) in enumerate([(ACME, "acme plan"), (GLOBEX, "globex secret")], 1):
        db.execute("INSERT INTO docs(rowid, tenant, embedding, doc) VALUES (?, ?, ?, ?)",
                   (i, tenant.tenant_id, vec([0.1, 0.2]), doc))
    db.commit()
    db.close()
    return path


@pytest.fixture
def instrumented(traced):
    yield traced
    SqliteVecInstrumentor().uninstrument()


def test_filtered_search_is_scoped_and_only_sees_the_tenant(db_path, instrumented):
    SqliteVecInstrumentor().instrument()
    db = open_db(db_path)
    with bind(ACME):
        rows = db.execute(KNN + " AND tenant = ?", (vec([0.1, 0.2]), current().tenant_id)).fetchall()
        named = db.cursor().execute(
            "SELECT doc FROM docs WHERE embedding MATCH :q AND k = 3 AND tenant = :t",
            {"q": vec([0.1, 0.2]), "t": current().tenant_id},
        ).fetchall()
    assert [r[2] for r in rows] == ["acme plan"] and named == [("acme plan",)]
    spans = instrumented.spans("vector")
    assert [s.name for s in spans] == ["SELECT docs", "SELECT docs"]
    for s in spans:
        assert s.attributes[A.SCOPED] is True
        assert s.attributes[A.TENANT] == instrumented.tag(ACME.tenant_id)
        assert s.attributes["db.collection.name"] == "docs"
    assert_no_raw(instrumented.spans(), ACME.tenant_id, "acme plan")


def test_unfiltered_or_wrong_tenant_or_widened_search_is_unscoped(db_path, instrumented):
    SqliteVecInstrumentor().instrument()
    db = open_db(db_path)
    with bind(ACME):
        leaked = db.execute(KNN, (vec([0.1, 0.2]),)).fetchall()
        db.execute(KNN + " AND tenant = ?", (vec([0.1, 0.2]), GLOBEX.tenant_id)).fetchall()
        db.execute(KNN + " AND (tenant = ? OR 1 = 1)", (vec([0.1, 0.2]), ACME.tenant_id)).fetchall()
        db.execute(f"{KNN} AND tenant = 'acme-corp-7731'", (vec([0.1, 0.2]),)).fetchall()  # literal
        db.execute("SELECT count(*) FROM docs").fetchall()  # a scan reads every tenant
    assert {r[2] for r in leaked} == {"acme plan", "globex secret"}  # what the flag is for
    assert [s.attributes[A.SCOPED] for s in instrumented.spans("vector")] == [False, False, False, True, False]
    assert_no_raw(instrumented.spans(), ACME.tenant_id, GLOBEX.tenant_id)


def test_strict_mode_refuses_an_unfiltered_search_before_it_runs(db_path, instrumented):
    SqliteVecInstrumentor().instrument(strict=True)
    db = open_db(db_path)
    with bind(ACME):
        with pytest.raises(UnscopedOperationError):
            db.execute(KNN, (vec([0.1, 0.2]),))
        with pytest.raises(UnscopedOperationError):
            db.execute("DELETE FROM docs WHERE rowid = 2")  # would delete another tenant's row
        db.execute(KNN + " AND tenant = ?", (vec([0.1, 0.2]), ACME.tenant_id)).fetchall()
    SqliteVecInstrumentor().uninstrument()
    assert open_db(db_path).execute("SELECT count(*) FROM docs").fetchone() == (2,)
    refused = [s for s in instrumented.spans("vector") if not s.status.is_ok]
    assert len(refused) == 2 and all(s.attributes[A.SCOPED] is False for s in refused)


def test_ordinary_tables_are_not_boundaries(db_path, instrumented):
    SqliteVecInstrumentor().instrument(strict=True)
    db = open_db(db_path)
    db.execute("CREATE TABLE plain(x)")
    db.execute("INSERT INTO plain VALUES (1)")
    assert db.execute("SELECT x FROM plain").fetchall() == [(1,)]  # unbound, not refused
    assert instrumented.spans("vector") == []


def test_custom_namespace_and_column(tmp_path, instrumented):
    SqliteVecInstrumentor().instrument(namespace=lambda ctx: ctx.tag(), partition_column="owner")
    db = open_db(str(tmp_path / "m.db"))
    db.execute("CREATE VIRTUAL TABLE mem USING vec0(embedding float[2], owner text)")  # metadata column
    tag = instrumented.tag(ACME.tenant_id)
    db.execute("INSERT INTO mem(rowid, embedding, owner) VALUES (1, ?, ?)", (vec([1, 0]), tag))
    with bind(ACME):
        rows = db.execute("SELECT rowid FROM mem WHERE embedding MATCH ? AND k = 1 AND owner = ?",
                          (vec([1, 0]), tag)).fetchall()
    assert rows == [(1,)]
    assert [s.attributes[A.SCOPED] for s in instrumented.spans("vector")] == [True]


def test_no_tenant_fails_closed(db_path, instrumented):
    SqliteVecInstrumentor().instrument()
    db = open_db(db_path)
    with pytest.raises(MissingContextError):
        db.execute(KNN + " AND tenant = ?", (vec([0.1, 0.2]), ACME.tenant_id))


def test_explicit_factory_and_uninstrument(db_path, instrumented):
    db = dbapi.connect(db_path, factory=traced_connection_factory(dbapi))
    db.enable_load_extension(True)
    sqlite_vec.load(db)
    with bind(ACME):
        db.execute(KNN, (vec([0.1, 0.2]),)).fetchall()
    assert [s.attributes[A.SCOPED] for s in instrumented.spans("vector")] == [False]
    SqliteVecInstrumentor().instrument()
    SqliteVecInstrumentor().uninstrument()
    assert type(open_db(db_path)) is dbapi.Connection  # connect restored


def test_entry_point_is_registered():
    from importlib.metadata import entry_points

    eps = {ep.name: ep for ep in entry_points(group="opentelemetry_instrumentor")}
    assert eps["flowmap_sqlite_vec"].load() is SqliteVecInstrumentor
