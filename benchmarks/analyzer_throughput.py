"""Analyzer throughput: spans per second and peak memory, against the raw JSON decode floor.

    .venv/bin/python benchmarks/analyzer_throughput.py [--spans 1000000] [--repeat 3]

Generates (once; cached under ``benchmarks/out/``) OTLP JSON Lines of realistic agent
traces, then measures in one run, each stage in its own process so peak RSS is the
stage's own:

(a) floor — the fastest generic JSON decoder available (orjson or msgspec, whichever
    is faster here) decoding every line, the least any reader has to do;
(b) load — ``flowmap.loading.iter_traces`` alone (typed decode, validation, model
    objects, trace grouping);
(c) check — ``python -m flowmap check --format json --output /dev/null FILE`` end to end, as a
    user runs it (interpreter start, loading, graph, rules, paths, flow map, output); the
    bytecode of flowmap's modules is written first, as an installed copy has it.

Each line reports spans/s, the slowdown against the floor, and peak RSS; with
``--repeat K`` the stages run round by round K times and medians are quoted, with the
median of each round's own ratio to its floor (stages side by side share the machine's
drifting speed).

The traces: an ``http.server`` entry on a gateway, an agent, LLM calls, tool calls that
reach a database, a vector store, a cache and tenant memory; an ``http.client`` call to
a tool service whose ``http.server`` span has a remote parent; a queue publish whose
consumer runs in a worker as a new trace linked to the publisher. Some traces drop the
context in a thread pool (an orphan root without a tenant) and some switch tenants.
Spans are exported the way a BatchSpanProcessor does it: per service, in end order,
up to 512 spans per line, so one trace is spread over several lines.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
BATCH = 512

# -- generation ------------------------------------------------------------------------


def _s(key: str, value: str) -> str:
    return f'{{"key":"{key}","value":{{"stringValue":"{value}"}}}}'


def _i(key: str, value: int) -> str:
    return f'{{"key":"{key}","value":{{"intValue":"{value}"}}}}'


def _b(key: str, value: bool) -> str:
    return f'{{"key":"{key}","value":{{"boolValue":{"true" if value else "false"}}}}}'


def _d(key: str, value: float) -> str:
    return f'{{"key":"{key}","value":{{"doubleValue":{value}}}}}'


def _resource(service: str) -> str:
    attrs = ",".join(
        [
            _s("service.name", service),
            _s("service.version", "1.8.2"),
            _s("deployment.environment", "prod"),
            _s("telemetry.sdk.language", "python"),
            _s("telemetry.sdk.name", "opentelemetry"),
            _s("telemetry.sdk.version", "1.45.2"),
            _s("host.name", f"{service}-7d9f8b6c5-x2x4q"),
            _s("flowmap.key_id", "k1a2b3c4"),
        ]
    )
    return f'{{"attributes":[{attrs}]}}'


class _Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.tenants = [f"{self.rng.getrandbits(64):016x}" for _ in range(50)]
        self.t = 1_767_000_000_000_000_000

    def tid(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def sid(self) -> str:
        return f"{self.rng.getrandbits(64) | 1:016x}"

    def span(self, trace_id, span_id, parent, name, kind, attrs, *, links="", events="", remote=False) -> str:
        self.t += self.rng.randint(50_000, 5_000_000)
        start = self.t
        end = start + self.rng.randint(100_000, 900_000_000)
        parent_part = f',"parentSpanId":"{parent}"' if parent else ""
        flags = 0x300 if remote else 0x100
        return (
            f'{{"traceId":"{trace_id}","spanId":"{span_id}"{parent_part},"flags":{flags},"name":"{name}",'
            f'"kind":{kind},"startTimeUnixNano":"{start}","endTimeUnixNano":"{end}",'
            f'"attributes":[{",".join(attrs)}]{events}{links},"status":{{}}}}'
        )

    def trace(self) -> dict[str, list[str]]:
        """One request: spans per service, children before parents (end order)."""
        rng = self.rng
        tenant = rng.choice(self.tenants)
        tid = self.tid()
        out: dict[str, list[str]] = {"gateway": [], "tools": [], "worker": []}
        gw = out["gateway"]

        def tag(t=tenant, source="context"):
            return [_s("flowmap.tenant", t), _s("flowmap.tenant.source", source)]

        root, agent = self.sid(), self.sid()
        # LLM call(s) under the agent
        for _ in range(rng.randint(1, 3)):
            gw.append(
                self.span(tid, self.sid(), agent, "chat gpt-4o", 3, [
                    *tag(), _s("flowmap.boundary", "llm"), _s("gen_ai.operation.name", "chat"),
                    _s("gen_ai.system", "openai"), _s("gen_ai.request.model", "gpt-4o"),
                    _s("gen_ai.response.model", "gpt-4o-2024-08-06"), _i("gen_ai.usage.input_tokens", rng.randint(100, 4000)),
                    _i("gen_ai.usage.output_tokens", rng.randint(10, 800)), _d("gen_ai.request.temperature", 0.2),
                    _s("server.address", "api.openai.com"), _s("gen_ai.response.finish_reasons", "tool_calls"),
                ])
            )
        # tool calls, each touching data
        data_ops = [
            ("db", "SELECT orders", [_s("db.system.name", "postgresql"), _s("db.operation.name", "SELECT"),
                                     _s("db.collection.name", "orders"), _s("db.query.text", "SELECT * FROM orders WHERE tenant=$1")]),
            ("vector", "query documents", [_s("db.system", "qdrant"), _s("db.operation", "query"), _i("db.vector.query.top_k", 8)]),
            ("cache", "GET", [_s("db.system", "redis"), _s("db.statement", "GET ?"), _s("server.address", "cache.svc")]),
            ("memory", "memory.load", [_s("memory.store", "redis"), _s("memory.namespace", "conversation")]),
        ]
        for _ in range(rng.randint(2, 4)):
            tool = self.sid()
            for _ in range(rng.randint(1, 2)):
                boundary, name, attrs = rng.choice(data_ops)
                t2 = tenant
                if rng.random() < 0.003:
                    t2 = rng.choice(self.tenants)  # cross-tenant
                scoped = rng.random() > 0.02
                gw.append(self.span(tid, self.sid(), tool, name, 3, [*tag(t2), _s("flowmap.boundary", boundary),
                                                                    _b("flowmap.scoped", scoped), *attrs]))
            tname = rng.choice(["search_orders", "lookup_customer", "get_invoice", "summarize"])
            gw.append(self.span(tid, tool, agent, f"execute_tool {tname}", 1, [
                *tag(), _s("flowmap.boundary", "tool"), _s("gen_ai.operation.name", "execute_tool"),
                _s("gen_ai.tool.name", tname), _s("gen_ai.tool.call.id", f"call_{self.sid()}"),
                _s("gen_ai.tool.type", "function"),
            ]))
        # remote tool service over HTTP
        client = self.sid()
        server = self.sid()
        tools = out["tools"]
        tools.append(self.span(tid, self.sid(), server, "SELECT catalog", 3, [
            *tag(source="baggage"), _s("flowmap.boundary", "tool.catalog"), _b("flowmap.scoped", True),
            _s("db.system.name", "postgresql"), _s("db.operation.name", "SELECT"),
        ]))
        tools.append(self.span(tid, server, client, "POST /tools/run", 2, [
            *tag(source="baggage"), _s("flowmap.boundary", "http.server"), _s("flowmap.tenant.inbound", tenant),
            _s("http.request.method", "POST"), _s("url.path", "/tools/run"), _s("url.scheme", "http"),
            _s("http.route", "/tools/run"), _i("http.response.status_code", 200), _s("server.address", "tools.svc"),
            _s("user_agent.original", "python-httpx/0.28.1"), _s("network.protocol.version", "1.1"),
        ], remote=True))
        gw.append(self.span(tid, client, agent, "POST", 3, [
            *tag(), _s("flowmap.boundary", "http.client"), _b("flowmap.baggage.sent", True),
            _s("http.request.method", "POST"), _s("url.full", "http://tools.svc/tools/run"),
            _s("server.address", "tools.svc"), _i("server.port", 80), _i("http.response.status_code", 200),
        ]))
        # queue publish, consumed by a worker in a linked trace
        pub = self.sid()
        gw.append(self.span(tid, pub, agent, "jobs publish", 4, [
            *tag(), _s("flowmap.boundary", "queue.publish"), _s("messaging.system", "kafka"),
            _s("messaging.operation.type", "send"), _s("messaging.destination.name", "jobs"),
            _s("messaging.kafka.message.key", "k"),
        ]))
        wtid, consume = self.tid(), self.sid()
        worker = out["worker"]
        worker_tenant_lost = rng.random() < 0.02
        wtag = [] if worker_tenant_lost else tag(source="baggage")
        worker.append(self.span(wtid, self.sid(), consume, "chat gpt-4o-mini", 3, [
            *wtag, _s("flowmap.boundary", "llm"), _s("gen_ai.operation.name", "chat"), _s("gen_ai.system", "openai"),
            _s("gen_ai.request.model", "gpt-4o-mini"), _i("gen_ai.usage.input_tokens", 900),
        ]))
        worker.append(self.span(wtid, self.sid(), consume, "SET", 3, [
            *wtag, _s("flowmap.boundary", "cache"), _b("flowmap.scoped", True), _s("db.system", "redis"),
            _s("db.statement", "SET ? ?"),
        ]))
        link = f',"links":[{{"traceId":"{tid}","spanId":"{pub}","flags":256}}]'
        worker.append(self.span(wtid, consume, None, "jobs process", 5, [
            *wtag, _s("flowmap.boundary", "queue.consume"), _s("messaging.system", "kafka"),
            _s("messaging.operation.type", "process"), _s("messaging.destination.name", "jobs"),
        ], links=link))
        # context dropped in a thread pool: an orphan root in its own trace
        if rng.random() < 0.05:
            gw.append(self.span(self.tid(), self.sid(), None, "GET", 3, [
                _s("flowmap.boundary", "cache"), _b("flowmap.scoped", False), _s("db.system", "redis"),
                _s("db.statement", "GET ?"),
            ]))
        gw.append(self.span(tid, agent, root, "invoke_agent support", 1, [
            *tag(), _s("flowmap.boundary", "agent"), _s("gen_ai.operation.name", "invoke_agent"),
            _s("gen_ai.agent.name", "support"), _s("gen_ai.agent.id", "asst_01"),
        ]))
        event = ',"events":[{"timeUnixNano":"%d","name":"request.accepted","attributes":[%s]}]' % (
            self.t, _s("queue", "default"))
        gw.append(self.span(tid, root, None, "POST /v1/chat", 2, [
            *tag(), _s("flowmap.boundary", "http.server"), _s("http.request.method", "POST"), _s("url.path", "/v1/chat"),
            _s("url.scheme", "https"), _s("http.route", "/v1/chat"), _i("http.response.status_code", 200),
            _s("server.address", "api.example.com"), _s("client.address", "10.0.3.7"),
            _s("user_agent.original", "Mozilla/5.0"), _s("network.protocol.version", "2"),
        ], events=event))
        return out


def generate(path: Path, spans: int, seed: int = 7) -> int:
    """Write at least ``spans`` spans to ``path``; returns the number written."""
    gen = _Gen(seed)
    services = ("gateway", "tools", "worker")
    resources = {s: _resource(s) for s in services}
    buffers: dict[str, list[str]] = {s: [] for s in services}
    written = 0
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:

        def flush(service: str) -> None:
            buf = buffers[service]
            fh.write(
                f'{{"resourceSpans":[{{"resource":{resources[service]},"scopeSpans":[{{"scope":'
                f'{{"name":"flowmap","version":"0.1.0"}},"spans":[{",".join(buf)}]}}]}}]}}\n'
            )
            buf.clear()

        while written < spans:
            for service, items in gen.trace().items():
                buffers[service].extend(items)
                written += len(items)
                if len(buffers[service]) >= BATCH:
                    flush(service)
        for service in services:
            if buffers[service]:
                flush(service)
    tmp.replace(path)
    return written


def ensure_input(spans: int) -> tuple[Path, int]:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"agent-traces-{spans}.jsonl"
    meta = path.with_suffix(".meta.json")
    if path.exists() and meta.exists():
        return path, json.loads(meta.read_text())["spans"]
    t0 = time.perf_counter()
    n = generate(path, spans)
    meta.write_text(json.dumps({"spans": n}))
    print(f"generated {n:,} spans in {time.perf_counter() - t0:.1f}s -> {path} "
          f"({path.stat().st_size / 1e6:.0f} MB)", file=sys.stderr)
    return path, n


# -- stages (each runs in its own process) -----------------------------------------------------


def _maxrss_bytes(who: int) -> int:
    rss = resource.getrusage(who).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def stage_floor(path: str) -> dict:
    decoders = {}
    try:
        import orjson

        decoders["orjson"] = orjson.loads
    except ImportError:
        pass
    import msgspec

    decoders["msgspec"] = msgspec.json.decode
    best = None
    for name, decode in decoders.items():
        t0 = time.perf_counter()
        with open(path, "rb") as fh:
            for line in fh:
                decode(line)
        elapsed = time.perf_counter() - t0
        if best is None or elapsed < best[1]:
            best = (name, elapsed)
    return {"seconds": best[1], "decoder": best[0], "rss": _maxrss_bytes(resource.RUSAGE_SELF)}


def stage_load(path: str) -> dict:
    from flowmap.loading import LoadStats, iter_traces

    stats = LoadStats()
    t0 = time.perf_counter()
    for _ in iter_traces([path], stats=stats):
        pass
    elapsed = time.perf_counter() - t0
    return {"seconds": elapsed, "spans": stats.spans, "traces": stats.traces,
            "rss": _maxrss_bytes(resource.RUSAGE_SELF)}


def stage_check(path: str) -> dict:
    cmd = [sys.executable, "-m", "flowmap", "check", "--format", "json", "--output", os.devnull, path]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"}
    return {"seconds": elapsed, "rss": _maxrss_bytes(resource.RUSAGE_CHILDREN)}


STAGES = {"floor": stage_floor, "load": stage_load, "check": stage_check}


def run_stage(name: str, path: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--stage", name, str(path)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout)


def _compile_bytecode() -> bool:
    """Write the bytecode of flowmap's modules, as ``pip install`` does: a development
    checkout (or any run with PYTHONDONTWRITEBYTECODE set) otherwise compiles every module
    from source in each ``check`` process, ~30 ms that no installed copy pays."""
    import compileall

    import flowmap

    return bool(compileall.compile_dir(Path(flowmap.__file__).parent, quiet=2))


def _interpreter() -> str:
    """Which Python runs the stages, and how it was built: the build alone moves the
    figures (here pyenv's default 3.11, libpython shared and no PGO/LTO, runs ``check``
    ~7 % slower than Debian's python3.11, which links it statically and optimised)."""
    import sysconfig

    args = sysconfig.get_config_var("CONFIG_ARGS") or ""
    flags = [f for f in ("--enable-optimizations", "--with-lto") if f in args]
    try:
        with open("/proc/self/maps") as maps:
            linked = "libpython shared" if "libpython" in maps.read() else "libpython static"
    except OSError:
        linked = "libpython ?"
    built = ", ".join([linked, *flags]) if flags else linked
    return f"python {sys.version.split()[0]} ({sys.executable}; {built})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--stages", default="floor,load,check")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("file", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:
        print(json.dumps(STAGES[args.stage](args.file)))
        return 0

    path, spans = ensure_input(args.spans)
    size_mb = path.stat().st_size / 1e6
    compiled = "bytecode compiled" if _compile_bytecode() else "bytecode NOT compiled (read-only install?)"
    print(f"input: {path.relative_to(HERE.parent)}  {spans:,} spans  {size_mb:.0f} MB  "
          f"repeat {args.repeat} (median)  {compiled}\n{_interpreter()}")
    # Round by round (floor, load, check, then again): this machine's speed drifts over
    # minutes, and stages measured side by side share the drift, so each round's own
    # ratio to its floor is quoted too (the median over rounds).
    names = args.stages.split(",")
    rounds = [{name: run_stage(name, path) for name in names} for _ in range(args.repeat)]
    results: dict[str, dict] = {}
    for name in names:
        ok = [rnd[name] for rnd in rounds if "error" not in rnd[name]]
        if not ok:
            results[name] = rounds[0][name]
            continue
        med = statistics.median(r["seconds"] for r in ok)
        results[name] = {**ok[0], "seconds": med, "rss": statistics.median(r["rss"] for r in ok)}
    floor = results.get("floor", {}).get("seconds")
    for name in names:
        r = results[name]
        if "error" in r:
            print(f"{name:>6}: not measured ({r['error']})")
            continue
        rate = spans / r["seconds"]
        ratio = f"{r['seconds'] / floor:4.2f}x floor" if floor else "-"
        same = [rnd[name]["seconds"] / rnd["floor"]["seconds"] for rnd in rounds
                if "floor" in rnd and "error" not in rnd["floor"] and "error" not in rnd[name]]
        per_round = f" ({statistics.median(same):4.2f}x per round)" if same and name != "floor" else ""
        extra = f"  [{r['decoder']}]" if name == "floor" else ""
        print(f"{name:>6}: {rate:>9,.0f} spans/s  {r['seconds']:6.2f} s  {ratio}{per_round}  "
              f"peak RSS {r['rss'] / 2**20:6.0f} MiB{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
