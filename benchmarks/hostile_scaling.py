"""How the analysis scales on hostile shapes of input: its time at size n, 2n and 4n.

    .venv/bin/python benchmarks/hostile_scaling.py [--base 2500] [--repeat 3] [SHAPE…]

Each shape is written (in a temporary directory) at three sizes, each analysed by
``flowmap.analyze`` (masking included: it runs at the end of the analysis) in this one
process; printed: the input's size, the median CPU time of ``--repeat`` runs, and how
the time grows with the input from one size to the next, as an exponent: log(time
ratio) / log(size ratio), about 1 when the work is linear in the input, 2 when it is
quadratic. Only figures measured in the same run compare (the machine's speed varies).

- ``paths``: one trace, a chain of n spans with n tool calls under its last span (every
  final tool call's path was built before the cap of 1,000 chose);
- ``entries``: one untagged trace, a chain of n spans each calling a SERVER span (each
  entry walked the chain above it again);
- ``mask-long``: n/5 flagged raw ids sharing their first four characters, each of
  another length (so the ids alone grow as n squared), and n/500 span names of 4,000
  characters made of that head (every place tried every length: the names times the
  ids);
- ``mask-short``: n/2 distinct three-letter raw ids, one flagged span each (one pattern
  of them all was matched against every text);
- ``fan-out``: a batch job's trace sending n messages, then n consumers' traces, each
  linking to its message's send (each link looked its target up in a string of all n
  span ids);
- ``doc-key``: one pretty-printed document with an unknown key of 2,000·n characters
  beside its spans (the walk that finds each span's line stepped over a key a character
  at a time: ~0.25 µs each);
- ``doc-stream``: n pretty-printed documents of one span each, one after another (as
  ``jq .`` writes them; the walk costs per document, not per span).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import math
import statistics
import string
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import flowmap

TRACE = "0af7651916cd43dd8448eb211c80319c"
TAG = {"key": "flowmap.tenant", "value": {"stringValue": "0123456789abcdef"}}
TOOL = {"key": "flowmap.boundary", "value": {"stringValue": "tool"}}


def _span(trace_id: str, n: int, parent: int | None = None, **extra: object) -> dict:
    out = {"traceId": trace_id, "spanId": f"{n:016x}", "name": "op", "kind": 1,
           "startTimeUnixNano": "1000", "endTimeUnixNano": "2000"}
    if parent:
        out["parentSpanId"] = f"{parent:016x}"
    out.update(extra)
    return out


def _write(path: Path, spans: list[dict], *more: list[dict]) -> Path:
    """One line of ``spans`` (and one of each of ``more``)."""
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "app"}}]}
    lines = [{"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {"name": "t"}, "spans": batch}]}]}
             for batch in (spans, *more)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def paths(d: Path, n: int) -> Path:
    spans = [_span(TRACE, 1, kind=2, attributes=[TAG])]
    spans += [_span(TRACE, i, parent=i - 1, attributes=[TAG]) for i in range(2, n + 1)]
    spans += [_span(TRACE, n + 1 + j, parent=n, attributes=[TAG, TOOL]) for j in range(n)]
    return _write(d / f"paths-{n}.jsonl", spans)


def entries(d: Path, n: int) -> Path:
    spans = [_span(TRACE, 1)] + [_span(TRACE, i, parent=i - 1) for i in range(2, n + 1)]
    spans += [_span(TRACE, n + j, parent=j, kind=2) for j in range(1, n + 1)]
    return _write(d / f"entries-{n}.jsonl", spans)


def mask_long(d: Path, n: int) -> Path:
    ids = ["aaaa" + "x" * k for k in range(1, n // 5 + 1)]
    spans = [_span(f"{k + 1:032x}", 1, attributes=[{"key": "tenant_id", "value": {"stringValue": v}}])
             for k, v in enumerate(ids)]
    spans += [_span(f"f{j:031x}", 1, name="a" * 4000 + f"-{j}",
                    attributes=[{"key": "tenant_id", "value": {"stringValue": "zzzz"}}]) for j in range(n // 500)]
    return _write(d / f"mask-long-{n}.jsonl", spans)


def mask_short(d: Path, n: int) -> Path:
    codes = ["".join(c) for c in itertools.product(string.ascii_lowercase, repeat=3)][: n // 2]
    spans = [_span(f"{i + 1:032x}", 1, name=f"operation number {i} handling request",
                   attributes=[{"key": "tenant_id", "value": {"stringValue": c}}]) for i, c in enumerate(codes)]
    return _write(d / f"mask-short-{n}.jsonl", spans)


def fan_out(d: Path, n: int) -> Path:
    sends = [_span(TRACE, 1, kind=2, attributes=[TAG])]
    sends += [_span(TRACE, i, parent=1, name="jobs send", kind=4, attributes=[TAG]) for i in range(2, n + 2)]
    consumers = [_span(f"{i + 1:032x}", 1, name="jobs process", kind=5, attributes=[TAG],
                       links=[{"traceId": TRACE, "spanId": f"{i:016x}"}]) for i in range(2, n + 2)]
    work = [_span(f"{i + 1:032x}", 2, parent=1, attributes=[TAG]) for i in range(2, n + 2)]
    # the batch's trace is complete at the consumers' line, theirs one line later
    return _write(d / f"fan-out-{n}.jsonl", sends, consumers, work)


def _document(spans: list[dict], **extra: object) -> dict:
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "app"}}]}
    return {**extra, "resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}]}]}


def doc_key(d: Path, n: int) -> Path:
    doc = _document([_span(TRACE, 1, kind=2, attributes=[TAG]), _span(TRACE, 2, parent=1, attributes=[TAG])],
                    **{"k" * (2000 * n): 1})
    path = d / f"doc-key-{n}.json"
    path.write_text(json.dumps(doc, indent=2))
    return path


def doc_stream(d: Path, n: int) -> Path:
    docs = (json.dumps(_document([_span(f"{i + 1:032x}", 1, kind=2, attributes=[TAG])]), indent=2) for i in range(n))
    path = d / f"doc-stream-{n}.json"
    path.write_text("\n".join(docs) + "\n")
    return path


SHAPES: dict[str, Callable[[Path, int], Path]] = {
    "paths": paths, "entries": entries, "mask-long": mask_long, "mask-short": mask_short, "fan-out": fan_out,
    "doc-key": doc_key, "doc-stream": doc_stream,
}


def seconds(path: Path) -> float:
    gc.collect()
    t0 = time.process_time()
    flowmap.analyze(path)
    return time.process_time() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", type=int, default=2500, help="n, the smallest size (default 2500)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("shapes", nargs="*", metavar="SHAPE", help=f"of {', '.join(SHAPES)} (default: all)")
    args = p.parse_args()
    unknown = set(args.shapes) - set(SHAPES)
    if unknown:
        p.error(f"unknown shape(s): {', '.join(sorted(unknown))}")
    sizes = [args.base, 2 * args.base, 4 * args.base]
    print(f"CPU seconds of flowmap.analyze, median of {args.repeat}; growth exponent against the "
          f"input's size (1: linear, 2: quadratic); python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        seconds(paths(Path(tmp), 10))  # imports and first-use caches out of the figures
        for name in args.shapes or SHAPES:
            files = [SHAPES[name](Path(tmp), n) for n in sizes]
            mb = [f.stat().st_size / 1e6 for f in files]
            times = [statistics.median(seconds(f) for _ in range(args.repeat)) for f in files]
            cells = []
            for i, (n, size, t) in enumerate(zip(sizes, mb, times)):
                grow = f", ^{math.log(t / times[i - 1]) / math.log(size / mb[i - 1]):.2f}" if i else ""
                cells.append(f"n={n:,} {size:.1f} MB: {t:.3f} s{grow}")
            print(f"{name:<11} " + "   ".join(cells))


if __name__ == "__main__":
    main()
