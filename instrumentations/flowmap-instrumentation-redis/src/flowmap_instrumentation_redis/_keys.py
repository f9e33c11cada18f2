"""Which arguments of a Redis command are keys (the ones a tenant namespace must cover).

A conservative table, not the server's COMMAND metadata: a command not listed is taken
to have its key first, as almost every Redis data command does. Commands that touch the
whole keyspace (FLUSHDB, a KEYS or SCAN without a namespaced pattern) have no key that
could be scoped, so they are judged unscoped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["command_keys", "WHOLE_KEYSPACE", "KEYLESS"]

# Connection/server commands with no tenant data: no span, nothing to judge.
KEYLESS = frozenset(
    {
        "PING", "ECHO", "INFO", "SELECT", "DBSIZE", "TIME", "HELLO", "AUTH", "QUIT", "RESET",
        "COMMAND", "CONFIG GET", "CONFIG SET", "CLIENT SETNAME", "CLIENT GETNAME", "CLIENT ID",
        "CLIENT SETINFO", "CLIENT LIST", "CLIENT INFO", "LASTSAVE", "MULTI", "EXEC", "DISCARD",
        "UNWATCH", "SCRIPT LOAD", "SCRIPT FLUSH", "SCRIPT EXISTS", "MEMORY USAGE", "WAIT",
    }
)
# Commands that read or write every tenant's keys at once.
WHOLE_KEYSPACE = frozenset({"FLUSHDB", "FLUSHALL", "RANDOMKEY", "SWAPDB"})
_ALL_ARGS = frozenset(
    {
        "DEL", "UNLINK", "EXISTS", "TOUCH", "MGET", "WATCH", "SINTER", "SUNION", "SDIFF",
        "PFCOUNT", "PFMERGE", "SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE",
    }
)
_EVERY_OTHER = frozenset({"MSET", "MSETNX"})
_FIRST_TWO = frozenset({"RENAME", "RENAMENX", "SMOVE", "LMOVE", "BLMOVE", "RPOPLPUSH", "BRPOPLPUSH", "COPY"})
_ALL_BUT_LAST = frozenset({"BLPOP", "BRPOP", "BZPOPMIN", "BZPOPMAX"})
_NUMKEYS_AT_1 = frozenset({"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"})


def _pattern_arg(args: Sequence[Any]) -> list[Any]:
    """SCAN's MATCH pattern (a namespaced pattern is a scoped scan); none means everything."""
    for i, a in enumerate(args[:-1]):
        if _text(a).upper() == "MATCH":
            return [args[i + 1]]
    return []


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def command_name(args: Sequence[Any]) -> str:
    return _text(args[0]).upper() if args else ""


def command_keys(args: Sequence[Any]) -> list[Any] | None:
    """The key arguments of ``args`` (command first); ``None`` for keyless commands.

    An empty list means the command touches keys but none could be namespaced.
    """
    name = command_name(args)
    rest = list(args[1:])
    if name in KEYLESS:
        return None
    if name in WHOLE_KEYSPACE:
        return []
    if name == "KEYS":
        return rest[:1]
    if name == "SCAN":
        return _pattern_arg(rest)
    if name in _ALL_ARGS:
        return rest
    if name in _EVERY_OTHER:
        return rest[0::2]
    if name in _FIRST_TWO:
        return rest[:2]
    if name in _ALL_BUT_LAST:
        return rest[:-1]
    if name in _NUMKEYS_AT_1:
        try:
            n = int(_text(rest[1]))
        except (IndexError, ValueError):
            return []
        return rest[2 : 2 + n]
    return rest[:1]
