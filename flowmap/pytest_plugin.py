"""pytest plugin: make tenant isolation a failing test.

Registered through the ``pytest11`` entry point, so installing flowmap is enough.

- ``flowmap_spans`` — a :class:`~flowmap.testing.SpanCapture`: this test's spans, in
  memory, under flowmap's processors and a random test key (never the environment's).
  ``flowmap_spans.assert_no_leaks(fail_on="medium")`` runs the analyzer's rules and
  fails with the broken path from entry to tool call.
- ``flowmap_two_tenants`` — a :class:`~flowmap.testing.TwoTenantHarness`:
  ``flowmap_two_tenants.run(flow)`` runs ``flow`` concurrently as two tenants, each
  with its own canary, and fails if anything of one reaches the other.
- ``--flowmap-strict`` (ini ``flowmap_strict = true``) captures every test and fails any
  whose spans hold a finding at or above ``--flowmap-fail-on`` (ini ``flowmap_fail_on``,
  default ``high``), without the test asking.
- ``@pytest.mark.flowmap(fail_on=..., strict=..., boundary_mode=...)`` adjusts one test.
- A span that a thread or task an earlier test left running starts during a later test
  is not that test's: it is kept apart (``flowmap_spans.leftover_spans``), and a finding
  on it that would have failed the test is a LeftoverSpanWarning instead.
- The analysis settings (``allowed_hosts``, ``tenant_attributes``, ``transparent_services``,
  ``tenantless_entries``, …) come from ``[tool.flowmap]`` of the nearest ``pyproject.toml``
  above pytest's root directory, read when a test first captures, as ``flowmap check``
  reads them: the tests judge what CI judges.

The plugin observes only: it never patches the threads, executors or queues of the
code under test, so a context that code drops is reported, not silently repaired.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Generator
from typing import Any

import pytest

from .config import load_config
from .errors import FlowmapError
from .model import Severity
from .runtime import validate_boundary_mode
from .settings import AnalysisSettings
from .testing import SpanCapture, TenantLeakError, TwoTenantHarness, _Window, leak_message, parse_severity

__all__ = ["flowmap_spans", "flowmap_two_tenants"]

_CAPTURE = pytest.StashKey[SpanCapture]()
_SETTINGS = pytest.StashKey[AnalysisSettings]()
_SEVERITIES = [str(s) for s in Severity]
_MARKER_KWARGS = frozenset({"fail_on", "strict", "boundary_mode"})


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("flowmap", "tenant isolation (flowmap)")
    group.addoption(
        "--flowmap-strict",
        action="store_true",
        default=None,
        help="capture every test's spans and fail tests whose spans hold a flowmap finding "
        "at or above --flowmap-fail-on",
    )
    group.addoption(
        "--flowmap-fail-on",
        default=None,
        metavar="SEVERITY",
        help=f"threshold for --flowmap-strict, one of {', '.join(_SEVERITIES)} (default: high)",
    )
    parser.addini("flowmap_strict", "default for --flowmap-strict", type="bool", default=False)
    parser.addini("flowmap_fail_on", "default for --flowmap-fail-on", default="high")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "flowmap(fail_on=None, strict=None, boundary_mode=None): per-test flowmap settings "
        "(threshold, strict capture on/off, boundary mode 'fail' or 'record')",
    )
    try:
        _config_fail_on(config)
    except Exception as err:  # noqa: BLE001 - a usage error, one line
        raise pytest.UsageError(f"--flowmap-fail-on: {err}") from None


def pytest_report_header(config: pytest.Config) -> str | None:
    if _config_strict(config):
        return f"flowmap: strict, fail on {_config_fail_on(config)} and above"
    return None


# -- settings ----------------------------------------------------------------------------


def _config_strict(config: pytest.Config) -> bool:
    opt = config.getoption("flowmap_strict")
    return bool(config.getini("flowmap_strict")) if opt is None else bool(opt)


def _config_fail_on(config: pytest.Config) -> Severity:
    opt = config.getoption("flowmap_fail_on")
    return parse_severity(opt if opt is not None else config.getini("flowmap_fail_on"))


def _marker_problem(item: pytest.Item) -> str | None:
    """What is wrong with the test's ``@pytest.mark.flowmap``, in one line, or None."""
    m = item.get_closest_marker("flowmap")
    if m is None:
        return None
    takes = "it takes fail_on=, strict=, boundary_mode="
    if m.args:
        return f"@pytest.mark.flowmap takes keyword arguments only, not {len(m.args)} positional ({takes})"
    for name in sorted(set(m.kwargs) - _MARKER_KWARGS):
        close = difflib.get_close_matches(name, sorted(_MARKER_KWARGS), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}=? " if close else ""
        return f"@pytest.mark.flowmap: unknown argument {name}= ({hint}{takes})"
    fail_on, strict, mode = (m.kwargs.get(k) for k in ("fail_on", "strict", "boundary_mode"))
    try:
        if fail_on is not None:
            parse_severity(fail_on)
    except FlowmapError as err:
        return f"@pytest.mark.flowmap(fail_on=...): {err}"
    if strict is not None and not isinstance(strict, bool):
        return "@pytest.mark.flowmap(strict=...) takes True or False"
    try:
        if mode is not None:
            validate_boundary_mode(mode)
    except FlowmapError as err:
        return f"@pytest.mark.flowmap(boundary_mode=...): {err}"
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A mistake in the test's flowmap marker fails it at setup, in one line, before any
    fixture or the test body runs (also without --flowmap-strict)."""
    problem = _marker_problem(item)
    if problem is not None:
        pytest.fail(problem, pytrace=False)


def _marker(item: pytest.Item) -> dict[str, Any]:
    m = item.get_closest_marker("flowmap")
    if m is None:
        return {}
    unknown = set(m.kwargs) - _MARKER_KWARGS
    if unknown or m.args:
        raise pytest.UsageError(
            f"@pytest.mark.flowmap takes only keyword arguments {sorted(_MARKER_KWARGS)}"
        )
    return dict(m.kwargs)


def _strict(item: pytest.Item) -> bool:
    strict = _marker(item).get("strict")
    return _config_strict(item.config) if strict is None else bool(strict)


def _fail_on(item: pytest.Item) -> Severity:
    fail_on = _marker(item).get("fail_on")
    return _config_fail_on(item.config) if fail_on is None else parse_severity(fail_on)


def _settings(config: pytest.Config) -> AnalysisSettings:
    """``[tool.flowmap]`` above the root directory, read once, on first use (a project
    that never captures is not affected by flowmap's configuration at all)."""
    settings = config.stash.get(_SETTINGS, None)
    if settings is None:
        try:
            loaded = load_config(cwd=config.rootpath)
        except FlowmapError as err:
            problem = f"flowmap: {err}"
        else:
            problem = None
        if problem is not None:  # failed outside the except: one line, no chained error
            pytest.fail(problem, pytrace=False)
        for line in loaded.warnings:
            warnings.warn(pytest.PytestConfigWarning(f"flowmap: {line}"), stacklevel=2)
        settings = config.stash[_SETTINGS] = loaded.settings
    return settings


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def flowmap_spans(request: pytest.FixtureRequest) -> Generator[SpanCapture, None, None]:
    """This test's spans, captured in memory under flowmap's processors.

    flowmap boundaries and ``flowmap.runtime.get_tracer()`` write to it; hand
    ``flowmap_spans.tracer_provider`` to anything that takes a provider.
    """
    capture = SpanCapture(
        boundary_mode=_marker(request.node).get("boundary_mode"), settings=_settings(request.config)
    )
    capture.start()
    request.node.stash[_CAPTURE] = capture
    try:
        yield capture
    finally:
        capture.stop()


@pytest.fixture
def flowmap_two_tenants(flowmap_spans: SpanCapture) -> TwoTenantHarness:
    """Runs a flow concurrently as two tenants and fails on any cross-over
    (``.run(flow, seed=..., tenants=..., rounds=2)``, ``await .arun(...)`` in async tests)."""
    return TwoTenantHarness(flowmap_spans)


@pytest.fixture(autouse=True)
def _flowmap_strict_capture(request: pytest.FixtureRequest) -> None:
    """Under --flowmap-strict every test is captured, asked for or not."""
    if isinstance(request.node, pytest.Item) and _strict(request.node):
        request.getfixturevalue("flowmap_spans")


# -- verdict -----------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    # every test's body, captured or not: the threads and tasks it begins are told apart
    # from a later test's own work when they start spans during that test
    window = _Window(call=True)
    try:
        result = yield
    except BaseException as exc:
        if not isinstance(exc, TenantLeakError):
            _attach_report(item)
        raise
    finally:
        window.close()
    capture = item.stash.get(_CAPTURE, None)
    if capture is not None and capture.active and _strict(item):
        threshold = _fail_on(item)
        analysis = capture.analyze()
        for warning in capture._leftover_warnings(threshold):  # noqa: SLF001
            item.warn(warning)
        if any(f.severity >= threshold for f in analysis.findings):
            __tracebackhide__ = True
            raise TenantLeakError(
                f"--flowmap-strict: this test's spans hold findings at or above {threshold}\n"
                + capture.masked(leak_message(analysis, threshold))
            ).with_traceback(None)
    return result


def _attach_report(item: pytest.Item) -> None:
    """A test that failed for another reason still shows what flowmap saw, if anything."""
    capture = item.stash.get(_CAPTURE, None)
    if capture is None or not capture.active:
        return
    try:
        analysis = capture.analyze()
        if analysis.findings:
            item.add_report_section("call", "flowmap", capture.report(_fail_on(item), analysis))
    except Exception:  # noqa: BLE001 - the report is a courtesy; never mask the real failure
        pass
