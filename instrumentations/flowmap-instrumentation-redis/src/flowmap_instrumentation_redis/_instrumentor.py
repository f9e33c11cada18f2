"""The RedisInstrumentor: wraps Redis.execute_command, Pipeline.execute and
Pipeline.immediate_execute_command (commands sent while WATCHing), sync and asyncio."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import wrapt
from opentelemetry.instrumentation.utils import unwrap

from flowmap.instrumentation import (
    FlowmapInstrumentor,
    Namespace,
    bound_namespace,
    data_boundary,
    tag_namespace,
)

from ._keys import command_name, command_refs, glob_prefix

__all__ = ["RedisInstrumentor", "tenant_key"]

_INSTRUMENTS = ("redis >= 5, < 9",)
_SYNC = "redis.client"
_ASYNC = "redis.asyncio.client"
KEYS_COUNT = "flowmap.keys.count"
KEYS_OUTSIDE = "flowmap.keys.outside"  # keys/patterns outside the namespace, + undetermined


class _Settings:
    namespace: Namespace = tag_namespace
    strict: bool = False
    kind: str = "cache"
    trust_script_keys: bool = False


_settings = _Settings()


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


def _judge(commands: Sequence[Sequence[Any]]) -> tuple[str, bool, dict[str, Any]] | None:
    """(operation name, scoped, span attributes) for a command batch; None if nothing to judge.

    Every command of a batch is judged on every key and key pattern it touches; one
    command that is unscoped or undetermined makes the batch unscoped."""
    ns = bound_namespace(_settings.namespace)
    prefix = ns.encode("utf-8") if ns else None
    names: list[str] = []
    keys_total = outside = 0
    judged = False
    for args in commands:
        refs = command_refs(args)
        if refs is None:
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
    return data_boundary(_settings.kind, f"redis {op}", scoped=scoped, strict=_settings.strict, attributes=attrs)


def _stack(instance: Any) -> list[Sequence[Any]]:
    return [args for args, _options in getattr(instance, "command_stack", ())]


def _execute_command(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    guard = _boundary([args])
    if guard is None:
        return wrapped(*args, **kwargs)
    with guard:
        return wrapped(*args, **kwargs)


def _pipeline_execute(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    guard = _boundary(_stack(instance))
    if guard is None:
        return wrapped(*args, **kwargs)
    with guard:
        return wrapped(*args, **kwargs)


async def _aexecute_command(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    guard = _boundary([args])
    if guard is None:
        return await wrapped(*args, **kwargs)
    with guard:
        return await wrapped(*args, **kwargs)


async def _apipeline_execute(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    guard = _boundary(_stack(instance))
    if guard is None:
        return await wrapped(*args, **kwargs)
    with guard:
        return await wrapped(*args, **kwargs)


class RedisInstrumentor(FlowmapInstrumentor):
    """Judge every Redis command against the bound tenant's key namespace.

    ``instrument(namespace=fn, strict=False, kind="cache", trust_script_keys=False)``:
    ``namespace(ctx)`` returns the tenant's key prefix (default ``t:<opaque tag>:``);
    ``strict`` refuses unscoped commands; ``kind`` is ``cache`` or ``memory``;
    ``trust_script_keys`` judges EVAL/EVALSHA/FCALL (and their ``_RO`` forms) by their
    declared keys, for applications whose scripts touch only the keys they declare
    (otherwise they are unscoped: Redis lets a script touch any key).
    """

    name = "flowmap_redis"

    def instrumentation_dependencies(self) -> Collection[str]:
        return _INSTRUMENTS

    def _instrument(self, **kwargs: Any) -> None:
        _settings.namespace = kwargs.get("namespace") or tag_namespace
        _settings.strict = bool(kwargs.get("strict", False))
        kind = kwargs.get("kind", "cache")
        if kind not in ("cache", "memory"):
            from flowmap.errors import ConfigError

            raise ConfigError("redis boundary kind must be 'cache' or 'memory'")
        _settings.kind = kind
        _settings.trust_script_keys = bool(kwargs.get("trust_script_keys", False))
        wrapt.wrap_function_wrapper(_SYNC, "Redis.execute_command", _execute_command)
        wrapt.wrap_function_wrapper(_SYNC, "Pipeline.execute", _pipeline_execute)
        # commands a pipeline sends at once while WATCHing (the WATCH itself included)
        wrapt.wrap_function_wrapper(_SYNC, "Pipeline.immediate_execute_command", _execute_command)
        wrapt.wrap_function_wrapper(_ASYNC, "Redis.execute_command", _aexecute_command)
        wrapt.wrap_function_wrapper(_ASYNC, "Pipeline.execute", _apipeline_execute)
        wrapt.wrap_function_wrapper(
            _ASYNC, "Pipeline.immediate_execute_command", _aexecute_command
        )

    def _uninstrument(self, **kwargs: Any) -> None:
        import redis.asyncio.client as aclient
        import redis.client as client

        unwrap(client.Redis, "execute_command")
        unwrap(client.Pipeline, "execute")
        unwrap(client.Pipeline, "immediate_execute_command")
        unwrap(aclient.Redis, "execute_command")
        unwrap(aclient.Pipeline, "execute")
        unwrap(aclient.Pipeline, "immediate_execute_command")
        _settings.strict = False
        _settings.trust_script_keys = False
