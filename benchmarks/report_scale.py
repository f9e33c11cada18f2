#!/usr/bin/env python3
"""How big and how quick the risk map is for a ~100,000-span input.

    .venv/bin/python benchmarks/report_scale.py [TRACES]

Builds the report tests' agent-platform analysis with TRACES requests (default 8,500,
about 100,000 spans, every trace kept as a sample so every cap is hit), renders the
report, and opens it from file:// in headless chromium. Prints spans, build and render
time, file size, and the time until the page's script has run.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts"))

from report_fixture import build_analysis  # noqa: E402
from screenshot import CHROMIUM_ARGS, find_chromium  # noqa: E402

from flowmap.html import write_report  # noqa: E402


def main() -> None:
    traces = int(sys.argv[1]) if len(sys.argv) > 1 else 8500
    analysis = build_analysis(traces=traces, sample=traces)
    t0 = time.perf_counter()
    out = write_report(analysis, Path(tempfile.mkdtemp()) / "risk-map.html")
    render = time.perf_counter() - t0
    size = out.stat().st_size
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page()
        t0 = time.perf_counter()
        page.goto(out.as_uri())
        page.wait_for_function("document.getElementById('findings-count').textContent.length > 0")
        load = time.perf_counter() - t0
        browser.close()
    print(f"spans {analysis.spans:,}  findings {len(analysis.findings):,}  "
          f"render {render:.2f}s  size {size / 1e6:.2f} MB  open {load:.2f}s")


if __name__ == "__main__":
    main()
