"""The loader's attribute-key decoder (otlp.KeyDecoder): known keys come back as one
shared string each, unknown ones are learned within bounds, and what is loaded is the
same as with plain decoding, warnings included, whatever keys the input brings."""

from __future__ import annotations

import json
from unittest import mock

import msgspec
import pytest

from flowmap import loading, otlp
from flowmap.loading import iter_traces


def kvs(*keys: str, value: dict | None = None) -> bytes:
    return json.dumps([{"key": k, "value": value or {"stringValue": "v"}} for k in keys]).encode()


def test_known_keys_are_shared_objects_and_unknown_ones_are_learned():
    d = otlp.KeyDecoder(["flowmap.tenant"])
    first, second = d.decode(kvs("flowmap.tenant")), d.decode(kvs("flowmap.tenant"))
    assert first[0].key == "flowmap.tenant" and first[0].key is second[0].key
    assert isinstance(first[0], otlp.KeyValue)
    with pytest.raises(msgspec.ValidationError) as miss:
        d.decode(kvs("flowmap.tenant", "db.system"))
    assert d.is_miss(miss.value)
    assert d.learn(["db.system"])
    a, b = d.decode(kvs("db.system")), d.decode(kvs("db.system"))
    assert a[0].key is b[0].key and a[0].value.string_value == "v"


def test_other_validation_errors_are_not_misses():
    d = otlp.KeyDecoder(["k"])
    for bad in (b'[{"key": 5}]', kvs("k", value={"intValue": "x"}), b'[{"key": "k", "value": 3}]'):
        with pytest.raises(msgspec.ValidationError) as err:
            d.decode(bad)
        assert not d.is_miss(err.value), bad


@pytest.mark.parametrize("keys", [
    ["x" * (otlp.KeyDecoder.KEY_MAX_CHARS + 1)],  # one key too long
    [f"k{i}" for i in range(otlp.KeyDecoder.VOCABULARY_MAX + 1)],  # too many at once
])
def test_learning_stops_for_good_past_its_bounds(keys):
    d = otlp.KeyDecoder(["a"])
    assert not d.learn(keys)
    assert not d.learning and d.decode is otlp.decode_key_values
    assert not d.learn(["b"])  # stays off
    assert d.decode(kvs(*keys[:3]))[0].key == keys[0]  # plain decoding takes anything


def test_learning_stops_after_so_many_rebuilds():
    d = otlp.KeyDecoder()
    for i in range(otlp.KeyDecoder.REBUILDS_MAX):
        assert d.learn([f"k{i}"])
    assert not d.learn(["one more"]) and not d.learning


T = "0af7651916cd43dd8448eb211c80319c"


def line(n: int, keys: list[str], values: list | None = None, tid: str = T) -> str:
    attrs = [{"key": k, "value": v} for k, v in zip(keys, values or [{"stringValue": "v"}] * len(keys))]
    spans = [{"traceId": tid, "spanId": f"{n * 10 + i + 1:016x}", "name": "op", "attributes": attrs} for i in range(5)]
    res = {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]}
    return json.dumps({"resourceSpans": [{"resource": res, "scopeSpans": [{"spans": spans}]}]})


def load(path) -> tuple[dict, list[str]]:
    warnings: list[str] = []
    out = {}
    for t in iter_traces([path], on_warning=warnings.append):
        for sid, s in t.spans.items():
            out[(t.trace_id, sid)] = (s.tenant, s.boundary, s.scoped, s.attributes)
    return out, warnings


def test_lines_with_new_keys_load_as_with_plain_decoding(tmp_path):
    lines = [
        line(1, ["flowmap.tenant", "flowmap.boundary"], [{"stringValue": "0123456789abcdef"}, {"stringValue": "db"}]),
        line(2, ["db.system", "flowmap.scoped"], [{"stringValue": "redis"}, {"boolValue": False}]),  # new key
        line(3, ["db.system", "new.key", "n"], [{"stringValue": "x"}, {"stringValue": "y"}, {"intValue": "nope"}]),
        line(4, ["x" * 2000, "db.system"]),  # a key too long to learn: plain decoding from here on
        line(5, ["later.key", "flowmap.tenant"], [{"stringValue": "z"}, {"intValue": "7"}]),
    ]
    f = tmp_path / "t.jsonl"
    f.write_text("\n".join(lines) + "\n")
    learned, learned_warnings = load(f)
    with mock.patch.object(otlp.KeyDecoder, "REBUILDS_MAX", 0):  # never learns: plain decoding
        plain, plain_warnings = load(f)
    assert learned == plain and learned_warnings == plain_warnings
    assert len(learned) == 25  # line 3's bad intValue: the attribute dropped, said once
    assert len(learned_warnings) == 1 and ':3: ' in learned_warnings[0] and 'attribute "n" dropped' in learned_warnings[0]
    assert learned[(T, f"{3 * 10 + 1:016x}")][3] == {"db.system": "x", "new.key": "y"}
    assert learned[(T, f"{5 * 10 + 1:016x}")][0] is None  # a tag that is not a string: no tenant


def test_ever_new_keys_cost_a_bounded_number_of_second_decodes(tmp_path):
    n = otlp.KeyDecoder.REBUILDS_MAX + 40
    f = tmp_path / "t.jsonl"
    f.write_text("\n".join(line(i, [f"key.{i}", "flowmap.tenant"]) for i in range(n)) + "\n")
    calls = []
    real = loading._Loader._learn_keys

    def counted(self, td):
        calls.append(1)
        return real(self, td)

    with mock.patch.object(loading._Loader, "_learn_keys", counted):
        traces, warnings = load(f)
    assert len(traces) == 5 * n and warnings == []
    assert len(calls) == otlp.KeyDecoder.REBUILDS_MAX + 1  # then learning is off for the load


def test_a_msgspec_that_words_misses_otherwise_leaves_plain_decoding(tmp_path):
    """Misses are told apart by msgspec's message; were it worded otherwise, the loader
    must decode plainly from the start (not send every line with a new key down the slow
    path), and load the same."""
    f = tmp_path / "t.jsonl"
    f.write_text("\n".join(line(i, [f"key.{i}", "flowmap.tenant"]) for i in range(5)) + "\n")
    expected = load(f)
    otlp._misses_recognised.cache_clear()
    try:
        with mock.patch.object(otlp.KeyDecoder, "is_miss", staticmethod(lambda exc: False)):
            assert not otlp.KeyDecoder(["a"]).learning
            with mock.patch.object(loading._Loader, "_recover", side_effect=AssertionError("slow path")):
                assert load(f) == expected
    finally:
        otlp._misses_recognised.cache_clear()
    assert otlp.KeyDecoder(["a"]).learning
