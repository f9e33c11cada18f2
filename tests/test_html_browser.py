"""The risk map in a real headless browser (Debian's chromium driven by Playwright).

No skips: without chromium these tests fail with a message saying how to install it,
because a report nobody has opened in a browser is not tested.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flowmap.html import write_report
from flowmap.report_data import build_report_data
from report_fixture import (
    RAW_TENANTS,
    XSS_ATTR,
    XSS_NAME,
    build_analysis,
    long_names,
    long_trace,
    write_platform_otlp,
)

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `apt-get install chromium` (CI does)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def analysis():
    return build_analysis()


@pytest.fixture(scope="module")
def report(tmp_path_factory, analysis) -> Path:
    return write_report(analysis, tmp_path_factory.mktemp("report") / "risk-map.html")


class Opened:
    """A page opened from file:// with every console message, error, request and dialog recorded."""

    def __init__(self, browser, path: Path) -> None:
        self.context = browser.new_context(viewport={"width": 1500, "height": 1000})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.failed: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: m.type in ("error", "warning") and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("requestfailed", lambda r: self.failed.append(r.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.add_init_script("window.__alerts = []; window.alert = function (m) { window.__alerts.push(String(m)); };")
        self.url = path.resolve().as_uri()
        self.page.goto(self.url)
        self.page.wait_for_selector("#map")

    def close(self) -> None:
        self.context.close()


@pytest.fixture()
def opened(browser, report):
    o = Opened(browser, report)
    yield o
    o.close()


def _node_id(data, suffix: str) -> str:
    return next(n.id for n in data.nodes if n.op.endswith(suffix))


def _edge_id(data, source_suffix: str, target_suffix: str) -> str:
    s, t = _node_id(data, source_suffix), _node_id(data, target_suffix)
    return next(e.id for e in data.edges if e.source == s and e.target == t)


def test_loads_from_file_without_errors_or_network(opened):
    assert opened.errors == []
    assert opened.failed == []
    assert opened.requests == [opened.url]  # nothing else: no CDN, font, image
    assert opened.page.title() == "flowmap risk map"
    assert "switched to another tenant" in opened.page.inner_text("#verdict")
    assert opened.page.inner_text("#stat-tenants") == "3"


def test_map_has_every_node_and_edge_with_its_class(opened, analysis):
    data = build_report_data(analysis)
    page = opened.page
    assert page.locator("#map .node").count() == len(data.nodes) >= 55
    assert page.locator("#map .edge").count() == sum(e.source != e.target for e in data.edges)
    switched = _edge_id(data, "agent.run support-agent", "tool refund_order")
    dropped = _edge_id(data, "agent.run support-agent", "tool send_email")
    orphaned = _edge_id(data, "agent.run support-agent", "tool summarize_file")
    assert "edge switched" in page.get_attribute(f"#edge-{switched}", "class")
    assert "edge dropped" in page.get_attribute(f"#edge-{dropped}", "class")
    assert "edge orphaned" in page.get_attribute(f"#edge-{orphaned}", "class")
    # orphan edges are dashed, the others solid
    dash = page.eval_on_selector(f"#edge-{orphaned} .line", "e => getComputedStyle(e).strokeDasharray")
    assert dash not in ("none", "")
    assert page.eval_on_selector(f"#edge-{dropped} .line", "e => getComputedStyle(e).strokeDasharray") == "none"
    assert page.locator("#map .edge.inherited").count() > 20


def test_labels_fit_their_boxes_and_boxes_do_not_overlap(opened):
    problems = opened.page.evaluate("""() => {
      const out = [];
      const boxes = [];
      document.querySelectorAll('#map .node').forEach(g => {
        const r = g.querySelector('rect.box').getBBox();
        const m = g.transform.baseVal.consolidate().matrix;
        boxes.push({id: g.dataset.id, x: m.e, y: m.f, w: r.width, h: r.height});
        const badge = g.querySelector('.badge');
        const limit = r.width - (badge ? 34 : 0);
        g.querySelectorAll('text.name, text.sub').forEach(t => {
          const b = t.getBBox();
          if (b.x + b.width > limit - 2) out.push(g.dataset.id + ' label overflows: ' + t.textContent);
        });
      });
      for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
        const a = boxes[i], b = boxes[j];
        if (a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h) out.push(a.id + ' overlaps ' + b.id);
      }
      return out;
    }""")
    assert problems == []


def test_click_edge_lists_its_findings_and_examples(opened, analysis):
    data = build_report_data(analysis)
    eid = _edge_id(data, "agent.run support-agent", "tool refund_order")
    page = opened.page
    page.click(f"#edge-{eid} .line", force=True)
    panel = page.locator("#panel-edge")
    assert panel.get_attribute("data-id") == eid
    body = page.inner_text("#panel-body")
    assert "switched" in body and "cross-tenant" in body
    assert page.locator("#panel-body .panel-findings li").count() == sum(f.edge == eid for f in data.findings) > 0
    assert page.locator("#panel-body .panel-examples li").count() >= 1
    assert "selected" in page.get_attribute(f"#edge-{eid}", "class")
    assert "focus" in page.get_attribute("#map", "class")


def test_click_node_then_open_trace_highlights_the_first_broken_edge(opened, analysis):
    data = build_report_data(analysis)
    nid = _node_id(data, "tool send_email")
    page = opened.page
    page.click(f"#node-{nid} rect.box")
    assert page.locator("#panel-node").get_attribute("data-id") == nid
    assert "context-dropped" in page.inner_text("#panel-body")
    button = page.locator("#panel-body .panel-findings button.open-trace").first
    tid = button.get_attribute("data-trace")
    button.click()
    assert page.is_visible("#trace-section")
    assert page.inner_text("#trace-id") == tid
    tv = data.traces[tid]
    first = page.locator("#trace-view .wf-row.first-broken")
    assert first.count() == 1
    assert first.get_attribute("data-span") == tv.first_broken
    assert "context-dropped" in page.inner_text("#trace-summary")
    assert "no tenant" in first.inner_text()  # the dropped span shows it has no tag
    rows = page.locator("#trace-view .wf-row[data-span]")
    assert rows.count() == len(tv.spans)
    # the entry span comes first, with its opaque tag
    assert tv.spans[0].tenant in rows.first.inner_text()
    # path-only hides the spans off the path to the tool call
    page.check("#trace-path-only")
    visible = page.locator("#trace-view .wf-row[data-span]:not(.path-hidden)").count()
    assert 0 < visible == sum(s.on_path for s in tv.spans) < len(tv.spans)


def test_findings_table_links_to_its_trace_view(opened, analysis):
    page = opened.page
    row = page.locator("#findings tbody tr", has=page.locator("button.open-trace")).first
    tid = row.get_attribute("data-trace")
    row.locator("button.open-trace").click()
    assert page.is_visible("#trace-section") and page.inner_text("#trace-id") == tid


def test_findings_filters_and_sorting(opened, analysis):
    page = opened.page
    total = len(analysis.findings)

    def visible(attr: str) -> list[str]:
        return page.eval_on_selector_all(
            "#findings tbody tr", f"rs => rs.filter(r => !r.hidden).map(r => r.dataset.{attr})")

    assert len(visible("rule")) == total
    page.select_option("#filter-severity", "critical")
    assert set(visible("severity")) == {"critical"}
    assert len(visible("severity")) == sum(str(f.severity) == "critical" for f in analysis.findings)
    page.select_option("#filter-severity", "")
    page.select_option("#filter-rule", "context-dropped")
    assert set(visible("rule")) == {"context-dropped"}
    page.select_option("#filter-service", "worker")
    shown = visible("service")
    assert set(shown) == {"worker"} and len(shown) == sum(
        f.rule == "context-dropped" and f.service == "worker" for f in analysis.findings)
    assert page.inner_text("#findings-count") == f"{len(shown)} of {total} shown"
    page.select_option("#filter-rule", "")
    page.select_option("#filter-service", "")
    # sorting: rule ascending, then descending; severity worst first
    page.click("#findings th button[data-key=rule]")
    rules = visible("rule")
    assert rules == sorted(rules)
    page.click("#findings th button[data-key=rule]")
    assert visible("rule") == sorted(rules, reverse=True)
    page.click("#findings th button[data-key=rank]")
    ranks = [int(r) for r in visible("rank")]
    assert ranks == sorted(ranks, reverse=True)


def _active(page) -> dict:
    """What has the keyboard focus: tag, id, classes and data attributes."""
    return page.evaluate("""() => { const a = document.activeElement;
      return {tag: a.tagName, id: a.id, cls: a.className, span: a.dataset.span || null,
              trace: a.dataset.trace || null, dataId: a.dataset.id || null,
              expanded: a.getAttribute("aria-expanded"), outline: getComputedStyle(a).outlineStyle}; }""")


def test_waterfall_rows_are_reached_and_opened_with_the_keyboard(opened, analysis):
    page = opened.page
    button = page.locator("#findings tbody tr button.open-trace").first
    tid, sid = button.get_attribute("data-trace"), button.get_attribute("data-span")
    button.focus()
    page.keyboard.press("Enter")
    at = _active(page)
    assert "wf-row" in at["cls"] and at["span"] == sid  # the finding's row has the focus...
    assert at["outline"] == "solid"  # ...and shows it
    spans = [s.span_id for s in build_report_data(analysis).traces[tid].spans]
    page.keyboard.press("Enter")
    assert _active(page)["expanded"] == "true"
    assert "span id" in page.inner_text(f'#trace-view .wf-row[data-span="{sid}"] + .wf-attrs')
    page.keyboard.press(" ")
    assert _active(page)["expanded"] == "false" and page.locator("#trace-view .wf-attrs").count() == 0
    i = spans.index(sid)
    step = 1 if i + 1 < len(spans) else -1
    page.keyboard.press("ArrowDown" if step == 1 else "ArrowUp")
    assert _active(page)["span"] == spans[i + step]
    page.keyboard.press("Shift+Tab" if step == 1 else "Tab")  # every row is a tab stop
    assert _active(page)["span"] == sid
    assert opened.errors == []


def test_following_a_panel_link_moves_the_focus_to_what_it_opened(opened, analysis):
    data = build_report_data(analysis)
    nid = _node_id(data, "tool send_email")
    page = opened.page
    page.focus(f"#node-{nid}")
    page.keyboard.press("Enter")
    assert page.get_attribute("#panel-node", "data-id") == nid
    link = page.locator("#panel-body button[data-edge]").first
    eid = link.get_attribute("data-edge")
    link.focus()
    page.keyboard.press("Enter")  # the panel is refilled: its button is gone
    at = _active(page)
    assert at["id"] == "panel-edge" and at["dataId"] == eid
    assert at["outline"] == "solid"
    trace_button = page.locator("#panel-body button.open-trace").first
    tid, sid = trace_button.get_attribute("data-trace"), trace_button.get_attribute("data-span")
    trace_button.focus()
    page.keyboard.press("Enter")
    at = _active(page)
    assert "wf-row" in at["cls"] and at["span"] == sid and page.inner_text("#trace-id") == tid
    page.focus("#trace-close")
    page.keyboard.press("Enter")  # back to the link that opened the trace
    assert page.is_hidden("#trace-section")
    at = _active(page)
    assert "open-trace" in at["cls"] and (at["trace"], at["span"]) == (tid, sid)
    assert opened.errors == []


def test_hostile_names_show_as_text_and_execute_nothing(opened, analysis):
    page = opened.page
    # open every panel and trace that shows a hostile value
    data = build_report_data(analysis)
    nid = _node_id(data, f"tool {XSS_NAME}")
    page.click(f"#node-{nid} rect.box")
    assert XSS_NAME in page.inner_text("#panel-body")
    page.locator("#panel-body .panel-examples button.open-trace").first.click()  # an example trace
    row = page.locator("#trace-view .wf-row", has_text=XSS_NAME).first
    row.click()  # attributes, with the hostile value
    assert XSS_ATTR in page.inner_text("#trace-view")
    texts = page.eval_on_selector_all("#map text.name", "ts => ts.map(t => t.textContent)")
    assert f"tool {XSS_NAME}" in texts
    assert page.evaluate("window.__alerts") == []
    assert opened.dialogs == []
    assert page.locator("img").count() == 0
    assert page.locator("script").count() == 2
    assert page.locator("svg [onload], [onerror]").count() == 0
    assert opened.errors == []


def test_no_raw_tenant_id_anywhere_in_the_page(opened, report):
    html = report.read_text(encoding="utf-8")
    dom = opened.page.content()
    for raw in RAW_TENANTS:
        assert raw not in html and raw not in dom


def test_end_to_end_from_otlp_file(browser, tmp_path):
    from flowmap.analysis import analyze

    analysis = analyze([write_platform_otlp(tmp_path / "platform.jsonl")])
    out = write_report(analysis, tmp_path / "e2e.html")
    o = Opened(browser, out)
    try:
        page = o.page
        for kind in ("inherited", "dropped", "switched", "orphaned"):
            assert page.locator(f"#map .edge.{kind}").count() >= 1, kind
        page.click("#map .edge.orphaned .line", force=True)
        assert "orphaned" in page.inner_text("#panel-body")
        page.locator("#panel-body button.open-trace").first.click()
        assert page.locator("#trace-view .wf-row.first-broken").count() == 1
        assert o.errors == [] and o.dialogs == [] and page.evaluate("window.__alerts") == []
    finally:
        o.close()


@pytest.fixture(scope="module")
def long_report(tmp_path_factory):
    """A report of one 305-span trace whose 302 findings are more than a trace view's cap."""
    from flowmap.analysis import analyze_traces

    tb, ids = long_trace()
    path = write_report(analyze_traces([tb.traces()]), tmp_path_factory.mktemp("long") / "long.html")
    return path, ids


def test_a_long_trace_opens_at_its_broken_edge_and_says_what_is_left_out(browser, long_report):
    path, ids = long_report
    o = Opened(browser, path)
    try:
        page = o.page
        row = page.locator("#findings tbody tr[data-rule=context-dropped]")
        row.locator("button.open-trace").click()
        summary = page.inner_text("#trace-summary").replace("\u2068", "").replace("\u2069", "")  # (bidi isolates)
        assert summary.startswith("First broken edge: cross-tenant at api · tool refund"), summary
        assert page.locator(f'#trace-view .wf-row[data-span="{ids["dropped"]}"]').count() == 1
        assert page.locator("#trace-view .wf-row.first-broken").get_attribute("data-span") == ids["switched"]
        assert page.is_visible("#trace-notice")
        assert page.inner_text("#trace-notice").startswith("3 spans of this trace's 305 left out")
        # every finding of the table can be opened, and its span is in the view
        assert page.locator("#findings tbody tr button.open-trace").count() == 302
        assert o.errors == []
    finally:
        o.close()


def test_long_operation_names_are_cut_on_the_page_and_their_links_still_work(browser, tmp_path):
    from flowmap.analysis import analyze_traces

    analysis = analyze_traces([long_names().traces()])
    data = build_report_data(analysis)
    tool = next(n for n in data.nodes if n.boundary == "tool")
    into_tool = next(e for e in data.edges if e.target == tool.id)
    o = Opened(browser, write_report(analysis, tmp_path / "long-names.html"))
    try:
        page = o.page
        page.click(f"#node-{tool.id} rect.box")
        name = page.inner_text("#panel-node h3")
        assert name.endswith("…") and len(name) <= 200
        page.click(f'#panel-body button[data-edge="{into_tool.id}"]')
        assert page.get_attribute("#panel-edge", "data-id") == into_tool.id
        assert "selected" in page.get_attribute(f"#edge-{into_tool.id}", "class")
        assert max(len(t) for t in page.eval_on_selector_all("#map title, #panel-body h3", "ts => ts.map(t => t.textContent)")) < 400
        assert o.errors == []
    finally:
        o.close()


# operations whose names differ only by characters a browser draws as nothing or as a
# plain space: each would look like "tool refund" if shown as it is
LOOKALIKES = ["tool refund", "tool  refund", "tool\u00a0refund", "tool refund\ufe0f", "tool re\u034ffund",
              "tool refund ", "tool\u2003refund", "tool refund\U000e0100", "tool refund\u3164", "tool\u3000refund"]


def _looks(text: str) -> str:
    """What a reader sees: invisible characters gone, any run of blanks one space."""
    import re
    import unicodedata

    seen = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cf", "Mn") and ch not in "\u3164\u115f")
    return re.sub(r"\s+", " ", seen).strip()


def test_operations_that_differ_only_by_invisible_characters_do_not_look_alike(browser, tmp_path):
    """A leak can not hide under the name of a clean operation: a span named like it but
    for a variation selector, a no-break or double space shows those characters."""
    from flowmap.analysis import analyze_traces
    from otlp_builder import SERVER, TAG_A, TAG_B, TraceBuilder

    traces = []
    for i, name in enumerate(LOOKALIKES):
        tb = TraceBuilder(service="gw")
        entry = tb.span("POST /refund", kind=SERVER, tenant=TAG_A, boundary="http.server")
        entry.child(name, service="api", tenant=TAG_B if i else TAG_A, boundary="tool")  # only the first is clean
        traces.append(tb.traces())
    o = Opened(browser, write_report(analyze_traces(traces), tmp_path / "lookalikes.html"))
    try:
        page = o.page
        labels = [t for t in page.eval_on_selector_all("#map .node text.name", "ts => ts.map(t => t.textContent)")
                  if t != "POST /refund"]
        assert len(labels) == len(LOOKALIKES)
        assert len({_looks(t) for t in labels}) == len(LOOKALIKES), labels
        rows = page.eval_on_selector_all("#findings td.op", "ts => ts.map(t => t.innerText)")
        assert len(rows) == len(LOOKALIKES) - 1
        assert len({_looks(t) for t in rows}) == len(rows), rows
        assert all(_looks(t) != "POST /refund → tool refund tool" for t in rows)  # none passes for the clean one
        assert o.errors == []
    finally:
        o.close()


def test_right_to_left_names_keep_the_caller_before_the_callee(browser, tmp_path):
    """A parent and a child named in Hebrew were drawn "child → parent" in the findings
    table (the two right-to-left runs and the arrow between them form one run): the
    arrow said the callee called the caller. Each name is now its own bidi run."""
    from flowmap.analysis import analyze_traces
    from otlp_builder import SERVER, TAG_A, TAG_B, TraceBuilder

    tb = TraceBuilder(service="gw")
    entry = tb.span("\u05d0\u05d1\u05d2", kind=SERVER, tenant=TAG_A, boundary="http.server")  # the caller
    entry.child("\u05d3\u05d4\u05d5", service="api", tenant=TAG_B, boundary="tool")  # the callee
    analysis = analyze_traces([tb.traces()])
    o = Opened(browser, write_report(analysis, tmp_path / "rtl.html"))
    try:
        page = o.page
        left = page.evaluate("""() => {
          const out = {};
          const walk = document.createTreeWalker(document.querySelector('#findings td.op'), NodeFilter.SHOW_TEXT);
          for (let n = walk.nextNode(); n; n = walk.nextNode()) {
            for (const name of ['\u05d0\u05d1\u05d2', '\u05d3\u05d4\u05d5', '\u2192']) {
              const at = n.textContent.indexOf(name);
              if (at < 0) continue;
              const r = document.createRange(); r.setStart(n, at); r.setEnd(n, at + name.length);
              out[name] = r.getBoundingClientRect().left;
            }
          }
          return out; }""")
        assert left["\u05d0\u05d1\u05d2"] < left["\u2192"] < left["\u05d3\u05d4\u05d5"], left
        # the composed texts of the page isolate each name too
        edge = build_report_data(analysis).edges[0]
        assert "\u2068gw \u05d0\u05d1\u05d2\u2069 → \u2068api \u05d3\u05d4\u05d5\u2069" in edge.title
        page.locator("#findings button.open-trace").first.click()
        assert "at \u2068api\u2069 · \u2068\u05d3\u05d4\u05d5\u2069" in page.inner_text("#trace-summary")
        assert o.errors == []
    finally:
        o.close()


def test_screenshot_script_writes_a_png(report, tmp_path):
    out = tmp_path / "shot.png"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "screenshot.py"), str(report), "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
