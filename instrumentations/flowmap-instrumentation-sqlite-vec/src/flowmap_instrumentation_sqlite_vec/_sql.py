"""Just enough SQL reading to tell whether a statement restricts a vec0 table to one tenant.

Not a full parser: SQLite's tokenizer, parentheses, and a conservative judgement. A
statement counts as scoped only when every select (each arm of a compound, each CTE,
each subquery) and every delete or update that reads a vec0 table has, as a top-level
``AND`` conjunct of its own ``WHERE``, exactly ``<partition column> = <value>`` (or
``IN (<value>, ...)``) with each value a parameter or string literal equal to the
tenant's namespace. ``OR`` around it, ``NOT``, ``COLLATE``, ``IS``, ``LIKE``, ``CASE``,
comparisons of comparisons, column against column, natural joins, views over vec0
tables and vec0 shadow tables are all unverifiable. Anything it cannot verify is
unscoped: a false "unscoped" is noisy, a false "scoped" is a leak.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = ["Statement", "Vec0", "created", "fold", "reads", "scoped", "script", "statement", "vec0_tables"]


class _Unverifiable(Exception):
    """Raised anywhere the reading is unsure; the statement then counts as unscoped."""


class _Tok(NamedTuple):
    kind: str  # word (bare identifier or keyword), qid (quoted identifier), str, blob, num, param, op
    text: str  # qid: the name unquoted; str: the value unquoted
    i: int  # position in the token list


class _Group(list):  # type: ignore[type-arg]
    """The items between a "(" and its ")"."""


# SQLite's tokenizer (tokenize.c): its whitespace, its comments (an unclosed /* runs to
# the end), its quoting, any non-ASCII character as an identifier character.
_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\n\f\r\v]+)
  | (?P<comment>--[^\n]*|/\*(?:.*?\*/|.*\Z))
  | (?P<str>'(?:[^']|'')*')
  | (?P<blob>[xX]'[^']*')
  | (?P<qid>"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\])
  | (?P<param>\?[0-9]*|[:@$](?:[A-Za-z0-9_$]|[^\x00-\x7f])+)
  | (?P<num>(?:[0-9]|\.[0-9])(?:[eE][-+][0-9]|[A-Za-z0-9_.])*)
  | (?P<word>(?:[A-Za-z_]|[^\x00-\x7f])(?:[A-Za-z0-9_$]|[^\x00-\x7f])*)
  | (?P<op>->>|->|\|\||<<|>>|<=|>=|==|!=|<>|[-+*/%&|~<>=(),;.])
    """,
    re.DOTALL | re.VERBOSE,
)
_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_READ_VERBS = {"select", "with", "values", "delete", "update", "insert", "replace", "create"}
_JOIN_WORDS = {"natural", "left", "right", "full", "inner", "cross", "outer", "join"}
_SHADOW = re.compile(r"_(?:info|chunks|rowids|auxiliary|(?:vector_chunks|metadatachunks|metadatatext)[0-9]+)")


def _low(text: str) -> str:
    return text.translate(_LOWER)  # SQLite folds ASCII case only


fold = _low  # a name as SQLite compares it


@functools.lru_cache(maxsize=256)
def _tokens(sql: str) -> tuple[_Tok, ...]:
    """The statement's tokens (whitespace and comments dropped), remembered for the few
    statements an application runs again and again: judging a statement reads them twice
    (the tables it reads, then whether each read is scoped)."""
    out: list[_Tok] = []
    pos = 0
    while pos < len(sql):
        m = _TOKEN.match(sql, pos)
        if m is None:
            raise _Unverifiable(f"token at {pos}")
        kind, text, pos = m.lastgroup or "", m.group(), m.end()
        if kind in ("space", "comment"):
            continue
        if kind == "param" and text[0] == "$" and sql[pos : pos + 1] in ("(", ":"):
            raise _Unverifiable("Tcl-style parameter")  # $a::b(c) is one parameter to SQLite
        if kind == "str":
            text = text[1:-1].replace("''", "'")
        elif kind == "qid":
            q = text[0]
            text = text[1:-1] if q == "[" else text[1:-1].replace(q + q, q)
        out.append(_Tok(kind, text, len(out)))
    return tuple(out)


def _group(toks: Sequence[_Tok]) -> _Group:
    stack = [_Group()]
    for t in toks:
        if t.kind == "op" and t.text == "(":
            stack.append(_Group())
        elif t.kind == "op" and t.text == ")":
            if len(stack) == 1:
                raise _Unverifiable("unbalanced )")
            inner = stack.pop()
            stack[-1].append(inner)
        else:
            stack[-1].append(t)
    if len(stack) != 1:
        raise _Unverifiable("unbalanced (")
    top = stack[0]
    while top and _op(top[-1], ";"):
        top.pop()
    if any(_op(it, ";") for it in top):
        raise _Unverifiable("more than one statement")
    return top


def _kw(item: Any, *words: str) -> bool:
    return isinstance(item, _Tok) and item.kind == "word" and _low(item.text) in words


def _op(item: Any, *ops: str) -> bool:
    return isinstance(item, _Tok) and item.kind == "op" and item.text in ops


def _ident(item: Any) -> str | None:
    if isinstance(item, _Tok) and item.kind in ("word", "qid"):
        return _low(item.text)
    return None


def _is_subquery(item: Any) -> bool:
    return isinstance(item, _Group) and bool(item) and _kw(item[0], "select", "with", "values")


def _at(items: Sequence[Any], i: int) -> Any:
    return items[i] if i < len(items) else None


@dataclass(frozen=True)
class Vec0:
    """What is known of a table that holds vec0 data."""

    partition: frozenset[str]  # its partition key columns
    filterable: frozenset[str]  # partition key and metadata columns (filtered inside vec0)


_OPAQUE = Vec0(frozenset(), frozenset())  # a shadow table or a view: never verifiable


def _vec0_columns(sql: str) -> Vec0 | None:
    try:
        top = _group(_tokens(sql))
    except _Unverifiable:
        return None
    for k in range(len(top) - 2):
        if _kw(top[k], "using") and _ident(top[k + 1]) == "vec0" and isinstance(top[k + 2], _Group):
            break
    else:
        return None
    parts: list[list[Any]] = [[]]
    for it in top[k + 2]:
        if _op(it, ","):
            parts.append([])
        else:
            parts[-1].append(it)
    partition, filterable = set(), set()
    for p in parts:
        name = _ident(_at(p, 0))
        if name is None or _op(_at(p, 1), "=") or any(isinstance(t, _Tok) and t.kind == "qid" for t in p[1:]):
            continue  # "+aux" column, table option, vector column (float[n] reads as [n])
        filterable.add(name)
        if any(_kw(a, "partition") and _kw(b, "key") for a, b in itertools.pairwise(p)):
            partition.add(name)
    return Vec0(frozenset(partition), frozenset(filterable))


def vec0_tables(schema_rows: Sequence[tuple[str, str, str]]) -> dict[str, Vec0]:
    """Tables holding vec0 data, from ``sqlite_master`` (type, name, sql) rows.

    vec0 tables with their columns; their shadow tables and views reading any of these
    (transitively) as opaque: a read of one is judged and can never be scoped.
    """
    tables: dict[str, Vec0] = {}
    for kind, name, sql in schema_rows:
        spec = _vec0_columns(sql or "") if kind == "table" else None
        if spec is not None:
            tables[_low(name)] = spec
    for kind, name, _sql_text in schema_rows:
        low = _low(name)
        if kind == "table" and low not in tables and any(
            low.startswith(v + "_") and _SHADOW.fullmatch(low[len(v) :]) for v in list(tables)
        ):
            tables[low] = _OPAQUE
    views = {_low(name): sql or "" for kind, name, sql in schema_rows if kind == "view"}
    changed = True
    while changed:
        changed = False
        for name, sql in views.items():
            if name not in tables and _mentions(sql, tables):
                tables[name] = _OPAQUE
                changed = True
    return tables


def _mentions(sql: str, tables: Mapping[str, Vec0]) -> bool:
    try:
        return any(_ident(t) in tables for t in _tokens(sql))
    except _Unverifiable:
        low = _low(sql)
        return any(name in low for name in tables)


def _refs(toks: Sequence[_Tok], tables: Mapping[str, Vec0]) -> list[_Tok]:
    """Tokens naming a vec0-data table, except qualifiers (``docs.col``) and a write's target."""
    target = _write_target(toks)
    return [
        t for t in toks
        if _ident(t) in tables and not _op(_at(toks, t.i + 1), ".") and t.i != target
    ]


def _write_target(toks: Sequence[_Tok]) -> int:
    """Index of the table an INSERT/REPLACE writes or a CREATE TABLE creates, else -1."""
    verb = _low(toks[0].text) if toks else ""
    j = -1
    if verb in ("insert", "replace", "with"):
        depth = 0
        for t in toks:
            depth += _op(t, "(") - _op(t, ")")
            if depth == 0 and _kw(t, "into"):
                j = t.i + 1
                break
    elif verb == "create":
        k = 2 if _kw(_at(toks, 1), "temp", "temporary") else 1
        if _kw(_at(toks, k), "table"):
            j = k + 1
            if _kw(_at(toks, j), "if") and _kw(_at(toks, j + 1), "not") and _kw(_at(toks, j + 2), "exists"):
                j += 3
    if j >= 0 and _op(_at(toks, j + 1), "."):
        j += 2
    return j


_HEAD = re.compile(r"(?:[ \t\n\f\r\v]+|--[^\n]*|/\*(?:.*?\*/|.*\Z))*([A-Za-z]*)", re.DOTALL)


# Statements that cannot change which tables exist or what they are: data reads and
# writes (a trigger cannot run DDL), and transaction control that keeps what was done
# (ROLLBACK can undo a CREATE or DROP, so it is not here).
_SCHEMA_KEEPING = {"select", "with", "values", "insert", "update", "delete", "replace", "explain",
                   "begin", "commit", "end", "savepoint", "release"}


class Statement(NamedTuple):
    """What running a statement needs known before judging it (see :func:`statement`)."""

    may_read: bool  # may read table data (not a pragma, transaction, drop ...): else never judged
    schema: bool  # may change the schema or the attached databases (DDL, PRAGMA, ATTACH, ROLLBACK ...)
    names: frozenset[str] | None  # every identifier in it, folded; None: not tokenizable


@functools.lru_cache(maxsize=512)
def statement(sql: str) -> Statement:
    """The cheap facts about ``sql``, remembered for the statements an application repeats:
    a statement naming none of the vec0-data tables cannot read one, so the common case
    costs one cache lookup and a set intersection."""
    m = _HEAD.match(sql)
    verb = _low(m.group(1)) if m is not None else ""
    try:
        names: frozenset[str] | None = frozenset(_low(t.text) for t in _tokens(sql) if t.kind in ("word", "qid"))
    except _Unverifiable:
        names = None
    return Statement(verb in _READ_VERBS or not verb, verb not in _SCHEMA_KEEPING, names)


def script(sql: str, complete: Any) -> list[str]:
    """The statements of an ``executescript`` script, split where SQLite ends them: at a
    ``;`` after which ``complete`` (the DB-API module's ``complete_statement``, SQLite's
    own ``sqlite3_complete``) says the text so far is whole (a trigger body's ``;`` is not
    an end). What cannot be tokenized is one statement."""
    out: list[str] = []
    start = pos = 0
    while pos < len(sql):
        m = _TOKEN.match(sql, pos)
        if m is None:
            break
        pos = m.end()
        if m.lastgroup == "op" and m.group() == ";" and complete(sql[start:pos]):
            out.append(sql[start:pos])
            start = pos
    rest = sql[start:]
    if rest.strip():
        out.append(rest)
    return out


def created(sql: str) -> tuple[str, str, str | None] | None:
    """For a statement that makes a table or view under a name: ("table"|"view", name, the
    name it was renamed from or None). ``CREATE [TEMP] [VIRTUAL] TABLE|VIEW`` and ``ALTER
    TABLE ... RENAME TO``; lets a script's later statements be judged against the tables
    its earlier ones made."""
    try:
        toks = _tokens(sql)
    except _Unverifiable:
        return None

    def name_at(i: int) -> tuple[str | None, int]:
        if _op(_at(toks, i + 1), "."):
            i += 2
        return _ident(_at(toks, i)), i + 1

    if _kw(_at(toks, 0), "create"):
        i = 2 if _kw(_at(toks, 1), "temp", "temporary") else 1
        if _kw(_at(toks, i), "virtual"):
            i += 1
        if not _kw(_at(toks, i), "table", "view"):
            return None
        kind = "view" if _kw(toks[i], "view") else "table"
        i += 1
        if _kw(_at(toks, i), "if") and _kw(_at(toks, i + 1), "not") and _kw(_at(toks, i + 2), "exists"):
            i += 3
        name, _ = name_at(i)
        return (kind, name, None) if name else None
    if _kw(_at(toks, 0), "alter") and _kw(_at(toks, 1), "table"):
        old, i = name_at(2)
        if _kw(_at(toks, i), "rename") and _kw(_at(toks, i + 1), "to"):
            new = _ident(_at(toks, i + 2))
            if old and new:
                return ("table", new, old)
    return None


def reads(sql: str, tables: Mapping[str, Vec0]) -> tuple[str, list[str]] | None:
    """(first keyword, vec0-data tables it names) for a statement that may read one, else None."""
    if not tables:
        return None
    try:
        toks = _tokens(sql)
    except _Unverifiable:  # SQLite will most likely refuse it too; judge it if it may read one
        words = sql.split(None, 1)
        verb = _low(words[0]) if words else ""
        low = _low(sql)
        hit = sorted(name for name in tables if name in low)
        return (verb, hit) if verb in _READ_VERBS and hit else None
    if not toks or toks[0].kind != "word" or _low(toks[0].text) not in _READ_VERBS:
        return None
    verb = _low(toks[0].text)
    if verb == "create" and _write_target(toks) < 0:
        return None  # a view, trigger or index reads nothing now (views are judged when read)
    hit = sorted({_ident(t) or "" for t in _refs(toks, tables)})
    return (verb, hit) if hit else None


def scoped(sql: str, params: Any, tables: Mapping[str, Vec0], column: str | None, namespace: Any) -> bool:
    """Whether every read of a vec0-data table in ``sql`` is restricted to ``namespace``."""
    if type(namespace) not in (str, int, bytes):
        return False
    try:
        toks = _tokens(sql)
        verifier = _Verifier(toks, params, tables, column, namespace)
        verifier.statement(list(_group(toks)))
        # Every table reference must be a source the reading above verified.
        return all(t.i in verifier.verified for t in _refs(toks, tables))
    except _Unverifiable:
        return False


def _bindings(toks: Sequence[_Tok], params: Any) -> dict[int, tuple[bool, Any]]:
    """token index -> (known, value), numbered and named as SQLite does (sqlite3ExprAssignVarNumber)."""
    params = params if params is not None else ()
    numbers: dict[str, int] = {}  # parameter name -> number
    names: dict[int, str] = {}  # number -> its first name (what sqlite3_bind_parameter_name says)
    top = 0
    out: dict[int, tuple[bool, Any]] = {}
    for t in toks:
        if t.kind != "param":
            continue
        if t.text == "?":
            top += 1
            number = top
        elif t.text[0] == "?":
            number = int(t.text[1:]) if t.text[1:].isdigit() else 0
            if number > top or number not in names:
                numbers.setdefault(t.text, number)
                names.setdefault(number, t.text)
            top = max(top, number)
        else:
            if t.text not in numbers:
                top += 1
                numbers[t.text] = top
                names.setdefault(top, t.text)
            number = numbers[t.text]
        try:
            if number < 1:
                raise KeyError(number)
            if isinstance(params, Mapping):  # sqlite3 looks the index's name up without its prefix
                out[t.i] = (True, params[names[number][1:]])
            else:
                out[t.i] = (True, params[number - 1])
        except (IndexError, KeyError, TypeError):
            out[t.i] = (False, None)
    return out


@dataclass
class _Source:
    ref: str | None  # the name columns are qualified with (alias, else table name)
    spec: Vec0 | None  # None: not a vec0-data table
    tok: int  # index of the table-name token


class _Verifier:
    def __init__(self, toks: Sequence[_Tok], params: Any, tables: Mapping[str, Vec0], column: str | None,
                 namespace: Any) -> None:
        self.values = _bindings(toks, params)
        self.tables = tables
        self.column = column
        self.namespace = namespace
        self.verified: set[int] = set()

    # statements -------------------------------------------------------------------------

    def statement(self, items: list[Any]) -> None:
        items = self._with(items)
        head = _at(items, 0)
        if _kw(head, "select", "values"):
            self._compound(items)
        elif _kw(head, "delete"):
            self._delete(items)
        elif _kw(head, "update"):
            self._update(items)
        else:  # insert/replace/create ... select: what it reads goes somewhere else
            raise _Unverifiable("reads into a write")

    def _select(self, items: list[Any]) -> None:
        items = self._with(items)
        if not _kw(_at(items, 0), "select", "values"):
            raise _Unverifiable("not a select")
        self._compound(items)

    def _with(self, items: list[Any]) -> list[Any]:
        if not _kw(_at(items, 0), "with"):
            return items
        i = 2 if _kw(_at(items, 1), "recursive") else 1
        while True:
            if _ident(_at(items, i)) is None:
                raise _Unverifiable("cte name")
            i += 1
            if isinstance(_at(items, i), _Group):
                i += 1  # column names
            if not _kw(_at(items, i), "as"):
                raise _Unverifiable("cte as")
            i += 1
            if _kw(_at(items, i), "not"):
                i += 1
            if _kw(_at(items, i), "materialized"):
                i += 1
            body = _at(items, i)
            if not _is_subquery(body):
                raise _Unverifiable("cte body")
            self._select(list(body))
            i += 1
            if not _op(_at(items, i), ","):
                return items[i:]
            i += 1

    def _compound(self, items: list[Any]) -> None:
        arms: list[list[Any]] = [[]]
        i = 0
        while i < len(items):
            it = items[i]
            if _kw(it, "union", "intersect", "except"):
                arms.append([])
                i += 2 if _kw(it, "union") and _kw(_at(items, i + 1), "all") else 1
                continue
            arms[-1].append(it)
            i += 1
        for arm in arms:  # each arm is judged on its own: a union is scoped only if all are
            self._core(arm)

    def _core(self, items: list[Any]) -> None:
        if _kw(_at(items, 0), "values"):
            self._walk(items[1:])
            return
        if not _kw(_at(items, 0), "select"):
            raise _Unverifiable("select core")
        c = self._clauses(items, ("select", "from", "where", "group", "having", "window", "order", "limit"))
        for name in ("select", "group", "having", "window", "order", "limit"):
            self._walk(c.get(name, []))
        sources, loose = self._sources(c["from"]) if "from" in c else ([], False)
        self._check(sources, loose, c.get("where"))

    def _delete(self, items: list[Any]) -> None:
        if not _kw(_at(items, 1), "from"):
            raise _Unverifiable("delete")
        c = self._clauses(items[1:], ("from", "where", "returning", "order", "limit"))
        for name in ("returning", "order", "limit"):
            self._walk(c.get(name, []))
        sources, loose = self._sources(c["from"])
        if len(sources) != 1:
            raise _Unverifiable("delete source")
        self._check(sources, loose, c.get("where"))

    def _update(self, items: list[Any]) -> None:
        if _kw(_at(items, 1), "or"):
            raise _Unverifiable("update or ...")  # OR REPLACE can delete other rows
        c = self._clauses(items, ("update", "set", "from", "where", "returning", "order", "limit"))
        target, _ = self._sources(c["update"])
        if len(target) != 1 or "set" not in c:
            raise _Unverifiable("update target")
        for name in ("set", "returning", "order", "limit"):
            self._walk(c.get(name, []))
        spec = target[0].spec
        if spec is not None:
            guarded = set(spec.partition) | ({self.column} if self.column else set())
            if any(_ident(t) in guarded for t in _flatten(c["set"])):
                raise _Unverifiable("update moves rows between partitions")
        joined, loose = self._sources(c.get("from", []))
        self._check(target + joined, loose, c.get("where"))

    # clauses ----------------------------------------------------------------------------

    def _clauses(self, items: list[Any], order: tuple[str, ...]) -> dict[str, list[Any]]:
        """Split at the top-level clause keywords of ``order``, which must come in that order."""
        if any(_kw(a, "distinct") and _kw(b, "from") for a, b in itertools.pairwise(items)):
            raise _Unverifiable("IS [NOT] DISTINCT FROM")
        out: dict[str, list[Any]] = {}
        current, rank = order[0], 0
        if not _kw(_at(items, 0), order[0]):
            raise _Unverifiable("clause")
        out[current] = []
        for it in items[1:]:
            if isinstance(it, _Tok) and it.kind == "word" and _low(it.text) in order:
                new = order.index(_low(it.text))
                if new <= rank:
                    raise _Unverifiable("clause order")
                current, rank = order[new], new
                out[current] = []
            else:
                out[current].append(it)
        return out

    def _walk(self, items: Sequence[Any]) -> None:
        """Verify every subquery in an expression; ``IN table`` is not read here."""
        for k, it in enumerate(items):
            if isinstance(it, _Group):
                if _is_subquery(it):
                    self._select(list(it))
                else:
                    self._walk(it)
            elif _kw(it, "in") and _ident(_at(items, k + 1)) is not None:
                raise _Unverifiable("IN table")

    def _sources(self, items: list[Any]) -> tuple[list[_Source], bool]:
        """The sources of a FROM list, and whether a NATURAL join or USING blurs column names."""
        sources: list[_Source] = []
        loose = False
        i = 0
        while i < len(items):
            if sources:  # a join operator
                if _op(items[i], ","):
                    i += 1
                else:
                    while _kw(_at(items, i), *(_JOIN_WORDS - {"join"})):
                        loose = loose or _kw(items[i], "natural")
                        i += 1
                    if not _kw(_at(items, i), "join"):
                        raise _Unverifiable("join")
                    i += 1
            it = _at(items, i)
            spec: Vec0 | None = None
            ref: str | None = None
            tok = -1
            if _is_subquery(it):
                self._select(list(it))
                i += 1
            elif isinstance(it, _Tok) and _ident(it) is not None:
                ref, tok = _ident(it), it.i
                i += 1
                if _op(_at(items, i), "."):  # schema.table
                    ref, tok = _ident(_at(items, i + 1)), getattr(_at(items, i + 1), "i", -1)
                    if ref is None:
                        raise _Unverifiable("schema.table")
                    i += 2
                spec = self.tables.get(ref)
                if isinstance(_at(items, i), _Group):  # table-valued function
                    if spec is not None:
                        raise _Unverifiable("vec0 table called as a function")
                    self._walk(items[i])
                    i += 1
                if _kw(_at(items, i), "indexed"):
                    i += 3
                elif _kw(_at(items, i), "not") and _kw(_at(items, i + 1), "indexed"):
                    i += 2
            else:
                raise _Unverifiable("parenthesised join")
            if _kw(_at(items, i), "as"):
                ref = _ident(_at(items, i + 1))
                if ref is None:
                    raise _Unverifiable("alias")
                i += 2
            elif _ident(_at(items, i)) is not None and not _kw(_at(items, i), "on", "using", *_JOIN_WORDS):
                ref = _ident(items[i])
                i += 1
            if _kw(_at(items, i), "on"):
                j = i + 1
                while j < len(items) and not (_op(items[j], ",") or _kw(items[j], *_JOIN_WORDS)):
                    j += 1
                self._walk(items[i + 1 : j])
                i = j
            elif _kw(_at(items, i), "using"):
                loose = True
                i += 2
            sources.append(_Source(ref, spec, tok))
        refs = [s.ref for s in sources if s.ref is not None]
        if len(refs) != len(set(refs)):
            raise _Unverifiable("duplicate source name")
        return sources, loose

    # the tenant predicate ---------------------------------------------------------------

    def _check(self, sources: list[_Source], loose: bool, where: list[Any] | None) -> None:
        vec = [s for s in sources if s.spec is not None]
        if where is not None:
            self._walk(where)
        if not vec:
            return
        if loose:
            raise _Unverifiable("NATURAL join or USING: which table a column names is unclear")
        if where is None:
            raise _Unverifiable("no WHERE")
        conjuncts = _conjuncts(where)
        for s in vec:
            assert s.spec is not None
            if self.column is not None:
                if self.column not in s.spec.filterable:
                    raise _Unverifiable("configured column is not a vec0 filter column")
                columns = {self.column}
            else:
                columns = set(s.spec.partition)
            if not columns:
                raise _Unverifiable("no partition column")
            if not any(self._restricts(c, s, columns, qualified=len(vec) > 1) for c in conjuncts):
                raise _Unverifiable("tenant predicate")
            self.verified.add(s.tok)

    def _restricts(self, c: list[Any], source: _Source, columns: set[str], *, qualified: bool) -> bool:
        """``c`` is exactly ``col = v``, ``v = col`` or ``col IN (v, ...)``, v the tenant's value."""

        def column_at(k: int) -> int:  # end of a column reference starting at k, else -1
            if _ident(_at(c, k)) in columns and not qualified and not _op(_at(c, k + 1), "."):
                return k + 1
            if (_ident(_at(c, k)) == source.ref and _op(_at(c, k + 1), ".")
                    and _ident(_at(c, k + 2)) in columns):
                return k + 3
            return -1

        end = column_at(0)
        if end > 0 and len(c) == end + 2 and _op(c[end], "=", "=="):
            return self._tenant_value(c[end + 1])
        if end > 0 and len(c) == end + 2 and _kw(c[end], "in") and isinstance(c[end + 1], _Group):
            values = c[end + 1]
            return (len(values) % 2 == 1 and all(_op(v, ",") for v in values[1::2])
                    and all(self._tenant_value(v) for v in values[0::2]))
        if len(c) >= 3 and _op(c[1], "=", "==") and column_at(2) == len(c):
            return self._tenant_value(c[0])
        return False

    def _tenant_value(self, item: Any) -> bool:
        if not isinstance(item, _Tok):
            return False
        if item.kind == "str":
            known, value = True, item.text
        elif item.kind == "param":
            known, value = self.values.get(item.i, (False, None))
        else:
            return False
        return known and type(value) is type(self.namespace) and value == self.namespace


def _conjuncts(items: list[Any]) -> list[list[Any]]:
    """The top-level AND operands of an expression (parenthesised ANDs flattened).

    An expression with a top-level OR or CASE is one opaque operand; the AND of a
    BETWEEN is not a conjunction.
    """
    if any(_kw(it, "or", "case") for it in items):
        return [items]
    parts: list[list[Any]] = [[]]
    pending_between = 0
    for it in items:
        if _kw(it, "between"):
            pending_between += 1
        elif _kw(it, "and"):
            if pending_between:
                pending_between -= 1
            else:
                parts.append([])
                continue
        parts[-1].append(it)
    out: list[list[Any]] = []
    for p in parts:
        if len(p) == 1 and isinstance(p[0], _Group) and not _is_subquery(p[0]):
            out += _conjuncts(list(p[0]))
        else:
            out.append(p)
    return out


def _flatten(items: Sequence[Any]) -> list[_Tok]:
    out: list[_Tok] = []
    for it in items:
        out += _flatten(it) if isinstance(it, _Group) else [it]
    return out
