"""The analysis stage alone: spans per second of ``Analyzer.add`` + ``finish``, loading excluded.

    .venv/bin/python benchmarks/analysis_stage.py [FILE] [--repeat 5] [--profile] [--components]

Streams every trace of FILE (default: the newest ``benchmarks/out/agent-traces-*.jsonl``
that ``analyzer_throughput.py`` generated) through the loader into a fresh
:class:`flowmap.analysis.Analyzer`, as ``flowmap.analyze`` does (garbage collector paused),
and times only ``Analyzer.add`` and ``finish``; ``--repeat`` runs, median spans/s. Each
trace is analysed right after it was decoded, as in a real run: analysing traces loaded
long before is slower (their objects are no longer in the CPU caches), so this is what
``flowmap check`` gets. ``--profile`` runs once more under cProfile (the analysis only)
and prints the top functions by own time. ``--components`` times the analysis's parts
one by one over every trace loaded first (span graph, rules, flow map, cross-trace links,
and the whole ``Analyzer.add``), in µs a span, medians of ``--repeat`` passes: the way
to compare two versions of the analysis, run alternately.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

from flowmap.analysis import Analyzer
from flowmap.loading import iter_traces

OUT = Path(__file__).resolve().parent / "out"


def _default_file() -> Path:
    files = sorted(OUT.glob("agent-traces-*.jsonl"), key=lambda p: p.stat().st_mtime)
    if not files:
        sys.exit("no input: run benchmarks/analyzer_throughput.py once, or pass a file")
    return files[-1]


def run(path: Path) -> tuple[float, int]:
    """Seconds spent in the analyzer (loading excluded), and the number of spans."""
    clock = time.perf_counter
    spent = 0.0
    was = gc.isenabled()
    gc.disable()
    try:
        a = Analyzer()
        for trace in iter_traces([path]):
            gc.disable()  # the loader restores the caller's setting while it yields
            t0 = clock()
            a.add(trace)
            spent += clock() - t0
        t0 = clock()
        result = a.finish()
        spent += clock() - t0
    finally:
        if was:
            gc.enable()
    return spent, result.spans


def components(path: Path, repeat: int) -> dict[str, float]:
    """µs a span of each part of the analysis, every trace in memory (medians)."""
    from flowmap.graph import SpanGraph
    from flowmap.rules import evaluate

    traces = list(iter_traces([path]))
    spans = sum(len(t.spans) for t in traces)
    clock = time.perf_counter
    parts: dict[str, list[float]] = {k: [] for k in ("graph", "rules", "flow", "links", "add")}
    was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            a = Analyzer()
            t0 = clock()
            graphs = [SpanGraph(t) for t in traces]
            t1 = clock()
            verdicts = [evaluate(g, a.settings) for g in graphs]
            t2 = clock()
            for g, v in zip(graphs, verdicts):
                a._flow.add_trace(g, v)  # noqa: SLF001 - timing the part on its own
            t3 = clock()
            for g in graphs:
                a._links(g)  # noqa: SLF001
            t4 = clock()
            del graphs, verdicts
            whole = Analyzer()
            t5 = clock()
            for t in traces:
                whole.add(t)
            whole.finish()
            t6 = clock()
            for name, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t6 - t5)):
                parts[name].append(seconds)
    finally:
        if was:
            gc.enable()
    return {name: statistics.median(v) / spans * 1e6 for name, v in parts.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("file", nargs="?", type=Path)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--components", action="store_true")
    args = p.parse_args()
    path = args.file or _default_file()
    if args.components:
        us = components(path, args.repeat)
        print(f"{path.name}, every trace in memory, µs a span (median of {args.repeat}): "
              + "  ".join(f"{k} {v:.3f}" for k, v in us.items()))
        return
    runs = [run(path) for _ in range(args.repeat)]
    spans = runs[0][1]
    times = [t for t, _ in runs]
    med = statistics.median(times)
    print(f"{path.name}: {spans} spans")
    print(f"analysis stage: median {spans / med:,.0f} spans/s over {args.repeat} runs "
          f"(best {spans / min(times):,.0f}, worst {spans / max(times):,.0f})")
    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        a = Analyzer()
        gc.disable()
        for trace in iter_traces([path]):
            gc.disable()
            prof.runcall(a.add, trace)
        prof.runcall(a.finish)
        gc.enable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
