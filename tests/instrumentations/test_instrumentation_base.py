"""flowmap.instrumentation, the shared base: disabling, the instrumentation's own tracer
(``instrument(tracer_provider=...)``), and wrappers removed without touching others'."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import pytest
import wrapt
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flowmap import attributes as A
from flowmap.context import RequestContext, bind
from flowmap.errors import MissingContextError
from flowmap.instrumentation import FlowmapInstrumentor, Patches, data_boundary, is_disabled

ACME = RequestContext("acme-corp-7731")


class Store:
    def get(self, key: str) -> str:
        return f"value of {key}"


class SubStore(Store):
    pass


def _tagging(calls: list, label: str):
    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        calls.append(label)
        return wrapped(*args, **kwargs)

    return wrapper


_patches = Patches()
_calls: list = []


class StoreInstrumentor(FlowmapInstrumentor):
    name = "flowmap_test_store"

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        _patches.wrap(__name__, "Store.get", _tagging(_calls, "flowmap"))

    def _uninstrument(self, **kwargs: Any) -> None:
        _patches.unwrap_all()


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    for env in ("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "FLOWMAP_DISABLED_INSTRUMENTATIONS"):
        monkeypatch.delenv(env, raising=False)
    original = vars(Store)["get"]
    _calls.clear()
    yield
    if StoreInstrumentor().is_instrumented_by_opentelemetry:
        StoreInstrumentor().uninstrument()
    Store.get = original  # type: ignore[method-assign]
    if "get" in vars(SubStore):
        del SubStore.get


@pytest.mark.parametrize(
    ("env", "value", "disabled"),
    [
        ("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "*", True),  # as opentelemetry-instrument reads it
        ("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", " redis , * ", True),
        ("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "flowmap_test_store", True),
        ("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "redis", False),
        ("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "all", False),  # an entry point name to OTel
        ("FLOWMAP_DISABLED_INSTRUMENTATIONS", "all", True),
        ("FLOWMAP_DISABLED_INSTRUMENTATIONS", "*", True),
    ],
)
def test_direct_instrument_honours_the_disable_lists(monkeypatch, env, value, disabled):
    monkeypatch.setenv(env, value)
    assert is_disabled("flowmap_test_store") is disabled
    StoreInstrumentor().instrument()
    assert StoreInstrumentor().is_instrumented_by_opentelemetry is not disabled


def test_wrappers_are_removed_when_outermost():
    original = vars(Store)["get"]
    StoreInstrumentor().instrument()
    assert Store().get("k") == "value of k" and _calls == ["flowmap"]
    StoreInstrumentor().uninstrument()
    assert vars(Store)["get"] is original


def test_an_inherited_method_is_inherited_again():
    patches = Patches()
    patches.wrap(__name__, "SubStore.get", _tagging(_calls, "flowmap"))
    assert SubStore().get("k") == "value of k" and _calls == ["flowmap"]
    patches.unwrap_all()
    assert "get" not in vars(SubStore)


def test_another_wrapper_on_top_is_kept_and_ours_spliced_out():
    original = vars(Store)["get"]
    StoreInstrumentor().instrument()
    wrapt.wrap_function_wrapper(__name__, "Store.get", _tagging(_calls, "contrib"))
    theirs = vars(Store)["get"]
    StoreInstrumentor().uninstrument()
    assert vars(Store)["get"] is theirs and theirs.__wrapped__ is original
    Store().get("k")
    assert _calls == ["contrib"]
    unwrap(Store, "get")  # the other one's own uninstrument still works afterwards
    assert vars(Store)["get"] is original


def test_ours_passes_through_below_a_wrapper_it_cannot_splice():
    StoreInstrumentor().instrument()
    below = vars(Store)["get"]
    Store.get = lambda self, key: ("plain", below(self, key))  # type: ignore[method-assign]
    StoreInstrumentor().uninstrument()
    assert Store().get("k") == ("plain", "value of k") and _calls == []
    StoreInstrumentor().instrument()  # re-instrumenting wraps again, on top
    Store().get("k")
    assert _calls == ["flowmap"]


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_tracer_honours_the_provider_given_to_instrument(traced):
    provider, exporter = _provider()
    inst = StoreInstrumentor()
    inst.instrument(tracer_provider=provider)
    with bind(ACME):
        with data_boundary("vector", "search docs", scoped=True, attributes={"x": 1}, tracer=inst.tracer()):
            pass
    (span,) = exporter.get_finished_spans()
    assert span.instrumentation_scope.name == __name__.partition(".")[0]  # its top-level package
    assert (span.attributes[A.BOUNDARY], span.attributes[A.SCOPED], span.attributes["x"]) == ("vector", True, 1)
    assert traced.spans() == []
    inst.uninstrument()
    inst.instrument()  # without a provider: flowmap's, looked up when the span starts
    with bind(ACME):
        with data_boundary("vector", "search docs", scoped=False, tracer=inst.tracer()):
            pass
    (span,) = traced.spans("vector")
    assert span.attributes[A.SCOPED] is False and span.attributes[A.TENANT] == traced.tag(ACME.tenant_id)
    assert len(exporter.get_finished_spans()) == 1


def test_a_second_instrument_call_keeps_the_first_provider(traced):
    provider, exporter = _provider()
    other, other_exporter = _provider()
    inst = StoreInstrumentor()
    inst.instrument(tracer_provider=provider)
    inst.instrument(tracer_provider=other)  # a no-op, like the rest of a second call
    with bind(ACME):
        with data_boundary("cache", "get", scoped=True, tracer=inst.tracer()):
            pass
    assert len(exporter.get_finished_spans()) == 1 and other_exporter.get_finished_spans() == ()


def test_scoped_tracer_boundary_still_fails_closed(traced):
    provider, exporter = _provider()
    inst = StoreInstrumentor()
    inst.instrument(tracer_provider=provider)
    with pytest.raises(MissingContextError):
        with data_boundary("cache", "get", scoped=False, tracer=inst.tracer()):
            pytest.fail("ran without a tenant")
    (span,) = exporter.get_finished_spans()  # the refusal is recorded, on that provider
    assert span.attributes[A.UNSCOPED] is True and not span.status.is_ok


@pytest.mark.parametrize(
    ("distribution", "instrumentor"),
    [
        ("flowmap-instrumentation-redis", "flowmap_instrumentation_redis:RedisInstrumentor"),
        ("flowmap-instrumentation-celery", "flowmap_instrumentation_celery:CeleryTenantInstrumentor"),
        ("flowmap-instrumentation-langgraph", "flowmap_instrumentation_langgraph:LangGraphInstrumentor"),
        ("flowmap-instrumentation-sqlite-vec", "flowmap_instrumentation_sqlite_vec:SqliteVecInstrumentor"),
    ],
)
def test_instrumented_library_is_an_instruments_extra(distribution, instrumentor):
    """As in contrib: the instrumented library is in the ``instruments`` extra, not a hard
    dependency, so opentelemetry-instrument finds the range and checks it (it called
    instrument(skip_dep_check=True) with nothing checked); instrumentation_dependencies()
    returns the same range for direct instrument() calls."""
    import tomllib
    from importlib import import_module
    from pathlib import Path

    from packaging.requirements import Requirement

    module, _, cls = instrumentor.partition(":")
    pytest.importorskip(module)
    pyproject = Path(__file__).parents[2] / "instrumentations" / distribution / "pyproject.toml"
    project = tomllib.loads(pyproject.read_text())["project"]

    def ranges(reqs):
        return sorted((Requirement(r).name, str(Requirement(r).specifier)) for r in reqs)

    instruments = ranges(project["optional-dependencies"]["instruments"])
    assert instruments == ranges(getattr(import_module(module), cls)().instrumentation_dependencies())
    assert not {name for name, _ in instruments} & {Requirement(d).name for d in project["dependencies"]}
