"""The analysis stage alone: spans per second of ``Analyzer.add`` + ``finish``, loading excluded.

    .venv/bin/python benchmarks/analysis_stage.py [FILE] [--repeat 5] [--profile]

Loads every trace of FILE (default: the newest ``benchmarks/out/agent-traces-*.jsonl``
that ``analyzer_throughput.py`` generated) into memory first, then runs a fresh
:class:`flowmap.analysis.Analyzer` over them ``--repeat`` times with the garbage collector
paused (as ``flowmap.analyze`` does) and prints the median spans/s. ``--profile`` runs
once more under cProfile and prints the top functions by own time.
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


def run(traces: list) -> float:
    gc.disable()
    try:
        t0 = time.perf_counter()
        a = Analyzer()
        for t in traces:
            a.add(t)
        a.finish()
        return time.perf_counter() - t0
    finally:
        gc.enable()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("file", nargs="?", type=Path)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--profile", action="store_true")
    args = p.parse_args()
    path = args.file or _default_file()
    gc.disable()
    traces = list(iter_traces([path]))
    gc.enable()
    gc.collect()
    gc.freeze()  # the loaded input is not garbage: keep the collector off it
    spans = sum(len(t.spans) for t in traces)
    times = [run(traces) for _ in range(args.repeat)]
    med = statistics.median(times)
    print(f"{path.name}: {len(traces)} traces, {spans} spans")
    print(f"analysis stage: median {spans / med:,.0f} spans/s over {args.repeat} runs "
          f"(best {spans / min(times):,.0f}, worst {spans / max(times):,.0f})")
    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.runcall(run, traces)
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
