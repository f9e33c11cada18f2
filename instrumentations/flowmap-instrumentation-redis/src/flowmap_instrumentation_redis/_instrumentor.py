"""The RedisInstrumentor: wraps Redis.execute_command and Pipeline.execute (sync and asyncio)."""

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

from ._keys import command_keys, command_name

__all__ = ["RedisInstrumentor", "tenant_key"]

_INSTRUMENTS = ("redis >= 5, < 9",)
_SYNC = "redis.client"
_ASYNC = "redis.asyncio.client"
KEYS_COUNT = "flowmap.keys.count"
KEYS_OUTSIDE = "flowmap.keys.outside"  # how many keys were outside the tenant namespace


class _Settings:
    namespace: Namespace = tag_namespace
    strict: bool = False
    kind: str = "cache"


_settings = _Settings()


def tenant_key(key: str) -> str:
    """``key`` inside the bound tenant's namespace (raises MissingContextError when unbound)."""
    from flowmap.context import current

    return _settings.namespace(current()) + key


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return str(value).encode("utf-8")


def _judge(commands: Sequence[Sequence[Any]]) -> tuple[str, bool, dict[str, Any]] | None:
    """(operation name, scoped, span attributes) for a command batch; None if nothing to judge."""
    ns = bound_namespace(_settings.namespace)
    prefix = ns.encode("utf-8") if ns else None
    names: list[str] = []
    keys_total = outside = 0
    judged = False
    for args in commands:
        keys = command_keys(args)
        if keys is None:
            continue
        judged = True
        names.append(command_name(args))
        if not keys:
            outside += 1  # whole-keyspace command: nothing could be namespaced
        for k in keys:
            keys_total += 1
            if prefix is None or not _as_bytes(k).startswith(prefix):
                outside += 1
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

    ``instrument(namespace=fn, strict=False, kind="cache")``: ``namespace(ctx)`` returns
    the tenant's key prefix (default ``t:<opaque tag>:``); ``strict`` refuses unscoped
    commands; ``kind`` is ``cache`` or ``memory``.
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
        wrapt.wrap_function_wrapper(_SYNC, "Redis.execute_command", _execute_command)
        wrapt.wrap_function_wrapper(_SYNC, "Pipeline.execute", _pipeline_execute)
        wrapt.wrap_function_wrapper(_ASYNC, "Redis.execute_command", _aexecute_command)
        wrapt.wrap_function_wrapper(_ASYNC, "Pipeline.execute", _apipeline_execute)

    def _uninstrument(self, **kwargs: Any) -> None:
        import redis.asyncio.client as aclient
        import redis.client as client

        unwrap(client.Redis, "execute_command")
        unwrap(client.Pipeline, "execute")
        unwrap(aclient.Redis, "execute_command")
        unwrap(aclient.Pipeline, "execute")
        _settings.strict = False
