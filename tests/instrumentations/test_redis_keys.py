"""The Redis key table against a real redis-server: its COMMAND INFO key specs and its
COMMAND GETKEYS are the oracle for which arguments of a command are keys."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("redis")
import redis  # noqa: E402
from redis.connection import Connection  # noqa: E402

from flowmap_instrumentation_redis._keys import (  # noqa: E402
    KEY_SPECS,
    KEYLESS,
    PARSERS,
    WHOLE_KEYSPACE,
    KeyNum,
    KeySpec,
    Range,
    argv,
    command_keys,
    command_refs,
)

from .redis_server import redis_server  # noqa: E402


@pytest.fixture(scope="module")
def conn(tmp_path_factory):
    with redis_server(tmp_path_factory.mktemp("redis-keys")) as port:
        c = Connection(host="127.0.0.1", port=port)  # raw: no redis-py reply callbacks
        c.connect()
        yield c
        c.disconnect()


def _call(conn: Connection, *args: Any) -> Any:
    conn.send_command(*args)
    return conn.read_response()


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(seq: Any) -> dict:
    """A RESP3 map, or its RESP2 form (a flat list of key, value)."""
    if isinstance(seq, dict):
        return {_s(k): v for k, v in seq.items()}
    return {_s(seq[i]): seq[i + 1] for i in range(0, len(seq), 2)}


@pytest.fixture(scope="module")
def server_commands(conn) -> dict[str, tuple[list[KeySpec], set[str]]]:
    """{"NAME" or "CONTAINER SUB": (key specs, flags of all specs)} from COMMAND."""
    out: dict[str, tuple[list[KeySpec], set[str]]] = {}

    def walk(entries: list) -> None:
        for e in entries:
            name = _s(e[0]).upper().replace("|", " ")
            specs, flags = [], set()
            for raw in e[8]:
                spec = _pairs(raw)
                flags |= {_s(f) for f in spec["flags"]}
                bs, fk = _pairs(spec["begin_search"]), _pairs(spec["find_keys"])
                if _s(bs["type"]) != "index" or _s(fk["type"]) not in ("range", "keynum"):
                    specs.append(KeySpec(-1, Range(0)))  # keyword/unknown: not a static spec
                    continue
                index = _pairs(bs["spec"])["index"]
                f = _pairs(fk["spec"])
                if _s(fk["type"]) == "range":
                    specs.append(KeySpec(index, Range(f["lastkey"], f["keystep"], f["limit"])))
                else:
                    specs.append(KeySpec(index, KeyNum(f["keynumidx"], f["firstkey"], f["keystep"])))
            out[name] = (specs, flags)
            walk(e[9])

    walk(_call(conn, "COMMAND"))
    return out


def test_key_specs_table_matches_server_command_info(server_commands):
    checked = 0
    for name, specs in KEY_SPECS.items():
        if name in ("PUBLISH", "SUBSCRIBE"):  # channels, no keys to the server: no spec there
            assert server_commands[name][0] == []
            continue
        if name not in server_commands:  # newer than this server (HEXPIRE, HSETEX, ...)
            continue
        assert list(specs) == server_commands[name][0], name
        checked += 1
    assert checked > 150


def test_every_server_command_with_keys_is_judged(server_commands):
    missing = [
        name
        for name, (specs, flags) in server_commands.items()
        if specs and "not_key" not in flags and name not in KEY_SPECS and name not in PARSERS
    ]
    assert missing == []


def test_keyless_and_whole_keyspace_commands_have_no_keys_on_server(server_commands):
    for name in KEYLESS | WHOLE_KEYSPACE | {"KEYS", "SCAN"}:
        if name in server_commands:
            assert server_commands[name][0] == [], name
    # parsers exist exactly for the commands whose keys need option parsing
    movable = {n for n, (specs, _f) in server_commands.items() if any(s.index == -1 for s in specs)}
    assert movable <= set(PARSERS), movable - set(PARSERS)


# Command forms whose keys the server names with COMMAND GETKEYS.
FORMS: list[tuple[Any, ...]] = [
    ("GET", "k"), ("SET", "k", "v", "EX", 10, "GET"), ("HSET", "h", "f", "v"),
    ("DEL", "a", "b", "c"), ("UNLINK", "a", "b"), ("EXISTS", "a", "b"), ("TOUCH", "a"),
    ("MGET", "a", "b", "c"), ("WATCH", "a", "b"), ("MSET", "a", 1, "b", 2, "c", 3),
    ("MSETNX", "a", 1, "b", 2), ("SUNION", "a", "b"), ("SINTER", "a", "b"), ("SDIFF", "a", "b", "c"),
    ("SUNIONSTORE", "d", "a", "b"), ("SINTERSTORE", "d", "a"), ("SDIFFSTORE", "d", "a", "b"),
    ("PFCOUNT", "a", "b"), ("PFMERGE", "d", "a", "b"), ("PFADD", "h", "x"),
    ("RENAME", "a", "b"), ("RENAMENX", "a", "b"), ("COPY", "a", "b", "DB", 0, "REPLACE"),
    ("SMOVE", "a", "b", "m"), ("LMOVE", "a", "b", "LEFT", "RIGHT"),
    ("BLMOVE", "a", "b", "LEFT", "RIGHT", 0), ("RPOPLPUSH", "a", "b"), ("BRPOPLPUSH", "a", "b", 0),
    ("ZRANGESTORE", "d", "s", 0, -1), ("LCS", "a", "b", "LEN"),
    ("GEOSEARCHSTORE", "d", "g", "FROMLONLAT", 1, 2, "BYRADIUS", 10, "km", "STOREDIST"),
    ("GEOSEARCH", "g", "FROMMEMBER", "m", "BYBOX", 1, 1, "km"),
    ("BITOP", "AND", "d", "a", "b"), ("BITOP", "NOT", "d", "a"), ("BITCOUNT", "a", 0, 1),
    ("BLPOP", "a", "b", 0), ("BRPOP", "a", 1), ("BZPOPMIN", "a", "b", 0), ("BZPOPMAX", "a", 0),
    ("ZUNION", 2, "a", "b", "WEIGHTS", 1, 2, "WITHSCORES"), ("ZINTER", 1, "a"),
    ("ZDIFF", 3, "a", "b", "c"), ("ZUNIONSTORE", "d", 2, "a", "b", "AGGREGATE", "MAX"),
    ("ZINTERSTORE", "d", 1, "a"), ("ZDIFFSTORE", "d", 2, "a", "b"), ("ZINTERCARD", 2, "a", "b"),
    ("SINTERCARD", 2, "a", "b", "LIMIT", 5), ("LMPOP", 2, "a", "b", "LEFT", "COUNT", 2),
    ("ZMPOP", 1, "a", "MIN"), ("BLMPOP", 0, 2, "a", "b", "RIGHT"), ("BZMPOP", 1, 2, "a", "b", "MAX"),
    ("EVAL", "return 1", 2, "a", "b", "arg"), ("EVALSHA", "0" * 40, 1, "a"),
    ("EVAL_RO", "return 1", 0, "arg"), ("FCALL", "f", 2, "a", "b"), ("FCALL_RO", "f", 1, "a", "x"),
    ("XREAD", "COUNT", 2, "BLOCK", 0, "STREAMS", "s1", "s2", "0", "0"),
    ("XREAD", "STREAMS", "streams", "0"),
    ("XREADGROUP", "GROUP", "g", "c", "NOACK", "STREAMS", "s1", ">"),
    ("XREADGROUP", "GROUP", "STREAMS", "c", "COUNT", 1, "STREAMS", "STREAMS", "s2", ">", ">"),
    ("XADD", "s", "*", "f", "v"), ("XINFO", "STREAM", "s", "FULL"), ("XINFO", "GROUPS", "s"),
    ("XINFO", "CONSUMERS", "s", "g"), ("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"),
    ("XGROUP", "SETID", "s", "g", "0"), ("XGROUP", "DESTROY", "s", "g"),
    ("OBJECT", "ENCODING", "k"), ("OBJECT", "FREQ", "k"), ("OBJECT", "IDLETIME", "k"),
    ("OBJECT", "REFCOUNT", "k"), ("MEMORY", "USAGE", "k", "SAMPLES", 5),
    ("SORT", "k"), ("SORT", "k", "BY", "w_*", "LIMIT", 0, 10, "GET", "#", "GET", "o_*->f", "DESC",
                    "ALPHA", "STORE", "d"),
    ("SORT", "k", "LIMIT", "store", "by", "STORE", "d"), ("SORT_RO", "k", "BY", "nosort", "GET", "o_*"),
    ("MIGRATE", "h", 6379, "k", 0, 100), ("MIGRATE", "h", 6379, "", 0, 100, "COPY", "KEYS", "a", "b"),
    ("MIGRATE", "h", 6379, "", 0, 100, "AUTH", "keys", "AUTH2", "u", "keys", "KEYS", "a"),
    ("GEORADIUS", "g", 1, 2, 10, "km", "WITHDIST", "COUNT", 3, "ANY", "ASC", "STORE", "d"),
    ("GEORADIUS", "g", 1, 2, 10, "km", "STOREDIST", "d"),
    ("GEORADIUSBYMEMBER", "g", "m", 10, "km", "STORE", "d"), ("GEORADIUS_RO", "g", 1, 2, 10, "km"),
    ("GETEX", "k", "PERSIST"), ("EXPIRE", "k", 10, "NX"), ("MOVE", "k", 1), ("TYPE", "k"),
    ("ZADD", "z", 1, "m"), ("ZRANGE", "z", 0, -1), ("HSCAN", "h", 0, "MATCH", "*"),
    ("SSCAN", "s", 0), ("ZSCAN", "z", 0, "COUNT", 5), ("BITFIELD", "k", "GET", "u4", 0),
    ("DUMP", "k"), ("RESTORE", "k", 0, "x"),
]


@pytest.mark.parametrize("form", FORMS, ids=lambda f: " ".join(map(str, f[:2])))
def test_extracted_keys_match_command_getkeys(conn, form):
    refs = command_refs(form)
    assert refs is not None and refs.determined
    expected = _call(conn, "COMMAND", "GETKEYS", *argv(form))
    assert [str(k).encode() for k in refs.keys] == expected
    assert command_keys(form) == list(refs.keys)


class _Recorder(redis.Redis):
    """A redis-py client that records the arguments it would send (no connection)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[Any, ...]] = []

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.calls.append(args)
        return None


def _redis_py_calls() -> list[tuple[Any, ...]]:
    r = _Recorder()
    r.zunionstore("d", ["a", "b"]); r.zinterstore("d", {"a": 1, "b": 2}); r.zdiffstore("d", ["a", "b"])
    r.zunion(["a", "b"]); r.zinter(["a", "b"]); r.zdiff(["a", "b"]); r.zintercard(2, ["a", "b"])
    r.sintercard(2, ["a", "b"]); r.lmpop(2, "a", "b", direction="LEFT"); r.blmpop(0, 2, "a", "b", direction="LEFT")
    r.zmpop(2, ["a", "b"], min=True); r.bzmpop(0, 2, ["a", "b"], min=True)
    r.bitop("AND", "d", "a", "b"); r.xread({"s1": 0, "s2": 0}, count=1)
    r.xreadgroup("g", "c", {"s1": ">"}, noack=True)
    r.sort("k", by="w_*", get=["#", "o_*"], store="d"); r.sort_ro("k", by="w_*", get="o_*")
    r.lcs("a", "b"); r.copy("a", "b"); r.rename("a", "b"); r.smove("a", "b", "m")
    r.lmove("a", "b"); r.blmove("a", "b", 0); r.rpoplpush("a", "b"); r.zrangestore("d", "s", 0, -1)
    r.geosearchstore("d", "g", longitude=1, latitude=2, radius=10)
    r.georadius("g", 1, 2, 10, store="d"); r.georadiusbymember("g", "m", 10, store_dist="d")
    r.mset({"a": 1, "b": 2}); r.msetnx({"a": 1, "b": 2}); r.mget("a", "b"); r.delete("a", "b")
    r.unlink("a", "b"); r.exists("a", "b"); r.touch("a", "b"); r.pfcount("a", "b"); r.pfmerge("d", "a", "b")
    r.sunionstore("d", ["a", "b"]); r.sinterstore("d", ["a"]); r.sdiffstore("d", ["a", "b"])
    r.sunion(["a", "b"]); r.sinter("a", "b"); r.sdiff("a", "b")
    r.object("encoding", "k"); r.memory_usage("k"); r.xinfo_stream("s"); r.xinfo_groups("s")
    r.xgroup_create("s", "g", mkstream=True); r.eval("return 1", 2, "a", "b", "x")
    r.evalsha("0" * 40, 1, "a"); r.fcall("f", 1, "a"); r.migrate("h", 6379, ["a", "b"], 0, 100)
    r.blpop(["a", "b"]); r.brpop("a", 1); r.bzpopmin(["a", "b"]); r.brpoplpush("a", "b")
    r.set("k", "v", get=True); r.getex("k", persist=True); r.hset("h", mapping={"f": 1})
    return r.calls


@pytest.mark.parametrize("args", _redis_py_calls(), ids=lambda a: str(a[0]))
def test_redis_py_calls_match_command_getkeys(conn, args):
    """The arguments redis-py really passes (multi-word names like "OBJECT ENCODING" included)."""
    refs = command_refs(args)
    assert refs is not None and refs.determined
    assert [str(k).encode() for k in refs.keys] == _call(conn, "COMMAND", "GETKEYS", *argv(args))


def test_pattern_references_are_found():
    sort = command_refs(("SORT", "k", "BY", "w_*", "GET", "#", "GET", "o_*->f", "GET", "plain"))
    assert sort.keys == ("k",) and sort.sort_patterns == ("w_*", "o_*->f")  # '#', no '*': no read
    assert command_refs(("SORT", "k", "BY", "nosort")).sort_patterns == ()
    assert command_refs(("SORT", "k", "by", "a*", "BY", "b*")).sort_patterns == ("a*", "b*")
    scan = command_refs(("SCAN", 0, "MATCH", "t:x:*", "COUNT", 10, "match", "*", "TYPE", "set"))
    assert scan.globs == ("t:x:*", "*")  # the server applies the last MATCH: all are judged
    assert command_refs(("KEYS", "t:x:*")).globs == ("t:x:*",)
    assert command_refs(("PUBLISH", "ch", "m")).keys == ("ch",)
    # pub/sub: channels as keys, PSUBSCRIBE's patterns as globs, unsubscribing from all keyless
    assert command_refs(("SUBSCRIBE", "a", "b")).keys == ("a", "b")
    assert command_refs(("SSUBSCRIBE", "a")).keys == ("a",)
    psub = command_refs(("PSUBSCRIBE", "t:x:*", "*"))
    assert psub.globs == ("t:x:*", "*") and psub.channel_patterns and not scan.channel_patterns
    assert command_refs(("PUNSUBSCRIBE", "t:x:*")).keys == ("t:x:*",)  # a subscription's name
    assert command_refs(("UNSUBSCRIBE",)) is None and command_refs(("SUNSUBSCRIBE",)) is None
    assert command_refs(("EVAL", "s", 1, "a")).script is True
    assert command_refs(("PING",)) is None and command_refs(("CONFIG GET", "x")) is None


UNDETERMINED_FORMS = [
    ("NOSUCHCOMMAND", "k"), ("JSON.GET", "k"), ("DEBUG", "OBJECT", "k"), ("OBJECT",),
    ("OBJECT", "BOGUS", "k"), ("FLUSHDB",), ("FLUSHALL", "ASYNC"), ("RANDOMKEY",), ("SWAPDB", 0, 1),
    ("SCAN", 0), ("SCAN", 0, "COUNT", 10), ("SCAN", 0, "MATCH"), ("SCAN", 0, "BOGUS", "x"),
    ("KEYS",), ("KEYS", "a", "b"), ("ZUNION", "01", "a"), ("ZUNION", "+1", "a"), ("ZUNION", "x", "a"),
    ("ZUNION", -1, "a"), ("ZUNION", 3, "a", "b"), ("ZUNION", "1 ", "a"), ("ZUNION", "١", "a"),
    ("EVAL", "s", 2, "a"), ("LCS", "a"), ("RENAME", "a"), ("ZUNIONSTORE", "d"),
    ("SORT", "k", "BOGUS"), ("SORT", "k", "LIMIT", 0), ("SORT_RO", "k", "STORE", "d"),
    ("SORT", "k", "GET"), ("XREAD", "STREAMS", "a", "b", "0"), ("XREAD", "ſtreams", "a", "0"),
    ("XREAD", "COUNT", 1), ("XREAD", "BOGUS", "STREAMS", "a", "0"),
    ("MIGRATE", "h", 1, "k", 0, 100, "KEYS", "a"), ("MIGRATE", "h", 1, "", 0, 100, "BOGUS"),
    ("MIGRATE", "h", 1, "k"), ("GEORADIUS", "g", 1, 2, 10, "km", "STORE"),
    ("GEORADIUS", "g", 1, 2, 10, "km", "BOGUS"), ("PSUBSCRIBE",), (),
]


@pytest.mark.parametrize("form", UNDETERMINED_FORMS, ids=lambda f: " ".join(map(str, f)) or "empty")
def test_unknown_or_unparsable_commands_are_undetermined(form):
    refs = command_refs(form)
    assert refs is not None and not refs.determined
    assert command_keys(form) == []
