"""Destination-aware propagation for outbound httpx (and httpx2) requests.

``traceparent`` goes to every destination, so traces stay connected across any hop. The
tenant baggage (``flowmap.tenant`` = opaque tag) goes only to hosts the allow list
accepts, and no other baggage member is ever sent by flowmap. Each client span records
``flowmap.boundary="http.client"``, ``server.address`` and ``flowmap.baggage.sent``, so
the analyzer can check every hop.

How: opentelemetry-instrumentation-httpx calls the request hook inside the client span's
scope, right before it injects headers from the *current* context. The hook attaches a
context whose baggage holds exactly what this destination may receive; the
instrumentation's span scope restores the caller's context when the span ends. The span
itself was started before the hook, so processors still saw the caller's baggage.

The hook also runs for every redirect hop (it wraps the transport, which httpx calls once
per hop), and httpx copies the previous hop's headers onto the next one; applications
may also forward an inbound ``baggage`` header themselves. So for a destination that is
not allowed, the hook removes any ``flowmap.tenant`` member already in the request's
``baggage`` header(s) (other members are kept), and ``flowmap.baggage.sent`` says whether
a ``flowmap.tenant`` member really goes out. A member holding the bound tenant's raw id
goes to no destination (nor, from :class:`GuardedBaggagePropagator`, such an entry of
the application's baggage): the contract lets the raw id leave the process in no baggage.

httpx2 (Pydantic's fork of httpx, module ``httpx2``, which the openai 3.x SDK sends
through) is instrumented the same way, with the same hooks, through contrib's
``HTTPX2ClientInstrumentor`` when httpx2 is installed. As for httpx, that wraps
``HTTPTransport.handle_request`` / ``AsyncHTTPTransport.handle_async_request``, so a client
built with its own ``HTTPTransport`` (or a subclass of it, or mounts of them) is traced too;
a transport that is no ``HTTPTransport`` (``MockTransport``, ``ASGITransport``, your own
``BaseTransport``) is not, and sends what the guarded global propagator allows.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor, RequestInfo
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.trace import Span, SpanKind, get_current_span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from . import attributes as A
from .context import _bound, outbound_tag
from .hosts import AllowedHosts
from .processors import keep_attributes
from .redaction import scrub_text

__all__ = [
    "instrument_httpx",
    "uninstrument_httpx",
    "is_instrumented",
    "allowed_hosts",
    "GuardedBaggagePropagator",
    "guard_global_baggage",
    "unguard_global_baggage",
]

_log = logging.getLogger("flowmap.outbound")
_SERVER_ADDRESS = "server.address"
_SERVER_PORT = "server.port"
_DEFAULT_PORTS = {"http": 80, "https": 443}

_lock = threading.Lock()
_allowed: AllowedHosts = AllowedHosts()
_active = False
_provider: Any = None
# The instrumentor classes flowmap instrumented (httpx's; httpx2's too when it is installed).
_ours: set[type] = set()
# Set by the request hook on the context it attaches: this destination may get baggage.
_BAGGAGE_ALLOWED = otel_context.create_key("flowmap.outbound.baggage_allowed")
_BAGGAGE_HEADER = "baggage"
_TENANT_KEY = A.BAGGAGE_KEY.casefold()


# -- flowmap.tenant members already in a carrier's baggage header(s) -------------------


def _is_tenant_member(member: str) -> bool:
    """Whether a W3C baggage list-member is (or any reader could take it for) ``flowmap.tenant``.

    The key is what precedes the first ``=`` and, conservatively, the first ``;``
    (properties); it is percent-decoded the way OpenTelemetry decodes it, trimmed of
    optional whitespace and compared case-insensitively, so no spelling slips through.
    """
    key = member.split("=", 1)[0].split(";", 1)[0]
    if "%" in key or "+" in key:
        key = unquote_plus(key)
    return key.strip().casefold() == _TENANT_KEY


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)


def _read_baggage(carrier: Any) -> list[Any]:
    """The raw values of every ``baggage`` field of ``carrier`` (any letter case)."""
    if carrier is None:
        return []
    get_list = getattr(carrier, "get_list", None)
    if callable(get_list):  # httpx.Headers: case-insensitive, one entry per header line
        return list(get_list(_BAGGAGE_HEADER))
    if isinstance(carrier, list):  # raw [(name, value), ...] (httpx < 0.20)
        return [v for k, v in carrier if _text(k).lower() == _BAGGAGE_HEADER]
    if isinstance(carrier, Mapping):  # dicts, case-insensitive dicts, multidicts (one item per field)
        values: list[Any] = []
        for key, value in carrier.items():
            if _is_baggage_name(key):
                values.extend(value if isinstance(value, (list, tuple)) else [value])
        return values
    return []


def _is_baggage_name(name: Any) -> bool:
    """Whether a carrier's field name is ``baggage``: text or bytes (raw ASGI/WSGI header
    names forwarded as they came, ``b"baggage"``), any letter case."""
    return isinstance(name, (str, bytes, bytearray)) and _text(name).lower() == _BAGGAGE_HEADER


def _write_baggage(carrier: Any, raw: list[Any], value: str) -> None:
    """Replace every ``baggage`` field of ``carrier`` by one holding ``value`` (none if empty)."""
    as_bytes = bool(raw) and isinstance(raw[0], (bytes, bytearray))
    if isinstance(carrier, list):
        names = [k for k, _ in carrier if _text(k).lower() == _BAGGAGE_HEADER]
        carrier[:] = [(k, v) for k, v in carrier if _text(k).lower() != _BAGGAGE_HEADER]
        if value:
            name = names[0] if names else _BAGGAGE_HEADER
            carrier.append((name, value.encode("latin-1") if as_bytes else value))
        return
    if not isinstance(carrier, MutableMapping):
        raise TypeError(f"cannot rewrite baggage in a {type(carrier).__name__}")
    fields = [(k, v) for k, v in carrier.items() if _is_baggage_name(k)]
    for key in {k for k, _ in fields}:
        while key in carrier:  # multi-valued carriers may hold the name several times
            del carrier[key]
    if value:
        new: Any = value.encode("latin-1") if as_bytes else value
        if fields and isinstance(fields[0][1], list):  # a {name: [values]} carrier
            new = [new]
        # a carrier of raw (bytes) header names keeps a bytes name: the client sends either
        bytes_named = bool(fields) and isinstance(fields[0][0], bytes)
        carrier[_BAGGAGE_HEADER.encode() if bytes_named else _BAGGAGE_HEADER] = new


def _drop_members(carrier: Any, drop: Callable[[str], bool]) -> None:
    """Remove the members ``drop`` accepts from ``carrier``'s baggage header(s) (other
    members are kept, in order; several ``baggage`` fields become one; a field left empty
    is dropped). Carriers without such a member are untouched."""
    raw = _read_baggage(carrier)
    if not raw:
        return
    members = [m for value in raw for m in _text(value).split(",")]
    kept = [m for m in members if not drop(m)]
    if len(kept) < len(members):
        _write_baggage(carrier, raw, ",".join(m.strip(" \t") for m in kept if m.strip(" \t")))


def _tenant_in_baggage(carrier: Any, strip: bool) -> bool:
    """Whether ``carrier``'s baggage header(s) carry a ``flowmap.tenant`` member.

    With ``strip``, such members are removed first (see :func:`_drop_members`), so the
    answer is then whether one is still there.
    """
    if strip:
        _drop_members(carrier, _is_tenant_member)
    return any(_is_tenant_member(m) for value in _read_baggage(carrier) for m in _text(value).split(","))


# -- the bound tenant's raw id, which no baggage may carry out of the process ------------


def _carries_raw_id(text: str, raw_ids: tuple[str, ...]) -> bool:
    """Whether a baggage member or value holds one of ``raw_ids`` (as redaction finds it
    in a span), as written or percent-decoded."""
    decoded = unquote_plus(text) if "%" in text or "+" in text else text
    return any(scrub_text(t, raw_ids)[0] != t for t in {text, decoded})


def _raw_ids(context: Context | None) -> tuple[str, ...]:
    """The raw id (and its spellings) of the tenant bound in ``context`` (``None``: here)."""
    b = _bound(context)
    return b.raw_ids if b is not None else ()


def _strip_raw_id(carrier: Any, ids: tuple[str, ...]) -> None:
    """Remove the members holding one of ``ids`` from ``carrier``'s baggage header(s): an
    application's own ``baggage`` header, or one it forwarded. The contract lets the raw
    id leave the process in no baggage, whatever the destination. Never raises."""
    try:
        _drop_members(carrier, lambda member: _carries_raw_id(member, ids))
    except Exception:  # noqa: BLE001 - never break the application's request
        _log.debug("flowmap: could not strip a raw tenant id from the baggage header", exc_info=True)


def _without_raw_id(context: Context | None, ids: tuple[str, ...]) -> Context | None:
    """``context`` less the application's baggage entries holding one of ``ids``."""
    for key, value in otel_baggage.get_all(context).items():
        if _carries_raw_id(f"{key}={value}", ids):
            context = otel_baggage.remove_baggage(key, context)
    return context


class GuardedBaggagePropagator(TextMapPropagator):
    """A propagator whose ``flowmap.tenant`` baggage entry goes out only where flowmap allowed it.

    :func:`guard_global_baggage` wraps every member of the global propagator that could
    send baggage in one of these: W3C ``baggage``, and also those that write baggage
    entries under headers of their own (Jaeger's ``uberctx-*``, OT's ``ot-baggage-*``,
    anything an application or ``OTEL_PROPAGATORS`` adds). So every *other* instrumented
    client (requests, urllib3, aiohttp, gRPC...), which never passes through flowmap's
    destination check, sends the application's other baggage entries (if any) and the
    trace context, but never the tag: the wrapped propagator injects from the context
    less the ``flowmap.tenant`` entry. Where the wrapped propagator writes a ``baggage``
    field, a ``flowmap.tenant`` member already in the carrier's ``baggage`` field(s)
    (forwarded headers, a copied request) is removed too, other members kept. Entries
    and members holding the bound tenant's raw id are left out wherever it goes. Only where
    flowmap's httpx hook allowed the destination is the carrier left as the hook decided,
    and where a message is published to a broker the allow list accepts (see
    :func:`_publish_to`): the context and carrier are then left as they are, so the
    consumer gets the tag (and a ``flowmap.tenant`` member that
    :func:`flowmap.propagation.publish` put in the headers is kept). Extraction is
    unchanged.

    ``inner`` is the propagator guarded (default: a new W3C baggage propagator).
    """

    def __init__(self, inner: TextMapPropagator | None = None) -> None:
        self._inner = inner if inner is not None else W3CBaggagePropagator()
        try:
            self._writes_baggage = _BAGGAGE_HEADER in {str(f).lower() for f in self._inner.fields}
        except Exception:  # noqa: BLE001 - a propagator without usable fields: strip to be safe
            self._writes_baggage = True

    @property
    def inner(self) -> TextMapPropagator:
        """The propagator this one guards."""
        return self._inner

    def extract(self, carrier: CarrierT, context: Context | None = None,
                getter: Getter[CarrierT] = default_getter) -> Context:
        return self._inner.extract(carrier, context=context, getter=getter)

    def inject(self, carrier: CarrierT, context: Context | None = None,
               setter: Setter[CarrierT] = default_setter) -> None:
        ids = _raw_ids(context)
        if ids:  # whatever the destination: the raw id goes out in no baggage
            try:
                context = _without_raw_id(context, ids)
            except Exception:  # noqa: BLE001 - fail closed: none of the application's entries
                _log.debug("flowmap: could not read the baggage for a raw tenant id", exc_info=True)
                context = otel_baggage.clear(context)
            if self._writes_baggage:
                _strip_raw_id(carrier, ids)
        if otel_context.get_value(_BAGGAGE_ALLOWED, context) is not True:
            broker = _publish_to(context)
            if broker is not None and broker[1]:
                self._inner.inject(carrier, context=context, setter=setter)
                _record_sent(broker[0], otel_baggage.get_baggage(A.BAGGAGE_KEY, context) is not None
                             or _safe_tenant_in(carrier))
                return
            if broker is not None:
                _record_sent(broker[0], False)
            if otel_baggage.get_baggage(A.BAGGAGE_KEY, context) is not None:
                context = otel_baggage.remove_baggage(A.BAGGAGE_KEY, context)
            if self._writes_baggage:
                try:
                    _tenant_in_baggage(carrier, strip=True)
                except Exception:  # noqa: BLE001 - never break the application's request
                    _log.debug("flowmap: could not strip the tenant baggage from a carrier", exc_info=True)
        self._inner.inject(carrier, context=context, setter=setter)

    @property
    def fields(self) -> set[str]:
        return self._inner.fields

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._inner!r})"


_BROKER_ADDRESS = ("server.address", "net.peer.name")
_BROKER_URLS = "messaging.url"


def _publish_to(context: Context | None) -> tuple[Span, bool] | None:
    """When the current span publishes a message (kind PRODUCER) to a broker it names:
    that span, and whether the allow list accepts the broker (every one, for a list of
    bootstrap servers). Instrumentations inject into the message's headers inside their
    publish span, and the consumer's tenant comes from that baggage, so a broker is
    judged as an HTTP host is. None for anything else (never raises)."""
    try:
        span = get_current_span(context)
        if getattr(span, "kind", None) is not SpanKind.PRODUCER:
            return None
        hosts = _broker_hosts(getattr(span, "attributes", None) or {})
        if hosts:
            return span, all(_allowed.allows(h) for h in hosts)
    except Exception:  # noqa: BLE001 - undecided: the tag is stripped
        _log.debug("flowmap: could not read the publishing span", exc_info=True)
    return None


def _broker_hosts(attrs: Mapping[str, Any]) -> list[str]:
    """The brokers a publish span names: ``server.address``, or ``net.peer.name`` (as the
    contrib pika and aio-pika instrumentations write it), else ``messaging.url`` (kafka-
    python's: its bootstrap servers as JSON, ``["kafka-0:9092", ...]``; or a URL, or
    ``host:port`` entries separated by commas)."""
    for name in _BROKER_ADDRESS:
        host = attrs.get(name)
        if isinstance(host, str) and host.strip():
            return [host.strip()]
    urls = attrs.get(_BROKER_URLS)
    if not isinstance(urls, str) or not urls.strip():
        return []
    entries: Any = urls.split(",")
    if urls.lstrip().startswith("["):
        try:
            entries = json.loads(urls)
        except ValueError:
            return []
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        return []
    hosts = []
    for entry in (e.strip() for e in entries):
        host = urlsplit(entry).hostname if "://" in entry else entry
        if not host:
            return []  # a server that cannot be read: not judged allowed
        hosts.append(host)
    return hosts


def _safe_tenant_in(carrier: Any) -> bool:
    """Whether ``carrier`` already carries a ``flowmap.tenant`` member (False when it
    cannot be read: what is recorded as sent must never break a request)."""
    try:
        return _tenant_in_baggage(carrier, strip=False)
    except Exception:  # noqa: BLE001
        _log.debug("flowmap: could not read the outgoing baggage header", exc_info=True)
        return False


def _record_sent(span: Span, sent: bool) -> None:
    """``flowmap.baggage.sent`` on a publish span, as on an HTTP client span, so the
    analyzer can judge the hop (``baggage-to-external``)."""
    try:
        if span.is_recording():
            span.set_attribute(A.BAGGAGE_SENT, sent)
            keep_attributes(span, {A.BAGGAGE_SENT: sent})
    except Exception:  # noqa: BLE001 - never break the application's publish
        _log.debug("flowmap: could not annotate the publish span", exc_info=True)


def _guarded(textmap: TextMapPropagator) -> TextMapPropagator:
    """``textmap`` with every member that could send baggage wrapped (itself if none needs it).

    A plain composite is guarded member by member (nested ones too), so each member still
    injects its own fields; W3C trace context is left as it is (it writes the span context
    only). Anything else, a composite subclass included, is wrapped whole.
    """
    if isinstance(textmap, GuardedBaggagePropagator) or type(textmap) is TraceContextTextMapPropagator:
        return textmap
    if type(textmap) is CompositePropagator:
        members = list(textmap._propagators)  # noqa: SLF001 - the composite keeps no public list
        guarded = [_guarded(p) for p in members]
        if all(g is p for g, p in zip(guarded, members)):
            return textmap
        return CompositePropagator(guarded)
    return GuardedBaggagePropagator(textmap)


def _plain(textmap: TextMapPropagator) -> TextMapPropagator:
    """``textmap`` with flowmap's guards taken off again (itself if it holds none)."""
    if isinstance(textmap, GuardedBaggagePropagator):
        return _plain(textmap.inner)
    if type(textmap) is CompositePropagator:
        members = list(textmap._propagators)  # noqa: SLF001
        plain = [_plain(p) for p in members]
        if all(q is p for q, p in zip(plain, members)):
            return textmap
        return CompositePropagator(plain)
    return textmap


# -- the global propagator, guarded while flowmap runs -----------------------------------
#
# Guarding once is not enough: an application (or its telemetry setup, or a distro) may
# set a new global propagator after flowmap.configure(), with a plain W3C baggage member
# that would send the tag anywhere. So while guarding is on, opentelemetry.propagate's
# set_global_textmap guards what it is given, and its get_global_textmap (which
# propagate.inject and propagate.extract look up at every call, however they were
# imported) guards whatever was set past it (by a set_global_textmap imported before
# flowmap patched it): one identity check per call.

_guard_lock = threading.RLock()
_guarding = False
_installed: TextMapPropagator | None = None  # the guarded propagator flowmap made global
_replaced: TextMapPropagator | None = None  # what it stands for: put back by unguard
_original_get: Any = None
_original_set: Any = None


def _install_guarded(textmap: TextMapPropagator) -> None:
    """Make a guarded copy of ``textmap`` global (under ``_guard_lock``, guarding on)."""
    global _installed, _replaced
    guarded = _guarded(textmap)
    members = list(guarded._propagators) if type(guarded) is CompositePropagator else [guarded]  # noqa: SLF001
    _installed = CompositePropagator(members)  # always a new object: "flowmap's", by identity
    _replaced = _plain(textmap)
    _original_set(_installed)


def _get_global_textmap() -> TextMapPropagator:
    textmap = _original_get()
    if _guarding and textmap is not _installed:
        with _guard_lock:  # set past flowmap's set_global_textmap: guard it now
            textmap = _original_get()
            if _guarding and textmap is not _installed:
                _install_guarded(textmap)
                textmap = _original_get()
    return textmap


def _set_global_textmap(http_text_format: TextMapPropagator) -> None:
    with _guard_lock:
        if _guarding:
            _install_guarded(http_text_format)
            return
    _original_set(http_text_format)


def _patch_propagate() -> None:
    """Put flowmap's get/set_global_textmap in opentelemetry.propagate. OpenTelemetry's own
    are taken once, the first time: a function found there later that is neither those
    nor flowmap's is another library's wrapper of flowmap's, installed while flowmap's
    was there (it still reaches flowmap's), and is left in place — taken as "the
    original", it would call flowmap's, which calls it back, for ever."""
    global _original_get, _original_set
    current_get, current_set = propagate.get_global_textmap, propagate.set_global_textmap
    if _original_get is None:
        _original_get = current_get
    if _original_set is None:
        _original_set = current_set
    if current_get is _original_get:
        _get_global_textmap.__doc__ = _original_get.__doc__
        _get_global_textmap.__wrapped__ = _original_get  # type: ignore[attr-defined]
        propagate.get_global_textmap = _get_global_textmap
    if current_set is _original_set:
        _set_global_textmap.__doc__ = _original_set.__doc__
        _set_global_textmap.__wrapped__ = _original_set  # type: ignore[attr-defined]
        propagate.set_global_textmap = _set_global_textmap


def _unpatch_propagate() -> None:
    # Only while they are still flowmap's (a later patcher wrapped them: left to it; they
    # then pass straight through, guarding being off).
    if propagate.get_global_textmap is _get_global_textmap:
        propagate.get_global_textmap = _original_get
    if propagate.set_global_textmap is _set_global_textmap:
        propagate.set_global_textmap = _original_set


def guard_global_baggage(allowed: AllowedHosts | None = None) -> bool:
    """Guard the global propagator, now and until :func:`unguard_global_baggage`.

    Every member that could send baggage is wrapped in a :class:`GuardedBaggagePropagator`,
    so none injects the tenant tag outside flowmap's destination check; trace context
    members are kept as they are. A propagator the application makes global later
    (``propagate.set_global_textmap``) is guarded the same way. ``allowed``: the allow
    list message brokers are checked against (kept otherwise: :func:`instrument_httpx`
    sets it too). Returns True (the global propagator is guarded; idempotent).
    """
    global _guarding, _allowed
    if allowed is not None:
        with _lock:
            _allowed = allowed
    with _guard_lock:
        _patch_propagate()
        _guarding = True
        current = _original_get()
        if current is not _installed:
            _install_guarded(current)
        return True


def unguard_global_baggage() -> None:
    """Undo :func:`guard_global_baggage` (a no-op if unguarded).

    The propagator flowmap guarded is made global again, unwrapped: the application's
    own, also one it set while guarding was on; ``set_global_textmap`` and
    ``get_global_textmap`` are OpenTelemetry's own again.
    """
    global _guarding, _installed, _replaced
    with _guard_lock:
        was_guarding, _guarding = _guarding, False
        _unpatch_propagate()
        current = propagate.get_global_textmap()
        restore = _replaced if was_guarding and current is _installed and _replaced is not None else _plain(current)
        _installed = _replaced = None
        if restore is not current:
            propagate.set_global_textmap(restore)


def allowed_hosts() -> AllowedHosts:
    """The allow list outbound requests are checked against right now."""
    return _allowed


def is_instrumented() -> bool:
    """Whether flowmap's httpx instrumentation is active."""
    return _active


def _destination(url: Any) -> tuple[str | None, int | None]:
    if isinstance(url, tuple):  # httpx < 0.20 passed (scheme, host, port, path)
        scheme, host, port = (p.decode() if isinstance(p, bytes) else p for p in url[:3])
    else:
        scheme, host, port = url.scheme, url.host, url.port
    if port is None:
        port = _DEFAULT_PORTS.get(scheme)
    return host or None, port


def _propagates_baggage() -> bool:
    return "baggage" in propagate.get_global_textmap().fields


def _request_hook(span: Span, request: RequestInfo) -> None:
    # A baggage header the application wrote or forwarded never carries its tenant's raw
    # id (the injected context below carries none of the application's entries).
    ids = _raw_ids(None)
    if ids:
        _strip_raw_id(request.headers, ids)
    # Fail closed: whatever happens below, the injected context carries no baggage
    # unless this destination was positively allowed.
    ctx = otel_baggage.clear()
    allowed = inject = False
    host: str | None = None
    port: int | None = None
    try:
        host, port = _destination(request.url)
        allowed = _allowed.allows(host)
        if allowed:
            ctx = otel_context.set_value(_BAGGAGE_ALLOWED, True, ctx)
            tag = outbound_tag()
            if tag is not None and _propagates_baggage():
                ctx = otel_baggage.set_baggage(A.BAGGAGE_KEY, tag, ctx)
                inject = True
    except Exception:  # noqa: BLE001 - never break the application's request
        _log.debug("flowmap: outbound baggage decision failed", exc_info=True)
    finally:
        # Not detached on purpose: the instrumentation's span scope resets the context.
        otel_context.attach(ctx)
    # The headers may already hold a tag: copied from the previous redirect hop, or
    # forwarded by the application. Remove it unless the destination is allowed; then
    # record what really goes out (the injection that follows replaces the header).
    sent = inject
    if not inject:
        try:
            sent = _tenant_in_baggage(request.headers, strip=not allowed)
        except Exception:  # noqa: BLE001
            _log.debug("flowmap: could not check the outgoing baggage header", exc_info=True)
            sent = _safe_tenant_in(request.headers)
    try:
        if span.is_recording():
            own = {A.BOUNDARY: "http.client", A.BAGGAGE_SENT: sent}
            attrs: dict[str, Any] = dict(own)
            if host:
                attrs[_SERVER_ADDRESS] = host
            if port:
                attrs[_SERVER_PORT] = port
            span.set_attributes(attrs)
            keep_attributes(span, own)
    except Exception:  # noqa: BLE001
        _log.debug("flowmap: could not annotate the client span", exc_info=True)


async def _async_request_hook(span: Span, request: RequestInfo) -> None:
    # Awaited directly by the instrumentation (no new task), so attach() affects its context.
    _request_hook(span, request)


def _instrumentors() -> list[Any]:
    """The contrib instrumentors flowmap drives: httpx's, and httpx2's (the fork the openai
    3.x SDK and others send through; same API, own module) when httpx2 can be imported.
    httpx2 is optional: without it (or with a broken install) flowmap instruments httpx alone."""
    found: list[Any] = [HTTPXClientInstrumentor()]
    try:
        import httpx2  # noqa: F401 - only whether it is there
    except ImportError:
        return found
    except Exception:  # noqa: BLE001 - a broken httpx2 must not stop flowmap
        _log.warning("flowmap: httpx2 could not be imported; its requests are not traced", exc_info=True)
        return found
    try:
        from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor
    except ImportError:  # contrib older than 0.66b1
        _log.warning("flowmap: opentelemetry-instrumentation-httpx has no httpx2 support (0.66b1 or newer "
                     "has); httpx2 requests are not traced")
        return found
    found.append(HTTPX2ClientInstrumentor())
    return found


def _instrument(instrumentor: Any, tracer_provider: Any, keep: bool) -> None:
    """Instrument one client library with flowmap's hooks (``keep``: flowmap's hooks are
    already in place for this provider). Instrumented by anyone else, or for another
    provider, it is re-instrumented: the hooks are what keeps the tag from outside hosts."""
    if keep and instrumentor.is_instrumented_by_opentelemetry:
        return
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    instrumentor.instrument(
        tracer_provider=tracer_provider,
        request_hook=_request_hook,
        async_request_hook=_async_request_hook,
    )


def instrument_httpx(allowed: AllowedHosts | None = None, tracer_provider: Any = None) -> None:
    """Trace every ``httpx`` and ``httpx2`` ``Client``/``AsyncClient`` request with
    destination-aware baggage (httpx2 when it is installed).

    ``allowed`` defaults to the contract's allow list (loopback, private ranges,
    ``localhost``, ``*.svc``, ``*.svc.cluster.local``, ``*.internal``, ``*.local``).
    Calling again updates the allow list; a different ``tracer_provider`` re-instruments.
    If httpx (or httpx2) was already instrumented without flowmap's hooks, it is
    re-instrumented, since those hooks are what keeps the tenant baggage away from
    outside hosts. A failure to instrument httpx2 is logged and leaves httpx instrumented.
    """
    global _allowed, _active, _provider
    with _lock:
        _allowed = allowed if allowed is not None else AllowedHosts()
        same = _active and _provider is tracer_provider
        httpx_instrumentor, *others = _instrumentors()
        _instrument(httpx_instrumentor, tracer_provider, same and type(httpx_instrumentor) in _ours)
        _ours.add(type(httpx_instrumentor))
        for instrumentor in others:
            try:
                _instrument(instrumentor, tracer_provider, same and type(instrumentor) in _ours)
                _ours.add(type(instrumentor))
            except Exception:  # noqa: BLE001 - httpx stays instrumented; the app goes on
                _log.warning("flowmap: could not instrument %s; its requests are not traced",
                             type(instrumentor).__name__, exc_info=True)
        _active, _provider = True, tracer_provider


def uninstrument_httpx() -> None:
    """Undo :func:`instrument_httpx`, for httpx and httpx2 (a no-op when flowmap did not
    instrument them)."""
    global _active, _provider
    with _lock:
        if not _active:
            return
        for cls in list(_ours):
            instrumentor = cls()
            if instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.uninstrument()
        _ours.clear()
        _active, _provider = False, None
