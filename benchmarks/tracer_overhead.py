"""Tracer overhead: what flowmap's span processors add to one span's start + end.

    .venv/bin/python benchmarks/tracer_overhead.py [--rounds 31] [--spans 2000] [--attributes N] [--check]

    (needs the ``bench`` extra: ``pip install -e '.[bench]'`` for the contrib
    BaggageSpanProcessor)

Configurations, all measured in one run, interleaved round by round (the order shuffled
each round) so drift in machine load hits every configuration alike:

(a) ``bare``     — an SDK TracerProvider with one SimpleSpanProcessor to an exporter that
                   does nothing: the cheapest pipeline that still exports a span. The
                   baseline every ratio is taken against.
(b) ``flowmap``  — (a) plus flowmap's processors exactly as ``flowmap.configure()``
                   installs them (tenant tagging, redaction, alerts), spans started inside
                   ``flowmap.bind(RequestContext(...))``.
(c) ``baggage``  — (a) plus the contrib ``BaggageSpanProcessor`` (all keys), spans started
                   with one baggage entry (``flowmap.tenant`` = a tag) in the context.
(-) ``sdk-only`` — a provider with no processor at all, for reference only.

Each round times ``--spans`` consecutive ``tracer.start_span(name).end()`` calls per
configuration (``--attributes N``: spans start with N realistic HTTP attributes, which
flowmap's redaction check has to look through) with the garbage collector paused (as ``timeit`` does); the figures are the
medians over the rounds. ``--check`` exits 1 unless flowmap adds at most 15 % to (a) and
less than the BaggageSpanProcessor adds (the target of issue 2).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

import flowmap
from flowmap import attributes as A
from flowmap import runtime
from flowmap.tagging import Tagger

TARGET_PERCENT = 15.0
TENANT = "tenant-bench-0001"
KEY = "benchmark-key-not-secret"


class NullExporter(SpanExporter):
    """Accepts every span and does nothing: the pipeline's cost without I/O."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def _bare_provider() -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(NullExporter()))
    return provider


@contextlib.contextmanager
def _attached(ctx: Any) -> Iterator[None]:
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


class Config:
    """One configuration: a tracer and the context its spans are started in."""

    def __init__(self, name: str, provider: TracerProvider, scope: Callable[[], Any]) -> None:
        self.name = name
        self.provider = provider
        self.tracer = provider.get_tracer("benchmark")
        self.scope = scope
        self.samples: list[float] = []  # ns per span, one per round

    def run(self, spans: int, attributes: dict[str, Any] | None = None) -> None:
        start_span = self.tracer.start_span
        with self.scope():
            gc.collect()
            gc.disable()
            try:
                t0 = time.perf_counter_ns()
                for _ in range(spans):
                    start_span("operation", attributes=attributes).end()
                t1 = time.perf_counter_ns()
            finally:
                gc.enable()
        self.samples.append((t1 - t0) / spans)

    @property
    def median_us(self) -> float:
        return statistics.median(self.samples) / 1000.0


def build() -> list[Config]:
    # (a) bare
    bare = Config("bare", _bare_provider(), contextlib.nullcontext)

    # (b) flowmap, installed by configure() on a provider shaped like (a)
    fm_provider = _bare_provider()
    rt = flowmap.configure(
        tenant_key=KEY,
        tracer_provider=fm_provider,
        exporters=None,
        instrument_httpx=False,
        set_global=False,
    )
    ctx = flowmap.RequestContext(TENANT)
    fm = Config("flowmap", fm_provider, lambda: flowmap.bind(ctx))
    assert rt.tracer_provider is fm_provider

    # (c) contrib BaggageSpanProcessor with one baggage entry
    try:
        from opentelemetry.processor.baggage import ALLOW_ALL_BAGGAGE_KEYS, BaggageSpanProcessor
    except ImportError:
        sys.exit("benchmarks/tracer_overhead.py needs the bench extra: pip install -e '.[bench]'")
    bg_provider = _bare_provider()
    bg_provider.add_span_processor(BaggageSpanProcessor(ALLOW_ALL_BAGGAGE_KEYS))
    tag = Tagger(KEY).tag(TENANT)
    bg_ctx = otel_baggage.set_baggage(A.BAGGAGE_KEY, tag)
    bg = Config("baggage", bg_provider, lambda: _attached(bg_ctx))

    # reference: no processor at all
    none = Config("sdk-only", TracerProvider(), contextlib.nullcontext)
    return [bare, fm, bg, none]


def _sanity(configs: list[Config]) -> None:
    """The configurations really do what they claim (a benchmark of a no-op is worthless)."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    for c in configs:
        if c.name not in ("flowmap", "baggage"):
            continue
        memory = InMemorySpanExporter()
        c.provider.add_span_processor(SimpleSpanProcessor(memory))
        with c.scope():
            c.tracer.start_span("sanity").end()
        attrs = memory.get_finished_spans()[0].attributes or {}
        assert attrs.get(A.TENANT) == Tagger(KEY).tag(TENANT), (c.name, dict(attrs))
        memory.shutdown()  # its processor stays registered but stops exporting


# What an HTTP server span typically starts with (used with --attributes N).
_TYPICAL = {
    "http.request.method": "GET",
    "url.path": "/v1/agents/support/chat",
    "url.scheme": "https",
    "server.address": "api.internal",
    "server.port": 8443,
    "client.address": "10.0.3.17",
    "user_agent.original": "python-httpx/0.28.1",
    "network.protocol.version": "1.1",
}


def span_attributes(n: int) -> dict[str, Any] | None:
    """``n`` realistic start attributes (strings and ints), or None for a bare span."""
    if n <= 0:
        return None
    items = list(_TYPICAL.items())
    return dict(items[:n]) if n <= len(items) else {**_TYPICAL, **{f"app.extra.{i}": f"value-{i}" for i in range(n - len(items))}}


def measure(rounds: int, spans: int, attributes: int = 0, seed: int = 0) -> list[Config]:
    configs = build()
    attrs = span_attributes(attributes)
    rng = random.Random(seed)
    for c in configs:  # warm-up: caches, tracer lookups, code paths
        c.run(max(spans // 4, 100), attrs)
        c.samples.clear()
    for _ in range(rounds):
        order = configs[:]
        rng.shuffle(order)
        for c in order:
            c.run(spans, attrs)
    _sanity(configs)
    return configs


def summarize(configs: list[Config]) -> dict[str, Any]:
    by = {c.name: c for c in configs}
    bare = by["bare"].median_us
    fm_add = by["flowmap"].median_us - bare
    bg_add = by["baggage"].median_us - bare
    return {
        "median_us": {c.name: round(c.median_us, 3) for c in configs},
        "flowmap_added_us": round(fm_add, 3),
        "baggage_added_us": round(bg_add, 3),
        "flowmap_added_percent": round(100.0 * fm_add / bare, 1),
        "baggage_added_percent": round(100.0 * bg_add / bare, 1),
        "flowmap_vs_baggage": round(fm_add / bg_add, 2) if bg_add > 0 else None,
        "target_met": fm_add <= bare * TARGET_PERCENT / 100.0 and fm_add < bg_add,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=31, help="interleaved rounds (median taken over them)")
    parser.add_argument("--spans", type=int, default=2000, help="spans per configuration per round")
    parser.add_argument("--attributes", type=int, default=0,
                        help="start each span with this many realistic attributes (default 0)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 unless the target is met")
    args = parser.parse_args(argv)

    configs = measure(args.rounds, args.spans, args.attributes)
    summary = summarize(configs)
    runtime.set_runtime(None)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        bare = summary["median_us"]["bare"]
        print(
            f"per-span start+end ({args.attributes} start attributes), median of {args.rounds} rounds "
            f"x {args.spans} spans (Python {sys.version.split()[0]})"
        )
        for c in configs:
            m = c.median_us
            spread = (min(c.samples) / 1000.0, max(c.samples) / 1000.0)
            extra = "" if c.name == "bare" else f"  {m - bare:+6.2f} us ({100.0 * (m - bare) / bare:+5.1f} %)"
            print(f"  {c.name:9s} {m:7.2f} us  [min {spread[0]:.2f}, max {spread[1]:.2f}]{extra}")
        ratio = summary["flowmap_vs_baggage"]
        print(
            f"flowmap adds {summary['flowmap_added_percent']:.1f} % to a bare span "
            f"(target <= {TARGET_PERCENT:.0f} %); "
            f"{'n/a' if ratio is None else f'{ratio:.2f}x'} of what BaggageSpanProcessor adds "
            f"(target < 1.00x): {'met' if summary['target_met'] else 'NOT met'}"
        )
    return 0 if (summary["target_met"] or not args.check) else 1


if __name__ == "__main__":
    sys.exit(main())
