"""``flowmap.configure()``: the one call a platform adds to its app.

It builds (or extends) a TracerProvider with flowmap's processors — tenant tagging at
start, raw-id redaction before export, alerts on unscoped spans — and its exporters:
the OTLP JSON Lines file, plus the standard OTLP exporter when the usual ``OTEL_*``
variables ask for it; then instruments httpx with destination-aware baggage.

If the application already installed an SDK TracerProvider (or passes one), flowmap
keeps it and its exporters and only *adds* its processors. Calling ``configure`` again
on the same provider updates settings and never adds processors twice.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import types
from collections.abc import Callable, Iterable
from typing import Any

from .otelenv import check_batch_settings, check_environment, shown

# The SDK reads some OTEL_* variables while it is imported, and refuses a bad value with
# a plain ValueError: checked first, so even that is a ConfigError (again at each call;
# the batch processor's settings where one is built).
check_environment(batch=False)

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from . import attributes as A
from . import runtime
from .alerts import AlertProcessor, RateLimit, UnscopedAlert
from .ending import ends_by_default_here, flush_multiprocessing_workers, flush_on_ending_signals
from .errors import ConfigError
from .hosts import AllowedHosts
from .processors import FlowmapSpanProcessor, TenantSpanProcessor
from .runtime import Runtime
from .tagging import Tagger

__all__ = ["configure", "Runtime", "otlp_requested"]

_log = logging.getLogger("flowmap")
_lock = threading.RLock()
_MARK = "_flowmap_runtime"  # set on providers flowmap has extended

_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def otlp_requested() -> bool:
    """Whether the environment asks for the standard OTLP trace exporter.

    ``OTEL_TRACES_EXPORTER`` decides when set (``otlp`` in the list, ``none`` disables);
    otherwise an OTLP endpoint variable being set does.
    """
    names = _env_exporter_names()
    if names is not None:
        return "otlp" in names
    return any(os.environ.get(v) for v in _ENDPOINT_VARS)


def _env_exporter_names() -> set[str] | None:
    raw = os.environ.get("OTEL_TRACES_EXPORTER")
    if raw is None or not raw.strip():
        return None
    return {n.strip().lower() for n in raw.split(",") if n.strip()}


_ENV_EXPORTERS = ("otlp", "console", "none")  # the OTEL_TRACES_EXPORTER names "auto" follows


def _warn_unsupported_env_exporters() -> None:
    """Say which OTEL_TRACES_EXPORTER names "auto" exports to none of (a typo, or one
    only opentelemetry-instrument loads): a warning, as the variable may be meant for
    that too, and the trace file is written either way."""
    unsupported = sorted((_env_exporter_names() or set()).difference(_ENV_EXPORTERS))
    if unsupported:
        _log.warning(
            "flowmap: OTEL_TRACES_EXPORTER names %s, which flowmap does not export to "
            "(it knows otlp, console and none; its trace file is written either way)",
            ", ".join(shown(n) for n in unsupported),
        )


def _otlp_exporter() -> SpanExporter:
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip().lower()
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc

            return Grpc()
        except ImportError as err:
            raise ConfigError("OTLP protocol grpc requested but opentelemetry-exporter-otlp-proto-grpc is not installed") from err
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # reads OTEL_EXPORTER_OTLP_* (endpoint, headers, timeout) itself


def _jsonl_exporter(out: str | os.PathLike[str] | None) -> SpanExporter:
    try:
        from .exporter import JsonLinesSpanExporter
    except ImportError as err:  # pragma: no cover - shipped with flowmap
        raise ConfigError("flowmap's JSON Lines exporter is unavailable") from err
    return JsonLinesSpanExporter(out)


class _BatchSpanProcessor(BatchSpanProcessor):
    """The SDK's batch processor; in a multiprocessing child (where SIGTERM is left at its
    default, see ending.keep_default_ending_signals) each span is exported as it ends, so
    a worker that Pool.terminate() kills while idle has nothing buffered to lose."""

    def on_end(self, span: Any) -> None:
        super().on_end(span)
        if ends_by_default_here():
            try:
                self.force_flush()
            except Exception:  # noqa: BLE001 - never raise into the application
                pass


def _build_exporters(exporters: str | Iterable[Any] | None, out: Any) -> list[SpanExporter]:
    """``"auto"``: the JSON Lines file, plus OTLP/console when ``OTEL_*`` asks.
    Otherwise a list of names (``jsonl``, ``otlp``, ``console``) and/or SpanExporter
    instances; ``None``/``"none"``/``()`` adds no exporter (the app brings its own)."""
    if exporters is None:
        return []
    if isinstance(exporters, str):
        if exporters == "auto":
            items: list[Any] = ["jsonl"]
            if otlp_requested():
                items.append("otlp")
            if "console" in (_env_exporter_names() or ()):
                items.append("console")
            _warn_unsupported_env_exporters()
        elif exporters == "none":
            items = []
        else:
            items = [n.strip() for n in exporters.split(",") if n.strip()]
    else:
        items = list(exporters)
    built: list[SpanExporter] = []
    for item in items:
        if isinstance(item, SpanExporter):
            built.append(item)
        elif item in ("jsonl", "file"):
            built.append(_jsonl_exporter(out))
        elif item == "otlp":
            built.append(_otlp_exporter())
        elif item == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            built.append(ConsoleSpanExporter())
        else:
            raise ConfigError("unknown exporter; use 'auto', 'jsonl', 'otlp', 'console' or a SpanExporter")
    return built


def _resource(service_name: str | None, tagger: Tagger) -> Resource:
    attrs: dict[str, Any] = {A.KEY_ID: tagger.key_id}
    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES win over the code's default name,
    # so operators can rename a service without a code change.
    env_named = bool(os.environ.get("OTEL_SERVICE_NAME")) or "service.name=" in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    if service_name and not env_named:
        attrs[SERVICE_NAME] = service_name
    return Resource.create(attrs)


def _host_entries(allowed_hosts: str | Iterable[str] | None) -> tuple[str, ...]:
    """``allowed_hosts`` as a tuple of entries: one string is one host (as in
    ``[tool.flowmap]``), not a list of its characters; an entry that is no string is an error."""
    if allowed_hosts is None:
        return ()
    if isinstance(allowed_hosts, str):
        return (allowed_hosts,)
    try:
        entries = tuple(allowed_hosts)
    except TypeError:
        entries = None
    if entries is None or isinstance(allowed_hosts, (bytes, bytearray)) or not all(
        isinstance(e, str) for e in entries
    ):
        raise ConfigError(
            "allowed_hosts must be a host name or a list of them (strings: 'api.partner.example', "
            "'*.corp.example', an IP address or a CIDR network)"
        )
    return entries


def _add_key_id(provider: TracerProvider, tagger: Tagger) -> None:
    """Stamp ``flowmap.key_id`` on a provider's resource, and on the tracers it already
    made: the SDK hands out one tracer per scope, holding the resource it began with, so
    after a new key (configure() again) a stale key id would sit beside the new key's
    tags and one tenant would look like two."""
    try:
        res = provider.resource
        if res.attributes.get(A.KEY_ID) == tagger.key_id:
            return
        new = res.merge(Resource({A.KEY_ID: tagger.key_id}))
        provider._resource = new  # noqa: SLF001
        with getattr(provider, "_tracers_lock", threading.Lock()):
            for tracer in list(getattr(provider, "_tracers", {}).values()):
                if getattr(tracer, "resource", None) is res:
                    tracer.resource = new
    except Exception:  # noqa: BLE001
        _log.debug("flowmap: could not add key id to the resource", exc_info=True)


def configure(
    *,
    service_name: str | None = None,
    tenant_key: str | bytes | None = None,
    dev_mode: bool | None = None,
    out: str | os.PathLike[str] | None = None,
    exporters: str | Iterable[Any] | None = "auto",
    alert_scope: str = "boundary",
    alert_callback: Callable[[UnscopedAlert], Any] | None = None,
    alert_rate_limit: RateLimit | None = None,
    boundary_mode: str | None = None,
    allowed_hosts: str | Iterable[str] = (),
    instrument_httpx: bool = True,
    tracer_provider: TracerProvider | None = None,
    meter_provider: Any = None,
    set_global: bool = True,
    guard_baggage: bool | None = None,
) -> Runtime:
    """Set up tenant-scoped tracing for this process and return its :class:`Runtime`.

    ``tenant_key`` (else ``FLOWMAP_TENANT_KEY``) keys the opaque tags; without one this
    raises ConfigError unless ``dev_mode`` (or ``FLOWMAP_DEV_MODE=1``) is on. ``out`` is
    the JSON Lines file (default ``$FLOWMAP_FILE`` or ``flowmap-traces.jsonl``); a relative
    path is made absolute here, against the current directory, so a later ``os.chdir``
    keeps every span in that one file.
    ``allowed_hosts``: hosts beyond the defaults that may receive the tenant baggage, one
    string or a list of them (names, ``*.suffix``, IP addresses, CIDR networks); message
    brokers too, where the publishing instrumentation names its broker.
    ``instrument_httpx`` traces outbound ``httpx`` requests, and ``httpx2`` ones when httpx2
    is installed (one switch: both carry the tenant baggage by the same rules); undone by
    ``Runtime.shutdown()``.
    ``set_global=False`` leaves OpenTelemetry's global provider alone (tests, embedding).
    ``guard_baggage`` (default: ``set_global``) swaps the global W3C baggage propagator
    for one that never injects the tenant tag outside flowmap's destination check, so
    other instrumented clients (requests, aiohttp, ...) cannot send it anywhere; undone
    by ``Runtime.shutdown()``.
    """
    if alert_scope not in ("boundary", "all"):
        raise ConfigError("alert_scope must be 'boundary' or 'all'")
    check_environment(batch=False)
    if service_name is not None and not isinstance(service_name, str):
        raise ConfigError(f"service_name must be text, not {type(service_name).__name__}")
    if out is not None and os.path.isdir(out):
        raise ConfigError(f"out is a directory, not a trace file: {os.fspath(out)!r}")
    mode = None if boundary_mode is None else runtime.validate_boundary_mode(boundary_mode)
    tagger = Tagger(tenant_key, dev_mode=dev_mode)
    host_entries = _host_entries(allowed_hosts)
    allowed = AllowedHosts.from_config(host_entries)

    with _lock:
        provider = tracer_provider
        if provider is None and set_global:
            existing = trace.get_tracer_provider()
            if isinstance(existing, TracerProvider):
                provider = existing  # the app's own provider: keep it and its exporters
        owns = provider is None
        if provider is None:
            provider = TracerProvider(resource=_resource(service_name, tagger))
        elif not isinstance(provider, TracerProvider):
            raise ConfigError("flowmap needs an OpenTelemetry SDK TracerProvider")
        else:
            _add_key_id(provider, tagger)

        rt: Runtime | None = getattr(provider, _MARK, None)
        if rt is not None:
            _update(rt, tagger, alert_scope, alert_callback)
            ignored = [name for name, given in (
                ("out", out is not None),
                ("exporters", exporters not in ("auto", "none", None) and exporters != []),
                ("service_name", service_name is not None),
            ) if given]
            if ignored:
                _log.warning(
                    "flowmap: configure() again on a provider flowmap already extends: %s not applied "
                    "(its exporters and resource stay; call Runtime.shutdown() first to change them)",
                    ", ".join(ignored),
                )
        else:
            alerts = AlertProcessor(
                alert_scope, alert_callback, alert_rate_limit, meter_provider=meter_provider
            )
            # One processor for tagging, redaction and alerts: the hot path pays one
            # dispatch, one contextvar read and no attribute locks (see processors.py).
            processors: list[Any] = [FlowmapSpanProcessor(tagger, alerts)]
            for exporter in _build_exporters(exporters, out):
                check_batch_settings()
                processors.append(_BatchSpanProcessor(exporter))
            for p in processors:
                provider.add_span_processor(p)
            rt = Runtime(
                tracer_provider=provider,
                tagger=tagger,
                meter_provider=meter_provider,
                processors=processors,
                owns_provider=owns,
            )
            setattr(provider, _MARK, rt)
            rt._shutdown_hooks.append(lambda p=provider: _unmark(p))

        runtime.set_tagger(tagger)
        if mode is not None:
            runtime.set_boundary_mode(mode)
        runtime.set_runtime(rt)
        if set_global and owns:
            trace.set_tracer_provider(provider)
        if set_global:
            flush_on_ending_signals()  # SIGTERM would end the process without atexit's flush
        flush_multiprocessing_workers()  # a forked worker ends with os._exit: no atexit either

        if set_global if guard_baggage is None else guard_baggage:
            # the guard checks message brokers against allowed_hosts when given; else the
            # list already in force stays (flowmap run's bootstrap sets the project's)
            _guard_baggage(rt, allowed if host_entries else None)

        if instrument_httpx:
            try:
                from . import outbound

                outbound.instrument_httpx(allowed, tracer_provider=provider)
                if outbound.uninstrument_httpx not in rt._shutdown_hooks:
                    rt._shutdown_hooks.append(outbound.uninstrument_httpx)
            except ImportError:
                _log.warning("flowmap: httpx instrumentation unavailable; outbound requests are not traced")
    return rt


def _guard_baggage(rt: Runtime, allowed: AllowedHosts | None) -> None:
    """Guard the global baggage propagator; the shutdown hook undoes only what flowmap did."""
    from . import outbound

    before = propagate.get_global_textmap()
    changed = outbound.guard_global_baggage(allowed) and propagate.get_global_textmap() is not before
    if changed and outbound.unguard_global_baggage not in rt._shutdown_hooks:
        rt._shutdown_hooks.append(outbound.unguard_global_baggage)


def _update(rt: Runtime, tagger: Tagger, scope: str, callback: Any) -> None:
    """Re-configuration of an already extended provider: new settings, same processors."""
    rt.tagger = tagger
    for p in rt.processors:
        if isinstance(p, TenantSpanProcessor):
            p.tagger = tagger
        alerts = p.alerts if isinstance(p, FlowmapSpanProcessor) else p
        if isinstance(alerts, AlertProcessor):
            alerts.scope = scope
            alerts.callback = callback


def _unmark(provider: TracerProvider) -> None:
    try:
        delattr(provider, _MARK)
    except AttributeError:
        pass


class _CallableModule(types.ModuleType):
    """Importing ``flowmap.configure`` (the module) rebinds the package attribute
    ``flowmap.configure`` to this module; making the module callable keeps the public
    ``flowmap.configure(...)`` working whichever import happened first."""

    def __call__(self, **kwargs: Any) -> Runtime:
        return configure(**kwargs)


sys.modules[__name__].__class__ = _CallableModule
