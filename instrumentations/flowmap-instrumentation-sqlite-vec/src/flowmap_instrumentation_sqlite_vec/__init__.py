"""flowmap instrumentation for sqlite-vec.

Every statement that reads a ``vec0`` virtual table (a KNN ``MATCH`` search, a scan, a
delete, a subquery, a view over one) runs inside a ``vector`` boundary span whose
``flowmap.scoped`` says whether every read of the table is restricted to the bound
tenant by a top-level ``AND`` conjunct ``<partition key column> = <tenant's value>`` (see
``_sql``; anything it cannot verify is unscoped). The SQL and its parameters are never
recorded. In strict mode an unscoped statement raises
:class:`flowmap.errors.UnscopedOperationError` before it runs::

    SqliteVecInstrumentor().instrument(strict=True)
    db = sqlite3.connect("vectors.db")   # instrumented connect: a judging connection
    db.execute("SELECT rowid, distance FROM docs WHERE embedding MATCH ? AND k = 5 "
               "AND tenant = ?", (query, flowmap.current().tenant_id))
"""

from ._connection import traced_connection_factory
from ._instrumentor import SqliteVecInstrumentor

__all__ = ["SqliteVecInstrumentor", "traced_connection_factory"]
__version__ = "0.1.0"
