"""The OTLP/JSON trace schema as msgspec Structs, and the conversion of its values.

Why typed Structs: msgspec decodes a whole ``TracesData`` line straight into these
objects in C, validating types and string lengths on the way, several times faster
than decoding to dicts and walking them. Everything the OTLP/JSON mapping allows is
accepted: lowerCamelCase keys (escaped or not), unknown fields ignored, 64-bit
integers as JSON numbers or strings, enums as integers or as their proto names
(``"SPAN_KIND_SERVER"``), doubles as numbers or ``"NaN"``/``"Infinity"`` (the
decoder runs with ``strict=False``, which converts such strings in C).

Structs are ``gc=False``: they only hold strings, numbers, lists, dicts of decoded
values and other Structs, so they can never be part of a reference cycle and the
collector need not track them.

:class:`Span` (and the loader's :class:`RawSpan`) is also the analyzer's span: the
loader fills in the derived fields (tenant, boundary, service, …) in place, and it has
every field and property of :class:`flowmap.model.Span`, ``attributes`` built on first
use. Why: building a second object and an attribute dict per span, and keeping the
~20 objects a decoded attribute list is made of alive for as long as the trace, cost
more than decoding.

A string longer than :data:`MAX_VALUE_CHARS` fails validation, which sends the line
to the loader's lenient path, where the value is truncated and a warning is given.
Integers are bounded the same way, in C and at no measurable cost: times to
``0 … 2**63-1`` nanoseconds (until the year 2262; msgspec cannot bound an int beyond
int64), ``intValue`` to int64, enums to int32, so a hostile huge number fails
validation instead of reaching the analysis: on the loader's lenient path an attribute,
event or link that fails is dropped on its own (with a warning), any other field
skips its span. A JSON ``null`` (proto3 JSON: the field's default) fails validation
too and is read there as the default, silently.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable
from typing import Annotated, Any, Literal

import msgspec

from .attributes import BOUNDARY, RULE_FLAGS, SCOPED, TENANT, TENANT_INBOUND, UNSCOPED
from .conventions import (
    DECIDING_KEYS, HTTP_KEYS, JSON_HEADS, NAMING_KEYS, PROXY_KEY, SYSTEM_KEYS, URL_KEYS, has_quote, holds_key_text,
    holds_query_text, is_cache_system, is_json_text, reads_messaging,
)
from .masking import NESTED_DEPTH, may_name_in_words

__all__ = [
    "MAX_VALUE_CHARS",
    "MAX_NAME_CHARS",
    "TIME_MAX",
    "AnyValue",
    "KeyValue",
    "Resource",
    "Status",
    "Event",
    "Link",
    "Span",
    "ScopeSpans",
    "ResourceSpans",
    "scopes",
    "TracesData",
    "decode_traces_data",
    "decode_traces_data_raw",
    "decode_key_values",
    "KeyDecoder",
    "RawSpan",
    "detach",
    "any_value",
    "attributes",
    "AttributeShape",
    "shape_of",
    "with_inner",
    "holds_maps",
    "holds_text",
    "holds_query",
    "holds_naming_words",
    "holds_literals",
    "holds_keys",
    "maps_decoded",
    "maps_counted",
    "convert",
    "span_kind",
    "status_code",
]

MAX_VALUE_CHARS = 65_536  # longest attribute string kept; longer ones are truncated
MAX_NAME_CHARS = 4_096  # longest span/event name kept

_Str = Annotated[str, msgspec.Meta(max_length=MAX_VALUE_CHARS)]
_Name = Annotated[str, msgspec.Meta(max_length=MAX_NAME_CHARS)]
TIME_MAX = (1 << 63) - 1  # the latest time kept (the year 2262; msgspec bounds int64 at most)
_Time = Annotated[int, msgspec.Meta(ge=0, le=TIME_MAX)]
_Int64 = Annotated[int, msgspec.Meta(ge=-(1 << 63), le=(1 << 63) - 1)]
_ENUM_MIN, _ENUM_MAX = -(1 << 31), (1 << 31) - 1  # protobuf enums are int32
_Enum = Annotated[int, msgspec.Meta(ge=_ENUM_MIN, le=_ENUM_MAX)] | str  # its number, or (leniently) its name


class _Base(msgspec.Struct, rename="camel", gc=False):
    """List fields default to a shared empty tuple, not ``[]``: msgspec copies a mutable
    default into every object that lacks the field (most spans have no events or links),
    and nothing appends to a decoded list."""


class ArrayValue(_Base):
    values: list[AnyValue] = ()  # type: ignore[assignment]


class KeyValueList(_Base):
    values: list[KeyValue] = ()  # type: ignore[assignment]

    def __post_init__(self) -> None:  # (run by the decoder and by convert, for this type only)
        try:
            _decoded.cell[0] += 1
        except AttributeError:  # this thread's first
            maps_decoded()[0] += 1


#: per thread (loads in several threads stay apart): see maps_decoded
_decoded = threading.local()


def maps_decoded() -> list[int]:
    """How many map values (``kvlistValue``) this thread has decoded so far, in a list of
    one, to read on the hot path at the cost of a subscript.

    Why: OTLP allows map values (OpenTelemetry Python cannot write one), whose keys are
    attribute names too (flowmap.masking), but nearly no input has any. The loader
    compares it before and after each decode: only a span whose attributes (or events'
    or links') held one is looked at for them, where even a search of each line's
    bytes for the key cost ~5 % of the load. See :func:`maps_counted`."""
    cell = getattr(_decoded, "cell", None)
    if cell is None:
        cell = _decoded.cell = [0]
    return cell


class AnyValue(_Base):
    string_value: _Str | None = None
    bool_value: bool | None = None
    int_value: _Int64 | None = None
    double_value: float | None = None
    array_value: ArrayValue | None = None
    kvlist_value: KeyValueList | None = None
    bytes_value: _Str | None = None  # base64, kept as the base64 text


class KeyValue(_Base):
    key: _Name = ""
    value: AnyValue | None = None


class Resource(_Base):
    attributes: list[KeyValue] = ()  # type: ignore[assignment]


class Status(_Base):
    code: _Enum = 0
    message: _Str = ""


def _rename(name: str) -> str:
    """JSON names of the span-side Structs: OTLP's lowerCamelCase, except fields the loader
    fills in (under a name no OTLP producer writes; the loader sets them on every span,
    so the input can never set them)."""
    special = _JSON_NAMES.get(name)
    if special is not None:
        return special
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


_JSON_NAMES = {
    "kvs": "attributes",
    "start_ns": "startTimeUnixNano",
    "end_ns": "endTimeUnixNano",
    **{
        name: "flowmap.loader." + name
        for name in (
            "service", "resource", "origin", "tenant", "boundary", "scoped", "key_id",
            "status_code", "shape", "_attrs",
        )
    },
}  # fmt: skip


#: Fields the loader fills in: typed Any so that whatever an input writes under their
#: JSON names (see _rename) decodes without failing the span; the loader overwrites
#: every one of them on every span it keeps.
_Filled = Any


class _WithAttributes(msgspec.Struct, gc=False):
    """The ``attributes`` of the analyzer's model as a dict, built on first use: the
    analyzer's hot path reads only the few attributes it needs (:class:`AttributeShape`),
    so most spans never build one."""

    @property
    def attributes(self) -> dict[str, Any]:
        d = self._attrs  # type: ignore[attr-defined]
        if d is None:
            kvs = self.kvs  # type: ignore[attr-defined]
            if kvs.__class__ is msgspec.Raw:  # RawSpan: validated by the loader already
                kvs = decode_key_values(kvs)
            d = self._attrs = attributes(kvs)
        return d


class Event(_WithAttributes, rename=_rename):
    name: _Name = ""
    time_unix_nano: _Time = 0
    kvs: list[KeyValue] = ()  # type: ignore[assignment]
    _attrs: _Filled = None


class Link(_WithAttributes, rename=_rename):
    trace_id: str = ""
    span_id: str = ""
    kvs: list[KeyValue] = ()  # type: ignore[assignment]
    _attrs: _Filled = None


class Span(_WithAttributes, rename=_rename):
    """One OTLP span, decoded straight into the analyzer's span.

    The loader validates and normalises the decoded fields in place (ids lowercase,
    ``parent_span_id`` None for a root, ``kind`` an integer, invalid links dropped) and
    fills in the derived ones, so the object the decoder made is the one the analysis
    reads: it has every field and property of :class:`flowmap.model.Span` (whose
    hand-built instances the analysis accepts as well), ``attributes`` built lazily.
    """

    trace_id: str = ""
    span_id: str = ""
    parent_span_id: str = ""
    name: _Name = ""
    kind: _Enum = 0
    start_ns: _Time = 0
    end_ns: _Time = 0
    kvs: list[KeyValue] = ()  # type: ignore[assignment]
    events: list[Event] = ()  # type: ignore[assignment]
    links: list[Link] = ()  # type: ignore[assignment]
    status: Status | None = None  # read into status_code by the loader, then dropped
    # filled in by the loader (types in the comments; see _Filled)
    service: _Filled = ""  # str
    resource: _Filled = None  # dict[str, Any], shared by the spans of one resource
    origin: _Filled = ""  # str, "file:line"
    tenant: _Filled = None  # str | None
    boundary: _Filled = None  # str | None
    scoped: _Filled = None  # bool | None
    key_id: _Filled = None  # str | None
    status_code: _Filled = 0  # int
    shape: _Filled = None  # AttributeShape of the attribute names
    _attrs: _Filled = None  # dict[str, Any] | None, built on first use

    @property
    def operation(self) -> str:
        """This span's operation, as findings name it: service and span name (its
        flow-map node writes a UUID in the name as ``{uuid}``: graph.generic_name)."""
        return f"{self.service} {self.name}"


class RawSpan(Span, rename=_rename):
    """A :class:`Span` whose attributes stay undecoded JSON until something reads them.

    The loader's fast path decodes lines into these: it decodes each span's attribute
    list on its own (:func:`decode_key_values`), reads what the analysis needs, and lets
    the decoded list go at once, so the ~20 objects an attribute list decodes into are
    freed while they are still in the CPU cache instead of living as long as the trace.
    ``kvs`` references the line it was decoded from (:func:`detach` copies it out).
    """

    kvs: msgspec.Raw = msgspec.Raw(b"[]")  # type: ignore[assignment]


def detach(span: Any) -> None:
    """Let a span that is kept (a sample trace) stop pinning the line it was read from."""
    if span.__class__ is RawSpan:
        span.kvs = span.kvs.copy()


class _RawScopeSpans(_Base):
    spans: list[RawSpan] = ()  # type: ignore[assignment]


class _RawResourceSpans(_Base):
    resource: Resource | None = None
    scope_spans: list[_RawScopeSpans] = ()  # type: ignore[assignment]
    instrumentation_library_spans: list[_RawScopeSpans] = ()  # type: ignore[assignment]


class _RawTracesData(_Base):
    resource_spans: list[_RawResourceSpans] = ()  # type: ignore[assignment]


class AttributeShape:
    """What a span's attribute *names* say, shared by every span with the same names.

    Spans of one instrumentation point carry the same keys in the same order, so the
    tuple of keys is looked up once per span and everything the analysis derives from
    names alone is worked out once per distinct tuple: where the contract's attributes
    are in the list, whether boundary inference has anything to read, and the rules'
    caches (whether every name is known to be plain, whether any holds tool arguments).
    """

    __slots__ = (
        "keys", "tenant", "inbound", "boundary", "scoped", "proxy", "infer", "http", "eager", "quiet_for", "flags_for",
        "no_args", "no_output_args", "unscoped", "urls", "queries", "systems", "named", "inner",
        "with_inner",
    )

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys
        last = {k: i for i, k in enumerate(keys)}  # a repeated key: the last one wins
        self.tenant: int = last.get(_TENANT_KEY, -1)
        #: where ``flowmap.tenant.inbound`` is (the tag an http.server received in baggage)
        self.inbound: int = last.get(TENANT_INBOUND, -1)
        self.boundary: int = last.get(_BOUNDARY_KEY, -1)
        self.scoped: int = last.get(_SCOPED_KEY, -1)
        #: where ``flowmap.unscoped`` is: a record-mode boundary that ran unbound (the
        #: loader then reads its tag as none)
        self.unscoped: int = last.get(UNSCOPED, -1)
        #: where ``component`` is, which Envoy sets to ``proxy`` (see flowmap.transparent)
        self.proxy: int = last.get(PROXY_KEY, -1)
        #: some key boundary inference reads besides the HTTP ones
        self.infer: bool = not _INFER_KEYS.isdisjoint(keys) or reads_messaging(keys)
        self.http: bool = not _HTTP_INFER_KEYS.isdisjoint(keys)
        #: a flag the rules always read (flowmap.baggage.sent, flowmap.redacted), or
        #: flowmap.tenant.inbound, whose value they check: the loader builds the attribute
        #: dict from the list it decoded anyway
        self.eager: bool = not RULE_FLAGS.isdisjoint(keys) or self.inbound >= 0
        #: rules' cache: the tenant-attribute names for which every key is known plain
        self.quiet_for: object = None
        #: rules' cache: the same, every key known plain or one of those flags (or
        #: flowmap.tenant.inbound, its value checked per span)
        self.flags_for: object = None
        #: rules' cache: True once every key is known not to hold tool arguments
        self.no_args: bool = False
        #: rules' cache: True once every key is known not to hold a model's tool calls
        self.no_output_args: bool = False
        #: where the attributes that may hold a URL's query are (conventions.URL_KEYS)
        self.urls: tuple[int, ...] = tuple([i for i, k in enumerate(keys) if k in URL_KEYS])
        #: where the attributes that may hold query or filter text are
        #: (conventions.holds_query_text), whose literals may be a tenant's
        self.queries: tuple[int, ...] = tuple([i for i, k in enumerate(keys) if holds_query_text(k)])
        #: where the database's system is named, when the span also has query text: a
        #: cache's command text holds keys, which name what they hold (:func:`holds_keys`)
        self.systems: tuple[int, ...] = tuple([i for i, k in enumerate(keys) if k in SYSTEM_KEYS]) if self.queries else ()
        #: where a URL's path, a route or a destination's name is (conventions.NAMING_KEYS),
        #: which may name a tenant in words and its id after (:func:`holds_naming_words`)
        self.named: tuple[int, ...] = tuple([i for i, k in enumerate(keys) if k in NAMING_KEYS])
        #: the shape of spans some of whose attribute values (or their events' or links')
        #: hold names of their own: maps (:func:`holds_maps`), JSON text
        #: (:func:`holds_text`), a URL's query (:func:`holds_query`), query or filter text
        #: with a quoted literal (:func:`holds_literals`), judged like attribute
        #: names (flowmap.masking.holds_names): the rules never clear it by its names
        #: (its own object, see :func:`with_inner`)
        self.inner: bool = False
        self.with_inner: AttributeShape | None = None


def with_inner(shape: AttributeShape) -> AttributeShape:
    """The variant of ``shape`` (same names) for a span whose values hold names."""
    if shape.inner:
        return shape
    variant = shape.with_inner
    if variant is None:
        variant = shape.with_inner = AttributeShape(shape.keys)
        variant.inner = True
        variant.eager = True  # the rules read its values: built from the list decoded anyway
    return variant


_TENANT_KEY, _BOUNDARY_KEY, _SCOPED_KEY = TENANT, BOUNDARY, SCOPED
_INFER_KEYS, _HTTP_INFER_KEYS = DECIDING_KEYS, HTTP_KEYS
_SHAPES: dict[tuple[str, ...], AttributeShape] = {}
# A hostile input with endless distinct key sets gets unshared shapes past these: shapes,
# and names held by all of them (a shape keeps its names alive: 50,000 shapes of 200
# random names each would hold 10 million strings)
_SHAPES_MAX = 50_000
_SHAPE_KEYS_MAX = 1_000_000
_shape_keys = 0


def shape_of(keys: tuple[str, ...]) -> AttributeShape:
    """The shared :class:`AttributeShape` of a tuple of attribute names."""
    global _shape_keys
    shape = _SHAPES.get(keys)
    if shape is None:
        shape = AttributeShape(keys)
        if len(_SHAPES) < _SHAPES_MAX and _shape_keys + len(keys) <= _SHAPE_KEYS_MAX:
            _SHAPES[keys] = shape
            _shape_keys += len(keys)
    return shape


class ScopeSpans(_Base):
    spans: list[Span] = ()  # type: ignore[assignment]


class ResourceSpans(_Base):
    resource: Resource | None = None
    scope_spans: list[ScopeSpans] = ()  # type: ignore[assignment]
    #: the name of scopeSpans before OTLP 0.15 (2021), in older files
    instrumentation_library_spans: list[ScopeSpans] = ()  # type: ignore[assignment]


#: the JSON names of a ResourceSpans' scope spans, today's and the old one (see scopes)
SCOPE_SPANS_NAMES = ("scopeSpans", "instrumentationLibrarySpans")


def scopes(rs: Any) -> Any:
    """A ResourceSpans' scope spans: the old name only when the new one is absent (a
    sender in transition may write the same spans under both; the proto says to ignore
    the old one then)."""
    return rs.scope_spans or rs.instrumentation_library_spans


def scopes_name(rs: Any) -> str:
    """The field :func:`scopes` reads a ResourceSpans' scope spans from."""
    return SCOPE_SPANS_NAMES[0] if rs.scope_spans else SCOPE_SPANS_NAMES[1]


class TracesData(_Base):
    resource_spans: list[ResourceSpans] = ()  # type: ignore[assignment]


# strict=False: 64-bit integers may be decimal strings, doubles "NaN"/"Infinity".
_decoder = msgspec.json.Decoder(TracesData, strict=False)
decode_traces_data = _decoder.decode
#: the loader's fast path: spans as RawSpan, their attribute lists decoded one by one
decode_traces_data_raw = msgspec.json.Decoder(_RawTracesData, strict=False).decode
decode_key_values = msgspec.json.Decoder(list[KeyValue], strict=False).decode


class KeyDecoder:
    """Decodes attribute lists with each known key as one shared string object.

    Why: the loader looks up every span's tuple of keys (its :class:`AttributeShape`),
    and hashing and comparing ten freshly decoded key strings per span was a tenth of its
    own time. Keys decoded as a ``Literal`` of the keys seen so far come back as the
    Literal's own objects, their hashes known, equal by identity (the loader ~3 %
    faster; benchmarks/README.md). A list with a key not in the vocabulary fails validation
    (:meth:`is_miss`); the caller then learns its keys (:meth:`learn`) and decodes again. The
    vocabulary is bounded (count, key length, rebuilds): input with ever-new keys
    turns it off for the rest of the load (:attr:`decode` is then the plain decoder),
    so hostile input costs at most a bounded number of second decodes.
    """

    VOCABULARY_MAX = 2048  # distinct keys
    KEY_MAX_CHARS = 1024  # a longer key turns learning off
    REBUILDS_MAX = 64  # decoder rebuilds (each learns at least one key)

    def __init__(self, seed: Iterable[str] = ()) -> None:
        self._known: dict[str, None] = {}
        self._rebuilds = 0
        #: the attribute-list decoder to use now
        self.decode = decode_key_values
        # misses are told by msgspec's message: should a release word it otherwise, every
        # line with a new key would take the slow path, so learning is then never begun
        self.learning = _misses_recognised()
        self.learn(seed, counted=False)

    @staticmethod
    def is_miss(exc: BaseException) -> bool:
        """Whether a decode by :attr:`decode` failed on a key it does not know (and
        maybe on nothing else)."""
        if not isinstance(exc, msgspec.ValidationError):
            return False
        text = str(exc)  # (never shown: it repeats the key)
        return text.startswith("Invalid enum value") and text.endswith("].key`")

    def learn(self, keys: Iterable[str], *, counted: bool = True) -> bool:
        """Add ``keys`` to the vocabulary; False when nothing was new, or when that is
        not possible (a key too long, the bounds reached: learning then stops for good)."""
        if not self.learning:
            return False
        new = [k for k in dict.fromkeys(keys) if k not in self._known]
        if not new:
            return False
        if (
            any(len(k) > self.KEY_MAX_CHARS for k in new)
            or len(self._known) + len(new) > self.VOCABULARY_MAX
            or self._rebuilds >= self.REBUILDS_MAX
        ):
            self.learning = False
            self.decode = decode_key_values
            return False
        self._known.update(dict.fromkeys(new))
        self._rebuilds += counted
        self.decode = _literal_keys_decoder(tuple(self._known))
        return True


def _literal_keys_decoder(keys: tuple[str, ...]) -> Any:
    """An attribute-list decoder whose keys must be one of ``keys`` (and come back as
    those very objects): a KeyValue subclass, so isinstance holds."""
    cls = msgspec.defstruct(
        "KeyValue", [("key", Literal[keys], ""), ("value", AnyValue | None, None)], bases=(KeyValue,),
        rename="camel", gc=False,
    )
    return msgspec.json.Decoder(list[cls], strict=False).decode  # type: ignore[valid-type]


@functools.cache
def _misses_recognised() -> bool:
    """Whether :meth:`KeyDecoder.is_miss` recognises this msgspec's error for an unknown
    key (tried once per process on a one-key vocabulary)."""
    try:
        _literal_keys_decoder(("known",))(b'[{"key": "unknown"}]')
    except msgspec.ValidationError as exc:
        return KeyDecoder.is_miss(exc)
    return False


_ARRAYS_DEEP = NESTED_DEPTH  # arrays looked into for a map (as masking looks); deeper ones are taken to hold one


def _array_holds(array: ArrayValue, leaf: Any, depth: int = 0) -> bool:
    """Whether a value in ``array``, or in an array inside it, is one ``leaf`` says yes to
    (an array past :data:`_ARRAYS_DEEP` is taken to hold one)."""
    for v in array.values:
        if leaf(v):
            return True
        if v.array_value is not None and (depth >= _ARRAYS_DEEP or _array_holds(v.array_value, leaf, depth + 1)):
            return True
    return False


def _is_map(v: AnyValue) -> bool:
    return v.kvlist_value is not None


def _is_json_text(v: AnyValue) -> bool:
    s = v.string_value
    return s is not None and s[:1] in JSON_HEADS and is_json_text(s)


def holds_maps(kvs: list[KeyValue]) -> bool:
    """Whether a value of a decoded attribute list is a ``kvlistValue``, or an array
    holding one (see :class:`AttributeShape` ``inner``)."""
    for kv in kvs:
        v = kv.value
        if v is not None and (
            v.kvlist_value is not None or (v.array_value is not None and _array_holds(v.array_value, _is_map))
        ):
            return True
    return False


def holds_text(kvs: list[KeyValue]) -> bool:
    """Whether a string of a decoded attribute list (a value, or in an array value) is JSON
    text of an object or array (conventions.is_json_text; see :class:`AttributeShape` ``inner``)."""
    heads = JSON_HEADS
    for kv in kvs:
        v = kv.value
        if v is not None:
            s = v.string_value
            if s is not None:
                if s[:1] in heads and is_json_text(s):
                    return True
            elif v.array_value is not None and _array_holds(v.array_value, _is_json_text):
                return True
    return False


def holds_query(kvs: list[KeyValue], urls: tuple[int, ...]) -> bool:
    """Whether a URL attribute of a decoded attribute list (at ``urls``: its shape's
    :attr:`AttributeShape.urls`) has a query parameter (a ``=``)."""
    for i in urls:
        v = kvs[i].value
        if v is not None and v.string_value is not None and "=" in v.string_value:
            return True
    return False


def holds_naming_words(kvs: list[KeyValue], named: tuple[int, ...]) -> bool:
    """Whether a URL's path, a route or a destination's name of a decoded attribute list (at
    ``named``: its shape's :attr:`AttributeShape.named`) holds a word a tenant name starts
    with (flowmap.masking.may_name_in_words: ``/v1/chat`` does not)."""
    for i in named:
        v = kvs[i].value
        if v is not None and v.string_value is not None and may_name_in_words(v.string_value):
            return True
    return False


def holds_literals(kvs: list[KeyValue], queries: tuple[int, ...] | None = None) -> bool:
    """Whether an attribute of a decoded list holding query or filter text (at ``queries``:
    its shape's :attr:`AttributeShape.queries`; else found by name) has a quoted literal."""
    at = queries if queries is not None else [i for i, kv in enumerate(kvs) if holds_query_text(kv.key)]
    for i in at:
        v = kvs[i].value
        s = None if v is None else v.string_value
        if s is not None and has_quote(s):
            return True
    return False


def holds_keys(kvs: list[KeyValue], shape: AttributeShape) -> bool:
    """Whether a decoded attribute list is a cache's span (its :attr:`AttributeShape.systems`
    naming one) whose command text (at :attr:`AttributeShape.queries`) holds a key of
    segments (conventions.holds_key_text: ``GET ?`` does not)."""
    for i in shape.systems:
        v = kvs[i].value
        if v is not None and is_cache_system(v.string_value):
            for j in shape.queries:
                q = kvs[j].value
                s = None if q is None else q.string_value
                if s is not None and holds_key_text(s):
                    return True
            return False
    return False


@functools.cache
def maps_counted() -> bool:
    """Whether this msgspec runs ``__post_init__`` as it decodes, so that
    :func:`maps_decoded` counts (tried once per process; else the loader looks at every span)."""
    before = maps_decoded()[0]
    msgspec.json.decode(b'{"kvlistValue": {}}', type=AnyValue)
    return maps_decoded()[0] != before


def convert(obj: Any, cls: type) -> Any:
    """Generic decoded JSON to one of the Structs, with the same rules as the decoder."""
    return msgspec.convert(obj, cls, strict=False)


def any_value(value: AnyValue | None) -> Any:
    """The Python value of an OTLP ``AnyValue`` (``None`` when it holds nothing)."""
    if value is None:
        return None
    if value.string_value is not None:
        return value.string_value
    if value.bool_value is not None:
        return value.bool_value
    if value.int_value is not None:
        return value.int_value
    if value.double_value is not None:
        return value.double_value
    if value.array_value is not None:
        return [any_value(v) for v in value.array_value.values]
    if value.kvlist_value is not None:
        return attributes(value.kvlist_value.values)
    if value.bytes_value is not None:
        return value.bytes_value
    return None


def attributes(kvs: list[KeyValue]) -> dict[str, Any]:
    """OTLP ``KeyValue`` list as a plain dict; the common string case is inlined."""
    return {
        kv.key: (
            s
            if (v := kv.value) is not None and (s := v.string_value) is not None
            else any_value(v)
        )
        for kv in kvs
    }


_KIND_NAMES = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


def _enum(value: int | str, names: dict[str, int]) -> int:
    if type(value) is int:
        return value
    text = str(value).strip().upper()
    if text in names:
        return names[text]
    for name, number in names.items():  # lenient: "SERVER", "server"
        if name.endswith("_" + text):
            return number
    if len(text) > 11:  # longer than any int32: no int() of a hostile 100k-digit string
        raise ValueError("enum number out of range")
    number = int(text)  # a number written as a string; ValueError otherwise
    if not _ENUM_MIN <= number <= _ENUM_MAX:
        raise ValueError("enum number out of range")
    return number


def span_kind(value: int | str) -> int:
    """SpanKind as its integer; accepts the enum names too. ValueError when neither."""
    return _enum(value, _KIND_NAMES)


def status_code(value: int | str) -> int:
    """Status code as its integer; accepts the enum names too. ValueError when neither."""
    return _enum(value, _STATUS_NAMES)
