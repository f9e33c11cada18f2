"""The RedisInstrumentor: wraps Redis.execute_command, Pipeline.execute,
Pipeline.immediate_execute_command (commands sent while WATCHing) and
PubSub.execute_command (subscriptions), sync and asyncio."""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from flowmap.errors import ConfigError
from flowmap.instrumentation import (
    FlowmapInstrumentor,
    Namespace,
    Patches,
    bound_namespace,
    data_boundary,
    tag_namespace,
)

from ._keys import KeyRefs, command_name, command_refs, glob_prefix

__all__ = ["DEFAULT_SHARED_KEYS", "SHARED_KEYS_ENV", "RedisInstrumentor", "tenant_key"]

# The same range as the `instruments` extra in pyproject.toml (opentelemetry-instrument
# checks that one; a direct instrument() call checks this).
_INSTRUMENTS = ("redis >= 5, < 9",)
_SYNC = "redis.client"
_ASYNC = "redis.asyncio.client"
KEYS_COUNT = "flowmap.keys.count"
KEYS_OUTSIDE = "flowmap.keys.outside"  # keys/patterns outside the namespace, + undetermined

SHARED_KEYS_ENV = "FLOWMAP_REDIS_SHARED_KEYS"
# Infrastructure keys that are no tenant's data: Celery/kombu's Redis broker and result
# backend, as kombu 5 and Celery 5 name them (kombu/transport/redis.py: queues and their
# priority lists ``<queue>\x06\x16<n>``, ``_kombu.binding*`` tables, the ``unacked*``
# hash, index and mutex, fanout channels ``/<db>.<exchange>``; celery/backends/base.py:
# ``celery-task-meta-``, ``celery-taskset-meta-``, ``chord-unlock-``).
DEFAULT_SHARED_KEYS: tuple[str, ...] = (
    "celery",  # the default queue
    "celery\x06\x16*",  # its priority lists
    "_kombu.binding*",  # _kombu.binding.<exchange>, _kombu.binding_permanent.*, _deadlines
    "unacked",
    "unacked_index",
    "unacked_mutex",
    "celeryev*",  # the events exchange's queues (celeryev.<uuid>) and, unprefixed, channels
    "/*.celeryev*",  # event channels: /<db>.celeryev/<routing key>
    "*celery.pidbox*",  # remote control: channel /<db>.celery.pidbox, <uuid>.reply.celery.pidbox
    "celery-task-meta-*",  # results
    "celery-taskset-meta-*",  # group results (and chord counters .j / .t)
    "chord-unlock-*",
)


class _Settings:
    """What instrument() was told; instance attributes (a function stored on the class
    would become a bound method when read through the instance)."""

    def __init__(self) -> None:
        self.namespace: Namespace = tag_namespace
        self.reset()

    def reset(self) -> None:
        self.strict = False
        self.kind = "cache"
        self.trust_script_keys = False
        self.shared: re.Pattern[bytes] | None = _compile_shared(DEFAULT_SHARED_KEYS)


def _compile_shared(patterns: Iterable[str | bytes]) -> re.Pattern[bytes] | None:
    """One regex for every glob pattern (fnmatch syntax: ``*``, ``?``, ``[...]``), matched
    against a key's bytes (a ``str`` pattern stands for its UTF-8 bytes)."""
    parts = []
    for pattern in patterns:
        raw = pattern if isinstance(pattern, bytes) else pattern.encode("utf-8")
        if raw:
            parts.append(fnmatch.translate(raw.decode("latin-1")))
    if not parts:
        return None
    return re.compile("|".join(parts).encode("latin-1"))


def _shared_patterns(option: Any) -> list[str | bytes]:
    """instrument(shared_keys=...) (default: DEFAULT_SHARED_KEYS) plus the environment's."""
    if option is None:
        patterns: list[str | bytes] = list(DEFAULT_SHARED_KEYS)
    elif isinstance(option, (str, bytes)) or not all(isinstance(p, (str, bytes)) for p in option):
        # a lone string would be read letter by letter, and "*" matches every key
        raise ConfigError("redis shared_keys must be a list of glob patterns")
    else:
        patterns = list(option)
    env = os.environ.get(SHARED_KEYS_ENV, "")
    patterns += [p.strip() for p in env.split(",") if p.strip()]
    return patterns


_settings = _Settings()
_patches = Patches()


def tenant_key(key: str) -> str:
    """``key`` inside the bound tenant's namespace (raises MissingContextError when unbound)."""
    from flowmap.context import current

    return _settings.namespace(current()) + key


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return str(value).encode("utf-8")


def _outside(refs: Any, prefix: bytes) -> int:
    """How many of one command's key references are not confined to ``prefix``."""
    n = sum(not _as_bytes(k).startswith(prefix) for k in refs.keys)
    if refs.globs:
        literal = glob_prefix(prefix)  # every match of a glob starting with it starts with prefix
        n += sum(not _as_bytes(g).startswith(literal) for g in refs.globs)
    # SORT replaces the first '*' of a pattern: the key read starts with the text before it
    n += sum(b"*" in prefix or not _as_bytes(p).startswith(prefix) for p in refs.sort_patterns)
    return n


def _shared(refs: KeyRefs) -> bool:
    """True when every key the command touches is a shared (infrastructure) key: it is no
    tenant boundary. Key patterns (KEYS, SCAN MATCH, SORT BY/GET) may reach any key, and
    a command with no key or keys that cannot be determined proves nothing: never shared.
    A script counts by the keys it declares, a channel pattern by its text (see
    _shared_pattern)."""
    shared = _settings.shared
    if shared is None or not refs.determined or refs.sort_patterns:
        return False
    if refs.globs:
        return refs.channel_patterns and _shared_pattern(shared, refs.globs)
    if not refs.keys:
        return False
    if refs.script and not _settings.trust_script_keys and bound_namespace(_settings.namespace) is not None:
        # a script may touch keys it does not declare: within a tenant's request it is
        # judged (unscoped), declared keys or not; unbound, it is the infrastructure's own
        # (kombu's locks), which no tenant runs
        return False
    return all(shared.match(_as_bytes(k)) is not None for k in refs.keys)


def _shared_pattern(shared: re.Pattern[bytes], patterns: Sequence[Any]) -> bool:
    """A PSUBSCRIBE whose patterns, as written, all match shared patterns: a listener's
    subscription for every tenant (kombu's fanout ``/<db>.celeryev/*``). Only outside a
    tenant's request: within one, a pattern reaching other tenants' channels is judged."""
    if bound_namespace(_settings.namespace) is not None:
        return False
    return all(shared.match(_as_bytes(p)) is not None for p in patterns)


def _judge(commands: Sequence[Sequence[Any]]) -> tuple[str, bool, dict[str, Any]] | None:
    """(operation name, scoped, span attributes) for a command batch; None if nothing to judge.

    Every command of a batch is judged on every key and key pattern it touches; one
    command that is unscoped or undetermined makes the batch unscoped. Keyless commands
    and commands on shared keys only are not judged: a batch of nothing else is no
    boundary at all."""
    ns = bound_namespace(_settings.namespace)
    prefix = ns.encode("utf-8") if ns else None
    names: list[str] = []
    keys_total = outside = 0
    judged = False
    for args in commands:
        refs = command_refs(args)
        if refs is None or _shared(refs):
            continue
        judged = True
        names.append(command_name(args))
        count = len(refs.keys) + len(refs.globs) + len(refs.sort_patterns)
        keys_total += count
        if not refs.determined or count == 0:
            outside += 1  # unknown, unparsable or whole keyspace: nothing proves it scoped
        elif refs.script and not _settings.trust_script_keys:
            outside += 1  # a script may touch keys it did not declare
        if prefix is None:
            outside += count
        else:
            outside += _outside(refs, prefix)
    if not judged:
        return None
    op = names[0] if len(commands) == 1 else "PIPELINE"
    attrs: dict[str, Any] = {
        "db.system.name": "redis",
        "db.operation.name": op,
        KEYS_COUNT: keys_total,
        KEYS_OUTSIDE: outside,
    }
    if len(commands) > 1:
        attrs["db.operation.batch.size"] = len(commands)
    return op, outside == 0 and prefix is not None, attrs


def _boundary(commands: Sequence[Sequence[Any]]):  # type: ignore[no-untyped-def]
    verdict = _judge(commands)
    if verdict is None:
        return None
    op, scoped, attrs = verdict
    return data_boundary(
        _settings.kind, f"redis {op}", scoped=scoped, strict=_settings.strict,
        attributes=attrs, tracer=RedisInstrumentor().tracer(),  # (the instrumentor is a singleton)
    )


def _stack(instance: Any) -> list[Sequence[Any]]:
    return [args for args, _options in getattr(instance, "command_stack", ())]


# The subscriptions a PubSub holds, by the command that makes them: its on_connect
# re-sends them after a reconnect (in a listener thread, e.g. run_in_thread's).
_HELD = {
    b"SUBSCRIBE": ("channels", "pending_unsubscribe_channels"),
    b"PSUBSCRIBE": ("patterns", "pending_unsubscribe_patterns"),
    b"SSUBSCRIBE": ("shard_channels", "pending_unsubscribe_shard_channels"),
}


def _held(pubsub: Any, args: Sequence[Any]) -> bool:
    """True when a subscribe command only repeats subscriptions ``pubsub`` already holds
    (and is not unsubscribing from): nothing new reaches the connection. That is how
    redis-py re-subscribes after a reconnect, in whatever thread noticed it, with no
    tenant bound; each subscription was judged when it was first made."""
    attrs = _HELD.get(_as_bytes(args[0]).upper()) if args else None
    if attrs is None or len(args) < 2:
        return False
    subscribed, pending = (getattr(pubsub, a, None) or () for a in attrs)
    held = {_as_bytes(c) for c in subscribed} - {_as_bytes(c) for c in pending}
    return all(_as_bytes(c) in held for c in args[1:])


def _command_guard(instance: Any, args: Any) -> Any:
    return _boundary([args])


def _pipeline_guard(instance: Any, args: Any) -> Any:
    return _boundary(_stack(instance))


def _pubsub_guard(instance: Any, args: Any) -> Any:
    return None if _held(instance, args) else _boundary([args])


def _sync(guard_of: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    """A wrapt wrapper running the call inside the boundary ``guard_of`` opens (if any)."""

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        guard = guard_of(instance, args)
        if guard is None:
            return wrapped(*args, **kwargs)
        with guard:
            return wrapped(*args, **kwargs)

    return wrapper


def _async(guard_of: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    """The same for a coroutine method: the boundary spans the awaited call."""

    async def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        guard = guard_of(instance, args)
        if guard is None:
            return await wrapped(*args, **kwargs)
        with guard:
            return await wrapped(*args, **kwargs)

    return wrapper


class RedisInstrumentor(FlowmapInstrumentor):
    """Judge every Redis command against the bound tenant's key namespace.

    ``instrument(namespace=fn, strict=False, kind="cache", trust_script_keys=False,
    shared_keys=None, tracer_provider=None)``:
    ``namespace(ctx)`` returns the tenant's key prefix (default ``t:<opaque tag>:``);
    ``strict`` refuses unscoped commands; ``kind`` is ``cache`` or ``memory``;
    ``trust_script_keys`` judges EVAL/EVALSHA/FCALL (and their ``_RO`` forms) by their
    declared keys, for applications whose scripts touch only the keys they declare
    (otherwise they are unscoped: Redis lets a script touch any key);
    ``shared_keys`` lists glob patterns of infrastructure keys that are no tenant's data
    (default :data:`DEFAULT_SHARED_KEYS`: Celery/kombu's broker and result backend; the
    patterns in ``FLOWMAP_REDIS_SHARED_KEYS``, comma separated, are always added): a
    command whose keys all match is no boundary (no tenant needed, never refused, no
    span); ``tracer_provider`` receives the spans (default flowmap's provider).
    """

    name = "flowmap_redis"

    def instrumentation_dependencies(self) -> Collection[str]:
        return _INSTRUMENTS

    def _instrument(self, **kwargs: Any) -> None:
        kind = kwargs.get("kind", "cache")
        if kind not in ("cache", "memory"):
            raise ConfigError("redis boundary kind must be 'cache' or 'memory'")
        shared = _compile_shared(_shared_patterns(kwargs.get("shared_keys")))
        _settings.namespace = kwargs.get("namespace") or tag_namespace
        _settings.strict = bool(kwargs.get("strict", False))
        _settings.kind = kind
        _settings.trust_script_keys = bool(kwargs.get("trust_script_keys", False))
        _settings.shared = shared
        for module, wrap in ((_SYNC, _sync), (_ASYNC, _async)):
            _patches.wrap(module, "Redis.execute_command", wrap(_command_guard))
            _patches.wrap(module, "Pipeline.execute", wrap(_pipeline_guard))
            # commands a pipeline sends at once while WATCHing (the WATCH itself included)
            _patches.wrap(module, "Pipeline.immediate_execute_command", wrap(_command_guard))
            # (P|S)SUBSCRIBE and unsubscribes: r.pubsub() sends them itself
            _patches.wrap(module, "PubSub.execute_command", wrap(_pubsub_guard))

    def _uninstrument(self, **kwargs: Any) -> None:
        _patches.unwrap_all()  # only flowmap's own wrappers (see flowmap.instrumentation.Patches)
        _settings.reset()
