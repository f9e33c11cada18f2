"""The pytest plugin, run the way a user runs it: pytest on small test files (pytester).

The plugin is loaded through its ``pytest11`` entry point (installing flowmap is enough),
so none of these inner runs passes ``-p``.
"""

from __future__ import annotations

import re
import sys

import pytest

pytest_plugins = ["pytester"]

# A small multi-tenant "app" the inner test files import: an HTTP entry, an agent and a
# tool, plus the two leaks only a two-tenant run shows (a shared cache, a stale worker).
APP = '''
import concurrent.futures
import logging
import queue
import threading

import flowmap
from flowmap import RequestContext, propagation

log = logging.getLogger("app")
# raw tenant ids: kept here so that no test source line shown in a traceback holds one
ACME = "acme-corp-7731"
GLOBEX = "globex-4411"
STORE = {}   # tenant id -> that tenant's private data
CACHE = {}


@flowmap.boundary("tool", "search_docs", mode="record")
def search_docs(query):
    return f"results for {query}"


def handle_chat(tenant_id, pool=None):
    """POST /chat -> agent.run -> search_docs (in ``pool`` when given)."""
    with flowmap.bind(RequestContext(tenant_id)):
        with flowmap.boundary("http.server", "POST /chat"):
            with flowmap.boundary("agent", "agent.run"):
                if pool is None:
                    return search_docs("q")
                return pool.submit(search_docs, "q").result()


def seed(run):
    STORE[flowmap.current().tenant_id] = run.canary


@flowmap.boundary("cache", "profile.get")
def profile_shared_key():
    if "profile" not in CACHE:            # BUG: the key has no tenant in it
        CACHE["profile"] = STORE[flowmap.current().tenant_id]
    return CACHE["profile"]


@flowmap.boundary("cache", "profile.get", scoped=True)
def profile_tenant_key():
    key = (flowmap.current().tenant_id, "profile")
    if key not in CACHE:
        CACHE[key] = STORE[flowmap.current().tenant_id]
    return CACHE[key]


@flowmap.boundary("memory", "memory.read")
def read_memory():
    value = STORE[flowmap.current().tenant_id]
    log.info("memory read: %s", value)
    return value


class Worker:
    """A long-lived worker thread, started lazily by the first request that needs it."""

    def __init__(self, per_job_context):
        self.per_job_context = per_job_context
        self.jobs = queue.Queue()
        # BUG when not per_job_context: the thread keeps the context of the request
        # that happened to start it, and serves every later request with it.
        propagation.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while True:
            fn, ctx, fut = self.jobs.get()
            try:
                fut.set_result(ctx.run(fn) if ctx is not None else fn())
            except BaseException as exc:
                fut.set_exception(exc)

    def call(self, fn):
        import contextvars

        fut = concurrent.futures.Future()
        ctx = contextvars.copy_context() if self.per_job_context else None
        self.jobs.put((fn, ctx, fut))
        return fut.result(10)


_workers = {}
_lock = threading.Lock()


def worker(per_job_context):
    with _lock:
        if per_job_context not in _workers:
            _workers[per_job_context] = Worker(per_job_context)
        return _workers[per_job_context]
'''


INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"


@pytest.fixture
def app(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(app=APP)
    pytester.makeini(INI)
    pytester.syspathinsert()
    return pytester


def _outcomes(result: pytest.RunResult) -> dict[str, int]:
    return result.parseoutcomes()


def _no_raw_ids(text: str, *ids: str) -> None:
    for raw in ids:
        assert raw not in text, "a raw tenant id reached pytest's output"


# -- capture and assertion --------------------------------------------------------------


def test_leaky_thread_pool_fails_with_the_broken_path(app: pytest.Pytester) -> None:
    app.makepyfile(
        test_leak="""
        import concurrent.futures
        from app import ACME, handle_chat

        def test_chat_in_pool(flowmap_spans):
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                handle_chat(ACME, pool)
            flowmap_spans.assert_no_leaks(fail_on="medium")
        """
    )
    result = app.runpytest()
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    # which rule, which operation, and the path from the entry to the tool call
    result.stdout.fnmatch_lines(
        [
            "*TenantLeakError: flowmap: tenant context lost*(orphan-root)*",
            "*POST /chat → agent.run → ✗ orphan-root → search_docs*",
            "*orphan-root*search_docs*",
            "*[[]tool[]]*",
        ]
    )
    _no_raw_ids(out, "acme-corp-7731")


def test_clean_flow_passes_and_is_tagged(app: pytest.Pytester) -> None:
    app.makepyfile(
        test_clean="""
        import concurrent.futures
        from flowmap import propagation
        from app import ACME, handle_chat

        def test_chat_inline(flowmap_spans):
            handle_chat("acme")
            analysis = flowmap_spans.assert_no_leaks(fail_on="info")
            assert analysis.spans == 3
            tags = {s.attributes["flowmap.tenant"] for s in flowmap_spans}
            assert tags == {flowmap_spans.tag("acme")}

        def test_chat_in_context_pool(flowmap_spans):
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                handle_chat("acme", propagation.ContextExecutor(pool))
            flowmap_spans.assert_no_leaks(fail_on="info")
        """
    )
    app.runpytest().assert_outcomes(passed=2)


def test_each_test_sees_only_its_own_spans_and_never_the_env_key(
    app: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWMAP_TENANT_KEY", "the-production-key")
    app.makepyfile(
        test_iso="""
        import flowmap.runtime
        from flowmap.tagging import tag_for
        from app import ACME, handle_chat

        def test_first(flowmap_spans):
            handle_chat("acme")
            assert len(flowmap_spans) == 3

        def test_second(flowmap_spans):
            assert len(flowmap_spans) == 0
            handle_chat("acme")
            [tag] = {s.attributes["flowmap.tenant"] for s in flowmap_spans}
            assert tag != tag_for("the-production-key", "acme")

        def test_runtime_restored_after_capture():
            assert flowmap.runtime.current_runtime() is None
        """
    )
    app.runpytest("-p", "no:randomly").assert_outcomes(passed=3)


# -- work an earlier test left running ---------------------------------------------------

EARLIER_THREADS = """
import concurrent.futures
import queue
import threading
import pytest
import flowmap
from flowmap import RequestContext, propagation
from app import ACME, GLOBEX

@flowmap.boundary("vector", "docs.search", scoped=True, mode="record")
def search(q):
    return [q]

def later(go, done):
    # leaky: a thread without the tenant, left running; its span starts in a later test
    def refresh():
        go.wait(10)
        search("refresh")
        done.set()
    threading.Thread(target=refresh, daemon=True).start()

GO, DONE = threading.Event(), threading.Event()

def test_1_leaves_a_thread_running(flowmap_spans):
    with flowmap.bind(RequestContext(ACME)):
        later(GO, DONE)
        search("q")
    flowmap_spans.assert_no_leaks(fail_on="medium")

def test_2_clean_while_it_runs(flowmap_spans):
    with flowmap.bind(RequestContext(GLOBEX)):
        search("q")
        GO.set()
        assert DONE.wait(10)                      # test 1's thread starts its span now
    flowmap_spans.assert_no_leaks(fail_on="medium")
    assert len(flowmap_spans.spans) == 1
    assert [s.name for s in flowmap_spans.leftover_spans] == ["docs.search"]

GO2, DONE2 = threading.Event(), threading.Event()

def test_3_never_captured_leaves_a_thread_running():
    later(GO2, DONE2)

def test_4_clean_while_it_runs(flowmap_spans):
    with flowmap.bind(RequestContext(GLOBEX)):
        GO2.set()
        assert DONE2.wait(10)
    flowmap_spans.assert_no_leaks(fail_on="medium")
    assert len(flowmap_spans.leftover_spans) == 1

def test_5_own_thread_without_context_fails(flowmap_spans):
    with flowmap.bind(RequestContext(ACME)):
        t = threading.Thread(target=search, args=("q",))
        t.start()
        t.join()
    flowmap_spans.assert_no_leaks(fail_on="medium")

def test_6_own_thread_with_context(flowmap_spans):
    with flowmap.bind(RequestContext(ACME)):
        t = propagation.Thread(target=search, args=("q",))
        t.start()
        t.join()
    flowmap_spans.assert_no_leaks(fail_on="info")
    assert len(flowmap_spans.spans) == 1

@pytest.fixture(scope="module")
def pool():                                       # shared by the tests below
    with concurrent.futures.ThreadPoolExecutor(1) as p:
        yield p

def test_7_pool_begins_its_worker(flowmap_spans, pool):
    with flowmap.bind(RequestContext(ACME)):
        propagation.ContextExecutor(pool).submit(search, "q").result()
    flowmap_spans.assert_no_leaks(fail_on="info")

def test_8_pool_without_context_fails(flowmap_spans, pool):
    with flowmap.bind(RequestContext(ACME)):
        pool.submit(search, "q").result()         # the worker test 7 began: this test's work
    flowmap_spans.assert_no_leaks(fail_on="medium")

def test_9_pool_with_context(flowmap_spans, pool):
    with flowmap.bind(RequestContext(ACME)):
        propagation.ContextExecutor(pool).submit(search, "q").result()
    flowmap_spans.assert_no_leaks(fail_on="info")
    assert len(flowmap_spans.spans) == 1 and not flowmap_spans.leftover_spans

INBOX = queue.Queue()

def consumer():                                   # a long-lived consumer, begun lazily
    while True:
        headers, done = INBOX.get()
        with propagation.consume(headers, "jobs"):
            search("job")
        done.set()

def send():
    done = threading.Event()
    with propagation.publish("jobs") as headers:
        INBOX.put((headers, done))
    assert done.wait(10)

def test_10_consumer_begins(flowmap_spans):
    propagation.Thread(target=consumer, daemon=True).start()
    with flowmap.bind(RequestContext(ACME)):
        send()
    flowmap_spans.assert_no_leaks(fail_on="info")

def test_11_consumer_of_an_earlier_test_serves_this_ones_message(flowmap_spans):
    with flowmap.bind(RequestContext(GLOBEX)):
        send()
    assert sorted(s.name for s in flowmap_spans.spans) == ["docs.search", "jobs", "jobs"]
    assert not flowmap_spans.leftover_spans
    flowmap_spans.assert_no_leaks(fail_on="info")
"""


def test_a_thread_an_earlier_test_left_running_does_not_fail_a_later_one(app: pytest.Pytester) -> None:
    """A thread test 1 left running starts a span without the tenant while test 2 runs:
    test 2 passes, and says so in a warning. A thread a test starts itself, a shared
    pool's idle worker given work without the context, and work handed on with the
    context (a pool, a consumer an earlier test began) are still judged."""
    app.makepyfile(test_earlier=EARLIER_THREADS)
    result = app.runpytest("-p", "no:randomly", "-rA")
    result.assert_outcomes(passed=9, failed=2)
    outcomes = {
        m.group(2): m.group(1) for m in re.finditer(r"^(PASSED|FAILED) test_earlier.py::(\w+)", result.stdout.str(), re.M)
    }
    assert outcomes["test_5_own_thread_without_context_fails"] == "FAILED"
    assert outcomes["test_8_pool_without_context_fails"] == "FAILED"
    result.stdout.fnmatch_lines(
        [
            "*test_2_clean_while_it_runs*",
            "*LeftoverSpanWarning: flowmap: orphan-root on 'pytest: docs.search' not judged as this test's: "
            "the span was started by a thread an earlier test began and left running",
        ]
    )
    _no_raw_ids(result.stdout.str(), "acme-corp-7731", "globex-4411")


def test_a_span_capture_keeps_apart_what_an_earlier_capture_left_running() -> None:
    """Outside pytest's fixtures too: two captures one after the other, a thread the first
    began starts its span during the second."""
    import threading

    import flowmap
    from flowmap.testing import LeftoverSpanWarning, SpanCapture

    @flowmap.boundary("vector", "docs.search", scoped=True, mode="record")
    def search() -> int:
        return 1

    go, done = threading.Event(), threading.Event()

    def refresh() -> None:
        go.wait(10)
        search()
        done.set()

    with SpanCapture():
        threading.Thread(target=refresh, daemon=True).start()
    with SpanCapture() as second:
        go.set()
        assert done.wait(10)
        with pytest.warns(LeftoverSpanWarning, match="orphan-root on 'pytest: docs.search'.*by a thread an earlier"):
            second.assert_no_leaks(fail_on="medium")
    assert second.spans == [] and [s.name for s in second.leftover_spans] == ["docs.search"]


EARLIER_THREAD_STRICT = """
import threading
import flowmap
from flowmap import RequestContext
from app import ACME

GO, DONE = threading.Event(), threading.Event()

@flowmap.boundary("vector", "docs.search", scoped=True, mode="record")
def search(q):
    return [q]

def refresh():
    GO.wait(10)
    search("refresh")
    DONE.set()

def test_1_refresh():
    with flowmap.bind(RequestContext(ACME)):
        threading.Thread(target=refresh, daemon=True).start()
        search("q")

def test_2_pure_math():
    GO.set()
    assert DONE.wait(10)
    assert 1 + 1 == 2
"""


def test_under_strict_a_test_is_not_failed_for_an_earlier_tests_thread(app: pytest.Pytester) -> None:
    app.makepyfile(test_strict_earlier=EARLIER_THREAD_STRICT)
    result = app.runpytest("--flowmap-strict", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_2_pure_math*", "*LeftoverSpanWarning: flowmap: orphan-root on 'pytest: docs.search'*"])


LAZY_FIXTURE_WORKER = """
import queue, threading
import pytest
import flowmap

JOBS = queue.Queue()
WORKER = []

def _serve():
    while True:
        fn, done = JOBS.get()
        fn()
        done.set()

@pytest.fixture
def worker():
    # a shared worker a fixture starts lazily (the first test that asks) and keeps
    if not WORKER:
        WORKER.append(threading.Thread(target=_serve, daemon=True))
        WORKER[0].start()
    def run(fn):
        done = threading.Event()
        JOBS.put((fn, done))
        assert done.wait(10)
    return run

@flowmap.boundary("vector", "docs.search", mode="record")
def search():                                     # no tenant: the handing test's leak
    return 1

def test_1(flowmap_spans, worker):
    worker(search)

def test_2(flowmap_spans, worker):
    worker(search)
"""


@pytest.mark.parametrize("strict", [True, False])
def test_a_worker_a_fixture_starts_and_keeps_is_judged_as_each_tests_own(app: pytest.Pytester, strict) -> None:
    """Work each test hands to a worker that a fixture started (in the first test's
    setup, after the capture began) is that test's: its leak fails it, also the second
    test's (the worker is no earlier test's leftover)."""
    app.makepyfile(test_lazy_worker=LAZY_FIXTURE_WORKER.replace(
        "worker(search)", "worker(search)" if strict else "worker(search)\n    flowmap_spans.assert_no_leaks()"))
    result = app.runpytest(*(["--flowmap-strict"] if strict else []), "-p", "no:randomly")
    result.assert_outcomes(failed=2)
    assert "LeftoverSpanWarning" not in result.stdout.str()


EARLIER_TASKS = """
import asyncio
import pytest
import pytest_asyncio
import flowmap
from flowmap import RequestContext
from app import ACME, GLOBEX

pytestmark = pytest.mark.asyncio(loop_scope="session")

@flowmap.boundary("vector", "docs.search", scoped=True, mode="record")
async def search():
    return 1

STATE = {}

async def test_1_leaves_a_task_running(flowmap_spans):
    STATE["go"], STATE["done"] = asyncio.Event(), asyncio.Event()
    async def refresher():                        # leaky: created before the bind
        await STATE["go"].wait()
        await search()
        STATE["done"].set()
    STATE["task"] = asyncio.get_running_loop().create_task(refresher())
    with flowmap.bind(RequestContext(ACME)):
        await search()
    flowmap_spans.assert_no_leaks(fail_on="medium")

async def test_2_clean_while_it_runs(flowmap_spans):
    with flowmap.bind(RequestContext(GLOBEX)):
        await search()
        STATE["go"].set()
        await STATE["done"].wait()                # test 1's task starts its span now
    flowmap_spans.assert_no_leaks(fail_on="medium")
    assert len(flowmap_spans.spans) == 1
    assert [s.name for s in flowmap_spans.leftover_spans] == ["docs.search"]

async def test_3_own_task_without_context_fails(flowmap_spans):
    task = asyncio.get_running_loop().create_task(search())
    with flowmap.bind(RequestContext(ACME)):
        await task
    flowmap_spans.assert_no_leaks(fail_on="medium")

async def test_4_own_task_with_context(flowmap_spans):
    with flowmap.bind(RequestContext(ACME)):
        await asyncio.get_running_loop().create_task(search())
    flowmap_spans.assert_no_leaks(fail_on="info")
    assert len(flowmap_spans.spans) == 1

@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def worker():                               # a task a session fixture starts
    jobs = asyncio.Queue()
    async def serve():
        while True:
            done = await jobs.get()
            await search()
            done.set()
    task = asyncio.get_running_loop().create_task(serve())
    yield jobs
    task.cancel()

async def test_5_session_worker_without_context_fails(flowmap_spans, worker):
    done = asyncio.Event()
    with flowmap.bind(RequestContext(ACME)):
        worker.put_nowait(done)
        await done.wait()
    flowmap_spans.assert_no_leaks(fail_on="medium")
"""


def test_an_asyncio_task_an_earlier_test_left_running_does_not_fail_a_later_one(app: pytest.Pytester) -> None:
    """On a loop the tests share, a task test 1 created starts a span without the tenant
    while test 2 runs: test 2 passes, with a warning. A test's own tasks and a session
    fixture's task given work without the context are still judged."""
    app.makepyfile(test_tasks=EARLIER_TASKS)
    result = app.runpytest("-p", "no:randomly", "-rA")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(
        [
            "FAILED test_tasks.py::test_3_own_task_without_context_fails*",
            "FAILED test_tasks.py::test_5_session_worker_without_context_fails*",
        ],
        consecutive=False,
    )
    result.stdout.fnmatch_lines(
        ["*LeftoverSpanWarning: flowmap: orphan-root on 'pytest: docs.search' not judged as this test's: "
         "the span was started by an asyncio task an earlier test began and left running"]
    )
    _no_raw_ids(result.stdout.str(), "acme-corp-7731", "globex-4411")


# -- strict mode -------------------------------------------------------------------------


STRICT_TESTS = """
import concurrent.futures
import pytest
from app import ACME, handle_chat

def test_never_asked():
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        handle_chat(ACME, pool)

def test_clean():
    handle_chat(ACME)

@pytest.mark.flowmap(strict=False)
def test_opted_out():
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        handle_chat(ACME, pool)
"""


def test_strict_fails_a_test_that_never_asked(app: pytest.Pytester) -> None:
    app.makepyfile(test_strict=STRICT_TESTS)
    result = app.runpytest("--flowmap-strict")
    result.assert_outcomes(failed=1, passed=2)
    result.stdout.fnmatch_lines(
        [
            "flowmap: strict, fail on high and above",
            "*--flowmap-strict: this test's spans hold findings at or above high*",
            "*POST /chat → agent.run → ✗ orphan-root → search_docs*",
            "FAILED test_strict.py::test_never_asked*",
        ]
    )
    _no_raw_ids(result.stdout.str(), "acme-corp-7731")


def test_without_strict_the_same_tests_pass(app: pytest.Pytester) -> None:
    app.makepyfile(test_strict=STRICT_TESTS)
    app.runpytest().assert_outcomes(passed=3)


def test_strict_threshold_from_option_and_ini(app: pytest.Pytester) -> None:
    app.makepyfile(test_strict=STRICT_TESTS)
    # orphan-root of a tool boundary is high: a critical-only threshold lets it through
    app.runpytest("--flowmap-strict", "--flowmap-fail-on", "critical").assert_outcomes(passed=3)
    app.makeini(INI + "flowmap_strict = true\nflowmap_fail_on = critical\n")
    app.runpytest().assert_outcomes(passed=3)
    app.runpytest("--flowmap-fail-on", "high").assert_outcomes(failed=1, passed=2)


def test_bad_threshold_is_a_one_line_usage_error(app: pytest.Pytester) -> None:
    app.makepyfile(test_strict=STRICT_TESTS)
    result = app.runpytest("--flowmap-strict", "--flowmap-fail-on", "severe")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--flowmap-fail-on: unknown severity 'severe'*"])


def test_strict_failure_of_a_failing_test_shows_the_flowmap_section(app: pytest.Pytester) -> None:
    app.makepyfile(
        test_other="""
        import concurrent.futures
        from app import ACME, handle_chat

        def test_fails_for_another_reason(flowmap_spans):
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                handle_chat("acme", pool)
            assert 1 == 2
        """
    )
    result = app.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*assert 1 == 2*", "*Captured flowmap call*", "*orphan-root*"])


# -- two tenants -------------------------------------------------------------------------


TWO_TENANT_TESTS = """
import pytest
import app

@pytest.fixture(autouse=True)
def fresh():
    app.CACHE.clear()
    app.STORE.clear()
    app._workers.clear()

def test_shared_cache_key(flowmap_two_tenants):
    flowmap_two_tenants.run(lambda run: app.profile_shared_key(), seed=app.seed,
                            tenants=(app.ACME, app.GLOBEX))

def test_tenant_cache_key(flowmap_two_tenants):
    out = flowmap_two_tenants.run(lambda run: app.profile_tenant_key(), seed=app.seed,
                                  tenants=(app.ACME, app.GLOBEX))
    assert out.results["A"] == [out.runs["A"][0].canary] * 2
    assert out.results["B"] == [out.runs["B"][0].canary] * 2

def test_stale_worker(flowmap_two_tenants):
    flowmap_two_tenants.run(lambda run: app.worker(False).call(app.read_memory), seed=app.seed,
                            tenants=(app.ACME, app.GLOBEX))

def test_worker_with_per_job_context(flowmap_two_tenants):
    flowmap_two_tenants.run(lambda run: app.worker(True).call(app.read_memory), seed=app.seed,
                            tenants=(app.ACME, app.GLOBEX))
"""


def test_two_tenant_harness_catches_cache_and_stale_worker_leaks(app: pytest.Pytester) -> None:
    app.makepyfile(test_two=TWO_TENANT_TESTS)
    result = app.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=2, passed=2)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*_ test_shared_cache_key _*",
            "*two-tenant run leaked across tenants*",
            "*tenant ? (*): the result of round 2 holds tenant ?'s canary (tenant ? is *)*",
            "*_ test_stale_worker _*",
            "*two-tenant run leaked across tenants*",
            "*tenant ? (*): the result of round 1 holds tenant ?'s canary*",
        ]
    )
    assert "FAILED test_two.py::test_shared_cache_key" in out
    assert "FAILED test_two.py::test_stale_worker" in out
    _no_raw_ids(out, "acme-corp-7731", "globex-4411")
    # the tags printed are the 16-hex opaque tags
    assert re.search(r"tenant [AB] \([0-9a-f]{16}\)", out)


def test_two_tenant_harness_checks_spans_and_logs(app: pytest.Pytester) -> None:
    app.makepyfile(
        test_spans="""
        import logging
        import flowmap
        import app

        LAST = {}

        @flowmap.boundary("llm", "summarise")
        def summarise(run):
            # BUG: a module-level "last prompt" shared between requests ends up in telemetry
            prev = LAST.get("prompt", "")
            LAST["prompt"] = run.canary
            from opentelemetry import trace
            trace.get_current_span().set_attribute("llm.prompt.previous", prev)
            return "ok"

        def test_previous_prompt_in_span(flowmap_two_tenants):
            LAST.clear()
            flowmap_two_tenants.run(summarise, rounds=1, tenants=(app.ACME, app.GLOBEX))

        def test_other_tenant_in_log(flowmap_two_tenants):
            def flow(run):
                logging.getLogger("app").debug("cached: %s", LAST.get("c"))
                LAST["c"] = run.canary
            LAST.clear()
            flowmap_two_tenants.run(flow, rounds=2, tenants=(app.ACME, app.GLOBEX))

        def test_other_tenant_id_in_span_name(flowmap_two_tenants):
            def flow(run):
                with flowmap.boundary("cache", f"warm {LAST.get('t', '')}"):
                    LAST["t"] = flowmap.current().tenant_id
            LAST.clear()
            flowmap_two_tenants.run(flow, rounds=2, tenants=(app.ACME, app.GLOBEX))
        """
    )
    result = app.runpytest()
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        [
            "*span 'summarise' attribute 'llm.prompt.previous' holds tenant ?'s canary*",
            "*a log record of logger 'app' holds tenant ?'s canary*",
            "*span 'warm <tenant ? id>' name holds tenant ?'s tenant id*",
        ]
    )
    _no_raw_ids(result.stdout.str(), "acme-corp-7731", "globex-4411")


def test_two_tenant_harness_async_flow(app: pytest.Pytester) -> None:
    app.makepyfile(
        test_async="""
        import asyncio
        import flowmap
        import app

        CACHE = {}

        @flowmap.boundary("cache", "profile.get")
        async def profile():
            await asyncio.sleep(0)
            return CACHE.setdefault("profile", app.STORE[flowmap.current().tenant_id])

        def test_async_leak(flowmap_two_tenants):
            flowmap_two_tenants.run(lambda run: profile(), seed=app.seed)

        def test_async_flow_from_sync_test(flowmap_two_tenants):
            async def flow(run):
                await asyncio.sleep(0)
                return app.STORE[flowmap.current().tenant_id]
            out = flowmap_two_tenants.run(flow, seed=app.seed)
            assert out.results["A"][0] == out.runs["A"][0].canary

        async def test_arun_in_async_test(flowmap_two_tenants):
            async def flow(run):
                return app.STORE[flowmap.current().tenant_id]
            out = await flowmap_two_tenants.arun(flow, seed=app.seed)
            assert out.results["B"][1] == out.runs["B"][0].canary
        """
    )
    result = app.runpytest("-o", "asyncio_mode=auto")
    result.assert_outcomes(failed=1, passed=2)
    result.stdout.fnmatch_lines(["*test_async_leak*", "*holds tenant ?'s canary*"])


def test_spans_of_an_sdk_provider_set_globally_are_captured(app: pytest.Pytester) -> None:
    """Code (and instrumentations) using OpenTelemetry's global API, with the app's own SDK
    provider set globally: its spans are captured, tagged under the test's key, judged."""
    app.makeconftest(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        trace.set_tracer_provider(TracerProvider())  # the application's own set-up
        """
    )
    app.makepyfile(
        test_global="""
        import concurrent.futures
        from opentelemetry import trace
        import flowmap
        from flowmap import RequestContext
        from app import ACME

        tracer = trace.get_tracer("app")  # the global API, as instrumentations use it

        def lookup():
            with tracer.start_as_current_span("lookup orders") as span:
                span.set_attribute("db.system.name", "postgresql")

        def test_outside_any_capture():
            with tracer.start_as_current_span("between tests"):
                pass

        def test_pool_drops_the_context(flowmap_spans):
            with flowmap.bind(RequestContext(ACME)):
                with tracer.start_as_current_span("POST /chat", kind=trace.SpanKind.SERVER):
                    with concurrent.futures.ThreadPoolExecutor(1) as pool:
                        pool.submit(lookup).result()
            assert sorted(s.name for s in flowmap_spans) == ["POST /chat", "lookup orders"]
            (entry,) = flowmap_spans.by_name("POST /chat")
            assert entry.attributes["flowmap.tenant"] == flowmap_spans.tag(ACME)
            flowmap_spans.assert_no_leaks(fail_on="medium")
        """
    )
    result = app.runpytest_subprocess()  # the global provider stays in that process
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*TenantLeakError*(orphan-root)*", "*orphan-root*lookup orders*"])
    _no_raw_ids(result.stdout.str(), "acme-corp-7731")


HEALTH_TEST = """
import flowmap

def test_health(flowmap_spans):
    with flowmap.boundary("http.server", "GET /healthz", mode="record"):
        pass
    flowmap_spans.assert_no_leaks(fail_on="medium")
"""


def test_the_projects_tool_flowmap_settings_apply(app: pytest.Pytester) -> None:
    app.makepyfile(test_health=HEALTH_TEST)
    result = app.runpytest()
    result.assert_outcomes(failed=1)  # an entry that bound no tenant
    result.stdout.fnmatch_lines(["*unscoped-entry*GET /healthz*"])
    app.makefile(".toml", pyproject='[tool.flowmap]\ntenantless_entries = ["GET /health*"]\n')
    app.runpytest().assert_outcomes(passed=1)  # declared tenantless, as flowmap check reads it


def test_a_bad_tool_flowmap_section_fails_the_capturing_test_in_one_line(app: pytest.Pytester) -> None:
    app.makepyfile(test_health=HEALTH_TEST, test_plain="def test_plain():\n    pass\n")
    app.makefile(".toml", pyproject='[tool.flowmap]\ntenantless_entries = [1]\n')
    result = app.runpytest()
    result.assert_outcomes(passed=1, errors=1)  # a test that never captures is not affected
    result.stdout.fnmatch_lines(["*flowmap: *tenantless_entries must be a list of strings*"])
    assert "During handling of the above exception" not in result.stdout.str()  # one error, not two


def test_a_harness_failure_shows_its_message_never_the_data_it_judged(app: pytest.Pytester) -> None:
    """The flows' results hold raw ids: the failure is the leak message, not _judge's
    source and arguments (pytest prints a frame's locals in a long traceback)."""
    app.makepyfile(
        test_rawid="""
        import flowmap
        import app

        SHARED = {}

        def flow(run):
            SHARED.setdefault("p", {"owner": flowmap.current().tenant_id, "name": run.canary})
            return SHARED["p"]

        def test_profile(flowmap_two_tenants):
            SHARED.clear()
            flowmap_two_tenants.run(flow, tenants=(app.ACME, app.GLOBEX), rounds=1)
        """
    )
    result = app.runpytest()
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(["*the result of round 1 holds tenant ?'s *"])
    assert "def _judge" not in out and "results = " not in out
    _no_raw_ids(out, "acme-corp-7731", "globex-4411")


def test_tenants_of_an_earlier_test_are_not_redacted_from_a_later_ones_spans(app: pytest.Pytester) -> None:
    """Redaction remembers the ids a process bound: the tenant "a" of one test must not
    turn the word "a" in the next test's prompt into a leak of another tenant."""
    app.makepyfile(
        test_order="""
        import flowmap

        def test_first(flowmap_spans):
            with flowmap.bind(flowmap.RequestContext("a")):
                pass

        @flowmap.boundary("llm", "ask")
        def ask():
            from opentelemetry import trace
            trace.get_current_span().set_attribute("llm.prompt", "You are a helpful assistant")
            return "ok"

        def test_second(flowmap_two_tenants):
            flowmap_two_tenants.run(lambda run: ask())
        """
    )
    app.runpytest("-p", "no:randomly").assert_outcomes(passed=2)


def test_short_and_numeric_tenant_ids_are_not_found_in_every_number_or_word(app: pytest.Pytester) -> None:
    app.makepyfile(
        test_numeric="""
        import flowmap
        from opentelemetry import trace

        @flowmap.boundary("vector", "search", scoped=True)
        def search():
            trace.get_current_span().set_attribute("db.response.returned_rows", 2)
            return {"hits": ["doc of " + flowmap.current().tenant_id], "page": 1, "note": "1 of 2"}

        def test_integer_tenant_ids(flowmap_two_tenants):
            flowmap_two_tenants.run(lambda run: search(), tenants=("1", "2"))

        def test_a_tenant_key_still_counts(flowmap_two_tenants):
            SEEN = {}
            def flow(run):
                SEEN.setdefault("t", int(flowmap.current().tenant_id))
                return {"tenant_id": SEEN["t"]}
            flowmap_two_tenants.run(flow, tenants=("1", "2"), rounds=1)
        """
    )
    result = app.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_a_tenant_key_still_counts*", "*holds tenant ?'s tenant id*"])


def test_logs_of_a_logger_that_does_not_propagate_and_extra_fields_are_checked(app: pytest.Pytester) -> None:
    app.makepyfile(
        test_logs="""
        import logging
        import flowmap
        import app

        audit = logging.getLogger("app.audit")
        audit.propagate = False
        audit.addHandler(logging.NullHandler())  # its own handler (a JSON file)
        plain = logging.getLogger("app.plain")

        def test_own_handler(flowmap_two_tenants):
            app.CACHE.clear()
            def flow(run):
                audit.info("served %s", app.profile_shared_key())
            flowmap_two_tenants.run(flow, seed=app.seed)

        def test_extra(flowmap_two_tenants):
            app.CACHE.clear()
            def flow(run):
                plain.warning("served profile", extra={"profile": app.profile_shared_key()})
            flowmap_two_tenants.run(flow, seed=app.seed)
        """
    )
    result = app.runpytest()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*a log record of logger 'app.audit' holds tenant ?'s canary*"])
    result.stdout.fnmatch_lines(["*a log record of logger 'app.plain' holds tenant ?'s canary*"])


# -- the app's own flowmap set-up during a test --------------------------------------------


APP_FACTORY = '''
import concurrent.futures
import logging

import flowmap

POOL = concurrent.futures.ThreadPoolExecutor(1)
CACHE = {}
STORE = {}
RT = []


def create_app():
    """The app's factory: sets tracing up as in production (a global provider)."""
    rt = flowmap.configure(service_name="agent-api", tenant_key="k" * 32, exporters=None,
                           instrument_httpx=False)
    RT.append(rt)
    return rt


@flowmap.boundary("tool", "search", mode="record")
def search():
    return []


def handle_leaky():
    with flowmap.boundary("agent", "agent.run"):
        return POOL.submit(search).result()  # BUG: the pool drops the context


def profile():
    if "p" not in CACHE:                      # BUG: the key has no tenant in it
        CACHE["p"] = STORE[flowmap.current().tenant_id]
    logging.getLogger("agentapp").warning("served %s", CACHE["p"])
'''


def test_an_app_that_configures_flowmap_during_the_test_is_still_captured(app: pytest.Pytester) -> None:
    """configure() in an app fixture that runs after the capture started (always so under
    --flowmap-strict) installs the app's own runtime: its spans are captured and judged,
    and the app's set-up stays in force after the test."""
    app.makepyfile(agentapp=APP_FACTORY)
    app.makepyfile(
        test_factory="""
        import pytest
        import flowmap
        import agentapp
        from app import ACME

        @pytest.fixture
        def started():
            return agentapp.create_app()

        def test_capture_then_app(flowmap_spans, started):
            with flowmap.bind(flowmap.RequestContext(ACME)):
                agentapp.handle_leaky()
            assert sorted(s.name for s in flowmap_spans) == ["agent.run", "search"]
            flowmap_spans.assert_no_leaks(fail_on="medium")

        def test_the_apps_runtime_stays_after_the_capture():
            assert flowmap.runtime.current_runtime() is agentapp.RT[-1]

        def test_two_tenants_then_app(flowmap_two_tenants, started):
            flowmap_two_tenants.run(lambda run: agentapp.handle_leaky())

        def test_two_tenants_log_under_the_apps_key(flowmap_two_tenants, started):
            def seed(run):
                agentapp.STORE[flowmap.current().tenant_id] = run.canary
            agentapp.CACHE.clear()
            flowmap_two_tenants.run(lambda run: agentapp.profile(), seed=seed, fail_on=None)
        """,
        test_strict_app="""
        import pytest
        import flowmap
        import agentapp
        from app import ACME

        @pytest.fixture
        def started():
            rt = agentapp.create_app()
            yield rt
            rt.shutdown()

        def test_leaky_under_strict(started):
            with flowmap.bind(flowmap.RequestContext(ACME)):
                agentapp.handle_leaky()
        """,
    )
    result = app.runpytest_subprocess("-p", "no:randomly", "test_factory.py")
    result.assert_outcomes(failed=3, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_capture_then_app _*",
            "*agent.run → ✗ orphan-root → search*",
            "*_ test_two_tenants_then_app _*",
            "*(orphan-root)*",
            "*_ test_two_tenants_log_under_the_apps_key _*",
            "*a log record of logger 'agentapp' holds tenant ?'s canary*",
        ]
    )
    result = app.runpytest_subprocess("--flowmap-strict", "test_strict_app.py")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*--flowmap-strict: this test's spans hold findings*", "*orphan-root*search*"])
    _no_raw_ids(result.stdout.str(), "acme-corp-7731")


def test_under_flowmap_run_the_first_capturing_test_gets_the_global_apis_spans(app: pytest.Pytester) -> None:
    """``flowmap run -- pytest`` installs its provider at the program's first span: when
    that span starts inside a capture, the capture follows the new runtime."""
    app.makepyfile(
        test_mix="""
        import flowmap
        from opentelemetry import trace
        from app import ACME

        lib = trace.get_tracer("lib")  # the global API, as instrumentations use it

        def work(name):
            with flowmap.boundary("tool", name):
                with lib.start_as_current_span(name + ".inner"):
                    pass

        def test_first_capture(flowmap_spans):
            with flowmap.bind(flowmap.RequestContext(ACME)):
                work("first")
            assert sorted(s.name for s in flowmap_spans) == ["first", "first.inner"]
            flowmap_spans.assert_no_leaks(fail_on="info")

        def test_later_capture(flowmap_spans):
            with flowmap.bind(flowmap.RequestContext(ACME)):
                work("later")
            assert sorted(s.name for s in flowmap_spans) == ["later", "later.inner"]
        """
    )
    out = app.path / "traces.jsonl"
    result = app.run(
        sys.executable, "-m", "flowmap", "run", "--dev", "--no-report", "--out", str(out), "--",
        sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider", "test_mix.py",
        timeout=120,
    )
    result.assert_outcomes(passed=2)


def test_spans_tagged_by_the_apps_own_set_up_are_judged_under_the_tests_key(app: pytest.Pytester) -> None:
    """configure() in conftest.py (or flowmap run -- pytest) tags the global API's spans
    under the app's key: the capture's copies are re-tagged under the test's key, so a
    tenant switched between a boundary and an instrumented client is a cross-tenant."""
    app.makeconftest(
        """
        import flowmap

        flowmap.configure(service_name="agent-api", tenant_key="app-key-0123456789abcdef",
                          exporters=None, instrument_httpx=False)
        """
    )
    app.makepyfile(
        test_keys="""
        import flowmap
        from opentelemetry import trace
        from app import ACME, GLOBEX

        lib = trace.get_tracer("some.instrumented.lib")

        def call(tenant_id):
            with flowmap.bind(flowmap.RequestContext(ACME)):
                with flowmap.boundary("agent", "agent.run"):
                    # a tool that re-binds the tenant the model named, when it differs
                    with flowmap.bind(flowmap.RequestContext(tenant_id), allow_switch=True):
                        with lib.start_as_current_span("GET /orders", kind=trace.SpanKind.CLIENT):
                            pass

        def test_same_tenant(flowmap_spans):
            call(ACME)
            (client,) = flowmap_spans.by_name("GET /orders")
            assert client.attributes["flowmap.tenant"] == flowmap_spans.tag(ACME)
            flowmap_spans.assert_no_leaks(fail_on="info")

        def test_switched_tenant(flowmap_spans):
            call(GLOBEX)
            flowmap_spans.assert_no_leaks(fail_on="info")
        """
    )
    result = app.runpytest_subprocess()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*_ test_switched_tenant _*", "*(cross-tenant)*", "*pytest: agent.run → ✗ agent-api: GET /orders*"])
    _no_raw_ids(result.stdout.str(), "acme-corp-7731", "globex-4411")


def test_default_tenant_ids_are_never_found_in_ordinary_words(app: pytest.Pytester) -> None:
    """A correct app that says "tenant-api" or "tenant-aware" passes with the default ids."""
    app.makepyfile(
        test_words="""
        import logging
        import flowmap

        log = logging.getLogger("app")

        @flowmap.boundary("tool", "get_settings",
                          attributes={"url.full": "http://tenant-api.internal/v1/settings"})
        def get_settings():
            log.warning("calling tenant-api; the cache is tenant-aware, the router tenant-based")
            with flowmap.boundary("cache", "tenant-aware cache", scoped=True):
                return {"theme": "dark", "note": "tenant-based routing"}

        def test_settings(flowmap_two_tenants):
            out = flowmap_two_tenants.run(lambda run: get_settings())
            assert out.runs["A"][0].tenant_id != out.runs["B"][0].tenant_id
        """
    )
    app.runpytest().assert_outcomes(passed=1)


def test_a_canary_in_a_response_body_or_an_objects_fields_is_found(app: pytest.Pytester) -> None:
    """Flows return responses and objects, not only dicts: the canary of the other tenant
    in an httpx.Response body, or in a plain object's fields or slots, is a leak."""
    app.makepyfile(
        test_results="""
        import httpx
        import pytest
        import app

        class Answer:
            def __init__(self, text):
                self.text = text
                self.parent = self        # a cycle is no trouble

            def __repr__(self):
                return "Answer(...)"      # the repr shows nothing of the data

        class Slotted:
            __slots__ = ("_Slotted__text",)

            def __init__(self, text):
                self.__text = text

        @pytest.fixture(autouse=True)
        def fresh():
            app.CACHE.clear()
            app.STORE.clear()

        def run(harness, make):
            harness.run(lambda run: make(app.profile_shared_key()), seed=app.seed)

        def test_response_body(flowmap_two_tenants):
            run(flowmap_two_tenants, lambda p: httpx.Response(200, json={"profile": p}))

        def test_object_fields(flowmap_two_tenants):
            run(flowmap_two_tenants, lambda p: {"answers": [Answer(p)]})

        def test_object_slots(flowmap_two_tenants):
            run(flowmap_two_tenants, Slotted)

        def test_own_data_only(flowmap_two_tenants):
            flowmap_two_tenants.run(
                lambda run: (httpx.Response(200, json={"p": app.profile_tenant_key()}),
                             Answer(app.profile_tenant_key()), Slotted(app.profile_tenant_key())),
                seed=app.seed)
        """
    )
    result = app.runpytest()
    result.assert_outcomes(failed=3, passed=1)
    for name in ("test_response_body", "test_object_fields", "test_object_slots"):
        result.stdout.fnmatch_lines([f"*_ {name} _*", "*the result of round ? holds tenant ?'s canary*"])


def test_tenant_ids_that_are_flowmaps_own_words_pass_a_correct_flow(app: pytest.Pytester) -> None:
    """Tenants named like flowmap's own words (a boundary kind, a tag source, a word of
    an attribute name, of a canary or of the harness's root span) are found only where
    the app put them."""
    app.makepyfile(
        test_words="""
        import pytest
        import flowmap

        def flow(run):
            with flowmap.boundary("tool", "lookup"):
                pass
            return "ok"

        WORDS = [("stream", "tool"), ("server", "context"), ("tenant", "flowmap"),
                 ("canary", "boundary"), ("run", "two"), ("A", "B")]

        @pytest.mark.parametrize("tenants", WORDS)
        @pytest.mark.parametrize("fail_on", [None, "high"])
        def test_correct_flow(flowmap_two_tenants, tenants, fail_on):
            flowmap_two_tenants.run(flow, tenants=tenants, fail_on=fail_on)

        def test_a_real_leak_is_still_found(flowmap_two_tenants):
            seen = []
            def leaky(run):
                seen.append(flowmap.current().tenant_id)
                return list(seen)
            flowmap_two_tenants.run(leaky, tenants=("stream", "tool"), rounds=1)
        """
    )
    result = app.runpytest()
    result.assert_outcomes(passed=12, failed=1)
    result.stdout.fnmatch_lines(["*test_a_real_leak_is_still_found*", "*holds tenant ?'s tenant id*"])


def test_spans_and_events_named_by_a_number_are_checked_not_a_crash(app: pytest.Pytester) -> None:
    """The SDK takes any object as a span or event name (add_event(500))."""
    app.makepyfile(
        test_names="""
        from flowmap.runtime import get_tracer

        def flow(run):
            with get_tracer().start_as_current_span(404) as span:
                span.add_event(500, {"k": "v"})
            return "ok"

        def test_numbers_as_names(flowmap_two_tenants):
            flowmap_two_tenants.run(flow)

        def test_a_leak_beside_them_is_still_found(flowmap_two_tenants):
            last = {}
            def leaky(run):
                with get_tracer().start_as_current_span(404) as span:
                    span.add_event(500, {"previous": last.get("c", "")})
                last["c"] = run.canary
            flowmap_two_tenants.run(leaky)
        """
    )
    result = app.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*span '404' event '500' attribute 'previous' holds tenant ?'s canary*"])
    assert "TypeError" not in result.stdout.str()


def test_the_flowmap_report_section_of_a_failing_harness_test_masks_both_tenants(app: pytest.Pytester) -> None:
    """A flow that fails for another reason gets the "flowmap" report section: a span
    name holding the other tenant's id is masked there too."""
    app.makepyfile(
        test_section="""
        import flowmap
        from opentelemetry import trace
        import app

        LAST = {}

        def flow(run):
            prev = LAST.get("t")
            LAST["t"] = flowmap.current().tenant_id
            with flowmap.boundary("tool", f"lookup {prev}" if prev else "lookup"):
                # the tenant's own id in an attribute: redacted by the runtime, a finding
                trace.get_current_span().set_attribute("app.note", "for " + flowmap.current().tenant_id)
            if prev:
                raise RuntimeError("the flow broke")
            return "ok"

        def test_flow_raises(flowmap_two_tenants):
            LAST.clear()
            flowmap_two_tenants.run(flow, tenants=(app.ACME, app.GLOBEX), rounds=1)
        """
    )
    result = app.runpytest("--junitxml=junit.xml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*RuntimeError: the flow broke*", "*Captured flowmap call*", "*lookup <tenant ? id>*"])
    junit = (app.path / "junit.xml").read_text()
    _no_raw_ids(result.stdout.str() + junit, "acme-corp-7731", "globex-4411")


def test_a_mistake_in_the_flowmap_marker_is_one_line_before_the_test_runs(app: pytest.Pytester) -> None:
    app.makepyfile(
        test_marker="""
        import pytest

        RAN = []

        @pytest.mark.flowmap(failon="low")
        def test_typo_in_a_name(flowmap_spans):
            RAN.append(1)

        @pytest.mark.flowmap("low")
        def test_positional():
            RAN.append(1)

        @pytest.mark.flowmap(fail_on="hgh")
        def test_bad_severity_without_strict(flowmap_spans):
            RAN.append(1)

        @pytest.mark.flowmap(boundary_mode="recrod")
        def test_bad_mode(flowmap_spans):
            RAN.append(1)

        @pytest.mark.flowmap(strict="no")
        def test_strict_not_a_bool():
            RAN.append(1)

        @pytest.mark.flowmap(fail_on="medium", strict=False, boundary_mode="record")
        def test_fine(flowmap_spans):
            pass

        def test_none_of_them_ran():
            assert RAN == []
        """
    )
    result = app.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=5)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_typo_in_a_name*",
            "@pytest.mark.flowmap: unknown argument failon= (did you mean fail_on=? it takes fail_on=, strict=, boundary_mode=)",
            "*ERROR at setup of test_positional*",
            "@pytest.mark.flowmap takes keyword arguments only*",
            "*ERROR at setup of test_bad_severity_without_strict*",
            "@pytest.mark.flowmap(fail_on=...): unknown severity 'hgh'*",
            "*ERROR at setup of test_bad_mode*",
            "@pytest.mark.flowmap(boundary_mode=...): boundary mode must be one of*",
            "*ERROR at setup of test_strict_not_a_bool*",
            "@pytest.mark.flowmap(strict=...) takes True or False",
        ]
    )
    assert "Traceback" not in result.stdout.str() and "pytest_plugin.py" not in result.stdout.str()


def test_the_harness_reads_debug_records_without_showing_them_in_the_failure(
    app: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing two-tenant test's captured log and stderr hold what they would without
    the harness, not every DEBUG line of every library; the harness still reads them."""
    import logging

    # the inner session runs in this process: start it from the default root level,
    # whatever an earlier test left, and put that back afterwards
    monkeypatch.setattr(logging.getLogger(), "level", logging.WARNING)
    monkeypatch.setattr(logging.root.manager, "disable", 0)
    app.makepyfile(
        test_noise="""
        import logging
        import sys
        import app

        noisy = logging.getLogger("noisy.lib")          # level from the root (WARNING)
        own = logging.getLogger("app.own")              # its own handler, apart
        own.propagate = False
        own.addHandler(logging.StreamHandler(sys.stderr))
        verbose = logging.getLogger("verbose")          # a level of its own
        verbose.setLevel(logging.DEBUG)

        def flow(run):
            noisy.debug("connection opened")
            own.debug("own debug line")
            own.warning("own warning line")
            verbose.debug("verbose debug line")
            logging.getLogger("app").warning("a warning, shown as always")
            noisy.debug("profile %s", app.profile_shared_key())   # the leak, at DEBUG
            return "ok"

        def test_leak_among_noise(flowmap_two_tenants):
            app.CACHE.clear()
            flowmap_two_tenants.run(flow, seed=app.seed)

        def test_logging_is_left_as_it_was():
            assert logging.getLogger().level == logging.WARNING
            assert own.handlers[0].filters == []
        """
    )
    result = app.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=1, passed=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(["*a log record of logger 'noisy.lib' holds tenant ?'s canary*"])
    assert "a warning, shown as always" in out and "own warning line" in out
    assert "verbose debug line" in out  # its own level let it through before too
    assert "connection opened" not in out and "own debug line" not in out


def test_arun_under_trio_through_anyio(app: pytest.Pytester) -> None:
    """An async test on trio (anyio's pytest plugin, anyio_backend = "trio") runs both
    tenants as tasks of trio's loop, and a shared-cache leak still fails it."""
    pytest.importorskip("anyio")
    app.makepyfile(
        test_trio="""
        import anyio
        import pytest
        import flowmap
        import app

        @pytest.fixture
        def anyio_backend():
            return "trio"

        @flowmap.boundary("cache", "profile.get")
        async def profile():
            await anyio.sleep(0.01)
            return app.profile_shared_key()

        @pytest.fixture(autouse=True)
        def fresh():
            app.CACHE.clear()

        @pytest.mark.anyio
        async def test_leak(flowmap_two_tenants):
            await flowmap_two_tenants.arun(lambda run: profile(), seed=app.seed)

        @pytest.mark.anyio
        async def test_clean(flowmap_two_tenants):
            async def flow(run):
                await anyio.sleep(0.01)
                return app.STORE[flowmap.current().tenant_id]
            out = await flowmap_two_tenants.arun(flow, seed=app.seed)
            assert out.results["A"] == [out.runs["A"][0].canary] * 2
        """
    )
    result = app.runpytest()
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*_ test_leak _*", "*holds tenant ?'s canary*"])


def test_a_streamed_response_of_any_client_is_not_read_by_the_harness(app: pytest.Pytester) -> None:
    """A Werkzeug (Flask test client) streamed response keeps its status among its own
    fields and its body behind properties (.data, .text) that consume the iterator: an
    endless one hung the test. Bodies not known to be in memory are left alone; a
    response whose body is (a list) is still searched."""
    app.makepyfile(
        test_wz="""
        READS = []

        class Endless:                       # Werkzeug keeps app_iter in .response
            def __iter__(self):
                return self
            def __next__(self):
                READS.append(1)
                if len(READS) > 100:
                    raise StopIteration
                return b"data: x"

        class Response:                      # the shape of werkzeug's Response
            def __init__(self, body):
                self._status_code = 200
                self.response = body
                self.headers = {}
            @property
            def data(self):
                return b"".join(self.response)
            @property
            def text(self):
                return self.data.decode()

        def test_stream_left_alone(flowmap_two_tenants):
            flowmap_two_tenants.run(lambda run: Response(Endless()), rounds=1)
            assert READS == []

        def test_a_buffered_body_is_searched(flowmap_two_tenants):
            shared = []                      # a cache without the tenant in its key
            def flow(run):
                shared.append(run.canary)
                return Response([" ".join(shared).encode()])
            import pytest
            with pytest.raises(Exception, match="canary"):
                flowmap_two_tenants.run(flow, rounds=2)   # round two reads round one's
        """
    )
    app.runpytest().assert_outcomes(passed=2)


def test_a_streamed_response_the_flow_left_unread_is_not_read_by_the_harness(app: pytest.Pytester) -> None:
    """requests with stream=True: reading .content would read the stream (an endless
    one, server-sent events, would hang the test)."""
    pytest.importorskip("requests")
    app.makepyfile(
        test_stream="""
        import io
        import requests
        import urllib3
        from requests.adapters import HTTPAdapter

        READS = []

        class Endless(io.RawIOBase):   # (ends after 100 reads, so a bug fails, not hangs)
            def readable(self):
                return True
            def readinto(self, buffer):
                READS.append(len(buffer))
                if len(READS) > 100:
                    return 0
                buffer[:5] = b"data:"
                return 5

        def streamed(run):
            raw = urllib3.HTTPResponse(body=Endless(), status=200, preload_content=False)
            request = requests.Request("GET", "http://events.svc/stream").prepare()
            return HTTPAdapter().build_response(request, raw)

        def test_stream_left_alone(flowmap_two_tenants):
            flowmap_two_tenants.run(streamed, rounds=1)
            assert READS == []
        """
    )
    app.runpytest().assert_outcomes(passed=1)
