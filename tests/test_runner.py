"""`flowmap run` end to end: real child processes, the real SDK, real HTTP on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowmap.analysis import analyze
from flowmap.loading import iter_traces
from flowmap.model import Severity
from flowmap.runner import command_for

from servers import RecordingApp, serve

RAW_IDS = ("acme-corp", "globex-inc")

DROP_SCRIPT = """
    import concurrent.futures, sys
    from flowmap import RequestContext, bind, boundary

    pool = concurrent.futures.ThreadPoolExecutor(2)

    @boundary("vector", "vector.search docs", scoped=True, mode="record")
    def search(query):
        return query.upper()

    for tenant in ("acme-corp", "globex-inc"):
        with bind(RequestContext(tenant)):
            with boundary("agent", "agent.run"):
                pool.submit(search, "refunds").result()   # the pool drops the context
    print("served")
    sys.exit(3)
"""

OWN_OTEL_SCRIPT = """
    import sys
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
    from flowmap import RequestContext, bind

    class NamesExporter(SpanExporter):
        def export(self, spans):
            with open(sys.argv[1], "a") as f:
                for s in spans:
                    f.write(f"{s.name} {s.attributes.get('flowmap.tenant', '-')}\\n")
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(NamesExporter()))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("own-app")
    with bind(RequestContext("acme-corp")):
        with tracer.start_as_current_span("own.request"):
            with tracer.start_as_current_span("own.step") as span:
                span.set_attribute("note", "for acme-corp")
"""

PARENT_SCRIPT = """
    import subprocess, sys
    from opentelemetry import trace
    with trace.get_tracer("parent").start_as_current_span("parent.work"):
        pass
    sys.exit(subprocess.call([sys.executable, sys.argv[1]]))
"""

CHILD_SCRIPT = """
    from opentelemetry import trace
    from flowmap import RequestContext, bind, boundary
    with bind(RequestContext("globex-inc")):
        with boundary("tool", "child.tool"):
            pass
"""

HTTPX_SCRIPT = """
    import sys, {client}
    from flowmap import RequestContext, bind, boundary
    with bind(RequestContext("acme-corp")):
        with boundary("agent", "agent.run"):
            {client}.get(sys.argv[1] + "/tool")
"""


THREADS_FIRST_SCRIPT = """
    import threading
    from opentelemetry import trace

    tracer = trace.get_tracer("pool")
    start = threading.Barrier(8)

    def work(i):
        start.wait()  # the program's first spans start together, in 8 threads
        with tracer.start_as_current_span(f"request-{i}"):
            with tracer.start_as_current_span(f"step-{i}"):
                pass

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWMAP_TENANT_KEY", "runner-test-key")
    for name in ("FLOWMAP_DEV_MODE", "FLOWMAP_FILE", "OTEL_SERVICE_NAME", "OTEL_TRACES_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _script(workdir: Path, name: str, body: str) -> Path:
    path = workdir / name
    path.write_text(textwrap.dedent(body))
    return path


def _flowmap_run(workdir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowmap", "run", "--out", str(workdir / "traces.jsonl"), *args],
        cwd=workdir, capture_output=True, text=True, timeout=120, env=env,
    )


def _assert_no_raw_ids(*texts: str) -> None:
    for text in texts:
        for raw in RAW_IDS:
            assert raw not in text


def test_thread_pool_drop_is_found_and_exit_code_passes_through(workdir):
    script = _script(workdir, "drop.py", DROP_SCRIPT)
    proc = _flowmap_run(workdir, str(script))
    assert proc.returncode == 3, proc.stderr
    assert "served" in proc.stdout  # the program's own output is untouched
    analysis = analyze([workdir / "traces.jsonl"])
    orphans = [f for f in analysis.findings if f.rule == "orphan-root"]
    assert [f.span_name for f in orphans] == ["vector.search docs"] * 2
    assert all(f.severity == Severity.HIGH and f.service == "drop" for f in orphans)
    assert "findings: 2 high" in proc.stderr and "exited 3" in proc.stderr
    assert (workdir / "reports" / "risk-map.html").exists()
    _assert_no_raw_ids((workdir / "traces.jsonl").read_text(), proc.stdout, proc.stderr,
                       (workdir / "reports" / "risk-map.html").read_text())


def test_first_spans_started_together_in_threads_are_all_recorded(workdir):
    """Threads that start spans while another installs the provider wait for it instead of
    getting the no-op tracer (which lost their whole requests)."""
    script = _script(workdir, "pool.py", THREADS_FIRST_SCRIPT)
    for _ in range(3):
        (workdir / "traces.jsonl").unlink(missing_ok=True)
        proc = _flowmap_run(workdir, "--no-report", str(script))
        assert proc.returncode == 0, proc.stderr
        analysis = analyze([workdir / "traces.jsonl"])
        assert analysis.spans == 16 and analysis.traces == 8


def test_program_that_configures_opentelemetry_keeps_its_exporter(workdir):
    script = _script(workdir, "own.py", OWN_OTEL_SCRIPT)
    names = workdir / "own-exporter.txt"
    proc = _flowmap_run(workdir, str(script), str(names))
    assert proc.returncode == 0, proc.stderr
    lines = names.read_text().splitlines()
    # Its own exporter got every span, tagged by flowmap's processor (opaque tag, not the id).
    assert [line.split()[0] for line in lines] == ["own.step", "own.request"]
    assert all(len(line.split()[1]) == 16 for line in lines)
    analysis = analyze([workdir / "traces.jsonl"])
    assert analysis.spans == 2 and len(analysis.tenant_tags) == 1
    _assert_no_raw_ids((workdir / "traces.jsonl").read_text(), names.read_text(), proc.stderr)


def test_child_python_processes_are_traced_into_the_same_file(workdir):
    parent = _script(workdir, "parent.py", PARENT_SCRIPT)
    child = _script(workdir, "child.py", CHILD_SCRIPT)
    proc = _flowmap_run(workdir, "--", sys.executable, str(parent), str(child))
    assert proc.returncode == 0, proc.stderr
    analysis = analyze([workdir / "traces.jsonl"])
    assert analysis.services == {"parent", "child"}
    assert analysis.spans == 2


def test_module_mode_runs_python_dash_m(workdir):
    pkg = workdir / "shop"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    _script(pkg, "__main__.py", textwrap.dedent(CHILD_SCRIPT) + "raise SystemExit(5)\n")
    proc = _flowmap_run(workdir, "-m", "shop")
    assert proc.returncode == 5, proc.stderr
    analysis = analyze([workdir / "traces.jsonl"])
    assert analysis.services == {"shop"} and analysis.spans == 1


@pytest.mark.parametrize("client", ["httpx", "httpx2"])
def test_httpx_is_instrumented_before_the_program_runs(workdir, client):
    script = _script(workdir, "client.py", HTTPX_SCRIPT.format(client=client))
    app = RecordingApp()
    with serve(app) as server:
        proc = _flowmap_run(workdir, str(script), server.url)
    assert proc.returncode == 0, proc.stderr
    headers = app.requests[0]["headers"]
    assert "traceparent" in headers and headers["baggage"].startswith("flowmap.tenant=")
    _assert_no_raw_ids(str(headers))
    analysis = analyze([workdir / "traces.jsonl"])
    assert analysis.spans == 2 and not [f for f in analysis.findings if f.severity >= Severity.MEDIUM]


def test_without_a_tenant_key_run_refuses_in_one_line(workdir):
    env = {k: v for k, v in os.environ.items() if k != "FLOWMAP_TENANT_KEY"}
    script = _script(workdir, "noop.py", "print('ran')\n")
    proc = _flowmap_run(workdir, str(script), env=env)
    assert proc.returncode == 2
    assert "FLOWMAP_TENANT_KEY" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "ran" not in proc.stdout


def test_command_for_picks_python_for_scripts_and_modules(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app.py").write_text("")
    assert command_for(["app.py", "-x"], module=False) == [sys.executable, "app.py", "-x"]
    assert command_for(["--", "pkg.mod"], module=True) == [sys.executable, "-m", "pkg.mod"]
    assert command_for(["--", "true"], module=False) == ["true"]


def test_dev_flag_runs_without_a_key_and_options_reach_the_runner(workdir):
    env = {k: v for k, v in os.environ.items() if k != "FLOWMAP_TENANT_KEY"}
    script = _script(workdir, "tool.py", textwrap.dedent(CHILD_SCRIPT) + "import sys; sys.exit(4)\n")
    report = workdir / "out" / "map.html"
    proc = _flowmap_run(workdir, "--dev", "--service-name", "svc-under-test", "--report", str(report),
                        str(script), env=env)
    assert proc.returncode == 4, proc.stderr
    assert "DEVELOPMENT MODE" in proc.stderr or "not secret" in proc.stderr.lower()
    assert report.is_file()
    analysis = analyze([workdir / "traces.jsonl"])
    assert analysis.services == {"svc-under-test"}
    _assert_no_raw_ids((workdir / "traces.jsonl").read_text(), report.read_text(), proc.stderr, proc.stdout)


def test_no_report_flag_writes_no_risk_map(workdir):
    script = _script(workdir, "tool.py", CHILD_SCRIPT)
    proc = _flowmap_run(workdir, "--no-report", str(script))
    assert proc.returncode == 0, proc.stderr
    assert not (workdir / "reports").exists()


def test_the_summary_judges_as_flowmap_check_does_with_the_projects_config(workdir):
    script = _script(workdir, "drop.py", DROP_SCRIPT)
    (workdir / "pyproject.toml").write_text('[tool.flowmap]\ntransparent_services = ["drop"]\n')
    proc = _flowmap_run(workdir, str(script), "--no-report")
    assert proc.returncode == 3, proc.stderr
    assert "findings: none" in proc.stderr  # every span of the service passed through
    (workdir / "pyproject.toml").write_text('[tool.flowmap]\nfail_on = "severe"\n')
    proc = _flowmap_run(workdir, str(script), "--no-report")
    assert "[tool.flowmap] not used:" in proc.stderr and "unknown severity 'severe'" in proc.stderr
    assert "findings: 2 high" in proc.stderr  # judged with the defaults instead
    # a key flowmap does not know is said, as `flowmap check` says it
    (workdir / "pyproject.toml").write_text('[tool.flowmap]\ntransparent_service = ["drop"]\n')
    proc = _flowmap_run(workdir, str(script), "--no-report")
    assert "warning:" in proc.stderr and "unknown keys ignored: transparent_service" in proc.stderr


# -- what a trace file path may be, signals, forked workers (stop 17's audit) ---------------

SPANS_SCRIPT = """
    import sys, time
    from opentelemetry import trace
    import flowmap
    tracer = trace.get_tracer("t")
    for i in range(3):
        with flowmap.bind(flowmap.RequestContext("acme-corp")):
            with tracer.start_as_current_span(f"req-{i}", kind=trace.SpanKind.SERVER):
                pass
    print("ready", flush=True)
    time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 0)
"""


def _span_names(path: Path) -> list[str]:
    return sorted(s.name for t in analyze([path]).sample_traces.values() for s in t.spans.values())


def test_a_symlinked_trace_file_is_replaced_and_its_target_kept(workdir):
    target = workdir / "important.txt"
    target.write_text("keep me\n")
    (workdir / "traces.jsonl").symlink_to(target)
    proc = _flowmap_run(workdir, "--no-report", str(_script(workdir, "s.py", SPANS_SCRIPT)))
    assert proc.returncode == 0, proc.stderr
    assert target.read_text() == "keep me\n"
    assert not (workdir / "traces.jsonl").is_symlink() and len(_span_names(workdir / "traces.jsonl")) == 3


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_trace_file_path_that_is_no_regular_file_is_refused_untouched(workdir, kind):
    out = workdir / "traces.jsonl"
    os.mkfifo(out) if kind == "fifo" else out.mkdir()
    proc = _flowmap_run(workdir, "--no-report", str(_script(workdir, "s.py", SPANS_SCRIPT)))
    assert proc.returncode == 2 and "is not a regular file" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert (os.path.exists(out) and not out.is_file())  # still a FIFO / directory


def test_forked_multiprocessing_workers_are_flushed(workdir):
    """Forked workers end with os._exit (no atexit): a Pool's (terminated on leaving its
    with block) and plain Processes' spans are still written."""
    script = _script(workdir, "mp.py", """
        import multiprocessing as mp
        from opentelemetry import trace
        import flowmap
        tracer = trace.get_tracer("mp")
        def work(i):
            with flowmap.bind(flowmap.RequestContext("acme-corp")):
                with tracer.start_as_current_span(f"job-{i}", kind=trace.SpanKind.CONSUMER):
                    pass
            return i
        if __name__ == "__main__":
            ctx = mp.get_context("fork")
            ps = [ctx.Process(target=work, args=(i,)) for i in range(2)]
            [p.start() for p in ps]
            [p.join() for p in ps]
            with ctx.Pool(2) as pool:
                print(pool.map(work, range(2, 6)))
    """)
    proc = _flowmap_run(workdir, "--no-report", str(script))
    assert proc.returncode == 0, proc.stderr
    assert _span_names(workdir / "traces.jsonl") == [f"job-{i}" for i in range(6)]


POOL_FORKED_IN_A_REQUEST = """
    import concurrent.futures as cf, multiprocessing as mp, sys
    from opentelemetry import context as otel_context, trace
    import flowmap
    from flowmap import propagation
    tracer = trace.get_tracer("app")

    @flowmap.boundary("vector", "vector.search", scoped=True, mode="record")
    def search():
        return "done"

    def job(ctx, headers):
        if sys.argv[1] == "leaky":
            return search()  # binds nothing: its own tenantless trace, in any process
        token = otel_context.attach(propagation.extract_context(headers)) if sys.argv[1] == "carry" else None
        try:
            with flowmap.bind(ctx):  # what the README says a job of a process pool does
                return search()
        finally:
            if token is not None:
                otel_context.detach(token)

    if __name__ == "__main__":
        # forked at the first submit, inside the first request: every later job's worker
        with cf.ProcessPoolExecutor(1, mp_context=mp.get_context("fork")) as pool:
            for tenant in ("acme-corp", "globex-inc"):
                with flowmap.bind(flowmap.RequestContext(tenant)):
                    with tracer.start_as_current_span("POST /search", kind=trace.SpanKind.SERVER,
                                                      attributes={"http.route": "/search"}):
                        pool.submit(job, flowmap.current(), propagation.inject_headers()).result()
"""


@pytest.mark.parametrize("job", ["bind", "carry", "leaky"])
def test_a_process_pool_forked_inside_a_request_runs_each_job_outside_that_request(workdir, job):
    """A forked child kept the OpenTelemetry context of the request it was forked in: the
    second tenant's job, binding its own tenant as the README says, ran under the first
    request's span — a false CRITICAL cross-tenant, and a job that bound nothing was
    charged to that request. A forked child starts with an empty context, as a spawned
    one does: a job binding its tenant is clean, one carrying the request's context
    explicitly (inject/extract) is that request's child, and one binding nothing is
    reported in its own trace."""
    script = _script(workdir, "pool.py", POOL_FORKED_IN_A_REQUEST)
    proc = _flowmap_run(workdir, "--no-report", str(script), job)
    assert proc.returncode == 0, proc.stderr
    spans = [s for t in iter_traces([workdir / "traces.jsonl"]) for s in t.spans.values()]
    requests = {s.span_id: s for s in spans if s.name == "POST /search"}
    jobs = [s for s in spans if s.name == "vector.search"]
    assert len(requests) == 2 and len(jobs) == 2
    findings = analyze([workdir / "traces.jsonl"]).findings
    if job == "carry":
        assert findings == []
        assert {s.parent_span_id for s in jobs} == set(requests)  # each under its own request
        assert all(requests[s.parent_span_id].tenant == s.tenant for s in jobs)
        return
    if job == "bind":
        assert findings == []
    else:
        assert sorted((f.rule, f.span_name) for f in findings) == [("orphan-root", "vector.search")] * 2
        assert {f.trace_id for f in findings} == {s.trace_id for s in jobs}
    assert all(s.parent_span_id is None for s in jobs)
    assert not {s.trace_id for s in jobs} & {s.trace_id for s in requests.values()}


def test_multiprocessing_workers_keep_the_default_ending_signals(workdir):
    """A Python handler runs only when the main thread runs Python again: a Pool worker
    blocked on the queue lock Pool.terminate() holds for good would never end, and the
    pool's join with it. So forked workers keep SIGTERM/SIGHUP at their default (their
    spans are written as they end), also when the signal comes right after the fork."""
    script = _script(workdir, "term.py", """
        import multiprocessing as mp, signal, sys, time
        from opentelemetry import trace
        import flowmap
        tracer = trace.get_tracer("mp")
        def disposition(i):
            with flowmap.bind(flowmap.RequestContext("acme-corp")):
                with tracer.start_as_current_span(f"job-{i}"):
                    pass
            return signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        def serve():
            while True:
                time.sleep(0.05)
        if __name__ == "__main__":
            ctx = mp.get_context("fork")
            with ctx.Pool(2) as pool:
                print("default in workers:", all(pool.map(disposition, range(4))), flush=True)
            survived = 0
            for _ in range(10):  # a supervisor (or a test) stopping what it just started
                p = ctx.Process(target=serve)
                p.start()
                p.terminate()
                p.join(3)
                if p.exitcode is None:
                    survived += 1
                    p.kill()
                    p.join()
            print("still running 3 s after terminate():", survived, flush=True)
    """)
    proc = _flowmap_run(workdir, "--no-report", str(script))
    assert proc.returncode == 0, proc.stderr
    assert "default in workers: True" in proc.stdout
    assert "still running 3 s after terminate(): 0" in proc.stdout
    assert _span_names(workdir / "traces.jsonl") == [f"job-{i}" for i in range(4)]


def test_a_child_forked_while_the_trace_file_is_being_written_still_writes_and_ends(workdir):
    """The exporter holds a flock on the trace file while it writes; a flock belongs to
    the open file, which fork shares: a child forked meanwhile must not keep it (its own
    exit flush, and every later writer, would wait for ever)."""
    script = _script(workdir, "flock_fork.py", """
        import fcntl, multiprocessing as mp, threading, time, types
        from opentelemetry import trace
        import flowmap
        import flowmap.exporter as exporter
        tracer = trace.get_tracer("ff")
        holding = threading.Event()
        def slow_flock(fd, op, real=fcntl.flock):  # the writer is slow while it holds the lock
            real(fd, op)
            if op == fcntl.LOCK_EX and threading.current_thread().name == "writer":
                holding.set()
                time.sleep(1.0)
        exporter.fcntl = types.SimpleNamespace(flock=slow_flock, LOCK_EX=fcntl.LOCK_EX, LOCK_UN=fcntl.LOCK_UN)
        def job(name):
            with flowmap.bind(flowmap.RequestContext("acme-corp")):
                with tracer.start_as_current_span(name):
                    pass
        if __name__ == "__main__":
            job("parent-job")
            rt = flowmap.runtime.current_runtime()
            threading.Thread(target=rt.force_flush, name="writer").start()
            holding.wait(10)  # forked while the writer holds the file's lock
            p = mp.get_context("fork").Process(target=job, args=("child-job",))
            p.start()
            p.join(10)
            print("child exit:", p.exitcode, flush=True)
            if p.exitcode is None:
                p.kill()
                p.join()
    """)
    proc = _flowmap_run(workdir, "--no-report", str(script))
    assert proc.returncode == 0, proc.stderr
    assert "child exit: 0" in proc.stdout
    assert _span_names(workdir / "traces.jsonl") == ["child-job", "parent-job"]


def _signal_run(workdir: Path, signum: int) -> subprocess.CompletedProcess[str]:
    """`flowmap run` of a program that records spans and then sleeps, sent ``signum``
    (to flowmap's pid only, as `kill`, `timeout` or a CI runner does) once it is ready."""
    import signal as _signal
    import time

    script = _script(workdir, "serve.py", SPANS_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowmap", "run", "--no-report", "--out", str(workdir / "traces.jsonl"), str(script), "60"],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, _signal.SIGKILL)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_signal_sent_to_flowmap_reaches_the_program_which_flushes_before_it_ends(workdir, name):
    import signal as _signal

    signum = getattr(_signal, name)
    done = _signal_run(workdir, signum)
    assert done.returncode == 128 + signum, done.stderr
    assert f"program exited {128 + signum}; 3 spans in 3 traces" in done.stderr
    assert _span_names(workdir / "traces.jsonl") == ["req-0", "req-1", "req-2"]


def test_a_nested_run_appends_to_the_outer_runs_file(workdir):
    inner = _script(workdir, "inner.py", SPANS_SCRIPT)
    outer = _script(workdir, "outer.py", f"""
        import subprocess, sys
        from opentelemetry import trace
        import flowmap
        with flowmap.bind(flowmap.RequestContext("acme-corp")):
            with trace.get_tracer("o").start_as_current_span("outer-before", kind=trace.SpanKind.SERVER):
                pass
        flowmap.runtime.current_runtime().force_flush()
        subprocess.run([sys.executable, "-m", "flowmap", "run", "--no-report", {str(inner)!r}], check=True)
    """)
    proc = _flowmap_run(workdir, "--no-report", str(outer))
    assert proc.returncode == 0, proc.stderr
    assert _span_names(workdir / "traces.jsonl") == ["outer-before", "req-0", "req-1", "req-2"]


def test_dev_flag_wins_over_dev_mode_turned_off_in_the_environment(workdir):
    env = {k: v for k, v in os.environ.items() if k != "FLOWMAP_TENANT_KEY"}
    proc = _flowmap_run(workdir, "--no-report", str(_script(workdir, "s.py", SPANS_SCRIPT)), env={**env, "FLOWMAP_DEV_MODE": "0"})
    assert proc.returncode == 2 and "--dev" in proc.stderr  # the error names the way out
    proc = _flowmap_run(workdir, "--dev", "--no-report", str(workdir / "s.py"), env={**env, "FLOWMAP_DEV_MODE": "0"})
    assert proc.returncode == 0, proc.stderr


def test_a_risk_map_that_cannot_be_written_is_said_so_after_a_good_summary(workdir):
    proc = _flowmap_run(workdir, "--report", "/proc/no-such-dir/map.html", str(_script(workdir, "s.py", SPANS_SCRIPT)))
    assert proc.returncode == 0
    assert "3 spans in 3 traces" in proc.stderr and "risk map:   not written:" in proc.stderr
    assert "could not be analysed" not in proc.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--bogus", "s.py"], "unknown option --bogus"),
    (["missing.py"], "no such script: missing.py"),
])
def test_what_to_run_is_checked_before_anything_runs(workdir, args, message):
    proc = _flowmap_run(workdir, *args)
    assert proc.returncode == 2 and proc.stderr.strip() == f"flowmap: error: {message}" + (
        " (see 'flowmap run --help')" if args[0].startswith("-") else "")


def test_a_directory_with_a_main_module_runs_as_python_runs_it(workdir):
    pkg = workdir / "app"
    pkg.mkdir()
    _script(pkg, "__main__.py", SPANS_SCRIPT)
    proc = _flowmap_run(workdir, "--no-report", str(pkg))
    assert proc.returncode == 0, proc.stderr
    assert len(_span_names(workdir / "traces.jsonl")) == 3


# -- what reaches an outside host, and what the child's runtime is told --------------------

TEXTMAP_AFTER_SCRIPT = """
    import sys, urllib.request
    from opentelemetry import propagate, trace
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    from flowmap import RequestContext, bind

    # the program's usual telemetry setup: its provider (flowmap adopts it), then propagators
    trace.set_tracer_provider(TracerProvider())
    propagate.set_global_textmap(CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()]))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": sys.argv[1]}))
    with bind(RequestContext("acme-corp")):
        with trace.get_tracer("app").start_as_current_span("request"):
            headers = {}
            propagate.inject(headers)  # what the contrib requests/urllib3/aiohttp instrumentations do
            opener.open(urllib.request.Request("http://api.partner.example/hook", headers=headers)).read()
"""


def test_a_propagator_the_program_sets_after_flowmap_adopted_its_provider_is_guarded(workdir):
    script = _script(workdir, "textmap.py", TEXTMAP_AFTER_SCRIPT)
    app = RecordingApp()
    with serve(app) as proxy:
        proc = _flowmap_run(workdir, "--no-report", str(script), proxy.url)
    assert proc.returncode == 0, proc.stderr
    (request,) = app.requests
    assert request["headers"]["host"] == "api.partner.example" and "traceparent" in request["headers"]
    assert "baggage" not in request["headers"]  # the tenant tag never reaches the outside host
    _assert_no_raw_ids(str(request["headers"]), proc.stderr)


def test_a_program_that_propagates_before_its_first_span_never_sends_the_tag(workdir):
    script = _script(workdir, "early.py", """
        import sys, urllib.request
        from opentelemetry import propagate
        from flowmap import RequestContext, bind
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": sys.argv[1]}))
        with bind(RequestContext("acme-corp")):
            headers = {}
            propagate.inject(headers)  # no span yet: flowmap has not configured anything
            opener.open(urllib.request.Request("http://api.partner.example/early", headers=headers)).read()
    """)
    app = RecordingApp()
    with serve(app) as proxy:
        proc = _flowmap_run(workdir, "--no-report", str(script), proxy.url)
    assert proc.returncode == 0, proc.stderr
    (request,) = app.requests
    assert request["headers"]["host"] == "api.partner.example" and "baggage" not in request["headers"]
    _assert_no_raw_ids(str(request["headers"]), proc.stderr)


@pytest.mark.parametrize("inherited", [None, "from-the-shell"])
def test_service_name_reaches_a_provider_the_program_makes_itself(workdir, inherited):
    """--service-name names the spans of a TracerProvider the program (or
    opentelemetry-instrument) creates with the SDK's default resource, and wins over an
    OTEL_SERVICE_NAME the shell exported."""
    script = _script(workdir, "own_provider.py", """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        trace.set_tracer_provider(TracerProvider())  # the program's own, default resource
        with trace.get_tracer("app").start_as_current_span("job"):
            pass
    """)
    env = {**os.environ, **({"OTEL_SERVICE_NAME": inherited} if inherited else {})}
    proc = _flowmap_run(workdir, "--no-report", "--service-name", "api", str(script), env=env)
    assert proc.returncode == 0, proc.stderr
    analysis = analyze([workdir / "traces.jsonl"])
    assert analysis.spans == 1 and analysis.services == {"api"}


HOSTS_SCRIPT = """
    import sys, httpx
    from flowmap import RequestContext, bind
    proxy = sys.argv[1]
    with bind(RequestContext("acme-corp")):
        with httpx.Client(proxy=proxy) as client:  # outside hosts, reached through the loopback proxy
            client.get("http://tools.partner.example/listed")
            client.get("http://api.other.example/unlisted")
        httpx.get(proxy + "/loopback")
"""


def test_the_programs_runtime_allows_the_hosts_the_projects_config_allows(workdir):
    """[tool.flowmap] allowed_hosts (and include_default_hosts) hold for the program's
    runtime as for the analyzer of the same run: the listed outside host gets the tenant
    baggage, and `flowmap check` agrees with what was sent."""
    script = _script(workdir, "hosts.py", HOSTS_SCRIPT)

    def received(config):
        (workdir / "pyproject.toml").write_text(f"[tool.flowmap]\n{config}\n")
        app = RecordingApp()
        with serve(app) as proxy:
            proc = _flowmap_run(workdir, "--no-report", str(script), proxy.url)
        assert proc.returncode == 0, proc.stderr
        assert "findings: none" in proc.stderr  # nothing sent where the analyzer would not allow it
        _assert_no_raw_ids(str(app.requests), proc.stderr)
        return {r["headers"]["host"].split(":")[0]: r["headers"].get("baggage") for r in app.requests}

    sent = received('allowed_hosts = ["tools.partner.example"]')
    assert sent["tools.partner.example"].startswith("flowmap.tenant=")
    assert sent["api.other.example"] is None and sent["127.0.0.1"].startswith("flowmap.tenant=")
    sent = received('allowed_hosts = ["*.partner.example"]\ninclude_default_hosts = false')
    assert sent["tools.partner.example"].startswith("flowmap.tenant=")
    assert sent["api.other.example"] is None and sent["127.0.0.1"] is None  # loopback: not on this list


AUTO_PARENT_SCRIPT = """
    import subprocess, sys
    from opentelemetry import trace
    from flowmap import RequestContext, bind
    assert "opentelemetry.instrumentation.auto_instrumentation" in sys.modules  # its start-up ran too
    with bind(RequestContext("acme-corp")):
        with trace.get_tracer("app").start_as_current_span("parent.job", kind=trace.SpanKind.SERVER):
            pass
    sys.exit(subprocess.call([sys.executable, sys.argv[1]]))
"""


def test_a_command_run_by_opentelemetry_instrument_is_traced_with_its_children(workdir):
    """`flowmap run -- opentelemetry-instrument [options] python app.py`: its sitecustomize,
    first on PYTHONPATH, runs no other, so flowmap's never ran and nothing was traced. Now
    both run, flowmap's first, in the program and in the Python processes it starts."""
    instrument = Path(sys.executable).with_name("opentelemetry-instrument")
    if not instrument.exists():
        pytest.skip("opentelemetry-instrument is not installed beside this Python")
    parent = _script(workdir, "auto_parent.py", AUTO_PARENT_SCRIPT)
    child = _script(workdir, "auto_child.py", CHILD_SCRIPT)
    proc = _flowmap_run(workdir, "--no-report", "--", str(instrument), "--traces_exporter=none",
                        "--metrics_exporter", "none", sys.executable, str(parent), str(child))
    assert proc.returncode == 0, proc.stderr
    assert _span_names(workdir / "traces.jsonl") == ["child.tool", "parent.job"]
    analysis = analyze([workdir / "traces.jsonl"])
    assert analysis.services == {"auto_parent", "auto_child"} and len(analysis.tenant_tags) == 2
    _assert_no_raw_ids((workdir / "traces.jsonl").read_text(), proc.stderr)


def test_opentelemetry_instruments_options_are_kept_and_its_command_starts_flowmap_first():
    from flowmap.runner import BOOTSTRAP_DIR, _bootstrap_first

    said: list[str] = []
    head = ["/v/bin/opentelemetry-instrument", "--traces_exporter", "console", "--service_name=x", "--"]
    command = _bootstrap_first([*head, "python", "app.py", "--port", "1"], said.append)
    n = len(head)  # its options as given, then a site-less Python that puts flowmap first, then the command
    assert command[:n] == head and command[n:n + 3] == [sys.executable, "-S", "-c"]
    assert command[n + 4:] == [str(BOOTSTRAP_DIR), "python", "app.py", "--port", "1"]
    for unchanged in (["/v/bin/opentelemetry-instrument", "--version"], ["/v/bin/opentelemetry-instrument"],
                      ["python", "app.py"], ["uvicorn", "--opentelemetry-instrument"]):
        assert _bootstrap_first(unchanged, said.append) == unchanged
    assert not said
