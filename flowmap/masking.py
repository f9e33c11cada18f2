"""Find raw tenant identifiers in telemetry, and mask them in everything we output.

Like a secret scanner: a value flagged as a raw tenant id is never repeated — not in a
finding's message, not in the spans kept for the HTML trace view. Masking is by value,
so the same id is also hidden where it leaked under a name we do not recognise (a URL,
a JSON argument string, a baggage header) once it has been flagged anywhere.
"""

from __future__ import annotations

import ast
import base64
import functools
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_plus

from . import attributes
from .conventions import (
    DESTINATION_KEYS, JSON_HEADS, NAMING_KEYS, PATH_KEYS, ROUTE_KEY, ROUTING_KEYS, SYSTEM_KEYS, URL_KEYS, has_quote,
    holds_key_text, holds_query_text, is_cache_system, is_json_text,
)
from .model import Event, Link, Span, Trace
from .spellings import spellings
from .substrings import HEAD, SubstringIndex
from .tagging import is_opaque_tag

__all__ = [
    "MASK",
    "REDACTED_PLACEHOLDER",
    "RawValue",
    "normalize_key",
    "is_tenant_key",
    "find_raw_tenant_values",
    "scan_attributes",
    "scalars",
    "quiet_keys",
    "is_quiet",
    "holds_names",
    "known_opaque_tags",
    "NEVER_QUIET",
    "parse_baggage",
    "tenant_keys_in",
    "may_name_tenant",
    "json_value",
    "literal_value",
    "fold",
    "Masker",
    "learn_names",
    "may_name_in_words",
]

MASK = "[masked]"
# Placeholders are not identifiers: ours, and the runtime's (flowmap.redaction.REDACTED_VALUE,
# spelled out here so the analyzer never imports the OpenTelemetry SDK).
REDACTED_PLACEHOLDER = "[flowmap:redacted]"
#: what a JavaScript serializer writes in place of a value it leaves out (Mastra's telemetry
#: stringifies each traced method's arguments so: a tool call's arguments nested deep
#: enough are ``{"tenant_id": "[MaxDepth]"}``)
SERIALIZER_MARKS = frozenset({"[MaxDepth]", "[Circular]", "[Function]", "[Not Serializable]", "[Symbol]"})
PLACEHOLDERS = frozenset({MASK, REDACTED_PLACEHOLDER, *SERIALIZER_MARKS})

# Standard resource/semantic-convention namespaces whose ``*.account.id``-like names are
# infrastructure ids (a cloud account), not the platform's tenants.
_INFRA_PREFIXES = ("cloud.", "aws.", "gcp.", "azure.", "k8s.", "faas.", "host.", "telemetry.")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
#: ``file:line`` at the start of a text (an origin, a warning about a line)
_LOCATED = re.compile(r"(?P<file>.+?):(?P<line>[0-9]+)(?P<rest>(?::\s.*)?)\Z", re.DOTALL)
_MIN_SUBSTRING = HEAD  # shorter raw values are only masked as whole tokens


def normalize_key(key: str) -> str:
    """``tenantId`` / ``Tenant-ID`` / ``tenant id`` -> ``tenant_id``."""
    return _CAMEL.sub("_", key.strip()).replace("-", "_").replace(" ", "_").lower()


@functools.lru_cache(maxsize=16384)
def _key_matches(key: str, names: frozenset[str]) -> bool:
    low = key.lower()
    if low.startswith(_INFRA_PREFIXES):
        return False
    parts = [normalize_key(p) for p in key.split(".") if p]
    if not parts:
        return False
    last = parts[-1]
    # x_: a captured request header (http.request.header.x-tenant-id)
    if last in names or (last.startswith("x_") and last[2:] in names):
        return True
    return len(parts) >= 2 and f"{parts[-2]}_{last}" in names


def is_tenant_key(key: str, names: frozenset[str]) -> bool:
    """Whether an attribute or argument name holds a tenant id.

    The last dotted segment decides (``app.tenant_id``, ``orgId``, a captured header
    ``http.request.header.x-tenant-id``), or the last two joined
    (``enduser.tenant.id`` -> ``tenant_id``); cloud/infrastructure namespaces
    (``cloud.account.id``) are not tenants of the platform.
    """
    return _key_matches(key, names)


#: a letter or a digit: text without one (``?``, ``***``, ``-``) is no identifier but a
#: sanitizer's mark (contrib's Elasticsearch instrumentation writes every value of a
#: request body as ``?``)
_ALNUM = re.compile(r"[^\W_]").search


def _is_raw(value: Any) -> bool:
    """An identifier value (text holding a letter or digit) that is not an opaque tag."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, str):
        return _ALNUM(value) is not None and not is_opaque_tag(value) and value not in PLACEHOLDERS
    if isinstance(value, (int, float)):
        return True
    if isinstance(value, (list, tuple)):
        return any(_is_raw(v) for v in value)
    if isinstance(value, dict):
        return any(_is_raw(v) for v in value.values())
    return False


def scalars(value: Any) -> Iterator[str]:
    """Every scalar inside ``value`` as text (iterative: decoded JSON may nest deeply)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, (list, tuple)):
            stack.extend(reversed(v))
        elif isinstance(v, dict):
            stack.extend(reversed(list(v.values())))
        elif v is not None and not isinstance(v, bool):
            yield str(v)
            if isinstance(v, float) and v.is_integer() and abs(v) < 1e16:
                yield str(int(v))  # 12345.0 is tenant 12345 in a URL or a log line


_BASE64_RE = re.compile(r"(?:[A-Za-z0-9+/]{4})+(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def _from_base64(text: str) -> str | None:
    """The printable UTF-8 text that ``text`` is the base64 of, else None."""
    if len(text) < 8 or len(text) > 4096 or not _BASE64_RE.fullmatch(text):
        return None
    try:
        decoded = base64.b64decode(text, validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded if decoded.isprintable() and decoded.strip() else None


def parse_baggage(header: str) -> list[tuple[str, str]]:
    """W3C baggage members ``k=v;props`` as (key, value) pairs; malformed members skipped."""
    out = []
    for member in header.split(","):
        kv = member.split(";", 1)[0]
        if "=" not in kv:
            continue
        k, v = kv.split("=", 1)
        out.append((k.strip(), v.strip()))
    return out


def _opaque(value: Any) -> bool:
    return isinstance(value, str) and (value in _OPAQUE_SEEN or _remember_opaque(value))


def _is_baggage_header(key: str) -> bool:
    return key.rsplit(".", 1)[-1].lower() == "baggage"


@dataclass(frozen=True, slots=True)
class RawValue:
    """One raw tenant identifier found in telemetry (``value`` must never be printed)."""

    where: str  # "attribute", "resource attribute", "event 'x' attribute", "link attribute"
    key: str  # attribute name, or "baggage member <key>"
    value: Any


_PLAIN, _MEMBER, _HEADER, _TENANT, _TAG_MEMBER, _PARAMETERS, _ROUTE = 0, 1, 2, 3, 4, 5, 6
#: a query's parameters recorded beside its text: node-postgres' instrumentation writes
#: them as an array with enhancedDatabaseReporting (``$1`` the first), contrib's DB-API
#: ones as ``str()`` of the tuple or dict passed with capture_parameters (``?``, ``%s`` in
#: order; ``:name``, ``%(name)s`` by name); never plain, so that the span is looked into
#: (:func:`_scan_parameters`, from scan_attributes)
PARAMETER_KEYS = frozenset({"db.postgresql.values", "db.statement.parameters"})
#: the stable conventions' parameters, one attribute each: ``db.query.parameter.0`` (the
#: first of those referenced by place, 0-based) or ``db.query.parameter.<name>``
PARAMETER_PREFIX = "db.query.parameter."


def _classify(key: str, names: frozenset[str]) -> int:
    if key.startswith("baggage."):
        return _TAG_MEMBER if key[len("baggage."):] == attributes.BAGGAGE_KEY else _MEMBER
    if _is_baggage_header(key):
        return _HEADER
    if key == attributes.TENANT_INBOUND:  # the flowmap.tenant baggage member, as received
        return _TENANT
    return _TENANT if _key_matches(key, names) else _PLAIN


# names -> {attribute name: class}: one dict hit per attribute on the hot path
_CLASS_CACHE: dict[frozenset[str], dict[str, int]] = {}
_CLASS_CACHE_MAX = 100_000
# the same for the dotted paths of keys inside map values (apart: a path cached there
# must not keep the same top-level name from being learned as quiet)
_NESTED_CLASS_CACHE: dict[frozenset[str], dict[str, int]] = {}
# names -> attribute names seen and known to be plain (no tenant id, no baggage), plus
# flowmap.tenant: a span whose keys are all in it needs only its tag checked. Names other
# rules read (flowmap.redacted, flowmap.baggage.sent) are never added, so the same one
# subset test tells the rules that a span has nothing for any attribute rule.
_QUIET: dict[frozenset[str], set[str]] = {}
NEVER_QUIET = attributes.RULE_FLAGS  # never hits in scan_attributes: the rules read them instead


_OPAQUE_SEEN: set[str] = set()


def _remember_opaque(value: Any) -> bool:
    if is_opaque_tag(value):
        if len(_OPAQUE_SEEN) < 100_000:
            _OPAQUE_SEEN.add(value)
        return True
    return False


def quiet_keys(names: frozenset[str]) -> set[str]:
    """The live set of attribute names known to need no attribute rule (see ``is_quiet``)."""
    quiet = _QUIET.get(names)
    if quiet is None:
        quiet = _QUIET[names] = {attributes.TENANT}
        learn_names(names)
    return quiet


def known_opaque_tags() -> set[str]:
    """The live set of flowmap.tenant values already checked to be opaque tags."""
    return _OPAQUE_SEEN


def is_quiet(attrs: dict[str, Any], quiet: set[str]) -> bool:
    """True when ``attrs`` holds no raw tenant id, baggage, redaction mark or baggage flag:
    every name already seen to be plain, no value holding names of its own (see
    :func:`holds_names`), and flowmap.tenant (if any) a known opaque tag.
    False means "look closer" (:func:`scan_attributes`), not "found something"."""
    if not quiet.issuperset(attrs):
        return False
    tag = attrs.get(attributes.TENANT)
    return (tag is None or (tag.__class__ is str and tag in _OPAQUE_SEEN)) and not holds_names(attrs)


_SCALAR_TYPES = frozenset({str, int, float, bool, type(None), bytes})
NESTED_DEPTH = 8  # maps (and arrays) looked into below an attribute: hostile input nests deeply
_NESTED_NODES = 1_000  # values looked at below one attribute
_QUERY_PARAMS = 100  # parameters looked at in one URL's query
# JSON Schema's keywords of a property's description: ``{"tenant_id": {"type": "string"}}``
# in a tool's parameters names a tenant argument and holds no tenant (its keys are looked at)
_SCHEMA_KEYS = frozenset({"type", "$ref", "anyOf", "oneOf", "allOf"})


def _nests(value: Any) -> bool:
    """Whether ``value`` is a map, or an array holding one or JSON text (at most
    :data:`NESTED_DEPTH` arrays deep; deeper counts as holding one, so that it is
    looked into)."""
    stack = [(value, 0)]
    seen = 0
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            return True
        if isinstance(v, (list, tuple)):
            seen += len(v)
            if depth >= NESTED_DEPTH or seen > _NESTED_NODES:
                return True
            for x in v:
                if x.__class__ is str:
                    if is_json_text(x):
                        return True
                elif x.__class__ not in _SCALAR_TYPES:
                    stack.append((x, depth + 1))
    return False


def holds_names(attrs: dict[str, Any]) -> bool:
    """Whether an attribute value holds names of its own, judged like attribute names,
    so that names alone cannot clear ``attrs``: a map (an OTLP ``kvlistValue``, which
    OTLP allows though OpenTelemetry Python cannot write one) or an array holding maps,
    JSON text of an object or array (also in an array), a URL attribute
    (:data:`~flowmap.conventions.URL_KEYS`) with a query parameter, query or filter
    text (:func:`~flowmap.conventions.holds_query_text`) with a quoted literal, a
    cache's command text with a key of segments (:func:`keyed`), or a URL's path, a
    route or a destination's name (:data:`~flowmap.conventions.NAMING_KEYS`) holding a
    word a tenant name starts with (:func:`may_name_in_words`)."""
    return bool(_inner_keys(attrs, first=True))


def keyed(attrs: dict[str, Any]) -> bool:
    """Whether ``attrs`` are a cache's span (``db.system`` redis, memcached…), whose command
    text (``db.statement``) holds the keys it read or wrote, which name what they hold:
    ``tenant:acme:cart`` (:func:`_scan_keys`)."""
    return any([is_cache_system(attrs.get(k)) for k in SYSTEM_KEYS])


def _inner_keys(attrs: dict[str, Any], first: bool = False) -> list[str]:
    """The names of the values that hold names of their own (see :func:`holds_names`);
    only the first one when ``first``."""
    out = []
    cache = None  # whether attrs are a cache's span: looked up once a command text has a key
    for key, value in attrs.items():
        cls = value.__class__
        if cls is str:
            if not (
                (value[:1] in JSON_HEADS and is_json_text(value)) or ("=" in value and key in URL_KEYS)
                or (key in NAMING_KEYS and may_name_in_words(value))
                or (holds_query_text(key) and (
                    has_quote(value)
                    or (holds_key_text(value) and (cache if cache is not None else (cache := keyed(attrs))))
                ))
            ):
                continue
        elif cls in _SCALAR_TYPES or not _nests(value):
            continue
        out.append(key)
        if first:
            break
    return out


def scan_attributes(attrs: dict[str, Any], where: str, names: frozenset[str]) -> list[RawValue]:
    """Raw tenant identifiers in one attribute map."""
    quiet = quiet_keys(names)
    out: list[RawValue] = []
    if quiet.issuperset(attrs) or (
        not NEVER_QUIET.isdisjoint(attrs) and quiet.issuperset(attrs.keys() - NEVER_QUIET)
    ):
        tag = attrs.get(attributes.TENANT)
        if tag is None or (tag.__class__ is str and tag in _OPAQUE_SEEN):
            # every name plain (is_quiet; the flags the rules read hold no id either): only
            # values holding names of their own can hold a raw id, and only they are
            # looked at (a message's JSON among a dozen names)
            inner = _inner_keys(attrs)
            cache = bool(inner) and keyed(attrs)
            for key in inner:
                _scan_inner(key, attrs[key], where, names, out, cache, attrs)
            if inner and not NAMING_KEYS.isdisjoint(inner):
                _scan_named(attrs, where, names, out)
            return out
    cache = _CLASS_CACHE.get(names)
    if cache is None:
        cache = _CLASS_CACHE[names] = {}
    keys = keyed(attrs)
    parameters = False  # a query's parameters read (once a span, whichever way recorded)
    for key in attrs:
        cls = cache.get(key)
        if cls is None:
            # (a top-level name only; a routing key is never quiet: its words are read)
            cls = (
                _PARAMETERS if key in PARAMETER_KEYS or key.startswith(PARAMETER_PREFIX)
                else _ROUTE if key in ROUTING_KEYS else _classify(key, names)
            )
            if len(cache) < _CLASS_CACHE_MAX:
                cache[key] = cls
                if not cls and key not in NEVER_QUIET:
                    quiet.add(key)
        value = attrs[key]
        if cls:  # (a plain name, the common case, tested once)
            if cls == _PARAMETERS:
                if not parameters:
                    parameters = True
                    _scan_parameters(attrs, where, names, out)
                if value.__class__ is str:  # a dict's keys name its values: {'tenant_id': 'acme'}
                    inner: list[RawValue] = []
                    _scan_inner(key, value, where, names, inner)
                    out.extend([h for h in inner if h not in out])  # (once, if compared too)
                continue
            if cls == _ROUTE:
                if value.__class__ is str:
                    _scan_route(key, value, where, names, out)
                continue
            _judge(cls, key, key, value, where, out)
            if cls == _HEADER and value.__class__ not in _SCALAR_TYPES:
                _scan_inner(key, value, where, names, out)  # a map of baggage headers
        else:
            _scan_inner(key, value, where, names, out, keys, attrs)
    if not NAMING_KEYS.isdisjoint(attrs):
        _scan_named(attrs, where, names, out)
    return out


def _scan_inner(
    key: str, value: Any, where: str, names: frozenset[str], out: list[RawValue], cache: bool = False,
    attrs: dict[str, Any] | None = None,
) -> None:
    """Raw tenant ids under the names inside a value: a map's keys are names too (a
    baggage header's: its members), and so are the keys of JSON text, a URL's query
    parameters, the names query or filter text compares with literals (read in the dialect
    of the database system ``attrs`` names) and (``cache``: a cache's span) the names in
    the keys of its command text."""
    if value.__class__ is str:
        if "=" in value and key in URL_KEYS:
            _scan_query(key, value, where, names, out)
        if not is_json_text(value):
            if holds_query_text(key):
                if has_quote(value):
                    _scan_comparisons(key, value, where, names, out, _SQL_TOKENS if attrs is None else _sql_tokens(attrs))
                if cache and holds_key_text(value):
                    _scan_keys(key, value, where, names, out)
            return
    elif value.__class__ in _SCALAR_TYPES or not _nests(value):
        return
    nested = _NESTED_CLASS_CACHE.get(names)
    if nested is None:
        nested = _NESTED_CLASS_CACHE[names] = {}
    _scan_nested(key, value, where, names, nested, out)


def _judge(cls: int, key: str, shown: str, value: Any, where: str, out: list[RawValue]) -> None:
    """The raw tenant ids in one attribute (or nested key: its dotted path ``key``, with
    ``[]`` for arrays in ``shown``) whose name is of class ``cls``, added to ``out``."""
    if cls == _MEMBER or cls == _TAG_MEMBER:
        if _is_raw(value) and (cls == _MEMBER or not _opaque(value)):
            out.append(RawValue(where, f"baggage member {key[len('baggage.'):]}", value))
    elif cls == _HEADER:
        for header in scalars(value):
            for member, mvalue in parse_baggage(header):
                # flowmap.tenant may travel, as the opaque tag only (the contract)
                if _is_raw(mvalue) and (member != attributes.BAGGAGE_KEY or not _opaque(mvalue)):
                    out.append(RawValue(where, f"baggage member {member}", mvalue))
                    # W3C baggage values are percent-encoded: the id as written elsewhere
                    # ("Acme Corp" for "Acme%20Corp") is masked too
                    plain = unquote(mvalue)
                    if plain != mvalue and _is_raw(plain):
                        out.append(RawValue(where, f"baggage member {member}", plain))
    elif (key == attributes.TENANT or key == attributes.TENANT_INBOUND) and _opaque(value):
        return  # the expected case, on nearly every span
    elif _is_raw(value):
        out.append(RawValue(where, shown, value))


def _scan_nested(
    key: str, value: Any, where: str, names: frozenset[str], cache: dict[str, int], out: list[RawValue]
) -> None:
    """Raw tenant ids under the keys of maps, and of JSON text, inside a plain attribute's value.

    A nested key is judged as the flattened attribute name it stands for (its dotted
    path: ``request`` = ``{tenant_id: …}`` as ``request.tenant_id``, ``enduser`` =
    ``{tenant: {id: …}}`` as ``enduser.tenant.id``), arrays passed through; a key of an
    infrastructure namespace (``cloud``, ``k8s.…``) starts the path afresh, so that
    ``{cloud: {account: {id: …}}}`` anywhere is the cloud account it is at the top.
    JSON text (the value itself, or a string inside, as frameworks encode twice) is
    looked into the same way, shown with an arrow: ``body → workspace_id``. Looked into
    :data:`NESTED_DEPTH` levels deep and at :data:`_NESTED_NODES` values (a JSON text
    counts as one) at most (hostile input).
    """
    # (path judged, path shown, whether ``shown`` ends at JSON text, value, depth)
    stack: list[tuple[str, str, bool, Any, int]] = [(key, key, False, value, 0)]
    budget = _NESTED_NODES  # values left to look at
    while stack and budget > 0:
        path, shown, text, v, depth = stack.pop()
        if v.__class__ is str:  # JSON text: parsed only when a tenant name may be in it
            budget -= 1
            # query or filter text that is no literal ({tenant_id: "acme"}) is read for comparisons
            query = not depth and holds_query_text(key) and _has_word(v.lower(), names)
            if not (query or may_name_tenant(v, names) or _has_word(path.lower(), names)):
                continue
            parsed = literal_value(v)
            if parsed is None:
                if query:
                    _scan_comparisons(shown, v, where, names, out)
                continue
            v, text = parsed, True
        inner: list[tuple[str, str, bool, Any, int]] = []  # what to look into next, in order
        if isinstance(v, (list, tuple)):
            part = v[:budget]
            budget -= len(part)
            shown += " → []" if text else "[]"
            inner = [
                (path, shown, False, x, depth + 1) for x in part
                if x.__class__ not in _SCALAR_TYPES or (x.__class__ is str and is_json_text(x))
            ]
        elif isinstance(v, dict):
            sep = " → " if text else "."
            for k, x in itertools.islice(v.items(), budget):
                budget -= 1
                k = str(k)
                sub = k if (k.lower() + ".").startswith(_INFRA_PREFIXES) else f"{path}.{k}"
                sub_shown = f"{shown}{sep}{k}"
                cls = cache.get(sub)
                if cls is None:
                    cls = _classify(sub, names)
                    if len(cache) < _CLASS_CACHE_MAX:
                        cache[sub] = cls
                if cls == _TENANT and x.__class__ is dict and not _SCHEMA_KEYS.isdisjoint(x):
                    cls = _PLAIN  # a schema describing the name (a tool's parameters): no value
                if cls:
                    _judge(cls, sub, sub_shown, x, where, out)
                if (not cls and x.__class__ is str and is_json_text(x)) or (
                    (not cls or cls == _HEADER) and x.__class__ not in _SCALAR_TYPES
                ):
                    inner.append((sub, sub_shown, False, x, depth + 1))
            condition = _field_condition(v, names)
            if condition is not None:
                field, matched = condition
                _judge(_TENANT, f"{path}.{field}", f"{shown}{sep}{field}", matched, where, out)
        if depth + 1 < NESTED_DEPTH:
            stack.extend(reversed(inner))


_MATCHES = ("value", "any", "except")  # what a qdrant condition's match holds the values under


def _field_condition(v: dict[Any, Any], names: frozenset[str]) -> tuple[str, list[Any]] | None:
    """A filter condition that names its field as a value: qdrant's ``{"key": "tenant_id",
    "match": {"value": "acme"}}`` (``any``, ``except``: lists), whose values are the
    tenant's when the field is a tenant name; its (field, values), else None."""
    field, match = v.get("key"), v.get("match")
    if field.__class__ is not str or match.__class__ is not dict or not is_tenant_key(field, names):
        return None
    return field, [match[k] for k in _MATCHES if k in match]


def _scan_query(key: str, url: str, where: str, names: frozenset[str], out: list[RawValue]) -> None:
    """Raw tenant ids in the query of a URL attribute (``url.query`` is the query alone,
    the others hold it after a ``?``): a parameter's name is judged like an attribute
    name (``filter[org_id]`` as ``filter.org_id``), its value read percent-decoded and
    flagged as written too, and shown as ``url.query → tenant_id``. At most
    :data:`_QUERY_PARAMS` parameters (hostile input)."""
    if key != "url.query":
        url = url.partition("?")[2]
    query = url.partition("#")[0].removeprefix("?")  # (a url.query written with its "?")
    for param in query.split("&", _QUERY_PARAMS)[:_QUERY_PARAMS]:
        name, eq, value = param.partition("=")
        if not eq:
            continue
        name = unquote_plus(name).strip()
        if not is_tenant_key(name.replace("]", "").replace("[", "."), names):
            continue
        plain = unquote_plus(value)
        if _is_raw(plain):  # (an opaque tag is not)
            out.append(RawValue(where, f"{key} → {name}", plain))
            if value != plain:  # (the masker finds the usual encodings of the plain one anyway)
                out.append(RawValue(where, f"{key} → {name}", value))


_QUERY_LITERALS = 16  # comparisons taken from one query or filter text (hostile input)
# a quoted literal, its text; SQL writes a quote inside one doubled ('O''Brien'): read
# whole (else its first part, 'O', would be taken for the id and masked as a word)
_LIT = r"(?:'(?P<v1>(?:[^'\n]|''){0,256})'|\"(?P<v2>[^\"\n]{0,256})\")"
_ITEM = r"(?:'(?:[^'\n]|''){0,256}'|\"[^\"\n]{0,256}\")"  # the same, in a list
_LITERAL = re.compile(_LIT)
# a name's qualifiers (``t.``, ```db`.`t`.``, ``"s".``) before a column named after the operator
_QUALIFIER = r"(?:[\"`\[]?[\w$]{1,64}[\"`\]]?\.){0,2}"
# quoted placeholders of a statement written as a template, not ids: ? %s %(t)s $1 :t @t
# {t} ${t} #{t} (MyBatis) {{ t.id }} (Jinja, dbt, Mustache) <t>
_TEMPLATE = re.compile(r"\?|%s|%\(\w+\)s|[$:@]\w+|[$#]?\{\w*\}|\{\{\s*[\w.]*\s*\}\}|<\w+>")


_ITEMS = _ITEM + r"(?:\s*,\s*" + _ITEM + r"){0,63}"  # a list's literals


def _spelled(names: frozenset[str]) -> str:
    """The pattern of any of ``names`` as query text writes it (matched in any case): as
    written, or without its ``_`` (``tenantId``)."""
    return "|".join(map(re.escape, sorted({s for n in names if n for s in (n, n.replace("_", ""))},
                                          key=len, reverse=True)))


def _compared(names: frozenset[str]) -> str:
    """The pattern of a tenant name compared with something, up to its operator: named
    (:func:`_spelled`), qualified (``t.tenant_id``), quoted (``"tenant_id"``) or cast
    (``tenant_id::text``)."""
    return r"(?<![\w$])[\"'`\[]?(?P<name>" + _spelled(names) + r")[\"'`\]]?(?:::\w+)?\s*"


@functools.lru_cache(maxsize=16)
def _comparisons(names: frozenset[str]) -> re.Pattern[str]:
    """One pattern for ``<name> <comparison> <quoted literal>`` with any of ``names`` (in
    any case, also without its ``_``: ``tenantId``; qualified ``t.tenant_id`` or quoted
    ``"tenant_id"``; a cast ``tenant_id::text``): ``=``, ``==``, ``!=``, ``<>``, ``:``
    (a filter's ``tenant_id: "acme"``, a Python dict's ``'tenant_id': 'acme'``),
    ``LIKE`` / ``ILIKE`` a pattern, and ``IN`` a list of literals only (not a subquery,
    whose literals are other columns'). Also a condition naming its field as a literal,
    qdrant's ``FieldCondition(key='tenant_id', match=MatchValue(value='acme'))`` as
    ``str()`` writes it (OpenLIT records a scroll's filter so), or as a dict
    (``{'key': 'tenant_id', 'match': {'any': ['a', 'b']}}``)."""
    return re.compile(
        _compared(names)
        + r"(?:(?:==?|!=|<>|:|(?P<like>(?:not\s+)?i?like\b))\s*" + _LIT
        + r"|(?:not\s+)?in\s*\(\s*(?P<list>" + _ITEMS + r")\s*\))"
        r"|(?<![\w$])[\"']?key[\"']?\s*[=:]\s*[\"'](?P<field>" + _spelled(names) + r")[\"']\s*,\s*[\"']?match[\"']?\s*[=:]\s*"
        r"(?:Match\w{0,16}\(|\{)\s*[\"']?(?:value|any|except_?)[\"']?\s*[=:]\s*"
        r"(?:(?P<one>" + _ITEM + r")|\[\s*(?P<items>" + _ITEMS + r")\s*\])",
        re.IGNORECASE,
    )


def _literals(m: re.Match[str], text: str, tokens: re.Pattern[str]) -> list[str]:
    """The literal values one comparison names (a list's, or its one), each read from its
    opening quote by the dialect's lexer ``tokens`` (:func:`_literal_at`)."""
    if m["name"] is not None and m["list"] is None:
        starts = [m.start("v1" if m["v1"] is not None else "v2") - 1]
    else:
        group = "list" if m["name"] is not None else "one" if m["one"] is not None else "items"
        starts = [m.start(group) + x.start() for x in _LITERAL.finditer(m[group])]
    return [v for v in (_literal_at(text, at, tokens) for at in starts) if v is not None]


_LITERAL_LONGEST = 258  # a literal's length (quotes included) read as an id at most, as _LIT's
# what a backslash before a character in a MySQL literal stands for (else the character itself)
_MYSQL_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a", "%": "\\%", "_": "\\_"}
_MYSQL_ESCAPED = re.compile(r"\\([\s\S])|''|\"\"")


def _literal_at(text: str, at: int, tokens: re.Pattern[str]) -> str | None:
    """The value of the quoted literal whose opening quote is at ``at``, as the dialect's
    lexer ``tokens`` reads it: in MySQL's a backslash escapes a quote (``'it\\'s'``), in
    standard SQL it is a character; None when the lexer reads no closed literal there of
    at most :data:`_LITERAL_LONGEST` characters (text a regex took for one)."""
    m = tokens.match(text, at)
    if m is None:
        return None
    token = m.group()
    quote = token[:1]
    if quote not in ("'", '"') or not 2 <= len(token) <= _LITERAL_LONGEST or token[-1] != quote:
        return None
    return _unquoted(token, tokens)


def _unquoted(token: str, tokens: re.Pattern[str]) -> str:
    """A quoted literal's value as the dialect reads it: a doubled quote is one, and in
    MySQL's a backslash escapes the next character."""
    body, quote = token[1:-1], token[0]
    if tokens is _MYSQL_TOKENS:
        return _MYSQL_ESCAPED.sub(lambda e: _MYSQL_ESCAPES.get(e[1], e[1]) if e[1] else e[0][:1 + (e[0][0] != quote)], body)
    return body.replace("''", "'") if quote == "'" else body


def _scan_comparisons(
    shown: str, text: str, where: str, names: frozenset[str], out: list[RawValue], tokens: re.Pattern[str] | None = None
) -> None:
    """Raw tenant ids written as literals in query or filter text, which instrumentations
    record as the app built it: ``tenant_id = 'acme'`` (SQL), ``tenant_id == "acme"``
    (Milvus), ``tenant_id IN ('a', 'b')``, ``'acme' = t.tenant_id``; each judged as the
    value of its name (an opaque tag is none) and named ``db.statement → tenant_id``. A
    parameter (``= $1``, ``= ?``, a quoted ``'%s'``) or another column is no literal.
    Literals are read with the dialect's lexer ``tokens`` (:func:`_sql_tokens`; standard
    SQL's when None). A JSON path naming a tenant is a name too (:func:`_scan_json`). At
    most :data:`_QUERY_LITERALS` comparisons each way (one pass of one cached pattern
    each: linear)."""
    low = text.lower()
    if not _has_word(low, names):
        return
    tokens = _SQL_TOKENS if tokens is None else tokens
    for m in itertools.islice(_comparisons(names).finditer(text), _QUERY_LITERALS):
        name = normalize_key(m["name"] or m["field"])
        for value in _literals(m, text, tokens):
            _judge_literal(shown, name, value, m["like"] is not None, where, out)
    if _JSON_MARKS(low):
        _scan_json(shown, text, where, names, out, tokens)
    reversed_ = _reversed_comparisons(names)
    if reversed_.search(text) is None:  # (the common case: one quick search, nothing built)
        return
    ends = {m.start(): normalize_key(m["name"]) for m in itertools.islice(reversed_.finditer(text), _QUERY_LITERALS)}
    for name, value in _literals_before(text, ends, tokens):
        _judge_literal(shown, name, value, False, where, out)


def _judge_literal(shown: str, name: str, value: str, like: bool, where: str, out: list[RawValue]) -> None:
    """A literal compared with tenant name ``name``: a raw id unless a template's
    placeholder or an opaque tag (a LIKE pattern without its wildcards)."""
    if _TEMPLATE.fullmatch(value):
        return
    if like:
        value = value.strip("%")  # the pattern's wildcards around the id
    if _is_raw(value):
        out.append(RawValue(where, f"{shown} → {name}", value))


@functools.lru_cache(maxsize=16)
def _reversed_comparisons(names: frozenset[str]) -> re.Pattern[str]:
    """A literal's closing quote compared with a tenant name after it: ``'acme' =
    t.tenant_id`` (single-quoted only: ``"x" = tenant_id`` is a column in PostgreSQL)."""
    return re.compile(
        r"'\s*(?:==?|!=|<>)\s*" + _QUALIFIER + r"[\"`\[]?(?P<name>" + _spelled(names) + r")(?![\w$])", re.IGNORECASE
    )


def _literals_before(text: str, ends: dict[int, str], tokens: re.Pattern[str]) -> list[tuple[str, str]]:
    """(tenant name, value) of each single-quoted literal of ``text`` whose closing quote is
    at one of the offsets ``ends`` (-> the name compared with it), found by reading the
    text's literals, comments and quoted names from its start with the dialect's lexer
    ``tokens`` (one pass, stopped past the last one)."""
    found: list[tuple[str, str]] = []
    last = max(ends)
    for m in tokens.finditer(text):
        if m.start() > last:
            break
        close = m.end() - 1
        if close in ends and text[close] == "'":
            token = m.group()
            if token[:1] == "'" or token[:2].lower() == "e'":
                found.append((ends[close], _unquoted(token[token.index("'"):], tokens)))
    return found


_STATEMENTS = ("db.query.text", "db.statement")  # a database query's text, stable name first
# a parameter's placeholder: PostgreSQL's numbered $1, SQLite's ?1; ?, %s (psycopg also
# %b, %t) by place; %(name)s, :name, @name, $name by name
_PLACEHOLDER = (
    r"\$\d{1,4}(?!\d)|\?\d{0,4}(?!\d)|%\(\w{1,64}\)[sbt]|%[sbt]|(?<![\w:@$])[:@$][A-Za-z_]\w{0,63}(?!\w)"
)
_PLACEHOLDER_RE = re.compile(_PLACEHOLDER)
# what a statement's text holds besides placeholders, skipped whole (each, unclosed, runs
# to the end: one pass over hostile text): a literal ('' a quote inside; PostgreSQL's
# E'it\'s' and dollar-quoted $$…$$ / $tag$…$tag$ too), a quoted name ("x", `x`), a
# comment, a cast's ::, a system variable's @@
_SKIPPED = (
    r"(?<![\w$])[eE]'(?:[^'\\]|\\[\s\S]|'')*+(?:'|\Z)|'(?:[^']|'')*+(?:'|\Z)|\"[^\"]*+(?:\"|\Z)|`[^`]*+(?:`|\Z)"
    r"|(?<![\w$])\$(?P<tag>(?:[A-Za-z_]\w{0,63})?)\$(?:[^$]|\$(?!(?P=tag)\$))*+(?:\$(?P=tag)\$|\Z)"
    r"|--[^\n]*+|/\*(?:[^*]|\*(?!/))*+(?:\*/|\Z)|::|@@"
)
# MySQL's and MariaDB's: a backslash escapes the next character in a literal ('it\'s ?'),
# in "…" too (a literal there), a backquoted name doubles its ` inside, # starts a comment
_MYSQL_SKIPPED = (
    r"'(?:[^'\\]|\\[\s\S]|'')*+(?:'|\Z)|\"(?:[^\"\\]|\\[\s\S]|\"\")*+(?:\"|\Z)|`(?:[^`]|``)*+(?:`|\Z)"
    r"|--[^\n]*+|#[^\n]*+|/\*(?:[^*]|\*(?!/))*+(?:\*/|\Z)|@@"
)
_SQL_TOKENS = re.compile(_SKIPPED + r"|(?P<p>" + _PLACEHOLDER + r")")
_MYSQL_TOKENS = re.compile(_MYSQL_SKIPPED + r"|(?P<p>" + _PLACEHOLDER + r")")
# the same, with the ( , ) of a VALUES list's rows (a token each: read only there)
_SQL_ROWS = re.compile(_SKIPPED + r"|(?P<s>[(),])|(?P<p>" + _PLACEHOLDER + r")")
_MYSQL_ROWS = re.compile(_MYSQL_SKIPPED + r"|(?P<s>[(),])|(?P<p>" + _PLACEHOLDER + r")")
_ROWS = {_SQL_TOKENS: _SQL_ROWS, _MYSQL_TOKENS: _MYSQL_ROWS}
_MYSQL_SYSTEMS = frozenset({"mysql", "mariadb"})  # db.system's, db.system.name's


def _sql_tokens(attrs: dict[str, Any]) -> re.Pattern[str]:
    """The lexer of the statement's dialect, as its span's database system names it (a
    backslash in a literal escapes a quote in MySQL's and MariaDB's only)."""
    mysql = any([v.__class__ is str and v.lower() in _MYSQL_SYSTEMS for v in map(attrs.get, SYSTEM_KEYS)])
    return _MYSQL_TOKENS if mysql else _SQL_TOKENS


# the format style's placeholders (psycopg, pymysql), which the driver replaces wherever
# they are, in a literal or a comment too; %% is a % (one pass)
_FORMAT_TOKENS = re.compile(r"%%|(?P<p>%\(\w{1,64}\)[sbt]|%[sbt])")


@functools.lru_cache(maxsize=16)
def _parameter_comparisons(names: frozenset[str]) -> re.Pattern[str]:
    """One pattern for a tenant name compared with a parameter's placeholder: ``tenant_id =
    $1`` (``?``, ``%s``, ``:tenant``…; ``!=``, ``<>``, ``LIKE``), ``tenant_id IN ($1, $2)``,
    ``tenant_id = ANY($1)`` (an array's elements), ``tenant_id IN %s`` (a tuple's, as
    psycopg passes one)."""
    return re.compile(
        _compared(names) + r"(?:(?:==?|!=|<>|(?P<like>(?:not\s+)?i?like\b))\s*(?P<one>" + _PLACEHOLDER + r")"
        r"|(?:not\s+)?in\s*\(\s*(?P<list>(?:" + _PLACEHOLDER + r")(?:\s*,\s*(?:" + _PLACEHOLDER + r")){0,63})\s*\)"
        r"|(?:==?|!=|<>)\s*(?:any|all)\s*\(\s*(?P<array>" + _PLACEHOLDER + r")\s*\)"
        r"|(?:not\s+)?in\s+(?P<seq>" + _PLACEHOLDER + r"))",
        re.IGNORECASE,
    )


@functools.lru_cache(maxsize=16)
def _reversed_parameters(names: frozenset[str]) -> re.Pattern[str]:
    """A placeholder-like word compared with a tenant name after it: ``%s = t.tenant_id``
    (a pattern of its own that starts with one of a few characters, which the engine
    skips to: the text is read several times faster than with it among the others; the
    word is checked to be a placeholder after)."""
    return re.compile(
        r"(?P<p>[$?%:@][\w()]{0,70})\s*(?:==?|!=|<>)\s*" + _QUALIFIER
        + r"[\"`\[]?(?P<name>" + _spelled(names) + r")(?![\w$])",
        re.IGNORECASE,
    )


def _reversed(text: str, names: frozenset[str]) -> list[tuple[str, int, str]]:
    """(tenant name, offset of the placeholder, ``one``) of each comparison of
    :func:`_reversed_parameters` (at most :data:`_QUERY_LITERALS`)."""
    found: list[tuple[str, int, str]] = []
    for m in itertools.islice(_reversed_parameters(names).finditer(text), _QUERY_LITERALS):
        p = _PLACEHOLDER_RE.match(text, m.start())
        if p is not None and p.end() == m.end("p"):
            found.append((normalize_key(m["name"]), m.start(), "one"))
    return found


# JSON in query text: a vector store's or memory layer's metadata column holds the tenant,
# filtered with JSON operators (only text holding one of these is read for them)
_JSON_MARKS = re.compile(r"->|#>|@>|json").search  # (of the lower-case text)
_JSON_COLUMN = r"[^,()'\"]{1,128}"  # a JSON function's first argument: the column
_JSON_ARG = r"(?:'[^'\n]{1,256}'|" + _PLACEHOLDER + r")"  # a JSON path or key: a literal or a parameter
_JSON_TEXT = r"'(?P<{}>(?:[^'\n]|''){{0,1024}})'"  # a JSON document or value written as a literal
# ``<accessor> <comparison>``: the accessor names a JSON path (PostgreSQL's ``m->'a'->>'b'``
# and ``m #>> '{a,b}'``, MySQL's and SQLite's ``m->>'$.a.b'``; ``JSON_EXTRACT(m, '$.a')``,
# in ``JSON_UNQUOTE(…)`` too, ``JSON_VALUE``, PostgreSQL's ``jsonb_extract_path_text(m,
# 'a', 'b')``; SQLAlchemy's, the path a parameter, in parentheses, MySQL's in ``CASE … END``),
# compared as :func:`_comparisons` compares a name, or with a placeholder
_JSON_COMPARISONS = (
    r"(?P<name>(?:(?:->>?|#>>?)\s*" + _JSON_ARG + r"\s*(?:::\w+\s*)?){1,8}"
    r"|jsonb?_(?:extract|value|extract_path|extract_path_text)\s*\(\s*" + _JSON_COLUMN
    + r"(?:,\s*" + _JSON_ARG + r"\s*){1,8}\))"
    r"(?:\s*\)){0,2}(?:\s*end\b)?\s*(?:::\w+\s*)?(?:(?:==?|!=|<>|(?P<like>(?:not\s+)?i?like\b))\s*(?:" + _LIT + r"|(?P<one>" + _PLACEHOLDER + r"))"
    r"|(?:not\s+)?in\s*\(\s*(?P<list>" + _ITEMS + r")\s*\))"
)
# a document the column must contain (PostgreSQL's ``m @> '{"tenant_id": "acme"}'``, MySQL's
# ``JSON_CONTAINS(m, '"acme"', '$.tenant_id')``), or a JSON path's condition with its
# variables (PostgreSQL's ``jsonb_path_match(m, '$.tenant_id == $v', '{"v": "acme"}')``)
_JSON_DOCUMENTS = (
    r"@>\s*(?:cast\s*\(\s*)?(?:" + _JSON_TEXT.format("doc") + r"|(?P<docp>" + _PLACEHOLDER + r"))"
    r"|json_contains\s*\(\s*" + _JSON_COLUMN + r",\s*(?:" + _JSON_TEXT.format("cand") + r"|(?P<candp>"
    + _PLACEHOLDER + r"))\s*(?:,\s*'(?P<cpath>[^'\n]{1,256})'\s*)?\)"
    r"|jsonb?_path_(?:match|exists)\w{0,4}\s*\(\s*" + _JSON_COLUMN + r",\s*(?:cast\s*\(\s*)?"
    r"(?:'(?P<expr>[^'\n]{1,512})'|(?P<exprp>" + _PLACEHOLDER + r"))"
    r"[^,()']{0,32}\)?\s*,\s*(?:cast\s*\(\s*)?(?:" + _JSON_TEXT.format("vars") + r"|(?P<varsp>" + _PLACEHOLDER + r"))"
)


@functools.cache
def _json_readers() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """:data:`_JSON_COMPARISONS` and :data:`_JSON_DOCUMENTS` compiled at their first use:
    compiling them takes ~10 ms, which every run paid at import though most read no JSON
    filter."""
    return re.compile(_JSON_COMPARISONS, re.IGNORECASE), re.compile(_JSON_DOCUMENTS, re.IGNORECASE)
_ACCESS_PART = re.compile(r"'(?P<key>[^'\n]*)'|(?P<p>" + _PLACEHOLDER + r")")  # an accessor's path or parameter
_PATH_KEY = re.compile(r"\"([^\"]*)\"|([^.\[\]\"\s]+)")  # a key of a JSON path, ``$.a."b c"[0]``
# a JSON path's condition comparing a path with a variable: ``$.tenant_id == $v``, ``$v == $.a.b``
_PATH_VARIABLE = re.compile(
    r"(?P<p>\$(?:\.(?:\"[^\"]{0,64}\"|\w{1,64})){1,8})\s*==\s*\$(?P<v>\w{1,64})"
    r"|\$(?P<w>\w{1,64})\s*==\s*(?P<q>\$(?:\.(?:\"[^\"]{0,64}\"|\w{1,64})){1,8})"
)


def _path_keys(path: str) -> list[str]:
    """The keys a JSON path or key names, outermost first: ``$.a.b`` (MySQL, SQLite,
    jsonpath), ``{a,b}`` (PostgreSQL's #>), a key (->); array indexes left out."""
    path = path.strip()
    if path[:1] == "$":
        keys = [q if q is not None else w for q, w in (m.groups() for m in _PATH_KEY.finditer(path[1:]))]
        return [k for k in keys if k and not k.isdigit() and k != "*"]
    if path[:1] == "{" and path[-1:] == "}":
        return [k.strip().strip('"') for k in path[1:-1].split(",")]
    return [path]


def _json_name(keys: list[str], names: frozenset[str]) -> str | None:
    """The tenant name a JSON path's keys end in (``tenant_id``; ``{tenant,id}`` as
    ``tenant_id``, as :func:`is_tenant_key` reads a dotted name), else None."""
    keys = [k for k in keys if k]
    if not keys or not is_tenant_key(".".join(keys), names):
        return None
    last = normalize_key(keys[-1])
    return last if len(keys) < 2 or is_tenant_key(keys[-1], names) else f"{normalize_key(keys[-2])}_{last}"


def _accessed(m: re.Match[str], names: frozenset[str]) -> str | None:
    """The tenant name the accessor of a :data:`_JSON_COMPARISONS` match names, if any
    (none when a parameter names a part of its path: :func:`_keys_of` reads it)."""
    parts = list(_ACCESS_PART.finditer(m["name"]))
    if any([p["p"] is not None for p in parts]):
        return None
    return _json_name([k for p in parts for k in _path_keys(p["key"])], names)


def _keys_of(value: Any) -> list[str]:
    """The keys a JSON path passed as a parameter names: its text (``$."tenant_id"``,
    ``{tenant, id}``, ``tenant_id``) or its keys as a list (``['tenant', 'id']``)."""
    if isinstance(value, (list, tuple)):
        return [str(k) for k in value]
    return _path_keys(value) if value.__class__ is str else []


def _path_variables(expr: str, names: frozenset[str]) -> list[tuple[str, str]]:
    """(tenant name, variable) of each variable a JSON path's condition compares with a
    path naming a tenant."""
    found = []
    for m in itertools.islice(_PATH_VARIABLE.finditer(expr), _QUERY_LITERALS):
        name = _json_name(_path_keys(m["p"] or m["q"]), names)
        if name is not None:
            found.append((name, m["v"] or m["w"]))
    return found


def _json_scalars(value: Any) -> list[Any]:
    """The values a JSON value written as text holds (``"acme"``, ``["a", "b"]``, ``7``);
    none when it is no JSON or a map."""
    if value.__class__ is str:
        if len(value) > 1024:
            return []
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return []
    return _scalars(value)


def _scalars(value: Any) -> list[Any]:
    """A decoded JSON value's scalars: itself, or an array's (a map is none)."""
    if isinstance(value, list):
        return [v for v in value if v.__class__ is not dict]
    return [] if isinstance(value, dict) else [value]


def _variable(document: Any, variable: str) -> list[Any]:
    """The value of ``variable`` in a JSON path's variables (a map, or JSON text of one)."""
    if document.__class__ is str:
        document = json_value(document)
    return _scalars(document[variable]) if isinstance(document, dict) and variable in document else []


def _scan_document(shown: str, document: Any, where: str, names: frozenset[str], out: list[RawValue]) -> None:
    """Raw tenant ids under the tenant keys of a JSON document a query passes (text or a
    map), named ``<shown> → tenant_id``."""
    nested = _NESTED_CLASS_CACHE.get(names)
    if nested is None:
        nested = _NESTED_CLASS_CACHE[names] = {}
    found: list[RawValue] = []
    _scan_nested(shown, document, where, names, nested, found)
    out.extend([h for h in found if h not in out])


def _scan_json(shown: str, text: str, where: str, names: frozenset[str], out: list[RawValue], tokens: re.Pattern[str]) -> None:
    """Raw tenant ids compared with a JSON path naming a tenant as literals
    (:data:`_JSON_COMPARISONS`), or in a JSON document or path variables
    (:data:`_JSON_DOCUMENTS`); literals read with the dialect's lexer ``tokens``; what
    the plain comparisons found already is not added twice. At most
    :data:`_QUERY_LITERALS` of each."""
    found: list[RawValue] = []
    comparisons, documents = _json_readers()
    for m in itertools.islice(comparisons.finditer(text), _QUERY_LITERALS):
        name = _accessed(m, names) if m["one"] is None else None
        if name is not None:
            for value in _literals(m, text, tokens):
                _judge_literal(shown, name, value, m["like"] is not None, where, found)
    for m in itertools.islice(documents.finditer(text), _QUERY_LITERALS):
        group = next((g for g in ("doc", "cand", "vars") if m[g] is not None), None)
        value = None if group is None else _literal_at(text, m.start(group) - 1, tokens)
        if value is None:
            continue
        for name, values in _document_values(m, value, names):
            for v in values:
                _judge_literal(shown, name, str(v), False, where, found)
        if group == "doc" or (group == "cand" and m["cpath"] is None):
            _scan_document(shown, value, where, names, found)
    out.extend([h for h in found if h not in out])


def _document_values(m: re.Match[str], value: Any, names: frozenset[str]) -> list[tuple[str, list[Any]]]:
    """(tenant name, the values compared with it) of a :data:`_JSON_DOCUMENTS` match whose
    candidate or variables are ``value``: JSON_CONTAINS's candidate at a tenant path, a
    path condition's variables compared with a tenant path (a document is read whole
    by :func:`_scan_document` instead)."""
    if m["cpath"] is not None:
        name = _json_name(_path_keys(m["cpath"]), names)
        return [] if name is None else [(name, _json_scalars(value))]
    if m["expr"] is not None:
        return [(name, _variable(value, var)) for name, var in _path_variables(m["expr"], names)]
    return []


def _json_references(text: str, names: frozenset[str]) -> list[tuple[str, int, str]]:
    """(tenant name, offset of the placeholder, how) of each parameter ``text`` compares
    with a JSON path naming a tenant (``one``, ``like``), passes as a document the column
    must contain (``doc``: its tenant keys name its ids), as JSON_CONTAINS's candidate at
    a tenant path (``json``: JSON text of the id) or as a path condition's variables
    (``var:<variable>``); a path that is a parameter itself is read with the one compared
    with it (``key#<at>`` and ``one#<at>``/``like#<at>``; a path condition's ``expr#<at>`` and
    its variables' ``vars#<at>``: :func:`_scan_pairs`)."""
    found: list[tuple[str, int, str]] = []
    comparisons, documents = _json_readers()
    for m in itertools.islice(comparisons.finditer(text), _QUERY_LITERALS):
        if m["one"] is None:
            continue
        how = "one" if m["like"] is None else "like"
        name = _accessed(m, names)
        if name is not None:
            found.append((name, m.start("one"), how))
            continue
        at = m.start("name")  # (the path a parameter too: read with its compared one)
        paths = [("", at + p.start("p"), f"key#{m.start()}") for p in _ACCESS_PART.finditer(m["name"]) if p["p"]]
        found.extend([*paths, ("", m.start("one"), f"{how}#{m.start()}")] if paths else [])
    for m in itertools.islice(documents.finditer(text), _QUERY_LITERALS):
        if m["docp"] is not None or (m["candp"] is not None and m["cpath"] is None):
            found.append(("", m.start("docp" if m["docp"] is not None else "candp"), "doc"))
        elif m["candp"] is not None:
            name = _json_name(_path_keys(m["cpath"]), names)
            if name is not None:
                found.append((name, m.start("candp"), "json"))
        elif m["varsp"] is not None and m["expr"] is not None:
            found.extend((name, m.start("varsp"), f"var:{var}") for name, var in _path_variables(m["expr"], names))
        elif m["varsp"] is not None:  # (the condition a parameter too: read with its variables)
            found.extend([("", m.start("exprp"), f"expr#{m.start()}"), ("", m.start("varsp"), f"vars#{m.start()}")])
    return found


@functools.lru_cache(maxsize=16)
def _column(names: frozenset[str]) -> re.Pattern[str]:
    """A column named as a tenant (:func:`_spelled`), quoted or not."""
    return re.compile(r"[\"`\[]?(?:" + _spelled(names) + r")[\"`\]]?", re.IGNORECASE)


_QUOTED_NAME = r"(?:`[^`]{1,128}`|\"[^\"]{1,128}\"|\[[^\]]{1,128}\]|[\w$]{1,128})"
# an INSERT's (or MySQL's REPLACE's) table, its columns, up to its first row's "(": INSERT
# IGNORE INTO `db`.`t` (a, b) VALUES (…), (…); PostgreSQL's INSERT INTO t AS x (a) VALUES
_INSERT = re.compile(
    r"(?<![\w$])(?:insert|replace)(?:\s+\w{1,16}){0,3}?\s+into\s+" + r"(?:" + _QUOTED_NAME + r"\.){0,2}" + _QUOTED_NAME
    + r"(?:\s+as\s+\w{1,64})?\s*\(\s*(?P<cols>" + _QUOTED_NAME + r"(?:\s*,\s*" + _QUOTED_NAME + r"){0,255})\s*\)"
    r"\s*values?\s*(?=\()",
    re.IGNORECASE,
)


_ROW_TOKENS = 10_000  # tokens of one VALUES list read (hostile input: a list that never ends)


def _inserted(text: str, names: frozenset[str], tokens: re.Pattern[str]) -> list[tuple[str, int]]:
    """(tenant name, offset of its placeholder) for each parameter an INSERT's rows put in
    a tenant column: ``INSERT INTO t (body, tenant_id) VALUES (%s, %s), (%s, %s)`` the
    second of each row (one wrapped in a call, ``UNHEX(?)``, too). The rows are read with
    the dialect's lexer (a comma in a literal is none); they end at anything after a row
    but a comma (``ON DUPLICATE KEY UPDATE``, ``RETURNING``). At most
    :data:`_QUERY_LITERALS` INSERTs and parameters; the next INSERT looked for after the
    rows read (one pass)."""
    found: list[tuple[str, int]] = []
    column = _column(names)
    at = 0
    for _ in range(_QUERY_LITERALS):
        m = _INSERT.search(text, at)
        if m is None:
            break
        at = m.end()
        cols = [c.strip() for c in m["cols"].split(",")]
        tenant = {i: normalize_key(c.strip("\"`[]")) for i, c in enumerate(cols) if column.fullmatch(c)}
        if tenant:
            at = _walk_rows(text, at, tenant, _ROWS[tokens], found)
            if len(found) >= _QUERY_LITERALS:
                break
    return found[:_QUERY_LITERALS]


def _walk_rows(
    text: str, at: int, tenant: dict[int, str], tokens: re.Pattern[str], found: list[tuple[str, int]]
) -> int:
    """The placeholders in the tenant columns (``tenant``: place -> name) of the rows of
    a VALUES list starting at ``at``, into ``found``; where the reading stopped: at the
    list's end, :data:`_QUERY_LITERALS` found or :data:`_ROW_TOKENS` read."""
    depth = place = 0
    end = at
    for t in itertools.islice(tokens.finditer(text, at), _ROW_TOKENS):
        if depth == 0 and t.start() > end and not text[end:t.start()].isspace():
            break  # (text between rows that is no comma: the list ended)
        end = t.end()
        mark = t["s"]
        if mark == "(":
            depth += 1
            if depth == 1:
                place = 0
        elif mark == ")":
            depth -= 1
            if depth < 0:
                break
        elif mark == ",":
            if depth == 1:
                place += 1
        elif t["p"] is not None and depth and place in tenant:
            found.append((tenant[place], t.start()))
            if len(found) >= _QUERY_LITERALS:
                break
        elif depth == 0 and mark is None:
            break  # (a literal or comment between rows)
    return end


def _placeholders(text: str, wanted: set[int], tokens: re.Pattern[str] = _SQL_TOKENS) -> dict[int, int | str]:
    """What the placeholders at the offsets ``wanted`` of a statement refer to: a place
    (0-based) or a name; only those outside a literal, a quoted name or a comment (where
    a comparison written is none), as the dialect's lexer ``tokens`` reads them. ``?`` and
    ``%s`` count in order across the statement: ``?`` (``:name``, ``$1``…), which the
    database reads, never in a literal or a comment; ``%s`` (``%(name)s``), which the
    driver replaces before, everywhere. One pass each, stopped past the last one wanted."""
    refs: dict[int, int | str] = {}
    last = max(wanted)
    real: set[int] = set()  # the wanted format ones outside literals and comments
    formats = any([text[at] == "%" for at in wanted])
    for lexer in (tokens, _FORMAT_TOKENS) if formats else (tokens,):
        places = 0
        for m in lexer.finditer(text):
            at = m.start()
            if at > last:
                break
            p = m["p"]
            if p is None:
                continue
            if (p[0] == "%") != (lexer is _FORMAT_TOKENS):
                if lexer is tokens and at in wanted:
                    real.add(at)
                continue
            if p == "?" or (p[0] == "%" and p[1] != "("):
                ref: int | str = places
                places += 1
            elif p[1] == "(":
                ref = p[2:p.index(")")]
            elif p[1:].isdigit():  # $1, ?1
                ref = int(p[1:]) - 1
            else:
                ref = p[1:]
            if at in wanted and (lexer is tokens or at in real):
                refs[at] = ref
    return refs


def _parameter_references(
    text: str, names: frozenset[str], tokens: re.Pattern[str] = _SQL_TOKENS
) -> list[tuple[str, int | str, str]]:
    """(tenant name, parameter, how compared) for each parameter that ``text`` compares with
    a tenant name (or, :func:`_inserted`, puts in a tenant column): ``one``, ``like`` (a
    pattern: the id without its ``%``) or ``each`` (an array's or a tuple's elements,
    each one an id); or compares with a JSON path naming a tenant, or passes as JSON
    (:func:`_json_references`). At most :data:`_QUERY_LITERALS` comparisons."""
    found: list[tuple[str, int, str]] = []  # (name, offset of its placeholder, how)
    for m in itertools.islice(_parameter_comparisons(names).finditer(text), _QUERY_LITERALS):
        name = normalize_key(m["name"])
        if m["list"] is not None:
            at = m.start("list")
            found.extend((name, at + p.start(), "one") for p in _PLACEHOLDER_RE.finditer(m["list"]))
        elif m["one"] is not None:
            found.append((name, m.start("one"), "one" if m["like"] is None else "like"))
        else:
            found.append((name, m.start("array" if m["array"] is not None else "seq"), "each"))
    found.extend(_reversed(text, names))
    low = text.lower()
    if "values" in low:
        found.extend((name, at, "one") for name, at in _inserted(text, names, tokens))
    if _JSON_MARKS(low):
        found = list(dict.fromkeys(found + _json_references(text, names)))  # (once, if read both ways)
    if not found:
        return []
    found.sort(key=lambda f: f[1])  # (in the statement's order)
    refs = _placeholders(text, {at for _, at, _ in found}, tokens)
    return [(name, refs[at], how) for name, at, how in found if at in refs]


def _recorded_value(node: ast.expr) -> Any:
    """A parameter's value as ``repr`` wrote it (parsed, never run): a literal, a container
    of them, a wrapped text (``UUID('…')``, ``Decimal('1.5')``) as its text; anything else
    (``datetime.date(2024, 1, 1)``) None, keeping its place."""
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        items = [_recorded_value(e) for e in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    if isinstance(node, ast.Dict):
        return {k.value: _recorded_value(v) for k, v in zip(node.keys, node.values) if isinstance(k, ast.Constant)}
    if isinstance(node, ast.Call) and len(node.args) == 1 and not node.keywords:
        node = node.args[0]
        if isinstance(node, ast.Dict):
            return _recorded_value(node)  # a wrapped map: psycopg's Json({'tenant_id': …})
        return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None
    try:
        return ast.literal_eval(node)
    except _LITERAL_ERRORS:
        return None


_WRAPPED = re.compile(r"[A-Za-z_]\w{0,31}\(\{").match  # a map in a call: immutabledict({…})


def _recorded_rows(text: Any) -> list[Any]:
    """The parameters contrib's DB-API instrumentations record (``db.statement.parameters``,
    ``str()`` of what the app passed: a tuple or list by place, a dict by name, also
    wrapped, as SQLAlchemy passes one, ``immutabledict({…})``; a list of them for
    ``executemany``, each one row)."""
    if text.__class__ is not str or len(text) > _LITERAL_MAX:
        return []
    if text[:1] not in ("(", "[", "{") and not (text[-1:] == ")" and _WRAPPED(text)):
        return []
    try:
        node = ast.parse(text, mode="eval").body
    except _LITERAL_ERRORS:
        return []
    value = _recorded_value(node)
    if isinstance(node, ast.List) and node.elts and all(isinstance(e, (ast.Tuple, ast.Dict)) for e in node.elts):
        return value  # executemany's rows
    return [value] if isinstance(value, (tuple, list, dict)) else []


def _parameter_rows(attrs: dict[str, Any]) -> list[tuple[str | None, Any]]:
    """Each set of a query's parameters recorded in ``attrs``, as (attribute, values by
    place or name); the stable conventions' one attribute a parameter as (None, {place or
    name: attribute})."""
    rows: list[tuple[str | None, Any]] = []
    each: dict[int | str, str] = {}
    for key, value in attrs.items():
        if key.startswith(PARAMETER_PREFIX):
            ref = key[len(PARAMETER_PREFIX):].lstrip(":@$")
            each[int(ref) if ref.isdigit() and len(ref) < 8 else ref] = key
        elif key == "db.statement.parameters":
            rows.extend((key, row) for row in _recorded_rows(value))
        elif key in PARAMETER_KEYS and isinstance(value, (list, tuple)):
            rows.append((key, value))
    if each:
        rows.append((None, each))
    return rows


def _parameter(row: tuple[str | None, Any], ref: int | str, attrs: dict[str, Any]) -> tuple[str, Any] | None:
    """The (attribute, value) of the parameter ``ref`` in one row, if it has one."""
    key, values = row
    if key is None:
        found = values.get(ref)
        return None if found is None else (found, attrs[found])
    if ref.__class__ is int:
        return (key, values[ref]) if isinstance(values, (list, tuple)) and 0 <= ref < len(values) else None
    return (key, values[ref]) if isinstance(values, dict) and ref in values else None


def _compared_values(value: Any, how: str) -> list[Any]:
    """The ids one parameter holds, compared so: an array's or a tuple's elements (node-
    postgres writes an array as JSON text), a pattern without its wildcards, JSON text of
    the id (``json``), a path condition's variable (``var:<variable>``)."""
    if how == "json":
        return _json_scalars(value)
    if how[:4] == "var:":
        return _variable(value, how[4:])
    if how == "each" and value.__class__ is str:
        value = literal_value(value)
        return value if isinstance(value, list) else []
    if isinstance(value, (list, tuple)):
        return list(value)
    if how == "like" and value.__class__ is str:
        return [value.strip("%")]
    return [value]


def _raw_parameter(value: Any) -> bool:
    """A parameter's raw id: not a null (pg and Java write one as ``null``) nor an opaque tag."""
    return not (value.__class__ is str and value.lower() == "null") and _is_raw(value)


def _scan_parameters(attrs: dict[str, Any], where: str, names: frozenset[str], out: list[RawValue]) -> None:
    """Raw tenant ids passed to a query as parameters, recorded beside its text
    (:data:`PARAMETER_KEYS`, :data:`PARAMETER_PREFIX`): the text (``db.statement``,
    ``db.query.text``) names what each is compared with, ``WHERE tenant_id = $1`` (``?``,
    ``%s``, ``:tenant``…); each judged as the value of that name (an opaque tag, a null is
    none) and named ``db.postgresql.values → tenant_id``. A parameter recorded under a
    tenant name of its own (``db.query.parameter.tenant_id``) is that tenant's wherever it
    is compared. At most :data:`_QUERY_LITERALS` comparisons."""
    rows = _parameter_rows(attrs)
    text = next((t for t in map(attrs.get, _STATEMENTS) if t.__class__ is str), "")
    low = text.lower()
    # (a JSON document passed, ``m @> %s``, names the tenant in its keys: the text need not)
    read = rows and (_has_word(low, names) or _JSON_MARKS(low))
    compared = _parameter_references(text, names, _sql_tokens(attrs)) if read else []
    compared_at: set[str] = set()
    pairs: dict[tuple[int, str], dict[str, list[tuple[str, Any]]]] = {}  # (row, comparison) -> its parameters
    for name, ref, how in compared:
        for i, row in enumerate(rows):
            found = _parameter(row, ref, attrs)
            if found is not None:
                compared_at.add(found[0])
                if how == "doc":
                    _scan_document(found[0], found[1], where, names, out)
                elif "#" in how:
                    kind, _, at = how.partition("#")
                    pairs.setdefault((i, at), {}).setdefault(kind, []).append(found)
                else:
                    for value in _compared_values(found[1], how):
                        if _raw_parameter(value):
                            out.append(RawValue(where, f"{found[0]} → {name}", value))
    for pair in pairs.values():
        _scan_pairs(pair, where, names, out)
    for key, each in rows:
        if key is None:
            for ref, attr in each.items():
                if (
                    ref.__class__ is str and attr not in compared_at and is_tenant_key(ref, names)
                    and _raw_parameter(attrs[attr])
                ):
                    out.append(RawValue(where, attr, attrs[attr]))


def _scan_pairs(pair: dict[str, list[tuple[str, Any]]], where: str, names: frozenset[str], out: list[RawValue]) -> None:
    """Raw tenant ids in one comparison whose JSON path is a parameter too, its parameters
    (attribute, value) by kind (:func:`_json_references`): the one compared with a path
    whose keys (``key``, in order) name a tenant, SQLAlchemy's ``m ->> %(m_1)s = %(p_1)s``
    (``'tenant_id'``, ``'acme'``); or a path condition's variables compared with a tenant
    path, ``jsonb_path_match(m, CAST(%s AS JSONPATH), CAST(%s AS JSONB))`` with ``$.tenant_id
    == $value`` and ``{"value": "acme"}`` (LangChain's PGVector filter through SQLAlchemy)."""
    compared: list[tuple[str, str, list[Any]]] = []  # (attribute, tenant name, values)
    if "key" in pair:
        name = _json_name([k for _, path in pair["key"] for k in _keys_of(path)], names)
        how = "one" if "one" in pair else "like"
        if name is not None:
            compared.extend((key, name, _compared_values(v, how)) for key, v in pair.get(how, []))
    elif "expr" in pair and "vars" in pair and pair["expr"][0][1].__class__ is str:
        key, document = pair["vars"][0]
        compared.extend((key, name, _variable(document, var)) for name, var in _path_variables(pair["expr"][0][1], names))
    for key, name, values in compared:
        out.extend([RawValue(where, f"{key} → {name}", v) for v in values if _raw_parameter(v)])


# the segments of a cache key that name its structure, not a tenant: ``tenant:index``,
# ``tenants:all``, ``org:count`` (a value equal to a tenant name is none either)
_KEY_WORDS = frozenset({
    "id", "ids", "all", "any", "list", "index", "count", "config", "settings", "meta", "metadata", "info",
    "lock", "locks", "key", "keys", "name", "names", "stats", "none", "null", "nil", "undefined", "unknown",
    "current", "by",
})
# a key's segment: up to the next separator, blank, quote, bracket or glob
_SEGMENT = r"(?P<seg>\{[^\s{}]{1,256}\}|[^\s:/=|#,;&?*'\"`(){}\[\]<>]{1,256})(?![^\s:/=|#,;&)}\]'\"`])"


@functools.lru_cache(maxsize=16)
def _key_segments(names: frozenset[str]) -> re.Pattern[str]:
    """One pattern for a key's segment that follows a tenant name and a separator
    (``:``, ``/``, ``=``, ``|``, ``#``), in any case: the names as written, without
    their ``_`` (``tenantId``) or with ``-``, and those ending ``_id`` also without it,
    singular and plural (``tenant:``, ``orgs/``, ``customer_id=``). The name is a whole
    segment (``subtenant:x`` is not one); a glob (``tenant:acme*``) is a pattern, not an
    id; a redis hash tag (``tenant:{acme}:cart``) is read inside its braces."""
    return re.compile(r"(?<![\w.$@-])(?P<name>" + _spelled_key_names(names) + r")[:/=|#]" + _SEGMENT, re.IGNORECASE)


def _spelled_key_names(names: frozenset[str]) -> str:
    """The names a key may write before a tenant's id, as a pattern's alternation (longest
    first): :func:`_named_key_forms` and the shorter forms, ``_id`` left off, singular and plural."""
    forms = set(_named_key_forms(names))
    for n in names:
        base = n[:-3] if n.endswith("_id") else n
        if base:
            forms.update((base, base + "s"))
    return "|".join(map(re.escape, sorted(forms, key=len, reverse=True)))


@functools.lru_cache(maxsize=16)
def _named_key_forms(names: frozenset[str]) -> frozenset[str]:
    """The key names that say outright that a tenant's id follows, lower-case: the names as
    configured (``tenant_id``, ``org_id``; also without their ``_``, ``tenantid``, or with
    ``-``) and any form of ``tenant`` (``tenants``). The shorter forms of the others
    (``account``, ``customers``, ``org``) also name a key's structure (``account:balance:42``,
    ``customer:profile:42``, ``accounts:active``): after them only an id-shaped segment
    (:data:`_ID_SHAPED`) is taken for an id."""
    forms = {f for n in names if n for f in (n, n.replace("_", ""), n.replace("_", "-"))}
    return frozenset(forms | {f"{f}s" for f in forms if f.startswith("tenant")})


#: an id's shape, where a word could as well name a key's structure: a digit, or words
#: joined by ``-``, ``_`` or ``.`` (``42``, ``acme-corp``, ``c_9``)
_ID_SHAPED = re.compile(r"\d|[^\W_][-_.][^\W_]").search


def _scan_keys(shown: str, text: str, where: str, names: frozenset[str], out: list[RawValue]) -> None:
    """Raw tenant ids in the keys of a cache's command text (``GET tenant:acme:session``,
    ``HSET orgs/acme-7/cart ?``, ``set cart/org_id=acme``), which instrumentations record
    (pymemcache's in full; other languages' redis clients the keys, the values as ``?``):
    the segment after a tenant name, named ``db.statement → tenant`` (the name as the
    key writes it). Not a parameter or placeholder (``?``, ``%s``, ``<tenant_id>``), an
    opaque tag, a word naming the key's structure (:data:`_KEY_WORDS`; after a name's
    shorter form, any segment not shaped as an id: :func:`_named_key_forms`) or a tenant
    name.
    At most :data:`_QUERY_LITERALS` segments (one pass of one cached pattern: linear)."""
    if not _has_word(text.lower(), names):
        return
    named = _named_key_forms(names)
    for m in itertools.islice(_key_segments(names).finditer(text), _QUERY_LITERALS):
        value = m["seg"]
        if value[:1] == "{":
            value = value[1:-1]  # a hash tag: the id is inside (a key grouped by its tenant)
        elif _TEMPLATE.fullmatch(value) or (m["name"].lower() not in named and not _ID_SHAPED(value)):
            continue
        _judge_segment(shown, m["name"], value, where, names, out)


def _judge_segment(shown: str, name: str, value: str, where: str, names: frozenset[str], out: list[RawValue]) -> None:
    """A key's or routing key's word after tenant name ``name``: a raw id unless an opaque
    tag, a word naming the key's structure (:data:`_KEY_WORDS`) or a tenant name itself;
    named ``<shown> → <name>``."""
    if _is_raw(value) and value.lower() not in _KEY_WORDS and not is_tenant_key(value, names):
        out.append(RawValue(where, f"{shown} → {normalize_key(name)}", value))


@functools.lru_cache(maxsize=16)
def _route_words(names: frozenset[str]) -> re.Pattern[str]:
    """One pattern for a routing key's word that follows a word naming a tenant (the
    forms of :func:`_key_segments`), each a whole word between ``.``s, in any case."""
    return re.compile(r"(?:^|(?<=\.))(?P<name>" + _spelled_key_names(names) + r")\.(?P<seg>[^.\s*#]{1,256})(?![^.])", re.IGNORECASE)


def _scan_route(shown: str, text: str, where: str, names: frozenset[str], out: list[RawValue]) -> None:
    """Raw tenant ids in a message's routing key (``tenant.acme-7.order.created``,
    ``orders.tenant_id.42``), named ``messaging.rabbitmq.routing_key → tenant``: the word
    after a word naming a tenant. Event names are written so too (``tenant.created``,
    ``org.updated``), so after a name that does not end in ``id`` only a word shaped as
    an id (:data:`_ID_SHAPED`: a digit, words joined by ``-`` or ``_``) is taken for one;
    a topic pattern's ``*`` and ``#``, a placeholder or a word naming the key's structure
    (:data:`_KEY_WORDS`) never. At most :data:`_QUERY_LITERALS` words."""
    if not _has_word(text.lower(), names):
        return
    for m in itertools.islice(_route_words(names).finditer(text), _QUERY_LITERALS):
        value, name = m["seg"], m["name"].lower()
        if _TEMPLATE.fullmatch(value) or (not name.endswith(("id", "ids")) and not _ID_SHAPED(value)):
            continue
        _judge_segment(shown, m["name"], value, where, names, out)


# words after a tenant name in a path or a destination's name that are no id: a path's
# own (``/tenants/me``, ``/tenants/search``) and a topic's (``tenant-events``), besides a
# key's (:data:`_KEY_WORDS`)
_NOT_IDS = _KEY_WORDS | frozenset({
    "me", "self", "mine", "my", "new", "search", "default", "events", "event", "updates", "changes", "created",
    "updated", "deleted", "commands", "jobs", "tasks", "messages", "notifications", "requests", "replies", "dlq",
    "retry", "queue", "topic",
})
# a route's parameter, a whole segment: Starlette's {name} and {name:converter}, Express'
# :name, Flask's <name> and <converter:name>
_ROUTE_PARAMETER = re.compile(r"\{(?P<a>[^{}:/]{1,128})(?::[^{}/]{0,64})?\}|:(?P<b>\w{1,128})|<(?:\w{1,32}:)?(?P<c>\w{1,128})>")
_ROUTE_SEGMENTS = 64  # segments of a route (and of a path) compared (hostile input)


def _scan_named(attrs: dict[str, Any], where: str, names: frozenset[str], out: list[RawValue]) -> None:
    """Raw tenant ids named in words (:data:`~flowmap.conventions.NAMING_KEYS`): the path
    segment a server's route names after a tenant (``/tenants/{tenant_id}`` against
    ``url.path``), the segment after a tenant name in any URL's path (``tenants/acme``,
    ``orgs/org_42``) and the word after one in a destination's name (``orders.tenant-acme``)."""
    route = attrs.get(ROUTE_KEY)
    at = _tenant_parameters(route, names) if route.__class__ is str else ()
    for key, value in attrs.items():  # (in the attributes' order: the findings' text is stable)
        if value.__class__ is str:
            if key in PATH_KEYS:
                _scan_path(key, _path_of(key, value), at, where, names, out)
            elif key in DESTINATION_KEYS:
                _scan_destination(key, value, where, names, out)


@functools.lru_cache(maxsize=4096)
def _tenant_parameters(route: str, names: frozenset[str]) -> tuple[tuple[int, int, str], ...]:
    """(segment count, place, name) of each parameter of ``route`` named after a tenant."""
    segments = route.partition("?")[0].split("/", _ROUTE_SEGMENTS)
    found = []
    for i, segment in enumerate(segments[:_ROUTE_SEGMENTS]):
        m = _ROUTE_PARAMETER.fullmatch(segment)
        if m is not None:
            name = m["a"] or m["b"] or m["c"]
            if is_tenant_key(name, names):
                found.append((len(segments), i, name))
    return tuple(found)


def _path_of(key: str, url: str) -> str:
    """A URL attribute's path: after the scheme and host of ``url.full`` and ``http.url``
    (the whole text if it has none), up to its query or fragment."""
    if key in URL_KEYS and key != "http.target":
        scheme, sep, rest = url.partition("://")
        if sep and "/" not in scheme:
            url = "/" + rest.partition("/")[2]
    return url.partition("?")[0].partition("#")[0]


def _scan_path(
    key: str, path: str, at: tuple[tuple[int, int, str], ...], where: str, names: frozenset[str], out: list[RawValue]
) -> None:
    """Raw tenant ids in a URL's path: the segments the route's tenant parameters (``at``)
    name, and the segment after a tenant name (read as a cache's key is: ``tenants/<id>``,
    ``orgs/<id>`` an id-shaped one only), named ``url.path → tenant_id``. Templates,
    placeholders, opaque tags and words that are no id (:data:`_NOT_IDS`) are not ids."""
    if at:
        segments = path.split("/", _ROUTE_SEGMENTS)
        for count, i, name in at:
            if len(segments) == count:
                _judge_word(key, name, segments[i], where, names, out)
    if not _has_word(path.lower(), names):
        return
    named = _named_key_forms(names)
    for m in itertools.islice(_key_segments(names).finditer(path), _QUERY_LITERALS):
        value, start = m["seg"], m.start()
        if (not start or path[start - 1] == "/") and (m["name"].lower() in named or _ID_SHAPED(value)):
            _judge_word(key, m["name"], value, where, names, out)  # (a whole segment's name: not ``:tenant_id``)


@functools.lru_cache(maxsize=16)
def _destination_words(names: frozenset[str]) -> re.Pattern[str]:
    """One pattern for the word after a tenant name (the forms of :func:`_key_segments`)
    in a destination's name, in any case: joined to it by ``-`` or ``_`` in one word
    (``orders.tenant-acme``) or the next word (``tenant.acme-corp.orders``, ``tenant/42``)."""
    return re.compile(
        r"(?<![^\W_])(?P<name>" + _spelled_key_names(names) + r")[-_.:/](?P<seg>[^.:/\s*#>]{1,256})", re.IGNORECASE
    )


def _scan_destination(key: str, text: str, where: str, names: frozenset[str], out: list[RawValue]) -> None:
    """Raw tenant ids in the name of a queue or topic made per tenant (``orders.tenant-acme``,
    ``tenant.42.jobs``), named ``messaging.destination.name → tenant``: the word after a
    tenant name, as in a path (:func:`_scan_path`). At most :data:`_QUERY_LITERALS` words."""
    if not _has_word(text.lower(), names):
        return
    named = _named_key_forms(names)
    for m in itertools.islice(_destination_words(names).finditer(text), _QUERY_LITERALS):
        value = m["seg"]
        if m["name"].lower() in named or _ID_SHAPED(value):
            _judge_word(key, m["name"], value, where, names, out)


def _judge_word(key: str, name: str, value: str, where: str, names: frozenset[str], out: list[RawValue]) -> None:
    """A path segment's or a destination word's value after tenant name ``name``
    (:func:`_judge_segment`), read percent-decoded and also flagged as written; not a
    template's placeholder or a word that is no id (:data:`_NOT_IDS`), and once a value
    and attribute."""
    plain = unquote(value)
    if not plain or plain[0] in "{<:" or _TEMPLATE.fullmatch(plain) or plain.lower() in _NOT_IDS or "*" in plain:
        return
    if any([h.value == plain and h.key.startswith(key) for h in out]):
        return  # (the route named it already)
    found: list[RawValue] = []
    _judge_segment(key, name, plain, where, names, found)
    if found and value != plain:
        _judge_segment(key, name, value, where, names, found)
    out.extend(found)


def find_raw_tenant_values(
    span: Span, names: frozenset[str], *, include_resource: bool = True
) -> list[RawValue]:
    """Raw tenant identifiers in a span's attributes, events, links (and resource)."""
    hits = scan_attributes(span.attributes, "attribute", names)
    if include_resource:
        hits.extend(scan_attributes(span.resource, "resource attribute", names))
    for event in span.events:
        hits.extend(scan_attributes(event.attributes, f"event '{event.name}' attribute", names))
    for link in span.links:
        hits.extend(scan_attributes(link.attributes, "link attribute", names))
    return hits


def _walk_keys(obj: Any, limit: int = 10000) -> Iterator[tuple[str, Any]]:
    """Every (key, value) inside ``obj``, and inside JSON text found in it (frameworks
    often encode arguments twice: ``{"input": "{\\"org_id\\": …}"}``); at most ``limit`` nodes."""
    stack = [obj]
    seen = 0
    while stack and seen < limit:
        node = stack.pop()
        seen += 1
        if isinstance(node, dict):
            for k, v in node.items():
                yield str(k), v
                stack.append(v)
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str) and node[:1] in ("{", "["):
            inner = json_value(node)
            if inner is not None:
                stack.append(inner)


def json_value(value: Any) -> Any:
    """A JSON object or array written as text (or already decoded), else None: attribute
    values often carry JSON (tool arguments, messages) that the rules look inside."""
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("{", "[") and len(text) <= 1_000_000:
            try:
                return json.loads(text)
            except (ValueError, RecursionError):  # hostile nesting: not looked into
                return None
        return None
    return value if isinstance(value, (dict, list)) else None


_LITERAL_MAX = 100_000  # Python-literal text parsed at most (ast is slower than json)
_LITERAL_ERRORS = (ValueError, TypeError, SyntaxError, MemoryError, RecursionError)


def literal_value(text: str) -> Any:
    """A map or array written as JSON text, or as Python writes one (``str(dict)``:
    OpenLLMetry's vector store instrumentations record a search's filter, ``{'tenant_id':
    'acme'}``, and its results' fields so), else None. Only what failed as JSON is read
    as a Python literal (``ast.literal_eval``: no code runs)."""
    value = json_value(text)
    if value is not None:
        return value
    text = text.strip()
    if text[:1] not in ("{", "[") or len(text) > _LITERAL_MAX:
        return None
    try:
        value = ast.literal_eval(text)
    except _LITERAL_ERRORS:  # not a literal, or hostile nesting
        return None
    return value if isinstance(value, (dict, list, tuple)) else None


@functools.lru_cache(maxsize=64)
def _words(names: frozenset[str]) -> tuple[str, ...]:
    """The first word of every name (lower case): a key that matches a name holds one."""
    return tuple(sorted({n.split("_")[0] for n in names if n}, key=len, reverse=True))


#: the words of :func:`_words` of every set of tenant names used (the contract's from the
#: start): what a names-blind test (:func:`holds_names`, the loader's) looks for
_NAMING_WORDS: tuple[str, ...] = ()
#: text -> :func:`may_name_in_words` (a service's few routes and paths repeat on every
#: span: one dict lookup each instead of a search per word)
_NAMING_SEEN: dict[str, bool] = {}
_NAMING_SEEN_MAX = 50_000
_NAMING_SEEN_LENGTH = 512  # the longest text remembered


def learn_names(names: frozenset[str]) -> None:
    """Let :func:`may_name_in_words` look for the words of ``names`` too (the analyzer's
    configured names, before its input is loaded)."""
    global _NAMING_WORDS
    words = set(_NAMING_WORDS) | set(_words(names))
    if len(words) != len(_NAMING_WORDS):
        _NAMING_WORDS = tuple(sorted(words, key=len, reverse=True))
        _NAMING_SEEN.clear()


def may_name_in_words(text: str) -> bool:
    """Whether a URL's path, a route or a destination's name holds a word some tenant name
    starts with (:func:`learn_names`): False means it names no tenant (most paths)."""
    seen = _NAMING_SEEN.get(text)
    if seen is None:
        low = text.lower()
        seen = any([w in low for w in _NAMING_WORDS])
        if len(text) <= _NAMING_SEEN_LENGTH:  # (hostile input: long texts are not kept)
            if len(_NAMING_SEEN) >= _NAMING_SEEN_MAX:
                _NAMING_SEEN.clear()
            _NAMING_SEEN[text] = seen
    return seen


def _has_word(low: str, names: frozenset[str]) -> bool:
    """Whether the lower-case text ``low`` holds one of the words (C substring searches:
    several times faster than one case-blind pattern of them all)."""
    return any([w in low for w in _words(names)])


_COLON = re.compile(r"[ \t\n\r]*:")
_MENTIONS_MAX = 16  # a word's mentions looked at one by one; more, and the text is parsed


def _in_a_key(low: str, names: frozenset[str]) -> bool:
    """Whether one of the words is in a key of the lower-case JSON text ``low`` (without
    a backslash, so that the first quote after a word closes its string): that quote is
    followed by a colon. The first single quote after it is tried too: a Python literal's
    keys are quoted so (:func:`literal_value`). A word mentioned very often counts as
    found (parsing costs less than looking further)."""
    for word in _words(names):
        at = low.find(word)
        mentions = 0
        while at >= 0:
            mentions += 1
            if mentions > _MENTIONS_MAX:
                return True
            after = at + len(word)
            ends = [end for end in (low.find('"', after), low.find("'", after)) if end >= 0]
            if not ends:
                break
            if any([_COLON.match(low, end + 1) for end in ends]):
                return True
            at = low.find(word, min(ends) + 1)
    return False


def may_name_tenant(text: str, names: frozenset[str]) -> bool:
    """False when no JSON in ``text`` can have a tenant key, so that it need not be parsed:
    no key holds a word any tenant attribute name starts with (prose that mentions a
    customer is no key). Text with a backslash (JSON encoded twice, a key written with
    ``\\u`` escapes) needs only the word, or a ``\\u00`` escape, anywhere."""
    low = text.lower()
    if "\\" in text:
        return "\\u00" in low or _has_word(low, names)
    return _in_a_key(low, names)


def tenant_keys_in(value: Any, names: frozenset[str]) -> list[tuple[str, Any]]:
    """(key, value) pairs naming a tenant inside a JSON string (or one Python wrote:
    OpenLIT's LangChain tool spans record the arguments with ``str(dict)``) or
    structured value."""
    if isinstance(value, str):
        if not may_name_tenant(value, names):
            return []
        obj = literal_value(value)
    else:
        obj = json_value(value)
    if obj is None:
        return []
    return [(k, v) for k, v in _walk_keys(obj) if is_tenant_key(k, names)]


_DONE_MAX = 50_000  # masked texts remembered (then forgotten all at once)
# Up to this many short values, one pattern of them all is the fastest; past it, its
# cost (building and matching) grows with their number: they are looked up instead.
_SHORT_PATTERN_MAX = 32
_WORD = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_TOKEN = re.compile(r"[0-9A-Za-z]+")  # a word of the short values' boundaries


def fold(s: str) -> str:
    """``s`` in lower case, character for character (same length, so a match found in
    the folded text is at the same place in ``s``): what makes masking case-insensitive.

    ``str.lower`` keeps the length of every text but one holding ``İ`` (U+0130, the only
    character it turns into two), which is left as it is.
    """
    low = s.lower()
    if len(low) == len(s):
        return low
    return "".join(c if c == "\u0130" else c.lower() for c in s)


def _replace(s: str, spans: Iterable[tuple[int, int]]) -> str:
    """``s`` with each ``(start, end)`` span (left to right, not overlapping) masked."""
    out: list[str] = []
    start = 0
    for i, j in spans:
        out.append(s[start:i])
        out.append(MASK)
        start = j
    if not out:
        return s
    out.append(s[start:])
    return "".join(out)


class Masker:
    """Replaces every flagged raw value with :data:`MASK`, wherever it appears, in any case.

    Values of :data:`_MIN_SUBSTRING` characters or more are masked anywhere in a text
    (at each place the longest of them that matches), shorter ones (e.g. ``"42"``) only
    as whole tokens. Matching ignores case (:func:`fold`): ``Acme-Corp-7`` flagged once
    is masked as ``acme-corp-7`` and ``ACME-CORP-7`` too, since a path, a host name or a
    log line often repeats an id in another case. The analyzer can flag very many
    distinct values (one per tenant) and masks as many texts, so long values are found
    by set lookups (:class:`~flowmap.substrings.SubstringIndex`), not one pattern of
    them all; so are short ones once there are more than :data:`_SHORT_PATTERN_MAX`
    (:class:`_ShortValues`).
    """

    def __init__(self, raw: Iterable[Any] = ()) -> None:
        self.exact: set[str] = set()  # the flagged values, folded
        self._long = SubstringIndex()  # values of _MIN_SUBSTRING characters or more, folded
        self._short: re.Pattern[str] | _ShortValues | None = None  # short values, as whole tokens
        self._built = True
        self._done: dict[str, str] = {}  # text -> masked: findings repeat names and messages
        self.add(raw)

    def add(self, raw: Iterable[Any]) -> None:
        """Values to mask from now on (the pattern of short ones is built at the next use)."""
        before = len(self.exact)
        for value in raw:
            for s in scalars(value):
                # (also without the blanks around it: "acme " is acme in a URL; and decoded
                # when it is base64 text of printable UTF-8: a bytesValue id, which the
                # file holds in base64 and a URL or a log line in clear)
                for f in {fold(v) for t in {s, s.strip(), _from_base64(s)} if t for v in spellings(t)}:
                    if _ALNUM(f) and f not in PLACEHOLDERS and f not in self.exact:
                        self.exact.add(f)
                        if len(f) >= _MIN_SUBSTRING:
                            self._long.add(f)
                        else:
                            self._built = False
        if len(self.exact) != before:
            self._done = {}

    def _short_pattern(self) -> re.Pattern[str] | _ShortValues | None:
        if not self._built:
            short = sorted((s for s in self.exact if len(s) < _MIN_SUBSTRING), key=len, reverse=True)
            if len(short) > _SHORT_PATTERN_MAX:
                self._short = _ShortValues(short)
            else:
                self._short = re.compile(
                    "|".join(r"(?<![0-9A-Za-z])" + re.escape(s) + r"(?![0-9A-Za-z])" for s in short)
                ) if short else None
            self._built = True
        return self._short

    def __bool__(self) -> bool:
        return bool(self.exact)

    def __contains__(self, s: str) -> bool:
        """Whether ``s`` is, in any case, one of the flagged values."""
        return fold(s) in self.exact

    def text(self, s: str) -> str:
        if not self.exact:
            return s
        done = self._done.get(s)
        if done is None:
            folded = fold(s)
            if folded in self.exact:
                return MASK
            done = _replace(s, self._long.matches(folded)) if self._long else s
            short = self._short_pattern()
            if short is not None:
                if done is not s:
                    folded = fold(done)
                if isinstance(short, _ShortValues):
                    done = _replace(done, short.spans(folded))
                else:
                    done = _replace(done, (m.span() for m in short.finditer(folded)))
            if len(self._done) >= _DONE_MAX:
                self._done = {}
            self._done[s] = done
        return done

    def located(self, s: str) -> str:
        """``text`` for a ``file:line`` (an origin) or a warning that starts with one:
        the line number is kept as it is. It is no tenant's, and a short numeric id
        masked in it (an org id ``2``) lost the line and named the id by the gap."""
        m = _LOCATED.match(s)
        if m is None or not self.exact:
            return self.text(s)
        return f"{self.text(m['file'])}:{m['line']}{self.text(m['rest'])}"

    def value(self, value: Any, depth: int = 0) -> Any:
        if not self.exact or value is None or isinstance(value, bool):
            return value
        if depth > 64:  # hostile nesting: hide rather than recurse further
            return MASK
        if isinstance(value, str):
            if value in self:
                return MASK
            obj = json_value(value) if depth == 0 else None
            if obj is not None:
                masked = self.value(obj, depth + 1)
                if masked != obj:
                    return json.dumps(masked, ensure_ascii=False)
                return value
            return self.text(value)
        if isinstance(value, (int, float)):
            return MASK if str(value) in self else value
        if isinstance(value, list):
            return [self.value(v, depth + 1) for v in value]
        if isinstance(value, tuple):
            return tuple(self.value(v, depth + 1) for v in value)
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self.value(v, depth + 1) for k, v in value.items()}
        return value

    def attrs(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Values and keys (a key can embed a raw id too: ``quota.<tenant>.used``)."""
        return {self.text(k): self.value(v) for k, v in attrs.items()}

    def span(self, span: Span) -> Span:
        """A masked copy of ``span`` (the original, maybe the caller's, is left as is).

        Always a :class:`flowmap.model.Span`, whether ``span`` was built by hand or is
        the loader's struct-backed span."""
        return Span(
            trace_id=span.trace_id,
            span_id=span.span_id,
            parent_span_id=span.parent_span_id,
            name=self.text(span.name),
            kind=span.kind,
            service=self.text(span.service),
            start_ns=span.start_ns,
            end_ns=span.end_ns,
            attributes=self.attrs(span.attributes),
            resource=self.attrs(span.resource),
            events=[Event(self.text(e.name), self.attrs(e.attributes)) for e in span.events],
            links=[Link(l.trace_id, l.span_id, self.attrs(l.attributes)) for l in span.links],
            status_code=span.status_code,
            origin=self.located(span.origin) if span.origin else span.origin,
            tenant=span.tenant if span.tenant is None or is_opaque_tag(span.tenant) else MASK,
            boundary=span.boundary,
            scoped=span.scoped,
            key_id=span.key_id,
        )

    def trace(self, trace: Trace) -> Trace:
        return Trace(trace.trace_id, {sid: self.span(s) for sid, s in trace.spans.items()})


class _ShortValues:
    """Many short values (under :data:`_MIN_SUBSTRING` characters, folded), found where
    one pattern of them all, longest first, each between two characters that are not
    ASCII letters or digits (or an end), would find them: with set lookups, so the cost
    does not grow with their number.

    A value of ASCII letters and digits only matches exactly where it is a whole token
    of them (:data:`_TOKEN`): one set lookup a token. Other values (``a-b``, ``é``) are
    looked up by length at each place one of their first characters is. At each place
    the longest value found there wins, and the next is looked for past its end.
    """

    __slots__ = ("words", "others", "lengths", "firsts")

    def __init__(self, values: Iterable[str]) -> None:
        self.words: set[str] = set()
        self.others: set[str] = set()
        for v in values:
            (self.words if _TOKEN.fullmatch(v) else self.others).add(v)
        self.lengths = sorted({len(v) for v in self.others}, reverse=True)
        firsts = sorted({v[0] for v in self.others})
        self.firsts = re.compile("[" + "".join(map(re.escape, firsts)) + "]") if firsts else None

    def spans(self, text: str) -> list[tuple[int, int]]:
        """``(start, end)`` of the values in ``text``, left to right, not overlapping."""
        found: dict[int, int] = {}  # start -> length of the longest value found there
        words = self.words
        if words and not words.isdisjoint(_TOKEN.findall(text)):
            for m in _TOKEN.finditer(text):
                if m.group() in words:
                    start, end = m.span()
                    found[start] = end - start
        if self.firsts is not None:
            others, n = self.others, len(text)
            for m in self.firsts.finditer(text):
                at = m.start()
                if at and text[at - 1] in _WORD:
                    continue
                for length in self.lengths:
                    end = at + length
                    if end <= n and text[at:end] in others and (end == n or text[end] not in _WORD):
                        if length > found.get(at, 0):
                            found[at] = length
                        break
        out: list[tuple[int, int]] = []
        last = 0
        for at in sorted(found):
            if at >= last:
                last = at + found[at]
                out.append((at, last))
        return out


learn_names(attributes.TENANT_ID_ATTRIBUTE_NAMES)
