"""flowmap instrumentation for sqlite-vec.

Every statement that reads a ``vec0`` virtual table (a KNN ``MATCH`` search, a scan, a
delete) runs inside a ``vector`` boundary span whose ``flowmap.scoped`` says whether the
statement filters the table's ``partition key`` column (or a configured column) to the
bound tenant. The SQL and its parameters are never recorded. In strict mode an
unfiltered search raises :class:`flowmap.errors.UnscopedOperationError` before it runs::

    SqliteVecInstrumentor().instrument(strict=True)
    db = sqlite3.connect("vectors.db")   # instrumented connect: a judging connection
    db.execute("SELECT rowid, distance FROM docs WHERE embedding MATCH ? AND k = 5 "
               "AND tenant = ?", (query, flowmap.current().tenant_id))
"""

from ._connection import traced_connection_factory
from ._instrumentor import SqliteVecInstrumentor

__all__ = ["SqliteVecInstrumentor", "traced_connection_factory"]
__version__ = "0.1.0"
