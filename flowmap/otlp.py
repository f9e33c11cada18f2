"""The OTLP/JSON trace schema as msgspec Structs, and the conversion of its values.

Why typed Structs: msgspec decodes a whole ``TracesData`` line straight into these
objects in C, validating types and string lengths on the way, several times faster
than decoding to dicts and walking them. Everything the OTLP/JSON mapping allows is
accepted: lowerCamelCase keys (escaped or not), unknown fields ignored, 64-bit
integers as JSON numbers or strings, enums as integers or as their proto names
(``"SPAN_KIND_SERVER"``), doubles as numbers or ``"NaN"``/``"Infinity"`` (the
decoder runs with ``strict=False``, which converts such strings in C).

Structs are ``gc=False``: they only hold strings, numbers, lists and other Structs,
so they can never be part of a reference cycle and the collector need not track them.

A string longer than :data:`MAX_VALUE_CHARS` fails validation, which sends the line
to the loader's lenient path, where the value is truncated and a warning is given.
Integers are bounded the same way, in C and at no measurable cost: times to
``0 … 2**63-1`` nanoseconds (until the year 2262; msgspec cannot bound an int beyond
int64), ``intValue`` to int64, enums to int32, so a hostile huge number fails
validation (its span is skipped with a warning) instead of reaching the analysis.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

__all__ = [
    "MAX_VALUE_CHARS",
    "MAX_NAME_CHARS",
    "AnyValue",
    "KeyValue",
    "Resource",
    "Status",
    "Event",
    "Link",
    "Span",
    "ScopeSpans",
    "ResourceSpans",
    "TracesData",
    "decode_traces_data",
    "any_value",
    "attributes",
    "convert",
    "span_kind",
    "status_code",
]

MAX_VALUE_CHARS = 65_536  # longest attribute string kept; longer ones are truncated
MAX_NAME_CHARS = 4_096  # longest span/event name kept

_Str = Annotated[str, msgspec.Meta(max_length=MAX_VALUE_CHARS)]
_Name = Annotated[str, msgspec.Meta(max_length=MAX_NAME_CHARS)]
_Time = Annotated[int, msgspec.Meta(ge=0, le=(1 << 63) - 1)]
_Int64 = Annotated[int, msgspec.Meta(ge=-(1 << 63), le=(1 << 63) - 1)]
_ENUM_MIN, _ENUM_MAX = -(1 << 31), (1 << 31) - 1  # protobuf enums are int32
_Enum = Annotated[int, msgspec.Meta(ge=_ENUM_MIN, le=_ENUM_MAX)] | str  # its number, or (leniently) its name


class _Base(msgspec.Struct, rename="camel", gc=False):
    pass


class ArrayValue(_Base):
    values: list[AnyValue] = []


class KeyValueList(_Base):
    values: list[KeyValue] = []


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
    attributes: list[KeyValue] = []


class Status(_Base):
    code: _Enum = 0
    message: _Str = ""


class Event(_Base):
    name: _Name = ""
    time_unix_nano: _Time = 0
    attributes: list[KeyValue] = []


class Link(_Base):
    trace_id: str = ""
    span_id: str = ""
    attributes: list[KeyValue] = []


class Span(_Base):
    trace_id: str = ""
    span_id: str = ""
    parent_span_id: str = ""
    name: _Name = ""
    kind: _Enum = 0
    start_time_unix_nano: _Time = 0
    end_time_unix_nano: _Time = 0
    attributes: list[KeyValue] = []
    events: list[Event] = []
    links: list[Link] = []
    status: Status | None = None


class ScopeSpans(_Base):
    spans: list[Span] = []


class ResourceSpans(_Base):
    resource: Resource | None = None
    scope_spans: list[ScopeSpans] = []


class TracesData(_Base):
    resource_spans: list[ResourceSpans] = []


# strict=False: 64-bit integers may be decimal strings, doubles "NaN"/"Infinity".
_decoder = msgspec.json.Decoder(TracesData, strict=False)
decode_traces_data = _decoder.decode


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
