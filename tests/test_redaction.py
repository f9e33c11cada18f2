"""Redaction: the request's raw tenant id is scrubbed before any exporter sees it.

Every behaviour holds for the standalone TenantSpanProcessor + RedactionProcessor and for
the combined FlowmapSpanProcessor that configure() installs."""

import json
import threading
import urllib.parse

import pytest

from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flowmap.attributes import REDACTED, TENANT
from flowmap.boundaries import boundary
from flowmap.context import RequestContext, bind
from flowmap.processors import FlowmapSpanProcessor, TenantSpanProcessor
from flowmap.redaction import REDACTED_VALUE, RedactionProcessor, register_tenant_id, scrub_text
from flowmap.tagging import Tagger

RAW = "globex-raw-7731"


@pytest.fixture(params=["standalone", "combined"])
def setup(request):
    return request.param


def _app_provider(setup, span_limits=None):
    """An application's provider whose exporter was registered *before* flowmap's processors."""
    exp = InMemorySpanExporter()
    tp = TracerProvider(span_limits=span_limits)
    tp.add_span_processor(SimpleSpanProcessor(exp))
    if setup == "standalone":
        tp.add_span_processor(TenantSpanProcessor(Tagger("test-key")))
        tp.add_span_processor(RedactionProcessor())
    else:
        tp.add_span_processor(FlowmapSpanProcessor(Tagger("test-key")))
    return tp.get_tracer("app"), exp


def test_attribute_event_link_status_and_name_values_are_redacted_and_marked(setup):
    tracer, exp = _app_provider(setup)
    with bind(RequestContext(RAW)):
        with tracer.start_as_current_span("warmup") as other:
            link_ctx = other.get_span_context()
        links = [trace_api.Link(link_ctx, {"why": f"same tenant {RAW}"})]
        with tracer.start_as_current_span(f"load {RAW}", links=links) as span:
            span.set_attribute("db.query.text", f"SELECT * FROM docs WHERE tenant = '{RAW}'")
            span.set_attribute("tenant_id", RAW)
            span.set_attribute("ids", [RAW, "x"])
            span.set_attribute(f"quota.{RAW}", 3)
            span.set_attribute("safe", "nothing here")
            span.add_event("lookup", {"detail": f"cache miss for {RAW}"})
            try:
                raise ValueError(f"unknown tenant {RAW}")
            except ValueError as err:
                span.record_exception(err)
                span.set_status(trace_api.StatusCode.ERROR, f"failed for {RAW}")
    spans = {s.name.split()[0]: s for s in exp.get_finished_spans()}
    span = spans["load"]
    dump = span.to_json()
    assert RAW not in dump
    assert span.name == f"load {REDACTED_VALUE}"
    attrs = dict(span.attributes)
    assert attrs["db.query.text"] == f"SELECT * FROM docs WHERE tenant = '{REDACTED_VALUE}'"
    assert attrs["tenant_id"] == REDACTED_VALUE
    assert attrs["ids"] == (REDACTED_VALUE, "x")
    assert attrs[f"quota.{REDACTED_VALUE}"] == 3
    assert attrs["safe"] == "nothing here"
    assert attrs[TENANT]  # the opaque tag stays
    assert attrs[REDACTED] >= 8
    assert span.status.description == f"failed for {REDACTED_VALUE}"
    assert REDACTED not in spans["warmup"].attributes  # clean spans are not marked


def test_span_ended_in_another_thread_is_still_redacted(setup):
    tracer, exp = _app_provider(setup)
    with bind(RequestContext(RAW)):
        span = tracer.start_span("handoff")
        span.set_attribute("note", RAW)
    t = threading.Thread(target=span.end)
    t.start()
    t.join()
    assert RAW not in exp.get_finished_spans()[0].to_json()


def test_numbers_equal_to_a_numeric_tenant_id_are_redacted_under_tenant_keys(setup):
    tracer, exp = _app_provider(setup)
    with bind(RequestContext("918273")):
        with tracer.start_as_current_span("numeric") as span:
            span.set_attribute("account_id", 918273)
            span.set_attribute("app.tenantId", 918273)
            span.set_attribute("other", 5)
    attrs = exp.get_finished_spans()[0].attributes
    assert attrs["account_id"] == REDACTED_VALUE and attrs["app.tenantId"] == REDACTED_VALUE
    assert attrs["other"] == 5


def test_short_ids_are_redacted_only_as_whole_tokens():
    # under 4 characters ("ab", "7") a whole token is replaced but not counted as found:
    # the 7 of "page 7" may not be tenant "7"; a value that is the id, whole, is
    assert scrub_text("tenant=ab; abc", ["ab"]) == (f"tenant={REDACTED_VALUE}; abc", 0)
    assert scrub_text(" ab ", ["ab"]) == (REDACTED_VALUE, 1)
    assert scrub_text("xacme-corpx", ["acme-corp"]) == (f"x{REDACTED_VALUE}x", 1)
    # under 8 characters an id is often a word: not inside another one
    assert scrub_text("/latest/contest-results", ["test"]) == ("/latest/contest-results", 0)
    assert scrub_text("/t/test/docs?q=a test", ["test"]) == (f"/t/{REDACTED_VALUE}/docs?q=a {REDACTED_VALUE}", 2)


def test_a_one_character_tenant_in_a_prompt_is_no_raw_id_the_code_wrote(setup, tmp_path):
    """Tenants "1" and "a": "write a haiku about page 1" was a HIGH tenant-in-telemetry
    finding for a correct app (the harness's tenants ("a", "b") failed every test that
    prompted with an "a"). The token is still replaced, not counted; a value that is
    the id is both."""
    from flowmap import analyze
    from flowmap.exporter import encode_spans

    tracer, exp = _app_provider(setup)
    for raw in ("1", "a"):
        with bind(RequestContext(raw)):
            with tracer.start_as_current_span("chat", kind=trace_api.SpanKind.SERVER) as span:
                span.set_attribute("gen_ai.prompt", "write a haiku about page 1")
    with bind(RequestContext("1")):
        with tracer.start_as_current_span("lookup") as span:
            span.set_attribute("customer", "1")
    one, a, lookup = exp.get_finished_spans()
    assert one.attributes["gen_ai.prompt"] == f"write a haiku about page {REDACTED_VALUE}"
    assert a.attributes["gen_ai.prompt"] == f"write {REDACTED_VALUE} haiku about page 1"
    assert REDACTED not in one.attributes and REDACTED not in a.attributes
    assert lookup.attributes["customer"] == REDACTED_VALUE and lookup.attributes[REDACTED] == 1
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(encode_spans([one, a, lookup])) + "\n")
    found = [(f.rule, f.span_name) for f in analyze([path]).findings if f.rule == "tenant-in-telemetry"]
    assert found == [("tenant-in-telemetry", "lookup")]


def test_a_tenant_named_like_a_word_leaves_keys_and_words_that_hold_it_alone(setup):
    """Tenants "user" and "test" (common in test suites): ``user_agent.original`` (which
    flowmap's own middleware writes) and ``/latest/contest-results`` held them only
    inside other words, and were rewritten, each rewrite a HIGH tenant-in-telemetry
    finding. A whole dot-separated part of a key, or a whole token of a value, is still
    the id."""
    tracer, exp = _app_provider(setup)
    for raw in ("user", "test"):
        with bind(RequestContext(raw)):
            with tracer.start_as_current_span("GET /latest/contest-results") as span:
                span.set_attribute("user_agent.original", "curl/8.5")
                span.set_attribute("url.path", "/latest/contest-results")
            with tracer.start_as_current_span(f"GET /t/{raw}/docs") as span:
                span.set_attribute(f"quota.{raw}", 3)
                span.set_attribute("user_agent.original", "curl/8.5")
    clean, leaky = exp.get_finished_spans()[:2]
    assert clean.name == "GET /latest/contest-results" and REDACTED not in clean.attributes
    assert clean.attributes["user_agent.original"] == "curl/8.5"
    assert leaky.name == f"GET /t/{REDACTED_VALUE}/docs"
    assert leaky.attributes[f"quota.{REDACTED_VALUE}"] == 3 and leaky.attributes[REDACTED] == 2
    assert leaky.attributes["user_agent.original"] == "curl/8.5"
    assert "quota.user" not in leaky.to_json()


def test_a_short_id_inside_a_key_is_scrubbed_where_it_is_a_word_of_it(setup):
    """Keys join words with '.', '-', '[' as values do; '_' joins a word too in keys
    (``user_agent``). So "acme" goes from ``x-acme-signature`` and ``tenants[acme].plan``,
    not from ``user_agent.original`` for a tenant "user"."""
    tracer, exp = _app_provider(setup)
    with bind(RequestContext("acme")):
        with tracer.start_as_current_span("call") as span:
            span.set_attribute("http.request.header.x-acme-signature", "sig")
            span.set_attribute("tenants[acme].plan", "pro")
            span.set_attribute("acmesoft.version", "1")  # another word that starts alike
    (done,) = exp.get_finished_spans()
    keys = set(done.attributes)
    assert f"http.request.header.x-{REDACTED_VALUE}-signature" in keys
    assert f"tenants[{REDACTED_VALUE}].plan" in keys and "acmesoft.version" in keys
    assert done.attributes[REDACTED] == 2
    # an id under 4 characters: replaced as a word of a key too, counted only as a whole key
    tracer, exp = _app_provider(setup)
    with bind(RequestContext("abc")):
        with tracer.start_as_current_span("call") as span:
            span.set_attribute("quota.abc.remaining", 10)
            span.set_attribute("abc", 1)
            span.set_attribute("abcd.version", "2")
    (done,) = exp.get_finished_spans()
    assert set(done.attributes) >= {f"quota.{REDACTED_VALUE}.remaining", REDACTED_VALUE, "abcd.version"}
    assert done.attributes[REDACTED] == 1
    for span in exp.get_finished_spans()[2:]:  # tenant "test"
        assert "contest" in span.name or span.name == f"GET /t/{REDACTED_VALUE}/docs"


def test_an_orphan_span_keeps_words_that_hold_a_short_known_id(setup):
    """A span with no binding and no tag is searched for every id bound recently: a
    short one found only inside another word is no hit there either."""
    tracer, exp = _app_provider(setup)
    with bind(RequestContext("user")), tracer.start_as_current_span("request"):
        pass
    with tracer.start_as_current_span("GET /latest/contest-results") as span:
        span.set_attribute("user_agent.original", "curl/8.5")
        span.set_attribute("enduser.id", "user")
    done = exp.get_finished_spans()[-1]
    assert done.name == "GET /latest/contest-results" and done.attributes["user_agent.original"] == "curl/8.5"
    assert done.attributes["enduser.id"] == REDACTED_VALUE and done.attributes[REDACTED] == 1


def test_ids_never_bound_here_are_left_to_the_analyzer(setup):
    tracer, exp = _app_provider(setup)
    never_bound = "initrode-never-bound-9921"
    with tracer.start_as_current_span("no-context") as span:
        span.set_attribute("note", never_bound)
    (s,) = exp.get_finished_spans()
    assert s.attributes["note"] == never_bound and REDACTED not in s.attributes
    # an id this process never bound: nothing to compare against (the analyzer's
    # tenant-in-telemetry rule covers this)
    json.loads(s.to_json())


def test_span_ended_after_its_request_is_still_redacted(setup):
    tracer, exp = _app_provider(setup)
    with bind(RequestContext(RAW)):
        span = tracer.start_span("outlives-the-request")
    span.set_attribute("late", f"written for {RAW} after the binding was gone")
    span.end()
    (s,) = exp.get_finished_spans()
    assert RAW not in s.to_json() and s.attributes[REDACTED] == 1


def test_registered_id_is_scrubbed_from_a_span_that_starts_and_ends_unbound(setup):
    """An outer instrumentation's server span: started before the binding, ended after it."""
    tracer, exp = _app_provider(setup)
    outer = tracer.start_span("GET /tenants/{id}", attributes={"url.path": f"/tenants/{RAW}/chat"})
    register_tenant_id(outer, RAW)
    register_tenant_id(outer, RAW)  # idempotent
    with bind(RequestContext(RAW)):
        pass  # the request runs
    outer.end()
    (s,) = exp.get_finished_spans()
    assert s.attributes["url.path"] == f"/tenants/{REDACTED_VALUE}/chat"
    assert s.attributes[REDACTED] == 1


def test_register_is_a_no_op_on_spans_it_cannot_help(setup):
    tracer, exp = _app_provider(setup)
    ended = tracer.start_span("ended")
    ended.end()
    registered = "registered-never-bound-5150"  # not bound: only a registration could scrub it
    register_tenant_id(ended, registered)  # ended: nothing to do, no error
    register_tenant_id(trace_api.NonRecordingSpan(trace_api.INVALID_SPAN_CONTEXT), registered)
    register_tenant_id(object(), registered)
    register_tenant_id(ended, None)  # type: ignore[arg-type]
    later = tracer.start_span("later")
    later.set_attribute("note", registered)
    later.end()
    assert exp.get_finished_spans()[-1].attributes["note"] == registered  # no stale registration


# --- spans with neither a binding nor a tag: scrubbed against every recently bound id ---


def _request(tracer, raw):
    """A request of tenant ``raw`` that starts a span: the process now knows the id."""
    with bind(RequestContext(raw)):
        with tracer.start_as_current_span("handler"):
            pass


def test_thread_pool_orphan_span_is_scrubbed_of_the_tenant_id(setup):
    import concurrent.futures as cf

    raw = "acme-corp-orphan-7731"
    tracer, exp = _app_provider(setup)

    def embed():  # the worker thread has no context: the span is untagged
        with tracer.start_as_current_span(f"embed for {raw}", attributes={"q": f"docs of {raw}"}) as s:
            s.add_event("chunk", {"source": f"s3://bucket/{raw}/a.pdf"})

    with bind(RequestContext(raw)):
        with tracer.start_as_current_span("request"):
            with cf.ThreadPoolExecutor(1) as pool:
                pool.submit(embed).result()
    orphan = next(s for s in exp.get_finished_spans() if s.name.startswith("embed"))
    assert TENANT not in orphan.attributes  # really an orphan
    assert raw not in orphan.to_json()
    assert orphan.name == f"embed for {REDACTED_VALUE}"
    assert orphan.attributes["q"] == f"docs of {REDACTED_VALUE}"
    assert orphan.events[0].attributes["source"] == f"s3://bucket/{REDACTED_VALUE}/a.pdf"
    assert orphan.attributes[REDACTED] == 3


def test_outer_server_span_started_before_bind_is_scrubbed_without_registration(setup):
    raw = "acme-corp-outer-4410"
    tracer, exp = _app_provider(setup)
    with tracer.start_as_current_span(
        f"GET /tenants/{raw}/orders",
        kind=trace_api.SpanKind.SERVER,
        attributes={"url.path": f"/tenants/{raw}/orders", "http.response.status_code": 200},
    ):
        _request(tracer, raw)
    outer = next(s for s in exp.get_finished_spans() if s.name.startswith("GET"))
    assert raw not in outer.to_json()
    assert outer.name == f"GET /tenants/{REDACTED_VALUE}/orders"
    assert outer.attributes["url.path"] == f"/tenants/{REDACTED_VALUE}/orders"
    assert outer.attributes["http.response.status_code"] == 200


def test_unbound_batch_span_after_requests_is_scrubbed_of_every_known_id(setup):
    first, second = "tenant-batch-one", "tenant-batch-two"
    tracer, exp = _app_provider(setup)
    _request(tracer, first)
    _request(tracer, second)
    with tracer.start_as_current_span(f"nightly {first}") as span:
        span.set_attribute("tenants", [first, second, "unrelated"])
        span.set_status(trace_api.StatusCode.ERROR, f"quota for {second}")
    (batch,) = [s for s in exp.get_finished_spans() if s.name.startswith("nightly")]
    dump = batch.to_json()
    assert first not in dump and second not in dump
    assert batch.attributes["tenants"] == (REDACTED_VALUE, REDACTED_VALUE, "unrelated")
    assert batch.status.description == f"quota for {REDACTED_VALUE}"


def test_many_known_tenants_are_found_by_lookup_and_unrelated_text_kept(setup):
    """Thousands of tenants (more than one `in` per id would take): the orphan still
    loses the long, the short (whole token) and the numeric-under-a-tenant-key ids."""
    tracer, exp = _app_provider(setup)
    many = [f"org-many-{i:05d}" for i in range(3000)]
    for raw in many:
        _request(tracer, raw)
    _request(tracer, "q7")  # a short id: a whole token only
    _request(tracer, "88412")
    with tracer.start_as_current_span(f"sync {many[1234]} then {many[2999]}") as span:
        span.set_attribute("note", "q7 only as a word: q7x is not it")
        span.set_attribute("tenant_id", 88412)
        span.set_attribute("db.response.returned_rows", 88412)
        span.set_attribute("safe", "org-many-99999 was never bound")
    (s,) = [s for s in exp.get_finished_spans() if s.name.startswith("sync")]
    assert s.name == f"sync {REDACTED_VALUE} then {REDACTED_VALUE}"
    assert s.attributes["note"] == f"{REDACTED_VALUE} only as a word: q7x is not it"
    assert s.attributes["tenant_id"] == REDACTED_VALUE
    assert s.attributes["db.response.returned_rows"] == 88412
    assert s.attributes["safe"] == "org-many-99999 was never bound"


def test_known_ids_survive_the_context_table_being_cleared_at_its_cap(setup):
    from flowmap.context import _RAW_BY_TAG

    tracer, exp = _app_provider(setup)
    _request(tracer, "tenant-before-clear")
    with tracer.start_as_current_span("look"):  # an untagged span: the index catches up
        pass
    _RAW_BY_TAG.clear()  # what context does when its table is full
    _request(tracer, "tenant-after-clear")
    with tracer.start_as_current_span("late tenant-before-clear and tenant-after-clear"):
        pass
    late = exp.get_finished_spans()[-1]
    assert late.name == f"late {REDACTED_VALUE} and {REDACTED_VALUE}"


# --- hostile values: one cannot stop the rest being scrubbed -----------------------------


def test_an_int_too_long_to_print_does_not_stop_redaction(setup):
    tracer, exp = _app_provider(setup)
    huge = 10**5000  # str() raises ValueError (int max str digits)
    with bind(RequestContext(RAW)):
        with tracer.start_as_current_span(f"load {RAW}") as span:
            span.set_attribute("huge_int", huge)
            span.set_attribute("tenant_id", huge)
            span.set_attribute("who", RAW)
            span.add_event("lookup", {"detail": f"for {RAW}", "huge": huge})
    (s,) = exp.get_finished_spans()
    assert s.name == f"load {REDACTED_VALUE}"
    assert s.attributes["who"] == REDACTED_VALUE
    assert s.events[0].attributes["detail"] == f"for {REDACTED_VALUE}"
    assert s.attributes["huge_int"] == huge and s.attributes["tenant_id"] == huge
    assert s.attributes[REDACTED] == 3


def test_an_int_too_long_to_print_under_a_tenant_key_with_a_numeric_tenant(setup):
    tracer, exp = _app_provider(setup)
    with bind(RequestContext("918273")):
        with tracer.start_as_current_span("numeric") as span:
            span.set_attribute("tenant_id", 10**5000)  # checked before any str()
            span.set_attribute("account_id", 918273)
            span.set_attribute("path", "/accounts/918273/usage")
    (s,) = exp.get_finished_spans()
    assert s.attributes["account_id"] == REDACTED_VALUE
    assert s.attributes["path"] == f"/accounts/{REDACTED_VALUE}/usage"
    assert s.attributes[REDACTED] == 2


# --- numeric tenant ids: unrelated numbers are not the tenant ----------------------------


def test_numeric_tenant_id_leaves_unrelated_numbers_alone(setup):
    tracer, exp = _app_provider(setup)
    with bind(RequestContext("200")):
        with tracer.start_as_current_span("GET", kind=trace_api.SpanKind.CLIENT) as span:
            span.set_attribute("http.status_code", 200)
            span.set_attribute("http.response.status_code", 200)
            span.set_attribute("db.response.returned_rows", 200)
            span.set_attribute("ratio", 200.0)
            span.set_attribute("codes", [200, 404])
            span.set_attribute("url.full", "http://svc.internal/orgs/200/items?page=1")
            span.add_event("response", {"status": 200})
    (s,) = exp.get_finished_spans()
    a = s.attributes
    assert a["http.status_code"] == 200 and a["http.response.status_code"] == 200
    assert a["db.response.returned_rows"] == 200 and a["ratio"] == 200.0
    assert a["codes"] == (200, 404)
    assert s.events[0].attributes["status"] == 200
    assert a["url.full"] == f"http://svc.internal/orgs/{REDACTED_VALUE}/items?page=1"  # strings: whole tokens
    # ... replaced, but not counted as a raw id the code wrote (no HIGH finding for what
    # may be any 3-digit number): only a whole value, or a number under a tenant key, is
    assert REDACTED not in a


def test_numeric_tenant_id_on_an_unbound_span_leaves_unrelated_numbers_alone(setup):
    tracer, exp = _app_provider(setup)
    _request(tracer, "31337")
    with tracer.start_as_current_span("GET /orgs/31337") as span:
        span.set_attribute("http.status_code", 31337)
        span.set_attribute("org_id", 31337)
    s = exp.get_finished_spans()[-1]
    assert s.name == f"GET /orgs/{REDACTED_VALUE}"
    assert s.attributes["http.status_code"] == 31337 and s.attributes["org_id"] == REDACTED_VALUE


def test_an_event_named_by_a_number_does_not_stop_the_scrubbing_of_the_others(setup):
    tracer, exp = _app_provider(setup)
    with bind(RequestContext(RAW)):
        with tracer.start_as_current_span("lookup") as span:
            span.add_event(404)  # the SDK takes it; its name is not text
            span.add_event("cache.hit", {"key": f"docs:{RAW}"})
    (done,) = exp.get_finished_spans()
    assert RAW not in done.to_json()
    assert dict(done.events[1].attributes) == {"key": f"docs:{REDACTED_VALUE}"} and done.attributes[REDACTED] == 1


def test_the_bound_id_is_scrubbed_as_a_url_or_json_text_writes_it_too(setup):
    """An id with a space, an accent or @ is in a route or query string only encoded."""
    tracer, exp = _app_provider(setup)
    raw = "Café Zürich 4411"
    with bind(RequestContext(raw)):
        with tracer.start_as_current_span("GET /t/Caf%C3%A9%20Z%C3%BCrich%204411") as span:
            span.set_attribute("url.query", "org=Caf%C3%A9+Z%C3%BCrich+4411")
            span.set_attribute("gen_ai.tool.call.arguments", '{"org": "Caf\\u00e9 Z\\u00fcrich 4411"}')
            span.set_attribute("note", raw)
    (done,) = exp.get_finished_spans()
    dump = done.to_json()
    for spelling in ("Caf%C3%A9", "Caf\\\\u00e9", "Café"):
        assert spelling not in dump, spelling
    assert done.name == f"GET /t/{REDACTED_VALUE}" and done.attributes["url.query"] == f"org={REDACTED_VALUE}"
    assert done.attributes[REDACTED] == 4


def test_the_bound_id_is_scrubbed_as_pythons_quote_writes_it_by_default(setup):
    """``urllib.parse.quote(tenant_id)`` keeps ``/`` (its default ``safe``) and encodes
    ``:`` and ``@``: a spelling no other encoder writes."""
    tracer, exp = _app_provider(setup)
    raw = "org:acme/eu"
    path = "/t/" + urllib.parse.quote(raw) + "/docs"
    assert "org%3Aacme/eu" in path
    with bind(RequestContext(raw)):
        with tracer.start_as_current_span("GET " + path) as span:
            span.set_attribute("url.path", path)
    (done,) = exp.get_finished_spans()
    assert "org%3Aacme" not in done.to_json()
    assert done.attributes["url.path"] == f"/t/{REDACTED_VALUE}/docs"


def test_an_id_with_quotes_is_scrubbed_from_json_written_without_ascii_escapes(setup):
    """pydantic, orjson and LangChain write non-ASCII as is and escape only quotes and
    backslashes: that spelling of the id is scrubbed too."""
    tracer, exp = _app_provider(setup)
    raw = 'Müller "Büro" 7'
    with bind(RequestContext(raw)):
        with tracer.start_as_current_span("tool") as span:
            span.set_attribute("input.value", json.dumps({"org": raw, "q": "hi"}, ensure_ascii=False))
    (done,) = exp.get_finished_spans()
    assert done.attributes["input.value"] == f'{{"org": "{REDACTED_VALUE}", "q": "hi"}}'
    assert "Müller" not in done.to_json()


def _limited_provider(setup, limit):
    """As _app_provider, with the SDK's attribute value length limit set."""
    from opentelemetry.sdk.trace import SpanLimits

    return _app_provider(setup, SpanLimits(max_attribute_length=limit, max_span_attribute_length=limit))


def test_an_id_cut_by_the_attribute_length_limit_is_scrubbed(setup):
    """OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT cuts values when they are set, before the span
    ends: a value cut inside the id ends in its first characters, which are scrubbed."""
    raw = "customer-4711-acme-corporation"
    tracer, exp = _limited_provider(setup, 40)
    with bind(RequestContext(raw)):
        with tracer.start_as_current_span("query") as span:
            span.set_attribute("db.query.text", f"SELECT * FROM docs WHERE tenant = '{raw}'")
            span.set_attribute("paths", [f"/api/v1/tenants/{raw}/docs", "short"])
            span.add_event("miss", {"detail": f"cache miss, key docs:{raw}:index"})
            span.set_attribute("ends.with.a.word", "x" * 37 + "cus")  # 40 chars: a cut "cus…"
            span.set_attribute("fits", "SELECT 1")
    (done,) = exp.get_finished_spans()
    dump = done.to_json()
    assert "custo" not in dump and "cus" not in dump.replace('"customer', "")
    # cut before what may start the id: the value was cut already
    assert done.attributes["db.query.text"] == "SELECT * FROM docs WHERE tenant = '"
    assert done.attributes["fits"] == "SELECT 1"
    assert done.attributes["paths"][1] == "short"
    # what only looks like the start of an id is not counted as one: flowmap.redacted
    # (which the analyzer reports as a raw id in telemetry) counts whole ids alone
    assert REDACTED not in done.attributes


def test_an_id_cut_by_the_length_limit_on_an_untagged_span_is_scrubbed(setup):
    raw = "customer-9922-initech-global"
    tracer, exp = _limited_provider(setup, 32)
    with bind(RequestContext(raw)):
        with tracer.start_as_current_span("handler"):
            pass
    with tracer.start_as_current_span("nightly") as span:  # no binding, no tag
        span.set_attribute("job", f"reindex documents of {raw}")
        span.set_attribute("other", "reindex documents of customer-0000-nobody")
    nightly = exp.get_finished_spans()[-1]
    assert TENANT not in nightly.attributes
    assert nightly.attributes["job"] == "reindex documents of "
    assert "customer-99" not in nightly.to_json()
    assert nightly.attributes["other"] == "reindex documents of customer-0000-nobody"[:32]  # another id: kept


def test_flowmap_own_attributes_survive_an_id_found_inside_them(setup):
    """Tenant "39463" is inside its own tag under the test key ("3b6b64c550e39463"), and a
    tenant may be named like a boundary kind: flowmap's own values are never rewritten."""
    from flowmap.tagging import tag_for

    tracer, exp = _app_provider(setup)
    for raw in ("39463", "stream", "context"):
        with bind(RequestContext(raw)):
            with tracer.start_as_current_span(f"work for {raw}") as span:
                span.set_attribute("flowmap.boundary", "stream")
                span.set_attribute("note", f"tenant {raw}")
    for kind in ("stream", "cache"):  # ``with boundary(kind)`` names its span after the kind
        with bind(RequestContext(kind)):
            with boundary(kind, tracer=tracer):
                pass
    *spans, stream, cache = exp.get_finished_spans()
    assert (stream.name, cache.name) == ("stream", "cache") and REDACTED not in stream.attributes
    assert "39463" in tag_for("test-key", "39463")  # the premise
    for s, raw in zip(spans, ("39463", "stream", "context")):
        assert s.attributes[TENANT] == tag_for("test-key", raw)
        assert s.attributes["flowmap.boundary"] == "stream"
        assert s.attributes["flowmap.tenant.source"] == "context"
        assert s.attributes["note"] == f"tenant {REDACTED_VALUE}"
        assert s.name == f"work for {REDACTED_VALUE}"


def test_a_raw_id_written_as_the_tag_itself_is_still_scrubbed(setup):
    tracer, exp = _app_provider(setup)
    raw = "0123456789abcdef"  # shaped like a tag
    with bind(RequestContext(raw)):
        with tracer.start_as_current_span("handler") as span:
            span.set_attribute("flowmap.tenant.inbound", raw)
    (done,) = exp.get_finished_spans()
    assert raw not in done.to_json()


@pytest.mark.parametrize("name", [404, None, b"abc"])
def test_a_span_named_by_no_text_is_still_scrubbed(setup, name):
    """The SDK takes any span name (404, None); one that is no text stopped the scrubbing
    of the whole span (a TypeError caught quietly), so its attributes kept the raw id."""
    tracer, exp = _app_provider(setup)
    with bind(RequestContext(RAW)):
        with tracer.start_as_current_span(name) as span:
            span.set_attribute("http.url", f"https://api/t/{RAW}")
    (done,) = exp.get_finished_spans()
    assert done.attributes["http.url"] == f"https://api/t/{REDACTED_VALUE}"
    # the name is rewritten as the exporter writes it: None is OTLP's empty name, not "None"
    assert done.name == {404: "404", None: "", b"abc": "b'abc'"}[name]


def test_the_redaction_count_never_pushes_the_tag_out_at_the_attribute_limit(setup):
    """At the SDK's default of 128 attributes, flowmap.redacted is one more: the oldest
    application attribute goes (counted as dropped), never the tenant tag."""
    from opentelemetry.sdk.trace import SpanLimits

    tracer, exp = _app_provider(setup, SpanLimits(max_span_attributes=8))
    with bind(RequestContext(RAW)):
        with tracer.start_as_current_span("agent") as span:
            for i in range(6):  # with the tag and its source: 8, the limit, nothing dropped yet
                span.set_attribute(f"app.{i}", f"note {i} for {RAW}" if i == 3 else i)
            assert span.dropped_attributes == 0
    (done,) = exp.get_finished_spans()
    assert done.attributes[TENANT] and done.attributes[REDACTED] == 1 and len(done.attributes) == 8
    assert "app.0" not in done.attributes and done.dropped_attributes == 1


def test_bytes_values_and_deep_maps_are_scrubbed_bound_or_not(setup):
    """SDK 1.45 keeps bytes (a request body) and nested maps as attribute values."""
    tracer, exp = _app_provider(setup)
    _request(tracer, RAW)  # the process knows the id: the unbound spans below are searched for it

    def deep(depth, leaf):
        for _ in range(depth):
            leaf = {"l": leaf}
        return leaf

    with bind(RequestContext(RAW)):
        with tracer.start_as_current_span("bound") as span:
            span.set_attribute("body", f'{{"tenant": "{RAW}"}}'.encode())
    with tracer.start_as_current_span("orphan") as span:  # no binding, no tag
        span.set_attribute("body", RAW.encode())
        span.set_attribute("deep", deep(12, f"t={RAW}"))
    bound, orphan = [s for s in exp.get_finished_spans() if s.name in ("bound", "orphan")]
    assert bound.attributes["body"] == f'{{"tenant": "{REDACTED_VALUE}"}}'.encode()
    assert orphan.attributes["body"] == REDACTED_VALUE.encode()
    assert RAW not in json.dumps(dict(orphan.attributes), default=lambda b: b.decode())


@pytest.mark.parametrize("limit", [10, 1])
def test_the_tag_stays_whole_under_a_value_length_limit_below_its_length(setup, limit):
    """OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT=10 cut the 16-character tag, which then named no
    tenant: a span ended after its binding kept the raw id in its name."""
    from flowmap.tagging import tag_for

    tracer, exp = _limited_provider(setup, limit)
    with bind(RequestContext(RAW)):
        span = tracer.start_span(f"later {RAW}")
    done = threading.Thread(target=span.end)  # ends elsewhere, unbound: found by its tag
    done.start()
    done.join()
    (ended,) = exp.get_finished_spans()
    assert ended.attributes[TENANT] == tag_for("test-key", RAW)
    assert ended.name == f"later {REDACTED_VALUE}"
