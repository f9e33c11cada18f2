"""flowmap instrumentation for redis-py.

Every Redis command that touches data (every pipeline, and every subscription a
``PubSub`` makes: channels as keys, ``PSUBSCRIBE`` patterns as key patterns) runs inside
a ``cache`` (or ``memory``) boundary span whose ``flowmap.scoped`` says whether *every* key and key
pattern it touches lies in the bound tenant's namespace; a command whose keys cannot be
determined (unknown, unparsable, whole keyspace, a script) is unscoped. Commands on
shared keys only (other libraries' infrastructure: Celery/kombu's broker and results by
default, ``shared_keys=`` and ``FLOWMAP_REDIS_SHARED_KEYS`` for more) are no boundary.
Keys are never recorded: only counts and the verdict. In strict
mode an unscoped command raises :class:`flowmap.errors.UnscopedOperationError` before it
reaches the server::

    from flowmap_instrumentation_redis import RedisInstrumentor, tenant_key

    RedisInstrumentor().instrument(strict=True)
    with flowmap.bind(ctx):
        r.set(tenant_key("session:42"), "...")   # t:<tag>:session:42, scoped
        r.get("session:42")                      # UnscopedOperationError
"""

from ._instrumentor import DEFAULT_SHARED_KEYS, SHARED_KEYS_ENV, RedisInstrumentor, tenant_key

__all__ = ["DEFAULT_SHARED_KEYS", "SHARED_KEYS_ENV", "RedisInstrumentor", "tenant_key"]
__version__ = "0.1.0"
