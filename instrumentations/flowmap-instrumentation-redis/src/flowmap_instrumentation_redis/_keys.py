"""Every key (and key pattern) a Redis command touches: what a tenant namespace must cover.

Data-driven and static: no round trip to the server on the hot path.

* ``KEY_SPECS`` mirrors the server's own key specifications (``COMMAND INFO`` key_specs,
  Redis 7+): a spec begins at an argument index and finds keys either as a *range*
  (``lastkey``/``step``/``limit``, negative ``lastkey`` counting from the end) or by a
  *keynum* argument (``numkeys``-style commands). The tests compare this table with a real
  redis-server's ``COMMAND INFO`` and every extraction with its ``COMMAND GETKEYS``.
* ``PARSERS`` handle commands whose keys depend on option parsing (SORT/SORT_RO with
  BY/GET patterns and STORE, MIGRATE KEYS, XREAD/XREADGROUP STREAMS, GEORADIUS[BYMEMBER]
  STORE/STOREDIST), the pattern commands (KEYS, SCAN MATCH, PSUBSCRIBE) and the
  unsubscribe commands; each mirrors the server's own parsing, and anything it does not
  recognise makes the command undetermined.
* Pub/sub channels are no keys to the server, but a tenant's channel lives in its
  namespace too: PUBLISH/SPUBLISH and (S)SUBSCRIBE name channels as keys, PSUBSCRIBE
  channel patterns as globs.
* Fail closed: a command that is not known, whose key positions cannot be determined
  (bad ``numkeys``, missing arguments, an unknown option), or that touches the whole
  keyspace is *undetermined*, which the instrumentation judges unscoped. Keywords are
  matched ASCII case-insensitively, as the server does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = [
    "KEYLESS",
    "KEY_SPECS",
    "PARSERS",
    "SCRIPTS",
    "WHOLE_KEYSPACE",
    "KeyRefs",
    "KeySpec",
    "argv",
    "command_keys",
    "command_name",
    "command_refs",
    "glob_prefix",
]


class Range(NamedTuple):
    """Keys from the begin index to ``lastkey`` (>= 0: relative to it; < 0: from the end)."""

    lastkey: int
    step: int = 1
    limit: int = 0


class KeyNum(NamedTuple):
    """The number of keys is the argument at ``keynumidx``; keys start at ``firstkey``."""

    keynumidx: int = 0
    firstkey: int = 1
    step: int = 1


class KeySpec(NamedTuple):
    index: int  # begin_search index (argv[0] is the command name)
    find: Range | KeyNum


def _key(i: int) -> KeySpec:
    return KeySpec(i, Range(0))


def _keys_to_end(i: int, step: int = 1) -> KeySpec:
    return KeySpec(i, Range(-1, step))


def _numkeys(i: int) -> KeySpec:
    return KeySpec(i, KeyNum())


@dataclass(frozen=True)
class KeyRefs:
    """What one command touches, as far as the instrumentation can tell."""

    keys: tuple[Any, ...] = ()  # key names (and pub/sub channels)
    globs: tuple[Any, ...] = ()  # KEYS / SCAN MATCH / PSUBSCRIBE glob patterns
    sort_patterns: tuple[Any, ...] = ()  # SORT BY/GET patterns that look keys up ('*')
    determined: bool = True  # False: unknown, unparsable, or the whole keyspace
    script: bool = False  # EVAL/FCALL: the script may touch keys it did not declare
    channel_patterns: bool = False  # PSUBSCRIBE: the globs are channel patterns


UNDETERMINED = KeyRefs(determined=False)

# Connection/server commands with no tenant data: no span, nothing to judge.
KEYLESS = frozenset(
    {
        "PING", "ECHO", "INFO", "SELECT", "DBSIZE", "TIME", "HELLO", "AUTH", "QUIT", "RESET",
        "COMMAND", "COMMAND COUNT", "COMMAND DOCS", "COMMAND INFO", "COMMAND LIST",
        "COMMAND GETKEYS", "COMMAND GETKEYSANDFLAGS", "CONFIG GET", "CONFIG SET",
        "CLIENT SETNAME", "CLIENT GETNAME", "CLIENT ID", "CLIENT SETINFO", "CLIENT LIST",
        "CLIENT INFO", "LASTSAVE", "MULTI", "EXEC", "DISCARD", "UNWATCH", "SCRIPT LOAD",
        "SCRIPT FLUSH", "SCRIPT EXISTS", "WAIT", "READONLY", "READWRITE", "ROLE",
    }
)
# Commands that read or write every tenant's keys at once.
WHOLE_KEYSPACE = frozenset({"FLUSHDB", "FLUSHALL", "RANDOMKEY", "SWAPDB"})
# Commands with subcommands: the table is keyed by "CONTAINER SUBCOMMAND".
_CONTAINERS = frozenset(
    {
        "ACL", "CLIENT", "CLUSTER", "COMMAND", "CONFIG", "FUNCTION", "LATENCY", "MEMORY",
        "MODULE", "OBJECT", "PUBSUB", "SCRIPT", "SLOWLOG", "XGROUP", "XINFO",
    }
)

_SINGLE_KEY = """
    APPEND BITCOUNT BITFIELD BITFIELD_RO BITPOS DECR DECRBY DUMP EXPIRE EXPIREAT EXPIRETIME
    GEOADD GEODIST GEOHASH GEOPOS GEORADIUS_RO GEORADIUSBYMEMBER_RO GEOSEARCH GET GETBIT
    GETDEL GETEX GETRANGE GETSET HDEL HEXISTS HGET HGETALL HINCRBY HINCRBYFLOAT HKEYS HLEN
    HMGET HMSET HRANDFIELD HSCAN HSET HSETNX HSTRLEN HVALS INCR INCRBY INCRBYFLOAT LINDEX
    LINSERT LLEN LPOP LPOS LPUSH LPUSHX LRANGE LREM LSET LTRIM MOVE PERSIST PEXPIRE PEXPIREAT
    PEXPIRETIME PFADD PSETEX PTTL RESTORE RESTORE-ASKING RPOP RPUSH RPUSHX SADD SCARD SET
    SETBIT SETEX SETNX SETRANGE SISMEMBER SMEMBERS SMISMEMBER SPOP SRANDMEMBER SREM SSCAN
    STRLEN SUBSTR TTL TYPE XACK XADD XAUTOCLAIM XCLAIM XDEL XLEN XPENDING XRANGE XREVRANGE
    XSETID XTRIM ZADD ZCARD ZCOUNT ZINCRBY ZLEXCOUNT ZMSCORE ZPOPMAX ZPOPMIN ZRANDMEMBER
    ZRANGE ZRANGEBYLEX ZRANGEBYSCORE ZRANK ZREM ZREMRANGEBYLEX ZREMRANGEBYRANK
    ZREMRANGEBYSCORE ZREVRANGE ZREVRANGEBYLEX ZREVRANGEBYSCORE ZREVRANK ZSCAN ZSCORE
    HEXPIRE HPEXPIRE HEXPIREAT HPEXPIREAT HTTL HPTTL HEXPIRETIME HPEXPIRETIME HPERSIST
    HGETDEL HGETEX HSETEX
""".split()  # the last two lines: Redis 7.4 / 8.0 hash commands, key first as well

# Key at argv[2]: after a subcommand (table names are "CONTAINER SUBCOMMAND") or an operand.
_SECOND_ARG_KEY = (
    "OBJECT ENCODING", "OBJECT FREQ", "OBJECT IDLETIME", "OBJECT REFCOUNT", "MEMORY USAGE",
    "XINFO CONSUMERS", "XINFO GROUPS", "XINFO STREAM", "XGROUP CREATE", "XGROUP CREATECONSUMER",
    "XGROUP DELCONSUMER", "XGROUP DESTROY", "XGROUP SETID", "PFDEBUG",
)

KEY_SPECS: dict[str, tuple[KeySpec, ...]] = {
    **{name: (_key(1),) for name in _SINGLE_KEY},
    **{name: (_key(2),) for name in _SECOND_ARG_KEY},
    # every argument is a key
    **{
        name: (_keys_to_end(1),)
        for name in (
            "DEL", "UNLINK", "EXISTS", "TOUCH", "MGET", "WATCH", "SINTER", "SUNION", "SDIFF",
            "PFCOUNT",
        )
    },
    # destination, then every other argument is a key
    **{
        name: (_key(1), _keys_to_end(2))
        for name in ("SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE", "PFMERGE")
    },
    # source and destination
    **{
        name: (_key(1), _key(2))
        for name in (
            "RENAME", "RENAMENX", "SMOVE", "LMOVE", "BLMOVE", "RPOPLPUSH", "BRPOPLPUSH",
            "COPY", "ZRANGESTORE", "GEOSEARCHSTORE",
        )
    },
    "LCS": (KeySpec(1, Range(1)),),
    "BITOP": (_key(2), _keys_to_end(3)),  # BITOP op destkey srckey...
    # key value pairs
    "MSET": (_keys_to_end(1, step=2),),
    "MSETNX": (_keys_to_end(1, step=2),),
    # keys then a timeout
    **{name: (KeySpec(1, Range(-2)),) for name in ("BLPOP", "BRPOP", "BZPOPMIN", "BZPOPMAX")},
    # numkeys key...
    **{
        name: (_numkeys(1),)
        for name in ("ZUNION", "ZINTER", "ZDIFF", "ZINTERCARD", "SINTERCARD", "LMPOP", "ZMPOP")
    },
    **{name: (_numkeys(2),) for name in ("BLMPOP", "BZMPOP")},  # timeout numkeys key...
    **{name: (_key(1), _numkeys(2)) for name in ("ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE")},
    # script/function numkeys key... (see SCRIPTS)
    **{
        name: (_numkeys(2),)
        for name in ("EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO")
    },
    # Not keys to the server, but a tenant's channel lives in its namespace too.
    "PUBLISH": (_key(1),),
    "SPUBLISH": (_key(1),),
    "SUBSCRIBE": (_keys_to_end(1),),
    "SSUBSCRIBE": (_keys_to_end(1),),
}
CHANNELS = frozenset({"PUBLISH", "SPUBLISH", "SUBSCRIBE", "SSUBSCRIBE", "PSUBSCRIBE"})
# Scripts and functions may touch keys they do not declare (Redis enforces declared keys
# only in cluster mode), so their declared keys alone do not prove the call is scoped.
SCRIPTS = frozenset({"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"})

_INT = re.compile(rb"0|-?[1-9][0-9]{0,18}")


def _bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return str(value).encode("utf-8")


def _word(value: Any) -> bytes:
    """An argument as the server compares keywords: ASCII case-insensitively."""
    return _bytes(value).upper()  # bytes.upper() folds ASCII only, like strcasecmp


def _int(value: Any) -> int | None:
    """The server's strict integer syntax (string2ll): no sign '+', spaces or leading zeros."""
    raw = _bytes(value)
    if _INT.fullmatch(raw) is None:
        return None
    n = int(raw)
    return n if -(2**63) <= n < 2**63 else None


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def argv(args: Sequence[Any]) -> list[Any]:
    """The arguments as the server receives them: redis-py splits a multi-word first
    argument ("CONFIG GET", "OBJECT ENCODING") into separate words before sending."""
    if not args:
        return []
    first = args[0]
    if isinstance(first, str):
        head: list[Any] = list(first.encode().split())
    elif isinstance(first, (bytes, bytearray)) and b" " in first:
        head = list(bytes(first).split())
    else:
        head = [first]
    return [*head, *args[1:]]


def _lookup_name(av: Sequence[Any]) -> str:
    if not av:
        return ""
    name = _word(av[0]).decode("ascii", "replace")
    if name in _CONTAINERS and len(av) > 1:
        return f"{name} {_word(av[1]).decode('ascii', 'replace')}"
    return name


_KNOWN_NAME = re.compile(r"[A-Z][A-Z0-9_.|-]{0,39}")


def command_name(args: Sequence[Any]) -> str:
    """The operation name for spans: the command (and a known subcommand), never an argument."""
    av = argv(args)
    full = _lookup_name(av)
    if full in KEY_SPECS or full in PARSERS or full in KEYLESS or full in WHOLE_KEYSPACE:
        return full
    head = full.split(" ", 1)[0]
    return head if _KNOWN_NAME.fullmatch(head) else "UNKNOWN"


def _apply_spec(spec: KeySpec, av: Sequence[Any]) -> list[Any] | None:
    """The keys one spec finds (the server's getKeysUsingKeySpecs); None when it cannot."""
    argc = len(av)
    first = spec.index
    find = spec.find
    if isinstance(find, Range):
        if find.lastkey >= 0:
            last = first + find.lastkey
        elif find.limit == 0:
            last = argc + find.lastkey
        else:
            last = first + ((argc - first) // find.limit + find.lastkey)
        step = find.step
    else:
        if first + find.keynumidx >= argc:
            return None
        n = _int(av[first + find.keynumidx])
        if n is None or n < 0:
            return None
        first += find.firstkey
        last = first + n - 1
        step = find.step
    positions = range(first, last + 1, step)
    if positions and (positions[-1] >= argc or first < 1):
        return None  # fewer arguments than the keys the command names
    return [av[i] for i in positions]


# -- commands whose keys depend on option parsing (each mirrors the server's parser) --


def _keys_cmd(av: Sequence[Any]) -> KeyRefs:
    return KeyRefs(globs=(av[1],)) if len(av) == 2 else UNDETERMINED


def _scan(av: Sequence[Any]) -> KeyRefs:
    """SCAN cursor [MATCH pattern] [COUNT n] [TYPE t]: scoped only through MATCH patterns
    (the server applies the last MATCH; every one given must be in the namespace)."""
    if len(av) < 2:
        return UNDETERMINED
    globs: list[Any] = []
    i = 2
    while i < len(av):
        word, left = _word(av[i]), len(av) - i
        if word in (b"COUNT", b"TYPE") and left >= 2:
            i += 2
        elif word == b"MATCH" and left >= 2:
            globs.append(av[i + 1])
            i += 2
        else:
            return UNDETERMINED
    return KeyRefs(globs=tuple(globs)) if globs else UNDETERMINED  # no MATCH: every key


def _psubscribe(av: Sequence[Any]) -> KeyRefs:
    """PSUBSCRIBE pattern...: glob-style like KEYS (the server's stringmatch), so a pattern
    is scoped only when every channel it can match starts with the namespace."""
    return KeyRefs(globs=tuple(av[1:]), channel_patterns=True) if len(av) > 1 else UNDETERMINED


def _unsubscribe(av: Sequence[Any]) -> KeyRefs | None:
    """(P|S)UNSUBSCRIBE [name...]: the names given, each a literal (PUNSUBSCRIBE names a
    subscription's pattern, it matches nothing). With none it ends every subscription of
    this connection: its own, no tenant's data, so nothing to judge (and a clean-up that
    is never refused)."""
    return KeyRefs(keys=tuple(av[1:])) if len(av) > 1 else None


def _sort(readonly: bool) -> Callable[[Sequence[Any]], KeyRefs]:
    """SORT key [BY pattern] [LIMIT o c] [GET pattern ...] [ASC|DESC] [ALPHA] [STORE dst].

    BY/GET patterns with a '*' make the server read other keys (the '*' replaced by each
    element); a pattern without '*' (``BY nosort``, ``GET #``) reads none."""

    def parse(av: Sequence[Any]) -> KeyRefs:
        if len(av) < 2:
            return UNDETERMINED
        keys, patterns = [av[1]], []
        j = 2
        while j < len(av):
            word, left = _word(av[j]), len(av) - j - 1
            if word in (b"ASC", b"DESC", b"ALPHA"):
                pass
            elif word == b"LIMIT" and left >= 2:
                j += 2
            elif word == b"STORE" and left >= 1 and not readonly:
                keys.append(av[j + 1])
                j += 1
            elif word in (b"BY", b"GET") and left >= 1:
                if b"*" in _bytes(av[j + 1]):
                    patterns.append(av[j + 1])
                j += 1
            else:
                return UNDETERMINED
            j += 1
        return KeyRefs(keys=tuple(keys), sort_patterns=tuple(patterns))

    return parse


def _xread(av: Sequence[Any]) -> KeyRefs:
    """XREAD/XREADGROUP [GROUP g c] [COUNT n] [BLOCK ms] [NOACK] STREAMS key... id...:
    the keys are the first half of everything after STREAMS."""
    i = 1
    while i < len(av):
        word, more = _word(av[i]), len(av) - i - 1
        if word in (b"BLOCK", b"COUNT") and more >= 1:
            i += 2
        elif word == b"GROUP" and more >= 2:
            i += 3
        elif word == b"NOACK":
            i += 1
        elif word == b"STREAMS" and more >= 1:
            rest = av[i + 1 :]
            if len(rest) % 2:
                return UNDETERMINED
            return KeyRefs(keys=tuple(rest[: len(rest) // 2]))
        else:
            return UNDETERMINED
    return UNDETERMINED


def _georadius(options_at: int) -> Callable[[Sequence[Any]], KeyRefs]:
    """GEORADIUS[BYMEMBER] key ... [WITH*] [COUNT n [ANY]] [ASC|DESC] [STORE k] [STOREDIST k]."""

    def parse(av: Sequence[Any]) -> KeyRefs:
        if len(av) < options_at:
            return UNDETERMINED
        keys = [av[1]]
        i = options_at
        while i < len(av):
            word, more = _word(av[i]), len(av) - i - 1
            if word in (b"WITHDIST", b"WITHHASH", b"WITHCOORD", b"ANY", b"ASC", b"DESC"):
                i += 1
            elif word == b"COUNT" and more >= 1:
                i += 2
            elif word in (b"STORE", b"STOREDIST") and more >= 1:
                keys.append(av[i + 1])
                i += 2
            else:
                return UNDETERMINED
        return KeyRefs(keys=tuple(keys))

    return parse


def _migrate(av: Sequence[Any]) -> KeyRefs:
    """MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH pw] [AUTH2 u pw] [KEYS k...]."""
    if len(av) < 6:
        return UNDETERMINED
    j = 6
    while j < len(av):
        word, more = _word(av[j]), len(av) - 1 - j
        if word in (b"COPY", b"REPLACE"):
            pass
        elif word == b"AUTH" and more >= 1:
            j += 1
        elif word == b"AUTH2" and more >= 2:
            j += 2
        elif word == b"KEYS":
            if _bytes(av[3]) != b"":
                return UNDETERMINED  # the server refuses KEYS with a key argument
            return KeyRefs(keys=tuple(av[j + 1 :]))
        else:
            return UNDETERMINED
        j += 1
    return KeyRefs(keys=(av[3],))


PARSERS: dict[str, Callable[[Sequence[Any]], KeyRefs | None]] = {
    "KEYS": _keys_cmd,
    "SCAN": _scan,
    "SORT": _sort(readonly=False),
    "SORT_RO": _sort(readonly=True),
    "XREAD": _xread,
    "XREADGROUP": _xread,
    "GEORADIUS": _georadius(6),
    "GEORADIUSBYMEMBER": _georadius(5),
    "MIGRATE": _migrate,
    "PSUBSCRIBE": _psubscribe,
    "UNSUBSCRIBE": _unsubscribe,
    "PUNSUBSCRIBE": _unsubscribe,
    "SUNSUBSCRIBE": _unsubscribe,
}


def command_refs(args: Sequence[Any]) -> KeyRefs | None:
    """Every key and key pattern ``args`` (command first) touches; ``None`` for keyless
    commands. ``determined`` is False when that cannot be told (judge it unscoped)."""
    av = argv(args)
    name = _lookup_name(av)
    if name in KEYLESS:
        return None
    if name in WHOLE_KEYSPACE:
        return UNDETERMINED
    parser = PARSERS.get(name)
    if parser is not None:
        return parser(av)
    specs = KEY_SPECS.get(name)
    if specs is None:
        return UNDETERMINED  # not in the table: fail closed
    keys: list[Any] = []
    for spec in specs:
        found = _apply_spec(spec, av)
        if found is None:
            return UNDETERMINED
        keys += found
    return KeyRefs(keys=tuple(keys), script=name in SCRIPTS)


def command_keys(args: Sequence[Any]) -> list[Any] | None:
    """The key arguments of ``args`` (what ``COMMAND GETKEYS`` names); ``None`` for keyless
    commands, ``[]`` when they cannot be determined."""
    refs = command_refs(args)
    if refs is None:
        return None
    return list(refs.keys) if refs.determined else []


def glob_prefix(prefix: bytes) -> bytes:
    """``prefix`` as a literal glob: the start every match of a scoped pattern must have."""
    return re.sub(rb"([*?\[\]\\])", rb"\\\1", prefix)
