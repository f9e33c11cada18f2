"""What ``flowmap run`` installs in each traced Python process, before the program runs.

Installed at interpreter start (by ``sitecustomize``), without touching the program:

* httpx is instrumented at once, against OpenTelemetry's global (proxy) provider, so
  outbound calls are traced whichever provider ends up global;
* the global propagator is guarded at once (see :func:`flowmap.outbound.guard_global_baggage`),
  and so is one the program sets later: no other client sends the tenant tag anywhere,
  also before the program's first span;
* if the program sets its own SDK TracerProvider, flowmap *adopts* it: the program keeps
  its exporters, and flowmap's processors (tenant tags, redaction, alerts) and the JSON
  Lines exporter are added to it;
* otherwise flowmap installs its own provider at the first span the program starts, so
  a program that configures OpenTelemetry a little later is never pre-empted;
* at exit, everything buffered is flushed: also when the process ends by SIGTERM or
  SIGHUP (a handler flushes, then lets the signal end the process as it would have), and in the
  workers multiprocessing forks (they end with ``os._exit``, which skips ``atexit``:
  multiprocessing's own exit finalizers flush them).

Thread pools, threads and queues are not patched: ``flowmap run`` observes, so every
dropped context it reports is the program's own.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

from flowmap.ending import flush, flush_multiprocessing_workers, flush_on_ending_signals

__all__ = ["start", "ACTIVE_ENV", "SERVICE_ENV", "HOSTS_ENV", "hosts_for_env"]

ACTIVE_ENV = "FLOWMAP_RUN"  # "1" in every process started by `flowmap run`
SERVICE_ENV = "FLOWMAP_RUN_SERVICE"  # optional service name for traced processes
#: the allowed hosts of the project's [tool.flowmap], as `flowmap run` read them (JSON:
#: {"extra": [host, ...], "include_defaults": bool}); absent: the contract's defaults
HOSTS_ENV = "FLOWMAP_RUN_ALLOWED_HOSTS"
_lock = threading.RLock()
_started = False
_installing = False
_INSTALL_WAIT = 10.0  # seconds a thread waits for another one installing the provider
_log = logging.getLogger("flowmap.run")


def _say(message: str) -> None:
    try:
        sys.stderr.write(f"flowmap run: {message}\n")
    except Exception:  # noqa: BLE001
        pass


def _service_name() -> str:
    """The name of this process's service: $FLOWMAP_RUN_SERVICE, else the script or module."""
    named = os.environ.get(SERVICE_ENV)
    if named:
        return named
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if argv0 in ("", "-c", "-"):
        return "python"
    p = Path(argv0)
    return p.parent.name if p.stem == "__main__" and p.parent.name else p.stem


def _runtime_for(provider: Any) -> Any:
    from flowmap import runtime

    rt = runtime.current_runtime()
    return rt if rt is not None and rt.tracer_provider is provider else None


def _install_default() -> None:
    """No provider was set and a span is starting: install flowmap's own.

    Threads whose first spans start while another thread installs wait for it (else they
    would get the no-op tracer and their whole requests would go unrecorded); the
    installing thread itself, starting spans inside ``configure``, goes straight on.
    """
    global _installing
    if not _lock.acquire(timeout=_INSTALL_WAIT):  # the installer is stuck: never hang the program
        return
    try:
        if _installing:
            return
        _installing = True
        try:
            from opentelemetry import trace

            if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
                return  # someone set one meanwhile
            from flowmap.configure import configure

            configure(service_name=_service_name(), instrument_httpx=False)
        except Exception as exc:  # noqa: BLE001 - never stop the program
            _say(f"could not set up tracing ({type(exc).__name__}: {exc})")
        finally:
            _installing = False
    finally:
        _lock.release()


def _adopt(provider: Any) -> None:
    """The program set its own provider: add flowmap's processors and file exporter to it."""
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        if not isinstance(provider, TracerProvider) or _runtime_for(provider) is not None:
            return  # not an SDK provider, or flowmap.configure() in the program made it
        if trace.get_tracer_provider() is not provider:
            _say("the program set its TracerProvider after its first span; "
                 "its spans go to flowmap's provider")
            return
        from flowmap.configure import configure

        configure(service_name=_service_name(), exporters=["jsonl"], instrument_httpx=False)
    except Exception as exc:  # noqa: BLE001
        _say(f"could not add flowmap to the program's TracerProvider ({type(exc).__name__}: {exc})")


def _patch_opentelemetry() -> None:
    from opentelemetry import trace

    original_set = trace.set_tracer_provider

    def set_tracer_provider(tracer_provider: Any) -> None:
        original_set(tracer_provider)
        _adopt(tracer_provider)

    set_tracer_provider.__doc__ = original_set.__doc__
    set_tracer_provider.__wrapped__ = original_set  # type: ignore[attr-defined]
    trace.set_tracer_provider = set_tracer_provider

    # Proxy tracers resolve the global provider when they start a span: that is the
    # moment to install flowmap's provider if the program has not set its own.
    proxy_tracer = trace.ProxyTracer
    original_prop = proxy_tracer.__dict__.get("_tracer")
    if isinstance(original_prop, property) and original_prop.fget is not None:
        fget = original_prop.fget

        def _tracer(self: Any) -> Any:
            if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
                _install_default()
            return fget(self)

        proxy_tracer._tracer = property(_tracer)  # type: ignore[assignment]
    else:  # a different API layout: fall back to installing now
        _install_default()


def hosts_for_env(hosts: Any) -> str:
    """``hosts`` (an AllowedHosts) as :data:`HOSTS_ENV` carries it to the program; read
    back by :func:`_allowed_hosts`."""
    return json.dumps({"extra": list(hosts.extra), "include_defaults": hosts.include_defaults})


def _allowed_hosts() -> Any:
    """The destinations the tenant baggage may go to: the ones the analyzer of this run
    uses too ([tool.flowmap] allowed_hosts / include_default_hosts, passed by `flowmap run`)."""
    from flowmap.hosts import AllowedHosts

    raw = os.environ.get(HOSTS_ENV)
    if not raw:
        return AllowedHosts()
    try:
        given = json.loads(raw)
        extra, defaults = given["extra"], given["include_defaults"]
        if not (isinstance(extra, list) and all(isinstance(h, str) for h in extra) and isinstance(defaults, bool)):
            raise ValueError("not a list of host names and a boolean")
    except Exception as exc:  # noqa: BLE001 - never stop the program
        _say(f"${HOSTS_ENV} is not usable ({type(exc).__name__}); the default allowed hosts apply")
        return AllowedHosts()
    return AllowedHosts.from_config(extra, defaults)


def _instrument_httpx() -> None:
    try:
        import httpx  # noqa: F401
    except ImportError:
        return
    from flowmap import outbound

    outbound.instrument_httpx(_allowed_hosts(), tracer_provider=None)  # the global provider, resolved late
    outbound.guard_global_baggage()


def start() -> None:
    """Install flowmap in this process if ``flowmap run`` started it (idempotent)."""
    global _started
    if os.environ.get(ACTIVE_ENV) != "1":
        return
    with _lock:
        if _started:
            return
        _started = True
    try:
        _patch_opentelemetry()
        _instrument_httpx()
        atexit.register(flush)
        flush_on_ending_signals()
        flush_multiprocessing_workers()
    except Exception as exc:  # noqa: BLE001 - never stop the program
        _say(f"could not set up tracing ({type(exc).__name__}: {exc})")
