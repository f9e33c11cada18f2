"""Peak memory of ``flowmap check`` on many small traces: the first pass's index.

    .venv/bin/python benchmarks/index_memory.py [--traces 1000000]

The analysis holds one trace at a time, but the first pass notes where every trace id
appears last, so an input of many tiny traces (one span each here, 512 spans a line)
makes that index the largest structure. Generates the input once under
``benchmarks/out/`` and prints peak RSS of ``python -m flowmap check --format json
--output /dev/null FILE`` (its own process), in total and per distinct trace id.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
_RESOURCE = '{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}}]},"scopeSpans":[{"spans":['
_SPAN = (
    '{"traceId":"%032x","spanId":"%016x","name":"GET /items","kind":2,"startTimeUnixNano":"%d",'
    '"endTimeUnixNano":"%d","attributes":[{"key":"flowmap.tenant","value":{"stringValue":"0123456789abcdef"}},'
    '{"key":"flowmap.boundary","value":{"stringValue":"http.server"}}]}'
)


def ensure_input(traces: int) -> Path:
    path = OUT / f"single-span-traces-{traces}.jsonl"
    if path.exists():
        return path
    OUT.mkdir(exist_ok=True)
    rng = random.Random(3)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        batch: list[str] = []
        for i in range(traces):
            t = 1_767_000_000_000_000_000 + i * 1000
            batch.append(_SPAN % (rng.getrandbits(128), rng.getrandbits(64) | 1, t, t + 500))
            if len(batch) == 512 or i == traces - 1:
                f.write('{"resourceSpans":[' + _RESOURCE + ",".join(batch) + "]}]}]}\n")
                batch = []
    os.replace(tmp, path)
    return path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--traces", type=int, default=1_000_000)
    args = p.parse_args()
    path = ensure_input(args.traces)
    cmd = [sys.executable, "-m", "flowmap", "check", "--format", "json", "--output", os.devnull, str(path)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        print(proc.stderr.strip(), file=sys.stderr)
        return 1
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # Linux: KiB
    size = path.stat().st_size / 1e6
    print(f"{args.traces:,} one-span traces ({size:.0f} MB): peak RSS {peak / 2**20:.0f} MiB, "
          f"{peak / args.traces:.0f} bytes a trace id, {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
