"""Just enough SQL reading to tell whether a statement restricts a vec0 table to one tenant.

Not a parser: a tokenizer and a conservative judgement. A statement counts as scoped
only when it compares the partition column for equality with a value equal to the
tenant's namespace, and has no ``OR`` anywhere (which could widen the filter). Anything
it cannot verify is unscoped: a false "unscoped" is noisy, a false "scoped" is a leak.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["tables_read", "tenant_values", "vec0_tables", "is_ddl"]

_TOKEN = re.compile(
    r"""
    (?P<str>'(?:[^']|'')*')
  | (?P<qid>"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\])
  | (?P<param>\?\d*|[:@$][A-Za-z_]\w*)
  | (?P<word>[A-Za-z_][\w$]*)
  | (?P<num>\d+(?:\.\d+)?)
  | (?P<op>==|=|[(),.;*])
  | (?P<comment>--[^\n]*|/\*.*?\*/)
  | (?P<other>\S)
    """,
    re.S | re.X,
)
_VEC0 = re.compile(r"create\s+virtual\s+table\s+(?:if\s+not\s+exists\s+)?(\S+)\s+using\s+vec0\s*\((.*)\)", re.I | re.S)


def _tokens(sql: str) -> list[tuple[str, str]]:
    out = []
    for m in _TOKEN.finditer(sql):
        kind = m.lastgroup or "other"
        if kind == "comment":
            continue
        text = m.group()
        if kind == "qid":
            kind, text = "word", text[1:-1]
        out.append((kind, text))
    return out


def _ident(name: str) -> str:
    return name.strip('"`[]').lower()


def is_ddl(sql: str) -> bool:
    head = sql.lstrip().split(None, 1)
    return bool(head) and head[0].lower() in {"create", "drop", "alter"}


def vec0_tables(schema_rows: Sequence[tuple[str, str]]) -> dict[str, set[str]]:
    """{vec0 table: its ``partition key`` columns} from ``sqlite_master`` (name, sql) rows."""
    tables: dict[str, set[str]] = {}
    for name, sql in schema_rows:
        m = _VEC0.search(sql or "")
        if not m:
            continue
        parts = [p.strip() for p in m.group(2).split(",")]
        tables[_ident(name)] = {
            _ident(p.split()[0]) for p in parts if p and re.search(r"\bpartition\s+key\b", p, re.I)
        }
    return tables


def tables_read(sql: str) -> tuple[str, set[str]]:
    """(first keyword, tables named after FROM/JOIN/UPDATE/INTO), lowercase."""
    toks = _tokens(sql)
    verb = toks[0][1].lower() if toks and toks[0][0] == "word" else ""
    tables = set()
    for i, (kind, text) in enumerate(toks[:-1]):
        if kind == "word" and text.lower() in {"from", "join", "update", "into"}:
            nxt = toks[i + 1]
            if nxt[0] == "word":
                # schema.table: keep the last part
                j = i + 1
                while j + 2 < len(toks) and toks[j + 1][1] == "." and toks[j + 2][0] == "word":
                    j += 2
                tables.add(_ident(toks[j][1]))
    return verb, tables


def _value(token: tuple[str, str], params: Any, position: int) -> tuple[bool, Any]:
    kind, text = token
    if kind == "str":
        return True, text[1:-1].replace("''", "'")
    if kind == "param":
        try:
            if text == "?":
                return True, params[position]
            if text.startswith("?"):
                return True, params[int(text[1:]) - 1]
            if isinstance(params, Mapping):
                return True, params[text[1:]]
        except (IndexError, KeyError, TypeError, ValueError):
            pass
    return False, None


def tenant_values(sql: str, params: Any, columns: set[str]) -> list[Any] | None:
    """Values the statement requires ``columns`` to equal; None when an OR may widen it."""
    toks = _tokens(sql)
    if any(k == "word" and t.lower() == "or" for k, t in toks):
        return None
    values: list[Any] = []
    seen_params = 0
    positions: list[int] = []  # positional index of each token's "?" (or -1)
    for kind, text in toks:
        if kind == "param" and text == "?":
            positions.append(seen_params)
            seen_params += 1
        else:
            positions.append(-1)
    params = params if params is not None else ()
    for i in range(1, len(toks) - 1):
        if toks[i][1] not in ("=", "=="):
            continue
        left, right = toks[i - 1], toks[i + 1]
        # "t.tenant = ?": the column is the word just left of "=" (or right of it).
        for col, val, pos in ((left, right, positions[i + 1]), (right, left, positions[i - 1])):
            if col[0] == "word" and _ident(col[1]) in columns:
                ok, v = _value(val, params, pos)
                if ok:
                    values.append(v)
    return values
