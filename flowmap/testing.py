"""Test doubles shipped with flowmap: capture a test's spans, judge them, run two tenants.

In the manner of httpx's mock transports: real parts (a real SDK TracerProvider carrying
flowmap's own processors — tenant tagging, redaction, alerts), only the exporter is in
memory. The pytest plugin (:mod:`flowmap.pytest_plugin`) wraps these as fixtures; they
work without pytest too::

    with SpanCapture() as capture:
        with flowmap.bind(RequestContext("acme")):
            handle_request()
        capture.assert_no_leaks(fail_on="medium")

Why a fresh provider per capture rather than OpenTelemetry's global one: the global
provider can be set once per process, so per-test isolation could only be faked by
resetting a shared exporter, and spans still ending from the previous test would land in
the next one. flowmap's boundaries take their tracer from the installed flowmap Runtime
(:func:`flowmap.runtime.get_tracer`), so installing a per-capture Runtime is enough;
other code can use :attr:`SpanCapture.tracer_provider`. The previous runtime state is
restored on exit. When the process has set an SDK provider as OpenTelemetry's global one
(an app's own set-up, instrumentations that use the global API), the spans started on
it during a capture are captured too (``include_global``): a router processor, added to
that provider once, hands them to the capture they started under, tagged under the
capture's key; the capture's copies of spans the app's own flowmap set-up tagged under
its key are re-tagged under the capture's (the analyzer never compares tags of two
keys). So are the spans of a runtime the application installs *during* the capture (its
own ``flowmap.configure()`` in an app factory or a fixture): flowmap's boundaries write
there from then on, and that runtime stays installed after the capture, as it would
without one.

A span is judged by the capture it *started* under, but a span that starts during a
capture is not always this test's: a thread an earlier test started and never joined, or
an asyncio task it left on a loop the tests share, can start spans long after that test
was judged. The capture tells them apart by when the work began. A span is an earlier
test's when it starts in a context made while an earlier capture ran (an asyncio task
copies the context it was created in), or, in a context no test made, in a thread begun while
an earlier capture (under pytest: an earlier test's body) ran and still running — other
than the test's own thread and a ThreadPoolExecutor worker idle when this capture began
(what it runs next is handed to it now). A span whose parent is one of this capture's
spans, or that links to one, is this test's whatever runs it (work handed on with the
context, a message this test sent). An earlier test's span is kept apart
(:attr:`SpanCapture.leftover_spans`), never judged; a finding on it that would have
failed the test is a :class:`LeftoverSpanWarning` instead.

Nothing here patches the code under test (threads, executors, queues): a context the
code drops shows up as a finding instead of being silently repaired.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import itertools
import json
import logging
import secrets
import sys
import threading
import types
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from types import TracebackType
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from . import attributes as A
from . import runtime
from .errors import ConfigError, FlowmapError
from .model import Analysis, Finding, Severity, Trace
from .redaction import _OWN_KEYS, _OWN_TAGS, _OWN_VALUES, REDACTED_VALUE, _is_tenant_key, scrub_text
from .settings import AnalysisSettings
from .substrings import HEAD
from .tagging import Tagger, is_opaque_tag

_log = logging.getLogger("flowmap.testing")

__all__ = [
    "TenantLeakError",
    "LeftoverSpanWarning",
    "SpanCapture",
    "spans_to_traces",
    "TenantRun",
    "TwoTenantResult",
    "TwoTenantHarness",
    "parse_severity",
]


class TenantLeakError(FlowmapError, AssertionError):
    """A test's telemetry or results show a tenant leak (an AssertionError, so test
    runners report it as a failure, not an error). The message names tags, never ids."""


class LeftoverSpanWarning(UserWarning):
    """A finding on a span that work of an earlier test started during this one (a thread
    it left running, a task it created): not judged as this test's, named instead."""


def parse_severity(value: Severity | str) -> Severity:
    """``"high"`` → :attr:`Severity.HIGH` (ConfigError on an unknown name)."""
    return value if isinstance(value, Severity) else Severity.parse(str(value))


def spans_to_traces(spans: Sequence[ReadableSpan], origin: str = "<captured>") -> list[Trace]:
    """Finished SDK spans as the analyzer's traces, decoded exactly as a trace file is.

    The spans go through flowmap's own OTLP JSON encoder and the loader's decoder (no
    second decoder), so a test judges the same data ``flowmap check`` would read from
    the exported file, boundary inference from conventions included.
    """
    if not spans:
        return []
    from .exporter import encode_spans
    from .loading import decode_document

    return decode_document(json.dumps(encode_spans(spans)), origin=origin)


# -- capture ---------------------------------------------------------------------------

_STARTING = threading.local()  # .on while a capture installs its own runtime

_ORDER = itertools.count(1)  # orders the windows' openings and closings
#: the window the current context was made in: a task copies it when it is created
_WINDOW: contextvars.ContextVar["_Window | None"] = contextvars.ContextVar("flowmap_test_window", default=None)
#: threads begun inside a window that has closed, still running
_BEGUN_EARLIER: "weakref.WeakSet[threading.Thread]" = weakref.WeakSet()


class _Window:
    """One test's stretch of time (a capture's; under pytest also each test's call): the
    threads begun inside it and the contexts made inside it are that test's work, so a
    capture opened after it closed knows their spans are not its own.

    A window that a test's call window opened inside (a capture begun in the test's
    setup, as ``--flowmap-strict``'s is) leaves that to the call window: a worker a
    fixture starts in setup and keeps for later tests is no test's leftover."""

    __slots__ = ("opened", "closed", "_threads", "_token", "_marks")

    def __init__(self, call: bool = False) -> None:
        global _last_call
        self._threads = set(threading.enumerate())
        self.opened = next(_ORDER)
        self.closed: int | None = None
        self._token = _WINDOW.set(self)
        self._marks = True
        if call:
            _last_call = self.opened

    def close(self) -> None:
        if self.closed is not None:
            return
        self._marks = _last_call <= self.opened  # no test call began inside it
        if self._marks:
            for t in threading.enumerate():
                if t not in self._threads:
                    _BEGUN_EARLIER.add(t)
        self._threads = set()
        self.closed = next(_ORDER)
        try:
            _WINDOW.reset(self._token)
        except (ValueError, RuntimeError):
            pass  # closed in another context than it was opened in: nothing to put back

    def closed_before(self, opened: int) -> bool:
        return self._marks and self.closed is not None and self.closed < opened


_last_call = 0  # when the latest test call window opened (pytest_runtest_call's)


def _threads_begun_earlier() -> frozenset[threading.Thread]:
    """The running threads an earlier window began, but the current one (the test's) and
    a thread pool's idle workers: an idle worker runs next what is handed to it from now
    on (a pool a fixture shares between tests, asyncio's default executor)."""
    me = threading.current_thread()
    threads = [t for t in threading.enumerate() if t is not me and t in _BEGUN_EARLIER]
    if not threads:
        return frozenset()
    frames = sys._current_frames()  # noqa: SLF001 - the only way to see what a thread is doing
    try:
        return frozenset(t for t in threads if not _idle_pool_worker(frames.get(t.ident)))
    finally:
        del frames  # (their locals)


def _idle_pool_worker(frame: Any) -> bool:
    """Whether a thread's stack is a ThreadPoolExecutor worker's between two work items:
    the pool's and threading's own code only (waiting for work, or just done with one),
    no work of anyone's running."""
    pool = sys.modules.get("concurrent.futures.thread")
    worker = getattr(getattr(pool, "_worker", None), "__code__", None)
    if worker is None or frame is None:
        return False
    own = {worker.co_filename, threading.__file__, getattr(sys.modules.get("concurrent.futures._base"), "__file__", "")}
    seen_worker = False
    while frame is not None:
        if frame.f_code.co_filename not in own:
            return False
        seen_worker = seen_worker or frame.f_code is worker
        frame = frame.f_back
    return seen_worker


class SpanCapture:
    """The spans of one test (or block), captured in memory under flowmap's processors.

    ``tenant_key`` defaults to a random key made for this capture: the environment's
    ``FLOWMAP_TENANT_KEY`` is never used, so tests neither need nor leak a real key, and
    the tags printed in failures cannot be matched against production data.
    """

    def __init__(
        self,
        *,
        tenant_key: str | bytes | None = None,
        service_name: str = "pytest",
        boundary_mode: str | None = None,
        alert_scope: str = "boundary",
        settings: AnalysisSettings | None = None,
        include_global: bool = True,
    ) -> None:
        self.tenant_key = tenant_key if tenant_key is not None else secrets.token_hex(16)
        self.include_global = include_global
        self.service_name = service_name
        self.boundary_mode = None if boundary_mode is None else runtime.validate_boundary_mode(boundary_mode)
        self.alert_scope = alert_scope
        self.settings = settings or AnalysisSettings()
        self._exporter = InMemorySpanExporter()
        self._rt: runtime.Runtime | None = None
        self._finished: list[ReadableSpan] = []  # what was captured, kept after stop()
        # spans that work of an earlier test started meanwhile (module docstring)
        self._leftovers: list[ReadableSpan] = []
        self._window: _Window | None = None
        self._opened = 0  # when this capture's window opened (_Window)
        self._earlier_threads: frozenset[threading.Thread] = frozenset()
        self._ours: set[tuple[int, int]] = set()  # ids of the spans this capture judges
        self._earlier: dict[tuple[int, int], str] = {}  # a leftover's ids -> what started it
        self._saved: tuple[Any, Any, Any] | None = None
        # runtimes the application installed while this capture was active (its own
        # flowmap.configure()): their providers are routed here, their keys known
        self._apps: list[runtime.Runtime] = []
        # the two-tenant harness's tenants (label, markers): masked in what is printed
        self._tenants: list[tuple[str, _Markers]] = []

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> "SpanCapture":
        """Install a fresh provider with flowmap's processors as the flowmap runtime."""
        if self._rt is not None:
            return self
        from .configure import configure
        from .context import forget_known_ids

        forget_known_ids()  # an earlier test's tenants are not redacted from these spans

        # private reads on purpose: the public getters would build a tagger from the env
        self._saved = (runtime._tagger, runtime._boundary_mode, runtime.current_runtime())  # noqa: SLF001
        try:
            _STARTING.on = True  # (its runtime is the capture's own, not the app's)
            rt = configure(
                tenant_key=self.tenant_key,
                dev_mode=False,
                service_name=self.service_name,
                exporters=None,
                alert_scope=self.alert_scope,
                boundary_mode=self.boundary_mode,
                instrument_httpx=False,
                set_global=False,  # a fresh provider of its own, never the global one
            )
        except BaseException:
            self._restore()
            raise
        finally:
            _STARTING.on = False
        self._earlier_threads = _threads_begun_earlier()
        self._ours, self._earlier, self._leftovers = set(), {}, []
        self._window = _Window()
        self._opened = self._window.opened
        rt.tracer_provider.add_span_processor(_Capturing(self))
        self._rt = rt
        _GlobalRouter.attach(self)
        return self

    def stop(self) -> None:
        """Shut the capture's provider down and restore the previous flowmap runtime.

        Spans still open (e.g. in a thread the code left running) never reach a later
        capture: they end on this provider, which no longer exports.
        """
        rt, self._rt = self._rt, None
        if rt is None:
            return
        try:
            rt.force_flush()
            self._finished = list(self._exporter.get_finished_spans())
        finally:
            if self._window is not None:
                self._window.close()
            _GlobalRouter.detach(self)
            try:
                rt.shutdown()
            finally:
                self._restore(rt)
                from .context import forget_known_ids

                forget_known_ids()  # nor this test's from the next test's

    def _restore(self, ours: runtime.Runtime | None = None) -> None:
        """Put back the runtime state from before the capture, unless the application
        installed its own runtime meanwhile (``flowmap.configure()`` in an app factory or
        a fixture): that one stays, as it would without the capture."""
        if self._saved is None:
            return
        tagger, mode, rt = self._saved
        self._saved = None
        now = runtime.current_runtime()
        if ours is not None and now is not None and now is not ours and now is not rt:
            if self.boundary_mode is not None:
                runtime.set_boundary_mode(mode)  # the marker's mode was this test's only
            return
        runtime.set_tagger(tagger)
        runtime.set_boundary_mode(mode)
        _set_runtime_unwatched(rt)

    def __enter__(self) -> "SpanCapture":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what was captured -----------------------------------------------------------
    @property
    def active(self) -> bool:
        return self._rt is not None

    @property
    def tracer_provider(self) -> TracerProvider:
        """The capture's provider: pass it to code that takes one (``trace.get_tracer(
        name, tracer_provider=...)``, instrumentors' ``instrument(tracer_provider=...)``)."""
        if self._rt is None:
            raise ConfigError("the span capture is not active")
        return self._rt.tracer_provider

    @property
    def tagger(self) -> Tagger:
        return Tagger(self.tenant_key, dev_mode=False) if self._rt is None else self._rt.tagger

    def tag(self, tenant_id: str) -> str:
        """The opaque tag ``tenant_id`` gets under this capture's key."""
        return self.tagger.tag(tenant_id)

    @property
    def spans(self) -> list[ReadableSpan]:
        """The finished spans so far, in end order (flushed first)."""
        if self._rt is not None:
            self._rt.force_flush()
            return list(self._exporter.get_finished_spans())
        return list(self._finished)

    def __iter__(self) -> Iterator[ReadableSpan]:
        return iter(self.spans)

    def __len__(self) -> int:
        return len(self.spans)

    def by_name(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name == name]

    @property
    def leftover_spans(self) -> list[ReadableSpan]:
        """The spans that work of an earlier test started during this capture (a thread
        it left running, an asyncio task it created): not in :attr:`spans`, never judged."""
        if self._rt is not None:
            self._rt.force_flush()
        return list(self._leftovers)

    def clear(self) -> None:
        """Forget the spans captured so far (e.g. after a test's setup phase)."""
        self._exporter.clear()
        self._leftovers.clear()

    # -- whose span ------------------------------------------------------------------
    def _starting(self, span: Any) -> None:
        """Note at a span's start whether it is this test's (cheap: every span)."""
        ids = _ids(span)
        why = self._why_earlier(span)
        if why is None:
            self._ours.add(ids)
        else:
            self._earlier[ids] = why

    def _why_earlier(self, span: Any) -> str | None:
        """What an earlier test began that starts ``span`` ("a thread", "an asyncio
        task"), or None when the span is this test's (module docstring)."""
        parent = span.parent
        if parent is not None:
            key = (parent.trace_id, parent.span_id)
            if key in self._ours:
                return None
            why = self._earlier.get(key)
            if why is not None:
                return why
        why = self._begun_earlier()
        if why is not None:
            for link in span.links or ():
                if (link.context.trace_id, link.context.span_id) in self._ours:
                    return None
        return why

    def _begun_earlier(self) -> str | None:
        """What is running now, when an earlier test began it: a context (a task's) made
        while an earlier window was open, else a thread begun while one was."""
        window = _WINDOW.get()
        if window is not None:
            if not window.closed_before(self._opened):
                return None
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return "a thread"  # (one started with an earlier test's context)
            return "an asyncio task"
        if self._earlier_threads and threading.current_thread() in self._earlier_threads:
            return "a thread"
        return None

    def _ended(self, span: ReadableSpan) -> None:
        if self._rt is None or not span.context.trace_flags.sampled:
            return  # (a span left running ends after the capture: no longer captured)
        if _ids(span) in self._earlier:
            self._leftovers.append(span)
        else:
            self._exporter.export([span])

    # -- judging ---------------------------------------------------------------------
    def analyze(self, settings: AnalysisSettings | None = None) -> Analysis:
        """Run the analyzer's rules on the captured spans."""
        from .analysis import analyze_traces

        return analyze_traces(spans_to_traces(self.spans), settings or self.settings)

    def findings(self, fail_on: Severity | str = Severity.INFO) -> list[Finding]:
        """The findings at or above ``fail_on`` (all of them by default)."""
        threshold = parse_severity(fail_on)
        return [f for f in self.analyze().findings if f.severity >= threshold]

    def report(self, fail_on: Severity | str = Severity.HIGH, analysis: Analysis | None = None) -> str:
        """The text report (``flowmap check --format text``) of the captured spans, the
        ids of the two-tenant harness's tenants masked (a span name the app wrote may
        hold the *other* tenant's id, which redaction of the bound one cannot know)."""
        from .formats.text import TextReporter

        return self.masked(TextReporter(fail_on=parse_severity(fail_on)).render(analysis or self.analyze()))

    def masked(self, text: str) -> str:
        """``text`` with the raw ids of the tenants the two-tenant harness ran in this
        capture shown as ``<tenant A id>`` / ``<tenant B id>``."""
        for label, markers in self._tenants:
            text = markers.mask(text, label)
        return text

    def assert_no_leaks(self, fail_on: Severity | str = Severity.HIGH) -> Analysis:
        """Fail (TenantLeakError, an AssertionError) if any finding is at or above
        ``fail_on``; the message is the broken path from entry to tool call, edge by
        edge, then each finding's rule, operation and span. Returns the analysis."""
        threshold = parse_severity(fail_on)
        analysis = self.analyze()
        for warning in self._leftover_warnings(threshold):
            warnings.warn(warning, stacklevel=2)
        failing = [f for f in analysis.findings if f.severity >= threshold]
        if failing:
            raise TenantLeakError(self.masked(leak_message(analysis, threshold)))
        return analysis

    def _leftover_warnings(self, threshold: Severity) -> list[LeftoverSpanWarning]:
        """A LeftoverSpanWarning for each finding at or above ``threshold`` on the spans
        work of an earlier test started: what would have failed this test, not its own."""
        leftovers = self.leftover_spans
        if not leftovers:
            return []
        from .analysis import analyze_traces
        from .formats.common import clean

        said: dict[str, LeftoverSpanWarning] = {}
        for f in analyze_traces(spans_to_traces(leftovers), self.settings).findings:
            if f.severity < threshold:
                continue
            why = self._earlier.get((int(f.trace_id, 16), int(f.span_id, 16)), "a thread or task")
            operation = clean(f"{f.service}: {f.span_name}" if f.service else f.span_name, 80)
            text = self.masked(
                f"flowmap: {f.rule} on {operation!r} not judged as this test's: the span was "
                f"started by {why} an earlier test began and left running"
            )
            said.setdefault(text, LeftoverSpanWarning(text))
        return list(said.values())

    assert_tenant_isolated = assert_no_leaks


class _Capturing(SpanProcessor):
    """The capture's own processor: each span to the capture's exporter, or kept apart
    when work of an earlier test started it (exported synchronously, as
    SimpleSpanProcessor does)."""

    def __init__(self, capture: SpanCapture) -> None:
        self.capture = capture

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        try:
            self.capture._starting(span)  # noqa: SLF001
        except Exception:  # noqa: BLE001 - never break the code under test's spans
            _log.debug("flowmap: the capture failed at span start", exc_info=True)

    def on_end(self, span: ReadableSpan) -> None:
        try:
            self.capture._ended(span)  # noqa: SLF001
        except Exception:  # noqa: BLE001
            _log.debug("flowmap: the capture failed at span end", exc_info=True)


class _GlobalRouter(SpanProcessor):
    """Hands the spans of other SDK providers to the active capture: OpenTelemetry's
    global one, and the provider of any flowmap runtime the application installs while a
    capture is active (``flowmap.configure()`` in an app factory, a lifespan, a fixture
    that runs after the capture started — always so under ``--flowmap-strict``, whose
    capture starts first — or ``flowmap run``'s provider, made at the program's first
    span). flowmap's boundaries write to the installed runtime's provider, so without this
    the capture would record nothing and a leaking app would pass.

    Added once to each such provider (a provider's processors cannot be removed), it
    does nothing while no capture is active. A span goes to the capture it *started*
    under, so a span left running by one test never lands in the next (and one an
    earlier test's thread or task starts is kept apart there); it is tagged by
    that capture's processor (its key) unless a processor of the app's tagged it first
    (the capture's copy is then re-tagged under the capture's key), and scrubbed and
    judged for alerts like the capture's own spans.
    """

    _instance: "_GlobalRouter | None" = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.active: list[SpanCapture] = []  # nested captures: the innermost wins
        self.started: dict[tuple[int, int], SpanCapture] = {}  # span's ids -> its capture, until it ends

    @classmethod
    def attach(cls, capture: SpanCapture) -> None:
        from opentelemetry import trace

        provider = trace.get_tracer_provider()
        with cls._lock:
            router = cls._instance
            if router is None:
                router = cls._instance = cls()
            if capture.include_global and isinstance(provider, TracerProvider):
                router._add_to(provider)
            router.active.append(capture)
            _watch_runtime()

    @classmethod
    def detach(cls, capture: SpanCapture) -> None:
        router = cls._instance
        with cls._lock:
            if router is not None and capture in router.active:
                router.active.remove(capture)
            if router is None or not router.active:
                _unwatch_runtime()

    def _add_to(self, provider: TracerProvider) -> None:
        if not getattr(provider, "_flowmap_capture_router", False):
            provider.add_span_processor(self)
            provider._flowmap_capture_router = True  # type: ignore[attr-defined]  # noqa: SLF001

    @classmethod
    def runtime_installed(cls, rt: Any) -> None:
        """``runtime.set_runtime(rt)`` was called while a capture is active."""
        router = cls._instance
        if rt is None or router is None or getattr(_STARTING, "on", False):
            return
        with cls._lock:
            captures = list(router.active)
            if not captures or any(c._rt is rt for c in captures):  # noqa: SLF001
                return  # a capture's own runtime (a nested capture starting or ending)
            provider = getattr(rt, "tracer_provider", None)
            if isinstance(provider, TracerProvider) and not any(
                provider is c._rt.tracer_provider for c in captures if c._rt is not None  # noqa: SLF001
            ):
                router._add_to(provider)
            for c in captures:
                if rt not in c._apps:  # noqa: SLF001
                    c._apps.append(rt)  # noqa: SLF001

    def _flowmap(self, capture: SpanCapture) -> Any:
        rt = capture._rt  # noqa: SLF001
        return rt.processors[0] if rt is not None and rt.processors else None

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        try:
            capture = self.active[-1] if self.active else None
            if capture is None:
                return
            self.started[_ids(span)] = capture
            capture._starting(span)  # noqa: SLF001
            attrs = span.attributes
            processor = self._flowmap(capture)
            if processor is not None and (attrs is None or A.TENANT not in attrs):
                processor.on_start(span, parent_context)
        except Exception:  # noqa: BLE001 - never break the code under test's spans
            _log.debug("flowmap: capture router failed at span start", exc_info=True)

    def _on_ending(self, span: Any) -> None:
        capture = self.started.get(_ids(span))
        processor = self._flowmap(capture) if capture is not None else None
        if processor is not None:
            processor._on_ending(span)  # noqa: SLF001 - never raises

    def on_end(self, span: ReadableSpan) -> None:
        try:
            capture = self.started.pop(_ids(span), None)
            if capture is not None and capture.active:
                capture._ended(_under_capture_key(span, capture))  # noqa: SLF001
        except Exception:  # noqa: BLE001
            _log.debug("flowmap: capture router failed at span end", exc_info=True)


def _under_capture_key(span: ReadableSpan, capture: SpanCapture) -> ReadableSpan:
    """The capture's copy of a span tagged under another key (by the app's own flowmap
    set-up: ``configure()`` in ``conftest.py``, ``flowmap run -- pytest``), its tags
    re-made under the capture's key and its resource's ``flowmap.key_id`` the capture's.

    The analyzer never compares tags made with different keys, so without this a tenant
    switched between a span of the capture's provider and one of the app's passed
    unseen. A tag is re-made from the tenant id it was made of (every id bound in this
    process is remembered, by tag, for redaction); a span holding a tag of no tenant
    bound here is kept as it is, under its own key. The app's own span object (what its
    exporters write) is never changed.
    """
    import copy

    from opentelemetry.attributes import BoundedAttributes
    from opentelemetry.sdk.resources import Resource

    from .context import _RAW_BY_TAG

    resource = span.resource
    key_id = resource.attributes.get(A.KEY_ID) if resource is not None else None
    own = capture.tagger.key_id
    if key_id is None or key_id == own:
        return span
    attrs = span.attributes or {}
    retagged: dict[str, str] = {}
    for name in (A.TENANT, A.TENANT_INBOUND):
        tag = attrs.get(name)
        if tag is None:
            continue
        raw = _RAW_BY_TAG.get(tag) if isinstance(tag, str) else None
        if not raw:
            return span
        retagged[name] = capture.tag(raw[0])
    out = copy.copy(span)
    bounded = BoundedAttributes(maxlen=None, attributes={**attrs, **retagged}, immutable=True)
    bounded.dropped = span.dropped_attributes
    out._attributes = bounded  # noqa: SLF001
    out._resource = resource.merge(Resource({A.KEY_ID: own}))  # noqa: SLF001
    return out


def _watch_runtime() -> None:
    """Learn of every flowmap runtime installed while a capture is active (called under
    the router's lock). ``flowmap.configure()`` installs its runtime with
    ``runtime.set_runtime``, which it looks up at each call: wrapping it is enough."""
    current = runtime.set_runtime
    if getattr(current, "_flowmap_capture_watch", False):
        return

    def set_runtime(rt: Any) -> None:
        current(rt)
        try:
            _GlobalRouter.runtime_installed(rt)
        except Exception:  # noqa: BLE001 - never break the app's configure()
            _log.debug("flowmap: the capture could not follow a new runtime", exc_info=True)

    set_runtime.__doc__ = current.__doc__
    set_runtime.__wrapped__ = current  # type: ignore[attr-defined]
    set_runtime._flowmap_capture_watch = True  # type: ignore[attr-defined]
    runtime.set_runtime = set_runtime  # type: ignore[assignment]


def _unwatch_runtime() -> None:
    current = runtime.set_runtime
    if getattr(current, "_flowmap_capture_watch", False):  # (not if wrapped again since)
        runtime.set_runtime = current.__wrapped__  # type: ignore[attr-defined]


def _set_runtime_unwatched(rt: Any) -> None:
    """``runtime.set_runtime`` without the capture's watch (a capture restoring state)."""
    fn = runtime.set_runtime
    while getattr(fn, "_flowmap_capture_watch", False):
        fn = fn.__wrapped__  # type: ignore[attr-defined]
    fn(rt)


def _ids(span: Any) -> tuple[int, int]:
    """A span's trace and span id: on_end gets a ReadableSpan copy, not the live span."""
    ctx = span.context
    return ctx.trace_id, ctx.span_id


def leak_message(analysis: Analysis, threshold: Severity) -> str:
    """The failure text for an analysis: a headline, then the text report."""
    from .formats.text import TextReporter

    failing = [f for f in analysis.findings if f.severity >= threshold]
    rules = sorted({f.rule for f in failing})
    head = (
        f"flowmap: tenant context lost — {len(failing)} finding(s) at or above {threshold} "
        f"({', '.join(rules)})"
    )
    reporter = TextReporter(fail_on=threshold)
    hints = _orphan_hints(analysis, reporter, failing)
    lines = [head, *hints, "" if hints else None, reporter.render(analysis)]
    return "\n".join(line for line in lines if line is not None)


def _orphan_hints(analysis: Analysis, reporter: Any, findings: list[Finding]) -> list[str]:
    """Where each orphan root most likely came from, by timing: in one test the span that
    was open when the orphan started (and has no open child) is the call that handed work
    to a thread without its context. Shown only when exactly one such span exists."""
    from .formats.common import clean

    out: list[str] = []
    traces = analysis.sample_traces
    for f in findings:
        if f.rule != "orphan-root" or f.trace_id not in traces:
            continue
        orphan = traces[f.trace_id].spans.get(f.span_id)
        if orphan is None or not orphan.start_ns:
            continue
        open_spans = [
            sp
            for tid, t in traces.items()
            if tid != f.trace_id
            for sp in t.spans.values()
            if sp.start_ns <= orphan.start_ns <= sp.end_ns
        ]
        parents = {(sp.trace_id, sp.parent_span_id) for sp in open_spans}
        leaves = [sp for sp in open_spans if (sp.trace_id, sp.span_id) not in parents]
        if len(leaves) != 1:
            continue
        chain, sp = [], leaves[0]
        spans = traces[sp.trace_id].spans
        while sp is not None and len(chain) < 50:
            chain.append(clean(sp.name, 60))
            sp = spans.get(sp.parent_span_id) if sp.parent_span_id else None
        labels = [*reversed(chain), clean(orphan.name, 60)]
        if not out:
            out.append("Where the context was lost (by timing: the span open when the orphan started):")
        out.append("  " + reporter.path_line(labels, len(labels) - 1, f.rule))
    return out


# -- two tenants -----------------------------------------------------------------------


@dataclass(frozen=True)
class TenantRun:
    """What one tenant's run of a flow gets: its id, its canary and its bound context."""

    label: str  # "A" or "B": what failure messages call this tenant
    tenant_id: str
    canary: str  # a unique string seeded as this tenant's data; must never reach the other
    tag: str  # the opaque tag of tenant_id under the capture's key
    context: Any  # flowmap.RequestContext, bound while the flow runs
    round: int = 0

    def __repr__(self) -> str:  # never show the raw id
        return f"TenantRun(label={self.label!r}, tag={self.tag!r}, round={self.round})"

    __str__ = __repr__


@dataclass
class TwoTenantResult:
    """Results of every run, by label (``results["A"][round]``), and the leaks found."""

    runs: dict[str, list[TenantRun]] = field(default_factory=dict)
    results: dict[str, list[Any]] = field(default_factory=dict)
    leaks: list[str] = field(default_factory=list)
    analysis: Analysis | None = None


class _AsBefore(logging.Filter):
    """Passes the records a handler would have got with the root logger at ``level``:
    a record of a logger whose level comes from the root (no level of its own, nor of
    a parent) only at or above ``level``; any other as it is."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= self.level:
            return True
        if record.name == "root":
            return False
        lg: Any = logging.Logger.manager.loggerDict.get(record.name)
        if not isinstance(lg, logging.Logger):
            return True  # a logger made apart from logging's manager: not the root's child
        while lg.parent is not None:  # up to the root
            if lg.level:
                return True  # a level of its own or a parent's: not changed by the harness
            lg = lg.parent
        return False


#: the attributes every LogRecord has; any other was passed in ``extra=``
_RECORD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}


class _LogCollector(logging.Handler):
    """Collects every log record with the tag bound where it was emitted."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[tuple[str | None, logging.LogRecord, str]] = []
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from .context import current_tag

            text = record.getMessage()
            extra = [v for k, v in record.__dict__.items() if k not in _RECORD_FIELDS]
            if extra:  # structured logging: extra={"profile": ...}
                text += "\n" + "\n".join(_strings(extra))
            if record.exc_info and not record.exc_text:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            elif record.exc_text:
                text += "\n" + record.exc_text
            with self._guard:
                self.records.append((current_tag(), record, text))
        except Exception:  # noqa: BLE001 - never break the code under test
            pass


#: how far a result is looked into: nesting levels, and objects in all
_DEPTH_MAX = 20
_OBJECTS_MAX = 10_000
#: where an HTTP response keeps its body: httpx / requests / Django (content), Starlette
#: and aiohttp.web (body), Werkzeug / Flask test clients (data), text for the decoded one
_BODY_ATTRIBUTES = ("content", "body", "data", "text", "_body")  # (aiohttp's client: _body once read)


def _strings(obj: Any, depth: int = 0, seen: set[int] | None = None, numbers: bool = False) -> Iterator[str]:
    """Every string in a result: walks mappings, sequences, sets, dataclasses and any
    other object's fields (its ``__dict__`` and ``__slots__``), reads the body of an HTTP
    response (an object with an integer ``status_code`` or ``status``: its ``content``,
    ``body``, ``data`` or ``text`` when already read, its headers and URL), and yields
    repr() of objects too (so a canary only the repr shows is still found). Bounded:
    20 levels deep, 10,000 objects; modules, classes and functions are not looked into,
    and an iterator or generator is never consumed. Numbers only under a key that
    names a tenant (``numbers``), as the runtime's redaction does: a page number 1 is
    not tenant "1"."""
    if seen is None:
        seen = set()
    if isinstance(obj, str):
        yield obj
        return
    if isinstance(obj, (bytes, bytearray, memoryview)):
        yield bytes(obj).decode("utf-8", "replace")
        return
    if obj is None or isinstance(obj, (bool, int, float)):
        if numbers and not isinstance(obj, bool) and obj is not None:
            yield str(obj)
        return
    if depth > _DEPTH_MAX or id(obj) in seen or len(seen) >= _OBJECTS_MAX:
        return
    seen.add(id(obj))
    if isinstance(obj, Mapping):
        for k, v in list(obj.items()):
            yield from _strings(k, depth + 1, seen)
            yield from _strings(v, depth + 1, seen, _is_tenant_key(k))
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for v in list(obj):
            yield from _strings(v, depth + 1, seen, numbers)
    elif is_dataclass(obj) and not isinstance(obj, type):
        for f in fields(obj):
            yield from _strings(getattr(obj, f.name, None), depth + 1, seen, _is_tenant_key(f.name))
    elif isinstance(obj, _NOT_LOOKED_INTO):
        return
    else:
        try:
            yield repr(obj)
        except Exception:  # noqa: BLE001
            pass
        if _is_response(obj):  # its body, headers and URL; not its connection and client
            # a body not known to be in memory may be a stream its properties would read
            # (and wait on for ever: server-sent events): then only fields of its own
            buffered = _body_in_memory(obj)
            for name in (*_BODY_ATTRIBUTES, "headers", "url"):
                if name in _BODY_ATTRIBUTES and not buffered:
                    value = _own_field(obj, name)
                else:
                    value = _attribute(obj, name)
                if name == "url" and value is not None:
                    value = str(value)
                if isinstance(value, (str, bytes, bytearray, Mapping)):
                    yield from _strings(value, depth + 1, seen)
            return
        for name, value in _fields(obj):
            yield from _strings(name, depth + 1, seen)
            yield from _strings(value, depth + 1, seen, _is_tenant_key(name))


def _body_in_memory(obj: Any) -> bool:
    """Whether a response's body properties only read memory: requests' and httpx's
    ``_content`` once read, Werkzeug's ``response`` as a list (not an iterator it would
    consume), aiohttp's ``_body``. Any other may be a stream."""
    content = _own_field(obj, "_content")
    if content is not None and content is not False:
        return True
    if isinstance(_own_field(obj, "response"), (list, tuple)):
        return True
    return isinstance(_own_field(obj, "_body"), (bytes, bytearray))


def _attribute(obj: Any, name: str) -> Any:
    try:
        return getattr(obj, name, None)
    except Exception:  # noqa: BLE001 - an unread streamed body (httpx's ResponseNotRead), ...
        return None


def _own_field(obj: Any, name: str) -> Any:
    """``obj.__dict__[name]`` (None when absent), without running any descriptor."""
    try:
        own = object.__getattribute__(obj, "__dict__")
    except Exception:  # noqa: BLE001
        return None
    return own.get(name) if isinstance(own, dict) else None


def _is_response(obj: Any) -> bool:
    """An HTTP response, as clients and test clients make them: an integer status among
    its own fields (``status_code``, aiohttp's ``status``, Werkzeug's ``_status_code``),
    looked up without running properties (an ORM object's ``status`` may be a query)."""
    for name in ("status_code", "status", "_status_code"):
        status = _own_field(obj, name)
        if isinstance(status, int) and not isinstance(status, bool):
            return True
    return False


def _fields(obj: Any) -> list[tuple[str, Any]]:
    """An object's own fields: its instance ``__dict__`` and the ``__slots__`` of its
    classes (read from the instance, so no property or descriptor runs)."""
    out: list[tuple[str, Any]] = []
    try:
        own = object.__getattribute__(obj, "__dict__")
    except Exception:  # noqa: BLE001 - no instance dict
        own = None
    if isinstance(own, dict):
        out.extend((k, v) for k, v in list(own.items()) if isinstance(k, str))
    for cls in type(obj).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if not isinstance(name, str) or name in ("__dict__", "__weakref__"):
                continue
            try:
                out.append((name, object.__getattribute__(obj, _mangled(cls, name))))
            except Exception:  # noqa: BLE001 - a slot never set
                continue
    return out


def _mangled(cls: type, name: str) -> str:
    """A slot's attribute name: ``__x`` of class ``C`` is stored as ``_C__x``."""
    if name.startswith("__") and not name.endswith("__"):
        return f"_{cls.__name__.lstrip('_')}{name}"
    return name


def _attribute_texts(where: str, attrs: Any) -> Iterator[tuple[str, str, bool]]:
    """(where, text, tag only) for an attribute set. flowmap's own attributes
    (``flowmap.boundary``, ``flowmap.tenant.source``, ``flowmap.tenant``…) are flowmap's
    words, not the app's: their names are not looked at, nor their values where they are
    flowmap's own (a boundary kind, a tag source), and a tag is compared with the other
    tenant's tag only (tenant "tool", "context", "flowmap" or "2278" is found in none of
    them). A value flowmap would never write there is looked at as any other."""
    for k, v in (attrs or {}).items():
        place = f"{where} {k!r}"
        if k in _OWN_KEYS:
            if k in _OWN_TAGS and is_opaque_tag(v):
                yield place, v, True
                continue
            if v in _OWN_VALUES.get(k, ()):
                continue
        else:
            yield place, k, False
        for s in _strings(v, numbers=_is_tenant_key(k)):
            yield place, s, False


def _span_texts(span: ReadableSpan) -> Iterator[tuple[str, str, bool]]:
    """(where, text, tag only) for every string a span carries: name, attributes, events,
    links' attributes, status."""
    yield "name", _text(span.name), False
    yield from _attribute_texts("attribute", span.attributes)
    for ev in span.events or ():
        name = _text(ev.name)  # the SDK takes any object as a name (add_event(500))
        yield f"event {name!r}", name, False
        yield from _attribute_texts(f"event {name!r} attribute", ev.attributes)
    for link in span.links or ():
        yield from _attribute_texts("link attribute", link.attributes)
    if span.status is not None and span.status.description:
        yield "status", _text(span.status.description), False


def _text(value: Any) -> str:
    """A name the app gave as it was given: text, or any object's str() (as exported)."""
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except Exception:  # noqa: BLE001
        return ""


class TwoTenantHarness:
    """Run one flow concurrently as two tenants and fail on anything crossing over.

    Each tenant gets its own canary string (seed it as that tenant's data with ``seed``
    or inside the flow). After the runs, every span, log record and result attributed to
    one tenant — by its tenant tag, by the trace of its run, or by the tag bound when a
    record was logged — must not contain the other tenant's canary, tag or id.

    ``rounds`` (default 2): the pair runs this many times, concurrently each time, so a
    cache warmed by one tenant in the first round is read by both in the next — a
    shared-cache leak is then caught whatever the scheduling order.
    """

    def __init__(self, capture: SpanCapture) -> None:
        self.capture = capture
        self._trace_owner: dict[int, str] = {}  # trace id of a run's root span -> label
        self._root_names: dict[str, str] = {}

    # -- public ----------------------------------------------------------------------
    def run(
        self,
        flow: Callable[[TenantRun], Any],
        *,
        seed: Callable[[TenantRun], Any] | None = None,
        tenants: tuple[str, str] | None = None,
        rounds: int = 2,
        fail_on: Severity | str | None = Severity.HIGH,
        timeout: float = 30.0,
    ) -> TwoTenantResult:
        """Run the flow as both tenants at once, in two threads, ``rounds`` times.

        ``tenants``: the two tenant ids; by default two made for this run,
        ``tenant-a-<random>`` and ``tenant-b-<random>``, which no real text contains (a
        plain "tenant-a" is found inside "tenant-api" or "tenant-aware", as redaction
        finds any id of 8 characters or more anywhere). An ``async`` flow (or one
        returning an awaitable) runs on an event loop of its thread; from an async test
        that must share its loop, use :meth:`arun`. Raises
        TenantLeakError on a leak, or on an analyzer finding at or above ``fail_on``
        (``None``: canaries only).
        """
        __tracebackhide__ = True  # a failure shows its message, never the data judged
        if fail_on is not None:
            parse_severity(fail_on)  # a typo fails before any flow runs
        runs = self._prepare(tenants, rounds)
        with self._collecting() as logs:
            if seed is not None:
                for label in ("A", "B"):
                    self._call_bound(seed, runs[label][0])
            results: dict[str, list[Any]] = {"A": [], "B": []}
            for r in range(rounds):
                pair = [runs["A"][r], runs["B"][r]]
                results_r = self._threads(flow, pair, timeout)
                results["A"].append(results_r[0])
                results["B"].append(results_r[1])
        return self._judge(runs, results, logs, fail_on)

    async def arun(
        self,
        flow: Callable[[TenantRun], Any],
        *,
        seed: Callable[[TenantRun], Any] | None = None,
        tenants: tuple[str, str] | None = None,
        rounds: int = 2,
        fail_on: Severity | str | None = Severity.HIGH,
    ) -> TwoTenantResult:
        """:meth:`run` for async tests: both tenants as tasks of the running loop
        (asyncio's, or trio's through anyio's task group, as with anyio's pytest plugin
        and ``anyio_backend = "trio"``)."""
        __tracebackhide__ = True  # a failure shows its message, never the data judged
        if fail_on is not None:
            parse_severity(fail_on)  # a typo fails before any flow runs
        runs = self._prepare(tenants, rounds)
        with self._collecting() as logs:
            if seed is not None:
                for label in ("A", "B"):
                    await self._acall_bound(seed, runs[label][0])
            results: dict[str, list[Any]] = {"A": [], "B": []}
            for r in range(rounds):
                a, b = await _concurrently(
                    self._acall_bound(flow, runs["A"][r]), self._acall_bound(flow, runs["B"][r])
                )
                results["A"].append(a)
                results["B"].append(b)
        return self._judge(runs, results, logs, fail_on)

    # -- running ---------------------------------------------------------------------
    def _prepare(self, tenants: tuple[str, str] | None, rounds: int) -> dict[str, list[TenantRun]]:
        from .context import RequestContext

        if tenants is None:
            tenants = (f"tenant-a-{secrets.token_hex(4)}", f"tenant-b-{secrets.token_hex(4)}")
        if len(tenants) != 2 or tenants[0] == tenants[1]:
            raise ConfigError("the two-tenant harness needs two different tenant ids")
        if rounds < 1:
            raise ConfigError("rounds must be at least 1")
        if not self.capture.active:
            raise ConfigError("the span capture is not active")
        runs: dict[str, list[TenantRun]] = {}
        for label, tenant_id in zip(("A", "B"), tenants):
            ctx = RequestContext(tenant_id)
            canary = f"flowmap-canary-{label.lower()}-{secrets.token_hex(8)}"
            tag = self.capture.tag(tenant_id)
            runs[label] = [TenantRun(label, tenant_id, canary, tag, ctx, r) for r in range(rounds)]
            self.capture._tenants.append((label, _Markers(runs[label][0])))  # noqa: SLF001
        self._trace_owner: dict[int, str] = {}
        self._root_names = {label: _root_name(label, tenants) for label in ("A", "B")}
        return runs

    def _root(self, run: TenantRun) -> Any:
        tracer = runtime.get_tracer(self.capture.tracer_provider)
        return tracer.start_as_current_span(
            self._root_names[run.label],
            kind=SpanKind.SERVER,
            attributes={A.BOUNDARY: "http.server"},
        )

    def _call_bound(self, fn: Callable[[TenantRun], Any], run: TenantRun) -> Any:
        from .context import bind

        with bind(run.context), self._root(run) as span:
            self._trace_owner[span.get_span_context().trace_id] = run.label
            out = fn(run)
            if inspect.isawaitable(out):
                out = asyncio.run(_awaited(out))  # the task copies this bound context
            return out

    async def _acall_bound(self, fn: Callable[[TenantRun], Any], run: TenantRun) -> Any:
        from .context import bind

        with bind(run.context), self._root(run) as span:
            self._trace_owner[span.get_span_context().trace_id] = run.label
            out = fn(run)
            if inspect.isawaitable(out):
                out = await out
            return out

    def _threads(self, flow: Callable[[TenantRun], Any], pair: list[TenantRun], timeout: float) -> list[Any]:
        results: list[Any] = [None, None]
        errors: list[BaseException | None] = [None, None]
        barrier = threading.Barrier(2)

        def worker(i: int) -> None:
            try:
                barrier.wait(timeout)
                results[i] = self._call_bound(flow, pair[i])
            except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
                errors[i] = exc

        threads = [
            threading.Thread(target=worker, args=(i,), name=f"flowmap-tenant-{pair[i].label}", daemon=True)
            for i in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout)
            if t.is_alive():
                raise TenantLeakError(f"flowmap: the flow of tenant {t.name[-1]} did not finish in {timeout}s")
        for err in errors:
            if err is not None:
                raise err
        return results

    class _Collecting:
        """Every log record of the runs reaches the collector (the root logger is set to
        DEBUG, like caplog), while every handler already there — pytest's captured log,
        the app's own — gets only the records it would have got without the harness (a
        failing test's "Captured log call" was dozens of httpcore DEBUG lines)."""

        def __init__(self) -> None:
            self.handler = _LogCollector()
            self.level = logging.NOTSET
            self.filtered: list[logging.Handler] = []

        def __enter__(self) -> _LogCollector:
            root = logging.getLogger()
            self.level = root.level
            loggers = [root, *(
                lg for lg in list(logging.Logger.manager.loggerDict.values()) if isinstance(lg, logging.Logger)
            )]
            as_before = _AsBefore(self.level)
            seen: set[int] = set()
            for lg in loggers:
                for h in list(lg.handlers):
                    if id(h) not in seen:
                        seen.add(id(h))
                        h.addFilter(as_before)
                        self.filtered.append(h)
            self.as_before = as_before
            root.addHandler(self.handler)
            root.setLevel(logging.DEBUG)  # like caplog: every record is evidence
            # loggers that do not pass their records up to the root are listened to
            # where they are (an app's own logger with its own handler)
            self.apart = [lg for lg in loggers if lg is not root and not lg.propagate]
            for lg in self.apart:
                lg.addHandler(self.handler)
            return self.handler

        def __exit__(self, *exc: object) -> None:
            root = logging.getLogger()
            root.removeHandler(self.handler)
            root.setLevel(self.level)
            for lg in self.apart:
                lg.removeHandler(self.handler)
            for h in self.filtered:
                h.removeFilter(self.as_before)

    def _collecting(self) -> "TwoTenantHarness._Collecting":
        return self._Collecting()

    # -- judging ---------------------------------------------------------------------
    def _judge(
        self,
        runs: dict[str, list[TenantRun]],
        results: dict[str, list[Any]],
        logs: _LogCollector,
        fail_on: Severity | str | None,
    ) -> TwoTenantResult:
        __tracebackhide__ = True  # a failure shows its message, never the data judged
        markers = {label: _Markers(rs[0]) for label, rs in runs.items()}
        by_tag = {m.tag: label for label, m in markers.items()}
        # the harness's own strings in the data: not where a tenant id is looked for (a
        # tenant "canary" or "flowmap" is in every canary, "2278" may begin a tag)
        own_words = [*(m.canary for m in markers.values()), *(m.tag for m in markers.values())]
        for app in self.capture._apps:  # noqa: SLF001 - a runtime the app set up: its key's tags
            for label, rs in runs.items():
                by_tag.setdefault(app.tagger.tag(rs[0].tenant_id), label)
        leaks: list[str] = []

        def check(owner: str, texts: Iterable[tuple[str, str, bool]], what: str) -> None:
            other = "B" if owner == "A" else "A"
            m = markers[other]
            for where, text, tag_only in texts:
                found = ("tag" if m.tag in text else None) if tag_only else m.found_in(text, own_words)
                if found:
                    place = f"{what} {_short(where, markers, 160)}" if where else what
                    leaks.append(
                        f"tenant {owner} ({markers[owner].tag}): {place} holds tenant {other}'s "
                        f"{found} (tenant {other} is {m.tag})"
                    )
                    return

        for label in ("A", "B"):
            for r, result in enumerate(results[label]):
                check(label, (("", s, False) for s in _strings(result)), f"the result of round {r + 1}")

        for span in self.capture.spans:
            owners: set[str] = set()
            tag = (span.attributes or {}).get(A.TENANT)
            if tag in by_tag:
                owners.add(by_tag[tag])
            ctx = span.context
            if ctx is not None and ctx.trace_id in self._trace_owner:
                owners.add(self._trace_owner[ctx.trace_id])
            for owner in sorted(owners):
                check(owner, _span_texts(span), f"span {_short(_text(span.name), markers)!r}")

        for tag, record, text in logs.records:
            owner = by_tag.get(tag) if tag is not None else None
            if owner is not None and not _is_flowmaps(record.name):
                check(owner, (("", text, False),), f"a log record of logger {_short(record.name, markers)!r}")

        out = TwoTenantResult(runs=runs, results=results, leaks=_dedupe(leaks))
        analysis: Analysis | None = None
        threshold = Severity.HIGH if fail_on is None else parse_severity(fail_on)
        if fail_on is not None:
            analysis = self.capture.analyze()
            for warning in self.capture._leftover_warnings(threshold):  # noqa: SLF001
                warnings.warn(warning, stacklevel=3)
            out.analysis = analysis
            if any(f.severity >= threshold for f in analysis.findings) and not out.leaks:
                raise TenantLeakError(_mask_all(leak_message(analysis, threshold), markers))
        if out.leaks:
            lines = [f"flowmap: two-tenant run leaked across tenants ({len(out.leaks)}):"]
            lines += [f"  - {leak}" for leak in out.leaks[:50]]
            if len(out.leaks) > 50:
                lines.append(f"  … and {len(out.leaks) - 50} more")
            if analysis is not None and analysis.findings:
                lines.append("")
                lines.append(self.capture.report(threshold, analysis))  # (masked by the capture)
            raise TenantLeakError("\n".join(lines))
        return out


def _root_name(label: str, tenants: Sequence[str]) -> str:
    """The name of a run's root span: "flowmap two-tenant run A", or a shorter one when a
    tenant id is a word of it (tenant "run", "tenant", "flowmap", "A"): the runtime's
    redaction would scrub the id out of the name and the analyzer report the harness's
    own span as a tenant-in-telemetry."""
    from .context import Binding, RequestContext

    ids = [i for t in tenants for i in Binding(RequestContext(t), None).raw_ids]
    for name in (f"flowmap two-tenant run {label}", f"two-tenant run {label}", f"run {label}", f"flowmap {label}", "two-tenant run", "·"):
        if scrub_text(name, ids)[1] == 0 and name.strip() not in ids:
            return name
    return ""


async def _concurrently(first: Any, second: Any) -> list[Any]:
    """Two awaitables at once on the running event loop, their results in order; the
    first failure is raised as itself (as ``asyncio.gather`` does). On asyncio's loop
    with ``asyncio.gather``; on any other (trio) with an anyio task group."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return list(await asyncio.gather(first, second))
    try:
        import anyio
    except ImportError:
        for aw in (first, second):
            getattr(aw, "close", lambda: None)()  # (never awaited: no warning about it)
        raise ConfigError("arun() outside asyncio (trio) needs anyio installed") from None
    results: list[Any] = [None, None]

    async def one(i: int, aw: Any) -> None:
        results[i] = await aw

    failure: BaseException | None = None
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(one, 0, first)
            tg.start_soon(one, 1, second)
    except BaseExceptionGroup as group:
        failure = group.exceptions[0]
    if failure is not None:
        raise failure
    return results


async def _awaited(aw: Any) -> Any:
    return await aw


class _Markers:
    """What identifies one tenant in the other's data: canary, tag, raw id."""

    def __init__(self, run: TenantRun) -> None:
        self.canary = run.canary
        self.tag = run.tag
        self._raw = run.tenant_id

    def found_in(self, text: str, own_words: Sequence[str] = ()) -> str | None:
        """What of this tenant ``text`` holds; the raw id is looked for with
        ``own_words`` (the harness's canaries and tags) taken out first."""
        if self.canary in text:
            return "canary"
        if self.tag in text:
            return "tag"
        for word in own_words:
            if word in text:
                text = text.replace(word, " ")
        if self.has_raw(text):
            return "tenant id"  # named, never shown
        return None

    def has_raw(self, text: str) -> bool:
        if len(self._raw) < HEAD:  # "a", "7": a word of any text, so only a value that is it
            return text.strip() == self._raw
        return scrub_text(text, (self._raw,))[1] > 0

    def mask(self, text: str, label: str) -> str:
        """``text`` with this tenant's raw id shown as ``<tenant X id>``; a placeholder the
        runtime already wrote stays as it is (whose id it hid is not known here)."""
        if not self.has_raw(text):
            return text
        return REDACTED_VALUE.join(
            scrub_text(part, (self._raw,))[0].replace(REDACTED_VALUE, f"<tenant {label} id>")
            for part in text.split(REDACTED_VALUE)
        )


def _is_flowmaps(logger: str) -> bool:
    """flowmap's own loggers (an alert quoting a span name): the span itself is checked."""
    return logger == "flowmap" or logger.startswith("flowmap.")


def _short(text: str, markers: Mapping[str, "_Markers"], limit: int = 80) -> str:
    """A name from the data, safe to print: raw ids masked, terminal escapes neutralised."""
    from .formats.common import clean

    for label, m in markers.items():
        text = m.mask(text, label)
    return clean(text, limit)


def _mask_all(text: str, markers: Mapping[str, "_Markers"]) -> str:
    """``text`` with both tenants' raw ids masked (span names written by the app may hold
    the *other* tenant's id, which redaction of the bound tenant cannot know about)."""
    for label, m in markers.items():
        text = m.mask(text, label)
    return text


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


#: what a result is never looked into (only its repr): code, and flowmap's own test
#: doubles (the capture holds every span of both tenants)
_NOT_LOOKED_INTO = (
    types.ModuleType,
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.GeneratorType,
    types.CoroutineType,
    types.AsyncGeneratorType,
    logging.Logger,
    threading.Thread,
    SpanCapture,
    TwoTenantHarness,
)
