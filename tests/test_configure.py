"""flowmap.configure: one call builds or extends a provider, idempotently, honouring OTEL_*."""

import http.server
import json
import subprocess
import sys
import textwrap
import threading

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import flowmap
from flowmap import runtime
from flowmap.attributes import KEY_ID, REDACTED, TENANT
from flowmap.configure import configure, otlp_requested
from flowmap.errors import ConfigError
from flowmap.tagging import key_id_for, tag_for

RAW = "initech-raw-5521"


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    for var in (
        "FLOWMAP_TENANT_KEY", "FLOWMAP_DEV_MODE", "FLOWMAP_FILE", "FLOWMAP_BOUNDARY_MODE",
        "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ):
        monkeypatch.delenv(var, raising=False)
    yield
    runtime.set_tagger(None)
    runtime.set_boundary_mode(None)
    runtime.set_runtime(None)


def _processors(provider):
    return provider._active_span_processor._span_processors  # noqa: SLF001


def _isolated(**kw):
    kw.setdefault("tenant_key", "test-key")
    kw.setdefault("instrument_httpx", False)
    kw.setdefault("set_global", False)
    return configure(**kw)


def test_no_key_refuses_to_start():
    with pytest.raises(ConfigError) as err:
        _isolated(tenant_key=None)
    assert "FLOWMAP_TENANT_KEY" in str(err.value)


def test_resource_has_service_and_key_id_and_env_wins(monkeypatch):
    rt = _isolated(service_name="svc", exporters=None)
    res = rt.tracer_provider.resource.attributes
    assert res["service.name"] == "svc" and res[KEY_ID] == key_id_for("test-key")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=ci")
    res = _isolated(service_name="svc", exporters=None).tracer_provider.resource.attributes
    assert res["service.name"] == "from-env" and res["deployment.environment"] == "ci"


def test_file_export_end_to_end_with_tags_and_no_raw_id(tmp_path, monkeypatch):
    out = tmp_path / "env.jsonl"
    monkeypatch.setenv("FLOWMAP_FILE", str(out))
    rt = _isolated(service_name="svc")  # exporters="auto": the JSON Lines file
    with flowmap.bind(flowmap.RequestContext(RAW)):
        with flowmap.boundary("tool", "lookup") as span:
            span.set_attribute("app.debug", f"tenant {RAW}")
    assert rt.force_flush()
    line = json.loads(out.read_text().splitlines()[0])
    rs = line["resourceSpans"][0]
    attrs = {a["key"]: a["value"] for a in rs["scopeSpans"][0]["spans"][0]["attributes"]}
    assert attrs[TENANT] == {"stringValue": tag_for("test-key", RAW)}
    assert REDACTED in attrs
    assert {"key": KEY_ID, "value": {"stringValue": key_id_for("test-key")}} in rs["resource"]["attributes"]
    assert RAW not in out.read_text()
    rt.shutdown()


def test_calling_twice_does_not_double_processors():
    mem = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(mem))
    rt1 = _isolated(tracer_provider=tp, exporters=None, alert_scope="boundary")
    n = len(_processors(tp))
    rt2 = _isolated(tracer_provider=tp, exporters=None, alert_scope="all", tenant_key="key-2")
    assert rt1 is rt2 and len(_processors(tp)) == n
    with flowmap.bind(flowmap.RequestContext(RAW)):
        with tp.get_tracer("t").start_as_current_span("once"):
            pass
    (span,) = mem.get_finished_spans()
    assert span.attributes[TENANT] == tag_for("key-2", RAW)  # the new key took effect


def test_configure_after_shutdown_on_the_apps_provider_alerts_once():
    """The SDK cannot take processors off a provider: the shut-down ones must go quiet,
    or a configure() after shutdown() doubles every alert and metric."""
    alerts = []
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    _isolated(tracer_provider=tp, exporters=None, alert_callback=alerts.append).shutdown()
    _isolated(tracer_provider=tp, exporters=None, alert_callback=alerts.append)
    with tp.get_tracer("t").start_as_current_span("unbound tool", attributes={"flowmap.boundary": "tool"}):
        pass
    assert len(alerts) == 1


def test_a_new_key_reaches_flowmaps_own_spans_with_its_key_id():
    """Re-keying: flowmap's boundary spans get the new key's tag *and* key id (a stale
    key id beside a new tag made one tenant look like two: a false cross-tenant)."""
    mem = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(mem))
    _isolated(tracer_provider=tp, exporters=None, tenant_key="key-1")
    with flowmap.bind(flowmap.RequestContext(RAW)):
        with flowmap.boundary("tool", "before"):
            pass
    _isolated(tracer_provider=tp, exporters=None, tenant_key="key-2")
    with flowmap.bind(flowmap.RequestContext(RAW)):
        with flowmap.boundary("tool", "after"):
            pass
    before, after = mem.get_finished_spans()
    assert before.attributes[TENANT] == tag_for("key-1", RAW)
    assert before.resource.attributes[KEY_ID] == key_id_for("key-1")
    assert after.attributes[TENANT] == tag_for("key-2", RAW)
    assert after.resource.attributes[KEY_ID] == key_id_for("key-2")


def test_settings_a_second_configure_cannot_apply_are_said(caplog):
    tp = TracerProvider()
    _isolated(tracer_provider=tp, exporters=None)
    with caplog.at_level("WARNING", logger="flowmap"):
        _isolated(tracer_provider=tp, exporters=None, alert_scope="all")
    assert caplog.records == []  # what it can apply, it applies quietly
    with caplog.at_level("WARNING", logger="flowmap"):
        _isolated(tracer_provider=tp, out="elsewhere.jsonl", service_name="renamed")
    (record,) = caplog.records
    assert "out" in record.getMessage() and "service_name" in record.getMessage()


def test_an_application_provider_keeps_its_exporters_and_gains_flowmap():
    mem = InMemorySpanExporter()
    tp = TracerProvider()
    app_processor = SimpleSpanProcessor(mem)
    tp.add_span_processor(app_processor)
    rt = _isolated(tracer_provider=tp, exporters=None)
    assert rt.tracer_provider is tp and not rt.owns_provider
    assert _processors(tp)[0] is app_processor
    assert tp.resource.attributes[KEY_ID] == key_id_for("test-key")
    with flowmap.bind(flowmap.RequestContext(RAW)):
        with tp.get_tracer("t").start_as_current_span(f"work {RAW}"):
            pass
    (span,) = mem.get_finished_spans()
    assert TENANT in span.attributes and RAW not in span.to_json()
    rt.shutdown()  # flowmap's parts stop; the app's provider keeps working
    with tp.get_tracer("t").start_as_current_span("after"):
        pass
    assert len(mem.get_finished_spans()) == 2


def test_otlp_selection_follows_the_environment(monkeypatch):
    assert not otlp_requested()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:1/v1/traces")
    assert otlp_requested()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert not otlp_requested()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console,otlp")
    assert otlp_requested()


def test_unknown_exporter_name_is_a_config_error():
    with pytest.raises(ConfigError):
        _isolated(exporters=["zipkin-ish"])


class _Collector(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_standard_otlp_exporter_sends_to_a_real_endpoint(tmp_path, monkeypatch):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        rt = _isolated(out=tmp_path / "t.jsonl", service_name="otlp-svc")
        assert sum(isinstance(p, BatchSpanProcessor) for p in rt.processors) == 2
        with flowmap.bind(flowmap.RequestContext(RAW)):
            with flowmap.boundary("llm", "chat"):
                pass
        assert rt.force_flush()
        rt.shutdown()
    finally:
        server.shutdown()
    (path, ctype, body), *_ = _Collector.received
    assert path == "/v1/traces" and ctype == "application/x-protobuf"
    req = ExportTraceServiceRequest.FromString(body)
    span = req.resource_spans[0].scope_spans[0].spans[0]
    attrs = {kv.key: kv.value.string_value for kv in span.attributes}
    assert attrs[TENANT] == tag_for("test-key", RAW)
    assert RAW.encode() not in body


def test_public_name_stays_callable_after_importing_the_module():
    import flowmap.configure as module  # rebinds the package attribute to the module

    assert callable(flowmap.configure) and callable(module)
    rt = flowmap.configure(tenant_key="test-key", exporters=None, instrument_httpx=False, set_global=False)
    assert rt.tagger.key_id == key_id_for("test-key")


def test_global_app_provider_is_kept_and_extended_once(tmp_path):
    """In a fresh process (OTel's global provider can be set only once per process)."""
    script = textwrap.dedent(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        import flowmap
        from flowmap import outbound

        mem = InMemorySpanExporter()
        app = TracerProvider()
        app.add_span_processor(SimpleSpanProcessor(mem))
        trace.set_tracer_provider(app)
        rt = flowmap.configure(tenant_key="test-key", out=%r)
        n = len(app._active_span_processor._span_processors)
        rt2 = flowmap.configure(tenant_key="test-key", out=%r)
        assert rt2 is rt and rt.tracer_provider is app and trace.get_tracer_provider() is app
        assert len(app._active_span_processor._span_processors) == n
        assert outbound.is_instrumented()
        from opentelemetry import propagate

        def guarded():
            return any(isinstance(p, outbound.GuardedBaggagePropagator)
                       for p in propagate.get_global_textmap()._propagators)

        assert guarded()  # other HTTP clients can no longer send the tenant tag
        with flowmap.bind(flowmap.RequestContext("umbrella-raw")):
            with trace.get_tracer("app").start_as_current_span("app-span"):
                pass
        (span,) = mem.get_finished_spans()
        assert "flowmap.tenant" in span.attributes
        rt.shutdown()
        assert not outbound.is_instrumented() and not guarded()
        print("OK")
        """
    ) % (str(tmp_path / "g.jsonl"), str(tmp_path / "g.jsonl"))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "OK"
    assert "umbrella-raw" not in (tmp_path / "g.jsonl").read_text()


def test_configure_installs_one_combined_processor_that_alerts_and_updates():
    from flowmap.processors import FlowmapSpanProcessor

    alerts = []
    tp = TracerProvider()
    mem = InMemorySpanExporter()
    tp.add_span_processor(SimpleSpanProcessor(mem))
    rt = _isolated(tracer_provider=tp, exporters=None, alert_callback=alerts.append)
    assert [type(p) for p in rt.processors] == [FlowmapSpanProcessor]
    tracer = tp.get_tracer("t")
    with tracer.start_as_current_span("unscoped tool", attributes={"flowmap.boundary": "tool"}):
        pass
    with tracer.start_as_current_span("plain"):
        pass  # not a boundary: no alert in the default scope
    with flowmap.bind(flowmap.RequestContext(RAW)):
        with tracer.start_as_current_span("scoped tool", attributes={"flowmap.boundary": "tool"}):
            pass
    assert [(a.span_name, a.boundary) for a in alerts] == [("unscoped tool", "tool")]
    _isolated(tracer_provider=tp, exporters=None, alert_scope="all", alert_callback=alerts.append)
    with tracer.start_as_current_span("plain again"):
        pass
    assert [a.span_name for a in alerts][-1] == "plain again"


def test_configure_guards_global_baggage_until_shutdown():
    from opentelemetry import baggage as otel_baggage
    from opentelemetry import propagate

    previous = propagate.get_global_textmap()
    try:
        _isolated(exporters=None).shutdown()
        assert propagate.get_global_textmap() is previous  # set_global=False: left alone

        rt = _isolated(exporters=None, guard_baggage=True)
        tag = tag_for("test-key", RAW)
        with flowmap.bind(flowmap.RequestContext(RAW)):
            guarded: dict[str, str] = {}
            propagate.inject(guarded, context=otel_baggage.set_baggage("app.flag", "on"))
        # what requests/aiohttp/... would send: the app's own entry, never the tenant tag
        assert guarded["baggage"] == "app.flag=on"
        rt.shutdown()
        with flowmap.bind(flowmap.RequestContext(RAW)):
            plain: dict[str, str] = {}
            propagate.inject(plain)
        assert plain["baggage"] == f"flowmap.tenant={tag}"  # shutdown restored plain W3C baggage
    finally:
        propagate.set_global_textmap(previous)


def test_default_trace_file_is_fixed_at_configure_despite_chdir(tmp_path, monkeypatch):
    """configure() with the default file: a later os.chdir (a job in a temp dir) must not
    split the trace into one file per working directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    rt = _isolated(service_name="svc")  # FLOWMAP_FILE unset: ./flowmap-traces.jsonl
    tracer = rt.tracer_provider.get_tracer("app")
    try:
        with flowmap.bind(flowmap.RequestContext(RAW)):
            with tracer.start_as_current_span("before-chdir"):
                pass
            assert rt.force_flush()
            monkeypatch.chdir(tmp_path / "sub")
            with tracer.start_as_current_span("after-chdir"):
                pass
            assert rt.force_flush()
    finally:
        rt.shutdown()
    names = [s["name"] for line in (tmp_path / "flowmap-traces.jsonl").read_text().splitlines()
             for rs in json.loads(line)["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert names == ["before-chdir", "after-chdir"]
    assert not (tmp_path / "sub" / "flowmap-traces.jsonl").exists()


def test_allowed_hosts_given_as_one_string_is_one_host():
    # as in [tool.flowmap]; it was read character by character ('a', '.', 'e', …)
    from flowmap import outbound

    rt = _isolated(allowed_hosts="tools.partner.example", instrument_httpx=True, exporters="none")
    try:
        hosts = outbound.allowed_hosts()
        assert hosts.allows("tools.partner.example")
        assert not hosts.allows("e") and not hosts.allows("t")
    finally:
        rt.shutdown()


@pytest.mark.parametrize("hosts", [[1], ["ok.example", None], 5, b"api.partner.example"], ids=repr)
def test_allowed_hosts_that_are_not_strings_are_a_config_error(hosts):
    with pytest.raises(ConfigError, match="allowed_hosts must be a host name or a list"):
        _isolated(allowed_hosts=hosts, exporters="none")


@pytest.mark.parametrize("kwargs", [{"service_name": 5}, {"out": "DIR"}])
def test_a_service_name_that_is_no_text_or_an_out_that_is_a_directory_is_refused(tmp_path, kwargs):
    """Both were taken silently: the number became the resource's service.name, and every
    export to the directory failed later, far from the call that set it up."""
    from flowmap.errors import ConfigError

    if kwargs.get("out") == "DIR":
        kwargs = {"out": tmp_path}
    with pytest.raises(ConfigError) as err:
        configure(tenant_key="k", set_global=False, instrument_httpx=False, **kwargs)
    assert "\n" not in str(err.value)


def test_a_service_stopped_by_sigterm_under_uvicorn_keeps_its_spans(tmp_path):
    """The usual way a service stops (Kubernetes, docker, systemd): uvicorn shuts down
    gracefully, then re-raises SIGTERM, which ends the process without atexit, so the
    batch processor's spans were lost (an empty trace file) unless the program ran
    under `flowmap run`. configure() installs the same flush-then-end handler."""
    import os
    import signal
    import time
    import urllib.request

    out = tmp_path / "svc.jsonl"
    script = tmp_path / "svc.py"
    script.write_text(textwrap.dedent("""
        import sys, uvicorn, flowmap
        from flowmap.asgi import TenantMiddleware
        flowmap.configure(service_name="svc", out=sys.argv[1], exporters=["jsonl"], instrument_httpx=False)

        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        config = uvicorn.Config(TenantMiddleware(app, lambda scope: flowmap.RequestContext("acme-svc-1")),
                                host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        server = uvicorn.Server(config)
        import threading
        def announce():
            while not server.started:
                import time; time.sleep(0.02)
            print(server.servers[0].sockets[0].getsockname()[1], flush=True)
        threading.Thread(target=announce, daemon=True).start()
        server.run()
    """))
    env = {**os.environ, "FLOWMAP_TENANT_KEY": "k"}
    proc = subprocess.Popen([sys.executable, str(script), str(out)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        port = int(proc.stdout.readline())
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/a").status == 200
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == -signal.SIGTERM  # still ended by the signal
    finally:
        if proc.poll() is None:
            proc.kill()
    spans = [s for line in out.read_text().splitlines() for rs in json.loads(line)["resourceSpans"]
             for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert [s["name"] for s in spans] == ["GET"]
    assert "acme-svc-1" not in out.read_text()


MULTIPROCESSING_WORKERS = """
    import concurrent.futures as cf, multiprocessing as mp, sys
    import flowmap
    flowmap.configure(service_name="mp", out=sys.argv[1], instrument_httpx=False)

    @flowmap.boundary("vector", "vector.search", scoped=True)
    def search(i):
        return i

    def job(ctx, i):
        with flowmap.bind(ctx):
            return search(i)

    if __name__ == "__main__":
        fork, how, ctx = mp.get_context(sys.argv[3]), sys.argv[2], flowmap.RequestContext("acme-mp-7")
        if how == "executor":
            with cf.ProcessPoolExecutor(2, mp_context=fork) as pool:
                print(sorted(pool.map(job, [ctx] * 4, range(4))))
        elif how == "pool":  # left by its with block: terminate(), its idle workers killed
            with fork.Pool(2) as pool:
                print(sorted(pool.starmap(job, [(ctx, i) for i in range(4)])))
        elif how == "pool-closed":  # its workers end when the work is done
            pool = fork.Pool(2)
            print(sorted(pool.starmap(job, [(ctx, i) for i in range(4)])))
            pool.close()
            pool.join()
        else:
            ps = [fork.Process(target=job, args=(ctx, i)) for i in range(4)]
            [p.start() for p in ps]
            [p.join() for p in ps]
            print([p.exitcode for p in ps])
"""


@pytest.mark.parametrize("how", ["executor", "pool", "pool-closed", "process"])
@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_spans_of_forked_multiprocessing_workers_reach_the_file(tmp_path, method, how):
    """Forked workers end with os._exit, which skips atexit (and the SDK's flush there):
    under configure() — unlike `flowmap run` — every span a worker recorded was lost,
    also one a forkserver forked (where the worker runs configure() itself, importing
    the main module). They are flushed by multiprocessing's exit finalizers, and written
    as they end in a Pool that terminate() ends, as under `flowmap run`."""
    import os

    out = tmp_path / "mp.jsonl"
    script = tmp_path / "mp.py"
    script.write_text(textwrap.dedent(MULTIPROCESSING_WORKERS))
    env = {**os.environ, "FLOWMAP_TENANT_KEY": "k"}
    proc = subprocess.run([sys.executable, str(script), str(out), how, method],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ("[0, 0, 0, 0]" if how == "process" else "[0, 1, 2, 3]")
    spans = [s for line in out.read_text().splitlines() for rs in json.loads(line)["resourceSpans"]
             for ss in rs["scopeSpans"] for s in ss["spans"]] if out.exists() else []
    assert [s["name"] for s in spans] == ["vector.search"] * 4
    assert "acme-mp-7" not in out.read_text()
